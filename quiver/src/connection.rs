//! Connections: the handle applications hold, and the future of one being
//! established.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::connection::SendDatagramError;
use quiver_proto::frame::Dir;
use quiver_proto::{ConnectionError, ConnectionHandle, ConnectionStats, Side, VarInt};
use rustls::pki_types::CertificateDer;

use crate::shared::{ConnState, Shared, State, dir_index, now, register};
use crate::streams::{RecvStream, SendStream};

/// A counted reference to a connection: the last one closes it.
///
/// The connection's state counts one reference per [`ConnRef`] made by
/// [`from_counted`](Self::from_counted); its clones share that one through
/// an `Arc`, so the stream handles an application makes and drops by the
/// thousand take no lock to be made or dropped (each used to, twice per
/// stream half).
#[derive(Debug, Clone)]
pub(crate) struct ConnRef(Arc<Counted>);

/// The one counted reference a [`ConnRef`] and its clones share.
#[derive(Debug)]
pub(crate) struct Counted {
    shared: Arc<Shared>,
    handle: ConnectionHandle,
}

impl ConnRef {
    /// Wraps a reference already counted in the connection's state.
    pub(crate) fn from_counted(shared: Arc<Shared>, handle: ConnectionHandle) -> Self {
        Self(Arc::new(Counted { shared, handle }))
    }

    /// The connection's handle in the endpoint.
    pub(crate) fn handle(&self) -> ConnectionHandle {
        self.0.handle
    }

    /// Runs `f` on the locked state and this connection's part of it
    /// (absent only if the state was freed, which the handles prevent).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State, ConnectionHandle) -> R) -> R {
        let mut state = self.0.shared.lock();
        f(&mut state, self.0.handle)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.shared.lock().release(self.handle);
    }
}

/// Looks up the connection state, which every handle keeps alive.
pub(crate) fn conn_state(state: &mut State, h: ConnectionHandle) -> &mut ConnState {
    state
        .conns
        .get_mut(&h)
        .expect("connection state outlives its handles")
}

/// A QUIC connection. Cheap to clone; the connection closes (code 0) when
/// the last clone and the last of its streams are dropped.
#[derive(Debug, Clone)]
pub struct Connection(pub(crate) ConnRef);

