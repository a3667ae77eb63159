//! Control messages (`cmsg(3)`) encoded and decoded in byte buffers by
//! safe code, so that the layout logic can be tested under Miri.
//!
//! Linux lays a control message out as a `struct cmsghdr` (`size_t
//! cmsg_len; int cmsg_level; int cmsg_type;`) followed by the data, and
//! pads every message to a multiple of `size_t`'s alignment (`CMSG_ALIGN`).
//! musl's header has a 32-bit `cmsg_len` beside 32 bits of padding placed
//! so that a native-endian `usize` written over both reads the same, so the
//! encoding below serves both C libraries.

use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libc::{c_int, c_uint};

use crate::EcnCodepoint;

/// `CMSG_ALIGN`: rounds up to the alignment of `size_t`.
pub(crate) const fn align(len: usize) -> usize {
    (len + size_of::<usize>() - 1) & !(size_of::<usize>() - 1)
}

/// `sizeof(struct cmsghdr)`, already aligned.
pub(crate) const HDR_LEN: usize = align(size_of::<usize>() + 2 * size_of::<c_int>());

/// `CMSG_LEN`: the `cmsg_len` of a message with `data_len` bytes of data.
pub(crate) const fn cmsg_len(data_len: usize) -> usize {
    HDR_LEN + data_len
}

/// `CMSG_SPACE`: the room a message with `data_len` bytes takes.
pub(crate) const fn cmsg_space(data_len: usize) -> usize {
    HDR_LEN + align(data_len)
}

/// `sizeof(struct in_pktinfo)`: `int ipi_ifindex; struct in_addr
/// ipi_spec_dst; struct in_addr ipi_addr;`.
pub(crate) const IN_PKTINFO_LEN: usize = size_of::<c_int>() + 4 + 4;

/// `sizeof(struct in6_pktinfo)`: `struct in6_addr ipi6_addr; unsigned int
/// ipi6_ifindex;`.
pub(crate) const IN6_PKTINFO_LEN: usize = 16 + size_of::<c_uint>();

/// Room for everything we send: a TOS/Traffic Class `int`, a GSO segment
/// size (`u16`) and a source address (`in6_pktinfo`, the larger one).
pub(crate) const SEND_SPACE: usize =
    cmsg_space(size_of::<c_int>()) + cmsg_space(size_of::<u16>()) + cmsg_space(IN6_PKTINFO_LEN);

/// Room for everything we receive: TOS/Traffic Class, GRO segment size,
/// the destination address (`in6_pktinfo`), and slack for messages we did
/// not ask for.
pub(crate) const RECV_SPACE: usize =
    2 * cmsg_space(size_of::<c_int>()) + cmsg_space(IN6_PKTINFO_LEN) + 64;

/// A control buffer aligned for `struct cmsghdr`.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct Buf<const N: usize>(pub(crate) [u8; N]);

impl<const N: usize> Buf<N> {
    pub(crate) const fn new() -> Self {
        Self([0; N])
    }
}

/// Writes control messages one after another into a buffer.
#[derive(Debug)]
pub(crate) struct Encoder<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Encoder<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Appends one message; false (and nothing written) if it does not fit.
    pub(crate) fn push(&mut self, level: c_int, ty: c_int, data: &[u8]) -> bool {
        let space = cmsg_space(data.len());
        if self.buf.len() - self.len < space {
            return false;
        }
        let msg = &mut self.buf[self.len..self.len + space];
        msg.fill(0);
        let (len_field, rest) = msg.split_at_mut(size_of::<usize>());
        len_field.copy_from_slice(&cmsg_len(data.len()).to_ne_bytes());
        let (level_field, rest) = rest.split_at_mut(size_of::<c_int>());
        level_field.copy_from_slice(&level.to_ne_bytes());
        rest[..size_of::<c_int>()].copy_from_slice(&ty.to_ne_bytes());
        msg[HDR_LEN..HDR_LEN + data.len()].copy_from_slice(data);
        self.len += space;
        true
    }

    /// The bytes written: the `msg_controllen` to pass.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// One decoded control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cmsg<'a> {
    pub(crate) level: c_int,
    pub(crate) ty: c_int,
    pub(crate) data: &'a [u8],
}

