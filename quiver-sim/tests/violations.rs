//! A peer that violates the protocol gets the exact transport error the RFC
//! names (RFC 9000 §11, §20.1): the victim closes with that code and sends
//! CONNECTION_CLOSE; the misbehaving side learns the code from it.
//!
//! The misbehaviour is played with `send_raw_frames_for_test`, which puts
//! encoded frames verbatim into the next packet of a space.

mod common_violate;

use std::time::Duration;

use common_violate::{
    HANDSHAKE, ONE_RTT, assert_closed_with, connected, encode, expect,
    server_violates_in_handshake, stream, v, violate_after_handshake, violate_with,
};
use quiver_proto::frame::{
    Dir, Frame, MaxStreamData, MaxStreams, NewConnectionId, NewToken, ResetStream,
    RetireConnectionId, StopSending, StreamDataBlocked,
};
use quiver_proto::streams::StreamId;
use quiver_proto::{ConnectionError, ConnectionId, Side, TransportConfig, TransportErrorCode};
use quiver_sim::quic::Pair;
use quiver_sim::{LinkConfig, Seed};

// ----- frames in the wrong packet type (RFC 9000 §12.4, Table 3) -----

#[test]
fn a_stream_frame_in_a_handshake_packet_is_a_protocol_violation() {
    // RFC 9000 §12.4: "An endpoint MUST treat receipt of a frame in a packet
    // type that is not permitted as a connection error of type
    // PROTOCOL_VIOLATION." STREAM is 1-RTT (and 0-RTT) only. Queued at
    // once, it goes into the client's first Handshake packet.
    let mut pair = Pair::new(Seed::from_env_or(1), LinkConfig::default());
    let client = pair.connect();
    let frames = encode(&[stream(0, 0, b"too early", false)]);
    pair.client_conn(client)
        .send_raw_frames_for_test(HANDSHAKE, frames);
    let ty = 0x0a; // STREAM with OFF clear, LEN set
    assert_closed_with(
        &mut pair,
        client,
        Side::Client,
        &expect(TransportErrorCode::PROTOCOL_VIOLATION, ty),
    );
    assert!(!pair.client_conn(client).is_handshake_confirmed());
}

#[test]
fn a_max_data_frame_in_a_server_handshake_packet_is_a_protocol_violation() {
    server_violates_in_handshake(
        Seed::from_env_or(1),
        encode(&[Frame::MaxData(quiver_proto::frame::MaxData(v(1 << 30)))]),
        expect(TransportErrorCode::PROTOCOL_VIOLATION, 0x10),
    );
}

#[test]
fn handshake_done_in_a_handshake_packet_is_a_protocol_violation() {
    // HANDSHAKE_DONE is 1-RTT only (Table 3), even from the server.
    server_violates_in_handshake(
        Seed::from_env_or(1),
        encode(&[Frame::HandshakeDone]),
        expect(TransportErrorCode::PROTOCOL_VIOLATION, 0x1e),
    );
}

#[test]
fn handshake_done_from_a_client_is_a_protocol_violation() {
    // RFC 9000 §19.20: "A server MUST treat receipt of a HANDSHAKE_DONE
    // frame as a connection error of type PROTOCOL_VIOLATION."
    violate_after_handshake(
        Side::Client,
        encode(&[Frame::HandshakeDone]),
        expect(TransportErrorCode::PROTOCOL_VIOLATION, 0x1e),
    );
}

#[test]
fn new_token_from_a_client_is_a_protocol_violation() {
    // RFC 9000 §19.7: "A server MUST treat receipt of a NEW_TOKEN frame as
    // a connection error of type PROTOCOL_VIOLATION."
    violate_after_handshake(
        Side::Client,
        encode(&[Frame::NewToken(NewToken { token: b"token" })]),
        expect(TransportErrorCode::PROTOCOL_VIOLATION, 0x07),
    );
}

// ----- stream limits (RFC 9000 §4.6) -----

