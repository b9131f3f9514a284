//! A link's shape: what each direction does to packets, and when the whole
//! link goes down.
//!
//! Written as one line, as a technician would describe the office's line:
//!
//! ```text
//! up=20mbit down=100mbit rtt=40ms loss=0.1% queue=200ms
//! adsl                      (a named line: see `Profile::named`)
//! vdsl up.loss=1% outage=30s+90s
//! ```
//!
//! `up` is the PC towards the server (what a backup sends), `down` the
//! server towards the PC (what a restore reads). `rtt` sets half of it as
//! each direction's delay; `delay`, `jitter`, `loss`, `queue` and `mtu`
//! apply to both directions, `up.KEY` or `down.KEY` to one. `outage=S+L`
//! takes the link down S after the relay starts, for L (repeatable).

use std::fmt;
use std::time::Duration;

/// What one direction of the link does to the packets that cross it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Direction {
    /// Bits per second on the wire, headers included; 0: no limit.
    pub rate_bps: u64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Each packet's delay varies by up to this much either side of
    /// `delay` (uniformly; order is kept).
    pub jitter: Duration,
    /// Probability that a packet is lost, independently of the others.
    pub loss: f64,
    /// The router's queue, as the time it takes to drain at `rate_bps`:
    /// a packet that would wait longer is dropped (drop-tail).
    pub queue: Duration,
    /// The largest IP packet that crosses; larger ones are dropped.
    pub mtu: usize,
}

impl Default for Direction {
    fn default() -> Self {
        Direction {
            rate_bps: 0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            queue: Duration::from_millis(200),
            mtu: 1500,
        }
    }
}

/// Both directions of a link, its outages and the seed of its losses.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// PC towards server.
    pub up: Direction,
    /// Server towards PC.
    pub down: Direction,
    /// Outages: (after the relay starts, how long).
    pub outages: Vec<(Duration, Duration)>,
    /// The seed of the random losses and jitter: one seed, one run.
    pub seed: u64,
}

impl Default for Profile {
    fn default() -> Self {
        Profile::unlimited()
    }
}

/// The named lines: what an association's structures have.
const NAMED: &[(&str, &str)] = &[
    ("loopback", ""),
    ("vdsl", "up=20mbit down=100mbit rtt=40ms queue=200ms"),
    (
        "vdsl-0.1",
        "up=20mbit down=100mbit rtt=40ms queue=200ms loss=0.1%",
    ),
    (
        "vdsl-1",
        "up=20mbit down=100mbit rtt=40ms queue=200ms loss=1%",
    ),
    ("adsl", "up=2mbit down=8mbit rtt=60ms queue=300ms"),
    (
        "4g",
        "up=8mbit down=30mbit rtt=60ms jitter=15ms loss=0.5% queue=150ms",
    ),
];

impl Profile {
    /// A link that only relays: no limit, no delay, no loss.
    pub fn unlimited() -> Profile {
        Profile {
            up: Direction::default(),
            down: Direction::default(),
            outages: Vec::new(),
            seed: 1,
        }
    }

    /// The named lines and their definitions.
    pub fn names() -> &'static [(&'static str, &'static str)] {
        NAMED
    }

    /// The link written as one line (see the module doc).
    pub fn parse(text: &str) -> Result<Profile, ParseError> {
        let mut p = Profile::unlimited();
        for word in text.split_whitespace() {
            if let Some((_, def)) = NAMED.iter().find(|(n, _)| *n == word) {
                let named = Profile::parse(def)?;
                p.up = named.up;
                p.down = named.down;
                continue;
            }
            let (key, value) = word.split_once('=').ok_or_else(|| {
                ParseError(format!(
                    "`{word}` is neither KEY=VALUE nor a named line ({})",
                    names()
                ))
            })?;
            let (dirs, key): (&[Side], &str) = match key.split_once('.') {
                Some(("up", k)) => (&[|p| &mut p.up], k),
                Some(("down", k)) => (&[|p| &mut p.down], k),
                Some((d, _)) => {
                    return Err(ParseError(format!("`{d}`: a direction is `up` or `down`")))
                }
                None => (&[|p| &mut p.up, |p| &mut p.down], key),
            };
            match key {
                "up" => p.up.rate_bps = rate(value)?,
                "down" => p.down.rate_bps = rate(value)?,
                "outage" => {
                    let (at, len) = value.split_once('+').ok_or_else(|| {
                        ParseError(format!(
                            "outage=`{value}`: write START+LENGTH, e.g. 30s+90s"
                        ))
                    })?;
                    p.outages.push((duration(at)?, duration(len)?));
                }
                "seed" => {
                    p.seed = value
                        .parse()
                        .map_err(|_| ParseError(format!("seed=`{value}`: a whole number")))?
                }
                _ => {
                    for d in dirs {
                        let d = d(&mut p);
                        match key {
                            "rate" => d.rate_bps = rate(value)?,
                            "rtt" => d.delay = duration(value)? / 2,
                            "delay" => d.delay = duration(value)?,
                            "jitter" => d.jitter = duration(value)?,
                            "loss" => d.loss = probability(value)?,
                            "queue" => d.queue = duration(value)?,
                            "mtu" => {
                                d.mtu = value
                                    .parse()
                                    .ok()
                                    .filter(|m| (576..=65535).contains(m))
                                    .ok_or_else(|| ParseError(format!("mtu=`{value}`: bytes, 576 to 65535")))?
                            }
                            _ => {
                                return Err(ParseError(format!(
                                    "unknown key `{key}` (up, down, rate, rtt, delay, jitter, loss, queue, mtu, outage, seed)"
                                )))
                            }
                        }
                    }
                }
            }
        }
        Ok(p)
    }
}

