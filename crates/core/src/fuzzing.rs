//! For the fuzz targets only (feature `fuzzing`, never enabled by the client
//! or the server): the subscriber-key AEAD, so that a fuzzer can wrap
//! arbitrary bytes in a valid blob or manifest envelope and reach the parsers
//! that sit behind authentication (a blob's inner header and codec, a
//! manifest's private part).

use crate::aead::{self, NONCE_LEN, TAG_LEN};
use crate::Keys;

/// Encrypts `buf` in place under `keys`' encryption key; returns the tag.
pub fn seal(keys: &Keys, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
    aead::seal(keys.enc_key(), nonce, aad, buf)
}

/// Decrypts `buf` in place under `keys`' encryption key; false if it does not
/// authenticate.
pub fn open(
    keys: &Keys,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> bool {
    aead::open(keys.enc_key(), nonce, aad, buf, tag).is_ok()
}
