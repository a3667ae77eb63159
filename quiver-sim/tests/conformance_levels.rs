//! Conformance (issue 13 item 4), rules about encryption levels: frames in
//! packet types that do not allow them (RFC 9000 §12.4, Table 3) beyond the
//! Handshake cases of `violations.rs`, acknowledgments within one packet
//! number space (§13.1), and TLS messages QUIC forbids (RFC 9001 §6, §8.4).
//! The victim closes with the code the RFC names and the misbehaving side
//! hears it.
//!
//! Coverage (rule → test):
//!
//! | Rule | Code | Test |
//! |---|---|---|
//! | RFC 9000 §12.4, Table 3: ACK, CRYPTO, NEW_TOKEN, PATH_RESPONSE, HANDSHAKE_DONE in 0-RTT; §12.5 (MAY): RETIRE_CONNECTION_ID | PROTOCOL_VIOLATION | `frames_not_allowed_in_0rtt_are_a_protocol_violation` |
//! | §13.1 a Handshake ACK of a packet never sent in that space (SHOULD) | PROTOCOL_VIOLATION | `a_handshake_ack_of_a_packet_never_sent_is_a_protocol_violation` |
//! | RFC 9000 §12.4, Table 3: STREAM, NEW_TOKEN, HANDSHAKE_DONE in a server's Initial | PROTOCOL_VIOLATION | `frames_not_allowed_in_a_server_initial_are_a_protocol_violation` |
//! | RFC 9001 §6 a TLS KeyUpdate message | CRYPTO_ERROR 0x010a | `a_tls_key_update_is_crypto_error_unexpected_message` |
//! | RFC 9001 §8.4 ClientHello with a legacy_session_id (SHOULD) | PROTOCOL_VIOLATION | `a_client_hello_with_a_legacy_session_id_is_a_protocol_violation` |
//!
//! The 0-RTT test found RETIRE_CONNECTION_ID accepted in 0-RTT: the server
//! retired its handshake connection ID and the handshake failed; quiver
//! now takes §12.5's option (`frame::is_allowed_strict` on receipt).
//!
//! Not triggerable with the hooks: post-handshake TLS messages from the
//! server (CertificateRequest, RFC 9001 §4.4; a NewSessionTicket with
//! another max_early_data_size, §4.6.1) need the offset of the server's
//! 1-RTT CRYPTO stream after its tickets, which tests cannot read; and
//! the client's check that acknowledgments of rejected 0-RTT packets are
//! a PROTOCOL_VIOLATION (RFC 9001 §4.6.2, SHOULD) needs a server that
//! acknowledges packets it did not process.

mod common_forge;
mod common_violate;
mod common_zero_rtt;

use std::time::Duration;

use common_forge::{
    ForgedClient, ForgedServer, client_hello, client_params, crypto_padded, seal_initial,
};
use common_violate::{connected_seeded, encode, expect, server_violates_in_handshake, v};
use common_zero_rtt::{early_data_pair, first_connection};
use quiver_proto::frame::{self, Frame, NewToken, PathResponse, RetireConnectionId};
use quiver_proto::{
    ConnectionError, ConnectionId, Side, TransportConfig, TransportErrorCode as Code,
};
use quiver_sim::quic::{Pair, TestPki};
use quiver_sim::{LinkConfig, for_each_seed};

const SEEDS: usize = 3;

/// Runs until the connections `client` and `server` have both closed;
/// returns (misbehaving side's, victim's) close reasons.
fn closes(
    pair: &mut Pair,
    client: quiver_proto::ConnectionHandle,
    server_of: impl Fn(&mut Pair) -> Option<quiver_proto::ConnectionHandle>,
) -> (Option<ConnectionError>, Option<ConnectionError>) {
    pair.run_until(Duration::from_secs(5), |p| {
        p.client_conn(client).close_reason().is_some()
            && server_of(p).is_some_and(|h| p.server().conn(h).close_reason().is_some())
    });
    let c = pair.client_conn(client).close_reason().cloned();
    let s = server_of(pair).and_then(|h| pair.server().conn(h).close_reason().cloned());
    (c, s)
}

