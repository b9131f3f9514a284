//! The board's usage report: who uses how much, and whose backups have gone
//! stale, per subscriber, with typed statuses.
//!
//! [`rows`] computes it once, from [`Store::usage`], at a time the caller
//! passes in; `coffre-server usage` ([`crate::commands::usage`]) prints it
//! and the board's web page ([`crate::dashboard`]) renders it, so both show
//! the same numbers. [`Row::board_order`] puts what needs action first. The
//! thresholds: a subscriber is near quota from [`NEAR_QUOTA_PERCENT`], a
//! device is stale after [`DEFAULT_STALE_DAYS`] days without a backup unless
//! config.toml says otherwise, and its clock is wrong when its last snapshot
//! said a time more than [`CLOCK_SKEW_LIMIT`] from the server's.
//!
//! Every time here is the server's: a device's `last_backup` is when the
//! server received its last snapshot, never the time the PC wrote in it
//! (issue 17), so a forged clock cannot make the board say "just now".

use std::cmp::Ordering;
use std::fmt;

use anyhow::Result;
use coffre_store::{DeviceUsage, Store, Usage};

/// Quota use from which a subscriber is "near quota".
pub const NEAR_QUOTA_PERCENT: f64 = 90.0;

/// A device without a backup for this many days is stale, unless
/// `stale_days` in config.toml or `--stale-days` says otherwise.
pub const DEFAULT_STALE_DAYS: u32 = 3;

/// How far a PC's clock may be from the server's before the board says it
/// is wrong: [`coffre_store::CLOCK_SKEW_LIMIT`] (one day; its doc says why).
pub use coffre_store::CLOCK_SKEW_LIMIT;

/// A refused copy of a device's credential is reported for this many days
/// after the last one.
pub const COPY_REFUSED_DAYS: i64 = 30;

/// One thing the board should know about a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Used bytes reached the quota, or the quota is 0: new backups are
    /// refused.
    OverQuota,
    /// A device's (not revoked) last backup was refused for quota and it
    /// has committed nothing since (issue 20).
    BackupRefused {
        /// The device.
        device: String,
        /// When the last request was refused (Unix seconds, server clock).
        at: i64,
        /// How many bytes the quota lacked for that request: at least this
        /// much more is needed.
        missing: u64,
        /// What the unfinished backup uploaded before the refusal, counted
        /// in the quota and kept so that it resumes.
        leftover: u64,
    },
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
    /// A device's (not revoked) clock was more than [`CLOCK_SKEW_LIMIT`]
    /// from the server's at its last commit.
    ClockWrong {
        /// The device.
        device: String,
        /// Its clock minus the server's, in seconds (positive: ahead).
        skew: i64,
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
    /// A device's (not revoked) latest snapshot was saved with problems:
    /// paths missing, files unreadable or a hook failed (its manifest says
    /// how many, never which: issue 18).
    Incomplete {
        /// The device.
        device: String,
        /// How many problems.
        problems: u64,
    },
    /// A device (not revoked) without a complete backup within the stale
    /// days has committed a checkpoint within them: a long backup (a first
    /// one over a slow line) on its way (issue 19). Something to watch, not
    /// to act on; a checkpoint older than the stale days is stale.
    InProgress {
        /// The device.
        device: String,
        /// Whether the device has no complete backup at all (its first).
        first: bool,
        /// What the newest checkpoint holds: the bytes backed up so far.
        bytes: u64,
        /// When the server received it (Unix seconds, its clock).
        at: i64,
    },
    /// The frontend of the service that keeps this structure's backups
    /// (issue 22) has not written its record for [`SILENT_AFTER`] or
    /// more: its machine or its daemon is down, and the line shows what it
    /// last said. Backups and restores of the structure wait for it, or
    /// for a take-over (docs/operator-guide.md, "A national service").
    FrontendSilent {
        /// The frontend.
        frontend: String,
        /// Whole minutes since its record was written.
        minutes: i64,
    },
    /// Nothing to report.
    Ok,
}

