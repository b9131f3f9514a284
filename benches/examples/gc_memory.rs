//! Memory and time of garbage collection on a store with many chunks:
//!
//! ```text
//! cargo run --release -p coffre-benches --example gc_memory -- build DIR CHUNKS SNAPSHOTS
//! cargo run --release -p coffre-benches --example gc_memory -- gc DIR [--dry-run]
//! ```
//!
//! `build` makes a data directory with CHUNKS small chunks, 500 per pack as with
//! real chunk sizes (through the real store: put, seal, commit), and SNAPSHOTS snapshots (the first lists every
//! chunk, the others about 80 % of them), then removes the first snapshot, so
//! that a tenth of the chunks is garbage. `gc` (a
//! fresh process, so its peak is the collection's own) collects with no
//! grace period and a 5 % repack threshold (so the packs are rewritten too) and prints the report, the time and the process's peak
//! resident memory (VmHWM, Linux). The mark never holds the chunk set: its
//! memory follows the number of snapshots, not of chunks.

use std::path::Path;
use std::time::Instant;

use coffre_core::blob::BlobKind;
use coffre_core::{ChunkId, Keys, Manifest, MasterKey, Sealer, Timestamp};
use coffre_store::{GcOptions, Role, Store};

#[cfg(not(windows))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["build", dir, chunks, snapshots] => build(
            Path::new(dir),
            chunks.parse().expect("CHUNKS"),
            snapshots.parse().expect("SNAPSHOTS"),
        ),
        ["gc", dir] => gc(Path::new(dir), false),
        ["gc", dir, "--dry-run"] => gc(Path::new(dir), true),
        _ => {
            eprintln!("usage: gc_memory build DIR CHUNKS SNAPSHOTS | gc_memory gc DIR [--dry-run]");
            std::process::exit(2);
        }
    }
}

fn build(dir: &Path, chunks: u64, snapshots: u64) {
    let started = Instant::now();
    let store = Store::create(dir).expect("create the store");
    store.add_subscriber("big", u64::MAX / 4, None).unwrap();
    let secret = store.add_device("big", "pc", Role::Backup).unwrap();
    let s = store.authenticate(&secret).unwrap();
    let keys = Keys::derive(&MasterKey::from_bytes([9; 32]));
    let mut sealer = Sealer::new(1);
    let mut pack = store.open_pack(&s);
    let mut ids = Vec::with_capacity(chunks as usize);
    for i in 0..chunks {
        let data = i.to_le_bytes();
        let id = ChunkId::compute(&keys, &data);
        let blob = sealer.seal(&keys, BlobKind::Data, &id, &data).unwrap();
        store.put_chunk(&s, &mut pack, &id, &blob).unwrap();
        ids.push(id);
        // A pack of real chunks (64 KiB to 1 MiB) holds a few hundred.
        if i % 500 == 499 {
            store.seal_pack(&s, &mut pack).unwrap();
        }
    }
    store.seal_pack(&s, &mut pack).unwrap();
    ids.sort();
    let mut first = None;
    for k in 0..snapshots {
        // The first lists every chunk; the others leave out a tenth that
        // only the first has, and another tenth each.
        let listed: Vec<ChunkId> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| k == 0 || (*i % 10 != 0 && !(*i as u64 / 10 + k).is_multiple_of(10)))
            .map(|(_, id)| *id)
            .collect();
        let manifest = {
            let time = Timestamp {
                secs: 1_795_399_200 + k as i64 * 86_400,
                nanos: 0,
            };
            let logical = listed.len() as u64 * 8;
            let mut m = Manifest::bare("pc", time, listed);
            m.public.logical_bytes = logical;
            m.public.file_count = 1;
            m
        }
        .seal(&keys)
        .unwrap();
        let id = store.commit_snapshot(&s, &mut pack, &manifest).unwrap();
        first.get_or_insert(id);
    }
    store.end_session(&s).unwrap();
    if let Some(first) = first {
        store.remove_snapshot("big", &first).unwrap();
    }
    println!(
        "built {chunks} chunks, {snapshots} snapshots (the first removed) in {:.1} s; peak memory of the build {} MB",
        started.elapsed().as_secs_f64(),
        peak_mb()
    );
}

fn gc(dir: &Path, dry_run: bool) {
    let store = Store::open(dir).expect("open the store");
    let started = Instant::now();
    let r = store
        .gc(
            "big",
            &GcOptions {
                grace_secs: 0,
                repack_threshold: 0.05,
                dry_run,
            },
        )
        .unwrap();
    println!(
        "gc: {} chunks, {} snapshots, {} deleted, {} packs repacked, {:.1} s, freed {} bytes, peak memory {} MB",
        r.chunks,
        r.snapshots,
        r.deleted_chunks,
        r.packs_repacked,
        started.elapsed().as_secs_f64(),
        r.used_before - r.used_after,
        peak_mb()
    );
}

fn peak_mb() -> u64 {
    coffre_testkit::peak_rss_mb()
}
