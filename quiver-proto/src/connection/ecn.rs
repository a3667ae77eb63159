//! ECN on the active path (RFC 9000 §13.4): what we mark, what we report,
//! and validation of the peer's reports (§13.4.2, Appendix A.4).
//!
//! Every packet of a new path is marked ECT(0) while testing (the first
//! [`TESTING_PACKETS`] packets, or three PTOs); then marking waits
//! ("unknown") until an ACK validates the counts ("capable": mark
//! everything) or something proves the path or peer wrong ("failed":
//! never mark again on this path). Reports are checked against what we
//! sent: counts missing, decreasing, short of the marked packets newly
//! acknowledged, or for a codepoint we never used (remarking) fail
//! validation, as do testing packets that were all lost or all came back
//! CE (a middlebox marking everything). An increase in the CE count is a
//! congestion event (RFC 9002 §7.1, Appendix B.7).

use std::time::{Duration, Instant};

use super::spaces::SpaceId;
use crate::frame::EcnCounts;

/// Packets marked while testing a path (RFC 9000 §13.4.2: "the first ten
/// outgoing packets on a path, or for a period of three PTOs").
pub(crate) const TESTING_PACKETS: u64 = 10;

/// Where validation of the active path stands (RFC 9000 Appendix A.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EcnState {
    Testing,
    Unknown,
    Capable,
    Failed,
}

/// Counts as the peer reports them: ECT(0), ECT(1), CE.
type Counts = [u64; 3];

#[derive(Debug, Clone)]
pub(crate) struct EcnValidation {
    pub(crate) state: EcnState,
    /// When testing began, and how many packets it marked.
    testing_started: Option<Instant>,
    testing_marked: u64,
    /// Marked packets of this path acknowledged and declared lost.
    marked_acked: u64,
    marked_lost: u64,
    /// Marked packets acknowledged whose ACK said CE: while testing, all
    /// of them CE means a middlebox marks everything.
    marked_acked_ce: u64,
    /// Marked packets acknowledged by ACKs that did not raise the largest
    /// acknowledged, whose counts we do not validate (§13.4.2.1): they
    /// only tell that the packet is accounted for.
    marked_acked_unchecked: u64,
    /// Per space: packets we sent with ECT(0), and the peer's last
    /// validated counts (connection-wide, as the peer counts per space,
    /// not per path).
    sent_ect0: [u64; 3],
    peer: [Counts; 3],
}

impl EcnValidation {
    /// ECN enabled (`on`) or never marking.
    pub(crate) fn new(on: bool) -> Self {
        Self {
            state: if on {
                EcnState::Testing
            } else {
                EcnState::Failed
            },
            testing_started: None,
            testing_marked: 0,
            marked_acked: 0,
            marked_lost: 0,
            marked_acked_ce: 0,
            marked_acked_unchecked: 0,
            sent_ect0: [0; 3],
            peer: [[0; 3]; 3],
        }
    }

    /// Whether the next datagram to the active path is marked ECT(0).
    pub(crate) fn marking(&self) -> bool {
        matches!(self.state, EcnState::Testing | EcnState::Capable)
    }

    /// A new path: test it afresh (§13.4.2: "when switching to a server's
    /// preferred address, and on active connection migration to a new
    /// path"). Counts stay: the peer's are per space, not per path.
    pub(crate) fn restart(&mut self, on: bool) {
        if !on {
            return;
        }
        self.state = EcnState::Testing;
        self.testing_started = None;
        self.testing_marked = 0;
        self.marked_acked = 0;
        self.marked_lost = 0;
        self.marked_acked_ce = 0;
        self.marked_acked_unchecked = 0;
    }

    /// A packet marked ECT(0) went out in `space`.
    pub(crate) fn on_marked_sent(&mut self, now: Instant, space: SpaceId, pto: Duration) {
        self.sent_ect0[space as usize] += 1;
        if self.state == EcnState::Testing {
            self.testing_marked += 1;
            let started = *self.testing_started.get_or_insert(now);
            if self.testing_marked >= TESTING_PACKETS || now >= started + 3 * pto {
                self.state = EcnState::Unknown;
                self.conclude_testing();
            }
        }
    }

