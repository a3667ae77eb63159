//! Data transfer, loss, flow control, resets, priorities and limits.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::frame::FrameType;
use crate::streams::assembler::PAGE;

#[test]
fn thousand_concurrent_bidi_streams_echo_their_data_intact() {
    let config = StreamsConfig {
        max_concurrent_bidi_streams: 1000,
        ..StreamsConfig::default()
    };
    let mut pair = Pair::new(&config, &config);
    let mut sent = HashMap::new();
    for i in 0..1000u64 {
        let id = pair.client.open(Dir::Bi).unwrap();
        let data = pattern(i, 1000 + (i as usize * 37) % 4000);
        assert_eq!(pair.client.write(id, &data), Ok(data.len()));
        pair.client.finish(id).unwrap();
        sent.insert(id, data);
    }
    assert_eq!(pair.client.open(Dir::Bi), None, "limit of 1000 reached");
    let mut at_server: HashMap<StreamId, Vec<u8>> = HashMap::new();
    let mut at_client: HashMap<StreamId, Vec<u8>> = HashMap::new();
    let mut echoed = 0;
    let mut done = 0;
    while done < 1000 {
        assert!(
            pair.step(&mut |_| false),
            "stalled with {done} streams done"
        );
        let now = pair.now;
        for ev in Pair::events(&mut pair.server) {
            match ev {
                StreamEvent::Opened { dir } => while pair.server.accept(dir).is_some() {},
                StreamEvent::Readable { id } => {
                    let (data, fin) = read_all(&mut pair.server, now, id);
                    let got = at_server.entry(id).or_default();
                    got.extend_from_slice(&data);
                    if fin {
                        assert_eq!(got, &sent[&id], "{id} at the server");
                        assert_eq!(pair.server.write(id, got), Ok(got.len()));
                        pair.server.finish(id).unwrap();
                        echoed += 1;
                    }
                }
                _ => {}
            }
        }
        for ev in Pair::events(&mut pair.client) {
            if let StreamEvent::Readable { id } = ev {
                let (data, fin) = read_all(&mut pair.client, now, id);
                let got = at_client.entry(id).or_default();
                got.extend_from_slice(&data);
                if fin {
                    assert_eq!(got, &sent[&id], "{id} echoed");
                    done += 1;
                }
            }
        }
    }
    pair.settle();
    assert_eq!(echoed, 1000);
    assert_eq!(pair.client.stream_count(), 0, "every stream released");
    assert_eq!(pair.server.stream_count(), 0);
    assert!(
        pair.client.open(Dir::Bi).is_some(),
        "MAX_STREAMS returned credit"
    );
    assert!(pair.sent_frame(false, FrameType::MAX_DATA.value()));
}

#[test]
fn out_of_order_and_duplicated_stream_frames_reassemble() {
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    let data = pattern(3, 10_000);
    let pieces = [
        (5000, 8000, false),
        (0, 1000, false),
        (0, 1000, false),
        (900, 5100, false),
        (8000, 10_000, true),
        (7000, 9000, false),
        (8000, 10_000, true),
    ];
    for (start, end, fin) in pieces {
        let frame = stream_frame(id, start, &data[start as usize..end as usize], fin);
        deliver(&mut pair.server, &frame).unwrap();
    }
    assert_eq!(pair.server.accept(Dir::Uni), Some(id));
    let (got, fin) = read_all(&mut pair.server, pair.now, id);
    assert!(fin);
    assert_eq!(got, data);
    assert_eq!(
        pair.server.read(pair.now, RTT, id, &mut [0; 10]),
        Err(ReadError::ClosedStream)
    );
    assert_eq!(pair.server.stream_count(), 0);
}

