//! Flow-control and stream-limit frames (RFC 9000 §19.9 to §19.14):
//! MAX_DATA, MAX_STREAM_DATA, MAX_STREAMS, DATA_BLOCKED,
//! STREAM_DATA_BLOCKED and STREAMS_BLOCKED.

use bytes::BufMut;

use super::FrameType;
use crate::TransportError;
use crate::coding::{Reader, VarInt};

/// The largest stream count a MAX_STREAMS or STREAMS_BLOCKED frame may carry:
/// 2^60, "as it is not possible to encode stream IDs larger than 2^62-1"
/// (RFC 9000 §19.11, §19.14).
pub const MAX_STREAM_COUNT: u64 = 1 << 60;

/// A stream direction, as the low bit of MAX_STREAMS and STREAMS_BLOCKED
/// frame types distinguishes them.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Bidirectional streams.
    Bi,
    /// Unidirectional streams.
    Uni,
}

/// MAX_DATA (0x10): the connection-wide data limit (RFC 9000 §19.9).
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct MaxData(pub VarInt);

/// MAX_STREAM_DATA (0x11): a stream's data limit (RFC 9000 §19.10).
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct MaxStreamData {
    /// The Stream ID.
    pub id: VarInt,
    /// The Maximum Stream Data, in bytes.
    pub max: VarInt,
}

/// MAX_STREAMS (0x12 bidirectional, 0x13 unidirectional): the cumulative
/// number of streams the peer may open (RFC 9000 §19.11).
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct MaxStreams {
    /// Which kind of stream the limit applies to.
    pub dir: Dir,
    /// The Maximum Streams count, at most [`MAX_STREAM_COUNT`].
    pub count: VarInt,
}

/// DATA_BLOCKED (0x14): the sender is blocked at this connection-level
/// limit (RFC 9000 §19.12).
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct DataBlocked(pub VarInt);

/// STREAM_DATA_BLOCKED (0x15): the sender is blocked at this stream-level
/// limit (RFC 9000 §19.13).
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct StreamDataBlocked {
    /// The Stream ID.
    pub id: VarInt,
    /// The offset at which the stream is blocked.
    pub limit: VarInt,
}

/// STREAMS_BLOCKED (0x16 bidirectional, 0x17 unidirectional): the sender
/// could not open a stream because of this limit (RFC 9000 §19.14).
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct StreamsBlocked {
    /// Which kind of stream is blocked.
    pub dir: Dir,
    /// The stream limit at the time, at most [`MAX_STREAM_COUNT`].
    pub limit: VarInt,
}

/// Reads a stream count and rejects one above 2^60 as FRAME_ENCODING_ERROR.
fn stream_count(r: &mut Reader<'_>) -> Result<VarInt, TransportError> {
    let count = r.varint()?;
    if count.into_inner() > MAX_STREAM_COUNT {
        return Err(TransportError::frame_encoding_error(
            "stream count exceeds 2^60",
        ));
    }
    Ok(count)
}

impl MaxData {
    /// Writes the frame.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::MAX_DATA.to_varint().encode(buf);
        self.0.encode(buf);
    }

    /// Bytes [`MaxData::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        FrameType::MAX_DATA.size() + self.0.size()
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, TransportError> {
        Ok(Self(r.varint()?))
    }
}

impl MaxStreamData {
    /// Writes the frame.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::MAX_STREAM_DATA.to_varint().encode(buf);
        self.id.encode(buf);
        self.max.encode(buf);
    }

    /// Bytes [`MaxStreamData::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        FrameType::MAX_STREAM_DATA.size() + self.id.size() + self.max.size()
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, TransportError> {
        Ok(Self {
            id: r.varint()?,
            max: r.varint()?,
        })
    }
}

impl MaxStreams {
    /// The frame type: 0x12 for bidirectional, 0x13 for unidirectional.
    pub fn ty(&self) -> FrameType {
        match self.dir {
            Dir::Bi => FrameType::MAX_STREAMS_BIDI,
            Dir::Uni => FrameType::MAX_STREAMS_UNI,
        }
    }

    /// Writes the frame (the count is not checked against 2^60).
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        self.ty().to_varint().encode(buf);
        self.count.encode(buf);
    }

    /// Bytes [`MaxStreams::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.ty().size() + self.count.size()
    }

    pub(super) fn decode(r: &mut Reader<'_>, dir: Dir) -> Result<Self, TransportError> {
        // RFC 9000 §19.11: "This value cannot exceed 2^60 ... Receipt of a
        // frame that permits opening of a stream larger than this limit MUST
        // be treated as a connection error of type FRAME_ENCODING_ERROR."
        Ok(Self {
            dir,
            count: stream_count(r)?,
        })
    }
}

impl DataBlocked {
    /// Writes the frame.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::DATA_BLOCKED.to_varint().encode(buf);
        self.0.encode(buf);
    }

    /// Bytes [`DataBlocked::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        FrameType::DATA_BLOCKED.size() + self.0.size()
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, TransportError> {
        Ok(Self(r.varint()?))
    }
}

