//! `Line`: a congestion controller for an association's access line.
//!
//! QUIC's usual controllers (Cubic, NewReno) take every lost packet as a
//! sign that a queue overflowed and cut the window. On an ADSL, 4G or
//! Wi-Fi hop, packets are also lost at random with an empty queue: a
//! backup over a 20 Mbit/s line with 1% random loss then runs at a sixth
//! of the line (docs/performance.md, "Over an association's line").
//!
//! `Line` is quinn's Cubic with one change: it tells the two losses apart
//! (as TCP Veno does) and passes only congestion to Cubic. A loss is
//! **congestion** when
//!
//! - the queue in front of the line is filling: the lowest round-trip sample of the
//!   last half to whole round trip stands above the connection's lowest by at least half of
//!   the highest queue seen (the line's buffer, learnt when it overflowed;
//!   fading slowly) and by more than the noise of such samples (a quarter
//!   of the lowest round trip, at least 5 ms): a drop-tail queue only
//!   drops when it is full, so a loss with a short queue is not an
//!   overflow;
//! - or the recent loss rate is above [`LineConfig::tolerated_loss`] (a
//!   policer drops without queueing; a broken line loses a lot);
//! - or the loss is persistent congestion (everything sent over a period
//!   lost: an outage), or an ECN mark.
//!
//! Other losses are **random**: QUIC sends the data again, the window
//! stays. So a lone backup fills the line whatever its random loss, and
//! beside another flow (an office's TCP download) the queue fills, every
//! loss then counts as congestion and `Line` backs off exactly as Cubic,
//! hence TCP, does: the flows share the line (measured with
//! `benches/examples/wan_share.rs`, docs/performance.md).

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory, ControllerMetrics, CubicConfig};
use quinn_proto::RttEstimator;

/// How `Line` tells random loss from congestion.
#[derive(Debug, Clone)]
pub struct LineConfig {
    /// Above this share of lost bytes (recently), every loss is congestion.
    pub tolerated_loss: f64,
    /// The Cubic it drives.
    pub cubic: Arc<CubicConfig>,
}

impl Default for LineConfig {
    fn default() -> Self {
        LineConfig {
            tolerated_loss: 0.03,
            cubic: Arc::new(CubicConfig::default()),
        }
    }
}

impl ControllerFactory for LineConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(Line {
            cubic: self.cubic.clone().build(now, current_mtu),
            judge: Judge::new(self.tolerated_loss, current_mtu),
        })
    }
}

/// Packets over which the loss rate is measured (older ones fade out).
const LOSS_MEMORY_PACKETS: f64 = 1000.0;

/// Tells random loss from congestion, from round-trip samples and losses
/// (sans-IO: no clock of its own).
#[derive(Debug, Clone)]
pub struct Judge {
    tolerated_loss: f64,
    /// The lowest round-trip sample since `bucket_start`, and in the
    /// half round trip before: the queue's measure spans half a round
    /// trip to one, long enough that a line's jitter and a delayed
    /// acknowledgement do not count as a queue, short enough to follow
    /// the queue as it drains after a cut.
    bucket_min: Option<Duration>,
    last_bucket_min: Option<Duration>,
    bucket_start: Option<Instant>,
    /// The connection's lowest round trip.
    min_rtt: Duration,
    /// The queue measured over the bucket that closed last, and how much
    /// one bucket's measure differs from the one before, on average
    /// (1/8 gain): a line's jitter changes the measure from one half round
    /// trip to the next, a queue builds and drains over many.
    last_reading: Option<Duration>,
    wobble: Duration,
    /// The highest queueing delay seen: the line's buffer, once it
    /// overflowed. It fades by 0.1% a round trip.
    max_queue: Duration,
    /// When it last faded.
    faded: Option<Instant>,
    /// Bytes acknowledged, and lost, lately.
    acked: f64,
    lost: f64,
    mtu: u64,
    /// Losses judged random, and congestion, so far.
    random: u64,
    congestion: u64,
}

impl Judge {
    /// A judge for a connection of this MTU.
    pub fn new(tolerated_loss: f64, mtu: u16) -> Judge {
        Judge {
            tolerated_loss,
            bucket_min: None,
            last_bucket_min: None,
            bucket_start: None,
            min_rtt: Duration::ZERO,
            last_reading: None,
            wobble: Duration::ZERO,
            max_queue: Duration::ZERO,
            faded: None,
            acked: 0.0,
            lost: 0.0,
            mtu: u64::from(mtu),
            random: 0,
            congestion: 0,
        }
    }

