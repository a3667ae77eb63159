//! Path MTU discovery (RFC 9000 §14.3): probes find the largest datagram the
//! path carries; lost probes are not congestion.

use std::time::Duration;

use quiver_sim::quic::Pair;
use quiver_sim::{LinkConfig, Seed, for_each_seed};

fn discovered_mtu(link: LinkConfig, seed: Seed) -> (u16, u16) {
    let mut pair = Pair::new(seed, link);
    let (client, _server) = pair.connect_and_wait(Duration::from_secs(10));
    // Discovery runs in the background; give it a few round trips.
    pair.net.run_for(Duration::from_secs(2));
    let c = pair.client_conn(client).path_mtu();
    let s = pair.server_conn().path_mtu();
    (c, s)
}

#[test]
fn discovery_reaches_the_configured_upper_bound_on_a_large_path() {
    let link = LinkConfig {
        mtu: 1500,
        ..LinkConfig::default()
    };
    let (c, s) = discovered_mtu(link, Seed::from_env_or(1));
    // The upper bound is 1452; the search stops within 16 bytes of it.
    assert!(c > 1452 - 16 && c <= 1452, "client {c}");
    assert!(s > 1452 - 16 && s <= 1452, "server {s}");
}

#[test]
fn discovery_stops_below_a_smaller_path_mtu() {
    let link = LinkConfig {
        mtu: 1300,
        ..LinkConfig::default()
    };
    let (c, s) = discovered_mtu(link, Seed::from_env_or(2));
    assert!(c > 1300 - 16 && c <= 1300, "client {c}");
    assert!(s > 1300 - 16 && s <= 1300, "server {s}");
}

#[test]
fn discovery_survives_random_loss() {
    for_each_seed(10, |seed| {
        let link = LinkConfig {
            mtu: 1400,
            loss_rate: 0.05,
            ..LinkConfig::default()
        };
        let (c, _) = discovered_mtu(link, seed);
        assert!((1200..=1400).contains(&c), "client {c}");
    });
}

/// 10 ms each way at 20 Mbit/s with the given MTU.
fn slow_link(mtu: usize) -> LinkConfig {
    LinkConfig {
        mtu,
        delay: Duration::from_millis(10),
        bandwidth: Some(2_500_000),
        ..LinkConfig::default()
    }
}

/// A 4 MB download from the server, started; returns the client's app.
fn start_download(pair: &mut Pair, len: u64) -> quiver_sim::quic::SharedApp {
    use quiver_sim::quic::{AppConfig, SendPlan};
    pair.server_app(AppConfig {
        send: vec![SendPlan::uni(len)],
        ..AppConfig::default()
    });
    let app = pair.client_app(AppConfig::default());
    pair.connect_and_wait(Duration::from_secs(10));
    app
}

/// RFC 8899 §4.3: the path MTU shrinks mid-transfer below the size in use
/// (a black hole for full-sized packets while small ones pass): the
/// sender falls back to 1200, searches again, and the transfer recovers
/// within a few round trips instead of stalling until the idle timeout.
#[test]
fn a_path_mtu_that_shrinks_mid_transfer_is_recovered_from() {
    use quiver_sim::quic::{CLIENT_ADDR, SERVER_ADDR};
    for_each_seed(10, |seed| {
        let len = 4_000_000;
        let mut pair = Pair::new(seed, slow_link(1500));
        let app = start_download(&mut pair, len);
        pair.net.run_for(Duration::from_millis(500));
        assert!(pair.server_conn().path_mtu() > 1400, "discovery ran");
        pair.net.set_path(CLIENT_ADDR, SERVER_ADDR, slow_link(1300));
        let before = app.borrow().bytes_received();
        // Progress resumes within a few RTTs (20 ms each) plus the PTOs it
        // takes to notice.
        let resumed = pair.run_until(Duration::from_secs(3), |_| {
            app.borrow().bytes_received() > before + 200_000
        });
        assert!(resumed, "stalled after the MTU shrank");
        let done = pair.run_until(Duration::from_secs(30), |_| {
            app.borrow().streams_finished() == 1
        });
        assert!(done, "incomplete: {} bytes", app.borrow().bytes_received());
        app.borrow().assert_intact();
        let server = pair.server_conn();
        assert!(server.path_mtu() <= 1300, "{}", server.path_mtu());
        assert!(server.stats().pmtu_black_holes >= 1);
        assert!(app.borrow().lost.is_none());
    });
}

/// RFC 8899 §5.1.1: a completed search probes upwards again after
/// PMTU_RAISE_TIMER, so a path whose MTU grew is found.
#[test]
fn a_path_mtu_that_grows_is_found_by_the_periodic_re_probe() {
    use quiver_sim::quic::{CLIENT_ADDR, SERVER_ADDR};
    let server = quiver_proto::TransportConfig {
        mtu_raise_interval: Duration::from_secs(2),
        keep_alive_interval: Some(Duration::from_millis(500)),
        ..Default::default()
    };
    let mut pair = Pair::with_configs(
        Seed::from_env_or(3),
        slow_link(1300),
        quiver_proto::TransportConfig::default(),
        server,
    );
    pair.connect_and_wait(Duration::from_secs(10));
    pair.net.run_for(Duration::from_secs(1));
    let first = pair.server_conn().path_mtu();
    assert!(first <= 1300 && first > 1300 - 16, "{first}");
    pair.net.set_path(CLIENT_ADDR, SERVER_ADDR, slow_link(1500));
    pair.net.run_for(Duration::from_secs(4));
    let grown = pair.server_conn().path_mtu();
    assert!(grown > 1452 - 16, "re-probe found {grown}");
}
