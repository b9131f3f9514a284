//! Known answers: the exact bytes of a few messages and of a token. If one of
//! these fails, a change broke compatibility with every deployed client or
//! server (or every token already handed out). Do not update the expected
//! bytes: add a new message type or version instead, and keep reading the old
//! one. The layouts are specified in `docs/protocol.md`.

use coffre_proto::{
    decode_hello, decode_request, decode_response, encode_hello, encode_hello_at, encode_request,
    encode_response, Assembler, ChunkState, ErrorCode, ErrorReply, Request, Response,
    SnapshotEntry, Token,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that `wire` is the expected single frame, and that it decodes back.
fn frozen_frame(wire: &[u8], expected: &str) -> (u16, Vec<u8>) {
    assert_eq!(hex(wire), expected);
    let msg_type = u16::from_be_bytes([wire[4], wire[5]]);
    (msg_type, wire[6..].to_vec())
}

#[test]
fn hello() {
    // Version 5 since manifests of version 3 (checkpoints), 4 since
    // ReplaceKey and manifests of version 2 (3 since Rekey, ChunkTrust,
    // Vouch and GetChunkCopy, 2 since GetChunks); a hello of versions 1 to
    // 4 (every client of the earlier releases) is still read, and answered
    // in kind.
    assert_eq!(hex(&encode_hello()), "434f464652450005");
    assert_eq!(hex(&encode_hello_at(4)), "434f464652450004");
    assert_eq!(decode_hello(&encode_hello_at(4)), Ok(4));
    assert_eq!(hex(&encode_hello_at(3)), "434f464652450003");
    assert_eq!(decode_hello(&encode_hello_at(3)), Ok(3));
    assert_eq!(hex(&encode_hello_at(2)), "434f464652450002");
    assert_eq!(hex(&encode_hello_at(1)), "434f464652450001");
    assert_eq!(decode_hello(&encode_hello_at(2)), Ok(2));
    assert_eq!(decode_hello(&encode_hello_at(1)), Ok(1));
    assert_eq!(hex(&encode_hello_at(2)), "434f464652450002");
    assert_eq!(decode_hello(&encode_hello_at(2)), Ok(2));
}

#[test]
fn rekey_request() {
    let req = Request::Rekey { secret: [0x5E; 32] };
    let wire = encode_request(&req).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "00000022",                                                         // frame length: 2 + 32
            "0010",                                                             // Rekey
            "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e", // the new secret
        ),
    );
    assert_eq!(decode_request(msg_type, &payload).unwrap(), req);
}

#[test]
fn rekeyed_response() {
    let pending = encode_response(&Response::Rekeyed { current: false }).unwrap();
    let (msg_type, payload) = frozen_frame(&pending, "00000003801000");
    assert_eq!(
        decode_response(msg_type, &payload).unwrap(),
        Response::Rekeyed { current: false }
    );
    let current = encode_response(&Response::Rekeyed { current: true }).unwrap();
    let (msg_type, payload) = frozen_frame(&current, "00000003801001");
    assert_eq!(
        decode_response(msg_type, &payload).unwrap(),
        Response::Rekeyed { current: true }
    );
}

#[test]
fn superseded_error_response() {
    // Code 13; `used` holds when the credential was replaced.
    let resp = Response::Error(ErrorReply {
        code: ErrorCode::Superseded,
        message: "old".into(),
        used: 1_795_000_000,
        quota: 0,
    });
    let wire = encode_response(&resp).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "0000001b",         // frame length: 2 + 25
            "8000",             // Error
            "0d00",             // code 13 = Superseded, u16 LE
            "c086fd6a00000000", // used = 1795000000: when it was replaced
            "0000000000000000", // quota = 0
            "03000000",         // message length
            "6f6c64",           // "old"
        ),
    );
    assert_eq!(decode_response(msg_type, &payload).unwrap(), resp);
}