    /// A packet of `bytes` was acknowledged at `now`, `sample` after it was
    /// sent; the connection's smoothed and lowest round trips.
    pub fn acked(
        &mut self,
        now: Instant,
        sample: Duration,
        bytes: u64,
        srtt: Duration,
        min_rtt: Duration,
    ) {
        self.remember(bytes, 0);
        self.min_rtt = min_rtt;
        if self.bucket_start.is_none_or(|b| now >= b + srtt / 2) {
            if let Some(closed) = self.bucket_min {
                let reading = closed.saturating_sub(min_rtt);
                if let Some(last) = self.last_reading {
                    let change = reading.abs_diff(last);
                    self.wobble = (self.wobble * 7 + change) / 8;
                }
                self.last_reading = Some(reading);
            }
            self.last_bucket_min = self.bucket_min;
            self.bucket_min = Some(sample);
            self.bucket_start = Some(now);
        } else {
            self.bucket_min = Some(self.bucket_min.map_or(sample, |m| m.min(sample)));
        }
        // The highest queue fades by 0.1% a round trip (by half in 700):
        // a path or a neighbour that changed is learnt again.
        if self.faded.is_none_or(|f| now >= f + srtt) {
            self.faded = Some(now);
            self.max_queue = self.max_queue.mul_f64(0.999);
        }
        self.max_queue = self.max_queue.max(self.queue());
    }

    /// Packets of `bytes` were lost (0: an ECN mark); whether that is
    /// congestion (see the module doc).
    pub fn lost(&mut self, bytes: u64, persistent: bool) -> bool {
        self.remember(0, bytes);
        let congestion = persistent
            || bytes == 0
            || self.min_rtt.is_zero()
            || self.full()
            || self.loss_rate() > self.tolerated_loss;
        if congestion {
            self.congestion += 1;
        } else {
            self.random += 1;
        }
        congestion
    }

    /// The queueing delay now: the lowest round-trip sample of the last
    /// half to whole round trip above the lowest of the connection.
    pub fn queue(&self) -> Duration {
        let recent = match (self.bucket_min, self.last_bucket_min) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return Duration::ZERO,
        };
        recent.saturating_sub(self.min_rtt)
    }

    /// Whether the line's buffer is full: the queue is at least half of
    /// the highest seen, and more than the noise of round-trip samples
    /// (timers, delayed acknowledgements, a radio line's jitter).
    fn full(&self) -> bool {
        self.queue() >= (self.max_queue / 2).max(self.noise())
    }

    /// What the queue's measure can read with no queue: a quarter of the
    /// lowest round trip (at least 5 ms), or six times its average change
    /// from one half round trip to the next, whichever is more. On a 4G
    /// line whose packets wait 0 to 30 ms more at random, the measure
    /// reads 15 to 40 ms with the queue empty (benches/examples/wan.rs).
    pub fn noise(&self) -> Duration {
        (self.min_rtt / 4)
            .max(Duration::from_millis(5))
            .max(self.wobble * 6)
    }

    /// The share of lost bytes lately; 0 until enough packets were sent
    /// for the share to mean something (ten losses at the tolerated
    /// rate): one random loss among a new connection's first 30 packets
    /// is not 3% of loss, and taken as such it ended slow start at a
    /// fifth of a 100 Mbit/s line (benches/examples/wan.rs, `vdsl-1`).
    pub fn loss_rate(&self) -> f64 {
        let all = self.acked + self.lost;
        if all < 10.0 / self.tolerated_loss * self.mtu as f64 {
            return 0.0;
        }
        self.lost / all
    }

    fn remember(&mut self, acked: u64, lost: u64) {
        self.acked += acked as f64;
        self.lost += lost as f64;
        let memory = LOSS_MEMORY_PACKETS * self.mtu as f64;
        if self.acked + self.lost > memory {
            self.acked /= 2.0;
            self.lost /= 2.0;
        }
    }

    /// Losses judged random, and congestion, so far.
    pub fn losses(&self) -> (u64, u64) {
        (self.random, self.congestion)
    }
}

/// Cubic that lets random loss pass (see the module doc).
pub struct Line {
    cubic: Box<dyn Controller>,
    judge: Judge,
}

impl Clone for Line {
    fn clone(&self) -> Self {
        Line {
            cubic: self.cubic.clone_box(),
            judge: self.judge.clone(),
        }
    }
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line")
            .field("window", &self.cubic.window())
            .field("judge", &self.judge)
            .finish()
    }
}

impl Line {
    /// Losses let pass as random, and passed to Cubic as congestion, so far.
    pub fn losses(&self) -> (u64, u64) {
        self.judge.losses()
    }
}

impl Controller for Line {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        self.cubic.on_sent(now, bytes, last_packet_number);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.cubic.on_ack(now, sent, bytes, app_limited, rtt);
        let sample = now.saturating_duration_since(sent);
        self.judge.acked(now, sample, bytes, rtt.get(), rtt.min());
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        self.cubic
            .on_end_acks(now, in_flight, app_limited, largest_packet_num_acked);
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        if self.judge.lost(lost_bytes, is_persistent_congestion) {
            self.cubic
                .on_congestion_event(now, sent, is_persistent_congestion, lost_bytes);
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.judge.mtu = u64::from(new_mtu);
        self.cubic.on_mtu_update(new_mtu);
    }

    fn window(&self) -> u64 {
        self.cubic.window()
    }

