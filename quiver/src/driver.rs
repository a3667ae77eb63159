//! The driver: one task per endpoint that moves datagrams between the
//! sockets and the quiver-proto endpoint, runs its timers, and wakes the
//! tasks waiting on connections and streams.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use quiver_proto::{ConnectionHandle, DatagramEvent};
use quiver_udp::{BATCH_SIZE, RecvMeta, Transmit, UdpSocket};
use tokio::time::Sleep;

use crate::icmp::{self, IcmpWatch};
use crate::shared::{Shared, State, now};

/// Receive batches handled per pass before yielding to other tasks.
const RECV_ROUNDS: usize = 8;
/// Connections the sweep dispatches to per pass. The sweep is a safety net
/// (connections that received datagrams or ran timers are dispatched in
/// every pass, and handle calls dispatch their own) that visits every
/// connection in turn, a bounded share per pass: any datagram, junk
/// included, makes a pass, so a sweep of all connections at once (as every
/// 64 passes used to be) let junk buy work growing with the number of
/// connections (issue 13).
const SWEEP_PER_PASS: usize = 32;
/// A new round of the sweep starts at most this often. Junk paces the
/// sweep (every datagram makes a pass), and a visit to an idle connection
/// is a few cache misses, so the sweep is a fixed cost per second that a
/// flood spreads over its datagrams (`junk --runtime`, 20,000 junk
/// datagrams a second, server CPU per datagram at 1,000 and 10,000 idle
/// connections: rounds every 100 ms 3.90 and 4.85 µs; every 1 s 4.15 and
/// 4.80 µs; no sweep 3.65 and 3.65 µs). Every 10 s it is a safety net
/// that costs nothing measurable.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// Send batches per pass before yielding.
const SEND_ROUNDS: usize = 8;
/// Receive buffer per datagram without GRO: room for any datagram a
/// 1500-byte MTU path carries, and then some.
const SLOT: usize = 2048;
/// Receive buffer per message with GRO: the kernel coalesces up to 64 KiB.
const GRO_SLOT: usize = 64 * 1024;
/// Receive buffers with GRO (each holds up to ~50 datagrams).
const GRO_BATCH: usize = 8;
/// The most bytes one GSO send carries (IPv4's limit on a UDP payload).
const MAX_GSO_BYTES: usize = quiver_udp::MAX_DATAGRAM;
/// Remote addresses whose route [`Routes`] remembers; past this the map
/// starts over (each peer's next datagram teaches it again).
const MAX_ROUTES: usize = 16 * 1024;

