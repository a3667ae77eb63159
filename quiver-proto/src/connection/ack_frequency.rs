//! The QUIC Acknowledgment Frequency extension
//! (draft-ietf-quic-ack-frequency-12), both halves.
//!
//! Receiver: once we advertised `min_ack_delay` (draft §3), the peer's
//! latest ACK_FREQUENCY (by Sequence Number, §4) sets how many
//! ack-eliciting packets we may leave unacknowledged, our ACK timer and the
//! reordering we tolerate before acknowledging at once (§6, §6.2);
//! IMMEDIATE_ACK (§5) makes us acknowledge at once.
//!
//! Sender: when the peer advertised `min_ack_delay` and our congestion
//! window is large, we ask it for fewer ACKs (§8), add IMMEDIATE_ACK to PTO
//! probes (§7), and compute the PTO with the largest max_ack_delay the peer
//! may be using (§7).

use std::time::{Duration, Instant};

use super::Connection;
use super::spaces::SpaceId;
use crate::TransportError;
use crate::coding::VarInt;
use crate::frame::{AckFrequency, FrameType};
use crate::range_set::RangeSet;

/// Congestion window, in full-sized packets, below which we leave the
/// peer's RFC 9000 defaults alone. With fewer packets per RTT, one ACK
/// every other packet costs little, and slow start and loss recovery need
/// every ACK they can get (draft §8.1.1).
const MIN_CWND_PACKETS: u64 = 16;

/// Largest Ack-Eliciting Threshold we request: one ACK per 11 packets at
/// most. Google's QUIC sends one ACK per 10 packets (or 1/4 RTT) by
/// default; beyond ~10 the saving in ACK packets is small (already ~5x
/// fewer than every other packet) while loss detection and cwnd growth
/// get burstier.
const MAX_ACK_ELICITING_THRESHOLD: u64 = 10;

/// Largest Requested Max Ack Delay: the RFC 9000 §18.2 default
/// max_ack_delay. Together with srtt/4 (below) this keeps at least ~4 ACKs
/// per RTT on slow paths and never waits longer than a default receiver.
const MAX_REQUESTED_ACK_DELAY: Duration = Duration::from_millis(25);

/// Requested Max Ack Delay values of 2^14 ms or more are invalid (draft §4,
/// RFC 9000 §18.2).
const MAX_ACK_DELAY_LIMIT: Duration = Duration::from_millis(1 << 14);

/// What the receiver does, as set by the peer's ACK_FREQUENCY (draft §4);
/// RFC 9000 §13.2 behaviour until one arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckPolicy {
    /// Ack-eliciting packets we may receive without acknowledging: an ACK
    /// goes out once more than this many arrived (draft §6).
    pub(crate) threshold: u64,
    /// How long an ACK may wait (our max_ack_delay, draft §4).
    pub(crate) max_ack_delay: Duration,
    /// Reordering tolerated before an immediate ACK (draft §6.2); 1 is
    /// RFC 9000 §13.2.1, 0 disables immediate ACKs on reordering.
    pub(crate) reordering: u64,
}

impl AckPolicy {
    /// RFC 9000 §13.2: ACK every second ack-eliciting packet (threshold 1,
    /// draft §4) and every reordered one (reordering 1).
    pub(crate) fn default_with_delay(max_ack_delay: Duration) -> Self {
        Self {
            threshold: 1,
            max_ack_delay,
            reordering: 1,
        }
    }
}

