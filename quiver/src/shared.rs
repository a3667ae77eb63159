//! The state an endpoint's driver and its handles share: the quiver-proto
//! endpoint behind one mutex, and per connection what the handles wait on.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use quiver_proto::endpoint::SeededState;
use quiver_proto::frame::Dir;
use quiver_proto::streams::{StreamEvent, StreamId};
use quiver_proto::{
    ConnectionError, ConnectionHandle, ConnectionStats, Event, IncomingId, Side, VarInt,
};

use crate::config::ClientConfig;

/// The current time, from tokio's clock (so paused-time tests work).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// What an endpoint's driver and handles share.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(state: State) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(state),
        })
    }

    /// Locks the state. A panic elsewhere while it was held leaves it as
    /// it was; carrying on is no worse than poisoning every handle.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything behind the endpoint's mutex.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) proto: quiver_proto::Endpoint,
    /// The UDP socket. The driver keeps its own reference and takes the
    /// new one when `socket_generation` changes (`Endpoint::rebind`).
    pub(crate) socket: Arc<quiver_udp::UdpSocket>,
    /// Bumped by every rebind.
    pub(crate) socket_generation: u64,
    /// Sockets on the server's preferred addresses (RFC 9000 §9.6), read
    /// and sent from alongside `socket`; fixed when the endpoint is made
    /// (a rebind replaces only `socket`).
    pub(crate) preferred: Vec<Arc<quiver_udp::UdpSocket>>,
    /// The preferred address advertised for each socket of `preferred`
    /// (its own address, or the one set in the endpoint's configuration):
    /// what the core is told a datagram arrived on, and what its
    /// `Transmit::src` names.
    pub(crate) preferred_local: Vec<SocketAddr>,
    /// Keyed by handles the endpoint numbered: a fast hasher, not std's
    /// SipHash (looked up on every stream operation).
    pub(crate) conns: HashMap<ConnectionHandle, ConnState, SeededState>,
    /// Connection attempts not yet handed to the application.
    pub(crate) incoming: VecDeque<(IncomingId, SocketAddr)>,
    /// Connections that received datagrams since the driver last
    /// dispatched events, or ran timers: only these (and all now and then) are
    /// visited, so a pass costs the connections that moved, not all.
    pub(crate) dirty: Vec<ConnectionHandle>,
    pub(crate) accept_wakers: Vec<Waker>,
    pub(crate) idle_wakers: Vec<Waker>,
    pub(crate) default_client: Option<ClientConfig>,
    /// [`crate::Endpoint`] handles alive.
    pub(crate) endpoint_refs: usize,
    /// `Endpoint::close` was called: no new connections.
    pub(crate) closed: bool,
    driver: Option<Waker>,
    /// Something changed that the driver must act on.
    pub(crate) driver_woken: bool,
    /// The driver stopped on a socket error.
    pub(crate) driver_error: Option<std::io::ErrorKind>,
}

impl State {
    pub(crate) fn new(
        proto: quiver_proto::Endpoint,
        socket: quiver_udp::UdpSocket,
        preferred: Vec<quiver_udp::UdpSocket>,
        preferred_local: Vec<SocketAddr>,
    ) -> Self {
        Self {
            proto,
            socket: Arc::new(socket),
            socket_generation: 0,
            preferred: preferred.into_iter().map(Arc::new).collect(),
            preferred_local,
            conns: HashMap::default(),
            incoming: VecDeque::new(),
            dirty: Vec::new(),
            accept_wakers: Vec::new(),
            idle_wakers: Vec::new(),
            default_client: None,
            endpoint_refs: 1,
            closed: false,
            driver: None,
            driver_woken: false,
            driver_error: None,
        }
    }

    /// Asks the driver for a pass: something may need sending.
    pub(crate) fn wake_driver(&mut self) {
        // A wake since the driver's pass began is enough: the pass ends
        // by checking the flag and runs again (or wakes itself).
        if std::mem::replace(&mut self.driver_woken, true) {
            return;
        }
        if let Some(w) = &self.driver {
            w.wake_by_ref();
        }
    }

    pub(crate) fn set_driver_waker(&mut self, waker: &Waker) {
        match &self.driver {
            Some(w) if w.will_wake(waker) => {}
            _ => self.driver = Some(waker.clone()),
        }
    }

    /// Whether no connection is left that still exchanges packets.
    pub(crate) fn is_idle(&self) -> bool {
        self.conns.values().all(|c| c.drained)
    }

    /// Whether no connection will send again: each has drained or is
    /// draining with nothing left to send (see
    /// [`quiver_proto::Connection::is_quiet`]).
    pub(crate) fn is_quiet(&self) -> bool {
        self.conns.iter().all(|(&h, c)| {
            c.drained
                || self
                    .proto
                    .connection_ref(h)
                    .is_none_or(|conn| conn.is_quiet())
        })
    }

