//! The public value types of the store: roles, sessions and the reports the
//! admin commands and the daemon print or send.

use std::fmt;
use std::str::FromStr;

use coffre_core::ChunkId;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Error, Result};

/// What a device may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Add data and read its own subscriber's data; never delete (invariant 3).
    Backup,
    /// Also forget snapshots of its subscriber.
    Admin,
}

impl Role {
    /// `"backup"` or `"admin"`, as stored and as typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Backup => "backup",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that `{:<7}` aligns tables.
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "backup" => Ok(Role::Backup),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::BadRequest(format!(
                "unknown role {s:?}: use \"backup\" or \"admin\""
            ))),
        }
    }
}

/// Whether a subscriber has a chunk, as one device sees it (dedup trust,
/// issue 17; the rule is in docs/decisions.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Presence {
    /// No copy is stored.
    Absent,
    /// A copy is stored that this device wrote, verified (vouched for), or
    /// that was written before the rule: the device may skip the chunk.
    Trusted,
    /// Only copies written by other devices, which this device has not
    /// verified: it must fetch and check one (then vouch), or upload its own.
    Untrusted,
}

/// Copies of one device that another device did not accept: it uploaded its
/// own copy after it was told of theirs (`coffre-server verify`, /metrics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dispute {
    /// The device that wrote the disputed copies (it may be compromised).
    pub writer: String,
    /// The device that uploaded its own copies instead.
    pub checker: String,
    /// How many chunk ids.
    pub chunks: u64,
}

impl fmt::Display for Dispute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "device {:?}'s copy of {} chunk(s) failed device {:?}'s check ({:?} stored its own \
             copy; both are kept): {:?} may be compromised, or {:?} runs a client older than \
             protocol 3 that does not check",
            self.writer, self.chunks, self.checker, self.checker, self.writer, self.checker
        )
    }
}

/// An authenticated device, as returned by [`Store::authenticate`]. Every
/// data-path call takes one and is scoped by its subscriber (invariant 4).
///
/// Clones are the same session: they share the session's open packs (what
/// [`Store::has_chunks`] reports as present). Only `authenticate` makes one.
///
/// [`Store::authenticate`]: crate::Store::authenticate
/// [`Store::has_chunks`]: crate::Store::has_chunks
#[derive(Debug, Clone)]
pub struct Session {
    /// The subscriber's row id (also its directory name under `subscribers/`).
    pub subscriber_id: i64,
    /// The subscriber's name.
    pub subscriber: String,
    /// The device's row id.
    pub device_id: i64,
    /// The device's name.
    pub device: String,
    /// What the device may do.
    pub role: Role,
    /// Unique per `authenticate` call within one `Store`.
    pub(crate) token: u64,
    /// The `sessions` row, made by the first call that uploads or asks which
    /// chunks exist (GC leaves the subscriber alone while it is there).
    pub(crate) writer: std::sync::Arc<std::sync::Mutex<Option<i64>>>,
    /// The hash of the secret this session installed with `Store::rekey`:
    /// one per connection.
    pub(crate) rekeyed: std::sync::Arc<std::sync::Mutex<Option<[u8; 32]>>>,
}

/// A subscriber, for `coffre-server subscriber list|show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriberInfo {
    /// Its name.
    pub name: String,
    /// Hard quota in bytes.
    pub quota_bytes: u64,
    /// Bytes stored: pack files and manifests, after dedup, compression,
    /// padding and encryption (invariant 5).
    pub used_bytes: u64,
    /// Retention policy (`last=3,daily=7,...`), or `None` for the server's
    /// default.
    pub retention: Option<String>,
    /// Snapshots kept.
    pub snapshots: u64,
    /// Devices not revoked.
    pub devices: u64,
    /// The latest successful backup of any of its devices (Unix seconds,
    /// server clock).
    pub last_backup: Option<i64>,
    /// When it was added (Unix seconds).
    pub created: i64,
    /// Who hears about its alerts besides the operator: mail addresses and
    /// webhook URLs, comma-separated (issue 20); `None` for nobody.
    pub contact: Option<String>,
}