/// Per-connection state of the extension.
#[derive(Debug)]
pub(crate) struct AckFrequencyState {
    /// Receiver: what the peer asked for.
    pub(crate) policy: AckPolicy,
    /// Receiver: the largest Sequence Number processed (draft §4).
    recv_sequence: Option<u64>,
    /// Sender: next Sequence Number ("monotonically increasing", §4).
    next_sequence: u64,
    /// Sender: an ACK_FREQUENCY frame waits to be sent.
    pending: Option<AckFrequency>,
    /// Sender: the sequence number, delay and threshold of the frame in
    /// flight.
    in_flight: Option<(u64, Duration, u64)>,
    /// Sender: the Ack-Eliciting Threshold the peer acknowledged last.
    acked_threshold: u64,
    /// Sender: the peer's max_ack_delay as last acknowledged; `None` is its
    /// transport parameter.
    acked_delay: Option<Duration>,
    /// Sender: what we last requested, (threshold, delay).
    requested: Option<(u64, Duration)>,
    /// Sender: when we last considered an update (at most once per RTT,
    /// draft §8.1).
    last_update: Option<Instant>,
    /// Sender: packets declared lost as of the last update.
    lost_at_update: u64,
    /// Sender: an IMMEDIATE_ACK goes in the next 1-RTT packet (§8.4,
    /// after our own migration).
    pub(crate) immediate_ack_pending: bool,
}

impl AckFrequencyState {
    pub(crate) fn new(max_ack_delay: Duration) -> Self {
        Self {
            policy: AckPolicy::default_with_delay(max_ack_delay),
            recv_sequence: None,
            next_sequence: 0,
            pending: None,
            in_flight: None,
            acked_delay: None,
            acked_threshold: 1,
            requested: None,
            last_update: None,
            lost_at_update: 0,
            immediate_ack_pending: false,
        }
    }

    /// Sender: whether an ACK_FREQUENCY frame is queued.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Sender: takes the queued frame if it fits in `room` bytes.
    pub(crate) fn take_pending(&mut self, room: usize) -> Option<AckFrequency> {
        let f = self.pending.filter(|f| f.encoded_len() <= room)?;
        self.pending = None;
        let delay = Duration::from_micros(f.request_max_ack_delay.into_inner());
        self.in_flight = Some((
            f.sequence.into_inner(),
            delay,
            f.ack_eliciting_threshold.into_inner(),
        ));
        Some(f)
    }

    /// Sender: the packet carrying ACK_FREQUENCY `seq` was acknowledged:
    /// its delay is now the peer's (draft §7).
    pub(crate) fn on_acked(&mut self, seq: u64) {
        if let Some((s, delay, threshold)) = self.in_flight
            && s == seq
        {
            self.acked_delay = Some(delay);
            self.acked_threshold = threshold;
            self.in_flight = None;
        }
    }

    /// Sender: the packet carrying ACK_FREQUENCY `seq` was lost. Draft §4:
    /// the sender "is encouraged to send another ACK_FREQUENCY frame"; the
    /// next update computes a fresh one with a new sequence number.
    pub(crate) fn on_lost(&mut self, seq: u64) {
        if self.in_flight.is_some_and(|(s, _, _)| s == seq) {
            self.in_flight = None;
            self.requested = None;
            self.last_update = None;
        }
    }

    /// Sender: whether we asked the peer to change its ACK behaviour (a
    /// request in flight, or acknowledged and not back to the defaults).
    pub(crate) fn changed_peer_acks(&self) -> bool {
        self.in_flight.is_some() || self.acked_threshold != 1
    }

    /// The max_ack_delay to use for the PTO: draft §7, "the endpoint MUST
    /// use the greater of the current max_ack_delay and the value that is
    /// in flight".
    pub(crate) fn peer_max_ack_delay(&self, transport_param: Duration) -> Duration {
        let current = self.acked_delay.unwrap_or(transport_param);
        self.in_flight
            .map_or(current, |(_, delay, _)| current.max(delay))
    }
}

