//! Delivery-rate estimation (draft-ietf-ccwg-bbr-latest, 3 August 2026,
//! §4.1 "Delivery Rate Samples", which absorbed
//! draft-cheng-iccrg-delivery-rate-estimation).
//!
//! The connection keeps one [`DeliveryRateEstimator`] per path (the "C"
//! state of §4.1.2.1.1), snapshots it into a [`PacketDelivery`] stored in
//! each in-flight packet's record (the "P" state of §4.1.2.1.2, a few words
//! inside the existing record: nothing is allocated per packet), and on
//! each ACK builds a [`RateSample`] (the "RS" output of §4.1.2.1.3) that
//! congestion controllers receive through
//! [`super::Controller::on_rate_sample`].
//!
//! Deviations, each for QUIC: the packet identifier is the packet number
//! but packet numbers of different spaces are not comparable, so
//! `IsNewestPacket` orders by send time first (as the draft does) and uses
//! the packet number only to break ties within one ACK (one space);
//! `C.pending_transmissions` is always zero (the connection hands datagrams
//! to the runtime as it writes them) and `C.lost_out <= C.retrans_out` is
//! taken as true (QUIC retransmits frames, not packets, and lost frames are
//! queued as ordinary unsent data, which `NoUnsentData()` already sees).

use std::time::{Duration, Instant};

/// A packet's snapshot of the connection's delivery state when it was
/// sent (draft-ietf-ccwg-bbr §4.1.2.1.2, per-packet state). `Copy` and a
/// few words: it lives inside the sent-packet record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketDelivery {
    /// `P.delivered`: bytes delivered when the packet was sent.
    pub delivered: u64,
    /// `P.delivered_time`: when `delivered` last changed, as of sending.
    pub delivered_time: Instant,
    /// `P.first_send_time`: the start of the send interval.
    pub first_send_time: Instant,
    /// `P.is_app_limited`: sent during an application-limited phase.
    pub is_app_limited: bool,
    /// `P.tx_in_flight`: bytes in flight just after sending it (itself
    /// included).
    pub tx_in_flight: u64,
    /// `P.lost`: bytes declared lost when it was sent.
    pub lost: u64,
    /// Which activation of an estimator took the snapshot: packets sent on
    /// another path (before a migration) are not part of this path's
    /// samples.
    pub epoch: u32,
}

impl PacketDelivery {
    /// A blank snapshot at `now` (for a packet not counted in flight; the
    /// connection overwrites it for in-flight ones).
    pub fn new(now: Instant) -> Self {
        Self {
            delivered: 0,
            delivered_time: now,
            first_send_time: now,
            is_app_limited: false,
            tx_in_flight: 0,
            lost: 0,
            epoch: u32::MAX,
        }
    }
}

/// One ACK's delivery-rate sample (draft-ietf-ccwg-bbr §4.1.2.1.3 and the
/// per-ACK state of §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSample {
    /// `RS.delivery_rate` in bytes per second; zero when the interval was
    /// shorter than the minimum RTT (no reliable rate, §4.1.2.3).
    pub delivery_rate: u64,
    /// `RS.interval`: the longer of the send and ACK intervals.
    pub interval: Duration,
    /// `RS.delivered`: bytes delivered over `interval`.
    pub delivered: u64,
    /// `RS.prior_delivered`: `P.delivered` of the newest packet acknowledged.
    pub prior_delivered: u64,
    /// `RS.is_app_limited`: `P.is_app_limited` of that packet.
    pub is_app_limited: bool,
    /// `RS.rtt`: the RTT of that packet (the latest sent of those this ACK
    /// acknowledged, §5.5.7.1), without ack-delay adjustment.
    pub rtt: Duration,
    /// `RS.newly_acked`: in-flight bytes this ACK acknowledged.
    pub newly_acked: u64,
    /// `RS.newly_lost`: bytes declared lost since the previous sample
    /// (while processing this ACK, or by a loss timer before it).
    pub newly_lost: u64,
    /// `RS.tx_in_flight`: `P.tx_in_flight` of the newest packet acknowledged.
    pub tx_in_flight: u64,
    /// `RS.lost`: bytes declared lost between sending that packet and now.
    pub lost: u64,
    /// `C.delivered` after this ACK: total bytes delivered on the path.
    pub total_delivered: u64,
}

/// A packet declared lost, as a congestion controller sees it (what
/// draft-ietf-ccwg-bbr §5.5.10.2 `HandleLostPacket(P)` reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostPacket {
    /// The packet's size in bytes.
    pub size: u64,
    /// `P.tx_in_flight`.
    pub tx_in_flight: u64,
    /// `C.lost - P.lost`: bytes lost since it was sent, itself included.
    pub lost_since_sent: u64,
    /// `P.is_app_limited`.
    pub is_app_limited: bool,
    /// `C.delivered` now.
    pub total_delivered: u64,
}

