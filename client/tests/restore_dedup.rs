//! A restore fetches each chunk once (docs/decisions.md, "Restore fetches
//! each chunk once"), end to end: the real daemon on loopback, the real
//! `coffre` program. A tree with the same PDF in three folders, the same
//! small note in three folders, a database beside an edited copy of it, and
//! a disk image that repeats itself
//! comes back byte for byte while the client receives about what the server
//! stores once (the packs' bytes), not what the files add up to; a restore
//! killed midway and run again still does; and a first copy damaged on disk
//! is never copied into the others.

#![cfg(unix)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use coffre_core::benchmark::random_bytes;
use coffre_store::Role;
use support::{assert_same_tree, stored_packs, temp_files, Client, Server};

const QUOTA: u64 = 10 << 30;
const MIB: usize = 1 << 20;

struct World {
    work: tempfile::TempDir,
    server: Server,
    pc: Client,
    root: PathBuf,
}

/// A PC whose tree repeats itself: `db` MiB of database and its edited
/// copy, a 5 MiB PDF and a 100 KiB note in three folders each, a disk image
/// of four times the same 2 MiB, 2 MiB alone.
/// Returns the world and the snapshot's id.
fn world(db: usize) -> (World, String) {
    let work = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(work.path()).unwrap().join("pc");
    for d in ["Docs", "Archive/2025"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let pdf = random_bytes(5 * MIB, 1);
    let note = random_bytes(100 * 1024, 3);
    for d in ["Docs", "Archive", "Archive/2025"] {
        fs::write(root.join(d).join("rapport.pdf"), &pdf).unwrap();
        fs::write(root.join(d).join("note.txt"), &note).unwrap();
    }
    let mut base = random_bytes(db * MIB, 2);
    fs::write(root.join("compta.db"), &base).unwrap();
    // The edited copy: a few bytes changed in the middle.
    for b in &mut base[db * MIB / 2..db * MIB / 2 + 100] {
        *b ^= 0xff;
    }
    fs::write(root.join("compta-copie.db"), &base).unwrap();
    fs::write(root.join("unique.bin"), random_bytes(2 * MIB, 4)).unwrap();
    // A disk image repeating itself: its chunks recur within the one file.
    fs::write(root.join("disque.img"), random_bytes(2 * MIB, 5).repeat(4)).unwrap();
    let server = Server::start();
    let pc = Client::new();
    pc.enrol(
        &server.token("asso", QUOTA, "pc-compta", Role::Backup),
        &[&root],
    );
    let snap = pc.backup_id();
    (
        World {
            work,
            server,
            pc,
            root,
        },
        snap,
    )
}

impl World {
    /// The bytes the server stores for the subscriber: each chunk (and
    /// listing) once.
    fn stored(&self) -> u64 {
        stored_packs(&self.server).iter().map(|(_, n)| n).sum()
    }

    /// The bytes of the files of the tree, each counted where it is.
    fn logical(&self) -> u64 {
        fn go(d: &Path) -> u64 {
            fs::read_dir(d)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    if e.file_type().unwrap().is_dir() {
                        go(&e.path())
                    } else {
                        e.metadata().unwrap().len()
                    }
                })
                .sum()
        }
        go(&self.root)
    }

    fn args<'a>(&'a self, snap: &'a str, target: &'a Path) -> Vec<&'a str> {
        vec![
            "restore",
            snap,
            "--path",
            self.root.to_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
        ]
    }

    /// `coffre restore --json` of the tree into `target`, which must succeed.
    fn restore(&self, snap: &str, target: &Path) -> serde_json::Value {
        self.pc.json(&self.args(snap, target))
    }

    /// Asserts that the restore of `report` received about what the server
    /// stores once, not what the files add up to.
    fn assert_fetched_once(&self, report: &serde_json::Value) {
        let received = report["received_bytes"].as_u64().unwrap();
        let chunk_bytes = report["chunk_bytes_downloaded"].as_u64().unwrap();
        let stored = self.stored();
        // The wire's framing and the manifest on top of the packs' bytes.
        assert!(
            received <= stored + stored / 50 + (256 << 10),
            "received {received} bytes for {stored} stored: {report}"
        );
        assert!(chunk_bytes <= stored, "{chunk_bytes} > {stored}: {report}");
    }
}

