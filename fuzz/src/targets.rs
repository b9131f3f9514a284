//! One function per decoder of bytes an attacker controls. Each takes any
//! `&[u8]`, returns a short label of what happened (for the mutator to keep
//! inputs that reach a new outcome), and panics if an invariant breaks:
//!
//! - no panic inside coffre's code (a panic here is caught and reported);
//! - errors are typed values whose text names what is wrong;
//! - a successful decode re-encodes to the same bytes where the format is
//!   canonical (frames, messages, trees, a manifest's public and private
//!   parts, key files, tokens);
//! - the heap held while decoding stays under a bound relative to the input
//!   (see each target), measured by the counting allocator of [`crate::alloc`].

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use coffre_core::blob::{self, BlobKind, Sealer};
use coffre_core::manifest::{PrivatePart, Statistics, CHUNK_LIST_PREFIX};
use coffre_core::{
    benchmark, fuzzing, ChunkId, Content, Entry, Error, KdfParams, KeyFile, Keys, Manifest,
    MasterKey, Timestamp, Tree,
};
use coffre_proto::{
    decode_request, decode_request_owned, decode_response, decode_response_owned, encode_request,
    encode_response, Assembler, ChunkState, ErrorCode, ErrorReply, ProtoError, Request, Response,
    Role, SnapshotEntry, Token, MAX_FRAME_LEN,
};

use crate::alloc::peak_during;

/// Slack for error messages and small fixed allocations.
const SLACK: usize = 64 * 1024;

/// A label: the error's text with digits blanked, cut short, so that one
/// kind of refusal is one label whatever numbers it quotes.
fn label(prefix: &str, e: &dyn std::fmt::Display) -> String {
    let text: String = e
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .take(70)
        .collect();
    format!("{prefix}:{text}")
}

fn check_bound(what: &str, peak: usize, bound: usize, input: usize) {
    assert!(
        peak <= bound,
        "{what}: held {peak} heap bytes for a {input}-byte input, over the bound {bound}"
    );
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys::derive(&MasterKey::from_bytes([0x5a; 32])))
}

// ---------------------------------------------------------------- frame

/// `frame::decode` and `decode_hello`. Bound: `decode` allocates nothing.
pub fn frame(data: &[u8]) -> String {
    let (res, peak) = peak_during(|| coffre_proto::decode(data));
    check_bound("frame::decode", peak, 0, data.len());
    let hello = &data[..data.len().min(coffre_proto::HELLO_LEN)];
    let (h, peak) = peak_during(|| coffre_proto::decode_hello(hello).map_err(|e| e.to_string()));
    check_bound("decode_hello", peak, SLACK, hello.len());
    let _ = h;
    match res {
        Ok(Some((f, used))) => {
            assert!(used <= data.len());
            assert_eq!(used, coffre_proto::HEADER_LEN + f.payload.len());
            let mut again = Vec::new();
            coffre_proto::encode(f.msg_type, f.payload, &mut again).unwrap();
            assert_eq!(again, data[..used], "frame does not re-encode to its bytes");
            // Every strict prefix needs more bytes.
            for cut in [0, 3, 4, 5, used - 1] {
                if cut < used {
                    assert_eq!(coffre_proto::decode(&data[..cut]), Ok(None), "prefix {cut}");
                }
            }
            "ok".into()
        }
        Ok(None) => {
            assert!(data.len() < MAX_FRAME_LEN + 4);
            "more".into()
        }
        Err(e) => label("err", &e),
    }
}

// ---------------------------------------------------------------- message

/// Splits `data` into pieces whose sizes come from a hash of `data`.
fn pieces(data: &[u8]) -> Vec<&[u8]> {
    let mut h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        h ^= h >> 29;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let n = 1 + (h % 13) as usize;
        let n = if h & 0x100 != 0 { n * 37 } else { n };
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out
}

type Assembled = Result<Option<(u16, Vec<u8>)>, ProtoError>;