impl Connection {
    /// Opens a bidirectional stream, waiting while the peer's stream limit
    /// is reached. The peer learns of it when data (or FIN) is sent.
    pub async fn open_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        let id = self.open(Dir::Bi).await?;
        Ok((
            SendStream::new(self.0.clone(), id),
            RecvStream::new(self.0.clone(), id),
        ))
    }

    /// Opens a unidirectional stream, waiting while the peer's stream
    /// limit is reached.
    pub async fn open_uni(&self) -> Result<SendStream, ConnectionError> {
        let id = self.open(Dir::Uni).await?;
        Ok(SendStream::new(self.0.clone(), id))
    }

    async fn open(&self, dir: Dir) -> Result<quiver_proto::streams::StreamId, ConnectionError> {
        poll_fn(|cx| self.poll_open(cx, dir)).await
    }

    /// Polling form of [`open_bi`](Self::open_bi), for callers that
    /// implement poll-based traits (such as an HTTP/3 transport adapter).
    /// Every distinct task that polled is woken when the peer's limit
    /// allows another stream.
    pub fn poll_open_bi(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(SendStream, RecvStream), ConnectionError>> {
        self.poll_open(cx, Dir::Bi).map_ok(|id| {
            (
                SendStream::new(self.0.clone(), id),
                RecvStream::new(self.0.clone(), id),
            )
        })
    }

    /// Polling form of [`open_uni`](Self::open_uni).
    pub fn poll_open_uni(&self, cx: &mut Context<'_>) -> Poll<Result<SendStream, ConnectionError>> {
        self.poll_open(cx, Dir::Uni)
            .map_ok(|id| SendStream::new(self.0.clone(), id))
    }

    fn poll_open(
        &self,
        cx: &mut Context<'_>,
        dir: Dir,
    ) -> Poll<Result<quiver_proto::streams::StreamId, ConnectionError>> {
        self.0.with(|state, h| {
            let cs = conn_state(state, h);
            if let Some(e) = &cs.error {
                return Poll::Ready(Err(e.clone()));
            }
            let Some(conn) = state.proto.connection(h) else {
                return Poll::Ready(Err(conn_state(state, h).lost()));
            };
            if let Some(id) = conn.open_stream(dir) {
                // A STREAMS_BLOCKED may be due; the stream itself is
                // announced by its first frame. Its send handle is made
                // at once.
                conn_state(state, h).live_send.insert(id);
                return Poll::Ready(Ok(id));
            }
            let cs = conn_state(state, h);
            register(&mut cs.wakers.open[dir_index(dir)], cx.waker());
            // open_stream may have queued STREAMS_BLOCKED.
            state.wake_driver();
            Poll::Pending
        })
    }

    /// Waits for the peer to open a bidirectional stream.
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        let id = self.accept(Dir::Bi).await?;
        Ok((
            SendStream::new(self.0.clone(), id),
            RecvStream::new(self.0.clone(), id),
        ))
    }

    /// Waits for the peer to open a unidirectional stream.
    pub async fn accept_uni(&self) -> Result<RecvStream, ConnectionError> {
        let id = self.accept(Dir::Uni).await?;
        Ok(RecvStream::new(self.0.clone(), id))
    }

    async fn accept(&self, dir: Dir) -> Result<quiver_proto::streams::StreamId, ConnectionError> {
        poll_fn(|cx| self.poll_accept(cx, dir)).await
    }

    /// Polling form of [`accept_bi`](Self::accept_bi), for callers that
    /// implement poll-based traits. Every distinct task polling is woken.
    pub fn poll_accept_bi(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(SendStream, RecvStream), ConnectionError>> {
        self.poll_accept(cx, Dir::Bi).map_ok(|id| {
            (
                SendStream::new(self.0.clone(), id),
                RecvStream::new(self.0.clone(), id),
            )
        })
    }

    /// Polling form of [`accept_uni`](Self::accept_uni).
    pub fn poll_accept_uni(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<RecvStream, ConnectionError>> {
        self.poll_accept(cx, Dir::Uni)
            .map_ok(|id| RecvStream::new(self.0.clone(), id))
    }

    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
        dir: Dir,
    ) -> Poll<Result<quiver_proto::streams::StreamId, ConnectionError>> {
        self.0.with(|state, h| {
            if let Some(conn) = state.proto.connection(h) {
                if let Some(id) = conn.accept_stream(dir) {
                    if dir == Dir::Bi {
                        // Its send handle is made at once.
                        let cs = conn_state(state, h);
                        cs.live_send.insert(id);
                        cs.accepted_bi = Some(id.index());
                    }
                    return Poll::Ready(Ok(id));
                }
            }
            let cs = conn_state(state, h);
            if let Some(e) = &cs.error {
                return Poll::Ready(Err(e.clone()));
            }
            if cs.drained {
                return Poll::Ready(Err(cs.lost()));
            }
            register(&mut cs.wakers.accept[dir_index(dir)], cx.waker());
            Poll::Pending
        })
    }

    /// Sends an unreliable datagram (RFC 9221).
    pub fn send_datagram(&self, data: Bytes) -> Result<(), SendDatagramError> {
        self.0.with(|state, h| {
            let Some(conn) = state.proto.connection(h) else {
                return Err(SendDatagramError::ConnectionLost(
                    conn_state(state, h).lost(),
                ));
            };
            conn.send_datagram(data)?;
            state.wake_driver();
            Ok(())
        })
    }

    /// Starts a 1-RTT key update as soon as RFC 9001 §6 allows it (the
    /// handshake confirmed, the current keys acknowledged); see
    /// [`quiver_proto::Connection::force_key_update`].
    pub fn force_key_update(&self) {
        self.0.with(|state, h| {
            if let Some(conn) = state.proto.connection(h) {
                conn.force_key_update();
                state.wake_driver();
            }
        });
    }

    /// The largest datagram [`send_datagram`](Self::send_datagram) takes
    /// now, or `None` if the peer does not accept datagrams.
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.0.with(|state, h| {
            let conn = state.proto.connection(h)?;
            let peer_max = conn.peer_params()?.max_datagram_frame_size?;
            Some(conn.max_datagram_size().min(peer_max as usize))
        })
    }

    /// Waits for a datagram from the peer.
    pub async fn read_datagram(&self) -> Result<Bytes, ConnectionError> {
        poll_fn(|cx| self.poll_read_datagram(cx)).await
    }

    /// Polling form of [`read_datagram`](Self::read_datagram), for callers
    /// that implement poll-based traits. Every distinct task polling is
    /// woken when a datagram arrives.
    pub fn poll_read_datagram(&self, cx: &mut Context<'_>) -> Poll<Result<Bytes, ConnectionError>> {
        self.0.with(|state, h| {
            if let Some(conn) = state.proto.connection(h) {
                if let Some(d) = conn.read_datagram() {
                    return Poll::Ready(Ok(d));
                }
            }
            let cs = conn_state(state, h);
            if cs.error.is_some() || cs.drained {
                return Poll::Ready(Err(cs.lost()));
            }
            register(&mut cs.wakers.datagram, cx.waker());
            Poll::Pending
        })
    }

    /// Closes the connection at once with an application error code and
    /// reason (RFC 9000 §10.2). Streams fail with
    /// [`ConnectionError::LocallyClosed`]; the peer sees `code` and
    /// `reason`. Use [`crate::Endpoint::wait_idle`] to let the close reach
    /// the peer before the process exits.
    pub fn close(&self, code: VarInt, reason: &[u8]) {
        self.0.with(|state, h| {
            if let Some(conn) = state.proto.connection(h) {
                conn.close(now(), code, Bytes::copy_from_slice(reason));
            }
            state.process_connection(h);
            state.wake_driver();
        });
    }

    /// Waits for the connection to end, and tells why; at once if it
    /// already has.
    pub async fn closed(&self) -> ConnectionError {
        poll_fn(|cx| {
            self.0.with(|state, h| {
                let cs = conn_state(state, h);
                if let Some(e) = &cs.error {
                    return Poll::Ready(e.clone());
                }
                // Once per task: a `select!` loop polls a new `closed()`
                // each round, and the list is only drained at the end.
                register(&mut cs.wakers.closed, cx.waker());
                Poll::Pending
            })
        })
        .await
    }

    /// Why the connection ended, if it has.
    pub fn close_reason(&self) -> Option<ConnectionError> {
        self.0.with(|state, h| conn_state(state, h).error.clone())
    }

    /// Counters: datagrams, bytes and packets sent and received, losses.
    pub fn stats(&self) -> ConnectionStats {
        self.0.with(|state, h| match state.proto.connection(h) {
            Some(conn) => conn.stats(),
            None => conn_state(state, h).stats,
        })
    }

    /// How many per-stream records the runtime keeps (ends and live send
    /// handles): bounded by the live handles, not by the streams ever
    /// used.
    #[doc(hidden)]
    pub fn stream_ends_for_test(&self) -> usize {
        self.0.with(|state, h| {
            let cs = conn_state(state, h);
            cs.finished.len() + cs.stopped.len() + cs.live_send.len()
        })
    }

    /// How many wakers wait on [`closed`](Self::closed): one per task.
    #[doc(hidden)]
    pub fn closed_waiters_for_test(&self) -> usize {
        self.0
            .with(|state, h| conn_state(state, h).wakers.closed.len())
    }

    /// The smoothed round-trip time.
    pub fn rtt(&self) -> Duration {
        self.0.with(|state, h| match state.proto.connection(h) {
            Some(conn) => conn.rtt(),
            None => conn_state(state, h).rtt,
        })
    }

    /// The QUIC version in use (after version negotiation, RFC 9368);
    /// `None` once the connection's state is freed.
    pub fn version(&self) -> Option<quiver_proto::Version> {
        self.0
            .with(|state, h| state.proto.connection(h).map(|c| c.version()))
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.0.with(|state, h| match state.proto.connection(h) {
            Some(conn) => conn.remote_address(),
            None => conn_state(state, h).remote,
        })
    }

    /// The negotiated TLS cipher suite (RFC 9001 §5.3), once chosen.
    pub fn cipher_suite(&self) -> Option<quiver_proto::crypto::CipherSuite> {
        self.0
            .with(|state, h| state.proto.connection(h).and_then(|c| c.cipher_suite()))
    }

    /// The TLS key exchange group the handshake used, once chosen.
    pub fn kx_group(&self) -> Option<quiver_proto::crypto::KxGroup> {
        self.0
            .with(|state, h| state.proto.connection(h).and_then(|c| c.kx_group()))
    }

    /// The negotiated application protocol (ALPN).
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.0.with(|state, h| {
            state
                .proto
                .connection(h)
                .and_then(|c| c.alpn_protocol().map(<[u8]>::to_vec))
        })
    }

    /// Which kind of TLS handshake the connection ran (full or resumed from
    /// an earlier connection's session ticket), once known; `None` before
    /// the ServerHello or once the connection's state is freed.
    pub fn handshake_kind(&self) -> Option<quiver_proto::crypto::HandshakeKind> {
        self.0
            .with(|state, h| state.proto.connection(h).and_then(|c| c.handshake_kind()))
    }

    /// Whether the handshake resumed an earlier session (RFC 9001 §4.5):
    /// the server sent no certificate.
    pub fn is_resumed(&self) -> bool {
        self.handshake_kind() == Some(quiver_proto::crypto::HandshakeKind::Resumed)
    }

    /// Whether 0-RTT was accepted (RFC 9001 §4.6): on a server, whether it
    /// accepted the client's; on a client, once the handshake completed,
    /// whether the server accepted ours. False when not offered.
    pub fn is_zero_rtt_accepted(&self) -> bool {
        self.0.with(|state, h| {
            state
                .proto
                .connection(h)
                .is_some_and(|c| c.is_zero_rtt_accepted())
        })
    }

    /// The server name the client asked for (on the server side).
    pub fn server_name(&self) -> Option<String> {
        self.0.with(|state, h| {
            state
                .proto
                .connection(h)
                .and_then(|c| c.server_name().map(str::to_owned))
        })
    }

    /// The certificate chain the peer presented (end-entity first), once
    /// the handshake has received it; `None` if it presented none or the
    /// connection state was freed.
    pub fn peer_certificates(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.0.with(|state, h| {
            state
                .proto
                .connection(h)
                .and_then(|c| c.peer_certificates().map(<[_]>::to_vec))
        })
    }

    /// Which side of the connection we are.
    pub fn side(&self) -> Side {
        self.0.with(|state, h| conn_state(state, h).side)
    }

    /// An identifier unique among the endpoint's connections.
    pub fn stable_id(&self) -> usize {
        self.0.handle().0
    }
}

