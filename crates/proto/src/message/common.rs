//! What the request and response codecs share: a message is written twice
//! through the same code (counted, then framed into exactly-sized output),
//! the cap on the sum of a list's blob lengths, and keeping the tail of a
//! reassembled payload instead of copying it.

use crate::error::ProtoError;
use crate::wire::{Counter, Framer, Sink};

/// A message the codec writes: [`crate::Request`] and [`crate::Response`].
pub(super) trait Payload {
    /// The type of its last frame.
    fn msg_type(&self) -> u16;

    /// Writes its payload, checking every field against its cap.
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), ProtoError>;

    /// Its payload length, after checking every cap (nothing is allocated).
    fn payload_len(&self) -> Result<usize, ProtoError> {
        let mut counter = Counter::default();
        self.write(&mut counter)?;
        Ok(counter.len)
    }
}

/// The wire bytes of `message`: its payload cut into frames, every frame but
/// the last of type [`crate::CONTINUATION`] and full, the last of the
/// message's type. Counted first (every cap checked, nothing allocated), then
/// framed into exactly-sized output by the same code.
pub(super) fn encode(message: &impl Payload) -> Result<Vec<u8>, ProtoError> {
    let mut framer = Framer::new(message.msg_type(), message.payload_len()?);
    message.write(&mut framer)?;
    Ok(framer.finish())
}

/// The cap on the sum of the blob lengths of a `PutChunks` or a `Chunks`.
pub(super) fn check_blobs_len(m: &'static str, total: usize, max: usize) -> Result<(), ProtoError> {
    if total > max {
        return Err(ProtoError::FieldTooLarge {
            message: m,
            field: "blobs",
            len: total as u64,
            max: max as u64,
        });
    }
    Ok(())
}

/// Drops all but the last `len` bytes of `payload`, reusing its allocation.
pub(super) fn keep_tail(payload: &mut Vec<u8>, len: usize) -> Vec<u8> {
    payload.drain(..payload.len() - len);
    std::mem::take(payload)
}
