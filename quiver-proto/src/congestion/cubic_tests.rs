//! Unit tests of [`Cubic`] (RFC 9438) and its use of HyStart++ (RFC 9406).

use super::*;
use crate::recovery::test_epoch;

const MDS: u16 = 1200;
const SEG: u64 = MDS as u64;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn config(hystart: bool, fast_convergence: bool) -> CubicConfig {
    CubicConfig {
        initial_window: None,
        hystart,
        fast_convergence,
    }
}

/// A controller acknowledged one window per round trip, every packet
/// `rtt` after it was sent.
struct Flow {
    cc: Cubic,
    now: Instant,
    rtt: Duration,
    estimator: RttEstimator,
}

impl Flow {
    fn new(config: CubicConfig, rtt: Duration) -> Self {
        Self {
            cc: Cubic::new(config, MDS),
            now: test_epoch(),
            rtt,
            // Before any sample, smoothed_rtt is the initial RTT.
            estimator: RttEstimator::new(rtt),
        }
    }

    /// A loss of a packet sent just now, then one RTT of acknowledgments of
    /// packets sent before the loss (which change nothing).
    fn loss(&mut self) {
        self.cc.on_congestion_event(self.now, self.now, false, SEG);
        self.now += self.rtt;
    }

    /// One round trip: the window's worth of packets acknowledged, evenly
    /// spread over it.
    fn round(&mut self, app_limited: bool) {
        let n = (self.cc.window() / SEG).max(1);
        let start = self.now;
        for i in 0..n {
            let now = start + self.rtt * (i as u32) / (n as u32);
            let sent = now - self.rtt + Duration::from_micros(1);
            self.cc.on_ack(now, sent, SEG, app_limited, &self.estimator);
        }
        self.now = start + self.rtt;
    }

    /// Rounds until `t` after the current stage's first acknowledgment.
    fn run_until(&mut self, t: Duration) {
        let epoch = self.cc.epoch.unwrap_or(self.now);
        while self.now < epoch + t {
            self.round(false);
        }
    }

    fn segments(&self) -> f64 {
        self.cc.window() as f64 / SEG as f64
    }
}

/// A flow in congestion avoidance after a loss at `w_max` segments.
fn after_loss_at(w_max: u64, rtt: Duration, fast_convergence: bool) -> Flow {
    let mut f = Flow::new(
        CubicConfig {
            initial_window: Some(w_max * SEG),
            ..config(false, fast_convergence)
        },
        rtt,
    );
    f.loss();
    f
}

// RFC 9438 §4.6: β_cubic = 0.7; cwnd_prior and W_max remember the window;
// one reduction per recovery period (RFC 9002 §7.3.2).
#[test]
fn multiplicative_decrease_is_beta_0_7() {
    let t0 = test_epoch();
    let mut cc = Cubic::new(
        CubicConfig {
            initial_window: Some(100 * SEG),
            ..CubicConfig::default()
        },
        MDS,
    );
    cc.on_congestion_event(t0 + ms(100), t0 + ms(10), false, SEG);
    assert_eq!(cc.window(), 84_000);
    assert_eq!(cc.ssthresh(), 84_000);
    assert_eq!(cc.w_max(), 120_000);
    assert_eq!(cc.cwnd_prior, 120_000);
    assert!(!cc.in_slow_start());
    assert_eq!(cc.hystart_phase(), None, "a loss ends HyStart++");
    // Losses of packets sent before the recovery period began: ignored.
    cc.on_congestion_event(t0 + ms(150), t0 + ms(100), false, SEG);
    assert_eq!(cc.window(), 84_000);
    // A packet sent after it: another reduction.
    cc.on_congestion_event(t0 + ms(300), t0 + ms(200), false, SEG);
    assert_eq!(cc.window(), 58_800);
    // Never below the minimum window.
    for i in 1..20u64 {
        cc.on_congestion_event(t0 + ms(300 + i * 100), t0 + ms(299 + i * 100), false, SEG);
    }
    assert_eq!(cc.window(), 2 * SEG);
}

// RFC 9438 §4.2: after a loss at W_max the window follows W_cubic: concave
// up to W_max, reached about K = cbrt(W_max * (1 - β) / C) later, then
// convex.
#[test]
fn window_follows_the_cubic_curve() {
    let rtt = ms(100);
    let mut f = after_loss_at(100, rtt, false);
    assert!((f.segments() - 70.0).abs() < 0.01);
    f.round(false);
    // K = cbrt(100 * 0.3 / 0.4) = cbrt(75) s.
    let k = 75f64.cbrt();
    assert!((f.cc.k().as_secs_f64() - k).abs() < 1e-6, "{:?}", f.cc.k());
    let w = |t: f64| C * (t - k).powi(3) + 100.0;
    let mut previous = f.segments();
    let mut steps = Vec::new();
    // Up to 5.5 s: later, W_est (which reaches cwnd_prior after about
    // 30 / α_cubic rounds and then grows a segment per round) takes over.
    for tenth in 1..=55u64 {
        let t = tenth as f64 / 10.0;
        f.run_until(Duration::from_secs_f64(t));
        let seg = f.segments();
        // The window tracks the curve: its target is W_cubic(t + RTT),
        // approached one ACK at a time, and a round may end up to one RTT
        // past t.
        assert!(
            seg > w(t) - 2.0 && seg < w(t + 0.2) + 2.0,
            "t {t}: window {seg:.2} segments, W_cubic {:.2}",
            w(t)
        );
        steps.push(seg - previous);
        previous = seg;
    }
    // Concave before K (growth slows), convex after (growth speeds up).
    let at = |t: f64| steps[(t * 10.0) as usize - 1];
    assert!(at(0.5) > at(2.0) && at(2.0) > at(4.0), "{steps:?}");
    assert!(at(4.5) < at(5.0) && at(5.0) < at(5.5), "{steps:?}");
    // At K the window is back at W_max.
    let mut g = after_loss_at(100, rtt, false);
    g.round(false);
    g.run_until(Duration::from_secs_f64(k));
    assert!((g.segments() - 100.0).abs() < 1.5, "{}", g.segments());
}

