//! The data path with real blobs and manifests: upload, commit, read back,
//! quotas, isolation, roles, restart, and the self-describing packs.

use std::fs;

use coffre_core::ChunkId;
use coffre_store::{read_pack_index, Error, Role, Store, PACK_TARGET_SIZE};
use coffre_testkit::store::{files, hidden, Env};
use coffre_testkit::{data, Client, GIB};

#[test]
fn put_seal_commit_list_and_read_back() {
    let env = Env::new();
    let st = &env.store;
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let chunks: Vec<(ChunkId, Vec<u8>, Vec<u8>)> = (0..4)
        .map(|i| {
            let plain = data(i, 10_000 + i as usize * 777);
            let (id, blob) = c.blob(&plain);
            (id, blob, plain)
        })
        .collect();
    let ids: Vec<ChunkId> = chunks.iter().map(|c| c.0).collect();

    assert_eq!(st.has_chunks(&s, &ids).unwrap(), [false; 4]);
    let mut pack = st.open_pack(&s);
    for (id, blob, _) in &chunks[..2] {
        assert!(st.put_chunk(&s, &mut pack, id, blob).unwrap());
    }
    // In this session's open pack: present, and not stored twice.
    assert_eq!(st.has_chunks(&s, &ids).unwrap(), [true, true, false, false]);
    assert!(!st.put_chunk(&s, &mut pack, &ids[0], &chunks[0].1).unwrap());
    assert_eq!(pack.len(), 2);
    st.seal_pack(&s, &mut pack).unwrap();
    assert!(pack.is_empty());
    // Sealed: still present, still not stored twice.
    assert!(!st.put_chunk(&s, &mut pack, &ids[1], &chunks[1].1).unwrap());
    for (id, blob, _) in &chunks[2..] {
        assert!(st.put_chunk(&s, &mut pack, id, blob).unwrap());
    }
    assert_eq!(env.used("acme"), env.disk_bytes(&s));

    let manifest = c.manifest_at("pc-1", 1_700_000_000, &ids);
    let snap = st.commit_snapshot(&s, &mut pack, &manifest).unwrap();
    assert_eq!(snap, coffre_core::snapshot_id(&manifest));
    assert!(pack.is_empty());
    assert_eq!(st.has_chunks(&s, &ids).unwrap(), [true; 4]);

    let list = st.list_snapshots(&s).unwrap();
    assert_eq!(list.len(), 1);
    let info = &list[0];
    assert_eq!(info.id, snap);
    assert_eq!(info.time, 1_700_000_000);
    assert_eq!(info.device, "pc-1");
    assert_eq!((info.logical_bytes, info.file_count), (4000, 4));
    assert_eq!(info.manifest_bytes, manifest.len() as u64);
    let json = serde_json::to_value(info).unwrap();
    assert_eq!(json["id"], snap.to_hex());

    assert_eq!(st.manifest(&s, &snap).unwrap(), manifest);
    for (id, blob, plain) in &chunks {
        let back = st.chunk(&s, id).unwrap();
        assert_eq!(&back, blob);
        assert_eq!(&c.open(id, &back), plain);
    }

    let status = st.status(&s).unwrap();
    assert_eq!(status.subscriber, "acme");
    assert_eq!(status.device, "pc-1");
    assert_eq!(status.quota_bytes, GIB);
    assert_eq!(status.snapshots, 1);
    assert!(status.last_backup.is_some());
    assert_eq!(status.used_bytes, env.disk_bytes(&s));
    assert_eq!(env.packs(&s).len(), 2);
    let dev = &st.list_devices(Some("acme")).unwrap()[0];
    assert_eq!(dev.last_backup, status.last_backup);
}

#[test]
fn the_same_manifest_twice_is_one_snapshot() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let (id, blob) = c.blob(b"some file");
    let mut pack = env.store.open_pack(&s);
    env.store.put_chunk(&s, &mut pack, &id, &blob).unwrap();
    let m = c.manifest_at("pc-1", 5, &[id]);
    let a = env.store.commit_snapshot(&s, &mut pack, &m).unwrap();
    let used = env.used("acme");
    let b = env.store.commit_snapshot(&s, &mut pack, &m).unwrap();
    assert_eq!(a, b);
    assert_eq!(env.used("acme"), used);
    assert_eq!(env.store.list_snapshots(&s).unwrap().len(), 1);
    assert_eq!(used, env.disk_bytes(&s));
}

