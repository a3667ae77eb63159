//! RTT estimation (RFC 9002 §5).

use std::time::{Duration, Instant};

use super::{GRANULARITY, INITIAL_RTT};

/// The RTT estimate of one network path (RFC 9002 §5): `latest_rtt`,
/// `min_rtt`, `smoothed_rtt` and `rttvar`.
///
/// Before the first sample, `smoothed_rtt` is the initial RTT and `rttvar`
/// half of it (§5.3); `latest_rtt` and `min_rtt` are zero, as in Appendix
/// A.4, and [`RttEstimator::has_sample`] is `false`.
///
/// The caller decides *whether* an ACK frame yields a sample (§5.1): only
/// if its largest acknowledged packet is newly acknowledged and at least one
/// newly acknowledged packet was ack-eliciting.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    initial_rtt: Duration,
    latest: Duration,
    min: Duration,
    smoothed: Duration,
    var: Duration,
    first_sample: Option<Instant>,
}

impl Default for RttEstimator {
    /// An estimator starting from the RECOMMENDED initial RTT of 333 ms.
    fn default() -> Self {
        Self::new(INITIAL_RTT)
    }
}

impl RttEstimator {
    /// An estimator starting from `initial_rtt` (kInitialRtt). RFC 9002
    /// §6.2.2: resumed connections "MAY use the previous connection's final
    /// smoothed RTT value as the resumed connection's initial RTT"; otherwise
    /// use [`INITIAL_RTT`].
    pub fn new(initial_rtt: Duration) -> Self {
        // RFC 9002 §5.3: "smoothed_rtt = kInitialRtt; rttvar = kInitialRtt / 2".
        Self {
            initial_rtt,
            latest: Duration::ZERO,
            min: Duration::ZERO,
            smoothed: initial_rtt,
            var: initial_rtt / 2,
            first_sample: None,
        }
    }

    /// Forgets every sample and starts again from the initial RTT, as when
    /// the estimator is reset on connection migration (RFC 9002 §5.3, RFC
    /// 9000 §9.4).
    pub fn reset(&mut self) {
        *self = Self::new(self.initial_rtt);
    }

    /// Records an RTT sample (RFC 9002 §5.3; Appendix A.7 `UpdateRtt`).
    ///
    /// - `now`: when the ACK frame was received (remembered as the time of the
    ///   first sample, which persistent congestion needs, §7.6.2).
    /// - `latest_rtt`: `ack_time - send_time_of_largest_acked` (§5.1). The
    ///   caller SHOULD already have subtracted local delays spent waiting for
    ///   decryption keys before the handshake is confirmed (§5.3).
    /// - `ack_delay`: the decoded ACK Delay field. The caller MAY pass zero
    ///   for Initial packets, which are not delayed by the peer (§5.3).
    /// - `max_ack_delay`: the peer's max_ack_delay transport parameter.
    /// - `handshake_confirmed`: whether the handshake is confirmed (RFC 9001
    ///   §4.1.2); before that, `max_ack_delay` is ignored.
    pub fn update(
        &mut self,
        now: Instant,
        latest_rtt: Duration,
        ack_delay: Duration,
        max_ack_delay: Duration,
        handshake_confirmed: bool,
    ) {
        self.latest = latest_rtt;
        if self.first_sample.is_none() {
            // RFC 9002 §5.2: "min_rtt MUST be set to the latest_rtt on the
            // first RTT sample."
            // RFC 9002 §5.3: on the first sample "smoothed_rtt = latest_rtt;
            // rttvar = latest_rtt / 2".
            self.min = latest_rtt;
            self.smoothed = latest_rtt;
            self.var = latest_rtt / 2;
            self.first_sample = Some(now);
            return;
        }
        // RFC 9002 §5.2: "min_rtt MUST be set to the lesser of min_rtt and
        // latest_rtt on all other samples", without adjusting for ack delay.
        self.min = self.min.min(latest_rtt);

        // RFC 9002 §5.3: an endpoint "SHOULD ignore the peer's max_ack_delay
        // until the handshake is confirmed" and "MUST use the lesser of the
        // acknowledgment delay and the peer's max_ack_delay after the
        // handshake is confirmed".
        let ack_delay = if handshake_confirmed {
            ack_delay.min(max_ack_delay)
        } else {
            ack_delay
        };
        // RFC 9002 §5.3: "MUST NOT subtract the acknowledgment delay from the
        // RTT sample if the resulting value is smaller than the min_rtt."
        let adjusted = match self.min.checked_add(ack_delay) {
            Some(floor) if latest_rtt >= floor => latest_rtt - ack_delay,
            _ => latest_rtt,
        };
        // Appendix A.7 order (as RFC 6298): rttvar from the *previous*
        // smoothed_rtt, then smoothed_rtt.
        // rttvar = 3/4 * rttvar + 1/4 * abs(smoothed_rtt - adjusted_rtt)
        let sample = self.smoothed.abs_diff(adjusted);
        self.var = (self.var.saturating_mul(3).saturating_add(sample)) / 4;
        // smoothed_rtt = 7/8 * smoothed_rtt + 1/8 * adjusted_rtt
        self.smoothed = (self.smoothed.saturating_mul(7).saturating_add(adjusted)) / 8;
    }

