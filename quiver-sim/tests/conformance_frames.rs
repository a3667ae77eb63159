//! Conformance (issue 13 item 4), frame rules not covered by
//! `violations.rs`: a peer sends a frame that breaks a MUST of RFC 9000
//! §§4, 12.4, 13, 19, and the victim closes with the exact transport error
//! (and the frame type, RFC 9000 §19.19) the RFC names; the misbehaving
//! side hears the same code. Played with `send_raw_frames_for_test`
//! (`common_violate`), over several seeds.
//!
//! The rules where one side sends frames after the handshake and the
//! victim closes are rows of one table (`frame_rules!`), one `#[test]` a
//! row; a failing row prints its RFC section and the side that sent. The
//! rules that need their own set-up or check follow as plain tests.
//!
//! Coverage (rule → test):
//!
//! | Rule | Code | Test |
//! |---|---|---|
//! | §19.7 NEW_TOKEN with an empty token | FRAME_ENCODING_ERROR | `an_empty_new_token_is_a_frame_encoding_error` |
//! | §19.15 NEW_CONNECTION_ID length 0 | FRAME_ENCODING_ERROR | `a_zero_length_new_connection_id_is_a_frame_encoding_error` |
//! | §19.15 NEW_CONNECTION_ID length > 20 | FRAME_ENCODING_ERROR | `a_new_connection_id_longer_than_20_bytes_is_a_frame_encoding_error` |
//! | §19.15 a sequence number reused for another ID (MAY) | PROTOCOL_VIOLATION | `a_sequence_number_reused_for_another_connection_id_is_a_protocol_violation` |
//! | §19.16 RETIRE_CONNECTION_ID of the packet's own DCID (MAY), both sides | PROTOCOL_VIOLATION | `retiring_the_connection_id_the_packet_is_sent_to_is_a_protocol_violation` |
//! | §19.16 RETIRE_CONNECTION_ID never issued, from the server | PROTOCOL_VIOLATION | `retiring_a_connection_id_never_issued_by_the_client_is_a_protocol_violation` |
//! | §13.1 ACK of a packet never sent, from the server (SHOULD) | PROTOCOL_VIOLATION | `an_ack_from_the_server_of_a_packet_never_sent_is_a_protocol_violation` |
//! | §19.3.1 ACK First ACK Range below packet number 0 | FRAME_ENCODING_ERROR | `an_ack_range_below_zero_is_a_frame_encoding_error` |
//! | §19.3.1 ACK Gap below packet number 0 | FRAME_ENCODING_ERROR | `an_ack_gap_below_zero_is_a_frame_encoding_error` |
//! | §19.8 STREAM offset + length > 2^62-1 | FRAME_ENCODING_ERROR or FLOW_CONTROL_ERROR | `stream_data_beyond_2_to_the_62_is_refused` |
//! | §19.6 CRYPTO offset + length > 2^62-1 | FRAME_ENCODING_ERROR or CRYPTO_BUFFER_EXCEEDED | `crypto_data_beyond_2_to_the_62_is_refused` |
//! | §4.5, §19.4 RESET_STREAM after FIN, other final size | FINAL_SIZE_ERROR | `a_reset_stream_changing_the_final_size_of_a_fin_is_a_final_size_error` |
//! | §4.5 STREAM data beyond a RESET_STREAM's final size | FINAL_SIZE_ERROR | `stream_data_beyond_a_reset_final_size_is_a_final_size_error` |
//! | §19.5 STOP_SENDING for a local stream not yet created | STREAM_STATE_ERROR | `stop_sending_for_a_locally_initiated_stream_not_yet_created_is_a_stream_state_error` |
//! | §19.11 MAX_STREAMS (uni) > 2^60 | FRAME_ENCODING_ERROR | `unidirectional_max_streams_above_2_to_the_60_is_a_frame_encoding_error` |
//! | §19.14 STREAMS_BLOCKED (uni) > 2^60 | FRAME_ENCODING_ERROR or STREAM_LIMIT_ERROR | `unidirectional_streams_blocked_above_2_to_the_60_is_a_frame_encoding_error` |
//! | §4.6 a client unidirectional stream beyond the limit | STREAM_LIMIT_ERROR | `a_unidirectional_stream_beyond_max_streams_from_the_client_is_a_stream_limit_error` |
//! | §12.4 frame type not minimally encoded (MAY) | PROTOCOL_VIOLATION | `a_frame_type_not_minimally_encoded_is_a_protocol_violation` |
//! | §12.4 STREAM in an Initial packet | PROTOCOL_VIOLATION | `a_stream_frame_in_a_client_initial_is_a_protocol_violation` |
//! | §19.18 PATH_RESPONSE matching no challenge (MAY close; quiver ignores it) | none | `a_path_response_matching_no_challenge_is_ignored` |
//! | §19.15 NEW_CONNECTION_ID to an endpoint sending zero-length Destination CIDs | PROTOCOL_VIOLATION | `a_new_connection_id_to_a_peer_using_zero_length_ids_is_a_protocol_violation` |
//!
//! Covered elsewhere: the other frame rules of §§4, 12.4, 13.1, 19 in
//! `violations.rs` (STREAM_LIMIT_ERROR, FLOW_CONTROL_ERROR, FINAL_SIZE_ERROR,
//! STREAM_STATE_ERROR per frame, NEW_TOKEN and HANDSHAKE_DONE from a client,
//! frames in Handshake packets, MAX_STREAMS/STREAMS_BLOCKED > 2^60,
//! retire_prior_to > sequence, CONNECTION_ID_LIMIT_ERROR, CRYPTO buffer,
//! unknown and truncated frames, ACK of an unsent packet from the client),
//! RFC 9221 §3 DATAGRAM rules in `datagrams.rs`, reassembly and ACK-range
//! floods in `abuse.rs`, transport parameters, reserved bits and empty
//! packets in `conformance.rs` and `conformance_params.rs`.

