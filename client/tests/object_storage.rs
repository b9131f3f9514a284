//! Packs on a real Garage (S3-compatible object storage): the real daemon,
//! the real `coffre` program, and a single-node Garage on loopback
//! (`support::garage`; these tests FAIL if the `garage` binary is missing).
//! GC with repack, verify, rebuild and quota on Garage are in
//! `maintenance.rs` and `failures.rs`, beside their local-disk twins.

#![cfg(unix)]

mod support;

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use coffre_core::benchmark::random_bytes;
use coffre_store::{RawPacks, Role, VerifyOptions};
use support::garage::Garage;
use support::{assert_same_tree, make_tree, one_line_error, Client, Server};

/// Packs of subscriber 1 in the bucket.
fn stored_packs(server: &Server) -> Vec<(String, u64)> {
    RawPacks::open(server.dir.path(), &server.storage)
        .unwrap()
        .list(1)
        .unwrap()
}

#[test]
fn a_backup_on_garage_restores_byte_for_byte_and_leaves_no_pack_on_the_local_disk() {
    let garage = Garage::start();
    let server = Server::start_on(garage.storage("e2e"));
    let work = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(work.path()).unwrap();
    let home = base.join("home");
    make_tree(&home);
    // A file larger than the multipart threshold: its pack goes in parts.
    fs::write(home.join("archive.bin"), random_bytes(40 << 20, 7)).unwrap();
    let pc = Client::new();
    pc.enrol(
        &server.token("jardins", 1 << 30, "pc", Role::Backup),
        &[&home],
    );
    let first = pc.backup_id();
    let as_first = support::state(&home);
    support::day1(&home);
    let second = pc.backup_id();

    let packs = stored_packs(&server);
    assert!(packs.len() >= 2, "{packs:?}");
    assert!(
        packs
            .iter()
            .any(|(_, size)| *size > coffre_store::storage::MULTIPART_THRESHOLD),
        "a pack above the multipart threshold: {packs:?}"
    );
    let local = server.dir.path().join("subscribers/1/packs");
    let left: Vec<_> = fs::read_dir(&local)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing stays on the local disk: {left:?}");
    let used = server.store.subscriber("jardins").unwrap().used_bytes;
    let in_bucket: u64 = packs.iter().map(|p| p.1).sum();
    assert!(used > in_bucket, "used bytes count the packs and manifests");

    let target = base.join("restored-second");
    pc.restore_to(&second[..12], &target);
    assert_same_tree(&home, &target.join(home.strip_prefix("/").unwrap()));
    let target = base.join("restored-first");
    pc.restore_to(&first[..12], &target);
    assert!(support::state(&target.join(home.strip_prefix("/").unwrap())) == as_first);
    let check = pc.json(&["check", "--read-data"]);
    assert_eq!(check["ok"], true, "{check}");
}

#[test]
fn garage_stopped_mid_backup_fails_clearly_and_nothing_committed_is_lost() {
    let mut garage = Garage::start();
    let server = Server::start_on(garage.storage("down"));
    let work = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(work.path()).unwrap();
    let home = base.join("home");
    make_tree(&home);
    let pc = Client::new();
    pc.enrol(
        &server.token("jardins", 1 << 30, "pc", Role::Backup),
        &[&home],
    );
    let first = pc.backup_id();
    let as_first = support::state(&home);
    let before = stored_packs(&server).len();

    // A large backup; Garage is killed as soon as its first pack is stored.
    for i in 0..8u64 {
        fs::write(
            home.join(format!("video-{i}.bin")),
            random_bytes(24 << 20, 100 + i),
        )
        .unwrap();
    }
    let child = pc
        .command(&["backup"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while stored_packs(&server).len() == before {
        assert!(
            Instant::now() < deadline,
            "no pack of the backup was stored"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    garage.stop();
    let stopped = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = one_line_error(&out);
    eprintln!("after {:?}: {err}", stopped.elapsed());
    assert!(
        !out.status.success(),
        "the backup cannot finish without its store"
    );
    assert!(
        err.contains("object store") && err.contains("unreachable"),
        "{err}"
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(120),
        "the failure came within bounded time"
    );
    let snaps = pc.json(&["snapshots"]);
    assert_eq!(snaps["snapshots"].as_array().unwrap().len(), 1, "{snaps}");

    // Garage comes back: the next backup completes (resuming what was
    // stored), and the earlier snapshot restores as it was.
    garage.restart();
    let again = pc.json(&["backup"]);
    assert!(again["snapshot"].is_string(), "{again}");
    let target = base.join("restored-first");
    pc.restore_to(&first[..12], &target);
    assert!(support::state(&target.join(home.strip_prefix("/").unwrap())) == as_first);
    let target = base.join("restored-latest");
    pc.restore_to("latest", &target);
    assert_same_tree(&home, &target.join(home.strip_prefix("/").unwrap()));
    let verified = server
        .store
        .verify("jardins", &VerifyOptions::default())
        .unwrap();
    assert!(verified.is_clean(), "{verified:?}");
}
