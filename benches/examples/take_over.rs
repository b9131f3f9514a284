//! How long a frontend takes to take over another one's subscribers from
//! the bucket alone (issue 22): a real Garage on loopback (single node, or
//! with `cluster` the three-node cluster of `coffre_testkit::garage`,
//! replication 3, each frontend through another node), frontend `fe1` filled through the real store (put, seal,
//! commit: real packs, manifests, key and account files in the bucket),
//! then frontend `fe2` runs `take_over("fe1")`, which is what
//! `coffre-server take-over --from fe1` calls.
//!
//! ```text
//! cargo run --release -p coffre-benches --example take_over -- \
//!     [SUBSCRIBERS=1000] [DEVICES=2] [SNAPSHOTS=5] [single|cluster]
//! ```
//!
//! Each device commits SNAPSHOTS snapshots of 20 small chunks in a pack of
//! its own, so a subscriber has DEVICES × SNAPSHOTS packs and manifests:
//! the take-over reads two ranges of each pack (its index) and each
//! manifest. It prints the time to fill, the time to take over, and the
//! objects read per second, from which a larger frontend's time follows
//! (the take-over's time goes into round trips to the bucket).

use std::sync::Arc;
use std::time::Instant;

use coffre_core::blob::BlobKind;
use coffre_core::{ChunkId, Keys, Manifest, MasterKey, Sealer, Timestamp};
use coffre_store::{PackStorage, Role, Store};
use coffre_testkit::garage;

#[cfg(not(windows))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let subscribers = number(0, 1000);
    let devices = number(1, 2);
    let snapshots = number(2, 5);
    let cluster = args.get(3).map(String::as_str) == Some("cluster");

    let (_garage, storage, storage2) = start_garage(cluster);
    let base =
        tempfile::tempdir_in(std::env::var("COFFRE_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))
            .unwrap();
    let fe1 = Arc::new(Store::create_with(&base.path().join("fe1"), &storage).unwrap());
    fe1.join_service("fe1", Some("fe1.example:7443")).unwrap();

    let started = Instant::now();
    fill(&fe1, subscribers, devices, snapshots);
    let filled = started.elapsed();
    drop(fe1);
    println!(
        "filled fe1: {subscribers} subscribers × {devices} devices × {snapshots} snapshots in {:.1} s",
        filled.as_secs_f64()
    );

    let fe2 = Store::create_with(&base.path().join("fe2"), &storage2).unwrap();
    fe2.join_service("fe2", Some("fe2.example:7443")).unwrap();
    let started = Instant::now();
    let taken = fe2.take_over("fe1").unwrap();
    let took = started.elapsed().as_secs_f64();
    let rebuilt: Vec<_> = taken.iter().filter_map(|t| t.rebuilt.as_ref()).collect();
    let failed = taken.len() - rebuilt.len();
    let packs: u64 = rebuilt.iter().map(|r| r.packs).sum();
    let manifests: u64 = rebuilt.iter().map(|r| r.snapshots).sum();
    // Per subscriber: the account and key files, two listings; per pack two
    // ranged reads; per manifest one read.
    let requests = rebuilt.len() as u64 * 4 + packs * 2 + manifests;
    println!(
        "take-over: {} subscribers ({failed} failed), {packs} packs, {manifests} snapshots in {took:.1} s \
         ({:.0} subscribers/s, about {:.0} bucket requests/s, {} threads)",
        rebuilt.len(),
        rebuilt.len() as f64 / took,
        requests as f64 / took,
        coffre_store::TAKE_OVER_THREADS
    );
    assert_eq!(failed, 0, "{taken:?}");
    assert_eq!(rebuilt.len(), subscribers);
}

/// The Garage, and the storage of each frontend (through two nodes of a
/// cluster).
fn start_garage(cluster: bool) -> (Box<dyn std::any::Any>, PackStorage, PackStorage) {
    if cluster {
        let c = garage::Cluster::start();
        let (one, two) = (c.storage(0, "bench"), c.storage(1, "bench"));
        (Box::new(c), one, two)
    } else {
        let g = garage::Garage::start();
        let storage = g.storage("bench");
        (Box::new(g), storage.clone(), storage)
    }
}

/// Fills `store` through its real data path: per device, SNAPSHOTS
/// commits of 20 new chunks each in a pack of their own.
fn fill(store: &Store, subscribers: usize, devices: usize, snapshots: usize) {
    let keys = Keys::derive(&MasterKey::from_bytes([7; 32]));
    let mut sealer = Sealer::new(1);
    let key_file = coffre_core::KeyFile::wrap(
        &MasterKey::from_bytes([7; 32]),
        b"bench",
        coffre_core::keyfile::KdfParams::INSECURE_FOR_TESTS,
    )
    .unwrap();
    for n in 0..subscribers {
        let name = format!("asso-{n:05}");
        store.add_subscriber(&name, 1 << 40, None).unwrap();
        for d in 0..devices {
            let device = format!("pc-{d}");
            let secret = store.add_device(&name, &device, Role::Backup).unwrap();
            let s = store.authenticate(&secret).unwrap();
            if d == 0 {
                store.put_key(&s, key_file.as_bytes()).unwrap();
            }
            let mut pack = store.open_pack(&s);
            for k in 0..snapshots {
                let mut ids = Vec::new();
                for c in 0..20u64 {
                    let data = [n as u64, d as u64, k as u64, c]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect::<Vec<u8>>();
                    let id = ChunkId::compute(&keys, &data);
                    let blob = sealer.seal(&keys, BlobKind::Data, &id, &data).unwrap();
                    store.put_chunk(&s, &mut pack, &id, &blob).unwrap();
                    ids.push(id);
                }
                ids.sort();
                let time = Timestamp {
                    secs: 1_795_399_200 + k as i64 * 86_400,
                    nanos: 0,
                };
                let manifest = Manifest::bare(&device, time, ids).seal(&keys).unwrap();
                store.commit_snapshot(&s, &mut pack, &manifest).unwrap();
            }
            store.end_session(&s).unwrap();
        }
        if n % 100 == 99 {
            eprintln!("  {} subscribers filled", n + 1);
        }
    }
}