/// The newest packet acknowledged so far by the ACK being processed.
#[derive(Debug, Clone, Copy)]
struct Newest {
    delivery: PacketDelivery,
    send_time: Instant,
    pn: u64,
}

/// The per-path delivery state (draft-ietf-ccwg-bbr §4.1.2.1.1) and the
/// sample under construction.
#[derive(Debug, Clone)]
pub struct DeliveryRateEstimator {
    /// `C.delivered`.
    delivered: u64,
    /// `C.delivered_time`.
    delivered_time: Instant,
    /// `C.first_send_time`.
    first_send_time: Instant,
    /// `C.app_limited`: the `delivered` value that ends the current
    /// application-limited phase, or 0.
    app_limited: u64,
    /// `C.lost`.
    lost: u64,
    /// The ACK being processed: its newest packet and bytes acknowledged.
    newest: Option<Newest>,
    newly_acked: u64,
    newly_lost: u64,
    /// This activation's tag for [`PacketDelivery::epoch`].
    epoch: u32,
}

impl DeliveryRateEstimator {
    /// A fresh estimator for a path first used at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            delivered: 0,
            delivered_time: now,
            first_send_time: now,
            app_limited: 0,
            lost: 0,
            newest: None,
            newly_acked: 0,
            newly_lost: 0,
            epoch: 0,
        }
    }

    /// The estimator becomes the active path's again (or for the first
    /// time) after `previous`: snapshots taken under any earlier
    /// activation, by packets sent on another path, no longer match, so
    /// their acknowledgments and losses are left out of this path's
    /// samples (a sample mixing two paths' counters is meaningless).
    pub fn activate_after(&mut self, previous: &Self) {
        self.epoch = previous
            .epoch
            .wrapping_add(1)
            .max(self.epoch.wrapping_add(1));
        self.newest = None;
        self.newly_acked = 0;
        self.newly_lost = 0;
    }

    /// `C.delivered`: bytes delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// `C.lost`: bytes declared lost so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Whether the path is in an application-limited phase
    /// (`C.app_limited != 0`).
    pub fn is_app_limited(&self) -> bool {
        self.app_limited != 0
    }

    /// §4.1.2.2 `OnPacketSent`: the snapshot to store with an in-flight
    /// packet sent at `now`; `in_flight_before` excludes it,
    /// `in_flight_after` includes it.
    pub fn on_packet_sent(
        &mut self,
        now: Instant,
        in_flight_before: u64,
        in_flight_after: u64,
    ) -> PacketDelivery {
        if in_flight_before == 0 {
            self.first_send_time = now;
            self.delivered_time = now;
        }
        PacketDelivery {
            delivered: self.delivered,
            delivered_time: self.delivered_time,
            first_send_time: self.first_send_time,
            is_app_limited: self.app_limited != 0,
            tx_in_flight: in_flight_after,
            lost: self.lost,
            epoch: self.epoch,
        }
    }

    /// §4.1.2.4 `MarkConnectionAppLimited`: the sender ran out of data
    /// with the window open (or a controller asked to discount samples).
    pub fn mark_app_limited(&mut self, bytes_in_flight: u64) {
        self.app_limited = (self.delivered + bytes_in_flight).max(1);
    }

    /// §4.1.2.3 `UpdateRateSample(P)`: in-flight packet `pn` of `size`
    /// bytes, sent at `send_time` with snapshot `p`, is newly acknowledged
    /// at `now`. Called for each such packet of one ACK, then
    /// [`Self::generate`].
    pub fn on_packet_acked(
        &mut self,
        now: Instant,
        pn: u64,
        send_time: Instant,
        size: u64,
        p: &PacketDelivery,
    ) {
        if p.epoch != self.epoch {
            return; // sent on another path
        }
        self.delivered += size;
        self.delivered_time = now;
        self.newly_acked += size;
        // IsNewestPacket(P), with send time compared first.
        let newest = match &self.newest {
            None => true,
            Some(n) => send_time > n.send_time || (send_time == n.send_time && pn > n.pn),
        };
        if newest {
            self.newest = Some(Newest {
                delivery: *p,
                send_time,
                pn,
            });
            self.first_send_time = send_time;
        }
    }

    /// An in-flight packet of `size` bytes with snapshot `p` was declared
    /// lost: `C.lost` grows, and the returned view is what a controller's
    /// per-loss step reads (§5.2.4).
    /// `None` for a packet sent on another path.
    pub fn on_packet_lost(&mut self, size: u64, p: &PacketDelivery) -> Option<LostPacket> {
        if p.epoch != self.epoch {
            return None;
        }
        self.lost += size;
        self.newly_lost += size;
        Some(LostPacket {
            size,
            tx_in_flight: p.tx_in_flight,
            lost_since_sent: self.lost.saturating_sub(p.lost),
            is_app_limited: p.is_app_limited,
            total_delivered: self.delivered,
        })
    }

    /// §4.1.2.3 `GenerateRateSample`: the sample of the ACK whose packets
    /// were passed to [`Self::on_packet_acked`] (at `now`; `min_rtt` is the
    /// path's minimum RTT, zero before any sample). `None` when the ACK
    /// acknowledged no in-flight packet.
    pub fn generate(&mut self, now: Instant, min_rtt: Duration) -> Option<RateSample> {
        // Clear app-limited field if bubble is ACKed and gone.
        if self.app_limited != 0 && self.delivered > self.app_limited {
            self.app_limited = 0;
        }
        let newly_acked = std::mem::take(&mut self.newly_acked);
        let newly_lost = std::mem::take(&mut self.newly_lost);
        let newest = self.newest.take()?;
        let p = newest.delivery;
        let send_elapsed = newest
            .send_time
            .saturating_duration_since(p.first_send_time);
        let ack_elapsed = self
            .delivered_time
            .saturating_duration_since(p.delivered_time);
        // "Use the longer of the send_elapsed and ack_elapsed".
        let interval = send_elapsed.max(ack_elapsed);
        let delivered = self.delivered.saturating_sub(p.delivered);
        // "Normally we expect interval >= MinRTT": shorter gives no
        // reliable rate sample.
        let delivery_rate = if interval < min_rtt || interval.is_zero() {
            0
        } else {
            rate(delivered, interval)
        };
        Some(RateSample {
            delivery_rate,
            interval,
            delivered,
            prior_delivered: p.delivered,
            is_app_limited: p.is_app_limited,
            rtt: now.saturating_duration_since(newest.send_time),
            newly_acked,
            newly_lost,
            tx_in_flight: p.tx_in_flight,
            lost: self.lost.saturating_sub(p.lost),
            total_delivered: self.delivered,
        })
    }
}