/// One direction of a profile, chosen by a key's prefix.
type Side = fn(&mut Profile) -> &mut Direction;

fn names() -> String {
    NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// Why a link's line does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link profile: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// `20mbit`, `512kbit`, `1gbit`, `800bit`; `0` or `unlimited`: no limit.
fn rate(v: &str) -> Result<u64, ParseError> {
    if v == "0" || v == "unlimited" {
        return Ok(0);
    }
    let lower = v.to_ascii_lowercase();
    let (num, unit) = split_number(&lower);
    let scale = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => {
            return Err(ParseError(format!(
                "rate `{v}`: write bits per second, e.g. 20mbit, 512kbit"
            )))
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|_| ParseError(format!("rate `{v}`: not a number")))?;
    Ok((n * scale).round() as u64)
}

/// `40ms`, `2s`, `1.5s`, `2m`, `250us`.
fn duration(v: &str) -> Result<Duration, ParseError> {
    let (num, unit) = split_number(v);
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| ParseError(format!("duration `{v}`: not a number")))?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => {
            return Err(ParseError(format!(
                "duration `{v}`: write e.g. 40ms, 2s, 2m"
            )))
        }
    };
    Ok(Duration::from_secs_f64(secs))
}

/// `0.1%` or `0.001`.
fn probability(v: &str) -> Result<f64, ParseError> {
    let p = match v.strip_suffix('%') {
        Some(pc) => pc.parse::<f64>().map(|x| x / 100.0),
        None => v.parse::<f64>(),
    }
    .map_err(|_| ParseError(format!("loss `{v}`: write e.g. 0.1% or 0.001")))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(ParseError(format!("loss `{v}`: between 0% and 100%")))
    }
}

fn split_number(v: &str) -> (&str, &str) {
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    v.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_sets_both_directions_and_a_prefix_one() {
        let p =
            Profile::parse("up=20mbit down=100mbit rtt=40ms loss=0.1% down.loss=1% queue=200ms")
                .unwrap();
        assert_eq!(p.up.rate_bps, 20_000_000);
        assert_eq!(p.down.rate_bps, 100_000_000);
        assert_eq!(p.up.delay, Duration::from_millis(20));
        assert_eq!(p.down.delay, Duration::from_millis(20));
        assert!((p.up.loss - 0.001).abs() < 1e-12);
        assert!((p.down.loss - 0.01).abs() < 1e-12);
        assert_eq!(p.up.queue, Duration::from_millis(200));
    }

    #[test]
    fn a_named_line_can_be_amended() {
        let p = Profile::parse("adsl loss=1% outage=30s+1.5m").unwrap();
        assert_eq!(p.up.rate_bps, 2_000_000);
        assert_eq!(p.down.rate_bps, 8_000_000);
        assert_eq!(p.up.delay, Duration::from_millis(30));
        assert!((p.up.loss - 0.01).abs() < 1e-12);
        assert_eq!(
            p.outages,
            vec![(Duration::from_secs(30), Duration::from_secs(90))]
        );
        for (name, _) in Profile::names() {
            Profile::parse(name).unwrap();
        }
    }

    #[test]
    fn mistakes_are_named() {
        for (line, says) in [
            ("up=20", "bits per second"),
            ("loss=2", "between"),
            ("sideways.loss=1%", "direction"),
            ("speed=1mbit", "unknown key"),
            ("outage=30s", "START+LENGTH"),
            ("fibre-optique", "named line"),
        ] {
            let e = Profile::parse(line).unwrap_err().to_string();
            assert!(e.contains(says), "{line}: {e}");
        }
    }
}
