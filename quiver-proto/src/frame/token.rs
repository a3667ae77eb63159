//! NEW_TOKEN frames, type 0x07 (RFC 9000 §19.7).

use bytes::BufMut;

use super::FrameType;
use crate::TransportError;
use crate::coding::{Reader, VarInt};

/// NEW_TOKEN: a token, borrowed from the packet, for the client's Initial
/// packets on a future connection. Never empty when decoded.
///
/// That only servers may send it (RFC 9000 §19.7: "A server MUST treat
/// receipt of a NEW_TOKEN frame as a connection error of type
/// PROTOCOL_VIOLATION") depends on the side and is checked by the connection.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct NewToken<'a> {
    /// The Token.
    pub token: &'a [u8],
}

impl<'a> NewToken<'a> {
    /// Writes the frame. An empty token would be invalid on the wire.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::NEW_TOKEN.to_varint().encode(buf);
        VarInt::from_u64_unchecked(self.token.len() as u64).encode(buf);
        buf.put_slice(self.token);
    }

    /// Bytes [`NewToken::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        FrameType::NEW_TOKEN.size() + VarInt::size_of(self.token.len() as u64) + self.token.len()
    }

    pub(super) fn decode(r: &mut Reader<'a>) -> Result<Self, TransportError> {
        let token = r.varint_prefixed()?;
        // RFC 9000 §19.7: "A client MUST treat receipt of a NEW_TOKEN frame
        // with an empty Token field as a connection error of type
        // FRAME_ENCODING_ERROR."
        if token.is_empty() {
            return Err(TransportError::frame_encoding_error("empty NEW_TOKEN"));
        }
        Ok(Self { token })
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
    fn new_token_hand_encoding() {
        let bytes = [0x07, 0x03, 0xaa, 0xbb, 0xcc];
        let f = NewToken {
            token: &[0xaa, 0xbb, 0xcc],
        };
        assert_eq!(decode(&bytes).unwrap(), Frame::NewToken(f));
        let mut out = Vec::new();
        f.encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(f.encoded_len(), bytes.len());
    }

    #[test]
    fn new_token_empty_is_frame_encoding_error() {
        let err = decode(&[0x07, 0x00]).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x07));
    }

    #[test]
    fn new_token_truncated_is_frame_encoding_error() {
        let err = decode(&[0x07, 0x05, 1, 2]).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x07));
    }
}