#[test]
fn replace_key_request_and_response() {
    let req = Request::ReplaceKey {
        expected: [0x6B; 32],
        key_file: b"CFKY".to_vec(),
    };
    let wire = encode_request(&req).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "0000002a",                                                         // frame length: 2 + 40
            "0014",                                                             // ReplaceKey
            "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b", // expected: BLAKE3 of the current key file
            "04000000", // key file length, u32 LE
            "43464b59", // the key file ("CFKY")
        ),
    );
    assert_eq!(decode_request(msg_type, &payload).unwrap(), req);

    let wire = encode_response(&Response::KeyReplaced).unwrap();
    let (msg_type, payload) = frozen_frame(&wire, "000000028014");
    assert_eq!(
        decode_response(msg_type, &payload).unwrap(),
        Response::KeyReplaced
    );
}

#[test]
fn conflict_error_response() {
    // Code 14 (protocol version 4).
    let resp = Response::Error(ErrorReply::new(ErrorCode::Conflict, "x"));
    let wire = encode_response(&resp).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "00000019",         // frame length: 2 + 23
            "8000",             // Error
            "0e00",             // code 14 = Conflict, u16 LE
            "0000000000000000", // used
            "0000000000000000", // quota
            "01000000",         // message length
            "78",               // "x"
        ),
    );
    assert_eq!(decode_response(msg_type, &payload).unwrap(), resp);
}

#[test]
fn get_chunks_request() {
    let req = Request::GetChunks {
        ids: vec![[0x22; 32]],
    };
    let wire = encode_request(&req).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "00000026",                                                         // frame length: 2 + 36
            "000c",                                                             // GetChunks
            "01000000",                                                         // count, u32 LE
            "2222222222222222222222222222222222222222222222222222222222222222", // id
        ),
    );
    assert_eq!(decode_request(msg_type, &payload).unwrap(), req);
}

#[test]
fn put_chunks_request() {
    let req = Request::PutChunks {
        blobs: vec![([0x33; 32], b"xy".to_vec())],
    };
    let wire = encode_request(&req).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "0000002c",                                                         // frame length: 2 + 42
            "000d",                                                             // PutChunks
            "01000000",                                                         // count, u32 LE
            "3333333333333333333333333333333333333333333333333333333333333333", // id
            "02000000", // blob length, u32 LE
            "7879",     // "xy"
        ),
    );
    assert_eq!(decode_request(msg_type, &payload).unwrap(), req);
}

#[test]
fn stored_chunks_response() {
    let resp = Response::StoredChunks {
        new: vec![true, false, true],
    };
    let wire = encode_response(&resp).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "00000007", // frame length: 2 + 5
            "800d",     // StoredChunks
            "03000000", // count, u32 LE
            "05",       // flags: bit i is blob i (1 = new)
        ),
    );
    assert_eq!(decode_response(msg_type, &payload).unwrap(), resp);
}

#[test]
fn chunks_response() {
    let resp = Response::Chunks {
        blobs: vec![Some(b"ab".to_vec()), None],
    };
    let wire = encode_response(&resp).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "0000000e", // frame length: 2 + 12
            "800c",     // Chunks
            "02000000", // count, u32 LE
            "01",       // present
            "02000000", // blob length, u32 LE
            "6162",     // "ab"
            "00",       // absent
        ),
    );
    assert_eq!(decode_response(msg_type, &payload).unwrap(), resp);
}

#[test]
fn put_chunk_request() {
    let req = Request::PutChunk {
        id: [0x11; 32],
        blob: b"blob".to_vec(),
    };
    let wire = encode_request(&req).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "0000002a",                                                         // frame length: 2 + 40
            "0003",                                                             // PutChunk
            "1111111111111111111111111111111111111111111111111111111111111111", // id
            "04000000", // blob length, u32 LE
            "626c6f62", // "blob"
        ),
    );
    assert_eq!(decode_request(msg_type, &payload).unwrap(), req);
}

#[test]
fn get_key_request_is_an_empty_frame() {
    assert_eq!(
        hex(&encode_request(&Request::GetKey).unwrap()),
        "000000020009"
    );
}

#[test]
fn quota_exceeded_error_response() {
    let resp = Response::Error(ErrorReply {
        code: ErrorCode::QuotaExceeded,
        message: "quota full".into(),
        used: 1000,
        quota: 2000,
    });
    let wire = encode_response(&resp).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "00000022",             // frame length: 2 + 32
            "8000",                 // Error
            "0600",                 // code 6 = QuotaExceeded, u16 LE
            "e803000000000000",     // used = 1000, u64 LE
            "d007000000000000",     // quota = 2000
            "0a000000",             // message length
            "71756f74612066756c6c", // "quota full"
        ),
    );
    assert_eq!(decode_response(msg_type, &payload).unwrap(), resp);
}