#[test]
fn a_snapshot_with_a_missing_chunk_is_refused() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let (id, blob) = c.blob(b"present");
    let (absent, _) = c.blob(b"never uploaded");
    let mut pack = env.store.open_pack(&s);
    env.store.put_chunk(&s, &mut pack, &id, &blob).unwrap();
    let m = c.manifest_at("pc-1", 5, &[id, absent]);
    match env.store.commit_snapshot(&s, &mut pack, &m).unwrap_err() {
        Error::MissingChunks { count, first } => assert_eq!((count, first), (1, absent)),
        e => panic!("{e:?}"),
    }
    assert!(env.store.list_snapshots(&s).unwrap().is_empty());
    // The uploaded chunk was sealed and counts; no manifest was kept.
    assert!(env.store.has_chunks(&s, &[id]).unwrap()[0]);
    assert_eq!(env.used("acme"), env.disk_bytes(&s));
    assert!(env.manifest_files(&s).is_empty());
}

#[test]
fn a_manifest_over_quota_is_refused_and_leaves_no_file() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let ids = env.sealed_pack(&s, &mut c, &[1], 20_000);
    let mut pack = env.store.open_pack(&s);
    let used = env.used("acme");
    let m = c.manifest_at("pc-1", 5, &ids);
    // Room for everything but the manifest's last byte.
    let quota = used + m.len() as u64 - 1;
    env.store.set_subscriber("acme", Some(quota), None).unwrap();
    match env.store.commit_snapshot(&s, &mut pack, &m).unwrap_err() {
        Error::QuotaExceeded { needed, .. } => assert_eq!(needed, m.len() as u64),
        e => panic!("{e:?}"),
    }
    assert!(env.store.list_snapshots(&s).unwrap().is_empty());
    assert_eq!(env.used("acme"), used);
    assert!(env.manifest_files(&s).is_empty());
    assert_eq!(env.used("acme"), env.disk_bytes(&s));

    // One byte more and the same manifest commits.
    env.store
        .set_subscriber("acme", Some(quota + 1), None)
        .unwrap();
    env.store.commit_snapshot(&s, &mut pack, &m).unwrap();
    assert_eq!(env.used("acme"), quota + 1);
    assert_eq!(env.used("acme"), env.disk_bytes(&s));
}

#[test]
fn a_manifest_is_checked() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let c = Client::new(1);
    let mut pack = env.store.open_pack(&s);
    let other = c.manifest_at("pc-2", 5, &[]);
    let e = env
        .store
        .commit_snapshot(&s, &mut pack, &other)
        .unwrap_err();
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    assert!(e.to_string().contains("pc-2"), "{e}");
    let e = env
        .store
        .commit_snapshot(&s, &mut pack, b"CFMF\x01junk")
        .unwrap_err();
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    // An empty snapshot is fine.
    env.store
        .commit_snapshot(&s, &mut pack, &c.manifest_at("pc-1", 5, &[]))
        .unwrap();
}

#[test]
fn garbage_blobs_are_refused() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let (id, mut blob) = c.blob(b"data");
    let mut pack = env.store.open_pack(&s);
    let e = env
        .store
        .put_chunk(&s, &mut pack, &id, b"not a blob")
        .unwrap_err();
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    blob[0] = b'X';
    let e = env.store.put_chunk(&s, &mut pack, &id, &blob).unwrap_err();
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    assert!(e.to_string().contains("magic"), "{e}");
    assert!(pack.is_empty());
    env.store.seal_pack(&s, &mut pack).unwrap();
    assert_eq!(env.used("acme"), 0);
    assert!(env.packs(&s).is_empty());
    assert!(!env.store.has_chunks(&s, &[id]).unwrap()[0]);
}