#[test]
fn lost_chunks_are_retransmitted_before_new_data() {
    let mut pair = Pair::default_pair();
    let id = pair.client.open(Dir::Bi).unwrap();
    pair.client.write(id, &pattern(1, 3000)).unwrap();
    let first = build(&mut pair.client).unwrap();
    assert_eq!(first.chunks[0].offset, 0);
    lose(&mut pair.client, &first);
    let second = build(&mut pair.client).unwrap();
    // RFC 9000 §13.3: lost data goes out again, ahead of data never sent.
    assert_eq!(second.chunks[0].offset, 0);
    assert_eq!(second.chunks[0].len, first.chunks[0].len);

    // With every third packet lost, a larger transfer still arrives intact.
    let ids: Vec<_> = (0..3)
        .map(|_| pair.client.open(Dir::Uni).unwrap())
        .collect();
    let datas: Vec<_> = (0..3).map(|i| pattern(10 + i, 50_000)).collect();
    for (id, d) in ids.iter().zip(&datas) {
        pair.client.write(*id, d).unwrap();
        pair.client.finish(*id).unwrap();
    }
    pair.settle_with(&mut |n| n % 3 == 1);
    for (id, d) in ids.iter().zip(&datas) {
        let (got, fin) = read_all(&mut pair.server, pair.now, *id);
        assert!(fin);
        assert_eq!(&got, d);
    }
    pair.settle();
    assert!(
        Pair::events(&mut pair.client)
            .iter()
            .filter(|e| matches!(e, StreamEvent::Finished { .. }))
            .count()
            == 3
    );
}

/// Moves data from the client's stream to the server until done, with the
/// server reading after every exchange.
fn transfer(pair: &mut Pair, id: StreamId, len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    for _ in 0..10_000 {
        pair.step(&mut |_| false);
        let (data, fin) = read_all(&mut pair.server, pair.now, id);
        got.extend_from_slice(&data);
        if fin {
            assert_eq!(got.len(), len);
            return got;
        }
    }
    panic!("transfer stalled at {} bytes", got.len());
}

#[test]
fn sender_blocked_on_stream_credit_resumes_after_max_stream_data() {
    let server = StreamsConfig {
        stream_receive_window: 4000,
        max_stream_receive_window: 4000,
        ..StreamsConfig::default()
    };
    let mut pair = Pair::new(&StreamsConfig::default(), &server);
    let id = pair.client.open(Dir::Uni).unwrap();
    let data = pattern(5, 20_000);
    pair.client.write(id, &data).unwrap();
    pair.client.finish(id).unwrap();
    pair.settle();
    // RFC 9000 §4.1: the sender stops at the limit and says so.
    assert!(pair.sent_frame(true, FrameType::STREAM_DATA_BLOCKED.value()));
    assert_eq!(
        pair.server.streams[&id]
            .recv
            .as_ref()
            .unwrap()
            .window
            .received(),
        4000
    );
    assert_eq!(transfer(&mut pair, id, data.len()), data);
    assert!(pair.sent_frame(false, FrameType::MAX_STREAM_DATA.value()));
}

#[test]
fn sender_blocked_on_connection_credit_resumes_after_max_data() {
    let server = StreamsConfig {
        receive_window: 6000,
        max_receive_window: 6000,
        ..StreamsConfig::default()
    };
    let mut pair = Pair::new(&StreamsConfig::default(), &server);
    let ids: Vec<_> = (0..3)
        .map(|_| pair.client.open(Dir::Uni).unwrap())
        .collect();
    for (i, id) in ids.iter().enumerate() {
        pair.client.write(*id, &pattern(i as u64, 10_000)).unwrap();
        pair.client.finish(*id).unwrap();
    }
    pair.settle();
    assert!(pair.sent_frame(true, FrameType::DATA_BLOCKED.value()));
    assert_eq!(pair.server.conn_recv.received(), 6000);
    let mut got: HashMap<StreamId, Vec<u8>> = HashMap::new();
    let mut finished = 0;
    while finished < 3 {
        assert!(pair.step(&mut |_| false) || finished < 3);
        for id in &ids {
            let (data, fin) = match pair.server.read(pair.now, RTT, *id, &mut [0; 0]) {
                Err(ReadError::ClosedStream) => continue,
                _ => read_all(&mut pair.server, pair.now, *id),
            };
            got.entry(*id).or_default().extend_from_slice(&data);
            finished += fin as usize;
        }
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(got[id], pattern(i as u64, 10_000));
    }
    assert!(pair.sent_frame(false, FrameType::MAX_DATA.value()));
}

