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
