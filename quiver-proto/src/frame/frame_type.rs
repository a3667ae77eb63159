//! Frame type values (RFC 9000 §12.4 Table 3, RFC 9221 §4).

use std::fmt;

use crate::coding::{VarInt, VarIntBoundsExceeded};

/// The Frame Type field of a frame: a variable-length integer, so always
/// below 2^62. The known values are associated constants; values that carry
/// flags (ACK, STREAM, MAX_STREAMS, STREAMS_BLOCKED, CONNECTION_CLOSE,
/// DATAGRAM) have one constant per value.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameType(u64);

impl FrameType {
    /// PADDING (0x00), RFC 9000 §19.1.
    pub const PADDING: Self = Self(0x00);
    /// PING (0x01), RFC 9000 §19.2.
    pub const PING: Self = Self(0x01);
    /// ACK without ECN counts (0x02), RFC 9000 §19.3.
    pub const ACK: Self = Self(0x02);
    /// ACK with ECN counts (0x03), RFC 9000 §19.3.
    pub const ACK_ECN: Self = Self(0x03);
    /// RESET_STREAM (0x04), RFC 9000 §19.4.
    pub const RESET_STREAM: Self = Self(0x04);
    /// STOP_SENDING (0x05), RFC 9000 §19.5.
    pub const STOP_SENDING: Self = Self(0x05);
    /// CRYPTO (0x06), RFC 9000 §19.6.
    pub const CRYPTO: Self = Self(0x06);
    /// NEW_TOKEN (0x07), RFC 9000 §19.7.
    pub const NEW_TOKEN: Self = Self(0x07);
    /// STREAM with no OFF, LEN or FIN bit (0x08), RFC 9000 §19.8; see
    /// [`FrameType::stream`] for the others up to 0x0f.
    pub const STREAM: Self = Self(0x08);
    /// MAX_DATA (0x10), RFC 9000 §19.9.
    pub const MAX_DATA: Self = Self(0x10);
    /// MAX_STREAM_DATA (0x11), RFC 9000 §19.10.
    pub const MAX_STREAM_DATA: Self = Self(0x11);
    /// MAX_STREAMS for bidirectional streams (0x12), RFC 9000 §19.11.
    pub const MAX_STREAMS_BIDI: Self = Self(0x12);
    /// MAX_STREAMS for unidirectional streams (0x13), RFC 9000 §19.11.
    pub const MAX_STREAMS_UNI: Self = Self(0x13);
    /// DATA_BLOCKED (0x14), RFC 9000 §19.12.
    pub const DATA_BLOCKED: Self = Self(0x14);
    /// STREAM_DATA_BLOCKED (0x15), RFC 9000 §19.13.
    pub const STREAM_DATA_BLOCKED: Self = Self(0x15);
    /// STREAMS_BLOCKED for bidirectional streams (0x16), RFC 9000 §19.14.
    pub const STREAMS_BLOCKED_BIDI: Self = Self(0x16);
    /// STREAMS_BLOCKED for unidirectional streams (0x17), RFC 9000 §19.14.
    pub const STREAMS_BLOCKED_UNI: Self = Self(0x17);
    /// NEW_CONNECTION_ID (0x18), RFC 9000 §19.15.
    pub const NEW_CONNECTION_ID: Self = Self(0x18);
    /// RETIRE_CONNECTION_ID (0x19), RFC 9000 §19.16.
    pub const RETIRE_CONNECTION_ID: Self = Self(0x19);
    /// PATH_CHALLENGE (0x1a), RFC 9000 §19.17.
    pub const PATH_CHALLENGE: Self = Self(0x1a);
    /// PATH_RESPONSE (0x1b), RFC 9000 §19.18.
    pub const PATH_RESPONSE: Self = Self(0x1b);
    /// CONNECTION_CLOSE for QUIC-layer errors (0x1c), RFC 9000 §19.19.
    pub const CONNECTION_CLOSE: Self = Self(0x1c);
    /// CONNECTION_CLOSE for application errors (0x1d), RFC 9000 §19.19.
    pub const APPLICATION_CLOSE: Self = Self(0x1d);
    /// HANDSHAKE_DONE (0x1e), RFC 9000 §19.20.
    pub const HANDSHAKE_DONE: Self = Self(0x1e);
    /// DATAGRAM without a Length field (0x30), RFC 9221 §4.
    pub const DATAGRAM: Self = Self(0x30);
    /// DATAGRAM with a Length field (0x31), RFC 9221 §4.
    pub const DATAGRAM_LEN: Self = Self(0x31);
    /// IMMEDIATE_ACK (0x1f), draft-ietf-quic-ack-frequency-12 §5, §11.2.
    pub const IMMEDIATE_ACK: Self = Self(0x1f);
    /// ACK_FREQUENCY (0xaf), draft-ietf-quic-ack-frequency-12 §4, §11.2.
    pub const ACK_FREQUENCY: Self = Self(0xaf);

