//! The board's usage report: who uses how much, and whose backups have gone
//! stale, per subscriber, with typed statuses.
//!
//! [`rows`] computes it once, from [`Store::usage`], at a time the caller
//! passes in; `coffre-server usage` ([`crate::commands::usage`]) prints it
//! and the board's web page ([`crate::dashboard`]) renders it, so both show
//! the same numbers. [`Row::board_order`] puts what needs action first. The
//! thresholds: a subscriber is near quota from [`NEAR_QUOTA_PERCENT`], a
//! device is stale after [`DEFAULT_STALE_DAYS`] days without a backup unless
//! config.toml says otherwise.

use std::cmp::Ordering;
use std::fmt;

use anyhow::Result;
use coffre_store::{Store, Usage};

/// Quota use from which a subscriber is "near quota".
pub const NEAR_QUOTA_PERCENT: f64 = 90.0;

/// A device without a backup for this many days is stale, unless
/// `stale_days` in config.toml or `--stale-days` says otherwise.
pub const DEFAULT_STALE_DAYS: u32 = 3;

/// A refused copy of a device's credential is reported for this many days
/// after the last one.
pub const COPY_REFUSED_DAYS: i64 = 30;

/// One thing the board should know about a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Used bytes reached the quota: new backups are refused.
    OverQuota,
    /// [`NEAR_QUOTA_PERCENT`] or more of the quota is used.
    NearQuota,
    /// A device (not revoked) has no backup for more than the stale days.
    Stale {
        /// The device.
        device: String,
        /// Whole days since its last backup.
        days: i64,
    },
    /// A device (not revoked) was enrolled but never backed up.
    NeverBackedUp {
        /// The device.
        device: String,
    },
    /// Connections that presented a replaced credential of a device (a
    /// cloned disk, a token enrolled twice, an installation replaced by
    /// `device reissue`) were refused, the last within
    /// [`COPY_REFUSED_DAYS`] days.
    CopyRefused {
        /// The device.
        device: String,
        /// How many were refused, in all.
        times: u64,
    },
    /// Nothing to report.
    Ok,
}

/// How urgently the board should look at a subscriber: the page lists the
/// most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attention {
    /// Over quota, stale or never backed up: something to do now.
    Act,
    /// Near quota: something to plan.
    Watch,
    /// Nothing to do.
    None,
}

impl Status {
    /// How urgent this status is.
    pub fn attention(&self) -> Attention {
        match self {
            Status::OverQuota
            | Status::Stale { .. }
            | Status::NeverBackedUp { .. }
            | Status::CopyRefused { .. } => Attention::Act,
            Status::NearQuota => Attention::Watch,
            Status::Ok => Attention::None,
        }
    }
}

/// The words `usage` prints: "over quota", "near quota", "stale: pc-compta
/// has no backup for 5 days", "never backed up: pc-2", "ok".
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::OverQuota => f.write_str("over quota"),
            Status::NearQuota => f.write_str("near quota"),
            Status::Stale { device, days } => {
                write!(f, "stale: {device} has no backup for {days} days")
            }
            Status::NeverBackedUp { device } => write!(f, "never backed up: {device}"),
            Status::CopyRefused { device, times } => write!(
                f,
                "copy refused: {times} connection(s) with a replaced credential of {device}"
            ),
            Status::Ok => f.write_str("ok"),
        }
    }
}

/// The status of a subscriber in plain words, worst first: "over quota",
/// "near quota", "stale: pc-compta has no backup for 5 days", "never backed
/// up: pc-2", or "ok" (what `usage` prints; [`statuses`] are the same, typed).
pub fn status(u: &Usage, now: i64, stale_days: u32) -> Vec<String> {
    words(&statuses(u, now, stale_days))
}

/// The statuses of a subscriber, worst first: over or near quota, then each
/// stale or never backed-up device (revoked devices are never stale), then
/// each device whose replaced credential was refused lately, or just
/// [`Status::Ok`].
pub fn statuses(u: &Usage, now: i64, stale_days: u32) -> Vec<Status> {
    let mut out = Vec::new();
    let pct = percent(u.used_bytes, u.quota_bytes);
    if u.used_bytes >= u.quota_bytes && u.quota_bytes > 0 {
        out.push(Status::OverQuota);
    } else if pct >= NEAR_QUOTA_PERCENT {
        out.push(Status::NearQuota);
    }
    for d in u.device_backups.iter().filter(|d| !d.revoked) {
        match d.last_backup {
            Some(t) if now - t > i64::from(stale_days) * 86_400 => out.push(Status::Stale {
                device: d.name.clone(),
                days: (now - t) / 86_400,
            }),
            Some(_) => {}
            None => out.push(Status::NeverBackedUp {
                device: d.name.clone(),
            }),
        }
    }
    for d in u.device_backups.iter().filter(|d| !d.revoked) {
        if d.last_clone_refusal
            .is_some_and(|t| now - t <= COPY_REFUSED_DAYS * 86_400)
        {
            out.push(Status::CopyRefused {
                device: d.name.clone(),
                times: d.clone_refusals,
            });
        }
    }
    if out.is_empty() {
        out.push(Status::Ok);
    }
    out
}

