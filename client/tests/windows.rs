//! A Windows PC, end to end (issue 21): the real `coffre.exe` under Wine
//! (harness: `wine/mod.rs`), with a `%APPDATA%` of its own, against the
//! real daemon on loopback. What a member structure's PC holds and what a
//! technician does with it:
//!
//! - enrol with the default configuration (`%APPDATA%\coffre\config.toml`);
//! - back up a tree with the names Windows PCs have: accents, spaces,
//!   apostrophes, a read-only file, a hidden file, a path longer than 260
//!   characters, an empty folder;
//! - back up again unchanged (nothing read), change a file (only it read);
//! - restore to a new folder, the whole snapshot and one folder given as
//!   the technician types it (`Z:\...`), and compare every byte, every
//!   modification time (Windows keeps them to 100 ns), the read-only and
//!   hidden attributes (as Wine's `attrib` shows them), the empty folder;
//! - restore on Windows a snapshot made on Linux whose names Windows
//!   cannot hold (`a\b`, `x:y`, `CON`, a trailing dot, two names that
//!   differ only by case): each comes back under the documented escape
//!   (docs/format.md, "Tree entry names on Windows"), inside the target.
//!
//! Ignored by a plain `cargo test`: it needs Wine, MinGW and `coffre.exe`
//! (`.ci/run`'s Windows step builds and runs it; the harness says how to
//! get each when missing).

#![cfg(unix)]

mod support;
mod wine;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use coffre_core::benchmark::{random_bytes, text_bytes};
use coffre_store::Role;
use support::{write, Client, Server, PASSPHRASE};
use wine::{ok, run_within, Wine, LIMIT};

const GIB: u64 = 1 << 30;

/// Files the default excludes leave out (`config::DEFAULT_EXCLUDES`).
const EXCLUDED: [&str; 3] = [
    "Photos/Fête de l'été/thumbs.db",
    "AppData/Local/Temp/setup.log",
    "Réunions/~$Procès-verbal du 3 mars.docx",
];

/// Sets a file's modification time (seconds and nanoseconds since 1970).
fn set_mtime(path: &Path, secs: u64, nanos: u32) {
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::new(secs, nanos))
        .unwrap();
}

/// A modification time in units of 100 ns, the resolution Windows keeps.
fn mtime_100ns(path: &Path) -> u128 {
    fs::symlink_metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        / 100
}

/// Every file and folder below `root`, relative, sorted.
fn listing(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `restored` holds `original` (below it): the same names, the same bytes, the same
/// modification times (to 100 ns) for files and folders, read-only files
/// read-only.
fn assert_same(original: &Path, restored: &Path) {
    assert_same_but(original, restored, &[]);
}

/// [`assert_same`], leaving out `left_out` (relative) on both sides.
fn assert_same_but(original: &Path, restored: &Path, left_out: &[&str]) {
    let kept = |root: &Path| -> Vec<PathBuf> {
        listing(root)
            .into_iter()
            .filter(|p| !left_out.iter().any(|l| p.starts_with(l)))
            .collect()
    };
    let names = kept(original);
    assert_eq!(names, kept(restored), "the restored names differ");
    for rel in &names {
        let (a, b) = (original.join(rel), restored.join(rel));
        let (ma, mb) = (fs::metadata(&a).unwrap(), fs::metadata(&b).unwrap());
        assert_eq!(ma.is_dir(), mb.is_dir(), "{}", rel.display());
        if ma.is_file() {
            assert!(
                fs::read(&a).unwrap() == fs::read(&b).unwrap(),
                "{} differs",
                rel.display()
            );
            assert_eq!(
                ma.permissions().readonly(),
                mb.permissions().readonly(),
                "{}: read-only",
                rel.display()
            );
        }
        assert_eq!(
            mtime_100ns(&a),
            mtime_100ns(&b),
            "{}: modification time",
            rel.display()
        );
    }
}

/// The attribute letters Wine's `attrib` shows for a file (`A`, `H`, `R`...).
fn attributes(wine: &Wine, path: &Path) -> String {
    let out = ok(
        &run_within(wine.command("attrib", &[&wine.win_path(path)]), LIMIT),
        "attrib",
    );
    let line = out.lines().next().unwrap_or_default();
    let at = line.find(":\\").map_or(line.len(), |i| i.saturating_sub(1));
    line[..at].chars().filter(|c| !c.is_whitespace()).collect()
}

/// The tree of a Windows PC; returns the hidden file and the long path.
fn windows_tree(root: &Path) -> (PathBuf, PathBuf) {
    write(
        root,
        "Compta 2025/Bilan été à jour.ods",
        &random_bytes(300_000, 1),
    );
    write(
        root,
        "Compta 2025/Factures/Facture n°12 (copie).pdf",
        &random_bytes(60_000, 2),
    );
    write(
        root,
        "Réunions/Procès-verbal du 3 mars.docx",
        &text_bytes(80_000, 3),
    );
    write(
        root,
        "Photos/Fête de l'été/IMG_0001.JPG",
        &random_bytes(700_000, 4),
    );
    let ro = write(root, "Lisez-moi.txt", b"Ne pas modifier.\r\n");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o444)).unwrap();
    let hidden = write(root, "Notes cachées.txt", &text_bytes(5_000, 5));
    fs::create_dir_all(root.join("Dossier vide")).unwrap();
    // Left out by the default excludes (whatever the case, on Windows).
    for rel in EXCLUDED {
        write(root, rel, b"cache");
    }
    // A path longer than MAX_PATH (260) as Windows counts it, from Z:\.
    let mut long = root.join("Archives");
    while long.to_str().unwrap().chars().count() < 280 {
        long.push("Sous-dossier au nom assez long");
    }
    let long = write(&long, "document final.txt", &text_bytes(20_000, 6));
    assert!(long.to_str().unwrap().chars().count() + 2 > 300);
    // Times of another day, with a fraction Windows keeps (100 ns) and
    // one it cannot (the last two digits).
    for (i, rel) in listing(root).iter().enumerate() {
        let p = root.join(rel);
        if p.is_file() {
            set_mtime(&p, 1_700_000_000 + i as u64 * 3_600, 123_456_789);
        }
    }
    (hidden, long)
}

