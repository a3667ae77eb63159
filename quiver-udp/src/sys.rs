//! Every `unsafe` operation of the crate: socket options, `sendmmsg`,
//! `recvmmsg`, and reading the socket addresses the kernel writes. The
//! rest of the crate is safe code.
//!
//! The functions here take fully formed, safe arguments and return plain
//! values; each `unsafe` block states why the pointers it hands the kernel
//! are valid for the duration of the call.

use std::io::{self, IoSliceMut};
use std::mem::{MaybeUninit, size_of};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::RawFd;

use libc::{c_int, c_uint, c_void, socklen_t};

use crate::BATCH_SIZE;

/// Sets an `int` socket option.
pub(crate) fn set_int(fd: RawFd, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: `value` lives on the stack for the whole call and its size
    // is passed; `setsockopt` only reads `optlen` bytes from it. An invalid
    // `fd` or option is reported through the return value.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const c_int).cast::<c_void>(),
            size_of::<c_int>() as socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads an `int` socket option.
pub(crate) fn get_int(fd: RawFd, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `value` and `len` are valid, writable and live for the call;
    // `len` tells the kernel how many bytes it may write into `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut c_int).cast::<c_void>(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Room for an IPv4 or IPv6 socket address, as the kernel reads and writes
/// them.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) union RawSockAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

/// A socket address in kernel form, with its length.
#[derive(Clone, Copy)]
pub(crate) struct RawAddr {
    addr: RawSockAddr,
    len: socklen_t,
}

impl std::fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawAddr({:?})", self.decode())
    }
}

impl RawAddr {
    /// Room for the kernel to write any address into.
    pub(crate) fn empty() -> Self {
        Self::from(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))
    }

    /// The standard address this holds, if it is IPv4 or IPv6.
    pub(crate) fn decode(&self) -> Option<SocketAddr> {
        decode_addr(&self.addr, self.len)
    }
}

impl From<SocketAddr> for RawAddr {
    fn from(addr: SocketAddr) -> Self {
        let v6 = match addr {
            SocketAddr::V6(a) => libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            },
            SocketAddr::V4(_) => libc::sockaddr_in6 {
                sin6_family: 0,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
                sin6_scope_id: 0,
            },
        };
        // The larger member first, so that every byte is initialised.
        let mut raw = RawSockAddr { v6 };
        let len = match addr {
            SocketAddr::V4(a) => {
                raw.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(_) => size_of::<libc::sockaddr_in6>(),
        };
        Self {
            addr: raw,
            len: len as socklen_t,
        }
    }
}

