//! Bandwidth limits (issue 19): `--limit-upload RATE`, `--limit-download
//! RATE`, and config.toml's `[limits]` with its optional daytime window
//! (`schedule.rs`). The rates are read by `coffre_core::units::parse_rate`.
//!
//! One [`Limiter`] per process ([`current`]): a command sets the command
//! line's limits ([`set_options`]) before it connects; `credential::connect`
//! [`install`]s them with the installation's `[limits]`. Every connection
//! of the run (a reconnect's too) then shares its two token buckets
//! (`bucket.rs`), which `remote.rs` calls at two places only:
//!
//! - **upload**: a request's bytes are written in slices of at most 64 KiB
//!   ([`Limiter::write`]), each after taking its tokens;
//! - **download**: each piece of a response read takes its tokens
//!   ([`Limiter::received`]) before the next is read; and the client's
//!   QUIC receive window is sized from the limit ([`Limiter::tune`] at
//!   connection, then each second from the round trip), so the server
//!   can be at most that window (250 ms of the rate, or two round trips)
//!   ahead of the limit, instead of the 32 MiB an unlimited client grants.
//!
//! Both charge what crosses the link, not the stream bytes: the
//! connection's UDP counters plus 28 bytes of IPv4 and UDP headers (48 for
//! IPv6) per datagram, so QUIC's headers, acknowledgements and
//! retransmissions are inside the limit (`bucket.rs`).
//!
//! The rate is looked up each second, so a run that crosses the daytime
//! window's boundary changes its rate within a second of it.
//!
//! Each direction also counts its stream bytes ([`Meter`]): the progress
//! bar's rates and the backup's average.

mod bucket;
mod schedule;

pub use schedule::{Limit, LimitsConfig, LocalTime};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use schedule::{Plan, Way};

use bucket::Bucket;

/// The command line's limits: each wins over config.toml's for the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `--limit-upload`.
    pub upload: Option<Limit>,
    /// `--limit-download`.
    pub download: Option<Limit>,
}

/// Where the local time comes from: the system's, or a test's.
pub type Clock = Arc<dyn Fn() -> LocalTime + Send + Sync>;

/// How often the schedule is looked at again (and the receive window sized
/// again from the round trip).
const RECHECK: Duration = Duration::from_secs(1);

/// The largest slice of a request written at once: small enough that
/// requests in flight take turns every few hundred milliseconds.
const MAX_SLICE: usize = 64 * 1024;

/// The receive window without a download limit: remote.rs's
/// `client_config` default, given back when a daytime limit ends.
const OPEN_WINDOW: u64 = 32 << 20;

/// The smallest receive window: 64 KiB.
const MIN_WINDOW: u64 = 64 << 10;

/// Both directions' limits, buckets and meters.
pub struct Limiter {
    up: Direction,
    down: Direction,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("up", &self.up.plan)
            .field("down", &self.down.plan)
            .finish()
    }
}

struct Direction {
    way: Way,
    plan: Plan,
    clock: Clock,
    state: Mutex<State>,
    meter: Meter,
}

#[derive(Default)]
struct State {
    bucket: Bucket,
    /// The rate in force (`None`: no limit now).
    rate: Option<u64>,
    /// When `rate` was looked up.
    checked: Option<Instant>,
    /// The receive window last set on the connection (download).
    window: Option<(usize, u64)>,
}

impl Limiter {
    /// No limit, ever.
    pub fn off() -> Limiter {
        Limiter::with_clock(
            &LimitsConfig::default(),
            Options::default(),
            Arc::new(LocalTime::now),
        )
    }

    /// The limits of `config` and of the command line, by this PC's clock.
    pub fn new(config: &LimitsConfig, options: Options) -> Limiter {
        Limiter::with_clock(config, options, Arc::new(LocalTime::now))
    }

    /// The same, by `clock`.
    pub fn with_clock(config: &LimitsConfig, options: Options, clock: Clock) -> Limiter {
        let direction = |way, option| Direction {
            way,
            plan: Plan::new(config, way, option),
            clock: clock.clone(),
            state: Mutex::default(),
            meter: Meter::default(),
        };
        Limiter {
            up: direction(Way::Up, options.upload),
            down: direction(Way::Down, options.download),
        }
    }

    /// Writes `head`, then the pieces of `body` from their own buffers, on
    /// `send`: at once without an upload limit, else in slices that each
    /// take their tokens first.
    pub async fn write(
        &self,
        conn: &quinn::Connection,
        send: &mut quinn::SendStream,
        head: &[u8],
        mut body: Vec<Bytes>,
    ) -> Result<(), quinn::WriteError> {
        if !self.up.plan.limits() {
            let n = head.len() + body.iter().map(Bytes::len).sum::<usize>();
            send.write_all(head).await?;
            send.write_all_chunks(&mut body).await?;
            self.up.meter.add(n as u64);
            return Ok(());
        }
        let pieces = std::iter::once(Bytes::copy_from_slice(head)).chain(body);
        for mut rest in pieces {
            while !rest.is_empty() {
                let slice = rest.split_to(rest.len().min(self.up.slice()));
                self.up.take(slice.len(), conn).await;
                send.write_chunk(slice).await?;
            }
        }
        Ok(())
    }