#[test]
fn receive_windows_grow_when_the_application_reads_fast() {
    let server = StreamsConfig {
        stream_receive_window: 8 * 1024,
        max_stream_receive_window: 1 << 20,
        receive_window: 16 * 1024,
        max_receive_window: 1 << 20,
        ..StreamsConfig::default()
    };
    let mut pair = Pair::new(&StreamsConfig::default(), &server);
    let id = pair.client.open(Dir::Uni).unwrap();
    let data = pattern(9, 400_000);
    let mut written = 0;
    let mut got = Vec::new();
    for _ in 0..10_000 {
        if written < data.len() {
            written += pair.client.write(id, &data[written..]).unwrap_or(0);
            if written == data.len() {
                pair.client.finish(id).unwrap();
            }
        }
        pair.step(&mut |_| false);
        let window = pair
            .server
            .streams
            .get(&id)
            .map(|e| e.recv.as_ref().unwrap().window.window());
        let (d, fin) = read_all(&mut pair.server, pair.now, id);
        got.extend_from_slice(&d);
        if fin {
            break;
        }
        if got.len() > 300_000 {
            assert!(window.unwrap() > 8 * 1024, "stream window grew");
        }
    }
    assert_eq!(got, data);
    assert!(
        pair.server.conn_recv.window() > 16 * 1024,
        "connection window grew"
    );
}

#[test]
fn reset_stream_reaches_the_reader_and_returns_credit() {
    let mut pair = Pair::default_pair();
    let id = pair.client.open(Dir::Bi).unwrap();
    pair.client.write(id, &[1; 3000]).unwrap();
    pair.settle();
    pair.client.write(id, &[2; 3000]).unwrap();
    pair.client.reset(id, v(7)).unwrap();
    assert_eq!(pair.client.write(id, b"x"), Err(WriteError::ClosedStream));
    assert_eq!(pair.client.reset(id, v(7)), Err(StreamError::ClosedStream));
    pair.settle();
    assert!(Pair::events(&mut pair.server).contains(&StreamEvent::Readable { id }));
    let mut buf = [0; 100];
    assert_eq!(
        pair.server.read(pair.now, RTT, id, &mut buf),
        Err(ReadError::Reset(v(7)))
    );
    assert_eq!(
        pair.server.read(pair.now, RTT, id, &mut buf),
        Err(ReadError::ClosedStream)
    );
    // The final size (3000: only what was sent) is credited back.
    assert_eq!(pair.server.conn_recv.consumed(), 3000);
    // The other direction is unaffected (RFC 9000 §4.4).
    pair.server.write(id, b"reply").unwrap();
    pair.server.finish(id).unwrap();
    pair.settle();
    assert_eq!(
        read_all(&mut pair.client, pair.now, id),
        (b"reply".to_vec(), true)
    );
    pair.settle();
    assert_eq!(
        (pair.client.stream_count(), pair.server.stream_count()),
        (0, 0)
    );
}

#[test]
fn stop_sending_makes_the_peer_reset_with_the_same_code() {
    let mut pair = Pair::default_pair();
    let id = pair.client.open(Dir::Bi).unwrap();
    pair.client.write(id, &[1; 1000]).unwrap();
    pair.settle();
    pair.server.stop(id, v(9)).unwrap();
    assert_eq!(
        pair.server.read(pair.now, RTT, id, &mut [0; 10]),
        Err(ReadError::ClosedStream)
    );
    pair.settle();
    assert!(pair.sent_frame(false, FrameType::STOP_SENDING.value()));
    // RFC 9000 §3.5: the RESET_STREAM answers, copying the code.
    assert!(pair.sent_frame(true, FrameType::RESET_STREAM.value()));
    assert!(Pair::events(&mut pair.client).contains(&StreamEvent::Stopped { id, code: v(9) }));
    assert_eq!(pair.client.write(id, b"x"), Err(WriteError::Stopped(v(9))));
    assert_eq!(pair.client.finish(id), Err(FinishError::Stopped(v(9))));
    pair.server.finish(id).unwrap();
    pair.settle();
    assert_eq!(read_all(&mut pair.client, pair.now, id), (vec![], true));
    pair.settle();
    assert_eq!(
        (pair.client.stream_count(), pair.server.stream_count()),
        (0, 0)
    );
    assert_eq!(pair.server.conn_recv.consumed(), 1000);
}

