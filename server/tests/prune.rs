//! `coffre-server prune`: retention per device, applied by the real binary
//! to a real data directory whose snapshots were committed through the store
//! on a manual clock (retention goes by when the server received each
//! snapshot: the store's clock at commit).

mod common;

use coffre_core::{ChunkId, Timestamp};
use std::sync::Arc;

use coffre_store::{ManualClock, PackStorage, Store};
use coffre_testkit::Client;
use common::{device, ok, server};

const DAY: i64 = 86_400;
/// 2026-11-23 02:00 UTC.
const MONDAY: i64 = 1_795_399_200;

/// Commits an empty snapshot of `device` made and received at `time` (the
/// store's clock is set to it: an honest PC).
fn commit(
    (store, clock): (&Store, &ManualClock),
    secret: &[u8; 32],
    device: &str,
    time: i64,
) -> ChunkId {
    clock.set(time);
    let s = store.authenticate(secret).unwrap();
    let manifest = Client::new(7).seal_manifest(
        device,
        Timestamp {
            secs: time,
            nanos: 0,
        },
        vec![],
        0,
        0,
    );
    let mut pack = store.open_pack(&s);
    store.commit_snapshot(&s, &mut pack, &manifest).unwrap()
}

#[test]
fn prune_applies_each_subscribers_policy_per_device() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&server(&data, &["init", "--listen", "127.0.0.1:7443"]));
    ok(&server(
        &data,
        &[
            "subscriber",
            "add",
            "asso",
            "--quota",
            "1GiB",
            "--retention",
            "last=1,daily=2",
        ],
    ));
    ok(&server(
        &data,
        &["subscriber", "add", "other", "--quota", "1GiB"],
    ));
    let (pc1, pc2, x) = (
        device(&data, "asso", "pc1"),
        device(&data, "asso", "pc2"),
        device(&data, "other", "x"),
    );
    let clock = Arc::new(ManualClock::new(MONDAY));
    let opened = Store::open_with_clock(&data, &PackStorage::Local, clock.clone()).unwrap();
    let store = (&opened, &*clock);
    // pc1: five nights, and a second snapshot on the last day; pc2: one old snapshot.
    let mut pc1_ids = Vec::new();
    for d in 0..5 {
        pc1_ids.push(commit(store, &pc1, "pc1", MONDAY - (4 - d) * DAY));
    }
    pc1_ids.push(commit(store, &pc1, "pc1", MONDAY + 3_600));
    let pc2_id = commit(store, &pc2, "pc2", MONDAY - 300 * DAY);
    // "other" has the default policy (last=3,...): its two snapshots stay.
    commit(store, &x, "x", MONDAY - DAY);
    commit(store, &x, "x", MONDAY);
    let used_before = opened.subscriber("asso").unwrap().used_bytes;
    drop(opened);

    let dry: serde_json::Value =
        serde_json::from_str(&ok(&server(&data, &["prune", "--dry-run", "--json"]))).unwrap();
    let list = dry["snapshots"].as_array().unwrap();
    assert_eq!(list.len(), 9);
    let keep = |id: &ChunkId| {
        list.iter()
            .find(|d| d["id"] == id.to_hex())
            .map(|d| (d["keep"].as_bool().unwrap(), d["rules"].clone()))
            .unwrap()
    };
    // The newest (Monday 03:00) is the last and the newest of its day;
    // Sunday's is the newest of the day before; `last=1` keeps the whole
    // most recent day of receipt, so Monday 02:00 too (a count is spent at
    // most once a day), which `daily` does not; the rest go.
    assert_eq!(
        keep(&pc1_ids[5]),
        (true, serde_json::json!(["last", "daily"]))
    );
    assert_eq!(keep(&pc1_ids[3]), (true, serde_json::json!(["daily"])));
    assert_eq!(
        keep(&pc1_ids[4]),
        (true, serde_json::json!(["last"])),
        "Monday 02:00 is not the newest of its day, but of the last day"
    );
    for id in &pc1_ids[..3] {
        assert!(!keep(id).0);
    }
    // Another device's single old snapshot is kept: policies apply per device.
    assert_eq!(keep(&pc2_id), (true, serde_json::json!(["last", "daily"])));
    assert_eq!(dry["removed"], 0);
    let received = |id: &ChunkId| {
        let d = list.iter().find(|d| d["id"] == id.to_hex()).unwrap();
        (
            d["received"].as_i64().unwrap(),
            d["pc_time"].as_i64().unwrap(),
        )
    };
    assert_eq!(received(&pc2_id), (MONDAY - 300 * DAY, MONDAY - 300 * DAY));
    let text = ok(&server(&data, &["prune", "--dry-run"]));
    assert!(
        text.contains("received") && text.contains("PC's time") && text.contains("kept by"),
        "{text}"
    );
    let store = Store::open(&data).unwrap();
    assert_eq!(
        store.snapshots_of("asso").unwrap().len(),
        7,
        "a dry run changes nothing"
    );
    drop(store);

    let text = ok(&server(&data, &["prune", "asso"]));
    assert!(text.contains("removed 3 of 7 snapshots"), "{text}");
    let store = Store::open(&data).unwrap();
    let left: Vec<ChunkId> = store
        .snapshots_of("asso")
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left.len(), 4);
    assert!(left.contains(&pc1_ids[5]) && left.contains(&pc1_ids[3]) && left.contains(&pc2_id));
    assert!(left.contains(&pc1_ids[4]));
    assert!(store.subscriber("asso").unwrap().used_bytes < used_before);
    assert_eq!(store.snapshots_of("other").unwrap().len(), 2);
    drop(store);

    // Running it again removes nothing more.
    let again = ok(&server(&data, &["prune"]));
    assert!(again.contains("removed 0 of 6"), "{again}");
    let err = server(&data, &["prune", "nobody"]);
    assert!(!err.status.success());
    assert_eq!(
        String::from_utf8_lossy(&err.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
}

/// Issue 17: a PC whose clock was days off at its last commit is flagged by
/// `coffre-server usage` in text, JSON and CSV; its last backup is when the
/// server received it, and a PC with a right clock is not flagged.
#[test]
fn usage_says_which_pc_has_a_wrong_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&server(&data, &["init", "--listen", "127.0.0.1:7443"]));
    ok(&server(
        &data,
        &["subscriber", "add", "asso", "--quota", "1GiB"],
    ));
    let (fast, right) = (
        device(&data, "asso", "fast"),
        device(&data, "asso", "right"),
    );
    let clock = Arc::new(ManualClock::new(MONDAY));
    let opened = Store::open_with_clock(&data, &PackStorage::Local, clock.clone()).unwrap();
    commit((&opened, &clock), &right, "right", MONDAY);
    // Received at MONDAY + 60, dated 8 days ahead by the PC.
    clock.set(MONDAY + 60);
    let s = opened.authenticate(&fast).unwrap();
    let manifest = Client::new(7).seal_manifest(
        "fast",
        Timestamp {
            secs: MONDAY + 8 * DAY,
            nanos: 0,
        },
        vec![],
        0,
        0,
    );
    opened
        .commit_snapshot(&s, &mut opened.open_pack(&s), &manifest)
        .unwrap();
    drop(opened);

    let json: serde_json::Value =
        serde_json::from_str(&ok(&server(&data, &["usage", "--json"]))).unwrap();
    let asso = &json["subscribers"][0];
    let status = asso["status"].to_string();
    assert!(
        status.contains("clock wrong: the clock of fast is 7 days ahead of the server's"),
        "{status}"
    );
    let devices = asso["devices"].as_array().unwrap();
    let fast = devices.iter().find(|d| d["name"] == "fast").unwrap();
    assert_eq!(fast["last_backup"], MONDAY + 60);
    assert_eq!(fast["clock_skew_seconds"], 8 * DAY - 60);
    assert_eq!(fast["clock_wrong"], true);
    let right = devices.iter().find(|d| d["name"] == "right").unwrap();
    assert_eq!(
        (
            right["clock_skew_seconds"].as_i64(),
            right["clock_wrong"].as_bool()
        ),
        (Some(0), Some(false))
    );

    let csv = ok(&server(&data, &["usage", "--csv"]));
    assert!(
        csv.lines().next().unwrap().ends_with(",status,clock_wrong"),
        "{csv}"
    );
    assert!(csv.lines().nth(1).unwrap().ends_with(",\"fast\""), "{csv}");
    let text = ok(&server(&data, &["usage"]));
    assert!(
        text.contains("(this PC's clock is wrong: 7 days ahead of the server's)"),
        "{text}"
    );
}