// RFC 9438 §4.2: the target is capped at 1.5 * cwnd, so one ACK of a
// segment grows the window by at most half a segment.
#[test]
fn growth_per_ack_is_bounded() {
    let mut f = after_loss_at(100, ms(100), false);
    f.round(false);
    // Far into the convex region W_cubic(t + RTT) is huge.
    let epoch = f.cc.epoch.unwrap();
    let before = f.cc.window();
    let now = epoch + Duration::from_secs(60);
    f.cc.on_ack(now, now - ms(100), SEG, false, &f.estimator);
    let grown = f.cc.window() - before;
    assert!(grown <= SEG / 2 + 1, "{grown}");
    assert!(grown >= SEG / 2 - 1, "{grown}");
}

// RFC 9438 §4.7: a loss below the previous W_max lowers W_max to
// cwnd * (1 + β) / 2, with fast convergence; without, W_max = cwnd.
#[test]
fn fast_convergence_lowers_w_max() {
    for (fc, expected) in [(true, 0.85 * 84_000.0), (false, 84_000.0)] {
        let mut f = after_loss_at(100, ms(100), fc);
        assert_eq!(f.cc.w_max(), 120_000);
        // A second loss at 84000 bytes, below W_max.
        f.loss();
        assert_eq!(f.cc.w_max(), expected as u64, "fast convergence {fc}");
        assert_eq!(f.cc.window(), 58_800);
        assert_eq!(f.cc.cwnd_prior, 84_000);
    }
    // A loss above W_max sets W_max to cwnd either way.
    let mut f = after_loss_at(10, ms(100), true);
    f.cc.window = 20 * SEG;
    f.loss();
    assert_eq!(f.cc.w_max(), 20 * SEG);
}

// RFC 9438 §4.3: on a short path the Reno-friendly estimate W_est (α_cubic
// segments per round until it reaches cwnd_prior, then one) outgrows the
// cubic curve, and the window follows it.
#[test]
fn reno_friendly_region() {
    // RTT 1 ms: the cubic curve hardly moves in the rounds below.
    let mut f = after_loss_at(20, ms(1), false);
    assert_eq!(f.cc.window(), 14 * SEG);
    let mut rounds = 0;
    while f.cc.window() < 20 * SEG {
        f.round(false);
        rounds += 1;
        assert!(rounds < 100);
    }
    // 6 segments at α_cubic = 0.529 per round: about 11 rounds (the window
    // grows within a round, so a little more).
    let expected = 6.0 / ALPHA_CUBIC;
    assert!(
        (rounds as f64 - expected).abs() <= 2.0,
        "{rounds} rounds, expected about {expected:.1}"
    );
    assert!(
        f.cc.w_cubic(0.05) < f.cc.w_est,
        "in the Reno-friendly region"
    );
    // From cwnd_prior on, α is 1: one segment per round.
    let start = f.segments();
    for _ in 0..10 {
        f.round(false);
    }
    let grown = f.segments() - start;
    assert!((grown - 10.0).abs() < 1.0, "{grown}");
}

// RFC 9438 §5.8 and RFC 9002 §7.8: no growth while application-limited,
// and §4.2: that time is not part of t.
#[test]
fn app_limited_acks_neither_grow_nor_age_the_curve() {
    let mut f = after_loss_at(100, ms(100), false);
    f.round(false);
    f.run_until(Duration::from_secs(1));
    let epoch = f.cc.epoch.unwrap();
    let window = f.cc.window();
    // Three seconds of application-limited acknowledgments.
    for _ in 0..30 {
        f.round(true);
    }
    assert_eq!(f.cc.window(), window);
    f.round(false);
    let shift = f.cc.epoch.unwrap() - epoch;
    assert!(
        shift >= Duration::from_millis(2_900) && shift <= Duration::from_millis(3_100),
        "{shift:?}"
    );
    // The round after grew as at t = 1.1 s, not as near K (4.2 s), where
    // the curve is flat: compare with a flow that was never limited.
    let mut g = after_loss_at(100, ms(100), false);
    g.round(false);
    g.run_until(Duration::from_secs(1));
    g.round(false);
    assert!(
        (f.segments() - g.segments()).abs() < 0.5,
        "{} vs {}",
        f.segments(),
        g.segments()
    );
    // Slow start: no growth either.
    let mut f = Flow::new(CubicConfig::default(), ms(50));
    f.round(true);
    assert_eq!(f.cc.window(), f.cc.initial_window());
}

