//! Cross-frame tests: dispatch, the frame type rules of RFC 9000 §12.4,
//! [`Iter`], and property tests over every frame variant.

use std::ops::RangeInclusive;

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::coding::Reader;
use crate::{ConnectionId, TransportErrorCode};

fn decode(bytes: &[u8]) -> Result<Frame<'_>, TransportError> {
    Frame::decode(&mut Reader::new(bytes))
}

fn frames(payload: &[u8]) -> Vec<Result<Frame<'_>, TransportError>> {
    Iter::new(payload).collect()
}

#[test]
fn ping_and_handshake_done_are_one_byte() {
    assert_eq!(decode(&[0x01]).unwrap(), Frame::Ping);
    assert_eq!(decode(&[0x1e]).unwrap(), Frame::HandshakeDone);
    let mut out = Vec::new();
    Frame::Ping.encode(&mut out);
    Frame::HandshakeDone.encode(&mut out);
    assert_eq!(out, [0x01, 0x1e]);
    assert_eq!(Frame::Ping.encoded_len(), 1);
}

#[test]
fn consecutive_padding_bytes_decode_as_one_frame() {
    let mut payload = vec![0u8; 1200];
    payload[0] = 0x01;
    payload[5] = 0x01;
    assert_eq!(
        frames(&payload),
        [
            Ok(Frame::Ping),
            Ok(Frame::Padding(4)),
            Ok(Frame::Ping),
            Ok(Frame::Padding(1194))
        ]
    );
    let mut out = Vec::new();
    Frame::Padding(3).encode(&mut out);
    assert_eq!(out, [0, 0, 0]);
}

#[test]
fn unknown_frame_type_is_frame_encoding_error() {
    // 0x2e and 0x2f are unassigned (0x1f is IMMEDIATE_ACK now,
    // draft-ietf-quic-ack-frequency §5); 0x4040 is 64, minimally encoded.
    for (bytes, ty) in [
        (&[0x2e][..], 0x2e),
        (&[0x2f, 0x00], 0x2f),
        (&[0x40, 0x40], 0x40),
    ] {
        let err = decode(bytes).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(ty));
    }
}

#[test]
fn frame_type_not_minimally_encoded_is_protocol_violation() {
    // RFC 9000 §12.4: "PING frames are always encoded as a single byte with
    // the value 0x01", not e.g. 0x4001.
    for (bytes, ty) in [
        (&[0x40, 0x01][..], 0x01),
        (&[0x40, 0x00][..], 0x00),
        (&[0x80, 0x00, 0x00, 0x08, 0x00][..], 0x08),
        (&[0xc0, 0, 0, 0, 0, 0, 0, 0x1e][..], 0x1e),
        (&[0x80, 0x00, 0x00, 0x40][..], 0x40),
    ] {
        let err = decode(bytes).unwrap_err();
        assert_eq!(
            err.code,
            TransportErrorCode::PROTOCOL_VIOLATION,
            "{bytes:02x?}"
        );
        assert_eq!(err.frame_type, Some(ty));
    }
}

#[test]
fn truncated_frame_type_is_frame_encoding_error_without_frame_type() {
    let err = decode(&[0x40]).unwrap_err();
    assert_eq!(err.code, TransportErrorCode::FRAME_ENCODING_ERROR);
    assert_eq!(err.frame_type, None);
}

#[test]
fn iter_stops_after_first_error() {
    let payload = [0x01, 0x2e, 0x01, 0x01];
    let out = frames(&payload);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], Ok(Frame::Ping));
    assert_eq!(out[1].as_ref().unwrap_err().frame_type, Some(0x2e));
}

#[test]
fn packet_with_no_frames_is_protocol_violation() {
    let err = check_not_empty(&[]).unwrap_err();
    assert_eq!(err.code, TransportErrorCode::PROTOCOL_VIOLATION);
    assert!(check_not_empty(&[0x00]).is_ok());
    assert!(Iter::new(&[]).next().is_none());
}

