//! Conformance gaps (issue 13 item 4): a client's transport parameters
//! that the server must reject with TRANSPORT_PARAMETER_ERROR (RFC 9000
//! §7.4: "An endpoint MUST treat receipt of a transport parameter with an
//! invalid value as a connection error of type TRANSPORT_PARAMETER_ERROR";
//! §18.2 for each value). quiver's own encoder refuses to write such
//! parameters, so the client's first Initial is built from rustls's QUIC
//! client with raw parameter bytes (`common_forge`), injected at the
//! server, and the server's Initial CONNECTION_CLOSE is read back with the
//! client's Initial keys (RFC 9000 §10.2.3: before the handshake, the
//! close goes in an Initial packet). More of §7.4 and §18.2 is in
//! `conformance_params.rs`.

mod common_forge;

use common_forge::{server_answer, varint};
use quiver_proto::TransportErrorCode;
use quiver_sim::for_each_seed;

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
