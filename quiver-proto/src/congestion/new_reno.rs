//! NewReno congestion control (RFC 9002 §7.3, Appendix B).

use std::time::Instant;

use super::{Controller, ControllerFactory, initial_window, minimum_window};
use crate::recovery::RttEstimator;

/// Settings for [`NewReno`]; also its [`ControllerFactory`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewRenoConfig {
    /// The initial congestion window in bytes; `None` (the default) uses the
    /// RECOMMENDED `min(10 * mds, max(14720, 2 * mds))` of RFC 9002 §7.2.
    pub initial_window: Option<u64>,
    /// kLossReductionFactor: the window multiplier on a congestion event
    /// (RFC 9002 Appendix B.1; §7.3.2 makes it one half). Clamped to
    /// `0.0..=1.0`.
    pub loss_reduction_factor: f64,
}

impl Default for NewRenoConfig {
    fn default() -> Self {
        Self {
            initial_window: None,
            loss_reduction_factor: 0.5,
        }
    }
}

impl ControllerFactory for NewRenoConfig {
    fn build(&self, _now: Instant, max_datagram_size: u16) -> Box<dyn Controller> {
        Box::new(NewReno::new(*self, max_datagram_size))
    }
}

/// The NewReno controller of RFC 9002 §7.3: slow start, a recovery period
/// that reduces the window at most once per round trip, and congestion
/// avoidance (AIMD).
///
/// The window does not grow for acknowledgments reported as
/// application-limited (RFC 9002 §7.8: "the congestion window SHOULD NOT be
/// increased in either slow start or congestion avoidance"). The window is
/// cut as soon as recovery starts (§7.3.2 allows this; no Proportional Rate
/// Reduction); the caller may send one packet past the window on entering
/// recovery.
#[derive(Debug, Clone)]
pub struct NewReno {
    config: NewRenoConfig,
    max_datagram_size: u16,
    window: u64,
    /// Slow start threshold; `u64::MAX` stands for "infinite" (Appendix B.3).
    ssthresh: u64,
    /// `congestion_recovery_start_time` (Appendix B.2); `None` for "0".
    recovery_start_time: Option<Instant>,
    /// Bytes acknowledged in congestion avoidance since the window last
    /// grew (the byte counting of RFC 3465 §2.1 that Appendix B.5 points to).
    bytes_acked: u64,
    /// Window and slow start threshold before the last reduction, to
    /// restore if it proves spurious.
    undo: Option<(u64, u64)>,
}

impl NewReno {
    /// A controller in slow start with the initial window for
    /// `max_datagram_size`.
    pub fn new(config: NewRenoConfig, max_datagram_size: u16) -> Self {
        let mut reno = Self {
            config,
            max_datagram_size,
            window: 0,
            // RFC 9002 §7.3.1: "the slow start threshold is initialized to an
            // infinite value".
            ssthresh: u64::MAX,
            recovery_start_time: None,
            bytes_acked: 0,
            undo: None,
        };
        // RFC 9002 §7.3: "QUIC begins every connection in slow start with the
        // congestion window set to an initial value."
        reno.window = reno.initial_window();
        reno
    }

    /// The slow start threshold in bytes (`u64::MAX` while infinite).
    pub fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    /// The smallest window a congestion event can leave (RFC 9002 §7.2:
    /// "The RECOMMENDED value is 2 * max_datagram_size").
    pub fn minimum_window(&self) -> u64 {
        minimum_window(self.max_datagram_size)
    }

    /// Whether a packet sent at `sent_time` was sent during the current
    /// recovery period (Appendix B.5 `InCongestionRecovery`).
    pub fn in_recovery(&self, sent_time: Instant) -> bool {
        self.recovery_start_time
            .is_some_and(|start| sent_time <= start)
    }

    /// Whether the controller is in slow start (RFC 9002 §7.3.1: "any time
    /// the congestion window is below the slow start threshold").
    pub fn in_slow_start(&self) -> bool {
        self.window < self.ssthresh
    }

