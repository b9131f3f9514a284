//! The token bucket of one direction: sans-IO, time passed in.
//!
//! A caller [`Bucket::take`]s the bytes it is about to write (or has just
//! read) and sleeps for the wait it is given. Tokens refill at the rate, up
//! to a small burst; a take may overdraw, and the debt is the caller's
//! wait, so callers on several streams pay in turn and the long-run rate is
//! the rate exactly.
//!
//! **What is charged is what crosses the link.** QUIC adds packet headers,
//! acknowledgements and retransmissions to the stream bytes: the caller
//! passes its connection's wire counter for the direction (UDP payload
//! plus IP and UDP headers) and the bucket charges up to
//! `max(charged so far, wire) + n`, where `n` is what the wire does not
//! show yet: the slice about to be written (upload), nothing for bytes
//! already read (download). Stream bytes written ahead of the wire are
//! paid when written, the wire's overhead once it shows. So over any span
//! the wire carries at most `rate × span + burst + one slice`, whatever
//! the overhead.

use std::time::{Duration, Instant};

/// How much a bucket holds after a pause: 50 ms of its rate (at least one
/// full-size packet), so an idle connection does not start with a burst.
pub(super) fn burst(rate: u64) -> f64 {
    (rate as f64 / 20.0).max(1500.0)
}

/// A direction's tokens, and what it charged of its connection's wire.
#[derive(Debug, Default)]
pub(super) struct Bucket {
    /// Bytes that may go now; negative: a debt being slept off.
    tokens: f64,
    /// The last refill.
    at: Option<Instant>,
    /// The connection whose wire counter `charged` follows (its stable id):
    /// a new connection starts its own count.
    conn: Option<usize>,
    /// Bytes charged for that connection.
    charged: u64,
}

impl Bucket {
    /// Charges `n` bytes not yet on the wire at `rate` (bytes per second;
    /// `None`: no limit now, only the wire is followed) at `now`, and
    /// `wire`'s unpaid bytes (`(connection id, its wire bytes of this
    /// direction)`); returns how long the caller must wait before it goes on.
    pub(super) fn take(
        &mut self,
        now: Instant,
        rate: Option<u64>,
        n: u64,
        wire: Option<(usize, u64)>,
    ) -> Duration {
        let debit = match wire {
            None => n,
            Some((id, wire)) => {
                if self.conn != Some(id) {
                    self.conn = Some(id);
                    self.charged = 0;
                }
                let charged = self.charged.max(wire) + n;
                let debit = charged - self.charged;
                self.charged = charged;
                debit
            }
        };
        let Some(rate) = rate.map(|r| r.max(1)) else {
            // No limit now: a limit that starts later starts full.
            self.at = None;
            return Duration::ZERO;
        };
        let full = burst(rate);
        self.tokens = match self.at {
            None => full,
            Some(at) => (self.tokens
                + rate as f64 * now.saturating_duration_since(at).as_secs_f64())
            .min(full),
        };
        self.at = Some(now);
        self.tokens -= debit as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `slices` of `n` bytes one after the other, each after the
    /// previous one's wait; returns the time it took.
    fn run(bucket: &mut Bucket, start: Instant, rate: u64, n: u64, slices: u64) -> Duration {
        let mut now = start;
        for _ in 0..slices {
            now += bucket.take(now, Some(rate), n, None);
        }
        now - start
    }

    #[test]
    fn the_long_run_rate_is_the_rate() {
        let start = Instant::now();
        let mut b = Bucket::default();
        // 100 slices of 64 KiB at 1 MB/s: 6.55 s, less the first burst.
        let took = run(&mut b, start, 1_000_000, 65_536, 100).as_secs_f64();
        let expected = (100.0 * 65_536.0 - burst(1_000_000)) / 1e6;
        assert!(
            (took - expected).abs() < 0.07,
            "{took} s, expected {expected} s"
        );
    }

    #[test]
    fn a_pause_gives_only_a_small_burst() {
        let start = Instant::now();
        let mut b = Bucket::default();
        run(&mut b, start, 100_000, 10_000, 10);
        // An hour later, 50 ms worth (5,000 bytes) goes at once, no more.
        let later = start + Duration::from_secs(3600);
        assert_eq!(b.take(later, Some(100_000), 5_000, None), Duration::ZERO);
        let wait = b.take(later, Some(100_000), 10_000, None);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
    }

    #[test]
    fn concurrent_takers_wait_in_turn() {
        let now = Instant::now();
        let mut b = Bucket::default();
        let full = burst(1_000) as u64;
        assert_eq!(b.take(now, Some(1_000), full, None), Duration::ZERO);
        // Three takers at the same instant: 1, 2 and 3 s.
        let waits: Vec<u64> = (0..3)
            .map(|_| b.take(now, Some(1_000), 1_000, None).as_millis() as u64)
            .collect();
        assert_eq!(waits, [1_000, 2_000, 3_000]);
    }

    #[test]
    fn the_wire_overhead_is_charged_once_it_shows() {
        let now = Instant::now();
        let mut b = Bucket::default();
        let conn = Some((7, 0));
        // 10,000 stream bytes written, none on the wire yet: 10,000 charged.
        b.take(now, Some(1_000_000), 10_000, conn);
        assert_eq!(b.charged, 10_000);
        // The wire shows 10,400 (headers, acks): the next 1,000 cost 1,400.
        b.take(now, Some(1_000_000), 1_000, Some((7, 10_400)));
        assert_eq!(b.charged, 11_400);
        // A wire behind the writes costs nothing more.
        b.take(now, Some(1_000_000), 1_000, Some((7, 11_000)));
        assert_eq!(b.charged, 12_400);
        // A download: the bytes read are already in the wire count (n = 0),
        // which runs ahead by the receive window: the wire is what is paid.
        b.take(now, Some(1_000_000), 0, Some((7, 50_000)));
        assert_eq!(b.charged, 50_000);
        // A new connection counts from zero (its handshake included).
        b.take(now, Some(1_000_000), 1_000, Some((8, 3_000)));
        assert_eq!(b.charged, 4_000);
        // Without a limit for a while (a daytime window's end), the wire is
        // still followed: the limit that comes back charges only what
        // comes after it.
        b.take(now, None, 1_000, Some((8, 900_000)));
        let wait = b.take(now, Some(1_000_000), 1_000, Some((8, 900_000)));
        assert_eq!(wait, Duration::ZERO);
    }
}
