//! `coffre-server gc` and `verify`: the real binary on a real data directory.

mod common;

use std::path::{Path, PathBuf};

use coffre_core::{ChunkId, Timestamp};
use coffre_store::Store;
use coffre_testkit::{data, Client};
use common::{device, ok, server};

/// A data directory in `tmp` with subscriber "jardins" (1 GB, then `extra`
/// arguments of `subscriber add`) and its device "pc": the directory and
/// the device's secret.
fn jardins(tmp: &Path, extra: &[&str]) -> (PathBuf, [u8; 32]) {
    let data = tmp.join("data");
    ok(&server(&data, &["init", "--listen", "127.0.0.1:7443"]));
    let add = [&["subscriber", "add", "jardins", "--quota", "1GB"], extra].concat();
    ok(&server(&data, &add));
    let secret = device(&data, "jardins", "pc");
    (data, secret)
}

/// Uploads `n` chunks of 100 kB and commits a snapshot listing `keep` of them.
fn backup(store: &Store, secret: &[u8; 32], seed: u8, n: usize, keep: usize) -> ChunkId {
    let mut client = Client::new(7);
    let s = store.authenticate(secret).unwrap();
    let mut pack = store.open_pack(&s);
    let mut ids: Vec<ChunkId> = (0..n)
        .map(|i| {
            let data = data(u64::from(seed) * 1000 + i as u64, 100_000);
            client.put(store, &s, &mut pack, &data).0
        })
        .collect();
    ids.truncate(keep);
    ids.sort();
    let time = Timestamp {
        secs: 1_795_399_200 + i64::from(seed),
        nanos: 0,
    };
    let manifest = client.seal_manifest("pc", time, ids, 100_000 * keep as u64, keep as u64);
    let id = store.commit_snapshot(&s, &mut pack, &manifest).unwrap();
    store.end_session(&s).unwrap();
    id
}

#[test]
fn gc_frees_what_retention_removed_and_reports_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, secret) = jardins(tmp.path(), &[]);
    let store = Store::open(&data).unwrap();
    let old = backup(&store, &secret, 1, 20, 20);
    backup(&store, &secret, 2, 5, 5);
    assert!(store.remove_snapshot("jardins", &old).unwrap());
    let used = store.subscriber("jardins").unwrap().used_bytes;

    // Within the default grace period (a day), the new packs are kept.
    let kept: serde_json::Value =
        serde_json::from_str(&ok(&server(&data, &["gc", "--json"]))).unwrap();
    let r = &kept["subscribers"][0];
    assert_eq!(
        (r["unreferenced"].as_u64(), r["protected"].as_u64()),
        (Some(20), Some(20))
    );
    assert_eq!(r["deleted_chunks"], 0);

    let dry = ok(&server(&data, &["gc", "--grace", "0", "--dry-run"]));
    assert!(dry.contains("dry run") && dry.contains("jardins"), "{dry}");
    assert_eq!(store.subscriber("jardins").unwrap().used_bytes, used);

    let done: serde_json::Value = serde_json::from_str(&ok(&server(
        &data,
        &["gc", "jardins", "--grace", "0", "--json"],
    )))
    .unwrap();
    let r = &done["subscribers"][0];
    assert_eq!(r["deleted_chunks"], 20);
    assert_eq!(r["packs_deleted"], 1);
    let after = store.subscriber("jardins").unwrap().used_bytes;
    assert_eq!(r["used_after"].as_u64(), Some(after));
    assert!(used - after > 20 * 100_000, "{used} -> {after}");

    // The run is recorded for /metrics.
    let runs = store.maintenance_runs().unwrap();
    assert!(runs.iter().any(|r| r.task == "gc" && r.ok), "{runs:?}");

    // Clear errors for bad options and unknown subscribers.
    let out = server(&data, &["gc", "--grace", "5y"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("12h"));
    let out = server(&data, &["gc", "--repack-threshold", "150%"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("0% to 100%"));
    let out = server(&data, &["gc", "nobody"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn verify_reports_damage_with_exit_status_3_and_repair_quarantines_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, secret) = jardins(tmp.path(), &[]);
    let store = Store::open(&data).unwrap();
    let snap = backup(&store, &secret, 1, 4, 4);

    let clean = ok(&server(&data, &["verify"]));
    assert!(
        clean.contains("jardins: 1 pack ") && clean.contains(": ok"),
        "{clean}"
    );

    // Damage one blob on disk.
    let packs = data.join("subscribers/1/packs");
    let pack = std::fs::read_dir(&packs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[150_000] ^= 1;
    std::fs::write(&pack, &bytes).unwrap();

    let out = server(&data, &["verify", "--json"]);
    assert_eq!(out.status.code(), Some(3), "damage found: exit status 3");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["subscribers"][0];
    assert_eq!(r["damaged"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["affected"][0]["snapshot"], snap.to_hex());
    assert_eq!(r["affected"][0]["device"], "pc");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("verify --repair"), "{err}");

    let out = server(&data, &["verify", "--repair"]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("quarantined 1 chunk,"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("send the missing data again"));
    // Now only the snapshot's missing chunk is reported, until a backup
    // sends it again.
    let out = server(&data, &["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["subscribers"][0];
    assert_eq!(r["damaged"].as_array().unwrap().len(), 0);
    assert_eq!(r["affected"][0]["missing_chunks"], 1);
    let runs = store.maintenance_runs().unwrap();
    assert!(runs.iter().any(|r| r.task == "verify" && !r.ok), "{runs:?}");

    let out = server(&data, &["verify", "--sample", "30/30"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("3/30"));
}

#[test]
fn rebuild_catalog_brings_back_a_deleted_catalogue() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, secret) = jardins(tmp.path(), &[]);
    let store = Store::open(&data).unwrap();
    let snap = backup(&store, &secret, 1, 3, 3);
    let used = store.subscriber("jardins").unwrap().used_bytes;
    drop(store);

    let refused = server(&data, &["rebuild-catalog"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--replace"));
    for name in ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"] {
        let _ = std::fs::remove_file(data.join(name));
    }
    let out = ok(&server(&data, &["rebuild-catalog"]));
    assert!(
        out.contains("jardins: 1 device, 1 pack (3 chunks), 1 snapshot"),
        "{out}"
    );
    let store = Store::open(&data).unwrap();
    assert_eq!(store.subscriber("jardins").unwrap().used_bytes, used);
    let s = store.authenticate(&secret).unwrap();
    assert_eq!(store.list_snapshots(&s).unwrap()[0].id, snap);
}

#[test]
fn the_nightly_run_applies_retention_collects_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    // Both backups are received within the same second: `daily=1` keeps the
    // newest of that day (`last=1` would keep the whole day of receipt).
    let (data, secret) = jardins(tmp.path(), &["--retention", "daily=1"]);
    let store = Store::open(&data).unwrap();
    backup(&store, &secret, 1, 3, 3);
    let newest = backup(&store, &secret, 2, 2, 2);

    coffre_server::night(&store);

    let s = store.authenticate(&secret).unwrap();
    let left: Vec<_> = store
        .list_snapshots(&s)
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(left, [newest], "retention kept the newest only");
    let mut tasks: Vec<(String, bool)> = store
        .maintenance_runs()
        .unwrap()
        .into_iter()
        .map(|r| (r.task, r.ok))
        .collect();
    tasks.sort();
    assert_eq!(
        tasks,
        [
            ("gc".into(), true),
            ("prune".into(), true),
            ("verify".into(), true)
        ]
    );
}