#[test]
fn a_stream_beyond_max_streams_is_a_stream_limit_error() {
    // RFC 9000 §4.6: "An endpoint that receives a frame with a stream ID
    // exceeding the limit it has sent MUST treat this as a connection error
    // of type STREAM_LIMIT_ERROR." The server allows 100 client
    // bidirectional streams: indices 0..=99; index 100 is ID 400.
    let first_beyond = StreamId::new(Side::Client, Dir::Bi, 100).into_inner();
    violate_after_handshake(
        Side::Client,
        encode(&[stream(first_beyond, 0, b"x", false)]),
        expect(TransportErrorCode::STREAM_LIMIT_ERROR, 0x0a),
    );
}

#[test]
fn the_error_names_the_frame_type_as_received() {
    // RFC 9000 §19.19: the Frame Type field is "the type of frame that
    // triggered the error". A STREAM frame of type 0x0e (OFF and LEN bits)
    // with an explicit zero offset: re-encoding it would give 0x0a, but
    // 0x0e is what the peer sent.
    let mut frames = vec![0x0e];
    StreamId::new(Side::Client, Dir::Bi, 100)
        .to_varint()
        .encode(&mut frames);
    frames.extend_from_slice(&[0x00, 0x01, b'x']); // offset 0, length 1, data
    violate_after_handshake(
        Side::Client,
        frames,
        expect(TransportErrorCode::STREAM_LIMIT_ERROR, 0x0e),
    );
}

#[test]
fn the_last_stream_within_max_streams_is_accepted() {
    // The boundary: index 99 is within the limit of 100.
    let (mut pair, client) = connected(TransportConfig::default(), TransportConfig::default());
    let last = StreamId::new(Side::Client, Dir::Bi, 99).into_inner();
    pair.client_conn(client)
        .send_raw_frames_for_test(ONE_RTT, encode(&[stream(last, 0, b"x", false)]));
    pair.net.run_for(Duration::from_secs(1));
    assert_eq!(pair.server_conn().close_reason(), None);
    assert_eq!(pair.client_conn(client).close_reason(), None);
}

#[test]
fn a_unidirectional_stream_beyond_max_streams_from_the_server_is_a_stream_limit_error() {
    let first_beyond = StreamId::new(Side::Server, Dir::Uni, 100).into_inner();
    violate_after_handshake(
        Side::Server,
        encode(&[stream(first_beyond, 0, b"x", false)]),
        expect(TransportErrorCode::STREAM_LIMIT_ERROR, 0x0a),
    );
}

#[test]
fn a_stop_sending_beyond_max_streams_is_a_stream_limit_error() {
    // The limit applies to every frame naming a stream, not only STREAM.
    let first_beyond = StreamId::new(Side::Client, Dir::Bi, 100).to_varint();
    violate_after_handshake(
        Side::Client,
        encode(&[Frame::StopSending(StopSending {
            id: first_beyond,
            error_code: v(0),
        })]),
        expect(TransportErrorCode::STREAM_LIMIT_ERROR, 0x05),
    );
}

// ----- flow control (RFC 9000 §4.1) -----

const SMALL_WINDOW: u64 = 10_000;

fn small_windows() -> TransportConfig {
    TransportConfig {
        stream_receive_window: SMALL_WINDOW,
        max_stream_receive_window: SMALL_WINDOW,
        receive_window: 3 * SMALL_WINDOW / 2,
        max_receive_window: 3 * SMALL_WINDOW / 2,
        ..TransportConfig::default()
    }
}

#[test]
fn stream_data_beyond_the_stream_window_is_a_flow_control_error() {
    // RFC 9000 §4.1: "A receiver MUST close the connection with an error of
    // type FLOW_CONTROL_ERROR if the sender violates the advertised
    // connection or stream data limits". The data ends one byte beyond.
    violate_with(
        small_windows(),
        Side::Client,
        |_, _| {},
        encode(&[stream(0, SMALL_WINDOW - 9, &[1; 10], false)]),
        expect(TransportErrorCode::FLOW_CONTROL_ERROR, 0x0e),
    );
}

