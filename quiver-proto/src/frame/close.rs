//! CONNECTION_CLOSE frames (RFC 9000 §19.19): type 0x1c for QUIC-layer
//! errors, which names the frame type that caused the error, and type 0x1d
//! for application errors.

use std::fmt;

use bytes::BufMut;

use super::{FrameType, max_len_prefixed};
use crate::coding::{Reader, VarInt};
use crate::{TransportError, TransportErrorCode};

/// CONNECTION_CLOSE of type 0x1c: the connection is closed by the QUIC layer.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct ConnectionClose<'a> {
    /// The Error Code, from the transport error space (RFC 9000 §20.1).
    pub error_code: VarInt,
    /// The type of frame that triggered the error; PADDING (0) if unknown
    /// (RFC 9000 §19.19: "A value of 0 ... is used when the frame type is
    /// unknown").
    pub frame_type: FrameType,
    /// The Reason Phrase, borrowed from the packet; meant to be UTF-8 but not
    /// checked, since it is only diagnostic.
    pub reason: &'a [u8],
}

/// CONNECTION_CLOSE of type 0x1d: the application closed the connection.
///
/// RFC 9000 §19.19: "The application-specific variant of CONNECTION_CLOSE
/// (type 0x1d) can only be sent using 0-RTT or 1-RTT packets"; see
/// [`is_allowed`](super::is_allowed).
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct ApplicationClose<'a> {
    /// The Error Code, defined by the application protocol (RFC 9000 §20.2).
    pub error_code: VarInt,
    /// The Reason Phrase, borrowed from the packet.
    pub reason: &'a [u8],
}

impl<'a> ConnectionClose<'a> {
    /// The error code as a transport error code.
    pub fn code(&self) -> TransportErrorCode {
        TransportErrorCode::from(self.error_code)
    }

    /// Writes the frame.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::CONNECTION_CLOSE.to_varint().encode(buf);
        self.error_code.encode(buf);
        self.frame_type.to_varint().encode(buf);
        encode_reason(self.reason, buf);
    }

    /// Bytes [`ConnectionClose::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.fixed_len() + reason_len(self.reason.len())
    }

    fn fixed_len(&self) -> usize {
        FrameType::CONNECTION_CLOSE.size() + self.error_code.size() + self.frame_type.size()
    }

    /// The same frame with the reason phrase shortened, if need be, so that
    /// the frame takes at most `max_len` bytes; `None` if even an empty
    /// reason does not fit. A UTF-8 reason is cut at a character boundary.
    /// (RFC 9000 §19.19: "any limits on packet size will also limit the space
    /// available for a reason phrase.")
    pub fn truncated(&self, max_len: usize) -> Option<Self> {
        let reason = truncate(self.reason, max_len.checked_sub(self.fixed_len())?)?;
        Some(Self { reason, ..*self })
    }

    pub(super) fn decode(r: &mut Reader<'a>) -> Result<Self, TransportError> {
        Ok(Self {
            error_code: r.varint()?,
            frame_type: FrameType::from(r.varint()?),
            reason: r.varint_prefixed()?,
        })
    }
}

impl<'a> ApplicationClose<'a> {
    /// Writes the frame.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::APPLICATION_CLOSE.to_varint().encode(buf);
        self.error_code.encode(buf);
        encode_reason(self.reason, buf);
    }

    /// Bytes [`ApplicationClose::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.fixed_len() + reason_len(self.reason.len())
    }

    fn fixed_len(&self) -> usize {
        FrameType::APPLICATION_CLOSE.size() + self.error_code.size()
    }

    /// As [`ConnectionClose::truncated`].
    pub fn truncated(&self, max_len: usize) -> Option<Self> {
        let reason = truncate(self.reason, max_len.checked_sub(self.fixed_len())?)?;
        Some(Self { reason, ..*self })
    }

    pub(super) fn decode(r: &mut Reader<'a>) -> Result<Self, TransportError> {
        Ok(Self {
            error_code: r.varint()?,
            reason: r.varint_prefixed()?,
        })
    }
}

impl From<&TransportError> for ConnectionClose<'static> {
    /// The frame that reports `err` to the peer. A code or frame type that
    /// is not a valid varint (never the case for the RFC's codes) becomes
    /// INTERNAL_ERROR or 0 respectively.
    fn from(err: &TransportError) -> Self {
        let error_code = VarInt::from_u64(err.code.0).unwrap_or(VarInt::from_u32(
            TransportErrorCode::INTERNAL_ERROR.0 as u32,
        ));
        let frame_type = err
            .frame_type
            .and_then(|t| FrameType::try_from(t).ok())
            .unwrap_or(FrameType::PADDING);
        Self {
            error_code,
            frame_type,
            reason: err.reason.as_bytes(),
        }
    }
}

