//! The enrolment token: everything a PC needs to join, in one line that the
//! technician copies from `coffre-server device add` into `coffre enrol`.
//!
//! ```text
//! text:    "coffre1." base64url-without-padding(binary)
//! binary:
//!   0   4  magic "CFTK"
//!   4   1  version = 1
//!   5   1  server address length a (1..=255)
//!   6   a  server address, UTF-8 "host:port"
//!   .  32  server certificate fingerprint (the server decides the hash)
//!   .   1  subscriber name length s (1..=255)
//!   .   s  subscriber name, UTF-8
//!   .   1  device name length d (1..=255)
//!   .   d  device name, UTF-8
//!   .  32  device secret
//!   .   4  CRC-32 (IEEE 802.3, as in zip and PNG), u32 little-endian, of
//!          every byte before it
//! ```
//!
//! The checksum is always the last 4 bytes, whatever the version, and is
//! checked first: a mistyped or cut token is reported as damaged, never as a
//! token from a newer release. It catches typing mistakes; it is not a
//! signature (the token is a password: whoever holds it is the device).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use thiserror::Error;

/// What every token's text starts with.
pub const TOKEN_PREFIX: &str = "coffre1.";

const MAGIC: &[u8; 4] = b"CFTK";
const VERSION: u8 = 1;
const FIELD_MAX: usize = 255;
const CRC_LEN: usize = 4;
/// Longest binary token: magic, version, three full-length strings with
/// their length bytes, fingerprint, secret, checksum.
const MAX_BINARY_LEN: usize = 4 + 1 + 3 * (1 + FIELD_MAX) + 32 + 32 + CRC_LEN;
/// Shortest binary token: magic, version, three 1-byte strings, fingerprint,
/// secret, checksum.
const MIN_BINARY_LEN: usize = 4 + 1 + 3 * 2 + 32 + 32 + CRC_LEN;

/// An enrolment token. Holds a device secret: `Debug` redacts it, and there
/// is deliberately no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Where the server listens, `"host:port"`, 1 to 255 bytes.
    pub server: String,
    /// The fingerprint of the server's certificate, pinned by the client.
    pub fingerprint: [u8; 32],
    /// The subscriber (member structure), 1 to 255 bytes.
    pub subscriber: String,
    /// This device's name, 1 to 255 bytes.
    pub device: String,
    /// This device's secret, sent in [`crate::Request::Auth`].
    pub secret: [u8; 32],
}

/// Why a token could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The text does not start with [`TOKEN_PREFIX`].
    #[error(
        "not a coffre enrolment token: it should start with coffre1. (copy the whole line that \
         `coffre-server device add` printed)"
    )]
    NotAToken,

    /// The text has the prefix but its content is not a valid token.
    #[error(
        "enrolment token is damaged (truncated or mistyped: {reason}): copy it again, in full, \
         from the output of `coffre-server device add`"
    )]
    Damaged {
        /// What was found wrong, for the curious.
        reason: &'static str,
    },

    /// The token was made by a newer release.
    #[error("enrolment token version {version} is newer than this coffre: upgrade coffre")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },

    /// [`Token::encode`] was given a field a token cannot hold.
    #[error("cannot make an enrolment token: the {field} {reason}")]
    InvalidField {
        /// `"server address"`, `"subscriber name"` or `"device name"`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn damaged(reason: &'static str) -> TokenError {
    TokenError::Damaged { reason }
}

impl Token {
    /// The token's text: [`TOKEN_PREFIX`] then base64url (no padding) of
    /// the binary form.
    ///
    /// Fails if the server address, subscriber or device name is empty or
    /// longer than 255 bytes.
    pub fn encode(&self) -> Result<String, TokenError> {
        let mut bin = Vec::with_capacity(MAX_BINARY_LEN);
        bin.extend_from_slice(MAGIC);
        bin.push(VERSION);
        put_field(&mut bin, "server address", &self.server)?;
        bin.extend_from_slice(&self.fingerprint);
        put_field(&mut bin, "subscriber name", &self.subscriber)?;
        put_field(&mut bin, "device name", &self.device)?;
        bin.extend_from_slice(&self.secret);
        let crc = crc32(&bin);
        bin.extend_from_slice(&crc.to_le_bytes());
        Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&bin)))
    }

    /// Reads a token's text. Whitespace around it and inside it (a token
    /// wrapped by a mail client) is ignored.
    pub fn parse(text: &str) -> Result<Token, TokenError> {
        let text: String = text.split_ascii_whitespace().collect();
        let Some(body) = text.strip_prefix(TOKEN_PREFIX) else {
            return Err(prefix_error(&text));
        };
        if body.len() > MAX_BINARY_LEN.div_ceil(3) * 4 {
            return Err(damaged("too long"));
        }
        let bin = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| damaged("not base64url"))?;
        if bin.len() < MIN_BINARY_LEN {
            return Err(damaged("too short"));
        }
        let Some((content, crc)) = bin.split_last_chunk::<CRC_LEN>() else {
            return Err(damaged("too short"));
        };
        if crc32(content) != u32::from_le_bytes(*crc) {
            return Err(damaged("checksum mismatch"));
        }
        let mut r = content;
        if take(&mut r, MAGIC.len())? != MAGIC {
            return Err(damaged("wrong magic"));
        }
        match take(&mut r, 1)?[0] {
            VERSION => {}
            0 => return Err(damaged("version 0")),
            version => {
                return Err(TokenError::UnsupportedVersion {
                    version: version.into(),
                })
            }
        }
        let server = take_field(&mut r)?;
        let fingerprint = take_array(&mut r)?;
        let subscriber = take_field(&mut r)?;
        let device = take_field(&mut r)?;
        let secret = take_array(&mut r)?;
        if !r.is_empty() {
            return Err(damaged("unexpected bytes at the end"));
        }
        Ok(Token {
            server,
            fingerprint,
            subscriber,
            device,
            secret,
        })
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Hex<'a>(&'a [u8]);
        impl fmt::Debug for Hex<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
        f.debug_struct("Token")
            .field("server", &self.server)
            .field("fingerprint", &Hex(&self.fingerprint))
            .field("subscriber", &self.subscriber)
            .field("device", &self.device)
            .field("secret", &format_args!("<redacted>"))
            .finish()
    }
}

