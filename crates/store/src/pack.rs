//! Pack files: a subscriber's blobs, concatenated, with an index at the end.
//!
//! A pack lives at `subscribers/<subscriber id>/packs/<name>.pack`, where
//! `<name>` is 32 lower-case hex digits (16 random bytes). It is written under
//! the temporary name `.<name>.pack.tmp` in the same directory, then fsync'd
//! and renamed (see [`durable`](crate::durable)); readers ignore names starting
//! with a dot. Once renamed, a pack is never modified: repacking (later) writes
//! new packs and deletes whole old ones.
//!
//! ```text
//! body     blob 0 | blob 1 | ... | blob n-1        the blobs as received, back to back
//! entries  n times, 76 bytes each, in body order:
//!            0  32  chunk id
//!           32   8  offset of the blob in the file (u64 LE)
//!           40   4  length of the blob (u32 LE)
//!           44  32  BLAKE3 (unkeyed) of the blob's bytes, the checksum `verify` uses
//! trailer  17 bytes:
//!            0   4  entry count n (u32 LE)
//!            4   8  footer offset: where the entries start = length of the body (u64 LE)
//!           12   4  magic "CFPK"
//!           16   1  version = 1
//! ```
//!
//! A reader finds the index from the end of the file: it reads the trailer,
//! checks the magic and the version (refusing an unknown version with an
//! "upgrade" message), and checks that `footer offset + 76 n + 17` is the file
//! length before it reads `76 n` bytes. In version 1 the blobs fill the body
//! exactly, in entry order, with no gap. A pack therefore describes itself:
//! the catalogue's `chunks` and `packs` rows can be rebuilt from the pack files
//! alone (invariant 9). The checksum covers the ciphertext the server holds, so
//! `verify` needs no key; the client's AEAD check stays the end-to-end one.
//!
//! The format is frozen by the known-answer test at the bottom of this file.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffre_core::ChunkId;

use crate::durable;
use crate::error::{Error, Result};
use crate::layout::temp_pack_file;
use crate::pending::Pending;
use crate::storage::Packs;

/// Magic at the very end of a pack (before the version byte).
pub const PACK_MAGIC: &[u8; 4] = b"CFPK";
/// The pack format version this build writes and reads.
pub const PACK_VERSION: u8 = 1;
/// Bytes per index entry.
pub const ENTRY_LEN: u64 = 32 + 8 + 4 + 32;
/// Bytes of the trailer.
pub const TRAILER_LEN: u64 = 4 + 8 + 4 + 1;
/// A pack is sealed as soon as its body reaches this size (32 MiB).
pub const PACK_TARGET_SIZE: u64 = 32 * 1024 * 1024;
/// The most entries a reader accepts (a bound on what it allocates; a
/// version-1 pack of minimum-size blobs has fewer than a million).
pub const MAX_ENTRIES: u32 = 1 << 20;

/// One blob of a pack, as its index lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// The chunk id the blob was stored under.
    pub id: ChunkId,
    /// Where the blob starts in the pack file.
    pub offset: u64,
    /// The blob's length in bytes.
    pub length: u32,
    /// BLAKE3 of the blob's bytes.
    pub checksum: [u8; 32],
}

/// Encodes the index (entries and trailer) of a pack whose body is
/// `footer_offset` bytes long.
pub(crate) fn encode_footer(entries: &[PackEntry], footer_offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN as usize + TRAILER_LEN as usize);
    for e in entries {
        out.extend_from_slice(e.id.as_bytes());
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.length.to_le_bytes());
        out.extend_from_slice(&e.checksum);
    }
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&footer_offset.to_le_bytes());
    out.extend_from_slice(PACK_MAGIC);
    out.push(PACK_VERSION);
    out
}

