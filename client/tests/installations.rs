//! One installation, one state (issue 18, item 1 and the token and
//! passphrase slips of item 3), as a technician meets it: the real `coffre`
//! program against the real daemon on loopback. Two config files in one
//! folder (two structures, or two servers) keep two identities; credentials
//! copied from another installation are refused before anything connects;
//! an installation of the old layout (state beside the config file) moves
//! into its own state folder without a new enrolment, and the A/B layout
//! that the old code mixed gives A a clear refusal while B goes on; the
//! token stays out of the process list; a wrong passphrase from a file
//! fails at once; a backup never saves coffre's own state folders.

#![cfg(unix)]

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use coffre_store::Role;
use support::{assert_same_tree, one_line_error, Client, Server, PASSPHRASE};

const GIB: u64 = 1 << 30;

/// An installation whose config file is `folder/name` (the folder may hold others).
fn installation(folder: &Path, name: &str) -> Client {
    Client {
        dir: tempfile::tempdir().unwrap(),
        config: folder.join(name),
    }
}

/// A small tree of `label`'s own files.
fn tree(root: &Path, label: &str) {
    fs::create_dir_all(root.join("Documents")).unwrap();
    fs::write(
        root.join("Documents/compta.txt"),
        format!("bilan 2025 de {label}\n").repeat(400),
    )
    .unwrap();
    fs::write(root.join(format!("{label}.txt")), label.as_bytes()).unwrap();
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// (id, device) of every snapshot the installation lists.
fn snapshots(c: &Client) -> Vec<(String, String)> {
    c.json(&["snapshots"])["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["device"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Restores the latest snapshot of `c` and checks it is `home`, byte for byte.
fn restores_its_own(c: &Client, home: &Path) {
    let target = tempfile::tempdir().unwrap();
    c.restore_to("latest", target.path());
    assert_same_tree(home, &target.path().join(home.strip_prefix("/").unwrap()));
}

fn canonical_tempdir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = fs::canonicalize(t.path()).unwrap();
    (t, p)
}

/// Checks the state folder of `c`: its own, private, tagged; credentials 0600.
fn private_state(c: &Client) {
    let state = c.state_dir();
    assert_eq!(mode(&state), 0o700, "{}", state.display());
    assert_eq!(mode(&state.join("credentials")), 0o600);
    assert!(fs::read(state.join("CACHEDIR.TAG"))
        .unwrap()
        .starts_with(b"Signature: 8a477f597d28d172789f06886806bc55"));
}

#[test]
fn two_configs_in_one_folder_keep_two_structures_apart() {
    let server = Server::start();
    let (_w, work) = canonical_tempdir();
    let (home_a, home_b) = (work.join("asso-a"), work.join("asso-b"));
    tree(&home_a, "a");
    tree(&home_b, "b");
    let laptop = work.join("coffre");
    let a = installation(&laptop, "asso-a.toml");
    let b = installation(&laptop, "asso-b.toml");
    a.enrol(&server.token("asso-a", GIB, "pc1", Role::Admin), &[&home_a]);
    b.enrol(&server.token("asso-b", GIB, "pc2", Role::Admin), &[&home_b]);
    assert_eq!(a.state_dir(), laptop.join("asso-a.state"));
    assert_ne!(a.state_dir(), b.state_dir());
    private_state(&a);
    private_state(&b);
    assert!(
        !laptop.join("credentials").exists(),
        "nothing shared beside them"
    );

    let (id_a, id_b) = (a.backup_id(), b.backup_id());
    assert_eq!(snapshots(&a), [(id_a, "pc1".to_string())]);
    assert_eq!(snapshots(&b), [(id_b, "pc2".to_string())]);
    restores_its_own(&a, &home_a);
    restores_its_own(&b, &home_b);
    assert_eq!(a.json(&["status"])["subscriber"], "asso-a");
    assert_eq!(b.json(&["status"])["subscriber"], "asso-b");

    // B's credentials copied into A's state folder: refused before any
    // connection, naming both sides.
    let copied = fs::read(b.state_dir().join("credentials")).unwrap();
    fs::write(a.state_dir().join("credentials"), &copied).unwrap();
    let out = a.run(&["snapshots"]);
    let err = one_line_error(&out);
    assert!(
        err.contains(
            r#"these credentials are for subscriber "asso-b" device "pc2" on server fingerprint "#
        ) && err.contains(r#"but asso-a.toml names subscriber "asso-a" device "pc1""#)
            && err.contains("nothing was sent to any server")
            && err.contains(&format!(
                "coffre --config {} enrol TOKEN --force",
                a.config.display()
            )),
        "{err}"
    );
    // Nothing connected with them: the copy was not rolled, and B, whose
    // secret a connection would have replaced, still works.
    assert_eq!(fs::read(a.state_dir().join("credentials")).unwrap(), copied);
    assert_eq!(snapshots(&b).len(), 1);
    let b_dev = &server.store.list_devices(Some("asso-b")).unwrap()[0];
    assert_eq!(b_dev.clone_refusals, 0);
}

#[test]
fn two_servers_with_the_same_names_keep_two_credentials() {
    let (one, two) = (Server::start(), Server::start());
    let (_w, work) = canonical_tempdir();
    let (home_1, home_2) = (work.join("home-1"), work.join("home-2"));
    tree(&home_1, "one");
    tree(&home_2, "two");
    let folder = work.join("coffre");
    let c1 = installation(&folder, "server-1.toml");
    let c2 = installation(&folder, "server-2.toml");
    // The same structure and PC names on both servers.
    c1.enrol(&one.token("asso", GIB, "pc", Role::Backup), &[&home_1]);
    c2.enrol(&two.token("asso", GIB, "pc", Role::Backup), &[&home_2]);
    let (id_1, id_2) = (c1.backup_id(), c2.backup_id());
    assert_eq!(snapshots(&c1), [(id_1, "pc".to_string())]);
    assert_eq!(snapshots(&c2), [(id_2, "pc".to_string())]);
    restores_its_own(&c1, &home_1);
    restores_its_own(&c2, &home_2);

    // Server 2's credential is never sent to server 1.
    fs::copy(
        c2.state_dir().join("credentials"),
        c1.state_dir().join("credentials"),
    )
    .unwrap();
    let err = one_line_error(&c1.run(&["backup"]));
    let fp = |s: &Server| hex::encode(&s.fingerprint[..8]);
    assert!(
        err.contains(&format!(
            r#"are for subscriber "asso" device "pc" on server fingerprint {}…"#,
            fp(&two)
        )) && err.contains(&format!(
            r#"server-1.toml names subscriber "asso" device "pc" on server fingerprint {}…"#,
            fp(&one)
        )),
        "{err}"
    );
    assert_eq!(
        snapshots(&c2).len(),
        1,
        "server 2's installation still works"
    );
}

/// Turns an installation of this release back into the layout of the
/// previous one: its state files beside the config file, the credentials
/// without the fields that say whom they are for (their first line only).
fn back_to_the_old_layout(c: &Client) {
    let state = c.state_dir();
    let dir = c.config.parent().unwrap();
    let text = fs::read_to_string(state.join("credentials")).unwrap();
    let old: String = text
        .lines()
        .filter(|l| {
            !["subscriber =", "device =", "fingerprint ="]
                .iter()
                .any(|f| l.starts_with(f))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(old.starts_with("# coffre credentials of device "), "{old}");
    fs::write(dir.join("credentials"), old).unwrap();
    for name in ["cache", "last-run.json", "backup.log"] {
        if state.join(name).exists() {
            fs::rename(state.join(name), dir.join(name)).unwrap();
        }
    }
    fs::remove_dir_all(&state).unwrap();
}

#[test]
fn an_old_installation_moves_into_its_state_folder_without_enrolling_again() {
    let server = Server::start();
    let (_w, work) = canonical_tempdir();
    let home = work.join("home");
    tree(&home, "pc");
    let pc = Client::new();
    pc.enrol(&server.token("asso", GIB, "pc", Role::Backup), &[&home]);
    let first = pc.backup_id();
    let secret_before = fs::read_to_string(pc.state_dir().join("credentials")).unwrap();
    back_to_the_old_layout(&pc);
    let dir = pc.config.parent().unwrap().to_path_buf();

    // The next run moves everything and goes on with the same device
    // secret chain (the token is used up: only the rolled secret works).
    let out = pc.command(&["backup", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("moved this installation's credentials"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["bytes_read"], 0,
        "the files cache moved too: {report}"
    );
    assert!(!dir.join("credentials").exists() && !dir.join("cache").exists());
    private_state(&pc);
    let secret_after = fs::read_to_string(pc.state_dir().join("credentials")).unwrap();
    assert_ne!(secret_before, secret_after, "rolled by the run");
    assert!(
        secret_after.contains("subscriber = \"asso\""),
        "{secret_after}"
    );
    let ids: Vec<String> = snapshots(&pc).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], first);
    restores_its_own(&pc, &home);
}

#[test]
fn the_mixed_old_layout_refuses_a_and_moves_b() {
    let server = Server::start();
    let (_w, work) = canonical_tempdir();
    let (home_a, home_b) = (work.join("asso-a"), work.join("asso-b"));
    tree(&home_a, "a");
    tree(&home_b, "b");
    let laptop = work.join("coffre");
    let a = installation(&laptop, "asso-a.toml");
    let b = installation(&laptop, "asso-b.toml");
    a.enrol(&server.token("asso-a", GIB, "pc1", Role::Admin), &[&home_a]);
    b.enrol(&server.token("asso-b", GIB, "pc2", Role::Admin), &[&home_b]);
    b.backup_id();
    // What the old code left: one credentials file beside both configs,
    // the last enrolled one's (B's).
    fs::remove_dir_all(a.state_dir()).unwrap();
    back_to_the_old_layout(&b);

    let err = one_line_error(&a.run(&["snapshots"]));
    assert!(
        err.contains(r#"these credentials are for subscriber "asso-b" device "pc2""#)
            && err.contains(r#"asso-a.toml names subscriber "asso-a" device "pc1""#)
            && err.contains("nothing was sent to any server")
            && err.contains("enrol TOKEN --force")
            && err.contains("coffre-server device reissue asso-a pc1"),
        "{err}"
    );
    assert!(
        laptop.join("credentials").exists(),
        "B's credentials stay for B"
    );

    let again = b.json(&["backup"]);
    assert_eq!(again["bytes_read"], 0, "B took its files cache: {again}");
    assert!(!laptop.join("credentials").exists());
    assert_eq!(snapshots(&b).len(), 2);

    // A gets its own identity back with a new token, and B is untouched.
    let out = a
        .command(&["enrol", &server.reissue("asso-a", "pc1"), "--force"])
        .arg("--path")
        .arg(&home_a)
        .env("COFFRE_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.backup_id();
    restores_its_own(&a, &home_a);
    assert_eq!(snapshots(&b).len(), 2);
    restores_its_own(&b, &home_b);
}

#[test]
fn the_token_can_stay_out_of_the_process_list() {
    let server = Server::start();
    let (_w, work) = canonical_tempdir();
    let help = Client::new().ok(&["enrol", "--help"]);
    assert!(
        help.contains("visible to every user of this machine") && help.contains("--token-file"),
        "{help}"
    );

    // From standard input.
    let first = Client::new();
    let mut child = first
        .command(&["enrol", "-", "--path"])
        .arg(&work)
        .env("COFFRE_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let token = server.token("asso", GIB, "pc1", Role::Backup);
    writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("enrolled pc1 of asso"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("note"));

    // From a file.
    let second = Client::new();
    let file = second.dir.path().join("token.txt");
    fs::write(
        &file,
        format!("{}\n", server.token("asso", GIB, "pc2", Role::Backup)),
    )
    .unwrap();
    let out = second
        .command(&["enrol", "--token-file"])
        .arg(&file)
        .arg("--path")
        .arg(&work)
        .env("COFFRE_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("note"));
    assert_eq!(snapshots(&second).len(), 0);

    // As an argument: it works, and says what it showed and how not to.
    let third = Client::new();
    let out = third
        .command(&[
            "enrol",
            &server.token("asso", GIB, "pc3", Role::Backup),
            "--path",
        ])
        .arg(&work)
        .env("COFFRE_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("the token was visible to every user of this machine in the process list")
            && err.contains("give it as `-` (standard input) or with --token-file FILE"),
        "{err}"
    );

    // Both at once is a usage error.
    let out = Client::new().run(&["enrol", "x", "--token-file", "y"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_wrong_passphrase_from_a_file_fails_at_once_and_changes_nothing() {
    let server = Server::start();
    let first = Client::new();
    first.enrol(
        &server.token("asso", GIB, "pc1", Role::Backup),
        &[Path::new("/tmp")],
    );
    let second = Client::new();
    let pass = second.dir.path().join("pass");
    fs::write(&pass, "not the passphrase\n").unwrap();
    let token = server.token("asso", GIB, "pc2", Role::Backup);
    let out = second
        .command(&["enrol", &token, "--path", "/tmp", "--passphrase-file"])
        .arg(&pass)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = one_line_error(&out);
    assert!(
        err.contains(&format!(
            "wrong passphrase for asso (from the file {}): nothing was changed",
            pass.display()
        )),
        "{err}"
    );
    assert!(!second.config.exists() && !second.state_dir().exists());
    // The token still works, with the right passphrase.
    fs::write(&pass, PASSPHRASE).unwrap();
    let out = second
        .command(&["enrol", &token, "--path", "/tmp", "--passphrase-file"])
        .arg(&pass)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_backup_never_saves_coffres_own_state_nor_another_installations() {
    let server = Server::start();
    let (_w, work) = canonical_tempdir();
    let home = work.join("home");
    tree(&home, "alice");
    // This PC's default installation and a second one, both in the home folder.
    let own = installation(&home.join(".config/coffre"), "config.toml");
    let other = installation(&home.join("coffre"), "asso-b.toml");
    own.enrol(&server.token("asso", GIB, "pc", Role::Backup), &[&home]);
    other.enrol(&server.token("asso-b", GIB, "pc", Role::Backup), &[&home]);
    other.backup_id();
    // A user spoilt this installation's tag: its own state is still left out.
    fs::write(own.state_dir().join("CACHEDIR.TAG"), "edited by hand\n").unwrap();
    own.backup_id();

    let target = tempfile::tempdir().unwrap();
    own.restore_to("latest", target.path());
    let restored = target.path().join(home.strip_prefix("/").unwrap());
    assert_eq!(
        fs::read(restored.join("alice.txt")).unwrap(),
        b"alice",
        "the home folder was backed up"
    );
    assert!(restored.join(".config/coffre/config.toml").exists());
    assert!(restored.join("coffre/asso-b.toml").exists());
    let mut found = Vec::new();
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            found.push(p.clone());
            if p.is_dir() && !p.is_symlink() {
                walk(&p, found);
            }
        }
    }
    walk(target.path(), &mut found);
    let state: Vec<_> = found
        .iter()
        .filter(|p| p.to_string_lossy().contains(".state") || p.ends_with("credentials"))
        .collect();
    assert!(state.is_empty(), "state was backed up: {state:?}");
}
