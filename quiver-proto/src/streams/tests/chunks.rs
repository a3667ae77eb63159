//! Reading without copying: `read_chunk` (RFC 9000 §2.2 ordered delivery,
//! §4.1/§4.2 flow-control credit), alone and mixed with `read`.

use proptest::prelude::*;

use super::*;
use crate::frame::FrameType;
use crate::streams::assembler::PAGE;

/// Takes chunks of at most `max` bytes until none is readable: the bytes,
/// whether the end was reached, and the chunks' lengths.
fn chunk_all(
    st: &mut StreamsState,
    now: Instant,
    id: StreamId,
    max: usize,
) -> (Vec<u8>, bool, Vec<usize>) {
    let mut out = Vec::new();
    let mut lens = Vec::new();
    loop {
        match st.read_chunk(now, RTT, id, max) {
            Ok(Some(chunk)) => {
                assert!(!chunk.is_empty() && chunk.len() <= max);
                lens.push(chunk.len());
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return (out, true, lens),
            Err(ReadError::Blocked) => return (out, false, lens),
            Err(e) => panic!("read_chunk {id}: {e}"),
        }
    }
}

#[test]
fn in_order_data_comes_as_chunks_up_to_page_ends_then_the_end() {
    // RFC 9000 §2.2: the data is delivered as an ordered byte stream.
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    let data = pattern(1, 3 * PAGE + 100);
    for (i, piece) in data.chunks(1000).enumerate() {
        let last = (i + 1) * 1000 >= data.len();
        deliver(
            &mut pair.server,
            &stream_frame(id, i as u64 * 1000, piece, last),
        )
        .unwrap();
    }
    assert_eq!(pair.server.accept(Dir::Uni), Some(id));
    let (got, fin, lens) = chunk_all(&mut pair.server, pair.now, id, usize::MAX);
    assert!(fin);
    assert_eq!(got, data);
    // One chunk per page: a frame spanning two pages is not copied to
    // join its halves.
    assert_eq!(lens, [PAGE, PAGE, PAGE, 100]);
    assert_eq!(
        pair.server.read_chunk(pair.now, RTT, id, 10),
        Err(ReadError::ClosedStream)
    );
    assert_eq!(pair.server.stream_count(), 0);
}

#[test]
fn out_of_order_fragments_are_readable_once_the_gap_fills() {
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    let data = pattern(2, 10_000);
    let frame = |a: usize, b: usize| stream_frame(id, a as u64, &data[a..b], b == data.len());
    deliver(&mut pair.server, &frame(6000, 10_000)).unwrap();
    deliver(&mut pair.server, &frame(2000, 5000)).unwrap();
    assert_eq!(
        pair.server.read_chunk(pair.now, RTT, id, 100),
        Err(ReadError::Blocked),
        "nothing in order yet"
    );
    deliver(&mut pair.server, &frame(0, 2500)).unwrap();
    let (got, fin, _) = chunk_all(&mut pair.server, pair.now, id, 700);
    assert!(!fin);
    assert_eq!(got, &data[..5000]);
    deliver(&mut pair.server, &frame(4000, 6500)).unwrap();
    let (got, fin, _) = chunk_all(&mut pair.server, pair.now, id, 700);
    assert!(fin);
    assert_eq!(got, &data[5000..]);
}

#[test]
fn chunks_stay_valid_while_the_stream_goes_on() {
    // A chunk shares the reassembly page it was received into; data
    // arriving later in the same page, and pages reused after the chunk is
    // dropped, must not change what the application holds.
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    let data = pattern(3, 8 * PAGE);
    let mut held = Vec::new();
    let mut got = Vec::new();
    for (i, piece) in data.chunks(700).enumerate() {
        let last = (i + 1) * 700 >= data.len();
        deliver(
            &mut pair.server,
            &stream_frame(id, i as u64 * 700, piece, last),
        )
        .unwrap();
        while let Ok(Some(chunk)) = pair.server.read_chunk(pair.now, RTT, id, 500) {
            got.extend_from_slice(&chunk);
            if i % 3 == 0 {
                held.push((got.len() - chunk.len(), chunk));
            }
        }
    }
    assert_eq!(got, data);
    for (at, chunk) in held {
        assert_eq!(&chunk[..], &data[at..at + chunk.len()]);
    }
}

#[test]
fn fin_alone_and_empty_stream_end_with_none() {
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    deliver(&mut pair.server, &stream_frame(id, 0, b"abc", false)).unwrap();
    let chunk = pair.server.read_chunk(pair.now, RTT, id, 10).unwrap();
    assert_eq!(chunk.as_deref(), Some(&b"abc"[..]));
    assert_eq!(
        pair.server.read_chunk(pair.now, RTT, id, 10),
        Err(ReadError::Blocked)
    );
    // A FIN without data (RFC 9000 §19.8: an empty STREAM frame with FIN).
    deliver(&mut pair.server, &stream_frame(id, 3, b"", true)).unwrap();
    assert_eq!(pair.server.read_chunk(pair.now, RTT, id, 10), Ok(None));
    assert_eq!(
        pair.server.read_chunk(pair.now, RTT, id, 10),
        Err(ReadError::ClosedStream)
    );
    // A stream that is only a FIN.
    let empty = StreamId::new(Side::Client, Dir::Uni, 1);
    deliver(&mut pair.server, &stream_frame(empty, 0, b"", true)).unwrap();
    assert_eq!(pair.server.read_chunk(pair.now, RTT, empty, 10), Ok(None));
}

#[test]
fn zero_max_reads_an_empty_chunk_while_data_waits() {
    // As `read` with an empty buffer: `Some(0 bytes)` while data waits,
    // `Blocked` when there is none.
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    deliver(&mut pair.server, &stream_frame(id, 0, b"x", false)).unwrap();
    assert_eq!(
        pair.server.read_chunk(pair.now, RTT, id, 0),
        Ok(Some(Bytes::new()))
    );
    assert_eq!(pair.server.conn_recv.consumed(), 0);
    let _ = pair.server.read_chunk(pair.now, RTT, id, 1).unwrap();
    assert_eq!(
        pair.server.read_chunk(pair.now, RTT, id, 0),
        Err(ReadError::Blocked)
    );
}

#[test]
fn reset_reaches_a_chunk_reader_and_returns_credit() {
    // RFC 9000 §3.2: a reset interrupts delivery; RFC 9000 §4.5: the
    // final size is credited to the connection window.
    let mut pair = Pair::default_pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    deliver(&mut pair.server, &stream_frame(id, 0, &[5; 3000], false)).unwrap();
    let chunk = pair.server.read_chunk(pair.now, RTT, id, 1000).unwrap();
    assert_eq!(chunk.map(|c| c.len()), Some(1000));
    let reset = frame::ResetStream {
        id: id.to_varint(),
        error_code: v(9),
        final_size: v(4000),
    };
    pair.server.on_reset_stream(&reset).unwrap();
    assert_eq!(
        pair.server.read_chunk(pair.now, RTT, id, 1000),
        Err(ReadError::Reset(v(9)))
    );
    assert_eq!(
        pair.server.read_chunk(pair.now, RTT, id, 1000),
        Err(ReadError::ClosedStream)
    );
    assert_eq!(pair.server.conn_recv.consumed(), 4000);
    assert_eq!(pair.server.stream_count(), 0);
}

#[test]
fn chunk_reads_return_flow_control_credit_like_reads() {
    // RFC 9000 §4.1/§4.2: the receiver advertises more credit as the
    // application consumes data. A transfer through windows much smaller
    // than it completes whether read with `read` or with `read_chunk`,
    // every byte handed over is credited once, and both announce the
    // credit with MAX_STREAM_DATA and MAX_DATA.
    let server = StreamsConfig {
        stream_receive_window: 8 * 1024,
        max_stream_receive_window: 64 * 1024,
        receive_window: 16 * 1024,
        max_receive_window: 128 * 1024,
        ..StreamsConfig::default()
    };
    for chunked in [false, true] {
        let mut pair = Pair::new(&StreamsConfig::default(), &server);
        let id = pair.client.open(Dir::Uni).unwrap();
        let data = pattern(4, 200_000);
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
            let consumed_before = pair.server.conn_recv.consumed();
            let (d, fin) = if chunked {
                let (d, fin, _) = chunk_all(&mut pair.server, pair.now, id, 1500);
                (d, fin)
            } else {
                read_all(&mut pair.server, pair.now, id)
            };
            assert_eq!(
                pair.server.conn_recv.consumed() - consumed_before,
                d.len() as u64,
                "every byte handed over is credited, once"
            );
            got.extend_from_slice(&d);
            if fin {
                break;
            }
        }
        assert_eq!(got, data, "the transfer completes (credit was returned)");
        assert!(pair.sent_frame(false, FrameType::MAX_STREAM_DATA.value()));
        assert!(pair.sent_frame(false, FrameType::MAX_DATA.value()));
        assert_eq!(pair.server.conn_recv.consumed(), data.len() as u64);
    }
}

