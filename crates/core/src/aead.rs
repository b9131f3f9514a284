//! XChaCha20-Poly1305 in place, with random 24-byte nonces.
//!
//! 192-bit nonces are safe to draw at random: no counter to keep across devices
//! of the same subscriber, no risk of reuse after a crash.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};

pub(crate) const NONCE_LEN: usize = 24;
pub(crate) const TAG_LEN: usize = 16;

/// A fresh random nonce from the operating system.
pub(crate) fn random_nonce() -> Result<[u8; NONCE_LEN]> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n).map_err(|e| Error::Random(e.to_string()))?;
    Ok(n)
}

/// Encrypts `buf` in place and returns the tag.
pub(crate) fn seal(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> [u8; TAG_LEN] {
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .encrypt_in_place_detached(XNonce::from_slice(nonce), aad, buf)
        .expect("XChaCha20-Poly1305 encrypts any length below 256 GiB")
        .into()
}

/// Decrypts `buf` in place; `Err(())` when authentication fails (wrong key or
/// damaged bytes: the two cannot be told apart, by design of an AEAD).
pub(crate) fn open(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> std::result::Result<(), ()> {
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, buf, Tag::from_slice(tag))
        .map_err(|_| ())
}
