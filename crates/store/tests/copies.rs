//! Copies of one chunk id (dedup trust, issue 17) through the store's
//! maintenance: garbage collection keeps every copy of a referenced id and
//! frees every copy of an unreferenced one, repack moves each copy alone,
//! `used_bytes` keeps matching the disk, and a rebuilt catalogue indexes
//! every copy. The attack itself runs end to end in
//! `client/tests/dedup_trust.rs`.

use coffre_store::{GcOptions, Presence, Role};
use coffre_testkit::store::Env;
use coffre_testkit::{data, Client, GIB};

fn now() -> GcOptions {
    GcOptions {
        grace_secs: 0,
        repack_threshold: 0.01,
        ..GcOptions::default()
    }
}

#[test]
fn every_copy_of_a_referenced_id_survives_gc_and_repack_and_all_go_with_the_id() {
    let env = Env::new();
    let honest = env.subscriber("asso", GIB, "pc-bureau", Role::Backup);
    let hostile = env.device("asso", "pc-infecte", Role::Backup);
    let mut c = Client::new(1);
    let shared = data(1, 50_000);
    let (id, good) = c.blob(&shared);
    let (_, bad) = c.blob(&data(2, 50_000));

    // The hostile device stores another chunk's blob under the shared id.
    let mut pack = env.store.open_pack(&hostile);
    assert!(env.store.put_chunk(&hostile, &mut pack, &id, &bad).unwrap());
    let filler = env.sealed_pack(&hostile, &mut c, &[3, 4, 5], 50_000);
    env.store.seal_pack(&hostile, &mut pack).unwrap();
    assert_eq!(
        env.store.chunk_presence(&honest, &[id]).unwrap(),
        [Presence::Untrusted]
    );
    // The honest device finds it bad and stores its own copy.
    let mut pack = env.store.open_pack(&honest);
    assert!(env.store.put_chunk(&honest, &mut pack, &id, &good).unwrap());
    env.store.seal_pack(&honest, &mut pack).unwrap();
    assert_eq!(
        env.store.chunk_presence(&honest, &[id]).unwrap(),
        [Presence::Trusted]
    );
    assert_eq!(c.open(&id, &env.store.chunk(&honest, &id).unwrap()), shared);
    assert_eq!(env.store.chunk_copy(&honest, &id, 0).unwrap(), bad);
    assert_eq!(env.store.chunk_copy(&honest, &id, 1).unwrap(), good);
    assert!(env.store.chunk_copy(&honest, &id, 2).is_err());
    let snap = env.commit(&honest, &c, 100, &[id]);
    env.store.end_session(&honest).unwrap();
    env.store.end_session(&hostile).unwrap();
    assert_eq!(env.used("asso"), env.disk_bytes(&honest));

    // GC frees the filler (unreferenced) and repacks: both copies stay, and
    // each device is still served its own.
    let r = env.store.gc("asso", &now()).unwrap();
    assert_eq!(r.deleted_chunks, filler.len() as u64, "{r:?}");
    assert_eq!(env.used("asso"), env.disk_bytes(&honest));
    assert_eq!(c.open(&id, &env.store.chunk(&honest, &id).unwrap()), shared);
    assert_eq!(env.store.chunk(&hostile, &id).unwrap(), bad);
    assert_eq!(env.store.chunk_copy(&honest, &id, 1).unwrap(), good);
    let v = env.store.verify("asso", &Default::default()).unwrap();
    assert!(v.is_clean(), "{v:?}");
    assert_eq!(v.disputes.len(), 1, "{:?}", v.disputes);

    // Once no snapshot lists the id, every copy goes.
    assert!(env.store.remove_snapshot("asso", &snap).unwrap());
    let r = env.store.gc("asso", &now()).unwrap();
    assert_eq!(r.deleted_chunks, 2, "{r:?}");
    assert_eq!(
        env.store.chunk_presence(&honest, &[id]).unwrap(),
        [Presence::Absent]
    );
    assert_eq!(env.used("asso"), env.disk_bytes(&honest));
    assert_eq!(env.packs(&honest).len(), 0);
}

#[test]
fn a_vouched_copy_is_skipped_and_served_and_a_rebuild_keeps_every_copy() {
    let env = Env::new();
    let a = env.subscriber("asso", GIB, "pc-a", Role::Backup);
    let b = env.device("asso", "pc-b", Role::Backup);
    let mut c = Client::new(1);
    let ids = env.sealed_pack(&a, &mut c, &[1, 2], 50_000);
    assert_eq!(
        env.store.chunk_presence(&b, &ids).unwrap(),
        [Presence::Untrusted, Presence::Untrusted]
    );
    // B checked the first: it skips it; the second it replaces.
    assert_eq!(env.store.vouch(&b, &ids[..1]).unwrap(), 1);
    assert_eq!(env.store.vouch(&b, &ids[..1]).unwrap(), 0, "once");
    assert_eq!(
        env.store.has_chunks(&b, &ids).unwrap(),
        [true, false],
        "what a protocol-2 client is told"
    );
    let mut pack = env.store.open_pack(&b);
    let (_, blob) = c.blob(&data(1, 50_000));
    assert!(!env.store.put_chunk(&b, &mut pack, &ids[0], &blob).unwrap());
    let (_, blob) = c.blob(&data(2, 50_000));
    assert!(env.store.put_chunk(&b, &mut pack, &ids[1], &blob).unwrap());
    env.store.seal_pack(&b, &mut pack).unwrap();
    env.commit(&b, &c, 100, &ids);
    let used = env.used("asso");
    assert_eq!(used, env.disk_bytes(&a));
    env.store.end_session(&a).unwrap();
    env.store.end_session(&b).unwrap();

    // Rebuilt from the packs: every blob a footer lists is a copy, trusted
    // by all (no writer is known), and the usage is unchanged.
    let dir = env.path().to_path_buf();
    drop(env.store);
    for name in ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let report = coffre_store::rebuild_catalog(&dir, false).unwrap();
    assert_eq!(report.len(), 1);
    let store = coffre_store::Store::open(&dir).unwrap();
    assert_eq!(store.subscriber("asso").unwrap().used_bytes, used);
    let secret = store.add_device("asso", "pc-c", Role::Backup).unwrap();
    let s = store.authenticate(&secret).unwrap();
    assert_eq!(
        store.chunk_presence(&s, &ids).unwrap(),
        [Presence::Trusted, Presence::Trusted]
    );
    assert!(
        store.chunk_copy(&s, &ids[1], 1).is_ok(),
        "both copies indexed"
    );
}
