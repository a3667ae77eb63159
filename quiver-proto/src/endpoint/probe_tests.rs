//! A client's PING-only Initial that arrives without its ClientHello (the
//! twin of a PTO probe, as quiche sends them) is acknowledged, and the
//! attempt goes on under the CID of that acknowledgement.

use crate::connection::tests::Pair;
use crate::frame::Frame;
use crate::{ConnectionError, ConnectionId, RetryError, Side, TransportErrorCode};

use super::tests::{client_datagrams, first_dcid, forge_initial, open, server_datagrams};

/// The client's ClientHello lost, then its PTO probe pair: the first
/// probe (the ClientHello again) lost too and the second carried as a
/// PING-only Initial with the same packet number, as quiche sends it.
/// Returns the held ClientHello datagram, the client's first DCID, and
/// the probe datagram.
fn lose_hello_keep_probe(pair: &mut Pair) -> (Vec<u8>, ConnectionId, Vec<u8>) {
    let hello = client_datagrams(pair).remove(0);
    let first = open(&hello, &first_dcid(&hello), Side::Client);
    let odcid = first_dcid(&hello);
    let pto = pair.client.poll_timeout().expect("a PTO");
    pair.now = pto;
    pair.client.handle_timeout(pair.now);
    let probes = client_datagrams(pair);
    let probe = open(probes.last().unwrap(), &odcid, Side::Client);
    assert!(probe.pn > first.pn);
    // PING, padded to the 1200 bytes of a client's Initial datagram.
    let mut ping = forge_initial(
        &odcid,
        Side::Client,
        first.dst_cid,
        first.src_cid,
        probe.pn,
        &[0x01],
    );
    ping.resize(1200, 0);
    (hello, odcid, ping)
}

/// The ClientHello datagram `hello` sent to `to`, as the client sends it
/// once it took that as its Destination CID (RFC 9000 §7.2). Same packet
/// number: one the client really sent, so that the server's ACK of it is
/// no ACK of a packet never sent.
fn hello_to(hello: &[u8], odcid: &ConnectionId, to: ConnectionId) -> Vec<u8> {
    let opened = open(hello, odcid, Side::Client);
    let mut datagram = forge_initial(
        odcid,
        Side::Client,
        to,
        opened.src_cid,
        opened.pn,
        &opened.payload,
    );
    datagram.resize(datagram.len().max(1200), 0);
    datagram
}

/// The whole exchange: the probe is acknowledged from a CID the server
/// chose, the ClientHello sent to that CID completes the attempt, and the
/// connection keeps the CID (the client discards packets from any other,
/// RFC 9000 §7.2) and numbers its Initials after the ACK's (§12.3: a
/// client would drop a second packet 0 as a duplicate). The handshake
/// then completes without waiting for another PTO.
#[test]
fn probe_without_client_hello_is_acknowledged_and_the_handshake_goes_on() {
    let mut pair = Pair::classical();
    let client = pair.connect();
    let (hello, odcid, mut ping) = lose_hello_keep_probe(&mut pair);
    let probe_pn = open(&ping, &odcid, Side::Client).pn;
    pair.server.handle(pair.now, pair.client_addr, &mut ping);
    assert!(pair.server.poll_incoming().is_none(), "no ClientHello yet");
    assert_eq!(pair.server.stats().probes_acknowledged, 1);
    let mut replies = server_datagrams(&mut pair.server, pair.now);
    assert_eq!(replies.len(), 1);
    let ack = open(&replies[0], &odcid, Side::Server);
    assert_eq!(ack.pn, 0);
    assert_ne!(ack.src_cid, odcid);
    assert_eq!(ack.src_cid.len(), 8, "a CID from the server's generator");
    match ack.frames().as_slice() {
        [Frame::Ack(a)] => {
            assert_eq!((a.largest(), a.smallest()), (probe_pn, probe_pn));
        }
        other => panic!("{other:?}"),
    }
    let server_cid = ack.src_cid;
    pair.client
        .handle(pair.now, pair.server_addr, &mut replies[0]);
    assert!(!pair.client.connection(client).unwrap().is_closed());

    // The ClientHello arrives, sent to the ACK's CID: the attempt is
    // found by it and reported, and accepting it answers from that CID.
    let mut resent = hello_to(&hello, &odcid, server_cid);
    let event = pair.server.handle(pair.now, pair.client_addr, &mut resent);
    assert!(
        matches!(event, crate::DatagramEvent::NewConnection(_)),
        "{event:?}"
    );
    let id = pair.server.poll_incoming().unwrap().id();
    assert!(matches!(
        pair.server.retry(pair.now, id),
        Err(RetryError::Answered)
    ));
    pair.server.accept(pair.now, id).unwrap();
    let flight = server_datagrams(&mut pair.server, pair.now);
    let server_hello = open(&flight[0], &odcid, Side::Server);
    assert_eq!(server_hello.src_cid, server_cid);
    assert!(server_hello.pn >= 1, "packet number 0 went to the ACK");
    for mut d in flight {
        pair.client.handle(pair.now, pair.server_addr, &mut d);
    }
    let started = pair.now;
    pair.drive();
    let conn = pair.client.connection(client).unwrap();
    assert!(conn.is_handshake_confirmed(), "{:?}", conn.close_reason());
    assert!(pair.now - started < std::time::Duration::from_millis(100));
}

