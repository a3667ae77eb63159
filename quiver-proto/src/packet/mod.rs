//! Packets: headers (RFC 9000 §17, RFC 8999), packet numbers (§17.1) and
//! the coalescing of packets in a datagram (§12.2).

mod datagram;
pub mod header;
mod number;

pub use datagram::{DatagramPacket, Packets};
pub use header::{Header, HeaderError, Parsed, PartialEncode, PartialPacket, UnsupportedVersion};
pub use number::TruncatedPacketNumber;

/// The type of a QUIC packet, independent of version (RFC 9369 §3.2 maps
/// the long-header type bits differently for v2).
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// Initial (long header), RFC 9000 §17.2.2.
    Initial,
    /// 0-RTT (long header), RFC 9000 §17.2.3.
    ZeroRtt,
    /// Handshake (long header), RFC 9000 §17.2.4.
    Handshake,
    /// Retry (long header), RFC 9000 §17.2.5.
    Retry,
    /// Version Negotiation, RFC 9000 §17.2.1.
    VersionNegotiation,
    /// 1-RTT (short header), RFC 9000 §17.3.1.
    OneRtt,
}

#[cfg(test)]
mod tests;