#[test]
fn stream_data_up_to_the_stream_window_is_accepted() {
    let (mut pair, client) = connected(TransportConfig::default(), small_windows());
    pair.client_conn(client).send_raw_frames_for_test(
        ONE_RTT,
        encode(&[stream(0, SMALL_WINDOW - 10, &[1; 10], false)]),
    );
    pair.net.run_for(Duration::from_secs(1));
    assert_eq!(pair.server_conn().close_reason(), None);
}

#[test]
fn stream_data_beyond_the_connection_window_is_a_flow_control_error() {
    // Each stream stays within its own window; together they exceed
    // MAX_DATA (the highest offset received counts, RFC 9000 §4.1).
    violate_with(
        small_windows(),
        Side::Client,
        |_, _| {},
        encode(&[
            stream(0, SMALL_WINDOW - 10, &[1; 10], false),
            stream(4, SMALL_WINDOW / 2 - 9, &[1; 10], false),
        ]),
        expect(TransportErrorCode::FLOW_CONTROL_ERROR, 0x0e),
    );
}

#[test]
fn a_reset_stream_beyond_the_stream_window_is_a_flow_control_error() {
    // RFC 9000 §4.5: the final size of a RESET_STREAM counts against flow
    // control too.
    violate_with(
        small_windows(),
        Side::Client,
        |_, _| {},
        encode(&[Frame::ResetStream(ResetStream {
            id: v(0),
            error_code: v(1),
            final_size: v(SMALL_WINDOW + 1),
        })]),
        expect(TransportErrorCode::FLOW_CONTROL_ERROR, 0x04),
    );
}

// ----- final size (RFC 9000 §4.5) -----

#[test]
fn data_beyond_the_final_size_is_a_final_size_error() {
    // "A receiver SHOULD treat receipt of data at or beyond the final size
    // as an error of type FINAL_SIZE_ERROR": FIN at 10, then data at 20.
    violate_after_handshake(
        Side::Client,
        encode(&[stream(0, 0, &[1; 10], true), stream(0, 20, &[2; 5], false)]),
        expect(TransportErrorCode::FINAL_SIZE_ERROR, 0x0e),
    );
}

#[test]
fn a_changed_final_size_is_a_final_size_error() {
    // "Once a final size for a stream is known, it cannot change": FIN at
    // 10, then FIN at 8.
    violate_after_handshake(
        Side::Client,
        encode(&[stream(0, 0, &[1; 10], true), stream(0, 0, &[1; 8], true)]),
        expect(TransportErrorCode::FINAL_SIZE_ERROR, 0x0b),
    );
}

#[test]
fn a_reset_below_data_received_is_a_final_size_error() {
    // RESET_STREAM's final size below the data already received.
    violate_after_handshake(
        Side::Client,
        encode(&[
            stream(0, 0, &[1; 100], false),
            Frame::ResetStream(ResetStream {
                id: v(0),
                error_code: v(1),
                final_size: v(50),
            }),
        ]),
        expect(TransportErrorCode::FINAL_SIZE_ERROR, 0x04),
    );
}

// ----- stream state (RFC 9000 §19.4, §19.5, §19.8, §19.10) -----

#[test]
fn a_stream_frame_on_the_receivers_own_unidirectional_stream_is_a_stream_state_error() {
    // RFC 9000 §19.8: "An endpoint MUST terminate the connection with error
    // STREAM_STATE_ERROR if it receives a STREAM frame ... for a send-only
    // stream." The server opens unidirectional stream 3; the client sends
    // on it.
    violate_with(
        TransportConfig::default(),
        Side::Client,
        |pair, _| {
            let id = pair.server_conn().open_stream(Dir::Uni).unwrap();
            assert_eq!(id.into_inner(), 3);
            pair.server_conn().write(id, b"hello").unwrap();
            pair.net.run_for(Duration::from_millis(100));
        },
        encode(&[stream(3, 0, b"not yours", false)]),
        expect(TransportErrorCode::STREAM_STATE_ERROR, 0x0a),
    );
}

