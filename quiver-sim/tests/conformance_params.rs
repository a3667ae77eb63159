//! Conformance (issue 13 item 4), transport parameters and packet-level
//! rules a forged peer can break in its Initial packets: the victim closes
//! with the code the RFC names. The client's Initials are forged with
//! rustls's QUIC client and raw parameter bytes (`common_forge`); the
//! server's with the Initial keys of the client's first Destination
//! Connection ID, its real answers dropped.
//!
//! Coverage (rule → test; the rest of §7.4 / §18.2 is in `conformance.rs`,
//! frame rules in `violations.rs` and `conformance_frames.rs`):
//!
//! | Rule | Code | Test |
//! |---|---|---|
//! | RFC 9000 §18.2 active_connection_id_limit < 2 | TRANSPORT_PARAMETER_ERROR | `active_connection_id_limit_below_2_is_a_transport_parameter_error` |
//! | §4.6, §18.2 initial_max_streams_{bidi,uni} > 2^60 | TRANSPORT_PARAMETER_ERROR | `initial_max_streams_above_2_to_the_60_is_a_transport_parameter_error` |
//! | §7.4 duplicate parameter (SHOULD) | TRANSPORT_PARAMETER_ERROR | `a_duplicate_transport_parameter_is_a_transport_parameter_error` |
//! | §7.4, §18 value length disagrees with its varint | TRANSPORT_PARAMETER_ERROR | `an_integer_parameter_with_trailing_bytes_is_a_transport_parameter_error` |
//! | §18.2 disable_active_migration not empty | TRANSPORT_PARAMETER_ERROR | `a_non_empty_disable_active_migration_is_a_transport_parameter_error` |
//! | §7.3 initial_source_connection_id absent | TRANSPORT_PARAMETER_ERROR | `a_missing_initial_source_connection_id_is_a_transport_parameter_error` |
//! | §7.3 initial_source_connection_id mismatch | TRANSPORT_PARAMETER_ERROR or PROTOCOL_VIOLATION | `a_mismatched_initial_source_connection_id_is_refused` |
//! | RFC 9368 §4 client Chosen Version ≠ version in use | VERSION_NEGOTIATION_ERROR | `a_client_chosen_version_other_than_the_packets_is_a_version_negotiation_error` |
//! | RFC 9368 §4 Chosen Version 0 / not in Available / length % 4 | TRANSPORT_PARAMETER_ERROR | `malformed_client_version_information_is_a_transport_parameter_error` |
//! | RFC 9000 §17.2 reserved bits set (client's Initial) | PROTOCOL_VIOLATION | `reserved_bits_in_a_client_initial_are_a_protocol_violation` |
//! | §17.2 reserved bits set (server's Initial) | PROTOCOL_VIOLATION | `reserved_bits_in_a_server_initial_are_a_protocol_violation` |
//! | §12.4 a packet with no frames (client's Initial) | PROTOCOL_VIOLATION | `a_client_initial_without_frames_is_a_protocol_violation` |
//! | §12.4 a packet with no frames (server's Initial) | PROTOCOL_VIOLATION | `a_server_initial_without_frames_is_a_protocol_violation` |
//! | §17.2.2 a server Initial with a token: discard or PROTOCOL_VIOLATION (quiver discards) | none | `a_server_initial_with_a_token_is_discarded` |
//!
//! Not triggerable here: the same rules on a server's transport parameters
//! (the client as victim) need a forged server handshake through to
//! Handshake keys; quiver-proto's `transport_params` unit tests cover the
//! decoder for both sides, and the client check of the server's Chosen
//! Version is in `version_negotiation.rs`. Reserved bits and empty payloads
//! in Handshake and 1-RTT packets need keys the tests cannot reach; the
//! check is the same code path for every packet type (`recv.rs`).

mod common_forge;

use common_forge::{
    ForgedClient, ForgedServer, LONG_RESERVED_BITS, client_params, param, seal_initial,
    seal_initial_with_token, server_answer, varint,
};
use quiver_proto::frame::Frame;
use quiver_proto::{ConnectionError, ConnectionId, Side, TransportErrorCode};
use quiver_sim::{Seed, for_each_seed};

const TPE: TransportErrorCode = TransportErrorCode::TRANSPORT_PARAMETER_ERROR;

/// `extra` added to valid client parameters: the server closes with `code`
/// and a reason containing `reason_has` (so a close for another cause does
/// not pass).
fn assert_refused(extra: &[(u64, Vec<u8>)], code: TransportErrorCode, reason_has: &str) {
    for_each_seed(2, |seed| {
        let (got, reason) = server_answer(seed, extra).expect("the server closes");
        assert_eq!(got, code, "{reason}");
        assert!(reason.contains(reason_has), "{reason:?}");
    });
}

