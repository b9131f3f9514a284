//! Checkpoints of a long first backup (issue 19), with the real daemon and
//! the real `coffre` program: a first backup that stops half-way leaves a
//! checkpoint on the server, marked as such; garbage collection with no
//! grace keeps its data, which restores; the board says "first backup in
//! progress"; the rerun reads none of the checkpoint's files again and
//! sends only the rest; the night's retention then removes the checkpoint;
//! a catalogue rebuild recovers the mark. A backup SIGKILLed after a
//! checkpoint (a slow run: `--limit-upload`) resumes from it with the
//! changes made meanwhile: a file changed has its new bytes, a file
//! deleted is not in the final snapshot.

#![cfg(unix)]

mod support;

use std::fs;
use std::io::Write;
use std::path::Path;

use coffre_core::benchmark::random_bytes;
use coffre_store::{GcOptions, Role};
use support::{wait_for, wait_until, Client, Server};

const FILES: u64 = 24;
const FILE_SIZE: usize = 1 << 20;
/// The quota of the interrupted runs, in quarters of the data (see
/// `stopped_by_the_quota`).
const QUOTA_SHARE: u64 = 3;

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

/// A first backup that the quota stopped part-way, and what it said.
struct Stopped {
    dir: tempfile::TempDir,
    home: std::path::PathBuf,
    pc: Client,
    said: String,
}

/// The tree backed up with a checkpoint every 3 MiB under a quota of
/// three quarters of the data: the run stops part-way, the way a reboot
/// or a cut line stops it (deterministically here). Not half: the reader
/// runs up to the outbox and the puts in flight (about 10 MiB) ahead of
/// the server, so the first checkpoint's trees reach it after about
/// 12 MiB, and must fit.
fn stopped_by_the_quota(server: &Server) -> Stopped {
    let dir = tempfile::tempdir().unwrap();
    let home = fs::canonicalize(dir.path()).unwrap().join("home");
    tree(&home);
    let pc = Client::new();
    let total = FILES * FILE_SIZE as u64;
    pc.enrol(
        &server.token("jardins", QUOTA_SHARE * total / 4, "pc", Role::Backup),
        &[&home],
    );
    checkpoint_every(&pc, "3MiB");
    let out = pc.run(&["backup"]);
    assert!(!out.status.success(), "the quota stops the first run");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    Stopped {
        dir,
        home,
        pc,
        said,
    }
}