fn encode_reason<B: BufMut>(reason: &[u8], buf: &mut B) {
    VarInt::from_u64_unchecked(reason.len() as u64).encode(buf);
    buf.put_slice(reason);
}

fn reason_len(len: usize) -> usize {
    VarInt::size_of(len as u64) + len
}

/// The longest prefix of `reason` that fits, with its length, in `avail`.
fn truncate(reason: &[u8], avail: usize) -> Option<&[u8]> {
    let mut len = max_len_prefixed(avail)?.min(reason.len());
    if len < reason.len() && std::str::from_utf8(reason).is_ok() {
        // Back up to the start of a character: UTF-8 continuation bytes
        // are 0b10xxxxxx.
        while len > 0 && reason[len] & 0xc0 == 0x80 {
            len -= 1;
        }
    }
    Some(&reason[..len])
}

impl fmt::Debug for ConnectionClose<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionClose")
            .field("error_code", &self.code())
            .field("frame_type", &self.frame_type)
            .field("reason", &String::from_utf8_lossy(self.reason))
            .finish()
    }
}

impl fmt::Debug for ApplicationClose<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationClose")
            .field("error_code", &self.error_code)
            .field("reason", &String::from_utf8_lossy(self.reason))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;

    fn decode(bytes: &[u8]) -> Result<Frame<'_>, TransportError> {
        Frame::decode(&mut Reader::new(bytes))
    }

    #[test]
    fn transport_close_hand_encoding_includes_frame_type() {
        let bytes = [0x1c, 0x07, 0x08, 0x02, b'h', b'i'];
        let f = ConnectionClose {
            error_code: VarInt::from_u32(7),
            frame_type: FrameType::STREAM,
            reason: b"hi",
        };
        assert_eq!(decode(&bytes).unwrap(), Frame::ConnectionClose(f));
        assert_eq!(f.code(), TransportErrorCode::FRAME_ENCODING_ERROR);
        let mut out = Vec::new();
        f.encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(f.encoded_len(), bytes.len());
    }

    #[test]
    fn application_close_hand_encoding_has_no_frame_type() {
        let bytes = [0x1d, 0x41, 0x00, 0x00];
        let f = ApplicationClose {
            error_code: VarInt::from_u32(0x100),
            reason: b"",
        };
        assert_eq!(decode(&bytes).unwrap(), Frame::ApplicationClose(f));
        let mut out = Vec::new();
        f.encode(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn close_reason_longer_than_packet_is_frame_encoding_error() {
        for bytes in [
            &[0x1c, 0x00, 0x00, 0x05, b'a'][..],
            &[0x1d, 0x00, 0x05, b'a'],
        ] {
            let err = decode(bytes).unwrap_err();
            assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
            assert_eq!(err.frame_type, Some(u64::from(bytes[0])));
        }
    }

    #[test]
    fn close_from_transport_error_carries_code_frame_type_and_reason() {
        let err = TransportError::protocol_violation("bad").with_frame(0x1e);
        let f = ConnectionClose::from(&err);
        assert_eq!(f.code(), TransportErrorCode::PROTOCOL_VIOLATION);
        assert_eq!(f.frame_type, FrameType::HANDSHAKE_DONE);
        assert_eq!(f.reason, b"bad");
        let f = ConnectionClose::from(&TransportError::internal_error("x"));
        assert_eq!(f.frame_type, FrameType::PADDING);
    }

    #[test]
    fn close_truncation_fits_and_keeps_utf8_whole() {
        let f = ConnectionClose {
            error_code: VarInt::from_u32(1),
            frame_type: FrameType::PADDING,
            reason: "héllo".as_bytes(), // 'é' is 2 bytes, at offset 1
        };
        assert_eq!(f.encoded_len(), 3 + 1 + 6);
        assert_eq!(f.truncated(100).unwrap(), f);
        // Room for 2 reason bytes: cutting 'é' in half backs up to "h".
        assert_eq!(f.truncated(3 + 1 + 2).unwrap().reason, b"h");
        assert_eq!(f.truncated(4).unwrap().reason, b"");
        assert_eq!(f.truncated(3), None);
        let a = ApplicationClose {
            error_code: VarInt::from_u32(1),
            reason: &[0xff; 100],
        };
        for max in 3..110 {
            let t = a.truncated(max).unwrap();
            assert!(t.encoded_len() <= max);
        }
        assert_eq!(a.truncated(2), None);
    }
}