/// Client parameters built by `make` from the client's Source Connection
/// ID: the server's close (code, reason).
fn answer_raw(seed: Seed, make: impl Fn(&ConnectionId) -> Vec<u8>) -> (TransportErrorCode, String) {
    let mut forged = ForgedClient::new(seed);
    let params = make(&forged.scid);
    forged.send_hello(params);
    let (code, _, reason) = forged.close().expect("the server closes");
    (code, reason)
}

/// version_information (RFC 9368 §3): Chosen Version, then Available
/// Versions, each four bytes.
fn version_information(chosen: u32, available: &[u32]) -> Vec<u8> {
    let mut v = chosen.to_be_bytes().to_vec();
    for a in available {
        v.extend_from_slice(&a.to_be_bytes());
    }
    v
}

#[test]
fn active_connection_id_limit_below_2_is_a_transport_parameter_error() {
    // RFC 9000 §18.2: "The value of the active_connection_id_limit
    // parameter MUST be at least 2. An endpoint that receives a value less
    // than 2 MUST close the connection with an error of type
    // TRANSPORT_PARAMETER_ERROR."
    for limit in [0, 1] {
        assert_refused(
            &[(0x0e, varint(limit))],
            TPE,
            "active_connection_id_limit below 2",
        );
    }
    // 2 is valid.
    for_each_seed(2, |seed| {
        assert_eq!(server_answer(seed, &[(0x0e, varint(2))]), None)
    });
}

#[test]
fn initial_max_streams_above_2_to_the_60_is_a_transport_parameter_error() {
    // RFC 9000 §4.6: "If a max_streams transport parameter ... is received
    // with a value greater than 2^60 ... the connection MUST be closed
    // immediately with a connection error of type TRANSPORT_PARAMETER_ERROR
    // if the offending value was received in a transport parameter"; §18.2
    // for initial_max_streams_bidi (0x08) and _uni (0x09).
    for id in [0x08, 0x09] {
        assert_refused(
            &[(id, varint((1 << 60) + 1))],
            TPE,
            "initial_max_streams above 2^60",
        );
        for_each_seed(2, |seed| {
            assert_eq!(server_answer(seed, &[(id, varint(1 << 60))]), None)
        });
    }
}

#[test]
fn a_duplicate_transport_parameter_is_a_transport_parameter_error() {
    // RFC 9000 §7.4: "An endpoint SHOULD treat receipt of duplicate
    // transport parameters as a connection error of type
    // TRANSPORT_PARAMETER_ERROR." initial_max_data twice, same value.
    assert_refused(
        &[(0x04, varint(1000)), (0x04, varint(1000))],
        TPE,
        "duplicate transport parameter",
    );
}

#[test]
fn an_integer_parameter_with_trailing_bytes_is_a_transport_parameter_error() {
    // RFC 9000 §18: an integer parameter's value is one varint filling the
    // Transport Parameter Length; a length that disagrees is malformed, an
    // invalid value (§7.4: "MUST treat receipt of a transport parameter
    // with an invalid value as a connection error of type
    // TRANSPORT_PARAMETER_ERROR").
    let mut value = varint(1000);
    value.push(0);
    assert_refused(&[(0x04, value)], TPE, "trailing bytes");
}

#[test]
fn a_non_empty_disable_active_migration_is_a_transport_parameter_error() {
    // RFC 9000 §18.2: disable_active_migration "is a zero-length value".
    assert_refused(
        &[(0x0c, vec![1])],
        TPE,
        "disable_active_migration is not empty",
    );
}

#[test]
fn a_missing_initial_source_connection_id_is_a_transport_parameter_error() {
    // RFC 9000 §7.3: "An endpoint MUST treat the absence of the
    // initial_source_connection_id transport parameter from either
    // endpoint ... as a connection error of type
    // TRANSPORT_PARAMETER_ERROR."
    for_each_seed(2, |seed| {
        let mut only_max_data = Vec::new();
        param(&mut only_max_data, 0x04, &varint(1000));
        let (code, reason) = answer_raw(seed, |_| only_max_data.clone());
        assert_eq!(code, TPE, "{reason}");
        assert!(
            reason.contains("initial_source_connection_id"),
            "{reason:?}"
        );
    });
}

