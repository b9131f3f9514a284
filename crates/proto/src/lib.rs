//! coffre's wire protocol, sans-IO: everything here works on byte buffers, so
//! it is unit-tested and fuzzed without a network, and the client and server
//! drive it over QUIC streams themselves.
//!
//! - framing ([`encode`], [`decode`]): `length u32 BE | message type u16 BE |
//!   payload`, with a hard cap of [`MAX_FRAME_LEN`] checked before anything is
//!   buffered;
//! - the versioned handshake ([`encode_hello`], [`decode_hello`]): the client
//!   first sends [`HELLO_MAGIC`] and its [`PROTOCOL_VERSION`], the server
//!   answers with the version both speak (the older of the two, down to
//!   [`MIN_PROTOCOL_VERSION`]), so a stranger or a too old build is refused
//!   with a clear message before any frame;
//! - messages ([`Request`], [`Response`], in named pairs): each request goes
//!   on its own QUIC bidirectional stream and gets exactly one response.
//!   [`encode_request`] / [`encode_response`] give a message's wire bytes (its
//!   payload cut into frames, every frame but the last of type
//!   [`CONTINUATION`]); an [`Assembler`] takes a stream's bytes in whatever
//!   pieces they arrive, applies the cap of the message type at each frame
//!   header, and returns the message's type and payload;
//!   [`decode_request_owned`] / [`decode_response_owned`] decode it (or
//!   [`decode_request`] / [`decode_response`] from a borrowed payload);
//! - the enrolment token ([`Token`]): `coffre1.` and base64url of the server
//!   address, its pinned certificate fingerprint, the subscriber, the device
//!   and its secret.
//!
//! The byte layouts are specified in `docs/protocol.md` and frozen by the
//! known-answer tests in `tests/known_answers.rs`.
//!
//! Reading one request from a stream (here a blocking [`std::io::Read`]; over
//! QUIC the loop is the same with `recv.read(&mut buf).await?`, see
//! `docs/protocol.md`):
//!
//! ```
//! use std::io::Read;
//! use coffre_proto::{decode_request_owned, encode_request, Assembler, Request};
//!
//! fn read_request(stream: &mut impl Read) -> Result<Request, Box<dyn std::error::Error>> {
//!     let mut assembler = Assembler::for_requests();
//!     let mut buf = vec![0; 64 * 1024];
//!     loop {
//!         let n = stream.read(&mut buf)?;
//!         if n == 0 {
//!             // The peer finished its side before the message was complete.
//!             return Err(assembler.end_of_stream().into());
//!         }
//!         if let Some((msg_type, payload)) = assembler.feed(&buf[..n])? {
//!             return Ok(decode_request_owned(msg_type, payload)?);
//!         }
//!     }
//! }
//!
//! let wire = encode_request(&Request::Forget { snapshot: [7; 32] })?;
//! assert_eq!(read_request(&mut &wire[..])?, Request::Forget { snapshot: [7; 32] });
//! assert!(read_request(&mut &wire[..wire.len() - 1]).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod assembler;
mod caps;
mod chunk_state;
mod error;
mod error_code;
pub mod frame;
mod message;
mod show;
#[cfg(feature = "tokio")]
pub mod stream;
mod token;
mod types;
mod values;
mod wire;

pub use assembler::Assembler;
pub use caps::{
    Id, CONTINUATION, MAX_BLOBS_PER_PUT, MAX_BLOB_LEN, MAX_CHUNKS_REPLY_BLOBS_LEN,
    MAX_ERROR_MESSAGE_LEN, MAX_IDS_PER_GET, MAX_IDS_PER_REQUEST, MAX_KEY_FILE_LEN,
    MAX_MANIFEST_LEN, MAX_NAME_LEN, MAX_PUT_BLOBS_LEN, MAX_SNAPSHOTS_PER_LIST,
};
pub use error::ProtoError;
pub use error_code::{ErrorCode, REVOKED_CLOSE_CODE};
pub use frame::{
    decode, decode_hello, encode, encode_hello, encode_hello_at, Frame, FrameError, HEADER_LEN,
    HELLO_LEN, HELLO_MAGIC, MAX_FRAME_LEN, MAX_PAYLOAD_LEN, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
pub use message::{
    chunk_response_prefix, chunks_response_pieces, decode_request, decode_request_owned,
    decode_response, decode_response_owned, encode_request, encode_response, put_chunk_prefix,
    put_chunks_pieces,
};
pub use token::{Token, TokenError, TOKEN_PREFIX};
pub use types::{max_request_len, max_response_len, message_name, Request, Response};
pub use values::{ChunkState, ErrorReply, Role, SnapshotEntry};
