//! Trees: one directory listing, stored as a blob like file data.
//!
//! ```text
//! "CFTR" | version = 1 | entry count (varint) | entries, sorted by name (bytes), unique
//! entry:
//!   name          bytes (non-empty, no '/' and no NUL, not "." or "..")
//!   kind          u8: 1 file, 2 directory, 3 symlink
//!   mode          varint (permission and type bits, as st_mode)
//!   uid, gid      varint, varint
//!   mtime         i64 LE seconds, u32 LE nanoseconds (< 10^9)
//!   size          varint (file length in bytes; 0 for others)
//!   xattrs        count (varint), then (name bytes, value bytes), sorted by name, unique
//!   content       file: chunk count (varint), 32-byte chunk ids in file order
//!                 directory: the subtree's 32-byte id
//!                 symlink: target bytes (non-empty, no NUL)
//! ```
//!
//! The encoding is canonical (one listing has one encoding), so an unchanged
//! directory produces the same tree blob and deduplicates. Names are raw bytes:
//! non-UTF-8 names survive. The decoder refuses names that could escape the
//! restore target, whatever bytes it is given.

use crate::codec::{Reader, Writer};
use crate::error::{Error, Object, Result};
use crate::time::Timestamp;
use crate::ChunkId;

const MAGIC: &[u8; 4] = b"CFTR";
const VERSION: u8 = 1;

/// What an entry's content is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A regular file: its chunks, in order.
    File(Vec<ChunkId>),
    /// A directory: its tree's id.
    Dir(ChunkId),
    /// A symbolic link: its target, as raw bytes.
    Symlink(Vec<u8>),
}

impl Content {
    fn kind_byte(&self) -> u8 {
        match self {
            Content::File(_) => 1,
            Content::Dir(_) => 2,
            Content::Symlink(_) => 3,
        }
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name, raw bytes.
    pub name: Vec<u8>,
    /// `st_mode`: permission and file-type bits.
    pub mode: u32,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Last modification time.
    pub mtime: Timestamp,
    /// Length in bytes (files); 0 for directories and symlinks.
    pub size: u64,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// What the entry holds.
    pub content: Content,
}

/// A directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    /// Entries sorted by name.
    pub entries: Vec<Entry>,
}

fn check_name(name: &[u8]) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        Err("empty name")
    } else if name == b"." || name == b".." {
        Err("name \".\" or \"..\"")
    } else if name.contains(&b'/') || name.contains(&0) {
        Err("name contains '/' or NUL")
    } else {
        Ok(())
    }
}

impl Tree {
    /// Builds a tree, sorting its entries. Refuses duplicate or unsafe names.
    pub fn new(mut entries: Vec<Entry>) -> Result<Self> {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries.iter_mut() {
            e.xattrs.sort();
        }
        let tree = Tree { entries };
        tree.validate()?;
        Ok(tree)
    }

    fn validate(&self) -> Result<()> {
        let bad = |d: String| Error::corrupt(Object::Tree, None, d);
        for (i, e) in self.entries.iter().enumerate() {
            check_name(&e.name).map_err(|d| bad(format!("entry {i}: {d}")))?;
            if i > 0 && self.entries[i - 1].name >= e.name {
                return Err(bad(format!("entry {i}: names not sorted or duplicated")));
            }
            if e.mtime.nanos >= 1_000_000_000 {
                return Err(bad(format!("entry {i}: nanoseconds out of range")));
            }
            if e.xattrs.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(bad(format!(
                    "entry {i}: extended attributes not sorted or duplicated"
                )));
            }
            if let Content::Symlink(t) = &e.content {
                if t.is_empty() || t.contains(&0) {
                    return Err(bad(format!(
                        "entry {i}: symlink target empty or contains NUL"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(MAGIC);
        w.u8(VERSION);
        w.varint(self.entries.len() as u64);
        for e in &self.entries {
            w.bytes(&e.name);
            w.u8(e.content.kind_byte());
            w.varint(e.mode.into());
            w.varint(e.uid.into());
            w.varint(e.gid.into());
            w.i64(e.mtime.secs);
            w.u32(e.mtime.nanos);
            w.varint(e.size);
            w.varint(e.xattrs.len() as u64);
            for (k, v) in &e.xattrs {
                w.bytes(k);
                w.bytes(v);
            }
            match &e.content {
                Content::File(ids) => {
                    w.varint(ids.len() as u64);
                    ids.iter().for_each(|id| w.id(id));
                }
                Content::Dir(id) => w.id(id),
                Content::Symlink(t) => w.bytes(t),
            }
        }
        w.buf
    }

    /// Decodes and validates an encoded tree.
    pub fn decode(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data, Object::Tree);
        r.header(MAGIC, VERSION)?;
        // An entry takes at least 18 bytes: name, kind, mode, uid, gid, mtime, size...
        let n = r.count("entry count", 18)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.bytes("name")?.to_vec();
            let kind = r.u8("kind")?;
            let u32_field = |r: &mut Reader<'_>, f: &str| -> Result<u32> {
                let v = r.varint(f)?;
                u32::try_from(v).map_err(|_| r.err(format!("{f} {v} does not fit 32 bits")))
            };
            let mode = u32_field(&mut r, "mode")?;
            let uid = u32_field(&mut r, "uid")?;
            let gid = u32_field(&mut r, "gid")?;
            let mtime = Timestamp {
                secs: r.i64("mtime")?,
                nanos: r.u32("mtime nanoseconds")?,
            };
            let size = r.varint("size")?;
            let nx = r.count("xattr count", 2)?;
            let mut xattrs = Vec::with_capacity(nx);
            for _ in 0..nx {
                xattrs.push((
                    r.bytes("xattr name")?.to_vec(),
                    r.bytes("xattr value")?.to_vec(),
                ));
            }
            let content = match kind {
                1 => {
                    let c = r.count("chunk count", ChunkId::LEN)?;
                    let mut ids = Vec::with_capacity(c);
                    for _ in 0..c {
                        ids.push(r.id("chunk id")?);
                    }
                    Content::File(ids)
                }
                2 => Content::Dir(r.id("subtree id")?),
                3 => Content::Symlink(r.bytes("symlink target")?.to_vec()),
                k => return Err(r.err(format!("unknown entry kind {k}"))),
            };
            entries.push(Entry {
                name,
                mode,
                uid,
                gid,
                mtime,
                size,
                xattrs,
                content,
            });
        }
        r.finish()?;
        let tree = Tree { entries };
        tree.validate()?;
        Ok(tree)
    }
}