#[test]
fn a_full_quota_refuses_new_data_and_keeps_the_old() {
    let env = Env::new();
    // Room for one snapshot of two 20 kB chunks, not for a third chunk.
    let s = env.subscriber("acme", 50_000, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let (a, ablob) = c.blob(&data(1, 20_000));
    let (b, bblob) = c.blob(&data(2, 20_000));
    let mut pack = env.store.open_pack(&s);
    env.store.put_chunk(&s, &mut pack, &a, &ablob).unwrap();
    env.store.put_chunk(&s, &mut pack, &b, &bblob).unwrap();
    let m = c.manifest_at("pc-1", 1, &[a, b]);
    let snap = env.store.commit_snapshot(&s, &mut pack, &m).unwrap();
    let used = env.used("acme");

    let (x, xblob) = c.blob(&data(3, 20_000));
    match env.store.put_chunk(&s, &mut pack, &x, &xblob).unwrap_err() {
        Error::QuotaExceeded {
            used: u,
            quota,
            needed,
        } => {
            assert_eq!((u, quota), (used, 50_000));
            assert!(needed > xblob.len() as u64);
        }
        e => panic!("{e:?}"),
    }
    env.store.seal_pack(&s, &mut pack).unwrap();
    assert_eq!(env.used("acme"), used);
    assert_eq!(env.store.manifest(&s, &snap).unwrap(), m);
    assert_eq!(
        c.open(&a, &env.store.chunk(&s, &a).unwrap()),
        data(1, 20_000)
    );
    assert_eq!(used, env.disk_bytes(&s));

    // Raising the quota lets the upload through.
    env.store.set_subscriber("acme", Some(GIB), None).unwrap();
    assert!(env.store.put_chunk(&s, &mut pack, &x, &xblob).unwrap());
}

#[test]
fn the_quota_counts_every_open_pack_of_the_subscriber() {
    let env = Env::new();
    let s1 = env.subscriber("acme", 30_000, "pc-1", Role::Backup);
    let s2 = env.device("acme", "pc-2", Role::Backup);
    let mut c = Client::new(1);
    let (a, ablob) = c.blob(&data(1, 20_000));
    let (b, bblob) = c.blob(&data(2, 20_000));
    let mut p1 = env.store.open_pack(&s1);
    let mut p2 = env.store.open_pack(&s2);
    env.store.put_chunk(&s1, &mut p1, &a, &ablob).unwrap();
    let e = env.store.put_chunk(&s2, &mut p2, &b, &bblob).unwrap_err();
    assert!(matches!(e, Error::QuotaExceeded { .. }), "{e:?}");
    // Dropping the open pack discards it and returns its reservation.
    drop(p1);
    assert!(env.store.put_chunk(&s2, &mut p2, &b, &bblob).unwrap());
    env.store.seal_pack(&s2, &mut p2).unwrap();
    assert_eq!(env.used("acme"), env.disk_bytes(&s2));
    assert!(env.used("acme") <= 30_000);
}

#[test]
fn a_dropped_pack_leaves_nothing() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let (id, blob) = c.blob(b"lost on disconnect");
    let mut pack = env.store.open_pack(&s);
    env.store.put_chunk(&s, &mut pack, &id, &blob).unwrap();
    let dir = env
        .path()
        .join("subscribers")
        .join(s.subscriber_id.to_string())
        .join("packs");
    assert_eq!(hidden(&dir).len(), 1, "the open pack's temporary file");
    drop(pack);
    assert!(hidden(&dir).is_empty());
    assert!(!env.store.has_chunks(&s, &[id]).unwrap()[0]);
    assert_eq!(env.used("acme"), 0);
}

#[test]
fn open_packs_are_private_to_their_session() {
    let env = Env::new();
    let s1 = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let s2 = env.device("acme", "pc-2", Role::Backup);
    let mut c = Client::new(1);
    let (id, blob) = c.blob(b"shared file");
    let mut p1 = env.store.open_pack(&s1);
    env.store.put_chunk(&s1, &mut p1, &id, &blob).unwrap();
    assert!(env.store.has_chunks(&s1, &[id]).unwrap()[0]);
    assert!(!env.store.has_chunks(&s2, &[id]).unwrap()[0]);
    // A writer cannot be used by another session.
    let e = env.store.put_chunk(&s2, &mut p1, &id, &blob).unwrap_err();
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");

    // Both sessions upload it: the first sealed copy is the catalogued one.
    let mut p2 = env.store.open_pack(&s2);
    assert!(env.store.put_chunk(&s2, &mut p2, &id, &blob).unwrap());
    env.store.seal_pack(&s2, &mut p2).unwrap();
    env.store.seal_pack(&s1, &mut p1).unwrap();
    assert!(env.store.has_chunks(&s2, &[id]).unwrap()[0]);
    assert_eq!(env.store.chunk(&s1, &id).unwrap(), blob);
    assert_eq!(env.used("acme"), env.disk_bytes(&s1));
}

