//! A million pseudo-random datagrams through the receive-side decoders:
//! datagram splitting, header decoding, frame decoding and transport
//! parameter decoding. None of them may panic, and every offset they report
//! must lie inside the input.
//!
//! The generator is a fixed-seed SplitMix64, so a failure reproduces exactly:
//! the assertion messages name the datagram's index.

use quiver_proto::coding::Reader;
use quiver_proto::frame::{self, Frame};
use quiver_proto::packet::{Header, PacketType, Packets, Parsed, PartialPacket, header};
use quiver_proto::packet::{TruncatedPacketNumber, UnsupportedVersion};
use quiver_proto::transport_params::TransportParameters;
use quiver_proto::{ConnectionId, MAX_CID_SIZE, Side, Version};

const DATAGRAMS: usize = 1_000_000;
const MAX_SIZE: usize = 1500;
const SEED: u64 = 0x5eed_f00d_9e1c_0de5;

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny, fast, and good enough to
/// spread inputs over the decoders' branches.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for `n` far below 2^64.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    fn cid(&mut self) -> ConnectionId {
        let mut bytes = [0u8; MAX_CID_SIZE];
        let len = self.below(MAX_CID_SIZE + 1);
        self.fill(&mut bytes[..len]);
        ConnectionId::new(&bytes[..len]).expect("at most 20 bytes")
    }
}

/// A version number a sender might plausibly use.
fn plausible_version(rng: &mut SplitMix64) -> u32 {
    match rng.below(8) {
        0..=2 => Version::V1.number(),
        3..=4 => Version::V2.number(),
        5 => 0,                                               // Version Negotiation
        6 => 0x0a0a_0a0a | (rng.next() as u32 & 0xf0f0_f0f0), // reserved
        _ => rng.next() as u32,
    }
}

/// A varint of any length holding `value` (or a random one if it does not
/// fit), so Length and token-length fields are sometimes right.
fn push_varint(buf: &mut Vec<u8>, value: u64, rng: &mut SplitMix64) {
    let sizes: &[usize] = match value {
        0..=0x3f => &[1, 2, 4, 8],
        0x40..=0x3fff => &[2, 4, 8],
        0x4000..=0x3fff_ffff => &[4, 8],
        _ => &[8],
    };
    let size = sizes[rng.below(sizes.len())];
    let value = value & 0x3fff_ffff_ffff_ffff;
    let tag = (size.trailing_zeros() as u64) << (8 * size - 2);
    buf.extend_from_slice(&(value | tag).to_be_bytes()[8 - size..]);
}

/// Random bytes after a plausible long or short header: a first byte with
/// the fixed bit (usually), a known version (usually), CID lengths that
/// are mostly valid, and token and Length fields that are sometimes right.
fn plausible(rng: &mut SplitMix64, size: usize, buf: &mut Vec<u8>) -> usize {
    let local_cid_len = rng.below(MAX_CID_SIZE + 1);
    let mut first = rng.byte() | 0x40;
    if rng.chance(16) {
        first &= !0x40;
    }
    if rng.chance(4) {
        // Short header.
        buf.push(first & !0x80);
    } else {
        buf.push(first | 0x80);
        buf.extend_from_slice(&plausible_version(rng).to_be_bytes());
        for _ in 0..2 {
            let len = if rng.chance(16) {
                rng.below(256)
            } else {
                rng.below(MAX_CID_SIZE + 1)
            };
            buf.push(len as u8);
            let start = buf.len();
            buf.resize(start + len, 0);
            rng.fill(&mut buf[start..]);
        }
        if rng.chance(2) {
            // A token length, then a Length field, both small.
            let token = rng.below(24) as u64;
            push_varint(buf, token, rng);
            let start = buf.len();
            buf.resize(start + token as usize, 0);
            rng.fill(&mut buf[start..]);
            let rest = size.saturating_sub(buf.len() + 2) as u64;
            let length = if rng.chance(2) {
                rest
            } else {
                rng.below(2 * rest as usize + 64) as u64
            };
            push_varint(buf, length, rng);
        }
    }
    let start = buf.len();
    if size > start {
        buf.resize(size, 0);
        rng.fill(&mut buf[start..]);
    }
    local_cid_len
}

