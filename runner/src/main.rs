//! The `atf` command.

// mimalloc instead of the system allocator: a load run allocates on the
// runtime's threads and frees on the virtual users' (and back), which
// glibc's per-thread arenas make costly (a fifth of `atf load`'s CPU).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(atf::cli::main());
}