#[test]
fn a_mismatched_initial_source_connection_id_is_refused() {
    // RFC 9000 §7.3: "An endpoint MUST treat the following as a connection
    // error of type TRANSPORT_PARAMETER_ERROR or PROTOCOL_VIOLATION: ... a
    // mismatch between values received from a peer in these transport
    // parameters and the value sent in the corresponding Destination or
    // Source Connection ID fields of Initial packets."
    for_each_seed(2, |seed| {
        let (code, reason) = answer_raw(seed, |scid| {
            let mut other = scid.to_vec();
            other[0] ^= 0xff;
            client_params(&ConnectionId::new(&other).unwrap(), &[])
        });
        assert!(
            code == TPE || code == TransportErrorCode::PROTOCOL_VIOLATION,
            "{code} {reason}"
        );
        assert!(
            reason.contains("initial_source_connection_id"),
            "{reason:?}"
        );
    });
}

#[test]
fn a_client_chosen_version_other_than_the_packets_is_a_version_negotiation_error() {
    // RFC 9368 §4: "if the server receives the client's Version Information
    // over QUIC version 1 ... and the client's Chosen Version is not set to
    // 0x00000001, the server MUST close the connection with a version
    // negotiation error" (VERSION_NEGOTIATION_ERROR, RFC 9368 §10.2).
    let v2 = 0x6b33_43cf;
    assert_refused(
        &[(0x11, version_information(v2, &[v2, 1]))],
        TransportErrorCode::VERSION_NEGOTIATION_ERROR,
        "Chosen Version",
    );
    // The matching Chosen Version is accepted.
    for_each_seed(2, |seed| {
        assert_eq!(
            server_answer(seed, &[(0x11, version_information(1, &[1, v2]))]),
            None
        );
    });
}

#[test]
fn malformed_client_version_information_is_a_transport_parameter_error() {
    // RFC 9368 §4: a parsing failure "MUST close the connection; if the
    // connection was using QUIC version 1, that connection closure MUST use
    // a transport error of type TRANSPORT_PARAMETER_ERROR. If an endpoint
    // receives a Chosen Version equal to zero, or any Available Version
    // equal to zero, it MUST treat it as a parsing failure. If a server
    // receives Version Information where the Chosen Version is not included
    // in Available Versions, it MUST treat it as a parsing failure."
    let mut ragged = version_information(1, &[1]);
    ragged.push(0);
    for value in [
        version_information(0, &[1]),
        version_information(1, &[1, 0]),
        version_information(1, &[0x6b33_43cf]),
        ragged,
        vec![0, 0],
    ] {
        for_each_seed(2, |seed| {
            let (code, reason) =
                server_answer(seed, &[(0x11, value.clone())]).expect("the server closes");
            assert_eq!(code, TPE, "{value:?}: {reason}");
        });
    }
}

// ----- packet-level rules in Initial packets -----

/// A forged client that has sent a valid first Initial (pn 0): the server
/// holds a connection, not yet closed.
fn started_client(seed: Seed) -> ForgedClient {
    let mut forged = ForgedClient::new(seed);
    let params = client_params(&forged.scid, &[]);
    forged.send_hello(params);
    assert_eq!(forged.close(), None, "the valid first Initial is accepted");
    forged
}

/// The server's Initial close after `datagram`: (code, frame type).
fn server_close_after(forged: &mut ForgedClient, datagram: Vec<u8>) -> (TransportErrorCode, u64) {
    forged.send(datagram);
    let (code, ty, reason) = forged.close().expect("the server closes");
    assert!(!reason.is_empty(), "the reason names the rule");
    (code, ty)
}

#[test]
fn reserved_bits_in_a_client_initial_are_a_protocol_violation() {
    // RFC 9000 §17.2: "An endpoint MUST treat receipt of a packet that has
    // a non-zero value for these bits after removing both packet and header
    // protection as a connection error of type PROTOCOL_VIOLATION." The
    // second Initial carries a PING, padded to 1200 bytes (§14.1).
    for_each_seed(3, |seed| {
        for bits in [0x04, 0x08, LONG_RESERVED_BITS] {
            let mut forged = started_client(seed);
            let (dcid, scid) = (forged.dcid, forged.scid);
            let overhead = seal_initial(&dcid, Side::Client, &dcid, &scid, 1, &[], 0).len();
            let mut ping = Vec::new();
            Frame::Ping.encode(&mut ping);
            ping.resize(1200 - overhead, 0);
            let packet = seal_initial(&dcid, Side::Client, &dcid, &scid, 1, &ping, bits);
            assert_eq!(packet.len(), 1200);
            let (code, _) = server_close_after(&mut forged, packet);
            assert_eq!(
                code,
                TransportErrorCode::PROTOCOL_VIOLATION,
                "bits {bits:#x}"
            );
        }
    });
}

