//! "Full by": the day a subscriber's quota, or the server's disk or bucket,
//! fills at the current pace (issue 20), from the daily history the store
//! keeps (`coffre_store::history`).
//!
//! # The method
//!
//! Proxmox Backup Server's "estimated full" fits a straight line by least
//! squares through the last month of its usage samples (at least 7) and
//! gives the time the line reaches 100 %; a flat line gives a date in the
//! past, a falling one a date in the past too, which its interface reads as
//! "never". We do the same and mend what a board would trip on:
//!
//! 1. **The last 30 days** ([`WINDOW_DAYS`]) of daily lines, today's from
//!    the live figures.
//! 2. **A clean-up starts the trend again.** A fall of more than
//!    [`DROP_FRACTION`] (10 %) from one line to the next (a retention
//!    change, an admin's `forget` and the garbage collection after it)
//!    moves the level for good: the pace is measured after the last such
//!    fall only. Least squares across it would mix two levels and say
//!    "shrinking" for a subscriber growing fast since. The small nightly
//!    give-and-take of retention stays in the fit: it is the pace.
//! 3. **At least [`MIN_DAYS`] (7) days** after that, else no forecast yet
//!    ([`Forecast::TooFewDays`]): one week covers a weekly rhythm.
//! 4. **The pace is the least-squares slope** (bytes per day), which a
//!    noisy day moves little; **the start is today's figure** (known
//!    exactly, not the fitted line's), so the date answers "from what is
//!    used now, at the pace of recent weeks".
//! 5. **No date** when the slope is zero or negative, or the date is more
//!    than [`HORIZON_DAYS`] (5 years) away: "not full at this pace"
//!    ([`Forecast::NotAtThisPace`]); the board plans a year or two ahead,
//!    and a pace measured over a month says nothing about year six.
//! 6. **Already at or over the limit**: [`Forecast::Full`], whatever the
//!    history. No limit known (a bucket without `capacity`):
//!    [`Forecast::NoLimit`].
//!
//! Pure: the history and today are passed in (`server/src/forecast.rs`'s
//! tests run it on made-up series).

use coffre_store::{DayUsage, ServerDay, Usage};
use serde::Serialize;

/// Days of history the pace is measured over.
pub const WINDOW_DAYS: i64 = 30;

/// Days of history (lines) a forecast needs, after the last clean-up.
pub const MIN_DAYS: usize = 7;

/// Beyond this many days from today, no date: "not full at this pace".
pub const HORIZON_DAYS: i64 = 5 * 365;

/// A fall from one line to the next by more than this part of the former
/// is a clean-up: the pace is measured from the line after it.
pub const DROP_FRACTION: f64 = 0.10;

/// When a limit is reached at the current pace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Forecast {
    /// Today's figure is at or over the limit.
    Full,
    /// Reached on `day` (days since 1970-01-01, UTC) at `bytes_per_day`.
    FullBy {
        /// The day it is reached.
        day: i64,
        /// The pace: bytes a day, least squares over the window.
        bytes_per_day: f64,
    },
    /// The pace is flat or falling, or the date is beyond [`HORIZON_DAYS`].
    NotAtThisPace {
        /// The pace: bytes a day (zero or negative, or small).
        bytes_per_day: f64,
    },
    /// Fewer than [`MIN_DAYS`] lines in the window (after the last clean-up).
    TooFewDays {
        /// How many there are.
        days: usize,
    },
    /// No limit to reach (a bucket without `capacity` in config.toml).
    NoLimit,
}

impl Forecast {
    /// The day it is full, if a date is given.
    pub fn full_by(&self) -> Option<i64> {
        match self {
            Forecast::FullBy { day, .. } => Some(*day),
            _ => None,
        }
    }

    /// The pace in bytes a day, when measured.
    pub fn bytes_per_day(&self) -> Option<f64> {
        match self {
            Forecast::FullBy { bytes_per_day, .. } | Forecast::NotAtThisPace { bytes_per_day } => {
                Some(*bytes_per_day)
            }
            _ => None,
        }
    }
}