#[test]
fn frames_without_length_consume_the_rest_of_the_payload() {
    let payload = [0x08, 0x00, 0x01, 0x01];
    let out = frames(&payload);
    assert_eq!(out.len(), 1);
    let Ok(Frame::Stream(s)) = out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(s.data, [0x01, 0x01]);
}

#[test]
fn decode_error_names_are_readable() {
    let err = decode(&[0x07, 0x00]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "FRAME_ENCODING_ERROR in frame 0x7: empty NEW_TOKEN"
    );
    assert_eq!(FrameType::ACK_ECN.to_string(), "ACK(0x03)");
    assert_eq!(
        FrameType::stream(true, true, true),
        FrameType::try_from(0x0f).unwrap()
    );
}

#[test]
fn max_len_prefixed_is_exact_at_varint_boundaries() {
    assert_eq!(max_len_prefixed(0), None);
    assert_eq!(max_len_prefixed(1), Some(0));
    assert_eq!(max_len_prefixed(64), Some(63));
    assert_eq!(max_len_prefixed(65), Some(63));
    assert_eq!(max_len_prefixed(66), Some(64));
    assert_eq!(max_len_prefixed(16_385), Some(16_383));
    assert_eq!(max_len_prefixed(16_386), Some(16_383));
    assert_eq!(max_len_prefixed(16_388), Some(16_384));
}

// ---- property tests ----

/// An owned description of a frame, from which a borrowing [`Frame`] is made.
#[derive(Debug, Clone)]
enum Spec {
    /// Frames that borrow nothing.
    Plain(Frame<'static>),
    Ack(Vec<u8>),
    Crypto(VarInt, Vec<u8>),
    NewToken(Vec<u8>),
    Stream(VarInt, VarInt, bool, Vec<u8>),
    ConnectionClose(VarInt, FrameType, Vec<u8>),
    ApplicationClose(VarInt, Vec<u8>),
    Datagram(Vec<u8>),
}

impl Spec {
    fn frame(&self) -> Frame<'_> {
        match self {
            Spec::Plain(f) => *f,
            Spec::Ack(bytes) => decode(bytes).unwrap(),
            Spec::Crypto(offset, data) => Frame::Crypto(Crypto {
                offset: *offset,
                data,
            }),
            Spec::NewToken(token) => Frame::NewToken(NewToken { token }),
            Spec::Stream(id, offset, fin, data) => Frame::Stream(Stream {
                id: *id,
                offset: *offset,
                fin: *fin,
                data,
            }),
            Spec::ConnectionClose(code, ty, reason) => Frame::ConnectionClose(ConnectionClose {
                error_code: *code,
                frame_type: *ty,
                reason,
            }),
            Spec::ApplicationClose(code, reason) => Frame::ApplicationClose(ApplicationClose {
                error_code: *code,
                reason,
            }),
            Spec::Datagram(data) => Frame::Datagram(Datagram { data }),
        }
    }
}

const MAX: u64 = VarInt::MAX.into_inner();