/// Whether a received ack-eliciting packet `pn` calls for an immediate ACK
/// under Reordering Threshold `threshold` > 1 (draft §6.2): it lies at or
/// below Largest Acked - threshold, or the smallest Unreported Missing
/// packet is `threshold` or more below Largest Unacked.
pub(crate) fn reordering_needs_ack(
    received: &RangeSet,
    pn: u64,
    largest_unacked: u64,
    largest_acked: Option<u64>,
    threshold: u64,
) -> bool {
    if largest_acked.is_some_and(|la| la >= threshold && pn <= la - threshold) {
        return true;
    }
    // Packets above Largest Reported Missing (Largest Acked - threshold)
    // and below Largest Unacked that were not received.
    let from = largest_acked.map_or(0, |la| (la + 1).saturating_sub(threshold));
    let from = from.max(received.min().unwrap_or(0));
    let mut next = from;
    for r in received.iter() {
        if r.end <= next {
            continue;
        }
        if r.start > next {
            break; // `next` is missing
        }
        next = r.end;
    }
    next < largest_unacked && largest_unacked - next >= threshold
}

impl Connection {
    /// Receiver: an ACK_FREQUENCY frame (draft §4).
    pub(super) fn on_ack_frequency_frame(&mut self, f: AckFrequency) -> Result<(), TransportError> {
        let Some(min) = self.local_params.min_ack_delay else {
            return Err(not_negotiated(FrameType::ACK_FREQUENCY));
        };
        // draft §4: a Requested Max Ack Delay of 2^14 ms or more, or "smaller
        // than the min_ack_delay advertised by the peer" is invalid; "Receipt
        // of an invalid value MUST be treated as a connection error of type
        // PROTOCOL_VIOLATION."
        let delay = Duration::from_micros(f.request_max_ack_delay.into_inner());
        if delay >= MAX_ACK_DELAY_LIMIT || delay < min {
            return Err(
                TransportError::protocol_violation("invalid Requested Max Ack Delay")
                    .with_frame(FrameType::ACK_FREQUENCY.value()),
            );
        }
        // draft §4: "A receiving endpoint MUST ignore a received
        // ACK_FREQUENCY frame unless the Sequence Number value in the frame
        // is greater than the largest processed value."
        let seq = f.sequence.into_inner();
        if self.ack_frequency.recv_sequence.is_some_and(|s| seq <= s) {
            return Ok(());
        }
        self.ack_frequency.recv_sequence = Some(seq);
        // draft §4: "the endpoint SHOULD update its max_ack_delay".
        self.ack_frequency.policy = AckPolicy {
            threshold: f.ack_eliciting_threshold.into_inner(),
            max_ack_delay: delay,
            reordering: f.reordering_threshold.into_inner(),
        };
        // A shorter timer applies to the ACK already waiting.
        let s = self.space_mut(SpaceId::ApplicationData);
        if let Some(deadline) = s.ack_deadline
            && let Some((_, at)) = s.largest_received
        {
            s.ack_deadline = Some(deadline.min(at + delay));
        }
        Ok(())
    }

    /// Receiver: an IMMEDIATE_ACK frame (draft §5: "An endpoint SHOULD send
    /// a packet containing an ACK frame immediately").
    pub(super) fn on_immediate_ack_frame(&mut self) -> Result<(), TransportError> {
        if self.local_params.min_ack_delay.is_none() {
            return Err(not_negotiated(FrameType::IMMEDIATE_ACK));
        }
        self.space_mut(SpaceId::ApplicationData).ack_immediately = true;
        Ok(())
    }

    /// Whether the peer accepts ACK_FREQUENCY and IMMEDIATE_ACK (draft §3)
    /// and we are configured to send them.
    pub(super) fn ack_frequency_enabled(&self) -> bool {
        self.config.ack_frequency
            && self.handshake_complete
            && self
                .peer_params
                .as_ref()
                .is_some_and(|p| p.min_ack_delay.is_some())
    }

    /// The peer's max_ack_delay for PTO and RTT computations (RFC 9002
    /// §5.3, §6.2.1), as changed by our ACK_FREQUENCY frames (draft §7).
    pub(super) fn peer_max_ack_delay(&self) -> Duration {
        let tp = self
            .peer_params
            .as_ref()
            .map_or(Duration::from_millis(25), |p| p.max_ack_delay);
        self.ack_frequency.peer_max_ack_delay(tp)
    }

