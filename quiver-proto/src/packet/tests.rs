//! Header and datagram tests: round trips, the RFC's bit rules, hostile input.

use proptest::prelude::*;

use super::header::{self, Header, HeaderError, Parsed};
use super::*;
use crate::{ConnectionId, Version};

fn cid(b: &[u8]) -> ConnectionId {
    ConnectionId::new(b).unwrap()
}

/// Writes `header`, a payload of `payload_len` bytes and a 16-byte tag,
/// fills in Length, and returns the bytes and where the packet number is.
fn build(header: &Header<'_>, payload_len: usize) -> (Vec<u8>, PartialEncode) {
    let mut buf = Vec::new();
    let enc = header.encode(&mut buf);
    assert_eq!(buf.len(), header.encoded_len());
    buf.resize(buf.len() + payload_len + 16, 0xaa);
    assert!(enc.finish(&mut buf, payload_len + 16));
    (buf, enc)
}

fn parse(buf: &[u8], local_cid_len: usize) -> PartialPacket {
    match header::decode(buf, local_cid_len).unwrap() {
        Parsed::Packet(p) => p,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn initial_header_roundtrips_in_v1_and_v2() {
    for version in Version::SUPPORTED {
        let h = Header::Initial {
            version,
            dst_cid: cid(&[1; 8]),
            src_cid: cid(&[2; 5]),
            token: b"token",
            number: TruncatedPacketNumber::with_len(7, 2),
        };
        let (buf, enc) = build(&h, 30);
        let p = parse(&buf, 0);
        assert_eq!(p.ty, PacketType::Initial);
        assert_eq!(p.version, Some(version));
        assert_eq!(p.dst_cid, cid(&[1; 8]));
        assert_eq!(p.src_cid, cid(&[2; 5]));
        assert_eq!(&buf[p.token.clone()], b"token");
        assert_eq!(p.pn_offset, enc.pn_offset);
        assert_eq!(p.len, buf.len());
        assert_eq!(header::pn_len(p.first_byte), 2);
    }
}

/// RFC 9369 §3.2: v2 long header types are Initial 0b01, 0-RTT 0b10,
/// Handshake 0b11, Retry 0b00.
#[test]
fn v2_long_packet_type_bits_differ_from_v1() {
    use PacketType::*;
    let bits = |v, t| header::long_type_bits(v, t).unwrap() >> 4;
    assert_eq!(
        [Initial, ZeroRtt, Handshake, Retry].map(|t| bits(Version::V1, t)),
        [0, 1, 2, 3]
    );
    assert_eq!(
        [Initial, ZeroRtt, Handshake, Retry].map(|t| bits(Version::V2, t)),
        [1, 2, 3, 0]
    );
    for version in Version::SUPPORTED {
        for ty in [ZeroRtt, Handshake] {
            let h = Header::Long {
                ty,
                version,
                dst_cid: cid(&[3; 4]),
                src_cid: ConnectionId::EMPTY,
                number: TruncatedPacketNumber::with_len(1, 1),
            };
            let (buf, _) = build(&h, 20);
            assert_eq!(parse(&buf, 0).ty, ty, "{version:?}");
        }
    }
}

#[test]
fn short_header_roundtrips_with_spin_and_key_phase() {
    let h = Header::Short {
        spin: true,
        key_phase: true,
        dst_cid: cid(&[9; 8]),
        number: TruncatedPacketNumber::with_len(0x1234, 4),
    };
    let (buf, enc) = build(&h, 10);
    assert_eq!(buf[0], 0x40 | 0x20 | 0x04 | 0x03);
    let p = parse(&buf, 8);
    assert_eq!(p.ty, PacketType::OneRtt);
    assert_eq!(p.dst_cid, cid(&[9; 8]));
    assert_eq!(p.pn_offset, enc.pn_offset);
    assert!(header::key_phase(p.first_byte));
    assert!(header::reserved_bits_ok(p.first_byte));
    assert!(!header::reserved_bits_ok(p.first_byte | 0x08));
    assert!(!header::reserved_bits_ok(0xc0 | 0x04));
}

#[test]
fn retry_splits_token_and_tag() {
    let mut buf = Vec::new();
    header::encode_retry(
        &mut buf,
        Version::V2,
        &cid(&[1; 4]),
        &cid(&[2; 8]),
        b"tok",
        0,
    );
    buf.extend_from_slice(&[0xee; 16]);
    let p = parse(&buf, 0);
    assert_eq!(p.ty, PacketType::Retry);
    assert_eq!(&buf[p.token.clone()], b"tok");
    assert_eq!(&buf[p.pn_offset..], &[0xee; 16]);
    // Shorter than a tag: malformed.
    assert_eq!(
        header::decode(&buf[..buf.len() - 14], 0),
        Err(HeaderError::MalformedRetry)
    );
}

#[test]
fn version_negotiation_echoes_cids_and_lists_versions() {
    let mut buf = Vec::new();
    header::encode_version_negotiation(&mut buf, &[1; 8], &[2; 3], &[1, 0x6b3343cf, 0x1a2a3a4a], 5);
    // RFC 9000 §17.2.1: version zero, DCID from their SCID and vice versa.
    assert_eq!(&buf[1..5], &[0; 4]);
    let p = parse(&buf, 0);
    assert_eq!(p.ty, PacketType::VersionNegotiation);
    assert_eq!(p.dst_cid, cid(&[2; 3]));
    assert_eq!(p.src_cid, cid(&[1; 8]));
    let versions: Vec<u32> = header::version_negotiation_versions(&buf[p.pn_offset..]).collect();
    assert_eq!(versions, [1, 0x6b3343cf, 0x1a2a3a4a]);
    // A list that is not a whole number of versions is malformed.
    assert_eq!(
        header::decode(&buf[..buf.len() - 1], 0),
        Err(HeaderError::MalformedVersionNegotiation)
    );
    assert!(Version::is_reserved(0x1a2a3a4a));
}

#[test]
fn unknown_version_exposes_long_cids_for_negotiation() {
    // RFC 9000 §17.2: servers SHOULD read longer CIDs of other versions.
    let mut buf = vec![0xc0, 0xff, 0x00, 0x00, 0x1d, 40];
    buf.extend_from_slice(&[7; 40]);
    buf.push(30);
    buf.extend_from_slice(&[8; 30]);
    buf.resize(1200, 0);
    match header::decode(&buf, 0).unwrap() {
        Parsed::UnsupportedVersion(u) => {
            assert_eq!(u.version, 0xff00001d);
            assert_eq!(&buf[u.dst_cid], &[7; 40]);
            assert_eq!(&buf[u.src_cid], &[8; 30]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn v1_cid_over_20_bytes_is_dropped() {
    let mut buf = vec![0xc0, 0, 0, 0, 1, 21];
    buf.extend_from_slice(&[7; 21]);
    buf.push(0);
    buf.resize(100, 0);
    assert_eq!(
        header::decode(&buf, 0),
        Err(HeaderError::ConnectionIdTooLong)
    );
}

#[test]
fn fixed_bit_zero_is_dropped() {
    let h = Header::Initial {
        version: Version::V1,
        dst_cid: cid(&[1; 8]),
        src_cid: ConnectionId::EMPTY,
        token: &[],
        number: TruncatedPacketNumber::with_len(0, 1),
    };
    let (mut buf, _) = build(&h, 30);
    buf[0] &= !header::FIXED_BIT;
    assert_eq!(header::decode(&buf, 0), Err(HeaderError::FixedBitZero));
    let mut short = vec![0x01u8; 40];
    short[0] = 0x00;
    assert_eq!(header::decode(&short, 0), Err(HeaderError::FixedBitZero));
}

#[test]
fn length_past_datagram_end_is_truncated() {
    let h = Header::Long {
        ty: PacketType::Handshake,
        version: Version::V1,
        dst_cid: cid(&[1; 8]),
        src_cid: ConnectionId::EMPTY,
        number: TruncatedPacketNumber::with_len(0, 1),
    };
    let (buf, _) = build(&h, 30);
    assert_eq!(
        header::decode(&buf[..buf.len() - 1], 0),
        Err(HeaderError::Truncated)
    );
}

fn handshake(dcid: &[u8], payload: usize) -> Vec<u8> {
    build(
        &Header::Long {
            ty: PacketType::Handshake,
            version: Version::V1,
            dst_cid: cid(dcid),
            src_cid: cid(&[5; 4]),
            number: TruncatedPacketNumber::with_len(0, 1),
        },
        payload,
    )
    .0
}

/// RFC 9000 §12.2: coalesced packets are found by their Length fields; a
/// short header runs to the end.
#[test]
fn coalesced_packets_are_split_in_order() {
    let mut d = build(
        &Header::Initial {
            version: Version::V1,
            dst_cid: cid(&[1; 8]),
            src_cid: cid(&[5; 4]),
            token: &[],
            number: TruncatedPacketNumber::with_len(0, 1),
        },
        40,
    )
    .0;
    let first = d.len();
    d.extend(handshake(&[1; 8], 25));
    let second = d.len();
    d.extend(
        build(
            &Header::Short {
                spin: false,
                key_phase: false,
                dst_cid: cid(&[1; 8]),
                number: TruncatedPacketNumber::with_len(0, 1),
            },
            30,
        )
        .0,
    );
    let packets: Vec<_> = Packets::new(&d, 8).map(Result::unwrap).collect();
    let offsets: Vec<_> = packets.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, [0, first, second]);
    let types: Vec<_> = packets
        .iter()
        .map(|p| match &p.parsed {
            Parsed::Packet(p) => p.ty,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        types,
        [
            PacketType::Initial,
            PacketType::Handshake,
            PacketType::OneRtt
        ]
    );
}

/// RFC 9000 §12.2: "Receivers SHOULD ignore any subsequent packets with a
/// different Destination Connection ID than the first packet".
#[test]
fn coalesced_packet_with_other_dcid_is_ignored() {
    let mut d = handshake(&[1; 8], 25);
    d.extend(handshake(&[2; 8], 25));
    assert_eq!(Packets::new(&d, 8).count(), 1);
}

#[test]
fn garbage_after_a_packet_yields_one_error_then_stops() {
    let mut d = handshake(&[1; 8], 25);
    d.extend_from_slice(&[0, 0, 0]);
    let items: Vec<_> = Packets::new(&d, 8).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert!(items[1].is_err());
}

#[test]
fn first_dst_cid_reads_routing_prefix() {
    let d = handshake(&[3; 8], 25);
    assert_eq!(header::first_dst_cid(&d, 0), Some(&[3u8; 8][..]));
    assert_eq!(header::first_dst_cid(&[0x40, 1, 2], 2), Some(&[1u8, 2][..]));
    assert_eq!(header::first_dst_cid(&[0xc0, 0, 0], 0), None);
}

proptest! {
    #[test]
    fn decoding_arbitrary_datagrams_never_panics(
        d in proptest::collection::vec(any::<u8>(), 0..1500),
        cid_len in 0usize..=20,
    ) {
        for p in Packets::new(&d, cid_len) {
            let Ok(p) = p else { break };
            let offset = p.offset;
            if let Parsed::Packet(p) = p.parsed {
                prop_assert!(p.len <= d.len() - offset);
                prop_assert!(p.pn_offset <= p.len);
                prop_assert!(p.token.end <= p.len);
            }
        }
    }

    #[test]
    fn long_headers_roundtrip(
        v2: bool,
        ty in 0u8..3,
        dcid in proptest::collection::vec(any::<u8>(), 0..=20),
        scid in proptest::collection::vec(any::<u8>(), 0..=20),
        token in proptest::collection::vec(any::<u8>(), 0..64),
        pn: u32,
        pn_len in 1usize..=4,
        payload in 20usize..1200,
    ) {
        let version = if v2 { Version::V2 } else { Version::V1 };
        let number = TruncatedPacketNumber::with_len(pn.into(), pn_len);
        let h = match ty {
            0 => Header::Initial { version, dst_cid: cid(&dcid), src_cid: cid(&scid), token: &token, number },
            1 => Header::Long { ty: PacketType::ZeroRtt, version, dst_cid: cid(&dcid), src_cid: cid(&scid), number },
            _ => Header::Long { ty: PacketType::Handshake, version, dst_cid: cid(&dcid), src_cid: cid(&scid), number },
        };
        let (buf, enc) = build(&h, payload);
        let p = parse(&buf, 0);
        prop_assert_eq!(p.ty, h.ty());
        prop_assert_eq!(p.version, Some(version));
        prop_assert_eq!(&p.dst_cid[..], &dcid[..]);
        prop_assert_eq!(&p.src_cid[..], &scid[..]);
        prop_assert_eq!(p.pn_offset, enc.pn_offset);
        prop_assert_eq!(p.len, buf.len());
        let read = TruncatedPacketNumber::from_wire(&buf[p.pn_offset..p.pn_offset + header::pn_len(p.first_byte)]);
        prop_assert_eq!(read, number);
        if ty == 0 {
            prop_assert_eq!(&buf[p.token.clone()], &token[..]);
        }
    }
}

/// RFC 9287 §3: an endpoint that advertised grease_quic_bit accepts
/// packets whose QUIC bit is 0; others drop them (RFC 9000 §17.2).
#[test]
fn fixed_bit_zero_accepted_only_when_greasing() {
    let long = [
        &[0xc0 & !FIXED_BIT_FOR_TEST, 0, 0, 0, 1, 0, 0, 0, 0x16][..],
        &[0u8; 0x16],
    ]
    .concat();
    assert_eq!(header::decode(&long, 0), Err(HeaderError::FixedBitZero));
    match header::decode_with(&long, 0, true).unwrap() {
        Parsed::Packet(p) => assert_eq!(p.ty, PacketType::Initial),
        other => panic!("{other:?}"),
    }
    let short = [&[0x01u8, 9, 9, 9, 9][..], &[0u8; 24]].concat();
    assert_eq!(header::decode(&short, 4), Err(HeaderError::FixedBitZero));
    assert!(matches!(
        header::decode_with(&short, 4, true),
        Ok(Parsed::Packet(p)) if p.ty == PacketType::OneRtt
    ));
    assert_eq!(
        Packets::new(&short, 4).accept_fixed_bit_zero(true).count(),
        1
    );
    assert!(Packets::new(&short, 4).next().unwrap().is_err());
}

const FIXED_BIT_FOR_TEST: u8 = header::FIXED_BIT;