    fn loss_reduction_factor(&self) -> f64 {
        let factor = self.config.loss_reduction_factor;
        if factor.is_nan() {
            0.5
        } else {
            factor.clamp(0.0, 1.0)
        }
    }
}

impl Controller for NewReno {
    fn on_ack(
        &mut self,
        _now: Instant,
        sent_time: Instant,
        bytes: u64,
        app_limited: bool,
        _rtt: &RttEstimator,
    ) {
        // RFC 9002 §7.8: when the window is underutilized it "SHOULD NOT be
        // increased in either slow start or congestion avoidance".
        if app_limited {
            return;
        }
        // RFC 9002 §7.3.2: "during a recovery period, the congestion window
        // does not change"; the period ends when "a packet sent during the
        // recovery period is acknowledged" — a packet sent after it started
        // fails this test, so its acknowledgment grows the window below.
        if self.in_recovery(sent_time) {
            return;
        }
        if self.in_slow_start() {
            // RFC 9002 §7.3.1: "the congestion window increases by the number
            // of bytes acknowledged when each acknowledgment is processed."
            self.window = self.window.saturating_add(bytes);
        } else {
            // RFC 9002 §7.3.3: congestion avoidance "MUST limit the increase
            // to the congestion window to at most one maximum datagram size
            // for each congestion window that is acknowledged."
            self.bytes_acked = self.bytes_acked.saturating_add(bytes);
            if self.bytes_acked >= self.window {
                self.bytes_acked -= self.window;
                self.window = self
                    .window
                    .saturating_add(u64::from(self.max_datagram_size));
            }
        }
    }

    fn on_spurious_congestion_event(&mut self) {
        // RFC 8985 §6.2 / RFC 9002 §7: the reduction answered losses that
        // were reordering; restore the window (and leave recovery, so it
        // grows again at once).
        if let Some((window, ssthresh)) = self.undo.take() {
            self.window = self.window.max(window);
            self.ssthresh = ssthresh;
            self.recovery_start_time = None;
        }
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent_time: Instant,
        is_persistent_congestion: bool,
        _lost_bytes: u64,
    ) {
        // RFC 9002 §7.3.2: "A sender that is already in a recovery period
        // stays in it and does not reenter it": no reaction to a packet sent
        // before the current recovery period started (Appendix B.6).
        if !self.in_recovery(sent_time) {
            self.undo = Some((self.window, self.ssthresh));
            self.recovery_start_time = Some(now);
            // RFC 9002 §7.3.2: "On entering a recovery period, a sender MUST
            // set the slow start threshold to half the value of the
            // congestion window when loss is detected. The congestion window
            // MUST be set to the reduced value of the slow start threshold
            // before exiting the recovery period." Reduced at once here, but
            // never below the minimum window (§7.2).
            self.ssthresh = (self.window as f64 * self.loss_reduction_factor()) as u64;
            self.window = self.ssthresh.max(self.minimum_window());
            self.bytes_acked = 0;
        }
        if is_persistent_congestion {
            // RFC 9002 §7.6.2: "When persistent congestion is declared, the
            // sender's congestion window MUST be reduced to the minimum
            // congestion window (kMinimumWindow)". Recovery ends too
            // (Appendix B.8), and the window, now below ssthresh, is back in
            // slow start (§7.3.1).
            self.window = self.minimum_window();
            self.recovery_start_time = None;
            self.bytes_acked = 0;
        }
    }

