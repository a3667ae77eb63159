//! Endpoint tests with hand-carried datagrams: admission answers, tokens,
//! version negotiation, what is ignored.

use std::sync::Arc;
use std::time::Duration;

use crate::connection::tests::Pair;
use crate::crypto::initial_keys;
use crate::frame::{self, Frame};
use crate::packet::header::{self, Parsed};
use crate::packet::{PacketType, TruncatedPacketNumber};
use crate::{
    ConnectionError, ConnectionId, DatagramEvent, Endpoint, EndpointConfig, Side,
    TransportErrorCode,
};

/// Client → server datagrams currently queued.
pub(super) fn client_datagrams(pair: &mut Pair) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = pair.client.poll_transmit(pair.now, 1, &mut buf) {
        out.push(buf[buf.len() - t.size..].to_vec());
    }
    out
}

pub(super) fn server_datagrams(server: &mut Endpoint, now: std::time::Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = server.poll_transmit(now, 1, &mut buf) {
        out.push(buf[buf.len() - t.size..].to_vec());
    }
    out
}

/// A decrypted Initial: its Source CID, packet number and frames.
pub(super) struct Opened {
    pub(super) src_cid: ConnectionId,
    pub(super) dst_cid: ConnectionId,
    pub(super) pn: u64,
    pub(super) payload: Vec<u8>,
}

impl Opened {
    pub(super) fn frames(&self) -> Vec<Frame<'_>> {
        frame::Iter::new(&self.payload)
            .map(Result::unwrap)
            .collect()
    }
}

/// Opens the datagram's first Initial, sent by `sender`, with the keys of
/// the client's first DCID `odcid`.
pub(super) fn open(datagram: &[u8], odcid: &ConnectionId, sender: Side) -> Opened {
    let Ok(Parsed::Packet(p)) = header::decode(datagram, 8) else {
        panic!("not a packet");
    };
    let reader = match sender {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    };
    let keys = initial_keys(crate::Version::V1, odcid, reader);
    let mut packet = datagram[..p.len].to_vec();
    let pn_len = keys.remote.header.remove(&mut packet, p.pn_offset).unwrap();
    let header_len = p.pn_offset + pn_len;
    let pn = TruncatedPacketNumber::from_wire(&packet[p.pn_offset..header_len]).expand(None);
    let len = keys
        .remote
        .packet
        .open(pn, &mut packet, header_len)
        .unwrap();
    Opened {
        src_cid: p.src_cid,
        dst_cid: p.dst_cid,
        pn,
        payload: packet[header_len..header_len + len].to_vec(),
    }
}

/// The CONNECTION_CLOSE code in a server Initial, opened with the keys of
/// the client's first DCID.
fn initial_close_code(datagram: &[u8], client_dcid: &ConnectionId) -> Option<TransportErrorCode> {
    open(datagram, client_dcid, Side::Server)
        .frames()
        .into_iter()
        .find_map(|f| match f {
            Frame::ConnectionClose(c) => Some(c.code()),
            _ => None,
        })
}

pub(super) fn first_dcid(datagram: &[u8]) -> ConnectionId {
    match header::decode(datagram, 8).unwrap() {
        Parsed::Packet(p) => p.dst_cid,
        other => panic!("{other:?}"),
    }
}

#[test]
fn refusal_is_an_initial_connection_close_with_connection_refused() {
    let mut pair = Pair::classical();
    let client = pair.connect();
    let mut first = client_datagrams(&mut pair).remove(0);
    let dcid = first_dcid(&first);
    pair.server.handle(pair.now, pair.client_addr, &mut first);
    let id = pair.server.poll_incoming().unwrap().id();
    pair.server.refuse(id);
    let mut reply = server_datagrams(&mut pair.server, pair.now);
    assert_eq!(reply.len(), 1);
    assert_eq!(
        initial_close_code(&reply[0], &dcid),
        Some(TransportErrorCode::CONNECTION_REFUSED)
    );
    assert!(pair.server.connection_handles().is_empty());
    pair.client
        .handle(pair.now, pair.server_addr, &mut reply[0]);
    let reason = pair
        .client
        .connection(client)
        .unwrap()
        .close_reason()
        .cloned();
    assert_eq!(reason, Some(ConnectionError::Refused));
}

/// Runs a Retry round: returns the client's Initial carrying the token.
fn retried_initial(pair: &mut Pair, retrier: &mut Endpoint) -> (Vec<u8>, ConnectionId) {
    let mut first = client_datagrams(pair).remove(0);
    let dcid = first_dcid(&first);
    retrier.handle(pair.now, pair.client_addr, &mut first);
    let id = retrier.poll_incoming().unwrap().id();
    retrier.retry(pair.now, id).unwrap();
    let mut retry = server_datagrams(retrier, pair.now).remove(0);
    pair.client.handle(pair.now, pair.server_addr, &mut retry);
    let second = client_datagrams(pair).remove(0);
    (second, dcid)
}