    /// `n` bytes of a response were read from `conn`: waits, under a
    /// download limit, until they are paid for.
    pub async fn received(&self, conn: &quinn::Connection, n: usize) {
        self.down.take(n, conn).await;
    }

    /// Sizes a new connection's receive window from the download limit in
    /// force (the server may send that much before the client reads it).
    pub fn tune(&self, transport: &mut quinn::TransportConfig) {
        if !self.down.plan.limits() {
            return;
        }
        let window = receive_window(self.down.rate_now(Instant::now()), Duration::ZERO);
        transport.receive_window(varint(window));
        transport.stream_receive_window(varint(window));
    }

    /// Stream bytes sent so far.
    pub fn sent(&self) -> &Meter {
        &self.up.meter
    }

    /// Stream bytes received so far.
    pub fn received_meter(&self) -> &Meter {
        &self.down.meter
    }

    /// The upload's limit now, if any (bytes per second).
    pub fn upload_limit(&self) -> Option<u64> {
        self.up.rate_now(Instant::now())
    }

    /// The download's limit now, if any (bytes per second).
    pub fn download_limit(&self) -> Option<u64> {
        self.down.rate_now(Instant::now())
    }
}

impl Direction {
    /// The slice of a request written after one take: an eighth of a
    /// second of the rate, between one packet and 64 KiB.
    fn slice(&self) -> usize {
        match self.rate_now(Instant::now()) {
            Some(rate) => (rate / 8).clamp(1200, MAX_SLICE as u64) as usize,
            None => MAX_SLICE,
        }
    }