/// The victim closed with `code` and frame type `ty`, and the misbehaving
/// side heard the same.
fn assert_code(bad: Option<ConnectionError>, victim: Option<ConnectionError>, code: Code, ty: u64) {
    match &victim {
        Some(ConnectionError::TransportError(t)) => {
            assert_eq!(t.code, code, "victim: {t}");
            assert_eq!(t.frame_type, Some(ty), "victim: {t}");
        }
        other => panic!("victim: {other:?}, expected {code}; misbehaving side {bad:?}"),
    }
    match &bad {
        Some(ConnectionError::ConnectionClosed {
            code: heard,
            frame_type,
            ..
        }) => {
            assert_eq!(*heard, code);
            assert_eq!(*frame_type, Some(ty));
        }
        other => panic!("misbehaving side: {other:?}, expected {code}"),
    }
}

#[test]
fn frames_not_allowed_in_0rtt_are_a_protocol_violation() {
    // RFC 9000 §12.4: "An endpoint MUST treat receipt of a frame in a
    // packet type that is not permitted as a connection error of type
    // PROTOCOL_VIOLATION"; §12.5 and Table 3: 0-RTT packets do not carry
    // ACK, CRYPTO, NEW_TOKEN, PATH_RESPONSE, RETIRE_CONNECTION_ID or
    // HANDSHAKE_DONE. A resumed client queues the frame before its first
    // flight; with only 0-RTT keys for application data, it goes in a
    // 0-RTT packet.
    let mut ack = Vec::new();
    frame::encode_ack([0..=0], v(0), None, &mut ack);
    let cases: Vec<(Vec<u8>, u64)> = vec![
        (ack, 0x02),
        (
            encode(&[Frame::Crypto(frame::Crypto {
                offset: v(0),
                data: b"x",
            })]),
            0x06,
        ),
        (encode(&[Frame::NewToken(NewToken { token: b"t" })]), 0x07),
        (encode(&[Frame::PathResponse(PathResponse([1; 8]))]), 0x1b),
        (
            encode(&[Frame::RetireConnectionId(RetireConnectionId {
                sequence: v(0),
            })]),
            0x19,
        ),
        (encode(&[Frame::HandshakeDone]), 0x1e),
    ];
    for (frames, ty) in cases {
        for_each_seed(SEEDS, |seed| {
            let pki = TestPki::new();
            let mut pair = early_data_pair(
                seed,
                LinkConfig::default(),
                TransportConfig::default(),
                &pki,
            );
            first_connection(&mut pair);
            let client = pair.connect();
            eprintln!("case {ty:#x}");
            assert!(pair.client_conn(client).is_zero_rtt_offered());
            pair.client_conn(client)
                .send_raw_frames_for_test(2, frames.clone());
            let (bad, victim) = closes(&mut pair, client, |p| p.server().accepted.get(1).copied());
            assert_code(bad, victim, Code::PROTOCOL_VIOLATION, ty);
        });
    }
}

#[test]
fn a_handshake_ack_of_a_packet_never_sent_is_a_protocol_violation() {
    // RFC 9000 §13.1: "An endpoint SHOULD treat receipt of an
    // acknowledgment for a packet it did not send as a connection error of
    // type PROTOCOL_VIOLATION"; acknowledgments are per packet number space
    // (§12.3), so a Handshake ACK of a packet number the client used only
    // in Initial packets (0) and one never used at all.
    for range in [0..=0, 1_000..=1_000] {
        for_each_seed(SEEDS, |seed| {
            let mut ack = Vec::new();
            frame::encode_ack([range.clone()], v(0), None, &mut ack);
            server_violates_in_handshake(seed, ack, expect(Code::PROTOCOL_VIOLATION, 0x02));
        });
    }
}

