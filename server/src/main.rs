//! The `hookgate` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    hookgate::cli::main()
}
