//! The technician's day, end to end: the real server on loopback, the real
//! `coffre` program, a realistic tree.

#![cfg(unix)]

mod support;

use std::fs;
use std::path::Path;

use coffre_store::Role;
use support::{assert_same_tree, copy_dir, day1, make_tree, Client, Server};

const GIB: u64 = 1 << 30;

fn snapshot_ids(c: &Client) -> Vec<String> {
    c.json(&["snapshots"])["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// Back up, change as the next day does, back up, delete a folder, back up;
/// then, on a fresh machine with only an admin token and the passphrase,
/// find the folder and restore it from the snapshot before the deletion:
/// byte for byte, with permissions and mtimes.
#[test]
fn the_technician_restores_a_deleted_folder_on_a_fresh_machine() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let home = fs::canonicalize(work.path()).unwrap().join("home-alice");
    make_tree(&home);

    let pc = Client::new();
    pc.enrol(
        &server.token("asso", 10 * GIB, "pc-compta", Role::Backup),
        &[&home],
    );
    let first = pc.json(&["backup"]);
    assert_eq!(first["files_new"], first["files"]);
    assert!(first["files"].as_u64().unwrap() > 70, "{first}");
    assert_eq!(first["errors"].as_array().unwrap().len(), 0);

    day1(&home);
    let second = pc.json(&["backup"]);
    assert!(second["files_changed"].as_u64().unwrap() >= 3, "{second}");
    assert!(second["files_new"].as_u64().unwrap() >= 3, "{second}");
    assert!(
        second["bytes_sent"].as_u64().unwrap() < first["bytes_sent"].as_u64().unwrap() / 3,
        "the day-1 backup sent only what changed: {second}"
    );
    let before_deletion = second["snapshot"].as_str().unwrap().to_string();

    // Keep a copy of the folder as it was, with its mtimes, to compare.
    let compta = home.join("Documents/Compta");
    let reference = work.path().join("reference/Compta");
    copy_dir(&compta, &reference);
    mirror_mtimes(&compta, &reference);
    fs::remove_dir_all(&compta).unwrap();
    let third = pc.json(&["backup"]);
    let after_deletion = third["snapshot"].as_str().unwrap().to_string();

    // The technician's laptop: only a token and the passphrase.
    let laptop = Client::new();
    laptop.enrol(
        &server.token("asso", 10 * GIB, "laptop-tech", Role::Admin),
        &[work.path()],
    );
    let ids = snapshot_ids(&laptop);
    assert_eq!(ids.len(), 3);
    assert!(ids.contains(&before_deletion) && ids.contains(&after_deletion));

    // Where was "bilan 2025.ods"? In the first two snapshots, not the third.
    let found = laptop.json(&["find", "BILAN*.ods"]);
    let holders: Vec<&str> = found["matches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["path"]
                .as_str()
                .unwrap()
                .ends_with("/Documents/Compta/bilan 2025.ods")
        })
        .map(|m| m["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(holders.len(), 2, "{found}");
    assert!(!holders.contains(&after_deletion.as_str()));

    // What changed between the two: the folder is gone.
    let diff = laptop.json(&["diff", &before_deletion[..12], &after_deletion[..12]]);
    let compta_path = compta.to_str().unwrap();
    assert!(
        diff["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["change"] == "removed" && c["path"] == compta_path),
        "{diff}"
    );

    // Restore it, by a prefix of the snapshot id and the path on the PC.
    let target = work.path().join("restored");
    let r = laptop.json(&[
        "restore",
        &before_deletion[..10],
        "--path",
        compta_path,
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(r["failed"].as_array().unwrap().len(), 0, "{r}");
    assert_same_tree(&reference, &target.join("Compta"));

    // Restoring again over it is a no-op; over a changed file it refuses.
    let again = laptop.json(&[
        "restore",
        &before_deletion[..10],
        "--path",
        compta_path,
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(again["files"], 0);
    assert!(again["already_there"].as_u64().unwrap() > 10);
    fs::write(target.join("Compta/grand-livre.csv"), b"changed by hand").unwrap();
    let out = laptop.run(&[
        "restore",
        &before_deletion[..10],
        "--path",
        compta_path,
        "--target",
        target.to_str().unwrap(),
    ]);
    let err = support::one_line_error(&out);
    assert!(
        err.contains("--overwrite") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(
        fs::read(target.join("Compta/grand-livre.csv")).unwrap(),
        b"changed by hand"
    );
    laptop.ok(&[
        "restore",
        &before_deletion[..10],
        "--path",
        compta_path,
        "--target",
        target.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_same_tree(&reference, &target.join("Compta"));

    // The whole snapshot restores too, under its full paths.
    let full = work.path().join("full");
    laptop.ok(&[
        "restore",
        &after_deletion[..10],
        "--target",
        full.to_str().unwrap(),
        "--quiet",
    ]);
    assert_same_tree(&home, &full.join(home.strip_prefix("/").unwrap()));

    // And everything checks out, data included.
    let check = laptop.json(&["check", "--read-data"]);
    assert_eq!(check["ok"], true, "{check}");
    assert!(check["chunks_read"].as_u64().unwrap() > 50);
}

/// Gives `copy` the mtimes of `orig`, file by file (fs::copy does not).
fn mirror_mtimes(orig: &Path, copy: &Path) {
    for e in fs::read_dir(orig).unwrap() {
        let e = e.unwrap();
        let (o, c) = (e.path(), copy.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            mirror_mtimes(&o, &c);
        } else if e.file_type().unwrap().is_file() {
            let t = fs::metadata(&o).unwrap().modified().unwrap();
            fs::File::options()
                .write(true)
                .open(&c)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
    }
}

/// A rerun on an unchanged tree reads no file contents and sends nothing.
#[test]
fn an_unchanged_rerun_reads_no_file() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let home = fs::canonicalize(work.path()).unwrap().join("home");
    make_tree(&home);
    let pc = Client::new();
    pc.enrol(
        &server.token("asso", 10 * GIB, "pc", Role::Backup),
        &[&home],
    );
    let first = pc.json(&["backup"]);
    let again = pc.json(&["backup"]);
    assert_eq!(again["bytes_read"], 0, "{again}");
    assert_eq!(again["files_unchanged"], first["files"]);
    assert_eq!(again["blobs_sent"], 0, "{again}");
    assert_eq!(again["bytes_sent"], 0);
    // Same files, same trees: the same root.
    let snaps = pc.json(&["snapshots"]);
    assert_eq!(snaps["snapshots"].as_array().unwrap().len(), 2);
    // A scheduled run logs to backup.log and records its outcome for `status`.
    let summary = pc.ok(&["backup", "--scheduled"]);
    assert!(summary.contains("0 new, 0 changed"), "{summary}");
    let log = fs::read_to_string(pc.state_dir().join("backup.log")).unwrap();
    assert!(
        log.contains("scheduled backup starting") && log.contains("ok: snapshot"),
        "{log}"
    );
    let status = pc.json(&["status"]);
    assert_eq!(status["last_run"]["scheduled"], true, "{status}");
    assert_eq!(status["last_run"]["result"], "ok");
    assert_eq!(status["snapshots"], 3);
    // Without the cache, every file is read again, and still nothing is sent.
    let uncached = pc.json(&["backup", "--no-cache"]);
    assert_eq!(uncached["bytes_read"], first["bytes_read"]);
    assert_eq!(uncached["blobs_sent"], 0, "{uncached}");
}

/// Backups a few milliseconds apart share their second on the server:
/// `latest` and `snapshots` still order them by their exact time.
#[test]
fn latest_is_the_newest_snapshot_even_within_one_second() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let home = fs::canonicalize(work.path()).unwrap().join("home");
    fs::create_dir_all(&home).unwrap();
    let pc = Client::new();
    pc.enrol(&server.token("asso", GIB, "pc", Role::Backup), &[&home]);
    let mut made = Vec::new();
    for i in 0..6 {
        fs::write(home.join("note.txt"), format!("version {i}")).unwrap();
        made.push(pc.backup_id());
        let listed = snapshot_ids(&pc);
        assert_eq!(listed, made, "snapshots are listed oldest first");
        let target = work.path().join(format!("r{i}"));
        pc.ok(&[
            "restore",
            "latest",
            "--path",
            home.to_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
        ]);
        assert_eq!(
            fs::read_to_string(target.join("home/note.txt")).unwrap(),
            format!("version {i}")
        );
    }
}