/// One subscriber's line of the report.
#[derive(Debug, Clone)]
pub struct Row {
    /// What the store knows: quota, used bytes, snapshots, devices.
    pub usage: Usage,
    /// `used / quota` in percent (above 100 when over quota).
    pub percent: f64,
    /// What its data weighs over what it costs (`None` without data).
    pub saving_ratio: Option<f64>,
    /// Its statuses, worst first (at least one).
    pub status: Vec<Status>,
}

impl Row {
    /// Computes a subscriber's line at `now` (Unix seconds).
    pub fn new(usage: Usage, now: i64, stale_days: u32) -> Row {
        Row {
            percent: percent(usage.used_bytes, usage.quota_bytes),
            saving_ratio: ratio(&usage),
            status: statuses(&usage, now, stale_days),
            usage,
        }
    }

    /// The most urgent of its statuses.
    pub fn attention(&self) -> Attention {
        self.status
            .iter()
            .map(Status::attention)
            .min()
            .unwrap_or(Attention::None)
    }

    /// The board's order: what needs acting on first, then what to watch,
    /// then the rest; by name within each.
    pub fn board_order(a: &Row, b: &Row) -> Ordering {
        a.attention()
            .cmp(&b.attention())
            .then_with(|| a.usage.name.cmp(&b.usage.name))
    }
}

/// The report: one row per subscriber, by name, as of `now`.
pub fn rows(store: &Store, now: i64, stale_days: u32) -> Result<Vec<Row>> {
    Ok(store
        .usage()?
        .into_iter()
        .map(|u| Row::new(u, now, stale_days))
        .collect())
}

/// The saving of dedup and compression: what the data weighs over what it costs.
fn ratio(u: &Usage) -> Option<f64> {
    (u.used_bytes > 0 && u.protected_bytes > 0)
        .then(|| u.protected_bytes as f64 / u.used_bytes as f64)
}

pub(crate) fn words(status: &[Status]) -> Vec<String> {
    status.iter().map(ToString::to_string).collect()
}

/// `used / quota` in percent (0 when there is no quota).
pub(crate) fn percent(used: u64, quota: u64) -> f64 {
    if quota == 0 {
        0.0
    } else {
        used as f64 * 100.0 / quota as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_store::DeviceUsage;

    fn usage(used: u64, devices: Vec<(&str, Option<i64>, bool)>) -> Usage {
        Usage {
            name: "asso".into(),
            quota_bytes: 1000,
            used_bytes: used,
            snapshots: 0,
            logical_bytes: 0,
            last_backup: None,
            devices: devices.len() as u64,
            protected_bytes: 0,
            device_backups: devices
                .into_iter()
                .map(|(n, t, revoked)| DeviceUsage {
                    name: n.into(),
                    revoked,
                    last_backup: t,
                    snapshots: 0,
                    latest_bytes: 0,
                    clone_refusals: 0,
                    last_clone_refusal: None,
                })
                .collect(),
        }
    }

    fn said(u: &Usage, now: i64) -> Vec<String> {
        status(u, now, 3)
    }

    #[test]
    fn the_status_reads_in_plain_words() {
        let now = 100 * 86_400;
        assert_eq!(
            said(&usage(10, vec![("pc", Some(now - 3600), false)]), now),
            ["ok"]
        );
        assert_eq!(said(&usage(950, vec![]), now), ["near quota"]);
        assert_eq!(said(&usage(1000, vec![]), now), ["over quota"]);
        assert_eq!(
            said(
                &usage(
                    10,
                    vec![
                        ("pc", Some(now - 5 * 86_400), false),
                        ("old", Some(0), true),
                        ("new", None, false)
                    ]
                ),
                now
            ),
            ["stale: pc has no backup for 5 days", "never backed up: new"]
        );
    }

    #[test]
    fn a_refused_copy_is_reported_for_a_month() {
        let now = 100 * 86_400;
        let mut u = usage(10, vec![("pc", Some(now - 3600), false)]);
        u.device_backups[0].clone_refusals = 2;
        u.device_backups[0].last_clone_refusal = Some(now - 86_400);
        assert_eq!(
            said(&u, now),
            ["copy refused: 2 connection(s) with a replaced credential of pc"]
        );
        assert_eq!(Row::new(u.clone(), now, 3).attention(), Attention::Act);
        u.device_backups[0].last_clone_refusal = Some(now - 31 * 86_400);
        assert_eq!(said(&u, now), ["ok"]);
    }

    #[test]
    fn the_board_sees_what_needs_acting_on_first() {
        let now = 100 * 86_400;
        let row = |name: &str, used, devices| {
            let mut u = usage(used, devices);
            u.name = name.into();
            Row::new(u, now, 3)
        };
        let mut rows = [
            row("a-ok", 10, vec![("pc", Some(now), false)]),
            row("b-near", 950, vec![("pc", Some(now), false)]),
            row("c-stale", 10, vec![("pc", Some(now - 9 * 86_400), false)]),
            row("d-never", 10, vec![("pc", None, false)]),
            row("e-over", 1000, vec![]),
            row("f-near-and-stale", 950, vec![("pc", Some(0), false)]),
        ];
        rows.sort_by(Row::board_order);
        let names: Vec<&str> = rows.iter().map(|r| r.usage.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "c-stale",
                "d-never",
                "e-over",
                "f-near-and-stale",
                "b-near",
                "a-ok"
            ]
        );
        assert_eq!(rows[0].attention(), Attention::Act);
        assert_eq!(rows[4].attention(), Attention::Watch);
        assert_eq!(rows[5].attention(), Attention::None);
    }
}
