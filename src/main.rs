use std::process::ExitCode;

fn main() -> ExitCode {
    googlenet::cli::main()
}
