//! Handshakes in the simulated network.

use std::time::Duration;

use quiver_sim::quic::Pair;
use quiver_sim::{LinkConfig, Seed, for_each_seed};

#[test]
fn handshake_completes_without_loss() {
    let mut pair = Pair::new(Seed::from_env_or(1), LinkConfig::default());
    let conn = pair.connect();
    assert!(pair.run_handshake(conn, Duration::from_secs(5)));
}

#[test]
fn handshake_completes_with_ten_percent_loss() {
    for_each_seed(20, |seed| {
        let link = LinkConfig {
            loss_rate: 0.1,
            ..LinkConfig::default()
        };
        let mut pair = Pair::new(seed, link);
        let conn = pair.connect();
        assert!(
            pair.run_handshake(conn, Duration::from_secs(20)),
            "seed {seed:?}"
        );
    });
}
