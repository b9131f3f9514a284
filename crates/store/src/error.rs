//! The one error type of `coffre-store`.
//!
//! Policy (as in `coffre-core`): every variant says *what* happened in words an
//! operator or a technician understands and *what to do*. Callers match on the
//! variant, never on the text: a full quota, a full disk, a revoked device and
//! a damaged pack need different answers, so they are different variants.
//!
//! Errors about the catalogue keep SQLite's error inside [`Error::Sqlite`],
//! except the two that callers must tell apart: a catalogue locked for longer
//! than the busy timeout ([`Error::Busy`], retry later) and a full disk
//! ([`Error::StorageFull`]).

use std::io;
use std::path::{Path, PathBuf};

use coffre_core::ChunkId;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data directory has no catalogue.
    #[error(
        "no coffre data directory at {}: run `coffre-server init --data {}` first, \
         or give the right --data",
        path.display(), path.display()
    )]
    NoDataDir {
        /// The directory that was given.
        path: PathBuf,
    },

    /// A subscriber, device, snapshot or chunk does not exist (or is not this
    /// subscriber's: the two cases are indistinguishable on purpose).
    #[error("{what} not found: check the name or id (`coffre-server subscriber list`, `coffre snapshots`)")]
    NotFound {
        /// What was looked for, e.g. `subscriber "acme"`.
        what: String,
    },

    /// Something with that name or id exists already.
    #[error("{what} already exists: nothing was changed")]
    AlreadyExists {
        /// What was to be created.
        what: String,
    },

    /// What the request meant to change is no longer what the device read
    /// (another device changed it meanwhile): nothing was changed.
    #[error("{what}: nothing was changed; read it again and retry")]
    Conflict {
        /// What changed, e.g. `the key file of "asso" changed since this
        /// device read it`.
        what: String,
    },

    /// A subscriber or device name breaks the naming rule.
    #[error(
        "invalid {kind} name {name:?}: use 1 to 64 characters among A-Z a-z 0-9 . _ -, \
         starting with a letter or a digit"
    )]
    InvalidName {
        /// `"subscriber"` or `"device"`.
        kind: &'static str,
        /// The refused name.
        name: String,
    },

    /// No device has this secret: a mistyped or forged enrolment token.
    #[error(
        "unknown device: this credential is not enrolled on this server \
         (check the enrolment token, or enrol again with a new token from the administrator)"
    )]
    UnknownDevice,

    /// The device was revoked by an administrator.
    #[error(
        "device {device:?} of {subscriber:?} has been revoked: ask the administrator \
         for a new enrolment token (`coffre-server device add`)"
    )]
    Revoked {
        /// The device's subscriber.
        subscriber: String,
        /// The device.
        device: String,
    },

    /// The secret was this device's, but another replaced it: presented by
    /// a second installation of the device (a cloned disk, a token enrolled
    /// twice) or by one the operator replaced with `device reissue`.
    /// Refused, and nothing of the device changed but the count of such
    /// refusals.
    #[error("{}", superseded(subscriber, device, *since, *token, *reissued))]
    Superseded {
        /// The device's subscriber.
        subscriber: String,
        /// The device.
        device: String,
        /// When the secret was replaced (Unix seconds).
        since: i64,
        /// It was an enrolment token's secret.
        token: bool,
        /// The operator's `device reissue` replaced it.
        reissued: bool,
    },

    /// The device's role does not allow the operation.
    #[error(
        "{action} is not allowed for device {device:?}, which has the backup role \
         (it can add data, never delete it): use a device enrolled with `--role admin`"
    )]
    Forbidden {
        /// What was attempted, e.g. `forgetting a snapshot`.
        action: &'static str,
        /// The device that tried.
        device: String,
    },

    /// Storing this would exceed the subscriber's quota. Nothing already stored
    /// is touched.
    #[error(
        "quota exceeded: {used} bytes used of a quota of {quota} bytes, and {needed} more bytes \
         are needed: nothing already stored is affected; ask the administrator to raise the quota \
         (`coffre-server subscriber set NAME --quota SIZE`) or to forget old snapshots"
    )]
    QuotaExceeded {
        /// Bytes counted against the quota now (stored plus in open packs).
        used: u64,
        /// The quota.
        quota: u64,
        /// Bytes the refused operation needed.
        needed: u64,
    },

    /// A snapshot refers to chunks the server does not hold for this
    /// subscriber; it was not committed.
    #[error(
        "the snapshot refers to {count} chunk(s) the server does not have (the first is {first}): \
         the snapshot was not saved; upload the missing chunks and commit again (running the backup \
         again does this)"
    )]
    MissingChunks {
        /// How many ids are missing.
        count: u64,
        /// The first missing id.
        first: ChunkId,
    },

    /// The request is malformed (a damaged blob or manifest, a wrong device
    /// name, an oversized key file...).
    #[error("bad request: {0}")]
    BadRequest(String),

    /// Stored data is damaged or inconsistent.
    #[error("stored data is damaged: {0}: run `coffre-server verify` and restore the data directory from a copy if it reports damage")]
    Corrupt(String),

    /// The disk (or the file system quota) is full. Nothing already stored is
    /// lost; the operation was not done.
    #[error(
        "the server's disk is full (writing {}): nothing already stored is lost; \
         free space or grow the disk, then retry",
        path.display()
    )]
    StorageFull {
        /// The file being written.
        path: PathBuf,
    },

    /// Another process held the catalogue's write lock for longer than the
    /// busy timeout.
    #[error(
        "the catalogue {} stayed locked by another process for more than 10 seconds: retry; \
         if it lasts, look for a stuck coffre-server process",
        path.display()
    )]
    Busy {
        /// The catalogue file.
        path: PathBuf,
    },

    /// Another garbage collection holds the data directory's GC lock.
    #[error(
        "another garbage collection is running on this data directory (the daemon's nightly \
         one, or another `coffre-server gc`): wait for it to end, then retry"
    )]
    GcRunning,

    /// An input/output error other than a full disk.
    #[error("input/output error on {}: {source}: check the disk and its permissions, then retry", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// The object store holding the packs failed or could not be reached
    /// (after retries). Nothing local was changed by the failed operation.
    #[error(
        "the object store at {location} is unreachable or refused the request ({action}): \
         {message}: check that it is running and reachable from this server, and that the \
         bucket and credentials in config.toml are right, then retry"
    )]
    ObjectStore {
        /// The endpoint and object (never a credential).
        location: String,
        /// What was being done: `storing`, `reading`, `deleting`, `listing`...
        action: &'static str,
        /// The object store client's error.
        message: String,
    },

    /// Another process holds the data directory's daemon lock
    /// ([`crate::DaemonLock`]): the daemon runs, or a command that must not
    /// run beside it. Nothing was changed.
    #[error(
        "{holder} (pid {}) is running on {}: {}; nothing was changed",
        pid.map_or_else(|| "unknown".to_string(), |p| p.to_string()),
        data.display(),
        if *daemon {
            "stop it first (systemctl stop coffre-server)"
        } else {
            "wait for it to end, then retry"
        }
    )]
    DataDirInUse {
        /// The data directory.
        data: PathBuf,
        /// Who holds it: [`crate::DAEMON`] or a command.
        holder: String,
        /// Its process id, if it could be read.
        pid: Option<u32>,
        /// Whether the holder is the daemon (then stop it; else wait).
        daemon: bool,
    },

    /// A stored object a device asked for (a chunk, a manifest) could not be
    /// read back: damaged, missing or unreadable. `object` names it in words
    /// a member may read ("chunk ab12cd34"); `cause` has the details for the
    /// operator (paths, advice), which never go to the device.
    #[error("{object} cannot be read: {cause}")]
    Unreadable {
        /// What was asked for: `chunk <short id>`, `snapshot <short id>`.
        object: String,
        /// What went wrong ([`Error::Corrupt`], [`Error::Io`],
        /// [`Error::ObjectStore`]).
        cause: Box<Error>,
    },

    /// The subscriber is served by another frontend of the service now
    /// (issue 22): it was taken over or moved. Nothing was changed here.
    #[error(
        "the backups of {subscriber:?} are now kept by the server {frontend:?}{}: \
         connect there (the enrolment is the same)",
        address.as_deref().map(|a| format!(" at {a}")).unwrap_or_default()
    )]
    Moved {
        /// The subscriber.
        subscriber: String,
        /// The frontend that serves it now.
        frontend: String,
        /// That frontend's public address, if its record gives one.
        address: Option<String>,
    },

    /// A catalogue (SQLite) error.
    #[error("catalogue error: {0}: retry; if it persists, run `coffre-server verify`")]
    Sqlite(#[from] rusqlite::Error),

    /// The catalogue was written by a newer coffre-server.
    #[error(
        "the catalogue has schema version {found}, but this coffre-server knows versions up to \
         {supported}: upgrade coffre-server (a catalogue is never downgraded)"
    )]
    UnsupportedSchema {
        /// The version found in the catalogue.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
}