    /// Dispatches the events of connection `handle` to the tasks waiting
    /// on it, and frees its protocol state once it has drained.
    pub(crate) fn process_connection(&mut self, handle: ConnectionHandle) {
        let Some(cs) = self.conns.get_mut(&handle) else {
            return;
        };
        // Events and reads only: no visit of the connection follows (the
        // sweep of the driver comes here for every connection in turn).
        let span = cs.span.clone();
        let _span = span.enter();
        while let Some(event) = self.proto.poll_event(handle) {
            if event == Event::Connected {
                // Kept here: the answer must outlive the protocol state.
                cs.zero_rtt_accepted = self
                    .proto
                    .connection_ref(handle)
                    .is_some_and(|c| c.is_zero_rtt_accepted());
            }
            cs.on_event(event);
        }
        let Some(conn) = self.proto.connection_ref(handle) else {
            return;
        };
        cs.stats = conn.stats();
        cs.rtt = conn.rtt();
        cs.remote = conn.remote_address();
        let quiet = conn.is_quiet();
        if conn.is_drained() {
            let reason = conn
                .close_reason()
                .cloned()
                .unwrap_or(ConnectionError::LocallyClosed);
            cs.on_lost(reason);
            cs.drained = true;
            tracing::debug!("connection drained");
            drop(_span);
            self.proto.remove(handle);
            if self.conns.get(&handle).is_some_and(|c| c.refs == 0) {
                self.conns.remove(&handle);
            }
            if self.is_idle() {
                self.idle_wakers.drain(..).for_each(Waker::wake);
            }
        } else if quiet && !self.idle_wakers.is_empty() && self.is_quiet() {
            // `Endpoint::wait_quiet` waits with the idle wakers; the check
            // of every connection runs only while someone waits.
            self.idle_wakers.drain(..).for_each(Waker::wake);
        }
    }

    /// One handle of `handle` fewer; the last one closes the connection.
    pub(crate) fn release(&mut self, handle: ConnectionHandle) {
        let Some(cs) = self.conns.get_mut(&handle) else {
            return;
        };
        cs.refs -= 1;
        if cs.refs > 0 {
            return;
        }
        if cs.drained {
            self.conns.remove(&handle);
            return;
        }
        if let Some(conn) = self.proto.connection(handle) {
            if !conn.is_closed() {
                cs.span
                    .in_scope(|| tracing::debug!("last handle dropped: closing with code 0"));
                conn.close(now(), VarInt::from_u32(0), bytes::Bytes::new());
            }
        }
        self.wake_driver();
    }
}

/// The per-connection state the handles wait on.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub(crate) side: Side,
    pub(crate) span: tracing::Span,
    /// The handshake completed.
    pub(crate) connected: bool,
    /// Whether 0-RTT was accepted, as known when the handshake completed.
    pub(crate) zero_rtt_accepted: bool,
    /// Why the connection ended, once it has.
    pub(crate) error: Option<ConnectionError>,
    /// The protocol state was freed.
    pub(crate) drained: bool,
    /// Handles: `Connecting`, `Connection` clones and streams.
    pub(crate) refs: usize,
    pub(crate) wakers: Wakers,
    /// Streams the peer stopped (STOP_SENDING), with its code, kept for
    /// their send handles (removed when the handle drops).
    pub(crate) stopped: StreamMap<VarInt>,
    /// Streams whose data was all acknowledged, kept likewise.
    pub(crate) finished: StreamSet,
    /// Streams with a live send handle. An end (Finished, Stopped) is kept
    /// only for those, and for peer streams not yet accepted (whose
    /// handle is still to come): one arriving after the handle dropped
    /// (finish, drop, then the ACK: the usual order) would otherwise be
    /// kept for good, one entry per stream the connection ever used.
    pub(crate) live_send: StreamSet,
    /// Index of the last of the peer's bidirectional streams accepted.
    pub(crate) accepted_bi: Option<u64>,
    pub(crate) stats: ConnectionStats,
    pub(crate) rtt: Duration,
    pub(crate) remote: SocketAddr,
}

/// Per-stream maps of a connection: looked up on every stream operation,
/// so with the endpoint's fast hasher, not std's SipHash. The keys cannot
/// be chosen to collide: they are streams this connection holds handles
/// for, numbered in order by each side and bounded by the stream limits.
pub(crate) type StreamMap<V> = HashMap<StreamId, V, SeededState>;
/// See [`StreamMap`].
pub(crate) type StreamSet = HashSet<StreamId, SeededState>;

/// Whether the end of stream `id` is kept for a send handle: one is
/// alive, or the stream is the peer's and not yet accepted (a STOP_SENDING
/// can come before the application takes the stream).
fn keeps_end(live_send: &StreamSet, accepted_bi: Option<u64>, side: Side, id: StreamId) -> bool {
    live_send.contains(&id)
        || (id.initiator() != side
            && id.dir() == Dir::Bi
            && accepted_bi.is_none_or(|last| id.index() > last))
}

