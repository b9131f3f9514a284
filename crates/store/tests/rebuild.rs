//! `rebuild_catalog`: the catalogue deleted, rebuilt from the data directory
//! alone, and everything as it was: subscribers, devices and their secrets,
//! snapshots, chunks, used bytes.

use std::fs;

use coffre_core::ChunkId;
use coffre_store::{rebuild_catalog, Error, Role, Session, Store, VerifyOptions};
use coffre_testkit::store::Env;
use coffre_testkit::{data, Client, GIB};

fn backup(env: &Env, s: &Session, c: &mut Client, seeds: &[u64], secs: i64) -> Vec<ChunkId> {
    let mut pack = env.store.open_pack(s);
    let mut ids: Vec<ChunkId> = seeds
        .iter()
        .map(|seed| {
            let (id, b) = c.blob(&data(*seed, 30_000));
            env.store.put_chunk(s, &mut pack, &id, &b).unwrap();
            id
        })
        .collect();
    ids.sort();
    env.store
        .commit_snapshot(s, &mut pack, &c.manifest_at(&s.device, secs, &ids))
        .unwrap();
    ids
}

fn delete_catalogue(path: &std::path::Path) {
    for name in ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"] {
        let _ = fs::remove_file(path.join(name));
    }
}

#[test]
fn a_deleted_catalogue_is_rebuilt_whole() {
    let env = Env::new();
    let a = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    env.store
        .set_subscriber("acme", Some(2 * GIB), Some("last=5,daily=3"))
        .unwrap();
    // Issue 20: who hears of its alerts lives in the account file too.
    env.store
        .set_contact("acme", Some("boss@acme.example,https://ntfy.example/acme"))
        .unwrap();
    let secret_2 = env.store.add_device("acme", "pc-2", Role::Admin).unwrap();
    let a2 = env.store.authenticate(&secret_2).unwrap();
    env.store.add_device("acme", "old", Role::Backup).unwrap();
    env.store.revoke_device("acme", "old").unwrap();
    let b = env.subscriber("bees", GIB, "pc", Role::Backup);
    let mut c = Client::new(1);
    let ids_a = backup(&env, &a, &mut c, &[1, 2, 3], 100);
    backup(&env, &a2, &mut c, &[3, 4], 200);
    backup(&env, &a, &mut c, &[1, 5], 300);
    backup(&env, &b, &mut c, &[9], 100);

    let subscribers = env.store.list_subscribers().unwrap();
    let devices = env.store.list_devices(None).unwrap();
    let snaps_a = env.store.list_snapshots(&a).unwrap();
    let usage: Vec<_> = env
        .store
        .usage()
        .unwrap()
        .into_iter()
        .map(|u| (u.name, u.used_bytes, u.snapshots))
        .collect();
    let path = env.path().to_path_buf();
    drop(env.store);

    delete_catalogue(&path);
    assert!(matches!(Store::open(&path), Err(Error::NoDataDir { .. })));
    let reports = rebuild_catalog(&path, false).unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].subscriber, "acme");
    assert_eq!((reports[0].devices, reports[0].snapshots), (3, 3));
    assert!(reports
        .iter()
        .all(|r| r.problems.is_empty() && r.incomplete_snapshots.is_empty()));

    let store = Store::open(&path).unwrap();
    let rebuilt_subs = store.list_subscribers().unwrap();
    for (before, after) in subscribers.iter().zip(&rebuilt_subs) {
        assert_eq!(
            (
                &before.name,
                before.quota_bytes,
                before.used_bytes,
                &before.retention,
                before.snapshots,
                &before.contact
            ),
            (
                &after.name,
                after.quota_bytes,
                after.used_bytes,
                &after.retention,
                after.snapshots,
                &after.contact
            )
        );
    }
    assert_eq!(
        rebuilt_subs[0].contact.as_deref(),
        Some("boss@acme.example,https://ntfy.example/acme")
    );
    assert_eq!(rebuilt_subs[1].contact, None);
    let rebuilt_devices = store.list_devices(None).unwrap();
    for (before, after) in devices.iter().zip(&rebuilt_devices) {
        assert_eq!(
            (
                &before.subscriber,
                &before.name,
                before.role,
                before.revoked
            ),
            (&after.subscriber, &after.name, after.role, after.revoked)
        );
    }
    let rebuilt_usage: Vec<_> = store
        .usage()
        .unwrap()
        .into_iter()
        .map(|u| (u.name, u.used_bytes, u.snapshots))
        .collect();
    assert_eq!(rebuilt_usage, usage, "used bytes are exact");

    // The devices' secrets still work, snapshots are listed in the same
    // order, and every chunk reads back.
    let a = store.authenticate(&secret_2).unwrap();
    assert_eq!(a.device, "pc-2");
    let rebuilt_snaps = store.list_snapshots(&a).unwrap();
    assert_eq!(
        snaps_a
            .iter()
            .map(|s| (s.id, s.time, s.device.clone()))
            .collect::<Vec<_>>(),
        rebuilt_snaps
            .iter()
            .map(|s| (s.id, s.time, s.device.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(ids_a.len(), 3);
    for seed in [1, 2, 3] {
        let data = data(seed, 30_000);
        let id = ChunkId::compute(&c.keys, &data);
        let blob = store.chunk(&a, &id).unwrap();
        assert!(c.open(&id, &blob) == data, "chunk of seed {seed}");
    }
    assert!(store
        .verify("acme", &VerifyOptions::default())
        .unwrap()
        .is_clean());
    assert!(store
        .verify("bees", &VerifyOptions::default())
        .unwrap()
        .is_clean());

    // A second rebuild over a catalogue needs --replace, and keeps the old one.
    drop(store);
    assert!(matches!(
        rebuild_catalog(&path, false),
        Err(Error::AlreadyExists { .. })
    ));
    rebuild_catalog(&path, true).unwrap();
    assert!(fs::read_dir(&path).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("catalog.sqlite.replaced-")));
    Store::open(&path).unwrap();
}

#[test]
fn a_damaged_pack_is_left_out_and_its_snapshots_named() {
    let env = Env::new();
    let a = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    backup(&env, &a, &mut c, &[1, 2], 100);
    let pack = env.packs(&a)[0].clone();
    let path = env.path().to_path_buf();
    drop(env.store);
    let bytes = fs::read(&pack).unwrap();
    fs::write(&pack, &bytes[..bytes.len() - 3]).unwrap();
    delete_catalogue(&path);
    let reports = rebuild_catalog(&path, false).unwrap();
    let r = &reports[0];
    assert_eq!(r.packs, 0);
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert!(r.problems[0].contains("left out"), "{r:?}");
    assert_eq!(r.incomplete_snapshots.len(), 1);
    assert_eq!(r.incomplete_snapshots[0].1, 2);
}

/// Issue 17: a rebuilt catalogue dates each snapshot no later than the
/// server received it (its manifest file's time), whatever the PC's clock
/// said: a year-9999 manifest is not "newest" after a rebuild, and an
/// honest one keeps its own time.
#[test]
fn a_rebuild_dates_snapshots_no_later_than_their_receipt() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc", Role::Backup);
    let mut c = Client::new(2);
    let honest = 1_700_000_000;
    backup(&env, &s, &mut c, &[1], honest);
    backup(&env, &s, &mut c, &[2], 253_402_300_799);
    let path = env.path().to_path_buf();
    drop(env.store);
    delete_catalogue(&path);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    rebuild_catalog(&path, false).unwrap();
    let store = Store::open(&path).unwrap();
    let snaps = store.snapshots_of("acme").unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!((snaps[0].time, snaps[0].received), (honest, honest));
    assert_eq!(snaps[1].time, 253_402_300_799);
    assert!(
        snaps[1].received <= before,
        "received {} after the rebuild began",
        snaps[1].received
    );
    let last = store.list_devices(Some("acme")).unwrap()[0].last_backup;
    assert_eq!(last, Some(snaps[1].received));
}