/// The message of [`Error::Superseded`]: what happened, and what to do.
fn superseded(subscriber: &str, device: &str, since: i64, token: bool, reissued: bool) -> String {
    let date = coffre_core::utc_minute(since);
    if reissued {
        format!(
            "the credential of device {device:?} of {subscriber:?} was replaced by the operator on \
             {date} (`coffre-server device reissue`): this installation is no longer the device; \
             enrol this PC again with the new token (`coffre enrol TOKEN --force`)"
        )
    } else if token {
        format!(
            "this enrolment token was already used to enrol device {device:?} of {subscriber:?} \
             on {date}: a token works once; ask the operator for a new one \
             (`coffre-server device reissue {subscriber} {device}`)"
        )
    } else {
        format!(
            "the credential of device {device:?} of {subscriber:?} was replaced by another \
             installation of it on {date}: if this PC's disk was cloned or restored from an \
             image, ask the operator for a new token (`coffre-server device reissue \
             {subscriber} {device}`)"
        )
    }
}

/// Result alias of the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error about `path`; a full disk or file-system quota becomes
    /// [`Error::StorageFull`].
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        if is_storage_full(&source) {
            Error::StorageFull {
                path: path.to_path_buf(),
            }
        } else {
            Error::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }

    /// A "not found" error.
    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// Wraps an error met reading stored `object` (see
    /// [`Error::Unreadable`]); other errors are returned as they are.
    pub(crate) fn reading(self, object: impl FnOnce() -> String) -> Self {
        match self {
            Error::Corrupt(_) | Error::Io { .. } | Error::ObjectStore { .. } => Error::Unreadable {
                object: object(),
                cause: Box::new(self),
            },
            other => other,
        }
    }

    /// Whether retrying the same operation later may succeed (a locked
    /// catalogue, a full disk, a transient I/O error).
    pub fn is_retryable(&self) -> bool {
        if let Error::Unreadable { cause, .. } = self {
            return cause.is_retryable();
        }
        matches!(
            self,
            Error::Busy { .. }
                | Error::StorageFull { .. }
                | Error::Io { .. }
                | Error::GcRunning
                | Error::ObjectStore { .. }
        )
    }

    /// Maps SQLite errors that callers must tell apart (busy, full disk) to
    /// their own variants; `path` is the catalogue's.
    pub(crate) fn at_catalogue(self, path: &Path) -> Self {
        use rusqlite::ErrorCode;
        match &self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => match e.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Error::Busy {
                    path: path.to_path_buf(),
                },
                ErrorCode::DiskFull => Error::StorageFull {
                    path: path.to_path_buf(),
                },
                _ => self,
            },
            _ => self,
        }
    }
}

fn is_storage_full(e: &io::Error) -> bool {
    const ENOSPC: i32 = 28;
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || (cfg!(unix) && e.raw_os_error() == Some(ENOSPC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_is_its_own_variant() {
        let e = Error::io(
            Path::new("/data/x.pack"),
            io::Error::from(io::ErrorKind::StorageFull),
        );
        assert!(matches!(e, Error::StorageFull { .. }), "{e:?}");
        assert!(e.to_string().contains("/data/x.pack"), "{e}");
        let e = Error::io(Path::new("/d"), io::Error::from(io::ErrorKind::NotFound));
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
    }

    #[test]
    fn busy_and_full_catalogue_are_mapped() {
        let sqlite = |code| {
            Error::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        let p = Path::new("/d/catalog.sqlite");
        assert!(matches!(
            sqlite(rusqlite::ffi::SQLITE_BUSY).at_catalogue(p),
            Error::Busy { .. }
        ));
        assert!(matches!(
            sqlite(rusqlite::ffi::SQLITE_FULL).at_catalogue(p),
            Error::StorageFull { .. }
        ));
        assert!(matches!(
            sqlite(rusqlite::ffi::SQLITE_CORRUPT).at_catalogue(p),
            Error::Sqlite(_)
        ));
    }
}
