//! The time of day of the nightly run: `HH:MM`, 24-hour clock, local time.

use super::ScheduleError;

/// The time used when `--at` is not given: 02:00 local time. A PC that is
/// off then catches up at next boot where the scheduler can (systemd, Task
/// Scheduler); see `docs/scheduling.md`.
pub const DEFAULT_TIME: (u8, u8) = (2, 0);

/// Parses `"HH:MM"` (24-hour clock; `"2:30"` is accepted for `"02:30"`) into
/// `(hour, minute)`.
pub fn parse_time(s: &str) -> Result<(u8, u8), ScheduleError> {
    let bad = |reason: &str| ScheduleError::BadTime {
        input: s.to_string(),
        reason: reason.to_string(),
    };
    let t = s.trim();
    let (h, m) = t
        .split_once(':')
        .ok_or_else(|| bad("no ':' between hours and minutes"))?;
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || h.len() > 2 {
        return Err(bad("the hour must be one or two digits"));
    }
    if !digits(m) || m.len() != 2 {
        return Err(bad("the minutes must be two digits"));
    }
    let (hour, minute): (u8, u8) = (h.parse().unwrap_or(u8::MAX), m.parse().unwrap_or(u8::MAX));
    if hour > 23 {
        return Err(bad("the hour must be between 00 and 23"));
    }
    if minute > 59 {
        return Err(bad("the minutes must be between 00 and 59"));
    }
    Ok((hour, minute))
}

/// `(2, 5)` -> `"02:05"`.
pub fn format_time((hour, minute): (u8, u8)) -> String {
    format!("{hour:02}:{minute:02}")
}

/// Checks a time that did not come through [`parse_time`] (a [`super::Plan`]
/// built by hand).
pub(super) fn check((hour, minute): (u8, u8)) -> Result<(), ScheduleError> {
    if hour > 23 || minute > 59 {
        return Err(ScheduleError::BadTime {
            input: format!("{hour}:{minute:02}"),
            reason: "the hour must be 00-23 and the minutes 00-59".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_24_hour_times() {
        assert_eq!(parse_time("02:30").unwrap(), (2, 30));
        assert_eq!(parse_time("2:30").unwrap(), (2, 30));
        assert_eq!(parse_time("00:00").unwrap(), (0, 0));
        assert_eq!(parse_time("23:59").unwrap(), (23, 59));
        assert_eq!(parse_time(" 21:05 ").unwrap(), (21, 5));
    }

    #[test]
    fn refuses_anything_else_with_the_reason() {
        let reason = |s: &str| match parse_time(s) {
            Err(ScheduleError::BadTime { reason, .. }) => reason,
            other => panic!("{s:?} gave {other:?}"),
        };
        assert!(reason("24:00").contains("between 00 and 23"));
        assert!(reason("12:60").contains("between 00 and 59"));
        assert!(reason("1230").contains("no ':'"));
        assert!(reason("").contains("no ':'"));
        assert!(reason("12:3").contains("two digits"));
        assert!(reason("12:345").contains("two digits"));
        assert!(reason("+1:00").contains("hour"));
        assert!(reason("-1:00").contains("hour"));
        assert!(reason("ab:cd").contains("hour"));
        assert!(reason("100:00").contains("hour"));
        assert!(reason("2:30pm").contains("minutes"));
        assert!(reason("02:30:00").contains("minutes"));
        let text = parse_time("25:00").unwrap_err().to_string();
        assert_eq!(
            text,
            "invalid time \"25:00\": the hour must be between 00 and 23 (write HH:MM on a 24-hour clock, e.g. 02:30 or 21:00)"
        );
    }

    #[test]
    fn formats_and_checks() {
        assert_eq!(format_time((2, 5)), "02:05");
        assert_eq!(format_time(DEFAULT_TIME), "02:00");
        assert!(check((23, 59)).is_ok());
        assert!(check((24, 0)).is_err());
        assert!(check((0, 60)).is_err());
        for h in 0..24 {
            for m in [0, 7, 59] {
                assert_eq!(parse_time(&format_time((h, m))).unwrap(), (h, m));
            }
        }
    }
}
