//! The probe timeout period (RFC 9002 §6.2.1) and the persistent congestion
//! duration (§7.6).

use std::time::{Duration, Instant};

use super::{PERSISTENT_CONGESTION_THRESHOLD, PacketNumberSpace, RttEstimator};

/// The PTO period for `space` after `pto_count` consecutive PTO expirations
/// (RFC 9002 §6.2.1; Appendix A.8 `GetPtoTimeAndSpace`):
///
/// `(smoothed_rtt + max(4 * rttvar, kGranularity) + max_ack_delay) * 2^pto_count`
///
/// where `max_ack_delay` counts only for the Application Data space. The
/// result saturates instead of overflowing for a huge `pto_count`.
///
/// The caller arms the timer at the time the last ack-eliciting packet of
/// the space was sent plus this duration, and RFC 9002 §6.2.1 rules on
/// which space arms it: "An endpoint MUST NOT set its PTO timer for the
/// Application Data packet number space until the handshake is confirmed",
/// and "The PTO timer MUST NOT be set if a timer is set for time threshold
/// loss detection".
pub fn pto_duration(
    rtt: &RttEstimator,
    space: PacketNumberSpace,
    max_ack_delay: Duration,
    pto_count: u32,
) -> Duration {
    // RFC 9002 §6.2.1: "When the PTO is armed for Initial or Handshake packet
    // number spaces, the max_ack_delay in the PTO period computation is set
    // to 0, since the peer is expected to not delay these packets
    // intentionally".
    let max_ack_delay = match space {
        PacketNumberSpace::Initial | PacketNumberSpace::Handshake => Duration::ZERO,
        PacketNumberSpace::ApplicationData => max_ack_delay,
    };
    // RFC 9002 §6.2.1: "The PTO period MUST be at least kGranularity";
    // pto_base() already includes max(4 * rttvar, kGranularity).
    let period = rtt.pto_base().saturating_add(max_ack_delay);
    // RFC 9002 §6.2.1: "When a PTO timer expires, the PTO backoff MUST be
    // increased, resulting in the PTO period being set to twice its current
    // value."
    let backoff = 1u32.checked_shl(pto_count).unwrap_or(u32::MAX);
    period.saturating_mul(backoff)
}

/// The persistent congestion duration (RFC 9002 §7.6.1):
///
/// `(smoothed_rtt + max(4 * rttvar, kGranularity) + max_ack_delay) * kPersistentCongestionThreshold`
///
/// RFC 9002 §7.6.1: "Unlike the PTO computation in Section 6.2, this
/// duration includes the max_ack_delay irrespective of the packet number
/// spaces in which losses are established."
pub fn persistent_congestion_duration(rtt: &RttEstimator, max_ack_delay: Duration) -> Duration {
    rtt.pto_base()
        .saturating_add(max_ack_delay)
        .saturating_mul(PERSISTENT_CONGESTION_THRESHOLD)
}

/// Whether two lost ack-eliciting packets, sent at `earliest` and `latest`,
/// span long enough to establish persistent congestion (RFC 9002 §7.6.2).
///
/// The caller checks the other conditions of §7.6.2: both packets are
/// ack-eliciting and declared lost, "none of the packets sent between the
/// send times of these two packets are acknowledged", and "a prior RTT
/// sample existed when these two packets were sent" (both were sent after
/// [`RttEstimator::first_sample_time`]).
pub fn establishes_persistent_congestion(
    earliest: Instant,
    latest: Instant,
    duration: Duration,
) -> bool {
    // RFC 9002 §7.6.2: "the duration between the send times of these two
    // packets exceeds the persistent congestion duration".
    latest.saturating_duration_since(earliest) > duration
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::{GRANULARITY, test_epoch};

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn sampled(latest: Duration) -> RttEstimator {
        let mut rtt = RttEstimator::default();
        rtt.update(test_epoch(), latest, Duration::ZERO, ms(25), true);
        rtt
    }

    #[test]
    fn initial_pto_is_one_second_without_max_ack_delay() {
        let rtt = RttEstimator::default();
        for space in [PacketNumberSpace::Initial, PacketNumberSpace::Handshake] {
            assert_eq!(pto_duration(&rtt, space, ms(25), 0), ms(999));
        }
    }

    // RFC 9002 §6.2.1: Initial and Handshake use max_ack_delay = 0; the
    // Application Data space includes it.
    #[test]
    fn only_application_data_includes_max_ack_delay() {
        let rtt = sampled(ms(100)); // srtt 100, rttvar 50: base 300
        assert_eq!(
            pto_duration(&rtt, PacketNumberSpace::Initial, ms(25), 0),
            ms(300)
        );
        assert_eq!(
            pto_duration(&rtt, PacketNumberSpace::Handshake, ms(25), 0),
            ms(300)
        );
        assert_eq!(
            pto_duration(&rtt, PacketNumberSpace::ApplicationData, ms(25), 0),
            ms(325)
        );
    }

    // RFC 9002 §6.2.1: each expiration doubles the period, max_ack_delay
    // included (Appendix A.8).
    #[test]
    fn backoff_doubles_and_saturates() {
        let rtt = sampled(ms(100));
        let app = PacketNumberSpace::ApplicationData;
        assert_eq!(pto_duration(&rtt, app, ms(25), 1), ms(650));
        assert_eq!(pto_duration(&rtt, app, ms(25), 3), ms(2600));
        assert_eq!(
            pto_duration(&rtt, PacketNumberSpace::Handshake, ms(25), 2),
            ms(1200)
        );
        // No panic on absurd counts.
        assert!(pto_duration(&rtt, app, ms(25), 40) >= pto_duration(&rtt, app, ms(25), 31));
        assert_eq!(pto_duration(&rtt, app, Duration::MAX, 1), Duration::MAX);
    }

    // RFC 9002 §6.2.1: "The PTO period MUST be at least kGranularity".
    #[test]
    fn pto_at_least_granularity() {
        let rtt = RttEstimator::new(Duration::ZERO);
        assert_eq!(
            pto_duration(&rtt, PacketNumberSpace::Initial, ms(25), 0),
            GRANULARITY
        );
    }

    // RFC 9002 §7.6.1: the duration includes max_ack_delay whatever the
    // space, times kPersistentCongestionThreshold = 3.
    #[test]
    fn persistent_congestion_duration_worked() {
        let rtt = sampled(ms(100));
        assert_eq!(persistent_congestion_duration(&rtt, ms(25)), ms(975));
    }

    // RFC 9002 §7.6.3's example: period 2 per PTO, threshold 3 -> duration
    // 6; losses from t=1 to t=8 span 7 > 6.
    #[test]
    fn rfc_example_establishes_persistent_congestion() {
        let t0 = test_epoch();
        let unit = Duration::from_secs(1);
        let duration = unit * 2 * PERSISTENT_CONGESTION_THRESHOLD;
        assert!(establishes_persistent_congestion(
            t0 + unit,
            t0 + unit * 8,
            duration
        ));
        // Exactly equal does not "exceed".
        assert!(!establishes_persistent_congestion(
            t0 + unit,
            t0 + unit * 7,
            duration
        ));
        assert!(!establishes_persistent_congestion(
            t0 + unit * 8,
            t0 + unit,
            duration
        ));
    }
}