/// The control messages in `buf[..controllen]`, as `CMSG_FIRSTHDR` and
/// `CMSG_NXTHDR` walk them; a truncated or malformed message ends the walk.
#[derive(Debug, Clone)]
pub(crate) struct Iter<'a> {
    buf: &'a [u8],
}

impl<'a> Iter<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Cmsg<'a>;

    fn next(&mut self) -> Option<Cmsg<'a>> {
        if self.buf.len() < HDR_LEN {
            return None;
        }
        let (len_field, rest) = self.buf.split_at(size_of::<usize>());
        let len = usize::from_ne_bytes(len_field.try_into().ok()?);
        let (level_field, rest) = rest.split_at(size_of::<c_int>());
        let level = c_int::from_ne_bytes(level_field.try_into().ok()?);
        let ty = c_int::from_ne_bytes(rest[..size_of::<c_int>()].try_into().ok()?);
        if len < HDR_LEN || len > self.buf.len() {
            self.buf = &[];
            return None;
        }
        let data = &self.buf[HDR_LEN..len];
        let next = align(len).min(self.buf.len());
        self.buf = &self.buf[next..];
        Some(Cmsg { level, ty, data })
    }
}

/// What the control messages of a received datagram told.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecvInfo {
    pub(crate) ecn: Option<EcnCodepoint>,
    /// GRO: the size of each coalesced datagram.
    pub(crate) segment_size: Option<usize>,
    /// `IP_PKTINFO`/`IPV6_PKTINFO`: the address the datagram was sent to
    /// (IPv4-mapped addresses as IPv4).
    pub(crate) dst_ip: Option<IpAddr>,
}

/// An `int` or a single byte, as TOS values come (Linux delivers `IP_TOS`
/// as one byte and `IPV6_TCLASS` as an `int`).
fn int_or_byte(data: &[u8]) -> Option<c_int> {
    match data.len() {
        1 => Some(c_int::from(data[0])),
        n if n >= size_of::<c_int>() => Some(c_int::from_ne_bytes(
            data[..size_of::<c_int>()].try_into().ok()?,
        )),
        _ => None,
    }
}

/// Decodes the messages we ask the kernel for.
pub(crate) fn decode(control: &[u8]) -> RecvInfo {
    let mut info = RecvInfo::default();
    for msg in Iter::new(control) {
        match (msg.level, msg.ty) {
            (libc::IPPROTO_IP, libc::IP_TOS) | (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => {
                if let Some(tos) = int_or_byte(msg.data) {
                    info.ecn = EcnCodepoint::from_bits(tos as u8);
                }
            }
            // `in_pktinfo.ipi_addr`: the header's destination address
            // (`ipi_spec_dst` is the local address a reply would use, which
            // differs for broadcast and multicast).
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if msg.data.len() >= IN_PKTINFO_LEN => {
                let at = size_of::<c_int>() + 4;
                let octets: [u8; 4] = msg.data[at..at + 4].try_into().unwrap_or([0; 4]);
                info.dst_ip = Some(IpAddr::V4(Ipv4Addr::from(octets)));
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) if msg.data.len() >= IN6_PKTINFO_LEN => {
                let octets: [u8; 16] = msg.data[..16].try_into().unwrap_or([0; 16]);
                info.dst_ip = Some(Ipv6Addr::from(octets).to_canonical());
            }
            (libc::SOL_UDP, libc::UDP_GRO) => {
                info.segment_size = int_or_byte(msg.data)
                    .and_then(|s| usize::try_from(s).ok())
                    .filter(|&s| s > 0);
            }
            _ => {}
        }
    }
    info
}

/// What one send asks of the kernel besides the payload.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SendInfo {
    /// The ECN codepoint: `IP_TOS` on an IPv4 socket, `IPV6_TCLASS` on an
    /// IPv6 one.
    pub(crate) ecn: Option<EcnCodepoint>,
    /// The GSO segment size (`UDP_SEGMENT`).
    pub(crate) segment_size: Option<u16>,
    /// The source address: `IP_PKTINFO`'s `ipi_spec_dst` on an IPv4
    /// socket (an IPv6 source cannot be used there and is left out),
    /// `IPV6_PKTINFO` on an IPv6 one (IPv4 as IPv4-mapped, which Linux
    /// accepts for IPv4 destinations of a dual-stack socket). Interface
    /// index 0: the kernel routes as usual.
    pub(crate) src_ip: Option<IpAddr>,
}