/// The endpoint's driver task.
pub(crate) struct Driver {
    shared: Arc<Shared>,
    /// The socket in use (`State::socket` of `generation`): socket 0 of
    /// [`Routes`].
    socket: Arc<UdpSocket>,
    generation: u64,
    /// The sockets on a server's preferred addresses (`State::preferred`):
    /// sockets 1.. of [`Routes`].
    preferred: Vec<Arc<UdpSocket>>,
    /// The socket before the last rebind, still read until the new one
    /// receives: datagrams already on their way to the old address are
    /// not lost.
    prev_socket: Option<Arc<UdpSocket>>,
    routes: Routes,
    /// ICMP errors for `socket` (not for the preferred sockets: only a
    /// client's handshake acts on them).
    icmp: IcmpWatch,
    /// Receive buffers, shaped per socket ([`buffer_shape`]); as large as
    /// the largest shape of any socket the driver has read.
    recv_buf: Vec<u8>,
    tx: TxBatch,
    timer: Pin<Box<Sleep>>,
    timer_deadline: Option<Instant>,
    /// Connections the current round of the sweep has still to visit.
    sweep: Vec<ConnectionHandle>,
    /// When the next round of the sweep may start.
    next_sweep: Instant,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let (socket, generation, preferred, preferred_local) = {
            let state = shared.lock();
            (
                state.socket.clone(),
                state.socket_generation,
                state.preferred.clone(),
                state.preferred_local.clone(),
            )
        };
        let buf_len = std::iter::once(&socket)
            .chain(&preferred)
            .map(|s| buffer_len(s))
            .max()
            .unwrap_or(0);
        let routes = Routes::new(&socket, preferred_local);
        let icmp = IcmpWatch::new(socket.clone());
        Self {
            shared,
            socket,
            generation,
            preferred,
            prev_socket: None,
            routes,
            icmp,
            recv_buf: vec![0; buf_len],
            tx: TxBatch::new(),
            timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            timer_deadline: None,
            sweep: Vec::new(),
            next_sweep: now() + SWEEP_INTERVAL,
        }
    }

    /// Takes the socket `Endpoint::rebind` installed, if any: the old one
    /// is kept for reading until the new one receives, and datagrams
    /// gathered for sending go out of the new one.
    fn adopt_socket(&mut self, state: &State) {
        if state.socket_generation == self.generation {
            return;
        }
        self.generation = state.socket_generation;
        let old = std::mem::replace(&mut self.socket, state.socket.clone());
        self.prev_socket = Some(old);
        self.icmp = IcmpWatch::new(self.socket.clone());
        // Never shrinks: the old socket is still read with its shape.
        let len = buffer_len(&self.socket);
        if len > self.recv_buf.len() {
            self.recv_buf.resize(len, 0);
        }
        // The routes learnt on socket 0 belong to the old socket.
        self.routes.primary_replaced(&self.socket);
        tracing::debug!(local = ?self.socket.local_addr().ok(), "driver moved to a new socket");
    }

    /// Hands the ICMP errors that arrived to the endpoint (RFC 9000
    /// §14.2.1: the core validates them); the connections they close are
    /// dispatched with the others.
    fn recv_icmp(&mut self, cx: &mut Context<'_>) {
        let shared = self.shared.clone();
        self.icmp.poll(cx, |e| {
            let mut state = shared.lock();
            let kind = icmp::unreachable(e.kind);
            tracing::debug!(destination = %e.destination, ?kind, "ICMP error");
            let closed = state
                .proto
                .handle_unreachable(e.destination, kind, e.quoted());
            state.dirty.extend(closed);
        });
    }

    /// Reads what the sockets have and hands it to the endpoint; true if
    /// more may be waiting. The system calls run without the lock, so
    /// handles are not held up by them.
    fn recv(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        if let Some(prev) = self.prev_socket.clone() {
            // Whatever the old socket still gets (its errors no longer
            // matter: it is on its way out).
            if let Ok(more) = self.recv_from(cx, &prev, None, RECV_ROUNDS) {
                if more {
                    cx.waker().wake_by_ref();
                }
            }
        }
        let socket = self.socket.clone();
        let mut more = self.recv_from(cx, &socket, Some(0), RECV_ROUNDS)?;
        for i in 0..self.preferred.len() {
            let socket = self.preferred[i].clone();
            more |= self.recv_from(cx, &socket, Some(i + 1), RECV_ROUNDS)?;
        }
        Ok(more)
    }

    /// Reads `socket`, number `index` of [`Routes`] (`None` for the socket
    /// before a rebind, which teaches no routes).
    fn recv_from(
        &mut self,
        cx: &mut Context<'_>,
        socket: &Arc<UdpSocket>,
        index: Option<usize>,
        rounds: usize,
    ) -> io::Result<bool> {
        let shared = self.shared.clone();
        let (slot, slots) = buffer_shape(socket);
        let slots = slots.min(self.recv_buf.len() / slot);
        let mut meta = [RecvMeta::default(); BATCH_SIZE];
        for _ in 0..rounds {
            // An array on the stack, not a Vec per round: receiving
            // allocates nothing.
            let mut chunks = self.recv_buf[..slot * slots].chunks_mut(slot);
            let mut bufs: [IoSliceMut<'_>; BATCH_SIZE] =
                std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
            let bufs = &mut bufs[..slots.min(BATCH_SIZE)];
            match socket.poll_recv(cx, bufs, &mut meta) {
                Poll::Pending => return Ok(false),
                Poll::Ready(Ok(n)) => {
                    if index == Some(0) && self.prev_socket.take().is_some() {
                        tracing::debug!("new socket receives: old one closed");
                    }
                    let mut state = shared.lock();
                    let time = now();
                    // RFC 9000 §9.6.2: the core learns which preferred
                    // address a datagram arrived on.
                    let local = index.and_then(|i| self.routes.local_of(i));
                    for (m, buf) in meta[..n].iter().zip(self.recv_buf.chunks_mut(slot)) {
                        if index == Some(0) {
                            self.routes.learn(m);
                        }
                        let stride = m.stride.max(1);
                        // RFC 9000 §13.4.1: the codepoint goes to the core,
                        // which reports it back in ACK frames.
                        let ecn = m
                            .ecn
                            .and_then(|e| quiver_proto::EcnCodepoint::from_bits(e.bits()));
                        for datagram in buf[..m.len].chunks_mut(stride) {
                            handle_datagram(&mut state, time, m.addr, local, ecn, datagram);
                        }
                    }
                    // The batch's events under the same lock: the tasks
                    // waiting on them run while the driver reads on.
                    process_dirty(&mut state);
                }
                Poll::Ready(Err(e)) if is_transient(&e) => {
                    // ICMP errors for earlier sends, and the like.
                    tracing::trace!(error = %e, "receive error");
                }
                Poll::Ready(Err(e)) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Runs due timers and sends what the connections have; true if more
    /// may be waiting. Datagrams are gathered under the lock and sent
    /// without it.
    fn send(&mut self, cx: &mut Context<'_>) -> bool {
        let shared = self.shared.clone();
        for _ in 0..SEND_ROUNDS {
            if self.tx.is_empty() {
                let mut state = shared.lock();
                let time = now();
                // Timers due by now, also between send rounds: pacing
                // releases come faster than the runtime's timer can wake
                // the driver (tokio's resolution is a millisecond).
                if state.proto.poll_timeout().is_some_and(|t| t <= time) {
                    self.timer_deadline = None;
                    state.proto.handle_timeout(time);
                    // Their events are dispatched with those of the
                    // connections that received datagrams.
                    let State { proto, dirty, .. } = &mut *state;
                    dirty.extend_from_slice(proto.timed_out());
                }
                // One limit for all sockets (they were bound alike; one
                // may have lost GSO to an error since).
                self.tx.gso_segments = std::iter::once(&self.socket)
                    .chain(&self.preferred)
                    .map(|s| s.max_gso_segments())
                    .min()
                    .unwrap_or(1);
                self.tx.fill(&mut state, time, &self.routes);
                if self.tx.is_empty() {
                    return false;
                }
            }
            while !self.tx.is_empty() {
                let mut out = [no_transmit(); BATCH_SIZE];
                let (index, n) = self.tx.transmits(&mut out);
                let transmits = &out[..n];
                let socket = match index {
                    0 => &self.socket,
                    i => &self.preferred[i - 1],
                };
                match socket.poll_send(cx, transmits) {
                    Poll::Pending => return false, // woken when writable
                    Poll::Ready(Ok(n)) => self.tx.advance(n.max(1)),
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, to = %transmits[0].destination, "send failed");
                        self.tx.advance(1);
                    }
                }
            }
        }
        true
    }
}

impl Driver {
    /// The sweep's share of this pass: [`SWEEP_PER_PASS`] connections of
    /// the current round, starting a new round (a list of every connection,
    /// made once per round, so once per many passes) when the last one is
    /// done and [`SWEEP_INTERVAL`] has passed.
    fn sweep_some(&mut self, state: &mut State) {
        if self.sweep.is_empty() {
            let t = now();
            if t < self.next_sweep {
                return;
            }
            self.next_sweep = t + SWEEP_INTERVAL;
            self.sweep.extend(state.conns.keys().copied());
        }
        for _ in 0..SWEEP_PER_PASS {
            let Some(h) = self.sweep.pop() else {
                break;
            };
            state.process_connection(h);
        }
    }
}

/// Receive buffer size and count for a socket: large slots with GRO.
fn buffer_shape(socket: &UdpSocket) -> (usize, usize) {
    if socket.gro_segments() > 1 {
        (GRO_SLOT, GRO_BATCH)
    } else {
        (SLOT, BATCH_SIZE)
    }
}

/// The receive buffer bytes `socket` reads into.
fn buffer_len(socket: &UdpSocket) -> usize {
    let (slot, slots) = buffer_shape(socket);
    slot * slots
}

/// Which socket, and which local IP, each datagram leaves from.
///
/// The core names the source of each datagram ([`quiver_proto::Transmit`]
/// `src`): `None` for the endpoint's own address (socket 0), a server's
/// preferred address (RFC 9000 §9.6.2) for the socket on it (sockets
/// 1..). For socket 0 bound to a wildcard address (`0.0.0.0`, `[::]`),
/// the local IP each remote address last reached us on
/// ([`RecvMeta::dst_ip`], from `IP_PKTINFO`) is sent from with
/// [`Transmit::src_ip`]: without it the kernel picks the source by route,
/// and a peer that wrote to another of our addresses (a second address
/// on the interface, an alias, a NAT's public side) sees answers from an
/// address it never contacted, which a client must discard (RFC 9000 §9).
/// Those are kept by remote address, bounded; inactive (empty, no
/// lookups) when socket 0 is bound to one address or the platform cannot
/// report destinations.
#[derive(Debug, Default)]
struct Routes {
    /// Socket 0 is bound to a wildcard address, with destinations
    /// reported, so the local IP is learnt.
    learn_ip: bool,
    map: HashMap<SocketAddr, IpAddr>,
    /// The address the core knows each preferred socket by (1.. in order).
    preferred: Vec<SocketAddr>,
}

/// Where datagrams to one remote address leave from.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Route {
    /// Index of the socket ([`Routes`]).
    socket: usize,
    /// The local IP to send from, for a socket bound to a wildcard address.
    ip: Option<IpAddr>,
}

