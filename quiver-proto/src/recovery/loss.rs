//! Acknowledgment-based loss detection (RFC 9002 §6.1; Appendix A.10).

use std::time::{Duration, Instant};

use super::{GRANULARITY, PACKET_THRESHOLD, RttEstimator, TIME_THRESHOLD};

/// The time threshold after which an unacknowledged packet sent before an
/// acknowledged one is lost (RFC 9002 §6.1.2):
///
/// `max(kTimeThreshold * max(smoothed_rtt, latest_rtt), kGranularity)`
pub fn loss_delay(rtt: &RttEstimator) -> Duration {
    let (num, den) = TIME_THRESHOLD;
    loss_delay_with(rtt, num, den)
}

/// [`loss_delay`] with the time threshold `num / den` instead of RFC 9002's
/// 9/8 (a sender that has seen reordering may widen it, RFC 8985 §6.2).
pub fn loss_delay_with(rtt: &RttEstimator, num: u32, den: u32) -> Duration {
    let rtt = rtt.smoothed_rtt().max(rtt.latest_rtt());
    // RFC 9002 §6.1.2: "this time threshold MUST be set to at least the
    // local timer granularity".
    (rtt.saturating_mul(num) / den).max(GRANULARITY)
}

/// Finds the packets of one packet number space that are now lost (RFC 9002
/// §6.1; Appendix A.10 `DetectAndRemoveLostPackets`).
///
/// `unacked` yields `(packet_number, time_sent)` for every packet of the
/// space that is still unacknowledged and not yet declared lost, in any
/// order; `largest_acked` is the largest packet number acknowledged in the
/// space and `loss_delay` comes from [`loss_delay`]. `on_lost` is called
/// with each lost packet number, in the iteration order; the caller removes
/// those records and hands them to congestion control.
///
/// Returns the earliest time at which a remaining packet at or below
/// `largest_acked` will cross the time threshold: RFC 9002 §6.1.2: "If
/// packets sent prior to the largest acknowledged packet cannot yet be
/// declared lost, then a timer SHOULD be set for the remaining time."
///
/// The packet threshold assumes no sender-induced gaps in packet numbers
/// (Appendix A.10); a sender that skips numbers (e.g. to detect optimistic
/// ACKs) should not count them.
pub fn detect_lost<I, F>(
    now: Instant,
    largest_acked: u64,
    loss_delay: Duration,
    unacked: I,
    on_lost: F,
) -> Option<Instant>
where
    I: IntoIterator<Item = (u64, Instant)>,
    F: FnMut(u64),
{
    detect_lost_with(
        now,
        largest_acked,
        loss_delay,
        PACKET_THRESHOLD,
        unacked,
        on_lost,
    )
}

/// [`detect_lost`] with `packet_threshold` instead of RFC 9002's 3 (a
/// sender that has seen reordering may raise it, RFC 8985 §6.2).
pub fn detect_lost_with<I, F>(
    now: Instant,
    largest_acked: u64,
    loss_delay: Duration,
    packet_threshold: u64,
    unacked: I,
    on_lost: F,
) -> Option<Instant>
where
    I: IntoIterator<Item = (u64, Instant)>,
    F: FnMut(u64),
{
    detect_lost_skipping(
        now,
        largest_acked,
        loss_delay,
        packet_threshold,
        &[],
        unacked,
        on_lost,
    )
}

