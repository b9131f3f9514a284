//! Many sessions at once, and two processes' worth of `Store` on one data
//! directory (the daemon and an admin command).

use std::sync::{Arc, Barrier};
use std::thread;

use coffre_store::{Error, Role, Store};
use coffre_testkit::store::{files, Env};
use coffre_testkit::{data, Client, GIB};

/// Uploads `n` chunks (of seeds `seed..seed+n`) and commits a snapshot of them.
fn backup(
    store: &Store,
    s: &coffre_store::Session,
    c: &mut Client,
    seed: u64,
    n: u64,
) -> coffre_core::ChunkId {
    let mut pack = store.open_pack(s);
    let mut ids = Vec::new();
    for i in seed..seed + n {
        let (id, blob) = c.blob(&data(i, 2000 + (i % 7) as usize * 300));
        if !store.has_chunks(s, &[id]).unwrap()[0] {
            store.put_chunk(s, &mut pack, &id, &blob).unwrap();
        }
        ids.push(id);
    }
    store
        .commit_snapshot(s, &mut pack, &c.manifest_at(&s.device, seed as i64, &ids))
        .unwrap()
}

#[test]
fn two_stores_on_one_directory_write_side_by_side() {
    let env = Env::new();
    let daemon = Arc::new(Store::open(env.path()).unwrap());
    let admin = Store::open(env.path()).unwrap();
    admin.add_subscriber("acme", GIB, None).unwrap();
    let secret = admin.add_device("acme", "pc-1", Role::Backup).unwrap();

    let barrier = Arc::new(Barrier::new(2));
    let uploader = {
        let (daemon, barrier) = (daemon.clone(), barrier.clone());
        thread::spawn(move || {
            let s = daemon.authenticate(&secret).unwrap();
            let mut c = Client::new(1);
            barrier.wait();
            (0..10)
                .map(|i| backup(&daemon, &s, &mut c, i * 3, 4))
                .collect::<Vec<_>>()
        })
    };
    barrier.wait();
    // Meanwhile the admin command adds subscribers and devices and reads.
    for i in 0..10 {
        admin
            .add_subscriber(&format!("member-{i}"), GIB, None)
            .unwrap();
        admin
            .add_device(&format!("member-{i}"), "pc", Role::Backup)
            .unwrap();
        admin.set_subscriber("acme", Some(2 * GIB), None).unwrap();
        admin.usage().unwrap();
    }
    let snaps = uploader.join().unwrap();

    // Each store sees the other's writes.
    assert_eq!(daemon.list_subscribers().unwrap().len(), 11);
    let acme = admin.subscriber("acme").unwrap();
    assert_eq!(acme.snapshots, 10);
    assert_eq!(acme.quota_bytes, 2 * GIB);
    let s = admin.authenticate(&secret).unwrap();
    assert_eq!(
        admin
            .list_snapshots(&s)
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect::<Vec<_>>()
            .len(),
        snaps.len()
    );
    assert_eq!(acme.used_bytes, env.disk_bytes(&s));
}

#[test]
fn many_sessions_upload_at_once() {
    let env = Env::new();
    let store = Arc::new(env.store);
    let mut secrets = Vec::new();
    for sub in ["acme", "beta"] {
        store.add_subscriber(sub, GIB, None).unwrap();
        for d in 0..3 {
            secrets.push(
                store
                    .add_device(sub, &format!("pc-{d}"), Role::Backup)
                    .unwrap(),
            );
        }
    }
    let threads: Vec<_> = secrets
        .into_iter()
        .enumerate()
        .map(|(i, secret)| {
            let store = store.clone();
            thread::spawn(move || {
                let s = store.authenticate(&secret).unwrap();
                // Devices of one subscriber share a key: overlapping chunks dedup.
                let mut c = Client::new(if s.subscriber == "acme" { 1 } else { 2 });
                for run in 0..3 {
                    backup(&store, &s, &mut c, (i as u64 % 3) * 2 + run, 5);
                }
                s
            })
        })
        .collect();
    let sessions: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for s in &sessions {
        let info = store.subscriber(&s.subscriber).unwrap();
        assert_eq!(info.snapshots, 9, "three devices, three runs each");
        let env_disk = {
            let dir = env
                .dir
                .path()
                .join("subscribers")
                .join(s.subscriber_id.to_string());
            files(&dir.join("packs"), ".pack")
                .iter()
                .chain(&files(&dir.join("manifests"), ""))
                .map(|p| std::fs::metadata(p).unwrap().len())
                .sum::<u64>()
        };
        assert_eq!(info.used_bytes, env_disk);
        // Every snapshot's chunks are readable.
        for snap in store.list_snapshots(s).unwrap() {
            let m = store.manifest(s, &snap.id).unwrap();
            let (public, _) = coffre_core::Manifest::read_public(&m).unwrap();
            for id in public.chunks {
                store.chunk(s, &id).unwrap();
            }
        }
    }
}

#[test]
fn parallel_uploads_never_overshoot_the_quota() {
    let env = Env::new();
    let quota = 60_000;
    env.store.add_subscriber("acme", quota, None).unwrap();
    let secrets: Vec<_> = (0..4)
        .map(|d| {
            env.store
                .add_device("acme", &format!("pc-{d}"), Role::Backup)
                .unwrap()
        })
        .collect();
    let store = Arc::new(env.store);
    let barrier = Arc::new(Barrier::new(secrets.len()));
    let threads: Vec<_> = secrets
        .into_iter()
        .enumerate()
        .map(|(i, secret)| {
            let (store, barrier) = (store.clone(), barrier.clone());
            thread::spawn(move || {
                let s = store.authenticate(&secret).unwrap();
                let mut c = Client::new(1);
                let mut pack = store.open_pack(&s);
                barrier.wait();
                let mut refused = 0;
                for k in 0..10u64 {
                    let (id, blob) = c.blob(&data(100 * i as u64 + k, 5000));
                    match store.put_chunk(&s, &mut pack, &id, &blob) {
                        Ok(_) => {}
                        Err(Error::QuotaExceeded { .. }) => refused += 1,
                        Err(e) => panic!("{e}"),
                    }
                    if k % 3 == 2 {
                        store.seal_pack(&s, &mut pack).unwrap();
                    }
                }
                store.seal_pack(&s, &mut pack).unwrap();
                (s, refused)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let refused: u32 = results.iter().map(|r| r.1).sum();
    assert!(refused > 0, "40 chunks of 5 kB cannot fit in 60 kB");
    let used = store.subscriber("acme").unwrap().used_bytes;
    assert!(used <= quota, "{used} > {quota}");
    let dir = env
        .dir
        .path()
        .join("subscribers")
        .join(results[0].0.subscriber_id.to_string());
    let disk: u64 = files(&dir.join("packs"), ".pack")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(used, disk);
}
