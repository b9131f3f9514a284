//! Reassembling one message from a stream that arrives in pieces.
//!
//! A message is its payload cut into frames: every frame but the last has
//! type [`CONTINUATION`], the last has the message's type. The [`Assembler`]
//! takes bytes in whatever pieces the transport delivers them (a QUIC
//! `recv.read(&mut buf)` returns anything from 1 byte up), copies frame
//! payloads straight into the message buffer, and hands back the message when
//! its last frame is complete.
//!
//! Memory is bounded by the cap chosen at construction, and the cap is
//! applied at each frame *header*, before its payload is buffered:
//!
//! - [`Assembler::for_requests`] (server) and [`Assembler::for_responses`]
//!   (client) know the cap of every message type ([`max_request_len`],
//!   [`max_response_len`]). The first frame header fixes the cap: a
//!   single-frame message announces its type there, so a 100-byte `GetKey`
//!   cannot announce 16 MiB; a multi-frame message starts with
//!   [`CONTINUATION`] and gets the cap of the largest message that may span
//!   frames (a `Commit` for requests). When the final frame announces the
//!   type, its own cap applies too, before that frame is read. Unknown types
//!   are refused at the header.
//! - [`Assembler::new`] takes one cap for every type and checks no type.
//!
//! The buffer grows with the bytes that really arrive (doubling, never past
//! the end of the current frame), so it never holds more than the cap plus a
//! 6-byte frame header, and a peer that announces a large frame and then
//! stalls costs only what it sent.
//!
//! A stream carries exactly one message each way; bytes after it are an
//! error ([`ProtoError::DataAfterMessage`]). The hello that opens a
//! connection is not a frame: read its [`crate::HELLO_LEN`] bytes before
//! feeding the rest of the stream to an `Assembler`.

use std::fmt;

use crate::caps::CONTINUATION;
use crate::error::ProtoError;
use crate::frame::{decode_length, HEADER_LEN};
use crate::types::{max_request_len, max_response_len};

/// The smallest step the message buffer grows by.
const MIN_GROWTH: usize = 64 * 1024;

/// Which cap applies to which message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// The same cap for every type, types not checked.
    Fixed(usize),
    /// [`max_request_len`]; other types are refused.
    Requests,
    /// [`max_response_len`]; other types are refused.
    Responses,
}

impl Limit {
    fn cap(self, msg_type: u16) -> Result<usize, ProtoError> {
        match self {
            Limit::Fixed(max) => Some(max),
            Limit::Requests => max_request_len(msg_type),
            Limit::Responses => max_response_len(msg_type),
        }
        .ok_or(ProtoError::UnknownMessage(msg_type))
    }
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    msg_type: u16,
    /// Payload bytes still to come.
    left: usize,
    /// Message length once this frame is complete.
    end: usize,
}

#[derive(Debug, Clone)]
enum State {
    /// Waiting for a frame header.
    Header,
    /// Inside a frame's payload.
    Payload(InFrame),
    /// The message was handed out.
    Done,
    /// An error was returned; it is returned again.
    Failed(ProtoError),
}

/// Reassembles one message from a byte stream fed in arbitrary pieces.
/// Sans-IO: the caller reads, the assembler only looks at bytes.
///
/// ```
/// use coffre_proto::{decode_request_owned, encode_request, Assembler, Request};
///
/// let wire = encode_request(&Request::GetKey).unwrap();
/// let mut assembler = Assembler::for_requests();
/// // Feed whatever the transport delivered, e.g. one byte at a time.
/// let (last, head) = wire.split_last().unwrap();
/// for byte in head {
///     assert!(assembler.feed(std::slice::from_ref(byte)).unwrap().is_none());
/// }
/// let (msg_type, payload) = assembler.feed(&[*last]).unwrap().unwrap();
/// assert_eq!(decode_request_owned(msg_type, payload).unwrap(), Request::GetKey);
/// ```
pub struct Assembler {
    limit: Limit,
    /// Fixed by the first frame header.
    cap: Option<usize>,
    header: [u8; HEADER_LEN],
    header_len: usize,
    payload: Vec<u8>,
    /// Bytes of the stream consumed so far, frame headers included.
    received: usize,
    state: State,
}

