//! Each link impairment does what its configuration says, at the configured rate.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{A, B, Echo, Sender, payload, runs};
use quiver_sim::{DropReason, GilbertElliott, LinkConfig, Network, Seed, TraceKind};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `count` datagrams of `size` bytes from A to a sink at B, one every
/// `interval`, over `link`; runs to completion.
fn one_way(seed: u64, link: LinkConfig, count: u64, size: usize, interval: Duration) -> Network {
    let mut net = Network::new(Seed::from_env_or(seed));
    net.set_default_link(link);
    let start = net.now();
    net.add_node(A, Sender::new(B, count, size, interval, start));
    net.add_node(B, Echo::sink());
    net.run_until_idle();
    net
}

fn sink(net: &Network) -> &Echo {
    net.node(net.node_at(B).unwrap())
}

/// Which of `count` sequence numbers never arrived.
fn lost_flags(net: &Network, count: u64) -> Vec<bool> {
    let mut got = vec![false; count as usize];
    for seq in sink(net).received_seqs() {
        got[seq as usize] = true;
    }
    got.into_iter().map(|g| !g).collect()
}

#[test]
fn loss_rate_matches_configuration() {
    let n = 10_000;
    let net = one_way(
        11,
        LinkConfig {
            loss_rate: 0.1,
            ..LinkConfig::default()
        },
        n,
        100,
        Duration::from_micros(100),
    );
    let stats = net.link_stats(A, B);
    assert_eq!(stats.sent, n);
    assert_eq!(stats.dropped.loss, n - stats.delivered);
    assert_eq!(stats.dropped.total(), stats.dropped.get(DropReason::Loss));
    // Binomial(10000, 0.1): sd 30; allow 5 sd.
    assert!(
        (850..=1150).contains(&stats.dropped.loss),
        "lost {}",
        stats.dropped.loss
    );
}

#[test]
fn burst_loss_drops_datagrams_in_runs() {
    let n = 20_000;
    let ge = GilbertElliott {
        p_good_to_bad: 0.01,
        p_bad_to_good: 0.2,
        loss_in_bad: 1.0,
    };
    let bursty = one_way(
        12,
        LinkConfig {
            burst_loss: Some(ge),
            ..LinkConfig::default()
        },
        n,
        100,
        Duration::from_micros(100),
    );
    let burst_runs = runs(&lost_flags(&bursty, n));
    let lost: usize = burst_runs.iter().sum();
    assert_eq!(lost as u64, bursty.link_stats(A, B).dropped.burst_loss);
    // Long-run share in the bad state: 0.01 / 0.21 ≈ 4.8 %.
    assert!((600..=1300).contains(&lost), "lost {lost}");
    let mean = lost as f64 / burst_runs.len() as f64;
    assert!(mean >= 3.0, "mean burst {mean}");
    assert!(burst_runs.iter().any(|&r| r >= 10));

    // The same loss rate, independent: runs are short.
    let uniform = one_way(
        12,
        LinkConfig {
            loss_rate: 0.048,
            ..LinkConfig::default()
        },
        n,
        100,
        Duration::from_micros(100),
    );
    let uniform_runs = runs(&lost_flags(&uniform, n));
    let mean = uniform_runs.iter().sum::<usize>() as f64 / uniform_runs.len() as f64;
    assert!(mean < 1.5, "mean independent run {mean}");
}

#[test]
fn jitter_reorders_closely_spaced_datagrams() {
    let link = LinkConfig {
        delay: ms(10),
        jitter: ms(5),
        ..LinkConfig::default()
    };
    let net = one_way(13, link, 1000, 100, ms(1));
    let seqs = sink(&net).received_seqs();
    assert_eq!(seqs.len(), 1000);
    assert!(seqs.windows(2).any(|w| w[0] > w[1]));
    assert!(net.link_stats(A, B).reordered > 100);
    // Every one-way delay lies in [delay, delay + jitter].
    for arrival in &sink(&net).received {
        let sent = net.epoch() + ms(common::seq_of(&arrival.data));
        let delay = arrival.time - sent;
        assert!((ms(10)..=ms(15)).contains(&delay), "{delay:?}");
    }
}