/// Feeds `data` in one piece and in many; both must agree.
fn assemble(new: fn() -> Assembler, data: &[u8]) -> Assembled {
    let (whole, peak) = peak_during(|| new().feed(data));
    // The assembler's buffer grows with what arrives (doubling from 64 KiB),
    // whatever the frame headers announced.
    check_bound(
        "Assembler::feed",
        peak,
        2 * data.len() + 2 * SLACK,
        data.len(),
    );
    let mut asm = new();
    let mut piecewise: Assembled = Ok(None);
    let mut after_message = false;
    for p in pieces(data) {
        if after_message {
            let e = asm.feed(p).unwrap_err();
            assert!(matches!(e, ProtoError::DataAfterMessage { .. }), "{e}");
            piecewise = Err(e);
            break;
        }
        match asm.feed(p) {
            Ok(None) => {}
            Ok(Some(m)) => {
                piecewise = Ok(Some(m));
                after_message = true;
            }
            Err(e) => {
                // Once failed, the assembler keeps failing the same way.
                assert_eq!(asm.feed(b"x").unwrap_err(), e);
                piecewise = Err(e);
                break;
            }
        }
    }
    match (&whole, &piecewise) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "one piece and many pieces disagree"),
        (Err(a), Err(b)) => assert_eq!(
            a.error_code(),
            b.error_code(),
            "one piece and many pieces disagree: {a} / {b}"
        ),
        (a, b) => panic!("one piece and many pieces disagree: {a:?} / {b:?}"),
    }
    if let Ok(None) = whole {
        let mut asm = new();
        asm.feed(data).unwrap();
        assert_eq!(
            asm.end_of_stream(),
            ProtoError::StreamEnded {
                received: data.len()
            }
        );
    }
    whole
}

/// A server answers a refused request with `Error(code, text)`: that reply
/// must always encode.
fn server_reply_encodes(e: &ProtoError) {
    let code = e.error_code();
    assert!(
        matches!(code, ErrorCode::TooLarge | ErrorCode::BadRequest),
        "{e}: {code:?}"
    );
    let reply = Response::Error(ErrorReply::new(code, e.to_string()));
    encode_response(&reply).expect("the server's error reply encodes");
}

/// Checks that `wire` re-encodes canonically: the re-encoded message
/// reassembles to the same type and payload, and is byte-identical when
/// `data` was a single frame (the encoder's only choice).
fn canonical(data: &[u8], msg_type: u16, payload: &[u8], encoded: Vec<u8>) {
    let (t, p) = Assembler::new(usize::MAX)
        .feed(&encoded)
        .unwrap()
        .expect("a whole message");
    assert_eq!((t, &p[..]), (msg_type, payload), "re-encoding changed it");
    if let Ok(Some((_, used))) = coffre_proto::decode(data) {
        if used == data.len() {
            assert_eq!(encoded, data, "a one-frame message re-encodes differently");
        }
    }
}

/// The server's and the client's read path: an [`Assembler`] for requests
/// and one for responses fed the bytes (whole and in pieces), then
/// `decode_*` and `decode_*_owned` on the payload. Bounds: reassembly holds
/// at most twice the input plus 64 KiB, whatever a header announced
/// (regression: `message/putchunk-announces-16mib-then-stops`); decoding
/// holds at most 16×
/// the payload (a `HasChunks` response spends a `bool` per bit).
pub fn message(data: &[u8]) -> String {
    let mut out = String::new();
    match assemble(Assembler::for_requests, data) {
        Ok(Some((t, payload))) => {
            let bound = 16 * payload.len() + SLACK;
            let (borrowed, peak) = peak_during(|| decode_request(t, &payload));
            check_bound("decode_request", peak, bound, payload.len());
            let (owned, peak) = peak_during(|| decode_request_owned(t, payload.clone()));
            check_bound(
                "decode_request_owned",
                peak,
                bound + payload.len(),
                payload.len(),
            );
            assert_eq!(borrowed, owned, "owned and borrowed decoders disagree");
            match owned {
                Ok(req) => {
                    canonical(data, t, &payload, encode_request(&req).unwrap());
                    out += "req-ok";
                }
                Err(e) => {
                    server_reply_encodes(&e);
                    out += &label("req-err", &e);
                }
            }
        }
        Ok(None) => out += "req-more",
        Err(e) => {
            server_reply_encodes(&e);
            out += &label("req-asm", &e);
        }
    }
    match assemble(Assembler::for_responses, data) {
        Ok(Some((t, payload))) => {
            let bound = 16 * payload.len() + SLACK;
            let (borrowed, peak) = peak_during(|| decode_response(t, &payload));
            check_bound("decode_response", peak, bound, payload.len());
            let (owned, peak) = peak_during(|| decode_response_owned(t, payload.clone()));
            check_bound(
                "decode_response_owned",
                peak,
                bound + payload.len(),
                payload.len(),
            );
            assert_eq!(borrowed, owned, "owned and borrowed decoders disagree");
            match owned {
                Ok(resp) => {
                    canonical(data, t, &payload, encode_response(&resp).unwrap());
                    out += "/resp-ok";
                }
                Err(e) => out += &label("/resp-err", &e),
            }
        }
        Ok(None) => out += "/resp-more",
        Err(e) => out += &label("/resp-asm", &e),
    }
    out
}