/// [`detect_lost_with`] for a sender that skipped the packet numbers in
/// `skipped` (ascending): the packet threshold counts packets sent, not
/// numbers (Appendix A.10 assumes no gaps the sender made; RFC 9000 §21.4
/// lets it make some).
pub fn detect_lost_skipping<I, F>(
    now: Instant,
    largest_acked: u64,
    loss_delay: Duration,
    packet_threshold: u64,
    skipped: &[u64],
    unacked: I,
    mut on_lost: F,
) -> Option<Instant>
where
    I: IntoIterator<Item = (u64, Instant)>,
    F: FnMut(u64),
{
    let skipped_up_to_largest = skipped.partition_point(|&s| s <= largest_acked);
    // Packets sent at or before this time are deemed lost. Before `now` is
    // that far from the clock's origin, no packet can be.
    let lost_send_time = now.checked_sub(loss_delay);
    let mut loss_time: Option<Instant> = None;
    for (pn, time_sent) in unacked {
        // RFC 9002 §6.1: only a packet "sent prior to an acknowledged
        // packet" can be declared lost.
        if pn > largest_acked {
            continue;
        }
        // RFC 9002 §6.1.1 (packet threshold) and §6.1.2: "an endpoint SHOULD
        // declare an earlier packet lost if it was sent a threshold amount of
        // time in the past."
        let by_time = lost_send_time.is_some_and(|t| time_sent <= t);
        let skipped_after = skipped_up_to_largest - skipped.partition_point(|&s| s <= pn);
        let by_count =
            (largest_acked - pn).saturating_sub(skipped_after as u64) >= packet_threshold;
        if by_time || by_count {
            on_lost(pn);
        } else {
            let at = time_sent + loss_delay;
            loss_time = Some(loss_time.map_or(at, |t| t.min(at)));
        }
    }
    loss_time
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::test_epoch;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn loss_delay_is_nine_eighths_of_larger_rtt() {
        let t0 = test_epoch();
        // Before any sample: 9/8 * 333 ms.
        let mut rtt = RttEstimator::default();
        assert_eq!(loss_delay(&rtt), Duration::from_micros(374_625));
        rtt.update(t0, ms(80), Duration::ZERO, ms(25), true);
        assert_eq!(loss_delay(&rtt), ms(90));
        // latest (160) above smoothed (90): latest wins. 9/8 * 160 = 180.
        rtt.update(t0, ms(160), Duration::ZERO, ms(25), true);
        assert!(rtt.smoothed_rtt() < ms(160));
        assert_eq!(loss_delay(&rtt), ms(180));
    }

    // RFC 9002 §6.1.2: the threshold "MUST be set to at least the local
    // timer granularity".
    #[test]
    fn loss_delay_floor_is_granularity() {
        let mut rtt = RttEstimator::default();
        rtt.update(
            test_epoch(),
            Duration::from_micros(10),
            Duration::ZERO,
            ms(25),
            true,
        );
        assert_eq!(loss_delay(&rtt), GRANULARITY);
    }

    // RFC 9002 §6.1.1: kPacketThreshold = 3.
    #[test]
    fn packet_threshold() {
        let t0 = test_epoch() + ms(1000);
        let sent: Vec<(u64, Instant)> = (0..6).map(|pn| (pn, t0)).collect();
        let mut lost = Vec::new();
        // Acked 5 just now; nothing is old enough for the time threshold.
        let timer = detect_lost(t0 + ms(10), 5, ms(100), sent.clone(), |pn| lost.push(pn));
        assert_eq!(lost, vec![0, 1, 2]);
        // 3 and 4 (and 5 itself if still listed) wait for the time threshold.
        assert_eq!(timer, Some(t0 + ms(100)));
    }

    // RFC 9002 §6.1.1's three packets are packets sent: numbers the sender
    // skipped (RFC 9000 §21.4) between a packet and the largest
    // acknowledged do not count.
    #[test]
    fn packet_threshold_does_not_count_skipped_numbers() {
        let t0 = test_epoch() + ms(1000);
        // Sent 0..=6 but for 3 and 5, which were skipped; 6 acknowledged.
        let sent: Vec<(u64, Instant)> = [0, 1, 2, 4].iter().map(|&pn| (pn, t0)).collect();
        let mut lost = Vec::new();
        let at = t0 + ms(10);
        detect_lost_skipping(at, 6, ms(100), 3, &[3, 5], sent.clone(), |pn| lost.push(pn));
        // 0 and 1 have three packets sent after them and up to 6 (2, 4, 6
        // and more); 2 has only 4 and 6.
        assert_eq!(lost, vec![0, 1]);
        lost.clear();
        // Counting numbers instead, 2 would be lost too (6 - 2 = 4).
        detect_lost_with(at, 6, ms(100), 3, sent, |pn| lost.push(pn));
        assert_eq!(lost, vec![0, 1, 2]);
    }

    // RFC 9002 §6.1.2: time threshold, and the timer for the remainder.
    #[test]
    fn time_threshold_and_loss_timer() {
        let t0 = test_epoch() + ms(1000);
        let sent = vec![
            (10, t0),
            (11, t0 + ms(50)),
            (12, t0 + ms(80)),
            (14, t0 + ms(90)),
        ];
        let mut lost = Vec::new();
        // largest_acked 13: 10..=12 are within 3 packets; 14 is above it.
        let timer = detect_lost(t0 + ms(120), 13, ms(100), sent, |pn| lost.push(pn));
        assert_eq!(lost, vec![10]);
        assert_eq!(timer, Some(t0 + ms(150)));
    }

    #[test]
    fn nothing_below_largest_acked_gives_no_timer() {
        let t0 = test_epoch() + ms(1000);
        let mut lost = Vec::new();
        let timer = detect_lost(t0, 3, ms(10), [(4, t0), (5, t0)], |pn| lost.push(pn));
        assert!(lost.is_empty());
        assert_eq!(timer, None);
    }

    #[test]
    fn boundary_is_inclusive() {
        // Appendix A.10: lost if "time_sent <= lost_send_time".
        let t0 = test_epoch() + ms(1000);
        let mut lost = Vec::new();
        let timer = detect_lost(t0 + ms(100), 1, ms(100), [(0, t0)], |pn| lost.push(pn));
        assert_eq!(lost, vec![0]);
        assert_eq!(timer, None);
    }
}