#[test]
fn a_tls_key_update_is_crypto_error_unexpected_message() {
    // RFC 9001 §6: "Endpoints MUST treat the receipt of a TLS KeyUpdate
    // message as a connection error of type 0x010a, equivalent to a fatal
    // TLS alert of unexpected_message". The client's post-handshake CRYPTO
    // stream is empty so far: offset 0. KeyUpdate is handshake type 24,
    // length 1, update_not_requested (0).
    let key_update = [24, 0, 0, 1, 0];
    let frames = encode(&[Frame::Crypto(frame::Crypto {
        offset: v(0),
        data: &key_update,
    })]);
    for_each_seed(SEEDS, |seed| {
        let (mut pair, client) =
            connected_seeded(seed, TransportConfig::default(), TransportConfig::default());
        pair.client_conn(client)
            .send_raw_frames_for_test(2, frames.clone());
        let code = Code::crypto(10);
        let (bad, victim) = closes(&mut pair, client, |p| p.server_handle());
        let Some(ConnectionError::TransportError(t)) = &victim else {
            panic!("server: {victim:?}");
        };
        assert_eq!(t.code, code, "server: {t}");
        let Some(ConnectionError::ConnectionClosed { code: heard, .. }) = bad else {
            panic!("client: {bad:?}");
        };
        assert_eq!(heard, code);
    });
}

#[test]
fn a_client_hello_with_a_legacy_session_id_is_a_protocol_violation() {
    // RFC 9001 §8.4: "A client MUST NOT request the use of the TLS 1.3
    // compatibility mode. A server SHOULD treat the receipt of a TLS
    // ClientHello with a non-empty legacy_session_id field as a connection
    // error of type PROTOCOL_VIOLATION." rustls's QUIC ClientHello has an
    // empty one; 32 bytes are spliced in (handshake header 4, version 2,
    // random 32, then the session ID's length byte).
    for_each_seed(SEEDS, |seed| {
        let mut forged = ForgedClient::new(seed);
        let (dcid, scid) = (forged.dcid, forged.scid);
        let mut hello = client_hello(&forged.pki, client_params(&scid, &[]));
        assert_eq!(
            (hello[0], hello[38]),
            (1, 0),
            "a ClientHello, empty session ID"
        );
        hello[38] = 32;
        hello.splice(39..39, [0x5a; 32]);
        let len = u32::from_be_bytes([0, hello[1], hello[2], hello[3]]) + 32;
        hello[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
        let overhead = seal_initial(&dcid, Side::Client, &dcid, &scid, 0, &[], 0).len();
        let plaintext = crypto_padded(&hello, overhead, 1200);
        forged.send(seal_initial(
            &dcid,
            Side::Client,
            &dcid,
            &scid,
            0,
            &plaintext,
            0,
        ));
        let (code, ty, reason) = forged.close().expect("the server closes");
        assert_eq!(code, Code::PROTOCOL_VIOLATION, "{reason}");
        // The error names no frame type (0, RFC 9000 §19.19): the rule is
        // about a TLS message, not a frame.
        assert_eq!(ty, 0, "{reason}");
        assert!(reason.contains("legacy_session_id"), "{reason:?}");
    });
}

#[test]
fn frames_not_allowed_in_a_server_initial_are_a_protocol_violation() {
    // RFC 9000 §12.4 and Table 3: Initial packets carry only PADDING, PING,
    // ACK, CRYPTO and CONNECTION_CLOSE (0x1c). A forged server Initial
    // with a STREAM, NEW_TOKEN or HANDSHAKE_DONE frame: the client closes
    // with PROTOCOL_VIOLATION naming the frame.
    let cases: Vec<(Vec<u8>, u64)> = vec![
        (encode(&[common_violate::stream(1, 0, b"x", false)]), 0x0a),
        (encode(&[Frame::NewToken(NewToken { token: b"t" })]), 0x07),
        (encode(&[Frame::HandshakeDone]), 0x1e),
    ];
    for (frames, ty) in cases {
        for_each_seed(SEEDS, |seed| {
            let mut forged = ForgedServer::new(seed);
            let server_cid = ConnectionId::new(&[0x5e; 8]).unwrap();
            let (dcid, scid) = (forged.dcid, forged.scid);
            forged.send(seal_initial(
                &dcid,
                Side::Server,
                &scid,
                &server_cid,
                0,
                &frames,
                0,
            ));
            let client = forged.client;
            let reason = forged.pair.client_conn(client).close_reason().cloned();
            let Some(ConnectionError::TransportError(t)) = &reason else {
                panic!("client: {reason:?}");
            };
            assert_eq!(t.code, Code::PROTOCOL_VIOLATION, "{t}");
            assert_eq!(t.frame_type, Some(ty), "{t}");
        });
    }
}