/// A connection being established: await it for the [`Connection`].
///
/// Dropping it abandons the attempt (the connection closes with code 0).
#[derive(Debug)]
#[must_use = "a connection attempt does nothing unless awaited"]
pub struct Connecting {
    conn: Option<ConnRef>,
    error: Option<ConnectionError>,
}

impl Connecting {
    pub(crate) fn new(conn: ConnRef) -> Self {
        Self {
            conn: Some(conn),
            error: None,
        }
    }

    pub(crate) fn failed(error: ConnectionError) -> Self {
        Self {
            conn: None,
            error: Some(error),
        }
    }

    /// The peer's address.
    pub fn remote_address(&self) -> Option<SocketAddr> {
        let conn = self.conn.as_ref()?;
        Some(conn.with(|state, h| conn_state(state, h).remote))
    }

    /// Closes the connection before its handshake completes, with an
    /// application error `code` and `reason`. While the handshake is in
    /// flight the peer sees a CONNECTION_CLOSE of type APPLICATION_ERROR in
    /// the spaces it may not read 1-RTT packets in (RFC 9000 §10.2.3), and
    /// `code` where it can. Awaiting this afterwards yields
    /// [`ConnectionError::LocallyClosed`].
    pub fn close(&self, code: VarInt, reason: &[u8]) {
        if let Some(conn) = &self.conn {
            conn.with(|state, h| {
                if let Some(c) = state.proto.connection(h) {
                    c.close(now(), code, Bytes::copy_from_slice(reason));
                }
                state.process_connection(h);
                state.wake_driver();
            });
        }
    }
}

