//! The Linux path: `sendmmsg`/`recvmmsg` batches, GSO, GRO and ECN, each
//! probed at setup and switched off if the kernel later refuses it.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::cmsg::{self, RECV_SPACE, SEND_SPACE};
use crate::icmp::{self, IcmpError, QUOTE_LEN};
use crate::sys::{self, RawAddr, Received, SendMsg};
use crate::{BATCH_SIZE, MAX_DATAGRAM, Options, RecvMeta, Transmit, map_to_v6, unmap};

/// The kernel's limit on segments in one GSO send (`UDP_MAX_SEGMENTS`).
const MAX_GSO_SEGMENTS: usize = 64;
/// What we assume GRO may coalesce into one buffer.
const GRO_SEGMENTS: usize = 64;
/// Error-queue reports read per [`State::recv_errors`] call at most.
const MAX_ERR_READS: usize = 64;
/// Room for an error report's control messages: the `sock_extended_err`
/// (16 bytes) and the offender's address after it, with slack.
const ERR_SPACE: usize = 128;

/// What the socket turned out to support.
#[derive(Debug)]
pub(crate) struct State {
    ipv6: bool,
    max_gso_segments: AtomicUsize,
    gro_segments: usize,
    ecn_recv: bool,
    ecn_send: AtomicBool,
    /// Destination addresses are reported (`IP_PKTINFO`,
    /// `IPV6_RECVPKTINFO`).
    pktinfo: bool,
    /// ICMP errors are queued for us (`IP_RECVERR`, `IPV6_RECVERR`).
    icmp: AtomicBool,
    /// Control buffers for `recvmmsg`, kept between calls.
    recv_controls: RecvControls,
}

/// `recvmmsg`'s control buffers (~5 KB): kept, because zeroing a fresh
/// array on every receive call cost more than the rest of the call's
/// userspace work. The kernel writes each buffer's used prefix and
/// reports its length; only that prefix is decoded, so what earlier calls
/// left beyond it is never read.
struct RecvControls(Mutex<Box<[cmsg::Buf<RECV_SPACE>; BATCH_SIZE]>>);

impl std::fmt::Debug for RecvControls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecvControls")
    }
}

impl State {
    pub(crate) fn configure(socket: &std::net::UdpSocket, options: Options) -> io::Result<Self> {
        let fd = socket.as_raw_fd();
        let ipv6 = socket.local_addr()?.is_ipv6();

        // QUIC datagrams must not be fragmented (RFC 9000 §14): set DF and
        // leave path MTU to QUIC ("probe" ignores the kernel's MTU cache).
        if ipv6 {
            let _ = sys::set_int(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_PROBE,
            );
        }
        // Also for IPv4 (including IPv4-mapped traffic on a dual-stack
        // socket, where this may fail harmlessly).
        let _ = sys::set_int(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        );

        let mut ecn_recv = false;
        if options.ecn {
            let v4 = sys::set_int(fd, libc::IPPROTO_IP, libc::IP_RECVTOS, 1).is_ok();
            ecn_recv = if ipv6 {
                sys::set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS, 1).is_ok()
            } else {
                v4
            };
        }

