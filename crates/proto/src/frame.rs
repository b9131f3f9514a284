//! Framing: how messages are cut out of a byte stream, and the handshake hello
//! that precedes them.
//!
//! ```text
//! hello (sent once, raw, by each side before any frame; exactly HELLO_LEN = 8 bytes):
//!   0   6  magic "COFFRE"
//!   6   2  protocol version (u16 big-endian) = PROTOCOL_VERSION
//! frame (every message after the hello):
//!   0   4  length (u32 big-endian) of what follows = 2 + payload length
//!   4   2  message type (u16 big-endian)
//!   6   n  payload (n = length - 2)
//! ```
//!
//! This module is sans-IO: [`encode`] appends to a `Vec`, [`decode`] looks at
//! whatever bytes the caller has buffered and says either "here is a frame and
//! it used this many bytes", "I need more bytes" or "this stream is bad". It
//! never reads, never blocks and never allocates, so it is tested and fuzzed
//! without a network.
//!
//! Guarantees:
//!
//! - **Bounded memory.** A length prefix above [`MAX_FRAME_LEN`] is refused as
//!   soon as its 4 bytes are seen, before the caller has any reason to buffer
//!   the body. A reader that grows its buffer only up to what [`decode`] asks
//!   for therefore never holds more than `4 + MAX_FRAME_LEN` bytes per stream,
//!   whatever the peer sends.
//! - **No panics on bad input.** Every malformed input is an `Err`, never a
//!   panic or an out-of-bounds slice.
//! - **Truncation is not an error.** Any strict prefix of a valid frame decodes
//!   to `Ok(None)`; the caller reads more and tries again.
//! - **The hello is fixed-size and unframed**, so a peer that is not coffre
//!   (an HTTP client, a port scanner, an old build) is recognised from 8 bytes,
//!   without trusting any length it sent.

use thiserror::Error;

/// The largest value the length prefix may hold: message type plus payload,
/// not counting the 4 length bytes themselves.
///
/// Why 16 MiB: the largest message in normal use uploads one data blob. A chunk
/// is at most 4 MiB (FastCDC maximum); stored raw when it does not compress,
/// Padmé-padded (at most +128 KiB at that size) and wrapped in the blob header,
/// nonce and tag, it stays under 4.2 MiB, plus a few dozen bytes of message
/// header (chunk id, flags). 16 MiB leaves room to grow the chunk size or batch
/// small blobs without a protocol change, while bounding what a single
/// misbehaving peer can make the server buffer to 16 MiB per stream.
///
/// A message larger than one frame (a big snapshot manifest, a long snapshot
/// list) is cut into several frames by the message layer: every frame but the
/// last has type [`crate::CONTINUATION`] (see [`crate::encode_request`] and
/// [`crate::Assembler`]).
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix.
const LENGTH_LEN: usize = 4;

/// Bytes of the message type that follows the length prefix.
const TYPE_LEN: usize = 2;

/// Bytes before the payload: length prefix and message type.
pub const HEADER_LEN: usize = LENGTH_LEN + TYPE_LEN;

/// The largest payload one frame can carry.
pub const MAX_PAYLOAD_LEN: usize = MAX_FRAME_LEN - TYPE_LEN;

/// The first bytes each side sends: anything else is not a coffre peer.
pub const HELLO_MAGIC: [u8; 6] = *b"COFFRE";

/// The newest protocol version this build speaks.
///
/// - 1: the first release.
/// - 2: adds `GetChunks` and `PutChunks` (many small blobs in one request).
/// - 3: adds `Rekey` (the client rolls its device credential, so that a
///   copied one is refused) and the error code `Superseded`; `ChunkTrust`,
///   `Vouch` and `GetChunkCopy` (dedup trust: a device skips another
///   device's chunk only after it verified that copy).
/// - 4: adds `ReplaceKey` (an admin device changes the structure's
///   passphrase: the same master key wrapped anew, swapped on the server only
///   if the key file is still the one the device read) and the error code
///   `Conflict`; the server reads snapshot manifests of version 2 (a public
///   count of the run's problems, for the board), so a client seals them only
///   for a server of version 4 or later (issue 18).
/// - 5: the server reads snapshot manifests of version 3 (a public
///   `checkpoint` flag: a partial snapshot of a long first backup, which
///   retention replaces by the final one), so a client makes checkpoints
///   only for a server of version 5 or later (issue 19). No message changes.
pub const PROTOCOL_VERSION: u16 = 5;

/// The oldest protocol version this build still speaks: a server upgraded
/// first keeps serving the PCs not upgraded yet.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// Bytes of the hello: magic and version.
pub const HELLO_LEN: usize = HELLO_MAGIC.len() + 2;

