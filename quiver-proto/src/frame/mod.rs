//! Frames (RFC 9000 §19, RFC 9221 §4, draft-ietf-quic-ack-frequency-12 §4-5).
//!
//! [`Frame::decode`] reads one frame from a packet payload without copying:
//! data, tokens and reason phrases borrow from the payload, and ACK ranges
//! are walked lazily. [`Iter`] decodes a whole payload. Decoding checks
//! everything a frame shows on its own and reports violations with the
//! RFC's error code and the offending frame type; checks that need
//! connection state (stream direction, limits, which side sent it) are the
//! connection's.
//!
//! Encoding writes the shortest varints. Each frame type has `encode` and
//! `encoded_len`; STREAM, CRYPTO and DATAGRAM also have header types that let
//! the caller copy data straight into the packet, with `max_*_data` functions
//! that size the data to the space left. [`is_allowed`] is Table 3 of
//! RFC 9000 §12.4.
//!
//! ```
//! use quiver_proto::frame::{Frame, Iter};
//! let payload = [0x01, 0x00, 0x00, 0x00]; // PING, then 3 bytes of PADDING
//! let frames: Vec<_> = Iter::new(&payload).collect::<Result<_, _>>().unwrap();
//! assert_eq!(frames, [Frame::Ping, Frame::Padding(3)]);
//! ```

use std::iter::FusedIterator;

use bytes::BufMut;

use crate::TransportError;
use crate::coding::{Reader, VarInt};

mod ack;
mod ack_frequency;
mod allowed;
mod cid;
mod close;
mod crypto;
mod datagram;
mod flow_control;
mod frame_type;
mod padding;
mod path;
mod reset;
mod stream;
mod token;

#[cfg(test)]
mod tests;

pub use ack::{Ack, AckRanges, EcnCounts, ack_encoded_len, encode_ack};
pub use ack_frequency::{AckFrequency, IMMEDIATE_ACK_LEN};
pub use allowed::{is_allowed, is_allowed_strict};
pub use cid::{NewConnectionId, RESET_TOKEN_SIZE, RetireConnectionId};
pub use close::{ApplicationClose, ConnectionClose};
pub use crypto::{Crypto, CryptoHeader, max_crypto_data};
pub use datagram::{Datagram, DatagramHeader, max_datagram_data};
pub use flow_control::{
    DataBlocked, Dir, MAX_STREAM_COUNT, MaxData, MaxStreamData, MaxStreams, StreamDataBlocked,
    StreamsBlocked,
};
pub use frame_type::FrameType;
pub use path::{PATH_FRAME_LEN, PathChallenge, PathResponse};
pub use reset::{ResetStream, StopSending};
pub use stream::{
    STREAM_FIN_BIT, STREAM_LEN_BIT, STREAM_OFF_BIT, Stream, StreamHeader, max_stream_data,
};
pub use token::NewToken;