#[test]
fn without_jitter_datagrams_keep_their_order() {
    let net = one_way(
        13,
        LinkConfig::default(),
        1000,
        100,
        Duration::from_micros(10),
    );
    let seqs = sink(&net).received_seqs();
    assert_eq!(seqs, (0..1000).collect::<Vec<_>>());
    assert_eq!(net.link_stats(A, B).reordered, 0);
}

#[test]
fn reorder_rate_holds_datagrams_back_by_the_reorder_delay() {
    let link = LinkConfig {
        reorder_rate: 0.1,
        reorder_delay: ms(20),
        ..LinkConfig::default()
    };
    let net = one_way(14, link, 2000, 100, ms(1));
    let mut held = 0;
    for arrival in &sink(&net).received {
        let delay = arrival.time - (net.epoch() + ms(common::seq_of(&arrival.data)));
        match delay {
            d if d == ms(10) => {}
            d if d == ms(30) => held += 1,
            d => panic!("unexpected delay {d:?}"),
        }
    }
    // Binomial(2000, 0.1): sd ≈ 13.4; allow 5 sd.
    assert!((133..=267).contains(&held), "held back {held}");
    // A held-back datagram counts as reordered once a later one overtook it:
    // all of them, except possibly a few among the last 20 sent.
    let reordered = net.link_stats(A, B).reordered;
    assert!(
        reordered <= held && reordered + 5 >= held,
        "{reordered} of {held}"
    );
}

#[test]
fn duplicate_rate_delivers_extra_copies() {
    let n = 5000;
    let net = one_way(
        15,
        LinkConfig {
            duplicate_rate: 0.2,
            ..LinkConfig::default()
        },
        n,
        100,
        Duration::from_micros(100),
    );
    let stats = net.link_stats(A, B);
    assert_eq!(stats.delivered, stats.sent + stats.duplicated);
    // Binomial(5000, 0.2): sd ≈ 28; allow 5 sd.
    assert!(
        (860..=1140).contains(&stats.duplicated),
        "duplicated {}",
        stats.duplicated
    );
    let mut copies: BTreeMap<u64, u64> = BTreeMap::new();
    for seq in sink(&net).received_seqs() {
        *copies.entry(seq).or_default() += 1;
    }
    assert_eq!(copies.len() as u64, n);
    assert!(copies.values().all(|&c| c == 1 || c == 2));
    assert_eq!(
        copies.values().filter(|&&c| c == 2).count() as u64,
        stats.duplicated
    );
}

fn bit_distance(a: &[u8], b: &[u8]) -> u32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

#[test]
fn corruption_flips_exactly_one_bit() {
    let net = one_way(
        16,
        LinkConfig {
            corrupt_rate: 1.0,
            ..LinkConfig::default()
        },
        500,
        200,
        Duration::from_micros(100),
    );
    let received = &sink(&net).received;
    assert_eq!(received.len(), 500);
    // No jitter: arrival order is send order, even if the sequence number was hit.
    for (seq, arrival) in received.iter().enumerate() {
        assert_eq!(
            bit_distance(&arrival.data, &payload(seq as u64, 200)),
            1,
            "datagram {seq}"
        );
    }
    assert_eq!(net.link_stats(A, B).corrupted, 500);
}

#[test]
fn partial_corruption_rate_is_flagged_in_the_trace() {
    let mut net = Network::new(Seed::from_env_or(17));
    net.set_default_link(LinkConfig {
        corrupt_rate: 0.25,
        ..LinkConfig::default()
    });
    net.record(true);
    let start = net.now();
    net.add_node(
        A,
        Sender::new(B, 1000, 64, Duration::from_micros(100), start),
    );
    net.add_node(B, Echo::sink());
    net.run_until_idle();
    let mut corrupted = 0;
    for e in net.trace() {
        if let TraceKind::Delivered {
            corrupted: flag, ..
        } = e.kind
        {
            let distance = bit_distance(&e.data, &payload(e.index, 64));
            assert_eq!(distance, u32::from(flag));
            corrupted += u64::from(flag);
        }
    }
    assert_eq!(corrupted, net.link_stats(A, B).corrupted);
    // Binomial(1000, 0.25): sd ≈ 13.7; allow 5 sd.
    assert!((182..=318).contains(&corrupted), "corrupted {corrupted}");
}

