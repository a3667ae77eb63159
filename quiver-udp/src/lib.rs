//! # quiver-udp
//!
//! UDP sockets for QUIC on tokio.
//!
//! On Linux, [`UdpSocket`] sends and receives in batches (`sendmmsg`,
//! `recvmmsg`), uses segmentation offload when the kernel has it (GSO,
//! `UDP_SEGMENT`: one system call sends many equal-sized datagrams; GRO,
//! `UDP_GRO`: the kernel hands over several datagrams of one sender at
//! once), reads the ECN codepoint of every datagram (`IP_RECVTOS`,
//! `IPV6_RECVTCLASS`) and writes the one asked for (`IP_TOS`,
//! `IPV6_TCLASS`). It also learns the local address each datagram was
//! sent to (`IP_PKTINFO`, `IPV6_RECVPKTINFO`: [`RecvMeta::dst_ip`]) and
//! sends from the one asked for ([`Transmit::src_ip`]), so that a socket
//! bound to `0.0.0.0` or `[::]` can answer from the address its peer
//! used. Each feature is probed when the socket is created and
//! dropped cleanly when the kernel refuses it, then or later.
//!
//! Elsewhere, or when asked with [`Options::portable`], the socket is a
//! plain tokio `UdpSocket`: one datagram per call, no ECN, no destination
//! or source addresses.
//!
//! All `unsafe` code lives in one module (`sys`, Linux only): the system
//! calls and the socket-address conversions. Control messages are encoded
//! and decoded by safe code over byte buffers (`cmsg`), tested under Miri.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use quiver_udp::{RecvMeta, Transmit, UdpSocket};
//! let socket = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
//! let peer = "127.0.0.1:4433".parse().unwrap();
//! socket.send(&[Transmit::new(peer, b"hello")]).await?;
//! let mut buf = vec![0u8; 65536];
//! let mut meta = [RecvMeta::default()];
//! let n = socket.recv(&mut [std::io::IoSliceMut::new(&mut buf)], &mut meta).await?;
//! for m in &meta[..n] {
//!     for datagram in buf[..m.len].chunks(m.stride) { /* ... */ }
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use std::future::poll_fn;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};

#[cfg(target_os = "linux")]
mod cmsg;
mod icmp;
#[cfg(target_os = "linux")]
mod linux;
mod portable;
#[cfg(target_os = "linux")]
mod sys;

pub use icmp::{IcmpError, IcmpKind, QUOTE_LEN};

/// The largest UDP payload: 65,535 bytes less the IPv4 and UDP headers.
pub const MAX_DATAGRAM: usize = 65_507;

/// The most datagrams one [`UdpSocket::poll_recv`] or
/// [`UdpSocket::poll_send`] call handles.
pub const BATCH_SIZE: usize = 32;

/// An Explicit Congestion Notification codepoint (RFC 3168 §5): the two
/// low bits of the IPv4 TOS byte or the IPv6 Traffic Class.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub enum EcnCodepoint {
    /// ECT(0), `0b10`.
    Ect0,
    /// ECT(1), `0b01`.
    Ect1,
    /// Congestion Experienced, `0b11`.
    Ce,
}

impl EcnCodepoint {
    /// The codepoint in the low two bits of a TOS or Traffic Class byte;
    /// `None` for Not-ECT (`0b00`).
    pub fn from_bits(tos: u8) -> Option<Self> {
        match tos & 0b11 {
            0b10 => Some(Self::Ect0),
            0b01 => Some(Self::Ect1),
            0b11 => Some(Self::Ce),
            _ => None,
        }
    }

    /// The two-bit value.
    pub fn bits(self) -> u8 {
        match self {
            Self::Ect0 => 0b10,
            Self::Ect1 => 0b01,
            Self::Ce => 0b11,
        }
    }
}

/// One or more datagrams to one destination.
#[derive(Debug, Copy, Clone)]
pub struct Transmit<'a> {
    /// Where to.
    pub destination: SocketAddr,
    /// The ECN codepoint to mark the datagrams with.
    pub ecn: Option<EcnCodepoint>,
    /// The payload: one datagram, or with `segment_size` several.
    pub contents: &'a [u8],
    /// `contents` is a run of datagrams of this size (the last may be
    /// shorter), sent with one GSO call where the socket supports it
    /// ([`UdpSocket::max_gso_segments`]) and one by one otherwise.
    pub segment_size: Option<usize>,
    /// The local address to send from, for a socket bound to a wildcard
    /// address (`IP_PKTINFO`/`IPV6_PKTINFO`; Linux's batched path only,
    /// ignored elsewhere). `None`: the kernel picks, by route. An IPv4
    /// socket cannot send from an IPv6 address and ignores one.
    pub src_ip: Option<IpAddr>,
}

