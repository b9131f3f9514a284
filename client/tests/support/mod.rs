//! The harness of the client's end-to-end tests: the real `coffre` program
//! run as a technician runs it, each client with its own configuration
//! directory, against the real daemon in this process
//! (`coffre_testkit::daemon::Server`: SQLite and packs in a temporary
//! directory, loopback QUIC); a generator of a small "association PC" tree
//! and its next day, and the check that a restore brought a tree back.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use coffre_core::benchmark::{random_bytes, text_bytes};
pub use coffre_testkit::daemon::Server;
pub use coffre_testkit::PASSPHRASE;

/// The packs where the server keeps them (subscriber 1): (name, size).
pub fn stored_packs(server: &Server) -> Vec<(String, u64)> {
    coffre_store::RawPacks::open(server.dir.path(), &server.storage)
        .unwrap()
        .list(1)
        .unwrap()
}

/// One installation of the `coffre` program (its own config directory).
pub struct Client {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Client {
    pub fn new() -> Client {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("coffre").join("config.toml");
        Client { dir, config }
    }

    /// This installation's state folder (credentials, caches, log): the
    /// config file's name minus `.toml`, plus `.state`.
    pub fn state_dir(&self) -> PathBuf {
        self.config.with_extension("state")
    }

    /// The `coffre` command with this installation's --config.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_coffre"));
        c.arg("--config").arg(&self.config).args(args);
        c.env_remove("COFFRE_PASSPHRASE")
            .env("COFFRE_CONNECT_TIMEOUT", "3");
        c
    }

    /// Runs `coffre ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `coffre ARGS`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "coffre {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `coffre ARGS --json`, which must succeed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Runs `coffre backup --json`, which must succeed; returns the new
    /// snapshot's id (hex).
    pub fn backup_id(&self) -> String {
        self.json(&["backup"])["snapshot"]
            .as_str()
            .expect("a snapshot id")
            .to_string()
    }

    /// Restores snapshot `id` (or "latest") into `target`, quietly.
    pub fn restore_to(&self, id: &str, target: &Path) {
        self.ok(&[
            "restore",
            id,
            "--target",
            target.to_str().unwrap(),
            "--quiet",
        ]);
    }

