//! Sending the messages that carry blobs without copying the blobs into a
//! message: a `PutChunk` request or a `Chunk` response up to its blob (the
//! sender then writes the blob from its own buffer), and a `PutChunks`
//! request or a `Chunks` response as pieces, each blob moved in as a piece of
//! its own.
//!
//! Invariant: the bytes are exactly those of [`crate::encode_request`] /
//! [`crate::encode_response`] for the same message (the tests below compare
//! them, at the sizes where framing changes), so a receiver cannot tell
//! which way a message was written.

use super::common::Payload;
use super::request::encode_request;
use super::response::encode_response;
use crate::caps::*;
use crate::error::ProtoError;
use crate::frame::MAX_PAYLOAD_LEN;
use crate::types::{name_of, Request, Response, CHUNK, CHUNKS, PUT_CHUNK, PUT_CHUNKS};

/// The wire bytes of a `PutChunk` request up to its blob: a sender writes
/// them, then the blob from its own buffer, without copying the blob into a
/// message (`prefix + blob` is exactly `encode_request(PutChunk { id, blob })`).
pub fn put_chunk_prefix(id: &Id, blob_len: usize) -> Result<Vec<u8>, ProtoError> {
    blob_prefix(PUT_CHUNK, id, blob_len)
}

/// The wire bytes of a `Chunk` response up to its blob: the server writes
/// them, then the blob as read from the pack, without copying it into a
/// message (`prefix + blob` is exactly `encode_response(Chunk { blob })`).
pub fn chunk_response_prefix(blob_len: usize) -> Result<Vec<u8>, ProtoError> {
    blob_prefix(CHUNK, &[], blob_len)
}

/// The wire bytes of a `Chunks` response as pieces to write in order, each
/// blob moved in as a piece of its own rather than copied: their
/// concatenation is exactly `encode_response(&Response::Chunks { blobs })`.
/// A reply too long for one frame (near the 16 MiB cap) comes as one encoded
/// piece.
pub fn chunks_response_pieces(blobs: Vec<Option<Vec<u8>>>) -> Result<Vec<Vec<u8>>, ProtoError> {
    let response = Response::Chunks { blobs };
    let payload_len = response.payload_len()?;
    if payload_len > MAX_PAYLOAD_LEN {
        return Ok(vec![encode_response(&response)?]);
    }
    let Response::Chunks { blobs } = response else {
        unreachable!("built above")
    };
    let n = blobs.len();
    let entries = blobs
        .into_iter()
        .map(|blob| ([u8::from(blob.is_some())], blob));
    Ok(pieces(CHUNKS, payload_len, n, entries))
}

/// Like [`chunks_response_pieces`], for a `PutChunks` request: the
/// concatenation is exactly `encode_request(&Request::PutChunks { blobs })`.
pub fn put_chunks_pieces(blobs: Vec<(Id, Vec<u8>)>) -> Result<Vec<Vec<u8>>, ProtoError> {
    let request = Request::PutChunks { blobs };
    let payload_len = request.payload_len()?;
    if payload_len > MAX_PAYLOAD_LEN {
        return Ok(vec![encode_request(&request)?]);
    }
    let Request::PutChunks { blobs } = request else {
        unreachable!("built above")
    };
    let n = blobs.len();
    let entries = blobs.into_iter().map(|(id, blob)| (id, Some(blob)));
    Ok(pieces(PUT_CHUNKS, payload_len, n, entries))
}

/// One frame of `payload_len` bytes: its header and a count, then per entry
/// its head and, for a blob, the blob's length and the blob as a piece of
/// its own.
fn pieces<H: AsRef<[u8]>>(
    msg_type: u16,
    payload_len: usize,
    count: usize,
    entries: impl Iterator<Item = (H, Option<Vec<u8>>)>,
) -> Vec<Vec<u8>> {
    let mut pieces = Vec::with_capacity(2 * count + 1);
    let mut head = Vec::with_capacity(64);
    head.extend_from_slice(&((2 + payload_len) as u32).to_be_bytes());
    head.extend_from_slice(&msg_type.to_be_bytes());
    head.extend_from_slice(&(count as u32).to_le_bytes());
    for (entry_head, blob) in entries {
        head.extend_from_slice(entry_head.as_ref());
        if let Some(blob) = blob {
            head.extend_from_slice(&(blob.len() as u32).to_le_bytes());
            pieces.push(std::mem::take(&mut head));
            pieces.push(blob);
        }
    }
    if !head.is_empty() {
        pieces.push(head);
    }
    pieces
}