/// `bytes / interval` in bytes per second (saturating).
pub fn rate(bytes: u64, interval: Duration) -> u64 {
    let nanos = interval.as_nanos().max(1);
    u64::try_from(u128::from(bytes) * 1_000_000_000 / nanos).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::test_epoch;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// A sender that sends `n` 1000-byte packets every `gap`, all acked one
    /// RTT later, one ACK per packet.
    #[test]
    fn steady_flow_measures_its_rate() {
        let t0 = test_epoch();
        let mut e = DeliveryRateEstimator::new(t0);
        let mut sent = Vec::new();
        let mut inflight = 0;
        // 1000 bytes per ms = 1 MB/s, RTT 50 ms.
        for i in 0..200u64 {
            let now = t0 + ms(i);
            let p = e.on_packet_sent(now, inflight, inflight + 1000);
            inflight += 1000;
            sent.push((i, now, p));
            // Acks of packets sent 50 ms ago.
            if i >= 50 {
                let (pn, at, p) = sent[(i - 50) as usize];
                e.on_packet_acked(now, pn, at, 1000, &p);
                inflight -= 1000;
                let rs = e.generate(now, ms(50)).expect("sample");
                assert_eq!(rs.newly_acked, 1000);
                assert_eq!(rs.rtt, ms(50));
                // From the second round trip of ACKs on (the first
                // packets' intervals start at the first send).
                if i >= 102 {
                    // Send and ACK intervals both 51 ms (the packet was
                    // sent just after the previous ACK) at 1000 B/ms.
                    assert_eq!(rs.interval, ms(51));
                    assert_eq!(rs.delivered, 51_000);
                    assert_eq!(rs.delivery_rate, 1_000_000);
                    assert!(!rs.is_app_limited);
                    assert_eq!(rs.tx_in_flight, 51_000);
                }
            }
        }
    }

    // §4.1.2.3: an interval shorter than min_rtt gives no rate.
    #[test]
    fn short_interval_gives_no_rate() {
        let t0 = test_epoch();
        let mut e = DeliveryRateEstimator::new(t0);
        let p = e.on_packet_sent(t0, 0, 1000);
        e.on_packet_acked(t0 + ms(10), 0, t0, 1000, &p);
        let rs = e.generate(t0 + ms(10), ms(20)).unwrap();
        assert_eq!(rs.delivery_rate, 0);
        assert_eq!(rs.delivered, 1000);
        let p = e.on_packet_sent(t0 + ms(10), 0, 1000);
        e.on_packet_acked(t0 + ms(40), 1, t0 + ms(10), 1000, &p);
        let rs = e.generate(t0 + ms(40), ms(20)).unwrap();
        assert_eq!(rs.delivery_rate, rate(1000, ms(30)));
        assert!(e.generate(t0 + ms(41), ms(20)).is_none(), "nothing acked");
    }

    // §4.1.2.4: samples of packets sent while app-limited are marked until
    // the bubble is delivered.
    #[test]
    fn app_limited_bubble_marks_samples_until_delivered() {
        let t0 = test_epoch();
        let mut e = DeliveryRateEstimator::new(t0);
        let a = e.on_packet_sent(t0, 0, 1000);
        e.mark_app_limited(1000);
        assert!(e.is_app_limited());
        let b = e.on_packet_sent(t0 + ms(1), 1000, 2000);
        assert!(!a.is_app_limited && b.is_app_limited);
        e.on_packet_acked(t0 + ms(30), 0, t0, 1000, &a);
        let rs = e.generate(t0 + ms(30), ms(1)).unwrap();
        assert!(!rs.is_app_limited);
        assert!(e.is_app_limited(), "delivered 1000, bubble ends past 1000");
        e.on_packet_acked(t0 + ms(31), 1, t0 + ms(1), 1000, &b);
        let rs = e.generate(t0 + ms(31), ms(1)).unwrap();
        assert!(rs.is_app_limited);
        assert!(!e.is_app_limited(), "bubble delivered");
    }

    // RS.lost and the loss view count losses since the packet was sent.
    #[test]
    fn losses_since_send() {
        let t0 = test_epoch();
        let mut e = DeliveryRateEstimator::new(t0);
        let a = e.on_packet_sent(t0, 0, 1000);
        let b = e.on_packet_sent(t0, 1000, 2000);
        let c = e.on_packet_sent(t0, 2000, 3000);
        let l = e.on_packet_lost(1000, &a).unwrap();
        assert_eq!(l.lost_since_sent, 1000);
        assert_eq!(l.tx_in_flight, 1000);
        let l = e.on_packet_lost(1000, &b).unwrap();
        assert_eq!(l.lost_since_sent, 2000);
        e.on_packet_acked(t0 + ms(20), 2, t0, 1000, &c);
        let rs = e.generate(t0 + ms(20), ms(1)).unwrap();
        assert_eq!(rs.lost, 2000);
        assert_eq!(rs.newly_lost, 2000);
        assert_eq!(rs.tx_in_flight, 3000);
        assert_eq!(e.lost(), 2000);
    }

    // After a path change, packets sent on the other path are left out.
    #[test]
    fn packets_of_another_activation_are_ignored() {
        let t0 = test_epoch();
        let mut old = DeliveryRateEstimator::new(t0);
        let a = old.on_packet_sent(t0, 0, 1000);
        let mut new = DeliveryRateEstimator::new(t0);
        new.activate_after(&old);
        let b = new.on_packet_sent(t0 + ms(1), 0, 1000);
        assert!(new.on_packet_lost(1000, &a).is_none());
        new.on_packet_acked(t0 + ms(30), 0, t0, 1000, &a);
        assert!(new.generate(t0 + ms(30), ms(1)).is_none());
        new.on_packet_acked(t0 + ms(31), 1, t0 + ms(1), 1000, &b);
        let rs = new.generate(t0 + ms(31), ms(1)).unwrap();
        assert_eq!(rs.delivered, 1000);
        // Back to the old path: its own earlier packets no longer count.
        old.activate_after(&new);
        old.on_packet_acked(t0 + ms(40), 0, t0, 1000, &a);
        assert!(old.generate(t0 + ms(40), ms(1)).is_none());
        assert_eq!(old.delivered(), 0);
    }

    // A stretch ACK takes its sample from the newest packet it covers.
    #[test]
    fn newest_packet_of_a_stretch_ack() {
        let t0 = test_epoch();
        let mut e = DeliveryRateEstimator::new(t0);
        let a = e.on_packet_sent(t0, 0, 1000);
        let b = e.on_packet_sent(t0 + ms(5), 1000, 2000);
        e.on_packet_acked(t0 + ms(40), 1, t0 + ms(5), 1000, &b);
        e.on_packet_acked(t0 + ms(40), 0, t0, 1000, &a);
        let rs = e.generate(t0 + ms(40), ms(1)).unwrap();
        assert_eq!(rs.rtt, ms(35));
        assert_eq!(rs.newly_acked, 2000);
        assert_eq!(rs.tx_in_flight, 2000);
        assert_eq!(rs.delivered, 2000);
        assert_eq!(e.delivered(), 2000);
    }
}
