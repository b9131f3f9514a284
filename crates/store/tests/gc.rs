//! Garbage collection on a real store: what it frees, what it keeps, and that
//! `used_bytes` keeps matching the files on disk.

use std::fs;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use coffre_store::gc::DEFAULT_GRACE_SECS;
use coffre_store::{Error, GcOptions, ManualClock, PackStorage, Role, Store};
use coffre_testkit::store::Env;
use coffre_testkit::{data, Client, GIB};

fn now_options() -> GcOptions {
    GcOptions {
        grace_secs: 0,
        ..GcOptions::default()
    }
}

/// Retention removes a night's snapshots of a subscriber in one call (one
/// transaction, one flush of the manifests' folder: issue 22): exactly
/// those, each once, their manifests gone and `used_bytes` still the disk's.
#[test]
fn retention_removes_several_snapshots_of_a_subscriber_at_once() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let p = env.sealed_pack(&s, &mut c, &[1, 2], 50_000);
    let snaps: Vec<_> = (0..4).map(|t| env.commit(&s, &c, 100 + t, &p)).collect();
    env.store.end_session(&s).unwrap();
    let before = env.used("acme");

    let gone = [snaps[0], snaps[2], snaps[0]];
    assert_eq!(env.store.remove_snapshots("acme", &gone).unwrap(), 2);
    let left: Vec<_> = env
        .store
        .snapshots_of("acme")
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, [snaps[1], snaps[3]]);
    assert!(env.used("acme") < before);
    assert_eq!(
        env.used("acme"),
        env.disk_bytes(&s),
        "manifests removed too"
    );
    assert_eq!(env.store.remove_snapshots("acme", &[snaps[0]]).unwrap(), 0);
    assert_eq!(env.store.remove_snapshots("acme", &[]).unwrap(), 0);
}

#[test]
fn gc_frees_what_no_snapshot_references_and_keeps_the_rest_readable() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let p1 = env.sealed_pack(&s, &mut c, &[1, 2], 50_000);
    let p2 = env.sealed_pack(&s, &mut c, &[3], 50_000);
    let p3 = env.sealed_pack(&s, &mut c, &(4..14).collect::<Vec<_>>(), 50_000);
    let old = env.commit(&s, &c, 100, &[p1.clone(), p2.clone()].concat());
    env.commit(&s, &c, 200, &[p2.clone(), p3[..1].to_vec()].concat());
    env.store.end_session(&s).unwrap();
    assert!(env.store.remove_snapshot("acme", &old).unwrap());
    assert_eq!(env.packs(&s).len(), 3);

    let dry = env
        .store
        .gc(
            "acme",
            &GcOptions {
                dry_run: true,
                ..now_options()
            },
        )
        .unwrap();
    assert_eq!(
        (dry.deleted_chunks, dry.packs_deleted, dry.packs_repacked),
        (11, 1, 1)
    );
    assert!(dry.used_after < dry.used_before);
    assert_eq!(env.packs(&s).len(), 3, "a dry run changes nothing");
    assert_eq!(env.used("acme"), dry.used_before);

    let r = env.store.gc("acme", &now_options()).unwrap();
    assert_eq!(r.postponed, None);
    assert_eq!((r.snapshots, r.chunks, r.unreferenced), (1, 13, 11));
    assert_eq!(r.deleted_chunks, 11);
    assert_eq!(
        (r.packs_deleted, r.packs_repacked, r.packs_written),
        (1, 1, 1)
    );
    assert_eq!(r.used_after, env.used("acme"));
    assert_eq!(
        env.used("acme"),
        env.disk_bytes(&s),
        "used bytes match the disk"
    );
    assert!(r.used_before - r.used_after > 10 * 50_000, "{r:?}");
    assert_eq!(env.packs(&s).len(), 2, "pack 1 removed, pack 3 rewritten");

    // What the remaining snapshot needs is readable and intact.
    for (id, seed) in [(p2[0], 3), (p3[0], 4)] {
        let blob = env.store.chunk(&s, &id).unwrap();
        assert_eq!(c.open(&id, &blob), data(seed, 50_000));
    }
    // The rest is gone, and the server says so.
    for id in p1.iter().chain(&p3[1..]) {
        assert!(matches!(
            env.store.chunk(&s, id),
            Err(Error::NotFound { .. })
        ));
    }
    let again = env.store.gc("acme", &now_options()).unwrap();
    assert_eq!(
        (
            again.deleted_chunks,
            again.packs_deleted,
            again.packs_repacked
        ),
        (0, 0, 0)
    );
    assert_eq!(again.used_after, again.used_before);

    // A new backup of the freed data uploads it again (the server says it
    // no longer has it) and commits.
    let s2 = env.device("acme", "pc-2", Role::Backup);
    assert_eq!(env.store.has_chunks(&s2, &p1).unwrap(), [false, false]);
    let again = env.sealed_pack(&s2, &mut c, &[1, 2], 50_000);
    env.commit(&s2, &c, 300, &again);
    assert_eq!(env.used("acme"), env.disk_bytes(&s));
}

#[test]
fn chunks_younger_than_the_grace_period_are_kept() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let interrupted = env.sealed_pack(&s, &mut c, &[1, 2, 3], 10_000);
    env.store.end_session(&s).unwrap();
    let r = env.store.gc("acme", &GcOptions::default()).unwrap();
    assert_eq!((r.unreferenced, r.protected, r.deleted_chunks), (3, 3, 0));
    assert_eq!(env.store.has_chunks(&s, &interrupted).unwrap(), [true; 3]);
}