    /// Enrols with the test passphrase, backing up `paths`.
    pub fn enrol(&self, token: &str, paths: &[&Path]) {
        let mut c = self.command(&["enrol", token]);
        for p in paths {
            c.arg("--path").arg(p);
        }
        let out = c.env("COFFRE_PASSPHRASE", PASSPHRASE).output().unwrap();
        assert!(
            out.status.success(),
            "enrol failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The one line a failed `coffre` command prints.
pub fn one_line_error(out: &Output) -> String {
    coffre_testkit::one_line_error(out, "coffre")
}

/// Writes `data` to `root/rel`, making its folders; the file's path.
pub fn write(root: &Path, rel: &str, data: &[u8]) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
    p
}

/// A small "association PC" tree, shaped like `make-dataset` (office
/// documents that do not compress, text that does, photos, a mailbox, a
/// database file, duplicated folders, an empty folder, a link, Unicode and
/// non-UTF-8 names). About 40 MB.
pub fn make_tree(root: &Path) {
    for i in 0..12u64 {
        write(
            root,
            &format!("Documents/Compta/factures/facture-{i:03}.pdf"),
            &random_bytes(40_000 + i as usize * 7_000, 100 + i),
        );
    }
    write(
        root,
        "Documents/Compta/bilan 2025.ods",
        &random_bytes(180_000, 1),
    );
    write(
        root,
        "Documents/Compta/grand-livre.csv",
        &text_bytes(2_500_000, 2),
    );
    write(
        root,
        "Documents/Compta/Réunion été — notes.txt",
        &text_bytes(9_000, 3),
    );
    for i in 0..25u64 {
        write(
            root,
            &format!("Documents/Bureau/compte-rendu-{i:02}.txt"),
            &text_bytes(4_000 + i as usize * 900, 200 + i),
        );
    }
    for i in 0..14u64 {
        write(
            root,
            &format!("Photos/2025/IMG_{i:04}.jpg"),
            &random_bytes(1_200_000 + i as usize * 50_000, 300 + i),
        );
    }
    for i in 0..4u64 {
        write(
            root,
            &format!("Photos/Album copie/IMG_{i:04}.jpg"),
            &random_bytes(1_200_000 + i as usize * 50_000, 300 + i),
        );
    }
    write(root, "Mail/Inbox.mbox", &text_bytes(8_000_000, 4));
    write(root, "Base/compta.sqlite", &random_bytes(4 << 20, 5));
    fs::create_dir_all(root.join("Vide/encore plus vide")).unwrap();
    fs::write(
        root.join(std::ffi::OsStr::from_bytes(
            b"Documents/latin1-\xe9t\xe9.txt",
        )),
        b"ete",
    )
    .unwrap();
    std::os::unix::fs::symlink("2025/IMG_0001.jpg", root.join("Photos/dernière")).unwrap();
    fs::set_permissions(
        root.join("Documents/Compta/bilan 2025.ods"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    // The copied folder of the documents (dedup).
    copy_dir(
        &root.join("Documents/Compta"),
        &root.join("Documents/Copie de Compta"),
    );
}

/// The next day, as `make-dataset --day 1` changes a tree: mail appended, a
/// document edited, database pages rewritten, new photos, a folder renamed.
pub fn day1(root: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let mut mbox = fs::OpenOptions::new()
        .append(true)
        .open(root.join("Mail/Inbox.mbox"))
        .unwrap();
    mbox.write_all(&text_bytes(400_000, 40)).unwrap();
    write(
        root,
        "Documents/Bureau/compte-rendu-03.txt",
        &text_bytes(7_000, 41),
    );
    let mut db = fs::OpenOptions::new()
        .write(true)
        .open(root.join("Base/compta.sqlite"))
        .unwrap();
    for (k, off) in [100_000u64, 1_700_000, 3_900_000].into_iter().enumerate() {
        db.seek(SeekFrom::Start(off)).unwrap();
        db.write_all(&random_bytes(4096, 50 + k as u64)).unwrap();
    }
    for i in 14..17u64 {
        write(
            root,
            &format!("Photos/2025/IMG_{i:04}.jpg"),
            &random_bytes(1_300_000, 300 + i),
        );
    }
    fs::rename(
        root.join("Photos/Album copie"),
        root.join("Photos/Album 2025"),
    )
    .unwrap();
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Everything about a tree that a restore must bring back: per relative
/// path, its kind, contents (or link target), permission bits and mtime
/// (files, in nanoseconds).
/// What a restore must bring back of one path: kind, contents or link
/// target, permission bits, file mtime (seconds, nanoseconds).
pub type PathState = (char, Vec<u8>, u32, Option<(i64, i64)>);

pub fn state(root: &Path) -> BTreeMap<PathBuf, PathState> {
    let mut out = BTreeMap::new();
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, PathState>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if md.is_dir() {
                out.insert(rel, ('d', vec![], md.mode() & 0o7777, None));
                go(root, &p, out);
            } else if md.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec();
                out.insert(rel, ('l', t, 0, None));
            } else {
                out.insert(
                    rel,
                    (
                        'f',
                        fs::read(&p).unwrap(),
                        md.mode() & 0o7777,
                        Some((md.mtime(), md.mtime_nsec())),
                    ),
                );
            }
        }
    }
    go(root, root, &mut out);
    out
}

/// Asserts two trees are the same (names, kinds, bytes, modes, file mtimes).
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    assert_same_state(&state(expected), actual);
}

/// Asserts the tree at `actual` is what `expected` recorded ([`state`] of
/// the tree when it was backed up).
pub fn assert_same_state(expected: &BTreeMap<PathBuf, PathState>, actual: &Path) {
    let (a, b) = (expected, state(actual));
    let names_a: Vec<_> = a.keys().collect();
    let names_b: Vec<_> = b.keys().collect();
    assert_eq!(names_a, names_b, "the restored tree holds other names");
    for (k, va) in a {
        let vb = &b[k];
        assert_eq!(va.0, vb.0, "{}: kind", k.display());
        assert!(va.1 == vb.1, "{}: contents differ", k.display());
        assert_eq!(va.2, vb.2, "{}: permissions", k.display());
        assert_eq!(va.3, vb.3, "{}: mtime", k.display());
    }
}

/// A device of subscriber "asso" (quota `quota`) that speaks the protocol
/// by hand, as a compromised or hostile PC does: its own runtime and
/// connection (`coffre_client::Remote`, real QUIC).
pub fn hand_made_device(
    server: &Server,
    name: &str,
    quota: u64,
    role: coffre_store::Role,
) -> (tokio::runtime::Runtime, coffre_client::Remote) {
    let token = coffre_proto::Token::parse(&server.token("asso", quota, name, role)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let remote = rt
        .block_on(coffre_client::Remote::connect(
            &server.addr,
            server.fingerprint,
            token.secret,
        ))
        .unwrap();
    (rt, remote)
}

/// The subscriber's keys, from the key file an honest PC stored at its
/// enrolment, unwrapped with the test passphrase.
pub fn subscriber_keys(
    rt: &tokio::runtime::Runtime,
    remote: &coffre_client::Remote,
) -> coffre_core::Keys {
    use coffre_proto::{Request, Response};
    let Response::Key {
        key_file: Some(key_file),
    } = rt.block_on(remote.call(&Request::GetKey)).unwrap()
    else {
        panic!("the honest PC stored the key file at its enrolment");
    };
    let master = coffre_core::KeyFile::from_bytes(&key_file)
        .unwrap()
        .unwrap_key(PASSPHRASE.as_bytes())
        .unwrap();
    coffre_core::Keys::derive(&master)
}

/// Every temporary name a restore left under `dir` (`.coffre-restore...`).
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p);
            } else if p.to_string_lossy().contains(".coffre-restore") {
                out.push(p);
            }
        }
    }
    out
}

/// Waits until `f` gives `Some`, at most `limit` (then fails, naming `what`).
pub fn wait_for<T>(what: &str, limit: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits until `f` holds, at most `limit` (then fails, naming `what`).
pub fn wait_until(what: &str, limit: std::time::Duration, mut f: impl FnMut() -> bool) {
    wait_for(what, limit, || f().then_some(()))
}