/// Checks a trailer against the file length; returns (entry count, footer
/// offset).
fn parse_trailer(what: &str, trailer: &[u8], file_len: u64) -> Result<(u32, u64)> {
    let bad = |why: String| Error::Corrupt(format!("{what}: {why}"));
    if trailer.len() as u64 != TRAILER_LEN {
        return Err(bad(format!(
            "{file_len} bytes long, too short for a pack trailer"
        )));
    }
    if &trailer[12..16] != PACK_MAGIC {
        return Err(bad(format!(
            "bad magic {:02x?}: not a coffre pack, or truncated",
            &trailer[12..16]
        )));
    }
    if trailer[16] != PACK_VERSION {
        return Err(bad(format!(
            "pack format version {}, but this coffre-server reads version {PACK_VERSION}: \
             upgrade coffre-server",
            trailer[16]
        )));
    }
    let count = u32::from_le_bytes(trailer[0..4].try_into().unwrap());
    let footer_offset = u64::from_le_bytes(trailer[4..12].try_into().unwrap());
    if count > MAX_ENTRIES {
        return Err(bad(format!(
            "{count} entries, more than the {MAX_ENTRIES} a pack may hold"
        )));
    }
    let expected = footer_offset
        .checked_add(u64::from(count) * ENTRY_LEN + TRAILER_LEN)
        .ok_or_else(|| bad(format!("footer offset {footer_offset} out of range")))?;
    if expected != file_len {
        return Err(bad(format!(
            "the trailer describes a {expected}-byte file, but the file has {file_len} bytes"
        )));
    }
    Ok((count, footer_offset))
}

/// Decodes `count` entries and checks that their blobs fill the body exactly.
fn parse_entries(
    what: &str,
    bytes: &[u8],
    count: u32,
    footer_offset: u64,
) -> Result<Vec<PackEntry>> {
    debug_assert_eq!(bytes.len() as u64, u64::from(count) * ENTRY_LEN);
    let mut entries = Vec::with_capacity(count as usize);
    let mut next = 0u64;
    for (i, e) in bytes.chunks_exact(ENTRY_LEN as usize).enumerate() {
        let entry = PackEntry {
            id: ChunkId::from_bytes(e[0..32].try_into().unwrap()),
            offset: u64::from_le_bytes(e[32..40].try_into().unwrap()),
            length: u32::from_le_bytes(e[40..44].try_into().unwrap()),
            checksum: e[44..76].try_into().unwrap(),
        };
        if entry.offset != next {
            return Err(Error::Corrupt(format!(
                "{what}: entry {i} starts at {} but the previous blob ends at {next}",
                entry.offset
            )));
        }
        next += u64::from(entry.length);
        entries.push(entry);
    }
    if next != footer_offset {
        return Err(Error::Corrupt(format!(
            "{what}: the blobs end at {next} but the index starts at {footer_offset}"
        )));
    }
    Ok(entries)
}

/// Parses the index of a whole pack held in memory.
pub fn parse_pack_index(pack: &[u8]) -> Result<Vec<PackEntry>> {
    let len = pack.len() as u64;
    let trailer = &pack[pack.len().saturating_sub(TRAILER_LEN as usize)..];
    let (count, footer_offset) = parse_trailer("pack", trailer, len)?;
    let start = footer_offset as usize;
    let end = pack.len() - TRAILER_LEN as usize;
    parse_entries("pack", &pack[start..end], count, footer_offset)
}

/// Reads the index of the pack file at `path`, from its end, without reading
/// the blobs. This is what a catalogue rebuild or `verify` starts from.
pub fn read_pack_index(path: &Path) -> Result<Vec<PackEntry>> {
    let what = format!("pack {}", path.display());
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut trailer = vec![0u8; TRAILER_LEN.min(len) as usize];
    file.seek(SeekFrom::Start(len - trailer.len() as u64))
        .and_then(|_| file.read_exact(&mut trailer))
        .map_err(|e| Error::io(path, e))?;
    let (count, footer_offset) = parse_trailer(&what, &trailer, len)?;
    let mut bytes = vec![0u8; (u64::from(count) * ENTRY_LEN) as usize];
    file.seek(SeekFrom::Start(footer_offset))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|e| Error::io(path, e))?;
    parse_entries(&what, &bytes, count, footer_offset)
}

/// Reads the index of a sealed pack of `size` bytes from its end, through
/// the pack storage (two ranged reads: the trailer, then the entries).
pub(crate) fn read_stored_index(
    packs: &Packs,
    sub: i64,
    name: &str,
    size: u64,
) -> Result<Vec<PackEntry>> {
    let what = format!("pack {}", packs.describe(sub, name));
    let missing = || Error::Corrupt(format!("{what} is missing"));
    let tail = TRAILER_LEN.min(size);
    let trailer = packs
        .read_range(sub, name, size - tail, tail)?
        .ok_or_else(missing)?;
    let (count, footer_offset) = parse_trailer(&what, &trailer, size)?;
    let len = u64::from(count) * ENTRY_LEN;
    let bytes = packs
        .read_range(sub, name, footer_offset, len)?
        .ok_or_else(missing)?;
    if bytes.len() as u64 != len {
        return Err(Error::Corrupt(format!(
            "{what} is shorter than its trailer says"
        )));
    }
    parse_entries(&what, &bytes, count, footer_offset)
}

