//! A cursor over untrusted bytes. Every read is bounds-checked and returns
//! [`UnexpectedEnd`] instead of panicking; nothing here allocates.

use super::VarInt;

/// The input ended before a complete value could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unexpected end of input")]
pub struct UnexpectedEnd;

/// A forward-only cursor over a byte slice.
///
/// ```
/// use quiver_proto::coding::Reader;
/// let mut r = Reader::new(&[0x40, 0x25, 0xff]);
/// assert_eq!(r.varint().unwrap().into_inner(), 37);
/// assert_eq!(r.u8().unwrap(), 0xff);
/// assert!(r.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unconsumed bytes, without consuming them.
    pub fn peek_rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// The next byte, without consuming it.
    pub fn peek_u8(&self) -> Result<u8, UnexpectedEnd> {
        self.buf.get(self.pos).copied().ok_or(UnexpectedEnd)
    }

    /// Consumes and returns the next `len` bytes.
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], UnexpectedEnd> {
        if len > self.remaining() {
            return Err(UnexpectedEnd);
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    /// Consumes and returns everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// Skips `len` bytes.
    pub fn skip(&mut self, len: usize) -> Result<(), UnexpectedEnd> {
        self.bytes(len).map(|_| ())
    }

    /// Consumes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], UnexpectedEnd> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// Consumes one byte.
    pub fn u8(&mut self) -> Result<u8, UnexpectedEnd> {
        Ok(self.array::<1>()?[0])
    }

    /// Consumes a big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, UnexpectedEnd> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Consumes a big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, UnexpectedEnd> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Consumes a variable-length integer (RFC 9000 §16).
    pub fn varint(&mut self) -> Result<VarInt, UnexpectedEnd> {
        VarInt::decode(self)
    }

    /// Consumes a one-byte length followed by that many bytes (the form of
    /// connection ID fields).
    pub fn u8_prefixed(&mut self) -> Result<&'a [u8], UnexpectedEnd> {
        let len = usize::from(self.u8()?);
        self.bytes(len)
    }

    /// Consumes a varint length followed by that many bytes.
    pub fn varint_prefixed(&mut self) -> Result<&'a [u8], UnexpectedEnd> {
        let len = self.varint()?.into_inner();
        let len = usize::try_from(len).map_err(|_| UnexpectedEnd)?;
        self.bytes(len)
    }
}