    /// Sender: after an ACK, decides whether to ask the peer for another
    /// ACK frequency (draft §8.1: "not necessary to send an ACK_FREQUENCY
    /// frame more than once per RTT").
    pub(super) fn ack_frequency_update(&mut self, now: Instant) {
        if !self.ack_frequency_enabled() {
            return;
        }
        let srtt = self.rtt.smoothed_rtt();
        let af = &self.ack_frequency;
        if af.pending.is_some()
            || af.in_flight.is_some()
            || af.last_update.is_some_and(|t| now < t + srtt)
        {
            return;
        }
        let Some(peer) = self.peer_params.as_ref() else {
            return;
        };
        let peer_min = peer.min_ack_delay.unwrap_or_default();
        let mss = u64::from(self.max_udp_payload.max(1));
        let cwnd_packets = self.cc.window() / mss;
        // draft §8.1: "A sender needs to be responsive to notifications of
        // congestion, such as a packet loss". While packets were lost in
        // the last round trip we want every ACK: loss recovery and the
        // controller's loss-rate checks (BBRv3 measures loss per ACK, and
        // under 5% random loss decimated ACKs halved its goodput in
        // quiver-sim's bbr tests) need the detail. Decimation returns once
        // a round trip passes without loss.
        let lost = self.stats.packets_lost;
        let recent_loss = lost > self.ack_frequency.lost_at_update;
        self.ack_frequency.lost_at_update = lost;
        // draft §8.4: after a path change the RTT estimator starts again;
        // until the new path gave a sample, nothing to base a request on:
        // the defaults (which `on_path_change` already asked for).
        let rtt_unknown = !self.rtt.has_sample();
        let (threshold, delay) = if rtt_unknown {
            // RFC 9000 defaults: threshold 1, the advertised max_ack_delay.
            (1, peer.max_ack_delay)
        } else if cwnd_packets < MIN_CWND_PACKETS || recent_loss {
            // An ACK every other packet, as RFC 9000 §13.2.2 has it, but
            // no longer the advertised max_ack_delay for a lone packet:
            // srtt/4 (draft §8.1: "no more than the estimated round trip
            // time"), never more than the peer's own max_ack_delay. The
            // PTO includes this delay (RFC 9002 §6.2.1, draft §7), and
            // small windows under loss are where PTOs happen: when the
            // last packets of a window or their ACK are lost, nothing
            // else is in flight to reveal it. With the 25 ms default a
            // loopback connection at 2% loss spent most of its time
            // waiting for probe timeouts (PTO ≈ 26 ms for an RTT of
            // 0.05 ms).
            let delay = (srtt / 4).min(peer.max_ack_delay).max(peer_min);
            (1, delay)
        } else {
            // draft §8.1: the threshold no larger than the packets in the
            // congestion window; a quarter of it leaves ~4 ACKs per window
            // to clock the sender. The delay: srtt/4 (§8.1: smoothed_rtt,
            // not min_rtt), again ~4 ACKs per RTT, capped at 25 ms and never
            // below the peer's min_ack_delay (§4: smaller is invalid).
            let threshold = (cwnd_packets / 4).clamp(1, MAX_ACK_ELICITING_THRESHOLD);
            let delay = (srtt / 4).min(MAX_REQUESTED_ACK_DELAY).max(peer_min);
            (threshold, delay)
        };
        self.ack_frequency.last_update = Some(now);
        let current = self
            .ack_frequency
            .requested
            .unwrap_or((1, peer.max_ack_delay));
        // Update on a new threshold, or a delay off by more than a quarter.
        let delay_changed = delay.abs_diff(current.1) > current.1 / 4;
        if threshold == current.0 && !delay_changed {
            return;
        }
        self.queue_ack_frequency(threshold, delay);
    }

