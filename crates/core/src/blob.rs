//! Blobs: one chunk of file data, or one tree, compressed, padded and encrypted.
//!
//! ```text
//! outer (what the server stores):
//!   0   4  magic "CFBL"
//!   4   1  version = 1
//!   5   1  flags = 0 (reserved: v1 writes 0 and refuses anything else)
//!   6  24  nonce (random)
//!   30  n  ciphertext of the inner part (n = padded length)
//!   30+n 16 Poly1305 tag;  AAD = bytes 0..6 followed by the 32-byte chunk id
//! inner (encrypted):
//!   0   1  kind: 1 = file data, 2 = tree
//!   1   1  codec: 0 = stored raw, 1 = zstd
//!   2   4  stored length L (u32 LE)
//!   6   4  plaintext length (u32 LE)
//!   10  L  stored bytes
//!   ..     zeros up to padme(10 + L)
//! ```
//!
//! Kind and codec live inside the ciphertext, so the server learns neither
//! which blobs are directory listings nor which chunks compress. Binding the
//! chunk id into the AAD means a blob cannot be served under another id, and
//! opening a blob also re-hashes the plaintext against its id.

use zstd::bulk::Compressor;

use crate::aead::{self, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Object, Result};
use crate::padding::padme;
use crate::{chunker, ChunkId, Keys};

const MAGIC: &[u8; 4] = b"CFBL";
const VERSION: u8 = 1;
const OUTER_HEADER: usize = 6;
const PREFIX: usize = OUTER_HEADER + NONCE_LEN;
const INNER_HEADER: usize = 10;
/// Bytes a blob adds around its padded payload.
pub const OVERHEAD: usize = PREFIX + INNER_HEADER + TAG_LEN;
/// The largest tree (directory listing) a blob may hold: about 120,000
/// entries. Chosen so that the largest tree blob fits one protocol frame
/// (16 MiB); larger directories are refused with a clear error (docs/format.md).
pub const MAX_TREE_SIZE: usize = 12 * 1024 * 1024;
/// The largest blob on disk or on the wire, padding included.
pub const MAX_BLOB_SIZE: usize =
    PREFIX + TAG_LEN + (MAX_TREE_SIZE + MAX_TREE_SIZE / 8 + INNER_HEADER);

const CODEC_RAW: u8 = 0;
const CODEC_ZSTD: u8 = 1;
/// Default zstd level: the best speed/ratio trade-off for backups of office data.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// A chunk of a file's contents.
    Data = 1,
    /// An encoded directory listing.
    Tree = 2,
}

impl BlobKind {
    fn object(self) -> Object {
        match self {
            BlobKind::Data => Object::Blob,
            BlobKind::Tree => Object::Tree,
        }
    }
    fn max_plain(self) -> usize {
        match self {
            BlobKind::Data => chunker::MAX_SIZE,
            BlobKind::Tree => MAX_TREE_SIZE,
        }
    }
}

thread_local! {
    /// One zstd decompression context per thread, reused for every blob (a
    /// restore opens one blob per chunk; a fresh context each time cost an
    /// allocation and its initialisation).
    static DECOMPRESSOR: std::cell::RefCell<std::io::Result<zstd::bulk::Decompressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::new());
}

/// The probe compresses up to four samples of this size.
const SAMPLE: usize = 8 * 1024;
/// Data up to this size is probed whole.
const PROBE_ALL_UP_TO: usize = 4 * SAMPLE;

/// Per-thread state for sealing blobs: reusable zstd contexts and buffers.
pub struct Sealer {
    level: i32,
    zstd: Compressor<'static>,
    probe: Compressor<'static>,
    /// Compressed output; zstd writes into its spare capacity.
    scratch: Vec<u8>,
    sample: Vec<u8>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(zstd level {})", self.level)
    }
}

impl Sealer {
    /// A sealer compressing at `level` (1..=22; 3 is the default).
    pub fn new(level: i32) -> Self {
        Sealer {
            level,
            zstd: Compressor::new(level).expect("zstd context"),
            probe: Compressor::new(1).expect("zstd context"),
            scratch: Vec::new(),
            sample: Vec::new(),
        }
    }

