//! The key file: a subscriber's master key wrapped with a key derived from the
//! structure's passphrase by Argon2id.
//!
//! The same bytes are kept on the device and on the server, so a technician can
//! restore on a fresh machine with the enrolment token and the passphrase. The
//! server learns nothing from them without the passphrase.
//!
//! Layout (106 bytes, all integers little-endian; docs/format.md, "Key file"):
//!
//! ```text
//! 0   4  magic "CFKY"
//! 4   1  version = 1
//! 5   1  kdf = 1 (Argon2id, version 0x13)
//! 6   4  memory cost in KiB
//! 10  4  time cost (passes)
//! 14  4  parallelism (lanes)
//! 18 16  salt
//! 34 24  nonce
//! 58 32  master key, encrypted (XChaCha20-Poly1305, AAD = bytes 0..34)
//! 90 16  tag
//! ```

use zeroize::Zeroizing;

use crate::aead::{self, NONCE_LEN, TAG_LEN};
use crate::codec::Reader;
use crate::error::{Error, Object, Result};
use crate::keys::MasterKey;

const MAGIC: &[u8; 4] = b"CFKY";
const VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
const HEADER_LEN: usize = 34;
/// Total length of a key file.
pub const KEY_FILE_LEN: usize = HEADER_LEN + NONCE_LEN + 32 + TAG_LEN;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub time: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// The default: 64 MiB, 3 passes, 1 lane (about a quarter of a second on a
    /// small PC; RFC 9106's second recommended setting, on one lane so that a
    /// 2-core machine stays responsive).
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        time: 3,
        parallelism: 1,
    };

    /// Cheap parameters for tests only: never use them for real keys.
    pub const INSECURE_FOR_TESTS: KdfParams = KdfParams {
        memory_kib: 64,
        time: 1,
        parallelism: 1,
    };

    /// Limits on what a key file may ask for, so that a hostile or damaged file
    /// cannot make the reader allocate gigabytes or spin for hours.
    const MAX_MEMORY_KIB: u32 = 1024 * 1024;
    const MAX_TIME: u32 = 100;
    const MAX_PARALLELISM: u32 = 64;

    fn check(&self) -> Result<()> {
        let bad = |what: &str| {
            Error::corrupt(Object::KeyFile, None, format!("unreasonable Argon2 {what}"))
        };
        if self.parallelism == 0 || self.parallelism > Self::MAX_PARALLELISM {
            return Err(bad("parallelism"));
        }
        if self.time == 0 || self.time > Self::MAX_TIME {
            return Err(bad("time cost"));
        }
        if self.memory_kib < 8 * self.parallelism || self.memory_kib > Self::MAX_MEMORY_KIB {
            return Err(bad("memory cost"));
        }
        Ok(())
    }

    fn derive(&self, passphrase: &[u8], salt: &[u8; 16]) -> Result<Zeroizing<[u8; 32]>> {
        self.check()?;
        let params = argon2::Params::new(self.memory_kib, self.time, self.parallelism, Some(32))
            .map_err(|e| {
                Error::corrupt(Object::KeyFile, None, format!("Argon2 parameters: {e}"))
            })?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, salt, out.as_mut())
            .map_err(|e| Error::corrupt(Object::KeyFile, None, format!("Argon2: {e}")))?;
        Ok(out)
    }
}

/// A master key wrapped by a passphrase.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyFile {
    bytes: [u8; KEY_FILE_LEN],
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyFile({:?})", self.params())
    }
}

