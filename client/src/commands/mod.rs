//! One module per subcommand.

pub mod backup;
pub mod benchmark;
pub mod browse;
pub mod check;
pub mod demo;
pub mod dump;
pub mod enrol;
pub mod key;
pub mod restore;
pub mod schedule;
pub mod status;

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::config::default_config_path;

/// The process exit status of a command that did not fail outright.
pub type Status = u8;

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> Result<Status> {
    let config = match &cli.config {
        Some(p) => p.clone(),
        None if matches!(cli.command, Command::Benchmark(_) | Command::Demo(_)) => PathBuf::new(),
        None => default_config_path()?,
    };
    if matches!(
        cli.command,
        Command::Snapshots(_) | Command::Ls(_) | Command::Find(_) | Command::Diff(_)
    ) {
        // A listing piped into `head` ends when `head` has read enough.
        coffre_core::console::stop_when_unread();
    }
    // The bandwidth limits of the command line, for every connection of the run.
    crate::limits::set_options(match &cli.command {
        Command::Backup(a) => a.limits.options(),
        Command::Restore(a) => a.limits.options(),
        Command::Dump(a) => a.limits.options(),
        Command::Check(a) => a.limits.options(),
        _ => Default::default(),
    });
    match cli.command {
        Command::Enrol(args) => enrol::run(&config, &args).map(|()| 0),
        Command::Backup(args) => backup::run(&config, &args),
        Command::Snapshots(args) => browse::snapshots(&config, &args).map(|()| 0),
        Command::Ls(args) => browse::ls(&config, &args).map(|()| 0),
        Command::Find(args) => browse::find(&config, &args).map(|()| 0),
        Command::Diff(args) => browse::diff(&config, &args).map(|()| 0),
        Command::Restore(args) => restore::run(&config, &args),
        Command::Dump(args) => dump::run(&config, &args).map(|()| 0),
        Command::Check(args) => check::run(&config, &args),
        Command::Status(args) => status::run(&config, &args).map(|()| 0),
        Command::Forget(args) => browse::forget(&config, &args).map(|()| 0),
        Command::Key(cmd) => key::run(&config, &cmd).map(|()| 0),
        Command::Schedule(cmd) => schedule::run(&config, &cmd).map(|()| 0),
        Command::Benchmark(args) => benchmark::run(&args).map(|()| 0),
        Command::Demo(args) => demo::run(&args).map(|()| 0),
    }
}