    /// Cheap test of whether compression would pay: compress up to four
    /// 8 KiB samples at level 1 and require at least 3 % savings.
    fn worth_compressing(&mut self, data: &[u8]) -> bool {
        let sample = if data.len() <= PROBE_ALL_UP_TO {
            data
        } else {
            let step = (data.len() - SAMPLE) / 3;
            self.sample.clear();
            for i in 0..4 {
                self.sample
                    .extend_from_slice(&data[i * step..i * step + SAMPLE]);
            }
            &self.sample[..]
        };
        self.scratch.clear();
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(sample.len()));
        match self.probe.compress_to_buffer(sample, &mut self.scratch) {
            Ok(n) => n * 100 <= sample.len() * 97,
            Err(_) => false,
        }
    }

    /// Compresses `data` when that pays after padding: `Some(compressed bytes)`,
    /// or `None` to store it raw. Incompressible data costs only the probe.
    /// Data no larger than the probe's samples (a small file) skips the probe:
    /// the probe would compress all of it, then the real compression again,
    /// and on 50,000 small files that second pass was a fifth of the client's
    /// CPU (docs/performance.md).
    pub fn compress(&mut self, data: &[u8]) -> Option<&[u8]> {
        if data.len() > PROBE_ALL_UP_TO && !self.worth_compressing(data) {
            return None;
        }
        self.scratch.clear();
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(data.len()));
        let c = self.zstd.compress_to_buffer(data, &mut self.scratch).ok()?;
        let padded = |len: usize| padme((INNER_HEADER + len) as u64);
        (padded(c) < padded(data.len())).then_some(&self.scratch[..c])
    }

    /// Compresses (when it pays), pads and encrypts `data` as a blob with id `id`.
    pub fn seal(
        &mut self,
        keys: &Keys,
        kind: BlobKind,
        id: &ChunkId,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        let nonce = aead::random_nonce()?;
        self.seal_with_nonce(keys, kind, id, data, &nonce)
    }

    pub(crate) fn seal_with_nonce(
        &mut self,
        keys: &Keys,
        kind: BlobKind,
        id: &ChunkId,
        data: &[u8],
        nonce: &[u8; NONCE_LEN],
    ) -> Result<Vec<u8>> {
        if data.len() > kind.max_plain() {
            return Err(Error::TooLarge {
                object: kind.object(),
                size: data.len() as u64,
                limit: kind.max_plain() as u64,
            });
        }
        let n = data.len();
        let (codec, payload) = match self.compress(data) {
            Some(c) => (CODEC_ZSTD, c),
            None => (CODEC_RAW, data),
        };
        let stored = payload.len();
        let padded = padme((INNER_HEADER + stored) as u64) as usize;
        let mut out = Vec::with_capacity(PREFIX + padded + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(0);
        out.extend_from_slice(nonce);
        out.push(kind as u8);
        out.push(codec);
        out.extend_from_slice(&(stored as u32).to_le_bytes());
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.extend_from_slice(payload);
        out.resize(PREFIX + padded, 0);
        let tag = seal_region(keys, id, &mut out);
        out.extend_from_slice(&tag);
        Ok(out)
    }
}

fn aad(header: &[u8], id: &ChunkId) -> [u8; OUTER_HEADER + 32] {
    let mut a = [0u8; OUTER_HEADER + 32];
    a[..OUTER_HEADER].copy_from_slice(&header[..OUTER_HEADER]);
    a[OUTER_HEADER..].copy_from_slice(id.as_bytes());
    a
}

fn seal_region(keys: &Keys, id: &ChunkId, out: &mut [u8]) -> [u8; TAG_LEN] {
    let (head, body) = out.split_at_mut(PREFIX);
    let nonce: [u8; NONCE_LEN] = head[OUTER_HEADER..].try_into().unwrap();
    aead::seal(keys.enc_key(), &nonce, &aad(head, id), body)
}

/// Checks the cleartext header of a blob (magic, version, flags, length), as
/// the server does without any key.
pub fn check_header(bytes: &[u8]) -> Result<()> {
    let bad = |d: String| Error::corrupt(Object::Blob, None, d);
    if bytes.len() < OVERHEAD {
        return Err(bad(format!(
            "truncated: {} bytes, a blob has at least {OVERHEAD}",
            bytes.len()
        )));
    }
    if bytes.len() > MAX_BLOB_SIZE {
        return Err(Error::TooLarge {
            object: Object::Blob,
            size: bytes.len() as u64,
            limit: MAX_BLOB_SIZE as u64,
        });
    }
    if &bytes[0..4] != MAGIC {
        return Err(bad(format!(
            "bad magic {:02x?}: not a coffre blob",
            &bytes[0..4]
        )));
    }
    if bytes[4] != VERSION {
        return Err(Error::UnsupportedVersion {
            object: Object::Blob,
            found: bytes[4],
            supported: VERSION,
        });
    }
    if bytes[5] != 0 {
        return Err(bad(format!("unknown flags {:#04x}", bytes[5])));
    }
    Ok(())
}