impl fmt::Debug for Assembler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assembler")
            .field("limit", &self.limit)
            .field("cap", &self.cap)
            .field("buffered", &self.payload.len())
            .field("state", &self.state)
            .finish()
    }
}

impl Assembler {
    /// An assembler that accepts any message type up to `max_message_len`
    /// payload bytes in total. Prefer [`Assembler::for_requests`] and
    /// [`Assembler::for_responses`], which cap each type to what it can be.
    pub fn new(max_message_len: usize) -> Self {
        Self::with_limit(Limit::Fixed(max_message_len))
    }

    /// For a server reading a request: each request type is capped to
    /// [`max_request_len`], response and unknown types are refused at their
    /// frame header.
    pub fn for_requests() -> Self {
        Self::with_limit(Limit::Requests)
    }

    /// For a client reading a response: each response type is capped to
    /// [`max_response_len`], request and unknown types are refused.
    pub fn for_responses() -> Self {
        Self::with_limit(Limit::Responses)
    }

    fn with_limit(limit: Limit) -> Self {
        Self {
            limit,
            cap: None,
            header: [0; HEADER_LEN],
            header_len: 0,
            payload: Vec::new(),
            received: 0,
            state: State::Header,
        }
    }

    /// Takes the next bytes of the stream.
    ///
    /// Returns `Ok(Some((msg_type, payload)))` when `input` completes the
    /// message (it must then end exactly there): the type its last frame
    /// carried and the payloads of all its frames, concatenated. Decode them
    /// with [`crate::decode_request_owned`] (or [`crate::decode_request`]),
    /// or the response equivalents. Returns `Ok(None)` when more bytes are needed,
    /// and an error as soon as the bytes cannot be a valid message or would
    /// exceed the cap. After an error, every call returns the same error:
    /// answer or report it and drop the stream. After the message, any
    /// further byte is [`ProtoError::DataAfterMessage`].
    pub fn feed(&mut self, input: &[u8]) -> Result<Option<(u16, Vec<u8>)>, ProtoError> {
        match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Done if input.is_empty() => return Ok(None),
            State::Done => {
                return Err(self.fail(ProtoError::DataAfterMessage { extra: input.len() }))
            }
            State::Header | State::Payload(_) => {}
        }
        let mut rest = input;
        let outcome = self.consume(&mut rest);
        self.received = self.received.saturating_add(input.len() - rest.len());
        match outcome {
            Ok(Some(_)) if !rest.is_empty() => {
                Err(self.fail(ProtoError::DataAfterMessage { extra: rest.len() }))
            }
            Ok(Some(message)) => {
                self.state = State::Done;
                Ok(Some(message))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The error to report when the peer finished its side of the stream (a
    /// QUIC `read` returned `None`) before [`Assembler::feed`] returned the
    /// message: [`ProtoError::StreamEnded`], or the error already returned.
    ///
    /// ```text
    /// match recv.read(&mut buf).await? {
    ///     Some(n) => if let Some(message) = assembler.feed(&buf[..n])? { break message },
    ///     None => return Err(assembler.end_of_stream().into()),
    /// }
    /// ```
    pub fn end_of_stream(&mut self) -> ProtoError {
        match &self.state {
            State::Failed(e) => e.clone(),
            // Only meaningful before the message is out; after it, a stream
            // that ends is normal and this error says nothing was pending.
            State::Done => ProtoError::StreamEnded { received: 0 },
            State::Header | State::Payload(_) => self.fail(ProtoError::StreamEnded {
                received: self.received,
            }),
        }
    }

    /// How many more bytes complete the next frame header, while one is
    /// awaited (`None` inside a payload, after the message or an error).
    ///
    /// With [`Assembler::frame_left`], this lets a reader that budgets
    /// memory feed a frame's header alone, learn the announced length, and
    /// reserve it before any payload byte is buffered (the daemon does).
    pub fn header_missing(&self) -> Option<usize> {
        match self.state {
            State::Header => Some(HEADER_LEN - self.header_len),
            _ => None,
        }
    }

    /// Payload bytes the frame being read still expects, once its header is
    /// in (`None` otherwise). Right after the header, this is the length the
    /// frame announced (already checked against the caps).
    pub fn frame_left(&self) -> Option<usize> {
        match self.state {
            State::Payload(frame) => Some(frame.left),
            _ => None,
        }
    }

    fn fail(&mut self, e: ProtoError) -> ProtoError {
        self.state = State::Failed(e.clone());
        self.payload = Vec::new();
        e
    }

    /// Consumes bytes from `input` until the message is complete or `input`
    /// is exhausted.
    fn consume(&mut self, input: &mut &[u8]) -> Result<Option<(u16, Vec<u8>)>, ProtoError> {
        loop {
            match self.state {
                State::Payload(frame) => {
                    let n = frame.left.min(input.len());
                    let (bytes, rest) = input.split_at(n);
                    self.append(bytes, frame.end);
                    *input = rest;
                    if n < frame.left {
                        self.state = State::Payload(InFrame {
                            left: frame.left - n,
                            ..frame
                        });
                        return Ok(None);
                    }
                    self.state = State::Header;
                    if frame.msg_type != CONTINUATION {
                        let payload = std::mem::take(&mut self.payload);
                        return Ok(Some((frame.msg_type, payload)));
                    }
                }
                State::Header => {
                    let n = (HEADER_LEN - self.header_len).min(input.len());
                    let (bytes, rest) = input.split_at(n);
                    self.header[self.header_len..self.header_len + n].copy_from_slice(bytes);
                    self.header_len += n;
                    *input = rest;
                    // The length is checked as soon as its 4 bytes are in.
                    let Some(len) = decode_length(&self.header[..self.header_len])? else {
                        return Ok(None);
                    };
                    if self.header_len < HEADER_LEN {
                        return Ok(None);
                    }
                    self.header_len = 0;
                    let msg_type = u16::from_be_bytes([self.header[4], self.header[5]]);
                    self.state = State::Payload(self.start_frame(msg_type, len - 2)?);
                }
                State::Done | State::Failed(_) => return Ok(None),
            }
        }
    }

    /// Checks a frame header against the caps before any of its payload is
    /// buffered.
    fn start_frame(&mut self, msg_type: u16, len: usize) -> Result<InFrame, ProtoError> {
        if msg_type == CONTINUATION && len == 0 {
            return Err(ProtoError::EmptyContinuation);
        }
        let mut cap = match self.cap {
            Some(cap) => cap,
            None => *self.cap.insert(self.limit.cap(msg_type)?),
        };
        if msg_type != CONTINUATION {
            cap = cap.min(self.limit.cap(msg_type)?);
        }
        // No overflow: the buffer is at most a cap and a frame at most 16 MiB.
        let end = self.payload.len() + len;
        if end > cap {
            return Err(ProtoError::MessageTooLarge {
                msg_type,
                len: end as u64,
                max: cap,
            });
        }
        Ok(InFrame {
            msg_type,
            left: len,
            end,
        })
    }

    /// Appends payload bytes. The buffer grows with what arrives: doubling
    /// (at least [`MIN_GROWTH`]), never past the end of the frame being read,
    /// so a peer that announces a 16 MiB frame and sends 1 KiB costs 64 KiB,
    /// not 16 MiB, even in address space. (Reserving the whole announced
    /// frame at its first bytes held 16 MiB of heap per stalled stream: 725
    /// MiB for 50 streams of one client in `tests/tests/hostile.rs`, which a
    /// host without memory overcommit refuses, and Rust aborts on a refused
    /// allocation.) Doubling copies each byte at most once more on average.
    fn append(&mut self, bytes: &[u8], frame_end: usize) {
        let needed = self.payload.len() + bytes.len();
        if needed > self.payload.capacity() {
            // `needed <= frame_end`: the bytes belong to the current frame.
            let target = needed
                .max(self.payload.capacity().saturating_mul(2))
                .max(MIN_GROWTH)
                .min(frame_end);
            self.payload.reserve_exact(target - self.payload.len());
        }
        self.payload.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode, MAX_PAYLOAD_LEN};
    use crate::{encode_request, Request, MAX_MANIFEST_LEN};

    fn frame(msg_type: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(msg_type, payload, &mut out).unwrap();
        out
    }

    #[test]
    fn header_missing_and_frame_left_announce_each_frame_before_its_payload() {
        let wire = [frame(CONTINUATION, &[1; 10]), frame(4, &[2; 5])].concat();
        let mut a = Assembler::for_requests();
        assert_eq!(a.header_missing(), Some(HEADER_LEN));
        assert!(a.feed(&wire[..2]).unwrap().is_none());
        assert_eq!(a.header_missing(), Some(HEADER_LEN - 2));
        assert!(a.feed(&wire[2..HEADER_LEN]).unwrap().is_none());
        assert_eq!((a.header_missing(), a.frame_left()), (None, Some(10)));
        assert!(a.feed(&wire[HEADER_LEN..HEADER_LEN + 4]).unwrap().is_none());
        assert_eq!(a.frame_left(), Some(6));
        let second = 2 * HEADER_LEN + 10;
        assert!(a.feed(&wire[HEADER_LEN + 4..second]).unwrap().is_none());
        assert_eq!((a.header_missing(), a.frame_left()), (None, Some(5)));
        let (t, payload) = a.feed(&wire[second..]).unwrap().unwrap();
        assert_eq!((t, payload.len()), (4, 15));
        assert_eq!((a.header_missing(), a.frame_left()), (None, None));
    }

    #[test]
    fn buffer_never_exceeds_what_was_announced() {
        // Three continuation frames of 100 KiB then a final one, fed in 1 KiB
        // pieces: capacity stays within the announced total at every step.
        let mut asm = Assembler::new(1 << 20);
        let mut wire = Vec::new();
        for _ in 0..3 {
            wire.extend(frame(CONTINUATION, &[1; 100 * 1024]));
        }
        wire.extend(frame(0x0004, &[2; 10]));
        let total = 3 * 100 * 1024 + 10;
        let mut got = None;
        for piece in wire.chunks(1000) {
            if let Some(m) = asm.feed(piece).unwrap() {
                got = Some(m);
            } else if let State::Payload(f) = asm.state {
                assert!(asm.payload.capacity() <= f.end, "{asm:?}");
            }
        }
        let (_, payload) = got.unwrap();
        assert_eq!(payload.len(), total);
        assert!(payload.capacity() <= total);
    }

    #[test]
    fn a_big_announcement_costs_what_arrives() {
        // A 16 MiB continuation frame announced, 1 KiB sent: the buffer
        // holds 64 KiB, not 16 MiB; then it doubles with what arrives.
        let mut asm = Assembler::for_requests();
        let mut wire = ((MAX_PAYLOAD_LEN + 2) as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(&CONTINUATION.to_be_bytes());
        wire.extend_from_slice(&[7; 1024]);
        assert!(asm.feed(&wire).unwrap().is_none());
        assert_eq!(asm.payload.capacity(), MIN_GROWTH);
        let mut sent = 1024;
        while sent < 1 << 20 {
            asm.feed(&[7; 4096]).unwrap();
            sent += 4096;
            assert!(
                asm.payload.capacity() <= (2 * sent).max(MIN_GROWTH),
                "{sent}: {asm:?}"
            );
        }
    }

    #[test]
    fn oversized_frame_is_refused_from_its_header_alone() {
        let mut asm = Assembler::new(1000);
        let header = &frame(0x0001, &[0; 1001])[..HEADER_LEN];
        let err = asm.feed(header).unwrap_err();
        assert_eq!(
            err,
            ProtoError::MessageTooLarge {
                msg_type: 0x0001,
                len: 1001,
                max: 1000
            }
        );
        assert_eq!(asm.payload.capacity(), 0);
        // The error sticks.
        assert_eq!(asm.feed(&[0; 10]).unwrap_err(), err);
        assert_eq!(asm.end_of_stream(), err);
    }

    #[test]
    fn request_caps_apply_per_type_at_the_first_header() {
        // GetKey has an empty payload: announcing 1 byte is already too much.
        let mut asm = Assembler::for_requests();
        let err = asm.feed(&frame(0x0009, b"x")[..HEADER_LEN]).unwrap_err();
        assert!(
            matches!(
                err,
                ProtoError::MessageTooLarge {
                    msg_type: 0x0009,
                    max: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("GetKey request"), "{err}");

        // A response type is unknown to a request reader.
        let mut asm = Assembler::for_requests();
        let err = asm.feed(&frame(0x8001, b"")).unwrap_err();
        assert_eq!(err, ProtoError::UnknownMessage(0x8001));
    }

    #[test]
    fn final_type_cap_applies_before_its_frame_is_read() {
        // 2 full continuation frames (32 MiB) then a HasChunks header: the
        // total is over HasChunks's cap, refused at that header.
        let mut asm = Assembler::for_requests();
        let cont = frame(CONTINUATION, &vec![0; MAX_PAYLOAD_LEN]);
        assert!(asm.feed(&cont).unwrap().is_none());
        assert!(asm.feed(&cont).unwrap().is_none());
        let err = asm.feed(&frame(0x0002, &[0; 4])[..HEADER_LEN]).unwrap_err();
        assert!(
            matches!(
                err,
                ProtoError::MessageTooLarge {
                    msg_type: 0x0002,
                    ..
                }
            ),
            "{err}"
        );
        // A multi-frame request is capped to the largest (Commit) from its
        // first header on.
        let mut asm = Assembler::for_requests();
        let mut fed = 0;
        let err = loop {
            match asm.feed(&cont) {
                Ok(None) => fed += MAX_PAYLOAD_LEN,
                Ok(Some(_)) => unreachable!("continuation frames never complete a message"),
                Err(e) => break e,
            }
        };
        assert!(fed <= MAX_MANIFEST_LEN + 4 && fed + MAX_PAYLOAD_LEN > MAX_MANIFEST_LEN + 4);
        assert!(
            matches!(
                err,
                ProtoError::MessageTooLarge {
                    msg_type: CONTINUATION,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("multi-frame message"), "{err}");
    }

    #[test]
    fn empty_continuation_is_refused() {
        let mut asm = Assembler::new(100);
        assert_eq!(
            asm.feed(&frame(CONTINUATION, b"")).unwrap_err(),
            ProtoError::EmptyContinuation
        );
    }

    #[test]
    fn bytes_after_the_message_are_refused() {
        let mut wire = encode_request(&Request::Status).unwrap();
        wire.push(0);
        let mut asm = Assembler::for_requests();
        assert_eq!(
            asm.feed(&wire).unwrap_err(),
            ProtoError::DataAfterMessage { extra: 1 }
        );
        let mut asm = Assembler::for_requests();
        let wire = encode_request(&Request::Status).unwrap();
        assert!(asm.feed(&wire).unwrap().is_some());
        assert_eq!(asm.feed(&[]), Ok(None));
        assert_eq!(
            asm.feed(b"more").unwrap_err(),
            ProtoError::DataAfterMessage { extra: 4 }
        );
    }

    #[test]
    fn stream_ending_mid_message_is_reported() {
        let wire = encode_request(&Request::GetChunk { id: [3; 32] }).unwrap();
        for cut in 0..wire.len() {
            let mut asm = Assembler::for_requests();
            assert_eq!(asm.feed(&wire[..cut]), Ok(None));
            assert_eq!(
                asm.end_of_stream(),
                ProtoError::StreamEnded { received: cut }
            );
        }
    }
}
