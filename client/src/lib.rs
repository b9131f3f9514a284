//! The `coffre` client: the command a member PC runs and a technician types.
//!
//! One module per subcommand under [`commands`]; [`cli`] holds the argument
//! definitions, so `--help` is written in one place.

pub mod cli;
pub mod commands;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs the subcommand, and turns an error into one
/// line on stderr and a non-zero exit code.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffre: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
