//! The measured functions of `coffre benchmark` and of the criterion benches in
//! `benches/`: both call these, so both measure the same code, on the same
//! deterministic data.

use crate::blob::{BlobKind, Sealer};
use crate::chunker::Chunker;
use crate::pipeline::{self, Config, Input};
use crate::{ChunkId, Keys};

/// xoshiro256** seeded with splitmix64: fast, deterministic, not cryptographic.
#[derive(Debug, Clone)]
pub struct Rng([u64; 4]);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

/// `n` incompressible bytes (like photos or already-compressed documents).
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(n);
    out
}

/// `n` bytes of French-looking prose (like notes, mail and CSV exports):
/// compresses about 3:1 with zstd.
pub fn text_bytes(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "association",
        "adhérent",
        "cotisation",
        "assemblée",
        "générale",
        "budget",
        "facture",
        "subvention",
        "bénévole",
        "compte",
        "rendu",
        "réunion",
        "bureau",
        "trésorier",
        "secrétaire",
        "projet",
        "atelier",
        "formation",
        "solidaire",
        "économie",
        "logiciel",
        "libre",
        "sauvegarde",
        "serveur",
        "rapport",
        "activité",
        "convention",
        "partenariat",
        "mairie",
        "région",
        "2024",
        "2025",
        "le",
        "la",
        "les",
        "des",
        "du",
        "de",
        "et",
        "à",
        "pour",
        "avec",
        "dans",
        "sur",
        "par",
        "une",
        "un",
        "est",
        "sont",
    ];
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n + 32);
    let mut i = 0u64;
    while out.len() < n {
        let r = rng.next_u64();
        out.extend_from_slice(WORDS[(r % WORDS.len() as u64) as usize].as_bytes());
        i += 1;
        out.push(if i.is_multiple_of(12) { b'\n' } else { b' ' });
        if r >> 60 == 0 {
            out.extend_from_slice(format!("{}", (r >> 20) % 100_000).as_bytes());
            out.push(b';');
        }
    }
    out.truncate(n);
    out
}

/// Cut points only, in memory: returns the number of chunks.
pub fn chunk(keys: &Keys, data: &[u8]) -> usize {
    keys.gear().chunks(data).count()
}

/// What the backup does before dedup: stream `data` through the chunker and id
/// every chunk. Returns the number of chunks.
pub fn chunk_and_id(keys: &Keys, data: &[u8]) -> usize {
    let mut n = 0;
    for c in Chunker::new(data, keys.gear(), Some(data.len() as u64)) {
        let c = c.expect("reading memory cannot fail");
        std::hint::black_box(ChunkId::compute(keys, &c));
        n += 1;
    }
    n
}

/// Chunk boundaries and ids of a buffer already in memory: the same loop as
/// the `fastcdc` crate's in-memory chunker feeding keyed BLAKE3, for comparison.
pub fn chunk_and_id_in_memory(keys: &Keys, data: &[u8]) -> usize {
    let mut n = 0;
    for r in keys.gear().chunks(data) {
        std::hint::black_box(ChunkId::compute(keys, &data[r]));
        n += 1;
    }
    n
}

/// Keyed BLAKE3 over `data` in 1 MiB pieces.
pub fn id(keys: &Keys, data: &[u8]) -> usize {
    let mut n = 0;
    for c in data.chunks(1 << 20) {
        std::hint::black_box(ChunkId::compute(keys, c));
        n += 1;
    }
    n
}

/// The blob sealer's compression step over `data` in 1 MiB pieces (probe, then
/// zstd when it pays). Returns the compressed size (raw size where stored raw).
pub fn compress(sealer: &mut Sealer, data: &[u8]) -> usize {
    data.chunks(1 << 20)
        .map(|c| sealer.compress(c).map_or(c.len(), <[u8]>::len))
        .sum()
}

/// XChaCha20-Poly1305 over `data` in 1 MiB pieces, in place.
pub fn encrypt(keys: &Keys, data: &mut [u8]) {
    for c in data.chunks_mut(1 << 20) {
        std::hint::black_box(crate::aead::seal(keys.enc_key(), &[7; 24], b"bench", c));
    }
}

/// Seals `data` in 1 MiB chunks as blobs (compress, pad, encrypt).
pub fn seal(keys: &Keys, sealer: &mut Sealer, data: &[u8]) -> usize {
    data.chunks(1 << 20)
        .map(|c| {
            sealer
                .seal(keys, BlobKind::Data, &ChunkId::compute(keys, c), c)
                .expect("seal")
                .len()
        })
        .sum()
}

/// Stores every chunk: lets the benchmark feed the same bytes several times
/// and still measure sealing, as a first backup of distinct data would.
#[derive(Debug)]
struct StoreAll;

impl pipeline::Dedup for StoreAll {
    fn should_store(&self, _: &ChunkId) -> bool {
        true
    }
}

/// The whole path on `threads` workers: `files`, `rounds` times over in one
/// pipeline run (so that thread start-up is amortised as in a real backup),
/// through chunk, id, compress, pad and encrypt. Returns the bytes read.
pub fn whole_path(keys: &Keys, threads: usize, files: &[&[u8]], rounds: usize) -> u64 {
    let inputs = (0..rounds).flat_map(|_| files.iter()).map(|f| {
        Ok(Input {
            reader: Box::new(*f),
            size_hint: Some(f.len() as u64),
        })
    });
    let totals = pipeline::run::<_, crate::Error, _>(
        keys,
        &Config::with_threads(threads),
        inputs,
        &StoreAll,
        |_| Ok(()),
    )
    .expect("in-memory pipeline cannot fail");
    totals.bytes_read
}
