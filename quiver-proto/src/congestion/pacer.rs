//! A token-bucket pacer (RFC 9002 §7.7).

use std::time::{Duration, Instant};

/// The pacing gain N as `numerator / denominator`: RFC 9002 §7.7: "Using a
/// value for N that is small, but at least 1 (for example, 1.25) ensures
/// that variations in RTT do not result in underutilization of the
/// congestion window."
pub const PACING_GAIN: (u64, u64) = (5, 4);

/// The packets the pacer always lets out back to back, at any rate.
/// RFC 9002 §7.7: "Senders SHOULD limit bursts to the initial congestion
/// window", which is ten packets (§7.2).
pub const MAX_BURST_PACKETS: u64 = 10;

/// The time's worth of the pacing rate the bucket holds when that is more
/// than [`MAX_BURST_PACKETS`]: bursts above the initial window are allowed
/// only at rates where they last a quarter of a millisecond (RFC 9002
/// §7.7: "A sender with knowledge that the network path to the receiver
/// can absorb larger bursts MAY use a higher limit"), i.e. above 48 MB/s
/// with 1200-byte packets. Chosen by measurement (README, "Pacing and
/// GSO"): a millisecond (draft-ietf-ccwg-bbr §5.6.3's quantum) took 30%
/// more drops at a 64 KB bottleneck queue at 50 Mbit/s (median of 10 runs:
/// 256 against 191 without growth), a quarter the same as without growth
/// (204), while on loopback both cut CPU per byte alike (larger GSO
/// batches).
pub const BURST_TIME: Duration = Duration::from_micros(250);

/// The largest burst: draft-ietf-ccwg-bbr §5.6.3's cap on its send
/// quantum ("min(C.send_quantum, 64 KBytes)"), also about what one GSO
/// send carries.
pub const MAX_SEND_QUANTUM: u64 = 64 * 1024;

/// The bucket size for `rate`: [`BURST_TIME`] at that rate (at most
/// [`MAX_SEND_QUANTUM`]) but at least [`MAX_BURST_PACKETS`] packets, never
/// above the congestion window, and at least one packet.
fn burst_capacity(rate: Option<Rate>, cwnd: u64, mtu: u16) -> u64 {
    let floor = MAX_BURST_PACKETS * u64::from(mtu);
    let quantum = rate.map_or(0, |r| r.bytes_in(BURST_TIME));
    quantum
        .min(MAX_SEND_QUANTUM)
        .max(floor)
        .min(cwnd)
        .max(u64::from(mtu))
}

/// Spreads in-flight packets over the round trip (RFC 9002 §7.7: "A sender
/// SHOULD pace sending of all in-flight packets based on input from the
/// congestion controller").
///
/// A leaky bucket, as §7.7 suggests: it fills at
/// `rate = N * congestion_window / smoothed_rtt` bytes per unit of time and
/// holds at most `BURST_TIME` (250 µs) at that rate, between
/// `MAX_BURST_PACKETS * mtu` and `MAX_SEND_QUANTUM` (64 KiB), within `cwnd` (but
/// at least one `mtu`), so at most that much leaves in one burst, e.g. one
/// GSO batch. It starts full.
/// Integer arithmetic only, and fractions of a byte carry over between
/// calls, so the result depends on nothing but the inputs.
///
/// Packets carrying only ACK frames "SHOULD therefore not be paced" (§7.7):
/// the caller neither asks [`Pacer::delay`] about them nor reports them to
/// [`Pacer::on_transmit`].
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    tokens: u64,
    capacity: u64,
    /// The instant up to which elapsed time has been turned into tokens;
    /// `None` until the first call.
    last_refill: Option<Instant>,
}

impl Pacer {
    /// A pacer whose bucket will start full.
    pub fn new() -> Self {
        Self::default()
    }

    /// When a packet of `bytes` bytes may be sent: `None` for now, or the
    /// earliest instant (after `now`) at which the bucket will hold enough.
    ///
    /// `cwnd` is the congestion window, `srtt` the smoothed RTT and `mtu`
    /// the maximum datagram size, all as of `now`. A zero `cwnd` or `srtt`
    /// gives no rate to pace at: the answer is `None`. Calling this does not
    /// consume tokens; [`Pacer::on_transmit`] does.
    pub fn delay(
        &mut self,
        now: Instant,
        bytes: u64,
        cwnd: u64,
        srtt: Duration,
        mtu: u16,
    ) -> Option<Instant> {
        self.delay_at(now, bytes, cwnd, srtt, mtu, None)
    }