/// One decoded frame, borrowing its variable-length contents from the
/// packet payload.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A run of this many consecutive PADDING bytes (0x00), RFC 9000 §19.1.
    /// Decoding merges a run into one frame; encoding writes that many zeros.
    Padding(usize),
    /// PING (0x01), RFC 9000 §19.2.
    Ping,
    /// ACK (0x02, or 0x03 with ECN counts), RFC 9000 §19.3.
    Ack(Ack<'a>),
    /// RESET_STREAM (0x04), RFC 9000 §19.4.
    ResetStream(ResetStream),
    /// STOP_SENDING (0x05), RFC 9000 §19.5.
    StopSending(StopSending),
    /// CRYPTO (0x06), RFC 9000 §19.6.
    Crypto(Crypto<'a>),
    /// NEW_TOKEN (0x07), RFC 9000 §19.7.
    NewToken(NewToken<'a>),
    /// STREAM (0x08..=0x0f), RFC 9000 §19.8.
    Stream(Stream<'a>),
    /// MAX_DATA (0x10), RFC 9000 §19.9.
    MaxData(MaxData),
    /// MAX_STREAM_DATA (0x11), RFC 9000 §19.10.
    MaxStreamData(MaxStreamData),
    /// MAX_STREAMS (0x12, 0x13), RFC 9000 §19.11.
    MaxStreams(MaxStreams),
    /// DATA_BLOCKED (0x14), RFC 9000 §19.12.
    DataBlocked(DataBlocked),
    /// STREAM_DATA_BLOCKED (0x15), RFC 9000 §19.13.
    StreamDataBlocked(StreamDataBlocked),
    /// STREAMS_BLOCKED (0x16, 0x17), RFC 9000 §19.14.
    StreamsBlocked(StreamsBlocked),
    /// NEW_CONNECTION_ID (0x18), RFC 9000 §19.15.
    NewConnectionId(NewConnectionId),
    /// RETIRE_CONNECTION_ID (0x19), RFC 9000 §19.16.
    RetireConnectionId(RetireConnectionId),
    /// PATH_CHALLENGE (0x1a), RFC 9000 §19.17.
    PathChallenge(PathChallenge),
    /// PATH_RESPONSE (0x1b), RFC 9000 §19.18.
    PathResponse(PathResponse),
    /// CONNECTION_CLOSE for a QUIC-layer error (0x1c), RFC 9000 §19.19.
    ConnectionClose(ConnectionClose<'a>),
    /// CONNECTION_CLOSE for an application error (0x1d), RFC 9000 §19.19.
    ApplicationClose(ApplicationClose<'a>),
    /// HANDSHAKE_DONE (0x1e), RFC 9000 §19.20.
    HandshakeDone,
    /// DATAGRAM (0x30, 0x31), RFC 9221 §4.
    Datagram(Datagram<'a>),
    /// ACK_FREQUENCY (0xaf), draft-ietf-quic-ack-frequency-12 §4.
    AckFrequency(AckFrequency),
    /// IMMEDIATE_ACK (0x1f), draft-ietf-quic-ack-frequency-12 §5.
    ImmediateAck,
}

impl<'a> Frame<'a> {
    /// Decodes one frame from `r`, leaving `r` after it.
    ///
    /// Errors carry the RFC's code and, once the type is known, the frame
    /// type. Decoding never panics and allocates nothing.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self, TransportError> {
        let start = r.position();
        let ty = r
            .varint()
            .map_err(|_| TransportError::frame_encoding_error("truncated frame type"))?;
        let ty_len = r.position() - start;
        let ty = FrameType::from(ty);
        // RFC 9000 §12.4: "a frame type MUST use the shortest possible encoding
        // ... An endpoint MAY treat the receipt of a frame type that uses a
        // longer encoding than necessary as a connection error of type
        // PROTOCOL_VIOLATION." We do.
        if ty_len != ty.size() {
            return Err(
                TransportError::protocol_violation("frame type not minimally encoded")
                    .with_frame(ty.value()),
            );
        }
        Self::decode_body(r, ty).map_err(|e| e.with_frame(ty.value()))
    }

    fn decode_body(r: &mut Reader<'a>, ty: FrameType) -> Result<Self, TransportError> {
        Ok(match ty {
            FrameType::PADDING => {
                // Merge the run of PADDING bytes that follows.
                let run = padding::zero_run(r.peek_rest());
                r.skip(run)?;
                Self::Padding(1 + run)
            }
            FrameType::PING => Self::Ping,
            FrameType::ACK | FrameType::ACK_ECN => Self::Ack(Ack::decode(r, ty)?),
            FrameType::RESET_STREAM => Self::ResetStream(ResetStream::decode(r)?),
            FrameType::STOP_SENDING => Self::StopSending(StopSending::decode(r)?),
            FrameType::CRYPTO => Self::Crypto(Crypto::decode(r)?),
            FrameType::NEW_TOKEN => Self::NewToken(NewToken::decode(r)?),
            t if t.is_stream() => Self::Stream(Stream::decode(r, t)?),
            FrameType::MAX_DATA => Self::MaxData(MaxData::decode(r)?),
            FrameType::MAX_STREAM_DATA => Self::MaxStreamData(MaxStreamData::decode(r)?),
            FrameType::MAX_STREAMS_BIDI => Self::MaxStreams(MaxStreams::decode(r, Dir::Bi)?),
            FrameType::MAX_STREAMS_UNI => Self::MaxStreams(MaxStreams::decode(r, Dir::Uni)?),
            FrameType::DATA_BLOCKED => Self::DataBlocked(DataBlocked::decode(r)?),
            FrameType::STREAM_DATA_BLOCKED => {
                Self::StreamDataBlocked(StreamDataBlocked::decode(r)?)
            }
            FrameType::STREAMS_BLOCKED_BIDI => {
                Self::StreamsBlocked(StreamsBlocked::decode(r, Dir::Bi)?)
            }
            FrameType::STREAMS_BLOCKED_UNI => {
                Self::StreamsBlocked(StreamsBlocked::decode(r, Dir::Uni)?)
            }
            FrameType::NEW_CONNECTION_ID => Self::NewConnectionId(NewConnectionId::decode(r)?),
            FrameType::RETIRE_CONNECTION_ID => {
                Self::RetireConnectionId(RetireConnectionId::decode(r)?)
            }
            FrameType::PATH_CHALLENGE => Self::PathChallenge(PathChallenge::decode(r)?),
            FrameType::PATH_RESPONSE => Self::PathResponse(PathResponse::decode(r)?),
            FrameType::CONNECTION_CLOSE => Self::ConnectionClose(ConnectionClose::decode(r)?),
            FrameType::APPLICATION_CLOSE => Self::ApplicationClose(ApplicationClose::decode(r)?),
            FrameType::HANDSHAKE_DONE => Self::HandshakeDone,
            FrameType::DATAGRAM | FrameType::DATAGRAM_LEN => {
                Self::Datagram(Datagram::decode(r, ty)?)
            }
            FrameType::ACK_FREQUENCY => Self::AckFrequency(AckFrequency::decode(r)?),
            FrameType::IMMEDIATE_ACK => Self::ImmediateAck,
            // RFC 9000 §12.4: "An endpoint MUST treat the receipt of a frame of
            // unknown type as a connection error of type FRAME_ENCODING_ERROR."
            _ => return Err(TransportError::frame_encoding_error("unknown frame type")),
        })
    }

    /// The frame type this frame encodes as (for a decoded STREAM or
    /// DATAGRAM frame, possibly not the type it was received with, since
    /// encoding always writes a Length field).
    pub fn ty(&self) -> FrameType {
        match self {
            Self::Padding(_) => FrameType::PADDING,
            Self::Ping => FrameType::PING,
            Self::Ack(f) => f.ty(),
            Self::ResetStream(_) => FrameType::RESET_STREAM,
            Self::StopSending(_) => FrameType::STOP_SENDING,
            Self::Crypto(_) => FrameType::CRYPTO,
            Self::NewToken(_) => FrameType::NEW_TOKEN,
            Self::Stream(f) => f.ty(),
            Self::MaxData(_) => FrameType::MAX_DATA,
            Self::MaxStreamData(_) => FrameType::MAX_STREAM_DATA,
            Self::MaxStreams(f) => f.ty(),
            Self::DataBlocked(_) => FrameType::DATA_BLOCKED,
            Self::StreamDataBlocked(_) => FrameType::STREAM_DATA_BLOCKED,
            Self::StreamsBlocked(f) => f.ty(),
            Self::NewConnectionId(_) => FrameType::NEW_CONNECTION_ID,
            Self::RetireConnectionId(_) => FrameType::RETIRE_CONNECTION_ID,
            Self::PathChallenge(_) => FrameType::PATH_CHALLENGE,
            Self::PathResponse(_) => FrameType::PATH_RESPONSE,
            Self::ConnectionClose(_) => FrameType::CONNECTION_CLOSE,
            Self::ApplicationClose(_) => FrameType::APPLICATION_CLOSE,
            Self::HandshakeDone => FrameType::HANDSHAKE_DONE,
            Self::Datagram(f) => f.header().ty(),
            Self::AckFrequency(_) => FrameType::ACK_FREQUENCY,
            Self::ImmediateAck => FrameType::IMMEDIATE_ACK,
        }
    }

    /// Writes the frame with the shortest varints. STREAM and DATAGRAM
    /// frames get a Length field, so any frame may follow.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            Self::Padding(n) => buf.put_bytes(0, *n),
            Self::Ping | Self::HandshakeDone | Self::ImmediateAck => {
                self.ty().to_varint().encode(buf)
            }
            Self::Ack(f) => f.encode(buf),
            Self::ResetStream(f) => f.encode(buf),
            Self::StopSending(f) => f.encode(buf),
            Self::Crypto(f) => f.encode(buf),
            Self::NewToken(f) => f.encode(buf),
            Self::Stream(f) => f.encode(buf),
            Self::MaxData(f) => f.encode(buf),
            Self::MaxStreamData(f) => f.encode(buf),
            Self::MaxStreams(f) => f.encode(buf),
            Self::DataBlocked(f) => f.encode(buf),
            Self::StreamDataBlocked(f) => f.encode(buf),
            Self::StreamsBlocked(f) => f.encode(buf),
            Self::NewConnectionId(f) => f.encode(buf),
            Self::RetireConnectionId(f) => f.encode(buf),
            Self::PathChallenge(f) => f.encode(buf),
            Self::PathResponse(f) => f.encode(buf),
            Self::ConnectionClose(f) => f.encode(buf),
            Self::ApplicationClose(f) => f.encode(buf),
            Self::Datagram(f) => f.encode(buf),
            Self::AckFrequency(f) => f.encode(buf),
        }
    }

    /// Bytes [`Frame::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Padding(n) => *n,
            Self::Ping | Self::HandshakeDone | Self::ImmediateAck => self.ty().size(),
            Self::Ack(f) => f.encoded_len(),
            Self::ResetStream(f) => f.encoded_len(),
            Self::StopSending(f) => f.encoded_len(),
            Self::Crypto(f) => f.encoded_len(),
            Self::NewToken(f) => f.encoded_len(),
            Self::Stream(f) => f.encoded_len(),
            Self::MaxData(f) => f.encoded_len(),
            Self::MaxStreamData(f) => f.encoded_len(),
            Self::MaxStreams(f) => f.encoded_len(),
            Self::DataBlocked(f) => f.encoded_len(),
            Self::StreamDataBlocked(f) => f.encoded_len(),
            Self::StreamsBlocked(f) => f.encoded_len(),
            Self::NewConnectionId(f) => f.encoded_len(),
            Self::RetireConnectionId(f) => f.encoded_len(),
            Self::PathChallenge(f) => f.encoded_len(),
            Self::PathResponse(f) => f.encoded_len(),
            Self::ConnectionClose(f) => f.encoded_len(),
            Self::ApplicationClose(f) => f.encoded_len(),
            Self::Datagram(f) => f.encoded_len(),
            Self::AckFrequency(f) => f.encoded_len(),
        }
    }

    /// Whether this frame makes its packet ack-eliciting
    /// (see [`FrameType::is_ack_eliciting`]).
    pub fn is_ack_eliciting(&self) -> bool {
        self.ty().is_ack_eliciting()
    }
}

/// The frames of a packet payload, in order. Yields `Err` at the first
/// malformed frame and then stops.
///
/// An empty payload yields nothing; use [`check_not_empty`] first to apply
/// RFC 9000 §12.4's rule for packets with no frames.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    r: Reader<'a>,
    failed: bool,
}

