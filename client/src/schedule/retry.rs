//! A scheduled backup that fails because of the link tries again later in
//! the night (issue 19).
//!
//! Within a run, a lost connection is dialled again for up to `[network]
//! reconnect_for` (`remote/reconnect.rs`). A run that still fails on the
//! link (the server unreachable at the start, the link not back in time, the
//! server busy) waits and tries again: after 15 minutes, 30, then every
//! hour, while the next attempt starts within the night's window
//! ([`window_end`]). A refusal (full quota, revoked device, superseded
//! credential) or a local failure is final: trying again would not change
//! it. Each attempt is logged in `backup.log`; the before hooks ran once,
//! before the first (their dump is what the attempts back up).
//!
//! Each attempt resumes the one before: what the server confirmed is in the
//! journal (`backup/journal.rs`) and is not sent again.

use std::time::Duration;

use anyhow::Result;
use jiff::{ToSpan, ZonedDateTime as Zoned};

use crate::remote::RemoteError;

/// The waits between attempts; the last repeats.
const WAITS: [Duration; 3] = [
    Duration::from_secs(15 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
];
/// The shortest window: a run that starts close to (or after) the end of
/// the night, a night caught up at boot, still tries for two hours.
const SHORTEST: Duration = Duration::from_secs(2 * 3600);
/// The longest window: the scheduler stops a run after 12 hours
/// (`TimeoutStartSec=12h`, `ExecutionTimeLimit`), and the last attempt
/// needs time to finish.
const LONGEST: Duration = Duration::from_secs(8 * 3600);
/// A `retry_until` further than this from the start is tomorrow's
/// (the run started in the day): only [`SHORTEST`] applies.
const SAME_NIGHT: Duration = Duration::from_secs(12 * 3600);

/// When a run started at `start` stops trying again: the next `until`
/// (local time) if it comes within 12 hours, else the start; then at least
/// 2 and at most 8 hours after the start. A 02:00 run tries until 07:00, a
/// 23:00 one until 07:00, a night caught up at 09:00 until 11:00.
pub(crate) fn window_end(start: &Zoned, (hour, minute): (u8, u8)) -> Zoned {
    let today = start
        .with()
        .hour(hour as i8)
        .minute(minute as i8)
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .unwrap_or_else(|_| start.clone());
    let next = if today > *start {
        today
    } else {
        today.checked_add(1.day()).unwrap_or(today)
    };
    let gap = Duration::try_from(start.duration_until(&next)).unwrap_or(Duration::ZERO);
    let gap = if gap <= SAME_NIGHT {
        gap
    } else {
        Duration::ZERO
    };
    let window = gap.clamp(SHORTEST, LONGEST);
    let span = jiff::SignedDuration::try_from(window).unwrap_or_default();
    start.checked_add(span).unwrap_or_else(|_| start.clone())
}

/// The waits between attempts: [`WAITS`], or `COFFRE_RETRY_WAITS` (seconds,
/// comma-separated: "2,4") for tests.
fn waits() -> Vec<Duration> {
    let from_env = std::env::var("COFFRE_RETRY_WAITS").ok().and_then(|s| {
        s.split(',')
            .map(|w| {
                w.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|w| w.is_finite() && *w >= 0.0)
            })
            .map(|w| w.map(Duration::from_secs_f64))
            .collect::<Option<Vec<_>>>()
    });
    match from_env {
        Some(w) if !w.is_empty() => w,
        _ => WAITS.to_vec(),
    }
}

/// Whether `e` is the link's failure (see [`RemoteError::is_the_links`]).
pub(crate) fn is_the_links(e: &anyhow::Error) -> bool {
    e.chain()
        .find_map(|c| c.downcast_ref::<RemoteError>())
        .is_some_and(RemoteError::is_the_links)
}

/// Runs `attempt` until it succeeds, fails for another reason than the
/// link, or the next attempt would start after the window that began at
/// `start` ([`window_end`]); `log` gets a line for each attempt that
/// failed and what comes next.
pub(crate) fn tonight<T>(
    start: &Zoned,
    until: (u8, u8),
    log: &dyn Fn(&str),
    mut attempt: impl FnMut() -> Result<T>,
) -> Result<T> {
    let end = window_end(start, until);
    let waits = waits();
    let mut tried = 0usize;
    loop {
        let e = match attempt() {
            Ok(t) => return Ok(t),
            Err(e) if is_the_links(&e) => e,
            Err(e) => return Err(e),
        };
        let wait = waits[tried.min(waits.len() - 1)];
        tried += 1;
        let next =
            Zoned::now().checked_add(jiff::SignedDuration::try_from(wait).unwrap_or_default());
        match next {
            Ok(next) if next <= end => {
                log(&format!(
                    "attempt {tried} failed on the link ({e:#}); trying again at {} \
                     (the night's window ends at {})",
                    next.strftime("%H:%M"),
                    end.strftime("%H:%M")
                ));
                std::thread::sleep(wait);
            }
            _ => {
                log(&format!(
                    "attempt {tried} failed on the link; no attempt left tonight (the window \
                     ended at {}): the next scheduled run resumes where this one stopped",
                    end.strftime("%H:%M")
                ));
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_proto::{ErrorCode, ErrorReply};

    fn at(hm: &str) -> Zoned {
        format!("2026-11-23T{hm}:00+01:00[Europe/Paris]")
            .parse()
            .unwrap()
    }

    fn end(start: &str) -> String {
        window_end(&at(start), (7, 0))
            .strftime("%d %H:%M")
            .to_string()
    }

    #[test]
    fn the_window_is_the_night_then_two_to_eight_hours() {
        assert_eq!(end("02:00"), "23 07:00", "a 02:00 run: until 07:00");
        assert_eq!(
            end("23:00"),
            "24 07:00",
            "a 23:00 run: until 07:00 the next day"
        );
        assert_eq!(end("20:00"), "24 04:00", "at most 8 hours");
        assert_eq!(end("06:30"), "23 08:30", "at least 2 hours");
        assert_eq!(
            end("09:00"),
            "23 11:00",
            "a night caught up in the day: 2 hours"
        );
        assert_eq!(end("07:00"), "23 09:00", "07:00 itself is the next day's");
    }

    #[test]
    fn only_the_links_failures_are_tried_again() {
        let link = anyhow::Error::from(RemoteError::LinkDown {
            patience: Duration::from_secs(600),
            detail: "timed out".into(),
        })
        .context("uploading");
        assert!(is_the_links(&link), "through a context too");
        assert!(is_the_links(&anyhow::Error::from(
            RemoteError::Unreachable {
                server: "s:1".into(),
                detail: "no answer".into()
            }
        )));
        let quota = RemoteError::Refused(ErrorReply {
            code: ErrorCode::QuotaExceeded,
            message: String::new(),
            used: 1,
            quota: 1,
        });
        assert!(!is_the_links(&quota.into()));
        assert!(!is_the_links(&anyhow::anyhow!("disk full")));
    }

    #[test]
    fn a_refusal_stops_at_once_and_success_ends_the_attempts() {
        let lines = std::sync::Mutex::new(Vec::new());
        let log = |l: &str| lines.lock().unwrap().push(l.to_string());
        let mut n = 0;
        let r: Result<()> = tonight(&Zoned::now(), (7, 0), &log, || {
            n += 1;
            anyhow::bail!("the quota is full")
        });
        assert!(r.is_err());
        assert_eq!(n, 1);
        assert!(lines.lock().unwrap().is_empty());
        let r = tonight(&Zoned::now(), (7, 0), &log, || Ok(5));
        assert_eq!(r.unwrap(), 5);
    }
}
