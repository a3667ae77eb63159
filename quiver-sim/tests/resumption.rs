//! TLS session resumption (RFC 9001 §4.5, RFC 8446 §2.2): a second
//! connection resumes the first one's session, and the server's Handshake
//! flight carries no Certificate or CertificateVerify.

mod common_zero_rtt;

use std::sync::Arc;
use std::time::Duration;

use common_zero_rtt::early_data_pair;
use quiver_proto::connection::LoggedPacket;
use quiver_proto::crypto::{self, HandshakeKind};
use quiver_proto::frame::{Frame, Iter};
use quiver_proto::packet::PacketType;
use quiver_proto::{
    ClientConfig, ConnectionHandle, Endpoint, EndpointConfig, ServerConfig, TransportConfig,
};
use quiver_sim::quic::{AppConfig, Pair, QuicNode, SERVER_ADDR, SendPlan, TestPki};
use quiver_sim::{LinkConfig, Seed, for_each_seed, loopback};

/// TLS handshake message types (RFC 8446 §4).
const ENCRYPTED_EXTENSIONS: u8 = 8;
const CERTIFICATE: u8 = 11;
const CERTIFICATE_VERIFY: u8 = 15;
const FINISHED: u8 = 20;

/// The server logs the packets of every connection it accepts, from the
/// first one on.
fn log_server_packets(pair: &mut Pair) {
    pair.server().set_app(|ep: &mut Endpoint, _now| {
        for h in ep.connection_handles() {
            if let Some(conn) = ep.connection(h)
                && conn.sent_log_for_test().is_empty()
            {
                conn.enable_sent_log_for_test();
            }
        }
    });
}

/// The TLS handshake message types in the Handshake-level CRYPTO stream of
/// `log`, in order.
fn handshake_messages(log: &[LoggedPacket]) -> Vec<u8> {
    let mut stream = Vec::new();
    for packet in log.iter().filter(|p| p.ty == PacketType::Handshake) {
        for frame in Iter::new(&packet.payload) {
            if let Ok(Frame::Crypto(c)) = frame {
                let start = usize::try_from(c.offset.into_inner()).unwrap();
                let end = start + c.data.len();
                if stream.len() < end {
                    stream.resize(end, 0);
                }
                stream[start..end].copy_from_slice(c.data);
            }
        }
    }
    let mut types = Vec::new();
    let mut rest = &stream[..];
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([0, rest[1], rest[2], rest[3]]) as usize;
        types.push(rest[0]);
        rest = &rest[(4 + len).min(rest.len())..];
    }
    types
}

/// Plaintext bytes the server sent in Handshake packets.
fn handshake_bytes(log: &[LoggedPacket]) -> usize {
    log.iter()
        .filter(|p| p.ty == PacketType::Handshake)
        .map(|p| p.payload.len())
        .sum()
}

/// Connects, waits for both sides, and lets the session tickets arrive.
fn connect(pair: &mut Pair) -> (ConnectionHandle, ConnectionHandle) {
    let client = pair.connect();
    assert!(pair.run_handshake(client, Duration::from_secs(5)));
    // The server's NewSessionTicket travels in 1-RTT CRYPTO frames after
    // the handshake completes.
    pair.net.run_for(Duration::from_millis(200));
    let server = *pair.server().accepted.last().expect("accepted");
    (client, server)
}

/// RFC 9001 §4.5 / RFC 8446 §2.2: the second handshake resumes with the
/// first one's ticket; both sides report it, and the server's Handshake
/// flight shrinks to EncryptedExtensions and Finished (no Certificate,
/// RFC 8446 §4.4.2 only for certificate-based authentication).
#[test]
fn second_connection_resumes_without_a_certificate() {
    for_each_seed(3, |seed| {
        // A large certificate (and its signature) makes the saving visible in bytes too.
        let pki = TestPki::with_cert_size(4000);
        let mut pair = Pair::with_pki(
            seed,
            LinkConfig::default(),
            TransportConfig::default(),
            TransportConfig::default(),
            pki,
        );
        log_server_packets(&mut pair);

        let (c1, s1) = connect(&mut pair);
        assert_eq!(
            pair.client().conn(c1).handshake_kind(),
            Some(HandshakeKind::Full)
        );
        assert_eq!(
            pair.server().conn(s1).handshake_kind(),
            Some(HandshakeKind::Full)
        );
        assert!(!pair.client().conn(c1).is_resumed());
        let full = handshake_messages(pair.server().conn(s1).sent_log_for_test());
        assert_eq!(
            full,
            [
                ENCRYPTED_EXTENSIONS,
                CERTIFICATE,
                CERTIFICATE_VERIFY,
                FINISHED
            ]
        );
        let full_bytes = handshake_bytes(pair.server().conn(s1).sent_log_for_test());

        let (c2, s2) = connect(&mut pair);
        assert_ne!(s1, s2);
        assert!(pair.client().conn(c2).is_resumed());
        assert_eq!(
            pair.server().conn(s2).handshake_kind(),
            Some(HandshakeKind::Resumed)
        );
        let resumed = handshake_messages(pair.server().conn(s2).sent_log_for_test());
        assert_eq!(resumed, [ENCRYPTED_EXTENSIONS, FINISHED]);
        // The certificate (about 4,000 bytes) is gone from the server's
        // first flight.
        let resumed_bytes = handshake_bytes(pair.server().conn(s2).sent_log_for_test());
        assert!(
            resumed_bytes + 3000 < full_bytes,
            "Handshake payload: full {full_bytes} bytes, resumed {resumed_bytes}"
        );
    });
}

