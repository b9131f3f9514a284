//! Retention on the server: each subscriber's policy applied to each of its
//! devices (`coffre_store::retention` decides), by `coffre-server prune` and
//! by the daemon every night at `nightly_at` (config.toml, see
//! [`crate::maintenance`]).
//!
//! Retention goes by the time the server RECEIVED each snapshot (its own
//! clock), never by the time a PC wrote in its manifest: a PC's clock may be
//! wrong or forged (issue 17). The PC's time is kept for display only.

use std::collections::BTreeMap;

use anyhow::Result;
use coffre_store::retention::Rule;
use coffre_store::{ChunkId, Store};
use serde::Serialize;

/// One snapshot and what retention decided.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The subscriber.
    pub subscriber: String,
    /// The device that made it.
    pub device: String,
    /// The snapshot id, hex.
    pub id: String,
    /// When the server received it (Unix seconds, server clock): what the
    /// policy went by.
    pub received: i64,
    /// When the PC says it was made (Unix seconds, the PC's clock): shown
    /// only.
    pub pc_time: i64,
    /// A checkpoint (a partial snapshot of a long backup, issue 19): kept
    /// only while it is the device's newest and newer than every complete
    /// one, and never counted by the policy.
    pub checkpoint: bool,
    /// Kept or removed.
    pub keep: bool,
    /// The rules that keep it (empty: removed).
    pub rules: Vec<String>,
    #[serde(skip)]
    snapshot: ChunkId,
}

/// Unix seconds as this server's local civil seconds (the UTC offset at that
/// instant added), so that "daily" follows the association's days.
pub fn local_seconds(t: i64) -> i64 {
    match jiff::Timestamp::from_second(t) {
        Ok(ts) => {
            t + i64::from(
                ts.to_zoned_datetime(jiff::tz::TimeZone::system())
                    .offset()
                    .seconds(),
            )
        }
        Err(_) => t,
    }
}

/// What the policies decide for `only` one subscriber, or all of them.
pub fn plan(store: &Store, only: Option<&str>) -> Result<Vec<Decision>> {
    let mut decisions = Vec::new();
    for name in &subscriber_names(store, only)? {
        let policy = store.retention_of(name)?;
        let snapshots = store.snapshots_of(name)?;
        let mut devices: Vec<&str> = snapshots.iter().map(|s| s.device.as_str()).collect();
        devices.sort_unstable();
        devices.dedup();
        for device in devices {
            let mine: Vec<_> = snapshots.iter().filter(|s| s.device == device).collect();
            let times: Vec<i64> = mine.iter().map(|s| local_seconds(s.received)).collect();
            let checkpoints: Vec<bool> = mine.iter().map(|s| s.checkpoint).collect();
            for (s, rules) in mine
                .iter()
                .zip(policy.apply_with_checkpoints(&times, &checkpoints))
            {
                decisions.push(Decision {
                    subscriber: name.clone(),
                    device: device.to_string(),
                    id: s.id.to_hex(),
                    received: s.received,
                    pc_time: s.time,
                    checkpoint: s.checkpoint,
                    keep: !rules.is_empty(),
                    rules: rules.iter().map(Rule::to_string).collect(),
                    snapshot: s.id,
                });
            }
        }
    }
    Ok(decisions)
}

/// The name of `only` (checked to exist), or of every subscriber.
pub fn subscriber_names(store: &Store, only: Option<&str>) -> Result<Vec<String>> {
    Ok(match only {
        Some(n) => vec![store.subscriber(n)?.name],
        None => store
            .list_subscribers()?
            .into_iter()
            .map(|s| s.name)
            .collect(),
    })
}

/// Removes what `plan` did not keep, one subscriber at a time in one
/// transaction each ([`Store::remove_snapshots`]); returns how many
/// snapshots went.
pub fn apply(store: &Store, plan: &[Decision]) -> Result<usize> {
    let mut by_subscriber: BTreeMap<&str, Vec<ChunkId>> = BTreeMap::new();
    for d in plan.iter().filter(|d| !d.keep) {
        by_subscriber
            .entry(d.subscriber.as_str())
            .or_default()
            .push(d.snapshot);
    }
    let mut removed = 0;
    for (name, ids) in by_subscriber {
        removed += store.remove_snapshots(name, &ids)? as usize;
    }
    Ok(removed)
}

/// Parses `nightly_at` ("HH:MM", or "off").
pub fn parse_nightly(text: &str) -> Result<Option<(i8, i8)>, String> {
    let text = text.trim();
    if text == "off" {
        return Ok(None);
    }
    let bad = || {
        format!("nightly_at = {text:?}: give a time like \"03:30\" (24-hour, this server's local time), or \"off\"")
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let h: i8 = h
        .trim()
        .parse()
        .ok()
        .filter(|h| (0..24).contains(h))
        .ok_or_else(bad)?;
    let m: i8 = m
        .trim()
        .parse()
        .ok()
        .filter(|m| (0..60).contains(m))
        .ok_or_else(bad)?;
    Ok(Some((h, m)))
}

/// The next local HH:MM strictly after `now`.
pub fn next_run(now: &jiff::ZonedDateTime, at: (i8, i8)) -> Result<jiff::ZonedDateTime> {
    let today = now
        .date()
        .at(at.0, at.1, 0, 0)
        .to_zoned_datetime(now.time_zone().clone())?;
    if today > *now {
        Ok(today)
    } else {
        Ok(now
            .date()
            .tomorrow()?
            .at(at.0, at.1, 0, 0)
            .to_zoned_datetime(now.time_zone().clone())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nightly_time_parses_and_the_next_run_is_tonight_or_tomorrow() {
        assert_eq!(parse_nightly("03:30").unwrap(), Some((3, 30)));
        assert_eq!(parse_nightly("off").unwrap(), None);
        for bad in ["3h", "24:00", "12:60", ""] {
            assert!(parse_nightly(bad).unwrap_err().contains("03:30"), "{bad}");
        }
        let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        let at = |s: &str| {
            jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M", s)
                .unwrap()
                .to_zoned_datetime(tz.clone())
                .unwrap()
        };
        assert_eq!(
            next_run(&at("2026-11-23 01:00"), (3, 30)).unwrap(),
            at("2026-11-23 03:30")
        );
        assert_eq!(
            next_run(&at("2026-11-23 03:30"), (3, 30)).unwrap(),
            at("2026-11-24 03:30")
        );
        // Across the end of summer time, still 03:30 local.
        assert_eq!(
            next_run(&at("2026-10-24 23:00"), (3, 30)).unwrap(),
            at("2026-10-25 03:30")
        );
    }
}