/// RFC 9000 §8.1.2: a token the server did not issue gets INVALID_TOKEN.
#[test]
fn forged_retry_token_is_answered_with_invalid_token() {
    let mut pair = Pair::classical();
    let client = pair.connect();
    // Another server (another secret) issues the Retry: its token is forged
    // as far as ours is concerned.
    let mut impostor = Endpoint::new(
        Arc::new(EndpointConfig::new([0x77; 32])),
        pair.server_config(),
        [0x78; 32],
    );
    let (mut second, _) = retried_initial(&mut pair, &mut impostor);
    let second_dcid = first_dcid(&second);
    pair.server.handle(pair.now, pair.client_addr, &mut second);
    assert!(
        pair.server.poll_incoming().is_none(),
        "no state for a forged token"
    );
    let mut reply = server_datagrams(&mut pair.server, pair.now);
    assert_eq!(
        initial_close_code(&reply[0], &second_dcid),
        Some(TransportErrorCode::INVALID_TOKEN)
    );
    pair.client
        .handle(pair.now, pair.server_addr, &mut reply[0]);
    let reason = pair
        .client
        .connection(client)
        .unwrap()
        .close_reason()
        .cloned();
    assert!(
        matches!(reason, Some(ConnectionError::ConnectionClosed { code, .. }) if code == TransportErrorCode::INVALID_TOKEN),
        "{reason:?}"
    );
}

#[test]
fn expired_retry_token_is_answered_with_invalid_token() {
    let mut pair = Pair::classical();
    let _client = pair.connect();
    let mut server = std::mem::replace(
        &mut pair.server,
        Endpoint::new(Arc::new(EndpointConfig::new([0; 32])), None, [0; 32]),
    );
    let (mut second, _) = retried_initial(&mut pair, &mut server);
    let second_dcid = first_dcid(&second);
    let late = pair.now + Duration::from_secs(11);
    server.handle(late, pair.client_addr, &mut second);
    assert!(server.poll_incoming().is_none());
    let reply = server_datagrams(&mut server, late);
    assert_eq!(
        initial_close_code(&reply[0], &second_dcid),
        Some(TransportErrorCode::INVALID_TOKEN)
    );
}

#[test]
fn valid_retry_token_marks_the_attempt_validated_and_cannot_be_retried_again() {
    let mut pair = Pair::classical();
    let _client = pair.connect();
    let mut server = std::mem::replace(
        &mut pair.server,
        Endpoint::new(Arc::new(EndpointConfig::new([0; 32])), None, [0; 32]),
    );
    let (mut second, _) = retried_initial(&mut pair, &mut server);
    server.handle(pair.now, pair.client_addr, &mut second);
    let incoming = server.poll_incoming().unwrap();
    assert!(incoming.remote_address_validated());
    let id = incoming.id();
    assert!(matches!(
        server.retry(pair.now, id),
        Err(crate::RetryError::AlreadyValidated)
    ));
    server.accept(pair.now, id).unwrap();
}

/// RFC 9000 §14.1: Initials in datagrams under 1200 bytes are dropped.
#[test]
fn short_initial_datagrams_are_dropped() {
    let mut pair = Pair::classical();
    let _client = pair.connect();
    let first = client_datagrams(&mut pair).remove(0);
    // Cut the padding: a valid header and Length, but a small datagram.
    let Ok(Parsed::Packet(p)) = header::decode(&first, 8) else {
        panic!()
    };
    let mut short = first[..p.len.min(1199)].to_vec();
    short.truncate(1199);
    pair.server.handle(pair.now, pair.client_addr, &mut short);
    assert!(pair.server.poll_incoming().is_none());
    assert!(server_datagrams(&mut pair.server, pair.now).is_empty());
}