/// Varints spread over all four encoded sizes.
fn varint() -> impl Strategy<Value = VarInt> {
    prop_oneof![
        0u64..64,
        64u64..16_384,
        16_384u64..(1 << 30),
        (1u64 << 30)..=MAX
    ]
    .prop_map(VarInt::from_u64_unchecked)
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn dir() -> impl Strategy<Value = Dir> {
    prop_oneof![Just(Dir::Bi), Just(Dir::Uni)]
}

fn ecn() -> impl Strategy<Value = Option<EcnCounts>> {
    proptest::option::of(
        (varint(), varint(), varint()).prop_map(|(ect0, ect1, ce)| EcnCounts { ect0, ect1, ce }),
    )
}

/// Ranges largest first with at least one missing packet between them.
fn ack_ranges() -> impl Strategy<Value = Vec<RangeInclusive<u64>>> {
    let largest = prop_oneof![0u64..5_000, 0u64..=MAX];
    let step = prop_oneof![0u64..100, 0u64..(1 << 20)];
    (largest, step.clone(), vec((step.clone(), step), 0..30)).prop_map(|(largest, first, rest)| {
        let mut smallest = largest.saturating_sub(first);
        let mut ranges = vec![smallest..=largest];
        for (gap, len) in rest {
            let Some(top) = smallest.checked_sub(gap).and_then(|x| x.checked_sub(2)) else {
                break;
            };
            smallest = top.saturating_sub(len);
            ranges.push(smallest..=top);
        }
        ranges
    })
}

fn encoded_ack(ranges: &[RangeInclusive<u64>], delay: VarInt, ecn: Option<EcnCounts>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_ack(ranges.iter().cloned(), delay, ecn, &mut out);
    out
}

fn cid() -> impl Strategy<Value = ConnectionId> {
    vec(any::<u8>(), 1..=20).prop_map(|b| ConnectionId::new(&b).unwrap())
}

fn spec() -> impl Strategy<Value = Spec> {
    let plain = prop_oneof![
        (1usize..200).prop_map(Frame::Padding),
        Just(Frame::Ping),
        (varint(), varint(), varint()).prop_map(|(id, error_code, final_size)| {
            Frame::ResetStream(ResetStream {
                id,
                error_code,
                final_size,
            })
        }),
        (varint(), varint())
            .prop_map(|(id, error_code)| Frame::StopSending(StopSending { id, error_code })),
        varint().prop_map(|v| Frame::MaxData(MaxData(v))),
        (varint(), varint()).prop_map(|(id, max)| Frame::MaxStreamData(MaxStreamData { id, max })),
        (dir(), 0..=MAX_STREAM_COUNT).prop_map(|(dir, c)| Frame::MaxStreams(MaxStreams {
            dir,
            count: VarInt::from_u64_unchecked(c)
        })),
        varint().prop_map(|v| Frame::DataBlocked(DataBlocked(v))),
        (varint(), varint())
            .prop_map(|(id, limit)| { Frame::StreamDataBlocked(StreamDataBlocked { id, limit }) }),
        (dir(), 0..=MAX_STREAM_COUNT).prop_map(|(dir, l)| Frame::StreamsBlocked(StreamsBlocked {
            dir,
            limit: VarInt::from_u64_unchecked(l)
        })),
        (varint(), varint(), cid(), any::<[u8; 16]>()).prop_map(|(a, b, id, reset_token)| {
            Frame::NewConnectionId(NewConnectionId {
                sequence: a.max(b),
                retire_prior_to: a.min(b),
                id,
                reset_token,
            })
        }),
        varint().prop_map(|sequence| Frame::RetireConnectionId(RetireConnectionId { sequence })),
        any::<[u8; 8]>().prop_map(|d| Frame::PathChallenge(PathChallenge(d))),
        any::<[u8; 8]>().prop_map(|d| Frame::PathResponse(PathResponse(d))),
        Just(Frame::HandshakeDone),
    ];
    prop_oneof![
        plain.prop_map(Spec::Plain),
        (ack_ranges(), varint(), ecn())
            .prop_map(|(ranges, delay, ecn)| Spec::Ack(encoded_ack(&ranges, delay, ecn))),
        (varint(), bytes(100)).prop_map(|(offset, data)| {
            let offset = offset.into_inner().min(MAX - data.len() as u64);
            Spec::Crypto(VarInt::from_u64_unchecked(offset), data)
        }),
        vec(any::<u8>(), 1..100).prop_map(Spec::NewToken),
        (varint(), varint(), any::<bool>(), bytes(100)).prop_map(|(id, offset, fin, data)| {
            let offset = offset.into_inner().min(MAX - data.len() as u64);
            Spec::Stream(id, VarInt::from_u64_unchecked(offset), fin, data)
        }),
        (varint(), varint(), bytes(100)).prop_map(|(code, ty, reason)| Spec::ConnectionClose(
            code,
            FrameType::from(ty),
            reason
        )),
        (varint(), bytes(100)).prop_map(|(code, reason)| Spec::ApplicationClose(code, reason)),
        bytes(100).prop_map(Spec::Datagram),
    ]
}

/// Merges adjacent PADDING, as decoding does.
fn normalize<'a>(frames: impl IntoIterator<Item = Frame<'a>>) -> Vec<Frame<'a>> {
    let mut out: Vec<Frame<'a>> = Vec::new();
    for f in frames {
        match (out.last_mut(), f) {
            (Some(Frame::Padding(n)), Frame::Padding(m)) => *n += m,
            (_, f) => out.push(f),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn every_frame_roundtrips_with_exact_encoded_len(spec in spec()) {
        let frame = spec.frame();
        let mut buf = Vec::new();
        frame.encode(&mut buf);
        prop_assert_eq!(buf.len(), frame.encoded_len());
        // The type is written as the shortest varint and matches ty().
        let mut r = Reader::new(&buf);
        let (ty, ty_len) = VarInt::decode_with_len(&mut r).unwrap();
        prop_assert_eq!(FrameType::from(ty), frame.ty());
        prop_assert_eq!(ty_len, frame.ty().size());
        let mut it = Iter::new(&buf);
        prop_assert_eq!(it.next(), Some(Ok(frame)));
        prop_assert_eq!(it.next(), None);
    }

    #[test]
    fn frame_sequences_roundtrip(specs in vec(spec(), 1..12)) {
        let frames: Vec<_> = specs.iter().map(Spec::frame).collect();
        let mut buf = Vec::new();
        for f in &frames {
            f.encode(&mut buf);
        }
        prop_assert_eq!(buf.len(), frames.iter().map(Frame::encoded_len).sum::<usize>());
        let decoded: Result<Vec<_>, _> = Iter::new(&buf).collect();
        prop_assert_eq!(decoded.unwrap(), normalize(frames));
    }

    #[test]
    fn ack_ranges_roundtrip_largest_first(
        ranges in ack_ranges(), delay in varint(), ecn in ecn(),
    ) {
        let buf = encoded_ack(&ranges, delay, ecn);
        prop_assert_eq!(buf.len(), ack_encoded_len(ranges.iter().cloned(), delay, ecn));
        let Frame::Ack(ack) = decode(&buf).unwrap() else { unreachable!() };
        prop_assert_eq!(ack.ranges().collect::<Vec<_>>(), ranges.clone());
        prop_assert_eq!(ack.ranges().len(), ranges.len());
        prop_assert_eq!(ack.range_count(), ranges.len());
        prop_assert_eq!(ack.largest(), *ranges[0].end());
        prop_assert_eq!(ack.smallest(), *ranges[ranges.len() - 1].start());
        prop_assert_eq!(ack.ack_delay(), delay.into_inner());
        prop_assert_eq!(ack.ecn(), ecn);
        let mut again = Vec::new();
        ack.encode(&mut again);
        prop_assert_eq!(again, buf);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(payload in bytes(600)) {
        check_arbitrary(&payload)?;
    }

    #[test]
    fn decoding_corrupted_frames_never_panics(
        specs in vec(spec(), 1..6),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = Vec::new();
        for s in &specs {
            s.frame().encode(&mut buf);
        }
        for (at, byte) in edits {
            let i = at.index(buf.len());
            buf[i] = byte;
        }
        buf.truncate(cut.index(buf.len() + 1));
        check_arbitrary(&buf)?;
    }
}

/// Decodes `payload` fully; every frame that decodes re-encodes to bytes
/// that decode to the same frame, of exactly `encoded_len()` bytes.
fn check_arbitrary(payload: &[u8]) -> Result<(), TestCaseError> {
    let mut consumed_ok = true;
    for item in Iter::new(payload) {
        prop_assert!(consumed_ok, "Iter continued after an error");
        match item {
            Ok(frame) => {
                if let Frame::Ack(ack) = &frame {
                    prop_assert_eq!(ack.ranges().count(), ack.range_count());
                }
                let mut buf = Vec::new();
                frame.encode(&mut buf);
                prop_assert_eq!(buf.len(), frame.encoded_len());
                prop_assert_eq!(decode(&buf), Ok(frame));
            }
            Err(_) => consumed_ok = false,
        }
    }
    Ok(())
}