/// A refusal after the ACK comes from the ACK's CID with packet number 1,
/// so the client takes it (RFC 9000 §7.2, §12.3) and learns why.
#[test]
fn refusal_after_an_acknowledged_probe_reaches_the_client() {
    let mut pair = Pair::classical();
    let client = pair.connect();
    let (hello, odcid, mut ping) = lose_hello_keep_probe(&mut pair);
    pair.server.handle(pair.now, pair.client_addr, &mut ping);
    let mut ack = server_datagrams(&mut pair.server, pair.now).remove(0);
    let server_cid = open(&ack, &odcid, Side::Server).src_cid;
    pair.client.handle(pair.now, pair.server_addr, &mut ack);
    // Sent to the client's first DCID this time (the ACK might have been
    // lost): the attempt is found by that too.
    let mut resent = hello_to(&hello, &odcid, odcid);
    pair.server.handle(pair.now, pair.client_addr, &mut resent);
    let id = pair.server.poll_incoming().unwrap().id();
    pair.server.refuse(id);
    let mut close = server_datagrams(&mut pair.server, pair.now).remove(0);
    let opened = open(&close, &odcid, Side::Server);
    assert_eq!((opened.src_cid, opened.pn), (server_cid, 1));
    assert!(matches!(
        opened.frames().as_slice(),
        [Frame::ConnectionClose(c), ..] if c.code() == TransportErrorCode::CONNECTION_REFUSED
    ));
    pair.client.handle(pair.now, pair.server_addr, &mut close);
    let reason = pair
        .client
        .connection(client)
        .unwrap()
        .close_reason()
        .cloned();
    assert_eq!(reason, Some(ConnectionError::Refused));
    // Both keys of the attempt are gone with it.
    assert!(pair.server.incoming_keys.is_empty());
}

/// Only PING and PADDING make a probe: an Initial with any other frame
/// and no ClientHello (here an ACK, which a client cannot have anything
/// to send before the server spoke) starts nothing and is not answered.
#[test]
fn initial_without_client_hello_and_not_a_probe_is_dropped() {
    let mut pair = Pair::classical();
    pair.connect();
    let (_, odcid, ping) = lose_hello_keep_probe(&mut pair);
    let probe = open(&ping, &odcid, Side::Client);
    // ACK of packet 0 (largest 0, delay 0, no more ranges, first range 0).
    let mut other = forge_initial(
        &odcid,
        Side::Client,
        probe.dst_cid,
        probe.src_cid,
        probe.pn,
        &[0x01, 0x02, 0x00, 0x00, 0x00, 0x00],
    );
    other.resize(1200, 0);
    pair.server.handle(pair.now, pair.client_addr, &mut other);
    assert!(server_datagrams(&mut pair.server, pair.now).is_empty());
    assert_eq!(pair.server.stats().probes_acknowledged, 0);
    assert!(pair.server.incoming_keys.is_empty());
}