/// A frontend silent for this long (its record is rewritten every 5
/// minutes) is reported: [`Status::FrontendSilent`].
pub const SILENT_AFTER: i64 = 15 * 60;

/// How urgently the board should look at a subscriber: the page lists the
/// most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attention {
    /// Backups are being refused (over quota, a backup refused) or a copy
    /// of a credential was refused: red, first.
    Alarm,
    /// Stale, never backed up, a wrong clock, an incomplete backup:
    /// something to do now.
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
            | Status::BackupRefused { .. }
            | Status::CopyRefused { .. }
            | Status::FrontendSilent { .. } => Attention::Alarm,
            Status::Stale { .. }
            | Status::NeverBackedUp { .. }
            | Status::ClockWrong { .. }
            | Status::Incomplete { .. } => Attention::Act,
            Status::NearQuota | Status::InProgress { .. } => Attention::Watch,
            Status::Ok => Attention::None,
        }
    }
}

/// The words `usage` prints: "over quota", "near quota", "stale: pc-compta
/// has no backup for 5 days", "never backed up: pc-2", "clock wrong: the
/// clock of pc-2 is 8 days ahead of the server's", "ok".
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::OverQuota => f.write_str("over quota"),
            Status::BackupRefused {
                device,
                at,
                missing,
                leftover,
            } => {
                write!(
                    f,
                    "backup refused: {device} at {} (quota full, at least {} more needed",
                    coffre_core::utc_minute(*at),
                    coffre_core::units::format_size_like(*missing, *missing)
                )?;
                if *leftover > 0 {
                    write!(
                        f,
                        "; {} it sent is kept for its next run",
                        coffre_core::units::format_size_like(*leftover, *leftover)
                    )?;
                }
                f.write_str(")")
            }
            Status::NearQuota => f.write_str("near quota"),
            Status::Stale { device, days } => {
                write!(
                    f,
                    "stale: {device} has no backup for {}",
                    coffre_core::units::count(days.unsigned_abs(), "day")
                )
            }
            Status::NeverBackedUp { device } => write!(f, "never backed up: {device}"),
            Status::ClockWrong { device, skew } => write!(
                f,
                "clock wrong: the clock of {device} is {} the server's",
                Skew(*skew)
            ),
            Status::CopyRefused { device, times } => write!(
                f,
                "copy refused: {} with a replaced credential of {device}",
                coffre_core::units::count(*times, "connection")
            ),
            Status::Incomplete { device, problems } => write!(
                f,
                "incomplete: last backup of {device} incomplete ({})",
                coffre_core::units::count(*problems, "problem")
            ),
            Status::InProgress {
                device,
                first,
                bytes,
                at,
            } => write!(
                f,
                "{} in progress: {device} ({} sent, last checkpoint {})",
                if *first { "first backup" } else { "backup" },
                coffre_core::units::format_size(*bytes),
                coffre_core::utc_minute(*at)
            ),
            Status::FrontendSilent { frontend, minutes } => write!(
                f,
                "server silent: frontend {frontend} has not been heard from for {} \
                 (take it over if its machine is lost)",
                coffre_core::units::count(minutes.unsigned_abs(), "minute")
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

/// A device clock's skew in English words: "8 days ahead of", "25 years
/// behind".
#[derive(Debug, Clone, Copy)]
pub struct Skew(pub i64);

impl Skew {
    /// (how many, unit, ahead?) in the largest unit that is at least one.
    pub fn parts(self) -> (u64, SkewUnit, bool) {
        let s = self.0.unsigned_abs();
        let (n, unit) = match s {
            0..3_600 => (s / 60, SkewUnit::Minute),
            3_600..86_400 => (s / 3_600, SkewUnit::Hour),
            86_400..63_115_200 => (s / 86_400, SkewUnit::Day),
            _ => (s / 31_557_600, SkewUnit::Year),
        };
        (n, unit, self.0 > 0)
    }
}

/// The unit a skew is told in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkewUnit {
    /// Minutes.
    Minute,
    /// Hours.
    Hour,
    /// Days (under two years).
    Day,
    /// Years.
    Year,
}

