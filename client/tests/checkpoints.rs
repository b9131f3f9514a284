//! Checkpoints of a long first backup (issue 19), with the real daemon and
//! the real `coffre` program: a first backup that stops half-way leaves a
//! checkpoint on the server, marked as such; garbage collection with no
//! grace keeps its data, which restores; the board says "first backup in
//! progress"; the rerun reads none of the checkpoint's files again and
//! sends only the rest; the night's retention then removes the checkpoint;
//! a catalogue rebuild recovers the mark.

#![cfg(unix)]

mod support;

use std::fs;
use std::io::Write;
use std::path::Path;

use coffre_core::benchmark::random_bytes;
use coffre_store::{GcOptions, Role};
use support::{Client, Server};

const FILES: u64 = 24;
const FILE_SIZE: usize = 1 << 20;

/// 24 files of 1 MiB of incompressible bytes.
fn tree(home: &Path) {
    fs::create_dir_all(home).unwrap();
    for k in 0..FILES {
        fs::write(
            home.join(format!("doc-{k:02}.bin")),
            random_bytes(FILE_SIZE, 100 + k),
        )
        .unwrap();
    }
}

/// Adds `[backup]` to the installation's config.toml.
fn checkpoint_every(pc: &Client, bytes: &str) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(&pc.config)
        .unwrap();
    writeln!(
        f,
        "\n[backup]\ncheckpoint_every = \"0\"\ncheckpoint_bytes = \"{bytes}\""
    )
    .unwrap();
}

#[test]
fn an_interrupted_first_backup_keeps_its_checkpoint_and_the_rerun_sends_only_the_rest() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let home = fs::canonicalize(dir.path()).unwrap().join("home");
    tree(&home);
    let pc = Client::new();
    // A quota of about half the data: the first run stops half-way, the
    // way a reboot or a cut line stops it (deterministically here).
    let total = FILES * FILE_SIZE as u64;
    pc.enrol(
        &server.token("jardins", total / 2, "pc", Role::Backup),
        &[&home],
    );
    checkpoint_every(&pc, "3MiB");
    let out = pc.run(&["backup"]);
    assert!(!out.status.success(), "the quota stops the first run");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("checkpoint"), "{said}");

    // A checkpoint on the server, marked; no complete snapshot.
    let snaps = server.store.snapshots_of("jardins").unwrap();
    assert!(!snaps.is_empty(), "{said}");
    assert!(snaps.iter().all(|s| s.checkpoint), "{snaps:?}");
    let newest = snaps.iter().max_by_key(|s| s.file_count).unwrap().clone();
    assert!(
        newest.file_count > 0 && newest.file_count < FILES,
        "{newest:?}"
    );

    // The board: first backup in progress, not "never backed up".
    let usage = server.store.usage().unwrap();
    let row = coffre_server::Row::new(usage[0].clone(), server.store.now(), 3);
    let words: Vec<String> = row.status.iter().map(ToString::to_string).collect();
    assert!(
        words
            .iter()
            .any(|w| w.starts_with("first backup in progress: pc (")),
        "{words:?}"
    );
    assert!(!words.iter().any(|w| w.starts_with("never")), "{words:?}");
    assert_eq!(
        usage[0].device_backups[0].checkpoint.unwrap().files,
        newest.file_count
    );

    // The PC sees it marked.
    let listed = pc.ok(&["snapshots"]);
    assert!(
        listed.contains("(checkpoint: a backup in progress)"),
        "{listed}"
    );

    // The quota raised, the rerun completes: the checkpoint's files are
    // not read again, and what was sent is not sent again.
    server
        .store
        .set_subscriber("jardins", Some(4 * total), None)
        .unwrap();
    let done = pc.json(&["backup"]);
    assert!(
        done["files_unchanged"].as_u64().unwrap() >= newest.file_count,
        "{done}"
    );
    let sent = done["bytes_sent"].as_u64().unwrap();
    let rest = (FILES - newest.file_count) * FILE_SIZE as u64;
    assert!(
        sent < rest + (1 << 20),
        "sent {sent} for {rest} left: {done}"
    );

    // The night: the checkpoints go, the complete snapshot stays.
    coffre_server::night(&server.store);
    let snaps = server.store.snapshots_of("jardins").unwrap();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert!(!snaps[0].checkpoint);
    let latest = dir.path().join("latest");
    pc.restore_to("latest", &latest);
    support::assert_same_tree(&home, &latest.join(home.strip_prefix("/").unwrap()));
}

#[test]
fn garbage_collection_keeps_a_checkpoints_data_and_a_rebuild_its_mark() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let home = fs::canonicalize(dir.path()).unwrap().join("home");
    tree(&home);
    let pc = Client::new();
    let total = FILES * FILE_SIZE as u64;
    pc.enrol(
        &server.token("jardins", total / 2, "pc", Role::Backup),
        &[&home],
    );
    checkpoint_every(&pc, "3MiB");
    assert!(!pc.run(&["backup"]).status.success());
    let newest = server
        .store
        .snapshots_of("jardins")
        .unwrap()
        .into_iter()
        .max_by_key(|s| s.file_count)
        .unwrap();
    assert!(newest.checkpoint && newest.file_count > 0, "{newest:?}");
    // A restart ends the PC's sessions (a killed PC's connection lingers
    // until its idle timeout), so nothing postpones the collection.
    server.restart_after(|_| {});
    // GC without grace keeps the checkpoint's data: it restores.
    let no_grace = GcOptions {
        grace_secs: 0,
        ..GcOptions::default()
    };
    let mut gc = server.store.gc("jardins", &no_grace).unwrap();
    for _ in 0..200 {
        if gc.postponed.is_none() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        gc = server.store.gc("jardins", &no_grace).unwrap();
    }
    assert_eq!(gc.postponed, None, "{gc:?}");
    assert!(gc.snapshots >= 1, "{gc:?}");
    let restored = dir.path().join("restored");
    let id = newest.id.to_hex();
    pc.restore_to(&id, &restored);
    let mut found = 0;
    for k in 0..FILES {
        let name = format!("doc-{k:02}.bin");
        let path = restored.join(home.strip_prefix("/").unwrap()).join(&name);
        if let Ok(bytes) = fs::read(&path) {
            assert_eq!(bytes, random_bytes(FILE_SIZE, 100 + k), "{name}");
            found += 1;
        }
    }
    assert_eq!(found, newest.file_count, "every file of the checkpoint");

    let before: Vec<_> = server
        .store
        .snapshots_of("jardins")
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s.checkpoint))
        .collect();
    assert!(before.iter().any(|(_, c)| *c));
    server.restart_after(|data| {
        for name in ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"] {
            let _ = fs::remove_file(data.join(name));
        }
        let reports = coffre_store::rebuild_catalog(data, false).unwrap();
        assert!(reports[0].problems.is_empty(), "{:?}", reports[0]);
    });
    let after: Vec<_> = server
        .store
        .snapshots_of("jardins")
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s.checkpoint))
        .collect();
    assert_eq!(
        before.iter().collect::<std::collections::BTreeSet<_>>(),
        after.iter().collect()
    );
}