/// When `series` (days since 1970-01-01 and bytes, oldest first; its last
/// line is today's figure) reaches `limit`, as of `today`. The method is in
/// the module doc.
pub fn forecast(series: &[(i64, u64)], limit: Option<u64>, today: i64) -> Forecast {
    let Some(limit) = limit else {
        return Forecast::NoLimit;
    };
    let Some(&(last_day, last)) = series.last() else {
        return Forecast::TooFewDays { days: 0 };
    };
    if last >= limit {
        return Forecast::Full;
    }
    let window: Vec<(i64, u64)> = series
        .iter()
        .copied()
        .filter(|&(day, _)| day > today - WINDOW_DAYS && day <= today)
        .collect();
    // After the last clean-up.
    let start = window
        .windows(2)
        .rposition(|w| (w[1].1 as f64) < w[0].1 as f64 * (1.0 - DROP_FRACTION))
        .map_or(0, |i| i + 1);
    let recent = &window[start..];
    if recent.len() < MIN_DAYS {
        return Forecast::TooFewDays { days: recent.len() };
    }
    let bytes_per_day = slope(recent);
    if bytes_per_day.is_nan() || bytes_per_day <= 0.0 {
        return Forecast::NotAtThisPace { bytes_per_day };
    }
    let days = ((limit - last) as f64 / bytes_per_day).ceil();
    if days > (HORIZON_DAYS + today - last_day) as f64 {
        return Forecast::NotAtThisPace { bytes_per_day };
    }
    Forecast::FullBy {
        day: last_day + days as i64,
        bytes_per_day,
    }
}

