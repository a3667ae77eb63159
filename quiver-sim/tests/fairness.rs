//! Fairness on a shared bottleneck (issue 10): two quiver flows of the
//! same controller, from two client hosts behind one 20 Mbit/s link with a
//! one-BDP drop-tail queue, get shares within 20% of each other over 30 s;
//! a BBR flow and a CUBIC flow stay within 1:3 either way.
//!
//! The second flow starts 1 to 3 s after the first, once the first has filled
//! the link: the newcomer has to win its share back (RFC 9438 §1 and
//! §5.x: CUBIC's concave and convex regions are meant to converge flows of
//! different windows; RFC 9002 §7.3 NewReno's AIMD; draft-ietf-ccwg-bbr
//! §5.3.3.8 for BBR among itself and with Reno/CUBIC).

mod common_bottleneck;

use std::sync::Arc;
use std::time::Duration;

use quiver_proto::congestion::{BbrConfig, ControllerFactory, CubicConfig, NewRenoConfig};
use quiver_sim::{Seed, for_each_seed};

use common_bottleneck::{BDP, RATE, Shares, bottleneck, two_flows};

/// The second flow starts 1 to 3 s after the first (by seed, so that seeds
/// vary the runs even on a link without random impairments).
fn head_start(seed: Seed) -> Duration {
    Duration::from_millis(1000 + seed.derive("head-start") % 2000)
}
const WARMUP: Duration = Duration::from_secs(10);
const SPAN: Duration = Duration::from_secs(30);

fn run(
    seed: Seed,
    first: Arc<dyn ControllerFactory>,
    second: Arc<dyn ControllerFactory>,
) -> Shares {
    let shares = two_flows(
        seed,
        bottleneck(BDP as usize),
        first,
        second,
        head_start(seed),
        WARMUP,
        SPAN,
    );
    eprintln!("{seed}: {shares}");
    shares
}

/// Same controller: within 20% of each other, and the link filled.
fn assert_fair(seed: Seed, shares: Shares) {
    assert!(
        shares.balance() >= 0.8,
        "{seed}: shares more than 20% apart: {shares}"
    );
    assert!(
        shares.total_goodput() >= RATE * 85 / 100,
        "{seed}: link underused: {shares}"
    );
}

// KNOWN FAILURE (issue 10). Diagnosed with `cubic_trace.rs` (per-flow
// congestion events, cwnd, W_max and K; knobs for jitter, random loss,
// Poisson cross traffic, fast convergence, warm-up and span): not a bug
// found in CUBIC, and not drop-tail phase locking either.
// - CUBIC checked against RFC 9438 §4.2-§4.8 and RFC 9002 §7.3.2: W_max
//   and fast convergence, K from cwnd_epoch, the t + RTT target within
//   [cwnd, 1.5 cwnd], W_est with α_cubic until cwnd_prior, one reduction
//   per recovery period, no growth on app-limited ACKs (6 in a 40 s run).
//   No deviation.
// - Over 30 s after 10 s, seeds 0-23: 8 of 24 below 0.8 (min 0.68); at
//   this commit 5 of 24 (min 0.64), 9 of 48. What
//   "breaks phase locking" does not fix it: 300 µs jitter 2 of 12 below
//   (min 0.67); Poisson cross traffic at 5% of the link 2 of 12 (0.75),
//   at 10% 2 of 12 (0.59); 0.05% random loss 1 of 12 (0.78). Fast
//   convergence off 1 of 12 (0.79), but with 300 µs jitter 7 of 12 (0.64):
//   the lead was noise.
// - 30 s is short for this link: each flow sees ~12 congestion events in
//   it (one every ~2.5 s, K ≈ 3-4 s). Even after a 60 s warm-up, 4 of 24
//   seeds are below 0.8 over the next 30 s (min 0.70); over 90 s, 47 of
//   48 seeds reach 0.8 (seed 0x1a: 0.75). NewReno, which passes on the
//   default two seeds, gives 0.79 at seed 20 over 30 s too.
// - "The smaller flow takes more of the drops" (the span-averaged
//   per-packet loss of the larger flow was 0.4-0.9x the smaller's) is a
//   selection effect, not a bias: whichever flow happened to take fewer
//   of the ~24 single-packet drops in the span is, on average over it,
//   the larger one. Asked at the instant of each drop (cubic_trace's last
//   line: whose window was larger when the dropped packet was sent), the
//   drops fall on the flows in proportion to their windows: seeds 0-47,
//   1131 events, 57.0% on the then larger flow against 57.6% expected in
//   proportion (over 90 s spans, seeds 0-23: 56.6 against 57.8), while
//   the same runs give the span-averaged ratio below 1 in 39 of 48.
//   NewReno: 61.4 against 58.9 (seeds 0-23).
// - The pacer, ACK frequency and the pacing gain only move that
//   allocation towards a coin flip, and balance with it (below 0.8 /
//   % of drops on the larger flow vs in proportion): as is, 48 seeds,
//   9, 57.0 vs 57.6; pacing at N = 1 instead of 1.25 (RFC 9002 §7.7),
//   24 seeds, 6, 57.5 vs 57.8; ACK_FREQUENCY off (an ACK every second
//   packet), 48 seeds, 22, 50.3 vs 58.7; a 1-packet pacer burst instead
//   of 10 (`MAX_BURST_PACKETS` edited by hand; at 20 Mbit/s the 250 µs
//   quantum is under a packet, so this is exact pacing), 24 seeds, 12,
//   53.8 vs 58.0. Only a 1-packet burst with ACK_FREQUENCY off favours
//   the larger flow and passes (48 seeds: none below, min 0.89; 64.2 vs
//   54.2), and that is phase locking of exact timing, not a fix: a
//   2-packet burst gives 16 of 48 below (51.1 vs 57.8), and 300 µs of
//   link jitter 5 of 24 (52.9 vs 57.9). The sim's queue is one per-
//   datagram FIFO with byte-accurate tail drop for both flows.
// - So the slow convergence is CUBIC's own (RFC 9438 §3.4: beta = 0.7
//   brings "slower convergence, especially under low statistical
//   multiplexing"): drops in proportion to the windows, one packet of one
//   flow each, each costing the loser 30% (NewReno 50%, which is why it
//   passes more often), each flow regrowing to its own W_max in about K:
//   ~12 events per flow in 30 s leave a random walk that has not
//   settled. Over 90 s, 1 of 24 below 0.8 (min 0.72).
// - Stop 17 (ACK delay srtt/4 under loss, reordering window fitted to the
//   lateness measured): seed 0 0.84, seed 1 0.72; unchanged in kind.
#[test]
#[ignore = "CUBIC flows do not converge within 20% on a deterministic drop-tail bottleneck (issue 10)"]
fn two_cubic_flows_share_fairly() {
    for_each_seed(2, |seed| {
        let cubic: Arc<dyn ControllerFactory> = Arc::new(CubicConfig::default());
        assert_fair(seed, run(seed, cubic.clone(), cubic));
    });
}

