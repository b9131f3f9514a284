//! What goes wrong, said plainly, with nothing lost: wrong passphrase,
//! unreachable server, another server's certificate, a full quota, a
//! killed backup, unreadable and special files, a backup device trying to
//! delete. The real server on loopback, the real `coffre` program.

#![cfg(unix)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use coffre_core::benchmark::random_bytes;
use coffre_proto::Token;
use coffre_store::{PackStorage, Role};
use support::{one_line_error, Client, Server, PASSPHRASE};

const GIB: u64 = 1 << 30;

fn small_tree(root: &Path) {
    fs::create_dir_all(root).unwrap();
    fs::write(root.join("a.txt"), b"bonjour").unwrap();
    fs::write(root.join("b.bin"), random_bytes(300_000, 1)).unwrap();
}

#[test]
fn a_wrong_passphrase_is_one_clear_line_and_enrols_nothing() {
    let server = Server::start();
    let first = Client::new();
    first.enrol(
        &server.token("asso", GIB, "pc1", Role::Backup),
        &[Path::new("/tmp")],
    );
    let second = Client::new();
    let out = second
        .command(&[
            "enrol",
            &server.token("asso", GIB, "pc2", Role::Backup),
            "--path",
            "/tmp",
        ])
        .env("COFFRE_PASSPHRASE", "not the passphrase")
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("wrong passphrase for asso"), "{err}");
    assert!(
        !second.config.exists(),
        "nothing is written on a wrong passphrase"
    );

    // From a file, the right one works (a trailing newline is not part of it).
    let file = second.dir.path().join("pass");
    fs::write(&file, format!("{PASSPHRASE}\n")).unwrap();
    let out = second
        .command(&[
            "enrol",
            &server.token("asso", GIB, "pc3", Role::Backup),
            "--path",
            "/tmp",
        ])
        .arg("--passphrase-file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A first device needs a passphrase long enough, and none at all is a clear error.
    let lone = Client::new();
    let out = lone
        .command(&[
            "enrol",
            &server.token("solo", GIB, "pc", Role::Backup),
            "--path",
            "/tmp",
        ])
        .env("COFFRE_PASSPHRASE", "short")
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("at least 8 characters"));
    let out = lone
        .command(&[
            "enrol",
            &server.token("solo", GIB, "pc2", Role::Backup),
            "--path",
            "/tmp",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("COFFRE_PASSPHRASE"));
}

