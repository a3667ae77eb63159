//! ACK_FREQUENCY (0xaf) and IMMEDIATE_ACK (0x1f) frames of the QUIC
//! Acknowledgment Frequency extension (draft-ietf-quic-ack-frequency-12,
//! §4 and §5; codepoints from its §11.2).
//!
//! Decoding checks only the encoding. Whether the frame may be received at
//! all (we advertised `min_ack_delay`, draft §3) and whether its Requested
//! Max Ack Delay is valid (draft §4: below 2^14 ms and not below our
//! `min_ack_delay`, else PROTOCOL_VIOLATION) depend on connection state and
//! are the connection's checks.

use bytes::BufMut;

use super::FrameType;
use crate::TransportError;
use crate::coding::{Reader, VarInt};

/// ACK_FREQUENCY (draft-ietf-quic-ack-frequency §4): the sender's request
/// for how the receiver delays acknowledgments.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub struct AckFrequency {
    /// Sequence Number: receivers ignore frames not larger than the largest
    /// processed (draft §4).
    pub sequence: VarInt,
    /// Ack-Eliciting Threshold: ack-eliciting packets the receiver may
    /// receive without acknowledging (default 1, RFC 9000 §13.2.2).
    pub ack_eliciting_threshold: VarInt,
    /// Requested Max Ack Delay, in microseconds.
    pub request_max_ack_delay: VarInt,
    /// Reordering Threshold: 0 disables immediate ACKs on reordering,
    /// default 1 (draft §6.2).
    pub reordering_threshold: VarInt,
}

impl AckFrequency {
    /// Writes the frame with the shortest varints.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        FrameType::ACK_FREQUENCY.to_varint().encode(buf);
        self.sequence.encode(buf);
        self.ack_eliciting_threshold.encode(buf);
        self.request_max_ack_delay.encode(buf);
        self.reordering_threshold.encode(buf);
    }

    /// Bytes [`AckFrequency::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        FrameType::ACK_FREQUENCY.size()
            + self.sequence.size()
            + self.ack_eliciting_threshold.size()
            + self.request_max_ack_delay.size()
            + self.reordering_threshold.size()
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, TransportError> {
        Ok(Self {
            sequence: r.varint()?,
            ack_eliciting_threshold: r.varint()?,
            request_max_ack_delay: r.varint()?,
            reordering_threshold: r.varint()?,
        })
    }
}

/// Bytes an IMMEDIATE_ACK frame takes (its type alone, draft §5).
pub const IMMEDIATE_ACK_LEN: usize = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransportErrorCode;
    use crate::frame::{Frame, Iter};

    fn decode(bytes: &[u8]) -> Result<Frame<'_>, TransportError> {
        Frame::decode(&mut Reader::new(bytes))
    }

    #[test]
    fn ack_frequency_hand_encoding() {
        // draft-ietf-quic-ack-frequency §4: type 0xaf (a 2-byte varint,
        // 0x40af), then four varints.
        let bytes = [0x40, 0xaf, 0x05, 0x0a, 0x44, 0xe2, 0x03];
        let f = AckFrequency {
            sequence: VarInt::from_u32(5),
            ack_eliciting_threshold: VarInt::from_u32(10),
            request_max_ack_delay: VarInt::from_u32(1250),
            reordering_threshold: VarInt::from_u32(3),
        };
        assert_eq!(decode(&bytes).unwrap(), Frame::AckFrequency(f));
        let mut out = Vec::new();
        Frame::AckFrequency(f).encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(Frame::AckFrequency(f).encoded_len(), bytes.len());
    }

    #[test]
    fn ack_frequency_round_trips_extreme_values() {
        let max = VarInt::from_u64((1 << 62) - 1).unwrap();
        for v in [VarInt::from_u32(0), VarInt::from_u32(63), max] {
            let f = AckFrequency {
                sequence: v,
                ack_eliciting_threshold: v,
                request_max_ack_delay: v,
                reordering_threshold: v,
            };
            let mut out = Vec::new();
            f.encode(&mut out);
            assert_eq!(out.len(), f.encoded_len());
            assert_eq!(decode(&out).unwrap(), Frame::AckFrequency(f));
        }
    }

    #[test]
    fn truncated_ack_frequency_is_frame_encoding_error() {
        let bytes = [0x40, 0xaf, 0x05, 0x0a, 0x44, 0xe2, 0x03];
        for n in 2..bytes.len() {
            let e = decode(&bytes[..n]).unwrap_err();
            assert_eq!(e.code, TransportErrorCode::FRAME_ENCODING_ERROR, "{n}");
            assert_eq!(e.frame_type, Some(0xaf));
        }
    }

    #[test]
    fn immediate_ack_hand_encoding() {
        // draft-ietf-quic-ack-frequency §5: "Type (i) = 0x1f", no fields.
        assert_eq!(decode(&[0x1f]).unwrap(), Frame::ImmediateAck);
        let mut out = Vec::new();
        Frame::ImmediateAck.encode(&mut out);
        assert_eq!(out, [0x1f]);
        assert_eq!(Frame::ImmediateAck.encoded_len(), IMMEDIATE_ACK_LEN);
        let frames: Vec<_> = Iter::new(&[0x1f, 0x01]).collect::<Result<_, _>>().unwrap();
        assert_eq!(frames, [Frame::ImmediateAck, Frame::Ping]);
    }

    #[test]
    fn both_are_ack_eliciting() {
        // draft §4: "ACK_FREQUENCY frames are ack-eliciting"; §5: "By
        // definition IMMEDIATE_ACK frames are ack-eliciting".
        assert!(FrameType::ACK_FREQUENCY.is_ack_eliciting());
        assert!(FrameType::IMMEDIATE_ACK.is_ack_eliciting());
        assert!(!FrameType::ACK_FREQUENCY.is_probing());
        assert!(!FrameType::IMMEDIATE_ACK.is_probing());
    }
}