proptest! {
    #[test]
    fn interleaved_reads_and_chunk_reads_reassemble_the_data(
        len in 0usize..(3 * PAGE + 500),
        cuts in proptest::collection::vec(any::<u16>(), 0..30),
        keys in proptest::collection::vec(any::<u32>(), 40),
        ops in proptest::collection::vec((any::<bool>(), 0usize..5000), 1..40),
    ) {
        // RFC 9000 §2.2: whatever the arrival order and however the
        // application mixes `read` and `read_chunk`, it gets the bytes in
        // order, each once.
        let data = pattern(len as u64, len);
        let mut bounds: Vec<usize> = cuts.iter().map(|&c| c as usize % (len + 1)).collect();
        bounds.extend([0, len]);
        bounds.sort_unstable();
        bounds.dedup();
        let mut pieces: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        if pieces.is_empty() {
            pieces.push((0, 0));
        }
        let mut order: Vec<usize> = (0..pieces.len()).collect();
        order.sort_by_key(|&i| keys[i % keys.len()] ^ i as u32);

        let mut pair = Pair::default_pair();
        let id = StreamId::new(Side::Client, Dir::Uni, 0);
        let mut got = Vec::new();
        let mut fin = false;
        let mut op = ops.iter().cycle();
        let mut step = |st: &mut StreamsState, got: &mut Vec<u8>| -> Option<bool> {
            let &(chunked, max) = op.next().unwrap();
            let r = if chunked {
                st.read_chunk(pair.now, RTT, id, max).map(|c| c.map(|c| {
                    got.extend_from_slice(&c);
                    c.len()
                }))
            } else {
                let mut buf = vec![0; max];
                st.read(pair.now, RTT, id, &mut buf).map(|n| n.inspect(|&n| {
                    got.extend_from_slice(&buf[..n]);
                }))
            };
            match r {
                Ok(Some(_)) => None,
                Ok(None) => Some(true),
                Err(ReadError::Blocked) => Some(false),
                Err(e) => panic!("{e}"),
            }
        };
        for &i in &order {
            let (a, b) = pieces[i];
            let frame = stream_frame(id, a as u64, &data[a..b], b == len);
            deliver(&mut pair.server, &frame).unwrap();
            for _ in 0..3 {
                if fin {
                    break;
                }
                if let Some(f) = step(&mut pair.server, &mut got) {
                    fin = f;
                    break;
                }
            }
        }
        for _ in 0..100_000 {
            if fin {
                break;
            }
            if let Some(f) = step(&mut pair.server, &mut got) {
                prop_assert!(f, "all data arrived, so reading reaches the end");
                fin = f;
            }
        }
        prop_assert!(fin);
        prop_assert_eq!(got, data);
        prop_assert_eq!(pair.server.conn_recv.consumed(), len as u64);
    }
}
