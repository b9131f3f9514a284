//! Changing the structure's passphrase (`coffre key passwd`, issue 18 item
//! 4), end to end: the real daemon on loopback, the real `coffre` program on
//! a backup PC, the technician's laptop and new PCs; and hostile devices of
//! the subscriber speaking `ReplaceKey` by hand over the real QUIC
//! connection (`coffre_client::Remote::call`, requests built field by
//! field).

#![cfg(unix)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use coffre_core::benchmark::random_bytes;
use coffre_core::{KdfParams, KeyFile, MasterKey};
use coffre_proto::{ErrorCode, Request, Response};
use coffre_store::Role;
use support::{assert_same_tree, one_line_error, Client, Server, PASSPHRASE};

const QUOTA: u64 = 10 << 30;
const NEW_PASSPHRASE: &str = "a new one, after Paul left";

/// The key file the server holds: the catalogue's row, and the file a
/// catalogue rebuild reads (the first subscriber's folder is `1`), which
/// must agree.
fn server_key(server: &Server) -> Vec<u8> {
    let from_file = fs::read(server.dir.path().join("subscribers/1/key")).unwrap();
    let from_catalogue = server.store.key_of("asso").unwrap().expect("a key file");
    assert_eq!(from_file, from_catalogue, "the file and the row differ");
    from_catalogue
}

/// Whether `pass` opens `key_file`.
fn opens(key_file: &[u8], pass: &str) -> bool {
    KeyFile::from_bytes(key_file)
        .unwrap()
        .unwrap_key(pass.as_bytes())
        .is_ok()
}

/// A small tree of a PC: a few documents and a photo.
fn make_home(root: &Path) {
    for (i, name) in ["Compta/bilan.ods", "Compta/factures.pdf", "Photos/été.jpg"]
        .iter()
        .enumerate()
    {
        let p = root.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, random_bytes(300_000 + i * 100_000, 40 + i as u64)).unwrap();
    }
    fs::write(root.join("notes.txt"), b"ordre du jour").unwrap();
}

/// A file holding `text`, for --passphrase-file and --new-passphrase-file.
fn secret_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("{text}\n")).unwrap();
    p
}

/// Runs `coffre key passwd` on `c` with the passphrases from files.
fn passwd(c: &Client, dir: &Path, old: &str, new: &str) -> std::process::Output {
    let old = secret_file(dir, "old-passphrase", old);
    let new = secret_file(dir, "new-passphrase", new);
    c.run(&[
        "key",
        "passwd",
        "--passphrase-file",
        old.to_str().unwrap(),
        "--new-passphrase-file",
        new.to_str().unwrap(),
    ])
}

/// `coffre enrol TOKEN` on a new PC with `pass` in COFFRE_PASSPHRASE.
fn enrol_with(c: &Client, token: &str, pass: &str, path: &Path) -> std::process::Output {
    c.command(&["enrol", token, "--path", path.to_str().unwrap()])
        .env("COFFRE_PASSPHRASE", pass)
        .output()
        .unwrap()
}

