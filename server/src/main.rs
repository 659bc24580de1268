//! The `hookgate` binary; everything lives in the library.

/// mimalloc: a sign-in allocates on one thread and frees on another (the runtime's workers, the
/// hooks' blocking threads, the writer), which glibc's malloc paid for with ~12% of a
/// returning-user sign-in's CPU; with mimalloc one core signs in ~25% more returning users
/// (BENCHMARKS.md). Its arenas without transparent huge pages (`no_thp`): with ~80 threads that
/// allocate, huge pages made the peak RSS under load twice glibc's.
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookgate::cli::main()
}
