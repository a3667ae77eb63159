//! Same seed, same run; different seed, different run; seeds are reported.

mod common;

use std::panic;
use std::time::Duration;

use common::{A, B, C, D, Echo, Sender, Spinner};
use quiver_sim::{GilbertElliott, LinkConfig, Network, Seed, TraceEvent, TraceKind, for_each_seed};

fn every_impairment() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        bandwidth: Some(2_000_000),
        queue_limit: Some(20_000),
        loss_rate: 0.05,
        burst_loss: Some(GilbertElliott {
            p_good_to_bad: 0.02,
            p_bad_to_good: 0.3,
            loss_in_bad: 0.8,
        }),
        reorder_rate: 0.05,
        reorder_delay: Duration::from_millis(15),
        duplicate_rate: 0.05,
        corrupt_rate: 0.05,
        mtu: 1472,
        ecn_bleach: false,
        ce_rate: 0.05,
    }
}

/// A sender bouncing 500 datagrams off an echo node over impaired links.
fn impaired_run(seed: Seed, extra_pair: bool) -> Network {
    let mut net = Network::new(seed);
    net.set_default_link(every_impairment());
    net.record(true);
    let start = net.now();
    net.add_node(
        A,
        Sender::new(B, 500, 1000, Duration::from_micros(300), start),
    );
    net.add_node(B, Echo::new());
    if extra_pair {
        net.add_node(
            C,
            Sender::new(D, 300, 700, Duration::from_micros(500), start),
        );
        net.add_node(D, Echo::new());
    }
    net.run_until_idle();
    net
}

fn on_link(trace: &[TraceEvent], src: std::net::SocketAddr) -> Vec<TraceEvent> {
    trace.iter().filter(|e| e.src == src).cloned().collect()
}

#[test]
fn same_seed_gives_identical_delivery_trace() {
    let seed = Seed::from_env_or(0x5eed);
    let first = impaired_run(seed, false);
    let second = impaired_run(seed, false);
    assert!(first.trace().len() > 1000);
    assert_eq!(first.trace(), second.trace());
    assert_eq!(first.total_stats(), second.total_stats());
    // Every kind of impairment actually happened in this run.
    let stats = first.total_stats();
    assert!(stats.dropped.loss > 0 && stats.dropped.burst_loss > 0);
    assert!(stats.duplicated > 0 && stats.corrupted > 0 && stats.reordered > 0);
}

#[test]
fn different_seeds_give_different_traces() {
    let one = impaired_run(Seed(1), false);
    let two = impaired_run(Seed(2), false);
    assert_ne!(one.trace(), two.trace());
    // The traffic offered is the same; only the link's decisions differ.
    let sent = |net: &Network| {
        net.trace()
            .iter()
            .filter(|e| e.kind == TraceKind::Sent && e.src == A)
            .count()
    };
    assert_eq!(sent(&one), 500);
    assert_eq!(sent(&two), 500);
}

#[test]
fn adding_a_node_leaves_other_links_unchanged() {
    let seed = Seed::from_env_or(7);
    let alone = impaired_run(seed, false);
    let crowded = impaired_run(seed, true);
    assert!(crowded.link_stats(C, D).sent > 0);
    assert_eq!(on_link(alone.trace(), A), on_link(crowded.trace(), A));
    assert_eq!(on_link(alone.trace(), B), on_link(crowded.trace(), B));
}

#[test]
fn simulated_hour_costs_no_wall_time() {
    let mut net = Network::new(Seed::from_env_or(3));
    let start = net.now();
    net.add_node(A, Sender::new(B, 3600, 100, Duration::from_secs(1), start));
    let echo = net.add_node(B, Echo::new());
    #[allow(clippy::disallowed_methods)] // measuring real elapsed time is this test's point
    let wall = std::time::Instant::now();
    net.run_until_idle();
    let wall = wall.elapsed();
    assert!(net.elapsed() >= Duration::from_secs(3599));
    assert_eq!(net.node::<Echo>(echo).received.len(), 3600);
    assert!(
        wall < Duration::from_secs(1),
        "an hour of virtual time took {wall:?}"
    );
}

#[test]
fn for_each_seed_runs_distinct_seeds() {
    let mut seen = Vec::new();
    for_each_seed(5, |seed| seen.push(seed));
    assert!(!seen.is_empty());
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len());
}

#[test]
fn for_each_seed_resumes_the_panic_of_a_failing_seed() {
    let result = panic::catch_unwind(|| for_each_seed(3, |_| panic!("scenario failed")));
    let payload = result.expect_err("the panic propagates");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"scenario failed"));
}

#[test]
fn sweep_replays_each_seed_exactly() {
    for_each_seed(4, |seed| {
        let a = impaired_run(seed, false);
        let b = impaired_run(seed, false);
        assert_eq!(a.trace(), b.trace(), "seed {seed}");
    });
}

#[test]
#[should_panic(expected = "rerun with QUIVER_SIM_SEED=0x")]
fn livelock_panics_naming_the_seed() {
    let mut net = Network::new(Seed::from_env_or(9));
    net.set_max_events(1000);
    let at = net.now();
    net.add_node(A, Spinner { at });
    net.run_for(Duration::from_secs(1));
}
