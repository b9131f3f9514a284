//! An open session: this PC's installation, its keys, and an authenticated
//! connection to the server (its credential rolled), with the async runtime
//! that drives it.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use coffre_core::{ChunkId, Keys, Manifest};
use coffre_proto::SnapshotEntry;

use crate::config::Installation;
use crate::credential::{self, AtStart};
use crate::display::local_time;
use crate::remote::{LinkEvent, Notice, Remote, RemoteError};

/// Where a command's link notices go by default: standard error.
pub fn stderr_notice() -> Notice {
    Arc::new(|e: &LinkEvent| errln!("coffre: {e}"))
}

pub mod damaged;

pub use damaged::Damaged;

/// A snapshot's manifest, or why it does not open.
pub type Opened = std::result::Result<Manifest, Damaged>;

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
    /// The manifest [`Session::resolve`] opened to choose `latest`, kept
    /// for the [`Session::manifest`] call that follows (one fetch, not two).
    resolved: Mutex<Option<(ChunkId, Manifest)>>,
}

impl Session {
    /// Loads the installation at `config_path`, connects to its server and
    /// rolls its device credential (`credential.rs`). A server that cannot
    /// be reached fails it at once (the quick commands).
    pub fn open(config_path: &Path) -> Result<Session> {
        Session::open_with(config_path, &AtStart::FailFast)
    }

    /// [`Session::open`] for a command that moves data (backup, restore,
    /// dump): a link down at the start is waited for as a lost one is, for
    /// up to `[network] reconnect_for`, and `notice` hears of it (and of
    /// the link during the run).
    pub fn open_waiting(config_path: &Path, notice: Notice) -> Result<Session> {
        Session::open_with(config_path, &AtStart::Wait(notice))
    }

