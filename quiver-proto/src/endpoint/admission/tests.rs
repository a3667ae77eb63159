//! Admission control with hand-carried datagrams: automatic Retry (RFC 9000
//! §8.1.2), refusal with CONNECTION_REFUSED (RFC 9000 §5.2.2, §10.2.3), the
//! per-source limit and the counters.

use std::net::SocketAddr;
use std::sync::Arc;

use super::AdmissionConfig;
use crate::connection::tests::Pair;
use crate::crypto::initial_keys;
use crate::frame::{self, Frame};
use crate::packet::header::{self, Parsed};
use crate::packet::{PacketType, TruncatedPacketNumber};
use crate::{
    ConnectionError, ConnectionHandle, ConnectionId, DatagramEvent, Endpoint, EndpointConfig,
    ServerConfig, Side, TransportErrorCode,
};

/// A pair whose server applies `admission`.
fn pair_with(admission: AdmissionConfig) -> Pair {
    let mut pair = Pair::classical();
    let mut config: ServerConfig = (*pair.server_config().unwrap()).clone();
    config.admission = admission;
    pair.server = Endpoint::new(
        Arc::new(EndpointConfig::new([3; 32])),
        Some(Arc::new(config)),
        [4; 32],
    );
    pair
}

/// Starts a client connection and returns it with its first datagram.
fn fresh_initial(pair: &mut Pair) -> (ConnectionHandle, Vec<u8>) {
    let handle = pair.connect();
    let mut buf = Vec::new();
    let t = pair.client.poll_transmit(pair.now, 1, &mut buf).unwrap();
    let d = buf[buf.len() - t.size..].to_vec();
    // The rest of the client's first flight, if any, is not needed.
    while pair.client.poll_transmit(pair.now, 1, &mut buf).is_some() {}
    (handle, d)
}

/// The server's queued datagrams.
fn replies(pair: &mut Pair) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = pair.server.poll_transmit(pair.now, 1, &mut buf) {
        out.push(buf[buf.len() - t.size..].to_vec());
    }
    out
}

fn packet_type(datagram: &[u8]) -> PacketType {
    match header::decode(datagram, 8) {
        Ok(Parsed::Packet(p)) => p.ty,
        other => panic!("{other:?}"),
    }
}

fn dcid(datagram: &[u8]) -> ConnectionId {
    match header::decode(datagram, 8) {
        Ok(Parsed::Packet(p)) => p.dst_cid,
        other => panic!("{other:?}"),
    }
}

