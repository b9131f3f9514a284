//! The night window: many devices at once, each over its own QUIC
//! connection to the real daemon on loopback, doing what a nightly backup
//! does (has-chunks of its chunks in requests of 64, put of its new chunks,
//! commit of its manifest, list of its snapshots). Every request is timed
//! at the client, so a latency includes loopback QUIC and both ends' work.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use coffre_client::Remote;
use coffre_core::{ChunkId, Manifest, Sealer, Timestamp};
use coffre_proto::ErrorCode;

use crate::shape::{self, Shape};

/// New chunks per device in tonight's backup.
const NEW_CHUNKS: u64 = 8;
/// Ids per has-chunks request (the client's batch).
const HAS_BATCH: usize = 64;

/// Every request's latency, in seconds, by kind.
#[derive(Debug, Default)]
pub struct Latencies {
    pub connect: Vec<f64>,
    pub has_chunks: Vec<f64>,
    pub put: Vec<f64>,
    pub commit: Vec<f64>,
    pub list: Vec<f64>,
    /// Connections refused as busy (then tried again).
    pub busy: u64,
}

impl Latencies {
    fn merge(&mut self, other: Latencies) {
        self.connect.extend(other.connect);
        self.has_chunks.extend(other.has_chunks);
        self.put.extend(other.put);
        self.commit.extend(other.commit);
        self.list.extend(other.list);
        self.busy += other.busy;
    }
}

/// How the night window's PCs arrive.
#[derive(Debug, Clone, Copy)]
pub enum Arrivals {
    /// `n` PCs at once, each starting the next backup as soon as it is done
    /// (closed loop: as fast as the server lets them, a stress test).
    AtOnce(usize),
    /// One PC every `60 / n` seconds, whatever the server's pace (open
    /// loop: the night's load at a given rate; 100,000 PCs spread over 8
    /// hours are 208 a minute).
    PerMinute(u64),
}

/// Runs `sessions` device backups against the daemon at `addr`, arriving
/// as `arrivals` says. Devices are spread over the whole store.
pub async fn run(
    addr: &str,
    fingerprint: [u8; 32],
    shape: Shape,
    secrets: Arc<Vec<[u8; 32]>>,
    sessions: u64,
    arrivals: Arrivals,
) -> Latencies {
    let stride = (shape.devices / sessions.max(1)).max(1);
    let devices: Vec<u64> = (0..sessions.min(shape.devices))
        .map(|k| k * stride)
        .collect();
    let mut tasks = Vec::new();
    match arrivals {
        Arrivals::AtOnce(concurrency) => {
            let queue: Arc<Mutex<Vec<u64>>> =
                Arc::new(Mutex::new(devices.into_iter().rev().collect()));
            for _ in 0..concurrency {
                let (queue, secrets, addr) = (queue.clone(), secrets.clone(), addr.to_string());
                tasks.push(tokio::spawn(async move {
                    let mut lat = Latencies::default();
                    loop {
                        let next = queue.lock().unwrap().pop();
                        let Some(d) = next else { break };
                        night(&addr, fingerprint, &shape, d, secrets[d as usize], &mut lat).await;
                    }
                    lat
                }));
            }
        }
        Arrivals::PerMinute(rate) => {
            let start = tokio::time::Instant::now();
            let gap = std::time::Duration::from_secs_f64(60.0 / rate.max(1) as f64);
            for (k, d) in devices.into_iter().enumerate() {
                tokio::time::sleep_until(start + gap * k as u32).await;
                let (secrets, addr) = (secrets.clone(), addr.to_string());
                tasks.push(tokio::spawn(async move {
                    let mut lat = Latencies::default();
                    night(&addr, fingerprint, &shape, d, secrets[d as usize], &mut lat).await;
                    lat
                }));
            }
        }
    }
    let mut all = Latencies::default();
    for t in tasks {
        all.merge(t.await.expect("a session task"));
    }
    all
}

/// One device's nightly backup over its own connection.
async fn night(
    addr: &str,
    fingerprint: [u8; 32],
    shape: &Shape,
    d: u64,
    secret: [u8; 32],
    lat: &mut Latencies,
) {
    let keys = shape::keys_of(shape.subscriber_of(d));
    let mut sealer = Sealer::new(1);
    // A PC refused as busy (the daemon's handshake slots are full) tries
    // again a moment later, as the client's reconnection does.
    let remote = loop {
        let start = Instant::now();
        match Remote::connect(addr, fingerprint, secret).await {
            Ok(remote) => {
                lat.connect.push(start.elapsed().as_secs_f64());
                break remote;
            }
            Err(e) if e.code() == Some(ErrorCode::Busy) => {
                lat.busy += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("connect: {e}"),
        }
    };

    // What it has (the last snapshot's chunks) and tonight's new chunks.
    let known = shape.listed(d, shape.snapshots - 1);
    let first_new = shape.device_chunks(d);
    let mut ids: Vec<ChunkId> = known.map(|i| shape::chunk_id(&keys, d, i)).collect();
    let new: Vec<(ChunkId, Vec<u8>)> = (first_new..first_new + NEW_CHUNKS)
        .map(|i| shape::chunk_blob(&keys, &mut sealer, d, i))
        .collect();
    ids.extend(new.iter().map(|(id, _)| *id));

    for batch in ids.chunks(HAS_BATCH) {
        let t = Instant::now();
        remote.has_chunks(batch).await.expect("has-chunks");
        lat.has_chunks.push(t.elapsed().as_secs_f64());
    }
    for (id, blob) in new {
        let t = Instant::now();
        remote.put_chunk(&id, blob).await.expect("put");
        lat.put.push(t.elapsed().as_secs_f64());
    }
    let count = ids.len() as u64;
    let mut m = Manifest::bare(
        &Shape::device_name(d),
        Timestamp {
            secs: Shape::night_time(shape.snapshots) + 60,
            nanos: 0,
        },
        ids,
    );
    m.public.logical_bytes = count << 20;
    m.public.file_count = count;
    let manifest = m.seal(&keys).expect("seal the manifest");
    let t = Instant::now();
    remote.commit(manifest).await.expect("commit");
    lat.commit.push(t.elapsed().as_secs_f64());
    let t = Instant::now();
    remote.snapshots().await.expect("list");
    lat.list.push(t.elapsed().as_secs_f64());
    remote.close().await;
}

/// The `p`-th percentile (0..=100) of `v`, in milliseconds (nearest rank).
pub fn percentile_ms(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize - 1;
    v[rank.min(v.len() - 1)] * 1e3
}
