//! Why bytes could not be turned into a message, or a message into bytes.
//!
//! Policy: every variant names what was wrong (which message, which field,
//! which cap) and what to do. Decoding errors mean the peer is misbehaving or
//! runs an incompatible release: the stream cannot be trusted any more, so
//! the server answers with [`ProtoError::error_code`] and the error's text,
//! then drops the stream; the client reports the text and gives up on that
//! request. Encoding errors are the caller's bug or an input over a cap (a
//! manifest too large, too many ids in one request): split or shrink it.

use thiserror::Error;

use crate::caps::CONTINUATION;
use crate::error_code::ErrorCode;
use crate::frame::FrameError;
use crate::types::message_name;

/// Why a message could not be encoded, reassembled or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// A frame was malformed or oversized, or the hello was refused.
    #[error(transparent)]
    Frame(#[from] FrameError),

    /// The message type is not one this build knows in this direction (a
    /// request type where a response was expected counts as unknown).
    #[error(
        "unknown message type {0:#06x}: the peer runs a different coffre release or is not \
         following the protocol; upgrade both sides to the same release"
    )]
    UnknownMessage(u16),

    /// A message is larger than the cap for its type: refused when the frame
    /// header announcing it arrived, before its payload was buffered.
    #[error(
        "{} of at least {len} bytes is over its {max}-byte cap: refused without reading it; \
         the peer is misbehaving or runs an incompatible release, close the stream",
        describe_type(*msg_type)
    )]
    MessageTooLarge {
        /// The type of the frame whose header crossed the cap
        /// ([`CONTINUATION`] when the message's type was not known yet).
        msg_type: u16,
        /// The size the message would have reached.
        len: u64,
        /// The cap that applies.
        max: usize,
    },

    /// A continuation frame with an empty payload: it can only serve to keep
    /// a stream busy, so it is refused.
    #[error(
        "empty continuation frame: the peer is misbehaving or not following the protocol, \
         close the stream"
    )]
    EmptyContinuation,

    /// Bytes arrived after the end of the one message a stream carries.
    #[error(
        "{extra} bytes arrived after the end of the message; a stream carries exactly one \
         message each way: the peer is misbehaving, close the stream"
    )]
    DataAfterMessage {
        /// How many unexpected bytes were seen.
        extra: usize,
    },

    /// The peer finished its side of the stream in the middle of a message.
    #[error(
        "the stream ended in the middle of a message ({received} bytes received): the peer \
         stopped or the connection dropped; retry the request"
    )]
    StreamEnded {
        /// How many bytes of the unfinished message had arrived, frame
        /// headers included.
        received: usize,
    },

    /// The payload ends inside a field.
    #[error(
        "malformed {message}: the payload ends inside field `{field}`; the peer runs an \
         incompatible release or the message was cut, close the stream"
    )]
    PayloadTruncated {
        /// Which message, e.g. `"PutChunk request"`.
        message: &'static str,
        /// Which field was cut.
        field: &'static str,
    },

    /// A field holds more bytes or items than its cap.
    #[error(
        "{message}: field `{field}` holds {len} (bytes or items), over its cap of {max}: \
         the sender must split or shrink it; a peer that sends this is misbehaving"
    )]
    FieldTooLarge {
        /// Which message.
        message: &'static str,
        /// Which field.
        field: &'static str,
        /// Its size.
        len: u64,
        /// Its cap.
        max: u64,
    },

    /// A field holds a value that is not allowed (a flag that is neither 0
    /// nor 1, a string that is not UTF-8, an unknown role, ...).
    #[error(
        "malformed {message}: field `{field}` {reason}; the peer runs an incompatible \
         release or is misbehaving, close the stream"
    )]
    InvalidField {
        /// Which message.
        message: &'static str,
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The payload continues after the message's last field.
    #[error(
        "malformed {message}: {extra} unexpected bytes after its last field; the peer runs an \
         incompatible release or is misbehaving, close the stream"
    )]
    TrailingBytes {
        /// Which message.
        message: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
}

impl ProtoError {
    /// The code a server answers with when a request fails to reassemble or
    /// decode with this error: [`ErrorCode::TooLarge`] for caps,
    /// [`ErrorCode::UnsupportedVersion`] for a refused hello,
    /// [`ErrorCode::BadRequest`] for everything else.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::MessageTooLarge { .. }
            | Self::FieldTooLarge { .. }
            | Self::Frame(FrameError::FrameTooLarge { .. } | FrameError::PayloadTooLarge { .. }) => {
                ErrorCode::TooLarge
            }
            Self::Frame(FrameError::UnsupportedVersion { .. }) => ErrorCode::UnsupportedVersion,
            _ => ErrorCode::BadRequest,
        }
    }
}

fn describe_type(msg_type: u16) -> String {
    match message_name(msg_type) {
        Some(name) => name.to_owned(),
        None if msg_type == CONTINUATION => "a multi-frame message".to_owned(),
        None => format!("message type {msg_type:#06x}"),
    }
}