// RFC 9438 §5.8: an idle period (nothing in flight) is skipped too.
#[test]
fn idle_period_is_not_part_of_t() {
    let mut f = after_loss_at(100, ms(100), false);
    f.round(false);
    let epoch = f.cc.epoch.unwrap();
    f.cc.on_packet_sent(f.now, SEG, 10 * SEG);
    f.now += Duration::from_secs(5);
    f.cc.on_packet_sent(f.now, SEG, SEG);
    assert_eq!(f.cc.epoch.unwrap() - epoch, Duration::from_secs(5));
}

// RFC 9406 with RFC 9438 §4.10: HyStart++ leaves slow start on a delay
// increase, through CSS, without a loss; CUBIC then starts with
// cwnd_prior = W_max = cwnd and K = 0.
#[test]
fn hystart_exit_enters_congestion_avoidance_with_k_zero() {
    let mut f = Flow::new(CubicConfig::default(), ms(40));
    assert_eq!(f.cc.hystart_phase(), Some(Phase::SlowStart));
    f.round(false);
    f.round(false);
    let ss = f.cc.window();
    assert_eq!(
        ss,
        4 * f.cc.initial_window(),
        "slow start doubles per round"
    );
    // The queue builds: 40 ms -> 60 ms.
    f.rtt = ms(60);
    f.round(false);
    assert!(
        matches!(f.cc.hystart_phase(), Some(Phase::Css { .. })),
        "{:?}",
        f.cc.hystart_phase()
    );
    let mut rounds = 0;
    while f.cc.in_slow_start() {
        f.round(false);
        rounds += 1;
        assert!(rounds <= 6);
    }
    assert_eq!(rounds, 5, "CSS_ROUNDS, the partial round included");
    assert_eq!(f.cc.hystart_phase(), None);
    // ssthresh = cwnd at the exit; the rest of that round was congestion
    // avoidance from there.
    let exit = f.cc.ssthresh();
    assert_eq!(f.cc.cwnd_prior, exit);
    assert_eq!(f.cc.w_max(), exit);
    assert_eq!(f.cc.k(), Duration::ZERO);
    let window = f.cc.window();
    assert!(window >= exit);
    f.round(false);
    assert!(f.cc.window() > window, "growth from W_max on");
}

// RFC 9406 §4.2: the window grows a quarter as fast in CSS, and a lower
// RTT returns to slow start.
#[test]
fn css_grows_slower_and_can_resume_slow_start() {
    let mut f = Flow::new(CubicConfig::default(), ms(40));
    f.round(false);
    f.round(false);
    f.rtt = ms(60);
    f.round(false);
    let before = f.cc.window();
    f.round(false);
    let grown = f.cc.window() - before;
    assert_eq!(grown, before / SEG * SEG / 4, "a quarter of slow start");
    f.rtt = ms(40);
    f.round(false);
    assert_eq!(f.cc.hystart_phase(), Some(Phase::SlowStart));
}

// Without HyStart++, slow start runs to the first loss.
#[test]
fn without_hystart_slow_start_ignores_delay() {
    let mut f = Flow::new(config(false, true), ms(40));
    f.round(false);
    f.rtt = ms(80);
    for _ in 0..4 {
        f.round(false);
    }
    assert!(f.cc.in_slow_start());
    assert_eq!(f.cc.window(), 32 * f.cc.initial_window());
}

// RFC 9002 §7.6.2 and RFC 9438 §4.8: persistent congestion collapses the
// window; slow start back to ssthresh, then a stage with K = 0 and
// W_max = cwnd_epoch.
#[test]
fn persistent_congestion_then_k_zero() {
    let mut f = after_loss_at(100, ms(100), true);
    f.cc.on_congestion_event(f.now, f.now, true, 10 * SEG);
    assert_eq!(f.cc.window(), 2 * SEG);
    assert!(f.cc.in_slow_start());
    assert!(!f.cc.in_recovery(f.now - ms(1)), "recovery ended");
    let ssthresh = f.cc.ssthresh();
    while f.cc.in_slow_start() {
        f.round(false);
    }
    // The stage began within the last round, once the window reached
    // ssthresh: W_max is the window then.
    assert_eq!(f.cc.k(), Duration::ZERO);
    assert!(f.cc.w_max() >= ssthresh && f.cc.w_max() <= f.cc.window());
}

// RFC 9002 §7.2: a datagram size change moves an untouched initial window.
#[test]
fn max_datagram_size_change() {
    let mut cc = Cubic::new(CubicConfig::default(), MDS);
    assert_eq!(cc.window(), 12_000);
    cc.set_max_datagram_size(1452);
    assert_eq!(cc.window(), 14_520);
    assert_eq!(cc.minimum_window(), 2_904);
}
