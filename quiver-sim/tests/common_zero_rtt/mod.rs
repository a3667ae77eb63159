//! A client and server that both allow early data (RFC 9001 §4.6), and a
//! first connection that leaves the client a ticket allowing 0-RTT.
#![allow(dead_code)] // each test file uses a subset

use std::sync::Arc;
use std::time::Duration;

use quiver_proto::{ClientConfig, ServerConfig, TransportConfig};
use quiver_sim::quic::{Pair, TestPki};
use quiver_sim::{LinkConfig, Seed};

/// Both sides allow early data; the server uses `server_transport`.
pub fn early_data_pair(
    seed: Seed,
    link: LinkConfig,
    server_transport: TransportConfig,
    pki: &TestPki,
) -> Pair {
    early_data_pair_with(seed, link, server_transport, pki, |_| {})
}

/// As [`early_data_pair`], with the server's configuration adjusted by
/// `adjust` (admission, NEW_TOKEN) before it is installed.
pub fn early_data_pair_with(
    seed: Seed,
    link: LinkConfig,
    server_transport: TransportConfig,
    pki: &TestPki,
    adjust: impl FnOnce(&mut ServerConfig),
) -> Pair {
    let mut pair = Pair::with_pki(
        seed,
        link,
        TransportConfig::default(),
        server_transport.clone(),
        pki.clone(),
    );
    let crypto = pki.server_crypto().enable_early_data().build().unwrap();
    let mut server = ServerConfig {
        crypto: Arc::new(crypto),
        ..pki.server_config(server_transport)
    };
    adjust(&mut server);
    pair.server()
        .endpoint
        .set_server_config(Some(Arc::new(server)));
    let crypto = pki.client_crypto().enable_early_data().build().unwrap();
    pair.client_config = ClientConfig {
        crypto: Arc::new(crypto),
        ..pki.client_config(TransportConfig::default())
    };
    pair
}

/// A first connection that leaves a ticket allowing 0-RTT, then closed.
pub fn first_connection(pair: &mut Pair) {
    let c1 = pair.connect();
    assert!(pair.run_handshake(c1, Duration::from_secs(10)));
    // The ticket comes in 1-RTT CRYPTO frames after the handshake.
    pair.net.run_for(Duration::from_millis(300));
    let now = pair.net.now();
    pair.client()
        .conn(c1)
        .close(now, quiver_proto::VarInt::from_u32(0), bytes::Bytes::new());
    pair.net.run_for(Duration::from_secs(1));
    assert!(!pair.client().conn(c1).is_zero_rtt_offered());
}