/// The backup PC enrolled before the change keeps backing up and restoring;
/// the old passphrase no longer enrols a new PC; the new one does, and that
/// PC restores the old PC's snapshot byte for byte.
#[test]
fn the_passphrase_changes_and_the_enrolled_pcs_keep_working() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let work = fs::canonicalize(work.path()).unwrap();
    let home = work.join("home");
    make_home(&home);
    let pc = Client::new();
    pc.enrol(
        &server.token("asso", QUOTA, "pc-compta", Role::Backup),
        &[&home],
    );
    let before = pc.backup_id();
    // What the first snapshot holds, as this PC restores it before the change.
    let reference = work.join("reference");
    pc.restore_to(&before, &reference);
    let reference = reference.join(home.strip_prefix("/").unwrap());
    assert_same_tree(&home, &reference);
    let laptop = Client::new();
    laptop.enrol(
        &server.token("asso", QUOTA, "laptop-tech", Role::Admin),
        &[&work.join("nothing")],
    );
    let old_key = server_key(&server);
    assert!(opens(&old_key, PASSPHRASE));

    let out = passwd(&laptop, &work, PASSPHRASE, NEW_PASSPHRASE);
    assert!(
        out.status.success(),
        "key passwd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("passphrase of asso is changed"), "{said}");
    assert!(said.contains("coffre-server device revoke asso"), "{said}");

    // The server's copy: the same key under the new passphrase only.
    let new_key = server_key(&server);
    assert_ne!(new_key, old_key);
    assert!(
        !opens(&new_key, PASSPHRASE),
        "the old passphrase still opens it"
    );
    let master = KeyFile::from_bytes(&new_key)
        .unwrap()
        .unwrap_key(NEW_PASSPHRASE.as_bytes())
        .unwrap();
    assert_eq!(
        master,
        KeyFile::from_bytes(&old_key)
            .unwrap()
            .unwrap_key(PASSPHRASE.as_bytes())
            .unwrap()
    );
    assert_eq!(
        KeyFile::from_bytes(&new_key).unwrap().params(),
        KdfParams::DEFAULT
    );

    // The PC enrolled before: backs up what changed, and restores it.
    fs::write(home.join("Compta/nouveau.txt"), b"after the change").unwrap();
    let after = pc.backup_id();
    assert_ne!(after, before);
    let restored = work.join("restored-after");
    pc.restore_to(&after, &restored);
    assert_same_tree(&home, &restored.join(home.strip_prefix("/").unwrap()));

    // The old passphrase no longer enrols a PC.
    let stranger = Client::new();
    let out = enrol_with(
        &stranger,
        &server.token("asso", QUOTA, "pc-new", Role::Backup),
        PASSPHRASE,
        &work,
    );
    let err = one_line_error(&out);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert!(
        !stranger.config.exists(),
        "a refused enrolment wrote a config"
    );

    // The new one does, and that PC restores the first snapshot whole.
    let fresh = Client::new();
    let out = enrol_with(
        &fresh,
        &server.token("asso", QUOTA, "pc-fresh", Role::Backup),
        NEW_PASSPHRASE,
        &work,
    );
    assert!(
        out.status.success(),
        "enrol with the new passphrase failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = work.join("restored-before");
    fresh.restore_to(&before, &target);
    assert_same_tree(&reference, &target.join(home.strip_prefix("/").unwrap()));
    assert!(!target
        .join(home.strip_prefix("/").unwrap())
        .join("Compta/nouveau.txt")
        .exists());

    // The laptop that changed it keeps working too.
    assert_eq!(
        laptop.json(&["snapshots"])["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// A backup PC may not change the passphrase; a wrong current passphrase
/// changes nothing; the new passphrase may come from COFFRE_NEW_PASSPHRASE
/// and must be long enough.
#[test]
fn only_an_admin_device_with_the_current_passphrase_changes_it() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let pc = Client::new();
    pc.enrol(
        &server.token("asso", QUOTA, "pc-compta", Role::Backup),
        &[work.path()],
    );
    let laptop = Client::new();
    laptop.enrol(
        &server.token("asso", QUOTA, "laptop-tech", Role::Admin),
        &[work.path()],
    );
    let key = server_key(&server);

    let err = one_line_error(&passwd(&pc, work.path(), PASSPHRASE, NEW_PASSPHRASE));
    assert!(err.contains("only an admin device"), "{err}");
    assert!(err.contains("pc-compta"), "{err}");

    let err = one_line_error(&passwd(
        &laptop,
        work.path(),
        "not the passphrase",
        NEW_PASSPHRASE,
    ));
    assert!(err.contains("wrong passphrase for asso"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");

    let err = one_line_error(&passwd(&laptop, work.path(), PASSPHRASE, "short"));
    assert!(err.contains("at least 8 characters"), "{err}");

    let err = one_line_error(&passwd(&laptop, work.path(), PASSPHRASE, PASSPHRASE));
    assert!(err.contains("is the current one"), "{err}");
    assert_eq!(
        server_key(&server),
        key,
        "a refused change changed the key file"
    );

    // From the environment, as a script would.
    let out = laptop
        .command(&["key", "passwd"])
        .env("COFFRE_PASSPHRASE", PASSPHRASE)
        .env("COFFRE_NEW_PASSPHRASE", NEW_PASSPHRASE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(opens(&server_key(&server), NEW_PASSPHRASE));
    // The old passphrase is refused now, as the current one.
    let err = one_line_error(&passwd(&laptop, work.path(), PASSPHRASE, "yet another one"));
    assert!(err.contains("wrong passphrase for asso"), "{err}");
}

/// A device of the subscriber speaking the protocol by hand.
struct Hostile {
    rt: tokio::runtime::Runtime,
    remote: coffre_client::Remote,
}

impl Hostile {
    fn connect(server: &Server, device: &str, role: Role) -> Hostile {
        let (rt, remote) = support::hand_made_device(server, device, QUOTA, role);
        assert_eq!(remote.version, coffre_proto::PROTOCOL_VERSION);
        Hostile { rt, remote }
    }

    /// Sends `ReplaceKey`; the server's error code, or `None` if replaced.
    fn replace(&self, expected: [u8; 32], key_file: Vec<u8>) -> Option<ErrorCode> {
        match self.rt.block_on(
            self.remote
                .call(&Request::ReplaceKey { expected, key_file }),
        ) {
            Ok(Response::KeyReplaced) => None,
            Ok(other) => panic!("unexpected answer {other:?}"),
            Err(e) => Some(e.code().expect("a refusal, not a lost connection")),
        }
    }
}

/// Hostile `ReplaceKey`s are refused and leave the key file as it was: from
/// a backup device, with a wrong expected hash, with garbage. An admin
/// device can replace it with a key file of another master key (the server
/// cannot tell: it never sees the key), and then the technician's `key
/// passwd` refuses to go on: the server's key file does not hold this PC's
/// key.
#[test]
fn hostile_replace_keys_are_refused_and_a_foreign_key_file_is_noticed() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let laptop = Client::new();
    laptop.enrol(
        &server.token("asso", QUOTA, "laptop-tech", Role::Admin),
        &[work.path()],
    );
    let key = server_key(&server);
    let hash = *blake3::hash(&key).as_bytes();
    let master = KeyFile::from_bytes(&key)
        .unwrap()
        .unwrap_key(PASSPHRASE.as_bytes())
        .unwrap();
    let rewrapped = KeyFile::wrap(&master, b"attacker's choice", KdfParams::INSECURE_FOR_TESTS)
        .unwrap()
        .as_bytes()
        .to_vec();

    let backup = Hostile::connect(&server, "pc-infected", Role::Backup);
    assert_eq!(
        backup.replace(hash, rewrapped.clone()),
        Some(ErrorCode::Forbidden)
    );
    let admin = Hostile::connect(&server, "laptop-stolen", Role::Admin);
    assert_eq!(
        admin.replace([0; 32], rewrapped.clone()),
        Some(ErrorCode::Conflict)
    );
    let mut damaged = rewrapped.clone();
    damaged[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
    for garbage in [b"CFKY garbage".to_vec(), damaged, Vec::new(), vec![0; 1024]] {
        assert_eq!(admin.replace(hash, garbage), Some(ErrorCode::BadRequest));
    }
    assert_eq!(
        server_key(&server),
        key,
        "a refused request changed the key file"
    );

    // Another master key under the same passphrase: the server takes it (an
    // admin device may rewrap the key), the technician's laptop notices.
    let foreign = KeyFile::wrap(
        &MasterKey::from_bytes([0x66; 32]),
        PASSPHRASE.as_bytes(),
        KdfParams::INSECURE_FOR_TESTS,
    )
    .unwrap()
    .as_bytes()
    .to_vec();
    assert_eq!(admin.replace(hash, foreign.clone()), None);
    assert_eq!(server_key(&server), foreign);
    let err = one_line_error(&passwd(&laptop, work.path(), PASSPHRASE, NEW_PASSPHRASE));
    assert!(
        err.contains("the server's key file does not hold this PC's key"),
        "{err}"
    );
    assert_eq!(server_key(&server), foreign, "nothing was changed");
}