    /// The rate in force at `now`, looked up again after [`RECHECK`].
    fn rate_now(&self, now: Instant) -> Option<u64> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut st, now);
        st.rate
    }

    /// Looks the schedule up again if [`RECHECK`] has passed; true if so.
    fn refresh(&self, st: &mut State, now: Instant) -> bool {
        if st
            .checked
            .is_some_and(|c| now.saturating_duration_since(c) < RECHECK)
        {
            return false;
        }
        st.rate = self.plan.rate_at((self.clock)());
        st.checked = Some(now);
        true
    }

    /// Charges `n` stream bytes (and the wire's overhead) of `conn`, and
    /// waits for them.
    async fn take(&self, n: usize, conn: &quinn::Connection) {
        self.meter.add(n as u64);
        if !self.plan.limits() {
            return;
        }
        let now = Instant::now();
        let (wait, window) = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let mut window = None;
            if self.refresh(&mut st, now) && self.way == Way::Down {
                let w = receive_window(st.rate, conn.rtt());
                if st.window != Some((conn.stable_id(), w)) {
                    st.window = Some((conn.stable_id(), w));
                    window = Some(w);
                }
            }
            let wire = (conn.stable_id(), wire_bytes(conn, self.way));
            let rate = st.rate;
            // Bytes read are in the wire count already; bytes about to be
            // written are not.
            let ahead = match self.way {
                Way::Up => n as u64,
                Way::Down => 0,
            };
            (st.bucket.take(now, rate, ahead, Some(wire)), window)
        };
        if let Some(w) = window {
            conn.set_receive_window(varint(w));
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The bytes of `way` that crossed the link for `conn`: UDP payload plus
/// the IP and UDP headers of each datagram.
fn wire_bytes(conn: &quinn::Connection, way: Way) -> u64 {
    let stats = conn.stats();
    let udp = match way {
        Way::Up => stats.udp_tx,
        Way::Down => stats.udp_rx,
    };
    let header = if conn.remote_address().is_ipv4() {
        20 + 8
    } else {
        40 + 8
    };
    udp.bytes + udp.datagrams * header
}

/// The receive window for a download limit of `rate`: 250 ms of it, or two
/// round trips if longer (so the limit, not the window, sets the pace),
/// at least 64 KiB; without a limit, the client's usual window.
fn receive_window(rate: Option<u64>, rtt: Duration) -> u64 {
    match rate {
        None => OPEN_WINDOW,
        Some(rate) => {
            let span = (rtt * 2).max(Duration::from_millis(250));
            ((rate as f64 * span.as_secs_f64()) as u64).clamp(MIN_WINDOW, OPEN_WINDOW)
        }
    }
}

fn varint(n: u64) -> quinn::VarInt {
    quinn::VarInt::from_u64(n).unwrap_or(quinn::VarInt::MAX)
}

/// A direction's stream bytes, and the span from the first to the last.
#[derive(Debug, Default)]
pub struct Meter {
    bytes: AtomicU64,
    /// Nanoseconds since [`EPOCH`] of the first and last bytes (0: none yet).
    first: AtomicU64,
    last: AtomicU64,
}

/// The origin of the meters' times.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

impl Meter {
    fn add(&self, n: u64) {
        self.add_at(n, (EPOCH.elapsed().as_nanos() as u64).max(1));
    }

    /// `n` bytes at `t` nanoseconds after [`EPOCH`] (at least 1).
    fn add_at(&self, n: u64, t: u64) {
        if n == 0 {
            return;
        }
        let _ = self
            .first
            .compare_exchange(0, t, Ordering::Relaxed, Ordering::Relaxed);
        self.last.store(t, Ordering::Relaxed);
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The average rate from the first byte to the last (bytes per second);
    /// `None` before a second's worth of bytes is known.
    pub fn average(&self) -> Option<u64> {
        let span = self
            .last
            .load(Ordering::Relaxed)
            .saturating_sub(self.first.load(Ordering::Relaxed));
        (span >= 100_000_000).then(|| (self.bytes() as f64 / (span as f64 / 1e9)) as u64)
    }
}

/// The process's limits: the command line's options, and the limiter.
struct Process {
    options: Options,
    config: Option<LimitsConfig>,
    limiter: Arc<Limiter>,
}

static PROCESS: LazyLock<Mutex<Process>> = LazyLock::new(|| {
    Mutex::new(Process {
        options: Options::default(),
        config: None,
        limiter: Arc::new(Limiter::off()),
    })
});

fn process() -> std::sync::MutexGuard<'static, Process> {
    PROCESS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records the command line's limits, for [`install`].
pub fn set_options(options: Options) {
    let mut p = process();
    if p.options != options {
        p.options = options;
        p.config = None;
        p.limiter = Arc::new(Limiter::off());
    }
}

/// Makes the limits of `config` and the command line the process's. The
/// same limits again (a reconnect) keep the limiter: its buckets and
/// meters span the run.
pub fn install(config: &LimitsConfig) {
    let mut p = process();
    if p.config.as_ref() != Some(config) {
        p.limiter = Arc::new(Limiter::new(config, p.options));
        p.config = Some(config.clone());
    }
}

/// The process's limiter (no limit until [`install`]).
pub fn current() -> Arc<Limiter> {
    process().limiter.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU16;

    #[test]
    fn the_rate_changes_when_the_clock_crosses_the_window() {
        let config: LimitsConfig = toml::from_str(
            r#"
            upload = "4 Mbit/s"
            [daytime]
            hours = "08:00-19:00"
            days = "mon-sun"
            upload = "1 Mbit/s"
        "#,
        )
        .unwrap();
        let minute = Arc::new(AtomicU16::new(7 * 60 + 59));
        let m = minute.clone();
        let clock: Clock = Arc::new(move || LocalTime {
            weekday: 2,
            minute: m.load(Ordering::Relaxed),
        });
        let limiter = Limiter::with_clock(&config, Options::default(), clock);
        let t0 = Instant::now();
        assert_eq!(limiter.up.rate_now(t0), Some(500_000));
        minute.store(8 * 60, Ordering::Relaxed);
        // Looked up again once a second, not at every slice.
        assert_eq!(
            limiter.up.rate_now(t0 + Duration::from_millis(500)),
            Some(500_000)
        );
        assert_eq!(limiter.up.rate_now(t0 + RECHECK), Some(125_000));
        minute.store(19 * 60, Ordering::Relaxed);
        assert_eq!(limiter.up.rate_now(t0 + RECHECK * 2), Some(500_000));
        // The command line wins over both.
        let options = Options {
            upload: Some("off".parse().unwrap()),
            download: None,
        };
        let limiter = Limiter::with_clock(&config, options, Arc::new(LocalTime::now));
        assert_eq!(limiter.upload_limit(), None);
    }

    #[test]
    fn the_receive_window_follows_the_rate_and_the_round_trip() {
        // 20 Mbit/s: 250 ms is 625 kB.
        assert_eq!(
            receive_window(Some(2_500_000), Duration::from_millis(40)),
            625_000
        );
        // A 300 ms round trip: two of them.
        assert_eq!(
            receive_window(Some(2_500_000), Duration::from_millis(300)),
            1_500_000
        );
        assert_eq!(receive_window(Some(1_000), Duration::ZERO), MIN_WINDOW);
        assert_eq!(receive_window(None, Duration::ZERO), OPEN_WINDOW);
    }

    #[test]
    fn a_meter_averages_over_its_span() {
        let m = Meter::default();
        assert_eq!(m.average(), None);
        m.add_at(1000, 1);
        m.add_at(1000, 50_000_001);
        // Not over 50 ms: too short to say.
        assert_eq!(m.average(), None);
        m.add_at(2000, 2_000_000_001);
        // 4000 bytes over 2 s.
        assert_eq!(m.average(), Some(2000));
    }
}
