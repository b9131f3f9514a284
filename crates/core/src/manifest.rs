//! Snapshot manifests: what a snapshot is.
//!
//! ```text
//! "CFMF" | version (1, 2 or 3) | public length (u32 LE) | public part | nonce (24) | encrypted private part | tag (16)
//! public part (the server reads it; no file names, no keys):
//!   time          i64 LE seconds, u32 LE nanoseconds
//!   device        bytes (UTF-8), the device name given at enrolment
//!   logical bytes varint: total size of the files in the snapshot
//!   file count    varint
//!   problems      varint, version 2 only: paths missing + files unreadable
//!                 + hooks failed (a count, no names)
//!   checkpoint    u8, version 3 only: 0 a complete snapshot, 1 a checkpoint
//!                 (a partial snapshot a long first backup commits on its
//!                 way: the files sent so far; the server's retention
//!                 replaces it by the run's final snapshot)
//!   chunk ids     count (varint), then 32-byte ids, strictly increasing:
//!                 every data and tree blob the snapshot needs
//! private part (XChaCha20-Poly1305 under the subscriber's encryption key,
//!               AAD = everything before the nonce):
//!   "CFMP" | version (= the manifest's version)
//!   root          32-byte id of the root tree
//!   paths         count, then bytes: the backed-up paths as given
//!   hostname      bytes (UTF-8)
//!   tags          count, then bytes (UTF-8)
//!   parent        u8 0, or u8 1 then the 32-byte parent snapshot id
//!   statistics    varints: files new, changed, unchanged; directories; bytes read; bytes sent;
//!                 version 2 only: files deleted
//!   errors        count, then (path bytes, message bytes UTF-8): what could not be read,
//!                 paths missing, hooks failed
//! ```
//!
//! Version 1 is still read: its `problems` and `files deleted` read as 0.
//! A client seals version 2 only for a server of protocol 4 or later
//! ([`Manifest::seal_as`]), which is the first to read it. Version 3 is
//! version 2 with the public `checkpoint` flag (issue 19), sealed for a
//! server of protocol 5 or later; versions 1 and 2 read as complete
//! snapshots. The private part of version 3 is that of version 2.
//!
//! The snapshot id is the unkeyed BLAKE3 hash of the whole manifest, which the
//! server can compute and check.

use crate::aead::{self, NONCE_LEN, TAG_LEN};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Object, Result};
use crate::time::Timestamp;
use crate::{ChunkId, Keys};

const MAGIC: &[u8; 4] = b"CFMF";
const PRIVATE_MAGIC: &[u8; 4] = b"CFMP";

/// A manifest format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// The first: no count of problems, no deleted files.
    V1 = 1,
    /// Adds the public count of problems and `files_deleted` (issue 18).
    V2 = 2,
    /// Adds the public `checkpoint` flag (issue 19).
    V3 = 3,
}

impl Version {
    /// The newest version, what [`Manifest::seal`] writes.
    pub const LATEST: Version = Version::V3;

    fn from_byte(v: u8) -> Option<Version> {
        match v {
            1 => Some(Version::V1),
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }
}
/// The largest manifest accepted (about 8 million chunk ids: 8 TB of data).
pub const MAX_MANIFEST_SIZE: usize = 256 * 1024 * 1024;

/// A snapshot's id: BLAKE3 of its manifest bytes.
pub type SnapshotId = ChunkId;

/// The part of a manifest the server reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicPart {
    /// When the backup started.
    pub time: Timestamp,
    /// The device that made it.
    pub device: String,
    /// Total size of the files.
    pub logical_bytes: u64,
    /// Number of files.
    pub file_count: u64,
    /// Problems of the run (paths missing, files unreadable, a hook
    /// failed): a count, never a name. Version 1 manifests read as 0.
    pub problems: u64,
    /// A checkpoint: a partial snapshot of a backup still running (the files
    /// sent so far), replaced by its final snapshot. Versions 1 and 2 read
    /// as `false`; only version 3 can say `true`.
    pub checkpoint: bool,
    /// Every blob the snapshot needs, sorted and unique.
    pub chunks: Vec<ChunkId>,
}

