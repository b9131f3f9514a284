//! The line between two network namespaces (`Tunnel` + `Namespaces`): a
//! real TCP transfer from the client's namespace to the server's crosses
//! it at the line's rate, and an outage stops it for its length.
//!
//! Needs root (TUN devices, network namespaces) and iproute2's `ip`, so
//! these tests are ignored by a plain `cargo test`; `.ci/run` (root) runs
//! them with `cargo test -p coffre-wan --test tunnel -- --ignored`.
//!
//! The two ends of the transfer are this test binary itself, started again
//! in each namespace with `ip netns exec` and told its part by
//! `COFFRE_WAN_PART` (the `part` test, which does nothing otherwise).

#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffre_wan::{Namespaces, Profile, Tunnel};

const PORT: u16 = 9077;

/// The line and its two namespaces, named after this process so that
/// tests running at once do not meet.
fn line(tag: &str, profile: &str) -> (Tunnel, Namespaces) {
    let id = format!("{}{tag}", std::process::id() % 100_000);
    let (cdev, sdev) = (format!("cwt{id}c"), format!("cwt{id}s"));
    let tunnel = Tunnel::spawn(&cdev, &sdev, Profile::parse(profile).unwrap())
        .expect("TUN devices (run as root)");
    let ns = Namespaces::create(&format!("cwt-{id}-c"), &format!("cwt-{id}-s"), &cdev, &sdev)
        .expect("network namespaces");
    (tunnel, ns)
}

/// This test binary, as `part` in namespace `ns`.
fn spawn_part(ns: &str, part: &str, arg: &str) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "part",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("COFFRE_WAN_PART", part)
        .env("COFFRE_WAN_ARG", arg)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// What a part printed on its line starting with `result `.
fn result_of(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "a part failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // The harness prints "test part ... " on the same line.
        .find_map(|l| l.split_once("result ").map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| panic!("no result in {:?}", String::from_utf8_lossy(&out.stdout)))
}

/// Sends `bytes` over TCP from the client's namespace to the server's;
/// the seconds the receiver took from the first byte to the last.
fn transfer(ns: &Namespaces, bytes: usize) -> f64 {
    let sink = spawn_part(&ns.server, "sink", &format!("{}:{PORT}", ns.server_ip));
    // The sink listens before it prints; give it its moment.
    std::thread::sleep(Duration::from_millis(500));
    let sender = spawn_part(
        &ns.client,
        "send",
        &format!("{}:{PORT} {bytes}", ns.server_ip),
    );
    result_of(sender);
    let got = result_of(sink);
    let (n, secs) = got.split_once(' ').unwrap();
    assert_eq!(n.parse::<usize>().unwrap(), bytes, "every byte arrives");
    secs.parse().unwrap()
}

#[test]
#[ignore = "needs root: run by .ci/run with --ignored"]
fn tcp_crosses_the_line_at_its_rate() {
    let (tunnel, ns) = line("r", "up=8mbit down=50mbit rtt=20ms queue=100ms");
    let bytes = 4_000_000;
    let secs = transfer(&ns, bytes);
    let c = tunnel.counters();
    // The IP packets that crossed: the payload and TCP/IP headers.
    assert!(c.up.bytes >= bytes as u64, "{c:?}");
    let rate = c.up.bytes as f64 * 8.0 / secs;
    eprintln!(
        "{bytes} bytes in {secs:.2} s: {:.2} Mbit/s on the wire; {c:?}",
        rate / 1e6
    );
    // At most the line's rate (a little above for the first packets,
    // which find the queue empty), and TCP fills most of it.
    assert!(rate <= 8.0e6 * 1.05, "{rate} bit/s over an 8 Mbit/s line");
    assert!(rate >= 8.0e6 * 0.6, "{rate} bit/s over an 8 Mbit/s line");
    // Acknowledgements went down the other way.
    assert!(c.down.packets > 0, "{c:?}");
}

#[test]
#[ignore = "needs root: run by .ci/run with --ignored"]
fn an_outage_holds_the_transfer_for_its_length() {
    let (tunnel, ns) = line("o", "up=20mbit down=50mbit rtt=20ms queue=100ms");
    let length = Duration::from_secs(3);
    let t0 = Instant::now();
    // 5 MB at 20 Mbit/s: about 2 s; the line goes down for 3 s after 1 s.
    let secs = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs(1));
            tunnel.outage(length);
        });
        transfer(&ns, 5_000_000)
    });
    let c = tunnel.counters();
    eprintln!("5 MB through a 3 s outage in {secs:.2} s; {c:?}");
    assert!(c.up.down + c.down.down > 0, "packets met the outage: {c:?}");
    // The transfer waited the outage out, then went on: no more than the
    // time TCP takes to find the line back (its retransmission timer
    // backs off: 0.2, 0.4, 0.8, 1.6 s...).
    assert!(
        secs >= 2.0 + 3.0 * 0.9,
        "{secs} s: the outage did not hold it"
    );
    assert!(secs < 20.0, "{secs} s");
    assert!(t0.elapsed() >= length);
}

/// One end of a transfer, when started by [`spawn_part`]; nothing otherwise.
#[test]
#[ignore = "a part of the tests above, started in a namespace"]
fn part() {
    let Ok(part) = std::env::var("COFFRE_WAN_PART") else {
        return;
    };
    let arg = std::env::var("COFFRE_WAN_ARG").unwrap();
    match part.as_str() {
        "sink" => {
            let listener = TcpListener::bind(&arg).unwrap();
            let (mut conn, _) = listener.accept().unwrap();
            // A test that failed leaves no part behind for long.
            conn.set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut n = 0usize;
            let mut first = None;
            loop {
                let got = conn.read(&mut buf).unwrap();
                if got == 0 {
                    break;
                }
                first.get_or_insert_with(Instant::now);
                n += got;
            }
            let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
            println!("result {n} {secs}");
        }
        "send" => {
            let (addr, bytes) = arg.split_once(' ').unwrap();
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
            conn.set_write_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let buf = vec![0u8; 1 << 16];
            let mut left: usize = bytes.parse().unwrap();
            while left > 0 {
                let n = left.min(buf.len());
                conn.write_all(&buf[..n]).unwrap();
                left -= n;
            }
            conn.shutdown(std::net::Shutdown::Write).unwrap();
            println!("result sent");
        }
        other => panic!("unknown part {other}"),
    }
}