#[test]
fn a_stream_frame_on_a_locally_initiated_stream_not_yet_created_is_a_stream_state_error() {
    // §19.8: "... if it receives a STREAM frame for a locally initiated
    // stream that has not yet been created". Stream 1 is the server's first
    // bidirectional stream, which it never opened.
    violate_after_handshake(
        Side::Client,
        encode(&[stream(1, 0, b"x", false)]),
        expect(TransportErrorCode::STREAM_STATE_ERROR, 0x0a),
    );
}

#[test]
fn a_reset_stream_for_a_send_only_stream_is_a_stream_state_error() {
    // §19.4: "An endpoint that receives a RESET_STREAM frame for a
    // send-only stream MUST terminate the connection with error
    // STREAM_STATE_ERROR."
    violate_with(
        TransportConfig::default(),
        Side::Client,
        |pair, _| {
            pair.server_conn().open_stream(Dir::Uni).unwrap();
        },
        encode(&[Frame::ResetStream(ResetStream {
            id: v(3),
            error_code: v(0),
            final_size: v(0),
        })]),
        expect(TransportErrorCode::STREAM_STATE_ERROR, 0x04),
    );
}

#[test]
fn max_stream_data_for_a_receive_only_stream_is_a_stream_state_error() {
    // §19.10: "An endpoint that receives a MAX_STREAM_DATA frame for a
    // receive-only stream MUST terminate the connection with error
    // STREAM_STATE_ERROR." Stream 2 is the client's unidirectional stream:
    // receive-only at the server.
    violate_with(
        TransportConfig::default(),
        Side::Client,
        |pair, client| {
            let id = pair.client_conn(client).open_stream(Dir::Uni).unwrap();
            pair.client_conn(client).write(id, b"hello").unwrap();
            pair.net.run_for(Duration::from_millis(100));
        },
        encode(&[Frame::MaxStreamData(MaxStreamData {
            id: v(2),
            max: v(1 << 20),
        })]),
        expect(TransportErrorCode::STREAM_STATE_ERROR, 0x11),
    );
}

#[test]
fn max_stream_data_for_a_locally_initiated_stream_not_yet_created_is_a_stream_state_error() {
    // §19.10: "Receiving a MAX_STREAM_DATA frame for a locally initiated
    // stream that has not yet been created MUST be treated as a connection
    // error of type STREAM_STATE_ERROR." Stream 1: the server's first
    // bidirectional stream, never opened.
    violate_after_handshake(
        Side::Client,
        encode(&[Frame::MaxStreamData(MaxStreamData {
            id: v(1),
            max: v(1 << 20),
        })]),
        expect(TransportErrorCode::STREAM_STATE_ERROR, 0x11),
    );
}

#[test]
fn stream_data_blocked_for_a_send_only_stream_is_a_stream_state_error() {
    // §19.13: "An endpoint that receives a STREAM_DATA_BLOCKED frame for a
    // send-only stream MUST terminate the connection with error
    // STREAM_STATE_ERROR."
    violate_with(
        TransportConfig::default(),
        Side::Client,
        |pair, _| {
            pair.server_conn().open_stream(Dir::Uni).unwrap();
        },
        encode(&[Frame::StreamDataBlocked(StreamDataBlocked {
            id: v(3),
            limit: v(0),
        })]),
        expect(TransportErrorCode::STREAM_STATE_ERROR, 0x15),
    );
}

#[test]
fn stop_sending_for_a_receive_only_stream_is_a_stream_state_error() {
    // §19.5: "An endpoint that receives a STOP_SENDING frame for a
    // receive-only stream MUST terminate the connection with error
    // STREAM_STATE_ERROR."
    violate_after_handshake(
        Side::Client,
        encode(&[Frame::StopSending(StopSending {
            id: v(2),
            error_code: v(0),
        })]),
        expect(TransportErrorCode::STREAM_STATE_ERROR, 0x05),
    );
}