#[test]
fn identical_and_shared_files_come_back_with_each_chunk_fetched_once() {
    let (w, snap) = world(12);
    let logical = w.logical();
    let stored = w.stored();
    // The tree repeats itself: the server stores much less than the files
    // add up to (so fetching per file would show).
    assert!(stored * 3 < logical * 2, "{stored} stored of {logical}");

    let target = w.work.path().join("t");
    let report = w.restore(&snap[..12], &target);
    assert_same_tree(&w.root, &target.join("pc"));
    assert_eq!(report["files"], 10, "{report}");
    assert_eq!(report["failed"].as_array().unwrap().len(), 0, "{report}");
    w.assert_fetched_once(&report);
    // Two copies of the PDF (5 chunks or so each), most of the edited
    // database and three quarters of the disk image were read back; the
    // notes came in one group request once.
    let copied = report["chunks_copied"].as_u64().unwrap();
    assert!(copied >= 10, "{report}");
    let received = report["received_bytes"].as_u64().unwrap();
    assert!(received < logical * 2 / 3, "{report}");
    // The figures of docs/performance.md (`-- --nocapture`).
    eprintln!(
        "restore: {logical} bytes of files, {stored} bytes stored, {received} received, \
         {} chunks downloaded, {copied} read back",
        report["chunks_downloaded"]
    );
}

#[test]
fn a_restore_of_duplicates_killed_midway_finishes_when_run_again() {
    let (w, snap) = world(96);
    let target = w.work.path().join("t-killed");
    let mut child =
        w.pc.command(&w.args(&snap[..12], &target))
            .arg("--quiet")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let started = Instant::now();
    loop {
        let writing = temp_files(&target)
            .iter()
            .any(|p| fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false));
        if writing {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60) && child.try_wait().unwrap().is_none(),
            "the restore ended or never started writing"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let report = w.restore(&snap[..12], &target);
    assert_eq!(report["failed"].as_array().unwrap().len(), 0, "{report}");
    assert_same_tree(&w.root, &target.join("pc"));
    assert_eq!(temp_files(&target), Vec::<PathBuf>::new());
    w.assert_fetched_once(&report);
    let copied = report["chunks_copied"].as_u64().unwrap();
    assert!(copied >= 10, "{report}");
}

#[test]
fn a_first_copy_damaged_on_disk_is_not_copied_into_the_others() {
    let (w, snap) = world(12);
    let target = w.work.path().join("t-damaged");
    w.restore(&snap[..12], &target);
    let restored = target.join("pc");

    // The PDF of Docs damaged in place, its size and mtime kept (so the next
    // restore takes it for done), the other two copies removed.
    let first = restored.join("Docs/rapport.pdf");
    let mtime = fs::metadata(&first).unwrap().modified().unwrap();
    let mut bytes = fs::read(&first).unwrap();
    for b in &mut bytes[2 * MIB..2 * MIB + 10] {
        *b ^= 0x55;
    }
    fs::write(&first, &bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(&first)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    fs::remove_file(restored.join("Archive/rapport.pdf")).unwrap();
    fs::remove_file(restored.join("Archive/2025/rapport.pdf")).unwrap();

    let report = w.restore(&snap[..12], &target);
    assert_eq!(report["failed"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(report["files"], 2, "{report}");
    let original = fs::read(w.root.join("Docs/rapport.pdf")).unwrap();
    for copy in ["Archive/rapport.pdf", "Archive/2025/rapport.pdf"] {
        assert!(
            fs::read(restored.join(copy)).unwrap() == original,
            "{copy} took the damage"
        );
    }
    // The chunks of the damaged file that still check were read back from
    // it; the damaged one (two if the damage moved a cut) was fetched for
    // each copy, which both borrow from the file in place.
    assert!(report["chunks_copied"].as_u64().unwrap() >= 2, "{report}");
    let fetched = report["chunks_downloaded"].as_u64().unwrap();
    assert!((1..=4).contains(&fetched), "{report}");
}
