//! Reordering is not loss (RFC 9002 §6.1 made adaptive as RACK, RFC 8985
//! §6.2): packets declared lost and acknowledged later widen the loss
//! thresholds, and a congestion response whose losses all proved spurious
//! is undone.

use std::time::Duration;

use quiver_sim::quic::{AppConfig, CLIENT_ADDR, Pair, SERVER_ADDR, SendPlan};
use quiver_sim::{LinkConfig, Seed, Verdict, for_each_seed};

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
        // took 5.8× as long); with it, a handful before the allowance fits
        // (at most 5 over 100 seeds).
        assert!(
            stats.spurious_losses <= 10,
            "{} spurious of {} sent",
            stats.spurious_losses,
            stats.packets_sent
        );
        // Over 100 seeds: median 1.011×, worst 1.019×. Five seeds took
        // 1.3-1.6× while a spurious loss of the server's first Initial
        // (issue 10: not undone in the handshake spaces), or a real loss
        // of the Handshake packet that overtook it (the client dropped
        // it, keyless), or a loss joining an episode already undone, left
        // the transfer without its slow start.
        assert!(
            reordered.as_secs_f64() < orderly.as_secs_f64() * 1.05,
            "reordered {reordered:?} vs orderly {orderly:?}"
        );
    });
}

/// The server's first datagram (its Initial with the ServerHello) is held
/// back behind the second (the rest of its Initial and its first Handshake
/// packet). The client keeps the Handshake packet it has no keys for yet
/// and reads it once the ServerHello arrives (RFC 9001 §4.1.4: "an
/// endpoint SHOULD buffer received packets if they might be processed
/// using keys that aren't yet available"), so nothing is lost and no probe
/// timeout fires; the server's Initial, declared lost by time (RFC 9002
/// §6.1.2) and acknowledged later, proves spurious and its congestion
/// response is undone (RFC 9438 §4.9.2): the transfer keeps its initial
/// window and slow start (RFC 9002 §7.2).
#[test]
fn a_server_initial_overtaken_by_its_handshake_packet_costs_nothing() {
    for_each_seed(3, |seed| {
        let mut pair = Pair::new(seed, link(0.0));
        pair.net.set_filter(|d| {
            if d.src == SERVER_ADDR && d.dst == CLIENT_ADDR && d.index == 0 {
                Verdict::Delay(Duration::from_millis(15))
            } else {
                Verdict::Deliver
            }
        });
        // RFC 9002 §7.2: ten 1200-byte datagrams.
        let initial_window = 12_000;
        let (client, _) = pair.connect_and_wait(Duration::from_secs(10));
        let server = pair.server_conn().stats();
        let client_stats = pair.client_conn(client).stats();
        assert_eq!(server.probe_timeouts, 0, "server {server:?}");
        assert_eq!(client_stats.probe_timeouts, 0, "client {client_stats:?}");
        // Every packet the server declared lost was acknowledged later.
        assert!(
            server.packets_lost >= 1,
            "the Initial was not declared lost"
        );
        assert_eq!(server.spurious_losses, server.packets_lost, "{server:?}");
        assert!(server.congestion_undos >= 1, "{server:?}");
        assert!(
            pair.server_conn().congestion_window() >= initial_window,
            "{} < initial {initial_window}",
            pair.server_conn().congestion_window()
        );
    });
}