/// Decrypts, checks and decompresses a blob that should hold `kind` under `id`.
///
/// Every failure names the object and its id: a wrong key (another
/// subscriber's) and damaged bytes both fail authentication.
pub fn open(keys: &Keys, kind: BlobKind, id: &ChunkId, bytes: &[u8]) -> Result<Vec<u8>> {
    open_owned(keys, kind, id, bytes.to_vec())
}

/// [`open`] on a blob the caller no longer needs: it is decrypted in its own
/// buffer, and a raw (uncompressed) blob's plaintext is returned in it, with
/// no second allocation or copy (a restore opens every chunk this way).
pub fn open_owned(
    keys: &Keys,
    kind: BlobKind,
    id: &ChunkId,
    mut bytes: Vec<u8>,
) -> Result<Vec<u8>> {
    let object = kind.object();
    let bad = |d: &str| Error::corrupt(object, Some(id), d.to_string());
    check_header(&bytes).map_err(|e| match e {
        Error::Corrupt { detail, .. } => bad(&detail),
        Error::UnsupportedVersion {
            found, supported, ..
        } => Error::UnsupportedVersion {
            object,
            found,
            supported,
        },
        Error::TooLarge { size, limit, .. } => Error::TooLarge {
            object,
            size,
            limit,
        },
        other => other,
    })?;
    let head: [u8; PREFIX] = bytes[..PREFIX].try_into().unwrap();
    let tag: [u8; TAG_LEN] = bytes[bytes.len() - TAG_LEN..].try_into().unwrap();
    bytes.truncate(bytes.len() - TAG_LEN);
    let inner = &mut bytes[PREFIX..];
    let nonce: [u8; NONCE_LEN] = head[OUTER_HEADER..].try_into().unwrap();
    aead::open(keys.enc_key(), &nonce, &aad(&head, id), inner, &tag)
        .map_err(|()| bad("authentication failed (damaged, tampered with, or not encrypted with this subscriber's key)"))?;
    if inner[0] != kind as u8 {
        return Err(bad(&format!(
            "holds kind {} where kind {} was expected",
            inner[0], kind as u8
        )));
    }
    let codec = inner[1];
    let stored = u32::from_le_bytes(inner[2..6].try_into().unwrap()) as usize;
    let plain = u32::from_le_bytes(inner[6..10].try_into().unwrap()) as usize;
    if plain > kind.max_plain() {
        return Err(bad(&format!(
            "declares {plain} bytes, more than the limit {}",
            kind.max_plain()
        )));
    }
    if INNER_HEADER + stored > inner.len()
        || padme((INNER_HEADER + stored) as u64) as usize != inner.len()
    {
        return Err(bad("stored length does not match the padded length"));
    }
    if inner[INNER_HEADER + stored..].iter().any(|&b| b != 0) {
        return Err(bad("padding is not zero"));
    }
    let payload = &inner[INNER_HEADER..INNER_HEADER + stored];
    let data = match codec {
        CODEC_RAW if stored == plain => {
            bytes.truncate(PREFIX + INNER_HEADER + stored);
            bytes.drain(..PREFIX + INNER_HEADER);
            bytes
        }
        CODEC_RAW => return Err(bad("raw payload length differs from the plaintext length")),
        CODEC_ZSTD => {
            let mut out = Vec::with_capacity(plain);
            let n = DECOMPRESSOR
                .with(|d| match &mut *d.borrow_mut() {
                    Ok(d) => d.decompress_to_buffer(payload, &mut out),
                    Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                })
                .map_err(|e| bad(&format!("zstd: {e}")))?;
            if n != plain {
                return Err(bad("decompressed length differs from the declared length"));
            }
            out
        }
        other => return Err(bad(&format!("unknown codec {other}"))),
    };
    if ChunkId::compute(keys, &data) != *id {
        return Err(bad("contents do not match the chunk id"));
    }
    Ok(data)
}
