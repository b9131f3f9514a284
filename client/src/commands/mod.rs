//! One module per subcommand.

pub mod benchmark;

use crate::cli::{Cli, Command};

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Benchmark(args) => benchmark::run(&args),
    }
}
