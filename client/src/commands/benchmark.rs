//! `coffre benchmark`: MB/s of each stage of the hot path, on one core and on
//! all cores. The measured functions are `coffre_core::benchmark`'s, the same
//! ones the criterion benches in `benches/` measure.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use coffre_core::benchmark as bench;
use coffre_core::{Keys, MasterKey, Sealer};
use serde::Serialize;

use crate::cli::BenchmarkArgs;

/// One line of the result.
#[derive(Debug, Serialize)]
pub struct Row {
    /// What was measured.
    pub name: &'static str,
    /// Threads used.
    pub threads: usize,
    /// Throughput, 10^6 bytes per second of input.
    pub mb_per_s: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    cores: usize,
    data_mib: usize,
    results: Vec<Row>,
}

/// The stages, in the order of the backup path.
const STAGES: &[(&str, &str)] = &[
    ("chunk", "FastCDC cut points (keyed gear table)"),
    ("chunk+id", "streaming chunker + keyed BLAKE3 id"),
    ("id", "keyed BLAKE3"),
    ("compress text", "zstd level 3 on text-like data"),
    (
        "compress random",
        "incompressible data: cheap probe, stored raw",
    ),
    ("encrypt", "XChaCha20-Poly1305"),
    ("whole path text", "chunk, id, compress, pad, encrypt: text"),
    (
        "whole path random",
        "chunk, id, compress, pad, encrypt: photos",
    ),
];

struct Data {
    text: Vec<u8>,
    random: Vec<u8>,
}

/// Runs `op` on `threads` threads at once until `seconds` have passed; each call
/// processes `bytes` bytes. Returns MB/s over all threads.
fn measure<F>(threads: usize, seconds: f64, bytes: usize, op: F) -> f64
where
    F: Fn(usize) + Sync,
{
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let calls: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let op = &op;
                s.spawn(move || {
                    let mut n = 0;
                    while n == 0 || start.elapsed() < budget {
                        op(t);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("benchmark thread panicked"))
            .sum()
    });
    (calls * bytes) as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn stage(name: &str, threads: usize, seconds: f64, keys: &Keys, data: &Data) -> f64 {
    let (text, random) = (&data.text[..], &data.random[..]);
    match name {
        "chunk" => measure(threads, seconds, random.len(), |_| {
            std::hint::black_box(bench::chunk(keys, random));
        }),
        "chunk+id" => measure(threads, seconds, random.len(), |_| {
            std::hint::black_box(bench::chunk_and_id(keys, random));
        }),
        "id" => measure(threads, seconds, random.len(), |_| {
            std::hint::black_box(bench::id(keys, random));
        }),
        "compress text" | "compress random" => {
            let d = if name == "compress text" {
                text
            } else {
                random
            };
            let sealers: Vec<_> = (0..threads)
                .map(|_| std::sync::Mutex::new(Sealer::new(3)))
                .collect();
            measure(threads, seconds, d.len(), |t| {
                std::hint::black_box(bench::compress(&mut sealers[t].lock().unwrap(), d));
            })
        }
        "encrypt" => {
            let bufs: Vec<_> = (0..threads)
                .map(|_| std::sync::Mutex::new(random.to_vec()))
                .collect();
            measure(threads, seconds, random.len(), |t| {
                bench::encrypt(keys, &mut bufs[t].lock().unwrap())
            })
        }
        "whole path text" | "whole path random" => {
            let d = if name == "whole path text" {
                text
            } else {
                random
            };
            // Eight files, fed four times per pipeline run: a steady state,
            // as in a backup of gigabytes. One pipeline uses all `threads` itself.
            let files: Vec<&[u8]> = d.chunks(d.len().div_ceil(8)).collect();
            measure(1, seconds, 4 * d.len(), |_| {
                std::hint::black_box(bench::whole_path(keys, threads, &files, 4));
            })
        }
        other => unreachable!("unknown stage {other}"),
    }
}

/// Runs `coffre benchmark`.
pub fn run(args: &BenchmarkArgs) -> Result<()> {
    if !(args.seconds > 0.0 && args.seconds <= 600.0) {
        bail!("--seconds must be between 0 and 600, not {}", args.seconds);
    }
    if args.size == 0 || args.size > 4096 {
        bail!("--size must be between 1 and 4096 MiB, not {}", args.size);
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut thread_counts = if args.threads.is_empty() {
        vec![1, cores]
    } else {
        args.threads.clone()
    };
    if thread_counts.iter().any(|&t| t == 0 || t > 256) {
        bail!("--threads takes counts between 1 and 256");
    }
    thread_counts.dedup();
    for name in &args.only {
        if !STAGES.iter().any(|(s, _)| s == name) {
            let known: Vec<_> = STAGES.iter().map(|(s, _)| *s).collect();
            bail!(
                "unknown stage {name:?} in --only; the stages are: {}",
                known.join(", ")
            );
        }
    }

    let keys = Keys::derive(&MasterKey::generate()?);
    let n = args.size << 20;
    let data = Data {
        text: bench::text_bytes(n, 1),
        random: bench::random_bytes(n, 2),
    };

    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(out, "coffre benchmark: {} MiB in memory, {cores} cores, {} s per figure, MB/s = 10^6 bytes/s", args.size, args.seconds)?;
        write!(out, "{:<19}", "stage")?;
        for t in &thread_counts {
            write!(
                out,
                "{:>14}",
                format!("{t} thread{}", if *t == 1 { "" } else { "s" })
            )?;
        }
        writeln!(out, "   what")?;
    }
    let mut results = Vec::new();
    for (name, what) in STAGES {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == name) {
            continue;
        }
        if !args.json {
            write!(out, "{name:<19}")?;
            out.flush()?;
        }
        for &threads in &thread_counts {
            let mb_per_s = stage(name, threads, args.seconds, &keys, &data);
            if !args.json {
                write!(out, "{:>14}", format!("{mb_per_s:.0} MB/s"))?;
                out.flush()?;
            }
            results.push(Row {
                name,
                threads,
                mb_per_s: (mb_per_s * 10.0).round() / 10.0,
            });
        }
        if !args.json {
            writeln!(out, "   {what}")?;
        }
    }
    if args.json {
        serde_json::to_writer_pretty(
            &mut out,
            &Report {
                cores,
                data_mib: args.size,
                results,
            },
        )?;
        writeln!(out)?;
    }
    Ok(())
}
