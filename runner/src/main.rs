//! The `atf` command.

// mimalloc instead of the system allocator: a load run allocates on the
// runtime's threads and frees on the virtual users' (and back), which
// glibc's per-thread arenas make costly (a fifth of `atf load`'s CPU).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // mimalloc asks for transparent huge pages for its arenas: each thread
    // that allocates then faults in whole 2 MiB pages, zeroing them
    // (`atf load --vus 400`, a runtime and connections per virtual user,
    // peaked at 1 GB; 320 MB before VUs had them). Without huge pages the
    // same run peaks at a small fraction of that, for the same CPU.
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments and touches no memory.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    std::process::exit(atf::cli::main());
}
