//! Sharing the office's line: a coffre backup (the `Line` controller)
//! beside another bulk flow that uses Cubic, the loss-based controller of
//! TCP (Linux's default) and of QUIC stacks, through one emulated line.
//! Both start together and send for SECONDS; each one's payload rate is
//! measured at its receiver.
//!
//! `cargo run --release -p coffre-benches --example wan_share -- "LINE" [SECONDS]`
//! e.g. `-- "up=20mbit down=100mbit rtt=40ms queue=200ms loss=0.1%" 30`.
//! Fair sharing is about half each; `Line` must neither starve the other
//! flow (as BBRv1 does in a deep queue) nor be starved by it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffre_client::{client_config, Remote};
use coffre_core::{benchmark, BlobKind, ChunkId, Keys, MasterKey, Sealer};
use coffre_server::{serve, Identity, Limits, TransportLimits};
use coffre_store::{Role, Store};
use coffre_wan::{Profile, Relay};

#[cfg(not(windows))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let line = args.next().unwrap_or_else(|| "vdsl-0.1".into());
    let profile = Profile::parse(&line).unwrap_or_else(|e| panic!("{e}"));
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);

    // The coffre server.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::create(dir.path()).unwrap());
    store.add_subscriber("bench", u64::MAX / 2, None).unwrap();
    let secret = store.add_device("bench", "pc", Role::Backup).unwrap();
    let identity = Identity::generate().unwrap();
    let server = quinn::Endpoint::server(
        identity.server_config(&TransportLimits::default()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let server_addr = server.local_addr().unwrap();
    tokio::spawn(serve(
        server,
        store.clone(),
        Limits::default(),
        std::future::pending(),
    ));

    // The other flow's receiver: a QUIC sink that counts what it reads.
    let mut sink_config = identity.server_config(&TransportLimits::default()).unwrap();
    sink_config.transport_config(Arc::new(cubic()));
    let sink = quinn::Endpoint::server(sink_config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let sink_addr = sink.local_addr().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let r = received.clone();
    tokio::spawn(async move {
        while let Some(incoming) = sink.accept().await {
            let r = r.clone();
            tokio::spawn(async move {
                let conn = incoming.await.unwrap();
                while let Ok((_, mut recv)) = conn.accept_bi().await {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(Some(n)) = recv.read(&mut buf).await {
                        r.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            });
        }
    });

    let relay = Relay::spawn_routes(
        &[
            ("127.0.0.1:0".parse().unwrap(), server_addr),
            ("127.0.0.1:0".parse().unwrap(), sink_addr),
        ],
        profile.clone(),
    )
    .unwrap();

    let keys = Keys::derive(&MasterKey::from_bytes([3; 32]));
    let mut sealer = Sealer::new(3);
    let stop = Arc::new(AtomicBool::new(false));

    // The backup: 1 MiB blobs, 8 in flight, until told to stop.
    let remote = Arc::new(
        Remote::connect(
            &relay.addrs()[0].to_string(),
            identity.fingerprint(),
            secret,
        )
        .await
        .unwrap(),
    );
    let blobs: Vec<(ChunkId, Vec<u8>)> = (0..(secs as usize * 3).max(8))
        .map(|i| {
            let data = benchmark::random_bytes(1 << 20, i as u64);
            let id = ChunkId::compute(&keys, &data);
            (id, sealer.seal(&keys, BlobKind::Data, &id, &data).unwrap())
        })
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(blobs));
    let backed_up = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (remote, queue, stop, done) = (
            remote.clone(),
            queue.clone(),
            stop.clone(),
            backed_up.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let next = queue.lock().unwrap().pop();
                let Some((id, blob)) = next else { break };
                let len = blob.len() as u64;
                remote.put_chunk(&id, blob).await.unwrap();
                done.fetch_add(len, Ordering::Relaxed);
            }
        }));
    }

    // The other flow: one stream written as fast as Cubic lets it.
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut config = client_config(identity.fingerprint()).unwrap();
    config.transport_config(Arc::new(cubic()));
    client.set_default_client_config(config);
    let conn = client
        .connect(relay.addrs()[1], "coffre-server")
        .unwrap()
        .await
        .unwrap();
    let s = stop.clone();
    let other = tokio::spawn(async move {
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        let block = vec![7u8; 64 * 1024];
        while !s.load(Ordering::Relaxed) {
            if send.write_all(&block).await.is_err() {
                break;
            }
        }
        conn
    });

    // Let both settle for a fifth of the time, then measure.
    let settle = Duration::from_secs(secs) / 5;
    tokio::time::sleep(settle).await;
    let (a0, b0, t0) = (
        backed_up.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(secs) - settle).await;
    let (a1, b1, t1) = (
        backed_up.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
        Instant::now(),
    );
    stop.store(true, Ordering::Relaxed);
    let secs = (t1 - t0).as_secs_f64();
    let (a, b) = ((a1 - a0) as f64 / secs, (b1 - b0) as f64 / secs);
    let line_bytes = profile.up.rate_bps as f64 / 8.0;
    println!(
        "{line:?}: coffre (Line) {:.2} MB/s, other flow (Cubic) {:.2} MB/s: coffre has {:.0}% of the two, together {:.0}% of the line",
        a / 1e6,
        b / 1e6,
        100.0 * a / (a + b),
        100.0 * (a + b) / line_bytes,
    );
    for t in tasks {
        let _ = t.await;
    }
    other.await.unwrap().close(0u32.into(), b"done");
}

/// quinn's transport with Cubic (what TCP on Linux uses).
fn cubic() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()));
    t.stream_receive_window((16u32 << 20).into());
    t.receive_window((32u32 << 20).into());
    t.send_window(16 << 20);
    t
}