    /// Sets `min_rtt` to the latest sample. RFC 9002 §5.2: "Endpoints SHOULD
    /// set the min_rtt to the newest RTT sample after persistent congestion
    /// is established." No effect before the first sample.
    pub fn reset_min_rtt(&mut self) {
        if self.has_sample() {
            self.min = self.latest;
        }
    }

    /// Whether at least one sample has been recorded since creation or the
    /// last [`reset`](Self::reset).
    pub fn has_sample(&self) -> bool {
        self.first_sample.is_some()
    }

    /// When the first sample was recorded (`first_rtt_sample` of Appendix
    /// A.3); persistent congestion only considers packets sent after it
    /// (§7.6.2).
    pub fn first_sample_time(&self) -> Option<Instant> {
        self.first_sample
    }

    /// The initial RTT this estimator started from.
    pub fn initial_rtt(&self) -> Duration {
        self.initial_rtt
    }

    /// The most recent sample (zero before the first).
    pub fn latest_rtt(&self) -> Duration {
        self.latest
    }

    /// The minimum sample seen, not adjusted for ack delay (zero before the
    /// first sample).
    pub fn min_rtt(&self) -> Duration {
        self.min
    }

    /// The smoothed RTT (the initial RTT before the first sample).
    pub fn smoothed_rtt(&self) -> Duration {
        self.smoothed
    }

    /// The RTT variation (half the initial RTT before the first sample).
    pub fn rttvar(&self) -> Duration {
        self.var
    }