#[test]
fn datagrams_larger_than_the_mtu_are_dropped() {
    let mut net = Network::new(Seed::from_env_or(18));
    net.set_link(
        A,
        B,
        LinkConfig {
            mtu: 1200,
            ..LinkConfig::default()
        },
    );
    let sink = net.add_node(B, Echo::sink());
    for size in [1199, 1200, 1201, 1472, 9000] {
        net.inject(A, B, vec![0; size]);
    }
    // The default MTU, 1472, on the other direction.
    for size in [1472, 1473] {
        net.inject(common::C, B, vec![0; size]);
    }
    net.run_until_idle();
    let sizes: Vec<usize> = net
        .node::<Echo>(sink)
        .received
        .iter()
        .map(|a| a.data.len())
        .collect();
    assert_eq!(sizes, [1199, 1200, 1472]);
    assert_eq!(net.link_stats(A, B).dropped.mtu, 3);
    assert_eq!(net.link_stats(common::C, B).dropped.mtu, 1);
}

#[test]
fn bandwidth_paces_a_burst_at_the_configured_rate() {
    // 1 MB at 1 MB/s: the last byte arrives after exactly one second.
    let link = LinkConfig {
        delay: Duration::ZERO,
        bandwidth: Some(1_000_000),
        ..LinkConfig::default()
    };
    let net = one_way(19, link, 1000, 1000, Duration::ZERO);
    let times: Vec<Duration> = sink(&net)
        .received
        .iter()
        .map(|a| a.time - net.epoch())
        .collect();
    assert_eq!(times.len(), 1000);
    assert_eq!(times[0], ms(1));
    assert_eq!(*times.last().unwrap(), Duration::from_secs(1));
    assert!(times.windows(2).all(|w| w[1] - w[0] == ms(1)));
    assert_eq!(net.link_stats(A, B).delivered_bytes, 1_000_000);
}

#[test]
fn bandwidth_serialization_adds_to_propagation_delay() {
    let link = LinkConfig {
        delay: ms(25),
        bandwidth: Some(100_000),
        ..LinkConfig::default()
    };
    let net = one_way(20, link, 2, 1000, Duration::ZERO);
    let times: Vec<Duration> = sink(&net)
        .received
        .iter()
        .map(|a| a.time - net.epoch())
        .collect();
    assert_eq!(times, [ms(35), ms(45)]);
}

#[test]
fn queue_limit_tail_drops_what_does_not_fit() {
    let mut net = Network::new(Seed::from_env_or(21));
    let link = LinkConfig {
        delay: Duration::ZERO,
        bandwidth: Some(1_000_000),
        queue_limit: Some(10_000),
        ..LinkConfig::default()
    };
    net.set_default_link(link);
    let start = net.now();
    net.add_node(A, Sender::new(B, 100, 1000, Duration::ZERO, start));
    let sink = net.add_node(B, Echo::sink());
    net.run_until_idle();
    // Ten 1000-byte datagrams fill the 10 kB queue; the other 90 are dropped.
    assert_eq!(
        net.node::<Echo>(sink).received_seqs(),
        (0..10).collect::<Vec<_>>()
    );
    let stats = net.link_stats(A, B);
    assert_eq!(stats.dropped.queue_full, 90);
    assert_eq!(stats.dropped.total(), 90);
    // Once the queue has drained, the link carries traffic again.
    for _ in 0..5 {
        net.inject(A, B, payload(1000, 1000));
    }
    net.run_until_idle();
    assert_eq!(net.node::<Echo>(sink).received.len(), 15);
}