#[test]
fn has_chunks_response_bitmap() {
    let resp = Response::HasChunks {
        have: vec![true, false, true, true, false, false, false, false, true],
    };
    let wire = encode_response(&resp).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "00000008", "8002",     //
            "09000000", // 9 flags
            "0d",       // flags 0..8, least significant bit first: 1,0,1,1,0,0,0,0
            "01",       // flag 8; the 7 unused high bits are 0
        ),
    );
    assert_eq!(decode_response(msg_type, &payload).unwrap(), resp);
}

#[test]
fn snapshots_response() {
    let resp = Response::Snapshots {
        list: vec![SnapshotEntry {
            id: [0xAB; 32],
            time: -1,
            device: "pc".into(),
            logical_bytes: 0x0102_0304_0506_0708,
            file_count: 3,
        }],
    };
    let wire = encode_response(&resp).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "00000044",
            "8005",                                                             //
            "01000000",                                                         // 1 entry
            "abababababababababababababababababababababababababababababababab", // id
            "ffffffffffffffff",                                                 // time = -1, i64 LE
            "02000000",
            "7063",             // device "pc"
            "0807060504030201", // logical_bytes
            "0300000000000000", // file_count
        ),
    );
    assert_eq!(decode_response(msg_type, &payload).unwrap(), resp);
}

#[test]
fn status_response() {
    let resp = Response::Status {
        subscriber: "amie".into(),
        quota_bytes: 50 << 30,
        used_bytes: 12 << 30,
        snapshots: 42,
        last_backup: Some(1_795_000_000),
    };
    let wire = encode_response(&resp).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "0000002b",
            "800b", //
            "04000000",
            "616d6965",         // subscriber "amie"
            "000000800c000000", // quota_bytes = 50 GiB
            "0000000003000000", // used_bytes = 12 GiB
            "2a00000000000000", // snapshots = 42
            "01",               // last_backup present
            "c086fd6a00000000", // last_backup = 1795000000
        ),
    );
    assert_eq!(decode_response(msg_type, &payload).unwrap(), resp);
}

#[test]
fn a_large_message_is_cut_at_the_same_places() {
    // 16 MiB - 2 payload bytes per frame; only the last frame has the type.
    let wire = encode_request(&Request::Commit {
        manifest: vec![0; 20 << 20],
    })
    .unwrap();
    // First frame: length 16 MiB (type + 16 MiB - 2 of payload), CONTINUATION,
    // then the payload starts with the manifest length (20 MiB, u32 LE).
    assert_eq!(hex(&wire[..10]), "01000000ffff00004001");
    // Second and last frame: the remaining 4 MiB + 6 bytes, type Commit.
    let second = 4 + (16 << 20);
    assert_eq!(hex(&wire[second..second + 6]), "004000080004");
    assert_eq!(wire.len(), second + 6 + (4 << 20) + 6);
    let (msg_type, payload) = Assembler::for_requests().feed(&wire).unwrap().unwrap();
    assert_eq!((msg_type, payload.len()), (0x0004, 4 + (20 << 20)));
}

const TOKEN: &str = "coffre1.Q0ZUSwEXYmFja3VwLmV4YW1wbGUub3JnOjQ0MzMAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHwRhbWllCXBjLWNvbXB0YUJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCU-slyg";

fn token() -> Token {
    let mut fingerprint = [0; 32];
    for (i, b) in fingerprint.iter_mut().enumerate() {
        *b = i as u8;
    }
    Token {
        server: "backup.example.org:4433".into(),
        fingerprint,
        subscriber: "amie".into(),
        device: "pc-compta".into(),
        secret: [0x42; 32],
    }
}

#[test]
fn enrolment_token() {
    assert_eq!(token().encode().unwrap(), TOKEN);
    assert_eq!(Token::parse(TOKEN).unwrap(), token());
}

