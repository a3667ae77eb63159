//! ICMP errors for datagrams we sent, as Linux reports them on a socket
//! with `IP_RECVERR`/`IPV6_RECVERR`: one `sock_extended_err` control
//! message per error, read from the error queue (`MSG_ERRQUEUE`), with
//! the original destination as the message's address and the quoted start
//! of the datagram as its data. Decoded here by safe code.

use std::net::SocketAddr;

/// Bytes of the undeliverable datagram kept with an [`IcmpError`]: enough
/// for a QUIC long header up to its connection IDs.
pub const QUOTE_LEN: usize = 64;

/// What an ICMP or ICMPv6 "destination unreachable" said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcmpKind {
    /// Nothing listens on the port (ICMP type 3 code 3; ICMPv6 type 1 code 4).
    PortUnreachable,
    /// The host or its network cannot be reached (ICMP type 3 codes 0-2,
    /// 5-8, 11, 12; ICMPv6 type 1 codes 0, 2, 3).
    HostUnreachable,
    /// Administratively prohibited (ICMP type 3 codes 9, 10, 13; ICMPv6
    /// type 1 codes 1, 5, 6).
    Prohibited,
}

/// An ICMP error about a datagram this socket sent (see
/// [`UdpSocket::recv_icmp_errors`](crate::UdpSocket::recv_icmp_errors)).
/// Only "destination unreachable" errors are reported; packet-too-big,
/// time-exceeded and local errors are read and dropped. ICMP is not
/// authenticated: whoever acts on it must validate it against its own
/// state (RFC 9000 §14.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    /// Where the undeliverable datagram was going (IPv4-mapped addresses
    /// as IPv4).
    pub destination: SocketAddr,
    /// What the ICMP message said.
    pub kind: IcmpKind,
    quoted: [u8; QUOTE_LEN],
    quoted_len: u8,
}

impl IcmpError {
    /// An error about a datagram to `destination` whose payload began with
    /// `quoted` (kept up to [`QUOTE_LEN`] bytes).
    pub fn new(destination: SocketAddr, kind: IcmpKind, quoted: &[u8]) -> Self {
        let len = quoted.len().min(QUOTE_LEN);
        let mut q = [0; QUOTE_LEN];
        q[..len].copy_from_slice(&quoted[..len]);
        Self {
            destination,
            kind,
            quoted: q,
            quoted_len: len as u8,
        }
    }

    /// The start of the undeliverable datagram's UDP payload, as the ICMP
    /// message quoted it (possibly empty).
    pub fn quoted(&self) -> &[u8] {
        &self.quoted[..usize::from(self.quoted_len)]
    }
}

impl Default for IcmpError {
    fn default() -> Self {
        Self::new(
            SocketAddr::from(([0, 0, 0, 0], 0)),
            IcmpKind::HostUnreachable,
            &[],
        )
    }
}

/// `sizeof(struct sock_extended_err)`: `u32 ee_errno; u8 ee_origin, ee_type,
/// ee_code, ee_pad; u32 ee_info, ee_data`.
#[cfg(target_os = "linux")]
const EXTENDED_ERR_LEN: usize = 16;

