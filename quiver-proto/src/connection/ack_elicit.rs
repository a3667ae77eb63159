//! Eliciting a prompt ACK from a peer that delays its ACKs, by skipping a
//! packet number.
//!
//! A receiver acknowledges "without delay" a packet that arrives after a
//! gap in the packet numbers (RFC 9000 §13.2.1) and may otherwise wait for
//! several ack-eliciting packets or its max_ack_delay: RFC 9000 §13.2.2
//! asks for an ACK every second packet only as a SHOULD, and some stacks
//! wait for ten (s2n-quic). A sender whose congestion window holds fewer
//! packets than that sends its window and waits out the peer's delay,
//! every round trip: measured through 5 ms each way and 5% loss to an
//! s2n-quic client, quiver's CUBIC server took 4.6–5.5 s for 1 MB and s2n's
//! own server, which skips packet numbers, 2.8–3.1 s.
//!
//! So when an ACK arrives while the window was full and small, the next
//! 1-RTT packet skips a number: the first packet of the new flight then
//! follows a gap and the peer acknowledges at once (RFC 9002 §6.2.4 uses
//! the same device for probes: "it can skip a packet number to eliminate
//! the acknowledgment delay"). Peers that take ACK_FREQUENCY and
//! IMMEDIATE_ACK (they advertised `min_ack_delay`) are asked that way
//! instead (`ack_frequency.rs`).
//!
//! The numbers skipped are remembered: an ACK of one is an ACK of a packet
//! never sent, answered with PROTOCOL_VIOLATION (RFC 9000 §21.4, the
//! optimistic-ACK check), and loss detection's packet threshold does not
//! count them (RFC 9002 Appendix A.10 assumes no gaps the sender made).

use super::Connection;
use super::spaces::SpaceId;
use crate::TransportError;
use crate::frame::Ack;

/// Skipped numbers remembered: enough for loss detection, which looks a few
/// packets below the largest acknowledged, and for the optimistic-ACK check
/// over the last round trips (at most one skip per round trip).
const REMEMBERED: usize = 16;

/// Congestion window, in full-sized packets, from which no number is
/// skipped: a window of this many packets draws ACKs from receivers that
/// wait for up to ten ack-eliciting packets (s2n-quic) as it is sent.
const MAX_CWND_PACKETS: u64 = 16;

/// The application space's skipped packet numbers.
#[derive(Debug, Default)]
pub(crate) struct SkippedNumbers {
    /// Oldest first, so ascending (a few numbers: a `Vec` that shifts is
    /// simpler than a ring, and a slice is what loss detection takes).
    numbers: Vec<u64>,
    /// The next 1-RTT packet skips a number.
    armed: bool,
}

impl SkippedNumbers {
    fn record(&mut self, pn: u64) {
        if self.numbers.len() == REMEMBERED {
            self.numbers.remove(0);
        }
        self.numbers.push(pn);
    }

    /// Whether a number in `lo..=hi` was skipped.
    fn any_in(&self, lo: u64, hi: u64) -> bool {
        self.numbers.iter().any(|&pn| lo <= pn && pn <= hi)
    }

    /// The numbers skipped, ascending (for
    /// [`crate::recovery::detect_lost_skipping`]).
    pub(crate) fn sorted(&self) -> &[u64] {
        &self.numbers
    }
}

impl Connection {
    /// Before an ACK of the application space is processed: whether the
    /// next 1-RTT packet should skip a number, if the ACK frees room (the
    /// window was full and small, and the peer cannot be asked for prompt
    /// ACKs with ACK_FREQUENCY).
    pub(super) fn ack_eliciting_skip_due(&self) -> bool {
        if !self.config.elicit_acks || !self.handshake_confirmed {
            return false;
        }
        if self
            .peer_params
            .as_ref()
            .is_none_or(|p| p.min_ack_delay.is_some())
        {
            return false;
        }
        let mss = u64::from(self.max_udp_payload.max(1));
        let cwnd = self.cc.window();
        // Window-limited: no room for another full-sized packet.
        cwnd < MAX_CWND_PACKETS * mss && self.bytes_in_flight + mss > cwnd
    }

    /// An ACK for which [`ack_eliciting_skip_due`] held acknowledged new
    /// packets: the next 1-RTT packet skips a number.
    ///
    /// [`ack_eliciting_skip_due`]: Self::ack_eliciting_skip_due
    pub(super) fn arm_ack_eliciting_skip(&mut self) {
        self.skipped.armed = true;
    }

    /// Opening a packet of `space`: takes a number to skip first, if armed.
    pub(super) fn take_armed_skip(&mut self, space: SpaceId) {
        if space != SpaceId::ApplicationData || !std::mem::take(&mut self.skipped.armed) {
            return;
        }
        let pn = self.space_mut(space).take_pn();
        self.skipped.record(pn);
        self.stats.packet_numbers_skipped += 1;
    }

    /// Acknowledges 1-RTT packets as a receiver that waits for
    /// `threshold + 1` ack-eliciting packets (or its max_ack_delay) does,
    /// without the peer having asked for it with ACK_FREQUENCY: s2n-quic
    /// waits for 10. Exists so tests can play such a peer; never use it
    /// otherwise.
    #[doc(hidden)]
    pub fn delay_acks_for_test(&mut self, threshold: u64) {
        self.ack_frequency.policy.threshold = threshold;
    }

    /// RFC 9000 §21.4: "An endpoint can then immediately close the
    /// connection with a connection error of type PROTOCOL_VIOLATION" when
    /// the peer acknowledges a packet number it skipped.
    pub(super) fn check_ack_of_skipped(&self, ack: &Ack<'_>) -> Result<(), TransportError> {
        if self.skipped.numbers.is_empty() {
            return Ok(());
        }
        if ack
            .ranges()
            .any(|r| self.skipped.any_in(*r.start(), *r.end()))
        {
            return Err(
                TransportError::protocol_violation("ACK of a skipped packet number")
                    .with_frame(0x02),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_latest_numbers_in_order() {
        let mut s = SkippedNumbers::default();
        for pn in (0..40).map(|i| i * 7) {
            s.record(pn);
        }
        let kept: Vec<u64> = (24..40).map(|i| i * 7).collect();
        assert_eq!(s.sorted(), &kept[..]);
        assert!(s.any_in(24 * 7, 24 * 7));
        assert!(s.any_in(24 * 7 + 1, 25 * 7));
        assert!(!s.any_in(24 * 7 + 1, 25 * 7 - 1));
        assert!(!s.any_in(0, 23 * 7));
    }
}