#[test]
fn priorities_order_streams_and_equal_priorities_take_turns() {
    let mut pair = Pair::default_pair();
    let low = pair.client.open(Dir::Uni).unwrap();
    let mid_a = pair.client.open(Dir::Uni).unwrap();
    let high = pair.client.open(Dir::Uni).unwrap();
    let mid_b = pair.client.open(Dir::Uni).unwrap();
    for id in [low, mid_a, high, mid_b] {
        pair.client.write(id, &[0; 5000]).unwrap();
    }
    pair.client.set_priority(high, 10).unwrap();
    pair.client.set_priority(mid_a, 5).unwrap();
    pair.client.set_priority(mid_b, 5).unwrap();
    let mut order = Vec::new();
    while let Some(p) = build(&mut pair.client) {
        order.extend(p.chunks.iter().map(|c| c.id));
    }
    let last = |id| order.iter().rposition(|&x| x == id).unwrap();
    let first = |id| order.iter().position(|&x| x == id).unwrap();
    assert!(last(high) < first(mid_a).min(first(mid_b)));
    assert!(last(mid_a).max(last(mid_b)) < first(low));
    let mids: Vec<_> = order
        .iter()
        .filter(|&&x| x == mid_a || x == mid_b)
        .collect();
    assert!(
        mids.windows(2).all(|w| w[0] != w[1]),
        "round-robin: {mids:?}"
    );
}

#[test]
fn released_peer_streams_return_max_streams_credit() {
    let server = StreamsConfig {
        max_concurrent_bidi_streams: 4,
        ..StreamsConfig::default()
    };
    let mut pair = Pair::new(&StreamsConfig::default(), &server);
    let ids: Vec<_> = (0..4).map(|_| pair.client.open(Dir::Bi).unwrap()).collect();
    assert_eq!(pair.client.open(Dir::Bi), None);
    for id in &ids {
        pair.client.finish(*id).unwrap();
    }
    pair.settle();
    // RFC 9000 §4.6: the blocked opener says so.
    assert!(pair.sent_frame(true, FrameType::STREAMS_BLOCKED_BIDI.value()));
    for id in &ids {
        assert_eq!(read_all(&mut pair.server, pair.now, *id), (vec![], true));
        pair.server.finish(*id).unwrap();
    }
    pair.settle();
    for id in &ids {
        assert_eq!(read_all(&mut pair.client, pair.now, *id), (vec![], true));
    }
    pair.settle();
    assert!(pair.sent_frame(false, FrameType::MAX_STREAMS_BIDI.value()));
    assert!(Pair::events(&mut pair.client).contains(&StreamEvent::Available { dir: Dir::Bi }));
    let more: Vec<_> = std::iter::from_fn(|| pair.client.open(Dir::Bi)).collect();
    assert_eq!(more.len(), 4, "four released streams, four new ones");
}

#[test]
fn lost_control_frames_are_sent_again_with_current_values() {
    let server = StreamsConfig {
        stream_receive_window: 4000,
        max_stream_receive_window: 4000,
        ..StreamsConfig::default()
    };
    let mut pair = Pair::new(&StreamsConfig::default(), &server);
    let id = pair.client.open(Dir::Bi).unwrap();
    pair.client.write(id, &[0; 10_000]).unwrap();
    pair.settle();
    read_all(&mut pair.server, pair.now, id);
    let p = build(&mut pair.server).unwrap();
    assert_eq!(p.controls, [ControlFrame::MaxStreamData(id, 8000)]);
    lose(&mut pair.server, &p);
    let again = build(&mut pair.server).unwrap();
    assert_eq!(again.controls, [ControlFrame::MaxStreamData(id, 8000)]);
    // A lost older value is not resent once a newer one went out.
    pair.server
        .on_control_lost(&ControlFrame::MaxStreamData(id, 4000));
    assert!(!pair.server.has_control_frames());

    pair.client.reset(id, v(3)).unwrap();
    let p = build(&mut pair.client).unwrap();
    assert_eq!(p.controls, [ControlFrame::ResetStream(id)]);
    lose(&mut pair.client, &p);
    let again = build(&mut pair.client).unwrap();
    assert_eq!(again.controls, [ControlFrame::ResetStream(id)]);
    ack(&mut pair.client, &again);
    pair.client.on_control_lost(&ControlFrame::ResetStream(id));
    assert!(
        !pair.client.has_control_frames(),
        "acknowledged reset is final"
    );
}