    fn open_with(config_path: &Path, at_start: &AtStart) -> Result<Session> {
        let inst = Installation::load(config_path)?;
        let rt = runtime()?;
        let (remote, creds) = credential::connect(&inst, &rt, at_start)?;
        let keys = Arc::new(Keys::derive(&creds.master));
        Ok(Session {
            inst,
            keys,
            remote: Arc::new(remote),
            rt,
            resolved: Mutex::new(None),
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

    /// A snapshot's manifest, decrypted. A manifest that does not open is a
    /// [`Damaged`] error, whose message names the device that made it.
    pub fn manifest(&self, id: &ChunkId) -> Result<Manifest> {
        if let Some((_, m)) = self
            .resolved
            .lock()
            .unwrap()
            .as_ref()
            .filter(|(i, _)| i == id)
        {
            return Ok(m.clone());
        }
        let bytes = self
            .block_on(self.remote.manifest(id))
            .with_context(|| format!("fetching snapshot {}", id.short()))?;
        Ok(damaged::open(&self.keys, id, &bytes)?)
    }

    /// Several manifests, decrypted, fetched 8 at a time; in the order of
    /// `ids`. The first that does not open fails the call ([`Damaged`]).
    pub fn manifests(&self, ids: &[ChunkId]) -> Result<Vec<Manifest>> {
        let fetched = self.fetch(ids);
        ids.iter()
            .zip(fetched)
            .map(|(id, r)| {
                let bytes = r.with_context(|| format!("fetching snapshot {}", id.short()))?;
                Ok(damaged::open(&self.keys, id, &bytes)?)
            })
            .collect()
    }

    /// The manifests of these snapshots of the server's list, fetched 8 at
    /// a time, each opened or found [`Damaged`] (it does not open, or the
    /// server cannot serve it); in the order of `list`. Only the connection
    /// fails the call: one damaged manifest must not hide the others.
    pub fn opened(&self, list: &[SnapshotEntry]) -> Result<Vec<Opened>> {
        let ids: Vec<ChunkId> = list.iter().map(|s| ChunkId::from_bytes(s.id)).collect();
        let fetched = self.fetch(&ids);
        list.iter()
            .zip(&ids)
            .zip(fetched)
            .map(|((entry, id), r)| match r {
                Ok(bytes) => Ok(damaged::open(&self.keys, id, &bytes).map_err(|mut d| {
                    // The server's record: it checked the device at commit.
                    d.device.clone_from(&entry.device);
                    d
                })),
                Err(e) => match e
                    .downcast_ref::<RemoteError>()
                    .and_then(|re| damaged::unavailable(entry, re))
                {
                    Some(d) => Ok(Err(d)),
                    None => Err(e.context(format!("fetching snapshot {}", id.short()))),
                },
            })
            .collect()
    }

    /// The manifests' bytes, fetched 8 at a time, in the order of `ids`.
    fn fetch(&self, ids: &[ChunkId]) -> Vec<Result<Vec<u8>>> {
        self.block_on(async {
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
                out.push(match t.await {
                    Ok(r) => r.map_err(anyhow::Error::from),
                    Err(e) => Err(anyhow::anyhow!("fetch task failed: {e}")),
                });
            }
            out
        })
    }

    /// Resolves a snapshot argument: `latest`, or a unique prefix of an id.
    ///
    /// `latest` is the newest snapshot of `device` if given; otherwise of
    /// this device, or, when this device has never backed up (a technician's
    /// laptop), of the whole subscriber. A damaged snapshot (its manifest
    /// does not open) is never `latest`: the newest readable one is, and a
    /// warning on stderr names each newer one skipped. A checkpoint (a
    /// partial snapshot of a backup on its way, issue 19) is `latest` only
    /// when no complete snapshot is readable (a note says so). A prefix
    /// names its snapshot, damaged, checkpoint or not.
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
        let newest_first = match candidates(list, spec, device, &self.inst.config.device)? {
            Candidates::One(s) => return Ok(s),
            Candidates::Newest(all) => all,
        };
        // (the server's second, why) of each damaged one met.
        let mut skipped: Vec<(i64, Damaged)> = Vec::new();
        // The newest checkpoint met: `latest` only if nothing complete is
        // older (issue 19: a checkpoint holds only the files sent so far).
        let mut checkpoint: Option<(SnapshotEntry, Manifest)> = None;
        // One second of the server's list at a time, newest first.
        for second in newest_first.chunk_by(|a, b| a.time == b.time) {
            let mut readable = Vec::new();
            for (i, opened) in self.opened(second)?.into_iter().enumerate() {
                match opened {
                    Ok(m) => readable.push((m.public.time, i, m)),
                    Err(d) => skipped.push((second[i].time, d)),
                }
            }
            let (partial, readable): (Vec<_>, Vec<_>) = readable
                .into_iter()
                .partition(|(_, _, m)| m.public.checkpoint);
            if checkpoint.is_none() {
                checkpoint = partial
                    .into_iter()
                    .max_by_key(|(t, i, _)| (*t, *i))
                    .map(|(_, i, m)| (second[i].clone(), m));
            }
            let Some((_, i, m)) = readable.into_iter().max_by_key(|(t, i, _)| (*t, *i)) else {
                continue;
            };
            let chosen = second[i].clone();
            // Within one second, only those the PC wrote later (or whose
            // time is unreadable) were skipped.
            let newer = |(_, d): &&(i64, Damaged)| d.time.is_none_or(|t| t > m.public.time);
            for (received, d) in skipped.iter().filter(newer) {
                errln!(
                    "coffre: warning: `latest` skips snapshot {} ({}), newer than {}: {}; tell your technician (`coffre check` lists every damaged snapshot)",
                    d.id.short(),
                    local_time(*received),
                    ChunkId::from_bytes(chosen.id).short(),
                    d.summary()
                );
            }
            *self.resolved.lock().unwrap() = Some((ChunkId::from_bytes(chosen.id), m));
            return Ok(chosen);
        }
        if let Some((chosen, m)) = checkpoint {
            errln!(
                "coffre: note: `latest` is checkpoint {} ({}): a backup still on its way, \
                 with only the files sent so far; there is no complete snapshot yet",
                ChunkId::from_bytes(chosen.id).short(),
                local_time(chosen.time)
            );
            *self.resolved.lock().unwrap() = Some((ChunkId::from_bytes(chosen.id), m));
            return Ok(chosen);
        }
        let (_, newest) = &skipped[0];
        bail!(
            "every snapshot `latest` could name is damaged ({} of them; the newest, {}, {}): see `coffre snapshots`, and tell your technician",
            skipped.len(),
            newest.id.short(),
            newest.summary()
        )
    }

    /// Closes the connection cleanly.
    pub fn close(self) {
        let Session { remote, rt, .. } = self;
        if let Ok(remote) = Arc::try_unwrap(remote) {
            rt.block_on(remote.close());
        }
    }
}

/// What a snapshot argument names, before any manifest is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidates {
    /// An id prefix: exactly this snapshot.
    One(SnapshotEntry),
    /// `latest`: every snapshot it may name, newest first by the server's
    /// second (see [`Session::resolve`]); the first readable one wins.
    Newest(Vec<SnapshotEntry>),
}