/// What the client backed up and how it went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statistics {
    /// Files seen for the first time.
    pub files_new: u64,
    /// Files whose contents changed.
    pub files_changed: u64,
    /// Files skipped as unchanged.
    pub files_unchanged: u64,
    /// Directories.
    pub dirs: u64,
    /// Bytes read from disk.
    pub bytes_read: u64,
    /// Bytes uploaded.
    pub bytes_sent: u64,
    /// Files of the parent snapshot's paths no longer there (version 2;
    /// version 1 manifests read as 0).
    pub files_deleted: u64,
}

/// The encrypted part of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivatePart {
    /// The root tree.
    pub root: ChunkId,
    /// The paths that were backed up.
    pub paths: Vec<Vec<u8>>,
    /// The machine's host name.
    pub hostname: String,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// The snapshot this one was made against, if any.
    pub parent: Option<SnapshotId>,
    /// Counters.
    pub stats: Statistics,
    /// Paths that could not be read, with why.
    pub errors: Vec<(Vec<u8>, String)>,
}

/// A whole manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Cleartext for the server.
    pub public: PublicPart,
    /// Encrypted.
    pub private: PrivatePart,
}

fn encode_public(p: &PublicPart, version: Version, w: &mut Writer) {
    w.i64(p.time.secs);
    w.u32(p.time.nanos);
    w.bytes(p.device.as_bytes());
    w.varint(p.logical_bytes);
    w.varint(p.file_count);
    if version >= Version::V2 {
        w.varint(p.problems);
    }
    if version >= Version::V3 {
        w.u8(u8::from(p.checkpoint));
    }
    w.varint(p.chunks.len() as u64);
    p.chunks.iter().for_each(|id| w.id(id));
}

fn decode_public(r: &mut Reader<'_>, version: Version) -> Result<PublicPart> {
    let time = Timestamp {
        secs: r.i64("time")?,
        nanos: r.u32("time nanoseconds")?,
    };
    if time.nanos >= 1_000_000_000 {
        return Err(r.err("time nanoseconds out of range"));
    }
    let device = r.string("device")?;
    let logical_bytes = r.varint("logical bytes")?;
    let file_count = r.varint("file count")?;
    let problems = match version {
        Version::V1 => 0,
        Version::V2 | Version::V3 => r.varint("problems")?,
    };
    let checkpoint = match version {
        Version::V1 | Version::V2 => false,
        Version::V3 => checkpoint_flag(r)?,
    };
    let n = r.count("chunk count", ChunkId::LEN)?;
    let mut chunks = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.id("chunk id")?;
        if chunks.last().is_some_and(|prev| *prev >= id) {
            return Err(r.err("chunk ids not strictly increasing"));
        }
        chunks.push(id);
    }
    Ok(PublicPart {
        time,
        device,
        logical_bytes,
        file_count,
        problems,
        checkpoint,
        chunks,
    })
}

/// The checkpoint byte of a version 3 public part: 0 or 1, nothing else.
fn checkpoint_flag(r: &mut Reader<'_>) -> Result<bool> {
    match r.u8("checkpoint flag")? {
        0 => Ok(false),
        1 => Ok(true),
        f => Err(r.err(format!("checkpoint flag {f} (0 or 1 expected)"))),
    }
}

fn encode_private(p: &PrivatePart, version: Version) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(PRIVATE_MAGIC);
    w.u8(version as u8);
    w.id(&p.root);
    w.varint(p.paths.len() as u64);
    p.paths.iter().for_each(|x| w.bytes(x));
    w.bytes(p.hostname.as_bytes());
    w.varint(p.tags.len() as u64);
    p.tags.iter().for_each(|t| w.bytes(t.as_bytes()));
    match &p.parent {
        None => w.u8(0),
        Some(id) => {
            w.u8(1);
            w.id(id);
        }
    }
    let s = &p.stats;
    for v in [
        s.files_new,
        s.files_changed,
        s.files_unchanged,
        s.dirs,
        s.bytes_read,
        s.bytes_sent,
    ] {
        w.varint(v);
    }
    if version >= Version::V2 {
        w.varint(s.files_deleted);
    }
    w.varint(p.errors.len() as u64);
    for (path, msg) in &p.errors {
        w.bytes(path);
        w.bytes(msg.as_bytes());
    }
    w.buf
}

