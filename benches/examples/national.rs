//! The national-scale simulation (issue 22): a store of many structures,
//! their PCs and a month of nightly snapshots each, built through the real
//! store (real sealed blobs, real packs, real manifests, real catalogue
//! rows), then measured as a national hoster's night has it.
//!
//! ```text
//! cargo build --release -p coffre-benches --example national
//! eatmydata target/release/examples/national populate DIR \
//!     --subscribers 10000 --devices 100000 --snapshots 30 --chunks 1000000 [--threads 4]
//! target/release/examples/national measure DIR [--sessions 1000] [--concurrency 200 | --per-minute 2000] [--nightly 0]
//! target/release/examples/national verify DIR [--turn K]     # the sampled verify alone
//! ```
//!
//! DIR defaults to `$COFFRE_BENCH_DIR/national` (or `/tmp/national`); the
//! data directory is `DIR/data`, the devices' secrets `DIR/secrets`.
//! `populate` is meant to run under `eatmydata` (no fsync: the same files
//! and rows in minutes; see `national/populate.rs`); `measure` is a fresh
//! process without it and prints a markdown table: request latencies of
//! `--sessions` device backups over loopback QUIC, either `--concurrency`
//! at a time as fast as they go (a stress test) or arriving `--per-minute`
//! whatever the server's pace (the night's load at a rate: 100,000 PCs over
//! 8 hours are 208 a minute),
//! the usage report and the board's page for every structure, the nightly
//! retention, garbage collection and sampled verify, the peak resident
//! memory of each phase and the catalogue's bytes per chunk. The results
//! and what they mean: docs/performance.md, "National scale (issue 22)".

#[path = "national/measure.rs"]
mod measure;
#[path = "national/populate.rs"]
mod populate;
#[path = "national/sessions.rs"]
mod sessions;
#[path = "national/shape.rs"]
mod shape;

use std::path::PathBuf;

#[cfg(not(windows))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let mut dir = None;
    let mut opts = std::collections::HashMap::new();
    while let Some(a) = args.next() {
        match a.strip_prefix("--") {
            Some(key) => {
                let value: u64 = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage(&format!("--{key} takes a number")));
                opts.insert(key.to_string(), value);
            }
            None => dir = Some(PathBuf::from(a)),
        }
    }
    let dir = dir.unwrap_or_else(|| {
        PathBuf::from(std::env::var("COFFRE_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))
            .join("national")
    });
    let opt = |k: &str, default: u64| opts.get(k).copied().unwrap_or(default);
    match command.as_str() {
        "populate" => populate::run(
            &dir,
            shape::Shape {
                subscribers: opt("subscribers", 10_000),
                devices: opt("devices", 100_000),
                snapshots: opt("snapshots", 30).max(1),
                chunks: opt("chunks", 1_000_000),
            },
            opt("threads", 4) as usize,
        ),
        "measure" => measure::run(
            &dir,
            opt("sessions", 1_000),
            match opts.get("per-minute") {
                Some(&n) => sessions::Arrivals::PerMinute(n),
                None => sessions::Arrivals::AtOnce(opt("concurrency", 200) as usize),
            },
            opt("nightly", 1) != 0,
        ),
        "verify" => measure::verify(&dir, opt("turn", 0)),
        _ => usage("give a command"),
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "national: {why}\nusage: national populate [DIR] [--subscribers N] [--devices N] \
         [--snapshots N] [--chunks N] [--threads N]\n       national measure [DIR] \
         [--sessions N] [--concurrency N | --per-minute N] [--nightly 0]\n       national verify [DIR] [--turn K]"
    );
    std::process::exit(2)
}
