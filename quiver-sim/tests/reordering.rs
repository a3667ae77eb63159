//! Reordering is not loss (RFC 9002 §6.1 made adaptive as RACK, RFC 8985
//! §6.2): packets declared lost and acknowledged later widen the loss
//! thresholds, and a congestion response whose losses all proved spurious
//! is undone.

use std::time::Duration;

use quiver_sim::quic::{AppConfig, Pair, SendPlan};
use quiver_sim::{LinkConfig, Seed, for_each_seed};

const MB: u64 = 1_000_000;

/// 10 ms each way at 40 Mbit/s; `reorder_rate` of datagrams held back 15
/// ms more (arriving behind several later ones).
fn link(reorder_rate: f64) -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(10),
        bandwidth: Some(5_000_000),
        reorder_rate,
        reorder_delay: Duration::from_millis(15),
        ..LinkConfig::default()
    }
}

/// Downloads `len` bytes; returns the virtual time it took after the
/// handshake and the server's stats.
fn download(seed: Seed, link: LinkConfig, len: u64) -> (Duration, quiver_proto::ConnectionStats) {
    let mut pair = Pair::new(seed, link);
    pair.server_app(AppConfig {
        send: vec![SendPlan::uni(len)],
        ..AppConfig::default()
    });
    let r = pair.client_app(AppConfig::default());
    pair.connect_and_wait(Duration::from_secs(10));
    let start = pair.net.now();
    let done = pair.run_until(Duration::from_secs(120), |_| {
        r.borrow().streams_finished() == 1
    });
    assert!(done, "incomplete: {}", r.borrow().bytes_received());
    r.borrow().assert_intact();
    (pair.net.now() - start, pair.server_conn().stats())
}

/// With 5% of datagrams reordered (15 ms late, dozens of packets behind)
/// and none lost, the first losses declared are recognised as spurious,
/// loss detection goes by time alone with a wider window so few more are
/// declared, the responses are undone, and the download takes little
/// longer than on an orderly path.
#[test]
fn reordering_alone_costs_little_goodput() {
    for_each_seed(5, |seed| {
        let (orderly, _) = download(seed, link(0.0), 8 * MB);
        let (reordered, stats) = download(seed, link(0.05), 8 * MB);
        assert!(stats.spurious_losses > 0, "{stats:?}");
        assert!(stats.congestion_undos > 0, "{stats:?}");
        // Without adaptation hundreds of reordered packets counted as lost
        // (304 for seed 1 with RFC 9002's fixed thresholds, and the download
        // took 5.8× as long); with it, a handful before the allowance fits.
        assert!(
            stats.spurious_losses <= 20,
            "{} spurious of {} sent",
            stats.spurious_losses,
            stats.packets_sent
        );
        assert!(
            reordered.as_secs_f64() < orderly.as_secs_f64() * 1.2,
            "reordered {reordered:?} vs orderly {orderly:?}"
        );
    });
}
