use std::process::ExitCode;

fn main() -> ExitCode {
    nnc::cli::main()
}