    /// Sender: queues an ACK_FREQUENCY frame asking for `threshold` and
    /// `delay`, replacing one not yet sent (draft §4: the newest Sequence
    /// Number wins at the receiver anyway).
    fn queue_ack_frequency(&mut self, threshold: u64, delay: Duration) {
        self.ack_frequency.requested = Some((threshold, delay));
        let af = &mut self.ack_frequency;
        let seq = af.next_sequence;
        af.next_sequence += 1;
        af.pending = Some(AckFrequency {
            sequence: VarInt::from_u64_unchecked(seq),
            ack_eliciting_threshold: VarInt::from_u64_unchecked(threshold),
            request_max_ack_delay: VarInt::from_u64(
                u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
            )
            .unwrap_or(VarInt::MAX),
            // draft §9: "a data sender can send a Reordering Threshold value
            // that is the same as the loss detection packet threshold".
            reordering_threshold: VarInt::from_u64_unchecked(crate::recovery::PACKET_THRESHOLD),
        });
    }

    /// Sender: the connection moved to another path and its congestion
    /// controller and RTT estimator changed with it (RFC 9000 §9.4).
    /// draft-ietf-quic-ack-frequency-12 §8.4: "an endpoint that has sent an
    /// ACK_FREQUENCY frame earlier in the connection ought to send a new
    /// ACK_FREQUENCY frame upon confirmation of connection migration with
    /// updated information, e.g. to consider the new RTT estimate". The
    /// request tuned to the old path's window and RTT would starve the new
    /// path's slow start of ACKs, so we ask at once for the RFC 9000
    /// defaults (the peer's own max_ack_delay, an ACK every second
    /// packet); the once-per-RTT update asks for fewer ACKs again once the
    /// new path has an RTT sample and a window worth it.
    pub(super) fn ack_frequency_on_path_change(&mut self) {
        if !self.ack_frequency_enabled() {
            return;
        }
        let Some(peer_delay) = self.peer_params.as_ref().map(|p| p.max_ack_delay) else {
            return;
        };
        let af = &self.ack_frequency;
        let asked_for_change = af.changed_peer_acks()
            || af.pending.is_some()
            || af.requested.is_some_and(|r| r != (1, peer_delay));
        self.ack_frequency.last_update = None;
        self.ack_frequency.lost_at_update = self.stats.packets_lost;
        if asked_for_change {
            self.queue_ack_frequency(1, peer_delay);
        }
    }

    /// Receiver, after recording ack-eliciting packet of the application
    /// data space: draft-ietf-quic-ack-frequency-12 §6.1, "When no
    /// acknowledgment has been sent in over one smoothed round trip time
    /// ..., receivers are encouraged to send an acknowledgment soon after
    /// receiving an ack-eliciting packet" — the peer's first packet after a
    /// pause (the first since our last ACK) gets its ACK at once rather than after the Ack-Eliciting
    /// Threshold or the requested delay, so its RTT estimate is fresh.
    /// Only while an ACK_FREQUENCY of the peer is in force: under RFC 9000
    /// defaults the delay is already bounded by our max_ack_delay.
    pub(super) fn hurry_ack_after_idle(&mut self, now: Instant) {
        if self.ack_frequency.recv_sequence.is_none() {
            return;
        }
        let srtt = self.rtt.smoothed_rtt();
        let s = self.space_mut(SpaceId::ApplicationData);
        // The first ack-eliciting packet since our last ACK: the end of an
        // idle period (§6.1's title), not a packet that follows others
        // already waiting for the requested delay.
        let first_since_ack = s.unacked_eliciting == 1;
        if first_since_ack
            && s.last_ack_sent_at
                .is_none_or(|t| now.saturating_duration_since(t) > srtt)
        {
            s.ack_immediately = true;
        }
    }
}

