//! Crash test: a child process uploads and commits in a loop and is killed
//! (SIGKILL) at some instant; the store must then open, keep every snapshot
//! whose commit returned, and serve all of their chunks intact.
//!
//! The child is this test binary again, running `crash_child` with
//! `COFFRE_CRASH_DIR` set (sled's `test_crash_recovery` does the same).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use coffre_core::{ChunkId, Manifest};
use coffre_store::{read_pack_index, Role, Store};
use coffre_testkit::store::files;
use coffre_testkit::{data, Client, GIB};

const DIR_VAR: &str = "COFFRE_CRASH_DIR";
const SECRET_VAR: &str = "COFFRE_CRASH_SECRET";

/// The child's work. Without `COFFRE_CRASH_DIR` (a normal test run) it
/// returns at once: it only runs inside `killed_writer_leaves_a_consistent_store`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let secret: [u8; 32] = hex::decode(std::env::var(SECRET_VAR).unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let store = Store::open(dir.as_ref()).unwrap();
    let s = store.authenticate(&secret).unwrap();
    let mut c = Client::new(1);
    let mut pack = store.open_pack(&s);
    let pid = u64::from(std::process::id());
    for run in 0u64.. {
        let mut ids = Vec::new();
        for k in 0..6 {
            let (id, blob) = c.blob(&data(pid * 1_000_000 + run * 10 + k, 20_000));
            store.put_chunk(&s, &mut pack, &id, &blob).unwrap();
            ids.push(id);
            if k == 3 {
                store.seal_pack(&s, &mut pack).unwrap();
            }
        }
        let snap = store
            .commit_snapshot(&s, &mut pack, &c.manifest_at("pc-1", run as i64, &ids))
            .unwrap();
        // The parent holds us to this: printed means acknowledged.
        println!("committed {}", snap.to_hex());
    }
}

#[test]
fn killed_writer_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    store.add_subscriber("acme", GIB, None).unwrap();
    let secret = store.add_device("acme", "pc-1", Role::Backup).unwrap();
    drop(store);

    let mut acknowledged: Vec<ChunkId> = Vec::new();
    for delay_ms in [40, 90, 150, 220] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .env(SECRET_VAR, hex::encode(secret))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("committed ").and_then(ChunkId::from_hex))
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        acknowledged.extend(reader.join().unwrap());

        // After the crash: the store opens, and everything acknowledged is there.
        let store = Store::open(dir.path()).unwrap();
        let s = store.authenticate(&secret).unwrap();
        let listed: Vec<ChunkId> = store
            .list_snapshots(&s)
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect();
        for id in &acknowledged {
            assert!(listed.contains(id), "acknowledged snapshot {id} lost");
        }
        for snap in &listed {
            let m = store.manifest(&s, snap).unwrap();
            let (public, _) = Manifest::read_public(&m).unwrap();
            for id in &public.chunks {
                let blob = store.chunk(&s, id).unwrap();
                assert_eq!(Client::new(1).open(id, &blob).len(), 20_000);
            }
        }
        // Every pack under its final name is complete (renamed only once
        // written and synced); crash debris is only temporary or unindexed files.
        let sub = dir
            .path()
            .join("subscribers")
            .join(s.subscriber_id.to_string());
        let mut disk = 0;
        for pack in files(&sub.join("packs"), ".pack") {
            read_pack_index(&pack).unwrap();
            disk += std::fs::metadata(&pack).unwrap().len();
        }
        for m in files(&sub.join("manifests"), "") {
            disk += std::fs::metadata(&m).unwrap().len();
        }
        let used = store.subscriber("acme").unwrap().used_bytes;
        assert!(
            used <= disk,
            "used_bytes {used} counts more than the {disk} bytes on disk"
        );
    }
    assert!(
        !acknowledged.is_empty(),
        "the child never committed: make the delays longer"
    );
}