#[test]
fn an_unreachable_server_and_another_certificate_are_one_clear_line() {
    let server = Server::start();
    let token = server.token("asso", GIB, "pc", Role::Backup);
    let mut t = Token::parse(&token).unwrap();

    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut unreachable = t.clone();
    unreachable.server = format!("127.0.0.1:{port}");
    let c = Client::new();
    let out = c
        .command(&["enrol", &unreachable.encode().unwrap(), "--path", "/tmp"])
        .env("COFFRE_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("cannot reach the coffre server"), "{err}");

    t.fingerprint[0] ^= 1;
    let out = c
        .command(&["enrol", &t.encode().unwrap(), "--path", "/tmp"])
        .env("COFFRE_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("does not present the certificate"), "{err}");

    let out = c.run(&["backup"]);
    assert!(one_line_error(&out).contains("coffre enrol TOKEN"));
    let out = c.run(&["enrol", "coffre1.garbage"]);
    assert!(one_line_error(&out).contains("not a valid enrolment token"));
}

#[test]
fn a_full_quota_fails_plainly_keeps_the_earlier_snapshot_and_is_recorded() {
    a_full_quota_fails_plainly(PackStorage::Local);
}

#[test]
fn a_full_quota_fails_plainly_keeps_the_earlier_snapshot_and_is_recorded_on_garage() {
    let garage = coffre_testkit::garage::Garage::start();
    a_full_quota_fails_plainly(garage.storage("quota"));
}

fn a_full_quota_fails_plainly(storage: PackStorage) {
    let server = Server::start_on(storage);
    let work = tempfile::tempdir().unwrap();
    let home = fs::canonicalize(work.path()).unwrap().join("home");
    small_tree(&home);
    let pc = Client::new();
    pc.enrol(
        &server.token("petite", 2_000_000, "pc", Role::Backup),
        &[&home],
    );
    pc.ok(&["backup"]);
    // The leftovers of a refused run are the packs sealed after the last
    // commit, in whole seconds: the next run starts in a later second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::write(home.join("big.bin"), random_bytes(5_000_000, 2)).unwrap();
    let out = pc.run(&["backup"]);
    let err = one_line_error(&out);
    assert!(err.contains("quota is full"), "{err}");
    // What the member can do, and what happens to what was sent.
    assert!(
        err.contains("will not be sent again") && err.contains("then run the backup again"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(1));
    let status = pc.json(&["status"]);
    assert_eq!(status["last_run"]["result"], "failed", "{status}");
    assert!(status["last_run"]["message"]
        .as_str()
        .unwrap()
        .contains("quota"));
    assert!(!err.contains("forget old snapshots"), "{err}");
    // The server recorded the refusal for the board (issue 20): when, what
    // the quota lacked, and what the unfinished backup left, counted.
    let usage = server.store.usage().unwrap();
    let d = &usage[0].device_backups[0];
    assert_eq!(d.quota_refusals, 1, "one refusal a minute at most: {d:?}");
    assert!(d.refused_unfinished(), "{d:?}");
    assert!(d.quota_missing > 0 && d.quota_missing <= 5_000_000, "{d:?}");
    assert!(
        d.leftover_bytes > 0 && d.leftover_bytes <= usage[0].used_bytes,
        "what it sent before the refusal: {d:?}"
    );
    let now = server.store.now();
    let row = coffre_server::usage::Row::new(usage[0].clone(), now, 3);
    assert_eq!(row.attention(), coffre_server::usage::Attention::Alarm);
    let words = coffre_server::status_words(&usage[0], now, 3);
    // Worst first: the refusal before "near quota" if the quota is nearly
    // reached too.
    assert!(words[0].starts_with("backup refused: pc at "), "{words:?}");
    let snaps = pc.json(&["snapshots"]);
    assert_eq!(snaps["snapshots"].as_array().unwrap().len(), 1);
    let target = work.path().join("r");
    pc.ok(&[
        "restore",
        "latest",
        "--path",
        home.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(target.join("home/a.txt")).unwrap(), b"bonjour");
}

/// A backup killed mid-upload, run again, completes and sends no chunk twice.
#[test]
fn a_killed_backup_resumes_without_sending_anything_twice() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let home = fs::canonicalize(work.path()).unwrap().join("home");
    let pc = Client::new();
    pc.enrol(
        &server.token("asso", 10 * GIB, "pc", Role::Backup),
        &[&home],
    );
    let journal = pc.state_dir().join("cache/uploaded");
    let mut files = 0;
    let killed_after = loop {
        // Enough data that the upload is still running when it is killed.
        for _ in 0..40 {
            files += 1;
            let d = home.join(format!("d{}", files % 7));
            fs::create_dir_all(&d).unwrap();
            fs::write(
                d.join(format!("f{files}.bin")),
                random_bytes(3 << 20, files),
            )
            .unwrap();
        }
        let mut child = pc.command(&["backup", "--quiet"]).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut killed = None;
        while Instant::now() < deadline {
            let sent = fs::metadata(&journal).map(|m| m.len() / 32).unwrap_or(0);
            if sent >= 5 {
                child.kill().unwrap();
                killed = Some(sent);
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let status = child.wait().unwrap();
        match killed {
            Some(n) if !status.success() => break n,
            _ => {
                // It finished first: start over with more data.
                assert!(files < 400, "could not interrupt a backup");
                fs::remove_file(&journal).ok();
            }
        }
    };
    let snapshots_before = pc.json(&["snapshots"])["snapshots"]
        .as_array()
        .unwrap()
        .len();
    let out = pc.run(&["backup", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("without the cache"),
        "the chunks sent before the kill were not found durable on the server"
    );
    let rerun: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rerun["blobs_duplicate"], 0,
        "a chunk was sent twice: {rerun}"
    );
    let chunks_total = rerun["blobs_sent"].as_u64().unwrap() + killed_after;
    assert!(
        rerun["blobs_sent"].as_u64().unwrap() < chunks_total,
        "the rerun sent everything again: {rerun}"
    );
    assert_eq!(
        pc.json(&["snapshots"])["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        snapshots_before + 1
    );
    let target = work.path().join("r");
    pc.ok(&[
        "restore",
        "latest",
        "--path",
        home.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--quiet",
    ]);
    support::assert_same_tree(&home, &target.join("home"));
}

#[test]
fn a_backup_device_cannot_forget_an_admin_device_can() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let home = fs::canonicalize(work.path()).unwrap().join("home");
    small_tree(&home);
    let pc = Client::new();
    pc.enrol(&server.token("asso", GIB, "pc", Role::Backup), &[&home]);
    pc.ok(&["backup"]);
    pc.ok(&["backup"]);
    let err = one_line_error(&pc.run(&["forget", "latest", "--yes"]));
    assert!(err.contains("only an admin device"), "{err}");
    let admin = Client::new();
    admin.enrol(&server.token("asso", GIB, "tech", Role::Admin), &[&home]);
    let out = admin.ok(&["forget", "latest", "--yes"]);
    assert!(out.contains("forgot snapshot"), "{out}");
    assert_eq!(
        admin.json(&["snapshots"])["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Unreadable files and folders are reported and recorded, the run completes
/// (exit status 3), special files are skipped with a warning. Run as an
/// unprivileged user (root reads everything).
#[test]
fn unreadable_and_special_files_are_reported_and_the_backup_completes() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(work.path()).unwrap();
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    let home = base.join("home");
    small_tree(&home);
    fs::write(home.join("secret.txt"), b"no").unwrap();
    fs::set_permissions(home.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::create_dir_all(home.join("closed/inside")).unwrap();
    fs::set_permissions(home.join("closed"), fs::Permissions::from_mode(0o000)).unwrap();
    let fifo = home.join("pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());

    let pc = Client::new();
    let as_root = is_root();
    if as_root {
        // The installation belongs to `nobody`, who runs the client.
        fs::set_permissions(pc.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    }
    let run = |args: &[&str], pass: bool| {
        let mut c = if as_root {
            let mut c = std::process::Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_coffre"),
            ]);
            c.arg("--config").arg(&pc.config).args(args);
            c
        } else {
            pc.command(args)
        };
        c.env("COFFRE_CONNECT_TIMEOUT", "3");
        if pass {
            c.env("COFFRE_PASSPHRASE", PASSPHRASE);
        }
        c.output().unwrap()
    };
    let token = server.token("asso", GIB, "pc", Role::Backup);
    let out = run(&["enrol", &token, "--path", home.to_str().unwrap()], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["backup", "--json"], false);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read") && stderr.contains("secret.txt"),
        "{stderr}"
    );
    assert!(
        stderr.contains("skipped") && stderr.contains("pipe"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{report}");
    assert_eq!(report["files"], 2, "a.txt and b.bin are saved: {report}");
    assert_eq!(report["special_skipped"].as_array().unwrap().len(), 1);
    let status = run(&["status", "--json"], false);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["last_run"]["result"], "partial", "{status}");
    let ls = run(&["ls", "latest", home.to_str().unwrap(), "--json"], false);
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let names: Vec<&str> = ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, ["a.txt", "b.bin", "closed"], "{ls}");
}

fn is_root() -> bool {
    let probe = tempfile::tempfile().unwrap();
    std::os::unix::fs::MetadataExt::uid(&probe.metadata().unwrap()) == 0
}
