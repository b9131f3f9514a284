//! `coffre-server`: the daemon and its admin commands.
//!
//! Every module is private; what other crates use (the binary, the
//! end-to-end tests, the benches) is the list of `pub use` below, grouped by
//! what it is for:
//!
//! - [`serve`]: the daemon's injectable entry point (a QUIC endpoint, a
//!   store, [`Limits`], a shutdown future); `coffre-server run` and the tests
//!   both call it, with an [`Identity`] (the self-signed certificate clients
//!   pin) and [`TransportLimits`].
//! - [`serve_dashboard`]: the board's web page and `/metrics` over HTTP,
//!   beside the daemon (`run --dashboard`); the tests call it too, and render
//!   the page alone ([`render_page`]) from the usage report ([`Row`]), or
//!   with the history's charts ([`render_page_with`], [`Charts`]).
//! - Maintenance as the nightly task runs it: [`night`], [`collect_garbage`],
//!   [`plan_retention`] and [`apply_retention`], [`timed`] (records a run
//!   for `/metrics`).
//! - The data directory's configuration: [`DataDir`], [`Config`],
//!   [`StorageConfig`].
//! - The command line: [`Cli`] and [`run`] (what [`main`] calls), and
//!   [`move_packs`] (the `move-packs` command, which a test drives).
//!
//! - Alerts by mail and webhooks ([`Alerts`]): the daemon's watcher sends
//!   what cannot wait, its nightly run the digest; the tests send a digest
//!   through it too.
//!
//! Inside: `daemon`, `combiner`, `tls`, `dashboard/`, `usage` (the board's
//! report: rows, statuses, the board's order), `alerts/`, `history` (recording
//! the daily usage history), `forecast` ("full by"), `maintenance`, `retention`,
//! `config`, `cli`, and `commands/` with one module per subcommand.

// `outln!`, `out!` and `errln!`: what the commands print (coffre_core::console).
#[macro_use]
extern crate coffre_core;

mod alerts;
mod cli;
mod combiner;
mod commands;
mod config;
mod daemon;
mod dashboard;
mod forecast;
mod frontend;
mod history;
mod maintenance;
mod retention;
mod tls;
pub mod usage;

pub use alerts::Alerts;
pub use cli::Cli;
pub use commands::move_packs::run as move_packs;
pub use commands::run;
pub use config::{Config, DataDir, StorageConfig};
pub use daemon::{serve, Limits, HANDSHAKE_TIMEOUT, REQUEST_STALL, REVOCATION_POLL};
pub use dashboard::chart::Charts;
pub use dashboard::i18n::Lang;
pub use dashboard::listener::Limits as DashboardLimits;
pub use dashboard::page::{
    render as render_page, render_view as render_page_view, render_with as render_page_with,
};
pub use dashboard::view::View as PageView;
pub use dashboard::{
    bind as bind_dashboard, serve as serve_dashboard, serve_within as serve_dashboard_within,
};
pub use dashboard::{Options as DashboardOptions, Token as DashboardToken};
pub use frontend::start as start_frontend;
pub use maintenance::{collect_garbage, night, timed, Collected};
pub use retention::{apply as apply_retention, plan as plan_retention, Decision};
pub use tls::{Identity, TransportLimits};
pub use usage::{status as status_words, Row};

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs it, prints an error as one line.
pub fn main() -> ExitCode {
    owner_only_umask();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print as usual; a usage error is one line.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.to_string();
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let first = lines
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            // "the following required arguments were not provided:" names
            // them on the next line: keep it on the one line.
            let reason = match (first.ends_with(':'), lines.next()) {
                (true, Some(next)) => format!("{first} {next}"),
                _ => first.to_string(),
            };
            errln!("coffre-server: error: {reason} (see --help)");
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
            errln!("coffre-server: error: {e:#}");
            if e.downcast_ref::<commands::verify::DamageFound>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Every file and folder this process creates is its user's only (umask
/// 077), whatever umask it was started with: belt and braces beside the
/// explicit modes of `coffre_store::durable` (0600 files, 0700 folders), so
/// that a file created by some other path (a library's temporary file) is
/// private too.
fn owner_only_umask() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}
