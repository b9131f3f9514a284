//! Content-defined chunking: FastCDC 2020 with a per-subscriber gear table.
//!
//! Parameters (frozen, docs/format.md "Chunking"): minimum 256 KiB, average
//! 1 MiB, maximum 4 MiB, normalisation level 1. The scan is the `fastcdc`
//! crate's own `v2020::cut_gear` (the reference implementation, so the speed is
//! the crate's); what coffre adds is
//!
//! - a **keyed gear table**: 256 words from BLAKE3's extendable output keyed with
//!   the subscriber's chunker seed, so cut points differ per subscriber and do
//!   not reveal which public file produced them (padding is the second defence);
//! - a **streaming reader** with bounded memory that hands out chunks as
//!   [`Bytes`] views of its read buffer, without copying each chunk: a 50 GB file
//!   is read through one 8 MiB buffer at a time.

use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

/// Smallest chunk (except a file's last).
pub const MIN_SIZE: usize = 256 * 1024;
/// Target average chunk size.
pub const AVG_SIZE: usize = 1024 * 1024;
/// Largest chunk.
pub const MAX_SIZE: usize = 4 * 1024 * 1024;

/// FastCDC 2020 masks for a 1 MiB average with normalisation level 1: the
/// "2 MiB" mask below the average, the "512 KiB" mask above it.
pub(crate) const MASK_S: u64 = 0x0000_d917_6753_7000;
pub(crate) const MASK_L: u64 = 0x0000_d917_0753_7000;

/// Read buffer of the streaming chunker.
const BUF_SIZE: usize = 8 * 1024 * 1024;

/// A FastCDC gear table (and its left-shifted twin), derived from a seed.
#[derive(Clone)]
pub struct GearTable {
    gear: [u64; 256],
    gear_ls: [u64; 256],
}

impl std::fmt::Debug for GearTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GearTable(..)")
    }
}

impl GearTable {
    /// `gear[i]` = little-endian u64 number `i` of `BLAKE3-keyed(seed, "")`'s
    /// extendable output.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let mut xof = blake3::Hasher::new_keyed(seed).finalize_xof();
        let mut raw = [0u8; 256 * 8];
        xof.fill(&mut raw);
        let mut gear = [0u64; 256];
        for (g, b) in gear.iter_mut().zip(raw.chunks_exact(8)) {
            *g = u64::from_le_bytes(b.try_into().unwrap());
        }
        let gear_ls = gear.map(|g| g << 1);
        GearTable { gear, gear_ls }
    }

    /// Length of the first chunk of `data`, given that `data` is either all that
    /// is left of the stream or at least [`MAX_SIZE`] long.
    #[inline]
    pub fn cut(&self, data: &[u8]) -> usize {
        fastcdc::v2020::cut_gear(
            data,
            MIN_SIZE,
            AVG_SIZE,
            MAX_SIZE,
            MASK_S,
            MASK_L,
            MASK_S << 1,
            MASK_L << 1,
            &self.gear,
            &self.gear_ls,
        )
        .1
    }

    /// The chunk boundaries of a whole in-memory buffer.
    pub fn chunks<'a>(&'a self, data: &'a [u8]) -> impl Iterator<Item = Range<usize>> + 'a {
        let mut start = 0;
        std::iter::from_fn(move || {
            if start >= data.len() {
                return None;
            }
            let len = self.cut(&data[start..]);
            let r = start..start + len;
            start += len;
            Some(r)
        })
    }
}

/// A chunk's bytes inside a shared read buffer.
struct Window {
    buf: Arc<Vec<u8>>,
    range: Range<usize>,
}

impl AsRef<[u8]> for Window {
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }
}

/// Read buffers kept for reuse once every chunk cut from them is dropped: a
/// long file is read through the same few buffers, with no new allocation (and
/// so no page faults) per buffer.
const POOL: usize = 2;

/// Cuts any reader into chunks with bounded memory.
///
/// Chunks are [`Bytes`] views into the read buffer (no copy per chunk). Memory
/// is at most the current buffer plus [`POOL`] retired ones (8 MiB each), and
/// whatever chunks the caller still holds.
pub struct Chunker<'g, R> {
    reader: R,
    gear: &'g GearTable,
    /// The current read buffer; `buf[start..]` is read but not yet handed out.
    buf: Arc<Vec<u8>>,
    start: usize,
    /// Size of the next read buffer.
    next_capacity: usize,
    pool: Vec<Arc<Vec<u8>>>,
    eof: bool,
}

impl<R> std::fmt::Debug for Chunker<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Chunker({} bytes buffered, eof: {})",
            self.buf.len() - self.start,
            self.eof
        )
    }
}

impl<'g, R: Read> Chunker<'g, R> {
    /// `size_hint` (the file's size, when known) sizes the first buffer so that
    /// small files do not allocate 8 MiB.
    pub fn new(reader: R, gear: &'g GearTable, size_hint: Option<u64>) -> Self {
        let next_capacity = match size_hint {
            // One spare byte lets the read that returns 0 (end of file) happen
            // without a second allocation.
            Some(n) if n < BUF_SIZE as u64 => n as usize + 1,
            _ => BUF_SIZE,
        };
        Chunker {
            reader,
            gear,
            buf: Arc::new(Vec::new()),
            start: 0,
            next_capacity,
            pool: Vec::new(),
            eof: false,
        }
    }

    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            let avail = &self.buf[self.start..];
            let filled = avail.len();
            if filled > 0 {
                if self.eof || filled >= MAX_SIZE {
                    let len = self.gear.cut(avail);
                    return Ok(Some(self.take(len)));
                }
                // With at least the average size in hand, a boundary found before
                // the end of the data is the one the full stream would give (the
                // scan only looks forward and its thresholds are unchanged), so
                // hand it out now rather than reading further.
                if filled >= AVG_SIZE {
                    let len = self.gear.cut(avail);
                    if len < filled {
                        return Ok(Some(self.take(len)));
                    }
                }
            } else if self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    fn take(&mut self, len: usize) -> Bytes {
        let range = self.start..self.start + len;
        self.start += len;
        Bytes::from_owner(Window {
            buf: Arc::clone(&self.buf),
            range,
        })
    }

