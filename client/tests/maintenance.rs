//! The server's upkeep beside real backups (garbage collection, verify and
//! repair, a catalogue rebuilt): the real daemon, the real `coffre`
//! program, and the store's collection running in a loop while a backup
//! uploads. Whatever the interleaving, every snapshot restores byte for byte,
//! and what GC frees is really gone from the disk and from used bytes.
//!
//! The tests of GC with repack, verify and rebuild run twice: packs on the
//! local disk, and packs in a real Garage (`coffre_testkit::garage`; they fail if
//! the `garage` binary is missing).

#![cfg(unix)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use coffre_core::benchmark::random_bytes;
use coffre_core::ChunkId;
use coffre_store::{GcOptions, PackStorage, RawPacks, Role};
use coffre_testkit::garage::Garage;
use support::{assert_same_tree, make_tree, stored_packs, Client, Server};

/// A folder of the test: `base`, with the PC's files in `base/home`.
struct Work {
    _dir: tempfile::TempDir,
    base: PathBuf,
    home: PathBuf,
}

/// A server, and a PC of "jardins" enrolled to back up `home`, filled by
/// `tree`.
fn setup(tree: impl FnOnce(&Path)) -> (Work, Server, Client) {
    setup_on(PackStorage::Local, tree)
}

/// [`setup`] with the server's packs on `storage`.
fn setup_on(storage: PackStorage, tree: impl FnOnce(&Path)) -> (Work, Server, Client) {
    let server = Server::start_on(storage);
    let dir = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(dir.path()).unwrap();
    let home = base.join("home");
    tree(&home);
    let pc = Client::new();
    pc.enrol(
        &server.token("jardins", 1 << 30, "pc", Role::Backup),
        &[&home],
    );
    let work = Work {
        _dir: dir,
        base,
        home,
    };
    (work, server, pc)
}

fn used(server: &Server) -> u64 {
    server.store.subscriber("jardins").unwrap().used_bytes
}