impl Connecting {
    /// The connection at once, before the handshake completes, when it can
    /// carry 0-RTT data (RFC 9001 §4.6), with a future that says whether
    /// the server accepted it; otherwise `Err(self)`, to await as usual.
    ///
    /// * Client: when the configuration enables early data
    ///   ([`ClientConfigBuilder::early_data`](crate::ClientConfigBuilder::early_data))
    ///   and the handshake resumes a session whose ticket allows 0-RTT.
    ///   Streams opened and written before the handshake completes go in
    ///   0-RTT packets, within the limits remembered from the ticket
    ///   (RFC 9000 §7.4.1). DATAGRAMs wait for the handshake.
    /// * Server: when it accepted the client's 0-RTT (its streams may
    ///   already hold data); the future is then ready with `true`.
    ///
    /// **If the server rejects 0-RTT** (the future yields `false`), the
    /// transport sends the same stream data again in 1-RTT packets, on the
    /// same streams: nothing is lost and the application does nothing. It
    /// does so only when nothing the data relied on can have changed (one
    /// application protocol offered, none of the server's limits smaller
    /// than remembered); otherwise the connection fails with
    /// [`ConnectionError::ZeroRttRejected`]: nothing sent reached the
    /// server's application, and the application connects again and sends
    /// once that handshake completes (awaiting the `Connecting`, not in
    /// 0-RTT, which the server may reject again). Resending in the
    /// transport keeps 0-RTT as simple to use as a normal connection,
    /// which is what most applications (a GET, a small RPC) want.
    ///
    /// **Replay**: an attacker who captures 0-RTT packets can replay them
    /// to the server (RFC 9001 §9.2, RFC 8446 §8), so send in 0-RTT only
    /// requests that are safe to repeat. Nothing is sent in 0-RTT unless
    /// both the client enables early data and the server issued a ticket
    /// that allows it; both are off by default.
    pub fn into_0rtt(self) -> Result<(Connection, ZeroRttAccepted), Self> {
        let Some(conn) = &self.conn else {
            return Err(self);
        };
        let usable = conn.with(|state, h| {
            state.proto.connection(h).is_some_and(|c| {
                if c.side().is_client() {
                    c.is_zero_rtt_offered() && c.close_reason().is_none()
                } else {
                    c.is_zero_rtt_accepted()
                }
            })
        });
        if !usable {
            return Err(self);
        }
        let conn = self.conn.clone().expect("checked above");
        Ok((Connection(conn), ZeroRttAccepted(self)))
    }
}

