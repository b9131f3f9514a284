//! Throughput over an emulated association line: the real daemon and the
//! real client's connection, with a `coffre-wan` relay between them.
//! Incompressible 1 MiB blobs are put with IN_FLIGHT requests at a time
//! (the backup's `uploads`), committed, then read back with as many (the
//! restore's read-ahead). Reports the payload rate and how much of the
//! line it used (bytes on the wire, IP and UDP headers included, over the
//! line's rate).
//!
//! `cargo run --release -p coffre-benches --example wan -- "LINE" [MIB] [IN_FLIGHT]`
//! e.g. `-- "vdsl loss=1%" 60 8` (LINE as `coffre-wan --help` describes it).

use std::sync::Arc;
use std::time::Instant;

use coffre_client::Remote;
use coffre_core::{benchmark, BlobKind, ChunkId, Keys, Manifest, MasterKey, Sealer, Timestamp};
use coffre_server::{serve, Identity, Limits, TransportLimits};
use coffre_store::{Role, Store};
use coffre_wan::{Profile, Relay};

#[cfg(not(windows))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The share of a line's capacity these wire bytes filled in `secs`.
fn share(wire_bytes: u64, packets: u64, secs: f64, rate_bps: u64) -> String {
    if rate_bps == 0 {
        return "no limit".into();
    }
    let bits = (wire_bytes + 28 * packets) as f64 * 8.0;
    format!("{:.1}% of the line", 100.0 * bits / secs / rate_bps as f64)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let line = args.next().unwrap_or_else(|| "vdsl".into());
    let profile = Profile::parse(&line).unwrap_or_else(|e| panic!("{e}"));
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(40);
    let in_flight: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::create(dir.path()).unwrap());
    store.add_subscriber("bench", u64::MAX / 2, None).unwrap();
    let secret = store.add_device("bench", "pc", Role::Backup).unwrap();
    let identity = Identity::generate().unwrap();
    let endpoint = quinn::Endpoint::server(
        identity.server_config(&TransportLimits::default()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let server_addr = endpoint.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(endpoint, store.clone(), Limits::default(), async {
        let _ = stopped.await;
    }));
    let relay = Relay::spawn(server_addr, profile.clone()).unwrap();

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
        Remote::connect(&relay.addr().to_string(), identity.fingerprint(), secret)
            .await
            .unwrap(),
    );
    let before = relay.counters();
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
    let after = relay.counters();
    let up = share(
        after.up.bytes - before.up.bytes,
        after.up.packets - before.up.packets,
        put,
        profile.up.rate_bps,
    );
    let controller = |r: &Remote| {
        r.congestion()
            .into_any()
            .downcast::<coffre_transport::Line>()
            .map(|l| format!("{:?}", l.losses()))
            .unwrap_or_else(|_| "another controller".into())
    };
    eprintln!(
        "client's controller: (random, congestion) losses {}",
        controller(&remote)
    );
    let lost_up = after.up.lost + after.up.queue_full - before.up.lost - before.up.queue_full;
    let manifest = Manifest::bare("pc", Timestamp::now(), ids.clone())
        .seal(&keys)
        .unwrap();
    remote.commit(manifest).await.unwrap();

    let before = relay.counters();
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
    let after = relay.counters();
    let down = share(
        after.down.bytes - before.down.bytes,
        after.down.packets - before.down.packets,
        get,
        profile.down.rate_bps,
    );
    let lost_down =
        after.down.lost + after.down.queue_full - before.down.lost - before.down.queue_full;
    println!(
        "{line:?}, {mib} MiB, {in_flight} in flight: up {:.2} MB/s ({up}, {lost_up} packets dropped) | down {:.2} MB/s ({down}, {lost_down} dropped)",
        bytes as f64 / put / 1e6,
        bytes as f64 / get / 1e6,
    );
    Arc::try_unwrap(remote).unwrap().close().await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
