//! The server's own upkeep: garbage collection and verify over every
//! subscriber, the record of each task's last run (for `/metrics`), and the
//! daemon's nightly run (retention, garbage collection, then a verify of a
//! thirtieth of the packs) at `nightly_at` (config.toml).
//!
//! Every time these tasks decide by is read from the store's clock
//! ([`Store::now`]): when the next night is, which part of the packs tonight's
//! verify reads, when a recorded run started (and GC's grace period, inside
//! the store). `Instant` only measures how long a run took; tokio's timer
//! only sleeps until the night.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use coffre_store::{GcOptions, GcReport, MaintenanceRun, Store, VerifyOptions, VerifyReport};
use serde::Serialize;
use tracing::{info, warn};

use crate::alerts::Alerts;
use crate::history::{record_logged, Recorder};
use crate::retention;

/// The collection of one subscriber: its report, or why it failed.
#[derive(Debug, Serialize)]
pub struct Collected {
    /// The subscriber.
    pub subscriber: String,
    /// What was done (absent if it failed).
    #[serde(flatten)]
    pub report: Option<GcReport>,
    /// Why it failed (a damaged manifest, another collection running...).
    pub error: Option<String>,
}

/// Collects the garbage of `only` one subscriber, or of each in turn. One
/// subscriber's failure does not stop the others.
pub fn collect_garbage(
    store: &Store,
    only: Option<&str>,
    opts: &GcOptions,
) -> Result<Vec<Collected>> {
    let names = retention::subscriber_names(store, only)?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let (report, error) = match store.gc(&name, opts) {
            Ok(r) => (Some(r), None),
            Err(coffre_store::Error::GcRunning) if out.is_empty() => {
                return Err(coffre_store::Error::GcRunning.into())
            }
            Err(e) => (None, Some(e.to_string())),
        };
        out.push(Collected {
            subscriber: name,
            report,
            error,
        });
    }
    Ok(out)
}

/// Verifies `only` one subscriber, or each in turn.
pub fn verify_all(
    store: &Store,
    only: Option<&str>,
    opts: &VerifyOptions,
) -> Result<Vec<VerifyReport>> {
    retention::subscriber_names(store, only)?
        .iter()
        .map(|name| Ok(store.verify(name, opts)?))
        .collect()
}

/// Part of the packs the nightly verify checks: one in this many, a
/// different part each night, so every pack is read once a month.
pub const NIGHTLY_VERIFY_PARTS: u64 = 30;

/// Runs `task`, recording when it started, how long it took and whether it
/// succeeded (a failure to record is logged, never hides the task's result).
pub fn timed<T>(store: &Store, task: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let started = store.now();
    let clock = Instant::now();
    let result = f();
    let run = MaintenanceRun {
        task: task.to_string(),
        started,
        seconds: clock.elapsed().as_secs_f64(),
        ok: result.is_ok(),
    };
    if let Err(e) = store.record_run(&run) {
        warn!("cannot record the {task} run: {e}");
    }
    result
}

/// The daemon's nightly upkeep: sleeps until `at` local time, applies every
/// retention policy, then collects the garbage, logs what it did, records
/// the day's line of the usage history (what GC freed shows the same day),
/// sends the alerts' digest (with `[alerts]`), and again the next night.
/// Never returns.
pub async fn nightly(
    store: Arc<Store>,
    at: (i8, i8),
    recorder: Recorder,
    alerts: Option<Arc<Alerts>>,
) {
    loop {
        let wait = match next_night(store.now(), at) {
            Ok((next, wait)) => {
                info!(next = %next.strftime("%Y-%m-%d %H:%M %Z"), "next nightly run (retention, then garbage collection)");
                wait
            }
            Err(e) => {
                warn!("cannot compute the next nightly run: {e}; retrying in an hour");
                Duration::from_secs(3_600)
            }
        };
        tokio::time::sleep(wait).await;
        let night_store = store.clone();
        let recorder = recorder.clone();
        let done = tokio::task::spawn_blocking(move || {
            night(&night_store);
            record_logged(&night_store, &recorder);
        })
        .await;
        if let Err(e) = done {
            warn!("nightly task failed: {e}");
        }
        if let Some(alerts) = &alerts {
            match alerts.digest(&store).await {
                Ok(sent) => info!(sent, "alerts: nightly digest done"),
                Err(e) => warn!("alerts: no digest tonight: {e:#}"),
            }
        }
    }
}

/// The next nightly run after `now` (Unix seconds), at `at` in this
/// server's time zone, and how long until then (at least a second).
pub fn next_night(now: i64, at: (i8, i8)) -> Result<(jiff::ZonedDateTime, Duration)> {
    let now = jiff::Timestamp::from_second(now)?.to_zoned_datetime(jiff::tz::TimeZone::system());
    let next = retention::next_run(&now, at)?;
    let secs = (next.timestamp().as_second() - now.timestamp().as_second()).max(1);
    Ok((next, Duration::from_secs(secs as u64)))
}