    /// [`Pacer::delay`] at `rate` bytes per second when the congestion
    /// controller sets one ([`super::Controller::pacing_rate`], e.g. BBR's
    /// `C.pacing_rate`, draft-ietf-ccwg-bbr §5.6.2), else at
    /// `N * cwnd / srtt`. The bucket's size is the same either way.
    pub fn delay_at(
        &mut self,
        now: Instant,
        bytes: u64,
        cwnd: u64,
        srtt: Duration,
        mtu: u16,
        rate: Option<u64>,
    ) -> Option<Instant> {
        let rate = match rate {
            Some(r) if r > 0 => Some(Rate::per_second(r)),
            _ if cwnd == 0 || srtt.is_zero() => None,
            _ => Some(Rate::new(cwnd, srtt)),
        };
        let capacity = burst_capacity(rate, cwnd, mtu);
        let last = *self.last_refill.get_or_insert_with(|| {
            self.tokens = capacity;
            now
        });
        self.capacity = capacity;
        self.tokens = self.tokens.min(capacity);
        let rate = rate?;
        self.refill(now, last, rate);
        // A packet larger than the bucket waits only for a full bucket.
        let needed = bytes.min(capacity);
        if self.tokens >= needed {
            return None;
        }
        // Out of credit: wake for the next packet, not for a send quantum
        // (draft-ietf-ccwg-bbr §5.6.3): a runtime checks due timers between
        // its send rounds, and a wait of a few microseconds is due by the
        // next round, while a longer one sleeps until its timer fires,
        // a millisecond later with tokio. Waiting for 64 KiB that way
        // stalled a loopback transfer at about 1 Gbit/s (README, "Pacing
        // and GSO"). Batches form all the same from what accumulates
        // between rounds, up to the bucket.
        let wait = rate.time_for(needed - self.tokens);
        let last = self.last_refill.unwrap_or(now);
        Some(
            last.checked_add(wait)
                .or_else(|| now.checked_add(srtt.max(Duration::from_millis(1))))
                .unwrap_or(now),
        )
    }

    /// A paced packet of `bytes` bytes was sent: take its tokens.
    pub fn on_transmit(&mut self, bytes: u64) {
        self.tokens = self.tokens.saturating_sub(bytes);
    }

    /// The bytes the bucket held at the last [`Pacer::delay`] call, less
    /// what was sent since.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// The bucket size computed at the last [`Pacer::delay`] call.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    fn refill(&mut self, now: Instant, last: Instant, rate: Rate) {
        let elapsed = now.saturating_duration_since(last);
        let missing = self.capacity - self.tokens;
        if elapsed >= rate.time_for(missing) {
            // Full: surplus time is not banked.
            self.tokens = self.capacity;
            self.last_refill = Some(now);
            return;
        }
        let added = rate.bytes_in(elapsed);
        if added > 0 {
            self.tokens += added;
            // Advance only by the time those whole bytes took, so the
            // fraction of a byte earned so far carries over.
            self.last_refill = Some(last + rate.time_for(added));
        }
    }
}

/// `N * cwnd / srtt` bytes per nanosecond, as the exact fraction `num / den`.
#[derive(Debug, Clone, Copy)]
struct Rate {
    num: u128,
    den: u128,
}

impl Rate {
    fn new(cwnd: u64, srtt: Duration) -> Self {
        // RFC 9002 §7.7: "rate = N * congestion_window / smoothed_rtt".
        let (gain_num, gain_den) = PACING_GAIN;
        Self {
            num: u128::from(gain_num) * u128::from(cwnd),
            den: u128::from(gain_den) * srtt.as_nanos(),
        }
    }

    /// `bytes_per_second`, exactly.
    fn per_second(bytes_per_second: u64) -> Self {
        Self {
            num: u128::from(bytes_per_second),
            den: 1_000_000_000,
        }
    }