/// Folders' times, set last (writing a file changes its folder's).
fn set_dir_times(root: &Path) {
    let mut dirs: Vec<PathBuf> = listing(root)
        .into_iter()
        .map(|r| root.join(r))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, d) in dirs.iter().enumerate() {
        let f = fs::File::open(d).unwrap();
        f.set_modified(UNIX_EPOCH + Duration::new(1_690_000_000 + i as u64, 500))
            .unwrap();
    }
}

#[test]
#[ignore = "needs Wine, MinGW and coffre.exe: .ci/run's Windows step runs it"]
fn a_windows_pc_backs_up_and_restores_names_times_and_attributes_and_a_linux_snapshot() {
    let server = Server::start();
    let wine = Wine::start();
    let data = tempfile::tempdir().unwrap();
    let (hidden, long) = windows_tree(data.path());
    ok(
        &run_within(
            wine.command("attrib", &["+h", &wine.win_path(&hidden)]),
            LIMIT,
        ),
        "attrib +h",
    );
    assert!(attributes(&wine, &hidden).contains('H'), "attrib +h held");
    set_dir_times(data.path());
    let files = listing(data.path())
        .iter()
        .filter(|r| data.path().join(r).is_file())
        .count() as u64
        - EXCLUDED.len() as u64;

    // Enrol with the default configuration: %APPDATA%\coffre.
    let token = server.token("asso", GIB, "compta-pc", Role::Backup);
    let mut enrol = wine.coffre(&["enrol", &token, "--path", &wine.win_path(data.path())]);
    enrol.env("COFFRE_PASSPHRASE", PASSPHRASE);
    let said = ok(&run_within(enrol, LIMIT), "coffre.exe enrol");
    assert!(
        said.contains(r"AppData\Roaming\coffre\config.toml"),
        "{said}"
    );
    let config = wine.appdata().join("coffre/config.toml");
    assert!(config.is_file(), "{} missing", config.display());
    assert!(
        wine.appdata()
            .join("coffre/config.state/credentials")
            .is_file(),
        "the credentials beside the configuration"
    );

    // First backup, then again unchanged: nothing read.
    let first = wine.coffre_json(&["backup"]);
    assert_eq!(first["files_new"], files, "{first}");
    let again = wine.coffre_json(&["backup"]);
    assert_eq!(again["files_unchanged"], files, "{again}");
    assert_eq!(
        again["bytes_read"], 0,
        "an unchanged tree is not read: {again}"
    );

    // One file changes: only it is read.
    let bilan = data.path().join("Compta 2025/Bilan été à jour.ods");
    fs::write(&bilan, random_bytes(310_000, 7)).unwrap();
    set_mtime(&bilan, 1_760_000_000, 987_654_321);
    set_dir_times(data.path());
    let changed = wine.coffre_json(&["backup"]);
    assert_eq!(changed["files_changed"], 1, "{changed}");
    assert_eq!(changed["bytes_read"], 310_000, "{changed}");
    for run in [&again, &changed] {
        assert_eq!(run["files_deleted"], 0, "nothing deleted: {run}");
    }
    // What the technician looks at: the snapshots, and the last run.
    let snaps = wine.coffre_json(&["snapshots"]);
    assert_eq!(snaps["snapshots"].as_array().unwrap().len(), 3, "{snaps}");
    let status = wine.coffre_json(&["status"]);
    assert_eq!(status["last_run"]["result"], "ok", "{status}");
    assert_eq!(status["device"], "compta-pc", "{status}");

    // The whole snapshot, restored to a new folder: below it, the drive
    // (Z) and the path. Wine 8 cannot create a folder deeper than 260
    // characters (its GetFinalPathNameByHandleW has a buffer of MAX_PATH
    // and answers ERROR_MORE_DATA; cap-std asks it for every folder it
    // creates, and Windows 10 answers), so the long path is left out here
    // and restored by its folder below, into a shorter place.
    let restored = tempfile::tempdir().unwrap();
    wine.coffre_ok(&[
        "restore",
        "latest",
        "--target",
        &wine.win_path(restored.path()),
        "--exclude",
        "Archives",
        "--quiet",
    ]);
    let inside = restored
        .path()
        .join("Z")
        .join(data.path().strip_prefix("/").unwrap());
    // Archives: below. AppData: its Temp is left out, so its folders'
    // times differ.
    let mut left_out = vec!["Archives", "AppData"];
    left_out.extend(EXCLUDED);
    assert_same_but(data.path(), &inside, &left_out);
    assert!(inside.join("AppData/Local").is_dir());
    assert!(!inside.join("AppData/Local/Temp").exists());
    for rel in EXCLUDED {
        assert!(!inside.join(rel).exists(), "{rel} was left out");
    }
    let hidden_back = inside.join(hidden.strip_prefix(data.path()).unwrap());
    assert!(
        attributes(&wine, &hidden_back).contains('H'),
        "the hidden file comes back hidden: {}",
        attributes(&wine, &hidden_back)
    );
    assert!(inside.join("Dossier vide").is_dir());

    // The long path: the snapshot holds it whole (its folder, restored
    // by the Windows path the technician sees).
    let deep = long.parent().unwrap();
    assert!(wine.win_path(&long).len() > 260);
    let short = tempfile::tempdir().unwrap();
    wine.coffre_ok(&[
        "restore",
        "latest",
        "--path",
        &wine.win_path(deep),
        "--target",
        &wine.win_path(short.path()),
        "--quiet",
    ]);
    assert_same(deep, &short.path().join(deep.file_name().unwrap()));

    // The technician restores one folder, typed as Windows shows it.
    let one = tempfile::tempdir().unwrap();
    let compta = wine.win_path(&data.path().join("Compta 2025"));
    wine.coffre_ok(&[
        "restore",
        "latest",
        "--path",
        &compta,
        "--target",
        &wine.win_path(one.path()),
        "--quiet",
    ]);
    assert_same(
        &data.path().join("Compta 2025"),
        &one.path().join("Compta 2025"),
    );

    // A snapshot made on Linux by another PC of the structure, with names
    // Windows cannot hold.
    let linux_data = tempfile::tempdir().unwrap();
    let odd = [
        ("a\\b", "a%5Cb"),
        ("x:y", "x%3Ay"),
        ("CON", "%43ON"),
        ("con.txt", "%63on.txt"),
        ("Fin de phrase.", "Fin de phrase%2E"),
        ("100%.txt", "100%25.txt"),
        ("Notes.txt", "Notes.txt"),
        ("notes.txt", "%6Eotes.txt"),
    ];
    for (i, (name, _)) in odd.iter().enumerate() {
        write(
            linux_data.path(),
            &format!("noms/{name}"),
            format!("fichier {i}: {name}\n").as_bytes(),
        );
    }
    let linux = Client::new();
    linux.enrol(
        &server.token("asso", GIB, "linux-pc", Role::Backup),
        &[linux_data.path()],
    );
    let snapshot = linux.backup_id();
    let from_linux = tempfile::tempdir().unwrap();
    let target = from_linux.path().join("restauré");
    let restore = run_within(
        wine.coffre(&[
            "restore",
            &snapshot[..8],
            "--target",
            &wine.win_path(&target),
        ]),
        LIMIT,
    );
    let out = ok(&restore, "coffre.exe restore (a Linux snapshot)");
    assert!(out.contains("restored 8 files"), "{out}");
    // The technician is told, with examples, and where the rule is.
    let said = String::from_utf8_lossy(&restore.stderr);
    for needle in [
        "7 names were restored under an escaped name",
        r#"a%5Cb (was "a\b")"#,
        r#"%43ON (was "CON")"#,
        "and 2 more",
        "Tree entry names on Windows",
    ] {
        assert!(said.contains(needle), "{needle:?} not in {said}");
    }
    // Only the target was written to.
    assert_eq!(listing(from_linux.path())[0], Path::new("restauré"));
    assert!(listing(from_linux.path())
        .iter()
        .all(|p| p.starts_with("restauré")));
    let noms = target
        .join(linux_data.path().strip_prefix("/").unwrap())
        .join("noms");
    let mut found: Vec<String> = fs::read_dir(&noms)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    found.sort();
    let mut expected: Vec<String> = odd.iter().map(|(_, e)| e.to_string()).collect();
    expected.sort();
    assert_eq!(found, expected);
    for (i, (name, escaped)) in odd.iter().enumerate() {
        assert_eq!(
            fs::read_to_string(noms.join(escaped)).unwrap(),
            format!("fichier {i}: {name}\n"),
            "{name} restored as {escaped}"
        );
    }
}