#[test]
fn frames_for_released_streams_are_ignored() {
    let mut pair = Pair::default_pair();
    let id = pair.client.open(Dir::Uni).unwrap();
    pair.client.write(id, b"hello").unwrap();
    pair.client.finish(id).unwrap();
    pair.settle();
    assert_eq!(
        read_all(&mut pair.server, pair.now, id),
        (b"hello".to_vec(), true)
    );
    assert_eq!(pair.server.stream_count(), 0);
    Pair::events(&mut pair.server);
    deliver(&mut pair.server, &stream_frame(id, 0, b"hello", true)).unwrap();
    let reset = frame::ResetStream {
        id: id.to_varint(),
        error_code: v(1),
        final_size: v(5),
    };
    pair.server.on_reset_stream(&reset).unwrap();
    assert_eq!(pair.server.stream_count(), 0);
    assert_eq!(Pair::events(&mut pair.server), []);
}

#[test]
fn a_frame_on_a_higher_stream_opens_the_lower_ones() {
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Client, Dir::Bi, 5);
    deliver(&mut pair.server, &stream_frame(id, 0, b"x", false)).unwrap();
    assert_eq!(
        Pair::events(&mut pair.server)[0],
        StreamEvent::Opened { dir: Dir::Bi }
    );
    let accepted: Vec<_> = std::iter::from_fn(|| pair.server.accept(Dir::Bi)).collect();
    let expected: Vec<_> = (0..6)
        .map(|i| StreamId::new(Side::Client, Dir::Bi, i))
        .collect();
    assert_eq!(accepted, expected);
}

#[test]
fn smaller_limits_from_the_peer_are_ignored() {
    let mut pair = Pair::default_pair();
    let id = pair.client.open(Dir::Bi).unwrap();
    let before = pair.client.streams[&id]
        .send
        .as_ref()
        .unwrap()
        .credit
        .limit();
    let f = frame::MaxStreamData {
        id: id.to_varint(),
        max: v(1),
    };
    pair.client.on_max_stream_data(&f).unwrap();
    pair.client.on_max_data(&frame::MaxData(v(1)));
    pair.client.on_max_streams(&frame::MaxStreams {
        dir: Dir::Bi,
        count: v(1),
    });
    assert_eq!(
        pair.client.streams[&id]
            .send
            .as_ref()
            .unwrap()
            .credit
            .limit(),
        before
    );
    assert!(pair.client.conn_send.limit() > 1);
    assert!(pair.client.open(Dir::Bi).is_some());
}

#[test]
fn far_ahead_data_within_the_window_costs_only_what_arrives() {
    let server = StreamsConfig {
        stream_receive_window: 64 * 1024,
        max_stream_receive_window: 64 * 1024,
        receive_window: 1 << 20,
        max_receive_window: 1 << 20,
        ..StreamsConfig::default()
    };
    let mut pair = Pair::new(&StreamsConfig::default(), &server);
    // One byte just inside the window on each of 10 streams: one page each.
    for i in 0..10 {
        let id = StreamId::new(Side::Client, Dir::Uni, i);
        deliver(
            &mut pair.server,
            &stream_frame(id, 64 * 1024 - 1, b"x", false),
        )
        .unwrap();
    }
    assert_eq!(pair.server.recv_buffered(), 10 * PAGE);
    // A byte every 100 bytes over a whole window: bounded by the window.
    let id = StreamId::new(Side::Client, Dir::Uni, 20);
    for off in (1..64 * 1024).step_by(100) {
        deliver(&mut pair.server, &stream_frame(id, off, b"y", false)).unwrap();
    }
    assert!(pair.server.recv_buffered() <= 10 * PAGE + 64 * 1024);
    // One byte beyond: FLOW_CONTROL_ERROR, nothing buffered.
    let err = deliver(&mut pair.server, &stream_frame(id, 64 * 1024, b"z", false)).unwrap_err();
    assert_eq!(err.code, TransportErrorCode::FLOW_CONTROL_ERROR);
}