impl Routes {
    fn new(socket: &UdpSocket, preferred: Vec<SocketAddr>) -> Self {
        Self {
            learn_ip: learns_ip(socket),
            map: HashMap::new(),
            preferred,
        }
    }

    /// `Endpoint::rebind` replaced socket 0 with `socket`: what was learnt
    /// of the old one no longer applies.
    fn primary_replaced(&mut self, socket: &UdpSocket) {
        self.learn_ip = learns_ip(socket);
        self.map.clear();
    }

    /// A datagram `meta` arrived on socket 0.
    fn learn(&mut self, meta: &RecvMeta) {
        if !self.learn_ip {
            return;
        }
        let Some(ip) = meta.dst_ip else {
            return;
        };
        if self.map.get(&meta.addr) == Some(&ip) {
            return;
        }
        if self.map.len() >= MAX_ROUTES && !self.map.contains_key(&meta.addr) {
            // Bounded: a flood of spoofed sources must not grow it. The
            // capacity stays, so refilling does not allocate.
            self.map.clear();
        }
        self.map.insert(meta.addr, ip);
    }

    /// What the core calls the address of socket `index` (`None` for
    /// socket 0: the endpoint's own).
    fn local_of(&self, index: usize) -> Option<SocketAddr> {
        index
            .checked_sub(1)
            .and_then(|i| self.preferred.get(i))
            .copied()
    }