impl<'a> Iter<'a> {
    /// An iterator over the frames in `payload`.
    pub fn new(payload: &'a [u8]) -> Self {
        Self {
            r: Reader::new(payload),
            failed: false,
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<Frame<'a>, TransportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.is_empty() {
            return None;
        }
        let frame = Frame::decode(&mut self.r);
        self.failed = frame.is_err();
        Some(frame)
    }
}

impl FusedIterator for Iter<'_> {}

/// Checks that a packet payload holds at least one frame.
///
/// RFC 9000 §12.4: "An endpoint MUST treat receipt of a packet containing no
/// frames as a connection error of type PROTOCOL_VIOLATION." Any non-empty
/// payload either holds a frame or fails to decode, so emptiness is the test.
pub fn check_not_empty(payload: &[u8]) -> Result<(), TransportError> {
    if payload.is_empty() {
        return Err(TransportError::protocol_violation(
            "packet contains no frames",
        ));
    }
    Ok(())
}

/// The largest `len` with `varint_size(len) + len <= avail`: how much
/// length-prefixed data fits in `avail` bytes. `None` if `avail` is 0.
fn max_len_prefixed(avail: usize) -> Option<usize> {
    const SIZES: [(usize, u64); 4] = [
        (1, (1 << 6) - 1),
        (2, (1 << 14) - 1),
        (4, (1 << 30) - 1),
        (8, VarInt::MAX.into_inner()),
    ];
    SIZES
        .iter()
        .filter(|(size, _)| avail >= *size)
        .map(|&(size, cap)| (avail - size).min(usize::try_from(cap).unwrap_or(usize::MAX)))
        .max()
}