// ----- malformed frames (RFC 9000 §12.4, §19) -----

#[test]
fn an_unknown_frame_type_is_a_frame_encoding_error() {
    // §12.4: "An endpoint MUST treat the receipt of a frame of unknown type
    // as a connection error of type FRAME_ENCODING_ERROR."
    violate_after_handshake(
        Side::Client,
        vec![0x3f, 0x00, 0x00],
        expect(TransportErrorCode::FRAME_ENCODING_ERROR, 0x3f),
    );
}

#[test]
fn a_truncated_frame_is_a_frame_encoding_error() {
    // MAX_STREAM_DATA whose Maximum Stream Data field announces 8 bytes
    // but the packet ends first (the sender's few bytes of PADDING cannot
    // complete it, so the frame is truncated whatever follows).
    violate_after_handshake(
        Side::Client,
        vec![0x11, 0x00, 0xc0],
        expect(TransportErrorCode::FRAME_ENCODING_ERROR, 0x11),
    );
}

#[test]
fn max_streams_above_two_to_the_sixty_is_a_frame_encoding_error() {
    // §19.11: "If a max_streams transport parameter or a MAX_STREAMS frame
    // is received with a value greater than 2^60 ... the connection MUST be
    // closed immediately with a connection error of type
    // FRAME_ENCODING_ERROR".
    let mut frames = vec![0x12];
    v((1 << 60) + 1).encode(&mut frames);
    violate_after_handshake(
        Side::Server,
        frames,
        expect(TransportErrorCode::FRAME_ENCODING_ERROR, 0x12),
    );
}

#[test]
fn streams_blocked_above_two_to_the_sixty_is_a_frame_encoding_error() {
    // §19.14: the same for STREAMS_BLOCKED.
    let mut frames = vec![0x16];
    v((1 << 60) + 1).encode(&mut frames);
    violate_after_handshake(
        Side::Client,
        frames,
        expect(TransportErrorCode::FRAME_ENCODING_ERROR, 0x16),
    );
}

#[test]
fn a_max_streams_frame_within_bounds_is_accepted() {
    let (mut pair, client) = connected(TransportConfig::default(), TransportConfig::default());
    let frames = encode(&[Frame::MaxStreams(MaxStreams {
        dir: Dir::Bi,
        count: v(1 << 60),
    })]);
    pair.server_conn().send_raw_frames_for_test(ONE_RTT, frames);
    pair.net.run_for(Duration::from_secs(1));
    assert_eq!(pair.client_conn(client).close_reason(), None);
}

#[test]
fn new_connection_id_retiring_beyond_its_own_sequence_is_a_frame_encoding_error() {
    // §19.15: "Receiving a value in the Retire Prior To field that is
    // greater than that in the Sequence Number field MUST be treated as a
    // connection error of type FRAME_ENCODING_ERROR."
    let frames = encode(&[Frame::NewConnectionId(NewConnectionId {
        sequence: v(5),
        retire_prior_to: v(6),
        id: ConnectionId::new(&[0xab; 8]).unwrap(),
        reset_token: [7; 16],
    })]);
    violate_after_handshake(
        Side::Server,
        frames,
        expect(TransportErrorCode::FRAME_ENCODING_ERROR, 0x18),
    );
}

// ----- the CRYPTO stream (RFC 9000 §7.5) -----

#[test]
fn crypto_data_beyond_the_buffer_is_crypto_buffer_exceeded() {
    // §7.5: "an endpoint ... MAY close the connection with a
    // CRYPTO_BUFFER_EXCEEDED error code" when CRYPTO data exceeds what it
    // can buffer; quiver buffers 64 KiB past the in-order point.
    let frames = encode(&[Frame::Crypto(quiver_proto::frame::Crypto {
        offset: v(1 << 20),
        data: b"far ahead",
    })]);
    violate_after_handshake(
        Side::Server,
        frames,
        expect(TransportErrorCode::CRYPTO_BUFFER_EXCEEDED, 0x06),
    );
}