    /// `smoothed_rtt + max(4 * rttvar, kGranularity)`: the PTO period before
    /// max_ack_delay and backoff, which the caller adds per packet number
    /// space (RFC 9002 §6.2.1; see [`super::pto_duration`]).
    pub fn pto_base(&self) -> Duration {
        self.smoothed
            .saturating_add(self.var.saturating_mul(4).max(GRANULARITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    #[test]
    fn initial_state_gives_one_second_pto() {
        // RFC 9002 §6.2.2: 333 ms "results in handshakes starting with a PTO
        // of 1 second": 333 + 4 * 166.5 = 999 ms.
        let rtt = RttEstimator::default();
        assert_eq!(rtt.smoothed_rtt(), ms(333));
        assert_eq!(rtt.rttvar(), us(166_500));
        assert_eq!(rtt.latest_rtt(), Duration::ZERO);
        assert_eq!(rtt.min_rtt(), Duration::ZERO);
        assert!(!rtt.has_sample());
        assert_eq!(rtt.pto_base(), ms(999));
    }

    #[test]
    fn first_sample_resets_estimator_and_ignores_ack_delay() {
        let now = crate::recovery::test_epoch();
        let mut rtt = RttEstimator::new(ms(500));
        rtt.update(now, ms(100), ms(40), ms(25), true);
        assert_eq!(rtt.latest_rtt(), ms(100));
        assert_eq!(rtt.min_rtt(), ms(100));
        assert_eq!(rtt.smoothed_rtt(), ms(100));
        assert_eq!(rtt.rttvar(), ms(50));
        assert_eq!(rtt.first_sample_time(), Some(now));
        assert_eq!(rtt.pto_base(), ms(300));
    }

    #[test]
    fn worked_sequence_after_confirmation() {
        let now = crate::recovery::test_epoch();
        let mut rtt = RttEstimator::default();
        rtt.update(now, ms(100), Duration::ZERO, ms(25), true);
        // 120 >= 100 + 10, so adjusted = 110.
        // rttvar = 3/4 * 50 + 1/4 * |100 - 110| = 40
        // smoothed = 7/8 * 100 + 1/8 * 110 = 101.25
        rtt.update(now + ms(200), ms(120), ms(10), ms(25), true);
        assert_eq!(rtt.rttvar(), ms(40));
        assert_eq!(rtt.smoothed_rtt(), us(101_250));
        assert_eq!(rtt.min_rtt(), ms(100));
        // ack_delay 30 clamped to max_ack_delay 25; min_rtt drops to 90 and
        // 90 < 90 + 25, so nothing is subtracted: adjusted = 90.
        // rttvar = 3/4 * 40 + 1/4 * 11.25 = 32.8125
        // smoothed = 7/8 * 101.25 + 1/8 * 90 = 99.84375
        rtt.update(now + ms(400), ms(90), ms(30), ms(25), true);
        assert_eq!(rtt.min_rtt(), ms(90));
        assert_eq!(rtt.latest_rtt(), ms(90));
        assert_eq!(rtt.rttvar(), Duration::from_nanos(32_812_500));
        assert_eq!(rtt.smoothed_rtt(), Duration::from_nanos(99_843_750));
        // The first sample time does not move.
        assert_eq!(rtt.first_sample_time(), Some(now));
    }

    // RFC 9002 §5.3: "MUST use the lesser of the acknowledgment delay and the
    // peer's max_ack_delay after the handshake is confirmed".
    #[test]
    fn ack_delay_clamped_once_confirmed() {
        let now = crate::recovery::test_epoch();
        let mut rtt = RttEstimator::default();
        rtt.update(now, ms(100), Duration::ZERO, ms(25), true);
        // 200 - min(80, 25) = 175. smoothed = (700 + 175) / 8 = 109.375
        rtt.update(now, ms(200), ms(80), ms(25), true);
        assert_eq!(rtt.smoothed_rtt(), us(109_375));
    }

    // RFC 9002 §5.3: "SHOULD ignore the peer's max_ack_delay until the
    // handshake is confirmed".
    #[test]
    fn ack_delay_not_clamped_before_confirmation() {
        let now = crate::recovery::test_epoch();
        let mut rtt = RttEstimator::default();
        rtt.update(now, ms(100), Duration::ZERO, ms(25), false);
        // 200 - 80 = 120. smoothed = (700 + 120) / 8 = 102.5
        rtt.update(now, ms(200), ms(80), ms(25), false);
        assert_eq!(rtt.smoothed_rtt(), us(102_500));
    }

    // RFC 9002 §5.3: "MUST NOT subtract the acknowledgment delay from the RTT
    // sample if the resulting value is smaller than the min_rtt."
    #[test]
    fn ack_delay_not_subtracted_below_min_rtt() {
        let now = crate::recovery::test_epoch();
        let mut rtt = RttEstimator::default();
        rtt.update(now, ms(100), Duration::ZERO, ms(25), true);
        // 110 - 20 = 90 < min_rtt 100: use 110 as is.
        rtt.update(now, ms(110), ms(20), ms(25), true);
        assert_eq!(rtt.smoothed_rtt(), us(101_250));
        // 110 - 10 = 100 = min_rtt: subtracting is allowed.
        let mut rtt2 = RttEstimator::default();
        rtt2.update(now, ms(100), Duration::ZERO, ms(25), true);
        rtt2.update(now, ms(110), ms(10), ms(25), true);
        assert_eq!(rtt2.smoothed_rtt(), ms(100));
    }

    #[test]
    fn pto_base_has_granularity_floor() {
        let now = crate::recovery::test_epoch();
        let mut rtt = RttEstimator::default();
        rtt.update(now, us(100), Duration::ZERO, Duration::ZERO, true);
        for _ in 0..50 {
            rtt.update(now, us(100), Duration::ZERO, Duration::ZERO, true);
        }
        // rttvar has decayed to ~0: 4 * rttvar < 1 ms, so kGranularity wins.
        assert!(rtt.rttvar() * 4 < GRANULARITY);
        assert_eq!(rtt.pto_base(), us(100) + GRANULARITY);
    }

    // RFC 9002 §5.2: "Endpoints SHOULD set the min_rtt to the newest RTT
    // sample after persistent congestion is established."
    #[test]
    fn reset_min_rtt_and_reset() {
        let now = crate::recovery::test_epoch();
        let mut rtt = RttEstimator::new(ms(50));
        rtt.reset_min_rtt();
        assert_eq!(rtt.min_rtt(), Duration::ZERO);
        rtt.update(now, ms(40), Duration::ZERO, ms(25), true);
        rtt.update(now, ms(300), Duration::ZERO, ms(25), true);
        assert_eq!(rtt.min_rtt(), ms(40));
        rtt.reset_min_rtt();
        assert_eq!(rtt.min_rtt(), ms(300));
        rtt.reset();
        assert!(!rtt.has_sample());
        assert_eq!(rtt.smoothed_rtt(), ms(50));
        assert_eq!(rtt.rttvar(), ms(25));
        assert_eq!(rtt.initial_rtt(), ms(50));
    }
}