    /// The STREAM frame type with the given OFF (0x04), LEN (0x02) and FIN
    /// (0x01) bits (RFC 9000 §19.8).
    pub const fn stream(off: bool, len: bool, fin: bool) -> Self {
        Self(Self::STREAM.0 | (off as u64) << 2 | (len as u64) << 1 | fin as u64)
    }

    /// The numeric value.
    pub const fn value(self) -> u64 {
        self.0
    }

    /// The value as a varint; always in range.
    pub const fn to_varint(self) -> VarInt {
        VarInt::from_u64_unchecked(self.0)
    }

    /// Bytes the Frame Type field takes: always the shortest encoding
    /// (RFC 9000 §12.4: "a frame type MUST use the shortest possible encoding").
    pub const fn size(self) -> usize {
        VarInt::size_of(self.0)
    }

    /// Whether this is one of the eight STREAM types 0x08..=0x0f.
    pub const fn is_stream(self) -> bool {
        self.0 & !0x07 == Self::STREAM.0
    }

    /// The RFC's name for this frame type, if quiver knows it.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::PADDING => "PADDING",
            Self::PING => "PING",
            Self::ACK | Self::ACK_ECN => "ACK",
            Self::RESET_STREAM => "RESET_STREAM",
            Self::STOP_SENDING => "STOP_SENDING",
            Self::CRYPTO => "CRYPTO",
            Self::NEW_TOKEN => "NEW_TOKEN",
            t if t.is_stream() => "STREAM",
            Self::MAX_DATA => "MAX_DATA",
            Self::MAX_STREAM_DATA => "MAX_STREAM_DATA",
            Self::MAX_STREAMS_BIDI | Self::MAX_STREAMS_UNI => "MAX_STREAMS",
            Self::DATA_BLOCKED => "DATA_BLOCKED",
            Self::STREAM_DATA_BLOCKED => "STREAM_DATA_BLOCKED",
            Self::STREAMS_BLOCKED_BIDI | Self::STREAMS_BLOCKED_UNI => "STREAMS_BLOCKED",
            Self::NEW_CONNECTION_ID => "NEW_CONNECTION_ID",
            Self::RETIRE_CONNECTION_ID => "RETIRE_CONNECTION_ID",
            Self::PATH_CHALLENGE => "PATH_CHALLENGE",
            Self::PATH_RESPONSE => "PATH_RESPONSE",
            Self::CONNECTION_CLOSE | Self::APPLICATION_CLOSE => "CONNECTION_CLOSE",
            Self::HANDSHAKE_DONE => "HANDSHAKE_DONE",
            Self::DATAGRAM | Self::DATAGRAM_LEN => "DATAGRAM",
            Self::IMMEDIATE_ACK => "IMMEDIATE_ACK",
            Self::ACK_FREQUENCY => "ACK_FREQUENCY",
            _ => return None,
        })
    }

    /// Whether quiver can decode this frame type (RFC 9000 §19 and RFC 9221).
    pub fn is_known(self) -> bool {
        self.name().is_some()
    }
}

impl From<VarInt> for FrameType {
    fn from(v: VarInt) -> Self {
        Self(v.into_inner())
    }
}

impl TryFrom<u64> for FrameType {
    type Error = VarIntBoundsExceeded;
    fn try_from(x: u64) -> Result<Self, Self::Error> {
        VarInt::from_u64(x).map(Self::from)
    }
}

impl From<FrameType> for u64 {
    fn from(t: FrameType) -> Self {
        t.0
    }
}

impl From<FrameType> for VarInt {
    fn from(t: FrameType) -> Self {
        t.to_varint()
    }
}

impl fmt::Debug for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({:#04x})", self.0),
            None => write!(f, "unknown({:#x})", self.0),
        }
    }
}