        // The address each datagram was sent to, so that a socket bound to
        // a wildcard address can answer from it. An IPv6 socket reports
        // IPv4 traffic (dual stack) as IPv4-mapped IPV6_PKTINFO.
        let pktinfo = if ipv6 {
            sys::set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1).is_ok()
        } else {
            sys::set_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1).is_ok()
        };

        // GSO: kernels that know UDP_SEGMENT (4.18+) answer the getsockopt.
        let gso = options.gso && sys::get_int(fd, libc::SOL_UDP, libc::UDP_SEGMENT).is_ok();
        // GRO: 5.0+ accept the option.
        let gro = options.gro && sys::set_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1).is_ok();
        let state = Self {
            ipv6,
            max_gso_segments: AtomicUsize::new(if gso { MAX_GSO_SEGMENTS } else { 1 }),
            gro_segments: if gro { GRO_SEGMENTS } else { 1 },
            ecn_recv,
            ecn_send: AtomicBool::new(options.ecn),
            pktinfo,
            icmp: AtomicBool::new(false),
            recv_controls: RecvControls(Mutex::new(Box::new([cmsg::Buf::new(); BATCH_SIZE]))),
        };
        tracing::debug!(?state, "UDP socket configured");
        Ok(state)
    }

    pub(crate) fn max_gso_segments(&self) -> usize {
        self.max_gso_segments.load(Ordering::Relaxed)
    }

    pub(crate) fn gro_segments(&self) -> usize {
        self.gro_segments
    }

    pub(crate) fn pktinfo(&self) -> bool {
        self.pktinfo
    }

    pub(crate) fn ecn(&self) -> bool {
        self.ecn_recv && self.ecn_send.load(Ordering::Relaxed)
    }

    pub(crate) fn icmp_errors(&self) -> bool {
        self.icmp.load(Ordering::Relaxed)
    }

    /// Asks the kernel to queue ICMP errors for this socket; true if it
    /// will. An IPv6 socket needs both options: IPv4-mapped peers' errors
    /// come through `IP_RECVERR`.
    pub(crate) fn enable_icmp_errors(&self, fd: RawFd) -> bool {
        let v4 = sys::set_int(fd, libc::IPPROTO_IP, libc::IP_RECVERR, 1).is_ok();
        let on = if self.ipv6 {
            sys::set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1).is_ok()
        } else {
            v4
        };
        self.icmp.store(on, Ordering::Relaxed);
        on
    }

    /// Reads the error queue without blocking: fills `out` with the
    /// unreachable reports and drops every other report. At most
    /// [`MAX_ERR_READS`] reports per call, so a flood of ICMP cannot hold
    /// the caller; `WouldBlock` once the queue is empty and nothing was
    /// found (so the readiness is cleared).
    pub(crate) fn recv_errors(
        &self,
        io: &tokio::net::UdpSocket,
        out: &mut [IcmpError],
    ) -> io::Result<usize> {
        let fd = io.as_raw_fd();
        let mut n = 0;
        let mut quote = [0u8; QUOTE_LEN];
        for _ in 0..MAX_ERR_READS {
            if n == out.len() {
                break;
            }
            let mut control = cmsg::Buf::<ERR_SPACE>::new();
            let report = match sys::recv_errqueue(fd, &mut quote, &mut control) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && n > 0 => break,
                Err(e) => return Err(e),
            };
            let kind = icmp::decode_kind(&control.0[..report.control_len]);
            if let (Some(kind), Some(addr)) = (kind, report.addr) {
                out[n] = IcmpError::new(unmap(addr), kind, &quote[..report.len]);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Sends as many transmits as the socket takes without blocking;
    /// returns how many were sent whole.
    pub(crate) fn send(
        &self,
        io: &tokio::net::UdpSocket,
        transmits: &[Transmit<'_>],
    ) -> io::Result<usize> {
        let fd = io.as_raw_fd();
        // Where the next message starts: transmit index, byte offset.
        let mut cursor = (0usize, 0usize);
        let mut icmp_retries = 0;
        loop {
            let start = cursor;
            let mut batch = Batch::new();
            let gso = self.max_gso_segments() > 1;
            let ecn = self.ecn_send.load(Ordering::Relaxed);
            let end = batch.fill(transmits, cursor, gso, ecn, self.ipv6);
            if batch.len == 0 {
                return Ok(transmits.len());
            }
            match batch.send(fd) {
                Ok(sent) if sent == batch.len => cursor = end,
                // The socket buffer filled up part way.
                Ok(sent) => return would_block_if_none(batch.owner[sent]),
                Err(e) => {
                    if self.on_send_error(&e, &batch) {
                        cursor = start; // retry the same messages, degraded
                        continue;
                    }
                    // With IP_RECVERR an ICMP error for an earlier datagram
                    // (to anyone) fails the next send once: not this
                    // datagram's fault, so send it again (bounded: a
                    // route that is really missing fails every time).
                    if self.icmp_errors() && is_icmp_errno(&e) && icmp_retries < 2 {
                        icmp_retries += 1;
                        cursor = start;
                        continue;
                    }
                    // Transmits before this batch's first message went out
                    // whole; the error concerns the next one.
                    let done = batch.owner[0];
                    if done > 0 && e.kind() != io::ErrorKind::WouldBlock {
                        tracing::debug!(error = %e, "send failed after {done} transmits");
                    }
                    return if done > 0 { Ok(done) } else { Err(e) };
                }
            }
        }
    }

    /// Switches off what the kernel refused; true to retry.
    fn on_send_error(&self, e: &io::Error, batch: &Batch) -> bool {
        let code = e.raw_os_error();
        if batch.gso_first && matches!(code, Some(libc::EIO) | Some(libc::EINVAL)) {
            // EIO: the device cannot checksum-offload; EINVAL: old kernel.
            tracing::info!(error = %e, "GSO refused by the kernel; disabling it");
            self.max_gso_segments.store(1, Ordering::Relaxed);
            return true;
        }
        if batch.ecn_first && code == Some(libc::EINVAL) && self.ecn_send.load(Ordering::Relaxed) {
            tracing::info!(error = %e, "ECN marking refused by the kernel; disabling it");
            self.ecn_send.store(false, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Receives without blocking; returns how many of `bufs` were filled.
    /// A datagram that did not fit its buffer is reported with `len` 0.
    pub(crate) fn recv(
        &self,
        io: &tokio::net::UdpSocket,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        // One receiving task per socket: the lock is never contended (a
        // poisoned one only means a panic elsewhere; the buffers are fine).
        let mut controls = self
            .recv_controls
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let controls = &mut **controls;
        let mut out = [Received::default(); BATCH_SIZE];
        let n = bufs.len().min(meta.len()).min(BATCH_SIZE);
        let got = sys::recvmmsg(io.as_raw_fd(), &mut bufs[..n], controls, &mut out)?;
        for i in 0..got {
            let r = out[i];
            let info = cmsg::decode(&controls[i].0[..r.control_len]);
            let (len, addr) = match r.addr {
                Some(addr) if !r.truncated => (r.len, unmap(addr)),
                _ => (0, RecvMeta::default().addr),
            };
            meta[i] = RecvMeta {
                addr,
                len,
                stride: info.segment_size.unwrap_or(len).min(len.max(1)),
                ecn: info.ecn,
                dst_ip: info.dst_ip,
            };
        }
        Ok(got)
    }
}

/// One `sendmmsg` worth of messages. The address and control buffer of a
/// message are made when it is added (`None` until then): making all
/// `BATCH_SIZE` of them up front, 4 KiB, cost more than the rest of a
/// one-datagram send, and a handshake sends one datagram at a time.
struct Batch<'a> {
    addrs: [Option<RawAddr>; BATCH_SIZE],
    data: [&'a [u8]; BATCH_SIZE],
    controls: [Option<cmsg::Buf<SEND_SPACE>>; BATCH_SIZE],
    control_lens: [usize; BATCH_SIZE],
    /// For message `i`, how many transmits were complete before it: the
    /// count to report when it is the first one not sent.
    owner: [usize; BATCH_SIZE],
    len: usize,
    gso_first: bool,
    ecn_first: bool,
}

impl<'a> Batch<'a> {
    fn new() -> Self {
        Self {
            addrs: [None; BATCH_SIZE],
            data: [&[]; BATCH_SIZE],
            controls: [None; BATCH_SIZE],
            control_lens: [0; BATCH_SIZE],
            owner: [0; BATCH_SIZE],
            len: 0,
            gso_first: false,
            ecn_first: false,
        }
    }

    /// Adds messages from `cursor` on; returns the cursor after them.
    fn fill(
        &mut self,
        transmits: &[Transmit<'a>],
        mut cursor: (usize, usize),
        gso: bool,
        ecn: bool,
        ipv6: bool,
    ) -> (usize, usize) {
        while self.len < BATCH_SIZE && cursor.0 < transmits.len() {
            let t = &transmits[cursor.0];
            let stride = t.stride().max(1);
            let rest = &t.contents[cursor.1..];
            let (chunk, segment) = if gso && rest.len() > stride {
                let max = stride * MAX_GSO_SEGMENTS.min(MAX_DATAGRAM / stride).max(1);
                let take = rest.len().min(max);
                (&rest[..take], u16::try_from(stride).ok())
            } else {
                (&rest[..rest.len().min(stride)], None)
            };
            let segment = segment.filter(|_| chunk.len() > stride);
            let dest = if ipv6 {
                map_to_v6(t.destination)
            } else {
                t.destination
            };
            let i = self.len;
            self.addrs[i] = Some(RawAddr::from(dest));
            self.data[i] = chunk;
            let mark = t.ecn.filter(|_| ecn);
            let info = cmsg::SendInfo {
                ecn: mark,
                segment_size: segment,
                src_ip: t.src_ip,
            };
            let control = self.controls[i].insert(cmsg::Buf::new());
            self.control_lens[i] = cmsg::encode_send(&mut control.0, ipv6, info);
            self.owner[i] = cursor.0;
            if i == 0 {
                self.gso_first = segment.is_some();
                self.ecn_first = mark.is_some();
            }
            self.len += 1;
            cursor.1 += chunk.len();
            if cursor.1 >= t.contents.len() {
                cursor = (cursor.0 + 1, 0);
            }
        }
        cursor
    }

    fn send(&self, fd: RawFd) -> io::Result<usize> {
        let msgs = (0..self.len).filter_map(|i| {
            Some(SendMsg {
                addr: self.addrs[i].as_ref()?,
                data: self.data[i],
                control: &self.controls[i].as_ref()?.0[..self.control_lens[i]],
            })
        });
        sys::sendmmsg(fd, msgs)
    }
}

/// `Ok(n)`, or `WouldBlock` when nothing was sent whole, so that the caller
/// waits for room instead of spinning.
/// The errors a pending ICMP report turns the next socket call into.
fn is_icmp_errno(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::EACCES
                | libc::EPERM
        )
    )
}

fn would_block_if_none(n: usize) -> io::Result<usize> {
    if n == 0 {
        Err(io::ErrorKind::WouldBlock.into())
    } else {
        Ok(n)
    }
}