fn decode_private(data: &[u8], version: Version) -> Result<PrivatePart> {
    let mut r = Reader::new(data, Object::Manifest);
    r.header(PRIVATE_MAGIC, version as u8)?;
    let root = r.id("root tree id")?;
    let n = r.count("path count", 1)?;
    let paths = (0..n)
        .map(|_| r.bytes("path").map(<[u8]>::to_vec))
        .collect::<Result<_>>()?;
    let hostname = r.string("hostname")?;
    let n = r.count("tag count", 1)?;
    let tags = (0..n).map(|_| r.string("tag")).collect::<Result<_>>()?;
    let parent = match r.u8("parent flag")? {
        0 => None,
        1 => Some(r.id("parent id")?),
        f => return Err(r.err(format!("parent flag {f}"))),
    };
    let mut v = [0u64; 6];
    for (i, x) in v.iter_mut().enumerate() {
        *x = r.varint(
            [
                "files new",
                "files changed",
                "files unchanged",
                "dirs",
                "bytes read",
                "bytes sent",
            ][i],
        )?;
    }
    let stats = Statistics {
        files_new: v[0],
        files_changed: v[1],
        files_unchanged: v[2],
        dirs: v[3],
        bytes_read: v[4],
        bytes_sent: v[5],
        files_deleted: match version {
            Version::V1 => 0,
            Version::V2 | Version::V3 => r.varint("files deleted")?,
        },
    };
    let n = r.count("error count", 2)?;
    let mut errors = Vec::with_capacity(n);
    for _ in 0..n {
        errors.push((r.bytes("error path")?.to_vec(), r.string("error message")?));
    }
    r.finish()?;
    Ok(PrivatePart {
        root,
        paths,
        hostname,
        tags,
        parent,
        stats,
        errors,
    })
}

impl Manifest {
    /// Encodes and encrypts the manifest in the newest format. Sorts and
    /// deduplicates the chunk ids.
    pub fn seal(&self, keys: &Keys) -> Result<Vec<u8>> {
        self.seal_as(keys, Version::LATEST)
    }

    /// Encodes and encrypts the manifest in format `version` (for a server
    /// too old to read the newest: what version 1 lacks, the count of
    /// problems and of deleted files, is left out). A checkpoint needs
    /// version 3 (in an older one it would read as a complete snapshot):
    /// the caller never seals one for an older server.
    pub fn seal_as(&self, keys: &Keys, version: Version) -> Result<Vec<u8>> {
        self.seal_with_nonce(keys, version, &aead::random_nonce()?)
    }

    pub(crate) fn seal_with_nonce(
        &self,
        keys: &Keys,
        version: Version,
        nonce: &[u8; NONCE_LEN],
    ) -> Result<Vec<u8>> {
        debug_assert!(
            !self.public.checkpoint || version >= Version::V3,
            "a checkpoint sealed as version {version:?} would read as complete"
        );
        let mut public = self.public.clone();
        public.chunks.sort_unstable();
        public.chunks.dedup();
        let mut body = Writer::new();
        encode_public(&public, version, &mut body);
        let mut w = Writer::new();
        w.raw(MAGIC);
        w.u8(version as u8);
        w.u32(body.buf.len() as u32);
        w.raw(&body.buf);
        let aad_len = w.buf.len();
        w.raw(nonce);
        let mut private = encode_private(&self.private, version);
        let tag = aead::seal(keys.enc_key(), nonce, &w.buf[..aad_len], &mut private);
        w.raw(&private);
        w.raw(&tag);
        if w.buf.len() > MAX_MANIFEST_SIZE {
            return Err(Error::TooLarge {
                object: Object::Manifest,
                size: w.buf.len() as u64,
                limit: MAX_MANIFEST_SIZE as u64,
            });
        }
        Ok(w.buf)
    }

    /// A manifest with only what the server reads: `time`, `device`, the
    /// chunk list (sorted when sealed), totals of zero, and an empty private
    /// part. For tests, benchmarks and tools that exercise a server without a
    /// real backup; a client makes its manifests whole.
    pub fn bare(device: &str, time: Timestamp, chunks: Vec<ChunkId>) -> Manifest {
        Manifest {
            private: PrivatePart {
                root: chunks
                    .first()
                    .copied()
                    .unwrap_or(ChunkId::from_bytes([0; 32])),
                paths: vec![],
                hostname: device.into(),
                tags: vec![],
                parent: None,
                stats: Statistics::default(),
                errors: vec![],
            },
            public: PublicPart {
                time,
                device: device.into(),
                logical_bytes: 0,
                file_count: 0,
                problems: 0,
                checkpoint: false,
                chunks,
            },
        }
    }