#[test]
fn caps_are_those_in_the_protocol_table() {
    use coffre_proto::{max_request_len, max_response_len, CONTINUATION};
    let table: [(u16, usize, usize); 18] = [
        (0x01, 32, 519),
        (0x02, 2_097_156, 8_196),
        (0x03, 13_631_524, 1),
        (0x04, 268_435_460, 32),
        (0x05, 0, 315_000_004),
        (0x06, 32, 268_435_460),
        (0x07, 32, 13_631_492),
        (0x08, 1_028, 0),
        (0x09, 0, 1_029),
        (0x0A, 32, 0),
        (0x0B, 0, 292),
        (0x0C, 32_772, 16_782_340),
        (0x0D, 16_814_084, 132),
        (0x10, 32, 1),
        (0x11, 2_097_156, 65_540),
        (0x12, 2_097_156, 8),
        (0x13, 36, 13_631_492),
        (0x14, 1_060, 0),
    ];
    for (n, request, response) in table {
        assert_eq!(max_request_len(n), Some(request), "request {n:#06x}");
        assert_eq!(
            max_response_len(0x8000 | n),
            Some(response),
            "response {n:#06x}"
        );
    }
    assert_eq!(max_response_len(0x8000), Some(4_118));
    assert_eq!(max_request_len(CONTINUATION), Some(268_435_460));
    assert_eq!(max_response_len(CONTINUATION), Some(315_000_004));
}

#[test]
fn chunk_trust_request_and_response() {
    let req = Request::ChunkTrust {
        ids: vec![[0x44; 32]],
    };
    let wire = encode_request(&req).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "00000026",                                                         // frame length: 2 + 36
            "0011",                                                             // ChunkTrust
            "01000000",                                                         // count, u32 LE
            "4444444444444444444444444444444444444444444444444444444444444444", // id
        ),
    );
    assert_eq!(decode_request(msg_type, &payload).unwrap(), req);

    let resp = Response::ChunkTrust {
        states: vec![
            ChunkState::Absent,
            ChunkState::Trusted,
            ChunkState::Untrusted,
        ],
    };
    let wire = encode_response(&resp).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "00000009", // frame length: 2 + 7
            "8011",     // ChunkTrust
            "03000000", // count, u32 LE
            "000102",   // one byte per id: 0 absent, 1 trusted, 2 untrusted
        ),
    );
    assert_eq!(decode_response(msg_type, &payload).unwrap(), resp);
    // Any other state byte is refused.
    assert!(decode_response(msg_type, &[1, 0, 0, 0, 3]).is_err());
}

#[test]
fn vouch_request_and_response() {
    let req = Request::Vouch {
        ids: vec![[0x55; 32]],
    };
    let wire = encode_request(&req).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "00000026",                                                         // frame length: 2 + 36
            "0012",                                                             // Vouch
            "01000000",                                                         // count, u32 LE
            "5555555555555555555555555555555555555555555555555555555555555555", // id
        ),
    );
    assert_eq!(decode_request(msg_type, &payload).unwrap(), req);

    let resp = Response::Vouched { recorded: 1 };
    let wire = encode_response(&resp).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "0000000a",         // frame length: 2 + 8
            "8012",             // Vouched
            "0100000000000000", // recorded, u64 LE
        ),
    );
    assert_eq!(decode_response(msg_type, &payload).unwrap(), resp);
}

#[test]
fn get_chunk_copy_request_and_response() {
    let req = Request::GetChunkCopy {
        id: [0x66; 32],
        copy: 1,
    };
    let wire = encode_request(&req).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "00000026",                                                         // frame length: 2 + 36
            "0013",                                                             // GetChunkCopy
            "6666666666666666666666666666666666666666666666666666666666666666", // id
            "01000000",                                                         // copy, u32 LE
        ),
    );
    assert_eq!(decode_request(msg_type, &payload).unwrap(), req);

    let resp = Response::ChunkCopy {
        blob: b"ab".to_vec(),
    };
    let wire = encode_response(&resp).unwrap();
    let (msg_type, payload) = frozen_frame(
        &wire,
        concat!(
            "00000008", // frame length: 2 + 6
            "8013",     // ChunkCopy
            "02000000", // blob length, u32 LE
            "6162",     // "ab"
        ),
    );
    assert_eq!(decode_response(msg_type, &payload).unwrap(), resp);
}