// ---------------------------------------------------------------- blob

fn split_id(data: &[u8]) -> (ChunkId, &[u8]) {
    let mut id = [0u8; 32];
    let n = data.len().min(32);
    id[..n].copy_from_slice(&data[..n]);
    (ChunkId::from_bytes(id), &data[n..])
}

fn max_plain(kind: BlobKind) -> usize {
    match kind {
        BlobKind::Data => coffre_core::chunker::MAX_SIZE,
        BlobKind::Tree => blob::MAX_TREE_SIZE,
    }
}

fn open_blob(id: &ChunkId, bytes: &[u8]) -> String {
    let mut out = String::new();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        // The blob's bytes are copied once; a zstd payload is decompressed
        // into the plaintext length the (authenticated) header declares, at
        // most the kind's limit.
        let (res, peak) = peak_during(|| blob::open(keys(), kind, id, bytes));
        check_bound(
            "blob::open",
            peak,
            2 * bytes.len() + max_plain(kind) + SLACK,
            bytes.len(),
        );
        match res {
            Ok(plain) => {
                assert_eq!(ChunkId::compute(keys(), &plain), *id);
                assert!(plain.len() <= max_plain(kind));
                out += "ok/";
            }
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("blob") || text.contains("tree"), "{text}");
                out += &label("err", &e);
                out += "/";
            }
        }
    }
    out
}

/// `check_header` (the server's check, no key) and `open` (the client's)
/// on `id (32 bytes) | blob`. Bounds: `check_header` allocates only an
/// error; `open` at most twice the input plus the kind's plaintext limit.
pub fn blob(data: &[u8]) -> String {
    let (id, bytes) = split_id(data);
    let (res, peak) = peak_during(|| blob::check_header(bytes));
    check_bound("blob::check_header", peak, SLACK, bytes.len());
    let head = match &res {
        Ok(()) => "hdr-ok".to_string(),
        Err(e) => label("hdr-err", e),
    };
    if res.is_err() {
        assert!(blob::open(keys(), BlobKind::Data, &id, bytes).is_err());
        return head;
    }
    format!("{head} {}", open_blob(&id, bytes))
}

const BLOB_PREFIX: usize = 6 + 24;

/// Seals `inner` (a blob's plaintext: kind, codec, lengths, payload,
/// padding) in a valid envelope under the fuzzing key.
fn blob_envelope(id: &ChunkId, inner: &[u8]) -> Vec<u8> {
    let mut out = b"CFBL\x01\x00".to_vec();
    out.extend_from_slice(&[7; 24]);
    out.extend_from_slice(inner);
    let mut aad = out[..6].to_vec();
    aad.extend_from_slice(id.as_bytes());
    let nonce = [7; 24];
    let tag = fuzzing::seal(keys(), &nonce, &aad, &mut out[BLOB_PREFIX..]);
    out.extend_from_slice(&tag);
    out
}

/// `open` on `id | inner plaintext`, sealed under the right key: reaches the
/// parsing behind authentication (kind, codec, lengths, padding, zstd).
pub fn blob_inner(data: &[u8]) -> String {
    let (id, inner) = split_id(data);
    let bytes = blob_envelope(&id, inner);
    if blob::check_header(&bytes).is_err() {
        return "too-short-or-long".into();
    }
    open_blob(&id, &bytes)
}

// ---------------------------------------------------------------- tree