/// The CONNECTION_CLOSE code in a server Initial protected with the keys
/// of the client's `client_dcid`.
fn close_code(datagram: &[u8], client_dcid: &ConnectionId) -> Option<TransportErrorCode> {
    let Ok(Parsed::Packet(p)) = header::decode(datagram, 8) else {
        return None;
    };
    let keys = initial_keys(crate::Version::V1, client_dcid, Side::Client);
    let mut packet = datagram[..p.len].to_vec();
    let pn_len = keys.remote.header.remove(&mut packet, p.pn_offset).ok()?;
    let header_len = p.pn_offset + pn_len;
    let pn = TruncatedPacketNumber::from_wire(&packet[p.pn_offset..header_len]).expand(None);
    let len = keys.remote.packet.open(pn, &mut packet, header_len).ok()?;
    frame::Iter::new(&packet[header_len..header_len + len])
        .flatten()
        .find_map(|f| match f {
            Frame::ConnectionClose(c) => Some(c.code()),
            _ => None,
        })
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Sends a fresh Initial from `from`; expects the server to answer it with
/// a Retry and returns the client's Initial carrying the token.
fn expect_retry(pair: &mut Pair, from: SocketAddr) -> Vec<u8> {
    let (_, mut first) = fresh_initial(pair);
    let pending = pair.server.stats().pending_incoming;
    assert_eq!(
        pair.server.handle(pair.now, from, &mut first),
        DatagramEvent::Handled
    );
    assert_eq!(
        pair.server.stats().pending_incoming,
        pending,
        "no state before Retry"
    );
    let mut reply = replies(pair);
    assert_eq!(reply.len(), 1);
    assert_eq!(packet_type(&reply[0]), PacketType::Retry);
    pair.client
        .handle(pair.now, pair.server_addr, &mut reply[0]);
    let mut buf = Vec::new();
    let t = pair.client.poll_transmit(pair.now, 1, &mut buf).unwrap();
    let second = buf[buf.len() - t.size..].to_vec();
    while pair.client.poll_transmit(pair.now, 1, &mut buf).is_some() {}
    second
}

/// Above `retry_threshold` pending handshakes a client without a token gets
/// a Retry and no state (RFC 9000 §8.1.2); once it answers, it is admitted
/// and completes its handshake. At `max_handshakes` new clients are refused
/// with CONNECTION_REFUSED in an Initial (RFC 9000 §5.2.2, §10.2.3).
#[test]
fn automatic_retry_then_refusal_and_a_retried_client_gets_in() {
    let mut pair = pair_with(AdmissionConfig {
        max_connections: 100,
        max_handshakes: 3,
        max_handshakes_per_source: 16,
        retry_threshold: 2,
    });
    for i in 1..=2 {
        let (_, mut d) = fresh_initial(&mut pair);
        let from = addr(&format!("10.0.0.{i}:1000"));
        assert!(matches!(
            pair.server.handle(pair.now, from, &mut d),
            DatagramEvent::NewConnection(_)
        ));
    }
    assert_eq!(pair.server.stats().handshakes, 2);
    assert_eq!(pair.server.stats().pending_incoming, 2);

    // Third client: over the threshold, so a Retry first.
    let client_addr = pair.client_addr;
    let mut second = expect_retry(&mut pair, client_addr);
    assert_eq!(pair.server.stats().retried_automatically, 1);
    let DatagramEvent::NewConnection(id) = pair.server.handle(pair.now, client_addr, &mut second)
    else {
        panic!("the retried client is admitted");
    };
    assert!(pair.server.incoming(id).unwrap().remote_address_validated());
    assert_eq!(pair.server.stats().handshakes, 3);

    // Fourth: at the hard limit, refused.
    let (refused, mut d) = fresh_initial(&mut pair);
    let first_dcid = dcid(&d);
    assert_eq!(
        pair.server.handle(pair.now, addr("10.0.0.4:1000"), &mut d),
        DatagramEvent::Handled
    );
    let mut reply = replies(&mut pair);
    assert_eq!(reply.len(), 1);
    assert_eq!(
        close_code(&reply[0], &first_dcid),
        Some(TransportErrorCode::CONNECTION_REFUSED)
    );
    pair.client
        .handle(pair.now, pair.server_addr, &mut reply[0]);
    assert_eq!(
        pair.client.connection(refused).unwrap().close_reason(),
        Some(&ConnectionError::Refused)
    );
    let stats = pair.server.stats();
    assert_eq!(stats.refused.handshakes, 1);
    assert_eq!(stats.handshakes, 3, "a refusal holds nothing");

    // Drop the two unanswered attempts; the retried client completes.
    for i in 1..=2 {
        let other = pair
            .server
            .poll_incoming()
            .map(|i| i.id())
            .filter(|o| *o != id)
            .expect("an unanswered attempt");
        pair.server.ignore(other);
        assert_eq!(pair.server.stats().ignored, i);
    }
    pair.server.accept(pair.now, id).unwrap();
    pair.drive();
    let stats = pair.server.stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.handshakes, 0, "{stats:?}");
    assert_eq!(stats.connections, 1);
    let server_conn = pair.server.connection_handles()[0];
    assert!(
        pair.server
            .connection_ref(server_conn)
            .unwrap()
            .is_handshake_complete()
    );
}

/// The per-source limit: unvalidated clients over it get a Retry (their
/// source may be forged), validated ones are refused; IPv6 sources count
/// per /64; the count is released when attempts leave.
#[test]
fn per_source_limit_retries_then_refuses_and_is_released() {
    let mut pair = pair_with(AdmissionConfig {
        max_connections: 100,
        max_handshakes: 100,
        max_handshakes_per_source: 2,
        retry_threshold: 100,
    });
    for port in [1, 2] {
        let (_, mut d) = fresh_initial(&mut pair);
        let from = addr(&format!("192.0.2.7:{port}"));
        assert!(matches!(
            pair.server.handle(pair.now, from, &mut d),
            DatagramEvent::NewConnection(_)
        ));
    }
    let from = addr("192.0.2.7:3");
    let mut second = expect_retry(&mut pair, from);
    assert_eq!(pair.server.stats().retried_automatically, 1);
    let first_dcid_of_second = dcid(&second);
    assert_eq!(
        pair.server.handle(pair.now, from, &mut second),
        DatagramEvent::Handled
    );
    let reply = replies(&mut pair);
    assert_eq!(reply.len(), 1);
    assert_eq!(
        close_code(&reply[0], &first_dcid_of_second),
        Some(TransportErrorCode::CONNECTION_REFUSED)
    );
    assert_eq!(pair.server.stats().refused.per_source, 1);

    // Another address is not affected.
    let (_, mut d) = fresh_initial(&mut pair);
    assert!(matches!(
        pair.server.handle(pair.now, addr("192.0.2.8:1"), &mut d),
        DatagramEvent::NewConnection(_)
    ));
    // IPv6: one /64 is one source.
    for host in ["2001:db8::1", "2001:db8::2"] {
        let (_, mut d) = fresh_initial(&mut pair);
        let from = addr(&format!("[{host}]:443"));
        assert!(matches!(
            pair.server.handle(pair.now, from, &mut d),
            DatagramEvent::NewConnection(_)
        ));
    }
    expect_retry(&mut pair, addr("[2001:db8::ffff:1]:443"));
    let (_, mut d) = fresh_initial(&mut pair);
    assert!(matches!(
        pair.server
            .handle(pair.now, addr("[2001:db8:0:1::1]:443"), &mut d),
        DatagramEvent::NewConnection(_)
    ));

    // Releasing the attempts releases the source.
    while let Some(id) = pair.server.poll_incoming().map(|i| i.id()) {
        pair.server.refuse(id);
    }
    assert_eq!(pair.server.stats().refused.application, 6);
    assert!(pair.server.admission.per_source.is_empty());
    let (_, mut d) = fresh_initial(&mut pair);
    assert!(matches!(
        pair.server.handle(pair.now, addr("192.0.2.7:4"), &mut d),
        DatagramEvent::NewConnection(_)
    ));
}