#[test]
fn an_interrupted_first_backup_keeps_its_checkpoint_and_the_rerun_sends_only_the_rest() {
    let server = Server::start();
    let Stopped {
        dir,
        home,
        pc,
        said,
    } = stopped_by_the_quota(&server);
    let total = FILES * FILE_SIZE as u64;
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
    let Stopped {
        dir,
        home,
        pc,
        said,
    } = stopped_by_the_quota(&server);
    let newest = server
        .store
        .snapshots_of("jardins")
        .unwrap()
        .into_iter()
        .max_by_key(|s| s.file_count)
        .unwrap_or_else(|| panic!("no checkpoint on the server:\n{said}"));
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

/// How many files of 1 MiB the killed run's tree holds (32 MiB).
const KILL_FILES: u64 = 30;

#[test]
fn a_killed_first_backup_resumes_from_its_checkpoint_with_the_changes_made_meanwhile() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let home = fs::canonicalize(dir.path()).unwrap().join("home");
    fs::create_dir_all(&home).unwrap();
    // Two files first in the walk's order (names sort first), so that the
    // checkpoint holds them: one changes, one goes before the rerun.
    fs::write(home.join("a-changed.bin"), random_bytes(FILE_SIZE, 7)).unwrap();
    fs::write(home.join("a-deleted.bin"), random_bytes(FILE_SIZE, 8)).unwrap();
    for k in 0..KILL_FILES {
        fs::write(
            home.join(format!("doc-{k:02}.bin")),
            random_bytes(FILE_SIZE, 200 + k),
        )
        .unwrap();
    }
    let total = (KILL_FILES + 2) * FILE_SIZE as u64;
    let pc = Client::new();
    pc.enrol(
        &server.token("jardins", 4 * total, "pc", Role::Backup),
        &[&home],
    );
    checkpoint_every(&pc, "2MiB");

    // 20 Mbit/s: the 32 MiB take about 13 s, a checkpoint every 2 MiB.
    let mut run = pc
        .command(&["backup", "--limit-upload", "20Mbit/s", "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A checkpoint of at least 6 files (the two first among them, see
    // below): the process is killed, as a power cut or a reboot kills it.
    let checkpoint = wait_for(
        "a checkpoint of 6 files",
        std::time::Duration::from_secs(120),
        || {
            assert!(
                run.try_wait().unwrap().is_none(),
                "the backup ended before its checkpoint was seen"
            );
            server
                .store
                .snapshots_of("jardins")
                .unwrap()
                .into_iter()
                .filter(|s| s.checkpoint && s.file_count >= 6)
                .max_by_key(|s| s.file_count)
        },
    );
    // The PC saves its files cache just after the server commits the
    // checkpoint: a kill between the two is a real case (the rerun then
    // reads the files again, sending nothing twice), but not the one this
    // test is about. Any save from now on is this checkpoint's or a later
    // one's (to the second: the server dates it in whole seconds).
    let seen = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(u64::try_from(checkpoint.received).unwrap());
    let cache = pc.state_dir().join("cache/files");
    let modified = || fs::metadata(&cache).and_then(|m| m.modified()).ok();
    // An earlier checkpoint's save may fall in the same second as `seen`:
    // only a save made after this point is sure to be this checkpoint's
    // or a later one's (CI once killed the run between the two).
    let before = modified();
    wait_until(
        "the PC's files cache saved after the checkpoint",
        std::time::Duration::from_secs(60),
        || {
            modified().is_some_and(|t| t >= seen && Some(t) != before)
                || run.try_wait().unwrap().is_some()
        },
    );
    let seen_files = checkpoint.file_count;
    run.kill().unwrap();
    let killed = run.wait_with_output().unwrap();
    assert!(!killed.status.success());
    let said = String::from_utf8_lossy(&killed.stderr);
    let snaps = server.store.snapshots_of("jardins").unwrap();
    assert!(
        snaps.iter().all(|s| s.checkpoint),
        "killed before its end, the run made no complete snapshot: {snaps:?}\n{said}"
    );
    // The last checkpoint committed before the kill (one may have landed
    // between the poll and the kill).
    let checkpoint = snaps
        .iter()
        .max_by_key(|s| s.file_count)
        .cloned()
        .unwrap_or(checkpoint);
    assert!(
        checkpoint.file_count < KILL_FILES + 2,
        "killed before the end: {checkpoint:?}"
    );

    // The checkpoint restores, and holds the two files that change below.
    let partial = dir.path().join("partial");
    pc.restore_to(&checkpoint.id.to_hex(), &partial);
    let partial = partial.join(home.strip_prefix("/").unwrap());
    assert_eq!(
        fs::read(partial.join("a-changed.bin")).unwrap(),
        random_bytes(FILE_SIZE, 7)
    );
    assert!(partial.join("a-deleted.bin").exists());
    let in_checkpoint = fs::read_dir(&partial).unwrap().count() as u64;
    assert_eq!(in_checkpoint, checkpoint.file_count);

    // Meanwhile, on the PC: one file changes (same size, other bytes), one
    // is deleted.
    fs::write(home.join("a-changed.bin"), random_bytes(FILE_SIZE, 9)).unwrap();
    fs::remove_file(home.join("a-deleted.bin")).unwrap();

    // The rerun goes to the end and sends about what the checkpoint did
    // not hold: not the whole tree again.
    let done = pc.json(&["backup"]);
    let sent = done["bytes_sent"].as_u64().unwrap();
    eprintln!(
        "killed after a checkpoint of {} files; the rerun sent {sent} bytes of {total}",
        checkpoint.file_count
    );
    // The checkpoint's files but the two, plus the changed file and
    // padding (at most 3 % on chunks of about 1 MiB), plus the trees.
    let left = total - checkpoint.file_count * FILE_SIZE as u64 + FILE_SIZE as u64;
    assert!(
        sent <= left + left / 20 + (1 << 20),
        "the rerun sent {sent} bytes of blobs where {left} were left: {done}"
    );
    assert!(
        sent < total * 3 / 4,
        "sent {sent} of {total}: it started over: {done}"
    );
    // The checkpoint's files but the two that changed are not read again.
    assert!(
        done["files_unchanged"].as_u64().unwrap() >= seen_files - 2,
        "{done}"
    );
    assert_eq!(done["files_changed"].as_u64(), Some(1), "{done}");
    // The checkpoint's files cache listed the deleted file: it counts.
    assert_eq!(done["files_deleted"].as_u64(), Some(1), "{done}");
    let id = done["snapshot"].as_str().unwrap().to_string();

    // The final snapshot restores byte for byte: the changed file with its
    // new bytes, the deleted one absent.
    let restored = dir.path().join("restored");
    pc.restore_to(&id, &restored);
    let restored = restored.join(home.strip_prefix("/").unwrap());
    support::assert_same_tree(&home, &restored);
    assert_eq!(
        fs::read(restored.join("a-changed.bin")).unwrap(),
        random_bytes(FILE_SIZE, 9)
    );
    assert!(!restored.join("a-deleted.bin").exists());

    // The complete snapshot replaces the checkpoint (docs/decisions.md,
    // "A first backup that takes days"): `latest` names it at once, and the
    // night's retention keeps it and removes every checkpoint.
    let listed = pc.json(&["snapshots"]);
    let rows = listed["snapshots"].as_array().unwrap();
    let complete: Vec<_> = rows.iter().filter(|r| r["checkpoint"] == false).collect();
    assert_eq!(complete.len(), 1, "{listed}");
    assert_eq!(complete[0]["id"], id.as_str(), "{listed}");
    assert!(rows.iter().any(|r| r["checkpoint"] == true), "{listed}");
    let latest = dir.path().join("latest");
    pc.restore_to("latest", &latest);
    support::assert_same_tree(&home, &latest.join(home.strip_prefix("/").unwrap()));
    coffre_server::night(&server.store);
    let snaps = server.store.snapshots_of("jardins").unwrap();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert!(!snaps[0].checkpoint, "{snaps:?}");
    assert_eq!(snaps[0].id.to_hex(), id);
}
