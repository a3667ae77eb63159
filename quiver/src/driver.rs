//! The driver: one task per endpoint that moves datagrams between the
//! socket and the quiver-proto endpoint, runs its timers, and wakes the
//! tasks waiting on connections and streams.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use quiver_proto::{ConnectionHandle, DatagramEvent};
use quiver_udp::{BATCH_SIZE, RecvMeta, Transmit, UdpSocket};
use tokio::time::Sleep;

use crate::shared::{Shared, State, now};

/// Receive batches handled per pass before yielding to other tasks.
const RECV_ROUNDS: usize = 8;
/// Driver passes between dispatches to every connection (a safety net:
/// connections that received datagrams or ran timers are dispatched in
/// every pass).
const SWEEP_EVERY: u32 = 64;
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
/// Remote addresses whose local IP [`LocalIps`] remembers; past this the
/// map starts over (each peer's next datagram teaches it again).
const MAX_LOCAL_IPS: usize = 16 * 1024;

/// The endpoint's driver task.
pub(crate) struct Driver {
    shared: Arc<Shared>,
    /// The socket in use (`State::socket` of `generation`).
    socket: Arc<UdpSocket>,
    generation: u64,
    /// The socket before the last rebind, still read until the new one
    /// receives: datagrams already on their way to the old address are
    /// not lost.
    prev_socket: Option<Arc<UdpSocket>>,
    local_ips: LocalIps,
    recv_buf: Vec<u8>,
    slot: usize,
    tx: TxBatch,
    timer: Pin<Box<Sleep>>,
    timer_deadline: Option<Instant>,
    /// Passes left before the next dispatch to every connection (a
    /// safety net; events come from datagrams, timers and handle calls,
    /// and handle calls dispatch their own).
    sweep_in: u32,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let (socket, generation) = {
            let state = shared.lock();
            (state.socket.clone(), state.socket_generation)
        };
        let (slot, slots) = buffer_shape(&socket);
        let gso = socket.max_gso_segments();
        let local_ips = LocalIps::for_socket(&socket);
        Self {
            shared,
            socket,
            generation,
            prev_socket: None,
            local_ips,
            recv_buf: vec![0; slot * slots],
            slot,
            tx: TxBatch::new(gso),
            timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            timer_deadline: None,
            sweep_in: SWEEP_EVERY,
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
        let (slot, slots) = buffer_shape(&self.socket);
        if slot != self.slot {
            self.slot = slot;
            self.recv_buf = vec![0; slot * slots];
        }
        // The addresses learnt belong to the old socket.
        self.local_ips = LocalIps::for_socket(&self.socket);
        tracing::debug!(local = ?self.socket.local_addr().ok(), "driver moved to a new socket");
    }

    /// Reads what the sockets have and hands it to the endpoint; true if
    /// more may be waiting. The system calls run without the lock, so
    /// handles are not held up by them.
    fn recv(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        if let Some(prev) = self.prev_socket.clone() {
            // Whatever the old socket still gets (its errors no longer
            // matter: it is on its way out).
            if let Ok(more) = self.recv_from(cx, &prev, RECV_ROUNDS) {
                if more {
                    cx.waker().wake_by_ref();
                }
            }
        }
        let socket = self.socket.clone();
        self.recv_from(cx, &socket, RECV_ROUNDS)
    }

