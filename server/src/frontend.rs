//! The daemon's side of a service's frontend (issue 22): at start, stop
//! serving the subscribers another frontend took over meanwhile (the
//! bucket says so) and write this frontend's record; then rewrite the
//! record every few minutes (the service sees it alive, where PCs reach
//! it, and its usage report, which every frontend's board and `usage`
//! show) and copy the catalogue into the bucket every few hours. A server
//! on its own does none of it.

use std::sync::Arc;
use std::time::Duration;

use coffre_store::Store;
use tracing::{info, warn};

/// How often the record is rewritten.
pub const RECORD_EVERY: Duration = Duration::from_secs(5 * 60);
/// How often the catalogue is copied into the bucket.
pub const CATALOG_BACKUP_EVERY: Duration = Duration::from_secs(6 * 3600);

/// At the daemon's start: the subscribers taken over while this frontend
/// was down leave it, and its record is written. Blocking (the bucket).
pub fn start(store: &Store, address: &str) -> coffre_store::Result<bool> {
    let Some(service) = store.service()? else {
        return Ok(false);
    };
    let left = store.check_all_serving()?;
    if !left.is_empty() {
        warn!(
            "{} subscriber(s) are served by another frontend now and left this one: {}",
            left.len(),
            left.join(", ")
        );
    }
    store.publish_frontend(Some(address), Some(usage(store)?))?;
    info!(
        frontend = %service.frontend,
        number = service.number,
        "serving as a frontend of the service"
    );
    Ok(true)
}

/// The record and the catalogue backup, for ever (the daemon stops it).
pub async fn keep_up(store: Arc<Store>, address: String) {
    let mut since_backup = Duration::ZERO;
    loop {
        tokio::time::sleep(RECORD_EVERY).await;
        since_backup += RECORD_EVERY;
        let backup = since_backup >= CATALOG_BACKUP_EVERY;
        if backup {
            since_backup = Duration::ZERO;
        }
        let (store, address) = (store.clone(), address.clone());
        let done = tokio::task::spawn_blocking(move || -> coffre_store::Result<()> {
            store.publish_frontend(Some(&address), Some(usage(&store)?))?;
            if backup {
                if let Some(size) = store.backup_catalog()? {
                    info!("catalogue copied into the bucket ({size} bytes compressed)");
                }
            }
            Ok(())
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("frontend record or catalogue backup: {e}"),
            Err(e) => warn!("frontend record or catalogue backup: {e}"),
        }
    }
}

/// This frontend's usage report as its record carries it, for the board
/// of every frontend ([`crate::usage::rows`]).
fn usage(store: &Store) -> coffre_store::Result<serde_json::Value> {
    serde_json::to_value(store.usage()?)
        .map_err(|e| coffre_store::Error::Corrupt(format!("encoding the usage report: {e}")))
}
