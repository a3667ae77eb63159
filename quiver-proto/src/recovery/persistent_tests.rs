//! RFC 9002 §7.6.2-§7.6.3 and Appendix B.8 for [`PersistentCongestion`].

use std::time::{Duration, Instant};

use super::{LostPacketInfo, PersistentCongestion};
use crate::recovery::{PERSISTENT_CONGESTION_THRESHOLD, PacketNumberSpace, test_epoch};

const APP: PacketNumberSpace = PacketNumberSpace::ApplicationData;
const HS: PacketNumberSpace = PacketNumberSpace::Handshake;

/// §7.6.3's units: "smoothed_rtt + max(4*rttvar, kGranularity) +
/// max_ack_delay = 2", kPersistentCongestionThreshold = 3: duration 6.
fn duration() -> Duration {
    unit(2) * PERSISTENT_CONGESTION_THRESHOLD
}

fn unit(n: u32) -> Duration {
    Duration::from_millis(100) * n
}

/// §7.6.3's send times: #1 at t=0, #2..#7 at t=1..6, #8 at t=8 (PTO 1),
/// #9 at t=12 (PTO 2). Times are in tenths of a unit.
fn sent_at(t0: Instant, pn: u64) -> Instant {
    let tenths = match pn {
        1..=7 => (pn - 1) * 10,
        8 => 80,
        _ => 120,
    };
    t0 + Duration::from_millis(10 * tenths)
}

fn lost(t0: Instant, space: PacketNumberSpace, pn: u64) -> LostPacketInfo {
    LostPacketInfo {
        space,
        pn,
        time_sent: sent_at(t0, pn),
        ack_eliciting: true,
    }
}

/// Declares `pns` lost in order; whether any established persistent
/// congestion.
fn declare(
    pc: &mut PersistentCongestion,
    t0: Instant,
    pns: impl IntoIterator<Item = u64>,
    first_sample: Option<Instant>,
) -> bool {
    let mut established = false;
    for pn in pns {
        established |= pc.on_lost(lost(t0, APP, pn), first_sample, duration());
    }
    established
}

// RFC 9002 §7.6.3: packets 2 to 8 are declared lost when the ACK of #9
// arrives at t=12.2; 8 - 1 = 7 exceeds 2 * 3 = 6. The example leaves the
// RTT sample aside; here one existed before t=0.
#[test]
fn rfc_9002_example_establishes() {
    let t0 = test_epoch() + unit(10);
    let earlier_sample = Some(t0 - unit(1));
    let mut pc = PersistentCongestion::default();
    pc.on_acked(APP, sent_at(t0, 1)); // t=1.2: ACK of #1
    assert!(declare(&mut pc, t0, 2..=8, earlier_sample));
}

// RFC 9002 §7.6.2: "a prior RTT sample existed when these two packets
// were sent". If the ACK of #1 at t=1.2 gave the first sample, #2 (sent at
// t=1) does not count: 8 - 2 = 6 does not exceed 6.
#[test]
fn rfc_9002_example_without_prior_sample_does_not() {
    let t0 = test_epoch();
    let sample_at_1_2 = Some(t0 + unit(12) / 10);
    let mut pc = PersistentCongestion::default();
    assert!(!declare(&mut pc, t0, 2..=8, sample_at_1_2));
    // And no sample at all: never.
    let mut pc = PersistentCongestion::default();
    assert!(!declare(&mut pc, t0, 2..=8, None));
}

// The same losses declared in two events (a time-threshold loss of 2..5,
// then the ACK of the second PTO's probe declaring 6..8): one period.
#[test]
fn losses_from_two_events_combine() {
    let t0 = test_epoch() + unit(10);
    let sample = Some(t0 - unit(1));
    let mut pc = PersistentCongestion::default();
    assert!(!declare(&mut pc, t0, 2..=5, sample));
    assert!(declare(&mut pc, t0, 6..=8, sample));
}