    /// An ACK in `space` newly acknowledged `newly_marked` packets sent
    /// with ECT(0), carrying `counts`; `largest_increased` says it raised
    /// the largest acknowledged. Returns the increase of the CE count to
    /// react to (RFC 9002 §7.1).
    pub(crate) fn on_ack(
        &mut self,
        space: SpaceId,
        counts: Option<EcnCounts>,
        newly_marked: u64,
        largest_increased: bool,
    ) -> u64 {
        if self.state == EcnState::Failed {
            return 0;
        }
        // §13.4.2.1: "An endpoint MUST NOT fail ECN validation as a result
        // of processing an ACK frame that does not increase the largest
        // acknowledged packet number."
        if !largest_increased {
            if newly_marked > 0 {
                self.marked_acked_unchecked += newly_marked;
                self.conclude_testing();
            }
            return 0;
        }
        let prev = self.peer[space as usize];
        let Some(c) = counts else {
            // "ECN validation fails if the corresponding ECN counts are not
            // present in the ACK frame" (a bleaching path, or a peer that
            // does not report).
            if newly_marked > 0 {
                self.fail("ACK without ECN counts for marked packets");
            }
            return 0;
        };
        let now = [c.ect0.into_inner(), c.ect1.into_inner(), c.ce.into_inner()];
        if now.iter().zip(prev).any(|(n, p)| *n < p) {
            self.fail("ECN counts decreased");
            return 0;
        }
        let (d_ect0, d_ce) = (now[0] - prev[0], now[2] - prev[2]);
        // "ECN validation also fails if the sum of the increase in ECT(0)
        // and ECN-CE counts is less than the number of newly acknowledged
        // packets that were originally sent with an ECT(0) marking."
        if d_ect0 + d_ce < newly_marked {
            self.fail("ECN counts short of the marked packets acknowledged");
            return 0;
        }
        // "... validation will fail when an endpoint receives a non-zero
        // ECN count corresponding to an ECT codepoint that it never
        // applied", or more ECT(0) than it sent.
        if now[1] > 0 || now[0] > self.sent_ect0[space as usize] {
            self.fail("ECN counts for packets never marked so");
            return 0;
        }
        self.peer[space as usize] = now;
        if newly_marked > 0 {
            self.marked_acked += newly_marked;
            self.marked_acked_ce += d_ce.min(newly_marked);
            self.conclude_testing();
        }
        // CE reported while the path is still being tested waits for the
        // verdict: a middlebox marking everything fails validation instead
        // of halving the window every round trip.
        if self.state == EcnState::Capable {
            d_ce
        } else {
            0
        }
    }

    /// `n` packets sent marked were declared lost.
    pub(crate) fn on_marked_lost(&mut self, n: u64) {
        if !matches!(self.state, EcnState::Testing | EcnState::Unknown) {
            return;
        }
        self.marked_lost += n;
        self.conclude_testing();
    }

    /// Appendix A.4: "From the 'unknown' state, successful validation of
    /// the ECN counts in an ACK frame causes the ECN state for the path to
    /// become 'capable', unless no marked packet has been acknowledged",
    /// and the state "can also" become failed "if marked packets are all
    /// declared lost or if they are all ECN-CE marked". "All" is judged
    /// once every testing packet is acknowledged or lost: the first ACK
    /// may cover only one or two of them, and on a path that marks a fifth
    /// of the packets CE two in a row are no proof of a middlebox marking
    /// everything (a sim seed failed validation that way and never marked
    /// again).
    fn conclude_testing(&mut self) {
        if self.state != EcnState::Unknown {
            return;
        }
        let settled = self.marked_acked + self.marked_acked_unchecked + self.marked_lost
            >= self.testing_marked;
        if self.marked_acked == 0 {
            if self.marked_lost >= self.testing_marked {
                self.fail("every marked packet was lost");
            }
        } else if self.marked_acked_ce < self.marked_acked {
            self.state = EcnState::Capable;
        } else if settled {
            self.fail("every marked packet came back CE");
        }
    }

