//! `coffre-server run` as an operator runs it: the real binary serves a real
//! client with a token from `device add`, logs who is connected, and stops
//! cleanly on SIGTERM.

#![cfg(unix)]

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coffre_client::Remote;
use common::{ok, server};

#[tokio::test]
async fn the_daemon_serves_a_token_holder_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    ok(&server(&data, &["init", "--listen", &listen]));
    ok(&server(
        &data,
        &["subscriber", "add", "asso", "--quota", "1GiB"],
    ));
    let token = coffre_proto::Token::parse(
        ok(&server(&data, &["device", "add", "asso", "compta-pc"])).trim(),
    )
    .unwrap();

    let mut daemon = Command::new(env!("CARGO_BIN_EXE_coffre-server"))
        .args(["run", "--data"])
        .arg(&data)
        .env("COFFRE_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Connect as the enrolled PC, retrying while the daemon starts.
    let start = Instant::now();
    let remote = loop {
        match Remote::connect(&token.server, token.fingerprint, token.secret).await {
            Ok(r) => break r,
            Err(e) if start.elapsed() > Duration::from_secs(20) => {
                panic!("daemon never answered: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(
        (remote.subscriber.as_str(), remote.device.as_str()),
        ("asso", "compta-pc")
    );
    assert!(remote.snapshots().await.unwrap().is_empty());
    // An admin command works while the daemon runs.
    let usage = ok(&server(&data, &["usage", "--json"]));
    assert!(usage.contains("\"asso\""), "{usage}");
    // The daemon recorded today's line of the usage history when it
    // started, with its disk's free space (issue 20).
    let recorded = loop {
        let out = ok(&server(&data, &["usage", "--history", "--json"]));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let days = v["server"]["days"].as_array().cloned().unwrap_or_default();
        if let Some(day) = days.last() {
            assert_eq!(day["date"], v["today"], "{out}");
            break day.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no day recorded: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        recorded["capacity_bytes"].as_u64().unwrap() >= recorded["free_bytes"].as_u64().unwrap(),
        "{recorded}"
    );
    remote.close().await;

    let killed = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = daemon.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let mut log = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("subscriber=asso") && log.contains("device=compta-pc"),
        "log lines lack who: {log}"
    );
    assert!(log.contains("shutting down"), "{log}");
}

/// The signal handlers are in place before the log says "listening": a
/// SIGTERM sent the moment the dashboard or the daemon announces itself stops
/// the daemon cleanly instead of killing it (CI once caught a daemon killed by
/// a SIGTERM sent right after "dashboard listening").
#[test]
fn a_sigterm_sent_as_soon_as_it_listens_stops_it_cleanly() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&server(&data, &["init", "--listen", "127.0.0.1:0"]));
    for round in 0..6 {
        // Alternate which announcement the signal follows.
        let wait_for = if round % 2 == 0 {
            "dashboard listening"
        } else {
            "coffre-server listening"
        };
        let mut daemon = Command::new(env!("CARGO_BIN_EXE_coffre-server"))
            .args(["run", "--dashboard", "127.0.0.1:0", "--data"])
            .arg(&data)
            .env("COFFRE_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut log = BufReader::new(daemon.stderr.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            assert!(
                log.read_line(&mut line).unwrap() > 0,
                "the daemon exited: {seen}"
            );
            seen.push_str(&line);
            if line.contains(wait_for) {
                break;
            }
        }
        let killed = Command::new("kill")
            .args(["-TERM", &daemon.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        // Read the rest of the log to its end: the daemon has exited then.
        log.read_to_string(&mut seen).unwrap();
        let status = daemon.wait().unwrap();
        assert!(status.success(), "round {round}: {status}\n{seen}");
        assert!(seen.contains("shutting down"), "round {round}: {seen}");
    }
}
