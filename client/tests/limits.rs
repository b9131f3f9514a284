//! Bandwidth limits (issue 19): the real `coffre` backs up and restores
//! through the emulated link (`coffre_wan::Relay`) with `--limit-upload`,
//! `--limit-download` or config.toml's `[limits]`, and what crossed the
//! link (the relay's counters: UDP payloads plus 28 bytes of IPv4 and UDP
//! headers per packet, as the link counts them) stays within 5% of the
//! limit.
//!
//! The rate is measured over the bulk of the transfer: from when 5% of
//! the bytes that crossed had crossed to when 95% had (the relay's
//! counters sampled every 20 ms), so the connection's setup and the
//! commit do not dilute it. The lower bound is loose: this machine is
//! shared and noisy.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffre_core::benchmark::random_bytes;
use coffre_store::Role;
use coffre_wan::{Profile, Relay};
use support::*;

const GIB: u64 = 1 << 30;
/// The limit of every test: 16 Mbit/s, so 10 MB takes about 5 s.
const LIMIT: &str = "16Mbit/s";
const LIMIT_BYTES: f64 = 2_000_000.0;
/// IPv4 and UDP headers, per packet.
const HEADERS: u64 = 28;

/// A server, a client enrolled through a relay (20 ms round trip, no rate
/// limit of its own), and 10 MB of incompressible files to back up.
struct Setup {
    server: Server,
    relay: Relay,
    client: Client,
    data: tempfile::TempDir,
}

fn setup() -> Setup {
    let server = Server::start();
    let data = tempfile::tempdir().unwrap();
    for i in 0..5u64 {
        std::fs::write(
            data.path().join(format!("archive-{i}.bin")),
            random_bytes(2_000_000, 100 + i),
        )
        .unwrap();
    }
    let client = Client::new();
    client.enrol(
        &server.token("asso", 10 * GIB, "pc-compta", Role::Backup),
        &[data.path()],
    );
    let relay = Relay::spawn(
        server.addr.parse().unwrap(),
        Profile::parse("rtt=20ms").unwrap(),
    )
    .unwrap();
    // The client dials the relay instead of the server.
    let text = std::fs::read_to_string(&client.config).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("server = ") {
                format!("server = \"{}\"\n", relay.addr())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&client.config, text).unwrap();
    Setup {
        server,
        relay,
        client,
        data,
    }
}

/// Appends `section` to the client's config.toml.
fn configure(client: &Client, section: &str) {
    let mut text = std::fs::read_to_string(&client.config).unwrap();
    text.push_str(section);
    std::fs::write(&client.config, text).unwrap();
}

/// Which way to watch.
#[derive(Clone, Copy)]
enum Way {
    Up,
    Down,
}

/// Runs `f` while sampling the relay's counters of `way` every 20 ms;
/// returns the link's rate over the bulk of the transfer (bytes per second
/// on the wire, headers included) and the bytes that crossed.
fn measure(relay: &Relay, way: Way, f: impl FnOnce()) -> (f64, u64) {
    let wire = |relay: &Relay| {
        let t = relay.counters();
        let c = match way {
            Way::Up => t.up,
            Way::Down => t.down,
        };
        c.bytes + HEADERS * c.packets
    };
    let done = Arc::new(AtomicBool::new(false));
    let samples = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut samples = vec![(Instant::now(), wire(relay))];
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                samples.push((Instant::now(), wire(relay)));
            }
            samples
        });
        f();
        done.store(true, Ordering::Relaxed);
        sampler.join().unwrap()
    });
    let (first, last) = (samples[0].1, samples.last().unwrap().1);
    let moved = last - first;
    // The first samples at or past 5% and 95% of what crossed.
    let at = |fraction: f64| {
        samples
            .iter()
            .find(|(_, b)| (*b - first) as f64 >= fraction * moved as f64)
            .copied()
            .unwrap()
    };
    let (a, b) = (at(0.05), at(0.95));
    let rate = (b.1 - a.1) as f64 / b.0.duration_since(a.0).as_secs_f64();
    (rate, moved)
}

