//! The copies of a chunk (dedup trust, issue 17): the server may hold
//! several copies of one chunk id, written by different devices of the
//! subscriber, because a device does not skip another device's copy that it
//! has not verified. A blob that fails to open (restore, `check
//! --read-data`, a directory listing) may be a copy another device got
//! wrong, or put there on purpose: before damage is reported, every other
//! copy is asked for (`GetChunkCopy`) and the first that opens is used. So a
//! restore on any device, a technician's laptop included, finds the good
//! copy.
//!
//! The backup's side (check another device's copy before skipping it, then
//! vouch for it) is `backup/upload.rs`.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use coffre_core::{blob, BlobKind, ChunkId, Keys};

use crate::remote::Remote;

/// The most copies asked for (each costs a request): far above what honest
/// devices make (one per device that uploaded the chunk at once).
const MAX_COPIES: u32 = 64;

/// Decrypts and checks `blob` as chunk `id` of `kind`; if it fails, asks the
/// server for every copy of `id` in turn and returns the plaintext of the
/// first that opens. The error, if none opens, is the served blob's.
pub(crate) async fn open_or_other_copy(
    remote: &Remote,
    keys: &Arc<Keys>,
    kind: BlobKind,
    id: &ChunkId,
    blob: Vec<u8>,
) -> Result<Vec<u8>> {
    let (k, i) = (keys.clone(), *id);
    let first = blocking(move || Ok(blob::open_owned(&k, kind, &i, blob)?)).await;
    let error = match first {
        Ok(data) => return Ok(data),
        Err(e) => e,
    };
    match other_copy(remote, keys, kind, id).await? {
        Some(data) => Ok(data),
        None => Err(error),
    }
}

/// The plaintext of the first copy of `id` that opens, if any does.
pub(crate) async fn other_copy(
    remote: &Remote,
    keys: &Arc<Keys>,
    kind: BlobKind,
    id: &ChunkId,
) -> Result<Option<Vec<u8>>> {
    for copy in 0..MAX_COPIES {
        let Some(blob) = remote.chunk_copy(id, copy).await? else {
            return Ok(None);
        };
        let (k, i) = (keys.clone(), *id);
        if let Ok(data) = blocking(move || Ok(blob::open_owned(&k, kind, &i, blob)?)).await {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// Whether `blob` is a good copy of chunk `id` of either kind (the uploader
/// does not know a blob's kind): it decrypts under this subscriber's key and
/// its contents hash to `id`.
pub(crate) fn verifies(keys: &Keys, id: &ChunkId, blob: &[u8]) -> bool {
    blob::open(keys, BlobKind::Data, id, blob).is_ok()
        || blob::open(keys, BlobKind::Tree, id, blob).is_ok()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow!("decrypt task failed: {e}"))?
}
