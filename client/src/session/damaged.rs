//! A snapshot whose manifest this PC cannot read, and why.
//!
//! The server reads only a manifest's public part (it has no key: invariant
//! 1), so any device of the subscriber, a compromised one or a broken one,
//! can commit a manifest whose private part does not open with the
//! structure's key: sealed under another key, or with a flipped byte. One
//! such manifest must not take the subscriber down. [`open`] turns a
//! manifest that fails to open into a [`Damaged`] (its id, its device, its
//! time and the [`Reason`]) instead of an error, and each command decides
//! what it means: `snapshots` lists it as damaged, `latest` skips it (and
//! says so), `find` and `check` go on past it, the backup takes nothing from
//! it; only the commands that need its contents (`ls`, `restore`, `diff`,
//! `dump` of that very snapshot) fail, with [`Damaged`]'s message, which
//! names the device.

use std::fmt;

use coffre_core::{ChunkId, Error, Manifest, Timestamp};
use coffre_proto::{ErrorCode, SnapshotEntry};

use crate::display::local_time;
use crate::remote::RemoteError;

/// Why a manifest does not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Its private part fails authentication under this structure's key:
    /// sealed under another key, or altered after sealing.
    Undecryptable,
    /// It decrypts (or its public part does not parse) but its contents are
    /// not a valid manifest.
    Malformed(String),
    /// A format version this coffre does not read (a newer coffre wrote it).
    Newer(String),
    /// The server listed it but cannot serve it (its stored copy is
    /// damaged, or it was deleted since the list was read).
    Unavailable(String),
}

impl Reason {
    /// A short machine name, for JSON: "undecryptable", "malformed", "newer-version".
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Undecryptable => "undecryptable",
            Reason::Malformed(_) => "malformed",
            Reason::Newer(_) => "newer-version",
            Reason::Unavailable(_) => "unavailable",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Undecryptable => f.write_str("does not decrypt with this structure's key"),
            Reason::Malformed(e) => write!(f, "is not a valid manifest ({e})"),
            Reason::Newer(e) => write!(f, "cannot be read by this coffre ({e})"),
            Reason::Unavailable(e) => write!(f, "cannot be fetched from the server ({e})"),
        }
    }
}

/// A snapshot whose manifest does not open. Its message names the device
/// that made it and says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    /// The snapshot.
    pub id: ChunkId,
    /// The device that committed it (the server checks that a manifest's
    /// public part names the device that commits it), or "?" if even the
    /// public part is unreadable.
    pub device: String,
    /// The time its public part gives, if it could be read.
    pub time: Option<Timestamp>,
    /// Why it does not open.
    pub reason: Reason,
}

impl Damaged {
    /// "damaged: does not decrypt with this structure's key - made by device pc-x".
    pub fn summary(&self) -> String {
        format!("damaged: {} - made by device {}", self.reason, self.device)
    }
}

impl fmt::Display for Damaged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = self
            .time
            .map(|t| format!(" of {}", local_time(t.secs)))
            .unwrap_or_default();
        write!(
            f,
            "snapshot {}{when} is damaged: its manifest {} - made by device {}. \
             Its files cannot be read; the other snapshots can (`coffre snapshots` \
             lists them): tell your technician, who can delete it with `coffre forget`",
            self.id.short(),
            self.reason,
            self.device
        )
    }
}

impl std::error::Error for Damaged {}

/// A snapshot of the server's list whose manifest the server refused to
/// send (`code`: the server's error), as damaged; None for the errors that
/// are not about this manifest (the connection, the device), which fail the
/// command as before.
pub fn unavailable(entry: &SnapshotEntry, e: &RemoteError) -> Option<Damaged> {
    let why = match e.code()? {
        ErrorCode::Internal => "the server cannot read its stored copy; its operator has been told",
        ErrorCode::NotFound => "deleted on the server since the list was read",
        _ => return None,
    };
    Some(Damaged {
        id: ChunkId::from_bytes(entry.id),
        device: entry.device.clone(),
        // Unknown: the server's list has the second it received it, not
        // the time the PC wrote.
        time: None,
        reason: Reason::Unavailable(why.to_string()),
    })
}

/// Opens the manifest `bytes` of snapshot `id` with `keys`, or says why it
/// does not open.
pub fn open(keys: &coffre_core::Keys, id: &ChunkId, bytes: &[u8]) -> Result<Manifest, Damaged> {
    let e = match Manifest::open(keys, bytes) {
        Ok(m) => return Ok(m),
        Err(e) => e,
    };
    let public = Manifest::read_public(bytes).ok().map(|(p, _)| p);
    let reason = match &e {
        Error::UnsupportedVersion { .. } => Reason::Newer(e.to_string()),
        // The one failure of the AEAD (manifest.rs, `Manifest::open`).
        Error::Corrupt { detail, .. }
            if public.is_some() && detail.starts_with("authentication failed") =>
        {
            Reason::Undecryptable
        }
        _ => Reason::Malformed(e.to_string()),
    };
    Err(Damaged {
        id: *id,
        device: public
            .as_ref()
            .map_or_else(|| "?".to_string(), |p| p.device.clone()),
        time: public.map(|p| p.time),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_core::{snapshot_id, Keys, MasterKey};

    fn keys(b: u8) -> Keys {
        Keys::derive(&MasterKey::from_bytes([b; 32]))
    }

    fn sealed(k: &Keys) -> Vec<u8> {
        let t = Timestamp { secs: 77, nanos: 5 };
        Manifest::bare("pc-x", t, vec![]).seal(k).unwrap()
    }

    #[test]
    fn another_key_and_a_flipped_byte_are_undecryptable_and_name_the_device() {
        let mine = keys(1);
        let good = sealed(&mine);
        let id = snapshot_id(&good);
        assert!(open(&mine, &id, &good).is_ok());

        let other = sealed(&keys(2));
        let d = open(&mine, &snapshot_id(&other), &other).unwrap_err();
        assert_eq!(d.reason, Reason::Undecryptable);
        assert_eq!(d.device, "pc-x");
        assert_eq!(d.time, Some(Timestamp { secs: 77, nanos: 5 }));
        assert_eq!(
            d.summary(),
            "damaged: does not decrypt with this structure's key - made by device pc-x"
        );
        assert!(d.to_string().contains("made by device pc-x"), "{d}");

        let mut flipped = good.clone();
        let n = flipped.len();
        flipped[n - 20] ^= 1;
        let d = open(&mine, &snapshot_id(&flipped), &flipped).unwrap_err();
        assert_eq!(d.reason, Reason::Undecryptable);
    }

    #[test]
    fn an_unreadable_public_part_is_malformed_from_an_unknown_device() {
        let d = open(&keys(1), &ChunkId::from_bytes([3; 32]), b"CFMF\x01garbage").unwrap_err();
        assert_eq!(d.reason.code(), "malformed");
        assert_eq!((d.device.as_str(), d.time), ("?", None));
    }
}
