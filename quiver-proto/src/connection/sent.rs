//! What the connection remembers about each packet it sent: enough to
//! drive loss detection and congestion control (RFC 9002 §A.1) and to send
//! again whatever the packet carried that must be retransmitted (RFC 9000
//! §13.3) — never the packet itself.

use std::collections::VecDeque;
use std::ops::{Range, RangeInclusive};
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
    /// Sent marked ECT(0) (RFC 9000 §13.4.2.1 validates reports by it).
    pub(crate) ecn: bool,
    /// The path's delivery state when it was sent, for delivery-rate
    /// samples (draft-ietf-ccwg-bbr §4.1.2.1.2); set by `on_packet_sent`.
    pub(crate) delivery: crate::congestion::PacketDelivery,
    pub(crate) retransmits: Retransmits,
}

/// The retransmittable content of a packet (RFC 9000 §13.3).
#[derive(Debug, Clone, Default)]
pub(crate) struct Retransmits {
    /// CRYPTO stream ranges.
    pub(crate) crypto: Option<Range<u64>>,
    /// HANDSHAKE_DONE (§13.3: "retransmitted until acknowledged").
    pub(crate) handshake_done: bool,
    /// NEW_TOKEN (§13.3: retransmitted if the packet is lost).
    pub(crate) new_token: bool,
    /// Sequence numbers of NEW_CONNECTION_ID frames sent.
    pub(crate) new_cids: Vec<u64>,
    /// Sequence numbers of RETIRE_CONNECTION_ID frames sent.
    pub(crate) retire_cids: Vec<u64>,
    /// Sequence number of an ACK_FREQUENCY frame sent (draft §4).
    pub(crate) ack_frequency: Option<u64>,
    /// Stream data and stream control frames.
    pub(crate) stream: super::streams_glue::StreamRetransmits,
}

/// A space's sent packets awaiting acknowledgment, by packet number.
///
/// Packet numbers only grow (RFC 9000 §12.3), so the records sit in a ring
/// indexed by `pn - base`: sending appends, and acknowledgments, mostly of
/// the oldest packets, empty slots from the front. Neither allocates once
/// the ring has grown to the window, nor shifts records around as a
/// B-tree's nodes do.
#[derive(Debug, Default)]
pub(crate) struct SentPackets {
    /// Packet number of `slots[0]`.
    base: u64,
    /// `None` for packets acknowledged, lost, or never recorded; the front
    /// slot is always occupied.
    slots: VecDeque<Option<SentPacket>>,
}

impl SentPackets {
    /// Records packet `pn`, above every packet recorded so far.
    pub(crate) fn insert(&mut self, pn: u64, packet: SentPacket) {
        if self.slots.is_empty() {
            self.base = pn;
        }
        let Some(index) = pn
            .checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok())
        else {
            debug_assert!(false, "packet numbers only grow");
            return;
        };
        if index < self.slots.len() {
            debug_assert!(false, "packet numbers only grow");
            return;
        }
        self.slots.resize_with(index, || None);
        self.slots.push_back(Some(packet));
    }

    /// Takes packet `pn`'s record.
    pub(crate) fn remove(&mut self, pn: u64) -> Option<SentPacket> {
        let index = usize::try_from(pn.checked_sub(self.base)?).ok()?;
        let packet = self.slots.get_mut(index)?.take()?;
        if index == 0 {
            while matches!(self.slots.front(), Some(None)) {
                self.slots.pop_front();
                self.base += 1;
            }
        }
        Some(packet)
    }

    /// Takes the records of the packets in `range`, appending them to
    /// `out` in increasing packet-number order.
    pub(crate) fn remove_range(
        &mut self,
        range: RangeInclusive<u64>,
        out: &mut Vec<(u64, SentPacket)>,
    ) {
        let end = self.base + self.slots.len() as u64;
        let (from, to) = (
            (*range.start()).max(self.base),
            range.end().saturating_add(1).min(end),
        );
        for pn in from..to {
            if let Some(p) = self.remove(pn) {
                out.push((pn, p));
            }
        }
    }

    /// The records of packets up to `last`, in increasing order.
    pub(crate) fn up_to(&self, last: u64) -> impl Iterator<Item = (u64, &SentPacket)> + '_ {
        let count = last.checked_sub(self.base).map_or(0, |n| {
            usize::try_from(n.saturating_add(1)).unwrap_or(usize::MAX)
        });
        let base = self.base;
        self.slots
            .iter()
            .take(count)
            .enumerate()
            .filter_map(move |(i, p)| p.as_ref().map(|p| (base + i as u64, p)))
    }

    /// Every record, in increasing packet-number order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &SentPacket> + '_ {
        self.slots.iter().flatten()
    }

    pub(crate) fn clear(&mut self) {
        self.slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(t: Instant, size: u16) -> SentPacket {
        SentPacket {
            time_sent: t,
            size,
            ack_eliciting: true,
            in_flight: true,
            largest_ack: None,
            mtu_probe: false,
            ecn: false,
            delivery: crate::congestion::PacketDelivery::new(t),
            retransmits: Retransmits::default(),
        }
    }

    fn pns(s: &SentPackets) -> Vec<u64> {
        s.up_to(u64::MAX).map(|(pn, _)| pn).collect()
    }

    #[test]
    fn records_come_back_by_packet_number_with_gaps_and_holes() {
        let t = crate::connection::tests::epoch();
        let mut s = SentPackets::default();
        for pn in [3, 4, 5, 8, 9] {
            s.insert(pn, packet(t, pn as u16));
        }
        assert_eq!(pns(&s), [3, 4, 5, 8, 9]);
        assert!(s.remove(6).is_none(), "a skipped number");
        assert!(s.remove(2).is_none(), "below the first");
        assert_eq!(s.remove(4).map(|p| p.size), Some(4));
        assert!(s.remove(4).is_none(), "taken once");
        let mut out = Vec::new();
        s.remove_range(0..=5, &mut out);
        assert_eq!(out.iter().map(|(pn, _)| *pn).collect::<Vec<_>>(), [3, 5]);
        assert_eq!(pns(&s), [8, 9]);
        assert_eq!(s.up_to(8).count(), 1);
        assert_eq!(s.up_to(7).count(), 0);
        s.insert(12, packet(t, 12));
        assert_eq!(s.values().map(|p| p.size).collect::<Vec<_>>(), [8, 9, 12]);
        out.clear();
        s.remove_range(9..=100, &mut out);
        assert_eq!(out.iter().map(|(pn, _)| *pn).collect::<Vec<_>>(), [9, 12]);
        assert_eq!(pns(&s), [8]);
        s.clear();
        assert_eq!(pns(&s), [] as [u64; 0]);
        s.insert(20, packet(t, 20));
        assert_eq!(pns(&s), [20]);
    }
}