/// One night's work, logged.
pub fn night(store: &Store) {
    let started = Instant::now();
    match timed(store, "prune", || {
        // One subscriber at a time: the decisions of every snapshot of a
        // national store at once (3 million) took 0.9 GB (issue 22).
        let (mut removed, mut total) = (0, 0);
        for name in retention::subscriber_names(store, None)? {
            let p = retention::plan(store, Some(&name))?;
            removed += retention::apply(store, &p)?;
            total += p.len();
        }
        Ok((removed, total))
    }) {
        Ok((removed, total)) => info!(
            removed,
            snapshots = total,
            seconds = started.elapsed().as_secs_f64(),
            "retention applied"
        ),
        Err(e) => warn!("retention failed: {e:#}"),
    }
    let started = Instant::now();
    match timed(store, "gc", || {
        collect_garbage(store, None, &GcOptions::default())
    }) {
        Ok(all) => {
            for c in &all {
                match (&c.report, &c.error) {
                    (Some(r), _) if r.postponed.is_some() => info!(
                        subscriber = %c.subscriber,
                        "garbage collection postponed: {}",
                        r.postponed.as_deref().unwrap_or_default()
                    ),
                    (Some(r), _) => info!(
                        subscriber = %c.subscriber,
                        freed = r.used_before.saturating_sub(r.used_after),
                        chunks = r.deleted_chunks,
                        packs_deleted = r.packs_deleted,
                        packs_repacked = r.packs_repacked,
                        "garbage collected"
                    ),
                    (None, e) => warn!(
                        subscriber = %c.subscriber,
                        "garbage collection failed: {}",
                        e.as_deref().unwrap_or_default()
                    ),
                }
            }
            info!(
                subscribers = all.len(),
                seconds = started.elapsed().as_secs_f64(),
                "garbage collection done"
            );
        }
        Err(e) => warn!("garbage collection failed: {e:#}"),
    }
    // A rotating part of the packs, every manifest; damage makes the run
    // count as failed (`coffre_verify_last_run_success 0`).
    let night = store.now().div_euclid(86_400) as u64;
    let opts = VerifyOptions {
        sample: Some((NIGHTLY_VERIFY_PARTS, night % NIGHTLY_VERIFY_PARTS)),
        repair: false,
    };
    let verified = timed(store, "verify", || {
        let reports = verify_all(store, None, &opts)?;
        let damaged: Vec<&VerifyReport> = reports.iter().filter(|r| !r.is_clean()).collect();
        for r in &reports {
            for d in &r.disputes {
                warn!(subscriber = %r.subscriber, "{d}");
            }
        }
        for r in &damaged {
            warn!(
                subscriber = %r.subscriber,
                damaged_chunks = r.damaged.len(),
                damaged_manifests = r.damaged_manifests.len(),
                affected_snapshots = r.affected.len(),
                "DAMAGE FOUND by the nightly verify: run `coffre-server verify {} --repair`",
                r.subscriber
            );
        }
        anyhow::ensure!(
            damaged.is_empty(),
            "damage found in {}",
            coffre_core::units::count(damaged.len(), "subscriber")
        );
        Ok(reports.iter().map(|r| r.packs).sum::<u64>())
    });
    match verified {
        Ok(packs) => info!(packs, "nightly verify: no damage"),
        Err(e) => warn!("nightly verify: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_store::{Clock, ManualClock, PackStorage};

    #[test]
    fn the_nightly_times_come_from_the_stores_clock() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let store =
            Store::create_with_clock(dir.path(), &PackStorage::Local, clock.clone()).unwrap();

        // A recorded run starts when the store's clock says.
        timed(&store, "gc", || Ok(())).unwrap();
        clock.advance(3 * 86_400);
        timed(&store, "prune", || Ok(())).unwrap();
        let mut runs = store.maintenance_runs().unwrap();
        runs.sort_by(|a, b| a.task.cmp(&b.task));
        assert_eq!(
            runs.iter()
                .map(|r| (r.task.as_str(), r.started))
                .collect::<Vec<_>>(),
            [("gc", 1_800_000_000), ("prune", 1_800_259_200)]
        );

        // The next night is counted from the clock, whatever the wall clock.
        let now = clock.now();
        let (next, wait) = next_night(now, (3, 30)).unwrap();
        assert_eq!(next.timestamp().as_second(), now + wait.as_secs() as i64);
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(86_400 + 3_600));
        assert_eq!((next.hour(), next.minute()), (3, 30));
    }
}