/// Tasks waiting on a connection.
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    pub(crate) connecting: Option<Waker>,
    pub(crate) accept: [Vec<Waker>; 2],
    pub(crate) open: [Vec<Waker>; 2],
    pub(crate) datagram: Vec<Waker>,
    pub(crate) closed: Vec<Waker>,
    pub(crate) read: StreamMap<Waker>,
    pub(crate) write: StreamMap<Waker>,
    pub(crate) stopped: StreamMap<Waker>,
}

/// Adds `waker` to `list` unless a waker there already wakes the same
/// task: poll-based callers poll again and again, and the list is only
/// drained by an event.
pub(crate) fn register(list: &mut Vec<Waker>, waker: &Waker) {
    if !list.iter().any(|w| w.will_wake(waker)) {
        list.push(waker.clone());
    }
}

pub(crate) fn dir_index(dir: Dir) -> usize {
    match dir {
        Dir::Bi => 0,
        Dir::Uni => 1,
    }
}

impl ConnState {
    pub(crate) fn new(handle: ConnectionHandle, side: Side, remote: SocketAddr) -> Self {
        let span = tracing::debug_span!("connection", id = handle.0, ?side, %remote);
        Self {
            side,
            span,
            connected: false,
            zero_rtt_accepted: false,
            error: None,
            drained: false,
            refs: 1,
            wakers: Wakers::default(),
            stopped: StreamMap::default(),
            finished: StreamSet::default(),
            live_send: StreamSet::default(),
            accepted_bi: None,
            stats: ConnectionStats::default(),
            rtt: Duration::ZERO,
            remote,
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                tracing::debug!("handshake complete");
                self.connected = true;
                if let Some(w) = self.wakers.connecting.take() {
                    w.wake();
                }
                // Before the handshake completes the core opens streams
                // only for a client in 0-RTT or a server with 1-RTT keys; a
                // task refused earlier waits for this, not for a
                // MAX_STREAMS that may never come.
                self.wakers
                    .open
                    .iter_mut()
                    .for_each(|w| w.drain(..).for_each(Waker::wake));
            }
            Event::HandshakeConfirmed => {}
            Event::ConnectionLost { reason } => {
                tracing::debug!(%reason, "connection lost");
                self.on_lost(reason);
            }
            Event::DatagramReceived => self.wakers.datagram.drain(..).for_each(Waker::wake),
            Event::Stream(ev) => self.on_stream_event(ev),
        }
    }

    fn on_stream_event(&mut self, ev: StreamEvent) {
        let w = &mut self.wakers;
        match ev {
            StreamEvent::Opened { dir } => w.accept[dir_index(dir)].drain(..).for_each(Waker::wake),
            StreamEvent::Available { dir } => {
                w.open[dir_index(dir)].drain(..).for_each(Waker::wake)
            }
            StreamEvent::Readable { id } => {
                if let Some(w) = w.read.remove(&id) {
                    w.wake();
                }
            }
            StreamEvent::Writable { id } => {
                if let Some(w) = w.write.remove(&id) {
                    w.wake();
                }
            }
            StreamEvent::Finished { id } => {
                if keeps_end(&self.live_send, self.accepted_bi, self.side, id) {
                    self.finished.insert(id);
                }
                if let Some(w) = w.stopped.remove(&id) {
                    w.wake();
                }
            }
            StreamEvent::Stopped { id, code } => {
                if keeps_end(&self.live_send, self.accepted_bi, self.side, id) {
                    self.stopped.insert(id, code);
                }
                if let Some(w) = w.stopped.remove(&id) {
                    w.wake();
                }
                if let Some(w) = w.write.remove(&id) {
                    w.wake();
                }
            }
        }
    }

    /// The connection ended: record why (the first reason wins) and wake
    /// everyone.
    pub(crate) fn on_lost(&mut self, reason: ConnectionError) {
        if self.error.is_none() {
            self.error = Some(reason);
        }
        let w = &mut self.wakers;
        let all = w
            .connecting
            .take()
            .into_iter()
            .chain(w.accept.iter_mut().flat_map(|v| v.drain(..)))
            .chain(w.open.iter_mut().flat_map(|v| v.drain(..)))
            .chain(w.datagram.drain(..))
            .chain(w.closed.drain(..))
            .chain(w.read.drain().map(|(_, w)| w))
            .chain(w.write.drain().map(|(_, w)| w))
            .chain(w.stopped.drain().map(|(_, w)| w));
        all.for_each(Waker::wake);
    }

    /// The error to report for an operation on an ended connection.
    pub(crate) fn lost(&self) -> ConnectionError {
        self.error.clone().unwrap_or(ConnectionError::LocallyClosed)
    }
}
