//! Each frame that violates stream state or limits closes the connection
//! with the code RFC 9000 prescribes.

use super::*;
use crate::frame::{FrameType, MaxStreamData, ResetStream, StopSending, StreamDataBlocked};

fn code(r: Result<(), TransportError>) -> TransportErrorCode {
    r.expect_err("frame must be rejected").code
}

fn stream(
    st: &mut StreamsState,
    id: StreamId,
    offset: u64,
    len: usize,
    fin: bool,
) -> Result<(), TransportError> {
    deliver(st, &stream_frame(id, offset, &vec![0; len], fin))
}

fn reset(st: &mut StreamsState, id: StreamId, final_size: u64) -> Result<(), TransportError> {
    st.on_reset_stream(&ResetStream {
        id: id.to_varint(),
        error_code: v(0),
        final_size: v(final_size),
    })
}

#[test]
fn stream_frame_for_our_unidirectional_stream_is_stream_state_error() {
    // RFC 9000 §19.8: "... or for a send-only stream."
    let mut pair = Pair::default_pair();
    let id = pair.server.open(Dir::Uni).unwrap();
    let err = stream(&mut pair.server, id, 0, 1, false).unwrap_err();
    assert_eq!(err.code, TransportErrorCode::STREAM_STATE_ERROR);
    assert!(err.frame_type.is_some_and(|t| (0x08..=0x0f).contains(&t)));
    let blocked = StreamDataBlocked {
        id: id.to_varint(),
        limit: v(0),
    };
    assert_eq!(
        code(pair.server.on_stream_data_blocked(&blocked)),
        TransportErrorCode::STREAM_STATE_ERROR
    );
    // RFC 9000 §19.4: RESET_STREAM for a send-only stream.
    assert_eq!(
        code(reset(&mut pair.server, id, 0)),
        TransportErrorCode::STREAM_STATE_ERROR
    );
}

#[test]
fn stream_frame_for_our_stream_not_yet_opened_is_stream_state_error() {
    // RFC 9000 §19.8: "a locally initiated stream that has not yet been created".
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Server, Dir::Bi, 0);
    assert_eq!(
        code(stream(&mut pair.server, id, 0, 1, false)),
        TransportErrorCode::STREAM_STATE_ERROR
    );
    let f = MaxStreamData {
        id: id.to_varint(),
        max: v(10),
    };
    assert_eq!(
        code(pair.server.on_max_stream_data(&f)),
        TransportErrorCode::STREAM_STATE_ERROR
    );
    let f = StopSending {
        id: id.to_varint(),
        error_code: v(0),
    };
    assert_eq!(
        code(pair.server.on_stop_sending(&f)),
        TransportErrorCode::STREAM_STATE_ERROR
    );
    // Once opened, the same frame is fine.
    assert_eq!(pair.server.open(Dir::Bi), Some(id));
    stream(&mut pair.server, id, 0, 1, false).unwrap();
}

#[test]
fn frames_for_the_sending_part_of_a_receive_only_stream_are_stream_state_errors() {
    // RFC 9000 §19.10 (MAX_STREAM_DATA) and §19.5 (STOP_SENDING).
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    let f = MaxStreamData {
        id: id.to_varint(),
        max: v(10),
    };
    assert_eq!(
        code(pair.server.on_max_stream_data(&f)),
        TransportErrorCode::STREAM_STATE_ERROR
    );
    let f = StopSending {
        id: id.to_varint(),
        error_code: v(0),
    };
    let err = pair.server.on_stop_sending(&f).unwrap_err();
    assert_eq!(err.code, TransportErrorCode::STREAM_STATE_ERROR);
    assert_eq!(err.frame_type, Some(FrameType::STOP_SENDING.value()));
}

#[test]
fn peer_stream_beyond_our_max_streams_is_stream_limit_error() {
    // RFC 9000 §4.6.
    let config = StreamsConfig {
        max_concurrent_bidi_streams: 3,
        max_concurrent_uni_streams: 2,
        ..StreamsConfig::default()
    };
    let mut pair = Pair::new(&StreamsConfig::default(), &config);
    stream(
        &mut pair.server,
        StreamId::new(Side::Client, Dir::Bi, 2),
        0,
        1,
        false,
    )
    .unwrap();
    let bi = StreamId::new(Side::Client, Dir::Bi, 3);
    assert_eq!(
        code(stream(&mut pair.server, bi, 0, 1, false)),
        TransportErrorCode::STREAM_LIMIT_ERROR
    );
    let uni = StreamId::new(Side::Client, Dir::Uni, 2);
    assert_eq!(
        code(reset(&mut pair.server, uni, 0)),
        TransportErrorCode::STREAM_LIMIT_ERROR
    );
    let f = MaxStreamData {
        id: bi.to_varint(),
        max: v(1),
    };
    assert_eq!(
        code(pair.server.on_max_stream_data(&f)),
        TransportErrorCode::STREAM_LIMIT_ERROR
    );
}