#[test]
fn garbage_in_the_crypto_stream_is_a_crypto_error() {
    // RFC 9001 §4.8: a TLS error is reported as CRYPTO_ERROR, 0x0100 plus
    // the TLS alert. A post-handshake CRYPTO frame that is not a valid TLS
    // message.
    let (mut pair, client) = connected(TransportConfig::default(), TransportConfig::default());
    let frames = encode(&[Frame::Crypto(quiver_proto::frame::Crypto {
        offset: v(0),
        data: &[0xff; 32],
    })]);
    pair.client_conn(client)
        .send_raw_frames_for_test(ONE_RTT, frames);
    pair.run_until(Duration::from_secs(5), |p| {
        p.client_conn(client).close_reason().is_some() && p.server_conn().close_reason().is_some()
    });
    let victim = pair.server_conn().close_reason().cloned();
    let Some(ConnectionError::TransportError(e)) = &victim else {
        panic!("server: {victim:?}");
    };
    assert!(e.code.tls_alert().is_some(), "server: {e}");
    let bad = pair.client_conn(client).close_reason().cloned();
    let Some(ConnectionError::ConnectionClosed { code, .. }) = bad else {
        panic!("client: {bad:?}");
    };
    assert_eq!(code, e.code);
}

// ----- acknowledgments and connection IDs -----

#[test]
fn an_ack_of_a_packet_never_sent_is_a_protocol_violation() {
    // RFC 9000 §13.1: "An endpoint SHOULD treat receipt of an
    // acknowledgment for a packet it did not send as a connection error of
    // type PROTOCOL_VIOLATION".
    let mut frames = Vec::new();
    quiver_proto::frame::encode_ack([1_000_000..=1_000_000], v(0), None, &mut frames);
    violate_after_handshake(
        Side::Client,
        frames,
        expect(TransportErrorCode::PROTOCOL_VIOLATION, 0x02),
    );
}

#[test]
fn retiring_a_connection_id_never_issued_is_a_protocol_violation() {
    // §19.16: "Receipt of a RETIRE_CONNECTION_ID frame containing a
    // sequence number greater than any previously sent to the peer MUST be
    // treated as a connection error of type PROTOCOL_VIOLATION."
    violate_after_handshake(
        Side::Client,
        encode(&[Frame::RetireConnectionId(RetireConnectionId {
            sequence: v(1000),
        })]),
        expect(TransportErrorCode::PROTOCOL_VIOLATION, 0x19),
    );
}

#[test]
fn more_connection_ids_than_the_limit_is_a_connection_id_limit_error() {
    // §5.1.1: "After processing a NEW_CONNECTION_ID frame and adding and
    // retiring active connection IDs, if the number of active connection
    // IDs exceeds the value advertised in its active_connection_id_limit
    // transport parameter, an endpoint MUST close the connection with an
    // error of type CONNECTION_ID_LIMIT_ERROR." The client's limit is 4
    // (the default); the server adds five more on top of the ones it
    // issued, retiring none.
    let cids: Vec<ConnectionId> = (0..5u8)
        .map(|i| ConnectionId::new(&[0xc0 + i; 8]).unwrap())
        .collect();
    let frames: Vec<Frame<'_>> = cids
        .iter()
        .enumerate()
        .map(|(i, cid)| {
            Frame::NewConnectionId(NewConnectionId {
                sequence: v(100 + i as u64),
                retire_prior_to: v(0),
                id: *cid,
                reset_token: [i as u8; 16],
            })
        })
        .collect();
    violate_after_handshake(
        Side::Server,
        encode(&frames),
        expect(TransportErrorCode::CONNECTION_ID_LIMIT_ERROR, 0x18),
    );
}