    fn fail(&mut self, why: &'static str) {
        tracing::debug!(why, "ECN validation failed");
        // §13.4.2.2: "If validation fails, then the endpoint MUST disable
        // ECN."
        self.state = EcnState::Failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VarInt;

    fn counts(ect0: u64, ect1: u64, ce: u64) -> Option<EcnCounts> {
        Some(EcnCounts {
            ect0: VarInt::from_u64(ect0).unwrap(),
            ect1: VarInt::from_u64(ect1).unwrap(),
            ce: VarInt::from_u64(ce).unwrap(),
        })
    }

    fn tested(n: u64) -> EcnValidation {
        let mut e = EcnValidation::new(true);
        let now = crate::connection::tests::epoch();
        for _ in 0..n {
            assert!(e.marking());
            e.on_marked_sent(now, SpaceId::ApplicationData, Duration::from_secs(1));
        }
        e
    }

    const APP: SpaceId = SpaceId::ApplicationData;

    #[test]
    fn testing_marks_ten_packets_then_waits_for_validation() {
        let e = tested(TESTING_PACKETS);
        assert_eq!(e.state, EcnState::Unknown);
        assert!(!e.marking());
    }

    #[test]
    fn matching_counts_make_the_path_capable() {
        let mut e = tested(10);
        assert_eq!(e.on_ack(APP, counts(9, 0, 1), 10, true), 1);
        assert_eq!(e.state, EcnState::Capable);
        assert!(e.marking());
        // A CE increase later is a congestion signal.
        let now = crate::connection::tests::epoch();
        e.on_marked_sent(now, APP, Duration::from_secs(1));
        e.on_marked_sent(now, APP, Duration::from_secs(1));
        assert_eq!(e.on_ack(APP, counts(10, 0, 2), 2, true), 1);
        assert_eq!(e.state, EcnState::Capable);
    }

    /// §13.4.2.1: a path that zeroes the ECN field, or a peer that does
    /// not report, fails validation.
    #[test]
    fn missing_counts_fail() {
        let mut e = tested(10);
        e.on_ack(APP, None, 3, true);
        assert_eq!(e.state, EcnState::Failed);
        assert!(!e.marking());
        let mut e = tested(10);
        e.on_ack(APP, counts(0, 0, 0), 3, true);
        assert_eq!(e.state, EcnState::Failed, "counts short of the marked");
    }

    #[test]
    fn remarking_and_decreasing_counts_fail() {
        let mut e = tested(10);
        e.on_ack(APP, counts(5, 1, 0), 5, true);
        assert_eq!(e.state, EcnState::Failed, "ECT(1) never applied");
        let mut e = tested(10);
        e.on_ack(APP, counts(11, 0, 0), 5, true);
        assert_eq!(e.state, EcnState::Failed, "more ECT(0) than sent");
        let mut e = tested(10);
        e.on_ack(APP, counts(5, 0, 0), 5, true);
        e.on_ack(APP, counts(4, 0, 0), 1, true);
        assert_eq!(e.state, EcnState::Failed, "decrease");
    }

    /// §13.4.2.1: a reordered ACK (largest not increased) never fails.
    #[test]
    fn reordered_acks_do_not_fail() {
        let mut e = tested(10);
        e.on_ack(APP, None, 3, false);
        assert_ne!(e.state, EcnState::Failed);
    }

    #[test]
    fn all_testing_packets_lost_fails() {
        let mut e = tested(10);
        e.on_marked_lost(9);
        assert_eq!(e.state, EcnState::Unknown);
        e.on_marked_lost(1);
        assert_eq!(e.state, EcnState::Failed);
    }

    #[test]
    fn all_testing_packets_ce_fails() {
        let mut e = tested(10);
        e.on_ack(APP, counts(0, 0, 10), 10, true);
        assert_eq!(e.state, EcnState::Failed);
    }

    /// Appendix A.4's "all ECN-CE marked" means all testing packets: the
    /// first ACK covering two of ten, both CE, decides nothing.
    #[test]
    fn a_few_ce_marks_first_do_not_fail() {
        let mut e = tested(10);
        assert_eq!(e.on_ack(APP, counts(0, 0, 2), 2, true), 0);
        assert_eq!(e.state, EcnState::Unknown);
        e.on_ack(APP, counts(7, 0, 3), 8, true);
        assert_eq!(e.state, EcnState::Capable);
        // All ten CE, over two ACKs: fails once the last is in.
        let mut e = tested(10);
        e.on_ack(APP, counts(0, 0, 2), 2, true);
        e.on_marked_lost(1);
        assert_eq!(e.state, EcnState::Unknown);
        e.on_ack(APP, counts(0, 0, 9), 7, true);
        assert_eq!(e.state, EcnState::Failed);
    }

    #[test]
    fn disabled_never_marks() {
        let e = EcnValidation::new(false);
        assert!(!e.marking());
    }
}