/// A correctly encoded Initial, 0-RTT, Handshake or 1-RTT packet of about
/// `size` bytes, then possibly coalesced with a copy of itself and
/// mutated. Returns the local CID length to decode with.
fn mutated_valid(rng: &mut SplitMix64, size: usize, buf: &mut Vec<u8>) -> usize {
    let version = if rng.chance(2) {
        Version::V1
    } else {
        Version::V2
    };
    let dst_cid = rng.cid();
    let src_cid = rng.cid();
    let mut token = [0u8; 32];
    let token = &mut token[..rng.below(33)];
    rng.fill(token);
    let number = TruncatedPacketNumber::with_len(rng.next() >> 2, 1 + rng.below(4));
    let header = match rng.below(4) {
        0 => Header::Initial {
            version,
            dst_cid,
            src_cid,
            token,
            number,
        },
        1 => Header::Long {
            ty: PacketType::ZeroRtt,
            version,
            dst_cid,
            src_cid,
            number,
        },
        2 => Header::Long {
            ty: PacketType::Handshake,
            version,
            dst_cid,
            src_cid,
            number,
        },
        _ => Header::Short {
            spin: rng.chance(2),
            key_phase: rng.chance(2),
            dst_cid,
            number,
        },
    };
    let encoded = header.encode(buf);
    assert_eq!(buf.len(), header.encoded_len());
    // Payload and tag: at least the 16-byte sample past a 4-byte packet
    // number, as a real sender pads to.
    let body = size.saturating_sub(buf.len()).max(20);
    let payload_start = buf.len();
    if rng.chance(2) {
        frame_soup(rng, buf, body);
    } else {
        buf.resize(payload_start + body, 0);
        rng.fill(&mut buf[payload_start..]);
    }
    assert!(encoded.finish(buf, body));

    // Unmutated, it decodes to exactly what was written.
    let decoded = header::decode(buf, dst_cid.len()).expect("valid header decodes");
    let Parsed::Packet(p) = decoded else {
        panic!("{version:?} decoded as unsupported");
    };
    assert_eq!(p.ty, header.ty());
    assert_eq!(p.dst_cid, dst_cid);
    assert_eq!(p.pn_offset, encoded.pn_offset);
    assert_eq!(p.len, buf.len());
    if p.ty != PacketType::OneRtt {
        assert_eq!(p.src_cid, src_cid);
    }

    if rng.chance(4) && p.ty != PacketType::OneRtt {
        let copy = buf.clone();
        buf.extend_from_slice(&copy);
    }
    for _ in 0..rng.below(5) {
        let at = rng.below(buf.len());
        match rng.below(3) {
            0 => buf[at] ^= 1 << rng.below(8),
            1 => buf[at] = rng.byte(),
            _ => buf.truncate(at.max(1)),
        }
    }
    if rng.chance(8) {
        dst_cid.len()
    } else {
        rng.below(MAX_CID_SIZE + 1)
    }
}

/// `len` bytes that look like frames: known frame types, each followed by a
/// few small one-byte varints and some random bytes, so that the frame
/// decoders get past their first field far more often than on noise.
fn frame_soup(rng: &mut SplitMix64, buf: &mut Vec<u8>, len: usize) {
    const TYPES: [u8; 33] = [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
        0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
        0x1e, 0x30, 0x31,
    ];
    let end = buf.len() + len;
    while buf.len() < end {
        buf.push(TYPES[rng.below(TYPES.len())]);
        for _ in 0..rng.below(6) {
            buf.push(rng.byte() & 0x0f);
        }
        for _ in 0..rng.below(3) {
            buf.push(rng.byte());
        }
    }
    buf.truncate(end);
}

/// Checks what `header::decode` said about `buf`, and returns where the
/// bytes after the header start.
fn check_header(i: usize, buf: &[u8], parsed: &Parsed) -> usize {
    match parsed {
        Parsed::Packet(p) => {
            check_packet(i, buf, p);
            p.pn_offset
        }
        Parsed::UnsupportedVersion(UnsupportedVersion {
            version,
            dst_cid,
            src_cid,
        }) => {
            assert!(Version::from_number(*version).is_none() && *version != 0);
            assert!(
                dst_cid.start <= dst_cid.end && dst_cid.end <= buf.len(),
                "#{i}"
            );
            assert!(
                src_cid.start <= src_cid.end && src_cid.end <= buf.len(),
                "#{i}"
            );
            assert!(dst_cid.end < src_cid.start, "#{i}");
            src_cid.end
        }
    }
}

fn check_packet(i: usize, buf: &[u8], p: &PartialPacket) {
    assert!(
        p.len <= buf.len(),
        "#{i}: packet of {} in {}",
        p.len,
        buf.len()
    );
    assert!(p.pn_offset <= p.len, "#{i}: pn_offset {}", p.pn_offset);
    assert!(
        p.token.start <= p.token.end && p.token.end <= p.pn_offset,
        "#{i}"
    );
    assert!(p.dst_cid.len() <= MAX_CID_SIZE && p.src_cid.len() <= MAX_CID_SIZE);
    assert_eq!(p.is_long(), buf[0] & 0x80 != 0);
    let tail = p.len - p.pn_offset;
    match p.ty {
        PacketType::VersionNegotiation => {
            assert!(tail > 0 && tail % 4 == 0, "#{i}: version list of {tail}");
            let versions = header::version_negotiation_versions(&buf[p.pn_offset..p.len]);
            assert_eq!(versions.count(), tail / 4);
        }
        PacketType::Retry => assert_eq!(tail, header::RETRY_INTEGRITY_TAG_LEN, "#{i}"),
        _ => assert!(tail >= 20, "#{i}: {tail} bytes after the header"),
    }
}