impl<'a> Transmit<'a> {
    /// A single datagram without ECN marking, from the address the kernel
    /// picks.
    pub fn new(destination: SocketAddr, contents: &'a [u8]) -> Self {
        Self {
            destination,
            ecn: None,
            contents,
            segment_size: None,
            src_ip: None,
        }
    }

    /// The datagrams' size: `segment_size`, or the whole payload.
    pub fn stride(&self) -> usize {
        match self.segment_size {
            Some(s) if s > 0 => s.min(self.contents.len().max(1)),
            _ => self.contents.len(),
        }
    }
}

/// What arrived in one receive buffer.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct RecvMeta {
    /// The sender. IPv4-mapped IPv6 addresses are reported as IPv4.
    pub addr: SocketAddr,
    /// Bytes written into the buffer.
    pub len: usize,
    /// Size of each datagram in the buffer: GRO may deliver several
    /// datagrams of one sender back to back, all `stride` bytes long but
    /// the last. Equal to `len` for a single datagram.
    pub stride: usize,
    /// The ECN codepoint the datagrams carried.
    pub ecn: Option<EcnCodepoint>,
    /// The local address the datagrams were sent to (`IP_PKTINFO`,
    /// `IPV6_PKTINFO`; IPv4-mapped addresses as IPv4), where the platform
    /// reports it ([`UdpSocket::pktinfo`]). For a socket bound to a
    /// wildcard address this is the address to answer from.
    pub dst_ip: Option<IpAddr>,
}

impl Default for RecvMeta {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            len: 0,
            stride: 0,
            ecn: None,
            dst_ip: None,
        }
    }
}

/// Which optional features to try; each is still probed and used only
/// where the platform has it.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct Options {
    /// Use the plain tokio socket even where batching is available.
    pub portable: bool,
    /// Try generic segmentation offload for sending.
    pub gso: bool,
    /// Try generic receive offload.
    pub gro: bool,
    /// Read and write ECN codepoints.
    pub ecn: bool,
    /// Ask the kernel for this much socket receive buffer (`SO_RCVBUF`;
    /// Linux caps it at `net.core.rmem_max`). `None` keeps the system's
    /// default.
    pub recv_buffer: Option<usize>,
    /// Ask for this much socket send buffer (`SO_SNDBUF`, capped at
    /// `net.core.wmem_max`). `None` keeps the system's default.
    pub send_buffer: Option<usize>,
}

/// The socket buffers [`Options::default`] asks for: 4 MiB each way.
/// Linux's default receive buffer (208 KiB) holds 0.3 ms at 5 Gbit/s; the
/// `quiver demo` client lost 0.5–1.2% of the server's packets to it on
/// loopback (UdpRcvbufErrors), each a congestion event for the sender.
/// quic-go asks for 7 MiB for the same reason; where the system caps
/// lower, the request is clamped (best effort, never an error).
pub const DEFAULT_SOCKET_BUFFER: usize = 4 << 20;

impl Default for Options {
    /// Everything the platform supports.
    fn default() -> Self {
        Self {
            portable: false,
            gso: true,
            gro: true,
            ecn: true,
            recv_buffer: Some(DEFAULT_SOCKET_BUFFER),
            send_buffer: Some(DEFAULT_SOCKET_BUFFER),
        }
    }
}

impl Options {
    /// The plain tokio socket: no batching, offloads or ECN.
    pub fn portable() -> Self {
        Self {
            portable: true,
            gso: false,
            gro: false,
            ecn: false,
            recv_buffer: Some(DEFAULT_SOCKET_BUFFER),
            send_buffer: Some(DEFAULT_SOCKET_BUFFER),
        }
    }
}

#[derive(Debug)]
enum Imp {
    #[cfg(target_os = "linux")]
    Linux(linux::State),
    Portable,
}

