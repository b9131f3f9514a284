//! The daily history of usage (issue 20): what it records and how long it
//! keeps it. The SQL is `catalog/history.rs`; [`crate::Store::record_history`]
//! writes today's line and [`crate::Store::history`] reads them back, for
//! every shown subscriber in one query. This module imports nothing of the
//! crate: it is the vocabulary both use.
//!
//! # One line per subscriber and day
//!
//! A day is a count of days since 1970-01-01 by the store's clock
//! (`Store::now() / 86 400`, UTC), never the wall clock. Recording twice the
//! same day replaces that day's line (the last figures of the day win). The
//! server's own line (all subscribers together, and the free space and
//! capacity of where the packs are) is kept under subscriber id 0, which no
//! subscriber has (their ids start at 1).
//!
//! # Bounded for years: the thinning rule
//!
//! Each time a new day is recorded, older lines are thinned:
//!
//! | age (days before today) | kept |
//! | --- | --- |
//! | 0 to [`DAILY_DAYS`] − 1 (100 days) | every day |
//! | [`DAILY_DAYS`] to [`WEEKLY_DAYS`] − 1 (to ~13 months) | one a week: the earliest line of each 7-day block (`day / 7`) |
//! | [`WEEKLY_DAYS`] to [`KEPT_DAYS`] − 1 (to 10 years) | one a month: the earliest line of each calendar month (UTC) |
//! | [`KEPT_DAYS`] and older | none |
//!
//! So a subscriber has at most 100 + 44 + 109 = [`MAX_LINES`] lines, however
//! long the server runs: a few KB of catalogue per subscriber
//! (docs/store.md gives the measured size for 12 and for 10,000
//! subscribers). The forecast needs the last 30 daily points; the board's
//! 12-month chart shows daily points for the last 100 days and weekly
//! before; the monthly lines keep the long view for `usage --history`.

use serde::Serialize;

/// Seconds in a day.
pub const DAY_SECONDS: i64 = 86_400;

/// Lines younger than this many days are all kept (one per day).
pub const DAILY_DAYS: i64 = 100;

/// Lines from [`DAILY_DAYS`] to this many days old are kept one a week.
pub const WEEKLY_DAYS: i64 = 400;

/// Lines from [`WEEKLY_DAYS`] to this many days old (ten years) are kept one
/// a calendar month; older ones are removed.
pub const KEPT_DAYS: i64 = 3_660;

/// The most lines one subscriber (or the server) keeps: 100 daily, at most
/// 44 weekly (300 days touch at most 44 blocks of 7), at most 109 monthly
/// (3,260 days touch at most 109 calendar months).
pub const MAX_LINES: usize = 100 + 44 + 109;

/// The day (since 1970-01-01, UTC) of a Unix time in seconds.
pub fn day_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(DAY_SECONDS)
}

/// One subscriber's line of one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DayUsage {
    /// Days since 1970-01-01 (UTC, the store's clock).
    pub day: i64,
    /// What the quota counts: its packs and manifests (`Usage::used_bytes`).
    pub used_bytes: u64,
    /// Its quota that day.
    pub quota_bytes: u64,
    /// What its data weighs: each device's latest snapshot, summed
    /// (`Usage::protected_bytes`).
    pub data_bytes: u64,
    /// Snapshots kept.
    pub snapshots: u64,
}

/// The server's line of one day: all subscribers together, and where the
/// packs live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServerDay {
    /// Days since 1970-01-01 (UTC, the store's clock).
    pub day: i64,
    /// Bytes stored for all subscribers (the sum of their `used_bytes`).
    pub stored_bytes: u64,
    /// Their data, summed.
    pub data_bytes: u64,
    /// Their snapshots, summed.
    pub snapshots: u64,
    /// Free space where the packs are, if known (see [`Space`]).
    pub free_bytes: Option<u64>,
    /// The size of where the packs are, if known.
    pub capacity_bytes: Option<u64>,
}

impl ServerDay {
    /// What counts against the capacity: the file system's used space
    /// (capacity − free: other files on the disk fill it too), or without a
    /// free figure what coffre stores.
    pub fn filled_bytes(&self) -> u64 {
        match (self.free_bytes, self.capacity_bytes) {
            (Some(free), Some(capacity)) => capacity.saturating_sub(free),
            _ => self.stored_bytes,
        }
    }
}

/// The free space and size of where the packs are, as the server measured
/// them when it records a day: the data directory's file system
/// (`statvfs`), or for a bucket the `capacity` of config.toml (its free
/// space is then that capacity minus what is stored). Unknown: `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Space {
    /// Bytes free.
    pub free_bytes: Option<u64>,
    /// Bytes in all.
    pub capacity_bytes: Option<u64>,
}

/// What [`crate::Store::history`] returns: each asked subscriber's lines,
/// oldest first, and the server's.
#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    /// By subscriber name; a subscriber without a line is absent.
    pub subscribers: std::collections::HashMap<String, Vec<DayUsage>>,
    /// The server's lines, oldest first.
    pub server: Vec<ServerDay>,
}

impl History {
    /// One subscriber's lines, oldest first (empty if none).
    pub fn of(&self, subscriber: &str) -> &[DayUsage] {
        self.subscribers.get(subscriber).map_or(&[], Vec::as_slice)
    }
}

/// What one recording did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// The day recorded.
    pub day: i64,
    /// Lines written (subscribers and the server's).
    pub lines: u64,
    /// Older lines removed by the thinning rule.
    pub thinned: u64,
}

/// Whether the thinning rule keeps the line of `day` on `today` among
/// `days` (the same subscriber's lines): the rule of the module doc in
/// plain Rust, which bounds [`MAX_LINES`]. The SQL of `catalog/history.rs`
/// applies it day by day; its test checks the same properties.
pub fn kept(day: i64, today: i64, days: &[i64]) -> bool {
    let age = today - day;
    if age < DAILY_DAYS {
        true
    } else if age < WEEKLY_DAYS {
        !days
            .iter()
            .any(|&d| d < day && d.div_euclid(7) == day.div_euclid(7))
    } else if age < KEPT_DAYS {
        !days
            .iter()
            .any(|&d| d < day && month_of(d) == month_of(day))
    } else {
        false
    }
}

/// The calendar month (UTC) of a day, as `year * 12 + month - 1`
/// (Howard Hinnant's `civil_from_days`).
pub fn month_of(day: i64) -> i64 {
    let (y, m, _) = civil(day);
    y * 12 + i64::from(m) - 1
}

/// Year, month (1–12) and day of month (1–31) of a day since 1970-01-01:
/// [`coffre_core::civil_from_days`], the workspace's one copy.
pub use coffre_core::civil_from_days as civil;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_are_right() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(31), (1970, 2, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(day_of(1_800_000_000)), (2027, 1, 15));
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(month_of(0), 1970 * 12);
    }

    #[test]
    fn the_rule_keeps_days_then_weeks_then_months_then_nothing() {
        let today = 20_000;
        let all: Vec<i64> = (today - 4_000..=today).collect();
        let kept_days: Vec<i64> = all
            .iter()
            .copied()
            .filter(|&d| kept(d, today, &all))
            .collect();
        assert!(kept_days.len() <= MAX_LINES, "{}", kept_days.len());
        assert!((today - DAILY_DAYS + 1..=today).all(|d| kept_days.contains(&d)));
        assert!(kept_days.iter().all(|&d| today - d < KEPT_DAYS));
    }
}
