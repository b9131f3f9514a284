//! Messages through the public API: round trips of every variant, multi-frame
//! messages fed in random pieces, caps enforced before buffering, and hostile
//! bytes that must give errors, never panics.

use coffre_proto::{
    decode, decode_request, decode_request_owned, decode_response, decode_response_owned, encode,
    encode_request, encode_response, max_request_len, max_response_len, Assembler, ChunkState,
    ErrorCode, ErrorReply, FrameError, ProtoError, Request, Response, Role, SnapshotEntry,
    CONTINUATION, MAX_BLOBS_PER_PUT, MAX_BLOB_LEN, MAX_CHUNKS_REPLY_BLOBS_LEN, MAX_IDS_PER_GET,
    MAX_IDS_PER_REQUEST, MAX_KEY_FILE_LEN, MAX_MANIFEST_LEN, MAX_NAME_LEN, MAX_PAYLOAD_LEN,
    MAX_PUT_BLOBS_LEN,
};
use proptest::prelude::*;

/// A small deterministic generator for piece sizes (no extra dependency).
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Feeds `wire` in pieces of 1..=max_piece bytes; the message must come out
/// exactly with the last piece.
fn assemble(mut asm: Assembler, wire: &[u8], seed: u64, max_piece: usize) -> (u16, Vec<u8>) {
    let mut rng = XorShift(seed | 1);
    let mut rest = wire;
    loop {
        let n = (1 + rng.below(max_piece)).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        match asm.feed(piece).unwrap() {
            Some(message) => {
                assert!(rest.is_empty(), "message ended {} bytes early", rest.len());
                return message;
            }
            None => assert!(!rest.is_empty(), "wire ended without a message"),
        }
    }
}