    /// The socket and IP for a datagram the core sends from `src` to
    /// `destination`. A `src` no socket is on (none should be) leaves
    /// from socket 0.
    fn route(&self, src: Option<SocketAddr>, destination: SocketAddr) -> Route {
        if let Some(i) = src.and_then(|a| self.preferred.iter().position(|p| *p == a)) {
            return Route {
                socket: i + 1,
                ip: None,
            };
        }
        Route {
            socket: 0,
            ip: self
                .learn_ip
                .then(|| self.map.get(&destination).copied())
                .flatten(),
        }
    }
}

/// Whether a socket is bound to a wildcard address and reports the
/// address each datagram was sent to.
fn learns_ip(socket: &UdpSocket) -> bool {
    socket.local_addr().is_ok_and(|a| a.ip().is_unspecified()) && socket.pktinfo()
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::Interrupted
    ) || e.raw_os_error().is_some_and(is_icmp_errno)
}

#[cfg(unix)]
fn is_icmp_errno(code: i32) -> bool {
    // EHOSTUNREACH, ENETUNREACH, EMSGSIZE, ECONNREFUSED on Linux.
    matches!(code, 113 | 101 | 90 | 111)
}

#[cfg(not(unix))]
fn is_icmp_errno(_code: i32) -> bool {
    false
}

