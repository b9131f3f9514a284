//! One direction of the link, sans-IO: for each packet offered at a time,
//! its fate (delivered at a time, or dropped and why).
//!
//! The model is an access line's: a router queue in front of a serial
//! link of `rate_bps` (a packet waits for the ones before it, then takes
//! its size in bits over the rate; a packet that would wait more than
//! `queue` is dropped at the tail), then `delay` plus up to `jitter` of
//! propagation. Random loss strikes each packet independently before the
//! queue, as a radio or Wi-Fi hop does. Order is kept: a packet never
//! overtakes the one before it.

use std::time::{Duration, Instant};

use crate::profile::Direction;

/// IPv4 and UDP headers: what a datagram costs on the wire beyond its
/// payload (the rate and the MTU count whole IP packets).
pub const UDP_OVERHEAD: usize = 28;

/// What happens to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It arrives at this time.
    Deliver(Instant),
    /// Random loss.
    Lost,
    /// The queue was full (drop-tail).
    QueueFull,
    /// The link was down (an outage).
    Down,
    /// Larger than the MTU.
    TooBig,
}

/// What crossed one direction, and what did not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets delivered.
    pub packets: u64,
    /// Their bytes, as offered (a UDP relay: payloads; a TUN relay: IP packets).
    pub bytes: u64,
    /// Packets lost at random.
    pub lost: u64,
    /// Packets dropped because the queue was full.
    pub queue_full: u64,
    /// Packets dropped because the link was down.
    pub down: u64,
    /// Packets dropped for their size.
    pub too_big: u64,
}

/// One direction of the link.
#[derive(Debug)]
pub struct Link {
    dir: Direction,
    /// Bytes added to each offered packet to get its size on the wire.
    overhead: usize,
    rng: u64,
    /// When the serial line finishes sending what is queued.
    busy_until: Option<Instant>,
    /// When the last delivered packet arrives (order is kept).
    last_arrival: Option<Instant>,
    counters: Counters,
}

impl Link {
    /// A direction whose packets are offered with `overhead` bytes of
    /// headers not counted in their length ([`UDP_OVERHEAD`] for a UDP
    /// relay, 0 for whole IP packets), its randomness from `seed`.
    pub fn new(dir: Direction, overhead: usize, seed: u64) -> Link {
        Link {
            dir,
            overhead,
            // SplitMix's constant keeps a zero seed from sticking at zero.
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            busy_until: None,
            last_arrival: None,
            counters: Counters::default(),
        }
    }

    /// The direction's shape now.
    pub fn direction(&self) -> Direction {
        self.dir
    }

    /// Changes the shape from now on (the queue already formed stays).
    pub fn set_direction(&mut self, dir: Direction) {
        self.dir = dir;
    }

    /// What crossed so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The fate of a packet of `len` bytes offered at `now`, `down` if the
    /// link is in an outage.
    pub fn offer(&mut self, len: usize, now: Instant, down: bool) -> Fate {
        let fate = self.decide(len, now, down);
        let c = &mut self.counters;
        match fate {
            Fate::Deliver(_) => {
                c.packets += 1;
                c.bytes += len as u64;
            }
            Fate::Lost => c.lost += 1,
            Fate::QueueFull => c.queue_full += 1,
            Fate::Down => c.down += 1,
            Fate::TooBig => c.too_big += 1,
        }
        fate
    }

    fn decide(&mut self, len: usize, now: Instant, down: bool) -> Fate {
        if down {
            return Fate::Down;
        }
        let wire = len + self.overhead;
        if wire > self.dir.mtu {
            return Fate::TooBig;
        }
        if self.dir.loss > 0.0 && self.uniform() < self.dir.loss {
            return Fate::Lost;
        }
        let departure = if self.dir.rate_bps == 0 {
            now
        } else {
            let start = self.busy_until.filter(|b| *b > now).unwrap_or(now);
            if start - now > self.dir.queue {
                return Fate::QueueFull;
            }
            let bits = (wire * 8) as f64;
            let done = start + Duration::from_secs_f64(bits / self.dir.rate_bps as f64);
            self.busy_until = Some(done);
            done
        };
        let mut arrival = departure + self.dir.delay;
        if !self.dir.jitter.is_zero() {
            // Uniform in [delay - jitter, delay + jitter], never before departure.
            let j = self.dir.jitter.as_secs_f64() * (2.0 * self.uniform() - 1.0);
            arrival = if j >= 0.0 {
                arrival + Duration::from_secs_f64(j)
            } else {
                arrival
                    .checked_sub(Duration::from_secs_f64(-j))
                    .filter(|a| *a >= departure)
                    .unwrap_or(departure)
            };
        }
        if let Some(last) = self.last_arrival {
            arrival = arrival.max(last);
        }
        self.last_arrival = Some(arrival);
        Fate::Deliver(arrival)
    }

