//! CRYPTO frames, type 0x06 (RFC 9000 §19.6).

use std::fmt;

use bytes::BufMut;

use super::stream::check_end;
use super::{FrameType, max_len_prefixed};
use crate::TransportError;
use crate::coding::{Reader, VarInt};

/// A CRYPTO frame: handshake data at `offset` of this encryption level's
/// crypto stream, borrowed from the packet.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Crypto<'a> {
    /// Offset of the first byte of `data` in the crypto stream.
    pub offset: VarInt,
    /// The Crypto Data.
    pub data: &'a [u8],
}

impl<'a> Crypto<'a> {
    /// The header [`Crypto::encode`] writes before the data.
    pub fn header(&self) -> CryptoHeader {
        CryptoHeader {
            offset: self.offset,
            len: self.data.len(),
        }
    }

    /// Writes the frame.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        self.header().encode(buf);
        buf.put_slice(self.data);
    }

    /// Bytes [`Crypto::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.header().encoded_len() + self.data.len()
    }

    /// Decodes the fields after the Frame Type.
    pub(super) fn decode(r: &mut Reader<'a>) -> Result<Self, TransportError> {
        let offset = r.varint()?;
        let data = r.varint_prefixed()?;
        // RFC 9000 §19.6: "The largest offset delivered on a stream -- the sum
        // of the offset and data length -- cannot exceed 2^62-1. Receipt of a
        // frame that exceeds this limit MUST be treated as a connection error
        // of type FRAME_ENCODING_ERROR or CRYPTO_BUFFER_EXCEEDED." We choose
        // FRAME_ENCODING_ERROR, as the frame alone shows it.
        check_end(offset, data.len()).ok_or(TransportError::frame_encoding_error(
            "crypto offset + length exceeds 2^62-1",
        ))?;
        Ok(Self { offset, data })
    }
}

impl fmt::Debug for Crypto<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crypto")
            .field("offset", &self.offset)
            .field("len", &self.data.len())
            .finish()
    }
}

/// The fields of a CRYPTO frame before its data, for writing the data in
/// place after it.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct CryptoHeader {
    /// Offset of the data in the crypto stream.
    pub offset: VarInt,
    /// Bytes of data that will follow the header.
    pub len: usize,
}

impl CryptoHeader {
    /// Writes the Frame Type, Offset and Length; the caller writes `len`
    /// data bytes next.
    ///
    /// # Panics
    /// If `len` is 2^62 or more (impossible for an in-memory buffer).
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::CRYPTO.to_varint().encode(buf);
        self.offset.encode(buf);
        VarInt::from_u64_unchecked(self.len as u64).encode(buf);
    }

    /// Bytes [`CryptoHeader::encode`] writes (not counting the data).
    pub fn encoded_len(&self) -> usize {
        FrameType::CRYPTO.size() + self.offset.size() + VarInt::size_of(self.len as u64)
    }
}

/// The most crypto data a CRYPTO frame at `offset` can carry when header and
/// data must fit in `space` bytes, or `None` if not even the header fits.
/// The result also keeps `offset + len` within 2^62-1 (RFC 9000 §19.6).
pub fn max_crypto_data(space: usize, offset: VarInt) -> Option<usize> {
    let avail = space.checked_sub(FrameType::CRYPTO.size() + offset.size())?;
    let fits = max_len_prefixed(avail)?;
    let room = VarInt::MAX.into_inner() - offset.into_inner();
    Some(fits.min(usize::try_from(room).unwrap_or(usize::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransportErrorCode;
    use crate::frame::Frame;

    fn decode(bytes: &[u8]) -> Result<Frame<'_>, TransportError> {
        Frame::decode(&mut Reader::new(bytes))
    }

    #[test]
    fn crypto_frame_hand_encoding() {
        let c = Crypto {
            offset: VarInt::from_u32(64),
            data: b"tls",
        };
        let mut out = Vec::new();
        c.encode(&mut out);
        assert_eq!(out, [0x06, 0x40, 0x40, 0x03, b't', b'l', b's']);
        assert_eq!(c.encoded_len(), out.len());
        assert_eq!(decode(&out).unwrap(), Frame::Crypto(c));
    }

    #[test]
    fn crypto_frame_offset_beyond_2_62_is_frame_encoding_error() {
        let mut bytes = vec![0x06];
        VarInt::MAX.encode(&mut bytes);
        bytes.extend_from_slice(&[0x02, 0xaa, 0xbb]);
        let err = decode(&bytes).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x06));
    }

    #[test]
    fn crypto_frame_truncated_data_is_frame_encoding_error() {
        let err = decode(&[0x06, 0x00, 0x04, 1, 2, 3]).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x06));
    }

    #[test]
    fn max_crypto_data_fills_space() {
        for space in 0..20_000usize {
            let offset = VarInt::from_u32(70_000);
            match max_crypto_data(space, offset) {
                None => assert!(CryptoHeader { offset, len: 0 }.encoded_len() > space),
                Some(len) => {
                    assert!(CryptoHeader { offset, len }.encoded_len() + len <= space);
                    let more = CryptoHeader {
                        offset,
                        len: len + 1,
                    };
                    assert!(more.encoded_len() + len + 1 > space);
                }
            }
        }
    }
}