mod common_violate;

use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use common_violate::{
    Expect, assert_closed_with, connected_seeded, encode, expect, expect_either, send_as, stream,
    v, violate_seeds,
};
use quiver_proto::frame::{
    Dir, Frame, NewConnectionId, NewToken, ResetStream, RetireConnectionId, StopSending,
};
use quiver_proto::streams::StreamId;
use quiver_proto::{
    ConnectionError, ConnectionId, Side, TransportConfig, TransportErrorCode as Code,
};
use quiver_sim::for_each_seed;
use quiver_sim::quic::Pair;

/// Seeds per test (more with `QUIVER_SIM_SEEDS`).
const SEEDS: usize = 3;

/// One row of the table: after the handshake, each side of `by` in turn
/// sends `sends(side)` in a 1-RTT packet and the other closes with
/// `expect`; `rule` names the section (and appears if the row fails).
struct Rule {
    rule: &'static str,
    by: &'static [Side],
    sends: fn(Side) -> Vec<u8>,
    expect: Expect,
}

/// Plays every side of a row over [`SEEDS`] seeds.
fn check(name: &str, rule: &Rule) {
    for &side in rule.by {
        let frames = (rule.sends)(side);
        let played = panic::catch_unwind(AssertUnwindSafe(|| {
            violate_seeds(SEEDS, side, |_, _| {}, &frames, rule.expect)
        }));
        if let Err(payload) = played {
            eprintln!("failing rule: {name} ({}), sent by the {side:?}", rule.rule);
            panic::resume_unwind(payload);
        }
    }
}

