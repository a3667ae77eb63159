//! Packet number spaces (RFC 9000 §12.3): per-space keys, packet numbers,
//! sent-packet records, received-packet tracking for ACKs, and the CRYPTO
//! stream.

use std::ops::Range;
use std::time::Instant;

use super::ack_frequency::{AckPolicy, reordering_needs_ack};
use super::crypto_stream::{CryptoRecv, CryptoSend};
use super::replay::ReplayWindow;
use super::sent::SentPackets;
use crate::crypto::Keys;
use crate::range_set::RangeSet;
pub(crate) use crate::recovery::PacketNumberSpace as SpaceId;

/// ACK ranges kept per space. RFC 9000 §13.2.4 lets a receiver limit them;
/// the oldest go first, and they are only ever re-acknowledged anyway.
const MAX_ACK_RANGES: usize = 64;

/// One packet number space.
#[derive(Debug)]
pub(crate) struct PacketSpace {
    /// Keys for Initial and Handshake; 1-RTT keys live in the connection.
    pub(crate) keys: Option<Keys>,
    /// Whether the space has been discarded (RFC 9001 §4.9).
    pub(crate) discarded: bool,

    // Sending.
    pub(crate) next_pn: u64,
    pub(crate) largest_acked: Option<u64>,
    pub(crate) sent: SentPackets,
    pub(crate) ack_eliciting_in_flight: u64,
    pub(crate) time_of_last_ack_eliciting: Option<Instant>,
    /// RFC 9002 Appendix A.2 `loss_time`.
    pub(crate) loss_time: Option<Instant>,
    /// Probe packets owed after a PTO (RFC 9002 §6.2.4).
    pub(crate) probes: u8,
    pub(crate) crypto_send: CryptoSend,

    // Receiving.
    pub(crate) crypto_recv: CryptoRecv,
    /// What we acknowledge; may forget ranges the peer saw acknowledged.
    pub(crate) received: RangeSet,
    /// What we processed, for duplicate detection (never forgets inside
    /// its window, RFC 9000 §12.3).
    pub(crate) processed: ReplayWindow,
    pub(crate) largest_received: Option<(u64, Instant)>,
    /// Ack-eliciting packets received since the last ACK we sent.
    pub(crate) unacked_eliciting: u64,
    /// Largest Acknowledged of the last ACK we sent ("Largest Acked" of
    /// draft-ietf-quic-ack-frequency §6.2).
    pub(crate) largest_ack_sent: Option<u64>,
    /// Anything received since the last ACK we sent.
    pub(crate) ack_pending: bool,
    /// Send an ACK in the next packet regardless of thresholds.
    pub(crate) ack_immediately: bool,
    /// ECN codepoints of the packets processed (ECT(0), ECT(1), CE), for
    /// ACK frames (RFC 9000 §13.4.1); reported once any was seen.
    pub(crate) ecn_received: [u64; 3],
    pub(crate) ecn_seen: bool,
    /// Whether the last packet processed was marked CE
    /// (draft-ietf-quic-ack-frequency §6.3).
    pub(crate) last_ce: bool,
    /// When a delayed ACK becomes due.
    pub(crate) ack_deadline: Option<Instant>,
    /// When we last sent an ACK of this space (draft-ietf-quic-ack-frequency
    /// §6.1).
    pub(crate) last_ack_sent_at: Option<Instant>,
}

impl PacketSpace {
    pub(crate) fn new(keys: Option<Keys>) -> Self {
        Self {
            keys,
            discarded: false,
            next_pn: 0,
            largest_acked: None,
            sent: SentPackets::default(),
            ack_eliciting_in_flight: 0,
            time_of_last_ack_eliciting: None,
            loss_time: None,
            probes: 0,
            crypto_send: CryptoSend::default(),
            crypto_recv: CryptoRecv::default(),
            received: RangeSet::with_max_ranges(MAX_ACK_RANGES),
            processed: ReplayWindow::default(),
            largest_received: None,
            unacked_eliciting: 0,
            largest_ack_sent: None,
            ack_pending: false,
            ack_immediately: false,
            ack_deadline: None,
            last_ack_sent_at: None,
            ecn_received: [0; 3],
            ecn_seen: false,
            last_ce: false,
        }
    }

    /// Takes the next packet number to send.
    pub(crate) fn take_pn(&mut self) -> u64 {
        let pn = self.next_pn;
        self.next_pn += 1;
        pn
    }

