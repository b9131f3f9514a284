//! A small structure-aware mutator: deterministic (xorshift), no dependency,
//! runs on stable. Starting from valid inputs made by the real encoders, it
//! stacks one to four edits of the kinds that break parsers: bit flips,
//! interesting bytes, truncations, deletions, insertions, duplicated ranges,
//! length fields (u16/u32, both byte orders, and LEB128 varints) set to
//! boundary values, and splices of two inputs.

/// xorshift64*: fast, deterministic, good enough to pick mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// Values that sit on the edges of the caps coffre checks.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    5,
    6,
    7,
    8,
    31,
    32,
    33,
    0x7f,
    0x80,
    0xff,
    0x100,
    1023,
    1024,
    1025,
    0x7fff,
    0xffff,
    0x1_0000,
    0x1_0001,
    4 * 1024 * 1024,
    13 * 1024 * 1024,
    16 * 1024 * 1024 - 2,
    16 * 1024 * 1024,
    16 * 1024 * 1024 + 1,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 32,
    u64::MAX / 2,
    u64::MAX,
];

fn interesting(rng: &mut Rng, len: usize) -> u64 {
    match rng.below(4) {
        // Close to the input's own length: lengths that are off by a little.
        0 => (len as u64)
            .wrapping_add(rng.below(9) as u64)
            .wrapping_sub(4),
        _ => INTERESTING[rng.below(INTERESTING.len())],
    }
}

fn leb128(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// One to four mutations of `input`, at most `max_len` bytes long. `corpus`
/// provides the other half of splices.
pub fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut d = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, &mut d, corpus);
    }
    d.truncate(max_len);
    d
}

fn mutate_once(rng: &mut Rng, d: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let len = d.len();
    match rng.below(13) {
        // Flip one bit.
        0 | 1 if len > 0 => {
            let i = rng.below(len);
            d[i] ^= 1 << rng.below(8);
        }
        // Set a byte to a random or an interesting value.
        2 if len > 0 => {
            let i = rng.below(len);
            d[i] = if rng.one_in(2) {
                rng.next_u64() as u8
            } else {
                interesting(rng, len) as u8
            };
        }
        // Truncate.
        3 if len > 0 => d.truncate(rng.below(len)),
        // Delete a range.
        4 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(64));
            d.drain(at..at + n);
        }
        // Insert random bytes.
        5 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            d.splice(at..at, bytes);
        }
        // Duplicate a range.
        6 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(256));
            let copy = d[at..at + n].to_vec();
            let to = rng.below(len + 1);
            d.splice(to..to, copy);
        }
        // A u32 length field, big- or little-endian, set to an edge value;
        // often at offset 0 (a frame's length prefix).
        7 | 8 if len >= 4 => {
            let at = if rng.one_in(3) { 0 } else { rng.below(len - 3) };
            let v = interesting(rng, len) as u32;
            let bytes = if rng.one_in(2) {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            d[at..at + 4].copy_from_slice(&bytes);
        }
        // A u16 field (message types, error codes).
        9 if len >= 2 => {
            let at = rng.below(len - 1);
            let v = interesting(rng, len) as u16;
            let bytes = if rng.one_in(2) {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            d[at..at + 2].copy_from_slice(&bytes);
        }
        // A varint length replaced by an edge value (the formats of
        // docs/format.md): overwrite one byte's worth with a whole varint.
        10 => {
            let at = rng.below(len + 1);
            let end = (at + 1).min(len);
            d.splice(at..end, leb128(interesting(rng, len)));
        }
        // Splice: this input's head with another's tail.
        11 if !corpus.is_empty() => {
            let other = &corpus[rng.below(corpus.len())];
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            d.truncate(cut);
            d.extend_from_slice(&other[from..]);
        }
        // Append another input whole (two messages on one stream).
        12 if !corpus.is_empty() => {
            let other = &corpus[rng.below(corpus.len())];
            d.extend_from_slice(other);
        }
        _ => {
            let at = rng.below(len + 1);
            d.insert(at, rng.next_u64() as u8);
        }
    }
}
