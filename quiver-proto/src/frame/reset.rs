//! Stream termination frames: RESET_STREAM (0x04, RFC 9000 §19.4) and
//! STOP_SENDING (0x05, RFC 9000 §19.5).
//!
//! Whether the stream's direction permits the frame (e.g. RESET_STREAM for
//! a send-only stream is STREAM_STATE_ERROR) needs connection state and is
//! checked by the connection, not here.

use bytes::BufMut;

use super::FrameType;
use crate::TransportError;
use crate::coding::{Reader, VarInt};

/// RESET_STREAM: the sender abruptly ends the sending part of a stream.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct ResetStream {
    /// The Stream ID.
    pub id: VarInt,
    /// The Application Protocol Error Code (RFC 9000 §20.2).
    pub error_code: VarInt,
    /// The Final Size of the stream, in bytes.
    pub final_size: VarInt,
}

impl ResetStream {
    /// Writes the frame.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::RESET_STREAM.to_varint().encode(buf);
        self.id.encode(buf);
        self.error_code.encode(buf);
        self.final_size.encode(buf);
    }

    /// Bytes [`ResetStream::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        FrameType::RESET_STREAM.size()
            + self.id.size()
            + self.error_code.size()
            + self.final_size.size()
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, TransportError> {
        Ok(Self {
            id: r.varint()?,
            error_code: r.varint()?,
            final_size: r.varint()?,
        })
    }
}

/// STOP_SENDING: the receiver asks the peer to stop sending on a stream.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct StopSending {
    /// The Stream ID.
    pub id: VarInt,
    /// The Application Protocol Error Code (RFC 9000 §20.2).
    pub error_code: VarInt,
}

impl StopSending {
    /// Writes the frame.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::STOP_SENDING.to_varint().encode(buf);
        self.id.encode(buf);
        self.error_code.encode(buf);
    }

    /// Bytes [`StopSending::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        FrameType::STOP_SENDING.size() + self.id.size() + self.error_code.size()
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, TransportError> {
        Ok(Self {
            id: r.varint()?,
            error_code: r.varint()?,
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

    #[test]
    fn reset_stream_hand_encoding() {
        let f = ResetStream {
            id: VarInt::from_u32(3),
            error_code: VarInt::from_u32(0x100),
            final_size: VarInt::from_u32(70_000),
        };
        let bytes = [0x04, 0x03, 0x41, 0x00, 0x80, 0x01, 0x11, 0x70];
        assert_eq!(decode(&bytes).unwrap(), Frame::ResetStream(f));
        let mut out = Vec::new();
        f.encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(f.encoded_len(), bytes.len());
    }

    #[test]
    fn stop_sending_hand_encoding() {
        let f = StopSending {
            id: VarInt::from_u32(2),
            error_code: VarInt::from_u32(7),
        };
        assert_eq!(decode(&[0x05, 2, 7]).unwrap(), Frame::StopSending(f));
    }

    #[test]
    fn truncated_reset_stream_is_frame_encoding_error() {
        let err = decode(&[0x04, 0x03, 0x00]).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x04));
        let err = decode(&[0x05, 0x03]).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x05));
    }
}