#[test]
fn subscribers_cannot_see_each_other() {
    let env = Env::new();
    let a = env.subscriber("acme", GIB, "pc-1", Role::Admin);
    let b = env.subscriber("beta", GIB, "pc-1", Role::Admin);
    let mut ca = Client::new(1);
    let (id, blob) = ca.blob(b"acme's secret spreadsheet");
    let mut pack = env.store.open_pack(&a);
    env.store.put_chunk(&a, &mut pack, &id, &blob).unwrap();
    let has_before_seal = env.store.has_chunks(&b, &[id]).unwrap();
    let snap = env
        .store
        .commit_snapshot(&a, &mut pack, &ca.manifest_at("pc-1", 1, &[id]))
        .unwrap();

    assert_eq!(has_before_seal, [false]);
    assert_eq!(env.store.has_chunks(&b, &[id]).unwrap(), [false]);
    let nobody = ChunkId::from_bytes([0xAB; 32]);
    let e_other = env.store.chunk(&b, &id).unwrap_err();
    let e_nobody = env.store.chunk(&b, &nobody).unwrap_err();
    assert!(matches!(e_other, Error::NotFound { .. }), "{e_other:?}");
    // Same message shape whether the id exists elsewhere or nowhere.
    assert_eq!(
        e_other.to_string().replace(&id.short(), "ID"),
        e_nobody.to_string().replace(&nobody.short(), "ID")
    );
    let e = env.store.manifest(&b, &snap).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    let e = env.store.forget_snapshot(&b, &snap).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert!(env.store.list_snapshots(&b).unwrap().is_empty());
    // B cannot commit a snapshot over A's chunks either.
    let mut pb = env.store.open_pack(&b);
    let cb = Client::new(2);
    let e = env
        .store
        .commit_snapshot(&b, &mut pb, &cb.manifest_at("pc-1", 1, &[id]))
        .unwrap_err();
    assert!(matches!(e, Error::MissingChunks { count: 1, .. }), "{e:?}");
    // A still has everything.
    assert_eq!(env.store.chunk(&a, &id).unwrap(), blob);
}

#[test]
fn chunks_come_in_order_within_a_budget_and_others_are_absent() {
    let env = Env::new();
    let a = env.subscriber("acme", GIB, "pc-1", Role::Admin);
    let b = env.subscriber("beta", GIB, "pc-1", Role::Admin);
    let mut ca = Client::new(1);
    let mut cb = Client::new(2);
    let (x, bx) = ca.blob(b"acme's first file");
    let (y, by) = ca.blob(b"acme's second file");
    let (z, bz) = cb.blob(b"beta's file");
    let mut pa = env.store.open_pack(&a);
    env.store.put_chunk(&a, &mut pa, &x, &bx).unwrap();
    env.store.put_chunk(&a, &mut pa, &y, &by).unwrap();
    env.store
        .commit_snapshot(&a, &mut pa, &ca.manifest_at("pc-1", 1, &[x, y]))
        .unwrap();
    let mut pb = env.store.open_pack(&b);
    env.store.put_chunk(&b, &mut pb, &z, &bz).unwrap();
    env.store
        .commit_snapshot(&b, &mut pb, &cb.manifest_at("pc-1", 1, &[z]))
        .unwrap();

    let nobody = ChunkId::from_bytes([0xAB; 32]);
    // Another subscriber's chunk is absent, exactly like nobody's.
    assert_eq!(
        env.store
            .chunks(&a, &[y, z, nobody, x], usize::MAX)
            .unwrap(),
        [Some(by.clone()), None, None, Some(bx.clone())]
    );
    // The budget cuts after the blobs that fit, but never before the first.
    assert_eq!(
        env.store.chunks(&a, &[x, y], bx.len()).unwrap(),
        [Some(bx.clone())]
    );
    assert_eq!(env.store.chunks(&a, &[y, x], 1).unwrap(), [Some(by)]);
    assert!(env.store.chunks(&a, &[], 1).unwrap().is_empty());
}

