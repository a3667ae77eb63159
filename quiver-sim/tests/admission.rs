//! Admission control under a flood (issue 13): fresh client Initials from
//! many spoofed addresses, and a burst of real clients that answer Retry,
//! while an existing connection transfers data. The server keeps within
//! its limits, sends unvalidated clients a Retry above the threshold
//! (RFC 9000 §8.1.2), refuses validated ones above the hard limit with
//! CONNECTION_REFUSED (RFC 9000 §5.2.2, §10.2.3), counts all of it in
//! `Endpoint::stats`, and the existing transfer completes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quiver_proto::{
    AdmissionConfig, ConnectionError, Endpoint, EndpointConfig, EndpointStats, TransportConfig,
};
use quiver_sim::quic::{AppConfig, Pair, QuicNode, SERVER_ADDR, SendPlan, TestPki};
use quiver_sim::{LinkConfig, Seed, for_each_seed, loopback};

const LIMITS: AdmissionConfig = AdmissionConfig {
    max_connections: 64,
    max_handshakes: 24,
    max_handshakes_per_source: 4,
    retry_threshold: 16,
};
/// Spoofed Initials injected in all.
const FLOOD: usize = 1500;
/// Spoofed Initials per millisecond.
const FLOOD_RATE: usize = 15;
/// Real clients, each on its own address, connecting at once.
const REAL_CLIENTS: u8 = 20;

/// The address of the `i`th spoofed Initial: a few hundred sources, each
/// sending a handful (so some exceed the per-source limit).
fn spoofed(i: usize) -> SocketAddr {
    let source = i % 300;
    SocketAddr::from((
        [10, 7, (source / 250) as u8, (source % 250) as u8 + 1],
        40_000 + (i / 300) as u16,
    ))
}

fn check_limits(stats: &EndpointStats) {
    assert!(stats.handshakes <= LIMITS.max_handshakes, "{stats:?}");
    assert!(stats.connections <= LIMITS.max_connections, "{stats:?}");
}