/// Why text without [`TOKEN_PREFIX`] was refused: a `coffreN.` prefix with
/// N > 1 comes from a newer release, anything else is not a token.
fn prefix_error(text: &str) -> TokenError {
    let version = text
        .strip_prefix("coffre")
        .and_then(|rest| rest.split_once('.'))
        .map(|(digits, _)| digits)
        .filter(|d| !d.is_empty() && d.len() <= 9 && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u32>().ok());
    match version {
        Some(version) if version > 1 => TokenError::UnsupportedVersion { version },
        _ => TokenError::NotAToken,
    }
}

fn put_field(bin: &mut Vec<u8>, field: &'static str, value: &str) -> Result<(), TokenError> {
    let len = match u8::try_from(value.len()) {
        Ok(0) => {
            return Err(TokenError::InvalidField {
                field,
                reason: "is empty",
            })
        }
        Ok(len) => len,
        Err(_) => {
            return Err(TokenError::InvalidField {
                field,
                reason: "is longer than 255 bytes",
            })
        }
    };
    bin.push(len);
    bin.extend_from_slice(value.as_bytes());
    Ok(())
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Result<&'a [u8], TokenError> {
    if r.len() < n {
        return Err(damaged("too short"));
    }
    let (head, tail) = r.split_at(n);
    *r = tail;
    Ok(head)
}

fn take_array<const N: usize>(r: &mut &[u8]) -> Result<[u8; N], TokenError> {
    let mut out = [0; N];
    out.copy_from_slice(take(r, N)?);
    Ok(out)
}

fn take_field(r: &mut &[u8]) -> Result<String, TokenError> {
    let len = take(r, 1)?[0];
    if len == 0 {
        return Err(damaged("empty field"));
    }
    let bytes = take(r, len.into())?;
    String::from_utf8(bytes.to_vec()).map_err(|_| damaged("text that is not UTF-8"))
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), bit by bit: a
/// token is a few hundred bytes, a table is not worth it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Token {
        Token {
            server: "backup.example.org:4433".into(),
            fingerprint: [0xF1; 32],
            subscriber: "Les Amis du Vélo".into(),
            device: "compta-pc".into(),
            secret: [0x5E; 32],
        }
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn size_bounds_match_the_layout() {
        let long = "x".repeat(255);
        let t = Token {
            server: long.clone(),
            subscriber: long.clone(),
            device: long,
            ..sample()
        };
        let text = t.encode().unwrap();
        let bin = URL_SAFE_NO_PAD.decode(&text[TOKEN_PREFIX.len()..]).unwrap();
        assert_eq!(bin.len(), MAX_BINARY_LEN);
        assert_eq!(Token::parse(&text).unwrap(), t);
        let t = Token {
            server: "s".into(),
            subscriber: "u".into(),
            device: "d".into(),
            ..sample()
        };
        let text = t.encode().unwrap();
        let bin = URL_SAFE_NO_PAD.decode(&text[TOKEN_PREFIX.len()..]).unwrap();
        assert_eq!(bin.len(), MIN_BINARY_LEN);
    }

    #[test]
    fn version_byte_is_checked_after_the_checksum() {
        let text = sample().encode().unwrap();
        let mut bin = URL_SAFE_NO_PAD.decode(&text[TOKEN_PREFIX.len()..]).unwrap();
        bin[4] = 2;
        // Without fixing the checksum: damaged, not "newer".
        let bad = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&bin));
        assert!(matches!(
            Token::parse(&bad),
            Err(TokenError::Damaged { .. })
        ));
        // With it: a genuine newer token.
        let n = bin.len() - CRC_LEN;
        let crc = crc32(&bin[..n]);
        bin[n..].copy_from_slice(&crc.to_le_bytes());
        let newer = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&bin));
        let err = Token::parse(&newer).unwrap_err();
        assert_eq!(err, TokenError::UnsupportedVersion { version: 2 });
        assert_eq!(
            err.to_string(),
            "enrolment token version 2 is newer than this coffre: upgrade coffre"
        );
    }
}
