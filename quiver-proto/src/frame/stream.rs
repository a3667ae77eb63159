//! STREAM frames, types 0x08 to 0x0f (RFC 9000 §19.8).

use std::fmt;

use bytes::BufMut;

use super::{FrameType, max_len_prefixed};
use crate::TransportError;
use crate::coding::{Reader, VarInt};

/// The OFF bit: an Offset field is present (RFC 9000 §19.8).
pub const STREAM_OFF_BIT: u64 = 0x04;
/// The LEN bit: a Length field is present (RFC 9000 §19.8).
pub const STREAM_LEN_BIT: u64 = 0x02;
/// The FIN bit: the frame ends the stream (RFC 9000 §19.8).
pub const STREAM_FIN_BIT: u64 = 0x01;

/// A STREAM frame: data at `offset` of stream `id`, borrowed from the packet.
///
/// [`Stream::encode`] always writes a Length field, so other frames may
/// follow; to fill a packet's tail without one, use [`StreamHeader`].
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Stream<'a> {
    /// The Stream ID.
    pub id: VarInt,
    /// Offset of the first byte of `data` in the stream (0 if absent).
    pub offset: VarInt,
    /// Whether the frame marks the end of the stream.
    pub fin: bool,
    /// The Stream Data.
    pub data: &'a [u8],
}

impl<'a> Stream<'a> {
    /// The header [`Stream::encode`] writes before the data.
    pub fn header(&self) -> StreamHeader {
        StreamHeader {
            id: self.id,
            offset: self.offset,
            len: self.data.len(),
            fin: self.fin,
            len_field: true,
        }
    }

    /// The frame type this frame encodes as.
    pub fn ty(&self) -> FrameType {
        self.header().ty()
    }

    /// Writes the frame, with a Length field.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        self.header().encode(buf);
        buf.put_slice(self.data);
    }

    /// Bytes [`Stream::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.header().encoded_len() + self.data.len()
    }

    /// Decodes the fields after the Frame Type (`ty` is one of 0x08..=0x0f).
    pub(super) fn decode(r: &mut Reader<'a>, ty: FrameType) -> Result<Self, TransportError> {
        let bits = ty.value();
        let id = r.varint()?;
        let offset = if bits & STREAM_OFF_BIT != 0 {
            r.varint()?
        } else {
            VarInt::ZERO
        };
        // RFC 9000 §19.8: "If this bit is set to 0, the Length field is
        // absent and the Stream Data field extends to the end of the packet."
        let data = if bits & STREAM_LEN_BIT != 0 {
            r.varint_prefixed()?
        } else {
            r.rest()
        };
        // RFC 9000 §19.8: "The largest offset delivered on a stream -- the sum
        // of the offset and data length -- cannot exceed 2^62-1 ... Receipt of
        // a frame that exceeds this limit MUST be treated as a connection error
        // of type FRAME_ENCODING_ERROR or FLOW_CONTROL_ERROR." We choose
        // FRAME_ENCODING_ERROR: the frame is invalid on its own, whatever the
        // flow-control state.
        check_end(offset, data.len()).ok_or(TransportError::frame_encoding_error(
            "stream offset + length exceeds 2^62-1",
        ))?;
        Ok(Self {
            id,
            offset,
            fin: bits & STREAM_FIN_BIT != 0,
            data,
        })
    }
}

/// `offset + len` if it is at most 2^62-1 (shared with CRYPTO frames).
pub(super) fn check_end(offset: VarInt, len: usize) -> Option<u64> {
    offset
        .into_inner()
        .checked_add(len as u64)
        .filter(|end| *end <= VarInt::MAX.into_inner())
}

impl fmt::Debug for Stream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id)
            .field("offset", &self.offset)
            .field("len", &self.data.len())
            .field("fin", &self.fin)
            .finish()
    }
}

/// The fields of a STREAM frame before its data, for writing a frame whose
/// data the caller then copies straight into the packet buffer.
///
/// ```
/// use quiver_proto::{VarInt, frame::StreamHeader};
/// let data = b"hello";
/// let header = StreamHeader {
///     id: VarInt::from_u32(4),
///     offset: VarInt::from_u32(100),
///     len: data.len(),
///     fin: true,
///     len_field: false, // last frame in the packet
/// };
/// let mut packet = Vec::new();
/// header.encode(&mut packet);
/// packet.extend_from_slice(data);
/// assert_eq!(packet, [0x0d, 4, 0x40, 100, b'h', b'e', b'l', b'l', b'o']);
/// ```
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    /// The Stream ID.
    pub id: VarInt,
    /// Offset of the data; the Offset field is omitted when it is 0.
    pub offset: VarInt,
    /// Bytes of data that will follow the header.
    pub len: usize,
    /// Whether the frame ends the stream.
    pub fin: bool,
    /// Whether to write a Length field. Without one the data runs to the end
    /// of the packet, so the frame must be the packet's last.
    pub len_field: bool,
}

impl StreamHeader {
    /// The frame type, with OFF set only when the offset is non-zero.
    pub fn ty(&self) -> FrameType {
        FrameType::stream(self.offset != VarInt::ZERO, self.len_field, self.fin)
    }

