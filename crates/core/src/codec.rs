//! The small binary encoding shared by every coffre format (docs/format.md, "Primitives").
//!
//! - `u8`, fixed-width little-endian integers, 32-byte ids;
//! - `varint`: unsigned LEB128, at most 10 bytes, no overlong encodings;
//! - `bytes`: a varint length then that many bytes.
//!
//! The [`Reader`] checks every length against the bytes that remain **before**
//! allocating, so hostile input can never make it allocate more than its own size.

use crate::error::{Error, Object};
use crate::ChunkId;

/// Appends encoded values to a `Vec<u8>`.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self::default()
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn id(&mut self, id: &ChunkId) {
        self.buf.extend_from_slice(id.as_bytes());
    }
    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.varint(v.len() as u64);
        self.raw(v);
    }
}

/// Reads encoded values from a byte slice; every error names the object and field.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    object: Object,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], object: Object) -> Self {
        Self {
            data,
            pos: 0,
            object,
        }
    }

    pub(crate) fn err(&self, detail: impl Into<String>) -> Error {
        Error::corrupt(self.object, None, detail)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn raw(&mut self, n: usize, field: &str) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "truncated in {field}: needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &str) -> Result<u8, Error> {
        Ok(self.raw(1, field)?[0])
    }

    pub(crate) fn u32(&mut self, field: &str) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.raw(4, field)?.try_into().unwrap()))
    }

    pub(crate) fn i64(&mut self, field: &str) -> Result<i64, Error> {
        Ok(i64::from_le_bytes(self.raw(8, field)?.try_into().unwrap()))
    }

    pub(crate) fn id(&mut self, field: &str) -> Result<ChunkId, Error> {
        Ok(ChunkId::from_bytes(
            self.raw(32, field)?.try_into().unwrap(),
        ))
    }

    pub(crate) fn varint(&mut self, field: &str) -> Result<u64, Error> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8(field)?;
            let part = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(self.err(format!("{field}: varint overflows 64 bits")));
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(self.err(format!("{field}: overlong varint")));
                }
                return Ok(v);
            }
        }
        Err(self.err(format!("{field}: varint longer than 10 bytes")))
    }

    /// A count of items each at least `min_item` bytes long: refused if the
    /// remaining bytes cannot hold that many, so no allocation is ever unbounded.
    pub(crate) fn count(&mut self, field: &str, min_item: usize) -> Result<usize, Error> {
        let n = self.varint(field)?;
        let max = (self.remaining() / min_item.max(1)) as u64;
        if n > max {
            return Err(self.err(format!(
                "{field}: claims {n} items but only {} bytes remain",
                self.remaining()
            )));
        }
        Ok(n as usize)
    }

    pub(crate) fn bytes(&mut self, field: &str) -> Result<&'a [u8], Error> {
        let n = self.varint(field)?;
        if n > self.remaining() as u64 {
            return Err(self.err(format!(
                "truncated in {field}: length {n}, {} bytes left",
                self.remaining()
            )));
        }
        self.raw(n as usize, field)
    }

    pub(crate) fn string(&mut self, field: &str) -> Result<String, Error> {
        let b = self.bytes(field)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err(format!("{field}: not valid UTF-8")))
    }

    pub(crate) fn finish(&self) -> Result<(), Error> {
        if self.remaining() != 0 {
            return Err(self.err(format!("{} unexpected bytes at the end", self.remaining())));
        }
        Ok(())
    }

    /// Checks a `magic | version` header.
    pub(crate) fn header(&mut self, magic: &[u8; 4], version: u8) -> Result<(), Error> {
        let m = self.raw(4, "magic")?;
        if m != magic {
            return Err(self.err(format!(
                "bad magic {:02x?}, expected {:?}: not a coffre {}",
                m,
                std::str::from_utf8(magic).unwrap_or("?"),
                self.object
            )));
        }
        let v = self.u8("version")?;
        if v != version {
            return Err(Error::UnsupportedVersion {
                object: self.object,
                found: v,
                supported: version,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_round_trips(v: u64) {
            let mut w = Writer::new();
            w.varint(v);
            let mut r = Reader::new(&w.buf, Object::Tree);
            prop_assert_eq!(r.varint("v").unwrap(), v);
            r.finish().unwrap();
        }
    }

    #[test]
    fn varint_known_answers() {
        for (v, bytes) in [
            (0u64, &[0u8][..]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
        ] {
            let mut w = Writer::new();
            w.varint(v);
            assert_eq!(w.buf, bytes);
        }
    }

    #[test]
    fn varint_rejects_overlong_and_overflow() {
        assert!(Reader::new(&[0x80, 0x00], Object::Tree)
            .varint("x")
            .is_err());
        assert!(Reader::new(&[0xff; 10], Object::Tree).varint("x").is_err());
        assert!(Reader::new(&[0xff; 11], Object::Tree).varint("x").is_err());
        assert!(Reader::new(&[0x80], Object::Tree).varint("x").is_err());
    }

    #[test]
    fn counts_are_bounded_by_remaining_bytes() {
        let mut w = Writer::new();
        w.varint(u64::MAX / 2);
        let err = Reader::new(&w.buf, Object::Tree)
            .count("entries", 8)
            .unwrap_err();
        assert!(err.to_string().contains("entries"), "{err}");
    }
}