    /// A uniform number in [0, 1) (SplitMix64: seeded, so a run repeats).
    fn uniform(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(line: &str) -> Direction {
        crate::Profile::parse(line).unwrap().up
    }

    #[test]
    fn the_rate_spaces_packets_by_their_size_on_the_wire() {
        // 1 Mbit/s: a 1000-byte IP packet takes 8 ms.
        let mut l = Link::new(dir("rate=1mbit delay=10ms queue=1s"), 0, 7);
        let t0 = Instant::now();
        let arrivals: Vec<Instant> = (0..5)
            .map(|_| match l.offer(1000, t0, false) {
                Fate::Deliver(at) => at,
                other => panic!("{other:?}"),
            })
            .collect();
        for (i, at) in arrivals.iter().enumerate() {
            let expected = Duration::from_millis(8 * (i as u64 + 1) + 10);
            let got = *at - t0;
            assert!(
                got.abs_diff(expected) < Duration::from_micros(10),
                "{i}: {got:?}"
            );
        }
    }

    #[test]
    fn a_full_queue_drops_at_the_tail_then_drains() {
        // 1 Mbit/s, 1000-byte packets (8 ms each), a 40 ms queue: 6 fit
        // (the sixth starts 40 ms after now), the seventh is dropped.
        let mut l = Link::new(dir("rate=1mbit queue=40ms"), 0, 7);
        let t0 = Instant::now();
        let fates: Vec<Fate> = (0..7).map(|_| l.offer(1000, t0, false)).collect();
        assert!(fates[..6].iter().all(|f| matches!(f, Fate::Deliver(_))));
        assert_eq!(fates[6], Fate::QueueFull);
        // 100 ms later the queue has drained.
        assert!(matches!(
            l.offer(1000, t0 + Duration::from_millis(100), false),
            Fate::Deliver(_)
        ));
        assert_eq!(l.counters().queue_full, 1);
        assert_eq!(l.counters().packets, 7);
    }

    #[test]
    fn random_loss_strikes_its_share_and_the_seed_repeats_it() {
        let t0 = Instant::now();
        let run = |seed| {
            let mut l = Link::new(dir("loss=1%"), 0, seed);
            (0..100_000)
                .map(|_| l.offer(100, t0, false) == Fate::Lost)
                .collect::<Vec<bool>>()
        };
        let a = run(3);
        let lost = a.iter().filter(|x| **x).count();
        assert!((900..1100).contains(&lost), "{lost} of 100000");
        assert_eq!(a, run(3));
        assert_ne!(a, run(4));
    }

    #[test]
    fn jitter_varies_the_delay_but_keeps_the_order() {
        let mut l = Link::new(dir("delay=50ms jitter=20ms"), 0, 9);
        let t0 = Instant::now();
        let mut last = t0;
        let mut seen_short = false;
        let mut seen_long = false;
        for i in 0..1000 {
            let now = t0 + Duration::from_millis(i);
            let Fate::Deliver(at) = l.offer(100, now, false) else {
                panic!()
            };
            assert!(at >= last);
            let d = at - now;
            assert!(d <= Duration::from_millis(70));
            seen_short |= d < Duration::from_millis(40);
            seen_long |= d > Duration::from_millis(60);
            last = at;
        }
        assert!(seen_short && seen_long);
    }

    #[test]
    fn an_outage_and_the_mtu_drop_and_count() {
        let mut l = Link::new(dir("mtu=1500"), UDP_OVERHEAD, 1);
        let t0 = Instant::now();
        assert_eq!(l.offer(1473, t0, false), Fate::TooBig);
        assert!(matches!(l.offer(1472, t0, false), Fate::Deliver(_)));
        assert_eq!(l.offer(100, t0, true), Fate::Down);
        let c = l.counters();
        assert_eq!((c.packets, c.bytes, c.too_big, c.down), (1, 1472, 1, 1));
    }
}