/// A device, for `coffre-server device list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// Its subscriber's name.
    pub subscriber: String,
    /// Its name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was enrolled (Unix seconds).
    pub created: i64,
    /// When it was revoked, if it was.
    pub revoked: Option<i64>,
    /// When it last committed a snapshot (Unix seconds, server clock).
    pub last_backup: Option<i64>,
    /// Its enrolment token still works: the PC has not enrolled yet, or its
    /// client is older than protocol version 3 and keeps the token's secret.
    /// Once a client of this release has enrolled, the token is refused.
    pub token_live: bool,
    /// Connections refused because they presented a credential of this
    /// device that another had replaced: a second installation (a cloned
    /// disk, a token enrolled twice) or one replaced by `device reissue`.
    pub clone_refusals: u64,
    /// When the last of those was refused (Unix seconds).
    pub last_clone_refusal: Option<i64>,
}

/// A snapshot, for `coffre snapshots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    /// The snapshot id: BLAKE3 of its manifest (hex in JSON).
    #[serde(serialize_with = "hex_id")]
    pub id: ChunkId,
    /// When the backup started (Unix seconds, the device's clock, from the
    /// manifest): shown, never decided by.
    pub time: i64,
    /// When the server received it (Unix seconds, the server's clock): what
    /// retention sorts and buckets by (issue 17).
    pub received: i64,
    /// The device that made it.
    pub device: String,
    /// Total size of its files, as the client reported it.
    pub logical_bytes: u64,
    /// Number of files, as the client reported it.
    pub file_count: u64,
    /// Size of the manifest (counted in the quota).
    pub manifest_bytes: u64,
    /// A checkpoint: a partial snapshot of a long backup, which retention
    /// replaces by the final one (issue 19).
    pub checkpoint: bool,
}

/// What `coffre status` shows a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The device's subscriber.
    pub subscriber: String,
    /// The device.
    pub device: String,
    /// Hard quota in bytes.
    pub quota_bytes: u64,
    /// Bytes stored (sealed packs and manifests).
    pub used_bytes: u64,
    /// The subscriber's snapshots.
    pub snapshots: u64,
    /// This device's latest successful backup (Unix seconds, server clock).
    pub last_backup: Option<i64>,
}

/// One row of `coffre-server usage` (also carried in a frontend's record,
/// for the board of a service: issue 22).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// The subscriber.
    pub name: String,
    /// Hard quota in bytes.
    pub quota_bytes: u64,
    /// Bytes stored (sealed packs and manifests).
    pub used_bytes: u64,
    /// Snapshots kept.
    pub snapshots: u64,
    /// Sum of the snapshots' logical sizes: what the data would take without
    /// dedup and compression. `logical_bytes / used_bytes` is the saving ratio.
    pub logical_bytes: u64,
    /// The latest successful backup of any of its devices.
    pub last_backup: Option<i64>,
    /// Devices not revoked.
    pub devices: u64,
    /// What the subscriber's data weighs: the sum, over its devices, of the
    /// latest snapshot's logical size. `protected_bytes / used_bytes` is what
    /// dedup and compression save.
    pub protected_bytes: u64,
    /// Each device, revoked ones included, by name.
    pub device_backups: Vec<DeviceUsage>,
}

/// One device's backups, for the board.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceUsage {
    /// The device.
    pub name: String,
    /// A backup device, or a technician's admin device (which restores and
    /// manages, and is never expected to back up).
    pub role: Role,
    /// Revoked devices no longer back up (and are never "stale").
    pub revoked: bool,
    /// Its last successful backup (Unix seconds).
    pub last_backup: Option<i64>,
    /// Its snapshots kept.
    pub snapshots: u64,
    /// Its latest complete snapshot's logical size (without one, its latest
    /// checkpoint's: the files it protects so far).
    pub latest_bytes: u64,
    /// Its clock minus the server's at its last commit (seconds; `None`
    /// before its first commit since the catalogue learnt it).
    pub clock_skew: Option<i64>,
    /// Connections refused because they presented a replaced credential of
    /// this device (see [`DeviceInfo::clone_refusals`]).
    pub clone_refusals: u64,
    /// When the last of those was refused (Unix seconds).
    pub last_clone_refusal: Option<i64>,
    /// The problems its latest snapshot declares (paths missing, files
    /// unreadable, a hook failed: a count its manifest's public part
    /// carries, no names); 0 without a snapshot. Of its latest complete
    /// snapshot: a checkpoint is a run still going.
    pub latest_problems: u64,
    /// Its newest checkpoint committed after its latest complete snapshot
    /// (or with none): a long backup on its way (issue 19).
    pub checkpoint: Option<CheckpointUsage>,
    /// Its backups refused for quota since the catalogue learnt them
    /// (issue 20): requests refused, counted at most once a minute.
    pub quota_refusals: u64,
    /// When the last was refused (Unix seconds, the server's clock).
    pub last_quota_refusal: Option<i64>,
    /// How many bytes the quota lacked then: used plus what the refused
    /// request needed, minus the quota. What this one request lacked: the
    /// rest of the backup may need more.
    pub quota_missing: u64,
    /// When the last refusal came after its last commit (the refused backup
    /// never finished): the bytes it uploaded since that commit, still
    /// counted in the quota and kept so that the backup resumes where it
    /// stopped (freed by garbage collection after its grace period if it
    /// never does). 0 otherwise.
    pub leftover_bytes: u64,
}

