//! Command-line arguments of `coffre` (names fixed by DESIGN.md, "The command line").

use clap::{Args, Parser, Subcommand};

/// coffre: encrypted, deduplicated backups of this PC to your association's server.
#[derive(Debug, Parser)]
#[command(name = "coffre", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure how fast this machine chunks, hashes, compresses and encrypts.
    ///
    /// Runs every stage of the backup hot path on generated data held in memory
    /// (no disk, no network), on one core and then on all cores, and prints the
    /// throughput in MB/s (10^6 bytes per second). Use it to size a backup
    /// window or to compare machines: a backup cannot go faster than the
    /// "whole path" line, and slower disks or networks only lower it.
    Benchmark(BenchmarkArgs),
}

/// Options of `coffre benchmark`.
#[derive(Debug, Args)]
pub struct BenchmarkArgs {
    /// Print JSON: {"results": [{"name", "threads", "mb_per_s"}, ...]}.
    #[arg(long)]
    pub json: bool,

    /// Seconds to spend on each measurement (longer is steadier).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub seconds: f64,

    /// Size of the generated data set, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub size: usize,

    /// Thread counts to measure, comma-separated [default: 1 and all cores].
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub threads: Vec<usize>,

    /// Measure only these stages, comma-separated (e.g. "chunk+id,whole path text").
    #[arg(long, value_delimiter = ',', value_name = "STAGE,...")]
    pub only: Vec<String>,
}
