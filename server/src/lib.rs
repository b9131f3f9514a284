//! `coffre-server`: the daemon and its admin commands.
//!
//! - [`daemon::serve`]: the injectable entry point (a QUIC endpoint, a store, a
//!   shutdown future); `coffre-server run` and the tests both call it.
//! - [`dashboard::serve`]: the board's web page and `/metrics` over HTTP,
//!   beside the daemon (`run --dashboard`); the tests call it too.
//! - [`tls`]: the self-signed identity clients pin; [`config`]: the data directory.
//! - [`commands`]: one module per subcommand; [`cli`]: their arguments.

pub mod cli;
mod combiner;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod maintenance;
pub mod retention;
pub mod tls;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs it, prints an error as one line.
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
            eprintln!("coffre-server: error: {reason} (see --help)");
            return ExitCode::from(2);
        }
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("COFFRE_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffre-server: error: {e:#}");
            if e.downcast_ref::<commands::verify::DamageFound>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