/// `max_connections` counts accepted connections until they are drained.
#[test]
fn connection_limit_refuses_and_counts_until_removed() {
    let mut pair = pair_with(AdmissionConfig {
        max_connections: 1,
        ..AdmissionConfig::default()
    });
    let _client = pair.connect();
    pair.drive();
    let stats = pair.server.stats();
    assert_eq!(
        (stats.accepted, stats.connections, stats.handshakes),
        (1, 1, 0)
    );
    let (_, mut d) = fresh_initial(&mut pair);
    let first = dcid(&d);
    assert_eq!(
        pair.server.handle(pair.now, addr("10.9.9.9:1"), &mut d),
        DatagramEvent::Handled
    );
    let reply = replies(&mut pair);
    assert_eq!(
        close_code(&reply[0], &first),
        Some(TransportErrorCode::CONNECTION_REFUSED)
    );
    assert_eq!(pair.server.stats().refused.connections, 1);
    let handle = pair.server.connection_handles()[0];
    pair.server.remove(handle);
    assert_eq!(pair.server.stats().connections, 0);
    assert!(pair.server.admission.live.is_empty());
}

/// Fleet-wide keys (issue 13): a Retry token made by one server is accepted
/// by another configured with the same fleet secret (RFC 9000 §8.1.4: only
/// "the server" — here, the fleet — holds the integrity key), so a client
/// retried by one instance can complete its handshake on another; a server
/// with another secret closes with INVALID_TOKEN (§8.1.2).
#[test]
fn fleet_servers_accept_each_others_retry_tokens() {
    let mut pair = pair_with(AdmissionConfig {
        retry_threshold: 0,
        ..AdmissionConfig::default()
    });
    let mut config: ServerConfig = (*pair.server_config().unwrap()).clone();
    config.admission.retry_threshold = 0;
    let now = pair.now;
    let server = |secret: &[u8], seed: u8| {
        let mut ep = Endpoint::new(
            Arc::new(EndpointConfig::with_fleet_key(secret)),
            Some(Arc::new(config.clone())),
            [seed; 32],
        );
        ep.set_wall_clock(now, std::time::Duration::from_secs(1_800_000_000));
        ep
    };
    pair.server = server(b"the fleet's secret", 1);
    let from = addr("10.0.0.1:1000");
    let retried = expect_retry(&mut pair, from);

    let mut other = server(b"the fleet's secret", 2);
    let mut d = retried.clone();
    assert!(matches!(
        other.handle(pair.now, from, &mut d),
        DatagramEvent::NewConnection(_)
    ));
    assert!(other.poll_incoming().unwrap().remote_address_validated());

    let mut stranger = server(b"another fleet", 3);
    let mut d = retried.clone();
    assert_eq!(
        stranger.handle(pair.now, from, &mut d),
        DatagramEvent::Handled
    );
    let mut buf = Vec::new();
    let t = stranger.poll_transmit(pair.now, 1, &mut buf).unwrap();
    let reply = &buf[buf.len() - t.size..];
    // The close is protected with the keys of the client's current DCID
    // (the Retry's Source CID).
    assert_eq!(
        close_code(reply, &dcid(&retried)),
        Some(TransportErrorCode::INVALID_TOKEN)
    );
}

/// The fleet secret fixes the stateless reset key (RFC 9000 §10.3.2: every
/// instance computes the same token for a connection ID) and a token key
/// of its own; another secret gives other keys.
#[test]
fn fleet_key_derives_the_same_distinct_keys_everywhere() {
    let a = EndpointConfig::with_fleet_key(b"secret one");
    let b = EndpointConfig::with_fleet_key(b"secret one");
    let c = EndpointConfig::with_fleet_key(b"secret two");
    assert_eq!(a.reset_key, b.reset_key);
    assert_eq!(a.token_key, b.token_key);
    assert_ne!(a.reset_key, c.reset_key);
    assert_ne!(a.token_key, c.token_key);
    assert_ne!(Some(a.reset_key), a.token_key);
    let cid = ConnectionId::new(&[7; 8]).unwrap();
    assert_eq!(
        crate::endpoint::reset::reset_token(&a.reset_key, &cid),
        crate::endpoint::reset::reset_token(&b.reset_key, &cid)
    );
}