#[test]
fn two_newreno_flows_share_fairly() {
    for_each_seed(2, |seed| {
        let reno: Arc<dyn ControllerFactory> = Arc::new(NewRenoConfig::default());
        assert_fair(seed, run(seed, reno.clone(), reno));
    });
}

// KNOWN FAILURE, ignored until BBR is fixed: balance 0.52 to 0.97 over
// seeds 0 to 11 (the first flow keeps more); with 0.05% random loss on
// the link 0.85 to 0.97 over seeds 0, 4, 5, 7, 9 and 11. Not diagnosed;
// measured with `cubic_trace.rs` (`CTRL=bbr`), seeds 0-11: over 30 s
// after 10 s, 3 below 0.8 (min 0.62); over 90 s, none (min 0.80); 30 s
// after a 60 s warm-up, 1 (0.79); with 5% Poisson cross traffic, 2
// (0.76). The flows converge, slower than the 10 s warm-up allows.
// Stop 17: seeds 0-5 give 0.92, 1.00, 0.95, 0.81, 0.83, 0.70.
// Stop 19, with `IsTimeToCruise()` on BBR.max_bw as §5.3.3.9 has it:
// seeds 0-11 give 0.99, 0.78, 0.80, 0.97, 0.85, 0.61, 0.65, 0.82, 0.75,
// 0.89, 0.74, 0.82: no better. Why, by the draft's own rules: the max_bw
// filter advances once per ProbeBW cycle, at a round that is not
// app-limited (§5.3.3.6), and ProbeRTT (every 5 s while the queue never
// drains) restarts the cycle and marks the next round app-limited
// (§5.3.4.3), so the incumbent's solo max_bw outlives the newcomer's
// arrival by 5-10 s; Linux's BBRv3 does the same.
#[test]
#[ignore = "BBR flows do not converge within 20% on a deterministic drop-tail bottleneck (issue 10)"]
fn two_bbr_flows_share_fairly() {
    for_each_seed(2, |seed| {
        let a = Arc::new(BbrConfig::new(seed.derive("bbr-1")));
        let b = Arc::new(BbrConfig::new(seed.derive("bbr-2")));
        assert_fair(seed, run(seed, a, b));
    });
}

// draft-ietf-ccwg-bbr §5.3.3.8.1 (coexistence with Reno/CUBIC): with a
// one-BDP buffer, neither takes more than three times the other's share,
// whichever starts first, and together they fill the link.
#[test]
fn bbr_and_cubic_stay_within_one_to_three() {
    for_each_seed(2, |seed| {
        let bbr: Arc<dyn ControllerFactory> = Arc::new(BbrConfig::new(seed.derive("bbr")));
        let cubic: Arc<dyn ControllerFactory> = Arc::new(CubicConfig::default());
        for (first, second) in [(bbr.clone(), cubic.clone()), (cubic, bbr)] {
            let shares = run(seed, first, second);
            assert!(
                shares.balance() >= 1.0 / 3.0,
                "{seed}: beyond 1:3: {shares}"
            );
            assert!(
                shares.total_goodput() >= RATE * 85 / 100,
                "{seed}: link underused: {shares}"
            );
        }
    });
}
