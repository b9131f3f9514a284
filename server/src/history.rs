//! Recording the daily history (issue 20): the daemon writes today's line
//! when it starts, every hour ([`RECORD_EVERY`]) and after each nightly
//! run, so that a server that never reaches its nightly time still records
//! every day; `coffre-server usage` records too (one read and one short
//! transaction, safe beside the daemon). What a line holds and how the
//! store thins old lines: `coffre_store::history`.
//!
//! The server's line needs where the packs are: on the local disk, the data
//! directory's file system (`statvfs`: its size and the space free to this
//! user); on a bucket, nothing to read, so `capacity` in `[storage]` of
//! config.toml, without which the board shows no "full by" for the server.
//! A `capacity` set for the local disk replaces the file system's figures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use coffre_store::{PackStorage, Recorded, Space, Store};
use tracing::{debug, warn};

use crate::config::DataDir;

/// How often the daemon records today's line (it replaces the day's
/// earlier one): often enough that a day is never missed, rare enough to
/// cost nothing (one usage read and one upsert per subscriber).
pub const RECORD_EVERY: Duration = Duration::from_secs(3_600);

/// What the server needs to record a day: where its packs are.
#[derive(Debug, Clone)]
pub struct Recorder {
    data: PathBuf,
    capacity: Option<u64>,
    local: bool,
}

impl Recorder {
    /// The recorder of data directory `data`, as its config.toml says.
    pub fn new(data: &Path) -> Result<Recorder> {
        let dir = DataDir::new(data);
        Ok(Recorder {
            data: data.to_path_buf(),
            capacity: dir.capacity()?,
            local: dir.pack_storage()? == PackStorage::Local,
        })
    }

    /// The free space and size of where the packs are, now.
    pub fn space(&self) -> Space {
        if let Some(capacity) = self.capacity {
            return Space {
                free_bytes: None,
                capacity_bytes: Some(capacity),
            };
        }
        if self.local {
            return file_system_space(&self.data);
        }
        Space::default()
    }

    /// Records today's line (by the store's clock).
    pub fn record(&self, store: &Store) -> Result<Recorded> {
        Ok(store.record_history(self.space())?)
    }
}

/// The data directory's file system: its size and the space free to an
/// unprivileged user (`f_bavail`: what the daemon can still write).
#[cfg(unix)]
fn file_system_space(data: &Path) -> Space {
    match rustix::fs::statvfs(data) {
        Ok(s) => Space {
            free_bytes: Some(s.f_bavail.saturating_mul(s.f_frsize)),
            capacity_bytes: Some(s.f_blocks.saturating_mul(s.f_frsize)),
        },
        Err(e) => {
            warn!("cannot read the free space of {}: {e}", data.display());
            Space::default()
        }
    }
}

/// Elsewhere, no free space is read (set `capacity` in `[storage]`).
#[cfg(not(unix))]
fn file_system_space(_data: &Path) -> Space {
    Space::default()
}

/// Records today's line and logs what it did; a failure is logged, never
/// fatal (the next hour tries again).
pub fn record_logged(store: &Store, recorder: &Recorder) {
    match recorder.record(store) {
        Ok(r) => debug!(
            day = r.day,
            lines = r.lines,
            thinned = r.thinned,
            "usage history recorded"
        ),
        Err(e) => warn!("cannot record the usage history: {e:#}"),
    }
}

/// The daemon's recording: now, then every [`RECORD_EVERY`]. Never returns.
pub async fn hourly(store: Arc<Store>, recorder: Recorder) {
    every(store, recorder, RECORD_EVERY).await;
}

/// Records now, then every `period`. Never returns.
async fn every(store: Arc<Store>, recorder: Recorder, period: Duration) {
    let recorder = Arc::new(recorder);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (store, recorder) = (store.clone(), recorder.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || record_logged(&store, &recorder)).await
        {
            warn!("recording the usage history failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, StorageConfig};
    use coffre_store::history::{day_of, DAY_SECONDS};
    use coffre_store::ManualClock;

    #[tokio::test]
    async fn the_daemon_records_at_start_and_again_each_period() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let store = Arc::new(
            Store::create_with_clock(dir.path(), &PackStorage::Local, clock.clone()).unwrap(),
        );
        store.add_subscriber("jardins", 1 << 30, None).unwrap();
        let recorder = Recorder {
            data: dir.path().to_path_buf(),
            capacity: None,
            local: true,
        };
        let task = tokio::spawn(every(store.clone(), recorder, Duration::from_millis(20)));
        let days = |store: &Store| {
            store
                .history(None, 0)
                .unwrap()
                .of("jardins")
                .iter()
                .map(|l| l.day)
                .collect::<Vec<_>>()
        };
        let today = day_of(1_800_000_000);
        let waited = std::time::Instant::now();
        while days(&store).is_empty() {
            assert!(
                waited.elapsed() < Duration::from_secs(20),
                "nothing recorded"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(days(&store), [today], "at start");
        // The same day again and again: still one line; the next day, two.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(days(&store), [today]);
        clock.advance(DAY_SECONDS);
        while days(&store).len() < 2 {
            assert!(waited.elapsed() < Duration::from_secs(20), "no second day");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
        assert_eq!(days(&store), [today, today + 1]);
        // The server's line has the data directory's file system.
        let server = store.history(None, 0).unwrap().server;
        let last = server.last().unwrap();
        assert!(last.capacity_bytes.unwrap() > 0, "{last:?}");
        assert!(last.free_bytes.unwrap() <= last.capacity_bytes.unwrap());
    }

    #[test]
    fn a_bucket_has_no_free_space_unless_a_capacity_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let storage = |capacity: Option<&str>| StorageConfig {
            url: "s3://packs?endpoint=http://127.0.0.1:1&region=garage".into(),
            access_key_id: Some("id".into()),
            secret_access_key: Some("secret".into()),
            capacity: capacity.map(str::to_string),
        };
        let write = |storage: Option<StorageConfig>| {
            let config = Config::with_storage(
                "127.0.0.1:7443".parse().unwrap(),
                "localhost:7443".into(),
                storage,
            );
            data.write_config(&config).unwrap();
        };
        write(Some(storage(None)));
        assert_eq!(Recorder::new(dir.path()).unwrap().space(), Space::default());
        write(Some(storage(Some("20TB"))));
        assert_eq!(
            Recorder::new(dir.path()).unwrap().space(),
            Space {
                free_bytes: None,
                capacity_bytes: Some(20_000_000_000_000),
            }
        );
        write(Some(storage(Some("lots"))));
        let e = format!("{:#}", Recorder::new(dir.path()).unwrap_err());
        assert!(e.contains("config.toml") && e.contains("20TB"), "{e}");
        write(None);
        let local = Recorder::new(dir.path()).unwrap().space();
        assert!(local.free_bytes.is_some() && local.capacity_bytes.is_some());
    }
}