/// `Tree::decode`. Canonical: a tree that decodes re-encodes to the same
/// bytes. Bound: 32× the input (a 2-byte empty extended attribute becomes a
/// 48-byte pair of `Vec`s).
pub fn tree(data: &[u8]) -> String {
    let (res, peak) = peak_during(|| Tree::decode(data));
    check_bound("Tree::decode", peak, 32 * data.len() + SLACK, data.len());
    match res {
        Ok(tree) => {
            assert_eq!(tree.encode(), data, "tree does not re-encode to its bytes");
            assert_eq!(Tree::new(tree.entries.clone()).unwrap(), tree);
            for e in &tree.entries {
                assert!(!e.name.is_empty() && e.name != b"." && e.name != b"..");
                assert!(!e.name.contains(&b'/') && !e.name.contains(&0));
            }
            format!("ok:{}", tree.entries.len().min(3))
        }
        Err(e) => {
            assert!(e.to_string().contains("tree"), "{e}");
            label("err", &e)
        }
    }
}

// ---------------------------------------------------------------- manifest

const NONCE: usize = 24;
const TAG: usize = 16;

/// The server's reading (`read_public`, `chunk_list_at` on the first 64 KiB,
/// as garbage collection does) and the client's (`open`). Checks that the two
/// server readers agree, and that the public part is canonical. Bounds:
/// `read_public` 2× the input; `open` 32× (a 2-byte error entry becomes a
/// 48-byte pair).
pub fn manifest(data: &[u8]) -> String {
    let (public, peak) = peak_during(|| Manifest::read_public(data));
    check_bound(
        "Manifest::read_public",
        peak,
        2 * data.len() + SLACK,
        data.len(),
    );
    let prefix = &data[..data.len().min(CHUNK_LIST_PREFIX)];
    let (list, peak) = peak_during(|| Manifest::chunk_list_at(prefix));
    check_bound("Manifest::chunk_list_at", peak, SLACK, prefix.len());
    let mut out = match &public {
        Ok((p, at)) => {
            let (ids_at, count) = list
                .as_ref()
                .expect("read_public accepts, chunk_list_at refuses");
            assert_eq!(
                *count,
                p.chunks.len() as u64,
                "the two readers count differently"
            );
            assert_eq!(
                ids_at + 32 * p.chunks.len(),
                *at,
                "the chunk list ends elsewhere"
            );
            for (i, id) in p.chunks.iter().enumerate() {
                if ids_at + 32 * (i + 1) <= data.len() {
                    assert_eq!(&data[ids_at + 32 * i..ids_at + 32 * (i + 1)], id.as_bytes());
                }
            }
            // Canonical public part: sealing it again, in the version it
            // was read in, gives the same prefix.
            let (_, _, version) = Manifest::read_public_versioned(data).unwrap();
            let again = Manifest {
                public: p.clone(),
                private: Manifest::bare("x", Timestamp { secs: 0, nanos: 0 }, vec![]).private,
            }
            .seal_as(keys(), version)
            .unwrap();
            assert_eq!(again[..*at], data[..*at], "public part is not canonical");
            "pub-ok".to_string()
        }
        Err(e) => {
            assert!(e.to_string().contains("manifest"), "{e}");
            label("pub-err", e)
        }
    };
    let (opened, peak) = peak_during(|| Manifest::open(keys(), data));
    check_bound("Manifest::open", peak, 32 * data.len() + SLACK, data.len());
    match opened {
        Ok(m) => {
            assert_eq!(m.public, public.unwrap().0);
            out += " open-ok";
        }
        Err(e) => out += &format!(" {}", label("open-err", &e)),
    }
    out
}

/// A valid public part (from a real manifest), the prefix every
/// `manifest_private` input is sealed after.
fn public_prefix() -> &'static [u8] {
    static PREFIX: OnceLock<Vec<u8>> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let m = Manifest::bare(
            "pc-compta",
            Timestamp {
                secs: 1_700_000_000,
                nanos: 5,
            },
            vec![ChunkId::from_bytes([1; 32]), ChunkId::from_bytes([2; 32])],
        );
        let bytes = m.seal(keys()).unwrap();
        let (_, at) = Manifest::read_public(&bytes).unwrap();
        bytes[..at].to_vec()
    })
}

/// Decrypts a manifest's private part (for seeds and canonical checks).
fn private_plaintext(bytes: &[u8]) -> Vec<u8> {
    let (_, at) = Manifest::read_public(bytes).unwrap();
    let nonce: [u8; NONCE] = bytes[at..at + NONCE].try_into().unwrap();
    let tag: [u8; TAG] = bytes[bytes.len() - TAG..].try_into().unwrap();
    let mut private = bytes[at + NONCE..bytes.len() - TAG].to_vec();
    assert!(fuzzing::open(
        keys(),
        &nonce,
        &bytes[..at],
        &mut private,
        &tag
    ));
    private
}

