//! A received UDP datagram, processed as far as the endpoint's receive path
//! exists today.
//!
//! Input: one byte giving the local connection ID length (mod 21), then the
//! datagram. Every coalesced packet is split off with `Packets`; Initial
//! packets are unprotected with the Initial keys derived from their DCID, as
//! a server would, and their frames decoded and checked against RFC 9000
//! Table 3; Retry packets have their integrity tag checked; and the bytes
//! after every packet's `pn_offset` go through the frame decoder too, so it is
//! exercised even without valid packet protection. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use quiver_proto::crypto::{initial_keys, verify_retry_integrity};
use quiver_proto::frame::{self, Frame};
use quiver_proto::packet::{
    PacketType, Packets, Parsed, PartialPacket, TruncatedPacketNumber, header,
};
use quiver_proto::{ConnectionId, MAX_CID_SIZE, Side};

/// The largest UDP payload (RFC 9000 §18.2, max_udp_payload_size limit).
const MAX_UDP_PAYLOAD: usize = 65527;

/// The Original Destination Connection ID assumed for Retry packets: the one
/// of RFC 9001 Appendix A, so the A.4 Retry in the corpus verifies.
const RETRY_ODCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

fuzz_target!(|data: &[u8]| {
    let Some((&cid_len, datagram)) = data.split_first() else {
        return;
    };
    let local_cid_len = usize::from(cid_len) % (MAX_CID_SIZE + 1);
    if datagram.len() > MAX_UDP_PAYLOAD {
        return;
    }
    // One scratch buffer for unprotecting packets in place, as the endpoint
    // does with its receive buffer.
    let mut scratch = [0u8; MAX_UDP_PAYLOAD];

    let mut end_of_previous = 0;
    for packet in Packets::new(datagram, local_cid_len) {
        let Ok(packet) = packet else { break };
        // Packets are contiguous and inside the datagram.
        assert_eq!(packet.offset, end_of_previous);
        assert!(packet.offset < datagram.len());
        let rest = &datagram[packet.offset..];
        match &packet.parsed {
            Parsed::UnsupportedVersion(u) => {
                assert!(u.dst_cid.end <= rest.len() && u.src_cid.end <= rest.len());
                assert!(u.dst_cid.start <= u.dst_cid.end && u.src_cid.start <= u.src_cid.end);
                let _ = (&rest[u.dst_cid.clone()], &rest[u.src_cid.clone()]);
                break;
            }
            Parsed::Packet(p) => {
                check_bounds(p, rest.len());
                let bytes = &rest[..p.len];
                process(p, bytes, &mut scratch);
                end_of_previous = packet.offset + p.len;
            }
        }
    }
});

fn check_bounds(p: &PartialPacket, available: usize) {
    assert!(p.len <= available, "packet runs past the datagram");
    assert!(p.pn_offset <= p.len, "pn_offset past the packet");
    assert!(p.token.start <= p.token.end && p.token.end <= p.pn_offset);
    assert!(p.dst_cid.len() <= MAX_CID_SIZE && p.src_cid.len() <= MAX_CID_SIZE);
    if p.is_protected() {
        // Room for the packet number and the header-protection sample.
        assert!(p.len - p.pn_offset >= 4 + 16);
    }
}

fn process(p: &PartialPacket, bytes: &[u8], scratch: &mut [u8; MAX_UDP_PAYLOAD]) {
    match p.ty {
        PacketType::Initial => open_initial(p, bytes, scratch),
        PacketType::Retry => {
            let version = p.version.expect("Retry has a version");
            let odcid = ConnectionId::new(&RETRY_ODCID).expect("8-byte CID");
            let _ = verify_retry_integrity(version, &odcid, bytes);
        }
        PacketType::VersionNegotiation => {
            let tail = &bytes[p.pn_offset..];
            assert_eq!(tail.len() % 4, 0);
            assert_eq!(
                header::version_negotiation_versions(tail).count(),
                tail.len() / 4
            );
        }
        PacketType::ZeroRtt | PacketType::Handshake | PacketType::OneRtt => {}
    }
    // Whatever the packet type: the frame decoder on the still-protected
    // bytes, which are as arbitrary as a decrypted payload.
    decode_frames(&bytes[p.pn_offset..], p.ty);
}

/// Removes header and packet protection from a copy of an Initial packet
/// with the client's Initial keys, as a server does, and decodes its frames.
fn open_initial(p: &PartialPacket, bytes: &[u8], scratch: &mut [u8; MAX_UDP_PAYLOAD]) {
    let version = p.version.expect("Initial has a version");
    let keys = initial_keys(version, &p.dst_cid, Side::Server);
    let buf = &mut scratch[..bytes.len()];
    buf.copy_from_slice(bytes);
    let Ok(pn_len) = keys.remote.header.remove(buf, p.pn_offset) else {
        return;
    };
    assert!((1..=4).contains(&pn_len));
    assert_eq!(pn_len, header::pn_len(buf[0]));
    let header_len = p.pn_offset + pn_len;
    let pn = TruncatedPacketNumber::from_wire(&buf[p.pn_offset..header_len]).expand(None);
    let Ok(plain_len) = keys.remote.packet.open(pn, buf, header_len) else {
        return;
    };
    assert!(header_len + plain_len <= bytes.len());
    let _ = header::reserved_bits_ok(buf[0]);
    let payload = &buf[header_len..header_len + plain_len];
    let _ = frame::check_not_empty(payload);
    decode_frames(payload, PacketType::Initial);
}

fn decode_frames(payload: &[u8], packet: PacketType) {
    for f in frame::Iter::new(payload) {
        let Ok(f) = f else { break };
        let _ = frame::is_allowed(f.ty(), packet);
        let _ = frame::is_allowed_strict(f.ty(), packet);
        let _ = f.is_ack_eliciting();
        if let Frame::Ack(ack) = f {
            assert_eq!(ack.ranges().count(), ack.range_count());
        }
    }
}
