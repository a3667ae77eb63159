//! Variable-length integers, RFC 9000 §16.
//!
//! The two most significant bits of the first byte give the encoded length
//! (1, 2, 4 or 8 bytes); the remaining bits hold the value in network byte
//! order, so values up to 2^62-1 are representable.

use std::fmt;

use bytes::BufMut;

use super::{Reader, UnexpectedEnd};

/// An integer less than 2^62, encodable as a QUIC variable-length integer.
#[derive(Default, Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VarInt(u64);

/// A value was 2^62 or larger and cannot be a [`VarInt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("value too large for a variable-length integer")]
pub struct VarIntBoundsExceeded;

impl VarInt {
    /// The largest representable value, 2^62-1.
    pub const MAX: Self = Self((1 << 62) - 1);
    /// Zero.
    pub const ZERO: Self = Self(0);
    /// Largest encoded size in bytes.
    pub const MAX_SIZE: usize = 8;

    /// A varint from a `u32`, which always fits.
    pub const fn from_u32(x: u32) -> Self {
        Self(x as u64)
    }

    /// A varint from a `u64`, or an error if it is 2^62 or more.
    pub const fn from_u64(x: u64) -> Result<Self, VarIntBoundsExceeded> {
        if x <= Self::MAX.0 {
            Ok(Self(x))
        } else {
            Err(VarIntBoundsExceeded)
        }
    }

    /// A varint from a `u64` known to be in range.
    ///
    /// # Panics
    /// If `x` is 2^62 or larger: only for values the caller has bounded.
    pub const fn from_u64_unchecked(x: u64) -> Self {
        assert!(x <= Self::MAX.0, "varint out of range");
        Self(x)
    }

    /// The value.
    pub const fn into_inner(self) -> u64 {
        self.0
    }

    /// Bytes needed to encode `x` (RFC 9000 §16, Table 4).
    pub const fn size_of(x: u64) -> usize {
        if x < (1 << 6) {
            1
        } else if x < (1 << 14) {
            2
        } else if x < (1 << 30) {
            4
        } else {
            8
        }
    }

    /// Bytes this value takes in its shortest encoding.
    pub const fn size(self) -> usize {
        Self::size_of(self.0)
    }

    /// Reads a varint, accepting any of the four lengths (RFC 9000 §16 does
    /// not require the shortest encoding, except where a frame type is read).
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, UnexpectedEnd> {
        let first = r.u8()?;
        let tag = first >> 6;
        let mut value = u64::from(first & 0x3f);
        let extra = (1usize << tag) - 1;
        for b in r.bytes(extra)? {
            value = (value << 8) | u64::from(*b);
        }
        Ok(Self(value))
    }

    /// Reads a varint and also reports how many bytes it took.
    pub fn decode_with_len(r: &mut Reader<'_>) -> Result<(Self, usize), UnexpectedEnd> {
        let start = r.position();
        let v = Self::decode(r)?;
        Ok((v, r.position() - start))
    }

    /// Writes the shortest encoding.
    pub fn encode<B: BufMut>(self, buf: &mut B) {
        let x = self.0;
        match self.size() {
            1 => buf.put_u8(x as u8),
            2 => buf.put_u16(0x4000 | x as u16),
            4 => buf.put_u32(0x8000_0000 | x as u32),
            _ => buf.put_u64(0xc000_0000_0000_0000 | x),
        }
    }

    /// Writes the value in exactly `size` bytes (1, 2, 4 or 8), e.g. to fill
    /// in a Length field reserved before the payload size was known.
    ///
    /// # Panics
    /// If `size` is not one of 1, 2, 4, 8 or is too small for the value.
    pub fn encode_with_size<B: BufMut>(self, size: usize, buf: &mut B) {
        assert!(size >= self.size(), "varint does not fit in {size} bytes");
        let x = self.0;
        match size {
            1 => buf.put_u8(x as u8),
            2 => buf.put_u16(0x4000 | x as u16),
            4 => buf.put_u32(0x8000_0000 | x as u32),
            8 => buf.put_u64(0xc000_0000_0000_0000 | x),
            _ => panic!("invalid varint size {size}"),
        }
    }
}