#[test]
fn data_beyond_the_stream_window_is_flow_control_error() {
    // RFC 9000 §19.10, §4.1.
    let mut pair = Pair::default_pair();
    let window = StreamsConfig::default().stream_receive_window;
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    stream(&mut pair.server, id, window - 10, 10, false).unwrap();
    assert_eq!(
        code(stream(&mut pair.server, id, window, 1, false)),
        TransportErrorCode::FLOW_CONTROL_ERROR
    );
    let id = StreamId::new(Side::Client, Dir::Uni, 1);
    assert_eq!(
        code(reset(&mut pair.server, id, window + 1)),
        TransportErrorCode::FLOW_CONTROL_ERROR
    );
}

#[test]
fn highest_offsets_beyond_the_connection_window_are_flow_control_error() {
    // RFC 9000 §4.1, §19.9: the connection limit counts the highest offset
    // received on each stream, not the bytes that arrived.
    let config = StreamsConfig {
        receive_window: 10_000,
        stream_receive_window: 8_000,
        ..StreamsConfig::default()
    };
    let mut pair = Pair::new(&StreamsConfig::default(), &config);
    let a = StreamId::new(Side::Client, Dir::Uni, 0);
    let b = StreamId::new(Side::Client, Dir::Uni, 1);
    stream(&mut pair.server, a, 5_999, 1, false).unwrap();
    stream(&mut pair.server, b, 3_999, 1, false).unwrap();
    // Exactly at the limit is fine; a retransmission below it too.
    stream(&mut pair.server, b, 0, 4_000, false).unwrap();
    let err = stream(&mut pair.server, b, 4_000, 1, false).unwrap_err();
    assert_eq!(err.code, TransportErrorCode::FLOW_CONTROL_ERROR);
    // A RESET_STREAM's final size counts too.
    let mut pair = Pair::new(&StreamsConfig::default(), &config);
    stream(&mut pair.server, a, 5_999, 1, false).unwrap();
    assert_eq!(
        code(reset(&mut pair.server, b, 4_001)),
        TransportErrorCode::FLOW_CONTROL_ERROR
    );
}

#[test]
fn data_beyond_or_changing_the_final_size_is_final_size_error() {
    // RFC 9000 §4.5.
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    stream(&mut pair.server, id, 0, 100, true).unwrap();
    stream(&mut pair.server, id, 50, 50, true).unwrap(); // same final size
    assert_eq!(
        code(stream(&mut pair.server, id, 100, 1, false)),
        TransportErrorCode::FINAL_SIZE_ERROR
    );
    assert_eq!(
        code(stream(&mut pair.server, id, 0, 50, true)),
        TransportErrorCode::FINAL_SIZE_ERROR
    );
    assert_eq!(
        code(stream(&mut pair.server, id, 0, 120, true)),
        TransportErrorCode::FINAL_SIZE_ERROR
    );
    assert_eq!(
        code(reset(&mut pair.server, id, 99)),
        TransportErrorCode::FINAL_SIZE_ERROR
    );
    reset(&mut pair.server, id, 100).unwrap();

    // A FIN below data already received changes the final size.
    let id = StreamId::new(Side::Client, Dir::Uni, 1);
    stream(&mut pair.server, id, 200, 10, false).unwrap();
    assert_eq!(
        code(stream(&mut pair.server, id, 0, 100, true)),
        TransportErrorCode::FINAL_SIZE_ERROR
    );
    assert_eq!(
        code(reset(&mut pair.server, id, 150)),
        TransportErrorCode::FINAL_SIZE_ERROR
    );

    // After a reset, the final size holds for late STREAM frames.
    let id = StreamId::new(Side::Client, Dir::Uni, 2);
    reset(&mut pair.server, id, 30).unwrap();
    stream(&mut pair.server, id, 0, 30, false).unwrap();
    assert_eq!(
        code(stream(&mut pair.server, id, 30, 1, false)),
        TransportErrorCode::FINAL_SIZE_ERROR
    );
    assert_eq!(
        code(reset(&mut pair.server, id, 31)),
        TransportErrorCode::FINAL_SIZE_ERROR
    );
}