/// Reads one blob from a sealed pack (a ranged read) and checks it against
/// its checksum. A missing pack is [`Error::Corrupt`].
pub(crate) fn read_blob(
    packs: &Packs,
    sub: i64,
    name: &str,
    id: &ChunkId,
    offset: u64,
    length: u32,
    checksum: &[u8; 32],
) -> Result<Vec<u8>> {
    let blob = packs
        .read_range(sub, name, offset, u64::from(length))?
        .ok_or_else(|| {
            Error::Corrupt(format!(
                "pack {} holding chunk {} is missing",
                packs.describe(sub, name),
                id.short()
            ))
        })?;
    if blob.len() != length as usize {
        return Err(Error::Corrupt(format!(
            "pack {} is shorter than the catalogue says (chunk {} at {offset}+{length})",
            packs.describe(sub, name),
            id.short()
        )));
    }
    if blake3::hash(&blob).as_bytes() != checksum {
        return Err(Error::Corrupt(format!(
            "chunk {} in pack {} does not match its checksum",
            id.short(),
            packs.describe(sub, name)
        )));
    }
    Ok(blob)
}

/// A new random pack name: 32 hex digits.
fn new_pack_name() -> io::Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| io::Error::other(format!("the system random number generator failed: {e}")))?;
    Ok(hex::encode(b))
}

/// The temporary file of a pack being written.
#[derive(Debug)]
struct OpenFile {
    name: String,
    tmp: PathBuf,
    out: BufWriter<File>,
}

/// A pack that is stored under its final name, not yet in the catalogue.
#[derive(Debug)]
pub(crate) struct SealedPack {
    pub(crate) name: String,
    pub(crate) size: u64,
}

/// A session's open pack: blobs written to a temporary file, not yet durable
/// nor visible to other sessions.
///
/// Made by [`Store::open_pack`](crate::Store::open_pack), filled by
/// [`Store::put_chunk`](crate::Store::put_chunk), made durable by
/// [`Store::seal_pack`](crate::Store::seal_pack) (or `commit_snapshot`, or
/// automatically once [full](Self::is_full)). The temporary file is created on
/// the first blob. A [`SessionWriter`](crate::SessionWriter) holds one for a
/// connection.
/// After a seal the writer is empty and can be filled again.
///
/// **Dropping a writer that holds blobs discards them** (the temporary file is
/// deleted and the quota reservation returned). To keep what a client sent
/// before it disconnected, seal the pack first.
#[derive(Debug)]
pub struct PackWriter {
    pending: Arc<Pending>,
    packs: Arc<Packs>,
    pub(crate) subscriber_id: i64,
    pub(crate) token: u64,
    dir: PathBuf,
    file: Option<OpenFile>,
    entries: Vec<PackEntry>,
    ids: HashSet<ChunkId>,
    /// Ids put although another device's copies were there, which this
    /// device did not trust: sealed as further copies, the others marked
    /// disputed (catalog/trust.rs).
    pub(crate) disputes: HashSet<ChunkId>,
    body_len: u64,
    /// Bytes reserved against the quota for this pack (its future file size).
    pub(crate) reserved: u64,
}

impl PackWriter {
    pub(crate) fn new(
        pending: Arc<Pending>,
        packs: Arc<Packs>,
        subscriber_id: i64,
        token: u64,
    ) -> Self {
        let dir = packs.dir(subscriber_id);
        PackWriter {
            pending,
            packs,
            subscriber_id,
            token,
            dir,
            file: None,
            entries: Vec::new(),
            ids: HashSet::new(),
            disputes: HashSet::new(),
            body_len: 0,
            reserved: 0,
        }
    }

    /// Whether the writer holds no blob.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of blobs written since the last seal.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes the pack file will have once sealed (blobs, index, trailer).
    pub fn size(&self) -> u64 {
        if self.entries.is_empty() {
            0
        } else {
            self.body_len + self.entries.len() as u64 * ENTRY_LEN + TRAILER_LEN
        }
    }