/// Applies [`Options::recv_buffer`] and [`Options::send_buffer`], best
/// effort: a refusal leaves the system's default, logged at debug level.
fn set_buffers(socket: &std::net::UdpSocket, options: Options) {
    let sock = socket2::SockRef::from(socket);
    if let Some(size) = options.recv_buffer {
        if let Err(e) = sock.set_recv_buffer_size(size) {
            tracing::debug!(size, error = %e, "SO_RCVBUF refused");
        }
    }
    if let Some(size) = options.send_buffer {
        if let Err(e) = sock.set_send_buffer_size(size) {
            tracing::debug!(size, error = %e, "SO_SNDBUF refused");
        }
    }
}

/// A UDP socket registered with the tokio reactor.
#[derive(Debug)]
pub struct UdpSocket {
    io: tokio::net::UdpSocket,
    imp: Imp,
}

impl UdpSocket {
    /// Binds a socket to `addr` with every supported feature.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with(addr, Options::default())
    }

    /// Binds a socket to `addr` with the given features.
    pub fn bind_with(addr: SocketAddr, options: Options) -> io::Result<Self> {
        Self::from_std_with(std::net::UdpSocket::bind(addr)?, options)
    }

    /// Wraps a bound standard socket, with every supported feature. Must
    /// be called within a tokio runtime.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<Self> {
        Self::from_std_with(socket, Options::default())
    }

    /// Wraps a bound standard socket with the given features. Must be
    /// called within a tokio runtime.
    pub fn from_std_with(socket: std::net::UdpSocket, options: Options) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        set_buffers(&socket, options);
        let imp = Self::configure(&socket, options)?;
        let io = tokio::net::UdpSocket::from_std(socket)?;
        Ok(Self { io, imp })
    }

    #[cfg(target_os = "linux")]
    fn configure(socket: &std::net::UdpSocket, options: Options) -> io::Result<Imp> {
        if options.portable {
            return Ok(Imp::Portable);
        }
        Ok(Imp::Linux(linux::State::configure(socket, options)?))
    }

    #[cfg(not(target_os = "linux"))]
    fn configure(_socket: &std::net::UdpSocket, _options: Options) -> io::Result<Imp> {
        Ok(Imp::Portable)
    }

    /// The receive buffer the kernel granted (`SO_RCVBUF`; Linux reports
    /// twice the size asked for, its bookkeeping included), to check what
    /// [`Options::recv_buffer`] obtained.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        socket2::SockRef::from(&self.io).recv_buffer_size()
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// Whether the batched Linux path is in use (false: the portable one).
    pub fn is_batched(&self) -> bool {
        !matches!(self.imp, Imp::Portable)
    }

    /// How many datagrams one GSO send may carry; 1 without GSO. May drop
    /// to 1 later if the kernel refuses an offloaded send.
    pub fn max_gso_segments(&self) -> usize {
        match &self.imp {
            #[cfg(target_os = "linux")]
            Imp::Linux(s) => s.max_gso_segments(),
            Imp::Portable => 1,
        }
    }

    /// How many datagrams GRO may deliver in one buffer; 1 without GRO.
    /// With GRO, give [`poll_recv`](Self::poll_recv) buffers of 64 KiB so
    /// coalesced datagrams are not truncated.
    pub fn gro_segments(&self) -> usize {
        match &self.imp {
            #[cfg(target_os = "linux")]
            Imp::Linux(s) => s.gro_segments(),
            Imp::Portable => 1,
        }
    }

    /// Whether ECN codepoints are read and written.
    pub fn ecn(&self) -> bool {
        match &self.imp {
            #[cfg(target_os = "linux")]
            Imp::Linux(s) => s.ecn(),
            Imp::Portable => false,
        }
    }

    /// Whether received datagrams report their destination address
    /// ([`RecvMeta::dst_ip`]) and transmits may choose their source
    /// ([`Transmit::src_ip`]).
    pub fn pktinfo(&self) -> bool {
        match &self.imp {
            #[cfg(target_os = "linux")]
            Imp::Linux(s) => s.pktinfo(),
            Imp::Portable => false,
        }
    }

    /// Receives datagrams into `bufs`, one sender's datagram (or GRO run
    /// of datagrams) per buffer, and describes each in `meta`. Returns how
    /// many buffers were filled (at least one). Datagrams larger than
    /// their buffer are dropped.
    pub fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        #[cfg(target_os = "linux")]
        if let Imp::Linux(state) = &self.imp {
            loop {
                std::task::ready!(self.io.poll_recv_ready(cx))?;
                let result = self.io.try_io(tokio::io::Interest::READABLE, || {
                    state.recv(&self.io, bufs, meta)
                });
                match result {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Ok(0) => continue,
                    r => return Poll::Ready(r),
                }
            }
        }
        portable::poll_recv(&self.io, cx, bufs, meta)
    }

    /// Sends transmits, in order, and returns how many were sent (at least
    /// one). An error concerns the first transmit, which was not sent:
    /// callers usually log it and move on to the next (a datagram to an
    /// unreachable host must not stop the others).
    pub fn poll_send(
        &self,
        cx: &mut Context<'_>,
        transmits: &[Transmit<'_>],
    ) -> Poll<io::Result<usize>> {
        if transmits.is_empty() {
            return Poll::Ready(Ok(0));
        }
        #[cfg(target_os = "linux")]
        if let Imp::Linux(state) = &self.imp {
            loop {
                std::task::ready!(self.io.poll_send_ready(cx))?;
                let result = self.io.try_io(tokio::io::Interest::WRITABLE, || {
                    state.send(&self.io, transmits)
                });
                match result {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => return Poll::Ready(r),
                }
            }
        }
        portable::poll_send(&self.io, cx, transmits)
    }

    /// Asks the kernel to report ICMP errors for datagrams this socket sends
    /// (Linux `IP_RECVERR`/`IPV6_RECVERR`; batched sockets only); true if
    /// it will. Whoever enables it must then keep calling
    /// [`recv_icmp_errors`](Self::recv_icmp_errors): the kernel queues the
    /// reports against the socket's receive buffer.
    pub fn enable_icmp_errors(&self) -> bool {
        match &self.imp {
            #[cfg(target_os = "linux")]
            Imp::Linux(s) => s.enable_icmp_errors(std::os::fd::AsRawFd::as_raw_fd(&self.io)),
            Imp::Portable => false,
        }
    }

    /// Whether [`enable_icmp_errors`](Self::enable_icmp_errors) succeeded.
    pub fn icmp_errors(&self) -> bool {
        match &self.imp {
            #[cfg(target_os = "linux")]
            Imp::Linux(s) => s.icmp_errors(),
            Imp::Portable => false,
        }
    }

    /// Waits for ICMP "destination unreachable" reports about datagrams
    /// this socket sent and moves them into `out`; returns how many (at
    /// least one). Other reports (packet too big, local errors) are read
    /// and dropped. Never completes on a socket without
    /// [`icmp_errors`](Self::icmp_errors). Cancel-safe: a report is taken
    /// from the kernel only when returned.
    pub async fn recv_icmp_errors(&self, out: &mut [IcmpError]) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if let Imp::Linux(state) = &self.imp {
            if state.icmp_errors() && !out.is_empty() {
                loop {
                    self.io.ready(tokio::io::Interest::ERROR).await?;
                    let result = self.io.try_io(tokio::io::Interest::ERROR, || {
                        state.recv_errors(&self.io, out)
                    });
                    match result {
                        // Only other reports, and more waiting: let others
                        // run before reading on.
                        Ok(0) => yield_once().await,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        r => return r,
                    }
                }
            }
        }
        let _ = out;
        std::future::pending().await
    }

    /// Sends transmits: see [`poll_send`](Self::poll_send).
    pub async fn send(&self, transmits: &[Transmit<'_>]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_send(cx, transmits)).await
    }

    /// Receives datagrams: see [`poll_recv`](Self::poll_recv).
    pub async fn recv(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        poll_fn(|cx| self.poll_recv(cx, bufs, meta)).await
    }
}

/// Returns `Pending` once (waking at once), then `Ready`.
#[cfg(target_os = "linux")]
async fn yield_once() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// `addr` with an IPv4-mapped IPv6 address turned into plain IPv4.
pub(crate) fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => addr,
        },
        v4 => v4,
    }
}

/// `addr` as IPv6 (IPv4 becomes IPv4-mapped), for an IPv6 socket.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn map_to_v6(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
        v6 => v6,
    }
}

#[cfg(test)]
mod tests;