/// The grace period is counted on the store's clock: a day passes without a
/// sleep, and the chunks are kept until its last second and deleted at it.
#[test]
fn the_grace_period_runs_on_the_stores_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_system_time());
    let store = Store::create_with_clock(dir.path(), &PackStorage::Local, clock.clone()).unwrap();
    let env = Env { dir, store };
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let interrupted = env.sealed_pack(&s, &mut c, &[1, 2, 3], 10_000);
    env.store.end_session(&s).unwrap();

    clock.advance(DEFAULT_GRACE_SECS - 1);
    let r = env.store.gc("acme", &GcOptions::default()).unwrap();
    assert_eq!((r.unreferenced, r.protected, r.deleted_chunks), (3, 3, 0));
    assert_eq!(env.packs(&s).len(), 1);

    clock.advance(1);
    let r = env.store.gc("acme", &GcOptions::default()).unwrap();
    assert_eq!((r.unreferenced, r.protected, r.deleted_chunks), (3, 0, 3));
    assert_eq!(r.packs_deleted, 1);
    assert!(env.packs(&s).is_empty());
    assert_eq!(env.store.has_chunks(&s, &interrupted).unwrap(), [false; 3]);
    assert_eq!(env.used("acme"), 0);
}

#[test]
fn a_backup_in_progress_postpones_its_subscriber_only() {
    let env = Env::new();
    let a = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let b = env.subscriber("bees", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let ids_a = env.sealed_pack(&a, &mut c, &[1], 10_000);
    env.sealed_pack(&b, &mut c, &[2], 10_000);
    env.store.end_session(&b).unwrap();
    // acme's session asked which chunks exist: they may be in its next
    // commit, so nothing of acme is collected while it is open.
    assert_eq!(env.store.has_chunks(&a, &ids_a).unwrap(), [true]);
    let r = env.store.gc("acme", &now_options()).unwrap();
    let why = r.postponed.expect("postponed");
    assert!(
        why.contains("backup is in progress") && why.contains("pc-1"),
        "{why}"
    );
    assert_eq!(r.deleted_chunks, 0);
    assert_eq!(
        env.store.gc("bees", &now_options()).unwrap().deleted_chunks,
        1
    );

    // The session commits what it was told exists: it is kept.
    env.commit(&a, &c, 100, &ids_a);
    env.store.end_session(&a).unwrap();
    let r = env.store.gc("acme", &now_options()).unwrap();
    assert_eq!((r.postponed, r.deleted_chunks), (None, 0));
    assert!(env.store.chunk(&a, &ids_a[0]).is_ok());
}

#[test]
fn a_session_that_only_reads_does_not_postpone() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    env.sealed_pack(&s, &mut c, &[1], 10_000);
    env.store.end_session(&s).unwrap();
    let reader = env.device("acme", "laptop", Role::Backup);
    env.store.list_snapshots(&reader).unwrap();
    let r = env.store.gc("acme", &now_options()).unwrap();
    assert_eq!((r.postponed, r.deleted_chunks), (None, 1));
}

#[test]
fn a_damaged_manifest_stops_the_collection_before_any_deletion() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let ids = env.sealed_pack(&s, &mut c, &[1, 2], 10_000);
    env.sealed_pack(&s, &mut c, &[3], 10_000);
    let snap = env.commit(&s, &c, 100, &ids);
    env.store.end_session(&s).unwrap();
    let path = env.path().join(format!(
        "subscribers/{}/manifests/{}",
        s.subscriber_id,
        snap.to_hex()
    ));
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 1; // in the encrypted part: only the id check sees it
    fs::write(&path, &bytes).unwrap();
    let e = env.store.gc("acme", &now_options()).unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "{e:?}");
    assert!(e.to_string().contains(&snap.short()), "{e}");
    assert_eq!(env.store.has_chunks(&s, &ids).unwrap(), [true, true]);
    env.store.end_session(&s).unwrap();
    assert_eq!(env.packs(&s).len(), 2, "nothing deleted");
}

#[test]
fn orphan_files_older_than_the_grace_period_are_removed() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let ids = env.sealed_pack(&s, &mut c, &[1], 10_000);
    env.commit(&s, &c, 100, &ids);
    env.store.end_session(&s).unwrap();
    let dir = env.path().join(format!("subscribers/{}", s.subscriber_id));
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    let old = [
        dir.join("packs/00112233445566778899aabbccddeeff.pack"),
        dir.join("packs/.0123456789abcdef0123456789abcdef.pack.tmp"),
        dir.join(format!("manifests/{}", "ab".repeat(32))),
    ];
    for p in &old {
        fs::write(p, b"debris").unwrap();
        fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }
    let young = dir.join("packs/ffeeddccbbaa99887766554433221100.pack");
    fs::write(&young, b"being sealed").unwrap();
    let used = env.used("acme");
    let r = env.store.gc("acme", &now_options()).unwrap();
    assert_eq!(r.orphan_files, 3);
    assert!(old.iter().all(|p| !p.exists()));
    assert!(
        young.exists(),
        "files younger than an hour are never orphans"
    );
    assert_eq!(env.used("acme"), used, "orphans were never counted");
    assert_eq!(env.packs(&s).len(), 2);
}

#[test]
fn one_collection_at_a_time() {
    let env = Env::new();
    env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let held = fs::File::create(env.path().join("gc.lock")).unwrap();
    held.lock().unwrap();
    let e = env.store.gc("acme", &now_options()).unwrap_err();
    assert!(matches!(e, Error::GcRunning), "{e:?}");
    assert!(e.to_string().contains("another garbage collection"), "{e}");
    held.unlock().unwrap();
    env.store.gc("acme", &now_options()).unwrap();
}
