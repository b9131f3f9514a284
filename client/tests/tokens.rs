//! One installation per device (issue 17, item 5), as a user meets it: the
//! real `coffre` program against the real daemon on loopback. A token
//! enrols one installation; a copy of an installation (a cloned disk) is
//! refused once the original has run again, the operator sees it, and the
//! original's history stays its own; a roll interrupted at either step
//! leaves a credential that works; `device reissue` moves the device to a
//! new installation with its history; an installation made before rolling
//! credentials (its credentials file holds the token's secret) migrates by
//! itself at its next run.

#![cfg(unix)]

mod support;

use std::fs;
use std::path::Path;

use coffre_client::{Remote, RemoteError};
use coffre_proto::{ErrorCode, Token};
use coffre_server::{render_page, status_words, Lang, Row};
use coffre_store::Role;
use support::{assert_same_tree, copy_dir, one_line_error, Client, Server, PASSPHRASE};

const GIB: u64 = 1 << 30;

/// A small tree to back up.
fn tree(root: &Path) {
    fs::create_dir_all(root.join("Documents")).unwrap();
    fs::write(
        root.join("Documents/compta.txt"),
        b"bilan 2025\n".repeat(500),
    )
    .unwrap();
    fs::write(root.join("notes.txt"), b"ordre du jour").unwrap();
}

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

/// The device secret in an installation's credentials file.
fn secret(c: &Client) -> [u8; 32] {
    let text = fs::read_to_string(c.state_dir().join("credentials")).unwrap();
    let line = text.lines().find(|l| l.starts_with("secret")).unwrap();
    let hex = line.split('"').nth(1).unwrap();
    let mut out = [0; 32];
    hex::decode_to_slice(hex, &mut out).unwrap();
    out
}

/// Writes `secret` into an installation's credentials file, as the client
/// saves a new one.
fn write_secret(c: &Client, secret: [u8; 32]) {
    let path = c.state_dir().join("credentials");
    let text = fs::read_to_string(&path).unwrap();
    let old = hex::encode(self::secret(c));
    fs::write(&path, text.replace(&old, &hex::encode(secret))).unwrap();
}

fn token_secret(token: &str) -> [u8; 32] {
    Token::parse(token).unwrap().secret
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A connection of the client's library, on `rt` (it lives as long).
fn connect_on(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    secret: [u8; 32],
) -> Result<Remote, RemoteError> {
    rt.block_on(Remote::connect(&server.addr, server.fingerprint, secret))
}

/// Whether the server refuses `secret` as a replaced credential.
fn superseded(server: &Server, secret: [u8; 32]) -> bool {
    let e = connect_on(&rt(), server, secret).unwrap_err();
    e.code() == Some(ErrorCode::Superseded)
}

/// Where a restore into `target` puts the tree backed up from `home`.
fn restored(target: &Path, home: &Path) -> std::path::PathBuf {
    target.join(home.strip_prefix("/").unwrap())
}

fn device(server: &Server, name: &str) -> coffre_store::DeviceInfo {
    server
        .store
        .list_devices(Some("asso"))
        .unwrap()
        .into_iter()
        .find(|d| d.name == name)
        .unwrap()
}

#[test]
fn a_token_enrols_one_installation_only() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    tree(work.path());
    let token = server.token("asso", GIB, "pc", Role::Backup);
    assert!(device(&server, "pc").token_live);

    let pc = Client::new();
    pc.enrol(&token, &[work.path()]);
    assert_ne!(
        secret(&pc),
        token_secret(&token),
        "enrol replaced the token's secret"
    );
    assert!(!device(&server, "pc").token_live, "the token is consumed");

    // The same token pasted on a second machine.
    let twin = Client::new();
    let out = twin
        .command(&["enrol", &token, "--path", work.path().to_str().unwrap()])
        .env("COFFRE_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = one_line_error(&out);
    assert!(
        err.contains("this token was already used to enrol device \"pc\" of \"asso\" on 20"),
        "{err}"
    );
    assert!(err.contains("ask the operator for a new one"), "{err}");
    assert!(
        err.contains("coffre-server device reissue asso pc"),
        "{err}"
    );
    assert!(!twin.config.exists(), "the refused enrolment wrote nothing");
    assert_eq!(device(&server, "pc").clone_refusals, 1);

    // The real installation is untouched.
    let id = pc.backup_id();
    assert_eq!(snapshots(&pc), [(id, "pc".to_string())]);
}

#[test]
fn a_cloned_disk_is_refused_and_the_real_pc_keeps_its_history() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    tree(work.path());
    let pc = Client::new();
    pc.enrol(
        &server.token("asso", GIB, "pc", Role::Backup),
        &[work.path()],
    );
    let first = pc.backup_id();

    // The disk is cloned (the whole configuration folder), then the real PC
    // runs again: its credential rolls past the one the copy holds.
    let clone = Client::new();
    copy_dir(pc.config.parent().unwrap(), clone.config.parent().unwrap());
    fs::write(work.path().join("notes.txt"), b"ordre du jour, v2").unwrap();
    let second = pc.backup_id();
    let before = device(&server, "pc");

    fs::write(work.path().join("clone-only.txt"), b"written on the copy").unwrap();
    for args in [&["backup"][..], &["snapshots"][..]] {
        let out = clone.run(args);
        assert!(!out.status.success(), "the copy was served: {args:?}");
        let err = one_line_error(&out);
        assert!(
            err.contains("this PC's credential for device \"pc\" of \"asso\" was replaced on 20"),
            "{err}"
        );
        assert!(err.contains("another installation of the device"), "{err}");
        assert!(
            err.contains("coffre-server device reissue asso pc"),
            "{err}"
        );
    }

    // Nothing changed for the real PC but the count of refusals: its
    // snapshots are exactly its own, its last backup is its own.
    let after = device(&server, "pc");
    assert_eq!(after.last_backup, before.last_backup);
    assert_eq!(after.clone_refusals, 2);
    assert!(after.last_clone_refusal.is_some());
    assert_eq!(
        snapshots(&pc),
        [(first.clone(), "pc".into()), (second.clone(), "pc".into())]
    );

    // The operator sees it: usage's words and the board, in both languages.
    let now = server.store.now();
    let usage = server.store.usage().unwrap();
    let words = status_words(&usage[0], now, 3);
    assert_eq!(
        words,
        ["copy refused: 2 connections with a replaced credential of pc"]
    );
    let row = Row::new(usage[0].clone(), now, 3);
    let en = render_page(vec![row.clone()], Lang::En, now, 3);
    assert!(
        en.contains("Copy refused") && en.contains("2 connections refused"),
        "{en}"
    );
    let fr = render_page(vec![row], Lang::Fr, now, 3);
    assert!(fr.contains("Copie refusée"), "{fr}");

    // The real PC goes on.
    let third = pc.backup_id();
    let ids: Vec<String> = snapshots(&pc).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, [first, second, third]);
}