    /// Whether the pack is full and should be sealed: its body reached
    /// [`PACK_TARGET_SIZE`]. The one place that decides it, for the data
    /// path's packs (`put_chunk`, the session writer) and repack's.
    pub fn is_full(&self) -> bool {
        self.body_len >= PACK_TARGET_SIZE
    }

    pub(crate) fn belongs_to(&self, pending: &Arc<Pending>) -> bool {
        Arc::ptr_eq(&self.pending, pending)
    }

    pub(crate) fn contains(&self, id: &ChunkId) -> bool {
        self.ids.contains(id)
    }

    /// Bytes that writing a blob of `len` bytes adds to the sealed pack.
    pub(crate) fn cost(&self, len: usize) -> u64 {
        let trailer = if self.entries.is_empty() {
            TRAILER_LEN
        } else {
            0
        };
        len as u64 + ENTRY_LEN + trailer
    }

    /// Appends a blob. On error the pack is in an unknown state: the caller
    /// must [`discard`](Self::discard) it.
    pub(crate) fn append(&mut self, id: &ChunkId, blob: &[u8]) -> Result<()> {
        if self.file.is_none() {
            durable::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
            let name = new_pack_name().map_err(|e| Error::io(&self.dir, e))?;
            let tmp = self.dir.join(temp_pack_file(&name));
            let file = durable::create_new(&tmp).map_err(|e| Error::io(&tmp, e))?;
            self.file = Some(OpenFile {
                name,
                tmp,
                out: BufWriter::with_capacity(256 * 1024, file),
            });
        }
        let f = self.file.as_mut().unwrap();
        f.out.write_all(blob).map_err(|e| Error::io(&f.tmp, e))?;
        self.entries.push(PackEntry {
            id: *id,
            offset: self.body_len,
            length: blob.len() as u32,
            checksum: *blake3::hash(blob).as_bytes(),
        });
        self.ids.insert(*id);
        self.pending.add_id(self.token, *id);
        self.body_len += blob.len() as u64;
        Ok(())
    }

    /// The index entries written so far.
    pub(crate) fn entries(&self) -> &[PackEntry] {
        &self.entries
    }

    /// Writes the index and trailer and stores the pack under its final
    /// name ([`Packs::store`]: fsync, rename and fsync of the directory on
    /// the local disk; an acknowledged upload to an object store). On error the temporary file is gone and
    /// the caller must [`discard`](Self::discard) the writer.
    pub(crate) fn finish(&mut self) -> Result<SealedPack> {
        let size = self.size();
        let Some(mut f) = self.file.take() else {
            return Err(Error::Corrupt("sealing a pack that has no file".into()));
        };
        let footer = encode_footer(&self.entries, self.body_len);
        let written = f
            .out
            .write_all(&footer)
            .and_then(|()| f.out.flush())
            .map_err(|e| Error::io(&f.tmp, e));
        let file = match written {
            Ok(()) => f
                .out
                .into_inner()
                .map_err(|e| Error::io(&f.tmp, e.into_error())),
            Err(e) => Err(e),
        };
        let file = match file {
            Ok(file) => file,
            Err(e) => {
                let _ = std::fs::remove_file(&f.tmp);
                return Err(e);
            }
        };
        self.packs
            .store(self.subscriber_id, &f.name, file, &f.tmp)?;
        Ok(SealedPack { name: f.name, size })
    }

    /// Empties the writer after its pack was sealed and catalogued. The caller
    /// has already released the reservation.
    pub(crate) fn clear_sealed(&mut self) {
        debug_assert!(self.file.is_none() && self.reserved == 0);
        self.pending.remove_ids(self.token, self.ids.iter());
        self.ids.clear();
        self.disputes.clear();
        self.entries.clear();
        self.body_len = 0;
    }