impl KeyFile {
    /// Wraps `master` with `passphrase`, using a fresh random salt and nonce.
    pub fn wrap(master: &MasterKey, passphrase: &[u8], params: KdfParams) -> Result<Self> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| Error::Random(e.to_string()))?;
        Self::wrap_with(master, passphrase, params, salt, aead::random_nonce()?)
    }

    pub(crate) fn wrap_with(
        master: &MasterKey,
        passphrase: &[u8],
        params: KdfParams,
        salt: [u8; 16],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Self> {
        let wrapping = params.derive(passphrase, &salt)?;
        let mut bytes = [0u8; KEY_FILE_LEN];
        bytes[0..4].copy_from_slice(MAGIC);
        bytes[4] = VERSION;
        bytes[5] = KDF_ARGON2ID;
        bytes[6..10].copy_from_slice(&params.memory_kib.to_le_bytes());
        bytes[10..14].copy_from_slice(&params.time.to_le_bytes());
        bytes[14..18].copy_from_slice(&params.parallelism.to_le_bytes());
        bytes[18..34].copy_from_slice(&salt);
        bytes[34..58].copy_from_slice(&nonce);
        bytes[58..90].copy_from_slice(master.as_bytes());
        let (aad, rest) = bytes.split_at_mut(HEADER_LEN);
        let tag = aead::seal(&wrapping, &nonce, aad, &mut rest[NONCE_LEN..NONCE_LEN + 32]);
        bytes[90..].copy_from_slice(&tag);
        Ok(KeyFile { bytes })
    }

    /// Parses key-file bytes, checking the header (not the passphrase).
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data, Object::KeyFile);
        r.header(MAGIC, VERSION)?;
        let kdf = r.u8("kdf")?;
        if kdf != KDF_ARGON2ID {
            return Err(Error::corrupt(
                Object::KeyFile,
                None,
                format!("unknown key derivation function {kdf}"),
            ));
        }
        if data.len() != KEY_FILE_LEN {
            return Err(Error::corrupt(
                Object::KeyFile,
                None,
                format!("{} bytes long, a key file is {KEY_FILE_LEN}", data.len()),
            ));
        }
        let kf = KeyFile {
            bytes: data.try_into().unwrap(),
        };
        kf.params().check()?;
        Ok(kf)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The Argon2id parameters this file was written with.
    pub fn params(&self) -> KdfParams {
        let u = |at: usize| u32::from_le_bytes(self.bytes[at..at + 4].try_into().unwrap());
        KdfParams {
            memory_kib: u(6),
            time: u(10),
            parallelism: u(14),
        }
    }

    /// Recovers the master key. A wrong passphrase is [`Error::WrongPassphrase`],
    /// never a wrong key.
    pub fn unwrap_key(&self, passphrase: &[u8]) -> Result<MasterKey> {
        let salt: [u8; 16] = self.bytes[18..34].try_into().unwrap();
        let nonce: [u8; NONCE_LEN] = self.bytes[34..58].try_into().unwrap();
        let tag: [u8; TAG_LEN] = self.bytes[90..].try_into().unwrap();
        let wrapping = self.params().derive(passphrase, &salt)?;
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&self.bytes[58..90]);
        aead::open(
            &wrapping,
            &nonce,
            &self.bytes[..HEADER_LEN],
            key.as_mut(),
            &tag,
        )
        .map_err(|()| Error::WrongPassphrase)?;
        Ok(MasterKey::from_bytes(*key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: KdfParams = KdfParams::INSECURE_FOR_TESTS;

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let mk = MasterKey::generate().unwrap();
        let kf = KeyFile::wrap(&mk, b"correct horse", P).unwrap();
        let again = KeyFile::from_bytes(kf.as_bytes()).unwrap();
        assert_eq!(again.unwrap_key(b"correct horse").unwrap(), mk);
        let err = again.unwrap_key(b"Correct horse").unwrap_err();
        assert!(matches!(err, Error::WrongPassphrase), "{err}");
        assert!(err.to_string().contains("wrong passphrase"));
    }

    #[test]
    fn any_flipped_bit_is_refused() {
        let mk = MasterKey::from_bytes([7; 32]);
        let kf = KeyFile::wrap_with(&mk, b"pw", P, [1; 16], [2; 24]).unwrap();
        for bit in 0..KEY_FILE_LEN * 8 {
            let mut b = kf.as_bytes().to_vec();
            b[bit / 8] ^= 1 << (bit % 8);
            let res = KeyFile::from_bytes(&b).and_then(|k| k.unwrap_key(b"pw"));
            assert!(res.is_err(), "bit {bit} flipped went unnoticed");
        }
    }

    #[test]
    fn hostile_parameters_are_refused_before_any_work() {
        let mk = MasterKey::from_bytes([7; 32]);
        let kf = KeyFile::wrap_with(&mk, b"pw", P, [1; 16], [2; 24]).unwrap();
        let mut b = kf.as_bytes().to_vec();
        b[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = KeyFile::from_bytes(&b).unwrap_err();
        assert!(err.to_string().contains("memory cost"), "{err}");
        assert!(KeyFile::from_bytes(&b[..50]).is_err());
        assert!(KeyFile::from_bytes(b"").is_err());
    }
}
