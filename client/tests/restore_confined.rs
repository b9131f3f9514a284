//! Restore never writes outside its target (issue 18, items 2 and 3), end to
//! end: the real daemon on loopback, the technician's `coffre` program, and
//! a hostile device of the same subscriber that commits snapshots built by
//! hand (trees encoded byte by byte, so that names the honest encoder
//! refuses reach the server) over the real QUIC protocol. Beside every
//! target sits a sentinel folder (`outside/`) that each hostile snapshot
//! and each hostile target aims at; after every restore, with and without
//! `--overwrite`, its names, bytes and modes are compared with before.
//!
//! Also here: a target prepared by a hostile local user (symlinks at the
//! final names, at the old temporary names, at intermediate folders), and
//! Ctrl-C / SIGKILL in the middle of a restore (no temporary file left; the
//! next run finishes byte for byte).

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use coffre_core::benchmark::random_bytes;
use coffre_core::{BlobKind, ChunkId, Keys, Manifest, Sealer, Timestamp};
use coffre_proto::{Request, Response};
use coffre_store::Role;
use support::{assert_same_tree, temp_files, Client, Server};

const QUOTA: u64 = 10 << 30;

/// The hostile PC: a device of the subscriber with its keys, committing
/// snapshots made by hand.
struct Hostile {
    rt: tokio::runtime::Runtime,
    remote: coffre_client::Remote,
    keys: Keys,
    ids: Vec<ChunkId>,
}

/// One entry of a hand-made tree.
enum Raw {
    File(&'static [u8]),
    Dir(ChunkId),
    Link(Vec<u8>),
}

impl Hostile {
    fn enrol(server: &Server) -> Hostile {
        let (rt, remote) = support::hand_made_device(server, "pc-hostile", QUOTA, Role::Backup);
        let keys = support::subscriber_keys(&rt, &remote);
        Hostile {
            rt,
            remote,
            keys,
            ids: Vec::new(),
        }
    }

    fn put(&mut self, kind: BlobKind, data: &[u8]) -> ChunkId {
        let id = ChunkId::compute(&self.keys, data);
        let blob = Sealer::new(3).seal(&self.keys, kind, &id, data).unwrap();
        let r = self
            .rt
            .block_on(self.remote.call(&Request::PutChunk {
                id: *id.as_bytes(),
                blob,
            }))
            .unwrap();
        assert!(matches!(r, Response::Stored { .. }), "{r:?}");
        if !self.ids.contains(&id) {
            self.ids.push(id);
        }
        id
    }

