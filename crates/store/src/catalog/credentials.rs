//! The catalogue's credentials section: a device's secrets besides its
//! current one (`devices.secret_hash`, looked up by `admin.rs`), as rolling
//! credentials need them (issue 17, "one installation per device"):
//!
//! - PENDING: a secret a client made and sent in `Rekey`, not confirmed
//!   yet. At most [`MAX_PENDING`] per device: the oldest goes first (it is
//!   deleted: no installation ever used it to authenticate).
//! - RETIRED: a secret another one replaced (a pending one made current, or
//!   the operator's `device reissue`). Presenting one is refused as a second
//!   installation of the device, and counted on the device. At most
//!   [`MAX_RETIRED`] per device besides the enrolment tokens' (a device that
//!   rolls its secret in a loop cannot fill the catalogue); an older one is
//!   forgotten and then refused as unknown.
//!
//! Promoting a secret (it becomes current) retires the previous current one
//! and every other pending one in the same transaction, so at any time a
//! device has exactly one current secret, and a secret is in one state only
//! (the `hash` columns are unique). Every write is one `IMMEDIATE`
//! transaction.

use rusqlite::{params, OptionalExtension, Transaction};

use super::admin::AuthRow;
use super::rows::parse_role;
use super::Catalog;
use crate::error::{Error, Result};

/// Pending secrets a device keeps at most.
pub(crate) const MAX_PENDING: i64 = 4;
/// Retired secrets a device keeps at most, besides its enrolment tokens'.
pub(crate) const MAX_RETIRED: i64 = 32;

/// What presenting a secret that is no device's current one found.
#[derive(Debug)]
pub(crate) enum Presented {
    /// A pending secret of a device, now its current one.
    Promoted(AuthRow),
    /// A retired secret: refused; the refusal is counted on its device.
    Retired {
        /// Its device.
        row: AuthRow,
        /// When it was retired (Unix seconds).
        since: i64,
        /// It was an enrolment token's.
        token: bool,
        /// The operator's `device reissue` retired it.
        reissued: bool,
    },
    /// A pending or retired secret of a revoked device: nothing changed.
    Revoked(AuthRow),
    /// No device has or had it (or it was forgotten).
    Unknown,
}

/// What a `Rekey` did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Installed {
    /// Recorded as pending.
    Pending,
    /// It is the device's current secret (it was pending: now promoted; or
    /// it already was).
    Current,
    /// Another secret, of this device or another, has this hash (its
    /// retired one, or one of another device): nothing changed.
    Taken,
    /// The device was revoked meanwhile: nothing changed.
    Revoked,
}