    fn recv_from(
        &mut self,
        cx: &mut Context<'_>,
        socket: &Arc<UdpSocket>,
        rounds: usize,
    ) -> io::Result<bool> {
        let shared = self.shared.clone();
        let current = Arc::ptr_eq(socket, &self.socket);
        let mut meta = [RecvMeta::default(); BATCH_SIZE];
        for _ in 0..rounds {
            let mut bufs: Vec<IoSliceMut<'_>> = self
                .recv_buf
                .chunks_mut(self.slot)
                .map(IoSliceMut::new)
                .collect();
            match socket.poll_recv(cx, &mut bufs, &mut meta) {
                Poll::Pending => return Ok(false),
                Poll::Ready(Ok(n)) => {
                    drop(bufs);
                    if current && self.prev_socket.take().is_some() {
                        tracing::debug!("new socket receives: old one closed");
                    }
                    let mut state = shared.lock();
                    let time = now();
                    for (m, buf) in meta[..n].iter().zip(self.recv_buf.chunks_mut(self.slot)) {
                        if current {
                            self.local_ips.learn(m);
                        }
                        let stride = m.stride.max(1);
                        // RFC 9000 §13.4.1: the codepoint goes to the core,
                        // which reports it back in ACK frames.
                        let ecn = m
                            .ecn
                            .and_then(|e| quiver_proto::EcnCodepoint::from_bits(e.bits()));
                        for datagram in buf[..m.len].chunks_mut(stride) {
                            handle_datagram(&mut state, time, m.addr, ecn, datagram);
                        }
                    }
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
        let socket = self.socket.clone();
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
                self.tx.gso_segments = socket.max_gso_segments();
                self.tx.fill(&mut state, time, &self.local_ips);
                if self.tx.is_empty() {
                    return false;
                }
            }
            while !self.tx.is_empty() {
                let transmits = self.tx.transmits();
                match socket.poll_send(cx, &transmits) {
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

/// Receive buffer size and count for a socket: large slots with GRO.
fn buffer_shape(socket: &UdpSocket) -> (usize, usize) {
    if socket.gro_segments() > 1 {
        (GRO_SLOT, GRO_BATCH)
    } else {
        (SLOT, BATCH_SIZE)
    }
}

/// For a socket bound to a wildcard address (`0.0.0.0`, `[::]`): per
/// remote address, the local IP its last datagram arrived on
/// ([`RecvMeta::dst_ip`], from `IP_PKTINFO`), which replies to it are sent
/// from ([`Transmit::src_ip`]). Without it the kernel picks the source by
/// route, and a peer that wrote to another of our addresses (a second
/// address on the interface, an alias, a NAT's public side) sees answers
/// from an address it never contacted, which a client must discard (RFC
/// 9000 §9.6 concerns only a server's preferred address; other addresses
/// are unknown paths). The proto `Transmit` has no source field, so the
/// runtime keeps the mapping, by remote address: all connections of one
/// peer address share it, and a path probe to a new peer address goes out
/// with what its datagrams taught. Inactive (empty) for sockets bound to
/// one address, and when the platform cannot report destinations.
#[derive(Debug, Default)]
struct LocalIps {
    active: bool,
    map: HashMap<SocketAddr, IpAddr>,
}

impl LocalIps {
    fn for_socket(socket: &UdpSocket) -> Self {
        let wildcard = socket.local_addr().is_ok_and(|a| a.ip().is_unspecified());
        Self {
            active: wildcard && socket.pktinfo(),
            map: HashMap::new(),
        }
    }

    fn learn(&mut self, meta: &RecvMeta) {
        let Some(ip) = meta.dst_ip.filter(|_| self.active) else {
            return;
        };
        if self.map.get(&meta.addr) == Some(&ip) {
            return;
        }
        if self.map.len() >= MAX_LOCAL_IPS && !self.map.contains_key(&meta.addr) {
            // Bounded: a flood of spoofed sources must not grow it. The
            // capacity stays, so refilling does not allocate.
            self.map.clear();
        }
        self.map.insert(meta.addr, ip);
    }

    fn source_for(&self, destination: SocketAddr) -> Option<IpAddr> {
        if !self.active {
            return None;
        }
        self.map.get(&destination).copied()
    }
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
    ecn: Option<quiver_proto::EcnCodepoint>,
    datagram: &mut [u8],
) {
    match state.proto.handle_ecn(time, from, ecn, datagram) {
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
        shared.lock().set_driver_waker(cx.waker());
        let mut again = false;
        for _ in 0..4 {
            // Wakes from here on are seen at the end of the pass.
            {
                let mut state = shared.lock();
                state.driver_woken = false;
                this.adopt_socket(&state);
            }
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
            // Events from what was received first: the handles may answer
            // while this pass sends.
            process_dirty(&mut shared.lock());
            again |= this.send(cx);
            let mut state = shared.lock();
            this.sweep_in = this.sweep_in.saturating_sub(1);
            if this.sweep_in == 0 {
                this.sweep_in = SWEEP_EVERY;
                state.dirty.clear();
                process_all(&mut state);
            } else {
                process_dirty(&mut state);
            }
            // Timer for the earliest protocol deadline.
            let deadline = state.proto.poll_timeout();
            if deadline != this.timer_deadline {
                this.timer_deadline = deadline;
                if let Some(t) = deadline {
                    this.timer.as_mut().reset(tokio::time::Instant::from_std(t));
                }
            }
            let timer_fired = deadline.is_some() && this.timer.as_mut().poll(cx).is_ready();
            if !(timer_fired || state.driver_woken) {
                break;
            }
            again = timer_fired || state.driver_woken;
        }
        let state = shared.lock();
        if state.endpoint_refs == 0 && state.conns.is_empty() {
            tracing::debug!("endpoint driver finished");
            return Poll::Ready(());
        }
        drop(state);
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

/// Dispatches every connection's events.
fn process_all(state: &mut State) {
    let handles: Vec<ConnectionHandle> = state.conns.keys().copied().collect();
    for h in handles {
        state.process_connection(h);
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

/// Datagrams from `poll_transmit`, coalesced for GSO: consecutive
/// datagrams to one destination, all of one size but the last, go out as
/// one transmit.
#[derive(Debug)]
struct TxBatch {
    buf: Vec<u8>,
    runs: Vec<Run>,
    /// Runs already sent.
    sent: usize,
    gso_segments: usize,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    destination: SocketAddr,
    /// The local address to send from ([`LocalIps`]).
    source: Option<IpAddr>,
    /// The ECN codepoint the core asked for (one per run: it is per IP
    /// header, so per datagram of a GSO batch alike).
    ecn: Option<quiver_proto::EcnCodepoint>,
    start: usize,
    end: usize,
    segment: usize,
    count: usize,
    /// A shorter datagram ended the run.
    closed: bool,
}

impl TxBatch {
    fn new(gso_segments: usize) -> Self {
        Self {
            buf: Vec::with_capacity(BATCH_SIZE * 1500),
            runs: Vec::with_capacity(BATCH_SIZE),
            sent: 0,
            gso_segments,
        }
    }

    fn is_empty(&self) -> bool {
        self.sent >= self.runs.len()
    }

    fn fill(&mut self, state: &mut State, time: Instant, local_ips: &LocalIps) {
        self.buf.clear();
        self.runs.clear();
        self.sent = 0;
        while self.runs.len() < BATCH_SIZE {
            let Some(t) = state.proto.poll_transmit(time, &mut self.buf) else {
                break;
            };
            let end = self.buf.len();
            let start = end - t.size;
            if let Some(run) = self.runs.last_mut() {
                if !run.closed
                    && run.destination == t.destination
                    && run.ecn == t.ecn
                    && run.end == start
                    && t.size <= run.segment
                    && run.count < self.gso_segments
                    && run.end - run.start + t.size <= MAX_GSO_BYTES
                {
                    run.end = end;
                    run.count += 1;
                    run.closed = t.size < run.segment;
                    continue;
                }
            }
            self.runs.push(Run {
                destination: t.destination,
                source: local_ips.source_for(t.destination),
                ecn: t.ecn,
                start,
                end,
                segment: t.size,
                count: 1,
                closed: false,
            });
        }
    }

    fn transmits(&self) -> Vec<Transmit<'_>> {
        self.runs[self.sent..]
            .iter()
            .map(|r| Transmit {
                destination: r.destination,
                ecn: r
                    .ecn
                    .and_then(|e| quiver_udp::EcnCodepoint::from_bits(e.bits())),
                contents: &self.buf[r.start..r.end],
                segment_size: (r.count > 1).then_some(r.segment),
                src_ip: r.source,
            })
            .collect()
    }

    fn advance(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.runs.len());
    }
}
