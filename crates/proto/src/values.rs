//! The values messages carry beside ids, integers and byte strings: a
//! device's [`Role`], a [`SnapshotEntry`] of a snapshot list, and the
//! [`ErrorReply`] of a refusal. Their encoding is in `message/`, their
//! place in a message in the table of `types.rs`.

use std::fmt;

use crate::caps::{Id, MAX_ERROR_MESSAGE_LEN};
use crate::error_code::ErrorCode;
use crate::show::Hex;

pub use crate::chunk_state::ChunkState;

/// What a device may do, as the server tells it in [`crate::Response::AuthOk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Adds data and reads its subscriber's data; cannot delete anything.
    Backup,
    /// Also forgets snapshots: a technician's device.
    Admin,
}

impl Role {
    /// The byte on the wire.
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Role::Backup => 1,
            Role::Admin => 2,
        }
    }

    /// The role of a byte on the wire, `None` for an unknown one.
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Role::Backup),
            2 => Some(Role::Admin),
            _ => None,
        }
    }

    /// `"backup"` or `"admin"`, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Backup => "backup",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of [`crate::Response::Snapshots`].
#[derive(Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The snapshot id.
    pub id: Id,
    /// When the snapshot was taken, as the client reported it (seconds since
    /// the Unix epoch, UTC).
    pub time: i64,
    /// The device that made it, at most [`crate::MAX_NAME_LEN`] bytes.
    pub device: String,
    /// Bytes of file data the snapshot covers, before dedup and compression,
    /// as the client reported it.
    pub logical_bytes: u64,
    /// Number of files, as the client reported it.
    pub file_count: u64,
}

impl fmt::Debug for SnapshotEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotEntry")
            .field("id", &Hex(&self.id))
            .field("time", &self.time)
            .field("device", &self.device)
            .field("logical_bytes", &self.logical_bytes)
            .field("file_count", &self.file_count)
            .finish()
    }
}

/// Why the server refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// What kind of refusal: the client decides what to tell the user from it.
    pub code: ErrorCode,
    /// The server's explanation, at most [`MAX_ERROR_MESSAGE_LEN`] bytes.
    pub message: String,
    /// For [`ErrorCode::QuotaExceeded`]: bytes used; otherwise 0.
    pub used: u64,
    /// For [`ErrorCode::QuotaExceeded`]: the quota; otherwise 0.
    pub quota: u64,
}

impl ErrorReply {
    /// A refusal with no quota figures. A message longer than
    /// [`MAX_ERROR_MESSAGE_LEN`] is cut (at a character boundary) so that
    /// the reply always encodes.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_ERROR_MESSAGE_LEN {
            let mut end = MAX_ERROR_MESSAGE_LEN;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        Self {
            code,
            message,
            used: 0,
            quota: 0,
        }
    }

    /// [`ErrorCode::QuotaExceeded`] with its figures and a standard message.
    pub fn quota_exceeded(used: u64, quota: u64) -> Self {
        Self {
            used,
            quota,
            ..Self::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "the quota is full ({used} of {quota} bytes used): nothing new can be \
                     stored; data already backed up is untouched"
                ),
            )
        }
    }
}

impl fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server refused the request ({}): {}",
            self.code, self.message
        )
    }
}

impl std::error::Error for ErrorReply {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_new_cuts_long_messages_at_a_char_boundary() {
        let reply = ErrorReply::new(ErrorCode::Internal, "é".repeat(MAX_ERROR_MESSAGE_LEN));
        assert!(reply.message.len() <= MAX_ERROR_MESSAGE_LEN);
        assert!(reply.message.len() >= MAX_ERROR_MESSAGE_LEN - 1);
        crate::encode_response(&crate::Response::Error(reply)).unwrap();
    }
}
