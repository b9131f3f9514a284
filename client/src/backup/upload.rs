//! The uploader: an async task on the session's runtime that takes sealed
//! blobs from the outbox, asks the server which of a batch it lacks, and
//! sends those with a bounded number of requests in flight.
//!
//! ```text
//! outbox ─► batch of ≤ 64 ─► chunk-trust ─► trusted: confirmed (journal), dropped
//!                                       ├─► another device's copy: fetched, checked ─► good: vouched, confirmed, dropped
//!                                       │                                           └─► bad: sent as this device's copy
//!                                       └─► absent: ≤ 256 KiB in groups of ≤ 1 MiB (one PutChunks),
//!                                           larger alone (one PutChunk) ─► ≤ `uploads` in flight ─► confirmed
//! ```
//!
//! **Dedup trust** (issue 17): every device holds the subscriber's keys, so
//! a compromised one can store garbage under the id of a chunk another will
//! save. The server says which copies this device may rely on (its own,
//! ones it verified, ones stored before the rule); a copy only another
//! device wrote is fetched and opened (decrypted, its id recomputed) once:
//! if it opens, the server is told (`Vouch`) and the chunk is skipped from
//! then on; if not, this device uploads its own copy, and the server keeps
//! both and reports the other as disputed.
//!
//! A blob leaves the outbox's byte budget when it is put in flight (or
//! dropped), so memory is the outbox plus `uploads` requests. Every id the
//! server confirms goes to the journal through [`Confirmed`], which never
//! blocks this task (`bridge`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use coffre_core::{ChunkId, Keys};
use coffre_proto::ChunkState;
use tokio::sync::mpsc;

use super::bridge::{Confirmed, Outgoing};
use crate::copies;
use crate::remote::Remote;

/// Blobs asked about in one has-chunks request.
pub(super) const BATCH: usize = 64;

/// A blob up to this size is uploaded with others in one `PutChunks`
/// request, up to [`PUT_GROUP_BYTES`]: 50,000 small files make a few
/// hundred requests instead of 50,000 (docs/performance.md).
const SMALL_BLOB: usize = 256 * 1024;
/// Most bytes of blobs in one `PutChunks` request from the uploader.
const PUT_GROUP_BYTES: usize = 1024 * 1024;

/// What the upload did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Uploaded {
    /// Blobs sent.
    pub blobs: u64,
    /// Of those, the server already had (sent twice: should stay 0).
    pub duplicates: u64,
    /// Other devices' copies fetched and checked (then vouched for).
    pub verified: u64,
    /// Bytes fetched to check other devices' copies.
    pub verified_bytes: u64,
}

