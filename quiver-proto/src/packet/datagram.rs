//! Splitting a UDP datagram into its coalesced packets (RFC 9000 §12.2).

use super::header::{self, HeaderError, Parsed};
use crate::ConnectionId;

/// One packet found in a datagram: where it starts and what its header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatagramPacket {
    /// Offset of the packet's first byte within the datagram.
    pub offset: usize,
    /// The header, offsets in it relative to `offset`.
    pub parsed: Parsed,
}

impl DatagramPacket {
    /// The packet's length within the datagram.
    pub fn len(&self) -> usize {
        match &self.parsed {
            Parsed::Packet(p) => p.len,
            // Nothing after an unknown version can be parsed.
            Parsed::UnsupportedVersion(_) => usize::MAX,
        }
    }

    /// Whether the packet is empty (never: every packet has a first byte).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Iterates over the packets coalesced in a datagram.
///
/// Stops after the first header it cannot read (there is no way to find
/// the next packet's start), after a packet that runs to the end of the
/// datagram (short header, Retry, Version Negotiation), and before a packet
/// whose Destination Connection ID differs from the first one's (RFC 9000
/// §12.2: receivers "SHOULD ignore any subsequent packets with a different
/// Destination Connection ID than the first packet in the datagram").
///
/// ```
/// use quiver_proto::packet::Packets;
/// // A short-header packet: fixed bit, 4-byte DCID, then protected bytes.
/// let mut d = vec![0x40, 1, 2, 3, 4];
/// d.extend_from_slice(&[0u8; 24]);
/// let packets: Vec<_> = Packets::new(&d, 4).collect();
/// assert_eq!(packets.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    datagram: &'a [u8],
    offset: usize,
    local_cid_len: usize,
    first_dst_cid: Option<ConnectionId>,
    accept_fixed_bit_zero: bool,
}

impl<'a> Packets<'a> {
    /// Packets of `datagram`; `local_cid_len` is the length of the
    /// connection IDs this endpoint issues (needed for short headers).
    pub fn new(datagram: &'a [u8], local_cid_len: usize) -> Self {
        Self {
            datagram,
            offset: 0,
            local_cid_len,
            first_dst_cid: None,
            accept_fixed_bit_zero: false,
        }
    }

    /// Also reads packets whose fixed bit is 0 (RFC 9287 §3, for an
    /// endpoint that advertised grease_quic_bit, or a wire inspector).
    pub fn accept_fixed_bit_zero(mut self, accept: bool) -> Self {
        self.accept_fixed_bit_zero = accept;
        self
    }
}

impl Iterator for Packets<'_> {
    type Item = Result<DatagramPacket, HeaderError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset >= self.datagram.len() {
            return None;
        }
        let offset = self.offset;
        let parsed = match header::decode_with(
            &self.datagram[offset..],
            self.local_cid_len,
            self.accept_fixed_bit_zero,
        ) {
            Ok(p) => p,
            Err(e) => {
                self.offset = self.datagram.len();
                return Some(Err(e));
            }
        };
        if let Parsed::Packet(p) = &parsed {
            match self.first_dst_cid {
                None => self.first_dst_cid = Some(p.dst_cid),
                Some(first) if first != p.dst_cid => {
                    self.offset = self.datagram.len();
                    return None;
                }
                Some(_) => {}
            }
        }
        let packet = DatagramPacket { offset, parsed };
        self.offset = offset.saturating_add(packet.len()).min(self.datagram.len());
        Some(Ok(packet))
    }
}