/// The snapshots `spec` may name (see [`Session::resolve`]).
pub fn candidates(
    list: &[SnapshotEntry],
    spec: &str,
    device: Option<&str>,
    this_device: &str,
) -> Result<Candidates> {
    let of = |d: &str| list.iter().filter(|s| s.device == d).collect::<Vec<_>>();
    if spec == "latest" {
        let mut candidates: Vec<SnapshotEntry> = match device {
            Some(d) => of(d),
            None if !of(this_device).is_empty() => of(this_device),
            None => list.iter().collect(),
        }
        .into_iter()
        .cloned()
        .collect();
        if candidates.is_empty() {
            if list.is_empty() {
                bail!("there is no snapshot yet: run `coffre backup` first");
            }
            bail!(
                "device {:?} has no snapshot (see `coffre snapshots`)",
                device.unwrap_or(this_device)
            );
        }
        // Stable: within one second, the server's order.
        candidates.sort_by_key(|s| std::cmp::Reverse(s.time));
        return Ok(Candidates::Newest(candidates));
    }
    let matches = matching(list, spec)?;
    let matches: Vec<&SnapshotEntry> = matches
        .into_iter()
        .filter(|s| device.is_none_or(|d| s.device == d))
        .collect();
    match matches.as_slice() {
        [one] => Ok(Candidates::One((*one).clone())),
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

/// The snapshots whose id starts with the hex digits `spec` (any case), in
/// the list's order; an error if `spec` is not hex digits.
pub fn matching<'l>(list: &'l [SnapshotEntry], spec: &str) -> Result<Vec<&'l SnapshotEntry>> {
    let prefix = spec.to_ascii_lowercase();
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{spec:?} is not a snapshot id: give `latest` or the first digits of an id shown by `coffre snapshots`");
    }
    Ok(list
        .iter()
        .filter(|s| ChunkId::from_bytes(s.id).to_hex().starts_with(&prefix))
        .collect())
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

    /// The snapshots `spec` names, newest first (one for a prefix).
    fn resolve(
        list: &[SnapshotEntry],
        spec: &str,
        device: Option<&str>,
        this: &str,
    ) -> Result<Vec<SnapshotEntry>> {
        Ok(match candidates(list, spec, device, this)? {
            Candidates::One(s) => vec![s],
            Candidates::Newest(all) => all,
        })
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
    fn latest_gives_every_candidate_newest_first_in_the_servers_order_within_a_second() {
        let list = vec![
            snap(0x10, 5, "a"),
            snap(0x20, 9, "a"),
            snap(0x30, 9, "a"),
            snap(0x40, 7, "b"),
        ];
        let c: Vec<u8> = resolve(&list, "latest", None, "a")
            .unwrap()
            .iter()
            .map(|s| s.id[0])
            .collect();
        assert_eq!(
            c,
            [0x20, 0x30, 0x10],
            "second 9 first (both), then 5; not b's"
        );
    }

    #[test]
    fn prefixes_must_be_unique_hex() {
        let list = vec![snap(0x10, 5, "a"), snap(0x11, 9, "b"), snap(0x20, 7, "a")];
        assert_eq!(resolve(&list, "2", None, "a").unwrap()[0].time, 7);
        assert_eq!(resolve(&list, "11", None, "a").unwrap()[0].time, 9);
        assert_eq!(resolve(&list, "1", Some("b"), "a").unwrap()[0].time, 9);
        let e = resolve(&list, "1", None, "a").unwrap_err().to_string();
        assert!(e.contains("2 snapshots start with"), "{e}");
        assert!(resolve(&list, "zz", None, "a").is_err());
        assert!(resolve(&list, "ff", None, "a").is_err());
        assert_eq!(matching(&list, "1").unwrap().len(), 2);
        assert_eq!(matching(&list, "1A").unwrap().len(), 0);
    }
}