#[test]
fn application_misuse_is_reported_as_typed_errors() {
    let mut pair = Pair::default_pair();
    let mut buf = [0; 10];
    let theirs = StreamId::new(Side::Server, Dir::Uni, 0);
    let ours = pair.client.open(Dir::Uni).unwrap();
    let unknown = StreamId::new(Side::Client, Dir::Bi, 7);
    assert_eq!(
        pair.client.write(unknown, b"x"),
        Err(WriteError::UnknownStream)
    );
    assert_eq!(
        pair.client.read(pair.now, RTT, ours, &mut buf),
        Err(ReadError::UnknownStream)
    );
    assert_eq!(
        pair.client.read(pair.now, RTT, theirs, &mut buf),
        Err(ReadError::UnknownStream)
    );
    assert_eq!(
        pair.client.stop(ours, v(0)),
        Err(StreamError::UnknownStream)
    );
    pair.client.finish(ours).unwrap();
    assert_eq!(pair.client.finish(ours), Err(FinishError::ClosedStream));
    assert_eq!(pair.client.write(ours, b"x"), Err(WriteError::ClosedStream));
    pair.settle();
    assert_eq!(pair.client.stream_count(), 0);
    assert_eq!(pair.client.write(ours, b"x"), Err(WriteError::ClosedStream));
    assert_eq!(
        pair.client.set_priority(ours, 1),
        Err(StreamError::ClosedStream)
    );
}

#[test]
fn data_after_stop_sending_still_counts_against_flow_control() {
    // RFC 9000 §3.5: "STREAM frames received after sending a STOP_SENDING
    // frame are still counted toward connection and stream flow control".
    let mut pair = Pair::default_pair();
    let window = StreamsConfig::default().stream_receive_window;
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    stream(&mut pair.server, id, 0, 100, false).unwrap();
    pair.server.stop(id, v(4)).unwrap();
    stream(&mut pair.server, id, 100, 1000, false).unwrap();
    assert_eq!(pair.server.recv_buffered(), 0, "discarded on receipt");
    assert_eq!(
        pair.server.conn_recv.consumed(),
        1100,
        "credited back at once"
    );
    let err = stream(&mut pair.server, id, window, 1, false).unwrap_err();
    assert_eq!(err.code, TransportErrorCode::FLOW_CONTROL_ERROR);
}

/// RFC 9000 §21.7: one byte per gap on one stream is cut off at the
/// per-stream cap with PROTOCOL_VIOLATION, and the count stays bounded.
#[test]
fn too_many_fragments_on_one_stream_is_a_protocol_violation() {
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    for i in 0..MAX_FRAGMENTS_PER_STREAM as u64 {
        stream(&mut pair.server, id, 2 * i + 1, 1, false).unwrap();
    }
    assert_eq!(pair.server.recv_fragments(), MAX_FRAGMENTS_PER_STREAM);
    let err = stream(
        &mut pair.server,
        id,
        2 * MAX_FRAGMENTS_PER_STREAM as u64 + 1,
        1,
        false,
    )
    .unwrap_err();
    assert_eq!(err.code, TransportErrorCode::PROTOCOL_VIOLATION);
    assert!(err.frame_type.is_some_and(|t| (0x08..=0x0f).contains(&t)));
}

/// The per-connection cap holds across streams, and filled gaps, resets
/// and stops give their fragments back.
#[test]
fn fragments_are_capped_per_connection_and_given_back() {
    let mut pair = Pair::default_pair();
    let per_stream = MAX_FRAGMENTS_PER_CONNECTION / 8;
    let uni = |i| StreamId::new(Side::Client, Dir::Uni, i);
    // Filling a stream's gaps and reading it gives its fragments back.
    stream(&mut pair.server, uni(0), 1, 1, false).unwrap();
    stream(&mut pair.server, uni(0), 3, 1, false).unwrap();
    assert_eq!(pair.server.recv_fragments(), 2);
    stream(&mut pair.server, uni(0), 0, 4, false).unwrap();
    assert_eq!(pair.server.recv_fragments(), 0);
    // A reset and a stop give theirs back.
    stream(&mut pair.server, uni(1), 1, 1, false).unwrap();
    reset(&mut pair.server, uni(1), 2).unwrap();
    stream(&mut pair.server, uni(2), 1, 1, false).unwrap();
    pair.server.stop(uni(2), v(0)).unwrap();
    assert_eq!(pair.server.recv_fragments(), 0);
    let mut total = 0;
    for s in 3..12 {
        for i in 0..per_stream as u64 {
            let r = stream(&mut pair.server, uni(s), 2 * i + 1, 1, false);
            if total == MAX_FRAGMENTS_PER_CONNECTION {
                assert_eq!(code(r), TransportErrorCode::PROTOCOL_VIOLATION);
                assert!(pair.server.recv_fragments() <= MAX_FRAGMENTS_PER_CONNECTION + 1);
                return;
            }
            r.unwrap();
            total += 1;
        }
    }
    panic!("never capped");
}