impl StreamDataBlocked {
    /// Writes the frame.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::STREAM_DATA_BLOCKED.to_varint().encode(buf);
        self.id.encode(buf);
        self.limit.encode(buf);
    }

    /// Bytes [`StreamDataBlocked::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        FrameType::STREAM_DATA_BLOCKED.size() + self.id.size() + self.limit.size()
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, TransportError> {
        Ok(Self {
            id: r.varint()?,
            limit: r.varint()?,
        })
    }
}

impl StreamsBlocked {
    /// The frame type: 0x16 for bidirectional, 0x17 for unidirectional.
    pub fn ty(&self) -> FrameType {
        match self.dir {
            Dir::Bi => FrameType::STREAMS_BLOCKED_BIDI,
            Dir::Uni => FrameType::STREAMS_BLOCKED_UNI,
        }
    }

    /// Writes the frame (the limit is not checked against 2^60).
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        self.ty().to_varint().encode(buf);
        self.limit.encode(buf);
    }

    /// Bytes [`StreamsBlocked::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.ty().size() + self.limit.size()
    }

    pub(super) fn decode(r: &mut Reader<'_>, dir: Dir) -> Result<Self, TransportError> {
        // RFC 9000 §19.14: "This value cannot exceed 2^60 ... Receipt of a
        // frame that encodes a larger stream ID MUST be treated as a connection
        // error of type STREAM_LIMIT_ERROR or FRAME_ENCODING_ERROR." We choose
        // FRAME_ENCODING_ERROR, as for MAX_STREAMS (§19.11).
        Ok(Self {
            dir,
            limit: stream_count(r)?,
        })
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

    fn v(x: u64) -> VarInt {
        VarInt::from_u64(x).unwrap()
    }

    #[test]
    fn flow_control_frames_hand_encodings() {
        let cases: [(&[u8], Frame<'static>); 8] = [
            (&[0x10, 0x44, 0x00], Frame::MaxData(MaxData(v(0x400)))),
            (
                &[0x11, 0x04, 0x3f],
                Frame::MaxStreamData(MaxStreamData {
                    id: v(4),
                    max: v(63),
                }),
            ),
            (
                &[0x12, 0x0a],
                Frame::MaxStreams(MaxStreams {
                    dir: Dir::Bi,
                    count: v(10),
                }),
            ),
            (
                &[0x13, 0x0b],
                Frame::MaxStreams(MaxStreams {
                    dir: Dir::Uni,
                    count: v(11),
                }),
            ),
            (&[0x14, 0x01], Frame::DataBlocked(DataBlocked(v(1)))),
            (
                &[0x15, 0x02, 0x03],
                Frame::StreamDataBlocked(StreamDataBlocked {
                    id: v(2),
                    limit: v(3),
                }),
            ),
            (
                &[0x16, 0x05],
                Frame::StreamsBlocked(StreamsBlocked {
                    dir: Dir::Bi,
                    limit: v(5),
                }),
            ),
            (
                &[0x17, 0x06],
                Frame::StreamsBlocked(StreamsBlocked {
                    dir: Dir::Uni,
                    limit: v(6),
                }),
            ),
        ];
        for (bytes, frame) in cases {
            assert_eq!(decode(bytes).unwrap(), frame, "{bytes:02x?}");
            let mut out = Vec::new();
            frame.encode(&mut out);
            assert_eq!(out, bytes);
        }
    }

    fn count_frame(ty: u8, count: u64) -> Vec<u8> {
        let mut bytes = vec![ty];
        v(count).encode(&mut bytes);
        bytes
    }

    #[test]
    fn max_streams_above_2_60_is_frame_encoding_error() {
        for ty in [0x12, 0x13] {
            assert!(decode(&count_frame(ty, MAX_STREAM_COUNT)).is_ok());
            let err = decode(&count_frame(ty, MAX_STREAM_COUNT + 1)).unwrap_err();
            assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
            assert_eq!(err.frame_type, Some(u64::from(ty)));
        }
    }

    #[test]
    fn streams_blocked_above_2_60_is_frame_encoding_error() {
        for ty in [0x16, 0x17] {
            assert!(decode(&count_frame(ty, MAX_STREAM_COUNT)).is_ok());
            let err = decode(&count_frame(ty, MAX_STREAM_COUNT + 1)).unwrap_err();
            assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
            assert_eq!(err.frame_type, Some(u64::from(ty)));
        }
    }

    #[test]
    fn truncated_flow_control_frames_are_frame_encoding_errors() {
        for bytes in [
            &[0x10][..],
            &[0x11, 0x00],
            &[0x12],
            &[0x14, 0x40],
            &[0x15],
            &[0x17],
        ] {
            let err = decode(bytes).unwrap_err();
            assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
            assert_eq!(err.frame_type, Some(u64::from(bytes[0])));
        }
    }
}
