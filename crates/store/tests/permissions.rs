//! Owner-only from creation (issue 17, "server hygiene"): every file and
//! folder the store makes is its user's only, whatever the process's umask.
//!
//! This test binary runs under umask 000 (set once, for the whole process:
//! it holds this one test), so that a file created without an explicit mode
//! would come out 0666 and a folder 0777: only the store's own modes keep
//! them private.

#![cfg(unix)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use coffre_core::{KdfParams, KeyFile, MasterKey};
use coffre_store::{GcOptions, Role, Store, VerifyOptions};
use coffre_testkit::{data, Client, GIB};

/// Every entry under `root` (itself included) whose mode lets group or
/// others in, with its mode.
fn open_to_others(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let meta = fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            out.push((p.clone(), mode));
        }
        if meta.is_dir() {
            todo.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

#[test]
fn everything_the_store_creates_is_owner_only_even_under_umask_000() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0));
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let store = Store::create(&root).unwrap();
    store.add_subscriber("acme", GIB, None).unwrap();
    let secret = store.add_device("acme", "pc", Role::Backup).unwrap();
    let s = store.authenticate(&secret).unwrap();
    let master = MasterKey::from_bytes([7; 32]);
    let kf = KeyFile::wrap(&master, b"passphrase", KdfParams::INSECURE_FOR_TESTS).unwrap();
    store.put_key(&s, kf.as_bytes()).unwrap();

    // Packs, a manifest, a damaged blob quarantined, a collection.
    let mut c = Client::new(1);
    let mut pack = store.open_pack(&s);
    let ids: Vec<_> = (0..3)
        .map(|seed| c.put(&store, &s, &mut pack, &data(seed, 20_000)).0)
        .collect();
    store.seal_pack(&s, &mut pack).unwrap();
    let mut sorted = ids.clone();
    sorted.sort();
    store
        .commit_snapshot(&s, &mut pack, &c.manifest_at("pc", 100, &sorted))
        .unwrap();
    store.end_session(&s).unwrap();
    let pack_file = fs::read_dir(root.join(format!("subscribers/{}/packs", s.subscriber_id)))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .unwrap();
    let mut bytes = fs::read(&pack_file).unwrap();
    bytes[10] ^= 1;
    fs::write(&pack_file, &bytes).unwrap();
    let repair = VerifyOptions {
        repair: true,
        ..VerifyOptions::default()
    };
    assert_eq!(store.verify("acme", &repair).unwrap().quarantined, 1);
    store
        .gc(
            "acme",
            &GcOptions {
                grace_secs: 0,
                ..GcOptions::default()
            },
        )
        .unwrap();
    // The catalogue, its -wal and -shm exist while the store is open.
    assert!(root.join("catalog.sqlite-wal").exists());
    assert_eq!(open_to_others(&root), [], "with the store open");
    drop(store);

    // A rebuilt catalogue too.
    coffre_store::rebuild_catalog(&root, true).unwrap();
    let store = Store::open(&root).unwrap();
    assert!(store.tightened().is_empty(), "nothing was open to tighten");
    assert_eq!(store.usage().unwrap().len(), 1);
    assert_eq!(open_to_others(&root), [], "after a rebuild");
}