/// Reads the address the kernel wrote (`len` bytes of `raw`).
fn decode_addr(raw: &RawSockAddr, len: socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    if len < size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: both union members start with the family field, at offset 0
    // with the same type, and every bit pattern is a valid `sa_family_t`;
    // the union is always fully initialised (created from a complete
    // member), so this read is of initialised memory.
    let family = c_int::from(unsafe { raw.v4.sin_family });
    match family {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote an AF_INET address of full length;
            // `sockaddr_in` is plain integers, valid for any bit pattern.
            let a = unsafe { raw.v4 };
            Some(SocketAddr::from((
                Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for an AF_INET6 address.
            let a = unsafe { raw.v6 };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// One datagram (or GSO run) to send.
#[derive(Debug)]
pub(crate) struct SendMsg<'a> {
    pub(crate) addr: &'a RawAddr,
    pub(crate) data: &'a [u8],
    pub(crate) control: &'a [u8],
}

/// An all-zero `mmsghdr` array.
fn zeroed_headers() -> [libc::mmsghdr; BATCH_SIZE] {
    // SAFETY: `mmsghdr` is a C struct of integers and raw pointers, for
    // which all-zero bytes (zero lengths, null pointers) are valid.
    unsafe { std::mem::zeroed() }
}

/// `sendmmsg(2)`: sends the first [`BATCH_SIZE`] of `msgs` at most and
/// returns how many went out. An error means the first was not sent.
///
/// Only the headers and iovecs of the messages given are written: zeroing
/// all `BATCH_SIZE` of them (2.5 KiB) on every call cost more than the rest
/// of a one-datagram send, and a handshake sends one datagram at a time.
pub(crate) fn sendmmsg<'a>(
    fd: RawFd,
    msgs: impl IntoIterator<Item = SendMsg<'a>>,
) -> io::Result<usize> {
    let mut iovecs = [const { MaybeUninit::<libc::iovec>::uninit() }; BATCH_SIZE];
    let mut headers = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH_SIZE];
    let mut n = 0;
    for msg in msgs.into_iter().take(BATCH_SIZE) {
        iovecs[n].write(libc::iovec {
            iov_base: msg.data.as_ptr().cast_mut().cast::<c_void>(),
            iov_len: msg.data.len(),
        });
        // SAFETY: `mmsghdr` is a C struct of integers and raw pointers, for
        // which all-zero bytes (zero lengths, null pointers) are valid.
        let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let hdr = &mut header.msg_hdr;
        hdr.msg_name = (&msg.addr.addr as *const RawSockAddr)
            .cast_mut()
            .cast::<c_void>();
        hdr.msg_namelen = msg.addr.len;
        hdr.msg_iovlen = 1;
        if !msg.control.is_empty() {
            hdr.msg_control = msg.control.as_ptr().cast_mut().cast::<c_void>();
            hdr.msg_controllen = msg.control.len() as _;
        }
        headers[n].write(header);
        n += 1;
    }
    // Each header points at its iovec, now that none will move or be
    // written again.
    let iov = iovecs.as_mut_ptr().cast::<libc::iovec>();
    for (i, header) in headers[..n].iter_mut().enumerate() {
        // SAFETY: the first `n` headers were written above, and `i < n <=
        // BATCH_SIZE` stays inside `iovecs`.
        unsafe { header.assume_init_mut().msg_hdr.msg_iov = iov.add(i) };
    }
    // SAFETY: the first `n` headers are initialised and point at the
    // first `n` iovecs (initialised) and at addresses, payloads and control
    // buffers that `msgs` borrows for `'a`, beyond this call, with their
    // true lengths. sendmmsg reads no further than `n` headers, only reads
    // through these pointers (the `*mut` casts are an artefact of the C
    // API) and writes `msg_len` into the headers, which we own.
    let rc = unsafe {
        libc::sendmmsg(
            fd,
            headers.as_mut_ptr().cast::<libc::mmsghdr>(),
            n as c_uint,
            0,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// One message filled by [`recvmmsg`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Received {
    /// Bytes written into the buffer.
    pub(crate) len: usize,
    /// The sender.
    pub(crate) addr: Option<SocketAddr>,
    /// Bytes of control messages.
    pub(crate) control_len: usize,
    /// The datagram did not fit its buffer (`MSG_TRUNC`).
    pub(crate) truncated: bool,
}

/// `recvmmsg(2)` without blocking: fills `bufs[i]`, `controls[i]` and
/// `out[i]` for each message received, and returns how many.
pub(crate) fn recvmmsg<const N: usize>(
    fd: RawFd,
    bufs: &mut [IoSliceMut<'_>],
    controls: &mut [crate::cmsg::Buf<N>],
    out: &mut [Received],
) -> io::Result<usize> {
    let n = bufs
        .len()
        .min(controls.len())
        .min(out.len())
        .min(BATCH_SIZE);
    let mut headers = zeroed_headers();
    let mut names = [RawAddr::empty(); BATCH_SIZE];
    for i in 0..n {
        let hdr = &mut headers[i].msg_hdr;
        hdr.msg_name = (&mut names[i].addr as *mut RawSockAddr).cast::<c_void>();
        hdr.msg_namelen = size_of::<RawSockAddr>() as socklen_t;
        // `IoSliceMut` is documented to be ABI-compatible with `iovec`.
        hdr.msg_iov = (&mut bufs[i] as *mut IoSliceMut<'_>).cast::<libc::iovec>();
        hdr.msg_iovlen = 1;
        hdr.msg_control = controls[i].0.as_mut_ptr().cast::<c_void>();
        hdr.msg_controllen = N as _;
    }
    // SAFETY: each of the first `n` headers points at a distinct, writable
    // buffer that outlives the call, with its true capacity: the name
    // storage in `names`, one `iovec` (an `IoSliceMut`, ABI-compatible
    // with `iovec` per std's documentation) over the caller's buffer, and
    // the control buffer. The kernel writes at most those capacities and
    // records the lengths it used in the headers. MSG_DONTWAIT keeps the
    // call from blocking; a null timeout is allowed.
    let rc = unsafe {
        libc::recvmmsg(
            fd,
            headers.as_mut_ptr(),
            n as c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = rc as usize;
    for i in 0..got {
        let hdr = &headers[i];
        names[i].len = hdr.msg_hdr.msg_namelen;
        out[i] = Received {
            len: hdr.msg_len as usize,
            addr: names[i].decode(),
            // `size_t` on glibc, `socklen_t` on musl.
            #[allow(clippy::unnecessary_cast)]
            control_len: (hdr.msg_hdr.msg_controllen as usize).min(N),
            truncated: hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        };
    }
    Ok(got)
}

/// One report read by [`recv_errqueue`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ErrReport {
    /// Bytes of the quoted datagram written into the buffer.
    pub(crate) len: usize,
    /// The original destination of the datagram.
    pub(crate) addr: Option<SocketAddr>,
    /// Bytes of control messages.
    pub(crate) control_len: usize,
}

/// `recvmsg(2)` with `MSG_ERRQUEUE`, without blocking: the next report of
/// the socket's error queue (`IP_RECVERR`), its quoted payload in `data`
/// (truncated to fit) and its control messages in `control`.
pub(crate) fn recv_errqueue<const N: usize>(
    fd: RawFd,
    data: &mut [u8],
    control: &mut crate::cmsg::Buf<N>,
) -> io::Result<ErrReport> {
    let mut name = RawAddr::empty();
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast::<c_void>(),
        iov_len: data.len(),
    };
    // SAFETY: `msghdr` is a C struct of integers and raw pointers, for
    // which all-zero bytes are valid.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_name = (&mut name.addr as *mut RawSockAddr).cast::<c_void>();
    hdr.msg_namelen = size_of::<RawSockAddr>() as socklen_t;
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.0.as_mut_ptr().cast::<c_void>();
    hdr.msg_controllen = N as _;
    // SAFETY: the header points at the name storage, one iovec over
    // `data` and the control buffer, all writable, borrowed for the call
    // and given with their true capacities; the kernel writes at most
    // those and records the lengths used in the header. MSG_DONTWAIT keeps
    // the call from blocking (an empty queue is EAGAIN).
    let rc = unsafe { libc::recvmsg(fd, &mut hdr, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    name.len = hdr.msg_namelen;
    Ok(ErrReport {
        len: (rc as usize).min(data.len()),
        addr: name.decode(),
        // `size_t` on glibc, `socklen_t` on musl.
        #[allow(clippy::unnecessary_cast)]
        control_len: (hdr.msg_controllen as usize).min(N),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmsg;

    #[test]
    fn cmsg_layout_matches_libc() {
        for n in [0usize, 1, 2, 4, 7, 8, 16, 17] {
            let c = n as c_uint;
            // SAFETY: CMSG_LEN and CMSG_SPACE are pure arithmetic; libc
            // declares them `unsafe` only for uniformity with the others.
            let (len, space) = unsafe { (libc::CMSG_LEN(c), libc::CMSG_SPACE(c)) };
            assert_eq!(cmsg::cmsg_len(n), len as usize, "CMSG_LEN({n})");
            assert_eq!(cmsg::cmsg_space(n), space as usize, "CMSG_SPACE({n})");
        }
        assert_eq!(cmsg::HDR_LEN, size_of::<libc::cmsghdr>());
        assert_eq!(cmsg::IN_PKTINFO_LEN, size_of::<libc::in_pktinfo>());
        assert_eq!(cmsg::IN6_PKTINFO_LEN, size_of::<libc::in6_pktinfo>());
        // The field offsets the encoder and decoder use.
        let v4 = libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr { s_addr: 0 },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        let base = std::ptr::addr_of!(v4) as usize;
        assert_eq!(std::ptr::addr_of!(v4.ipi_spec_dst) as usize - base, 4);
        assert_eq!(std::ptr::addr_of!(v4.ipi_addr) as usize - base, 8);
    }

    #[test]
    fn libc_walks_our_encoding() {
        let mut buf = cmsg::Buf::<{ cmsg::SEND_SPACE }>::new();
        let info = cmsg::SendInfo {
            ecn: Some(crate::EcnCodepoint::Ect0),
            segment_size: Some(1452),
            src_ip: Some("::ffff:127.0.0.2".parse().unwrap()),
        };
        let len = cmsg::encode_send(&mut buf.0, true, info);
        // SAFETY: a zeroed msghdr is valid; it is then pointed at `buf`,
        // which outlives every use below, with its true length. The CMSG_*
        // functions only do pointer arithmetic within [control,
        // control+controllen) and return null past the end; each returned
        // header is read only after a null check and lies inside `buf`,
        // which is aligned for `cmsghdr`.
        unsafe {
            let mut hdr: libc::msghdr = std::mem::zeroed();
            hdr.msg_control = buf.0.as_mut_ptr().cast();
            hdr.msg_controllen = len as _;
            let first = libc::CMSG_FIRSTHDR(&hdr);
            assert!(!first.is_null());
            assert_eq!((*first).cmsg_level, libc::IPPROTO_IPV6);
            assert_eq!((*first).cmsg_type, libc::IPV6_TCLASS);
            assert_eq!(*libc::CMSG_DATA(first).cast::<c_int>(), 2);
            let second = libc::CMSG_NXTHDR(&hdr, first);
            assert!(!second.is_null());
            assert_eq!((*second).cmsg_level, libc::SOL_UDP);
            assert_eq!((*second).cmsg_type, libc::UDP_SEGMENT);
            assert_eq!(libc::CMSG_DATA(second).cast::<u16>().read_unaligned(), 1452);
            let third = libc::CMSG_NXTHDR(&hdr, second);
            assert!(!third.is_null());
            assert_eq!((*third).cmsg_level, libc::IPPROTO_IPV6);
            assert_eq!((*third).cmsg_type, libc::IPV6_PKTINFO);
            assert_eq!(
                (*third).cmsg_len as usize,
                libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as c_uint) as usize
            );
            let info = libc::CMSG_DATA(third)
                .cast::<libc::in6_pktinfo>()
                .read_unaligned();
            assert_eq!(
                Ipv6Addr::from(info.ipi6_addr.s6_addr),
                "::ffff:127.0.0.2".parse::<Ipv6Addr>().unwrap()
            );
            assert_eq!(info.ipi6_ifindex, 0);
            assert!(libc::CMSG_NXTHDR(&hdr, third).is_null());
        }
    }

    #[test]
    fn addresses_round_trip() {
        for addr in [
            "127.0.0.1:4433",
            "[::1]:443",
            "[fe80::1%3]:1",
            "0.0.0.0:0",
            "[::ffff:10.0.0.1]:65535",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(RawAddr::from(addr).decode(), Some(addr));
        }
        let mut short = RawAddr::from("127.0.0.1:1".parse::<SocketAddr>().unwrap());
        short.len = 2;
        assert_eq!(short.decode(), None);
    }
}