    /// Whether `pn` was already processed (a duplicate to drop, RFC 9000
    /// §12.3: "A receiver MUST discard a newly unprotected packet unless it
    /// is certain that it has not processed another packet with the same
    /// packet number"). Independent of the ACK ranges, which forget what
    /// the peer saw acknowledged (§13.2.4).
    pub(crate) fn is_duplicate(&self, pn: u64) -> bool {
        self.processed.is_duplicate(pn)
    }

    /// Records a received packet for acknowledgment (RFC 9000 §13.2).
    pub(crate) fn on_packet_received(
        &mut self,
        now: Instant,
        pn: u64,
        ack_eliciting: bool,
        policy: AckPolicy,
    ) {
        let out_of_order = self
            .largest_received
            .is_some_and(|(largest, _)| pn < largest || pn > largest + 1);
        self.received.insert_one(pn);
        self.processed.insert(pn);
        if self
            .largest_received
            .is_none_or(|(largest, _)| pn > largest)
        {
            self.largest_received = Some((pn, now));
        }
        self.ack_pending = true;
        if !ack_eliciting {
            return;
        }
        self.unacked_eliciting += 1;
        // RFC 9000 §13.2.1: Initial and Handshake ACKs are not delayed;
        // §13.2.2: ACK every second ack-eliciting packet; §13.2.1: "an
        // endpoint SHOULD generate and send an ACK frame without delay when
        // it receives an ack-eliciting packet ... with a packet number less
        // than another ack-eliciting packet that has been received, or ...
        // [that is] larger than the highest-numbered ack-eliciting packet
        // that has been received and there are missing packets between".
        // draft-ietf-quic-ack-frequency §6: after an ACK_FREQUENCY, ACK
        // once "The number of received ack-eliciting packets is greater
        // than the Ack-Eliciting Threshold" (RFC 9000's rule is threshold
        // 1), and on reordering per the Reordering Threshold (§6.2: 0 never,
        // 1 as RFC 9000, more by the reordering window).
        let reordered = match policy.reordering {
            0 => false,
            1 => out_of_order,
            // Only gaps can trigger: skip the walk while there are none.
            t => {
                (out_of_order || self.received.len() > 1)
                    && self.largest_received.is_some_and(|(largest, _)| {
                        reordering_needs_ack(&self.received, pn, largest, self.largest_ack_sent, t)
                    })
            }
        };
        if self.unacked_eliciting > policy.threshold || reordered {
            self.ack_immediately = true;
        } else if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now + policy.max_ack_delay);
        }
    }

    /// Whether an ACK should go out in the next packet of this space.
    pub(crate) fn wants_ack(&self, now: Instant) -> bool {
        self.ack_pending && (self.ack_immediately || self.ack_deadline.is_some_and(|d| d <= now))
    }

    /// An ACK was just written: reset the triggers.
    pub(crate) fn on_ack_sent(&mut self, now: Instant) {
        self.last_ack_sent_at = Some(now);
        self.largest_ack_sent = self.largest_received.map(|(pn, _)| pn);
        self.ack_pending = false;
        self.ack_immediately = false;
        self.unacked_eliciting = 0;
        self.ack_deadline = None;
    }

    /// The peer acknowledged an ACK of ours whose largest was `largest`:
    /// RFC 9000 §13.2.4 lets us stop reporting ranges below it.
    pub(crate) fn on_ack_of_ack(&mut self, largest: u64) {
        if self.received.len() > 1 {
            let keep_from = self
                .received
                .last()
                .map_or(largest, |r| r.start.min(largest));
            self.received.remove_below(keep_from);
        }
    }

    /// The ranges to acknowledge, largest first.
    pub(crate) fn ack_ranges(
        &self,
    ) -> impl Iterator<Item = std::ops::RangeInclusive<u64>> + Clone + '_ {
        self.received
            .iter()
            .rev()
            .map(|r: Range<u64>| r.start..=r.end - 1)
    }

    /// Drops every sent-packet record and timer (RFC 9002 §6.4: discarding
    /// keys discards the space's recovery state). Returns the bytes that
    /// were in flight, which the caller removes from its count.
    pub(crate) fn discard(&mut self) -> u64 {
        self.discarded = true;
        self.keys = None;
        let in_flight = self
            .sent
            .values()
            .filter(|p| p.in_flight)
            .map(|p| u64::from(p.size))
            .sum();
        self.sent.clear();
        self.ack_eliciting_in_flight = 0;
        self.time_of_last_ack_eliciting = None;
        self.loss_time = None;
        self.probes = 0;
        self.ack_pending = false;
        self.ack_deadline = None;
        in_flight
    }
}