/// `open` on a manifest whose private part is `data`, sealed under the
/// right key: reaches the private part's decoder. Canonical: a private part
/// that decodes re-encodes to the same bytes. Bound: 32× the input.
pub fn manifest_private(data: &[u8]) -> String {
    let mut bytes = public_prefix().to_vec();
    let at = bytes.len();
    let nonce = [9; NONCE];
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(data);
    let tag = fuzzing::seal(
        keys(),
        &nonce,
        &public_prefix()[..at],
        &mut bytes[at + NONCE..],
    );
    bytes.extend_from_slice(&tag);
    let (res, peak) = peak_during(|| Manifest::open(keys(), &bytes));
    check_bound(
        "Manifest::open",
        peak,
        32 * bytes.len() + SLACK,
        bytes.len(),
    );
    match res {
        Ok(m) => {
            let again = m.seal(keys()).unwrap();
            assert_eq!(
                private_plaintext(&again),
                data,
                "private part is not canonical"
            );
            "ok".into()
        }
        Err(e) => {
            assert!(e.to_string().contains("manifest"), "{e}");
            label("err", &e)
        }
    }
}

// ---------------------------------------------------------------- key file

/// `KeyFile::from_bytes`, then `unwrap_key` with a wrong passphrase when the
/// file's Argon2 parameters are cheap (at most 1 MiB, 2 passes): it must be
/// `WrongPassphrase` (or a refusal of the parameters), never a key. Bound:
/// parsing allocates only an error; unwrapping the Argon2 memory the file
/// declares (the parser caps it at 1 GiB, see the report).
pub fn keyfile(data: &[u8]) -> String {
    let (res, peak) = peak_during(|| KeyFile::from_bytes(data));
    check_bound("KeyFile::from_bytes", peak, SLACK, data.len());
    match res {
        Ok(kf) => {
            assert_eq!(kf.as_bytes(), data);
            let p = kf.params();
            if p.memory_kib <= 1024 && p.time <= 2 {
                let (res, peak) = peak_during(|| kf.unwrap_key(b"not the passphrase"));
                check_bound(
                    "KeyFile::unwrap_key",
                    peak,
                    p.memory_kib as usize * 1024 + SLACK,
                    data.len(),
                );
                match res {
                    Ok(_) => panic!("a wrong passphrase unwrapped a key"),
                    Err(Error::WrongPassphrase) => "wrong-passphrase".into(),
                    Err(e) => {
                        assert!(e.to_string().contains("key file"), "{e}");
                        label("unwrap-err", &e)
                    }
                }
            } else {
                "ok-costly".into()
            }
        }
        Err(e) => {
            assert!(e.to_string().contains("key file"), "{e}");
            label("err", &e)
        }
    }
}

// ---------------------------------------------------------------- token

