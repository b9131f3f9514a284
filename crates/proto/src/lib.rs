//! coffre's wire protocol, sans-IO: everything here works on byte buffers, so
//! it is unit-tested and fuzzed without a network, and the client and server
//! drive it over QUIC streams themselves.
//!
//! - framing ([`encode`], [`decode`]): `length u32 BE | message type u16 BE |
//!   payload`, with a hard cap of [`MAX_FRAME_LEN`] checked before anything is
//!   buffered;
//! - the versioned handshake ([`encode_hello`], [`decode_hello`]): each side
//!   first sends [`HELLO_MAGIC`] and its [`PROTOCOL_VERSION`], so a stranger or
//!   an incompatible build is refused with a clear message before any frame.
//!
//! The byte layout and the guarantees are specified in [`frame`].

pub mod frame;

pub use frame::{
    decode, decode_hello, encode, encode_hello, Frame, FrameError, HEADER_LEN, HELLO_LEN,
    HELLO_MAGIC, MAX_FRAME_LEN, MAX_PAYLOAD_LEN, PROTOCOL_VERSION,
};