#[test]
fn an_interrupted_roll_leaves_a_credential_that_works() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    tree(work.path());
    let pc = Client::new();
    pc.enrol(
        &server.token("asso", GIB, "pc", Role::Backup),
        &[work.path()],
    );
    let rt = rt();

    // Window 1: the new secret reached the server, the PC died before
    // saving it. The next run authenticates with the old one.
    let s0 = secret(&pc);
    let lost = [0x11; 32];
    let remote = connect_on(&rt, &server, s0).unwrap();
    assert!(!rt.block_on(remote.rekey(lost)).unwrap(), "pending");
    rt.block_on(remote.close());
    pc.backup_id();
    let s1 = secret(&pc);
    assert!(s1 != s0 && s1 != lost, "the run rolled the secret");
    // Its roll retired the lost one and the old one.
    for old in [s0, lost] {
        assert!(superseded(&server, old));
    }

    // Window 2: the new secret was saved, the PC died before confirming
    // it. The next run authenticates with it, which makes it current.
    let saved = [0x22; 32];
    let remote = connect_on(&rt, &server, s1).unwrap();
    assert!(!rt.block_on(remote.rekey(saved)).unwrap(), "pending");
    rt.block_on(remote.close());
    write_secret(&pc, saved);
    pc.backup_id();
    let s2 = secret(&pc);
    assert!(s2 != saved && s2 != s1);
    assert!(superseded(&server, s1));
    assert_eq!(snapshots(&pc).len(), 2);
    assert_eq!(
        device(&server, "pc").clone_refusals,
        3,
        "the test's own tries"
    );
}

#[test]
fn reissue_moves_the_device_to_a_new_installation_with_its_history() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    tree(work.path());
    let old = Client::new();
    old.enrol(
        &server.token("asso", GIB, "pc", Role::Backup),
        &[work.path()],
    );
    let first = old.backup_id();

    // The PC is reinstalled: the operator reissues the device.
    let token = server.reissue("asso", "pc");
    assert!(device(&server, "pc").token_live);
    let out = old.run(&["backup"]);
    assert!(!out.status.success(), "the old installation was served");
    let err = one_line_error(&out);
    assert!(err.contains("or by the operator"), "{err}");
    assert!(err.contains("coffre enrol TOKEN --force"), "{err}");

    let new = Client::new();
    new.enrol(&token, &[work.path()]);
    assert!(!device(&server, "pc").token_live);
    let second = new.backup_id();
    assert_eq!(
        snapshots(&new),
        [(first.clone(), "pc".into()), (second, "pc".into())],
        "the history is kept"
    );
    let target = tempfile::tempdir().unwrap();
    new.restore_to(&first, target.path());
    assert_same_tree(work.path(), &restored(target.path(), work.path()));
    // The token is consumed again.
    assert!(superseded(&server, token_secret(&token)));
}

#[test]
fn an_installation_from_before_rolling_credentials_migrates_by_itself() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    tree(work.path());
    let token = server.token("asso", GIB, "pc", Role::Backup);
    let t = Token::parse(&token).unwrap();

    // What `coffre enrol` of the previous release left: the token's secret
    // in the credentials file.
    let pc = Client::new();
    let dir = pc.config.parent().unwrap();
    fs::create_dir_all(dir).unwrap();
    fs::write(
        &pc.config,
        format!(
            "server = {:?}\nfingerprint = {:?}\nsubscriber = \"asso\"\ndevice = \"pc\"\npaths = [{:?}]\n",
            t.server,
            hex::encode(t.fingerprint),
            work.path()
        ),
    )
    .unwrap();
    fs::write(
        dir.join("credentials"),
        format!(
            "secret = {:?}\nmaster_key = {:?}\n",
            hex::encode(t.secret),
            hex::encode([7u8; 32])
        ),
    )
    .unwrap();

    let first = pc.backup_id();
    assert_ne!(secret(&pc), t.secret, "the first run rolled the secret");
    assert!(superseded(&server, t.secret));
    let target = tempfile::tempdir().unwrap();
    pc.restore_to(&first, target.path());
    assert_same_tree(work.path(), &restored(target.path(), work.path()));
}
