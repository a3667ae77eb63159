//! A server using zero-length connection IDs (RFC 9000 §5.1: an endpoint
//! may use them when it can route by address). Regression test: drawing a
//! fresh ID looped for ever, since every zero-length draw collides with
//! the one in use; and such an endpoint issues no new IDs (§5.1.1). The
//! endpoint routes zero-length IDs to one connection at a time.

use std::time::Duration;

use quiver_proto::TransportConfig;
use quiver_sim::quic::Pair;
use quiver_sim::{LinkConfig, for_each_seed};

#[test]
fn a_server_with_zero_length_ids_completes_handshakes() {
    for_each_seed(3, |seed| {
        let mut pair = Pair::with_server_endpoint(
            seed,
            LinkConfig::default(),
            TransportConfig::default(),
            TransportConfig::default(),
            |config| config.local_cid_len = 0,
        );
        let client = pair.connect();
        assert!(pair.run_handshake(client, Duration::from_secs(5)));
    });
}