/// The least-squares slope of `points` (bytes a day); centred on the means
/// so that sums of large byte counts lose no precision.
fn slope(points: &[(i64, u64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(x, y) in points {
        let dx = x as f64 - mx;
        sxy += dx * (y as f64 - my);
        sxx += dx * dx;
    }
    sxy / sxx
}

/// A subscriber's lines from day `since` on, today's made of the live
/// figures of `u`, and its forecast against its quota: what the board's
/// chart and `coffre-server usage --history` both show. `lines` is its
/// history (any span that covers the last [`WINDOW_DAYS`]).
pub fn subscriber(
    lines: &[DayUsage],
    u: &Usage,
    today: i64,
    since: i64,
) -> (Vec<DayUsage>, Forecast) {
    let mut shown: Vec<DayUsage> = lines.iter().copied().filter(|l| l.day < today).collect();
    shown.push(DayUsage {
        day: today,
        used_bytes: u.used_bytes,
        quota_bytes: u.quota_bytes,
        data_bytes: u.protected_bytes,
        snapshots: u.snapshots,
    });
    let series: Vec<(i64, u64)> = shown.iter().map(|l| (l.day, l.used_bytes)).collect();
    let f = forecast(&series, Some(u.quota_bytes), today);
    shown.retain(|l| l.day >= since);
    (shown, f)
}

/// The server's forecast: what fills its storage (the file system's used
/// space, or what coffre stores when only a capacity is known) against
/// the latest capacity. Its last line stands for today.
pub fn server(lines: &[ServerDay], today: i64) -> Forecast {
    let limit = lines.last().and_then(|l| l.capacity_bytes);
    let series: Vec<(i64, u64)> = lines.iter().map(|l| (l.day, l.filled_bytes())).collect();
    forecast(&series, limit, today)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;
    const TODAY: i64 = 20_000;

    /// `n` daily lines ending today, from `f(i)` (i = 0 the oldest).
    fn days(n: i64, f: impl Fn(i64) -> u64) -> Vec<(i64, u64)> {
        (0..n).map(|i| (TODAY - n + 1 + i, f(i))).collect()
    }

    #[test]
    fn steady_growth_gives_the_day_the_line_reaches_the_limit() {
        // 10 GB growing 1 GB a day for 30 days: 39 GB today, 50 GB in 11 days.
        let s = days(30, |i| 10 * GB + i as u64 * GB);
        assert_eq!(
            forecast(&s, Some(50 * GB), TODAY),
            Forecast::FullBy {
                day: TODAY + 11,
                bytes_per_day: GB as f64
            }
        );
        // Only the last 30 days count: a slower start before changes nothing.
        let longer = days(60, |i| {
            if i < 30 {
                i as u64
            } else {
                (i - 20) as u64 * GB
            }
        });
        assert_eq!(
            forecast(&longer, Some(50 * GB), TODAY).full_by(),
            Some(TODAY + 11)
        );
    }

    #[test]
    fn noisy_growth_lands_near_the_true_day() {
        // 2 GB a day with ±0.8 GB of noise that a nightly GC and uneven
        // backups make; today is 70 GB, the limit 170 GB: 50 days.
        let noise = |i: i64| ((i * 7919) % 17 - 8) as f64 * 0.1;
        let s: Vec<(i64, u64)> = days(30, |i| {
            ((12.0 + 2.0 * i as f64 + noise(i)) * GB as f64) as u64
        });
        let mut s = s;
        s.last_mut().unwrap().1 = 70 * GB;
        let f = forecast(&s, Some(170 * GB), TODAY);
        let day = f.full_by().expect("a date");
        assert!((TODAY + 47..=TODAY + 53).contains(&day), "{f:?}");
        let pace = f.bytes_per_day().unwrap() / GB as f64;
        assert!((1.9..2.1).contains(&pace), "{pace}");
    }

    #[test]
    fn shrinking_or_flat_use_gives_no_date() {
        let shrinking = days(30, |i| 40 * GB - i as u64 * GB / 2);
        match forecast(&shrinking, Some(50 * GB), TODAY) {
            Forecast::NotAtThisPace { bytes_per_day } => assert!(bytes_per_day < 0.0),
            f => panic!("{f:?}"),
        }
        let flat = days(30, |_| 40 * GB);
        assert!(matches!(
            forecast(&flat, Some(50 * GB), TODAY),
            Forecast::NotAtThisPace { .. }
        ));
        // Growing, but so slowly that the date is beyond five years.
        let slow = days(30, |i| 10 * GB + i as u64 * 1_000);
        assert!(matches!(
            forecast(&slow, Some(50 * GB), TODAY),
            Forecast::NotAtThisPace { .. }
        ));
    }

    #[test]
    fn too_few_days_give_no_forecast_yet() {
        let s = days(5, |i| i as u64 * GB);
        assert_eq!(
            forecast(&s, Some(50 * GB), TODAY),
            Forecast::TooFewDays { days: 5 }
        );
        assert_eq!(
            forecast(&[], Some(50 * GB), TODAY),
            Forecast::TooFewDays { days: 0 }
        );
        // Lines older than the window do not count.
        let old: Vec<(i64, u64)> = (0..20).map(|i| (TODAY - 100 + i, i as u64)).collect();
        let mut s = old;
        s.push((TODAY, 30));
        assert_eq!(
            forecast(&s, Some(50 * GB), TODAY),
            Forecast::TooFewDays { days: 1 }
        );
    }

    #[test]
    fn a_clean_up_in_the_middle_starts_the_trend_again() {
        // 15 days of +1 GB from 20 GB, a clean-up back to 20 GB, then 15
        // days of +1 GB: 34 GB today, 50 GB in 16 days. Least squares over
        // the 30 days would see almost no growth.
        let s = days(30, |i| {
            let i = i as u64;
            if i < 15 {
                20 * GB + i * GB
            } else {
                20 * GB + (i - 15) * GB
            }
        });
        assert_eq!(
            forecast(&s, Some(50 * GB), TODAY),
            Forecast::FullBy {
                day: TODAY + 16,
                bytes_per_day: GB as f64
            }
        );
        // A clean-up four days ago: too few days since.
        let s = days(30, |i| if i < 26 { 30 * GB + i as u64 } else { 10 * GB });
        assert_eq!(
            forecast(&s, Some(50 * GB), TODAY),
            Forecast::TooFewDays { days: 4 }
        );
        // The small nightly falls of retention are part of the pace.
        let s = days(30, |i| 20 * GB + i as u64 * GB / 2 - (i as u64 % 2) * GB);
        assert!(forecast(&s, Some(50 * GB), TODAY).full_by().is_some());
    }

    #[test]
    fn at_or_over_the_limit_is_full_and_without_a_limit_there_is_none() {
        let s = days(3, |i| 48 * GB + i as u64 * GB);
        assert_eq!(forecast(&s, Some(50 * GB), TODAY), Forecast::Full);
        assert_eq!(forecast(&s, None, TODAY), Forecast::NoLimit);
        assert_eq!(forecast(&[(TODAY, 0)], Some(0), TODAY), Forecast::Full);
    }

    #[test]
    fn the_server_fills_its_file_system_or_its_bucket_capacity() {
        let line = |i: i64, free: Option<u64>, capacity: Option<u64>| ServerDay {
            day: TODAY - 29 + i,
            stored_bytes: 100 * GB + i as u64 * GB,
            data_bytes: 0,
            snapshots: 0,
            free_bytes: free,
            capacity_bytes: capacity,
        };
        // A disk of 1 TB that other files fill too: 2 GB a day, 500 GB
        // free today: 250 days.
        let disk: Vec<ServerDay> = (0..30)
            .map(|i| line(i, Some(558 * GB - 2 * i as u64 * GB), Some(1_000 * GB)))
            .collect();
        assert_eq!(server(&disk, TODAY).full_by(), Some(TODAY + 250));
        // A bucket with a capacity: what coffre stores, 1 GB a day, 129 GB
        // today against 200 GB: 71 days.
        let bucket: Vec<ServerDay> = (0..30).map(|i| line(i, None, Some(200 * GB))).collect();
        assert_eq!(server(&bucket, TODAY).full_by(), Some(TODAY + 71));
        let unknown: Vec<ServerDay> = (0..30).map(|i| line(i, None, None)).collect();
        assert_eq!(server(&unknown, TODAY), Forecast::NoLimit);
    }
}
