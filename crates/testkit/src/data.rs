//! The suites' test data: incompressible bytes from a seed.
//!
//! One generator for every suite: `coffre_core::benchmark::random_bytes`
//! (xoshiro256** from a SplitMix64 seed), the one the benchmarks, the crash
//! harness and the client's trees already use. The same seed gives the same
//! bytes on every run and machine, and a shorter run of a seed is a prefix
//! of a longer one. zstd cannot shrink it, so a blob's size depends only on
//! the length (the usage and quota tests count on that); for data that does
//! compress, `coffre_core::benchmark::text_bytes`.

/// `len` incompressible bytes, the same for a `seed`, different across seeds.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    coffre_core::benchmark::random_bytes(len, seed)
}

#[cfg(test)]
mod tests {
    use super::data;

    #[test]
    fn a_seed_gives_the_same_bytes_and_a_shorter_run_is_a_prefix() {
        assert_eq!(data(7, 10_000), data(7, 10_000));
        assert_eq!(data(7, 1000)[..], data(7, 10_000)[..1000]);
        assert_ne!(data(7, 1000), data(8, 1000));
        assert_eq!(data(0, 0), Vec::<u8>::new());
    }
}
