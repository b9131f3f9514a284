//! The synthetic national store, as pure arithmetic: which subscriber owns
//! which device, how many chunks each device has, which of them each night's
//! snapshot lists, and the bytes of each chunk. Populate and the latency
//! phase both derive everything from here, so the measuring process needs
//! nothing from the populating one but the data directory and the secrets.
//!
//! Each device owns `chunks / devices` chunks (the remainder to the first
//! devices). Night 0 uploads half of them, the other nights the rest evenly,
//! so a night's upload is small beside the device's data as in a real
//! incremental backup. Snapshot `n` lists the device's chunks from `lo(n)`
//! to `hi(n)`: it also drops 1 % of the device's oldest chunks each night
//! (files deleted), so that once retention removes old snapshots the
//! garbage collection has real garbage to find.

use coffre_core::blob::BlobKind;
use coffre_core::{ChunkId, Keys, Manifest, MasterKey, Sealer, Timestamp};

/// The store's clock at night 0 (2027-01-15 08:00 UTC). Night `n` is
/// `START + n` days; the measuring process runs the day after the last.
pub const START: i64 = 1_800_000_000;

/// The size of the simulated store.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub subscribers: u64,
    pub devices: u64,
    pub snapshots: u64,
    pub chunks: u64,
}

impl Shape {
    /// The subscriber of global device `d`: devices are dealt out in turn,
    /// so every subscriber has `devices / subscribers` of them (or one more).
    pub fn subscriber_of(&self, d: u64) -> u64 {
        d % self.subscribers
    }

    /// Subscriber `s`'s name.
    pub fn subscriber_name(s: u64) -> String {
        format!("s{s:05}")
    }

    /// Global device `d`'s name within its subscriber.
    pub fn device_name(d: u64) -> String {
        format!("pc{d:06}")
    }

    /// How many chunks device `d` owns in all.
    pub fn device_chunks(&self, d: u64) -> u64 {
        self.chunks / self.devices + u64::from(d < self.chunks % self.devices)
    }

    /// The device's chunks listed by snapshot `n`: `lo(n)..hi(n)`.
    pub fn listed(&self, d: u64, n: u64) -> std::ops::Range<u64> {
        let total = self.device_chunks(d);
        let half = total.div_ceil(2);
        let last = self.snapshots.saturating_sub(1).max(1);
        let hi = half + (total - half) * n.min(last) / last;
        // About 1 % of the device's data deleted a night.
        let lo = total * n.min(last) / 100;
        lo..hi
    }

    /// The device's chunks first uploaded on night `n`.
    pub fn uploaded(&self, d: u64, n: u64) -> std::ops::Range<u64> {
        let start = if n == 0 { 0 } else { self.listed(d, n - 1).end };
        start..self.listed(d, n).end
    }

    /// The store's clock on night `n`.
    pub fn night_time(n: u64) -> i64 {
        START + n as i64 * 86_400
    }
}

/// A subscriber's keys (each structure has its own master key).
pub fn keys_of(s: u64) -> Keys {
    let mut bytes = [7u8; 32];
    bytes[..8].copy_from_slice(&s.to_le_bytes());
    Keys::derive(&MasterKey::from_bytes(bytes))
}

/// The cleartext of chunk `i` of device `d`: 16 bytes, unique per device
/// and index. Tiny on purpose: the catalogue row is the same size whatever
/// the chunk's; the disk only holds the packs' few bytes.
fn cleartext(d: u64, i: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&d.to_le_bytes());
    b[8..].copy_from_slice(&i.to_le_bytes());
    b
}

/// Chunk `i` of device `d`'s id under its subscriber's keys.
pub fn chunk_id(keys: &Keys, d: u64, i: u64) -> ChunkId {
    ChunkId::compute(keys, &cleartext(d, i))
}

/// Chunk `i` of device `d`: its id and its real sealed blob (compressed,
/// padded, encrypted as the client does).
pub fn chunk_blob(keys: &Keys, sealer: &mut Sealer, d: u64, i: u64) -> (ChunkId, Vec<u8>) {
    let data = cleartext(d, i);
    let id = ChunkId::compute(keys, &data);
    let blob = sealer
        .seal(keys, BlobKind::Data, &id, &data)
        .expect("seal a blob");
    (id, blob)
}

/// Device `d`'s manifest for snapshot `n`, sealed: lists `listed(d, n)`,
/// made at `time` (the PC's clock; the server dates it by its receipt).
pub fn manifest(shape: &Shape, keys: &Keys, d: u64, n: u64, time: i64) -> Vec<u8> {
    let ids: Vec<ChunkId> = shape.listed(d, n).map(|i| chunk_id(keys, d, i)).collect();
    let count = ids.len() as u64;
    let mut m = Manifest::bare(
        &Shape::device_name(d),
        Timestamp {
            secs: time,
            nanos: 0,
        },
        ids,
    );
    // What the listed chunks stand for at the real average chunk size.
    m.public.logical_bytes = count << 20;
    m.public.file_count = count;
    m.seal(keys).expect("seal a manifest")
}