#[test]
fn a_client_initial_without_frames_is_a_protocol_violation() {
    // RFC 9000 §12.4: "An endpoint MUST treat receipt of a packet
    // containing no frames as a connection error of type
    // PROTOCOL_VIOLATION." The empty Initial (pn 1) is coalesced with a
    // padded one (pn 2) so the datagram has the 1200 bytes §14.1 asks for.
    for_each_seed(3, |seed| {
        let mut forged = started_client(seed);
        let (dcid, scid) = (forged.dcid, forged.scid);
        let mut datagram = seal_initial(&dcid, Side::Client, &dcid, &scid, 1, &[], 0);
        let overhead = seal_initial(&dcid, Side::Client, &dcid, &scid, 2, &[], 0).len();
        let mut ping = Vec::new();
        Frame::Ping.encode(&mut ping);
        ping.resize(1200 - datagram.len() - overhead, 0);
        datagram.extend(seal_initial(&dcid, Side::Client, &dcid, &scid, 2, &ping, 0));
        assert_eq!(datagram.len(), 1200);
        let (code, _) = server_close_after(&mut forged, datagram);
        assert_eq!(code, TransportErrorCode::PROTOCOL_VIOLATION);
    });
}

/// The client's close reason once the forged server's `plaintext` Initial
/// (with `bits` in its first byte) has arrived.
fn client_close_after_server_initial(seed: Seed, plaintext: &[u8], bits: u8) -> ConnectionError {
    let mut forged = ForgedServer::new(seed);
    let server_cid = ConnectionId::new(&[0x5e; 8]).unwrap();
    let packet = seal_initial(
        &forged.dcid,
        Side::Server,
        &forged.scid,
        &server_cid,
        0,
        plaintext,
        bits,
    );
    forged.send(packet);
    let client = forged.client;
    forged
        .pair
        .client_conn(client)
        .close_reason()
        .cloned()
        .expect("the client closed")
}

fn assert_protocol_violation(e: &ConnectionError) {
    let ConnectionError::TransportError(t) = e else {
        panic!("client closed with {e:?}");
    };
    assert_eq!(t.code, TransportErrorCode::PROTOCOL_VIOLATION, "{e}");
}

#[test]
fn reserved_bits_in_a_server_initial_are_a_protocol_violation() {
    // RFC 9000 §17.2, the client as victim: the server's Initial carries a
    // PING with reserved bits set.
    let mut ping = Vec::new();
    Frame::Ping.encode(&mut ping);
    for_each_seed(3, |seed| {
        for bits in [0x04, 0x08] {
            assert_protocol_violation(&client_close_after_server_initial(seed, &ping, bits));
        }
        // The harness: the same packet without them is no violation.
        let mut forged = ForgedServer::new(seed);
        let server_cid = ConnectionId::new(&[0x5e; 8]).unwrap();
        let packet = seal_initial(
            &forged.dcid,
            Side::Server,
            &forged.scid,
            &server_cid,
            0,
            &ping,
            0,
        );
        forged.send(packet);
        let client = forged.client;
        assert_eq!(forged.pair.client_conn(client).close_reason(), None);
    });
}

#[test]
fn a_server_initial_without_frames_is_a_protocol_violation() {
    // RFC 9000 §12.4, the client as victim.
    for_each_seed(3, |seed| {
        assert_protocol_violation(&client_close_after_server_initial(seed, &[], 0));
    });
}

#[test]
fn a_server_initial_with_a_token_is_discarded() {
    // RFC 9000 §17.2.2: "Initial packets sent by the server MUST set the
    // Token Length field to 0; clients that receive an Initial packet with
    // a non-zero Token Length field MUST either discard the packet or
    // generate a connection error of type PROTOCOL_VIOLATION." quiver
    // discards it: a server Initial with a token and a frame that is
    // itself a violation (STREAM) closes nothing, while the same packet
    // without the token does.
    let mut stream = Vec::new();
    Frame::Stream(quiver_proto::frame::Stream {
        id: quiver_proto::VarInt::from_u32(1),
        offset: quiver_proto::VarInt::from_u32(0),
        fin: false,
        data: b"x",
    })
    .encode(&mut stream);
    for_each_seed(3, |seed| {
        let mut forged = ForgedServer::new(seed);
        let server_cid = ConnectionId::new(&[0x5e; 8]).unwrap();
        let (dcid, scid) = (forged.dcid, forged.scid);
        let with_token = seal_initial_with_token(
            &dcid,
            Side::Server,
            &scid,
            &server_cid,
            0,
            &stream,
            b"token",
        );
        forged.send(with_token);
        let client = forged.client;
        assert_eq!(forged.pair.client_conn(client).close_reason(), None);
        assert!(forged.pair.client_conn(client).stats().packets_dropped > 0);
        let without = seal_initial(&dcid, Side::Server, &scid, &server_cid, 1, &stream, 0);
        forged.send(without);
        assert_protocol_violation(
            &forged
                .pair
                .client_conn(client)
                .close_reason()
                .cloned()
                .expect("closed"),
        );
    });
}