/// RFC 9000 §6.1: an unknown version gets Version Negotiation listing ours
/// (and a greasing version, §6.3), with the CIDs echoed (§17.2.1).
#[test]
fn unknown_version_gets_version_negotiation() {
    let mut pair = Pair::classical();
    let mut d = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8];
    d.extend_from_slice(&[0x11; 8]);
    d.push(4);
    d.extend_from_slice(&[0x22; 4]);
    d.resize(1200, 0);
    pair.server.handle(pair.now, pair.client_addr, &mut d);
    let reply = server_datagrams(&mut pair.server, pair.now);
    assert_eq!(reply.len(), 1);
    let Ok(Parsed::Packet(p)) = header::decode(&reply[0], 8) else {
        panic!()
    };
    assert_eq!(p.ty, PacketType::VersionNegotiation);
    assert_eq!(&p.dst_cid[..], &[0x22; 4]);
    assert_eq!(&p.src_cid[..], &[0x11; 8]);
    let versions: Vec<u32> =
        header::version_negotiation_versions(&reply[0][p.pn_offset..]).collect();
    assert!(versions.contains(&1) && versions.contains(&0x6b3343cf));
    assert!(versions.iter().any(|v| crate::Version::is_reserved(*v)));
    // Too small to be a client's first datagram: no answer (§6.1).
    let mut small = d[..100].to_vec();
    pair.server.handle(pair.now, pair.client_addr, &mut small);
    assert!(server_datagrams(&mut pair.server, pair.now).is_empty());
}

/// RFC 9000 §10.3.1: a datagram that routes nowhere is checked against the
/// peer reset tokens of connection IDs in use, through one table: the token
/// of the server ID the client sends to resets the client, from any address
/// (the table is keyed by token alone, so a reset after a NAT rebinding
/// counts); the tokens of spare IDs the client never used do not ("MUST NOT
/// check for any stateless reset tokens associated with connection IDs it
/// has not used").
#[test]
fn stateless_reset_tokens_are_checked_only_for_ids_in_use() {
    let mut pair = Pair::classical();
    let client = pair.connect();
    pair.drive();
    let server = pair.server.connection_handles()[0];
    // Each side checks the one token of the peer ID it sends to.
    assert_eq!(pair.client.reset_tokens.len(), 1);
    assert_eq!(pair.server.reset_tokens.len(), 1);
    let server_cids = pair
        .server
        .connections
        .slot_untouched(server)
        .unwrap()
        .cids
        .clone();
    assert!(server_cids.len() > 1, "the server issued spare IDs");
    let server_key = [3u8; 32]; // Pair's server EndpointConfig
    let reset_for = |cid: &ConnectionId| {
        let mut d = vec![0x41u8; 40];
        d[24..].copy_from_slice(&crate::endpoint::reset::reset_token(&server_key, cid));
        d
    };
    // Spare IDs: not checked.
    for cid in &server_cids[1..] {
        let mut d = reset_for(cid);
        assert_eq!(
            pair.client.handle(pair.now, pair.server_addr, &mut d),
            DatagramEvent::Handled
        );
    }
    assert!(
        pair.client
            .connection(client)
            .unwrap()
            .close_reason()
            .is_none()
    );
    // The ID in use (the handshake one), from an address never seen.
    let mut d = reset_for(&server_cids[0]);
    let elsewhere = "192.0.2.7:999".parse().unwrap();
    assert_eq!(
        pair.client.handle(pair.now, elsewhere, &mut d),
        DatagramEvent::Connection(client)
    );
    assert_eq!(
        pair.client.connection(client).unwrap().close_reason(),
        Some(&ConnectionError::Reset)
    );
    // Removing the connection withdraws its tokens.
    pair.client.remove(client);
    assert_eq!(pair.client.reset_tokens.len(), 0);
    pair.server.remove(server);
    assert_eq!(pair.server.reset_tokens.len(), 0);
}

/// An Initial packet as `sender` would protect it with the Initial keys of
/// `odcid`, carrying `frames`.
pub(super) fn forge_initial(
    odcid: &ConnectionId,
    sender: Side,
    dst_cid: ConnectionId,
    src_cid: ConnectionId,
    pn: u64,
    frames: &[u8],
) -> Vec<u8> {
    forge_initial_with(odcid, sender, dst_cid, src_cid, pn, frames, false)
}

/// [`forge_initial`], with the QUIC bit cleared (RFC 9287) when `grease`.
fn forge_initial_with(
    odcid: &ConnectionId,
    sender: Side,
    dst_cid: ConnectionId,
    src_cid: ConnectionId,
    pn: u64,
    frames: &[u8],
    grease: bool,
) -> Vec<u8> {
    let keys = initial_keys(crate::Version::V1, odcid, sender);
    let mut buf = Vec::new();
    let encoded = header::Header::Initial {
        version: crate::Version::V1,
        dst_cid,
        src_cid,
        token: &[],
        number: TruncatedPacketNumber::with_len(pn, 4),
    }
    .encode(&mut buf);
    if grease {
        buf[0] &= !0x40;
    }
    buf.extend_from_slice(frames);
    let tag = keys.local.packet.tag_len();
    buf.resize(buf.len() + tag, 0);
    let payload_and_tag = buf.len() - encoded.header_end();
    assert!(encoded.finish(&mut buf, payload_and_tag));
    keys.local
        .packet
        .seal(pn, &mut buf, encoded.header_end())
        .unwrap();
    keys.local
        .header
        .apply(&mut buf, encoded.pn_offset)
        .unwrap();
    buf
}

