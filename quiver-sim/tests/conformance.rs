//! Conformance gaps (issue 13 item 4): a client's transport parameters
//! that the server must reject with TRANSPORT_PARAMETER_ERROR (RFC 9000
//! §7.4: "An endpoint MUST treat receipt of a transport parameter with an
//! invalid value as a connection error of type TRANSPORT_PARAMETER_ERROR";
//! §18.2 for each value). quiver's own encoder refuses to write such
//! parameters, so the client's first Initial is built here from rustls's
//! QUIC client with raw parameter bytes, injected at the server, and the
//! server's Initial CONNECTION_CLOSE is read back with the client's
//! Initial keys (RFC 9000 §10.2.3: before the handshake, the close goes
//! in an Initial packet).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use quiver_proto::crypto::initial_keys;
use quiver_proto::frame::{self, Crypto, Frame};
use quiver_proto::packet::header::{self, Header, Parsed};
use quiver_proto::packet::{PacketType, TruncatedPacketNumber};
use quiver_proto::{ConnectionId, Side, TransportErrorCode, VarInt, Version};
use quiver_sim::quic::{Pair, SERVER_ADDR, TEST_ALPN, TestPki};
use quiver_sim::{LinkConfig, Seed, for_each_seed, loopback};
use rustls::RootCertStore;

/// Where the forged client's datagrams come from.
const FORGED_CLIENT: SocketAddr = loopback(9, 7000);

/// One transport parameter: ID, then value, each with its varint framing
/// (RFC 9000 §18).
fn param(buf: &mut Vec<u8>, id: u64, value: &[u8]) {
    VarInt::from_u64(id).unwrap().encode(buf);
    VarInt::from_u64(value.len() as u64).unwrap().encode(buf);
    buf.extend_from_slice(value);
}

fn varint(x: u64) -> Vec<u8> {
    let mut v = Vec::new();
    VarInt::from_u64(x).unwrap().encode(&mut v);
    v
}

/// The client's parameters: initial_source_connection_id (required, RFC
/// 9000 §7.3) and `extra`.
fn client_params(scid: &ConnectionId, extra: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut buf = Vec::new();
    param(&mut buf, 0x0f, scid);
    for (id, value) in extra {
        param(&mut buf, *id, value);
    }
    buf
}

/// A client's first Initial carrying a ClientHello with `params`, padded to
/// 1200 bytes (RFC 9000 §14.1).
fn client_initial(
    pki: &TestPki,
    dcid: &ConnectionId,
    scid: &ConnectionId,
    params: Vec<u8>,
) -> Vec<u8> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![TEST_ALPN.to_vec()];
    let mut tls = rustls::quic::ClientConnection::new(
        Arc::new(config),
        rustls::quic::Version::V1,
        "localhost".try_into().unwrap(),
        params,
    )
    .unwrap();
    let mut hello = Vec::new();
    tls.write_hs(&mut hello);
    assert!(!hello.is_empty());

    let keys = initial_keys(Version::V1, dcid, Side::Client);
    let mut buf = Vec::new();
    let encoded = Header::Initial {
        version: Version::V1,
        dst_cid: *dcid,
        src_cid: *scid,
        token: &[],
        number: TruncatedPacketNumber::with_len(0, 4),
    }
    .encode(&mut buf);
    Frame::Crypto(Crypto {
        offset: VarInt::from_u32(0),
        data: &hello,
    })
    .encode(&mut buf);
    let tag = keys.local.packet.tag_len();
    // PADDING frames (zero bytes) up to a 1200-byte datagram.
    buf.resize(1200 - tag, 0);
    buf.resize(1200, 0);
    let payload_and_tag = buf.len() - encoded.header_end();
    assert!(encoded.finish(&mut buf, payload_and_tag));
    keys.local
        .packet
        .seal(0, &mut buf, encoded.header_end())
        .unwrap();
    keys.local
        .header
        .apply(&mut buf, encoded.pn_offset)
        .unwrap();
    buf
}

/// The CONNECTION_CLOSE (code, reason) in the server's Initials, read with
/// the keys of the client's `dcid`; `None` if the server sent no close.
fn initial_close(
    datagrams: &[Vec<u8>],
    dcid: &ConnectionId,
) -> Option<(TransportErrorCode, String)> {
    let keys = initial_keys(Version::V1, dcid, Side::Client);
    for d in datagrams {
        let Ok(Parsed::Packet(p)) = header::decode(d, 8) else {
            continue;
        };
        if p.ty != PacketType::Initial {
            continue;
        }
        let mut packet = d[..p.len].to_vec();
        let Ok(pn_len) = keys.remote.header.remove(&mut packet, p.pn_offset) else {
            continue;
        };
        let header_len = p.pn_offset + pn_len;
        let pn = TruncatedPacketNumber::from_wire(&packet[p.pn_offset..header_len]).expand(None);
        let Ok(len) = keys.remote.packet.open(pn, &mut packet, header_len) else {
            continue;
        };
        let close = frame::Iter::new(&packet[header_len..header_len + len])
            .flatten()
            .find_map(|f| match f {
                Frame::ConnectionClose(c) => {
                    Some((c.code(), String::from_utf8_lossy(c.reason).into_owned()))
                }
                _ => None,
            });
        if close.is_some() {
            return close;
        }
    }
    None
}

