//! A server using zero-length connection IDs (RFC 9000 §5.1: an endpoint
//! may use them when it can route by address). Regression test: drawing a
//! fresh ID looped for ever, since every zero-length draw collides with
//! the one in use; and such an endpoint issues no new IDs (§5.1.1). It
//! routes packets without a connection ID by the peer's address.

use std::sync::Arc;
use std::time::Duration;

use quiver_proto::{Endpoint, EndpointConfig, TransportConfig};
use quiver_sim::quic::{Pair, QuicNode, SERVER_ADDR};
use quiver_sim::{LinkConfig, for_each_seed, loopback};

/// A server endpoint whose connection IDs are zero length.
fn zero_length_server(seed: quiver_sim::Seed) -> Pair {
    Pair::with_server_endpoint(
        seed,
        LinkConfig::default(),
        TransportConfig::default(),
        TransportConfig::default(),
        |config| config.local_cid_len = 0,
    )
}

#[test]
fn a_server_with_zero_length_ids_completes_handshakes() {
    for_each_seed(3, |seed| {
        let mut pair = zero_length_server(seed);
        let client = pair.connect();
        assert!(pair.run_handshake(client, Duration::from_secs(5)));
    });
}

/// RFC 9000 §5.1: "An endpoint can use [zero-length connection IDs] when
/// it can route by address". Two clients at different addresses shake
/// hands with such a server at the same time: their Handshake and 1-RTT
/// packets carry no connection ID, and each must reach its own
/// connection (before, every packet without an ID went to the newest).
#[test]
fn a_server_with_zero_length_ids_routes_by_address() {
    for_each_seed(5, |seed| {
        let mut pair = zero_length_server(seed);
        let second = Endpoint::new(Arc::new(EndpointConfig::new([7; 32])), None, [9; 32]);
        let second = pair.net.add_node(loopback(3, 6000), QuicNode::new(second));
        let a = pair.connect();
        let now = pair.net.now();
        let config = pair.client_config.clone();
        let b = pair
            .net
            .node_mut::<QuicNode>(second)
            .endpoint
            .connect(now, &config, SERVER_ADDR, "localhost")
            .expect("connect");
        let confirmed = |pair: &mut Pair| {
            let a_done = pair.client_conn(a).is_handshake_confirmed();
            let b_done = pair
                .net
                .node_mut::<QuicNode>(second)
                .conn(b)
                .is_handshake_confirmed();
            a_done && b_done
        };
        assert!(
            pair.run_until(Duration::from_secs(10), confirmed),
            "seed {seed}: both handshakes confirm"
        );
        // Nothing was misrouted into the other connection.
        let accepted = pair.server().accepted.clone();
        assert_eq!(accepted.len(), 2);
        for h in accepted {
            let conn = pair.server().conn(h);
            assert!(
                conn.is_handshake_complete() && !conn.is_closed(),
                "seed {seed}: {h:?} complete {} closed {} {:?}",
                conn.is_handshake_complete(),
                conn.is_closed(),
                conn.close_reason()
            );
            assert_eq!(conn.stats().packets_dropped, 0, "seed {seed}");
        }
    });
}