fn pair_with(pki: &TestPki, seed: u64) -> Pair {
    Pair::with_pki(
        Seed::from_env_or(seed),
        LinkConfig::default(),
        TransportConfig::default(),
        TransportConfig::default(),
        pki.clone(),
    )
}

fn client_config(pki: &TestPki, crypto: crypto::ClientConfig) -> ClientConfig {
    ClientConfig {
        crypto: Arc::new(crypto),
        ..pki.client_config(TransportConfig::default())
    }
}

/// A second client endpoint using the same configuration (so the same
/// session store) resumes the session the first endpoint established;
/// a configuration built separately, even on the same store, does not:
/// rustls resumes a session only under the certificate verifier and client
/// credentials that established it.
#[test]
fn a_session_store_is_shared_by_endpoints_using_the_configuration() {
    let pki = TestPki::new();
    let mut pair = pair_with(&pki, 22);
    let store = crypto::memory_session_store(16);
    let crypto = pki
        .client_crypto()
        .with_session_store(store.clone())
        .build()
        .unwrap();
    pair.client_config = client_config(&pki, crypto);
    let (c1, _) = connect(&mut pair);
    assert_eq!(
        pair.client().conn(c1).handshake_kind(),
        Some(HandshakeKind::Full)
    );

    let mut rng = pair.net.rng("second client");
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let other = Endpoint::new(Arc::new(EndpointConfig::new(seed)), None, seed);
    let node = pair.net.add_node(loopback(3, 5000), QuicNode::new(other));
    let resumed = |pair: &mut Pair, config: &ClientConfig| {
        let now = pair.net.now();
        let h = pair
            .net
            .node_mut::<QuicNode>(node)
            .endpoint
            .connect(now, config, SERVER_ADDR, "localhost")
            .unwrap();
        let done = pair.run_until(Duration::from_secs(5), |p| {
            p.net
                .node_mut::<QuicNode>(node)
                .conn(h)
                .is_handshake_confirmed()
        });
        assert!(done);
        pair.net.run_for(Duration::from_millis(200));
        pair.net.node_mut::<QuicNode>(node).conn(h).is_resumed()
    };
    let shared = pair.client_config.clone();
    assert!(resumed(&mut pair, &shared));
    let separate = client_config(
        &pki,
        pki.client_crypto()
            .with_session_store(store)
            .build()
            .unwrap(),
    );
    assert!(!resumed(&mut pair, &separate));
}

/// A client built without resumption always runs a full handshake.
#[test]
fn a_client_without_resumption_always_runs_full_handshakes() {
    let pki = TestPki::new();
    let mut pair = pair_with(&pki, 23);
    let crypto = pki.client_crypto().without_resumption().build().unwrap();
    pair.client_config = client_config(&pki, crypto);
    let (c1, _) = connect(&mut pair);
    let (c2, s2) = connect(&mut pair);
    assert_eq!(
        pair.client().conn(c1).handshake_kind(),
        Some(HandshakeKind::Full)
    );
    assert_eq!(
        pair.client().conn(c2).handshake_kind(),
        Some(HandshakeKind::Full)
    );
    assert_eq!(
        pair.server().conn(s2).handshake_kind(),
        Some(HandshakeKind::Full)
    );
}

/// A server configured to issue no tickets gives the client nothing to
/// resume with.
#[test]
fn a_server_issuing_no_tickets_is_never_resumed() {
    let pki = TestPki::new();
    let mut pair = pair_with(&pki, 24);
    let crypto = pki.server_crypto().session_tickets(0).build().unwrap();
    pair.server()
        .endpoint
        .set_server_config(Some(Arc::new(ServerConfig {
            crypto: Arc::new(crypto),
            ..pki.server_config(TransportConfig::default())
        })));
    let (_, _) = connect(&mut pair);
    let (c2, s2) = connect(&mut pair);
    assert_eq!(
        pair.client().conn(c2).handshake_kind(),
        Some(HandshakeKind::Full)
    );
    assert_eq!(
        pair.server().conn(s2).handshake_kind(),
        Some(HandshakeKind::Full)
    );
}

/// A quiver client that offers early data (its TLS resumes with a ticket
/// allowing 0-RTT) but has nothing to send before the handshake
/// completes: the server accepts 0-RTT (RFC 9001 §4.6.1), reads no 0-RTT
/// packet, and the connection carries data whole afterwards.
#[test]
fn early_data_offered_without_0rtt_packets_still_works() {
    for_each_seed(2, |seed| {
        let pki = TestPki::new();
        let mut pair = early_data_pair(
            seed,
            LinkConfig::default(),
            TransportConfig::default(),
            &pki,
        );
        let (c1, s1) = connect(&mut pair);
        assert!(!pair.server().conn(s1).is_zero_rtt_accepted());
        // The scripted application drives every connection: end the first.
        let now = pair.net.now();
        pair.client()
            .conn(c1)
            .close(now, quiver_proto::VarInt::from_u32(0), bytes::Bytes::new());
        pair.net.run_for(Duration::from_secs(1));
        pair.client_app(AppConfig {
            send: vec![SendPlan::uni(20_000)],
            ..AppConfig::default()
        });
        let server = pair.server_app_for_new_connections(AppConfig::default());
        let (c2, s2) = connect(&mut pair);
        assert!(pair.client().conn(c2).is_resumed());
        assert!(pair.server().conn(s2).is_zero_rtt_accepted());
        assert_eq!(pair.server().conn(s2).stats().zero_rtt_packets_received, 0);
        // Data flows on the resumed connection.
        assert!(pair.run_until(Duration::from_secs(5), |_| {
            server.borrow().bytes_received() == 20_000
        }));
        server.borrow().assert_intact();
    });
}
