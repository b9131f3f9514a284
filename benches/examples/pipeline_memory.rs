//! Peak memory of the pipeline on one very large file, streamed from a
//! generator (no disk): `cargo run --release -p coffre-benches --example
//! pipeline_memory -- [MIB] [THREADS]` prints throughput and the process's peak
//! resident memory (VmHWM, Linux). The input never exists in memory whole.

use std::io::{self, Read};
use std::time::Instant;

use coffre_core::benchmark::Rng;
use coffre_core::pipeline::{self, Config, Input, SeenSet};
use coffre_core::{Keys, MasterKey};

/// jemalloc: the hot path hands megabyte buffers from thread to thread and
/// the network tasks free what blocking threads allocated. glibc turned that
/// into page faults (the backup ran 4× slower); mimalloc kept freed blocks in
/// per-thread caches (1.2 GB peak for a restore). jemalloc's arenas did
/// neither (docs/performance.md, "Allocator").
#[cfg(not(windows))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `left` pseudo-random bytes, half of each 64 KiB block compressible text-like
/// runs, generated as they are read.
struct Generated {
    left: u64,
    rng: Rng,
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out.len().min(self.left as usize) & !7;
        let n = if n == 0 {
            out.len().min(self.left as usize)
        } else {
            n
        };
        for (i, word) in out[..n].chunks_mut(8).enumerate() {
            let v = if (i / 1024) % 2 == 0 {
                self.rng.next_u64()
            } else {
                0x2065_7274_6f76_2061
            };
            word.copy_from_slice(&v.to_le_bytes()[..word.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn peak_rss_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        })
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or("unknown".into(), |k| format!("{} MiB", k / 1024))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4096);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let keys = Keys::derive(&MasterKey::from_bytes([1; 32]));
    let input = Input {
        reader: Box::new(Generated {
            left: mib << 20,
            rng: Rng::new(7),
        }),
        size_hint: None,
    };
    let start = Instant::now();
    let mut sent = 0u64;
    let totals = pipeline::run::<_, coffre_core::Error, _>(
        &keys,
        &Config::with_threads(threads),
        std::iter::once(Ok(input)),
        &SeenSet::default(),
        |ev| {
            if let pipeline::Event::Chunk { blob: Some(b), .. } = ev {
                sent += b.len() as u64;
            }
            Ok(())
        },
    )
    .expect("pipeline");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "one {mib} MiB file, {threads} threads: {:.0} MB/s, {} chunks, {:.0} MiB of blobs, peak resident memory {}",
        totals.bytes_read as f64 / secs / 1e6,
        totals.chunks,
        sent as f64 / 1048576.0,
        peak_rss_mib()
    );
}
