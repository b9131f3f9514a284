//! What the backup knows before it reads anything: the files cache of the
//! last backup, and the set of chunks known to be on the server already.
//!
//! A chunk is known if the files cache names it, if the journal of an
//! interrupted run recorded it, or if the latest snapshot of this device
//! holds it. A known chunk is not sealed again. The latest snapshots of the
//! other devices count only with a server older than protocol 3: since the
//! dedup trust rule (issue 17), another device's chunk is skipped only once
//! this device has checked that copy (`upload.rs`), so it must be sealed and
//! asked about like a new one (a compromised device can list any id in its
//! manifest). The set
//! is a hint: a sealed chunk is still sent only if the server says it lacks
//! it, and if the server no longer has a chunk the set promised, the commit
//! is refused and the backup runs again without it (`commands::backup`).
//! So a latest snapshot whose manifest does not open with the structure's
//! key, or that the server cannot read, adds nothing to the set and the
//! backup goes on (a warning says so); the parent stays the device's newest
//! snapshot, damaged or not: it records the history, nothing reads through it.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use coffre_core::{ChunkId, Keys};
use coffre_proto::{ErrorCode, SnapshotEntry};

use super::journal;
use crate::config::Installation;
use crate::files_cache::FilesCache;
use crate::session::{damaged, Damaged, Session};

/// The files cache of the last backup, or an empty one without caches (or
/// if it is damaged: a warning says so, and every file is read).
pub(super) fn files_cache(inst: &Installation, keys: &Keys, use_caches: bool) -> FilesCache {
    let (cache, warning) = if use_caches {
        FilesCache::load(&inst.files_cache_path(), keys)
    } else {
        (FilesCache::default(), None)
    };
    if let Some(w) = warning {
        errln!("coffre: warning: {w}");
    }
    cache
}

/// The chunks known to be on the server: none without caches; else those of
/// `cache`, of the journal, and of the latest snapshot of each device in
/// `list`.
pub(super) fn chunks(
    session: &Session,
    list: &[SnapshotEntry],
    cache: &FilesCache,
    use_caches: bool,
) -> Result<HashSet<ChunkId>> {
    let mut known: HashSet<ChunkId> = HashSet::new();
    if !use_caches {
        return Ok(known);
    }
    known.extend(cache.chunk_ids().copied());
    known.extend(journal::read(&session.inst.uploaded_path()));
    let own = session.inst.config.device.as_str();
    let trust_rule = session.remote.version >= 3;
    for s in latest_per_device(list) {
        if trust_rule && s.device != own {
            continue;
        }
        let id = ChunkId::from_bytes(s.id);
        let bytes = match session.block_on(session.remote.manifest(&id)) {
            Ok(bytes) => bytes,
            // Retention removed it since the list (the device made newer
            // ones meanwhile): these chunks are only a dedup hint, and the
            // server is asked about the rest anyway.
            Err(e) if e.code() == Some(ErrorCode::NotFound) => continue,
            // The server cannot read its copy: a hint lost, not the backup.
            Err(e) if e.code() == Some(ErrorCode::Internal) => {
                errln!(
                    "coffre: warning: snapshot {} of {} cannot be fetched from the server ({e}): its chunks are sent or checked again like new ones",
                    id.short(),
                    s.device
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        // Opened, not only its public part read: the chunk list counts only
        // if the structure's key sealed it (the key authenticates the public
        // part too). A manifest that does not open is skipped with a
        // warning: one damaged snapshot must not stop the nightly backup.
        match damaged::open(&session.keys, &id, &bytes) {
            Ok(m) => known.extend(m.public.chunks),
            Err(d) => errln!(
                "coffre: warning: {}: its chunks are sent or checked again like new ones",
                Damaged {
                    device: s.device.clone(),
                    ..d
                }
            ),
        }
    }
    Ok(known)
}

/// The latest snapshot of each device (by time, then id), in no order.
fn latest_per_device(list: &[SnapshotEntry]) -> impl Iterator<Item = &SnapshotEntry> {
    let mut latest: HashMap<&str, &SnapshotEntry> = HashMap::new();
    for s in list {
        let e = latest.entry(s.device.as_str()).or_insert(s);
        if (s.time, s.id) > (e.time, e.id) {
            *e = s;
        }
    }
    latest.into_values()
}

/// The latest snapshot of `device` in `list`: the new snapshot's parent.
/// The server's list dates snapshots to the second; two runs of one second
/// (a script, a test, a retry) are told apart by the nanoseconds in their
/// manifests, fetched only for that tie. A tied manifest that does not open
/// ranks below those that do.
pub(super) fn parent(session: &Session, list: &[SnapshotEntry], device: &str) -> Option<ChunkId> {
    let mine: Vec<&SnapshotEntry> = list.iter().filter(|s| s.device == device).collect();
    let newest = mine.iter().map(|s| s.time).max()?;
    let tied: Vec<SnapshotEntry> = mine
        .into_iter()
        .filter(|s| s.time == newest)
        .cloned()
        .collect();
    if tied.len() == 1 {
        return Some(ChunkId::from_bytes(tied[0].id));
    }
    let opened = session.opened(&tied).unwrap_or_default();
    let nanos = |i: usize| {
        opened
            .get(i)
            .and_then(|o| o.as_ref().ok())
            .map(|m| m.public.time)
    };
    (0..tied.len())
        .max_by_key(|&i| (nanos(i).map(|t| (t.secs, t.nanos)), tied[i].id))
        .map(|i| ChunkId::from_bytes(tied[i].id))
}
