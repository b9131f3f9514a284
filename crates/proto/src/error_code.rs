//! [`ErrorCode`]: the kind of a refusal, with stable numbers on the wire.
//!
//! One table below gives each code its variant, its number and its name;
//! `to_u16`, `from_u16` and `Display` are generated from it, so a new code is
//! one line (and a row in docs/protocol.md's "Error codes"). Numbers are
//! frozen: never reuse or renumber one. A number this build does not know
//! (from a newer server) is kept as [`ErrorCode::Other`], never turned into
//! another code.
//!
//! The protocol carries codes, not advice: the sentence a user reads for a
//! code is the client's (`client/src/remote/mod.rs`, `RemoteError`), in one
//! place. This module imports nothing of the crate.

use std::fmt;

/// Declares [`ErrorCode`] from one line per code: doc, variant, number,
/// name (the name is what `Display` shows).
macro_rules! error_codes {
    ($( $(#[$doc:meta])* $Variant:ident = $n:literal, $name:literal; )*) => {
        /// The kind of an [`crate::ErrorReply`], with stable numbers on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $Variant, )*
            /// A code this build does not know (sent by a newer server). Holds the
            /// number; never build one with a number listed above.
            Other(u16),
        }

        impl ErrorCode {
            /// The number on the wire.
            pub fn to_u16(self) -> u16 {
                match self {
                    $( Self::$Variant => $n, )*
                    Self::Other(n) => n,
                }
            }

            /// The code for a number on the wire; unknown numbers are kept in
            /// [`ErrorCode::Other`].
            pub fn from_u16(n: u16) -> Self {
                match n {
                    $( $n => Self::$Variant, )*
                    n => Self::Other(n),
                }
            }

            fn name(self) -> Option<&'static str> {
                match self {
                    $( Self::$Variant => Some($name), )*
                    Self::Other(_) => None,
                }
            }
        }
    };
}

error_codes! {
    /// 1: the request was malformed or not allowed at this point.
    BadRequest = 1, "bad request";
    /// 2: the device secret matches no device.
    UnknownDevice = 2, "unknown device";
    /// 3: the device was revoked.
    Revoked = 3, "device revoked";
    /// 4: this device's role may not do that (forget needs admin).
    Forbidden = 4, "forbidden";
    /// 5: no such snapshot, chunk or key.
    NotFound = 5, "not found";
    /// 6: the subscriber's quota is full; `used` and `quota` say by how much.
    QuotaExceeded = 6, "quota exceeded";
    /// 7: a commit refers to chunks the server does not have.
    MissingChunks = 7, "missing chunks";
    /// 8: the server's storage is full.
    StorageFull = 8, "server storage full";
    /// 9: a message or field exceeded a cap.
    TooLarge = 9, "too large";
    /// 10: the peer speaks another protocol version.
    UnsupportedVersion = 10, "unsupported version";
    /// 11: the server is overloaded (too many connections or requests).
    Busy = 11, "busy";
    /// 12: the server failed (I/O error, bug); its log has details.
    Internal = 12, "internal error";
    /// 13: the secret was this device's, but another one replaced it: a second
    /// installation (a cloned disk, a token enrolled twice) or a credential the
    /// operator reissued. `used` holds when it was replaced (Unix seconds).
    Superseded = 13, "credential superseded";
    /// 14: what the request meant to change changed since the device read it
    /// (protocol version 4: a `ReplaceKey` whose expected hash is not the
    /// key file's any more); nothing was changed.
    Conflict = 14, "conflict";
    /// 15: the device's structure is now served by another frontend of the
    /// service (issue 22); the message names it and its address. Any client
    /// shows the message; nothing was changed.
    Moved = 15, "moved to another server";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "unknown error code {}", self.to_u16()),
        }
    }
}

/// The QUIC application close code with which the server closes a
/// connection whose device was revoked while it was connected (reason
/// `device revoked`): a client whose request meets this close tells the user
/// the device was revoked, as for [`ErrorCode::Revoked`].
pub const REVOKED_CLOSE_CODE: u32 = 3;

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn error_codes_round_trip_and_unknown_ones_are_kept() {
        for n in 0..=20u16 {
            assert_eq!(ErrorCode::from_u16(n).to_u16(), n);
        }
        assert_eq!(ErrorCode::from_u16(6), ErrorCode::QuotaExceeded);
        assert_eq!(ErrorCode::from_u16(999), ErrorCode::Other(999));
        assert_eq!(ErrorCode::Other(999).to_string(), "unknown error code 999");
    }
}
