//! Variable-length integers and ACK frame ranges on arbitrary input.
//!
//! The first half of the input is read as a run of varints: each is below
//! 2^62, takes 1, 2, 4 or 8 bytes as its prefix says, and re-encodes to the
//! same bytes at that size. The whole input is then read as the body of an
//! ACK frame (type 0x02 or 0x03, chosen by the first byte): if it decodes,
//! its ranges iterate fully, without underflow, largest first and
//! non-adjacent, and `encode_ack` of those ranges decodes to an equal frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use quiver_proto::VarInt;
use quiver_proto::coding::Reader;
use quiver_proto::frame::{self, Frame, FrameType};

fuzz_target!(|data: &[u8]| {
    varints(data);
    ack(data);
});

fn varints(data: &[u8]) {
    let mut r = Reader::new(data);
    let mut out = Vec::with_capacity(8);
    while !r.is_empty() {
        let start = r.position();
        let Ok((v, len)) = VarInt::decode_with_len(&mut r) else {
            // Only a truncated varint fails.
            let need = 1usize << (data[start] >> 6);
            assert!(data.len() - start < need);
            break;
        };
        assert_eq!(len, 1 << (data[start] >> 6));
        assert_eq!(r.position(), start + len);
        assert!(v <= VarInt::MAX);
        assert_eq!(VarInt::from_u64(v.into_inner()), Ok(v));
        assert!(v.size() <= len);
        assert_eq!(VarInt::size_of(v.into_inner()), v.size());
        out.clear();
        v.encode_with_size(len, &mut out);
        assert_eq!(out, &data[start..start + len]);
        out.clear();
        v.encode(&mut out);
        assert_eq!(out.len(), v.size());
        let mut again = Reader::new(&out);
        assert_eq!(VarInt::decode(&mut again), Ok(v));
    }
}

fn ack(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let ty = if selector & 1 == 0 {
        FrameType::ACK
    } else {
        FrameType::ACK_ECN
    };
    let mut input = Vec::with_capacity(1 + body.len());
    ty.to_varint().encode(&mut input);
    input.extend_from_slice(body);
    let mut r = Reader::new(&input);
    let Ok(Frame::Ack(ack)) = Frame::decode(&mut r) else {
        return;
    };
    assert_eq!(ack.ty(), ty);
    assert_eq!(ack.ecn().is_some(), ty == FrameType::ACK_ECN);

    let ranges = ack.ranges();
    assert_eq!(ranges.len(), ack.range_count());
    let mut count = 0;
    let mut prev_start: Option<u64> = None;
    for range in ranges {
        assert!(range.start() <= range.end(), "empty range {range:?}");
        match prev_start {
            // The first range ends at Largest Acknowledged.
            None => assert_eq!(*range.end(), ack.largest()),
            // A Gap of g means g + 1 unacknowledged packets in between.
            Some(prev) => assert!(
                range.end().checked_add(2).is_some_and(|e| e <= prev),
                "range {range:?} not below {prev}"
            ),
        }
        prev_start = Some(*range.start());
        count += 1;
    }
    assert_eq!(count, ack.range_count(), "ranges stopped early");
    assert_eq!(prev_start, Some(ack.smallest()));

    // The ranges re-encode (as a fresh ACK frame) to the same frame.
    let delay = VarInt::from_u64(ack.ack_delay()).expect("decoded varint");
    let mut buf = Vec::new();
    frame::encode_ack(ack.ranges(), delay, ack.ecn(), &mut buf);
    assert_eq!(
        buf.len(),
        frame::ack_encoded_len(ack.ranges(), delay, ack.ecn())
    );
    let mut r = Reader::new(&buf);
    let again = Frame::decode(&mut r).expect("encode_ack output decodes");
    assert!(r.is_empty());
    assert_eq!(Frame::Ack(ack), again);
}
