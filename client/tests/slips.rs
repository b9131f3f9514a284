//! Slips that must lose nothing (issue 18, item 3), end to end: the real
//! daemon on loopback and the real `coffre` program.
//!
//! - A damaged manifest does not take the subscriber down. A compromised
//!   PC of the same subscriber, written by hand against `crates/proto` over
//!   the real QUIC connection, commits two manifests whose public part is
//!   valid (the server reads only that) but whose private part does not
//!   open: one sealed under another structure's key, one with a flipped
//!   byte. The honest PC and the technician's laptop go on: `snapshots`
//!   lists them as damaged naming the device, `find`, `ls`, `diff`,
//!   `restore`, `backup` work, `latest` skips them (saying so), `check`
//!   names them and fails, `ls`/`restore` of them fail naming the device,
//!   and the admin laptop deletes them. A manifest the server itself cannot
//!   read any more (a byte flipped on its disk) is handled the same way.
//! - `forget` cannot delete the wrong snapshot by a slip: a short prefix or
//!   `latest` is refused without --yes (nothing deleted), an ambiguous
//!   prefix is refused even with --yes, 8 digits delete, and what is
//!   deleted is always shown first.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use coffre_core::benchmark::{random_bytes, text_bytes};
use coffre_core::{ChunkId, Keys, Manifest, MasterKey, Timestamp};
use coffre_proto::{Request, Response};
use coffre_store::Role;
use support::{assert_same_tree, one_line_error, Client, Server};

const QUOTA: u64 = 10 << 30;

/// A device of the subscriber speaking the protocol by hand, with the
/// subscriber's keys (unwrapped with the passphrase, as a compromised PC
/// enrolled by the technician has them).
struct Device {
    rt: tokio::runtime::Runtime,
    remote: coffre_client::Remote,
    keys: Keys,
    name: String,
}

impl Device {
    fn enrol(server: &Server, name: &str) -> Device {
        let (rt, remote) = support::hand_made_device(server, name, QUOTA, Role::Backup);
        let keys = support::subscriber_keys(&rt, &remote);
        Device {
            rt,
            remote,
            keys,
            name: name.into(),
        }
    }

    /// A manifest of this device made now, `paths` in its private part.
    fn manifest(&self, paths: &[&str]) -> Manifest {
        let mut m = Manifest::bare(&self.name, Timestamp::now(), vec![]);
        m.private.paths = paths.iter().map(|p| p.as_bytes().to_vec()).collect();
        m
    }

