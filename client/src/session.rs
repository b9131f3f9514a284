//! An open session: this PC's installation, its keys, and an authenticated
//! connection to the server (its credential rolled), with the async runtime
//! that drives it.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use coffre_core::{ChunkId, Keys, Manifest};
use coffre_proto::SnapshotEntry;

use crate::config::Installation;
use crate::credential;
use crate::remote::Remote;

/// The async runtime of a command: the network runs on it, the hot path on
/// its own threads.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// An installation, connected.
#[derive(Debug)]
pub struct Session {
    /// Where this PC's configuration and state live.
    pub inst: Installation,
    /// The subscriber's keys.
    pub keys: Arc<Keys>,
    /// The connection.
    pub remote: Arc<Remote>,
    /// The runtime the connection lives on.
    pub rt: tokio::runtime::Runtime,
}

impl Session {
    /// Loads the installation at `config_path`, connects to its server and
    /// rolls its device credential (`credential.rs`).
    pub fn open(config_path: &Path) -> Result<Session> {
        let inst = Installation::load(config_path)?;
        let rt = runtime()?;
        let (remote, creds) = credential::connect(&inst, &rt)?;
        let keys = Arc::new(Keys::derive(&creds.master));
        Ok(Session {
            inst,
            keys,
            remote: Arc::new(remote),
            rt,
        })
    }

    /// Runs a future on the session's runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// This subscriber's snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        Ok(self.block_on(self.remote.snapshots())?)
    }

    /// A snapshot's manifest, decrypted.
    pub fn manifest(&self, id: &ChunkId) -> Result<Manifest> {
        let bytes = self.block_on(self.remote.manifest(id))?;
        Manifest::open(&self.keys, &bytes)
            .with_context(|| format!("reading snapshot {}", id.short()))
    }

    /// Several manifests, decrypted, fetched 8 at a time; in the order of `ids`.
    pub fn manifests(&self, ids: &[ChunkId]) -> Result<Vec<Manifest>> {
        let fetched = self.block_on(async {
            let permits = Arc::new(tokio::sync::Semaphore::new(8));
            let mut tasks = Vec::new();
            for id in ids {
                let (remote, permits, id) = (self.remote.clone(), permits.clone(), *id);
                tasks.push(tokio::spawn(async move {
                    let _p = permits.acquire().await;
                    remote.manifest(&id).await
                }));
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await);
            }
            out
        });
        ids.iter()
            .zip(fetched)
            .map(|(id, r)| {
                let bytes = r.map_err(|e| anyhow::anyhow!("fetch task failed: {e}"))??;
                Manifest::open(&self.keys, &bytes)
                    .with_context(|| format!("reading snapshot {}", id.short()))
            })
            .collect()
    }

    /// Resolves a snapshot argument: `latest`, or a unique prefix of an id.
    ///
    /// `latest` is the newest snapshot of `device` if given; otherwise of
    /// this device, or, when this device has never backed up (a technician's
    /// laptop), of the whole subscriber.
    pub fn resolve(&self, spec: &str, device: Option<&str>) -> Result<SnapshotEntry> {
        self.resolve_in(&self.snapshots()?, spec, device)
    }

    /// [`Session::resolve`] within an already fetched list. The server keeps
    /// times to the second; snapshots made within the same second (a quick
    /// unchanged rerun) are ordered by the nanoseconds of their manifests.
    pub fn resolve_in(
        &self,
        list: &[SnapshotEntry],
        spec: &str,
        device: Option<&str>,
    ) -> Result<SnapshotEntry> {
        let mut candidates = resolve(list, spec, device, &self.inst.config.device)?;
        if candidates.len() == 1 {
            return Ok(candidates.remove(0));
        }
        let ids: Vec<ChunkId> = candidates
            .iter()
            .map(|s| ChunkId::from_bytes(s.id))
            .collect();
        let times: Vec<_> = self
            .manifests(&ids)?
            .into_iter()
            .map(|m| m.public.time)
            .collect();
        let newest = (0..candidates.len())
            .max_by_key(|&i| (times[i], i))
            .expect("at least two candidates");
        Ok(candidates.swap_remove(newest))
    }

    /// Closes the connection cleanly.
    pub fn close(self) {
        let Session { remote, rt, .. } = self;
        if let Ok(remote) = Arc::try_unwrap(remote) {
            rt.block_on(remote.close());
        }
    }
}