fn handle_datagram(
    state: &mut State,
    time: Instant,
    from: SocketAddr,
    local: Option<SocketAddr>,
    ecn: Option<quiver_proto::EcnCodepoint>,
    datagram: &mut [u8],
) {
    match state
        .proto
        .handle_with_local(time, from, local, ecn, datagram)
    {
        DatagramEvent::Connection(h) => {
            if state.dirty.last() != Some(&h) {
                state.dirty.push(h);
            }
        }
        DatagramEvent::Handled => {}
        DatagramEvent::NewConnection(id) => {
            if state.closed || state.endpoint_refs == 0 {
                state.proto.ignore(id);
            } else {
                state.incoming.push_back((id, from));
                state.accept_wakers.drain(..).for_each(Waker::wake);
            }
        }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let shared = this.shared.clone();
        let mut again = false;
        for pass in 0..4 {
            // Wakes from here on are seen at the end of the pass.
            {
                let mut state = shared.lock();
                if pass == 0 {
                    state.set_driver_waker(cx.waker());
                }
                state.driver_woken = false;
                this.adopt_socket(&state);
            }
            this.recv_icmp(cx);
            match this.recv(cx) {
                Ok(more) => again |= more,
                Err(e) => {
                    tracing::error!(error = %e, "UDP socket failed; endpoint stopped");
                    let mut state = shared.lock();
                    state.driver_error = Some(e.kind());
                    fail_all(&mut state);
                    return Poll::Ready(());
                }
            }
            // The events of what was received were dispatched with each
            // batch: the handles may answer while this pass sends.
            again |= this.send(cx);
            let mut state = shared.lock();
            process_dirty(&mut state);
            this.sweep_some(&mut state);
            // Timer for the earliest protocol deadline.
            let deadline = state.proto.poll_timeout();
            if deadline != this.timer_deadline {
                this.timer_deadline = deadline;
                if let Some(t) = deadline {
                    this.timer.as_mut().reset(tokio::time::Instant::from_std(t));
                }
            }
            let timer_fired = deadline.is_some() && this.timer.as_mut().poll(cx).is_ready();
            let woken = timer_fired || state.driver_woken;
            again |= woken;
            if !woken || pass == 3 {
                if state.endpoint_refs == 0 && state.conns.is_empty() {
                    tracing::debug!("endpoint driver finished");
                    return Poll::Ready(());
                }
                break;
            }
        }
        if again {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// Dispatches the events of the connections that received datagrams.
fn process_dirty(state: &mut State) {
    let mut dirty = std::mem::take(&mut state.dirty);
    dirty.sort_unstable_by_key(|h| h.0);
    dirty.dedup();
    for &h in &dirty {
        state.process_connection(h);
    }
    dirty.clear();
    if state.dirty.is_empty() {
        // Keep the allocation.
        state.dirty = dirty;
    }
}

/// The socket failed: every connection is lost.
fn fail_all(state: &mut State) {
    let handles: Vec<ConnectionHandle> = state.conns.keys().copied().collect();
    for h in handles {
        if let Some(cs) = state.conns.get_mut(&h) {
            cs.on_lost(quiver_proto::ConnectionError::LocallyClosed);
            cs.drained = true;
        }
        state.proto.remove(h);
    }
    state.accept_wakers.drain(..).for_each(Waker::wake);
    state.idle_wakers.drain(..).for_each(Waker::wake);
}

/// Transmits from `poll_transmit`, each one datagram or a GSO batch the
/// core built (several datagrams of one size but the last, to one
/// destination), gathered under the lock and sent without it. A socket
/// without GSO gets one datagram per transmit from the core
/// (`max_datagrams` 1), and `quiver-udp` sends any batch one datagram at a
/// time if the kernel refuses GSO later.
#[derive(Debug)]
struct TxBatch {
    buf: Vec<u8>,
    runs: Vec<Run>,
    /// Runs already sent.
    sent: usize,
    /// Datagrams the sockets take per send (`max_datagrams`).
    gso_segments: usize,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    destination: SocketAddr,
    /// The socket and local address to send from ([`Routes`]).
    route: Route,
    /// The ECN codepoint the core asked for (one per transmit: it is per
    /// IP header, so per datagram of a GSO batch alike).
    ecn: Option<quiver_proto::EcnCodepoint>,
    start: usize,
    end: usize,
    /// The core's segment size: `Some` for several datagrams.
    segment: Option<usize>,
}

/// Bytes of transmits gathered per fill at most (besides the last one):
/// bounds the buffer while each transmit may carry up to 64 KiB.
const FILL_BYTES: usize = 4 * MAX_GSO_BYTES;

impl TxBatch {
    fn new() -> Self {
        Self {
            buf: Vec::with_capacity(BATCH_SIZE * 1500),
            runs: Vec::with_capacity(BATCH_SIZE),
            sent: 0,
            gso_segments: 1,
        }
    }

    fn is_empty(&self) -> bool {
        self.sent >= self.runs.len()
    }

    fn fill(&mut self, state: &mut State, time: Instant, routes: &Routes) {
        self.buf.clear();
        self.runs.clear();
        self.sent = 0;
        while self.runs.len() < BATCH_SIZE && self.buf.len() < FILL_BYTES {
            let Some(t) = state
                .proto
                .poll_transmit(time, self.gso_segments, &mut self.buf)
            else {
                break;
            };
            let end = self.buf.len();
            self.runs.push(Run {
                destination: t.destination,
                route: routes.route(t.src, t.destination),
                ecn: t.ecn,
                start: end - t.size,
                end,
                segment: t.segment_size,
            });
        }
    }

    /// The runs not yet sent that leave from the same socket as the first
    /// of them, written into `out` (no allocation per send), with that
    /// socket's index and how many there are.
    fn transmits<'a>(&'a self, out: &mut [Transmit<'a>; BATCH_SIZE]) -> (usize, usize) {
        let socket = self.runs[self.sent].route.socket;
        let mut n = 0;
        for (slot, r) in out.iter_mut().zip(
            self.runs[self.sent..]
                .iter()
                .take_while(|r| r.route.socket == socket),
        ) {
            *slot = Transmit {
                destination: r.destination,
                ecn: r
                    .ecn
                    .and_then(|e| quiver_udp::EcnCodepoint::from_bits(e.bits())),
                contents: &self.buf[r.start..r.end],
                segment_size: r.segment,
                src_ip: r.route.ip,
            };
            n += 1;
        }
        (socket, n)
    }

    fn advance(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.runs.len());
    }
}

/// An empty transmit, to fill [`TxBatch::transmits`]' array with.
fn no_transmit<'a>() -> Transmit<'a> {
    Transmit::new(SocketAddr::from(([0, 0, 0, 0], 0)), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(addr: &str) -> Arc<UdpSocket> {
        Arc::new(UdpSocket::bind(addr.parse().unwrap()).unwrap())
    }

    fn from(addr: &str, dst_ip: Option<IpAddr>) -> RecvMeta {
        RecvMeta {
            addr: addr.parse().unwrap(),
            dst_ip,
            ..RecvMeta::default()
        }
    }

    // Sockets register with tokio's reactor: the tests run in a runtime.
    #[tokio::test]
    async fn one_socket_on_one_address_keeps_no_routes() {
        let mut routes = Routes::new(&socket("127.0.0.1:0"), Vec::new());
        routes.learn(&from("127.0.0.9:1", Some([127, 0, 0, 1].into())));
        assert!(routes.map.is_empty());
        assert_eq!(
            routes.route(None, "127.0.0.9:1".parse().unwrap()),
            Route::default()
        );
    }

    /// RFC 9000 §9.6.2: the core's source picks the socket; a datagram
    /// from the original address leaves from socket 0 whatever socket the
    /// peer last reached.
    #[tokio::test]
    async fn the_cores_source_picks_the_socket() {
        let pa: SocketAddr = "127.0.0.2:4500".parse().unwrap();
        let routes = Routes::new(&socket("127.0.0.1:0"), vec![pa]);
        let peer: SocketAddr = "127.0.0.9:1".parse().unwrap();
        assert_eq!(routes.local_of(0), None);
        assert_eq!(routes.local_of(1), Some(pa));
        assert_eq!(routes.local_of(2), None);
        assert_eq!(
            routes.route(Some(pa), peer),
            Route {
                socket: 1,
                ip: None
            }
        );
        assert_eq!(routes.route(None, peer), Route::default());
        // An address no socket is on: the endpoint's own socket.
        assert_eq!(
            routes.route(Some("127.0.0.3:1".parse().unwrap()), peer),
            Route::default()
        );
    }

    #[test]
    fn runs_are_sent_per_socket() {
        let mut tx = TxBatch::new();
        tx.buf.extend_from_slice(&[0; 40]);
        let run = |socket, start, segment| Run {
            destination: "127.0.0.9:1".parse().unwrap(),
            route: Route { socket, ip: None },
            ecn: None,
            start,
            end: start + 10,
            segment,
        };
        tx.runs = vec![run(0, 0, None), run(0, 10, Some(4)), run(1, 20, None)];
        let mut out = [no_transmit(); BATCH_SIZE];
        let (socket, n) = tx.transmits(&mut out);
        assert_eq!((socket, n), (0, 2));
        // The core's segment size goes to the socket as it is.
        assert_eq!(out[0].segment_size, None);
        assert_eq!(out[1].segment_size, Some(4));
        assert_eq!(out[1].contents.len(), 10);
        tx.advance(2);
        let mut out = [no_transmit(); BATCH_SIZE];
        let (socket, n) = tx.transmits(&mut out);
        assert_eq!((socket, n), (1, 1));
        tx.advance(1);
        assert!(tx.is_empty());
    }
}