impl DeviceUsage {
    /// A backup device of this name with nothing recorded yet (tests and
    /// examples fill in what they need).
    pub fn named(name: &str) -> DeviceUsage {
        DeviceUsage {
            name: name.to_string(),
            role: Role::Backup,
            revoked: false,
            last_backup: None,
            snapshots: 0,
            latest_bytes: 0,
            clock_skew: None,
            clone_refusals: 0,
            last_clone_refusal: None,
            latest_problems: 0,
            checkpoint: None,
            quota_refusals: 0,
            last_quota_refusal: None,
            quota_missing: 0,
            leftover_bytes: 0,
        }
    }

    /// Whether its last backup was refused for quota and it has committed
    /// nothing since (neither a snapshot nor a checkpoint).
    pub fn refused_unfinished(&self) -> bool {
        let last_commit = self.last_backup.max(self.checkpoint.map(|c| c.received));
        match (self.last_quota_refusal, last_commit) {
            (Some(r), Some(c)) => r >= c,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// A device's newest checkpoint, for the board: a backup in progress.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckpointUsage {
    /// When the server received it (Unix seconds, its clock).
    pub received: i64,
    /// The logical size of the files it holds: what is backed up so far.
    pub bytes: u64,
    /// How many files it holds.
    pub files: u64,
}

fn hex_id<S: Serializer>(id: &ChunkId, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_hex())
}

/// The longest subscriber or device name.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a subscriber or device name: 1 to 64 characters among
/// `A-Z a-z 0-9 . _ -`, starting with a letter or a digit (so a name is never
/// `.`, `..`, a hidden file or a command-line option).
pub(crate) fn check_name(kind: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            kind,
            name: name.chars().take(80).collect(),
        })
    }
}

/// Checks a retention policy such as `last=3,daily=7,weekly=4,monthly=12` and
/// returns its canonical form (see [`crate::retention::Policy`]), or `None`
/// for `default` (the server's default policy).
pub(crate) fn canonical_retention(policy: &str) -> Result<Option<String>> {
    if policy.trim() == "default" {
        return Ok(None);
    }
    crate::retention::Policy::parse(policy)
        .map(|p| Some(p.to_string()))
        .map_err(|e| Error::BadRequest(e.0))
}

/// The last run of a maintenance task, for `/metrics` and `usage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaintenanceRun {
    /// `"prune"` or `"gc"`.
    pub task: String,
    /// When it started (Unix seconds).
    pub started: i64,
    /// How long it took.
    pub seconds: f64,
    /// Whether it ended without error.
    pub ok: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "acme", "Acme-Compta_2.0", "0", &"x".repeat(64)] {
            check_name("subscriber", ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-rf",
            "a b",
            "a/b",
            "é",
            "a\0",
            &"x".repeat(65),
        ] {
            let e = check_name("device", bad).unwrap_err();
            assert!(matches!(e, Error::InvalidName { .. }), "{bad:?}");
            assert!(e.to_string().contains("1 to 64"), "{e}");
        }
    }

    #[test]
    fn roles_round_trip_and_pad() {
        for r in [Role::Backup, Role::Admin] {
            assert_eq!(r.to_string().parse::<Role>().unwrap(), r);
        }
        assert_eq!(format!("{:<7}|", Role::Admin), "admin  |");
        assert!("root".parse::<Role>().is_err());
        assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), "\"admin\"");
    }

    #[test]
    fn retention_policies() {
        assert_eq!(
            canonical_retention("monthly=12, last=3,daily=7").unwrap(),
            Some("last=3,daily=7,monthly=12".into())
        );
        assert_eq!(canonical_retention("default").unwrap(), None);
        for bad in ["", "last", "last=0", "last=x", "often=3", "last=1,last=2"] {
            let e = canonical_retention(bad).unwrap_err();
            assert!(e.to_string().contains("daily=7"), "{e}");
        }
    }
}