    /// Refills: moves the bytes not yet handed out to the front of a buffer
    /// (this one if no chunk still uses it, else a free pooled or new one) and
    /// reads after them. `read_to_end` over `take` fills without zeroing first.
    fn fill(&mut self) -> io::Result<()> {
        let rest = self.buf.len() - self.start;
        let capacity = self.next_capacity.max(2 * rest).max(rest + 1);
        self.next_capacity = BUF_SIZE;
        let mut next =
            if let Some(buf) = Arc::get_mut(&mut self.buf).filter(|b| b.capacity() >= capacity) {
                buf.copy_within(self.start.., 0);
                buf.truncate(rest);
                std::mem::take(buf)
            } else {
                let mut fresh = match self
                    .pool
                    .iter()
                    .position(|b| Arc::strong_count(b) == 1 && b.capacity() >= capacity)
                {
                    Some(i) => Arc::into_inner(self.pool.swap_remove(i)).unwrap_or_default(),
                    None => Vec::with_capacity(capacity),
                };
                fresh.clear();
                fresh.extend_from_slice(&self.buf[self.start..]);
                let old = std::mem::take(&mut self.buf);
                if old.capacity() >= BUF_SIZE {
                    if self.pool.len() == POOL {
                        self.pool.remove(0);
                    }
                    self.pool.push(old);
                }
                fresh
            };
        let want = next.capacity() - next.len();
        let n = (&mut self.reader)
            .take(want as u64)
            .read_to_end(&mut next)?;
        if n < want {
            self.eof = true;
        }
        self.buf = Arc::new(next);
        self.start = 0;
        Ok(())
    }
}

impl<R: Read> Iterator for Chunker<'_, R> {
    type Item = io::Result<Bytes>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        crate::benchmark::random_bytes(n, seed)
    }

    /// A reader that returns at most `step` bytes per call, to exercise refills.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn masks_are_the_crates_for_1mib_level1() {
        let (s, l) = fastcdc::v2020::select_masks(AVG_SIZE, fastcdc::v2020::Normalization::Level1);
        assert_eq!((s, l), (MASK_S, MASK_L));
    }

    #[test]
    fn sizes_stay_within_bounds_and_average_near_1mib() {
        let gear = GearTable::from_seed(&[1; 32]);
        let data = pseudo_random(48 << 20, 1);
        let sizes: Vec<usize> = gear.chunks(&data).map(|r| r.len()).collect();
        let (last, body) = sizes.split_last().unwrap();
        assert!(
            body.iter().all(|&s| (MIN_SIZE..=MAX_SIZE).contains(&s)),
            "{sizes:?}"
        );
        assert!(*last <= MAX_SIZE);
        let avg = data.len() / sizes.len();
        assert!((700 << 10..1500 << 10).contains(&avg), "average {avg}");
    }

    #[test]
    fn zeros_cut_at_max_size() {
        let gear = GearTable::from_seed(&[1; 32]);
        let data = vec![0u8; 9 << 20];
        let sizes: Vec<usize> = gear.chunks(&data).map(|r| r.len()).collect();
        assert_eq!(sizes, vec![MAX_SIZE, MAX_SIZE, 1 << 20]);
    }

    #[test]
    fn seeds_change_the_boundaries() {
        let data = pseudo_random(16 << 20, 2);
        let a: Vec<_> = GearTable::from_seed(&[1; 32]).chunks(&data).collect();
        let b: Vec<_> = GearTable::from_seed(&[2; 32]).chunks(&data).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn boundaries_resynchronise_after_an_insertion() {
        let gear = GearTable::from_seed(&[3; 32]);
        let data = pseudo_random(24 << 20, 3);
        let mut edited = data[..1000].to_vec();
        edited.extend_from_slice(b"a few inserted bytes");
        edited.extend_from_slice(&data[1000..]);
        let ends = |d: &[u8]| {
            gear.chunks(d)
                .map(|r| d.len() - r.end)
                .collect::<std::collections::HashSet<_>>()
        };
        let common = ends(&data).intersection(&ends(&edited)).count();
        assert!(
            common + 2 >= ends(&data).len(),
            "only {common} boundaries survive an insertion"
        );
    }

    #[test]
    fn empty_input_gives_no_chunk() {
        let gear = GearTable::from_seed(&[1; 32]);
        assert_eq!(Chunker::new(&b""[..], &gear, Some(0)).count(), 0);
        assert_eq!(gear.chunks(b"").count(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The streaming chunker gives exactly the in-memory boundaries, whatever
        /// the read sizes and size hints.
        #[test]
        fn streaming_equals_in_memory(
            len in 0usize..(14 << 20),
            seed: u64,
            step in prop::sample::select(vec![1usize << 12, 100_003, 1 << 20, 3 << 20, usize::MAX]),
            hint in prop::option::of(0u64..(20 << 20)),
        ) {
            let gear = GearTable::from_seed(&[9; 32]);
            let data = pseudo_random(len, seed);
            let expected: Vec<&[u8]> = gear.chunks(&data).map(|r| &data[r]).collect();
            let got: Vec<Bytes> = Chunker::new(Trickle { data: &data, step }, &gear, hint)
                .collect::<io::Result<_>>()
                .unwrap();
            prop_assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(expected) {
                prop_assert_eq!(&g[..], e);
            }
        }
    }
}
