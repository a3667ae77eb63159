//! DATAGRAM frames, types 0x30 and 0x31 (RFC 9221 §4).
//!
//! Whether the peer advertised max_datagram_frame_size, and whether the frame
//! exceeds it, is for the connection to check.

use std::fmt;

use bytes::BufMut;

use super::{FrameType, max_len_prefixed};
use crate::TransportError;
use crate::coding::{Reader, VarInt};

/// A DATAGRAM frame: unreliable application data, borrowed from the packet.
/// Empty data is allowed (RFC 9221 §4: "empty (i.e., zero-length) datagrams
/// are allowed").
///
/// [`Datagram::encode`] always writes a Length field (type 0x31); to fill a
/// packet's tail without one, use [`DatagramHeader`].
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The Datagram Data.
    pub data: &'a [u8],
}

impl<'a> Datagram<'a> {
    /// Writes the frame, with a Length field.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        self.header().encode(buf);
        buf.put_slice(self.data);
    }

    /// Bytes [`Datagram::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.header().encoded_len() + self.data.len()
    }

    /// The header [`Datagram::encode`] writes before the data.
    pub fn header(&self) -> DatagramHeader {
        DatagramHeader {
            len: self.data.len(),
            len_field: true,
        }
    }

    pub(super) fn decode(r: &mut Reader<'a>, ty: FrameType) -> Result<Self, TransportError> {
        // RFC 9221 §4: "if this bit is set to 0, the Length field is absent
        // and the Datagram Data field extends to the end of the packet".
        let data = if ty == FrameType::DATAGRAM_LEN {
            r.varint_prefixed()?
        } else {
            r.rest()
        };
        Ok(Self { data })
    }
}

impl fmt::Debug for Datagram<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Datagram")
            .field("len", &self.data.len())
            .finish()
    }
}

/// The fields of a DATAGRAM frame before its data, for writing the data in
/// place after it.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct DatagramHeader {
    /// Bytes of data that will follow the header.
    pub len: usize,
    /// Whether to write a Length field (type 0x31). Without one (type 0x30)
    /// the data runs to the end of the packet, so the frame must be last.
    pub len_field: bool,
}

impl DatagramHeader {
    /// The frame type: 0x31 with a Length field, 0x30 without.
    pub fn ty(&self) -> FrameType {
        if self.len_field {
            FrameType::DATAGRAM_LEN
        } else {
            FrameType::DATAGRAM
        }
    }

    /// Writes the Frame Type and, if present, the Length field.
    ///
    /// # Panics
    /// If `len` is 2^62 or more (impossible for an in-memory buffer).
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        self.ty().to_varint().encode(buf);
        if self.len_field {
            VarInt::from_u64_unchecked(self.len as u64).encode(buf);
        }
    }

    /// Bytes [`DatagramHeader::encode`] writes (not counting the data).
    pub fn encoded_len(&self) -> usize {
        self.ty().size()
            + if self.len_field {
                VarInt::size_of(self.len as u64)
            } else {
                0
            }
    }
}

/// The most data a DATAGRAM frame can carry in `space` bytes, or `None` if
/// not even the header fits.
pub fn max_datagram_data(space: usize, len_field: bool) -> Option<usize> {
    let avail = space.checked_sub(FrameType::DATAGRAM.size())?;
    if len_field {
        max_len_prefixed(avail)
    } else {
        Some(avail)
    }
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
    fn datagram_without_length_runs_to_end_of_packet() {
        assert_eq!(
            decode(&[0x30, 1, 2, 3]).unwrap(),
            Frame::Datagram(Datagram { data: &[1, 2, 3] })
        );
        assert_eq!(
            decode(&[0x30]).unwrap(),
            Frame::Datagram(Datagram { data: &[] })
        );
    }

    #[test]
    fn datagram_with_length_hand_encoding() {
        let bytes = [0x31, 0x02, 9, 8];
        let f = Datagram { data: &[9, 8] };
        assert_eq!(
            decode(&[0x31, 0x02, 9, 8, 0x01]).unwrap(),
            Frame::Datagram(f)
        );
        let mut out = Vec::new();
        f.encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(f.encoded_len(), bytes.len());
    }

    #[test]
    fn datagram_length_beyond_packet_is_frame_encoding_error() {
        let err = decode(&[0x31, 0x03, 9, 8]).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x31));
    }

    #[test]
    fn max_datagram_data_fills_space() {
        assert_eq!(max_datagram_data(0, false), None);
        assert_eq!(max_datagram_data(1, false), Some(0));
        assert_eq!(max_datagram_data(1, true), None);
        assert_eq!(max_datagram_data(2, true), Some(0));
        assert_eq!(max_datagram_data(65, true), Some(63));
        assert_eq!(max_datagram_data(66, true), Some(64 - 1));
        assert_eq!(max_datagram_data(67, true), Some(64));
        for space in 0..20_000 {
            if let Some(len) = max_datagram_data(space, true) {
                let h = DatagramHeader {
                    len,
                    len_field: true,
                };
                assert!(h.encoded_len() + len <= space);
                let h = DatagramHeader {
                    len: len + 1,
                    len_field: true,
                };
                assert!(h.encoded_len() + len + 1 > space);
            }
        }
    }
}
