//! Connection ID management frames: NEW_CONNECTION_ID (0x18, RFC 9000
//! §19.15) and RETIRE_CONNECTION_ID (0x19, RFC 9000 §19.16).
//!
//! Checks that need connection state (a zero-length CID in use, sequence
//! numbers never issued, the active_connection_id_limit) are the
//! connection's; only what the frame alone shows is checked here.

use bytes::BufMut;

use super::FrameType;
use crate::coding::{Reader, VarInt};
use crate::{ConnectionId, MAX_CID_SIZE, TransportError};

/// Bytes in a Stateless Reset Token (RFC 9000 §10.3).
pub const RESET_TOKEN_SIZE: usize = 16;

/// NEW_CONNECTION_ID: a further connection ID the peer may use, with its
/// stateless reset token.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct NewConnectionId {
    /// The Sequence Number of this connection ID.
    pub sequence: VarInt,
    /// Connection IDs with lower sequence numbers are to be retired.
    /// At most `sequence`.
    pub retire_prior_to: VarInt,
    /// The Connection ID: 1 to 20 bytes.
    pub id: ConnectionId,
    /// The Stateless Reset Token for `id`.
    pub reset_token: [u8; RESET_TOKEN_SIZE],
}

impl NewConnectionId {
    /// Writes the frame. An empty `id` would be invalid on the wire.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::NEW_CONNECTION_ID.to_varint().encode(buf);
        self.sequence.encode(buf);
        self.retire_prior_to.encode(buf);
        buf.put_u8(self.id.len() as u8);
        buf.put_slice(&self.id);
        buf.put_slice(&self.reset_token);
    }

    /// Bytes [`NewConnectionId::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        FrameType::NEW_CONNECTION_ID.size()
            + self.sequence.size()
            + self.retire_prior_to.size()
            + 1
            + self.id.len()
            + RESET_TOKEN_SIZE
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, TransportError> {
        let sequence = r.varint()?;
        let retire_prior_to = r.varint()?;
        // RFC 9000 §19.15: "The value in the Retire Prior To field MUST be less
        // than or equal to the value in the Sequence Number field. Receiving a
        // value ... greater than that in the Sequence Number field MUST be
        // treated as a connection error of type FRAME_ENCODING_ERROR."
        if retire_prior_to > sequence {
            return Err(TransportError::frame_encoding_error(
                "retire_prior_to exceeds sequence number",
            ));
        }
        // RFC 9000 §19.15: Length "Values less than 1 and greater than 20 are
        // invalid and MUST be treated as a connection error of type
        // FRAME_ENCODING_ERROR."
        let len = usize::from(r.u8()?);
        if len == 0 || len > MAX_CID_SIZE {
            return Err(TransportError::frame_encoding_error(
                "connection ID length not in 1..=20",
            ));
        }
        let id = ConnectionId::new(r.bytes(len)?).ok_or(TransportError::frame_encoding_error(
            "connection ID too long",
        ))?;
        let reset_token = r.array()?;
        Ok(Self {
            sequence,
            retire_prior_to,
            id,
            reset_token,
        })
    }
}

/// RETIRE_CONNECTION_ID: the sender will no longer use the connection ID
/// with this sequence number.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct RetireConnectionId {
    /// The Sequence Number of the connection ID being retired.
    pub sequence: VarInt,
}

impl RetireConnectionId {
    /// Writes the frame.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::RETIRE_CONNECTION_ID.to_varint().encode(buf);
        self.sequence.encode(buf);
    }

    /// Bytes [`RetireConnectionId::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        FrameType::RETIRE_CONNECTION_ID.size() + self.sequence.size()
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, TransportError> {
        Ok(Self {
            sequence: r.varint()?,
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

    fn new_cid_bytes(seq: u8, retire: u8, cid: &[u8]) -> Vec<u8> {
        let mut b = vec![0x18, seq, retire, cid.len() as u8];
        b.extend_from_slice(cid);
        b.extend_from_slice(&[0xee; RESET_TOKEN_SIZE]);
        b
    }

    #[test]
    fn new_connection_id_hand_encoding() {
        let bytes = new_cid_bytes(2, 1, &[9, 8, 7, 6]);
        let f = NewConnectionId {
            sequence: VarInt::from_u32(2),
            retire_prior_to: VarInt::from_u32(1),
            id: ConnectionId::new(&[9, 8, 7, 6]).unwrap(),
            reset_token: [0xee; RESET_TOKEN_SIZE],
        };
        assert_eq!(decode(&bytes).unwrap(), Frame::NewConnectionId(f));
        let mut out = Vec::new();
        f.encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(f.encoded_len(), bytes.len());
    }

    #[test]
    fn new_connection_id_length_zero_is_frame_encoding_error() {
        let err = decode(&new_cid_bytes(1, 0, &[])).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x18));
    }

    #[test]
    fn new_connection_id_length_21_is_frame_encoding_error() {
        assert!(decode(&new_cid_bytes(1, 0, &[1; 20])).is_ok());
        let err = decode(&new_cid_bytes(1, 0, &[1; 21])).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x18));
    }

    #[test]
    fn new_connection_id_retire_prior_to_above_sequence_is_frame_encoding_error() {
        assert!(decode(&new_cid_bytes(3, 3, &[1])).is_ok());
        let err = decode(&new_cid_bytes(3, 4, &[1])).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x18));
    }

    #[test]
    fn new_connection_id_truncated_reset_token_is_frame_encoding_error() {
        let mut bytes = new_cid_bytes(1, 0, &[1, 2]);
        bytes.pop();
        let err = decode(&bytes).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
    }

    #[test]
    fn retire_connection_id_hand_encoding() {
        assert_eq!(
            decode(&[0x19, 0x40, 0x41]).unwrap(),
            Frame::RetireConnectionId(RetireConnectionId {
                sequence: VarInt::from_u32(0x41)
            })
        );
    }
}