    /// Commits `manifest` (sealed bytes) through the real protocol.
    fn commit(&self, manifest: Vec<u8>) -> String {
        let Response::Committed { snapshot } = self
            .rt
            .block_on(self.remote.call(&Request::Commit { manifest }))
            .unwrap()
        else {
            panic!("the server refused the commit");
        };
        ChunkId::from_bytes(snapshot).to_hex()
    }
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// An office PC's folder.
fn office(home: &Path) {
    write(home, "Documents/budget 2026.ods", &random_bytes(200_000, 1));
    write(home, "Documents/notes.txt", &text_bytes(30_000, 2));
    write(home, "Photos/fête.jpg", &random_bytes(500_000, 3));
}

fn home_in(work: &tempfile::TempDir) -> PathBuf {
    fs::canonicalize(work.path()).unwrap().join("home")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok_with_stderr(c: &Client, args: &[&str]) -> (String, String) {
    let out = c.run(args);
    assert!(
        out.status.success(),
        "coffre {args:?} failed: {}",
        stderr(&out)
    );
    let err = stderr(&out);
    (String::from_utf8(out.stdout).unwrap(), err)
}

fn snapshot_rows(c: &Client) -> Vec<serde_json::Value> {
    c.json(&["snapshots"])["snapshots"]
        .as_array()
        .unwrap()
        .clone()
}

const UNDECRYPTABLE: &str =
    "damaged: does not decrypt with this structure's key - made by device pc-infecte";

#[test]
fn a_manifest_that_does_not_decrypt_takes_nothing_down() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let home = home_in(&work);
    office(&home);
    let pc = Client::new();
    pc.enrol(
        &server.token("asso", QUOTA, "pc-bureau", Role::Backup),
        &[&home],
    );
    let first = pc.backup_id();

    // The compromised PC commits a manifest sealed under another
    // structure's key, and one whose last byte (the tag) it flipped.
    let hostile = Device::enrol(&server, "pc-infecte");
    let other_key = Keys::derive(&MasterKey::from_bytes([7; 32]));
    let foreign = hostile.commit(hostile.manifest(&["/x"]).seal(&other_key).unwrap());
    let mut flipped = hostile.manifest(&["/y"]).seal(&hostile.keys).unwrap();
    *flipped.last_mut().unwrap() ^= 1;
    let flipped = hostile.commit(flipped);

    // snapshots: listed as damaged, with id and device; the rest as usual.
    let text = pc.ok(&["snapshots"]);
    assert_eq!(text.matches(UNDECRYPTABLE).count(), 2, "{text}");
    for id in [&foreign, &flipped, &first] {
        assert!(text.contains(&id[..8]), "{text}");
    }
    assert!(text.contains(home.to_str().unwrap()), "{text}");
    assert!(text.contains("3 snapshots, 2 of them damaged"), "{text}");
    let rows = snapshot_rows(&pc);
    assert_eq!(rows.len(), 3);
    for r in &rows {
        let damaged = r["id"] != first.as_str();
        assert_eq!(r["damaged"], damaged, "{r}");
        if damaged {
            assert_eq!(r["device"], "pc-infecte");
            assert_eq!(r["reason_code"], "undecryptable");
            assert!(r["reason"].as_str().unwrap().contains("pc-infecte"), "{r}");
        } else {
            assert_eq!(r["paths"][0], home.to_str().unwrap());
        }
    }

    // find: the honest snapshot is searched, the damaged ones are named.
    let (found, warned) = ok_with_stderr(&pc, &["find", "budget*"]);
    assert!(
        found.contains("budget 2026.ods") && found.contains(&first[..8]),
        "{found}"
    );
    assert_eq!(warned.matches("was not searched").count(), 2, "{warned}");
    assert!(warned.contains("pc-infecte"), "{warned}");
    let json = pc.json(&["find", "budget*"]);
    assert_eq!(json["matches"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["skipped"].as_array().unwrap().len(), 2, "{json}");

    // ls and restore OF a damaged snapshot fail, naming the device.
    let target = work.path().join("out-damaged");
    for args in [
        vec!["ls", &foreign[..8]],
        vec![
            "restore",
            &flipped[..8],
            "--target",
            target.to_str().unwrap(),
        ],
    ] {
        let err = one_line_error(&pc.run(&args));
        assert!(
            err.contains("is damaged") && err.contains("made by device pc-infecte"),
            "{args:?}: {err}"
        );
    }
    assert!(!target.exists(), "nothing was written");

    // The honest PC backs up (known chunks, parent), diffs, restores.
    write(&home, "Documents/notes.txt", &text_bytes(31_000, 4));
    let second = pc.backup_id();
    let diff = pc.ok(&["diff", &first[..8], &second[..8]]);
    assert!(diff.contains("M ") && diff.contains("notes.txt"), "{diff}");
    let restored = work.path().join("restored");
    pc.restore_to("latest", &restored);
    assert_same_tree(&home, &restored.join(home.strip_prefix("/").unwrap()));

    // check names each damaged snapshot with its device, and fails.
    let out = pc.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    let damaged_lines: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("DAMAGED"))
        .collect();
    assert_eq!(damaged_lines.len(), 2, "{report}");
    for l in &damaged_lines {
        assert!(
            l.contains("pc-infecte") && l.contains("does not decrypt"),
            "{l}"
        );
    }
    assert!(
        !report.contains(&format!("DAMAGED snapshot {}", &second[..8])),
        "{report}"
    );

    // The technician's laptop (never backed up): `latest` is the whole
    // structure's newest readable snapshot; the newer damaged ones are
    // skipped, and it says so.
    let laptop = Client::new();
    laptop.enrol(
        &server.token("asso", QUOTA, "laptop", Role::Admin),
        &[&home],
    );
    let later = hostile.commit(hostile.manifest(&["/z"]).seal(&other_key).unwrap());
    let (listing, warned) = ok_with_stderr(&laptop, &["ls", "latest", "/"]);
    assert!(!listing.is_empty());
    assert!(
        warned.contains("`latest` skips snapshot")
            && warned.contains(&later[..8])
            && warned.contains("pc-infecte"),
        "{warned}"
    );
    let on_laptop = work.path().join("on-laptop");
    laptop.restore_to("latest", &on_laptop);
    assert_same_tree(&home, &on_laptop.join(home.strip_prefix("/").unwrap()));

    // The admin laptop deletes a damaged snapshot like any other.
    let (out, _) = ok_with_stderr(&laptop, &["forget", &foreign[..8]]);
    assert!(
        out.contains(UNDECRYPTABLE) && out.contains("forgot snapshot"),
        "{out}"
    );
    assert_eq!(snapshot_rows(&pc).len(), 4);
}

#[test]
fn a_manifest_the_server_cannot_read_is_listed_as_damaged_and_the_backup_goes_on() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let home = home_in(&work);
    office(&home);
    let pc = Client::new();
    pc.enrol(
        &server.token("asso", QUOTA, "pc-bureau", Role::Backup),
        &[&home],
    );
    let first = pc.backup_id();
    // The server dates snapshots to the second, and the backup takes the
    // device's newest of the list: the next one is received a second later.
    let received = Timestamp::now().secs;
    while Timestamp::now().secs <= received {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    write(&home, "Documents/notes.txt", &text_bytes(31_000, 4));
    let second = pc.backup_id();

    // A byte of the newest manifest flips on the server's disk.
    let file = find_file(server.dir.path(), &second).expect("the manifest's file");
    let mut bytes = fs::read(&file).unwrap();
    bytes[20] ^= 1;
    fs::write(&file, bytes).unwrap();

    let text = pc.ok(&["snapshots"]);
    assert!(
        text.contains("damaged: cannot be fetched from the server")
            && text.contains("made by device pc-bureau"),
        "{text}"
    );
    let (_, warned) = ok_with_stderr(&pc, &["ls", "latest"]);
    assert!(
        warned.contains(&format!("skips snapshot {}", &second[..8])),
        "{warned}"
    );
    assert!(
        warned.contains(&format!("newer than {}", &first[..8])),
        "{warned}"
    );

    // The nightly backup goes on (its latest snapshot is only a hint).
    let (report, warned) = ok_with_stderr(&pc, &["backup", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert!(report["snapshot"].is_string(), "{report}");
    assert!(warned.contains(&second[..8]), "{warned}");
    let out = pc.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in fs::read_dir(dir).ok()? {
        let p = e.unwrap().path();
        if p.is_dir() {
            if let Some(f) = find_file(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

#[test]
fn forget_refuses_a_slip_and_deletes_what_it_shows() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let home = home_in(&work);
    office(&home);
    let pc = Client::new();
    pc.enrol(
        &server.token("asso", QUOTA, "pc-bureau", Role::Backup),
        &[&home],
    );
    pc.backup_id();
    let laptop = Client::new();
    laptop.enrol(
        &server.token("asso", QUOTA, "laptop", Role::Admin),
        &[&home],
    );

    // Another PC's snapshots, until two ids share their first digit and
    // another's first digit is its own.
    let other = Device::enrol(&server, "pc-accueil");
    let ids = |c: &Client| -> Vec<String> {
        snapshot_rows(c)
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let first_digit_count =
        |ids: &[String], d: char| ids.iter().filter(|i| i.starts_with(d)).count();
    let (shared, lonely) = loop {
        other.commit(
            other
                .manifest(&["/home/accueil"])
                .seal(&other.keys)
                .unwrap(),
        );
        let all = ids(&laptop);
        assert!(all.len() < 40, "sixteen digits cannot hold 40 ids apart");
        let shared = all
            .iter()
            .find(|i| first_digit_count(&all, i.chars().next().unwrap()) > 1);
        let lonely = all
            .iter()
            .find(|i| first_digit_count(&all, i.chars().next().unwrap()) == 1);
        if let (Some(s), Some(l)) = (shared, lonely) {
            break (s.clone(), l.clone());
        }
    };
    let count = ids(&laptop).len();

    // `forget 9`: refused, what it names shown with the command to run;
    // nothing deleted.
    let one = &lonely[..1];
    let out = laptop.run(&["forget", one]);
    let err = one_line_error(&out);
    assert!(
        err.contains("nothing was deleted")
            && err.contains(&format!("coffre forget {}", &lonely[..8])),
        "{err}"
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains(&lonely[..8]), "{shown}");
    assert_eq!(ids(&laptop).len(), count, "nothing was deleted");

    // `forget latest`: refused too.
    let err = one_line_error(&laptop.run(&["forget", "latest", "--device", "pc-accueil"]));
    assert!(
        err.contains("nothing was deleted") && err.contains("`latest`"),
        "{err}"
    );
    assert_eq!(ids(&laptop).len(), count);

    // An ambiguous prefix: refused even with --yes, listing the candidates.
    let d = &shared[..1];
    let out = laptop.run(&["forget", d, "--yes"]);
    let err = one_line_error(&out);
    assert!(
        err.contains("snapshots start with") && err.contains("--yes does not choose"),
        "{err}"
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    let candidates: Vec<String> = ids(&laptop)
        .into_iter()
        .filter(|i| i.starts_with(d))
        .collect();
    assert!(candidates.len() > 1);
    for c in &candidates {
        assert!(listed.contains(&c[..8]), "{listed}");
    }
    assert_eq!(ids(&laptop).len(), count);

    // `forget 9 --yes`: shows what it removes (id, time, device, paths), deletes.
    let out = laptop.ok(&["forget", one, "--yes"]);
    assert!(
        out.contains("forgetting:")
            && out.contains(&lonely[..8])
            && out.contains("forgot snapshot"),
        "{out}"
    );
    assert_eq!(snapshot_rows(&laptop).len(), count - 1);
    assert!(!ids(&laptop).contains(&lonely));

    // Eight digits delete at once, still showing what.
    let victim = candidates[0].clone();
    let out = laptop.ok(&["forget", &victim[..8]]);
    assert!(
        out.contains(&victim[..8]) && out.contains("pc-") && out.contains("forgot snapshot"),
        "{out}"
    );
    assert!(!ids(&laptop).contains(&victim));
    assert_eq!(ids(&laptop).len(), count - 2);
}

#[test]
fn forget_help_says_eight_digits_or_yes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args(["forget", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("coffre forget 3f9a2c1d")
            && text.contains("8 hex digits")
            && text.contains("--yes"),
        "{text}"
    );
}