/// RFC 9221 §3's rule for DATAGRAM applied to this extension: the frames
/// may only be sent to an endpoint that advertised `min_ack_delay`
/// (draft §3), so one arriving otherwise is a PROTOCOL_VIOLATION. (The
/// draft names no error code for this case.)
fn not_negotiated(ty: FrameType) -> TransportError {
    TransportError::protocol_violation("ack frequency frame without min_ack_delay")
        .with_frame(ty.value())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ranges: &[std::ops::Range<u64>]) -> RangeSet {
        let mut s = RangeSet::new();
        for r in ranges {
            s.insert(r.clone());
        }
        s
    }

    /// draft §6.2 Table 1 (Reordering Threshold 3), row by row.
    #[test]
    fn reordering_threshold_3_matches_table_1() {
        let t = 3;
        // Received 0,1,3: no; 4: no; 5: yes (5 - 2 >= 3).
        assert!(!reordering_needs_ack(&set(&[0..2, 3..4]), 3, 3, None, t));
        assert!(!reordering_needs_ack(&set(&[0..2, 3..5]), 4, 4, None, t));
        assert!(reordering_needs_ack(&set(&[0..2, 3..6]), 5, 5, None, t));
        // ACK sent with Largest Acked 5; 8: no; 9: yes (9 - 6 >= 3).
        assert!(!reordering_needs_ack(
            &set(&[0..2, 3..6, 8..9]),
            8,
            8,
            Some(5),
            t
        ));
        assert!(reordering_needs_ack(
            &set(&[0..2, 3..6, 8..10]),
            9,
            9,
            Some(5),
            t
        ));
        // Largest Acked 9; 10: yes (10 - 7 >= 3).
        assert!(reordering_needs_ack(
            &set(&[0..2, 3..6, 8..11]),
            10,
            10,
            Some(9),
            t
        ));
    }

    /// draft §6.2 Table 2 (Reordering Threshold 5).
    #[test]
    fn reordering_threshold_5_matches_table_2() {
        let t = 5;
        assert!(!reordering_needs_ack(&set(&[0..2, 3..4]), 3, 3, None, t));
        assert!(!reordering_needs_ack(
            &set(&[0..2, 3..4, 5..6]),
            5,
            5,
            None,
            t
        ));
        assert!(!reordering_needs_ack(
            &set(&[0..2, 3..4, 5..7]),
            6,
            6,
            None,
            t
        ));
        assert!(reordering_needs_ack(
            &set(&[0..2, 3..4, 5..8]),
            7,
            7,
            None,
            t
        ));
        assert!(!reordering_needs_ack(
            &set(&[0..2, 3..4, 5..9]),
            8,
            8,
            Some(7),
            t
        ));
        assert!(reordering_needs_ack(
            &set(&[0..2, 3..4, 5..10]),
            9,
            9,
            Some(7),
            t
        ));
    }

    #[test]
    fn old_packet_outside_the_window_is_acked_at_once() {
        // draft §6.2: "the received packet number is less than or equal to
        // Largest Acked - Reordering Threshold".
        assert!(reordering_needs_ack(
            &set(&[0..3, 4..20]),
            3,
            19,
            Some(19),
            3
        ));
        assert!(!reordering_needs_ack(
            &set(&[0..17, 18..20]),
            17,
            19,
            Some(19),
            3
        ));
    }

    #[test]
    fn pto_uses_the_largest_delay_in_flight_until_acknowledged() {
        let tp = Duration::from_millis(25);
        let mut s = AckFrequencyState::new(tp);
        assert_eq!(s.peer_max_ack_delay(tp), tp);
        s.pending = Some(AckFrequency {
            sequence: VarInt::from_u32(0),
            ack_eliciting_threshold: VarInt::from_u32(10),
            request_max_ack_delay: VarInt::from_u32(5_000),
            reordering_threshold: VarInt::from_u32(3),
        });
        assert!(s.take_pending(3).is_none(), "does not fit");
        assert!(s.take_pending(100).is_some());
        // draft §7: "MUST use the greater of the current max_ack_delay and
        // the value that is in flight".
        assert_eq!(s.peer_max_ack_delay(tp), tp);
        s.on_acked(0);
        assert_eq!(s.peer_max_ack_delay(tp), Duration::from_millis(5));
    }
}