impl fmt::Display for Skew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit, ahead) = self.parts();
        let unit = match unit {
            SkewUnit::Minute => "minute",
            SkewUnit::Hour => "hour",
            SkewUnit::Day => "day",
            SkewUnit::Year => "year",
        };
        let s = if n == 1 { "" } else { "s" };
        let way = if ahead { "ahead of" } else { "behind" };
        write!(f, "{n} {unit}{s} {way}")
    }
}

/// The statuses of a subscriber, worst first ([`Attention`]: backups
/// refused, then what needs action, then what to watch): over or near
/// quota, each backup refused, each stale or never backed-up device
/// (revoked and admin devices are never stale), each device whose clock is
/// wrong, each device whose replaced credential was refused lately, each
/// device whose latest snapshot has problems, each long backup in progress;
/// or just [`Status::Ok`].
pub fn statuses(u: &Usage, now: i64, stale_days: u32) -> Vec<Status> {
    let mut out = Vec::new();
    let pct = percent(u.used_bytes, u.quota_bytes);
    // A quota of 0, or one lowered below the use, refuses every backup.
    if u.used_bytes >= u.quota_bytes {
        out.push(Status::OverQuota);
    } else if pct >= NEAR_QUOTA_PERCENT {
        out.push(Status::NearQuota);
    }
    for d in u.device_backups.iter().filter(|d| !d.revoked) {
        if d.refused_unfinished() {
            out.push(Status::BackupRefused {
                device: d.name.clone(),
                at: d.last_quota_refusal.unwrap_or_default(),
                missing: d.quota_missing,
                leftover: d.leftover_bytes,
            });
        }
    }
    let stale = i64::from(stale_days) * 86_400;
    // A technician's admin device restores and manages: it is never
    // expected to back up, so it is never stale nor "never backed up".
    for d in u
        .device_backups
        .iter()
        .filter(|d| !d.revoked && d.role == coffre_store::Role::Backup)
    {
        // A checkpoint within the stale days says a long backup is moving;
        // it counts only when the last complete backup is not recent.
        let moving = d.checkpoint.filter(|c| now - c.received <= stale);
        match (d.last_backup, moving) {
            (Some(t), _) if now - t <= stale => {}
            (_, Some(c)) => out.push(Status::InProgress {
                device: d.name.clone(),
                first: d.last_backup.is_none(),
                bytes: c.bytes,
                at: c.received,
            }),
            (Some(t), None) => out.push(Status::Stale {
                device: d.name.clone(),
                days: (now - t) / 86_400,
            }),
            // A first backup that stopped sending: stale since its last
            // checkpoint.
            (None, None) => match d.checkpoint {
                Some(c) => out.push(Status::Stale {
                    device: d.name.clone(),
                    days: (now - c.received) / 86_400,
                }),
                None => out.push(Status::NeverBackedUp {
                    device: d.name.clone(),
                }),
            },
        }
    }
    for d in u.device_backups.iter().filter(|d| clock_wrong(d)) {
        out.push(Status::ClockWrong {
            device: d.name.clone(),
            skew: d.clock_skew.unwrap_or_default(),
        });
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
    for d in u.device_backups.iter().filter(|d| !d.revoked) {
        if d.latest_problems > 0 {
            out.push(Status::Incomplete {
                device: d.name.clone(),
                problems: d.latest_problems,
            });
        }
    }
    if out.is_empty() {
        out.push(Status::Ok);
    }
    // Worst first (the card takes the colour of the first): a refused
    // backup before "near quota", a refused copy before a late PC. Stable:
    // within a level, the order above.
    out.sort_by_key(Status::attention);
    out
}

/// Whether a device (not revoked) had a clock more than [`CLOCK_SKEW_LIMIT`]
/// off the server's at its last commit.
pub fn clock_wrong(d: &DeviceUsage) -> bool {
    !d.revoked
        && d.clock_skew
            .is_some_and(|s| s.unsigned_abs() > CLOCK_SKEW_LIMIT.unsigned_abs())
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
    /// The frontend of the service that serves it (issue 22); `None` for a
    /// server on its own.
    pub frontend: Option<String>,
}

impl Row {
    /// Computes a subscriber's line at `now` (Unix seconds).
    pub fn new(usage: Usage, now: i64, stale_days: u32) -> Row {
        Row {
            percent: percent(usage.used_bytes, usage.quota_bytes),
            saving_ratio: ratio(&usage),
            status: statuses(&usage, now, stale_days),
            usage,
            frontend: None,
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

/// The report: one row per subscriber, by name, as of `now`. On a
/// frontend of a service (issue 22), every frontend's subscribers: this
/// one's from its catalogue, the others' from the usage their records
/// carry (rewritten every 5 minutes; the statuses are worked out again
/// here, at `now`), each once (this frontend's own first, then the most
/// recent record's), with [`Status::FrontendSilent`] for those of a
/// frontend that stopped writing its record.
pub fn rows(store: &Store, now: i64, stale_days: u32) -> Result<Vec<Row>> {
    Ok(rows_and_frontends(store, now, stale_days)?.0)
}

/// [`rows`], with the other frontends' records it read from the bucket
/// (none on a server on its own), for who needs both with one read.
pub fn rows_and_frontends(
    store: &Store,
    now: i64,
    stale_days: u32,
) -> Result<(Vec<Row>, Vec<coffre_store::FrontendRecord>)> {
    let service = store.service()?;
    let mut rows: Vec<Row> = store
        .usage()?
        .into_iter()
        .map(|u| {
            let mut row = Row::new(u, now, stale_days);
            row.frontend = service.as_ref().map(|s| s.frontend.clone());
            row
        })
        .collect();
    let Some(service) = service else {
        return Ok((rows, Vec::new()));
    };
    let mut seen: std::collections::HashSet<String> =
        rows.iter().map(|r| r.usage.name.clone()).collect();
    let mut records = store.frontends()?;
    records.retain(|r| r.name != service.frontend);
    records.sort_by_key(|r| std::cmp::Reverse(r.updated));
    for record in &records {
        let Some(usage) = record.usage.clone() else {
            continue;
        };
        let usage: Vec<Usage> = match serde_json::from_value(usage) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(
                    "the usage in frontend {:?}'s record is not readable: {e}",
                    record.name
                );
                continue;
            }
        };
        let silent = now.saturating_sub(record.updated);
        for u in usage {
            if !seen.insert(u.name.clone()) {
                continue;
            }
            let mut row = Row::new(u, now, stale_days);
            row.frontend = Some(record.name.clone());
            if silent >= SILENT_AFTER {
                row.status.retain(|s| *s != Status::Ok);
                row.status.insert(
                    0,
                    Status::FrontendSilent {
                        frontend: record.name.clone(),
                        minutes: silent / 60,
                    },
                );
            }
            rows.push(row);
        }
    }
    rows.sort_by(|a, b| a.usage.name.cmp(&b.usage.name));
    Ok((rows, records))
}

/// The saving of dedup and compression: what the data weighs over what it costs.
fn ratio(u: &Usage) -> Option<f64> {
    (u.used_bytes > 0 && u.protected_bytes > 0)
        .then(|| u.protected_bytes as f64 / u.used_bytes as f64)
}

pub(crate) fn words(status: &[Status]) -> Vec<String> {
    status.iter().map(ToString::to_string).collect()
}

/// `used / quota` in percent; with a quota of 0, 0 when nothing is used
/// and infinite otherwise (over quota either way: see [`statuses`]).
pub(crate) fn percent(used: u64, quota: u64) -> f64 {
    match (used, quota) {
        (0, 0) => 0.0,
        (_, 0) => f64::INFINITY,
        _ => used as f64 * 100.0 / quota as f64,
    }
}

/// The whole percentage people read, the same on the page, in `usage` and
/// in the client's `coffre status`: [`coffre_core::units::whole_percent`].
pub use coffre_core::units::whole_percent;

/// [`whole_percent`] as `usage` prints it: "<1%" for a sliver, "98%",
/// "quota 0".
pub fn percent_text(p: f64) -> String {
    match whole_percent(p) {
        None => "quota 0".into(),
        Some(0) if p > 0.0 => "<1%".into(),
        Some(n) => format!("{n}%"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                    revoked,
                    last_backup: t,
                    ..DeviceUsage::named(n)
                })
                .collect(),
        }
    }

    /// Issue 19: a device whose only snapshots are checkpoints is "first
    /// backup in progress" while they keep coming, stale once they stop;
    /// a later long run shows only once the last complete backup is old.
    #[test]
    fn checkpoints_say_a_backup_is_in_progress_until_they_stop() {
        let now = 100 * 86_400;
        let at = |received: i64| {
            Some(coffre_store::CheckpointUsage {
                received,
                bytes: 12_000_000_000,
                files: 40,
            })
        };
        let mut u = usage(10, vec![("pc", None, false)]);
        u.device_backups[0].checkpoint = at(now - 3_600);
        let s = statuses(&u, now, 3);
        assert_eq!(
            s,
            [Status::InProgress {
                device: "pc".into(),
                first: true,
                bytes: 12_000_000_000,
                at: now - 3_600
            }]
        );
        assert_eq!(s[0].attention(), Attention::Watch);
        assert!(
            s[0].to_string()
                .starts_with("first backup in progress: pc (11.2 GiB sent, last checkpoint"),
            "{}",
            s[0]
        );
        // Stopped for five days: stale, counted from the last checkpoint.
        u.device_backups[0].checkpoint = at(now - 5 * 86_400);
        assert_eq!(
            statuses(&u, now, 3),
            [Status::Stale {
                device: "pc".into(),
                days: 5
            }]
        );
        // A recent complete backup: nothing to say about a later run.
        u.device_backups[0].last_backup = Some(now - 86_400);
        u.device_backups[0].checkpoint = at(now - 60);
        assert_eq!(statuses(&u, now, 3), [Status::Ok]);
        // An old complete backup and a moving run: in progress, not stale.
        u.device_backups[0].last_backup = Some(now - 10 * 86_400);
        assert!(matches!(
            statuses(&u, now, 3)[..],
            [Status::InProgress { first: false, .. }]
        ));
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
    fn a_wrong_clock_is_said_and_needs_action() {
        let now = 100 * 86_400;
        let mut u = usage(10, vec![("pc", Some(now), false), ("old", Some(now), true)]);
        u.device_backups[0].clock_skew = Some(CLOCK_SKEW_LIMIT);
        u.device_backups[1].clock_skew = Some(i64::MIN);
        assert_eq!(said(&u, now), ["ok"], "a day off, or a revoked PC, is fine");
        u.device_backups[0].clock_skew = Some(8 * 86_400 + 5);
        assert_eq!(
            said(&u, now),
            ["clock wrong: the clock of pc is 8 days ahead of the server's"]
        );
        assert_eq!(Row::new(u.clone(), now, 3).attention(), Attention::Act);
        u.device_backups[0].clock_skew = Some(1_000_000_000 - 1_800_000_000);
        assert_eq!(
            said(&u, now),
            ["clock wrong: the clock of pc is 25 years behind the server's"]
        );
        u.device_backups[0].clock_skew = Some(i64::MAX);
        assert!(said(&u, now)[0].contains("ahead of"));
    }

    #[test]
    fn a_refused_copy_is_reported_for_a_month() {
        let now = 100 * 86_400;
        let mut u = usage(10, vec![("pc", Some(now - 3600), false)]);
        u.device_backups[0].clone_refusals = 2;
        u.device_backups[0].last_clone_refusal = Some(now - 86_400);
        assert_eq!(
            said(&u, now),
            ["copy refused: 2 connections with a replaced credential of pc"]
        );
        assert_eq!(Row::new(u.clone(), now, 3).attention(), Attention::Alarm);
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
                "e-over",
                "c-stale",
                "d-never",
                "f-near-and-stale",
                "b-near",
                "a-ok"
            ]
        );
        assert_eq!(rows[0].attention(), Attention::Alarm);
        assert_eq!(rows[1].attention(), Attention::Act);
        assert_eq!(rows[4].attention(), Attention::Watch);
        assert_eq!(rows[5].attention(), Attention::None);
    }

    /// Issue 20: a quota of 0, or one below the use, is red whatever the
    /// percentage says; and the percentage people read is the same on the
    /// page and in `usage`.
    #[test]
    fn a_quota_of_zero_or_below_use_is_over_quota() {
        let now = 100 * 86_400;
        let mut u = usage(0, vec![("pc", Some(now), false)]);
        u.quota_bytes = 0;
        assert_eq!(statuses(&u, now, 3), [Status::OverQuota]);
        u.used_bytes = 12;
        let row = Row::new(u.clone(), now, 3);
        assert_eq!(row.status, [Status::OverQuota]);
        assert_eq!(row.attention(), Attention::Alarm);
        assert_eq!(percent_text(row.percent), "quota 0");
        u.quota_bytes = 10;
        assert_eq!(statuses(&u, now, 3), [Status::OverQuota]);
        assert_eq!(percent_text(Row::new(u, now, 3).percent), "120%");
        // 98.96 % reads 98 % everywhere, 99.99 % never 100 %.
        assert_eq!(whole_percent(98.96), Some(98));
        assert_eq!(whole_percent(99.99), Some(99));
        assert_eq!(whole_percent(100.4), Some(100));
        assert_eq!(percent_text(0.2), "<1%");
        for p in [0.2, 12.5, 98.96, 99.99, 100.0, 130.6] {
            let page = crate::dashboard::i18n::Lang::En.percent(p);
            assert_eq!(page, percent_text(p), "{p}");
        }
    }

    /// Issue 20: a technician's admin device never backs up and never
    /// raises "never backed up" nor "stale"; a backup device does.
    #[test]
    fn an_admin_device_is_never_late() {
        let now = 100 * 86_400;
        let mut u = usage(10, vec![("pc", Some(now), false), ("laptop", None, false)]);
        u.device_backups[1].role = coffre_store::Role::Admin;
        assert_eq!(statuses(&u, now, 3), [Status::Ok]);
        u.device_backups[1].last_backup = Some(now - 40 * 86_400);
        assert_eq!(statuses(&u, now, 3), [Status::Ok]);
        u.device_backups[1].role = coffre_store::Role::Backup;
        assert!(matches!(statuses(&u, now, 3)[..], [Status::Stale { .. }]));
    }

    /// Issue 20: a backup refused for quota shows until the device commits
    /// again, red, first, with what was missing and what it left.
    #[test]
    fn a_refused_backup_shows_until_the_next_commit() {
        let now = 100 * 86_400;
        let mut u = usage(500, vec![("pc", Some(now - 86_400), false)]);
        let d = &mut u.device_backups[0];
        d.quota_refusals = 3;
        d.last_quota_refusal = Some(now - 3_600);
        d.quota_missing = 2_000_000;
        d.leftover_bytes = 40_000_000;
        let s = statuses(&u, now, 3);
        assert_eq!(
            s,
            [Status::BackupRefused {
                device: "pc".into(),
                at: now - 3_600,
                missing: 2_000_000,
                leftover: 40_000_000
            }]
        );
        assert_eq!(s[0].attention(), Attention::Alarm);
        assert_eq!(
            s[0].to_string(),
            "backup refused: pc at 1970-04-10 23:00 UTC (quota full, at least 2 MB more needed; \
             40 MB it sent is kept for its next run)"
        );
        // Near the quota too: the refusal still comes first (the card's
        // colour is the first status's).
        u.used_bytes = 950;
        assert!(matches!(
            statuses(&u, now, 3)[..],
            [Status::BackupRefused { .. }, Status::NearQuota]
        ));
        u.used_bytes = 500;
        // The next commit clears it (the count stays for /metrics).
        u.device_backups[0].last_backup = Some(now - 60);
        assert_eq!(statuses(&u, now, 3), [Status::Ok]);
        // A revoked device's refusal is history.
        u.device_backups[0].last_backup = Some(now - 86_400);
        u.device_backups[0].revoked = true;
        assert_eq!(statuses(&u, now, 3), [Status::Ok]);
    }
}
