//! The `atf` command.

fn main() {
    std::process::exit(atf::cli::main());
}
