//! Path validation frames: PATH_CHALLENGE (0x1a, RFC 9000 §19.17) and
//! PATH_RESPONSE (0x1b, RFC 9000 §19.18), each carrying 8 bytes of data.

use bytes::BufMut;

use super::FrameType;
use crate::TransportError;
use crate::coding::Reader;

/// PATH_CHALLENGE: 8 arbitrary bytes the peer must echo in a PATH_RESPONSE
/// (RFC 9000 §19.17: "The recipient of this frame MUST generate a
/// PATH_RESPONSE frame ... containing the same Data value").
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub struct PathChallenge(pub [u8; 8]);

/// PATH_RESPONSE: the Data of a PATH_CHALLENGE, echoed.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub struct PathResponse(pub [u8; 8]);

/// Bytes a PATH_CHALLENGE or PATH_RESPONSE frame takes: type and 8 bytes.
pub const PATH_FRAME_LEN: usize = 9;

impl PathChallenge {
    /// Writes the frame.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::PATH_CHALLENGE.to_varint().encode(buf);
        buf.put_slice(&self.0);
    }

    /// Bytes [`PathChallenge::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        PATH_FRAME_LEN
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, TransportError> {
        Ok(Self(r.array()?))
    }
}

impl PathResponse {
    /// Writes the frame.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::PATH_RESPONSE.to_varint().encode(buf);
        buf.put_slice(&self.0);
    }

    /// Bytes [`PathResponse::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        PATH_FRAME_LEN
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, TransportError> {
        Ok(Self(r.array()?))
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
    fn path_challenge_and_response_hand_encodings() {
        let data = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            decode(&[0x1a, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap(),
            Frame::PathChallenge(PathChallenge(data))
        );
        assert_eq!(
            decode(&[0x1b, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap(),
            Frame::PathResponse(PathResponse(data))
        );
        let mut out = Vec::new();
        PathResponse(data).encode(&mut out);
        assert_eq!(out.len(), PATH_FRAME_LEN);
        assert_eq!(out[0], 0x1b);
    }

    #[test]
    fn path_challenge_shorter_than_8_bytes_is_frame_encoding_error() {
        let err = decode(&[0x1a, 1, 2, 3, 4, 5, 6, 7]).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x1a));
        let err = decode(&[0x1b]).unwrap_err();
        assert_eq!(err.frame_type, Some(0x1b));
    }
}