    fn metrics(&self) -> ControllerMetrics {
        self.cubic.metrics()
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }

    fn initial_window(&self) -> u64 {
        self.cubic.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A judge after a flow of 1200-byte packets acknowledged every
    /// millisecond, each with the round trip `rtt(i)`.
    fn after(n: u64, rtt: impl Fn(u64) -> Duration) -> Judge {
        let mut j = Judge::new(0.03, 1200);
        let t0 = Instant::now();
        let mut min = Duration::MAX;
        for i in 0..n {
            let r = rtt(i);
            min = min.min(r);
            j.acked(t0 + MS * i as u32, r, 1200, 40 * MS, min);
        }
        j
    }

    #[test]
    fn a_loss_with_an_empty_queue_is_random() {
        let mut j = after(2000, |i| 40 * MS + MS * (i % 3) as u32);
        // 1% of the packets lost, one at a time: the window stays.
        let t = Instant::now();
        for i in 0..2000u32 {
            if i % 100 == 0 {
                assert!(!j.lost(1200, false), "loss {i}");
            }
            j.acked(t + MS * i, 41 * MS, 1200, 40 * MS, 40 * MS);
        }
        assert_eq!(j.losses(), (20, 0));
    }

    #[test]
    fn a_loss_when_the_queue_is_as_full_as_ever_is_congestion() {
        // The queue grew to 200 ms (the buffer), drained, and grows again.
        let mut j = after(3000, |i| match i {
            0..1000 => 40 * MS + MS * (i / 5) as u32,
            1000..2000 => 40 * MS,
            _ => 40 * MS + MS * ((i - 2000) / 5) as u32,
        });
        assert!(j.queue() > 150 * MS);
        assert!(j.lost(1200, false), "the buffer overflows again");
        // Half full is full enough: a neighbour's flow keeps it there.
        let mut j = after(2500, |i| match i {
            0..1000 => 40 * MS + MS * (i / 5) as u32,
            _ => 150 * MS,
        });
        assert!(j.lost(1200, false));
        // A quarter full is not.
        let mut j = after(2500, |i| match i {
            0..1000 => 40 * MS + MS * (i / 5) as u32,
            _ => 90 * MS,
        });
        assert!(!j.lost(1200, false));
    }

    #[test]
    fn a_queue_within_the_noise_of_samples_is_no_queue() {
        // 8 ms above the lowest at 40 ms: under a quarter of the round trip.
        let mut j = after(2000, |i| if i == 0 { 40 * MS } else { 48 * MS });
        assert!(!j.lost(1200, false));
    }

    #[test]
    fn a_radio_lines_jitter_is_no_queue() {
        // A 4G line: each packet waits 0 to 30 ms more, at random, and the
        // measure of the queue wanders with it. Losses there are random.
        let mut seed = 7u64;
        let mut jitter = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            MS * ((seed >> 33) % 30) as u32
        };
        let mut j = Judge::new(0.03, 1200);
        let t0 = Instant::now();
        let mut extra = Duration::ZERO;
        let mut judged = Vec::new();
        for i in 0..20_000u32 {
            // A new wait every 10 packets (the radio's schedule), so that
            // the lowest sample of a bucket moves too.
            if i % 10 == 0 {
                extra = jitter();
            }
            j.acked(t0 + MS * i, 40 * MS + extra, 1200, 55 * MS, 40 * MS);
            if i > 2000 && i % 200 == 0 {
                judged.push(j.lost(1200, false));
            }
        }
        let congestion = judged.iter().filter(|c| **c).count();
        assert!(
            congestion <= judged.len() / 50,
            "{congestion} of {} losses taken for congestion, noise {:?}",
            judged.len(),
            j.noise()
        );
        // And a queue well above the jitter is still a queue.
        for i in 20_000..22_000u32 {
            j.acked(
                t0 + MS * i,
                40 * MS + 150 * MS + jitter(),
                1200,
                200 * MS,
                40 * MS,
            );
        }
        assert!(j.lost(1200, false), "a full buffer above the jitter");
    }

    #[test]
    fn one_loss_among_the_first_packets_is_not_a_loss_rate() {
        // One loss in the first 30 packets is 3%: too few to say so.
        let mut j = after(30, |_| 40 * MS);
        assert!(!j.lost(1200, false));
    }

    #[test]
    fn much_loss_is_congestion_whatever_the_queue() {
        // A policer drops without queueing: past 3% every loss counts.
        let mut j = after(2000, |_| 40 * MS);
        let mut judged = Vec::new();
        for _ in 0..100 {
            judged.push(j.lost(1200, false));
        }
        assert!(judged[..5].iter().all(|c| !c), "the first few pass");
        assert!(
            judged[90..].iter().all(|c| *c),
            "then the rate says congestion"
        );
    }

    #[test]
    fn an_outage_and_an_ecn_mark_are_congestion() {
        let mut j = after(2000, |_| 40 * MS);
        assert!(j.lost(1200, true));
        assert!(j.lost(0, false));
    }
}