/// The snapshots `spec` may name: exactly one for an id prefix; for
/// `latest`, every snapshot of the newest second (see [`Session::resolve`]),
/// in the server's order.
pub fn resolve(
    list: &[SnapshotEntry],
    spec: &str,
    device: Option<&str>,
    this_device: &str,
) -> Result<Vec<SnapshotEntry>> {
    let of = |d: &str| list.iter().filter(|s| s.device == d).collect::<Vec<_>>();
    if spec == "latest" {
        let candidates: Vec<&SnapshotEntry> = match device {
            Some(d) => of(d),
            None if !of(this_device).is_empty() => of(this_device),
            None => list.iter().collect(),
        };
        return match candidates.iter().map(|s| s.time).max() {
            Some(t) => Ok(candidates
                .into_iter()
                .filter(|s| s.time == t)
                .cloned()
                .collect()),
            None if list.is_empty() => bail!("there is no snapshot yet: run `coffre backup` first"),
            None => bail!(
                "device {:?} has no snapshot (see `coffre snapshots`)",
                device.unwrap_or(this_device)
            ),
        };
    }
    let prefix = spec.to_ascii_lowercase();
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{spec:?} is not a snapshot id: give `latest` or the first digits of an id shown by `coffre snapshots`");
    }
    let matches: Vec<&SnapshotEntry> = list
        .iter()
        .filter(|s| device.is_none_or(|d| s.device == d))
        .filter(|s| ChunkId::from_bytes(s.id).to_hex().starts_with(&prefix))
        .collect();
    match matches.as_slice() {
        [one] => Ok(vec![(*one).clone()]),
        [] => bail!("no snapshot id starts with {spec:?} (see `coffre snapshots`)"),
        many => bail!(
            "{} snapshots start with {spec:?}: give more digits (for instance {})",
            many.len(),
            many.iter()
                .take(3)
                .map(|s| ChunkId::from_bytes(s.id).to_hex()[..12].to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: u8, time: i64, device: &str) -> SnapshotEntry {
        let mut b = [0u8; 32];
        b[0] = id;
        SnapshotEntry {
            id: b,
            time,
            device: device.into(),
            logical_bytes: 0,
            file_count: 0,
        }
    }

    #[test]
    fn latest_prefers_this_device_then_the_subscriber() {
        let list = vec![snap(0x10, 5, "a"), snap(0x20, 9, "b"), snap(0x30, 7, "a")];
        assert_eq!(resolve(&list, "latest", None, "a").unwrap()[0].time, 7);
        assert_eq!(resolve(&list, "latest", None, "laptop").unwrap()[0].time, 9);
        assert_eq!(resolve(&list, "latest", Some("a"), "b").unwrap()[0].time, 7);
        assert!(resolve(&list, "latest", Some("zz"), "a").is_err());
        assert!(resolve(&[], "latest", None, "a")
            .unwrap_err()
            .to_string()
            .contains("no snapshot yet"));
    }

    #[test]
    fn latest_within_one_second_gives_every_candidate() {
        let list = vec![snap(0x10, 5, "a"), snap(0x20, 9, "a"), snap(0x30, 9, "a")];
        let c = resolve(&list, "latest", None, "a").unwrap();
        assert_eq!(c.len(), 2, "both snapshots of second 9 are candidates");
    }

    #[test]
    fn prefixes_must_be_unique_hex() {
        let list = vec![snap(0x10, 5, "a"), snap(0x11, 9, "b"), snap(0x20, 7, "a")];
        assert_eq!(resolve(&list, "2", None, "a").unwrap()[0].time, 7);
        assert_eq!(resolve(&list, "11", None, "a").unwrap()[0].time, 9);
        let e = resolve(&list, "1", None, "a").unwrap_err().to_string();
        assert!(e.contains("2 snapshots start with"), "{e}");
        assert!(resolve(&list, "zz", None, "a").is_err());
        assert!(resolve(&list, "ff", None, "a").is_err());
    }
}
