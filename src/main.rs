//! The `sweep` binary: parse the command line, run the command, map failures to exit codes
//! (0 success, 1 a run or runtime failure, 2 bad usage or bad input).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sweep::cli::Cli::parse();
    match sweep::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(sweep::cli::exit_code(&err))
        }
    }
}
