//! Payload primitives: little-endian integers, 32-byte ids, `u32`-length
//! byte strings, and the two sinks a message is written to (a counter, then
//! the framer that cuts the payload into frames as it is written).
//!
//! Messages are written twice: once into a [`Counter`] to learn the payload
//! length and check every cap, then into a [`Framer`] that writes the frames
//! straight into the output. The same code runs both times, so the announced
//! lengths always match, and a 256 MiB manifest is copied once, not twice.

use crate::caps::{Id, CONTINUATION};
use crate::error::ProtoError;
use crate::frame::{HEADER_LEN, MAX_PAYLOAD_LEN};

/// Where an encoder writes payload bytes.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    fn put_u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn put_u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
    fn put_i64(&mut self, v: i64) {
        self.put(&v.to_le_bytes());
    }
    fn put_bool(&mut self, v: bool) {
        self.put_u8(u8::from(v));
    }

    /// A count of items (`u32`), after checking it against `max`.
    fn put_count(
        &mut self,
        message: &'static str,
        field: &'static str,
        count: usize,
        max: usize,
    ) -> Result<(), ProtoError> {
        match u32::try_from(count) {
            Ok(n) if count <= max => {
                self.put_u32(n);
                Ok(())
            }
            _ => Err(ProtoError::FieldTooLarge {
                message,
                field,
                len: count as u64,
                max: max as u64,
            }),
        }
    }

    /// A `u32` length then the bytes, after checking the length against `max`.
    fn put_bytes(
        &mut self,
        message: &'static str,
        field: &'static str,
        bytes: &[u8],
        max: usize,
    ) -> Result<(), ProtoError> {
        self.put_count(message, field, bytes.len(), max)?;
        self.put(bytes);
        Ok(())
    }

    fn put_str(
        &mut self,
        message: &'static str,
        field: &'static str,
        s: &str,
        max: usize,
    ) -> Result<(), ProtoError> {
        self.put_bytes(message, field, s.as_bytes(), max)
    }
}

/// Counts the payload bytes an encoder would write.
#[derive(Debug, Default)]
pub(crate) struct Counter {
    pub(crate) len: usize,
}

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.len = self.len.saturating_add(bytes.len());
    }
}

/// Writes a payload of known length as frames: every frame but the last
/// carries exactly [`MAX_PAYLOAD_LEN`] bytes under type [`CONTINUATION`], the
/// last carries the rest (possibly nothing) under the message's own type.
#[derive(Debug)]
pub(crate) struct Framer {
    out: Vec<u8>,
    msg_type: u16,
    /// Payload bytes not yet written.
    remaining: usize,
    /// Payload bytes the current frame still has room for.
    room: usize,
}

impl Framer {
    pub(crate) fn new(msg_type: u16, payload_len: usize) -> Self {
        let frames = payload_len.div_ceil(MAX_PAYLOAD_LEN).max(1);
        let mut framer = Self {
            out: Vec::with_capacity(payload_len + frames * HEADER_LEN),
            msg_type,
            remaining: payload_len,
            room: 0,
        };
        framer.start_frame();
        framer
    }

    fn start_frame(&mut self) {
        let len = self.remaining.min(MAX_PAYLOAD_LEN);
        let msg_type = if self.remaining > MAX_PAYLOAD_LEN {
            CONTINUATION
        } else {
            self.msg_type
        };
        // Cannot truncate: len + 2 <= MAX_FRAME_LEN <= u32::MAX (frame.rs).
        self.out
            .extend_from_slice(&((len + 2) as u32).to_be_bytes());
        self.out.extend_from_slice(&msg_type.to_be_bytes());
        self.room = len;
    }

    /// The wire bytes. Every byte the counter counted must have been written.
    pub(crate) fn finish(self) -> Vec<u8> {
        debug_assert_eq!((self.remaining, self.room), (0, 0));
        self.out
    }
}

impl Sink for Framer {
    fn put(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.room == 0 {
                debug_assert!(self.remaining > 0, "more bytes written than counted");
                self.start_frame();
            }
            let n = self.room.min(bytes.len());
            self.out.extend_from_slice(&bytes[..n]);
            self.room -= n;
            self.remaining -= n;
            bytes = &bytes[n..];
        }
    }
}