/// Encodes the control messages of one send for an IPv4 (`ipv6` false)
/// or IPv6 socket. Returns the `msg_controllen`.
pub(crate) fn encode_send(buf: &mut [u8], ipv6: bool, info: SendInfo) -> usize {
    let SendInfo {
        ecn,
        segment_size,
        src_ip,
    } = info;
    let mut enc = Encoder::new(buf);
    if let Some(ecn) = ecn {
        let tos = c_int::from(ecn.bits()).to_ne_bytes();
        let pushed = if ipv6 {
            enc.push(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, &tos)
        } else {
            enc.push(libc::IPPROTO_IP, libc::IP_TOS, &tos)
        };
        debug_assert!(pushed, "SEND_SPACE holds the TOS message");
    }
    if let Some(size) = segment_size {
        let pushed = enc.push(libc::SOL_UDP, libc::UDP_SEGMENT, &size.to_ne_bytes());
        debug_assert!(pushed, "SEND_SPACE holds the GSO message");
    }
    match (src_ip, ipv6) {
        (Some(ip), true) => {
            let v6 = match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            let mut data = [0u8; IN6_PKTINFO_LEN];
            data[..16].copy_from_slice(&v6.octets());
            let pushed = enc.push(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &data);
            debug_assert!(pushed, "SEND_SPACE holds the IPv6 source");
        }
        (Some(IpAddr::V4(v4)), false) => {
            let mut data = [0u8; IN_PKTINFO_LEN];
            let at = size_of::<c_int>();
            data[at..at + 4].copy_from_slice(&v4.octets());
            let pushed = enc.push(libc::IPPROTO_IP, libc::IP_PKTINFO, &data);
            debug_assert!(pushed, "SEND_SPACE holds the IPv4 source");
        }
        (Some(IpAddr::V6(_)), false) | (None, _) => {}
    }
    enc.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_messages_round_trip() {
        let mut buf = Buf::<SEND_SPACE>::new();
        let info = SendInfo {
            ecn: Some(EcnCodepoint::Ect0),
            segment_size: Some(1200),
            src_ip: None,
        };
        let len = encode_send(&mut buf.0, false, info);
        assert_eq!(len, cmsg_space(4) + cmsg_space(2));
        let msgs: Vec<_> = Iter::new(&buf.0[..len]).collect();
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            (msgs[0].level, msgs[0].ty),
            (libc::IPPROTO_IP, libc::IP_TOS)
        );
        assert_eq!(msgs[0].data, &2i32.to_ne_bytes());
        assert_eq!(
            (msgs[1].level, msgs[1].ty),
            (libc::SOL_UDP, libc::UDP_SEGMENT)
        );
        assert_eq!(msgs[1].data, &1200u16.to_ne_bytes());

        let ce = SendInfo {
            ecn: Some(EcnCodepoint::Ce),
            ..SendInfo::default()
        };
        let len = encode_send(&mut buf.0, true, ce);
        assert_eq!(len, cmsg_space(4));
        let msg = Iter::new(&buf.0[..len]).next().unwrap();
        assert_eq!((msg.level, msg.ty), (libc::IPPROTO_IPV6, libc::IPV6_TCLASS));
        assert_eq!(msg.data, &3i32.to_ne_bytes());

        assert_eq!(encode_send(&mut buf.0, true, SendInfo::default()), 0);
    }

    #[test]
    fn source_addresses_encode_per_socket_family() {
        let mut buf = Buf::<SEND_SPACE>::new();
        let v4: IpAddr = "127.0.0.2".parse().unwrap();
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        let with = |src_ip| SendInfo {
            ecn: Some(EcnCodepoint::Ect0),
            segment_size: Some(1200),
            src_ip: Some(src_ip),
        };

        // IPv4 socket: in_pktinfo with ipi_spec_dst, after ECN and GSO.
        let len = encode_send(&mut buf.0, false, with(v4));
        assert_eq!(
            len,
            SEND_SPACE - cmsg_space(IN6_PKTINFO_LEN) + cmsg_space(12)
        );
        let msg = Iter::new(&buf.0[..len]).nth(2).unwrap();
        assert_eq!((msg.level, msg.ty), (libc::IPPROTO_IP, libc::IP_PKTINFO));
        assert_eq!(msg.data, &[0, 0, 0, 0, 127, 0, 0, 2, 0, 0, 0, 0]);

        // IPv6 socket: in6_pktinfo, IPv4 as IPv4-mapped; the whole room.
        let len = encode_send(&mut buf.0, true, with(v4));
        assert_eq!(len, SEND_SPACE);
        let msg = Iter::new(&buf.0[..len]).nth(2).unwrap();
        assert_eq!(
            (msg.level, msg.ty),
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
        );
        assert_eq!(
            &msg.data[..16],
            &Ipv4Addr::new(127, 0, 0, 2).to_ipv6_mapped().octets()
        );
        assert_eq!(&msg.data[16..], &[0; 4]);
        let len = encode_send(&mut buf.0, true, with(v6));
        let msg = Iter::new(&buf.0[..len]).nth(2).unwrap();
        assert_eq!(
            &msg.data[..16],
            &"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets()
        );

        // An IPv6 source cannot leave an IPv4 socket: left out.
        let len = encode_send(&mut buf.0, false, with(v6));
        assert_eq!(Iter::new(&buf.0[..len]).count(), 2);
    }

    #[test]
    fn decodes_destination_addresses() {
        let mut buf = Buf::<RECV_SPACE>::new();
        // in_pktinfo: ifindex 3, spec_dst 10.0.0.1, addr 127.0.0.2.
        let mut v4 = [0u8; IN_PKTINFO_LEN];
        v4[..4].copy_from_slice(&3i32.to_ne_bytes());
        v4[4..8].copy_from_slice(&[10, 0, 0, 1]);
        v4[8..].copy_from_slice(&[127, 0, 0, 2]);
        let mut enc = Encoder::new(&mut buf.0);
        assert!(enc.push(libc::IPPROTO_IP, libc::IP_TOS, &[0b10]));
        assert!(enc.push(libc::IPPROTO_IP, libc::IP_PKTINFO, &v4));
        let len = enc.len();
        let info = decode(&buf.0[..len]);
        assert_eq!(info.dst_ip, Some(IpAddr::from([127, 0, 0, 2])));
        assert_eq!(info.ecn, Some(EcnCodepoint::Ect0));

        // in6_pktinfo with an IPv4-mapped address (IPv4 on a dual-stack
        // socket) and with a plain IPv6 one.
        for (addr, want) in [
            ("::ffff:192.0.2.9", IpAddr::from([192, 0, 2, 9])),
            ("::1", IpAddr::from(Ipv6Addr::LOCALHOST)),
        ] {
            let mut v6 = [0u8; IN6_PKTINFO_LEN];
            v6[..16].copy_from_slice(&addr.parse::<Ipv6Addr>().unwrap().octets());
            v6[16..].copy_from_slice(&1u32.to_ne_bytes());
            let mut enc = Encoder::new(&mut buf.0);
            assert!(enc.push(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &v6));
            let len = enc.len();
            assert_eq!(decode(&buf.0[..len]).dst_ip, Some(want), "{addr}");
        }

        // Too short to hold the structure: ignored.
        let mut enc = Encoder::new(&mut buf.0);
        assert!(enc.push(libc::IPPROTO_IP, libc::IP_PKTINFO, &[127, 0, 0, 1]));
        let len = enc.len();
        assert_eq!(decode(&buf.0[..len]).dst_ip, None);
    }

    #[test]
    fn decodes_tos_byte_tclass_int_and_gro() {
        let mut buf = Buf::<RECV_SPACE>::new();
        let mut enc = Encoder::new(&mut buf.0);
        assert!(enc.push(libc::IPPROTO_IP, libc::IP_TOS, &[0b1011_1011]));
        assert!(enc.push(libc::SOL_UDP, libc::UDP_GRO, &1350i32.to_ne_bytes()));
        let len = enc.len();
        let info = decode(&buf.0[..len]);
        assert_eq!(info.ecn, Some(EcnCodepoint::Ce));
        assert_eq!(info.segment_size, Some(1350));

        let mut enc = Encoder::new(&mut buf.0);
        assert!(enc.push(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, &1i32.to_ne_bytes()));
        let len = enc.len();
        let info = decode(&buf.0[..len]);
        assert_eq!(info.ecn, Some(EcnCodepoint::Ect1));
        assert_eq!(info.segment_size, None);
    }

    #[test]
    fn unknown_messages_are_skipped() {
        let mut buf = Buf::<RECV_SPACE>::new();
        let mut enc = Encoder::new(&mut buf.0);
        assert!(enc.push(libc::SOL_SOCKET, libc::SO_TIMESTAMP, &[7; 16]));
        assert!(enc.push(libc::IPPROTO_IP, libc::IP_TOS, &[0b10]));
        let len = enc.len();
        assert_eq!(decode(&buf.0[..len]).ecn, Some(EcnCodepoint::Ect0));
    }

    #[test]
    fn malformed_and_truncated_input_ends_the_walk() {
        // A length below the header, a length past the end, a buffer too
        // short for a header: no panic, no message.
        for bad_len in [0usize, HDR_LEN - 1, 1000] {
            let mut buf = [0u8; 64];
            buf[..size_of::<usize>()].copy_from_slice(&bad_len.to_ne_bytes());
            assert_eq!(Iter::new(&buf).count(), 0, "cmsg_len {bad_len}");
        }
        assert_eq!(Iter::new(&[0u8; HDR_LEN - 1]).count(), 0);
        // A good message followed by a truncated one.
        let mut buf = Buf::<RECV_SPACE>::new();
        let mut enc = Encoder::new(&mut buf.0);
        assert!(enc.push(libc::IPPROTO_IP, libc::IP_TOS, &[1]));
        let len = enc.len();
        assert_eq!(Iter::new(&buf.0[..len + HDR_LEN / 2]).count(), 1);
        // A message without its padding at the very end still counts.
        assert_eq!(Iter::new(&buf.0[..cmsg_len(1)]).count(), 1);
    }

    #[test]
    fn encoder_refuses_what_does_not_fit() {
        let mut buf = [0u8; HDR_LEN + 8];
        let mut enc = Encoder::new(&mut buf);
        assert!(!enc.push(libc::SOL_UDP, libc::UDP_SEGMENT, &[0; 9]));
        assert_eq!(enc.len(), 0);
        assert!(enc.push(libc::SOL_UDP, libc::UDP_SEGMENT, &[0; 2]));
        assert!(!enc.push(libc::SOL_UDP, libc::UDP_SEGMENT, &[0; 2]));
    }

    #[test]
    fn every_tos_value_decodes() {
        let mut buf = Buf::<RECV_SPACE>::new();
        for tos in 0..=255u8 {
            let mut enc = Encoder::new(&mut buf.0);
            assert!(enc.push(libc::IPPROTO_IP, libc::IP_TOS, &[tos]));
            let len = enc.len();
            let ecn = decode(&buf.0[..len]).ecn;
            assert_eq!(ecn.map_or(0, EcnCodepoint::bits), tos & 0b11);
        }
    }
}