impl From<u8> for VarInt {
    fn from(x: u8) -> Self {
        Self(x.into())
    }
}

impl From<u16> for VarInt {
    fn from(x: u16) -> Self {
        Self(x.into())
    }
}

impl From<u32> for VarInt {
    fn from(x: u32) -> Self {
        Self(x.into())
    }
}

impl TryFrom<u64> for VarInt {
    type Error = VarIntBoundsExceeded;
    fn try_from(x: u64) -> Result<Self, Self::Error> {
        Self::from_u64(x)
    }
}

impl TryFrom<usize> for VarInt {
    type Error = VarIntBoundsExceeded;
    fn try_from(x: usize) -> Result<Self, Self::Error> {
        Self::from_u64(x as u64)
    }
}

impl From<VarInt> for u64 {
    fn from(x: VarInt) -> Self {
        x.0
    }
}

impl fmt::Debug for VarInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::LowerHex for VarInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl fmt::Display for VarInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_hex(h: &str) -> (u64, usize) {
        let bytes = hex::decode(h).unwrap();
        let mut r = Reader::new(&bytes);
        let (v, n) = VarInt::decode_with_len(&mut r).unwrap();
        (v.into_inner(), n)
    }

    /// RFC 9000 Appendix A.1: the worked examples of Table 5.
    #[test]
    fn rfc9000_appendix_a1_examples() {
        assert_eq!(decode_hex("c2197c5eff14e88c"), (151_288_809_941_952_652, 8));
        assert_eq!(decode_hex("9d7f3e7d"), (494_878_333, 4));
        assert_eq!(decode_hex("7bbd"), (15_293, 2));
        assert_eq!(decode_hex("25"), (37, 1));
        // "the two-byte sequence 0x4025 also decodes to 37"
        assert_eq!(decode_hex("4025"), (37, 2));
    }

    #[test]
    fn shortest_encodings() {
        for (v, h) in [
            (151_288_809_941_952_652u64, "c2197c5eff14e88c"),
            (494_878_333, "9d7f3e7d"),
            (15_293, "7bbd"),
            (37, "25"),
        ] {
            let mut out = Vec::new();
            VarInt::from_u64(v).unwrap().encode(&mut out);
            assert_eq!(hex::encode(&out), h);
        }
    }

    #[test]
    fn bounds() {
        assert!(VarInt::from_u64(1 << 62).is_err());
        assert_eq!(VarInt::from_u64((1 << 62) - 1).unwrap(), VarInt::MAX);
        assert_eq!(VarInt::size_of(63), 1);
        assert_eq!(VarInt::size_of(64), 2);
        assert_eq!(VarInt::size_of(16_383), 2);
        assert_eq!(VarInt::size_of(16_384), 4);
        assert_eq!(VarInt::size_of((1 << 30) - 1), 4);
        assert_eq!(VarInt::size_of(1 << 30), 8);
    }

    #[test]
    fn truncated_is_an_error() {
        for h in ["", "40", "80ffff", "c0ffffffffffff"] {
            let b = hex::decode(h).unwrap();
            assert_eq!(VarInt::decode(&mut Reader::new(&b)), Err(UnexpectedEnd));
        }
    }

    proptest! {
        #[test]
        fn roundtrip(x in 0u64..(1 << 62)) {
            let v = VarInt::from_u64(x).unwrap();
            let mut out = Vec::new();
            v.encode(&mut out);
            prop_assert_eq!(out.len(), v.size());
            let mut r = Reader::new(&out);
            prop_assert_eq!(VarInt::decode(&mut r).unwrap(), v);
            prop_assert!(r.is_empty());
        }

        #[test]
        fn roundtrip_any_size(x in 0u64..(1 << 62), pick in 0usize..4) {
            let v = VarInt::from_u64(x).unwrap();
            let size = [1usize, 2, 4, 8][pick].max(v.size());
            let mut out = Vec::new();
            v.encode_with_size(size, &mut out);
            prop_assert_eq!(out.len(), size);
            prop_assert_eq!(VarInt::decode(&mut Reader::new(&out)).unwrap(), v);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = VarInt::decode(&mut Reader::new(&bytes));
        }
    }
}
