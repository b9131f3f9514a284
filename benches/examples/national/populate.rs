//! Fills a data directory with the national store through the store's real
//! API, as the daemon would: subscribers and devices enrolled, then night
//! after night each device authenticates, puts its new chunks (real sealed
//! blobs into a real pack), commits a real manifest and ends its session.
//! Several threads share one `Store`, as the daemon's blocking pool does.
//!
//! Run it under `eatmydata` (fsync made a no-op) to populate in minutes
//! rather than hours: every file and row is the same, only the flushes to
//! the disk are skipped. The measuring process runs without it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use coffre_core::Sealer;
use coffre_store::{ManualClock, PackStorage, Role, Store};

use crate::shape::{self, Shape};

/// Each structure's quota: 100 GB (the synthetic data uses far less).
const QUOTA: u64 = 100_000_000_000;

pub fn run(dir: &Path, shape: Shape, threads: usize) {
    let started = Instant::now();
    std::fs::create_dir_all(dir).expect("create the bench directory");
    let data = dir.join("data");
    let clock = Arc::new(ManualClock::new(Shape::night_time(0) - 3_600));
    let store = Arc::new(
        Store::create_with_clock(&data, &PackStorage::Local, clock.clone())
            .expect("create the store"),
    );
    // Keep one day fewer than the nights populated: the nightly run then
    // removes one snapshot per device, as every night does once a store is
    // in its steady state (each night's backup retires the oldest).
    let policy = format!("daily={}", shape.snapshots.saturating_sub(1).max(1));
    for s in 0..shape.subscribers {
        store
            .add_subscriber(&Shape::subscriber_name(s), QUOTA, Some(&policy))
            .expect("add a subscriber");
    }
    let secrets: Vec<[u8; 32]> = parallel(shape.devices, threads, |d| {
        store
            .add_device(
                &Shape::subscriber_name(shape.subscriber_of(d)),
                &Shape::device_name(d),
                Role::Backup,
            )
            .expect("add a device")
    });
    std::fs::write(dir.join("secrets"), secrets.concat()).expect("write the secrets");
    std::fs::write(
        dir.join("shape"),
        format!(
            "{} {} {} {}\n",
            shape.subscribers, shape.devices, shape.snapshots, shape.chunks
        ),
    )
    .expect("write the shape");
    eprintln!(
        "enrolled {} subscribers, {} devices in {:.0} s",
        shape.subscribers,
        shape.devices,
        started.elapsed().as_secs_f64()
    );

    for n in 0..shape.snapshots {
        let night = Instant::now();
        clock.set(Shape::night_time(n));
        let uploaded: Vec<u64> = parallel(shape.devices, threads, |d| {
            backup(&store, &shape, d, n, &secrets[d as usize])
        });
        eprintln!(
            "night {n}: {} chunks uploaded, {} snapshots, {:.0} s (total {:.0} s)",
            uploaded.iter().sum::<u64>(),
            shape.devices,
            night.elapsed().as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
    drop(store); // the last connection checkpoints the WAL into the file
    eprintln!(
        "populated in {:.0} s; catalogue {} bytes",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(data.join(coffre_store::CATALOG_FILE))
            .map(|m| m.len())
            .unwrap_or(0)
    );
}

/// Device `d`'s backup of night `n`: its new chunks, then its snapshot.
/// Returns how many chunks it uploaded.
fn backup(store: &Store, shape: &Shape, d: u64, n: u64, secret: &[u8; 32]) -> u64 {
    let keys = shape::keys_of(shape.subscriber_of(d));
    let mut sealer = Sealer::new(1);
    let s = store.authenticate(secret).expect("authenticate");
    let mut pack = store.open_pack(&s);
    let new = shape.uploaded(d, n);
    let count = new.end - new.start;
    for i in new {
        let (id, blob) = shape::chunk_blob(&keys, &mut sealer, d, i);
        store
            .put_chunk(&s, &mut pack, &id, &blob)
            .expect("put a chunk");
    }
    let manifest = shape::manifest(shape, &keys, d, n, Shape::night_time(n) + 60);
    store
        .commit_snapshot(&s, &mut pack, &manifest)
        .expect("commit");
    store.end_session(&s).expect("end the session");
    count
}

/// `f(i)` for `i` in `0..count` on `threads` threads, results in order.
fn parallel<T: Send>(count: u64, threads: usize, f: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let threads = threads.max(1) as u64;
    let mut parts: Vec<Vec<T>> = std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || (t..count).step_by(threads as usize).map(f).collect()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Interleave back into index order.
    let mut out = Vec::with_capacity(count as usize);
    let mut iters: Vec<_> = parts.iter_mut().map(|p| p.drain(..)).collect();
    'outer: loop {
        for it in &mut iters {
            match it.next() {
                Some(v) => out.push(v),
                None => break 'outer,
            }
        }
    }
    out
}