    /// Writes the Frame Type, Stream ID, and the Offset and Length fields
    /// when present; the caller writes `len` data bytes next.
    ///
    /// # Panics
    /// If `len` is 2^62 or more (impossible for an in-memory buffer).
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        // RFC 9000 §12.4: "a frame type MUST use the shortest possible encoding".
        self.ty().to_varint().encode(buf);
        self.id.encode(buf);
        if self.offset != VarInt::ZERO {
            self.offset.encode(buf);
        }
        if self.len_field {
            VarInt::from_u64_unchecked(self.len as u64).encode(buf);
        }
    }

    /// Bytes [`StreamHeader::encode`] writes (not counting the data).
    pub fn encoded_len(&self) -> usize {
        fixed_len(self.id, self.offset)
            + if self.len_field {
                VarInt::size_of(self.len as u64)
            } else {
                0
            }
    }
}

fn fixed_len(id: VarInt, offset: VarInt) -> usize {
    FrameType::STREAM.size()
        + id.size()
        + if offset == VarInt::ZERO {
            0
        } else {
            offset.size()
        }
}

/// The most stream data a STREAM frame for `id` at `offset` can carry when
/// header and data together must fit in `space` bytes, or `None` if not even
/// the header fits. `Some(0)` leaves room for an empty (e.g. FIN-only) frame.
/// The result also keeps `offset + len` within 2^62-1 (RFC 9000 §19.8).
pub fn max_stream_data(space: usize, id: VarInt, offset: VarInt, len_field: bool) -> Option<usize> {
    let avail = space.checked_sub(fixed_len(id, offset))?;
    let fits = if len_field {
        max_len_prefixed(avail)?
    } else {
        avail
    };
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
    fn stream_frame_without_offset_or_length_runs_to_end_of_packet() {
        let f = decode(&[0x08, 0x04, b'a', b'b']).unwrap();
        assert_eq!(
            f,
            Frame::Stream(Stream {
                id: VarInt::from_u32(4),
                offset: VarInt::ZERO,
                fin: false,
                data: b"ab"
            })
        );
    }

    #[test]
    fn stream_frame_all_bits_set() {
        // OFF|LEN|FIN, id 1, offset 0x1234 (2 bytes), len 1, data.
        let f = decode(&[0x0f, 0x01, 0x52, 0x34, 0x01, 0xaa, 0xff]).unwrap();
        assert_eq!(
            f,
            Frame::Stream(Stream {
                id: VarInt::from_u32(1),
                offset: VarInt::from_u32(0x1234),
                fin: true,
                data: &[0xaa]
            })
        );
    }

    #[test]
    fn stream_frame_encode_omits_zero_offset_and_sets_len() {
        let s = Stream {
            id: VarInt::from_u32(8),
            offset: VarInt::ZERO,
            fin: true,
            data: b"xyz",
        };
        let mut out = Vec::new();
        s.encode(&mut out);
        assert_eq!(out, [0x0b, 8, 3, b'x', b'y', b'z']);
        assert_eq!(s.encoded_len(), out.len());
    }

    #[test]
    fn stream_frame_offset_beyond_2_62_is_frame_encoding_error() {
        // offset 2^62-1 with one byte of data: the end is 2^62.
        let mut bytes = vec![0x0e, 0x00];
        VarInt::MAX.encode(&mut bytes);
        bytes.extend_from_slice(&[0x01, 0x00]);
        let err = decode(&bytes).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x0e));
        // With no data it ends exactly at 2^62-1, which is allowed.
        let at = bytes.len() - 2;
        bytes[at] = 0;
        bytes.pop();
        assert!(decode(&bytes).is_ok());
    }

    #[test]
    fn stream_frame_length_beyond_packet_is_frame_encoding_error() {
        let err = decode(&[0x0a, 0x00, 0x05, b'a']).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x0a));
    }

    #[test]
    fn stream_frame_missing_stream_id_is_frame_encoding_error() {
        let err = decode(&[0x08]).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
    }

    #[test]
    fn max_stream_data_fills_space_exactly_or_one_short() {
        let id = VarInt::from_u32(4);
        for space in 0..20_000usize {
            for offset in [VarInt::ZERO, VarInt::from_u32(1_000_000)] {
                for len_field in [false, true] {
                    let Some(len) = max_stream_data(space, id, offset, len_field) else {
                        let h = StreamHeader {
                            id,
                            offset,
                            len: 0,
                            fin: false,
                            len_field,
                        };
                        assert!(h.encoded_len() > space);
                        continue;
                    };
                    let h = StreamHeader {
                        id,
                        offset,
                        len,
                        fin: false,
                        len_field,
                    };
                    let used = h.encoded_len() + len;
                    assert!(used <= space, "space {space}: used {used}");
                    // One more byte of data must not fit.
                    let more = StreamHeader { len: len + 1, ..h };
                    assert!(more.encoded_len() + len + 1 > space);
                }
            }
        }
    }

    #[test]
    fn max_stream_data_respects_2_62_limit() {
        let offset = VarInt::from_u64(VarInt::MAX.into_inner() - 3).unwrap();
        assert_eq!(max_stream_data(1000, VarInt::ZERO, offset, true), Some(3));
    }

    #[test]
    fn stream_header_without_length_lets_caller_write_data_in_place() {
        let h = StreamHeader {
            id: VarInt::from_u32(0),
            offset: VarInt::ZERO,
            len: 2,
            fin: false,
            len_field: false,
        };
        let mut out = Vec::new();
        h.encode(&mut out);
        out.extend_from_slice(b"hi");
        assert_eq!(out, [0x08, 0x00, b'h', b'i']);
        assert_eq!(h.encoded_len() + 2, out.len());
    }
}
