//! The `coffre` client: the command a member PC runs and a technician types.
//!
//! One module per subcommand under [`commands`]; [`cli`] holds the argument
//! definitions, so `--help` is written in one place.

pub mod backup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod display;
pub mod files_cache;
pub mod fsmeta;
pub mod passphrase;
pub mod progress;
pub mod remote;
pub mod restore;
pub mod run_record;
pub mod schedule;
pub mod session;
pub mod trees;
pub mod walk;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs the subcommand, and turns an error into one
/// line on stderr and a non-zero exit code.
pub fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print as usual; a usage error is one line.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.to_string();
            let reason = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("coffre: error: {reason} (see --help)");
            return ExitCode::from(2);
        }
    };
    match commands::run(cli) {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("coffre: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