#[test]
fn only_admin_devices_forget() {
    let env = Env::new();
    let backup = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let admin = env.device("acme", "tech", Role::Admin);
    let mut c = Client::new(1);
    let (id, blob) = c.blob(b"keep me");
    let mut pack = env.store.open_pack(&backup);
    env.store.put_chunk(&backup, &mut pack, &id, &blob).unwrap();
    let m = c.manifest_at("pc-1", 1, &[id]);
    let snap = env.store.commit_snapshot(&backup, &mut pack, &m).unwrap();
    let used = env.used("acme");

    let e = env.store.forget_snapshot(&backup, &snap).unwrap_err();
    assert!(matches!(e, Error::Forbidden { .. }), "{e:?}");
    assert!(e.to_string().contains("--role admin"), "{e}");
    assert_eq!(env.store.list_snapshots(&backup).unwrap().len(), 1);

    env.store.forget_snapshot(&admin, &snap).unwrap();
    assert!(env.store.list_snapshots(&admin).unwrap().is_empty());
    assert_eq!(env.used("acme"), used - m.len() as u64);
    assert_eq!(env.used("acme"), env.disk_bytes(&admin));
    let e = env.store.manifest(&admin, &snap).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    let e = env.store.forget_snapshot(&admin, &snap).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    // The data stays until a GC.
    assert_eq!(env.store.chunk(&admin, &id).unwrap(), blob);
}

#[test]
fn a_revoked_device_cannot_commit() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Admin);
    let c = Client::new(1);
    let mut pack = env.store.open_pack(&s);
    env.store.revoke_device("acme", "pc-1").unwrap();
    let e = env
        .store
        .commit_snapshot(&s, &mut pack, &c.manifest_at("pc-1", 1, &[]))
        .unwrap_err();
    assert!(matches!(e, Error::Revoked { .. }), "{e:?}");
    assert!(env.store.list_snapshots(&s).unwrap().is_empty());
    assert_eq!(env.used("acme"), env.disk_bytes(&s));
}

#[test]
fn the_key_file_is_stored_once() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let s2 = env.device("acme", "pc-2", Role::Backup);
    let master = coffre_core::MasterKey::from_bytes([7; 32]);
    let params = coffre_core::KdfParams::INSECURE_FOR_TESTS;
    let kf = coffre_core::KeyFile::wrap(&master, b"passphrase", params).unwrap();
    let other = coffre_core::KeyFile::wrap(&master, b"another", params).unwrap();

    assert_eq!(env.store.key(&s).unwrap(), None);
    env.store.put_key(&s, kf.as_bytes()).unwrap();
    assert_eq!(env.store.key(&s2).unwrap().as_deref(), Some(kf.as_bytes()));
    env.store.put_key(&s2, kf.as_bytes()).unwrap();
    let e = env.store.put_key(&s2, other.as_bytes()).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    let e = env.store.put_key(&s, &[0u8; 2000]).unwrap_err();
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    let e = env.store.put_key(&s, b"CFKY garbage").unwrap_err();
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    // Also kept as a file, so that a lost catalogue does not lose it.
    let file = env
        .path()
        .join("subscribers")
        .join(s.subscriber_id.to_string())
        .join("key");
    assert_eq!(fs::read(file).unwrap(), kf.as_bytes());
    let b = env.subscriber("beta", GIB, "pc-1", Role::Backup);
    assert_eq!(env.store.key(&b).unwrap(), None);
}

