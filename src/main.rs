//! The `sweep` binary: parse the command line, run the command, map failures to exit codes
//! (0 success, 1 a run or runtime failure, 2 bad usage or bad input).

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = sweep::cli::parse();
    // A sweep goes on when its output's reader goes away; a command that only prints ends
    // quietly, as Unix tools do.
    if !cli.command.outlives_its_reader() {
        sweep::util::end_on_broken_pipe();
    }
    match sweep::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // Errors quote the user's input (a tag, a file name): escape sequences in it are shown,
            // not run by the terminal.
            sweep::errln!("error: {}", sweep::util::terminal_safe(&sweep::util::error_chain(&err), true));
            ExitCode::from(err.exit_code())
        }
    }
}
