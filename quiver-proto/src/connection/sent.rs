//! What the connection remembers about each packet it sent: enough to
//! drive loss detection and congestion control (RFC 9002 §A.1) and to send
//! again whatever the packet carried that must be retransmitted (RFC 9000
//! §13.3) — never the packet itself.

use std::ops::Range;
use std::time::Instant;

/// A sent packet awaiting acknowledgment (RFC 9002 Appendix A.1.1).
#[derive(Debug, Clone)]
pub(crate) struct SentPacket {
    pub(crate) time_sent: Instant,
    /// Bytes of the packet, for bytes in flight.
    pub(crate) size: u16,
    pub(crate) ack_eliciting: bool,
    /// Counted in bytes in flight (ack-eliciting or padded, RFC 9002 §2).
    pub(crate) in_flight: bool,
    /// The largest packet number acknowledged by an ACK in this packet: once
    /// the peer acknowledges it, we stop repeating those ranges (§13.2.4).
    pub(crate) largest_ack: Option<u64>,
    /// A path MTU probe: its loss is not congestion (RFC 9000 §14.4).
    pub(crate) mtu_probe: bool,
    pub(crate) retransmits: Retransmits,
}

/// The retransmittable content of a packet (RFC 9000 §13.3).
#[derive(Debug, Clone, Default)]
pub(crate) struct Retransmits {
    /// CRYPTO stream ranges.
    pub(crate) crypto: Option<Range<u64>>,
    /// HANDSHAKE_DONE (§13.3: "retransmitted until acknowledged").
    pub(crate) handshake_done: bool,
    /// Sequence numbers of NEW_CONNECTION_ID frames sent.
    pub(crate) new_cids: Vec<u64>,
    /// Sequence numbers of RETIRE_CONNECTION_ID frames sent.
    pub(crate) retire_cids: Vec<u64>,
    /// Stream data and stream control frames.
    pub(crate) stream: super::streams_glue::StreamRetransmits,
}
