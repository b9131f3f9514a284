//! The `coffre` client: the command a member PC runs and a technician types.
//!
//! One module per subcommand under `commands`; `cli` holds the argument
//! definitions, so `--help` is written in one place. Every module is private
//! to the crate: the binary calls [`main`], and the list below is what other
//! crates use (the end-to-end tests, the benches).

// `outln!`, `out!` and `errln!`: what the commands print (coffre_core::console).
#[macro_use]
extern crate coffre_core;

mod backup;
mod cli;
mod commands;
mod config;
mod copies;
mod credential;
mod display;
mod files_cache;
mod fsmeta;
mod hooks;
mod limits;
mod moved;
mod passphrase;
mod places;
mod progress;
mod remote;
mod restore;
mod run_record;
mod schedule;
mod session;
mod trees;
mod walk;

/// The command line, parsed: what [`run`] takes (the crash harness parses
/// its own arguments as `coffre`'s).
pub use cli::Cli;
/// Runs a parsed command line: what [`main`] does after parsing.
pub use commands::run;
/// The pinned QUIC connection to a server, and its errors: the tests and
/// the upload bench talk to a real daemon through it.
pub use remote::{client_config, Remote, RemoteError, ServerStatus};

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
            errln!("coffre: error: {reason} (see --help)");
            return ExitCode::from(2);
        }
    };
    match commands::run(cli) {
        Ok(status) => ExitCode::from(status),
        // `coffre dump … | head -c 100`: the reader had what it wanted.
        Err(e) if reader_gone(&e) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("coffre: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `e` comes from writing to a pipe whose reader has gone.
fn reader_gone(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(coffre_core::console::reader_gone)
}
