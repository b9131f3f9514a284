//! The subscriber's key file (the master key wrapped by the structure's
//! passphrase, `CFKY`, docs/format.md): stored once by the first device to
//! enrol, read by every later one, and replaced by an admin device that
//! changes the passphrase.
//!
//! It is kept twice: in the catalogue (`keys`, what `GetKey` serves) and as
//! the file `subscribers/<id>/key` (what a catalogue rebuild reads back,
//! invariant 9). Every write takes the subscriber's commit lock and writes
//! the file first (temp, fsync, rename, fsync folder), then the row, so that
//! a row the server acknowledged always has its file: a crash between the
//! two leaves the file ahead of the row, for a request that was never
//! acknowledged (the device retries; the next write makes them agree).
//!
//! The server checks that a key file is one (its header and Argon2
//! parameters), never what it holds: it cannot, without the passphrase
//! (invariant 1).

use coffre_core::keyfile::KEY_FILE_LEN;
use coffre_core::KeyFile;

use crate::catalog::KeySwap;
use crate::durable;
use crate::error::{Error, Result};
use crate::layout::{subscriber_object, KEY_FILE};
use crate::pending::lock;
use crate::store::Store;
use crate::types::{Role, Session};

/// The largest key file accepted.
pub const MAX_KEY_FILE: usize = 1024;

/// Refuses bytes that are not a key file: over [`MAX_KEY_FILE`], or whose
/// header or Argon2 parameters `KeyFile::from_bytes` refuses.
fn check(key_file: &[u8]) -> Result<()> {
    if key_file.len() > MAX_KEY_FILE {
        return Err(Error::BadRequest(format!(
            "a key file of {} bytes is refused: a key file has {KEY_FILE_LEN} bytes",
            key_file.len()
        )));
    }
    KeyFile::from_bytes(key_file)
        .map_err(|e| Error::BadRequest(format!("the key file is not valid: {e}")))?;
    Ok(())
}

impl Store {
    /// Stores the subscriber's key file (the master key wrapped by the
    /// passphrase), once: the first device to enrol does it. Storing the same
    /// bytes again succeeds; different bytes are [`Error::AlreadyExists`].
    /// The key file is kept both in the catalogue and as
    /// `subscribers/<id>/key`.
    pub fn put_key(&self, s: &Session, key_file: &[u8]) -> Result<()> {
        check(key_file)?;
        let state = self.pending.subscriber(s.subscriber_id);
        let _commit = lock(&state.commit);
        let exists = |stored: &[u8]| {
            if stored == key_file {
                Ok(())
            } else {
                Err(Error::AlreadyExists {
                    what: format!(
                        "a key file for {:?} (another device created it: enrol with that \
                         subscriber's passphrase)",
                        s.subscriber
                    ),
                })
            }
        };
        if let Some(stored) = self.catalog.key(s.subscriber_id)? {
            return exists(&stored);
        }
        self.write_key_file(s.subscriber_id, key_file)?;
        match self.catalog.insert_key(s.subscriber_id, key_file)? {
            None => Ok(()),
            Some(stored) => exists(&stored),
        }
    }

    /// The subscriber's key file, if a device stored one.
    pub fn key(&self, s: &Session) -> Result<Option<Vec<u8>>> {
        self.catalog.key(s.subscriber_id)
    }

    /// The key file of the subscriber called `name`, if a device stored one
    /// (for the server's own work and its tests: a device reads its own with
    /// [`Store::key`]).
    pub fn key_of(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let sub = self.catalog.subscriber_id_of(name)?;
        self.catalog.key(sub)
    }

    /// Replaces the subscriber's key file with `key_file` (the same master
    /// key wrapped under a new passphrase: `coffre key passwd`), if BLAKE3 of
    /// the key file the server holds is `expected`.
    ///
    /// - Admin devices only: a backup device gets [`Error::Forbidden`], and a
    ///   device revoked meanwhile [`Error::Revoked`].
    /// - `key_file` is checked as [`Store::put_key`] checks it
    ///   ([`Error::BadRequest`]).
    /// - No key file yet is [`Error::NotFound`]; another one than `expected`
    ///   (a second technician replaced it first) is [`Error::Conflict`].
    ///   Either way nothing is changed.
    /// - The key file it holds already (a retry of a replace whose answer
    ///   was lost) succeeds, whatever `expected`.
    ///
    /// Written like `put_key` (see the module doc): the file, then the row
    /// by a compare-and-swap, both in the subscriber's commit lock. A
    /// catalogue rebuild afterwards finds the new key file.
    pub fn replace_key(&self, s: &Session, expected: &[u8; 32], key_file: &[u8]) -> Result<()> {
        if s.role != Role::Admin {
            return Err(Error::Forbidden {
                action: "changing the structure's passphrase",
                device: s.device.clone(),
            });
        }
        check(key_file)?;
        let state = self.pending.subscriber(s.subscriber_id);
        let _commit = lock(&state.commit);
        let conflict = || Error::Conflict {
            what: format!(
                "the key file of {:?} changed since this device read it (another admin device \
                 replaced it meanwhile)",
                s.subscriber
            ),
        };
        let Some(current) = self.catalog.key(s.subscriber_id)? else {
            return Err(Error::not_found(format!(
                "a key file of {:?} to replace (no device has enrolled yet)",
                s.subscriber
            )));
        };
        // Already done: a retry of a replace whose answer was lost.
        if current == key_file {
            return Ok(());
        }
        if blake3::hash(&current).as_bytes() != expected {
            return Err(conflict());
        }
        self.write_key_file(s.subscriber_id, key_file)?;
        let swap = self
            .catalog
            .replace_key(s.subscriber_id, s.device_id, &current, key_file);
        match swap {
            Ok(KeySwap::Replaced) => Ok(()),
            // Refused after the file was written: put the catalogue's back,
            // so that the file and the row agree again.
            Ok(KeySwap::Revoked) => {
                self.write_key_file(s.subscriber_id, &current)?;
                Err(Error::Revoked {
                    subscriber: s.subscriber.clone(),
                    device: s.device.clone(),
                })
            }
            Ok(KeySwap::Changed(stored)) => {
                if let Some(stored) = stored {
                    self.write_key_file(s.subscriber_id, &stored)?;
                }
                Err(conflict())
            }
            Err(e) => {
                // The row was not changed (one transaction): the file goes
                // back too, if it can; the request fails either way.
                let _ = self.write_key_file(s.subscriber_id, &current);
                Err(e)
            }
        }
    }

    /// Writes `subscribers/<id>/key` durably (temp, fsync, rename, fsync
    /// folder), creating the subscriber's folder if needed.
    fn write_key_file(&self, subscriber_id: i64, key_file: &[u8]) -> Result<()> {
        let path = self.key_path(subscriber_id);
        let dir = self.subscriber_dir(subscriber_id);
        durable::create_dir_all(&dir)
            .and_then(|()| durable::write_atomic(&path, key_file))
            .map_err(|e| Error::io(&path, e))?;
        // And into the bucket (issue 22): another frontend may serve this
        // subscriber tomorrow, from the bucket alone.
        self.mirror(&subscriber_object(subscriber_id, KEY_FILE), Some(key_file))
    }
}