/// Decodes every frame in `payload`, checking each stays inside it.
fn check_frames(i: usize, payload: &[u8]) {
    let mut r = Reader::new(payload);
    while !r.is_empty() {
        let before = r.position();
        let Ok(f) = Frame::decode(&mut r) else { break };
        assert!(
            r.position() > before && r.position() <= payload.len(),
            "#{i}"
        );
        if let Frame::Ack(ack) = f {
            assert_eq!(ack.ranges().count(), ack.range_count(), "#{i}");
        }
    }
    // The iterator agrees with decoding by hand, and stops after an error.
    let mut frames = frame::Iter::new(payload);
    while let Some(Ok(_)) = frames.next() {}
    assert!(frames.next().is_none());
}

fn check_transport_params(i: usize, bytes: &[u8]) {
    for side in [Side::Client, Side::Server] {
        if let Ok(params) = TransportParameters::decode(side, bytes) {
            assert_eq!(params.validate(), Ok(()), "#{i}");
        }
    }
}

#[test]
fn decoding_a_million_random_datagrams_never_panics() {
    let mut rng = SplitMix64(SEED);
    let mut buf = Vec::with_capacity(2 * MAX_SIZE + 256);
    let mut packets_seen = 0usize;
    for i in 0..DATAGRAMS {
        buf.clear();
        let size = rng.below(MAX_SIZE + 1);
        let local_cid_len = match i % 4 {
            0 => {
                buf.resize(size, 0);
                rng.fill(&mut buf);
                rng.below(MAX_CID_SIZE + 1)
            }
            1 | 2 => plausible(&mut rng, size, &mut buf),
            _ => mutated_valid(&mut rng, size, &mut buf),
        };
        let datagram = &buf[..];

        // The datagram's packets: contiguous, inside the datagram, in order.
        let mut next_offset = 0;
        for packet in Packets::new(datagram, local_cid_len) {
            let Ok(packet) = packet else { break };
            packets_seen += 1;
            assert_eq!(packet.offset, next_offset, "#{i}");
            assert!(packet.offset < datagram.len(), "#{i}");
            let rest = &datagram[packet.offset..];
            let after_header = check_header(i, rest, &packet.parsed);
            let end = match &packet.parsed {
                Parsed::Packet(p) => p.len,
                Parsed::UnsupportedVersion(_) => rest.len(),
            };
            check_frames(i, &rest[after_header..end]);
            // And from after the packet number, as if protection were off.
            if let Parsed::Packet(p) = &packet.parsed {
                let payload = p.pn_offset + header::pn_len(p.first_byte);
                if p.is_protected() && payload <= p.len {
                    check_frames(i, &rest[payload..p.len]);
                }
            }
            next_offset = packet.offset + packet.len().min(rest.len());
        }
        assert!(next_offset <= datagram.len(), "#{i}");

        // The first packet's header, decoded directly, agrees with Packets,
        // and a header at a random offset decodes without panicking.
        let direct = header::decode(datagram, local_cid_len);
        match (Packets::new(datagram, local_cid_len).next(), &direct) {
            (None, _) => assert!(datagram.is_empty(), "#{i}"),
            (Some(Ok(first)), Ok(parsed)) => assert_eq!(&first.parsed, parsed, "#{i}"),
            (Some(Err(a)), Err(b)) => assert_eq!(&a, b, "#{i}"),
            (first, _) => panic!("#{i}: Packets gave {first:?}, decode {direct:?}"),
        }
        if !datagram.is_empty() {
            let at = rng.below(datagram.len());
            if let Ok(parsed) = header::decode(&datagram[at..], local_cid_len) {
                check_header(i, &datagram[at..], &parsed);
            }
        }
        if let Some(cid) = header::first_dst_cid(datagram, local_cid_len) {
            assert!(cid.len() <= datagram.len());
        }

        // The same bytes as a transport parameters extension (a random
        // suffix, so that not every input starts with a packet header).
        let from = rng.below(datagram.len().min(64) + 1);
        check_transport_params(i, &datagram[from..]);
    }
    // The generator does reach the packet decoders.
    assert!(packets_seen > DATAGRAMS / 4, "only {packets_seen} packets");
}