/// Reads a payload field by field, naming the message and field in errors.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    message: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], message: &'static str) -> Self {
        Self { buf, message }
    }

    /// The next `n` bytes, raw.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProtoError> {
        if n > self.buf.len() {
            return Err(ProtoError::PayloadTruncated {
                message: self.message,
                field,
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProtoError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(crate) fn invalid(&self, field: &'static str, reason: &'static str) -> ProtoError {
        ProtoError::InvalidField {
            message: self.message,
            field,
            reason,
        }
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtoError> {
        Ok(self.array::<1>(field)?[0])
    }
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ProtoError> {
        self.array(field).map(u16::from_le_bytes)
    }
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtoError> {
        self.array(field).map(u32::from_le_bytes)
    }
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ProtoError> {
        self.array(field).map(u64::from_le_bytes)
    }
    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, ProtoError> {
        self.array(field).map(i64::from_le_bytes)
    }
    pub(crate) fn id(&mut self, field: &'static str) -> Result<Id, ProtoError> {
        self.array(field)
    }

    /// A byte that must be 0 (false) or 1 (true).
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, ProtoError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.invalid(field, "is neither 0 nor 1")),
        }
    }

    /// A `u32` count of items of at least `min_item_len` bytes each, checked
    /// against `max` and against the bytes that remain, so that a caller may
    /// allocate `count` items without trusting the peer.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        max: usize,
        min_item_len: usize,
    ) -> Result<usize, ProtoError> {
        let count = self.u32(field)?;
        let n = usize::try_from(count).unwrap_or(usize::MAX);
        if n > max {
            return Err(ProtoError::FieldTooLarge {
                message: self.message,
                field,
                len: u64::from(count),
                max: max as u64,
            });
        }
        if n.saturating_mul(min_item_len) > self.buf.len() {
            return Err(ProtoError::PayloadTruncated {
                message: self.message,
                field,
            });
        }
        Ok(n)
    }

    /// A `u32` length then that many bytes, at most `max`.
    pub(crate) fn bytes(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], ProtoError> {
        let len = self.count(field, max, 1)?;
        self.take(len, field)
    }

    /// Like [`Reader::bytes`], for a field that must end the payload: returns
    /// its length after checking that exactly that many bytes remain, so the
    /// caller can keep the payload's tail instead of copying it.
    pub(crate) fn tail_bytes_len(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<usize, ProtoError> {
        let len = self.count(field, max, 1)?;
        self.take(len, field)?;
        self.finish()?;
        Ok(len)
    }

    /// A `u32` length then that many bytes of UTF-8, at most `max` bytes.
    pub(crate) fn string(&mut self, field: &'static str, max: usize) -> Result<String, ProtoError> {
        let bytes = self.bytes(field, max)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.invalid(field, "is not valid UTF-8")),
        }
    }

    /// Checks that the payload was read to its last byte.
    pub(crate) fn finish(&self) -> Result<(), ProtoError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::TrailingBytes {
                message: self.message,
                extra: self.buf.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msg_type: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Framer::new(msg_type, payload.len());
        // Write in uneven pieces to cross frame boundaries mid-piece.
        for piece in payload.chunks(1000) {
            f.put(piece);
        }
        f.finish()
    }

    #[test]
    fn framer_cuts_full_frames_then_the_rest() {
        let payload = vec![7u8; 2 * MAX_PAYLOAD_LEN + 5];
        let out = framed(0x0004, &payload);
        assert_eq!(out.len(), payload.len() + 3 * HEADER_LEN);
        let mut rest = &out[..];
        let mut types = Vec::new();
        while let Some((frame, used)) = crate::frame::decode(rest).unwrap() {
            types.push((frame.msg_type, frame.payload.len()));
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        assert_eq!(
            types,
            [
                (CONTINUATION, MAX_PAYLOAD_LEN),
                (CONTINUATION, MAX_PAYLOAD_LEN),
                (0x0004, 5)
            ]
        );
    }

    #[test]
    fn framer_exact_multiple_ends_with_a_full_typed_frame() {
        let payload = vec![1u8; MAX_PAYLOAD_LEN];
        let out = framed(0x8006, &payload);
        assert_eq!(out.len(), MAX_PAYLOAD_LEN + HEADER_LEN);
        assert_eq!(&out[4..6], &0x8006u16.to_be_bytes());
    }

    #[test]
    fn framer_empty_payload_is_one_empty_frame() {
        assert_eq!(framed(0x0005, b""), [0, 0, 0, 2, 0, 5]);
    }

    #[test]
    fn reader_checks_counts_against_remaining_bytes_before_allocating() {
        let mut bytes = 1_000_000u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 31]);
        let err = Reader::new(&bytes, "HasChunks request")
            .count("ids", 65_536, 32)
            .unwrap_err();
        assert!(
            matches!(err, ProtoError::FieldTooLarge { len: 1_000_000, .. }),
            "{err}"
        );
        let mut bytes = 2u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 63]);
        let err = Reader::new(&bytes, "HasChunks request")
            .count("ids", 65_536, 32)
            .unwrap_err();
        assert!(
            matches!(err, ProtoError::PayloadTruncated { field: "ids", .. }),
            "{err}"
        );
    }
}