// §7.6.2: "none of the packets sent between the send times of these two
// packets are acknowledged": #5 acknowledged splits the losses in two
// periods of 3 and 2 units.
#[test]
fn an_acknowledged_packet_between_breaks_the_period() {
    let t0 = test_epoch() + unit(10);
    let sample = Some(t0 - unit(1));
    let mut pc = PersistentCongestion::default();
    // Within one event: 2..4 and 6..8 lost, 5 acknowledged.
    assert!(!declare(&mut pc, t0, (2..=4).chain(6..=8), sample));
    // Across events, the same.
    let mut pc = PersistentCongestion::default();
    assert!(!declare(&mut pc, t0, 2..=4, sample));
    pc.on_acked(APP, sent_at(t0, 5));
    assert!(!declare(&mut pc, t0, 6..=8, sample));
}

// §7.6.2 "across all packet number spaces": an acknowledged Handshake
// packet sent within the period breaks it; one sent before it does not.
#[test]
fn an_acknowledgment_in_another_space_breaks_the_period() {
    let t0 = test_epoch() + unit(10);
    let sample = Some(t0 - unit(1));
    let mut pc = PersistentCongestion::default();
    assert!(!declare(&mut pc, t0, 2..=5, sample));
    pc.on_acked(HS, sent_at(t0, 3) + unit(1) / 2);
    assert!(!declare(&mut pc, t0, 6..=8, sample));

    let mut pc = PersistentCongestion::default();
    pc.on_acked(HS, t0); // sent before #2
    assert!(!declare(&mut pc, t0, 2..=5, sample));
    pc.on_acked(HS, sent_at(t0, 1));
    assert!(declare(&mut pc, t0, 6..=8, sample));
}

// §7.6.2: "These two packets MUST be ack-eliciting": with #8 an ACK-only
// packet the period runs from #1 to #7, 6 units, not more than 6. A lost
// ACK-only packet is not an acknowledged one: it does not break the run.
#[test]
fn only_ack_eliciting_packets_bound_the_period() {
    let t0 = test_epoch() + unit(10);
    let sample = Some(t0 - unit(1));
    let mut pc = PersistentCongestion::default();
    assert!(!declare(&mut pc, t0, 1..=7, sample));
    let ack_only = LostPacketInfo {
        ack_eliciting: false,
        ..lost(t0, APP, 8)
    };
    assert!(!pc.on_lost(ack_only, sample, duration()));
    // #9, ack-eliciting, extends the run past it: 12 - 0 > 6.
    assert!(pc.on_lost(lost(t0, APP, 9), sample, duration()));
}

// Appendix B.8 filters lost packets sent before the first sample out of
// `pc_lost`: they do not count, and do not split a run either.
#[test]
fn packets_before_the_first_sample_neither_count_nor_break() {
    let t0 = test_epoch();
    let sample = Some(t0 + unit(15) / 10); // between #2 and #3
    let mut pc = PersistentCongestion::default();
    // 1 and 2 do not count; 3 (t=2) to 9 (t=12) spans 10 > 6.
    assert!(declare(&mut pc, t0, 1..=9, sample));
}

// Declared once: the next losses start a new period rather than
// collapsing the window again at every loss.
#[test]
fn declared_once_per_period() {
    let t0 = test_epoch() + unit(10);
    let sample = Some(t0 - unit(1));
    let mut pc = PersistentCongestion::default();
    assert!(declare(&mut pc, t0, 1..=8, sample));
    assert!(!pc.on_lost(lost(t0, APP, 9), sample, duration()));
}

// The spaces keep apart runs; discarding or resetting forgets them; the
// bookkeeping is a fixed size whatever the losses.
#[test]
fn bounded_and_forgettable() {
    let t0 = test_epoch() + unit(10);
    let sample = Some(t0 - unit(1));
    let mut pc = PersistentCongestion::default();
    let size = std::mem::size_of_val(&pc);
    for pn in 0..10_000u64 {
        let p = LostPacketInfo {
            space: APP,
            pn,
            time_sent: t0 + Duration::from_micros(pn),
            ack_eliciting: true,
        };
        pc.on_lost(p, sample, Duration::from_secs(3600));
    }
    assert_eq!(std::mem::size_of_val(&pc), size);
    assert!(!declare(&mut pc, t0, 2..=5, sample));
    pc.on_space_discarded(APP);
    assert!(!declare(&mut pc, t0, 6..=8, sample));
    let mut pc = PersistentCongestion::default();
    assert!(!declare(&mut pc, t0, 2..=5, sample));
    pc.reset();
    assert!(!declare(&mut pc, t0, 6..=8, sample));
}
