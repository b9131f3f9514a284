//! The subscriber's key file replaced (`Store::replace_key`, `coffre key
//! passwd`): admin devices only, a compare-and-swap on the hash of the key
//! file the device read, the bytes checked as `put_key` checks them, the
//! catalogue and `subscribers/<id>/key` always agreeing, and a catalogue
//! rebuild finding the new one.

use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};

use coffre_core::{KdfParams, KeyFile, MasterKey};
use coffre_store::{rebuild_catalog, Error, Role, Session, Store};
use coffre_testkit::store::Env;
use coffre_testkit::GIB;

fn wrap(pass: &str) -> Vec<u8> {
    let master = MasterKey::from_bytes([7; 32]);
    KeyFile::wrap(&master, pass.as_bytes(), KdfParams::INSECURE_FOR_TESTS)
        .unwrap()
        .as_bytes()
        .to_vec()
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

fn key_path(env: &Env, s: &Session) -> PathBuf {
    env.path()
        .join("subscribers")
        .join(s.subscriber_id.to_string())
        .join("key")
}

/// The key file in the catalogue and on disk: they must agree.
fn stored(env: &Env, s: &Session) -> Vec<u8> {
    let row = env.store.key(s).unwrap().expect("a key file");
    assert_eq!(
        fs::read(key_path(env, s)).unwrap(),
        row,
        "file and row differ"
    );
    row
}

/// A subscriber with a backup PC that stored the key file, and an admin laptop.
fn enrolled() -> (Env, Session, Session, Vec<u8>) {
    let env = Env::new();
    let pc = env.subscriber("asso", GIB, "pc", Role::Backup);
    let laptop = env.device("asso", "laptop", Role::Admin);
    let old = wrap("old passphrase");
    env.store.put_key(&pc, &old).unwrap();
    (env, pc, laptop, old)
}

#[test]
fn an_admin_device_replaces_the_key_file_and_a_rebuild_finds_the_new_one() {
    let (env, pc, laptop, old) = enrolled();
    let new = wrap("new passphrase");
    env.store.replace_key(&laptop, &hash(&old), &new).unwrap();
    assert_eq!(stored(&env, &pc), new);
    let master = KeyFile::from_bytes(&new)
        .unwrap()
        .unwrap_key(b"new passphrase")
        .unwrap();
    assert_eq!(master, MasterKey::from_bytes([7; 32]));

    // The same request again (its answer lost) succeeds and changes nothing;
    // a third key file against the old hash is a conflict.
    env.store.replace_key(&laptop, &hash(&old), &new).unwrap();
    let e = env
        .store
        .replace_key(&laptop, &hash(&old), &wrap("third"))
        .unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e:?}");
    assert_eq!(stored(&env, &pc), new);

    // A lost catalogue is rebuilt with the new key file, not the old one.
    let path = env.path().to_path_buf();
    let Env { dir, store } = env;
    drop(store);
    for name in ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"] {
        let _ = fs::remove_file(path.join(name));
    }
    let reports = rebuild_catalog(&path, false).unwrap();
    assert!(reports.iter().all(|r| r.key), "{reports:?}");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.key(&pc).unwrap().as_deref(), Some(&new[..]));
    drop(dir);
}

#[test]
fn a_backup_device_may_not_replace_the_key_file() {
    let (env, pc, _laptop, old) = enrolled();
    let e = env
        .store
        .replace_key(&pc, &hash(&old), &wrap("mine now"))
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("changing the structure's passphrase"),
        "{e}"
    );
    assert_eq!(stored(&env, &pc), old);
}

#[test]
fn a_wrong_expected_hash_or_a_garbage_key_file_changes_nothing() {
    let (env, pc, laptop, old) = enrolled();
    let e = env
        .store
        .replace_key(&laptop, &[0; 32], &wrap("new passphrase"))
        .unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e:?}");
    assert!(e.to_string().contains("nothing was changed"), "{e}");

    let mut damaged = wrap("new passphrase");
    damaged[6..10].copy_from_slice(&u32::MAX.to_le_bytes()); // 4 TiB of Argon2 memory
    for garbage in [
        &b"CFKY garbage"[..],
        &[0u8; 2000][..],
        &damaged[..],
        &[][..],
    ] {
        let e = env
            .store
            .replace_key(&laptop, &hash(&old), garbage)
            .unwrap_err();
        assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    }
    assert_eq!(stored(&env, &pc), old);
}

#[test]
fn there_is_nothing_to_replace_before_the_first_enrolment() {
    let env = Env::new();
    let laptop = env.subscriber("asso", GIB, "laptop", Role::Admin);
    let e = env
        .store
        .replace_key(&laptop, &[0; 32], &wrap("new passphrase"))
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert_eq!(env.store.key(&laptop).unwrap(), None);
    assert!(!key_path(&env, &laptop).exists());
}

#[test]
fn a_revoked_admin_device_changes_nothing() {
    let (env, pc, laptop, old) = enrolled();
    env.store.revoke_device("asso", "laptop").unwrap();
    let e = env
        .store
        .replace_key(&laptop, &hash(&old), &wrap("new passphrase"))
        .unwrap_err();
    assert!(matches!(e, Error::Revoked { .. }), "{e:?}");
    assert_eq!(stored(&env, &pc), old);
}

/// Two technicians change the passphrase at the same instant, from the same
/// key file: one wins, the other is told of the conflict, and the catalogue
/// and the file hold the winner's key file, whole.
#[test]
fn of_two_technicians_at_once_one_wins_and_the_other_gets_a_conflict() {
    for _ in 0..20 {
        let (env, pc, laptop, old) = enrolled();
        let laptop2 = env.device("asso", "laptop-2", Role::Admin);
        let env = Arc::new(env);
        let start = Arc::new(Barrier::new(2));
        let tries: Vec<_> = [(laptop.clone(), "passphrase A"), (laptop2, "passphrase B")]
            .into_iter()
            .map(|(s, pass)| {
                let (env, start, old) = (env.clone(), start.clone(), old.clone());
                std::thread::spawn(move || {
                    let new = wrap(pass);
                    start.wait();
                    (env.store.replace_key(&s, &hash(&old), &new), new)
                })
            })
            .collect();
        let results: Vec<_> = tries.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<&Vec<u8>> = results
            .iter()
            .filter(|(r, _)| r.is_ok())
            .map(|(_, new)| new)
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        let loser = results.iter().find(|(r, _)| r.is_err()).unwrap();
        assert!(
            matches!(loser.0, Err(Error::Conflict { .. })),
            "{:?}",
            loser.0
        );
        assert_eq!(&stored(&env, &pc), winners[0]);
    }
}
