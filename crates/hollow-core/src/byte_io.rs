//! Bounds-checked little-endian reading and writing of blob bytes.

use bytes::Bytes;

use crate::error::{CorruptReason, Error, Result};

/// Appends little-endian values to a byte buffer. Large byte arrays that exist already can be
/// appended without a copy ([`ByteWriter::share`]): the output is then a list of parts.
#[derive(Debug, Default)]
pub struct ByteWriter {
    /// What was written before the last shared array, in order.
    parts: Vec<Bytes>,
    /// Bytes in `parts`.
    parts_len: usize,
    buf: Vec<u8>,
}

impl From<Vec<u8>> for ByteWriter {
    fn from(buf: Vec<u8>) -> Self {
        Self {
            buf,
            ..Self::default()
        }
    }
}

impl ByteWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.parts_len + self.buf.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a little-endian `u32`.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a little-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends an unsigned LEB128 varint.
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// Appends a `u32` length and the UTF-8 bytes of `s`.
    pub fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.bytes(s.as_bytes());
    }

    /// Appends `bytes` without copying them.
    pub fn share(&mut self, bytes: &Bytes) {
        self.flush();
        self.parts_len += bytes.len();
        self.parts.push(bytes.clone());
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.parts_len += self.buf.len();
            self.parts.push(Bytes::from(std::mem::take(&mut self.buf)));
        }
    }

    /// Pads with zeros to a multiple of 8 bytes.
    pub fn align8(&mut self) {
        let pad = (8 - self.len() % 8) % 8;
        self.buf.extend_from_slice(&[0; 8][..pad]);
    }

    /// The buffer after the last shared array, for writers that append directly.
    pub fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The bytes written, in one buffer.
    pub fn into_inner(mut self) -> Vec<u8> {
        if self.parts.is_empty() {
            return self.buf;
        }
        self.flush();
        let mut out = Vec::with_capacity(self.parts_len);
        for p in &self.parts {
            out.extend_from_slice(p);
        }
        out
    }

    /// The bytes written, as the parts they were written in.
    pub fn into_parts(mut self) -> Vec<Bytes> {
        self.flush();
        self.parts
    }
}

/// Reads little-endian values from a region of a blob; every read is bounds-checked and fails with
/// [`Error::Truncated`] naming what was being read.
#[derive(Debug, Clone)]
pub struct ByteReader {
    data: Bytes,
    pos: usize,
    /// Offset of `data` within the whole blob, for error messages.
    base: usize,
}

impl ByteReader {
    /// A reader over `data`, which starts at `base` in the blob.
    pub fn new(data: Bytes, base: usize) -> Self {
        Self { data, pos: 0, base }
    }

    /// Current position relative to the start of `data`.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Current position in the blob: `base` plus [`position`](Self::position).
    pub fn blob_offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn need(&self, what: &'static str, n: u64) -> Result<usize> {
        if n > self.remaining() as u64 {
            return Err(Error::Truncated {
                what,
                offset: self.base + self.pos,
                needed: n,
                available: self.remaining() as u64,
            });
        }
        Ok(n as usize)
    }

    /// Takes `n` bytes as a zero-copy slice.
    pub fn take(&mut self, what: &'static str, n: u64) -> Result<Bytes> {
        let n = self.need(what, n)?;
        let out = self.data.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    /// Takes `n` bytes as a borrowed slice.
    pub fn take_slice(&mut self, what: &'static str, n: u64) -> Result<&[u8]> {
        let n = self.need(what, n)?;
        let start = self.pos;
        self.pos += n;
        Ok(&self.data[start..start + n])
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take_slice(what, 1)?[0])
    }

    /// Reads a little-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        let s = self.take_slice(what, 4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// Reads a little-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64> {
        let s = self.take_slice(what, 8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(s);
        Ok(u64::from_le_bytes(b))
    }

    /// Reads an unsigned LEB128 varint of at most 10 bytes.
    pub fn varint(&mut self, what: &'static str) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8(what)?;
            if i == 9 && b > 1 {
                break;
            }
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::corrupt(
            format!("{what} at offset {}", self.blob_offset()),
            CorruptReason::Overflow { what: "varint" },
        ))
    }

    /// Reads a `u32`-length-prefixed UTF-8 string.
    pub fn str(&mut self, what: &'static str) -> Result<String> {
        let len = self.u32(what)?;
        let at = self.blob_offset();
        let s = self.take_slice(what, len as u64)?;
        std::str::from_utf8(s).map(str::to_owned).map_err(|_| {
            Error::corrupt(
                format!("{what} at offset {at}"),
                CorruptReason::NotUtf8 { what: "string" },
            )
        })
    }

    /// Skips zero padding up to a multiple of 8 bytes (relative to the blob start).
    pub fn align8(&mut self, what: &'static str) -> Result<()> {
        let pad = (8 - (self.base + self.pos) % 8) % 8;
        self.take_slice(what, pad as u64)?;
        Ok(())
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self, what: &'static str) -> Result<()> {
        if self.remaining() != 0 {
            return Err(Error::corrupt(
                format!("{what} at offset {}", self.blob_offset()),
                CorruptReason::LeftOver {
                    what,
                    bytes: self.remaining() as u64,
                },
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut w = ByteWriter::new();
        w.u8(7);
        w.u32(0xdead_beef);
        w.u64(u64::MAX - 1);
        w.varint(300);
        w.varint(u64::MAX);
        w.str("héllo");
        let bytes = Bytes::from(w.into_inner());
        let mut r = ByteReader::new(bytes.clone(), 0);
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.u32("b").unwrap(), 0xdead_beef);
        assert_eq!(r.u64("c").unwrap(), u64::MAX - 1);
        assert_eq!(r.varint("d").unwrap(), 300);
        assert_eq!(r.varint("e").unwrap(), u64::MAX);
        assert_eq!(r.str("f").unwrap(), "héllo");
        r.finish("all").unwrap();
        for cut in 0..bytes.len() {
            let mut r = ByteReader::new(bytes.slice(..cut), 0);
            let all = (|| -> Result<()> {
                r.u8("a")?;
                r.u32("b")?;
                r.u64("c")?;
                r.varint("d")?;
                r.varint("e")?;
                r.str("f")?;
                Ok(())
            })();
            assert!(matches!(all, Err(Error::Truncated { .. })), "cut {cut}");
        }
    }

    #[test]
    fn overlong_varint_is_corrupt() {
        let mut r = ByteReader::new(Bytes::from(vec![0xff; 11]), 0);
        assert!(matches!(
            r.varint("v"),
            Err(Error::Corrupt {
                reason: CorruptReason::Overflow { what: "varint" },
                ..
            })
        ));
    }
}