/// One decoded frame, borrowing its payload from the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// What the payload is; the message layer gives the numbers meaning.
    pub msg_type: u16,
    /// The message body, exactly as sent.
    pub payload: &'a [u8],
}

/// Why bytes could not be framed or a hello was refused.
///
/// Every decoding error means the stream cannot be trusted any more: the only
/// safe reaction is to close the connection (after telling the user the
/// message).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// [`encode`] was given a payload that does not fit one frame.
    #[error(
        "message payload of {len} bytes is too large for one frame (at most {max} bytes): \
         split it into several messages"
    )]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// [`MAX_PAYLOAD_LEN`].
        max: usize,
    },

    /// The peer announced a frame larger than [`MAX_FRAME_LEN`].
    #[error(
        "peer announced a frame of {len} bytes, over the {max}-byte cap: refusing it without \
         reading it; the peer is misbehaving or not speaking this protocol, close the connection \
         and check that both sides run coffre"
    )]
    FrameTooLarge {
        /// The length the peer announced.
        len: u32,
        /// [`MAX_FRAME_LEN`].
        max: usize,
    },

    /// The peer announced a frame too short to hold the 2-byte message type.
    #[error(
        "peer announced a frame of {len} bytes, too short to hold the 2-byte message type: \
         the peer is misbehaving or not speaking this protocol, close the connection"
    )]
    FrameTooShort {
        /// The length the peer announced.
        len: u32,
    },

    /// The first bytes are not [`HELLO_MAGIC`]: the peer is not coffre.
    #[error(
        "the peer is not a coffre peer (its first bytes are {found:02x?}, expected \"COFFRE\"): \
         check the server address and port"
    )]
    NotCoffre {
        /// The bytes found where the magic should be (as many as were given).
        found: Vec<u8>,
    },

    /// The hello has the magic but not the right length.
    #[error(
        "handshake hello is {len} bytes, expected {HELLO_LEN}: the peer is misbehaving, \
         close the connection"
    )]
    BadHelloLength {
        /// The length received.
        len: usize,
    },

    /// The peer speaks only a protocol version older than this build's oldest.
    #[error(
        "unsupported protocol version {version} (this build speaks \
         {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}): upgrade the peer to this program's release"
    )]
    UnsupportedVersion {
        /// The version the peer announced.
        version: u16,
    },
}

/// Appends one frame carrying `payload` as message `msg_type` to `out`.
///
/// `out` is not cleared, so several frames can be batched in one buffer. On
/// error nothing is appended.
pub fn encode(msg_type: u16, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(FrameError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_LEN,
        });
    }
    // Cannot truncate: MAX_FRAME_LEN fits in a u32 (checked at compile time below).
    let len = (TYPE_LEN + payload.len()) as u32;
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&msg_type.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

const _: () = assert!(MAX_FRAME_LEN <= u32::MAX as usize);

/// Decodes the frame at the start of `buf`.
///
/// Returns `Ok(Some((frame, consumed)))` when a whole frame is buffered, where
/// `consumed` is how many bytes of `buf` it used (drop them before the next
/// call); `Ok(None)` when `buf` is a strict prefix of a frame and more bytes are
/// needed; and an error as soon as the bytes seen cannot start a valid frame.
/// The length is checked against [`MAX_FRAME_LEN`] as soon as its 4 bytes are
/// buffered, so a reader never needs to grow its buffer to learn that a frame
/// is oversized.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(len) = decode_length(buf)? else {
        return Ok(None);
    };
    let Some(body) = buf[LENGTH_LEN..].get(..len) else {
        return Ok(None);
    };
    let (type_bytes, payload) = body.split_at(TYPE_LEN);
    let msg_type = u16::from_be_bytes([type_bytes[0], type_bytes[1]]);
    Ok(Some((Frame { msg_type, payload }, LENGTH_LEN + len)))
}

/// Checks the length prefix at the start of `buf`, if its 4 bytes are there.
///
/// Returns the declared length (message type plus payload), `Ok(None)` when
/// fewer than 4 bytes are buffered, or the error [`decode`] would give. Shared
/// with the message assembler, which reads frames piecewise.
pub(crate) fn decode_length(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(len_bytes) = buf.first_chunk::<LENGTH_LEN>() else {
        return Ok(None);
    };
    let declared = u32::from_be_bytes(*len_bytes);
    let len = match usize::try_from(declared) {
        Ok(len) if len <= MAX_FRAME_LEN => len,
        _ => {
            return Err(FrameError::FrameTooLarge {
                len: declared,
                max: MAX_FRAME_LEN,
            })
        }
    };
    if len < TYPE_LEN {
        return Err(FrameError::FrameTooShort { len: declared });
    }
    Ok(Some(len))
}