    /// Throws the open pack away: deletes its temporary file, returns its
    /// quota reservation, forgets its ids. The writer is then empty.
    pub(crate) fn discard(&mut self) {
        if let Some(f) = self.file.take() {
            drop(f.out);
            let _ = std::fs::remove_file(&f.tmp);
        }
        self.pending
            .release(self.subscriber_id, std::mem::take(&mut self.reserved));
        self.clear_sealed();
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        self.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(id: u8, offset: u64, blob: &[u8]) -> PackEntry {
        PackEntry {
            id: ChunkId::from_bytes([id; 32]),
            offset,
            length: blob.len() as u32,
            checksum: *blake3::hash(blob).as_bytes(),
        }
    }

    /// A pack of two tiny "blobs" (the pack layer does not look inside them),
    /// byte for byte. If this test fails, a change broke every existing pack.
    #[test]
    fn known_answer_tiny_pack() {
        let entries = [entry(0x01, 0, b"hello"), entry(0x02, 5, b"coffre!")];
        let mut pack = b"hellocoffre!".to_vec();
        pack.extend(encode_footer(&entries, 12));
        let expected = concat!(
            // body
            "68656c6c6f",
            "636f6666726521",
            // entry 0: id, offset 0, length 5, BLAKE3("hello")
            "0101010101010101010101010101010101010101010101010101010101010101",
            "0000000000000000",
            "05000000",
            "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f",
            // entry 1: id, offset 5, length 7, BLAKE3("coffre!")
            "0202020202020202020202020202020202020202020202020202020202020202",
            "0500000000000000",
            "07000000",
            "d97ffcef1af4ca44a9fc27e440ac5e0c5d889bec07db6ee2bed3edca9f32693a",
            // trailer: count 2, footer offset 12, "CFPK", version 1
            "02000000",
            "0c00000000000000",
            "4346504b",
            "01",
        );
        assert_eq!(hex::encode(&pack), expected);
        assert_eq!(pack.len() as u64, 12 + 2 * ENTRY_LEN + TRAILER_LEN);
        assert_eq!(parse_pack_index(&pack).unwrap(), entries);

        // The writer the store uses puts exactly these bytes on disk.
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(Packs::new(dir.path(), &crate::PackStorage::Local).unwrap());
        let packs = storage.dir(1);
        let mut w = PackWriter::new(Arc::default(), storage, 1, 0);
        w.append(&entries[0].id, b"hello").unwrap();
        w.append(&entries[1].id, b"coffre!").unwrap();
        let names: Vec<String> = std::fs::read_dir(&packs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.len() == 1 && names[0].starts_with('.') && names[0].ends_with(".pack.tmp"),
            "{names:?}"
        );
        assert_eq!(w.size(), pack.len() as u64);
        let sealed = w.finish().unwrap();
        w.clear_sealed();
        let path = packs.join(format!("{}.pack", sealed.name));
        assert_eq!(hex::encode(std::fs::read(&path).unwrap()), expected);
        assert_eq!(read_pack_index(&path).unwrap(), entries);
        assert!(sealed.name.len() == 32 && sealed.name.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            std::fs::read_dir(&packs).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn empty_index_parses() {
        let pack = encode_footer(&[], 0);
        assert_eq!(pack.len() as u64, TRAILER_LEN);
        assert!(parse_pack_index(&pack).unwrap().is_empty());
    }

    #[test]
    fn damaged_trailers_are_refused_with_a_reason() {
        let entries = [entry(1, 0, b"abc")];
        let mut pack = b"abc".to_vec();
        pack.extend(encode_footer(&entries, 3));
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (pack[..10].to_vec(), "too short"),
            (pack[..pack.len() - 1].to_vec(), "magic"),
            (
                {
                    let mut p = pack.clone();
                    *p.last_mut().unwrap() = 2;
                    p
                },
                "upgrade coffre-server",
            ),
            (
                {
                    let mut p = pack.clone();
                    p.insert(0, 0);
                    p
                },
                "describes",
            ),
            (
                {
                    let mut p = pack.clone();
                    let n = p.len();
                    p[n - 17..n - 13].copy_from_slice(&u32::MAX.to_le_bytes());
                    p
                },
                "entries",
            ),
            (
                {
                    let mut p = pack.clone();
                    p[3 + 32] = 1; // entry 0 offset = 1
                    p
                },
                "starts at",
            ),
        ];
        for (bytes, why) in cases {
            let e = parse_pack_index(&bytes).unwrap_err();
            assert!(matches!(e, Error::Corrupt(_)), "{e:?}");
            assert!(e.to_string().contains(why), "{why}: {e}");
        }
    }

    proptest! {
        #[test]
        fn index_round_trips(blobs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..20)) {
            let mut body = Vec::new();
            let mut entries = Vec::new();
            for (i, b) in blobs.iter().enumerate() {
                entries.push(entry(i as u8, body.len() as u64, b));
                body.extend_from_slice(b);
            }
            let footer_offset = body.len() as u64;
            body.extend(encode_footer(&entries, footer_offset));
            prop_assert_eq!(parse_pack_index(&body).unwrap(), entries);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_pack_index(&bytes);
        }
    }
}
