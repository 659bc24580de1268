//! The `hookgate` binary; everything lives in the library.

/// mimalloc instead of the C library's allocator: a sign-in makes a few hundred small
/// allocations (headers, the hook's strings, sea-orm's values), and glibc's malloc and free were
/// ~17% of the CPU in the one-core profile; mimalloc's thread-local heaps take ~10–17% more
/// sign-ins and `/user/info` checks a second off one core (BENCHMARKS.md) and share no arena lock
/// between threads. Plugins keep their own allocator: nothing allocated on one side of the
/// plugin ABI is freed on the other (abi_stable's types carry their own vtables).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookgate::cli::main()
}