/// The frames of `wire`, as (type, payload length).
fn frames(wire: &[u8]) -> Vec<(u16, usize)> {
    let mut out = Vec::new();
    let mut rest = wire;
    while let Some((frame, used)) = decode(rest).unwrap() {
        out.push((frame.msg_type, frame.payload.len()));
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
    out
}

fn one_of_each_request() -> Vec<Request> {
    vec![
        Request::Auth { secret: [9; 32] },
        Request::HasChunks {
            ids: vec![[1; 32], [2; 32]],
        },
        Request::PutChunk {
            id: [3; 32],
            blob: b"ciphertext".to_vec(),
        },
        Request::Commit {
            manifest: b"manifest".to_vec(),
        },
        Request::ListSnapshots,
        Request::GetManifest { snapshot: [4; 32] },
        Request::GetChunk { id: [5; 32] },
        Request::PutKey {
            key_file: vec![6; 106],
        },
        Request::GetKey,
        Request::Forget { snapshot: [7; 32] },
        Request::Status,
        Request::GetChunks {
            ids: vec![[1; 32], [2; 32], [3; 32]],
        },
        Request::PutChunks {
            blobs: vec![([1; 32], b"one".to_vec()), ([2; 32], Vec::new())],
        },
        Request::Rekey { secret: [10; 32] },
        Request::ChunkTrust {
            ids: vec![[1; 32], [2; 32]],
        },
        Request::Vouch { ids: vec![[3; 32]] },
        Request::GetChunkCopy {
            id: [4; 32],
            copy: 2,
        },
        Request::ReplaceKey {
            expected: [5; 32],
            key_file: vec![6; 106],
        },
    ]
}

fn one_of_each_response() -> Vec<Response> {
    vec![
        Response::AuthOk {
            subscriber: "Les Amis du Vélo".into(),
            device: "compta-pc".into(),
            role: Role::Backup,
        },
        Response::HasChunks {
            have: vec![true, false, true],
        },
        Response::Stored { new: true },
        Response::Committed { snapshot: [8; 32] },
        Response::Snapshots {
            list: vec![SnapshotEntry {
                id: [9; 32],
                time: 1_795_000_000,
                device: "compta-pc".into(),
                logical_bytes: 123_456_789,
                file_count: 4321,
            }],
        },
        Response::Manifest {
            bytes: b"manifest".to_vec(),
        },
        Response::Chunk {
            blob: b"blob".to_vec(),
        },
        Response::KeyStored,
        Response::Key {
            key_file: Some(vec![1; 106]),
        },
        Response::Forgotten,
        Response::Status {
            subscriber: "amie".into(),
            quota_bytes: 50 << 30,
            used_bytes: 12 << 30,
            snapshots: 42,
            last_backup: Some(1_795_000_000),
        },
        Response::Chunks {
            blobs: vec![Some(b"one".to_vec()), None, Some(Vec::new())],
        },
        Response::StoredChunks {
            new: vec![true, false, true, true, false, false, true, true, true],
        },
        Response::Rekeyed { current: true },
        Response::ChunkTrust {
            states: vec![
                ChunkState::Trusted,
                ChunkState::Untrusted,
                ChunkState::Absent,
            ],
        },
        Response::Vouched { recorded: 3 },
        Response::ChunkCopy {
            blob: b"copy".to_vec(),
        },
        Response::KeyReplaced,
        Response::Error(ErrorReply::quota_exceeded(10, 5)),
    ]
}

/// Exhaustive on purpose: a new variant fails to compile here until it is
/// added to `one_of_each_*`.
fn request_index(r: &Request) -> usize {
    match r {
        Request::Auth { .. } => 0,
        Request::HasChunks { .. } => 1,
        Request::PutChunk { .. } => 2,
        Request::Commit { .. } => 3,
        Request::ListSnapshots => 4,
        Request::GetManifest { .. } => 5,
        Request::GetChunk { .. } => 6,
        Request::PutKey { .. } => 7,
        Request::GetKey => 8,
        Request::Forget { .. } => 9,
        Request::Status => 10,
        Request::GetChunks { .. } => 11,
        Request::PutChunks { .. } => 12,
        Request::Rekey { .. } => 13,
        Request::ChunkTrust { .. } => 14,
        Request::Vouch { .. } => 15,
        Request::GetChunkCopy { .. } => 16,
        Request::ReplaceKey { .. } => 17,
    }
}

fn response_index(r: &Response) -> usize {
    match r {
        Response::AuthOk { .. } => 0,
        Response::HasChunks { .. } => 1,
        Response::Stored { .. } => 2,
        Response::Committed { .. } => 3,
        Response::Snapshots { .. } => 4,
        Response::Manifest { .. } => 5,
        Response::Chunk { .. } => 6,
        Response::KeyStored => 7,
        Response::Key { .. } => 8,
        Response::Forgotten => 9,
        Response::Status { .. } => 10,
        Response::Chunks { .. } => 11,
        Response::StoredChunks { .. } => 12,
        Response::Rekeyed { .. } => 13,
        Response::ChunkTrust { .. } => 14,
        Response::Vouched { .. } => 15,
        Response::ChunkCopy { .. } => 16,
        Response::KeyReplaced => 17,
        Response::Error(_) => 18,
    }
}

fn check_request(req: &Request) {
    let wire = encode_request(req).unwrap();
    let (msg_type, payload) = assemble(Assembler::for_requests(), &wire, wire.len() as u64, 7);
    assert_eq!(msg_type, req.msg_type());
    assert!(payload.len() <= max_request_len(msg_type).unwrap());
    assert_eq!(&decode_request(msg_type, &payload).unwrap(), req);
    assert_eq!(&decode_request_owned(msg_type, payload).unwrap(), req);
}

fn check_response(resp: &Response) {
    let wire = encode_response(resp).unwrap();
    let (msg_type, payload) = assemble(Assembler::for_responses(), &wire, wire.len() as u64, 7);
    assert_eq!(msg_type, resp.msg_type());
    assert!(payload.len() <= max_response_len(msg_type).unwrap());
    assert_eq!(&decode_response(msg_type, &payload).unwrap(), resp);
    assert_eq!(&decode_response_owned(msg_type, payload).unwrap(), resp);
}

#[test]
fn every_variant_round_trips() {
    let requests = one_of_each_request();
    let mut seen: Vec<_> = requests.iter().map(request_index).collect();
    seen.dedup();
    assert_eq!(seen, (0..18).collect::<Vec<_>>());
    requests.iter().for_each(check_request);

    let responses = one_of_each_response();
    let mut seen: Vec<_> = responses.iter().map(response_index).collect();
    seen.dedup();
    assert_eq!(seen, (0..19).collect::<Vec<_>>());
    responses.iter().for_each(check_response);
    check_response(&Response::Key { key_file: None });
    check_response(&Response::Rekeyed { current: false });
    check_response(&Response::Status {
        subscriber: String::new(),
        quota_bytes: 0,
        used_bytes: 0,
        snapshots: 0,
        last_backup: None,
    });
    check_response(&Response::Error(ErrorReply::new(
        ErrorCode::Other(4242),
        "newer",
    )));
}

#[test]
fn types_are_numbered_in_pairs() {
    for (req, resp) in one_of_each_request().iter().zip(one_of_each_response()) {
        assert_eq!(
            req.msg_type() | 0x8000,
            resp.msg_type(),
            "{req:?} / {resp:?}"
        );
    }
    assert_eq!(
        Response::Error(ErrorReply::new(ErrorCode::Busy, "")).msg_type(),
        0x8000
    );
}

#[test]
fn a_40_mib_commit_spans_three_frames_and_reassembles_from_random_pieces() {
    let manifest: Vec<u8> = (0..40 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let req = Request::Commit { manifest };
    let wire = encode_request(&req).unwrap();
    let payload_len = 4 + 40 * 1024 * 1024;
    assert_eq!(
        frames(&wire),
        [
            (CONTINUATION, MAX_PAYLOAD_LEN),
            (CONTINUATION, MAX_PAYLOAD_LEN),
            (0x0004, payload_len - 2 * MAX_PAYLOAD_LEN)
        ]
    );
    for (seed, max_piece) in [(1, 1 << 20), (2, 70_000), (3, 3 << 20)] {
        let (msg_type, payload) = assemble(Assembler::for_requests(), &wire, seed, max_piece);
        assert_eq!(payload.len(), payload_len);
        assert_eq!(decode_request_owned(msg_type, payload).unwrap(), req);
    }
}

#[test]
fn a_long_snapshot_list_and_a_large_manifest_span_frames() {
    let list: Vec<SnapshotEntry> = (0..60_000u64)
        .map(|i| SnapshotEntry {
            id: [(i % 251) as u8; 32],
            time: i as i64 - 30_000,
            device: "d".repeat(MAX_NAME_LEN),
            logical_bytes: i << 20,
            file_count: i,
        })
        .collect();
    let resp = Response::Snapshots { list };
    let wire = encode_response(&resp).unwrap();
    assert_eq!(frames(&wire).len(), 2);
    let (msg_type, payload) = assemble(Assembler::for_responses(), &wire, 9, 1 << 20);
    assert_eq!(decode_response_owned(msg_type, payload).unwrap(), resp);

    let resp = Response::Manifest {
        bytes: vec![0x5A; MAX_PAYLOAD_LEN],
    };
    let wire = encode_response(&resp).unwrap();
    // 4 length bytes push it just over one frame.
    assert_eq!(
        frames(&wire),
        [(CONTINUATION, MAX_PAYLOAD_LEN), (0x8006, 4)]
    );
    let (msg_type, payload) = assemble(Assembler::for_responses(), &wire, 10, 1 << 22);
    assert_eq!(decode_response_owned(msg_type, payload).unwrap(), resp);
}

#[test]
fn a_full_chunks_reply_encodes_and_one_byte_more_is_refused() {
    // The most ids, and blobs filling the byte budget exactly.
    check_request(&Request::GetChunks {
        ids: vec![[0; 32]; MAX_IDS_PER_GET],
    });
    assert!(encode_request(&Request::GetChunks {
        ids: vec![[0; 32]; MAX_IDS_PER_GET + 1],
    })
    .is_err());
    let mut blobs = vec![Some(vec![1u8; MAX_BLOB_LEN])];
    blobs.push(Some(vec![2u8; MAX_CHUNKS_REPLY_BLOBS_LEN - MAX_BLOB_LEN]));
    blobs.resize(MAX_IDS_PER_GET, None);
    let full = Response::Chunks { blobs };
    check_response(&full);

    let Response::Chunks { mut blobs } = full else {
        unreachable!()
    };
    blobs[1].as_mut().unwrap().push(3);
    let over = Response::Chunks { blobs };
    let err = encode_response(&over).unwrap_err();
    assert!(
        matches!(err, ProtoError::FieldTooLarge { field: "blobs", .. }),
        "{err}"
    );
    // Forged by hand, the same reply is refused by the decoder too.
    let Response::Chunks { blobs } = &over else {
        unreachable!()
    };
    let mut payload = (blobs.len() as u32).to_le_bytes().to_vec();
    for blob in blobs {
        match blob {
            Some(b) => {
                payload.push(1);
                payload.extend_from_slice(&(b.len() as u32).to_le_bytes());
                payload.extend_from_slice(b);
            }
            None => payload.push(0),
        }
    }
    let err = decode_response(0x800C, &payload).unwrap_err();
    assert!(err.to_string().contains("blobs"), "{err}");
}

#[test]
fn a_full_put_chunks_encodes_and_one_byte_more_is_refused() {
    let mut blobs = vec![([1; 32], vec![1u8; MAX_BLOB_LEN])];
    blobs.push(([2; 32], vec![2u8; MAX_PUT_BLOBS_LEN - MAX_BLOB_LEN]));
    blobs.resize(MAX_BLOBS_PER_PUT, ([3; 32], Vec::new()));
    let full = Request::PutChunks { blobs };
    check_request(&full);
    let Request::PutChunks { mut blobs } = full else {
        unreachable!()
    };
    blobs[1].1.push(3);
    let err = encode_request(&Request::PutChunks { blobs }).unwrap_err();
    assert!(
        matches!(err, ProtoError::FieldTooLarge { field: "blobs", .. }),
        "{err}"
    );
    let err = encode_request(&Request::PutChunks {
        blobs: vec![([0; 32], Vec::new()); MAX_BLOBS_PER_PUT + 1],
    })
    .unwrap_err();
    assert!(
        matches!(err, ProtoError::FieldTooLarge { field: "blobs", .. }),
        "{err}"
    );
}

#[test]
fn the_largest_allowed_fields_encode_and_one_more_is_refused() {
    let ids = Request::HasChunks {
        ids: vec![[0; 32]; MAX_IDS_PER_REQUEST],
    };
    check_request(&ids);
    let err = encode_request(&Request::HasChunks {
        ids: vec![[0; 32]; MAX_IDS_PER_REQUEST + 1],
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            ProtoError::FieldTooLarge {
                field: "ids",
                len: 65_537,
                max: 65_536,
                ..
            }
        ),
        "{err}"
    );

    check_request(&Request::PutChunk {
        id: [1; 32],
        blob: vec![2; MAX_BLOB_LEN],
    });
    let err = encode_request(&Request::PutChunk {
        id: [1; 32],
        blob: vec![2; MAX_BLOB_LEN + 1],
    })
    .unwrap_err();
    assert!(
        matches!(err, ProtoError::FieldTooLarge { field: "blob", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("PutChunk request"), "{err}");

    let err = encode_response(&Response::AuthOk {
        subscriber: "s".repeat(MAX_NAME_LEN + 1),
        device: "d".into(),
        role: Role::Admin,
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            ProtoError::FieldTooLarge {
                field: "subscriber",
                ..
            }
        ),
        "{err}"
    );

    let err = encode_request(&Request::PutKey {
        key_file: vec![0; 1025],
    })
    .unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::TooLarge);

    check_request(&Request::ReplaceKey {
        expected: [1; 32],
        key_file: vec![0; MAX_KEY_FILE_LEN],
    });
    let err = encode_request(&Request::ReplaceKey {
        expected: [1; 32],
        key_file: vec![0; MAX_KEY_FILE_LEN + 1],
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            ProtoError::FieldTooLarge {
                field: "key_file",
                len: 1025,
                max: 1024,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("ReplaceKey request"), "{err}");
}

#[test]
fn oversized_messages_are_refused_at_the_header_without_buffering() {
    // A 2 MiB Commit is one frame: a 1 MiB assembler refuses it from the
    // 6-byte header alone.
    let wire = encode_request(&Request::Commit {
        manifest: vec![0; 2 << 20],
    })
    .unwrap();
    let mut asm = Assembler::new(1 << 20);
    let err = asm.feed(&wire[..6]).unwrap_err();
    assert!(
        matches!(
            err,
            ProtoError::MessageTooLarge {
                msg_type: 0x0004,
                max: 1_048_576,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.error_code(), ErrorCode::TooLarge);

    // A 40 MiB Commit against a 20 MiB cap: the first frame is taken, the
    // second header is refused before any of its payload.
    let wire = encode_request(&Request::Commit {
        manifest: vec![0; 40 << 20],
    })
    .unwrap();
    let first = 6 + MAX_PAYLOAD_LEN;
    let mut asm = Assembler::new(20 << 20);
    assert_eq!(asm.feed(&wire[..first]), Ok(None));
    let err = asm.feed(&wire[first..first + 6]).unwrap_err();
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

    // A frame over the frame cap is refused from its 4 length bytes.
    let mut asm = Assembler::for_requests();
    let err = asm.feed(&[0x01, 0x00, 0x00, 0x03]).unwrap_err();
    assert!(
        matches!(err, ProtoError::Frame(FrameError::FrameTooLarge { .. })),
        "{err}"
    );

    // The server's assembler knows the cap of each type: a PutChunk frame
    // announcing more than a blob can be is refused at its header.
    let mut header = Vec::new();
    let len = (2 + max_request_len(0x0003).unwrap() + 1) as u32;
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(&0x0003u16.to_be_bytes());
    let err = Assembler::for_requests().feed(&header).unwrap_err();
    assert!(
        matches!(
            err,
            ProtoError::MessageTooLarge {
                msg_type: 0x0003,
                ..
            }
        ),
        "{err}"
    );
    // And a Commit may be no larger than its manifest cap.
    assert_eq!(max_request_len(0x0004), Some(4 + MAX_MANIFEST_LEN));
}

#[test]
fn a_continuation_followed_by_garbage_is_refused() {
    let mut cont = Vec::new();
    encode(CONTINUATION, &[1; 100], &mut cont).unwrap();

    // Garbage length prefix.
    let mut wire = cont.clone();
    wire.extend_from_slice(&[0xFF; 16]);
    let err = Assembler::for_requests().feed(&wire).unwrap_err();
    assert!(
        matches!(err, ProtoError::Frame(FrameError::FrameTooLarge { .. })),
        "{err}"
    );

    // A frame too short to hold a type.
    let mut wire = cont.clone();
    wire.extend_from_slice(&[0, 0, 0, 1, 0]);
    let err = Assembler::for_requests().feed(&wire).unwrap_err();
    assert!(
        matches!(err, ProtoError::Frame(FrameError::FrameTooShort { len: 1 })),
        "{err}"
    );

    // A final frame of an unknown type, or of the other direction.
    for bad_type in [0x1234, 0x8003] {
        let mut wire = cont.clone();
        encode(bad_type, b"xx", &mut wire).unwrap();
        let err = Assembler::for_requests().feed(&wire).unwrap_err();
        assert_eq!(err, ProtoError::UnknownMessage(bad_type));
    }

    // A well-framed message whose payload is garbage for its type.
    let mut wire = cont.clone();
    encode(0x0004, b"", &mut wire).unwrap();
    let (msg_type, payload) = Assembler::for_requests().feed(&wire).unwrap().unwrap();
    let err = decode_request_owned(msg_type, payload).unwrap_err();
    assert!(
        matches!(
            err,
            ProtoError::FieldTooLarge { .. } | ProtoError::PayloadTruncated { .. }
        ),
        "{err}"
    );

    // An empty continuation.
    let mut wire = cont;
    encode(CONTINUATION, b"", &mut wire).unwrap();
    let err = Assembler::for_requests().feed(&wire).unwrap_err();
    assert_eq!(err, ProtoError::EmptyContinuation);
}

#[test]
fn unknown_types_are_named_in_the_error() {
    let err = decode_request(0x1234, b"").unwrap_err();
    assert_eq!(err, ProtoError::UnknownMessage(0x1234));
    assert!(
        err.to_string().starts_with("unknown message type 0x1234"),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade"), "{err}");
    assert_eq!(
        decode_request(0x8001, b"").unwrap_err(),
        ProtoError::UnknownMessage(0x8001)
    );
    assert_eq!(
        decode_response(0x0001, &[0; 32]).unwrap_err(),
        ProtoError::UnknownMessage(1)
    );
    assert_eq!(
        decode_response(CONTINUATION, b"").unwrap_err(),
        ProtoError::UnknownMessage(CONTINUATION)
    );
}

#[test]
fn every_truncated_or_extended_payload_is_an_error() {
    let requests = one_of_each_request()
        .into_iter()
        .map(|r| (r.msg_type(), encode_request(&r).unwrap()));
    let responses = one_of_each_response()
        .into_iter()
        .map(|r| (r.msg_type(), encode_response(&r).unwrap()));
    for (msg_type, wire) in requests.chain(responses) {
        let payload = &wire[6..];
        let decode_any = |p: &[u8]| {
            if msg_type & 0x8000 == 0 {
                decode_request(msg_type, p).map(|_| ())
            } else {
                decode_response(msg_type, p).map(|_| ())
            }
        };
        assert_eq!(decode_any(payload), Ok(()));
        for cut in 0..payload.len() {
            let err = decode_any(&payload[..cut]).unwrap_err();
            assert!(
                matches!(
                    err,
                    ProtoError::PayloadTruncated { .. } | ProtoError::TrailingBytes { .. }
                ),
                "type {msg_type:#06x} cut at {cut}: {err}"
            );
        }
        let mut longer = payload.to_vec();
        longer.push(0);
        let err = decode_any(&longer).unwrap_err();
        assert!(
            matches!(err, ProtoError::TrailingBytes { extra: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("unexpected bytes"), "{err}");
    }
}

#[test]
fn invalid_field_values_are_refused() {
    let err = decode_response(0x8003, &[2]).unwrap_err();
    assert!(
        matches!(err, ProtoError::InvalidField { field: "new", .. }),
        "{err}"
    );

    let mut auth_ok = encode_response(&Response::AuthOk {
        subscriber: "s".into(),
        device: "d".into(),
        role: Role::Admin,
    })
    .unwrap()[6..]
        .to_vec();
    *auth_ok.last_mut().unwrap() = 3;
    let err = decode_response(0x8001, &auth_ok).unwrap_err();
    assert!(
        matches!(err, ProtoError::InvalidField { field: "role", .. }),
        "{err}"
    );
    auth_ok[4] = 0xFF; // the subscriber's one byte: not UTF-8
    *auth_ok.last_mut().unwrap() = 1;
    let err = decode_response(0x8001, &auth_ok).unwrap_err();
    assert!(
        matches!(
            err,
            ProtoError::InvalidField {
                field: "subscriber",
                ..
            }
        ),
        "{err}"
    );

    // 3 flags, but bit 3 of the bitmap set.
    let err = decode_response(0x8002, &[3, 0, 0, 0, 0b1000]).unwrap_err();
    assert!(
        matches!(err, ProtoError::InvalidField { field: "have", .. }),
        "{err}"
    );

    let err = decode_response(0x8009, &[7]).unwrap_err();
    assert!(
        matches!(
            err,
            ProtoError::InvalidField {
                field: "present",
                ..
            }
        ),
        "{err}"
    );

    // A count far beyond the bytes present is refused before allocating.
    let err = decode_response(0x8005, &[0x40, 0x42, 0x0F, 0x00]).unwrap_err();
    assert!(
        matches!(err, ProtoError::PayloadTruncated { field: "list", .. }),
        "{err}"
    );
    let err = decode_request(0x0002, &u32::MAX.to_le_bytes()).unwrap_err();
    assert!(
        matches!(err, ProtoError::FieldTooLarge { field: "ids", .. }),
        "{err}"
    );
}

#[test]
fn debug_output_never_shows_secrets_or_megabytes() {
    let shown = format!("{:?}", Request::Auth { secret: [0xC3; 32] });
    assert!(!shown.contains("c3") && !shown.contains("195"), "{shown}");
    let shown = format!("{:?}", Request::Rekey { secret: [0xC3; 32] });
    assert_eq!(shown, "Rekey { secret: <redacted> }");
    let wire = encode_request(&Request::Auth { secret: [0xC3; 32] }).unwrap();
    let mut asm = Assembler::for_requests();
    assert_eq!(asm.feed(&wire[..30]), Ok(None));
    let shown = format!("{asm:?}");
    assert!(
        !shown.contains("195") && shown.contains("buffered: 24"),
        "{shown}"
    );
    let shown = format!(
        "{:?}",
        Request::Commit {
            manifest: vec![0xC3; 1 << 20]
        }
    );
    assert_eq!(shown, "Commit { manifest: <1048576 bytes> }");
}

fn arb_id() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn arb_name() -> impl Strategy<Value = String> {
    // Up to 40 characters of up to 4 bytes: within MAX_NAME_LEN.
    prop::collection::vec(any::<char>(), 0..40).prop_map(|c| c.into_iter().collect())
}

fn arb_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        arb_id().prop_map(|secret| Request::Auth { secret }),
        prop::collection::vec(arb_id(), 0..50).prop_map(|ids| Request::HasChunks { ids }),
        (arb_id(), arb_bytes(3000)).prop_map(|(id, blob)| Request::PutChunk { id, blob }),
        arb_bytes(3000).prop_map(|manifest| Request::Commit { manifest }),
        Just(Request::ListSnapshots),
        arb_id().prop_map(|snapshot| Request::GetManifest { snapshot }),
        arb_id().prop_map(|id| Request::GetChunk { id }),
        arb_bytes(1025).prop_map(|key_file| Request::PutKey { key_file }),
        Just(Request::GetKey),
        arb_id().prop_map(|snapshot| Request::Forget { snapshot }),
        Just(Request::Status),
        prop::collection::vec(arb_id(), 0..50).prop_map(|ids| Request::GetChunks { ids }),
        prop::collection::vec((arb_id(), arb_bytes(300)), 0..20)
            .prop_map(|blobs| Request::PutChunks { blobs }),
        arb_id().prop_map(|secret| Request::Rekey { secret }),
        prop::collection::vec(arb_id(), 0..50).prop_map(|ids| Request::ChunkTrust { ids }),
        prop::collection::vec(arb_id(), 0..50).prop_map(|ids| Request::Vouch { ids }),
        (arb_id(), any::<u32>()).prop_map(|(id, copy)| Request::GetChunkCopy { id, copy }),
        (arb_id(), arb_bytes(1025))
            .prop_map(|(expected, key_file)| Request::ReplaceKey { expected, key_file }),
    ]
}

fn arb_response() -> impl Strategy<Value = Response> {
    let entry = (
        arb_id(),
        any::<i64>(),
        arb_name(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(id, time, device, logical_bytes, file_count)| SnapshotEntry {
                id,
                time,
                device,
                logical_bytes,
                file_count,
            },
        );
    prop_oneof![
        (arb_name(), arb_name(), any::<bool>()).prop_map(|(subscriber, device, admin)| {
            Response::AuthOk {
                subscriber,
                device,
                role: if admin { Role::Admin } else { Role::Backup },
            }
        }),
        prop::collection::vec(any::<bool>(), 0..200).prop_map(|have| Response::HasChunks { have }),
        any::<bool>().prop_map(|new| Response::Stored { new }),
        arb_id().prop_map(|snapshot| Response::Committed { snapshot }),
        prop::collection::vec(entry, 0..20).prop_map(|list| Response::Snapshots { list }),
        arb_bytes(3000).prop_map(|bytes| Response::Manifest { bytes }),
        arb_bytes(3000).prop_map(|blob| Response::Chunk { blob }),
        Just(Response::KeyStored),
        prop::option::of(arb_bytes(1025)).prop_map(|key_file| Response::Key { key_file }),
        Just(Response::Forgotten),
        (
            arb_name(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<Option<i64>>()
        )
            .prop_map(
                |(subscriber, quota_bytes, used_bytes, snapshots, last_backup)| Response::Status {
                    subscriber,
                    quota_bytes,
                    used_bytes,
                    snapshots,
                    last_backup,
                }
            ),
        prop::collection::vec(prop::option::of(arb_bytes(300)), 0..20)
            .prop_map(|blobs| Response::Chunks { blobs }),
        prop::collection::vec(any::<bool>(), 0..200).prop_map(|new| Response::StoredChunks { new }),
        any::<bool>().prop_map(|current| Response::Rekeyed { current }),
        prop::collection::vec(0u8..3, 0..200).prop_map(|s| Response::ChunkTrust {
            states: s
                .into_iter()
                .map(|b| match b {
                    0 => ChunkState::Absent,
                    1 => ChunkState::Trusted,
                    _ => ChunkState::Untrusted,
                })
                .collect()
        }),
        any::<u64>().prop_map(|recorded| Response::Vouched { recorded }),
        arb_bytes(3000).prop_map(|blob| Response::ChunkCopy { blob }),
        Just(Response::KeyReplaced),
        (any::<u16>(), arb_name(), any::<u64>(), any::<u64>()).prop_map(
            |(code, message, used, quota)| Response::Error(ErrorReply {
                code: ErrorCode::from_u16(code),
                message,
                used,
                quota,
            })
        ),
    ]
}

/// Message types worth fuzzing: all known ones, continuation, and a few
/// unknown ones.
fn arb_type() -> impl Strategy<Value = u16> {
    prop_oneof![
        0u16..=0x0014,
        0x8000u16..=0x8014,
        Just(CONTINUATION),
        any::<u16>()
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(req in arb_request(), seed: u64, max_piece in 1usize..64) {
        let wire = encode_request(&req).unwrap();
        let (msg_type, payload) = assemble(Assembler::for_requests(), &wire, seed, max_piece);
        prop_assert_eq!(decode_request(msg_type, &payload).unwrap(), req.clone());
        prop_assert_eq!(decode_request_owned(msg_type, payload).unwrap(), req);
    }

    #[test]
    fn responses_round_trip(resp in arb_response(), seed: u64, max_piece in 1usize..64) {
        let wire = encode_response(&resp).unwrap();
        let (msg_type, payload) = assemble(Assembler::for_responses(), &wire, seed, max_piece);
        prop_assert_eq!(decode_response(msg_type, &payload).unwrap(), resp.clone());
        prop_assert_eq!(decode_response_owned(msg_type, payload).unwrap(), resp);
    }

    #[test]
    fn arbitrary_payloads_never_panic(msg_type in arb_type(), payload in arb_bytes(400)) {
        let borrowed = decode_request(msg_type, &payload);
        let owned = decode_request_owned(msg_type, payload.clone());
        prop_assert_eq!(borrowed, owned);
        let borrowed = decode_response(msg_type, &payload);
        let owned = decode_response_owned(msg_type, payload);
        prop_assert_eq!(borrowed, owned);
    }

    #[test]
    fn arbitrary_streams_never_panic(bytes in arb_bytes(600), seed: u64, max_piece in 1usize..50) {
        for mut asm in [Assembler::for_requests(), Assembler::for_responses(), Assembler::new(300)] {
            let mut rng = XorShift(seed | 1);
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let n = (1 + rng.below(max_piece)).min(rest.len());
                match asm.feed(&rest[..n]) {
                    Ok(Some((msg_type, payload))) => {
                        let _ = decode_request(msg_type, &payload);
                        let _ = decode_response_owned(msg_type, payload);
                        break;
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
                rest = &rest[n..];
            }
            let _ = asm.end_of_stream();
        }
    }

    #[test]
    fn corrupted_messages_never_panic(
        req in arb_request(),
        resp in arb_response(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        for mut wire in [encode_request(&req).unwrap(), encode_response(&resp).unwrap()] {
            for (at, value) in &flips {
                let i = at.index(wire.len());
                wire[i] = *value;
            }
            for mut asm in [Assembler::for_requests(), Assembler::for_responses()] {
                if let Ok(Some((msg_type, payload))) = asm.feed(&wire) {
                    let _ = decode_request(msg_type, &payload);
                    let _ = decode_response(msg_type, &payload);
                }
            }
        }
    }
}