proptest! {
    #[test]
    fn random_chunking_and_reordering_reassembles_the_data(
        len in 0usize..6000,
        cuts in proptest::collection::vec(any::<u16>(), 0..30),
        dups in proptest::collection::vec((any::<u16>(), any::<u16>()), 0..8),
        keys in proptest::collection::vec(any::<u32>(), 40),
        read_every in 1usize..5,
    ) {
        let data = pattern(len as u64, len);
        let mut bounds: Vec<usize> = cuts.iter().map(|&c| c as usize % (len + 1)).collect();
        bounds.extend([0, len]);
        bounds.sort_unstable();
        bounds.dedup();
        let mut pieces: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        if pieces.is_empty() {
            pieces.push((0, 0));
        }
        for (a, b) in dups {
            let (a, b) = (a as usize % (len + 1), b as usize % (len + 1));
            pieces.push((a.min(b), a.max(b)));
        }
        let mut order: Vec<usize> = (0..pieces.len()).collect();
        order.sort_by_key(|&i| keys[i % keys.len()] ^ i as u32);

        let mut pair = Pair::default_pair();
        let id = StreamId::new(Side::Client, Dir::Uni, 0);
        let mut got = Vec::new();
        let mut fin = false;
        for (n, &i) in order.iter().enumerate() {
            let (a, b) = pieces[i];
            let frame = stream_frame(id, a as u64, &data[a..b], b == len);
            deliver(&mut pair.server, &frame).unwrap();
            if n % read_every == 0 && !fin {
                let (d, f) = read_all(&mut pair.server, pair.now, id);
                got.extend_from_slice(&d);
                fin = f;
            }
        }
        if !fin {
            let (d, f) = read_all(&mut pair.server, pair.now, id);
            got.extend_from_slice(&d);
            fin = f;
        }
        prop_assert!(fin);
        prop_assert_eq!(got, data);
    }
}

#[test]
fn reset_after_all_data_arrived_is_suppressed_and_data_delivered() {
    // RFC 9000 §3.2: "A RESET_STREAM signal might be suppressed or withheld
    // if stream data is completely received".
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    deliver(&mut pair.server, &stream_frame(id, 0, b"all of it", true)).unwrap();
    let reset = frame::ResetStream {
        id: id.to_varint(),
        error_code: v(1),
        final_size: v(9),
    };
    pair.server.on_reset_stream(&reset).unwrap();
    assert_eq!(
        read_all(&mut pair.server, pair.now, id),
        (b"all of it".to_vec(), true)
    );
}

#[test]
fn stop_sending_for_an_unopened_peer_stream_opens_and_resets_it() {
    // RFC 9000 §3.2: STOP_SENDING for a peer's bidirectional stream opens it;
    // §3.5: it is answered with RESET_STREAM (final size 0 here).
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Client, Dir::Bi, 0);
    let f = frame::StopSending {
        id: id.to_varint(),
        error_code: v(5),
    };
    pair.server.on_stop_sending(&f).unwrap();
    assert_eq!(pair.server.accept(Dir::Bi), Some(id));
    let p = build(&mut pair.server).unwrap();
    let frames: Vec<_> = frame::Iter::new(&p.payload).map(Result::unwrap).collect();
    assert_eq!(
        frames,
        [Frame::ResetStream(frame::ResetStream {
            id: id.to_varint(),
            error_code: v(5),
            final_size: v(0),
        })]
    );
}