    /// Follows RFC 9002 §7.2: "If the maximum datagram size changes during
    /// the connection, the initial congestion window SHOULD be recalculated
    /// with the new size": a window still at the old initial value moves to
    /// the new one; any window stays at least the new minimum. A caller that
    /// shrinks the size to complete the handshake ("the congestion window
    /// SHOULD be set to the new initial congestion window") can instead build
    /// a fresh controller.
    fn set_max_datagram_size(&mut self, max_datagram_size: u16) {
        let untouched = self.window == self.initial_window()
            && self.ssthresh == u64::MAX
            && self.recovery_start_time.is_none();
        self.max_datagram_size = max_datagram_size;
        if untouched {
            self.window = self.initial_window();
        }
        self.window = self.window.max(self.minimum_window());
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn initial_window(&self) -> u64 {
        self.config
            .initial_window
            .unwrap_or_else(|| initial_window(self.max_datagram_size))
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }

    fn is_slow_start(&self) -> Option<bool> {
        Some(self.window < self.ssthresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::test_epoch;
    use std::time::Duration;

    const MDS: u16 = 1200;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn reno() -> NewReno {
        NewReno::new(NewRenoConfig::default(), MDS)
    }

    fn ack(cc: &mut NewReno, now: Instant, sent: Instant, bytes: u64) {
        cc.on_ack(now, sent, bytes, false, &RttEstimator::default());
    }

    // RFC 9002 §7.2 and §7.3.1: initial window, infinite ssthresh.
    #[test]
    fn starts_in_slow_start_with_initial_window() {
        let cc = reno();
        assert_eq!(cc.window(), 12_000);
        assert_eq!(cc.initial_window(), 12_000);
        assert_eq!(cc.minimum_window(), 2_400);
        assert_eq!(cc.ssthresh(), u64::MAX);
        assert!(cc.in_slow_start());
        let custom = NewReno::new(
            NewRenoConfig {
                initial_window: Some(50_000),
                ..NewRenoConfig::default()
            },
            MDS,
        );
        assert_eq!(custom.window(), 50_000);
    }

    // RFC 9002 §7.3.1: the window grows by the bytes acknowledged.
    #[test]
    fn slow_start_grows_by_bytes_acked() {
        let t0 = test_epoch();
        let mut cc = reno();
        for _ in 0..10 {
            ack(&mut cc, t0 + ms(100), t0, 1200);
        }
        assert_eq!(cc.window(), 24_000);
    }

    // RFC 9002 §7.8: no growth while application-limited.
    #[test]
    fn app_limited_acks_do_not_grow_window() {
        let t0 = test_epoch();
        let mut cc = reno();
        cc.on_ack(t0, t0, 1200, true, &RttEstimator::default());
        assert_eq!(cc.window(), 12_000);
    }

    // RFC 9002 §7.3.2: halve on loss, enter recovery.
    #[test]
    fn loss_halves_window_and_enters_recovery() {
        let t0 = test_epoch();
        let mut cc = reno();
        cc.on_congestion_event(t0 + ms(100), t0 + ms(10), false, 1200);
        assert_eq!(cc.ssthresh(), 6_000);
        assert_eq!(cc.window(), 6_000);
        assert!(!cc.in_slow_start());
        assert!(cc.in_recovery(t0 + ms(100)));
        assert!(!cc.in_recovery(t0 + ms(101)));
    }

    // RFC 9002 §7.3.2: one reduction per recovery period.
    #[test]
    fn losses_of_packets_sent_before_recovery_are_ignored() {
        let t0 = test_epoch();
        let mut cc = reno();
        cc.on_congestion_event(t0 + ms(100), t0 + ms(10), false, 1200);
        cc.on_congestion_event(t0 + ms(110), t0 + ms(20), false, 1200);
        cc.on_congestion_event(t0 + ms(120), t0 + ms(100), false, 1200);
        assert_eq!(cc.window(), 6_000);
        // A packet sent after recovery started is a new congestion event.
        cc.on_congestion_event(t0 + ms(300), t0 + ms(150), false, 1200);
        assert_eq!(cc.window(), 3_000);
    }

    // RFC 9002 §7.3.2: no growth during recovery; acknowledging a packet sent
    // after it started ends it.
    #[test]
    fn recovery_ends_on_ack_of_packet_sent_during_it() {
        let t0 = test_epoch();
        let mut cc = reno();
        cc.on_congestion_event(t0 + ms(100), t0 + ms(10), false, 1200);
        ack(&mut cc, t0 + ms(150), t0 + ms(50), 6_000);
        assert_eq!(cc.window(), 6_000, "sent before recovery: no growth");
        // Congestion avoidance: 6000 bytes acked from after recovery -> +1 MDS.
        ack(&mut cc, t0 + ms(250), t0 + ms(120), 3_000);
        assert_eq!(cc.window(), 6_000);
        ack(&mut cc, t0 + ms(260), t0 + ms(130), 3_000);
        assert_eq!(cc.window(), 7_200);
    }

    // RFC 9002 §7.3.3: at most one MDS per window acknowledged.
    #[test]
    fn congestion_avoidance_adds_one_datagram_per_window() {
        let t0 = test_epoch();
        let mut cc = reno();
        cc.on_congestion_event(t0, t0, false, 1200); // window 6000, in CA
        let later = t0 + ms(1);
        let mut acked = 0;
        while cc.window() == 6_000 {
            ack(&mut cc, later, later, 1_000);
            acked += 1_000;
        }
        assert_eq!(acked, 6_000);
        assert_eq!(cc.window(), 7_200);
        // The next step needs a whole 7200-byte window.
        for _ in 0..7 {
            ack(&mut cc, later, later, 1_000);
        }
        assert_eq!(cc.window(), 7_200);
        ack(&mut cc, later, later, 200);
        assert_eq!(cc.window(), 8_400);
    }

    // RFC 9002 §7.2: a congestion event never leaves less than kMinimumWindow.
    #[test]
    fn window_floor_is_minimum_window() {
        let t0 = test_epoch();
        let mut cc = reno();
        for i in 1..10u64 {
            cc.on_congestion_event(t0 + ms(i * 100), t0 + ms(i * 100 - 1), false, 1200);
        }
        assert_eq!(cc.window(), 2_400);
    }

    // RFC 9002 §7.6.2: persistent congestion collapses to kMinimumWindow and
    // slow start resumes (§7.3.1).
    #[test]
    fn persistent_congestion_collapses_to_minimum_window() {
        let t0 = test_epoch();
        let mut cc = reno();
        ack(&mut cc, t0, t0, 28_000); // window 40000
        cc.on_congestion_event(t0 + ms(500), t0 + ms(400), true, 20_000);
        assert_eq!(cc.window(), 2_400);
        assert_eq!(cc.ssthresh(), 20_000);
        assert!(cc.in_slow_start());
        // Recovery is over: even an old packet's ack grows the window.
        assert!(!cc.in_recovery(t0));
        ack(&mut cc, t0 + ms(600), t0 + ms(10), 1_200);
        assert_eq!(cc.window(), 3_600);
        // Persistent congestion declared while already in recovery still
        // collapses the window.
        let mut cc = reno();
        cc.on_congestion_event(t0 + ms(100), t0 + ms(50), false, 1200);
        cc.on_congestion_event(t0 + ms(200), t0 + ms(60), true, 1200);
        assert_eq!(cc.window(), 2_400);
    }

    // RFC 9002 §7.2: recalculated initial window on a datagram size change.
    #[test]
    fn max_datagram_size_change() {
        let t0 = test_epoch();
        let mut cc = reno();
        cc.set_max_datagram_size(1500);
        assert_eq!(
            cc.window(),
            14_720,
            "untouched window follows the initial window"
        );
        assert_eq!(cc.minimum_window(), 3_000);
        cc.on_congestion_event(t0, t0, true, 1500);
        assert_eq!(cc.window(), 3_000);
        cc.set_max_datagram_size(9000);
        assert_eq!(cc.window(), 18_000, "raised to the new minimum");
    }

    #[test]
    fn custom_loss_reduction_factor() {
        let t0 = test_epoch();
        let mut cc = NewReno::new(
            NewRenoConfig {
                loss_reduction_factor: 0.75,
                ..NewRenoConfig::default()
            },
            MDS,
        );
        cc.on_congestion_event(t0, t0, false, 1200);
        assert_eq!(cc.window(), 9_000);
    }
}