/// Frame header, `head`, then the blob's length: the whole message up to its
/// blob, which is its last field (one frame: blobs are below the frame cap).
fn blob_prefix(msg_type: u16, head: &[u8], blob_len: usize) -> Result<Vec<u8>, ProtoError> {
    if blob_len > MAX_BLOB_LEN {
        return Err(ProtoError::FieldTooLarge {
            message: name_of(msg_type),
            field: "blob",
            len: blob_len as u64,
            max: MAX_BLOB_LEN as u64,
        });
    }
    let payload = head.len() + 4 + blob_len;
    let mut out = Vec::with_capacity(6 + head.len() + 4);
    out.extend_from_slice(&((2 + payload) as u32).to_be_bytes());
    out.extend_from_slice(&msg_type.to_be_bytes());
    out.extend_from_slice(head);
    out.extend_from_slice(&(blob_len as u32).to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_response_pieces_are_the_encoded_response() {
        let small = vec![Some(b"ab".to_vec()), None, Some(Vec::new()), None];
        let big = vec![
            Some(vec![1u8; MAX_BLOB_LEN]),
            Some(vec![2u8; MAX_CHUNKS_REPLY_BLOBS_LEN - MAX_BLOB_LEN]),
        ];
        for blobs in [Vec::new(), small, big] {
            let whole = encode_response(&Response::Chunks {
                blobs: blobs.clone(),
            })
            .unwrap();
            let pieces = chunks_response_pieces(blobs).unwrap();
            assert_eq!(pieces.concat(), whole);
        }
    }

    #[test]
    fn put_chunks_pieces_are_the_encoded_request() {
        let small = vec![([1; 32], b"ab".to_vec()), ([2; 32], Vec::new())];
        let big = vec![
            ([3; 32], vec![1u8; MAX_BLOB_LEN]),
            ([4; 32], vec![2u8; MAX_PUT_BLOBS_LEN - MAX_BLOB_LEN]),
        ];
        for blobs in [Vec::new(), small, big] {
            let whole = encode_request(&Request::PutChunks {
                blobs: blobs.clone(),
            })
            .unwrap();
            let pieces = put_chunks_pieces(blobs).unwrap();
            assert_eq!(pieces.concat(), whole);
        }
        let too_many = vec![([0; 32], Vec::new()); MAX_BLOBS_PER_PUT + 1];
        assert!(put_chunks_pieces(too_many).is_err());
    }

    #[test]
    fn put_chunk_prefix_and_blob_are_the_encoded_request() {
        for len in [0usize, 1, 1 << 20, MAX_BLOB_LEN] {
            let blob = vec![7u8; len];
            let mut wire = put_chunk_prefix(&[3; 32], len).unwrap();
            wire.extend_from_slice(&blob);
            assert_eq!(
                wire,
                encode_request(&Request::PutChunk { id: [3; 32], blob }).unwrap()
            );
        }
        assert!(put_chunk_prefix(&[3; 32], MAX_BLOB_LEN + 1).is_err());
    }

    #[test]
    fn chunk_response_prefix_and_blob_are_the_encoded_response() {
        for len in [0usize, 1, 1 << 20, MAX_BLOB_LEN] {
            let blob = vec![9u8; len];
            let mut wire = chunk_response_prefix(len).unwrap();
            wire.extend_from_slice(&blob);
            assert_eq!(wire, encode_response(&Response::Chunk { blob }).unwrap());
        }
        assert!(chunk_response_prefix(MAX_BLOB_LEN + 1).is_err());
    }
}
