//! Revocation takes effect on open connections within seconds (issue 17:
//! a device revoked during a backup kept uploading until its commit, and a
//! restore went on to the end).
//!
//! `coffre-server device revoke` runs in another process and only writes the
//! catalogue, so the daemon asks the catalogue every
//! [`Limits::revocation_poll`] which of the devices it has connections of
//! are revoked now: one primary-key lookup per live device
//! ([`coffre_store::Store::revoked_devices`]), nothing per request, nothing
//! when no device is connected. A revoked device's connections are told at
//! once: every request in progress or arriving is answered
//! `ErrorCode::Revoked`, then the connection is closed ("device revoked").
//! Authentication already refuses a revoked device, and the store's commit
//! checks it again in its transaction: a revoked device's last word is
//! never a snapshot.
//!
//! [`Limits::revocation_poll`]: super::Limits::revocation_poll

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coffre_store::Store;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// The live connections, by device.
#[derive(Debug, Default)]
pub(super) struct Revocations {
    live: Mutex<HashMap<u64, (i64, watch::Sender<bool>)>>,
    next: Mutex<u64>,
}

/// A connection's registration: its signal, and its removal when dropped.
#[derive(Debug)]
pub(super) struct Registration {
    revocations: Arc<Revocations>,
    id: u64,
    /// Becomes true when the device is revoked.
    pub(super) revoked: watch::Receiver<bool>,
}

impl Revocations {
    /// Registers a connection of `device` (its id).
    pub(super) fn register(self: &Arc<Self>, device: i64) -> Registration {
        let id = {
            let mut next = self.next.lock().unwrap();
            *next += 1;
            *next
        };
        let (tx, rx) = watch::channel(false);
        self.live.lock().unwrap().insert(id, (device, tx));
        Registration {
            revocations: self.clone(),
            id,
            revoked: rx,
        }
    }

    /// The devices with a live connection.
    fn devices(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.live.lock().unwrap().values().map(|v| v.0).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Signals every connection of the `revoked` devices; how many.
    fn revoke(&self, revoked: &[i64]) -> usize {
        let live = self.live.lock().unwrap();
        let mut n = 0;
        for (device, tx) in live.values() {
            if revoked.contains(device) && !*tx.borrow() {
                tx.send_replace(true);
                n += 1;
            }
        }
        n
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.revocations.live.lock().unwrap().remove(&self.id);
    }
}

/// Every `every`, signals the connections of the devices revoked meanwhile.
/// Runs until the daemon stops (the task is dropped).
pub(super) async fn watch(store: Arc<Store>, revocations: Arc<Revocations>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let devices = revocations.devices();
        if devices.is_empty() {
            continue;
        }
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.revoked_devices(&devices)).await {
            Ok(Ok(revoked)) if !revoked.is_empty() => {
                let n = revocations.revoke(&revoked);
                if n > 0 {
                    info!("closing {n} connection(s) of revoked device(s)");
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!("cannot check for revoked devices: {e}"),
            Err(e) => debug!("revocation check failed: {e}"),
        }
    }
}
