//! Device credentials: a new device's first secret ([`Store::add_device`]),
//! who a secret is ([`Store::authenticate`]), and how a device's secret rolls so that one installation only is the device
//! (issue 17, "one installation per device").
//!
//! A device has one current secret at a time: its enrolment token's at
//! first. A client of protocol version 3 rolls it once per run: it makes a
//! new random secret and sends it in `Rekey` ([`Store::rekey`]: recorded as
//! pending), saves it, then sends the same `Rekey` again, which makes it
//! current and retires every other secret of the device. An `Auth` with a
//! pending secret makes it current too (the client saved it and lost the
//! connection before confirming); an `Auth` with the current one is
//! accepted (the client lost the connection before saving the new one).
//! An `Auth` with a retired secret is refused ([`Error::Superseded`]) and
//! counted on the device: that is a second installation (a cloned disk, a
//! token enrolled twice), or one the operator replaced with
//! [`Store::reissue_device`]. The refusal changes nothing else: the real
//! PC's snapshots, status and retention stay its own.
//!
//! The catalogue keeps only hashes (BLAKE3 of the secret), in
//! `catalog/credentials.rs`, which also bounds how many pending and
//! retired hashes a device keeps. A session installs at most one new
//! secret, so a device rolls at most once per connection.

use crate::catalog::{Installed, Presented};
use crate::error::{Error, Result};
use crate::pending::lock;
use crate::store::Store;
use crate::types::{check_name, Role, Session};

impl Store {
    /// Enrols a device and returns its new random secret (for the enrolment
    /// token). Only `BLAKE3(secret)` is kept: the secret cannot be shown again.
    pub fn add_device(&self, subscriber: &str, device: &str, role: Role) -> Result<[u8; 32]> {
        check_name("device", device)?;
        let secret = self.new_secret()?;
        let hash = secret_hash(&secret);
        self.catalog
            .insert_device(subscriber, device, role, &hash, self.now())?;
        self.save_account(self.catalog.subscriber_id_of(subscriber)?)?;
        Ok(secret)
    }

    /// Finds the device holding `secret`: its current secret, or a pending
    /// one (which becomes current). A retired secret is
    /// [`Error::Superseded`] (and the refusal is counted on its device), a
    /// revoked device's [`Error::Revoked`], any other
    /// [`Error::UnknownDevice`].
    pub fn authenticate(&self, secret: &[u8; 32]) -> Result<Session> {
        let hash = secret_hash(secret);
        let row = match self.catalog.device_by_secret(&hash)? {
            Some(row) => row,
            None => match self.catalog.present_secret(&hash, self.now())? {
                Presented::Promoted(row) => {
                    self.save_account(row.subscriber_id)?;
                    row
                }
                Presented::Revoked(row) => row,
                Presented::Retired {
                    row,
                    since,
                    token,
                    reissued,
                } => {
                    return Err(Error::Superseded {
                        subscriber: row.subscriber,
                        device: row.device,
                        since,
                        token,
                        reissued,
                    })
                }
                Presented::Unknown => {
                    // A device of a structure another frontend took over
                    // is told where it went (issue 22).
                    if let Some((_, name, frontend)) = self.catalog.moved_by_secret(&hash)? {
                        return Err(self.moved_error(&name, &frontend));
                    }
                    return Err(Error::UnknownDevice);
                }
            },
        };
        if row.revoked {
            return Err(Error::Revoked {
                subscriber: row.subscriber,
                device: row.device,
            });
        }
        Ok(Session {
            subscriber_id: row.subscriber_id,
            subscriber: row.subscriber,
            device_id: row.device_id,
            device: row.device,
            role: row.role,
            token: self.pending.new_token(),
            writer: Default::default(),
            rekeyed: Default::default(),
        })
    }

    /// A `Rekey` of the session's device with `secret`, a new random secret
    /// the client made: the first time, it is recorded as pending (false);
    /// sent again, it becomes the device's current secret and every other
    /// one is retired (true). A session installs one secret at most; a
    /// secret that is or was another's (or this device's retired one) is
    /// refused: make another.
    pub fn rekey(&self, s: &Session, secret: &[u8; 32]) -> Result<bool> {
        let hash = secret_hash(secret);
        let mut rekeyed = lock(&s.rekeyed);
        if rekeyed.is_some_and(|h| h != hash) {
            return Err(Error::BadRequest(
                "this connection already installed a new credential: a connection installs \
                 one (confirm it by sending it again, or connect again for another)"
                    .into(),
            ));
        }
        let outcome = self
            .catalog
            .install_secret(s.device_id, &hash, self.now())?;
        let current = match outcome {
            Installed::Pending => false,
            Installed::Current => true,
            Installed::Taken => {
                return Err(Error::BadRequest(
                    "this credential is or was in use: make a new random one".into(),
                ))
            }
            Installed::Revoked => {
                return Err(Error::Revoked {
                    subscriber: s.subscriber.clone(),
                    device: s.device.clone(),
                })
            }
        };
        if !current {
            *rekeyed = Some(hash);
        }
        drop(rekeyed);
        // The account file keeps the current and pending hashes, so that a
        // rebuilt catalogue locks no PC out.
        self.save_account(s.subscriber_id)?;
        Ok(current)
    }

    /// Gives a device a new random secret (for a new enrolment token) and
    /// retires every earlier one: the installation that held one is refused
    /// from its next connection ([`Error::Superseded`], "replaced by the
    /// operator"). Its snapshots and history stay. Refused for a revoked
    /// device.
    pub fn reissue_device(&self, subscriber: &str, device: &str) -> Result<[u8; 32]> {
        let secret = self.new_secret()?;
        let sub =
            self.catalog
                .reissue_secret(subscriber, device, &secret_hash(&secret), self.now())?;
        self.save_account(sub)?;
        Ok(secret)
    }

    /// 32 bytes from the system's random number generator: a device secret.
    pub(crate) fn new_secret(&self) -> Result<[u8; 32]> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| Error::Io {
            path: self.data_dir().to_path_buf(),
            source: std::io::Error::other(format!(
                "the system random number generator failed: {e}"
            )),
        })?;
        Ok(secret)
    }
}

/// What the catalogue keeps of a secret: its BLAKE3 hash.
pub(crate) fn secret_hash(secret: &[u8; 32]) -> [u8; 32] {
    *blake3::hash(secret).as_bytes()
}