/// One `#[test]` a row, named by the row, with the row's doc comment
/// (the RFC text it checks).
macro_rules! frame_rules {
    ($(
        $(#[$doc:meta])*
        $name:ident {
            rule: $rule:literal,
            by: [$($side:expr),+ $(,)?],
            sends: $sends:expr,
            expect: $expect:expr $(,)?
        }
    )*) => {$(
        $(#[$doc])*
        #[test]
        fn $name() {
            check(
                stringify!($name),
                &Rule {
                    rule: $rule,
                    by: &[$($side),+],
                    sends: $sends,
                    expect: $expect,
                },
            );
        }
    )*};
}

/// A NEW_CONNECTION_ID frame with a `len`-byte connection ID, encoded by
/// hand (quiver's `ConnectionId` cannot hold more than 20 bytes).
fn raw_new_connection_id(sequence: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0x18];
    v(sequence).encode(&mut buf);
    v(0).encode(&mut buf); // Retire Prior To
    buf.push(len as u8);
    buf.extend(std::iter::repeat_n(0xab, len));
    buf.extend_from_slice(&[0x11; 16]); // Stateless Reset Token
    buf
}

/// Two NEW_CONNECTION_ID frames with the same sequence number and
/// different IDs.
fn one_sequence_two_ids() -> Vec<u8> {
    let frames: Vec<Frame<'_>> = [0xa1u8, 0xa2]
        .iter()
        .map(|b| {
            Frame::NewConnectionId(NewConnectionId {
                sequence: v(1),
                retire_prior_to: v(0),
                id: ConnectionId::new(&[*b; 8]).unwrap(),
                reset_token: [*b; 16],
            })
        })
        .collect();
    encode(&frames)
}

/// An ACK of packet 1,000,000 only.
fn ack_of_packet_never_sent() -> Vec<u8> {
    let mut frames = Vec::new();
    quiver_proto::frame::encode_ack([1_000_000..=1_000_000], v(0), None, &mut frames);
    frames
}

/// A frame of type `ty` with one varint field.
fn with_varint(ty: u8, value: u64) -> Vec<u8> {
    let mut frames = vec![ty];
    v(value).encode(&mut frames);
    frames
}

/// The first client-initiated unidirectional stream beyond the default limit.
fn first_uni_stream_beyond_limit() -> u64 {
    let limit = TransportConfig::default().max_concurrent_uni_streams;
    StreamId::new(Side::Client, Dir::Uni, limit).into_inner()
}

frame_rules! {
    // ----- NEW_TOKEN, connection IDs (RFC 9000 §19.7, §19.15, §19.16) -----

    /// RFC 9000 §19.7: "A client MUST treat receipt of a NEW_TOKEN frame
    /// with an empty Token field as a connection error of type
    /// FRAME_ENCODING_ERROR."
    an_empty_new_token_is_a_frame_encoding_error {
        rule: "RFC 9000 §19.7",
        by: [Side::Server],
        sends: |_| encode(&[Frame::NewToken(NewToken { token: b"" })]),
        expect: expect(Code::FRAME_ENCODING_ERROR, 0x07),
    }

    /// RFC 9000 §19.15: Length "Values less than 1 and greater than 20 are
    /// invalid and MUST be treated as a connection error of type
    /// FRAME_ENCODING_ERROR." Both directions.
    a_zero_length_new_connection_id_is_a_frame_encoding_error {
        rule: "RFC 9000 §19.15",
        by: [Side::Server, Side::Client],
        sends: |_| raw_new_connection_id(10, 0),
        expect: expect(Code::FRAME_ENCODING_ERROR, 0x18),
    }

    /// RFC 9000 §19.15, the upper bound.
    a_new_connection_id_longer_than_20_bytes_is_a_frame_encoding_error {
        rule: "RFC 9000 §19.15",
        by: [Side::Server, Side::Client],
        sends: |_| raw_new_connection_id(10, 21),
        expect: expect(Code::FRAME_ENCODING_ERROR, 0x18),
    }

    /// RFC 9000 §19.15: "if a sequence number is used for different
    /// connection IDs, the endpoint MAY treat that receipt as a connection
    /// error of type PROTOCOL_VIOLATION." quiver does.
    a_sequence_number_reused_for_another_connection_id_is_a_protocol_violation {
        rule: "RFC 9000 §19.15",
        by: [Side::Server],
        sends: |_| one_sequence_two_ids(),
        expect: expect(Code::PROTOCOL_VIOLATION, 0x18),
    }

    /// RFC 9000 §19.16: "Receipt of a RETIRE_CONNECTION_ID frame containing
    /// a sequence number greater than any previously sent to the peer MUST
    /// be treated as a connection error of type PROTOCOL_VIOLATION." The
    /// server side of `violations.rs`'s client test.
    retiring_a_connection_id_never_issued_by_the_client_is_a_protocol_violation {
        rule: "RFC 9000 §19.16",
        by: [Side::Server],
        sends: |_| encode(&[Frame::RetireConnectionId(RetireConnectionId { sequence: v(1000) })]),
        expect: expect(Code::PROTOCOL_VIOLATION, 0x19),
    }

    // ----- acknowledgments (RFC 9000 §13.1, §19.3) -----

    /// RFC 9000 §13.1: "An endpoint SHOULD treat receipt of an
    /// acknowledgment for a packet it did not send as a connection error of
    /// type PROTOCOL_VIOLATION".
    an_ack_from_the_server_of_a_packet_never_sent_is_a_protocol_violation {
        rule: "RFC 9000 §13.1",
        by: [Side::Server],
        sends: |_| ack_of_packet_never_sent(),
        expect: expect(Code::PROTOCOL_VIOLATION, 0x02),
    }

    /// RFC 9000 §19.3.1: "If any computed packet number is negative, an
    /// endpoint MUST generate a connection error of type
    /// FRAME_ENCODING_ERROR." A First ACK Range beyond the Largest
    /// Acknowledged.
    an_ack_range_below_zero_is_a_frame_encoding_error {
        rule: "RFC 9000 §19.3.1",
        by: [Side::Client, Side::Server],
        sends: |_| vec![0x02, 5, 0, 0, 10],
        expect: expect(Code::FRAME_ENCODING_ERROR, 0x02),
    }

    /// RFC 9000 §19.3.1, as above: a Gap that goes below zero.
    an_ack_gap_below_zero_is_a_frame_encoding_error {
        rule: "RFC 9000 §19.3.1",
        by: [Side::Client, Side::Server],
        sends: |_| vec![0x02, 5, 0, 1, 0, 10, 0],
        expect: expect(Code::FRAME_ENCODING_ERROR, 0x02),
    }

    // ----- the 2^62 bound (RFC 9000 §19.6, §19.8) -----

    /// RFC 9000 §19.8: "The largest offset delivered on a stream -- the sum
    /// of the offset and data length -- cannot exceed 2^62-1, as it is not
    /// possible to provide flow control credit for that data. Receipt of a
    /// frame that exceeds this limit MUST be treated as a connection error
    /// of type FRAME_ENCODING_ERROR or FLOW_CONTROL_ERROR."
    stream_data_beyond_2_to_the_62_is_refused {
        rule: "RFC 9000 §19.8",
        by: [Side::Client],
        sends: |_| encode(&[stream(0, (1 << 62) - 1, b"x", false)]),
        expect: expect_either(Code::FRAME_ENCODING_ERROR, Code::FLOW_CONTROL_ERROR, 0x0e),
    }

    /// RFC 9000 §19.6: "The largest offset delivered on a stream -- the sum
    /// of the offset and data length -- cannot exceed 2^62-1. Receipt of a
    /// frame that exceeds this limit MUST be treated as a connection error
    /// of type FRAME_ENCODING_ERROR or CRYPTO_BUFFER_EXCEEDED."
    crypto_data_beyond_2_to_the_62_is_refused {
        rule: "RFC 9000 §19.6",
        by: [Side::Client, Side::Server],
        sends: |_| {
            encode(&[Frame::Crypto(quiver_proto::frame::Crypto {
                offset: v((1 << 62) - 1),
                data: b"x",
            })])
        },
        expect: expect_either(Code::FRAME_ENCODING_ERROR, Code::CRYPTO_BUFFER_EXCEEDED, 0x06),
    }

    // ----- final size and stream state (RFC 9000 §4.5, §19.4, §19.5) -----

    /// RFC 9000 §4.5: "If a RESET_STREAM or STREAM frame is received
    /// indicating a change in the final size for the stream, an endpoint
    /// SHOULD respond with an error of type FINAL_SIZE_ERROR"; §19.4: a
    /// RESET_STREAM's final size. FIN at 10, then RESET_STREAM at 20.
    a_reset_stream_changing_the_final_size_of_a_fin_is_a_final_size_error {
        rule: "RFC 9000 §4.5, §19.4",
        by: [Side::Client],
        sends: |_| {
            encode(&[
                stream(0, 0, &[1; 10], true),
                Frame::ResetStream(ResetStream { id: v(0), error_code: v(1), final_size: v(20) }),
            ])
        },
        expect: expect(Code::FINAL_SIZE_ERROR, 0x04),
    }

    /// RFC 9000 §4.5: "A receiver SHOULD treat receipt of data at or beyond
    /// the final size as an error of type FINAL_SIZE_ERROR": RESET_STREAM
    /// fixes the final size at 10, then data arrives at 10..15.
    stream_data_beyond_a_reset_final_size_is_a_final_size_error {
        rule: "RFC 9000 §4.5",
        by: [Side::Client],
        sends: |_| {
            encode(&[
                Frame::ResetStream(ResetStream { id: v(0), error_code: v(1), final_size: v(10) }),
                stream(0, 10, &[2; 5], false),
            ])
        },
        expect: expect(Code::FINAL_SIZE_ERROR, 0x0e),
    }

    /// RFC 9000 §19.5: "Receiving a STOP_SENDING frame for a locally
    /// initiated stream that has not yet been created MUST be treated as a
    /// connection error of type STREAM_STATE_ERROR." The victim's first
    /// bidirectional stream, never opened: 1 (the server's) from the
    /// client, 0 (the client's) from the server.
    stop_sending_for_a_locally_initiated_stream_not_yet_created_is_a_stream_state_error {
        rule: "RFC 9000 §19.5",
        by: [Side::Client, Side::Server],
        sends: |side| {
            let id = StreamId::new(side.peer(), Dir::Bi, 0).into_inner();
            encode(&[Frame::StopSending(StopSending { id: v(id), error_code: v(0) })])
        },
        expect: expect(Code::STREAM_STATE_ERROR, 0x05),
    }

    /// RFC 9000 §19.11: "If a max_streams transport parameter or a
    /// MAX_STREAMS frame is received with a value greater than 2^60 ... the
    /// connection MUST be closed immediately with a connection error of type
    /// FRAME_ENCODING_ERROR"; `violations.rs` sends the bidirectional type.
    unidirectional_max_streams_above_2_to_the_60_is_a_frame_encoding_error {
        rule: "RFC 9000 §19.11",
        by: [Side::Client],
        sends: |_| with_varint(0x13, (1 << 60) + 1),
        expect: expect(Code::FRAME_ENCODING_ERROR, 0x13),
    }

    /// RFC 9000 §19.14: "This value cannot exceed 2^60 ... Receipt of a
    /// frame that encodes a larger stream ID MUST be treated as a connection
    /// error of type STREAM_LIMIT_ERROR or FRAME_ENCODING_ERROR."
    unidirectional_streams_blocked_above_2_to_the_60_is_a_frame_encoding_error {
        rule: "RFC 9000 §19.14",
        by: [Side::Server],
        sends: |_| with_varint(0x17, (1 << 60) + 1),
        expect: expect_either(Code::FRAME_ENCODING_ERROR, Code::STREAM_LIMIT_ERROR, 0x17),
    }

    /// RFC 9000 §4.6: "An endpoint that receives a frame with a stream ID
    /// exceeding the limit it has sent MUST treat this as a connection
    /// error of type STREAM_LIMIT_ERROR"; `violations.rs` covers the
    /// client's bidirectional and the server's unidirectional streams.
    a_unidirectional_stream_beyond_max_streams_from_the_client_is_a_stream_limit_error {
        rule: "RFC 9000 §4.6",
        by: [Side::Client],
        sends: |_| encode(&[stream(first_uni_stream_beyond_limit(), 0, b"x", false)]),
        expect: expect(Code::STREAM_LIMIT_ERROR, 0x0a),
    }

    // ----- frame types (RFC 9000 §12.4) -----

    /// RFC 9000 §12.4: "a frame type MUST use the shortest possible encoding
    /// ... An endpoint MAY treat the receipt of a frame type that uses a
    /// longer encoding than necessary as a connection error of type
    /// PROTOCOL_VIOLATION." PING (0x01) in two bytes.
    a_frame_type_not_minimally_encoded_is_a_protocol_violation {
        rule: "RFC 9000 §12.4",
        by: [Side::Client],
        sends: |_| vec![0x40, 0x01],
        expect: expect(Code::PROTOCOL_VIOLATION, 0x01),
    }
}

// ----- rules with their own set-up or checks -----

#[test]
fn a_new_connection_id_to_a_peer_using_zero_length_ids_is_a_protocol_violation() {
    // RFC 9000 §19.15: "An endpoint that is sending packets with a
    // zero-length Destination Connection ID MUST treat receipt of a
    // NEW_CONNECTION_ID frame as a connection error of type
    // PROTOCOL_VIOLATION." The server's IDs are zero length, so the
    // client's packets carry none; the server then sends the frame.
    for_each_seed(SEEDS, |seed| {
        let mut pair = Pair::with_server_endpoint(
            seed,
            quiver_sim::LinkConfig::default(),
            TransportConfig::default(),
            TransportConfig::default(),
            |config| config.local_cid_len = 0,
        );
        let (client, _) = pair.connect_and_wait(Duration::from_secs(5));
        send_as(&mut pair, client, Side::Server, raw_new_connection_id(1, 8));
        assert_closed_with(
            &mut pair,
            client,
            Side::Server,
            &expect(Code::PROTOCOL_VIOLATION, 0x18),
        );
    });
}

#[test]
fn retiring_the_connection_id_the_packet_is_sent_to_is_a_protocol_violation() {
    // RFC 9000 §19.16: "The sequence number specified in a
    // RETIRE_CONNECTION_ID frame MUST NOT refer to the Destination
    // Connection ID field of the packet in which the frame is contained.
    // The peer MAY treat this as a connection error of type
    // PROTOCOL_VIOLATION." quiver does. The client still sends to the
    // server's ID of sequence 0; the server moves to another of the
    // client's IDs at once (§5.1.2 allows it), so it retires 0, 1, 2 and 3
    // in one packet: those not in its DCID retire, the one that is fails.
    let to_client: Vec<Frame<'_>> = (0..4)
        .map(|seq| Frame::RetireConnectionId(RetireConnectionId { sequence: v(seq) }))
        .collect();
    for (side, frames) in [
        (Side::Client, encode(&to_client[..1])),
        (Side::Server, encode(&to_client)),
    ] {
        for_each_seed(SEEDS, |seed| {
            let (mut pair, client) =
                connected_seeded(seed, TransportConfig::default(), TransportConfig::default());
            send_as(&mut pair, client, side, frames.clone());
            assert_closed_with(
                &mut pair,
                client,
                side,
                &expect(Code::PROTOCOL_VIOLATION, 0x19),
            );
            // For this rule, not for retiring an ID never issued.
            let victim = match side {
                Side::Client => pair.server_conn().close_reason().cloned(),
                Side::Server => pair.client_conn(client).close_reason().cloned(),
            };
            let Some(ConnectionError::TransportError(e)) = victim else {
                panic!("{victim:?}");
            };
            assert!(e.reason.contains("packet was sent to"), "{e}");
        });
    }
}

#[test]
fn a_stream_frame_in_a_client_initial_is_a_protocol_violation() {
    // RFC 9000 §12.4: "An endpoint MUST treat receipt of a frame in a
    // packet type that is not permitted as a connection error of type
    // PROTOCOL_VIOLATION"; STREAM is not permitted in Initial packets
    // (Table 3). Queued before the first flight, it goes in the client's
    // first Initial.
    for_each_seed(SEEDS, |seed| {
        let mut pair = Pair::with_configs(
            seed,
            Default::default(),
            TransportConfig::default(),
            TransportConfig::default(),
        );
        let client = pair.connect();
        pair.client_conn(client)
            .send_raw_frames_for_test(0, encode(&[stream(0, 0, b"too early", false)]));
        assert_closed_with(
            &mut pair,
            client,
            Side::Client,
            &expect(Code::PROTOCOL_VIOLATION, 0x0a),
        );
        assert!(!pair.client_conn(client).is_handshake_complete());
    });
}

// ----- path validation (RFC 9000 §19.18) -----

#[test]
fn a_path_response_matching_no_challenge_is_ignored() {
    // RFC 9000 §19.18: "If the content of a PATH_RESPONSE frame does not
    // match the content of a PATH_CHALLENGE frame previously sent by the
    // endpoint, the endpoint MAY generate a connection error of type
    // PROTOCOL_VIOLATION." quiver does not: an unsolicited or stale
    // PATH_RESPONSE can follow a lost or late challenge (§8.2.3), so it
    // is ignored, from either side, and the connection carries on.
    for_each_seed(SEEDS, |seed| {
        for side in [Side::Client, Side::Server] {
            let (mut pair, client) =
                connected_seeded(seed, TransportConfig::default(), TransportConfig::default());
            let frames = encode(&[Frame::PathResponse(quiver_proto::frame::PathResponse(
                [0x42; 8],
            ))]);
            send_as(&mut pair, client, side, frames);
            pair.net.run_for(Duration::from_secs(1));
            assert_eq!(pair.client_conn(client).close_reason(), None);
            assert_eq!(pair.server_conn().close_reason(), None);
            // Still carrying data after it.
            let before = pair.server_conn().stats().bytes_received;
            let id = pair.client_conn(client).open_stream(Dir::Bi).unwrap();
            pair.client_conn(client).write(id, &[7; 2000]).unwrap();
            let ok = pair.run_until(Duration::from_secs(2), |p| {
                p.server_conn().stats().bytes_received >= before + 2000
            });
            assert!(ok);
        }
    });
}