/// Uploads sealed blobs: asks the server which of a batch it lacks, sends
/// those with up to `concurrency` in flight, hands every confirmed id to
/// the journal. Returns the number of blobs sent, and of those the server
/// already had.
pub(super) async fn run(
    remote: Arc<Remote>,
    keys: Arc<Keys>,
    mut rx: mpsc::Receiver<Outgoing>,
    concurrency: usize,
    confirmed: Confirmed,
    sent: Arc<AtomicU64>,
) -> Result<Uploaded> {
    let duplicates = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut blobs = 0u64;
    let mut done = Uploaded::default();
    loop {
        // A put that failed (a full quota, the link down past its
        // patience) ends the upload when no blob is waiting, not only at
        // the next blob: the reading side may be waiting for a
        // confirmation that will never come (a checkpoint waits for its
        // trees, which were the last blobs sent), and only the end of the
        // upload tells it. While blobs wait, they go first, as before: the
        // error is met at the next group (a checkpoint's small trees may
        // still fit in a quota that refused a large chunk).
        let first = tokio::select! {
            biased;
            next = rx.recv() => match next {
                Some(first) => first,
                None => break,
            },
            Some(put) = tasks.join_next(), if !tasks.is_empty() => {
                put??;
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(b) => batch.push(b),
                Err(_) => break,
            }
        }
        let ids: Vec<ChunkId> = batch.iter().map(|o| o.id).collect();
        let states = remote.chunk_trust(&ids).await?;
        let have = check_other_copies(&remote, &keys, &batch, &states, &mut done).await?;
        confirmed.record(
            ids.iter()
                .zip(&have)
                .filter(|(_, h)| **h)
                .map(|(i, _)| *i)
                .collect(),
        )?;
        for group in groups(batch, have) {
            while let Some(done) = tasks.try_join_next() {
                done??;
            }
            let permit = permits.clone().acquire_owned().await?;
            // In flight now, bounded by `concurrency`: out of the outbox.
            let group: Vec<(ChunkId, Vec<u8>)> = group
                .into_iter()
                .map(|Outgoing { id, blob, queued }| {
                    drop(queued);
                    (id, blob)
                })
                .collect();
            let (remote, confirmed, sent) = (remote.clone(), confirmed.clone(), sent.clone());
            let duplicates = duplicates.clone();
            blobs += group.len() as u64;
            tasks.spawn(async move {
                let len: u64 = group.iter().map(|(_, b)| b.len() as u64).sum();
                let ids: Vec<ChunkId> = group.iter().map(|(id, _)| *id).collect();
                let new = match <[_; 1]>::try_from(group) {
                    Ok([(id, blob)]) => vec![remote.put_chunk(&id, blob).await?],
                    Err(group) => remote.put_chunks(group).await?,
                };
                let old = new.iter().filter(|n| !**n).count();
                duplicates.fetch_add(old as u64, Ordering::Relaxed);
                sent.fetch_add(len, Ordering::Relaxed);
                confirmed.record(ids)?;
                drop(permit);
                Ok::<_, anyhow::Error>(())
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    done.blobs = blobs;
    done.duplicates = duplicates.load(Ordering::Relaxed);
    Ok(done)
}

/// Whether each blob of `batch` may be skipped: trusted by this device, or
/// another device's copy that this device fetched and checked now (it then
/// vouches for those). A copy that fails the check is not skipped: this
/// device uploads its own.
async fn check_other_copies(
    remote: &Remote,
    keys: &Arc<Keys>,
    batch: &[Outgoing],
    states: &[ChunkState],
    done: &mut Uploaded,
) -> Result<Vec<bool>> {
    let mut have: Vec<bool> = states.iter().map(|s| *s == ChunkState::Trusted).collect();
    let others: Vec<usize> = (0..batch.len())
        .filter(|&i| states[i] == ChunkState::Untrusted)
        .collect();
    if others.is_empty() {
        return Ok(have);
    }
    let ids: Vec<ChunkId> = others.iter().map(|&i| batch[i].id).collect();
    let blobs = remote.chunks(&ids).await?;
    done.verified_bytes += blobs.iter().flatten().map(|b| b.len() as u64).sum::<u64>();
    let keys = keys.clone();
    let check = ids.clone();
    let good: Vec<bool> = tokio::task::spawn_blocking(move || {
        check
            .iter()
            .zip(&blobs)
            .map(|(id, blob)| {
                blob.as_ref()
                    .is_some_and(|b| copies::verifies(&keys, id, b))
            })
            .collect()
    })
    .await?;
    let vouched: Vec<ChunkId> = ids
        .iter()
        .zip(&good)
        .filter(|(_, g)| **g)
        .map(|(id, _)| *id)
        .collect();
    remote.vouch(&vouched).await?;
    done.verified += vouched.len() as u64;
    for (&i, g) in others.iter().zip(good) {
        have[i] = g;
    }
    Ok(have)
}

/// The blobs of `batch` the server lacks (`have` is its answer), as
/// requests: small ones in groups (one request each), larger ones alone
/// (sent from their own buffer).
fn groups(batch: Vec<Outgoing>, have: Vec<bool>) -> Vec<Vec<Outgoing>> {
    let mut groups: Vec<Vec<Outgoing>> = Vec::new();
    let mut small: Vec<Outgoing> = Vec::new();
    let mut small_bytes = 0;
    for (out, has) in batch.into_iter().zip(have) {
        if has {
            continue;
        }
        if out.blob.len() > SMALL_BLOB {
            groups.push(vec![out]);
            continue;
        }
        small_bytes += out.blob.len();
        small.push(out);
        if small_bytes >= PUT_GROUP_BYTES {
            groups.push(std::mem::take(&mut small));
            small_bytes = 0;
        }
    }
    if !small.is_empty() {
        groups.push(small);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(n: u8, len: usize, budget: &Arc<tokio::sync::Semaphore>) -> Outgoing {
        Outgoing {
            id: ChunkId::from_bytes([n; 32]),
            blob: vec![n; len],
            queued: budget.clone().try_acquire_owned().unwrap(),
        }
    }

    #[test]
    fn small_blobs_go_in_groups_of_a_mebibyte_larger_ones_alone_and_had_ones_not_at_all() {
        let budget = Arc::new(tokio::sync::Semaphore::new(BATCH));
        let sizes = [
            (1, SMALL_BLOB, false),
            (2, SMALL_BLOB + 1, false), // larger: alone
            (3, SMALL_BLOB, true),      // the server has it
            (4, SMALL_BLOB, false),
            (5, SMALL_BLOB, false),
            (6, SMALL_BLOB, false), // the group reaches 1 MiB: closed
            (7, 10, false),
        ];
        let batch = sizes
            .iter()
            .map(|&(n, len, _)| outgoing(n, len, &budget))
            .collect();
        let have = sizes.iter().map(|&(_, _, has)| has).collect();
        let groups = groups(batch, have);
        let ids: Vec<Vec<u8>> = groups
            .iter()
            .map(|g| g.iter().map(|o| o.id.as_bytes()[0]).collect())
            .collect();
        assert_eq!(ids, vec![vec![2], vec![1, 4, 5, 6], vec![7]]);
        // The blob the server has left the outbox's budget.
        assert_eq!(budget.available_permits(), BATCH - 6);
    }
}