#[test]
fn a_flood_of_fresh_initials_is_retried_and_refused_while_a_transfer_completes() {
    for_each_seed(2, |seed: Seed| {
        let pki = TestPki::new();
        let mut pair = Pair::with_pki(
            seed,
            LinkConfig::default(),
            TransportConfig::default(),
            TransportConfig::default(),
            pki.clone(),
        );
        let mut server_config = pki.server_config(TransportConfig::default());
        server_config.admission = LIMITS;
        pair.server()
            .endpoint
            .set_server_config(Some(Arc::new(server_config)));

        // The existing connection: 4 MB from the client to the server.
        let sender = pair.client_app(AppConfig {
            send: vec![SendPlan::uni(4_000_000)],
            ..AppConfig::default()
        });
        // The server's application follows the existing connection only
        // (its first: handle 0); the others never open streams.
        let receiver = pair.server_app_only(AppConfig::default(), |h| h.0 == 0);
        let (client, server) = pair.connect_and_wait(Duration::from_secs(5));
        assert_eq!(server.0, 0);

        // Real clients that will answer a Retry, each from its own address.
        // They and the forger offer X25519 only, so that every attempt is
        // one Initial datagram and each is answered exactly once (the
        // accounting below); multi-datagram ClientHellos have their own
        // tests (quiver-proto endpoint::assembly).
        let client_config = pki.client_config_with_groups(
            TransportConfig::default(),
            &[quiver_proto::crypto::KxGroup::X25519],
        );
        let mut real = Vec::new();
        for i in 0..REAL_CLIENTS {
            // Distinct from every other endpoint's seed (equal seeds would
            // pick equal first Destination CIDs).
            let mut seed_bytes = [0xa0; 32];
            seed_bytes[0] = i;
            seed_bytes[1..9].copy_from_slice(&seed.0.to_le_bytes());
            let endpoint =
                Endpoint::new(Arc::new(EndpointConfig::new(seed_bytes)), None, seed_bytes);
            let node = pair
                .net
                .add_node(loopback(100 + i, 6000), QuicNode::new(endpoint));
            real.push(node);
        }

        // A forger of real-looking first Initials: a client endpoint off
        // the network whose first datagrams are injected from spoofed
        // addresses.
        let mut forger_seed = [0xf0; 32];
        forger_seed[1..9].copy_from_slice(&seed.0.to_le_bytes());
        let mut forger = Endpoint::new(
            Arc::new(EndpointConfig::new(forger_seed)),
            None,
            forger_seed,
        );
        let mut buf = Vec::new();
        let mut injected = 0;
        let mut max_seen = EndpointStats::default();
        while injected < FLOOD {
            let now = pair.net.now();
            for _ in 0..FLOOD_RATE {
                let h = forger
                    .connect(now, &client_config, SERVER_ADDR, "localhost")
                    .unwrap();
                buf.clear();
                forger.poll_transmit(now, 1, &mut buf).unwrap();
                pair.net.inject(spoofed(injected), SERVER_ADDR, buf.clone());
                while forger.poll_transmit(now, 1, &mut buf).is_some() {}
                forger.remove(h);
                injected += 1;
            }
            if injected == FLOOD / 2 {
                // Mid-flood, the real clients connect at once.
                for node in &real {
                    let n = pair.net.node_mut::<QuicNode>(*node);
                    n.endpoint
                        .connect(now, &client_config, SERVER_ADDR, "localhost")
                        .unwrap();
                    n.poke(now);
                }
            }
            let until = pair.net.now() + Duration::from_millis(1);
            pair.run_until(Duration::from_millis(1), |p| {
                let stats = p.server().endpoint.stats();
                check_limits(&stats);
                max_seen.handshakes = max_seen.handshakes.max(stats.handshakes);
                p.net.now() >= until
            });
        }

        let done = pair.run_until(Duration::from_secs(20), |p| {
            check_limits(&p.server().endpoint.stats());
            receiver.borrow().streams_finished() == 1
        });
        assert!(
            done,
            "transfer incomplete: {} bytes read; {:?}",
            receiver.borrow().bytes_received(),
            pair.client_conn(client).stats()
        );
        receiver.borrow().assert_intact();
        assert!(sender.borrow().lost.is_none());

        // Every real client either got in or was refused.
        pair.net.run_for(Duration::from_secs(2));
        let (mut connected, mut refused) = (0, 0);
        for node in &real {
            let n = pair.net.node_mut::<QuicNode>(*node);
            let handle = n.endpoint.connection_handles()[0];
            let conn = n.endpoint.connection_ref(handle).unwrap();
            match conn.close_reason() {
                Some(ConnectionError::Refused) => refused += 1,
                None if conn.is_handshake_complete() => connected += 1,
                other => panic!(
                    "real client: {other:?} {:?} {:?}",
                    conn.stats(),
                    conn.is_closed()
                ),
            }
        }
        let stats = pair.server().endpoint.stats();
        assert_eq!(connected + refused, u64::from(REAL_CLIENTS), "{stats:?}");
        // Every Initial was answered once: the existing connection's,
        // each spoofed one, and each real client's twice (a Retry, then
        // admission or refusal).
        let refused_total =
            stats.refused.handshakes + stats.refused.per_source + stats.refused.connections;
        assert_eq!(
            stats.accepted + stats.retried_automatically + refused_total,
            1 + FLOOD as u64 + 2 * u64::from(REAL_CLIENTS),
            "{stats:?}"
        );
        assert!(stats.retried_automatically >= u64::from(REAL_CLIENTS));
        // Spoofed Initials arriving at the hard limit are refused too.
        assert!(refused_total >= refused, "{stats:?}");
        assert!(
            refused > 0,
            "the real burst reaches the hard limit: {stats:?}"
        );
        // Accepted: the existing connection, the first spoofed attempts,
        // the real clients that got in.
        assert_eq!(
            stats.accepted,
            1 + LIMITS.retry_threshold as u64 + connected,
            "{stats:?}"
        );
        assert_eq!(max_seen.handshakes, LIMITS.max_handshakes, "{stats:?}");
    });
}
