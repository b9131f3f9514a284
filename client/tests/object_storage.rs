//! Packs on a real Garage (S3-compatible object storage): the real daemon,
//! the real `coffre` program, and a single-node Garage on loopback
//! (`coffre_testkit::garage`; these tests FAIL if the `garage` binary is missing).
//! GC with repack, verify, rebuild and quota on Garage are in
//! `maintenance.rs` and `failures.rs`, beside their local-disk twins.

#![cfg(unix)]

mod support;

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use coffre_core::benchmark::random_bytes;
use coffre_store::{Role, VerifyOptions};
use coffre_testkit::garage::Garage;
use support::{assert_same_tree, make_tree, one_line_error, stored_packs, Client, Server};

/// A PC of subscriber "jardins" on `server`, with a tree (`prepare` adds to
/// it before enrolment) and its first snapshot.
struct BackedUp {
    _work: tempfile::TempDir,
    base: std::path::PathBuf,
    home: std::path::PathBuf,
    pc: Client,
    first: String,
    as_first: std::collections::BTreeMap<std::path::PathBuf, support::PathState>,
}

fn backed_up(server: &Server, prepare: impl FnOnce(&std::path::Path)) -> BackedUp {
    let work = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(work.path()).unwrap();
    let home = base.join("home");
    make_tree(&home);
    prepare(&home);
    let pc = Client::new();
    pc.enrol(
        &server.token("jardins", 1 << 30, "pc", Role::Backup),
        &[&home],
    );
    let first = pc.backup_id();
    let as_first = support::state(&home);
    BackedUp {
        _work: work,
        base,
        home,
        pc,
        first,
        as_first,
    }
}

#[test]
fn a_backup_on_garage_restores_byte_for_byte_and_leaves_no_pack_on_the_local_disk() {
    let garage = Garage::start();
    let server = Server::start_on(garage.storage("e2e"));
    // A file larger than the multipart threshold: its pack goes in parts.
    let BackedUp {
        _work,
        base,
        home,
        pc,
        first,
        as_first,
    } = backed_up(&server, |home| {
        fs::write(home.join("archive.bin"), random_bytes(40 << 20, 7)).unwrap()
    });
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
    let BackedUp {
        _work,
        base,
        home,
        pc,
        first,
        as_first,
    } = backed_up(&server, |_| {});
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

#[test]
fn move_packs_takes_an_existing_server_from_its_disk_to_garage() {
    let garage = Garage::start();
    let mut server = Server::start();
    let BackedUp {
        _work,
        base,
        home,
        pc,
        first,
        as_first,
    } = backed_up(&server, |_| {});
    let local_packs = stored_packs(&server);
    let used = server.store.subscriber("jardins").unwrap().used_bytes;

    // What docs/operator-guide.md says: stop the daemon, `coffre-server
    // move-packs --to s3://...` (credentials in the environment), verify,
    // start the daemon again.
    let url = garage.url("moved");
    let storage = garage.storage("moved");
    server.restart_on(storage, |data| {
        let dir = coffre_server::DataDir::new(data);
        let config =
            coffre_server::Config::new("127.0.0.1:0".parse().unwrap(), "127.0.0.1:7443".into());
        dir.write_config(&config).unwrap();
        // This test binary's other tests take their credentials from their
        // storage, never from the environment.
        std::env::set_var("COFFRE_S3_ACCESS_KEY_ID", &garage.key_id);
        std::env::set_var("COFFRE_S3_SECRET_ACCESS_KEY", &garage.secret);
        coffre_server::move_packs(data, &url, false).unwrap();
        // Run twice (an interrupted move is resumed): nothing copied again.
        let config = dir.config().unwrap();
        assert_eq!(config.storage.as_ref().unwrap().url, url);
        assert!(!fs::read_to_string(dir.config_path())
            .unwrap()
            .contains(&garage.secret));
        let again = coffre_store::copy_packs(
            data,
            &coffre_store::PackStorage::Local,
            &dir.pack_storage().unwrap(),
        )
        .unwrap();
        assert_eq!(again.copied, 0);
        assert_eq!(again.already_there, local_packs.len() as u64);
        // The old packs go once the new storage verifies.
        fs::remove_dir_all(data.join("subscribers/1/packs")).unwrap();
    });
    assert_eq!(
        stored_packs(&server),
        local_packs,
        "the same packs, in the bucket"
    );
    assert_eq!(server.store.subscriber("jardins").unwrap().used_bytes, used);
    let verified = server
        .store
        .verify("jardins", &VerifyOptions::default())
        .unwrap();
    assert!(
        verified.is_clean() && verified.packs == local_packs.len() as u64,
        "{verified:?}"
    );

    let target = base.join("restored-first");
    pc.restore_to(&first[..12], &target);
    assert!(support::state(&target.join(home.strip_prefix("/").unwrap())) == as_first);
    support::day1(&home);
    pc.backup_id();
    let target = base.join("restored-latest");
    pc.restore_to("latest", &target);
    assert_same_tree(&home, &target.join(home.strip_prefix("/").unwrap()));
}
