//! Padmé padding (Nikitin et al., "Reducing Metadata Leakage from Encrypted
//! Files and Communication with PURBs", PETS 2019).
//!
//! Rounds a length up so that at most `O(log log L)` bits of it remain: the
//! overhead is at most 12 %, and far less for large blobs. Together with the
//! keyed gear table this hides which chunk sizes a subscriber's files produce.

/// The Padmé length for `len`.
pub fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - u64::from(len.leading_zeros()); // floor(log2 len)
    let s = 64 - u64::from(e.leading_zeros()); // floor(log2 e) + 1
    let last_bits = e - s;
    let mask = (1u64 << last_bits) - 1;
    (len + mask) & !mask
}

#[cfg(test)]
mod tests {
    use super::padme;
    use proptest::prelude::*;

    #[test]
    fn known_answers() {
        // From the PURBs paper's definition, computed by hand.
        assert_eq!(padme(0), 0);
        assert_eq!(padme(1), 1);
        assert_eq!(padme(9), 10);
        assert_eq!(padme(100), 104);
        assert_eq!(padme(1000), 1024);
        assert_eq!(padme(1_000_000), 1_015_808);
        assert_eq!(padme(1 << 20), 1 << 20);
        assert_eq!(padme((1 << 20) + 1), (1 << 20) + (1 << 15));
    }

    proptest! {
        #[test]
        fn never_shrinks_and_costs_at_most_12_percent(len in 0u64..(1 << 40)) {
            let p = padme(len);
            prop_assert!(p >= len);
            prop_assert!((p - len) as f64 <= len as f64 * 0.12 + 1.0);
            prop_assert_eq!(padme(p), p);
        }
    }
}
