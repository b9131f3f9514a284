//! In-memory state of the open packs of one [`Store`](crate::Store): what is
//! written but not yet sealed.
//!
//! - **Pending bytes per subscriber**: the bytes that the open packs of a
//!   subscriber will add to its `used_bytes` when sealed. The quota check
//!   counts them, so that parallel uploads cannot together overshoot a quota.
//!   A reservation is made (under the subscriber's `pending_bytes` lock, with
//!   `used_bytes` read from the catalogue inside the same lock) before a blob
//!   is written, and released when its pack is sealed (in the same locked
//!   region as the catalogue transaction that adds the pack to `used_bytes`)
//!   or discarded. So `used_bytes + pending` never counts a byte twice or
//!   misses one, as seen by any quota check of this process.
//! - **Pending chunk ids per session**: the ids in a session's open packs,
//!   which [`Store::has_chunks`](crate::Store::has_chunks) reports as present.
//!   Other sessions do not see them: their commit could not rely on a pack
//!   that this session has not sealed yet.
//! - **A commit lock per subscriber**, serialising the commits, forgets and
//!   key uploads of one subscriber (they write a file, then a catalogue row).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use coffre_core::ChunkId;

/// Locks a mutex, ignoring poisoning: every critical section of this crate
/// leaves its data consistent at each step (a counter, a map), so a panic in
/// another thread does not make it unusable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The per-subscriber locks.
#[derive(Debug, Default)]
pub(crate) struct SubscriberState {
    /// Bytes reserved by this subscriber's open packs and commits in progress.
    pub(crate) pending_bytes: Mutex<u64>,
    /// Serialises commits, forgets and key uploads of this subscriber.
    pub(crate) commit: Mutex<()>,
    /// When a quota refusal of each of its devices was last recorded (by
    /// device row id): at most one a minute reaches the catalogue and the log.
    pub(crate) refusals_recorded: Mutex<HashMap<i64, i64>>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    subscribers: Mutex<HashMap<i64, Arc<SubscriberState>>>,
    sessions: Mutex<HashMap<u64, HashMap<ChunkId, u32>>>,
    next_token: AtomicU64,
}

impl Pending {
    /// The state of subscriber `id` (created on first use, kept for the
    /// store's life: a few dozen bytes per subscriber).
    pub(crate) fn subscriber(&self, id: i64) -> Arc<SubscriberState> {
        Arc::clone(lock(&self.subscribers).entry(id).or_default())
    }

    /// A new session token.
    pub(crate) fn new_token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// Returns `bytes` reserved by subscriber `id`.
    pub(crate) fn release(&self, id: i64, bytes: u64) {
        if bytes > 0 {
            let state = self.subscriber(id);
            let mut pending = lock(&state.pending_bytes);
            *pending = pending.saturating_sub(bytes);
        }
    }

    /// Records that `id` is in an open pack of session `token`.
    pub(crate) fn add_id(&self, token: u64, id: ChunkId) {
        *lock(&self.sessions)
            .entry(token)
            .or_default()
            .entry(id)
            .or_default() += 1;
    }

    /// Forgets `ids` from session `token`'s open packs.
    pub(crate) fn remove_ids<'a>(&self, token: u64, ids: impl Iterator<Item = &'a ChunkId>) {
        let mut sessions = lock(&self.sessions);
        let Some(set) = sessions.get_mut(&token) else {
            return;
        };
        for id in ids {
            if let Some(n) = set.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    set.remove(id);
                }
            }
        }
        if set.is_empty() {
            sessions.remove(&token);
        }
    }

    /// For each id, whether it is in an open pack of session `token`.
    pub(crate) fn session_has(&self, token: u64, ids: &[ChunkId]) -> Vec<bool> {
        let sessions = lock(&self.sessions);
        match sessions.get(&token) {
            None => vec![false; ids.len()],
            Some(set) => ids.iter().map(|id| set.contains_key(id)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_counted_and_scoped() {
        let p = Pending::default();
        let (a, b) = (p.new_token(), p.new_token());
        let x = ChunkId::from_bytes([1; 32]);
        let y = ChunkId::from_bytes([2; 32]);
        p.add_id(a, x);
        p.add_id(a, x);
        assert_eq!(p.session_has(a, &[x, y]), [true, false]);
        assert_eq!(p.session_has(b, &[x]), [false]);
        p.remove_ids(a, [x].iter());
        assert_eq!(p.session_has(a, &[x]), [true]);
        p.remove_ids(a, [x].iter());
        assert_eq!(p.session_has(a, &[x]), [false]);
        assert!(lock(&p.sessions).is_empty());
    }

    #[test]
    fn release_never_underflows() {
        let p = Pending::default();
        *lock(&p.subscriber(3).pending_bytes) += 10;
        p.release(3, 4);
        assert_eq!(*lock(&p.subscriber(3).pending_bytes), 6);
        p.release(3, 100);
        assert_eq!(*lock(&p.subscriber(3).pending_bytes), 0);
    }
}