/// Resolves when the handshake of a connection from
/// [`Connecting::into_0rtt`] completes: whether the server accepted 0-RTT
/// (`false` also when the connection failed first).
#[derive(Debug)]
pub struct ZeroRttAccepted(Connecting);

impl Future for ZeroRttAccepted {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        // A handshake that completed answers even if the connection has
        // closed since (awaited after the application's exchange, as
        // `quiver get --0rtt` does), which `Connecting` reports as an error.
        if let Some(conn) = &self.0.conn {
            let done = conn.with(|state, h| {
                let cs = conn_state(state, h);
                cs.connected.then_some(cs.zero_rtt_accepted)
            });
            if let Some(accepted) = done {
                return Poll::Ready(accepted);
            }
        }
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(conn)) => Poll::Ready(conn.is_zero_rtt_accepted()),
            Poll::Ready(Err(_)) => Poll::Ready(false),
        }
    }
}

impl Future for Connecting {
    type Output = Result<Connection, ConnectionError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(conn) = &self.conn else {
            let e = self.error.clone().unwrap_or(ConnectionError::LocallyClosed);
            return Poll::Ready(Err(e));
        };
        let ready = conn.with(|state, h| {
            let cs = conn_state(state, h);
            if let Some(e) = &cs.error {
                return Some(Err(e.clone()));
            }
            if cs.connected {
                return Some(Ok(()));
            }
            cs.wakers.connecting = Some(cx.waker().clone());
            None
        });
        match ready {
            None => Poll::Pending,
            Some(Err(e)) => {
                self.error = Some(e.clone());
                self.conn = None;
                Poll::Ready(Err(e))
            }
            Some(Ok(())) => {
                let conn = self.conn.take().expect("checked above");
                Poll::Ready(Ok(Connection(conn)))
            }
        }
    }
}