/// Sends a client Initial whose transport parameters add `extra` and
/// returns the server's CONNECTION_CLOSE, if any.
fn server_answer(seed: Seed, extra: &[(u64, Vec<u8>)]) -> Option<(TransportErrorCode, String)> {
    let pki = TestPki::new();
    let mut pair = Pair::with_pki(
        seed,
        LinkConfig::default(),
        Default::default(),
        Default::default(),
        pki.clone(),
    );
    let mut rng = pair.net.rng("forged-cids");
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    let dcid = ConnectionId::new(&bytes).unwrap();
    let scid = ConnectionId::new(&bytes[..8]).unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let tap = seen.clone();
    pair.net.set_tap(move |d| {
        if d.src == SERVER_ADDR && d.dst == FORGED_CLIENT {
            tap.borrow_mut().push(d.data.to_vec());
        }
    });
    let initial = client_initial(&pki, &dcid, &scid, client_params(&scid, extra));
    pair.net.inject(FORGED_CLIENT, SERVER_ADDR, initial);
    pair.net.run_for(Duration::from_millis(100));
    let seen = seen.borrow();
    assert!(!seen.is_empty(), "the server answered");
    initial_close(&seen, &dcid)
}

fn assert_transport_parameter_error(extra: &[(u64, Vec<u8>)], reason_has: &str) {
    for_each_seed(2, |seed| {
        let (code, reason) = server_answer(seed, extra).expect("the server closes");
        assert_eq!(
            code,
            TransportErrorCode::TRANSPORT_PARAMETER_ERROR,
            "{reason}"
        );
        // The reason names the rule, so a close for another cause (say
        // the required initial_source_connection_id) does not pass.
        assert!(reason.contains(reason_has), "{reason:?}");
    });
}

/// The harness itself: the same Initial with valid parameters starts a
/// handshake and is not closed.
#[test]
fn valid_client_parameters_are_not_closed() {
    for_each_seed(2, |seed| {
        assert_eq!(server_answer(seed, &[]), None);
        // Values at the limits are valid.
        let at_limits = [
            (0x03, varint(1200)),
            (0x0a, varint(20)),
            (0x0b, varint((1 << 14) - 1)),
        ];
        assert_eq!(server_answer(seed, &at_limits), None);
    });
}

/// RFC 9000 §18.2: "A client MUST NOT include any server-only transport
/// parameter ... A server MUST treat receipt of any of these transport
/// parameters as a connection error of type TRANSPORT_PARAMETER_ERROR."
#[test]
fn server_only_parameters_from_a_client_are_transport_parameter_errors() {
    let cid = vec![7u8; 8];
    // preferred_address (§18.2 Figure 22): IPv4 address and port, IPv6
    // address and port, a length-prefixed connection ID, a reset token.
    let mut preferred = vec![192, 0, 2, 1, 0x11, 0x51];
    preferred.extend_from_slice(&[0; 18]);
    preferred.push(8);
    preferred.extend_from_slice(&cid);
    preferred.extend_from_slice(&[0x5a; 16]);
    for (id, value) in [
        (0x00, cid.clone()),    // original_destination_connection_id
        (0x02, vec![0x5a; 16]), // stateless_reset_token
        (0x0d, preferred),      // preferred_address
        (0x10, cid),            // retry_source_connection_id
    ] {
        assert_transport_parameter_error(
            &[(id, value)],
            "server-only transport parameter sent by client",
        );
    }
}

/// RFC 9000 §18.2: max_udp_payload_size "Values below 1200 are invalid."
#[test]
fn max_udp_payload_size_below_1200_is_a_transport_parameter_error() {
    assert_transport_parameter_error(&[(0x03, varint(1199))], "max_udp_payload_size below 1200");
}

/// RFC 9000 §18.2: ack_delay_exponent "Values above 20 are invalid."
#[test]
fn ack_delay_exponent_above_20_is_a_transport_parameter_error() {
    assert_transport_parameter_error(&[(0x0a, varint(21))], "ack_delay_exponent above 20");
}

/// RFC 9000 §18.2: max_ack_delay "Values of 2^14 or greater are invalid."
#[test]
fn max_ack_delay_of_2_to_the_14_is_a_transport_parameter_error() {
    assert_transport_parameter_error(&[(0x0b, varint(1 << 14))], "max_ack_delay of 2^14 ms");
}