/// The hello a client sends: [`HELLO_MAGIC`] then [`PROTOCOL_VERSION`].
pub fn encode_hello() -> [u8; HELLO_LEN] {
    encode_hello_at(PROTOCOL_VERSION)
}

/// A hello announcing `version`: the server answers a client's hello with the
/// version both will speak (what [`decode_hello`] returned for it).
pub fn encode_hello_at(version: u16) -> [u8; HELLO_LEN] {
    let mut hello = [0; HELLO_LEN];
    hello[..HELLO_MAGIC.len()].copy_from_slice(&HELLO_MAGIC);
    hello[HELLO_MAGIC.len()..].copy_from_slice(&version.to_be_bytes());
    hello
}

/// Checks the peer's hello and returns the protocol version to speak: the
/// lower of the peer's and [`PROTOCOL_VERSION`].
///
/// The client speaks first, announcing its newest version; the server answers
/// with the version returned here, and the client then speaks that one. A
/// peer older than [`MIN_PROTOCOL_VERSION`] is refused.
///
/// `hello` is exactly the [`HELLO_LEN`] bytes the peer sent first. A wrong
/// magic is reported as [`FrameError::NotCoffre`] even if fewer bytes were
/// given, so that a stranger is named as such rather than as a short hello; a
/// coffre peer with another version gets [`FrameError::UnsupportedVersion`],
/// whose message says which side to upgrade.
pub fn decode_hello(hello: &[u8]) -> Result<u16, FrameError> {
    let seen = hello.len().min(HELLO_MAGIC.len());
    if hello[..seen] != HELLO_MAGIC[..seen] {
        return Err(FrameError::NotCoffre {
            found: hello[..seen].to_vec(),
        });
    }
    let Ok(&[_, _, _, _, _, _, hi, lo]) = <&[u8; HELLO_LEN]>::try_from(hello) else {
        return Err(FrameError::BadHelloLength { len: hello.len() });
    };
    match u16::from_be_bytes([hi, lo]) {
        version if version < MIN_PROTOCOL_VERSION => {
            Err(FrameError::UnsupportedVersion { version })
        }
        version => Ok(version.min(PROTOCOL_VERSION)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(msg_type: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(msg_type, payload, &mut out).unwrap();
        out
    }

    #[test]
    fn layout_is_length_type_payload_big_endian() {
        assert_eq!(
            frame(0x0102, b"abc"),
            [0, 0, 0, 5, 0x01, 0x02, b'a', b'b', b'c']
        );
        assert_eq!(frame(7, b""), [0, 0, 0, 2, 0, 7]);
    }

    #[test]
    fn empty_payload_round_trips() {
        let bytes = frame(9, b"");
        let (f, used) = decode(&bytes).unwrap().unwrap();
        assert_eq!(
            f,
            Frame {
                msg_type: 9,
                payload: b""
            }
        );
        assert_eq!(used, HEADER_LEN);
    }

    #[test]
    fn every_truncation_needs_more_bytes() {
        let bytes = frame(0xBEEF, b"some payload bytes");
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), Ok(None), "prefix of {cut} bytes");
        }
        assert!(decode(&bytes).unwrap().is_some());
    }

    #[test]
    fn oversized_length_is_refused_from_the_prefix_alone() {
        let too_big = (MAX_FRAME_LEN + 1) as u32;
        let err = decode(&too_big.to_be_bytes()).unwrap_err();
        assert_eq!(
            err,
            FrameError::FrameTooLarge {
                len: too_big,
                max: MAX_FRAME_LEN
            }
        );
        let msg = err.to_string();
        assert!(msg.contains(&too_big.to_string()), "{msg}");
        assert!(msg.contains(&MAX_FRAME_LEN.to_string()), "{msg}");

        let err = decode(&u32::MAX.to_be_bytes()).unwrap_err();
        assert!(matches!(err, FrameError::FrameTooLarge { len, .. } if len == u32::MAX));
    }

    #[test]
    fn largest_frame_is_accepted() {
        let payload = vec![0xA5; MAX_PAYLOAD_LEN];
        let bytes = frame(1, &payload);
        assert_eq!(bytes.len(), LENGTH_LEN + MAX_FRAME_LEN);
        let (f, used) = decode(&bytes).unwrap().unwrap();
        assert_eq!((f.payload.len(), used), (MAX_PAYLOAD_LEN, bytes.len()));
    }

    #[test]
    fn oversized_payload_is_refused_and_nothing_written() {
        let payload = vec![0; MAX_PAYLOAD_LEN + 1];
        let mut out = b"kept".to_vec();
        let err = encode(1, &payload, &mut out).unwrap_err();
        assert_eq!(
            err,
            FrameError::PayloadTooLarge {
                len: MAX_PAYLOAD_LEN + 1,
                max: MAX_PAYLOAD_LEN
            }
        );
        assert_eq!(out, b"kept");
    }

    #[test]
    fn frame_too_short_for_the_type_is_refused() {
        for len in [0u32, 1] {
            let mut bytes = len.to_be_bytes().to_vec();
            let err = decode(&bytes).unwrap_err();
            assert_eq!(err, FrameError::FrameTooShort { len });
            bytes.extend_from_slice(&[0xFF; 8]);
            assert_eq!(
                decode(&bytes).unwrap_err(),
                FrameError::FrameTooShort { len }
            );
            assert!(err.to_string().contains("too short"), "{err}");
        }
    }

    #[test]
    fn decode_stops_at_the_frame_boundary() {
        let mut bytes = frame(1, b"first");
        encode(2, b"second", &mut bytes).unwrap();
        let (f, used) = decode(&bytes).unwrap().unwrap();
        assert_eq!(
            f,
            Frame {
                msg_type: 1,
                payload: b"first"
            }
        );
        let (f, rest) = decode(&bytes[used..]).unwrap().unwrap();
        assert_eq!(
            f,
            Frame {
                msg_type: 2,
                payload: b"second"
            }
        );
        assert_eq!(used + rest, bytes.len());
    }

    #[test]
    fn hello_round_trips() {
        let hello = encode_hello();
        assert_eq!(&hello, b"COFFRE\x00\x05");
        assert_eq!(decode_hello(&hello), Ok(PROTOCOL_VERSION));
    }

    #[test]
    fn hello_settles_on_the_older_version() {
        // A PC not upgraded yet: the server speaks its version.
        assert_eq!(decode_hello(&encode_hello_at(1)), Ok(1));
        assert_eq!(decode_hello(&encode_hello_at(2)), Ok(2));
        assert_eq!(decode_hello(&encode_hello_at(3)), Ok(3));
        // A newer peer: this build speaks its own newest.
        assert_eq!(decode_hello(&encode_hello_at(9)), Ok(PROTOCOL_VERSION));
    }

    #[test]
    fn hello_with_wrong_magic_is_not_a_coffre_peer() {
        let err = decode_hello(b"GET / HTTP/1.1\r\n").unwrap_err();
        assert_eq!(
            err,
            FrameError::NotCoffre {
                found: b"GET / ".to_vec()
            }
        );
        assert!(err.to_string().contains("not a coffre peer"), "{err}");
        // A stranger that sent only a few bytes is still a stranger.
        assert!(matches!(
            decode_hello(b"SSH"),
            Err(FrameError::NotCoffre { .. })
        ));
    }

    #[test]
    fn hello_with_too_old_a_version_says_which_side_to_upgrade() {
        let err = decode_hello(&encode_hello_at(0)).unwrap_err();
        assert_eq!(err, FrameError::UnsupportedVersion { version: 0 });
        assert_eq!(
            err.to_string(),
            "unsupported protocol version 0 (this build speaks 1 to 5): \
             upgrade the peer to this program's release"
        );
    }

    #[test]
    fn hello_of_the_wrong_length_is_refused() {
        assert_eq!(
            decode_hello(b"COFFRE\x00"),
            Err(FrameError::BadHelloLength { len: 7 })
        );
        assert_eq!(
            decode_hello(b"COFFRE\x00\x01\x00"),
            Err(FrameError::BadHelloLength { len: 9 })
        );
        assert_eq!(
            decode_hello(b""),
            Err(FrameError::BadHelloLength { len: 0 })
        );
    }

    proptest! {
        #[test]
        fn round_trip(msg_type: u16, payload in prop::collection::vec(any::<u8>(), 0..4096),
                      trailing in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = frame(msg_type, &payload);
            let frame_len = bytes.len();
            bytes.extend_from_slice(&trailing);
            let (f, used) = decode(&bytes).unwrap().unwrap();
            prop_assert_eq!(f, Frame { msg_type, payload: &payload });
            prop_assert_eq!(used, frame_len);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some((f, used))) = decode(&bytes) {
                prop_assert!(used <= bytes.len());
                prop_assert_eq!(used, HEADER_LEN + f.payload.len());
            }
            let _ = decode_hello(&bytes);
        }
    }
}
