//! Upload throughput of the server over loopback QUIC: incompressible 1 MiB
//! blobs, sealed as real blobs, put by one client with many requests in flight,
//! then committed (so the figure includes pack writing and fsync); then the
//! same blobs read back with as many requests in flight (the restore path:
//! a ranged read of a pack per blob).
//!
//! `cargo run --release -p coffre-benches --example upload -- [MIB] [IN_FLIGHT] [garage]`
//! (defaults: 1024 MiB, 16, packs on the local disk). With `garage`, the packs
//! go to a single-node Garage started on loopback for the run (the `garage`
//! binary of `coffre_testkit::garage`). Client, server (and Garage) share this
//! machine's cores.

use std::sync::Arc;
use std::time::Instant;

use coffre_client::Remote;
use coffre_core::{benchmark, BlobKind, ChunkId, Keys, Manifest, MasterKey, Sealer, Timestamp};
use coffre_server::{serve, Identity, Limits, TransportLimits};
use coffre_store::{Role, Store};
use coffre_testkit::garage;

/// jemalloc: the hot path hands megabyte buffers from thread to thread and
/// the network tasks free what blocking threads allocated. glibc turned that
/// into page faults (the backup ran 4× slower); mimalloc kept freed blocks in
/// per-thread caches (1.2 GB peak for a restore). jemalloc's arenas did
/// neither (docs/performance.md, "Allocator").
#[cfg(not(windows))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let in_flight: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let garage = (args.next().as_deref() == Some("garage")).then(garage::Garage::start);
    let storage = garage
        .as_ref()
        .map_or(coffre_store::PackStorage::Local, |g| g.storage("bench"));

    let dir =
        tempfile::tempdir_in(std::env::var("COFFRE_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))
            .unwrap();
    let store = Arc::new(Store::create_with(dir.path(), &storage).unwrap());
    store.add_subscriber("bench", u64::MAX / 2, None).unwrap();
    let secret = store.add_device("bench", "pc", Role::Backup).unwrap();
    let identity = Identity::generate().unwrap();
    let endpoint = quinn::Endpoint::server(
        identity.server_config(&TransportLimits::default()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = endpoint.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(endpoint, store.clone(), Limits::default(), async {
        let _ = stopped.await;
    }));

    // Blobs prepared before timing: this measures the transport and the store.
    let keys = Keys::derive(&MasterKey::from_bytes([3; 32]));
    let mut sealer = Sealer::new(3);
    let blobs: Vec<(ChunkId, Vec<u8>)> = (0..mib)
        .map(|i| {
            let data = benchmark::random_bytes(1 << 20, i as u64);
            let id = ChunkId::compute(&keys, &data);
            (id, sealer.seal(&keys, BlobKind::Data, &id, &data).unwrap())
        })
        .collect();
    let bytes: usize = blobs.iter().map(|b| b.1.len()).sum();
    let ids: Vec<ChunkId> = blobs.iter().map(|b| b.0).collect();

    let remote = Arc::new(
        Remote::connect(&addr, identity.fingerprint(), secret)
            .await
            .unwrap(),
    );
    let start = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(blobs));
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let (remote, queue) = (remote.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap().pop();
                let Some((id, blob)) = next else { break };
                remote.put_chunk(&id, blob).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let put = start.elapsed().as_secs_f64();
    let manifest = {
        let mut m = Manifest::bare("pc", Timestamp::now(), ids.clone());
        m.public.logical_bytes = (mib << 20) as u64;
        m.public.file_count = 1;
        m
    }
    .seal(&keys)
    .unwrap();
    remote.commit(manifest).await.unwrap();
    let total = start.elapsed().as_secs_f64();

    // Read everything back, `in_flight` requests at a time.
    let start = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(ids));
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let (remote, queue) = (remote.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut read = 0usize;
            loop {
                let next = queue.lock().unwrap().pop();
                let Some(id) = next else { break };
                read += remote.chunk(&id).await.unwrap().len();
            }
            read
        }));
    }
    let mut read = 0;
    for t in tasks {
        read += t.await.unwrap();
    }
    assert_eq!(read, bytes, "every blob read back");
    let get = start.elapsed().as_secs_f64();
    println!(
        "{mib} blobs of 1 MiB ({:.0} MB), {in_flight} in flight, packs on {}: put {:.0} MB/s, \
         put + commit (packs stored) {:.0} MB/s, read back {:.0} MB/s",
        bytes as f64 / 1e6,
        storage.describe(),
        bytes as f64 / put / 1e6,
        bytes as f64 / total / 1e6,
        bytes as f64 / get / 1e6
    );
    Arc::try_unwrap(remote).unwrap().close().await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