#[test]
fn a_backup_during_garbage_collection_restores_byte_for_byte() {
    let (work, server, pc) = setup(make_tree);
    let (base, home) = (work.base.clone(), work.home.clone());
    let first = pc.backup_id();

    // The photos move out; a snapshot without them; retention then removes
    // the first snapshot, so the photos' chunks are referenced by nothing.
    let photos = base.join("photos-aside");
    fs::rename(home.join("Photos"), &photos).unwrap();
    pc.json(&["backup"]);
    let first_id = ChunkId::from_hex(&first).unwrap();
    assert!(server.store.remove_snapshot("jardins", &first_id).unwrap());
    let before_gc = used(&server);

    // Now the photos come back with new ones, and the backup that uploads
    // them runs while garbage collection runs in a loop.
    fs::rename(&photos, home.join("Photos")).unwrap();
    for i in 0..6u64 {
        fs::write(
            home.join(format!("Photos/nouvelle-{i}.jpg")),
            random_bytes(1_500_000, 900 + i),
        )
        .unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let (runs, freed, postponed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let collector = std::thread::spawn({
        let (store, done, runs, freed, postponed) = (
            server.store.clone(),
            done.clone(),
            runs.clone(),
            freed.clone(),
            postponed.clone(),
        );
        move || {
            let opts = GcOptions {
                grace_secs: 0,
                ..GcOptions::default()
            };
            while !done.load(Ordering::Relaxed) || runs.load(Ordering::Relaxed) == 0 {
                let r = store.gc("jardins", &opts).unwrap();
                freed.fetch_add(
                    r.used_before.saturating_sub(r.used_after),
                    Ordering::Relaxed,
                );
                runs.fetch_add(1, Ordering::Relaxed);
                if r.postponed.is_some() {
                    postponed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    let during = pc.json(&["backup"]);
    done.store(true, Ordering::Relaxed);
    collector.join().unwrap();
    let postponed = postponed.load(Ordering::Relaxed);
    eprintln!(
        "{} collections ran during the backup, {postponed} postponed by it",
        runs.load(Ordering::Relaxed)
    );
    assert!(
        postponed >= 1,
        "the backup's session postponed some collection"
    );
    let during_id = during["snapshot"].as_str().unwrap().to_string();

    // Once the backup is over, a collection frees what is still unreferenced.
    let last = server
        .store
        .gc(
            "jardins",
            &GcOptions {
                grace_secs: 0,
                ..GcOptions::default()
            },
        )
        .unwrap();
    assert_eq!(last.postponed, None, "{last:?}");
    let total_freed = freed.load(Ordering::Relaxed) + last.used_before - last.used_after;
    assert!(
        total_freed > 0,
        "the first snapshot's manifest and dead chunks were freed"
    );
    assert!(used(&server) < before_gc + 6 * 1_600_000);

    // Every snapshot left restores byte for byte, and checks with data.
    let target = base.join("restored");
    pc.restore_to(&during_id[..12], &target);
    assert_same_tree(&home, &target.join(home.strip_prefix("/").unwrap()));
    let check = pc.json(&["check", "--read-data"]);
    assert_eq!(check["ok"], true, "{check}");

    // And the next backup after GC is a normal one.
    fs::write(home.join("Documents/encore.txt"), b"encore").unwrap();
    pc.json(&["backup"]);
    let check = pc.json(&["check", "--read-data"]);
    assert_eq!(check["ok"], true, "{check}");
}

#[test]
fn space_freed_by_gc_is_uploaded_again_when_the_data_comes_back() {
    space_freed_by_gc_comes_back(PackStorage::Local);
}

#[test]
fn space_freed_by_gc_is_uploaded_again_when_the_data_comes_back_on_garage() {
    let garage = Garage::start();
    space_freed_by_gc_comes_back(garage.storage("gc"));
}

fn space_freed_by_gc_comes_back(storage: PackStorage) {
    let (work, server, pc) = setup_on(storage, |h| {
        fs::create_dir_all(h).unwrap();
        fs::write(h.join("a.bin"), random_bytes(3_000_000, 1)).unwrap();
        fs::write(h.join("b.bin"), random_bytes(3_000_000, 2)).unwrap();
    });
    let (base, home) = (work.base.clone(), work.home.clone());
    let first = pc.backup_id();
    let aside = base.join("b.bin");
    fs::rename(home.join("b.bin"), &aside).unwrap();
    pc.json(&["backup"]);
    let with_b = used(&server);
    let packs_before = stored_packs(&server);
    server
        .store
        .remove_snapshot("jardins", &ChunkId::from_hex(&first).unwrap())
        .unwrap();
    let r = server
        .store
        .gc(
            "jardins",
            &GcOptions {
                grace_secs: 0,
                ..GcOptions::default()
            },
        )
        .unwrap();
    assert!(r.deleted_chunks > 0, "{r:?}");
    // The half-empty pack was rewritten: its old file or object is gone,
    // a new one holds a.bin, and the storage holds exactly the catalogue's
    // packs, whose sizes add up to the used bytes' pack part.
    assert!(r.packs_repacked >= 1 && r.packs_written >= 1, "{r:?}");
    let packs_after = stored_packs(&server);
    assert!(
        packs_before.iter().any(|p| !packs_after.contains(p)),
        "an old pack was deleted: {packs_before:?} then {packs_after:?}"
    );
    let verified = server
        .store
        .verify("jardins", &coffre_store::VerifyOptions::default())
        .unwrap();
    assert!(verified.is_clean(), "{verified:?}");
    assert_eq!(verified.packs, packs_after.len() as u64, "no stray pack");
    assert!(
        used(&server) + 2_900_000 < with_b,
        "b.bin's 3 MB were freed: {} then {}",
        with_b,
        used(&server)
    );

    // b.bin comes back, unchanged (same content, same mtime): the client
    // must not trust what it once uploaded; the server says it is gone.
    fs::rename(&aside, home.join("b.bin")).unwrap();
    let again = pc.json(&["backup"]);
    assert!(
        again["bytes_sent"].as_u64().unwrap() > 2_900_000,
        "b.bin was sent again: {again}"
    );
    let target = base.join("restored");
    pc.restore_to("latest", &target);
    assert_same_tree(&home, &target.join(home.strip_prefix("/").unwrap()));
}

#[test]
fn a_lost_catalogue_is_rebuilt_and_every_snapshot_restores() {
    a_lost_catalogue_is_rebuilt(PackStorage::Local);
}

#[test]
fn a_lost_catalogue_is_rebuilt_from_the_bucket_and_every_snapshot_restores_on_garage() {
    let garage = Garage::start();
    a_lost_catalogue_is_rebuilt(garage.storage("rebuild"));
}

fn a_lost_catalogue_is_rebuilt(storage: PackStorage) {
    let (work, mut server, pc) = setup_on(storage.clone(), make_tree);
    let (base, home) = (work.base.clone(), work.home.clone());
    let first = pc.backup_id();
    let as_first = support::state(&home);
    support::day1(&home);
    let second = pc.backup_id();
    let used_before = used(&server);

    // The catalogue is lost; rebuild it from the packs and manifests.
    server.restart_after(|data| {
        for name in ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"] {
            let _ = fs::remove_file(data.join(name));
        }
        let reports = coffre_store::rebuild_catalog_with(data, &storage, false).unwrap();
        assert!(reports[0].problems.is_empty(), "{:?}", reports[0]);
        assert_eq!(reports[0].snapshots, 2);
    });
    assert_eq!(used(&server), used_before, "used bytes rebuilt exactly");

    // The same PC, with its same credentials, lists and restores both.
    let listed = pc.json(&["snapshots"]);
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 2, "{listed}");
    let target = base.join("restored-second");
    pc.restore_to(&second[..12], &target);
    assert_same_tree(&home, &target.join(home.strip_prefix("/").unwrap()));
    let target = base.join("restored-first");
    pc.restore_to(&first[..12], &target);
    let restored = target.join(home.strip_prefix("/").unwrap());
    assert!(
        support::state(&restored) == as_first,
        "the first snapshot restores as the tree was"
    );
    let check = pc.json(&["check", "--read-data"]);
    assert_eq!(check["ok"], true, "{check}");
    // And the next backup works on the rebuilt catalogue.
    fs::write(home.join("Documents/après.txt"), b"rebuilt").unwrap();
    pc.json(&["backup"]);
}

#[test]
fn damage_found_by_verify_is_healed_by_the_next_backup() {
    damage_found_by_verify_is_healed(PackStorage::Local);
}

#[test]
fn damage_found_by_verify_is_healed_by_the_next_backup_on_garage() {
    let garage = Garage::start();
    damage_found_by_verify_is_healed(garage.storage("verify"));
}

/// Small files are restored in groups (one request for many): a damaged
/// blob among them fails its own file only, and leaves no partial file.
#[test]
fn a_damaged_small_file_fails_alone_in_its_group() {
    let (work, server, pc) = setup(|home| {
        for i in 0..40u64 {
            let path = home.join(format!("lettres/lettre-{i:02}.odt"));
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, random_bytes(16_000, 500 + i)).unwrap();
        }
    });
    let snap = pc.backup_id();
    let packs = stored_packs(&server);
    assert_eq!(packs.len(), 1, "{packs:?}");
    // The middle of the only pack is inside one letter's blob (the folder's
    // tree blob, a few hundred bytes, comes last).
    let raw = RawPacks::open(server.dir.path(), &server.storage).unwrap();
    let mut bytes = raw.read(1, &packs[0].0).unwrap().unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    raw.write(1, &packs[0].0, &bytes).unwrap();

    let target = work.base.join("restored");
    let out = pc.run(&[
        "restore",
        &snap[..12],
        "--target",
        target.to_str().unwrap(),
        "--json",
    ]);
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(report["files"], 39, "{report}");
    let broken = PathBuf::from(failed[0]["path"].as_str().unwrap());
    let folder = target
        .join(work.home.strip_prefix("/").unwrap())
        .join("lettres");
    let mut restored = 0;
    for e in fs::read_dir(&folder).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".coffre-restore"),
            "partial file left: {name}"
        );
        assert_ne!(p, broken);
        assert_eq!(
            fs::read(&p).unwrap(),
            fs::read(work.home.join("lettres").join(&name)).unwrap(),
            "{name}"
        );
        restored += 1;
    }
    assert_eq!(restored, 39);
}

fn damage_found_by_verify_is_healed(storage: PackStorage) {
    let (work, server, pc) = setup_on(storage, make_tree);
    let (base, home) = (work.base.clone(), work.home.clone());
    let snap = pc.backup_id();
    let clean = server
        .store
        .verify("jardins", &coffre_store::VerifyOptions::default())
        .unwrap();
    assert!(clean.is_clean() && clean.blobs > 0, "{clean:?}");

    // A bit flips in the middle of the largest pack where the server keeps
    // it (a file on its disk, or an object overwritten through the S3 API).
    let raw = RawPacks::open(server.dir.path(), &server.storage).unwrap();
    let (pack, _) = raw
        .list(1)
        .unwrap()
        .into_iter()
        .max_by_key(|p| p.1)
        .unwrap();
    let mut bytes = raw.read(1, &pack).unwrap().unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    raw.write(1, &pack, &bytes).unwrap();

    // Restoring the snapshot now fails on that chunk, clearly.
    let target = base.join("broken");
    let out = pc.run(&[
        "restore",
        &snap[..12],
        "--target",
        target.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!out.status.success());
    // The file that failed left no partial file behind, under any name; the
    // files with no damaged chunk were restored.
    let mut left = Vec::new();
    let mut restored = 0;
    let mut dirs = vec![target.clone()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().ends_with(".coffre-restore") {
                left.push(p);
            } else {
                restored += 1;
            }
        }
    }
    assert!(left.is_empty(), "partial files left: {left:?}");
    assert!(restored > 0, "no file restored beside the damaged one");

    let verify = |repair| {
        server
            .store
            .verify(
                "jardins",
                &coffre_store::VerifyOptions {
                    repair,
                    sample: None,
                },
            )
            .unwrap()
    };
    let found = verify(false);
    assert_eq!(found.damaged.len(), 1, "{found:?}");
    assert_eq!(found.affected[0].snapshot, snap);
    assert_eq!(found.affected[0].device, "pc");
    assert_eq!(verify(true).quarantined, 1);

    // The PC's next backup, with nothing changed on it, sends the chunk
    // again (its caches said the server had it; the server says it does
    // not), and every snapshot is whole again.
    let healed = pc.json(&["backup"]);
    assert!(healed["bytes_sent"].as_u64().unwrap() > 0, "{healed}");
    assert!(verify(false).is_clean(), "healed");
    let check = pc.json(&["check", "--read-data"]);
    assert_eq!(check["ok"], true, "{check}");
    let target = base.join("restored");
    pc.restore_to(&snap[..12], &target);
    assert_same_tree(&home, &target.join(home.strip_prefix("/").unwrap()));
}