/// `Token::parse` on the input as text. Canonical: a token that parses
/// re-encodes to its text without whitespace. Bound: 4× the input.
pub fn token(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let (res, peak) = peak_during(|| Token::parse(&text));
    check_bound("Token::parse", peak, 4 * text.len() + SLACK, text.len());
    match res {
        Ok(t) => {
            let compact: String = text.split_ascii_whitespace().collect();
            assert_eq!(t.encode().unwrap(), compact, "token does not re-encode");
            "ok".into()
        }
        Err(e) => label("err", &e),
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// `Token::parse` on `coffre1.` + base64url(input + its CRC-32): reaches the
/// fields behind the checksum.
pub fn token_binary(data: &[u8]) -> String {
    let mut bin = data.to_vec();
    bin.extend_from_slice(&crc32(data).to_le_bytes());
    token(format!("coffre1.{}", URL_SAFE_NO_PAD.encode(&bin)).as_bytes())
}

// ---------------------------------------------------------------- seeds

fn sample_requests() -> Vec<Request> {
    vec![
        Request::Auth { secret: [0x42; 32] },
        Request::HasChunks {
            ids: vec![[1; 32], [2; 32], [3; 32]],
        },
        Request::HasChunks { ids: vec![] },
        Request::PutChunk {
            id: [4; 32],
            blob: b"CFBL\x01\x00 some blob bytes".to_vec(),
        },
        Request::Commit {
            manifest: b"CFMF\x01 a manifest".to_vec(),
        },
        Request::ListSnapshots,
        Request::GetManifest { snapshot: [5; 32] },
        Request::GetChunk { id: [6; 32] },
        Request::PutKey {
            key_file: vec![0xab; 106],
        },
        Request::GetKey,
        Request::Forget { snapshot: [7; 32] },
        Request::Status,
        Request::Rekey { secret: [0x43; 32] },
        Request::ChunkTrust {
            ids: vec![[1; 32], [2; 32]],
        },
        Request::Vouch { ids: vec![[3; 32]] },
        Request::GetChunkCopy {
            id: [4; 32],
            copy: 1,
        },
        Request::ReplaceKey {
            expected: [5; 32],
            key_file: vec![6; 106],
        },
    ]
}

fn sample_responses() -> Vec<Response> {
    vec![
        Response::AuthOk {
            subscriber: "asso".into(),
            device: "pc-compta".into(),
            role: Role::Admin,
        },
        Response::HasChunks {
            have: vec![true, false, true, true, false, false, true, false, true],
        },
        Response::Stored { new: true },
        Response::Committed { snapshot: [8; 32] },
        Response::Snapshots {
            list: vec![SnapshotEntry {
                id: [9; 32],
                time: 1_700_000_000,
                device: "pc".into(),
                logical_bytes: 12345,
                file_count: 7,
            }],
        },
        Response::Manifest {
            bytes: b"CFMF manifest".to_vec(),
        },
        Response::Chunk {
            blob: b"CFBL blob".to_vec(),
        },
        Response::KeyStored,
        Response::Key {
            key_file: Some(vec![1; 106]),
        },
        Response::Key { key_file: None },
        Response::Forgotten,
        Response::Status {
            subscriber: "asso".into(),
            quota_bytes: 1 << 30,
            used_bytes: 1 << 20,
            snapshots: 3,
            last_backup: Some(1_700_000_000),
        },
        Response::Rekeyed { current: false },
        Response::KeyReplaced,
        Response::ChunkTrust {
            states: vec![
                ChunkState::Absent,
                ChunkState::Trusted,
                ChunkState::Untrusted,
            ],
        },
        Response::Vouched { recorded: 1 },
        Response::ChunkCopy {
            blob: b"CFBL copy".to_vec(),
        },
        Response::Error(ErrorReply::quota_exceeded(10, 20)),
    ]
}

/// Valid requests and responses as their real encoders write them.
pub fn message_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = sample_requests()
        .iter()
        .map(|r| encode_request(r).unwrap())
        .collect();
    out.extend(
        sample_responses()
            .iter()
            .map(|r| encode_response(r).unwrap()),
    );
    out
}

fn sample_tree() -> Tree {
    let entry = |name: &[u8], content: Content| Entry {
        name: name.to_vec(),
        mode: 0o100644,
        uid: 1000,
        gid: 1000,
        mtime: Timestamp {
            secs: 1_700_000_000,
            nanos: 123,
        },
        size: 42,
        xattrs: vec![(b"user.a".to_vec(), b"1".to_vec())],
        content,
    };
    Tree::new(vec![
        entry(b"Compta", Content::Dir(ChunkId::from_bytes([3; 32]))),
        entry(
            b"lettre.odt",
            Content::File(vec![ChunkId::from_bytes([4; 32]); 2]),
        ),
        entry(b"lien", Content::Symlink(b"../Compta".to_vec())),
        entry(b"vide", Content::File(vec![])),
    ])
    .unwrap()
}

fn sample_blobs() -> Vec<(ChunkId, Vec<u8>)> {
    let mut sealer = Sealer::new(3);
    let mut out = Vec::new();
    for data in [
        b"".to_vec(),
        b"short".to_vec(),
        benchmark::text_bytes(5000, 1),
        benchmark::random_bytes(3000, 2),
    ] {
        let id = ChunkId::compute(keys(), &data);
        out.push((id, sealer.seal(keys(), BlobKind::Data, &id, &data).unwrap()));
    }
    let tree = sample_tree().encode();
    let id = ChunkId::compute(keys(), &tree);
    out.push((id, sealer.seal(keys(), BlobKind::Tree, &id, &tree).unwrap()));
    out
}

fn with_id(id: &ChunkId, bytes: &[u8]) -> Vec<u8> {
    let mut v = id.as_bytes().to_vec();
    v.extend_from_slice(bytes);
    v
}

fn sample_manifests() -> Vec<Vec<u8>> {
    let ids: Vec<ChunkId> = (0..5u8)
        .map(|i| ChunkId::from_bytes([i * 40; 32]))
        .collect();
    let mut full = Manifest::bare(
        "pc-compta",
        Timestamp {
            secs: 1_700_000_000,
            nanos: 9,
        },
        ids.clone(),
    );
    full.public.logical_bytes = 1 << 20;
    full.public.file_count = 12;
    full.private = PrivatePart {
        root: ids[0],
        paths: vec![b"/home/amie".to_vec(), b"/srv".to_vec()],
        hostname: "compta".into(),
        tags: vec!["nightly".into()],
        parent: Some(ids[1]),
        stats: Statistics {
            files_new: 1,
            files_changed: 2,
            files_unchanged: 3,
            dirs: 4,
            bytes_read: 5,
            bytes_sent: 6,
            files_deleted: 7,
        },
        errors: vec![(b"/home/amie/locked".to_vec(), "permission denied".into())],
    };
    vec![
        Manifest::bare("pc", Timestamp { secs: 0, nanos: 0 }, vec![])
            .seal(keys())
            .unwrap(),
        Manifest::bare("pc", Timestamp { secs: -5, nanos: 1 }, ids)
            .seal(keys())
            .unwrap(),
        full.seal_as(keys(), coffre_core::manifest::Version::V1)
            .unwrap(),
        full.seal(keys()).unwrap(),
        {
            let mut checkpoint = full.clone();
            checkpoint.public.checkpoint = true;
            checkpoint.seal(keys()).unwrap()
        },
    ]
}

fn sample_tokens() -> Vec<String> {
    let t = Token {
        server: "backup.example.org:4433".into(),
        fingerprint: std::array::from_fn(|i| i as u8),
        subscriber: "amie".into(),
        device: "pc-compta".into(),
        secret: [0x42; 32],
    };
    let long = Token {
        server: "s".repeat(255),
        subscriber: "é".repeat(127),
        device: "d".into(),
        ..t.clone()
    };
    vec![t.encode().unwrap(), long.encode().unwrap()]
}

/// Valid inputs for `target`, made by the real encoders.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "frame" => {
            let mut out = message_seeds();
            out.push(coffre_proto::encode_hello().to_vec());
            out.push(vec![0, 0, 0, 2, 0xff, 0xff]);
            out
        }
        "message" => message_seeds(),
        "blob" => sample_blobs()
            .iter()
            .map(|(id, b)| with_id(id, b))
            .collect(),
        "blob_inner" => sample_blobs()
            .iter()
            .map(|(id, b)| {
                let mut inner = b[BLOB_PREFIX..b.len() - TAG].to_vec();
                let nonce: [u8; NONCE] = b[6..BLOB_PREFIX].try_into().unwrap();
                let tag: [u8; TAG] = b[b.len() - TAG..].try_into().unwrap();
                let mut aad = b[..6].to_vec();
                aad.extend_from_slice(id.as_bytes());
                assert!(fuzzing::open(keys(), &nonce, &aad, &mut inner, &tag));
                with_id(id, &inner)
            })
            .collect(),
        "tree" => vec![sample_tree().encode(), Tree::default().encode()],
        "manifest" => sample_manifests(),
        "manifest_private" => sample_manifests()
            .iter()
            .map(|m| private_plaintext(m))
            .collect(),
        "keyfile" => vec![KeyFile::wrap(
            &MasterKey::from_bytes([3; 32]),
            b"pw",
            KdfParams::INSECURE_FOR_TESTS,
        )
        .unwrap()
        .as_bytes()
        .to_vec()],
        "token" => sample_tokens()
            .into_iter()
            .map(String::into_bytes)
            .collect(),
        "token_binary" => sample_tokens()
            .iter()
            .map(|t| {
                let bin = URL_SAFE_NO_PAD.decode(&t["coffre1.".len()..]).unwrap();
                bin[..bin.len() - 4].to_vec()
            })
            .collect(),
        _ => panic!("unknown target {target}"),
    }
}