/// The rate is within 5% above the limit, and not far below it.
fn assert_holds(rate: f64, moved: u64, what: &str) {
    eprintln!(
        "{what}: {:.0} bytes/s on the link for a limit of {LIMIT_BYTES} ({:.3}x), {moved} bytes",
        rate,
        rate / LIMIT_BYTES
    );
    assert!(moved > 10_000_000, "{what}: only {moved} bytes crossed");
    assert!(
        rate <= 1.05 * LIMIT_BYTES,
        "{what}: {rate:.0} bytes/s is more than 5% over the limit"
    );
    assert!(
        rate >= 0.6 * LIMIT_BYTES,
        "{what}: {rate:.0} bytes/s is far below the limit"
    );
}

#[test]
fn backup_holds_its_upload_limit() {
    let s = setup();
    let mut summary = String::new();
    let (rate, moved) = measure(&s.relay, Way::Up, || {
        summary = s.client.ok(&["backup", "--quiet", "--limit-upload", LIMIT]);
    });
    assert_holds(rate, moved, "backup --limit-upload");
    // The summary (what a scheduled run logs) gives the average rate.
    let average: f64 = summary
        .split(" at ")
        .nth(1)
        .and_then(|r| r.split(" Mbit/s").next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no average rate in {summary:?}"));
    assert!((9.0..=16.8).contains(&average), "{summary}");
    drop(s.server);
}

#[test]
fn restore_holds_its_download_limit() {
    let s = setup();
    s.client.ok(&["backup", "--quiet"]);
    let target = tempfile::tempdir().unwrap();
    let (rate, moved) = measure(&s.relay, Way::Down, || {
        s.client.ok(&[
            "restore",
            "latest",
            "--target",
            target.path().to_str().unwrap(),
            "--quiet",
            "--limit-download",
            LIMIT,
        ]);
    });
    assert_holds(rate, moved, "restore --limit-download");
    assert_same_tree(s.data.path(), &restored(target.path(), s.data.path()));
}

/// Where a restore of the whole snapshot put `data` (under its absolute path).
fn restored(target: &Path, data: &Path) -> std::path::PathBuf {
    let data = std::fs::canonicalize(data).unwrap();
    target.join(data.strip_prefix("/").unwrap())
}

#[test]
fn a_daytime_window_that_covers_now_applies_its_rate() {
    let s = setup();
    // A window from two hours ago to two hours from now, every day: the
    // base limit (none) does not apply, the window's does.
    let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::system());
    let minute = i32::from(now.hour()) * 60 + i32::from(now.minute());
    let hm = |m: i32| {
        let m = m.rem_euclid(24 * 60);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    configure(
        &s.client,
        &format!(
            "\n[limits]\ndownload = \"100 Mbit/s\"\n[limits.daytime]\nhours = \"{}-{}\"\ndays = \"mon-sun\"\nupload = \"{LIMIT}\"\n",
            hm(minute - 120),
            hm(minute + 120)
        ),
    );
    let (rate, moved) = measure(&s.relay, Way::Up, || {
        s.client.ok(&["backup", "--quiet"]);
    });
    assert_holds(rate, moved, "backup, [limits.daytime] upload");
}

#[test]
fn a_rate_without_its_unit_is_refused_with_examples() {
    let client = Client::new();
    let out = client.run(&["backup", "--limit-upload", "20"]);
    assert_eq!(out.status.code(), Some(2));
    let err = one_line_error(&out);
    assert!(
        err.contains("bits or bytes") && err.contains("2Mbit/s") && err.contains("1.5MB/s"),
        "{err}"
    );
    // And in config.toml, the file and the value are named.
    let s = setup();
    configure(&s.client, "\n[limits]\nupload = \"20M\"\n");
    let out = s.client.run(&["backup", "--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    let err = one_line_error(&out);
    assert!(
        err.contains("config.toml") && err.contains("ambiguous"),
        "{err}"
    );
}