    /// Whole bytes earned in `elapsed` (rounded down), saturating. Called
    /// with `elapsed` below the time to fill the bucket, or a send quantum's
    /// time.
    fn bytes_in(&self, elapsed: Duration) -> u64 {
        let earned = elapsed
            .as_nanos()
            .checked_mul(self.num)
            .map_or(u128::MAX, |n| n / self.den);
        u64::try_from(earned).unwrap_or(u64::MAX)
    }

    /// The shortest time that earns `bytes` bytes (rounded up).
    fn time_for(&self, bytes: u64) -> Duration {
        let nanos = (u128::from(bytes) * self.den).div_ceil(self.num);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::test_epoch;

    const MTU: u16 = 1200;
    const CWND: u64 = 12_000;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Sends as fast as the pacer allows, polling every `step`, until `end`;
    /// returns the send times.
    fn run(pacer: &mut Pacer, start: Instant, end: Instant, step: Duration) -> Vec<Instant> {
        let mut sent = Vec::new();
        let mut now = start;
        while now < end {
            match pacer.delay(now, 1200, CWND, ms(100), MTU) {
                None => {
                    pacer.on_transmit(1200);
                    sent.push(now);
                }
                Some(at) => {
                    assert!(at > now, "a delay lies in the future");
                    now += step;
                }
            }
        }
        sent
    }

    // RFC 9002 §7.7: bursts limited to the initial window (10 packets).
    #[test]
    fn initial_burst_then_paced() {
        let t0 = test_epoch();
        let mut pacer = Pacer::new();
        for _ in 0..10 {
            assert_eq!(pacer.delay(t0, 1200, CWND, ms(100), MTU), None);
            pacer.on_transmit(1200);
        }
        // rate = 1.25 * 12000 B / 100 ms = 150 B/ms: 1200 B every 8 ms.
        assert_eq!(pacer.delay(t0, 1200, CWND, ms(100), MTU), Some(t0 + ms(8)));
        assert_eq!(
            pacer.delay(t0 + ms(3), 1200, CWND, ms(100), MTU),
            Some(t0 + ms(8))
        );
        assert_eq!(pacer.delay(t0 + ms(8), 1200, CWND, ms(100), MTU), None);
    }

    // RFC 9002 §7.7: "interval = ( smoothed_rtt * packet_size /
    // congestion_window ) / N" once the burst is spent.
    #[test]
    fn steady_rate_matches_formula() {
        let t0 = test_epoch();
        let mut pacer = Pacer::new();
        let sent = run(&mut pacer, t0, t0 + ms(1000), Duration::from_micros(100));
        // 10 at once, then one per 8 ms for 1 s: 10 + 124 (t=8..=992).
        assert_eq!(sent.len(), 10 + 124);
        for w in sent[10..].windows(2) {
            assert_eq!(w[1] - w[0], ms(8));
        }
    }

    // Fractions of a byte carry over: polling very often loses no credit.
    #[test]
    fn frequent_polling_does_not_lose_tokens() {
        let t0 = test_epoch();
        let mut coarse = Pacer::new();
        let mut fine = Pacer::new();
        let end = t0 + ms(200);
        let a = run(&mut coarse, t0, end, ms(1));
        let b = run(&mut fine, t0, end, Duration::from_micros(7));
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn idle_time_refills_only_to_capacity() {
        let t0 = test_epoch();
        let mut pacer = Pacer::new();
        pacer.delay(t0, 1200, CWND, ms(100), MTU);
        pacer.on_transmit(12_000);
        assert_eq!(pacer.tokens(), 0);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(pacer.delay(later, 1200, CWND, ms(100), MTU), None);
        assert_eq!(pacer.tokens(), 12_000);
        let sent = run(&mut pacer, later, later + ms(1), Duration::from_micros(10));
        assert_eq!(sent.len(), 10);
    }

    // A controller's own rate replaces N * cwnd / srtt.
    #[test]
    fn controller_rate_overrides_window_rate() {
        let t0 = test_epoch();
        let mut pacer = Pacer::new();
        for _ in 0..10 {
            assert_eq!(
                pacer.delay_at(t0, 1200, CWND, ms(100), MTU, Some(600_000)),
                None
            );
            pacer.on_transmit(1200);
        }
        // 600 kB/s: 1200 B every 2 ms (the window's rate would be 8 ms).
        assert_eq!(
            pacer.delay_at(t0, 1200, CWND, ms(100), MTU, Some(600_000)),
            Some(t0 + ms(2))
        );
        // Paced even before an RTT sample exists.
        let mut fresh = Pacer::new();
        fresh.delay_at(t0, 1200, CWND, Duration::ZERO, MTU, Some(600_000));
        fresh.on_transmit(12_000);
        assert_eq!(
            fresh.delay_at(t0, 1200, CWND, Duration::ZERO, MTU, Some(600_000)),
            Some(t0 + ms(2))
        );
    }

    #[test]
    fn capacity_follows_window_and_mtu() {
        let t0 = test_epoch();
        let mut pacer = Pacer::new();
        pacer.delay(t0, 1200, 2_400, ms(100), MTU);
        assert_eq!(pacer.capacity(), 2_400);
        pacer.delay(t0, 1200, 1_000_000, ms(100), MTU);
        assert_eq!(pacer.capacity(), 12_000);
        pacer.delay(t0, 1200, 100, ms(100), MTU);
        assert_eq!(pacer.capacity(), 1_200, "at least one packet");
        // A packet above capacity waits for a full bucket, not forever.
        pacer.on_transmit(1_200);
        assert!(pacer.delay(t0, 5_000, 100, ms(100), MTU).is_some());
    }

    // RFC 9002 §7.7: bursts of the initial window (ten packets), more only
    // at rates where a burst lasts a quarter millisecond, never above 64 KiB
    // (draft-ietf-ccwg-bbr §5.6.3) nor the congestion window.
    #[test]
    fn capacity_grows_with_the_rate() {
        let t0 = test_epoch();
        let big = 100_000_000;
        // 1.25 * 100 MB / 100 ms = 1.25 GB/s: 312,500 B per 250 µs, capped.
        let mut pacer = Pacer::new();
        pacer.delay(t0, 1200, big, ms(100), MTU);
        assert_eq!(pacer.capacity(), MAX_SEND_QUANTUM);
        // 120 MB/s from the controller: 30,000 B per 250 µs.
        pacer.delay_at(t0, 1200, big, ms(100), MTU, Some(120_000_000));
        assert_eq!(pacer.capacity(), 30_000);
        // 30 MB/s: 7,500 B per 250 µs, below the ten-packet floor.
        pacer.delay_at(t0, 1200, big, ms(100), MTU, Some(30_000_000));
        assert_eq!(pacer.capacity(), 12_000);
        // Within the window.
        pacer.delay_at(t0, 1200, 20_000, ms(100), MTU, Some(120_000_000));
        assert_eq!(pacer.capacity(), 20_000);
    }

    // With the bucket a quarter millisecond deep, a sender woken that often
    // keeps the rate (a ten-packet bucket would cap it at 48 MB/s).
    #[test]
    fn wake_ups_every_burst_time_keep_the_rate() {
        let t0 = test_epoch();
        let rate = 192_000_000; // 48,000 B per 250 µs: 40 packets.
        let mut pacer = Pacer::new();
        let mut now = t0;
        let mut sent = 0u64;
        let end = t0 + ms(20);
        while now < end {
            while pacer
                .delay_at(now, 1200, u64::MAX / 4, ms(10), MTU, Some(rate))
                .is_none()
            {
                pacer.on_transmit(1200);
                sent += 1200;
            }
            now += BURST_TIME;
        }
        // 20 ms at 192 MB/s is 3.84 MB.
        assert_eq!(sent, 3_840_000);
    }

    #[test]
    fn no_rate_means_no_pacing() {
        let t0 = test_epoch();
        let mut pacer = Pacer::new();
        pacer.delay(t0, 1200, CWND, ms(100), MTU);
        pacer.on_transmit(12_000);
        assert_eq!(pacer.delay(t0, 1200, CWND, Duration::ZERO, MTU), None);
        assert_eq!(pacer.delay(t0, 1200, 0, ms(100), MTU), None);
    }

    #[test]
    fn deterministic() {
        let t0 = test_epoch();
        let step = Duration::from_micros(333);
        let a = run(&mut Pacer::new(), t0, t0 + ms(300), step);
        let b = run(&mut Pacer::new(), t0, t0 + ms(300), step);
        assert_eq!(a, b);
    }
}