    /// Reads the public part only, as the server does (no key needed). Returns
    /// it with the offset where the encrypted part starts.
    pub fn read_public(bytes: &[u8]) -> Result<(PublicPart, usize)> {
        Self::read_public_versioned(bytes).map(|(public, at, _)| (public, at))
    }

    /// [`Manifest::read_public`], with the manifest's format version.
    pub fn read_public_versioned(bytes: &[u8]) -> Result<(PublicPart, usize, Version)> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(Error::TooLarge {
                object: Object::Manifest,
                size: bytes.len() as u64,
                limit: MAX_MANIFEST_SIZE as u64,
            });
        }
        let mut r = Reader::new(bytes, Object::Manifest);
        let version = header(&mut r)?;
        let len = r.u32("public length")? as usize;
        let public_bytes = r.raw(len, "public part")?;
        let mut pr = Reader::new(public_bytes, Object::Manifest);
        let public = decode_public(&mut pr, version)?;
        pr.finish()?;
        if r.remaining() < NONCE_LEN + TAG_LEN {
            return Err(r.err("truncated: no room for the encrypted part"));
        }
        Ok((public, 9 + len, version))
    }

    /// Where the chunk id list of a manifest starts, and how many ids it
    /// has, read from the manifest's first bytes (`prefix`: the first
    /// [`CHUNK_LIST_PREFIX`] bytes, or the whole manifest if shorter). For
    /// streaming the ids of a large manifest without loading it (the
    /// server's garbage collection). Checks that the ids end exactly where
    /// the public part ends; the ids themselves are the caller's to read.
    pub fn chunk_list_at(prefix: &[u8]) -> Result<(usize, u64)> {
        let mut r = Reader::new(prefix, Object::Manifest);
        let version = header(&mut r)?;
        let public_len = u64::from(r.u32("public length")?);
        r.i64("time")?;
        r.u32("time nanoseconds")?;
        r.bytes("device")?;
        r.varint("logical bytes")?;
        r.varint("file count")?;
        if version >= Version::V2 {
            r.varint("problems")?;
        }
        if version >= Version::V3 {
            checkpoint_flag(&mut r)?;
        }
        let count = r.varint("chunk count")?;
        let at = prefix.len() - r.remaining();
        let ids_len = count.checked_mul(ChunkId::LEN as u64);
        if ids_len.is_none() || ids_len != (9 + public_len).checked_sub(at as u64) {
            return Err(r.err("the chunk list does not fill the public part"));
        }
        Ok((at, count))
    }

    /// Decrypts and decodes a whole manifest.
    pub fn open(keys: &Keys, bytes: &[u8]) -> Result<Self> {
        let (public, at, version) = Self::read_public_versioned(bytes)?;
        let nonce: [u8; NONCE_LEN] = bytes[at..at + NONCE_LEN].try_into().unwrap();
        let mut private = bytes[at + NONCE_LEN..bytes.len() - TAG_LEN].to_vec();
        let tag: [u8; TAG_LEN] = bytes[bytes.len() - TAG_LEN..].try_into().unwrap();
        aead::open(keys.enc_key(), &nonce, &bytes[..at], &mut private, &tag).map_err(|()| {
            Error::corrupt(
                Object::Manifest,
                Some(&snapshot_id(bytes)),
                "authentication failed (damaged, tampered with, or not encrypted with this subscriber's key)",
            )
        })?;
        Ok(Manifest {
            public,
            private: decode_private(&private, version)?,
        })
    }
}

/// Reads the magic and a version this build knows (the newest is named in
/// the error about a newer one).
fn header(r: &mut Reader<'_>) -> Result<Version> {
    let magic = r.raw(4, "magic")?;
    if magic != MAGIC {
        return Err(r.err(format!(
            "bad magic {magic:02x?}, expected \"CFMF\": not a coffre {}",
            Object::Manifest
        )));
    }
    let found = r.u8("version")?;
    Version::from_byte(found).ok_or(Error::UnsupportedVersion {
        object: Object::Manifest,
        found,
        supported: Version::LATEST as u8,
    })
}

/// Bytes of a manifest that [`Manifest::chunk_list_at`] needs at most.
pub const CHUNK_LIST_PREFIX: usize = 64 * 1024;

/// The id of the snapshot whose manifest is `bytes`.
pub fn snapshot_id(bytes: &[u8]) -> SnapshotId {
    ChunkId::from_bytes(*blake3::hash(bytes).as_bytes())
}