/// The kind of unreachable an `IP_RECVERR`/`IPV6_RECVERR` control message
/// reports, or `None` for any other error.
#[cfg(target_os = "linux")]
pub(crate) fn decode_kind(control: &[u8]) -> Option<IcmpKind> {
    use crate::cmsg::Iter;
    for msg in Iter::new(control) {
        let ours = matches!(
            (msg.level, msg.ty),
            (libc::IPPROTO_IP, libc::IP_RECVERR) | (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
        );
        if !ours || msg.data.len() < EXTENDED_ERR_LEN {
            continue;
        }
        let (origin, ty, code) = (msg.data[4], msg.data[5], msg.data[6]);
        return match origin {
            libc::SO_EE_ORIGIN_ICMP if ty == 3 => match code {
                3 => Some(IcmpKind::PortUnreachable),
                0..=2 | 5..=8 | 11 | 12 => Some(IcmpKind::HostUnreachable),
                9 | 10 | 13 => Some(IcmpKind::Prohibited),
                // 4: fragmentation needed (path MTU), not unreachable.
                _ => None,
            },
            libc::SO_EE_ORIGIN_ICMP6 if ty == 1 => match code {
                4 => Some(IcmpKind::PortUnreachable),
                0 | 2 | 3 => Some(IcmpKind::HostUnreachable),
                1 | 5 | 6 => Some(IcmpKind::Prohibited),
                _ => None,
            },
            _ => None,
        };
    }
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::cmsg::{Buf, Encoder};

    fn control(level: libc::c_int, ty: libc::c_int, origin: u8, icmp: (u8, u8)) -> Buf<64> {
        let mut buf = Buf::<64>::new();
        let mut ee = [0u8; EXTENDED_ERR_LEN];
        ee[..4].copy_from_slice(&(libc::ECONNREFUSED as u32).to_ne_bytes());
        ee[4] = origin;
        ee[5] = icmp.0;
        ee[6] = icmp.1;
        assert!(Encoder::new(&mut buf.0).push(level, ty, &ee));
        buf
    }

    #[test]
    fn unreachable_kinds() {
        let (ip, v6) = (
            (libc::IPPROTO_IP, libc::IP_RECVERR),
            (libc::IPPROTO_IPV6, libc::IPV6_RECVERR),
        );
        let cases = [
            (
                ip,
                libc::SO_EE_ORIGIN_ICMP,
                (3, 3),
                Some(IcmpKind::PortUnreachable),
            ),
            (
                ip,
                libc::SO_EE_ORIGIN_ICMP,
                (3, 1),
                Some(IcmpKind::HostUnreachable),
            ),
            (
                ip,
                libc::SO_EE_ORIGIN_ICMP,
                (3, 13),
                Some(IcmpKind::Prohibited),
            ),
            (ip, libc::SO_EE_ORIGIN_ICMP, (3, 4), None),
            (ip, libc::SO_EE_ORIGIN_ICMP, (11, 0), None),
            (ip, libc::SO_EE_ORIGIN_LOCAL, (0, 0), None),
            (
                v6,
                libc::SO_EE_ORIGIN_ICMP6,
                (1, 4),
                Some(IcmpKind::PortUnreachable),
            ),
            (
                v6,
                libc::SO_EE_ORIGIN_ICMP6,
                (1, 3),
                Some(IcmpKind::HostUnreachable),
            ),
            (
                v6,
                libc::SO_EE_ORIGIN_ICMP6,
                (1, 1),
                Some(IcmpKind::Prohibited),
            ),
            (v6, libc::SO_EE_ORIGIN_ICMP6, (2, 0), None),
            // An IPv6 socket reports ICMPv4 errors for IPv4-mapped peers.
            (
                v6,
                libc::SO_EE_ORIGIN_ICMP,
                (3, 3),
                Some(IcmpKind::PortUnreachable),
            ),
        ];
        for ((level, ty), origin, icmp, want) in cases {
            let buf = control(level, ty, origin, icmp);
            let len = crate::cmsg::cmsg_space(EXTENDED_ERR_LEN);
            assert_eq!(decode_kind(&buf.0[..len]), want, "{origin} {icmp:?}");
            // Truncated: ignored, no panic.
            assert_eq!(decode_kind(&buf.0[..len - 8]), None);
        }
        assert_eq!(decode_kind(&[]), None);
    }

    #[test]
    fn quote_is_bounded() {
        let long = [7u8; 200];
        let e = IcmpError::new(
            "127.0.0.1:1".parse().unwrap(),
            IcmpKind::PortUnreachable,
            &long,
        );
        assert_eq!(e.quoted(), &long[..QUOTE_LEN]);
        assert!(IcmpError::default().quoted().is_empty());
    }
}