/// RFC 9000 §7.2: once the client has taken the server's Source CID from
/// a valid Initial, a later packet with another Source CID is discarded,
/// even one that authenticates (Initial keys are public).
#[test]
fn client_discards_server_packets_with_another_source_cid() {
    // CONNECTION_CLOSE (transport), PROTOCOL_VIOLATION, no frame type, no
    // reason: if processed it would end the connection.
    const CLOSE: [u8; 4] = [0x1c, 0x0a, 0x00, 0x00];
    for (change_src, closes) in [(false, true), (true, false)] {
        let mut pair = Pair::classical();
        let client = pair.connect();
        let mut first = client_datagrams(&mut pair).remove(0);
        let odcid = first_dcid(&first);
        pair.server.handle(pair.now, pair.client_addr, &mut first);
        let id = pair.server.poll_incoming().unwrap().id();
        pair.server.accept(pair.now, id).unwrap();
        let mut reply = server_datagrams(&mut pair.server, pair.now).remove(0);
        let Ok(Parsed::Packet(p)) = header::decode(&reply, 8) else {
            panic!("server reply")
        };
        pair.client.handle(pair.now, pair.server_addr, &mut reply);
        let src_cid = if change_src {
            ConnectionId::new(&[0xee; 8]).unwrap()
        } else {
            p.src_cid
        };
        let mut forged = forge_initial(&odcid, Side::Server, p.dst_cid, src_cid, 50, &CLOSE);
        pair.client.handle(pair.now, pair.server_addr, &mut forged);
        let conn = pair.client.connection(client).unwrap();
        assert_eq!(conn.is_closed(), closes, "source CID changed: {change_src}");
    }
}

/// RFC 9000 §7.2: "if subsequent Initial packets include a different
/// Source Connection ID, they MUST be discarded" (the server side).
#[test]
fn server_discards_client_initials_with_another_source_cid() {
    const CLOSE: [u8; 4] = [0x1c, 0x0a, 0x00, 0x00];
    for (change_src, closes) in [(false, true), (true, false)] {
        let mut pair = Pair::classical();
        pair.connect();
        let mut first = client_datagrams(&mut pair).remove(0);
        let Ok(Parsed::Packet(p)) = header::decode(&first, 8) else {
            panic!("client Initial")
        };
        pair.server.handle(pair.now, pair.client_addr, &mut first);
        let id = pair.server.poll_incoming().unwrap().id();
        let handle = pair.server.accept(pair.now, id).unwrap();
        let _ = server_datagrams(&mut pair.server, pair.now);
        let src_cid = if change_src {
            ConnectionId::new(&[0xee; 8]).unwrap()
        } else {
            p.src_cid
        };
        let mut forged = forge_initial(&p.dst_cid, Side::Client, p.dst_cid, src_cid, 50, &CLOSE);
        // Padded to 1200 bytes as a client's Initial datagram must be.
        forged.resize(1200, 0);
        pair.server.handle(pair.now, pair.client_addr, &mut forged);
        let conn = pair.server.connection(handle).unwrap();
        assert_eq!(conn.is_closed(), closes, "source CID changed: {change_src}");
    }
}

/// RFC 9287 §3.1: a client that remembers the server's grease_quic_bit
/// (a resumed session) may clear the QUIC bit of its first Initial, as
/// quinn does. A server advertising grease_quic_bit (the default) starts
/// an attempt from it; it used to drop it, so a resuming quinn client
/// waited a PTO for its retransmission.
#[test]
fn first_initial_with_the_quic_bit_cleared_starts_an_attempt() {
    let mut pair = Pair::classical();
    let _client = pair.connect();
    let first = client_datagrams(&mut pair).remove(0);
    let dcid = first_dcid(&first);
    let Ok(Parsed::Packet(p)) = header::decode(&first, 8) else {
        panic!("not a packet")
    };
    // The client's frames (its ClientHello and padding), protected again
    // with the QUIC bit cleared: the bit is authenticated.
    let opened = open(&first, &dcid, Side::Client);
    let mut greased = forge_initial_with(
        &dcid,
        Side::Client,
        dcid,
        p.src_cid,
        opened.pn,
        &opened.payload,
        true,
    );
    assert_eq!(greased[0] & 0x40, 0);
    assert!(greased.len() >= 1200);
    pair.server.handle(pair.now, pair.client_addr, &mut greased);
    let id = pair.server.poll_incoming().expect("an attempt").id();
    assert!(pair.server.accept(pair.now, id).is_ok());
}