#[test]
fn everything_survives_a_restart() {
    let env = Env::new();
    let st = &env.store;
    st.add_subscriber("acme", GIB, Some("last=3")).unwrap();
    let secret = st.add_device("acme", "pc-1", Role::Backup).unwrap();
    let s = st.authenticate(&secret).unwrap();
    let mut c = Client::new(1);
    let (id, blob) = c.blob(&data(9, 30_000));
    let mut pack = st.open_pack(&s);
    st.put_chunk(&s, &mut pack, &id, &blob).unwrap();
    let m = c.manifest_at("pc-1", 42, &[id]);
    let snap = st.commit_snapshot(&s, &mut pack, &m).unwrap();
    let before = (
        st.list_subscribers().unwrap(),
        st.list_devices(None).unwrap(),
        st.list_snapshots(&s).unwrap(),
    );
    drop(pack);
    let Env { dir, store } = env;
    drop(store);

    let st = Store::open(dir.path()).unwrap();
    let s = st.authenticate(&secret).unwrap();
    let after = (
        st.list_subscribers().unwrap(),
        st.list_devices(None).unwrap(),
        st.list_snapshots(&s).unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(st.manifest(&s, &snap).unwrap(), m);
    assert_eq!(st.chunk(&s, &id).unwrap(), blob);
    assert!(st.has_chunks(&s, &[id]).unwrap()[0]);
}

#[test]
fn stale_temporary_files_are_ignored() {
    let env = Env::new();
    env.store.add_subscriber("acme", GIB, None).unwrap();
    let secret = env.store.add_device("acme", "pc-1", Role::Backup).unwrap();
    let s = env.store.authenticate(&secret).unwrap();
    let dir = env
        .path()
        .join("subscribers")
        .join(s.subscriber_id.to_string())
        .join("packs");
    fs::create_dir_all(&dir).unwrap();
    // What a crash in the middle of an upload leaves behind.
    fs::write(
        dir.join(".00112233445566778899aabbccddeeff.pack.tmp"),
        b"half a pack",
    )
    .unwrap();
    let Env { dir: tmp, store } = env;
    drop(store);

    let st = Store::open(tmp.path()).unwrap();
    let s = st.authenticate(&secret).unwrap();
    assert_eq!(st.subscriber("acme").unwrap().used_bytes, 0);
    let mut c = Client::new(1);
    let (id, blob) = c.blob(b"after the crash");
    let mut pack = st.open_pack(&s);
    st.put_chunk(&s, &mut pack, &id, &blob).unwrap();
    st.seal_pack(&s, &mut pack).unwrap();
    assert_eq!(st.chunk(&s, &id).unwrap(), blob);
    let packs = files(&dir, ".pack");
    assert_eq!(packs.len(), 1);
    let size = fs::metadata(&packs[0]).unwrap().len();
    assert_eq!(st.subscriber("acme").unwrap().used_bytes, size);
}

#[test]
fn packs_describe_themselves() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let mut pack = env.store.open_pack(&s);
    let mut put = Vec::new();
    for i in 0..5 {
        let (id, blob) = c.blob(&data(i, 3000 + 100 * i as usize));
        env.store.put_chunk(&s, &mut pack, &id, &blob).unwrap();
        put.push((id, blob));
    }
    env.store.seal_pack(&s, &mut pack).unwrap();
    let files = env.packs(&s);
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.len() == 32 + 5 && name.ends_with(".pack"), "{name}");
    let bytes = fs::read(&files[0]).unwrap();
    assert_eq!(&bytes[bytes.len() - 5..], b"CFPK\x01");
    let index = read_pack_index(&files[0]).unwrap();
    assert_eq!(index, coffre_store::parse_pack_index(&bytes).unwrap());
    assert_eq!(index.len(), put.len());
    for (entry, (id, blob)) in index.iter().zip(&put) {
        assert_eq!(entry.id, *id);
        let at = entry.offset as usize;
        let stored = &bytes[at..at + entry.length as usize];
        assert_eq!(stored, &blob[..]);
        assert_eq!(&entry.checksum, blake3::hash(stored).as_bytes());
    }
    assert_eq!(env.used("acme"), bytes.len() as u64);
}

#[test]
fn a_damaged_pack_is_reported_not_served() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let (id, blob) = c.blob(&data(1, 5000));
    let mut pack = env.store.open_pack(&s);
    env.store.put_chunk(&s, &mut pack, &id, &blob).unwrap();
    env.store.seal_pack(&s, &mut pack).unwrap();
    let file = &env.packs(&s)[0];
    let mut bytes = fs::read(file).unwrap();
    bytes[100] ^= 0x40;
    fs::write(file, &bytes).unwrap();
    let e = env.store.chunk(&s, &id).unwrap_err();
    // Named for the member, with the operator's details inside.
    match &e {
        Error::Unreadable { object, cause } => {
            assert_eq!(object, &format!("chunk {}", id.short()));
            assert!(matches!(**cause, Error::Corrupt(_)), "{cause:?}");
        }
        other => panic!("expected Unreadable, got {other:?}"),
    }
    assert!(e.to_string().contains("verify"), "{e}");
}

#[test]
fn a_pack_is_sealed_at_32_mib() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let mut pack = env.store.open_pack(&s);
    let chunk = 4 << 20;
    let mut sealed_after = None;
    for i in 0..9u64 {
        let (id, blob) = c.blob(&data(i, chunk));
        env.store.put_chunk(&s, &mut pack, &id, &blob).unwrap();
        if sealed_after.is_none() && pack.is_empty() {
            sealed_after = Some(i + 1);
        }
    }
    let n = PACK_TARGET_SIZE.div_ceil(chunk as u64);
    assert_eq!(sealed_after, Some(n));
    assert_eq!(env.packs(&s).len(), 1);
    assert_eq!(pack.len() as u64, 9 - n);
    env.store.seal_pack(&s, &mut pack).unwrap();
    assert_eq!(env.packs(&s).len(), 2);
    assert_eq!(env.used("acme"), env.disk_bytes(&s));
}
