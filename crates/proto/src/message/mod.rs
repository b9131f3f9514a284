//! Messages: the payload codec of every request and response, and the
//! zero-copy ways to send the large ones.
//!
//! Each request travels on its own QUIC bidirectional stream: the client
//! writes one request message and finishes its send side, the server writes
//! exactly one response message (the matching one or
//! [`crate::Response::Error`]) and finishes. A message is its payload cut into
//! frames (see [`encode_request`]); [`crate::Assembler`] glues the frames back
//! together.
//!
//! What a message *is* (its type number, name, cap, fields, `Debug`) is one
//! entry of the table in `types.rs`; this module only turns those values into
//! payload bytes and back, one file per direction:
//!
//! - `request.rs`: [`encode_request`], [`decode_request`],
//!   [`decode_request_owned`];
//! - `response.rs`: [`encode_response`], [`decode_response`],
//!   [`decode_response_owned`];
//! - `pieces.rs`: a `PutChunk` or `Chunk` up to its blob, and a `PutChunks` or
//!   `Chunks` as pieces, so that blobs are written from the sender's own
//!   buffers (same bytes as the encoders, tested against them);
//! - `common.rs`: what both directions share (counting then framing, the cap
//!   on a list's blob bytes, keeping a payload's tail).
//!
//! Payloads are little-endian fixed-width integers, 32-byte ids, and
//! `u32`-length-prefixed byte strings; `docs/protocol.md` gives every payload
//! byte by byte, and the known-answer tests in `tests/known_answers.rs`
//! freeze them.

mod common;
mod pieces;
mod request;
mod response;

pub use pieces::{
    chunk_response_prefix, chunks_response_pieces, put_chunk_prefix, put_chunks_pieces,
};
pub use request::{decode_request, decode_request_owned, encode_request};
pub use response::{decode_response, decode_response_owned, encode_response};