impl Catalog {
    /// Handles a secret that is no device's current one: promotes a pending
    /// one, counts a refusal of a retired one (at `now`).
    pub(crate) fn present_secret(&self, hash: &[u8; 32], now: i64) -> Result<Presented> {
        self.write(|tx| {
            let found = tx
                .prepare_cached(
                    "SELECT x.state, x.token, x.retired, x.reason,
                            d.subscriber_id, s.name, d.id, d.name, d.role, d.revoked
                     FROM device_secrets x
                     JOIN devices d ON d.id = x.device_id
                     JOIN subscribers s ON s.id = d.subscriber_id
                     WHERE x.hash = ?1",
                )?
                .query_row([&hash[..]], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        (
                            r.get::<_, i64>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, i64>(6)?,
                            r.get::<_, String>(7)?,
                            r.get::<_, String>(8)?,
                            r.get::<_, Option<i64>>(9)?,
                        ),
                    ))
                })
                .optional()?;
            let Some((state, token, retired, reason, device)) = found else {
                return Ok(Presented::Unknown);
            };
            let (subscriber_id, subscriber, device_id, device, role, revoked) = device;
            let row = AuthRow {
                subscriber_id,
                subscriber,
                device_id,
                device,
                role: parse_role(&role)?,
                revoked: revoked.is_some(),
            };
            if row.revoked {
                return Ok(Presented::Revoked(row));
            }
            if state == "pending" {
                promote(tx, device_id, hash, now)?;
                return Ok(Presented::Promoted(row));
            }
            tx.execute(
                "UPDATE devices SET clone_refusals = clone_refusals + 1, last_clone_refusal = ?2
                 WHERE id = ?1",
                params![device_id, now],
            )?;
            Ok(Presented::Retired {
                row,
                since: retired.unwrap_or(now),
                token,
                reissued: reason.as_deref() == Some("reissued"),
            })
        })
    }

    /// A `Rekey` of device `device_id` with a secret hashing to `hash`, at
    /// `now`: records it as pending (evicting the oldest beyond
    /// [`MAX_PENDING`]), or promotes it if it is already pending.
    pub(crate) fn install_secret(
        &self,
        device_id: i64,
        hash: &[u8; 32],
        now: i64,
    ) -> Result<Installed> {
        self.write(|tx| {
            let (current, revoked): (Vec<u8>, Option<i64>) = tx.query_row(
                "SELECT secret_hash, revoked FROM devices WHERE id = ?1",
                [device_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if revoked.is_some() {
                return Ok(Installed::Revoked);
            }
            if current == hash[..] {
                return Ok(Installed::Current);
            }
            let other: Option<(i64, String)> = tx
                .prepare_cached("SELECT device_id, state FROM device_secrets WHERE hash = ?1")?
                .query_row([&hash[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            match other {
                Some((d, state)) if d == device_id && state == "pending" => {
                    promote(tx, device_id, hash, now)?;
                    return Ok(Installed::Current);
                }
                Some(_) => return Ok(Installed::Taken),
                None => {}
            }
            let elsewhere: Option<i64> = tx
                .prepare_cached("SELECT id FROM devices WHERE secret_hash = ?1")?
                .query_row([&hash[..]], |r| r.get(0))
                .optional()?;
            if elsewhere.is_some() {
                return Ok(Installed::Taken);
            }
            tx.execute(
                "INSERT INTO device_secrets (hash, device_id, state, created)
                 VALUES (?1, ?2, 'pending', ?3)",
                params![&hash[..], device_id, now],
            )?;
            tx.execute(
                "DELETE FROM device_secrets WHERE device_id = ?1 AND state = 'pending'
                 AND id NOT IN (SELECT id FROM device_secrets
                                WHERE device_id = ?1 AND state = 'pending'
                                ORDER BY id DESC LIMIT ?2)",
                params![device_id, MAX_PENDING],
            )?;
            Ok(Installed::Pending)
        })
    }

    /// Gives device `device` of `subscriber` the new current secret `hash`
    /// (an enrolment token's), retiring every other one at `now` as
    /// reissued. Refused for a revoked device. Returns the subscriber's id.
    pub(crate) fn reissue_secret(
        &self,
        subscriber: &str,
        device: &str,
        hash: &[u8; 32],
        now: i64,
    ) -> Result<i64> {
        self.write(|tx| {
            let found: Option<(i64, i64, Option<i64>)> = tx
                .query_row(
                    "SELECT d.id, d.subscriber_id, d.revoked
                     FROM devices d JOIN subscribers s ON s.id = d.subscriber_id
                     WHERE s.name = ?1 AND d.name = ?2",
                    params![subscriber, device],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((device_id, sub, revoked)) = found else {
                return Err(Error::not_found(format!(
                    "device {device:?} of {subscriber:?}"
                )));
            };
            if revoked.is_some() {
                return Err(Error::BadRequest(format!(
                    "device {device:?} of {subscriber:?} is revoked, and a revoked device stays \
                     revoked: enrol the PC as a new device (`coffre-server device add \
                     {subscriber} NEW-NAME`); the revoked device's backups stay"
                )));
            }
            replace_current(tx, device_id, hash, true, now, "reissued")?;
            Ok(sub)
        })
    }
}

/// The hashes of device `device_id`'s pending secrets, oldest first
/// (for its subscriber's account file).
pub(super) fn pending_hashes(
    tx: &Transaction<'_>,
    device_id: i64,
) -> rusqlite::Result<Vec<Vec<u8>>> {
    tx.prepare_cached(
        "SELECT hash FROM device_secrets WHERE device_id = ?1 AND state = 'pending' ORDER BY id",
    )?
    .query_map([device_id], |r| r.get(0))?
    .collect()
}

/// Records pending secrets read from an account file (a catalogue
/// rebuild), at `now`.
pub(super) fn insert_pending(
    tx: &Transaction<'_>,
    device_id: i64,
    hashes: &[Vec<u8>],
    now: i64,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO device_secrets (hash, device_id, state, created)
         VALUES (?1, ?2, 'pending', ?3)",
    )?;
    for h in hashes {
        stmt.execute(params![h, device_id, now])?;
    }
    Ok(())
}

/// Makes the pending secret `hash` device `device_id`'s current one: the
/// previous current one and every other pending one are retired.
fn promote(tx: &Transaction<'_>, device_id: i64, hash: &[u8; 32], now: i64) -> Result<()> {
    tx.execute(
        "DELETE FROM device_secrets WHERE hash = ?1 AND device_id = ?2 AND state = 'pending'",
        params![&hash[..], device_id],
    )?;
    replace_current(tx, device_id, hash, false, now, "replaced")
}

/// Retires device `device_id`'s current secret and pending ones (as
/// `reason`, at `now`) and makes `hash` its current one (`token`: an
/// enrolment token's), then forgets the oldest retired ones beyond
/// [`MAX_RETIRED`] (enrolment tokens' excepted).
fn replace_current(
    tx: &Transaction<'_>,
    device_id: i64,
    hash: &[u8; 32],
    token: bool,
    now: i64,
    reason: &str,
) -> Result<()> {
    let (old, old_token): (Vec<u8>, bool) = tx.query_row(
        "SELECT secret_hash, secret_from_token FROM devices WHERE id = ?1",
        [device_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    tx.execute(
        "UPDATE device_secrets SET state = 'retired', retired = ?2, reason = ?3
         WHERE device_id = ?1 AND state = 'pending'",
        params![device_id, now, reason],
    )?;
    tx.execute(
        "UPDATE devices SET secret_hash = ?2, secret_from_token = ?3 WHERE id = ?1",
        params![device_id, &hash[..], token],
    )?;
    tx.execute(
        "INSERT INTO device_secrets (hash, device_id, state, token, created, retired, reason)
         VALUES (?1, ?2, 'retired', ?3, ?4, ?4, ?5)",
        params![old, device_id, old_token, now, reason],
    )?;
    tx.execute(
        "DELETE FROM device_secrets WHERE device_id = ?1 AND state = 'retired' AND token = 0
         AND id NOT IN (SELECT id FROM device_secrets
                        WHERE device_id = ?1 AND state = 'retired' AND token = 0
                        ORDER BY id DESC LIMIT ?2)",
        params![device_id, MAX_RETIRED],
    )?;
    Ok(())
}
