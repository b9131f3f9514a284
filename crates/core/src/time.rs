//! Timestamps as stored in trees and manifests: seconds and nanoseconds since
//! the Unix epoch (UTC); negative seconds for dates before 1970. And
//! [`utc_minute`], a Unix time as people read it in messages and reports.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// Nanoseconds, below 1,000,000,000.
    pub nanos: u32,
}

impl Timestamp {
    /// Now, from the system clock.
    pub fn now() -> Self {
        SystemTime::now().into()
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                if d.subsec_nanos() == 0 {
                    Timestamp {
                        secs: -(d.as_secs() as i64),
                        nanos: 0,
                    }
                } else {
                    Timestamp {
                        secs: -(d.as_secs() as i64) - 1,
                        nanos: 1_000_000_000 - d.subsec_nanos(),
                    }
                }
            }
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        if t.secs >= 0 {
            UNIX_EPOCH + Duration::new(t.secs as u64, t.nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs())
                + Duration::from_nanos(u64::from(t.nanos))
        }
    }
}

/// A Unix time (seconds) for people, to the minute: `2026-11-23 17:54 UTC`.
/// The server's messages and reports write dates this way.
pub fn utc_minute(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to (year, month 1–12, day 1–31), proleptic
/// Gregorian (Howard Hinnant's algorithm): the one copy, for retention's
/// periods, the Windows task's start date and [`utc_minute`].
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_for_people() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(1_763_856_000), "2025-11-23 00:00 UTC");
        assert_eq!(
            utc_minute(1_763_856_000 + 17 * 3600 + 54 * 60 + 59),
            "2025-11-23 17:54 UTC"
        );
        assert_eq!(utc_minute(-60), "1969-12-31 23:59 UTC");
    }

    #[test]
    fn system_time_round_trips_on_both_sides_of_1970() {
        for t in [
            Timestamp {
                secs: 1_700_000_000,
                nanos: 123,
            },
            Timestamp {
                secs: -5,
                nanos: 250_000_000,
            },
            Timestamp { secs: -1, nanos: 0 },
            Timestamp { secs: 0, nanos: 0 },
        ] {
            assert_eq!(Timestamp::from(SystemTime::from(t)), t);
        }
    }
}
