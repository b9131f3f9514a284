//! Where the store's time comes from: a [`Clock`] given to the [`Store`]
//! when it is opened, so that nothing in this crate reads the wall clock
//! itself (the way quinn-proto takes `now` as a parameter).
//!
//! - Every time the store writes or decides by is read from its clock, in
//!   Unix seconds: the `created` of subscribers, devices and packs, a
//!   revocation, a session's start, a snapshot's commit, GC's grace period
//!   and the age of orphan files, the name a rebuilt catalogue puts the old
//!   one aside under. (Durations of a run, `GcReport::seconds` and
//!   `VerifyReport`'s, are measured with `Instant`: they decide nothing.)
//! - [`SystemClock`] is the production clock and what [`Store::open`] and
//!   [`Store::create`] use; [`ManualClock`] is set and advanced by a test, so
//!   that a day of grace period passes without a sleep.
//! - The clock is fixed for the store's life: a daemon's store and its
//!   nightly task read the same one.
//!
//! Files on disk keep the file system's times (their `modified`): orphans
//! are compared with a cutoff read from the clock, so a manual clock set in
//! the past protects every file, and one set days ahead ages them.
//!
//! [`Store`]: crate::Store
//! [`Store::open`]: crate::Store::open
//! [`Store::create`]: crate::Store::create

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time, in Unix seconds. `Send + Sync`: the store
/// is shared by every thread of the daemon.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in Unix seconds.
    fn now(&self) -> i64;
}

/// The system's wall clock (a time before 1970 reads as 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A clock that stands still until it is told: for tests.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading `now` (Unix seconds).
    pub fn new(now: i64) -> ManualClock {
        ManualClock(AtomicI64::new(now))
    }

    /// A clock reading the system's time now, then standing still.
    pub fn at_system_time() -> ManualClock {
        ManualClock::new(SystemClock.now())
    }

    /// Sets the time.
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Moves the time on by `secs` (back if negative).
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_800_000_000);
        assert_eq!(c.now(), 1_800_000_000);
        c.advance(86_400);
        assert_eq!(c.now(), 1_800_086_400);
        c.set(5);
        assert_eq!(c.now(), 5);
        // The system clock is after this code was written (2026).
        assert!(SystemClock.now() > 1_790_000_000);
    }
}