    /// A tree encoded by hand as docs/format.md says, entries in the order
    /// given (names unchecked, so duplicates and paths get through).
    fn tree(&mut self, entries: &[(&[u8], Raw)]) -> ChunkId {
        fn varint(out: &mut Vec<u8>, mut v: u64) {
            while v >= 0x80 {
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
        let mut t = b"CFTR\x01".to_vec();
        varint(&mut t, entries.len() as u64);
        for (name, raw) in entries {
            varint(&mut t, name.len() as u64);
            t.extend_from_slice(name);
            let (kind, mode, size) = match raw {
                Raw::File(d) => (1u8, 0o100644, d.len() as u64),
                Raw::Dir(_) => (2, 0o040755, 0),
                Raw::Link(_) => (3, 0o120777, 0),
            };
            t.push(kind);
            varint(&mut t, mode);
            varint(&mut t, 0); // uid
            varint(&mut t, 0); // gid
            t.extend_from_slice(&1_700_000_000i64.to_le_bytes());
            t.extend_from_slice(&0u32.to_le_bytes());
            varint(&mut t, size);
            varint(&mut t, 0); // xattrs
            match raw {
                Raw::File(d) => {
                    let id = self.put(BlobKind::Data, d);
                    varint(&mut t, 1);
                    t.extend_from_slice(id.as_bytes());
                }
                Raw::Dir(id) => t.extend_from_slice(id.as_bytes()),
                Raw::Link(to) => {
                    varint(&mut t, to.len() as u64);
                    t.extend_from_slice(to);
                }
            }
        }
        self.put(BlobKind::Tree, &t)
    }

    /// Commits a snapshot whose root is `root`; returns its id (hex).
    fn commit(&mut self, root: ChunkId) -> String {
        let mut ids = std::mem::take(&mut self.ids);
        ids.sort();
        let mut m = Manifest::bare("pc-hostile", Timestamp::now(), ids);
        m.private.root = root;
        let r = self
            .rt
            .block_on(self.remote.call(&Request::Commit {
                manifest: m.seal(&self.keys).unwrap(),
            }))
            .unwrap();
        let Response::Committed { snapshot } = r else {
            panic!("commit refused: {r:?}");
        };
        hex::encode(snapshot)
    }
}

/// Names, bytes (or link targets) and modes of everything under `dir`.
fn snapshot_of(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let content = if md.file_type().is_symlink() {
                fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if md.is_dir() {
                todo.push(p.clone());
                Vec::new()
            } else {
                fs::read(&p).unwrap()
            };
            out.insert(
                p.strip_prefix(dir).unwrap().to_path_buf(),
                (content, md.permissions().mode()),
            );
        }
    }
    out
}

/// The test's world: the server, the honest PC (whose enrolment stored the
/// key file), the hostile device, and a sentinel folder beside the targets.
struct World {
    work: tempfile::TempDir,
    _server: Server,
    pc: Client,
    pc_root: PathBuf,
    hostile: Hostile,
    outside: PathBuf,
    before: BTreeMap<PathBuf, (Vec<u8>, u32)>,
}

impl World {
    fn new() -> World {
        let work = tempfile::tempdir().unwrap();
        let server = Server::start();
        let pc_root = work.path().join("pc");
        fs::create_dir_all(pc_root.join("docs")).unwrap();
        fs::write(pc_root.join("docs/a.txt"), b"honest a").unwrap();
        fs::write(pc_root.join("b.txt"), b"honest b").unwrap();
        let pc = Client::new();
        pc.enrol(
            &server.token("asso", QUOTA, "pc-bureau", Role::Backup),
            &[&pc_root],
        );
        let hostile = Hostile::enrol(&server);
        let outside = work.path().join("outside");
        fs::create_dir_all(outside.join("dir")).unwrap();
        fs::write(outside.join("secret.txt"), b"not yours").unwrap();
        fs::set_permissions(
            outside.join("secret.txt"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        fs::write(outside.join("dir/pwned"), b"original").unwrap();
        let before = snapshot_of(&outside);
        World {
            work,
            _server: server,
            pc,
            pc_root,
            hostile,
            outside,
            before,
        }
    }

    fn target(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// `coffre restore SNAP --target T [EXTRA] --json`: (exit code, report).
    fn restore(
        &self,
        snap: &str,
        target: &Path,
        extra: &[&str],
    ) -> (i32, serde_json::Value, String) {
        let mut args = vec![
            "restore",
            snap,
            "--target",
            target.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = self.pc.run(&args);
        let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (
            out.status.code().unwrap_or(-1),
            report,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn assert_outside_unchanged(&self, when: &str) {
        assert_eq!(
            snapshot_of(&self.outside),
            self.before,
            "the sentinel changed: {when}"
        );
    }
}

#[test]
fn names_that_are_paths_are_reported_and_the_rest_restored() {
    let mut w = World::new();
    let abs = format!("{}/pwned-abs", w.outside.display()).into_bytes();
    let mut root = Vec::new();
    let bad: Vec<Vec<u8>> = vec![
        b"..".to_vec(),
        b".".to_vec(),
        b"../outside/dir/pwned".to_vec(),
        b"a/b".to_vec(),
        abs,
        Vec::new(),
        b"x\0y".to_vec(),
    ];
    let mut folders = Vec::new();
    for (i, name) in bad.iter().enumerate() {
        let sub = w.hostile.tree(&[(name.as_slice(), Raw::File(b"evil"))]);
        folders.push((format!("bad{i}").into_bytes(), sub));
    }
    for (name, sub) in &folders {
        root.push((name.as_slice(), Raw::Dir(*sub)));
    }
    // Sorted, as the decoder checks: "bad0".."bad6" < "honest.txt".
    root.push((&b"honest.txt"[..], Raw::File(b"honest")));
    let root = w.hostile.tree(&root);
    let snap = w.hostile.commit(root);
    for extra in [&[][..], &["--overwrite"][..]] {
        let target = w.target(&format!("t-names{}", extra.len()));
        let (code, report, stderr) = w.restore(&snap, &target, extra);
        assert_eq!(code, 1, "{report} {stderr}");
        assert_eq!(fs::read(target.join("honest.txt")).unwrap(), b"honest");
        assert_eq!(
            report["failed"].as_array().unwrap().len(),
            bad.len(),
            "{report}"
        );
        assert!(report["failed"].to_string().contains("damaged"), "{report}");
        w.assert_outside_unchanged("names");
        assert!(!w.work.path().join("pwned-abs").exists());
    }
}

#[test]
fn a_link_from_one_snapshot_is_never_followed_by_the_next() {
    let mut w = World::new();
    let outside_dir = w.outside.join("dir").into_os_string().into_encoded_bytes();
    // Snapshot 1: `evil` is a link to the sentinel's folder, `up` a relative
    // one climbing out, `secret` a link to the sentinel's file.
    let secret = w
        .outside
        .join("secret.txt")
        .into_os_string()
        .into_encoded_bytes();
    let first = w.hostile.tree(&[
        (b"evil", Raw::Link(outside_dir)),
        (b"one.txt", Raw::File(b"first")),
        (b"secret", Raw::Link(secret)),
        (b"up", Raw::Link(b"../../outside".to_vec())),
    ]);
    let first = w.hostile.commit(first);
    // Snapshot 2: `evil` is a folder holding `pwned`; `secret` and `up` files.
    let inner = w
        .hostile
        .tree(&[(b"pwned", Raw::File(b"through the link"))]);
    let second = w.hostile.tree(&[
        (b"evil", Raw::Dir(inner)),
        (b"secret", Raw::File(b"overwritten?")),
        (b"two.txt", Raw::File(b"second")),
    ]);
    let second = w.hostile.commit(second);

    let target = w.target("t-links");
    let (code, report, stderr) = w.restore(&first, &target, &[]);
    assert_eq!(code, 0, "{report} {stderr}");
    assert!(fs::symlink_metadata(target.join("evil"))
        .unwrap()
        .file_type()
        .is_symlink());
    w.assert_outside_unchanged("first snapshot");

    // Without --overwrite: `secret` (a link where a file goes) is a conflict.
    let (code, _, stderr) = w.restore(&second, &target, &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("nothing was written"), "{stderr}");
    w.assert_outside_unchanged("second snapshot, refused");
    assert!(!target.join("two.txt").exists());

    // Only the folder behind a link: reported, the rest restored.
    let target2 = w.target("t-links2");
    w.restore(&first, &target2, &[]);
    fs::remove_file(target2.join("secret")).unwrap();
    let (code, report, stderr) = w.restore(&second, &target2, &[]);
    assert_eq!(code, 1, "{report} {stderr}");
    assert_eq!(fs::read(target2.join("two.txt")).unwrap(), b"second");
    assert!(
        report["failed"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("evil"),
        "{report}"
    );
    w.assert_outside_unchanged("second snapshot over a link, no --overwrite");

    // With --overwrite: the links themselves are replaced.
    let (code, report, stderr) = w.restore(&second, &target, &["--overwrite"]);
    assert_eq!(code, 0, "{report} {stderr}");
    assert!(fs::symlink_metadata(target.join("evil")).unwrap().is_dir());
    assert_eq!(
        fs::read(target.join("evil/pwned")).unwrap(),
        b"through the link"
    );
    assert_eq!(fs::read(target.join("secret")).unwrap(), b"overwritten?");
    assert!(fs::symlink_metadata(target.join("secret"))
        .unwrap()
        .is_file());
    w.assert_outside_unchanged("second snapshot, --overwrite");
}

#[test]
fn duplicate_names_in_one_listing_are_refused_not_followed() {
    let mut w = World::new();
    let outside_dir = w.outside.join("dir").into_os_string().into_encoded_bytes();
    let inner = w
        .hostile
        .tree(&[(b"pwned", Raw::File(b"through the link"))]);
    // A link and a folder of the same name, and the link twice.
    let dup = w.hostile.tree(&[
        (b"x", Raw::Link(outside_dir.clone())),
        (b"x", Raw::Dir(inner)),
        (b"y", Raw::Link(outside_dir.clone())),
        (b"y", Raw::Link(outside_dir)),
    ]);
    let root = w.hostile.tree(&[
        (b"dup", Raw::Dir(dup)),
        (b"honest.txt", Raw::File(b"honest")),
    ]);
    let snap = w.hostile.commit(root);
    for extra in [&[][..], &["--overwrite"][..]] {
        let target = w.target(&format!("t-dup{}", extra.len()));
        let (code, report, stderr) = w.restore(&snap, &target, extra);
        assert_eq!(code, 1, "{report} {stderr}");
        assert_eq!(fs::read(target.join("honest.txt")).unwrap(), b"honest");
        assert!(
            report["failed"][0]["path"]
                .as_str()
                .unwrap()
                .ends_with("dup"),
            "{report}"
        );
        w.assert_outside_unchanged("duplicates");
    }
}

#[test]
fn a_target_prepared_by_a_hostile_user_is_never_written_through() {
    let w = World::new();
    let snap = w.pc.backup_id();
    let pc = w.pc_root.to_str().unwrap().to_string();
    let prepare = |target: &Path| {
        let t = target.join("pc");
        fs::create_dir_all(&t).unwrap();
        // At the final name, at the old temporary names, at a folder.
        symlink(w.outside.join("secret.txt"), t.join("b.txt")).unwrap();
        symlink(
            w.outside.join("secret.txt"),
            t.join(".b.txt.coffre-restore"),
        )
        .unwrap();
        symlink(w.outside.join("dir"), t.join("docs")).unwrap();
        symlink(w.outside.join("dir/pwned"), t.join(".a.txt.coffre-restore")).unwrap();
    };
    let target = w.target("t-prepared");
    prepare(&target);
    let (code, _, stderr) = w.restore(&snap[..12], &target, &["--path", &pc]);
    assert_ne!(code, 0);
    assert!(stderr.contains("nothing was written"), "{stderr}");
    w.assert_outside_unchanged("prepared target, no --overwrite");

    let (code, report, stderr) = w.restore(&snap[..12], &target, &["--path", &pc, "--overwrite"]);
    assert_eq!(code, 0, "{report} {stderr}");
    w.assert_outside_unchanged("prepared target, --overwrite");
    let t = target.join("pc");
    assert!(fs::symlink_metadata(t.join("b.txt")).unwrap().is_file());
    assert!(fs::symlink_metadata(t.join("docs")).unwrap().is_dir());
    assert_eq!(fs::read(t.join("b.txt")).unwrap(), b"honest b");
    assert_eq!(fs::read(t.join("docs/a.txt")).unwrap(), b"honest a");
    // The planted links are still links, untouched.
    assert!(fs::symlink_metadata(t.join(".b.txt.coffre-restore"))
        .unwrap()
        .file_type()
        .is_symlink());

    // A folder-only link (no file conflict): reported, the rest restored.
    let target = w.target("t-prepared2");
    fs::create_dir_all(target.join("pc")).unwrap();
    symlink(w.outside.join("dir"), target.join("pc/docs")).unwrap();
    let (code, report, stderr) = w.restore(&snap[..12], &target, &["--path", &pc]);
    assert_eq!(code, 1, "{report} {stderr}");
    assert_eq!(fs::read(target.join("pc/b.txt")).unwrap(), b"honest b");
    w.assert_outside_unchanged("folder link, no --overwrite");
}

#[test]
fn include_and_exclude_choose_what_comes_back() {
    let w = World::new();
    let root = &w.pc_root;
    fs::create_dir_all(root.join("Compta/2025")).unwrap();
    fs::create_dir_all(root.join("Compta/2024")).unwrap();
    fs::write(root.join("Compta/2025/budget.ods"), b"b25").unwrap();
    fs::write(root.join("Compta/2025/notes.txt"), b"n25").unwrap();
    fs::write(root.join("Compta/2024/budget.ods"), b"b24").unwrap();
    fs::create_dir_all(root.join("Compta/2025/brouillons")).unwrap();
    fs::write(root.join("Compta/2025/brouillons/essai.ods"), b"e").unwrap();
    let snap = w.pc.backup_id();
    let compta = format!("{}/Compta", root.display());
    let target = w.target("t-include");
    let (code, report, stderr) = w.restore(
        &snap[..12],
        &target,
        &[
            "--path",
            &compta,
            "--include",
            "*.ODS",
            "--exclude",
            &format!("{compta}/2024"),
            "--exclude",
            "brouillons",
        ],
    );
    assert_eq!(code, 0, "{report} {stderr}");
    let got: Vec<_> = snapshot_of(&target).into_keys().collect();
    let want: Vec<PathBuf> = ["Compta", "Compta/2025", "Compta/2025/budget.ods"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(got, want);
    // A folder that matches comes back whole.
    let target = w.target("t-include-folder");
    let (code, report, stderr) = w.restore(
        &snap[..12],
        &target,
        &["--include", &format!("{compta}/2025")],
    );
    assert_eq!(code, 0, "{report} {stderr}");
    let base = target.join(compta.trim_start_matches('/'));
    assert_eq!(
        fs::read(base.join("2025/brouillons/essai.ods")).unwrap(),
        b"e"
    );
    assert_eq!(fs::read(base.join("2025/notes.txt")).unwrap(), b"n25");
    assert!(!base.join("2024").exists());
    assert!(!target
        .join(root.strip_prefix("/").unwrap())
        .join("b.txt")
        .exists());
}

/// Starts a restore of a large file and waits until its temporary file
/// holds data; returns the running program.
fn restore_started(w: &World, snap: &str, target: &Path) -> std::process::Child {
    let pc = w.pc_root.to_str().unwrap().to_string();
    let mut child =
        w.pc.command(&[
            "restore",
            snap,
            "--path",
            &pc,
            "--target",
            target.to_str().unwrap(),
            "--quiet",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let found = target.join("pc").exists()
            && temp_files(target)
                .iter()
                .any(|p| fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false));
        if found {
            return child;
        }
        if started.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the restore ended or never started writing: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Polled: nothing tells when a file appears in a folder.
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn big_world() -> (World, String) {
    let w = World::new();
    fs::write(w.pc_root.join("archive.mbox"), random_bytes(160 << 20, 7)).unwrap();
    let snap = w.pc.backup_id();
    (w, snap)
}

#[test]
fn ctrl_c_leaves_no_temporary_file_and_the_rerun_finishes() {
    let (w, snap) = big_world();
    let target = w.target("t-sigint");
    let child = restore_started(&w, &snap[..12], &target);
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted:") && stderr.contains("run the same command again"),
        "{stderr}"
    );
    assert_eq!(temp_files(&target), Vec::<PathBuf>::new());
    let pc = w.pc_root.to_str().unwrap().to_string();
    w.pc.ok(&[
        "restore",
        &snap[..12],
        "--path",
        &pc,
        "--target",
        target.to_str().unwrap(),
        "--quiet",
    ]);
    assert_same_tree(&w.pc_root, &target.join("pc"));
    assert_eq!(temp_files(&target), Vec::<PathBuf>::new());
}

#[test]
fn a_killed_restore_leaves_a_temporary_file_the_next_one_removes() {
    let (w, snap) = big_world();
    let target = w.target("t-sigkill");
    let mut child = restore_started(&w, &snap[..12], &target);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !temp_files(&target).is_empty(),
        "SIGKILL left nothing: the test proves nothing"
    );
    let (code, report, stderr) = w.restore(
        &snap[..12],
        &target,
        &["--path", w.pc_root.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{report} {stderr}");
    assert!(
        report["stale_temporary_files_removed"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert_eq!(temp_files(&target), Vec::<PathBuf>::new());
    assert_same_tree(&w.pc_root, &target.join("pc"));
}
