//! The endpoint: its UDP socket (and a server's sockets on its preferred
//! addresses), its connections, and the task that drives them.

use std::future::{IntoFuture, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use quiver_proto::crypto::ClientHelloInfo;
use quiver_proto::{
    ConnectionError, EndpointConfig, IncomingId, Side, TransportError, TransportErrorCode, VarInt,
};

use crate::config::{ClientConfig, ServerConfig};
use crate::connection::{ConnRef, Connecting};
use crate::driver::Driver;
use crate::shared::{ConnState, Shared, State, now, register};

/// Why [`Endpoint::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// [`Endpoint::close`] was called.
    #[error("endpoint closed")]
    EndpointStopping,
    /// No client configuration: call
    /// [`Endpoint::set_default_client_config`] or use
    /// [`Endpoint::connect_with`].
    #[error("no default client configuration")]
    NoDefaultClientConfig,
    /// The address cannot be connected to (port 0, unspecified IP, or an
    /// IPv6 address from an IPv4 socket).
    #[error("invalid remote address {0}")]
    InvalidRemoteAddress(SocketAddr),
    /// The TLS configuration or server name was rejected.
    #[error(transparent)]
    Config(#[from] quiver_proto::endpoint::ConnectError),
}

/// A QUIC endpoint on one UDP socket (a server may add sockets on its
/// preferred addresses: [`Endpoint::with_preferred_addresses`]): a
/// client, a server, or both.
///
/// Cheap to clone. The driver task keeps running while a clone, or a
/// connection that has not drained, remains.
#[derive(Debug)]
pub struct Endpoint {
    shared: Arc<Shared>,
}

impl Endpoint {
    /// A client endpoint bound to `addr` (e.g. `0.0.0.0:0`). Set a
    /// default client configuration, or use [`connect_with`](Self::connect_with).
    pub fn client(addr: SocketAddr) -> io::Result<Self> {
        Self::new(quiver_udp::UdpSocket::bind(addr)?, None)
    }

    /// A server endpoint bound to `addr`; it can also connect out.
    pub fn server(config: ServerConfig, addr: SocketAddr) -> io::Result<Self> {
        Self::new(quiver_udp::UdpSocket::bind(addr)?, Some(config))
    }

    /// An endpoint on a socket of the caller's making, with a random reset
    /// key. Must be called within a tokio runtime.
    pub fn new(socket: quiver_udp::UdpSocket, server: Option<ServerConfig>) -> io::Result<Self> {
        Self::with_config(EndpointConfig::new(random_seed()?), server, socket)
    }

    /// A server endpoint bound to `addr` that also listens on `preferred`
    /// and offers it to every client as its preferred address (RFC 9000
    /// §9.6): a client that accepts it (a quiver client does unless
    /// [`TransportConfig::migrate_to_preferred_address`] is off) validates
    /// it once the handshake is confirmed and moves its traffic there.
    ///
    /// `preferred` must name one IP address (not `0.0.0.0` or `[::]`: a
    /// client needs an address to send to); its port may be 0, and the
    /// port the system picks is the one advertised (see
    /// [`preferred_addresses`](Self::preferred_addresses)). Its family
    /// sets the IPv4 or the IPv6 preferred address; a client moves only
    /// within the family it connected with. Use
    /// [`with_preferred_addresses`](Self::with_preferred_addresses) for
    /// both families or explicit endpoint settings.
    ///
    /// [`TransportConfig::migrate_to_preferred_address`]: crate::TransportConfig::migrate_to_preferred_address
    pub fn server_with_preferred_address(
        config: ServerConfig,
        addr: SocketAddr,
        preferred: SocketAddr,
    ) -> io::Result<Self> {
        let socket = quiver_udp::UdpSocket::bind(addr)?;
        let preferred = quiver_udp::UdpSocket::bind(preferred)?;
        Self::with_preferred_addresses(
            EndpointConfig::new(random_seed()?),
            config,
            socket,
            vec![preferred],
        )
    }

    /// A server endpoint on `socket` that also receives on each socket of
    /// `preferred` (at most one IPv4 and one IPv6) and advertises their
    /// addresses as its preferred addresses (RFC 9000 §9.6), by family:
    /// `config.preferred_address_v4`/`_v6` when set (an address that
    /// reaches that socket another way, e.g. a NAT's public side), else
    /// the socket's own address.
    ///
    /// The driver reads every socket and tells the core which preferred
    /// address each datagram arrived on; the core says which address each
    /// datagram leaves from (RFC 9000 §9.6.2): a probe of the preferred
    /// address is answered, and the client challenged, from it; the
    /// connection's other packets keep leaving from the original address
    /// until the client's non-probing packet arrived at the preferred one
    /// and that path is validated, and from the preferred address after.
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] if a preferred socket is
    /// bound to an unspecified IP, two share a family, or one is the
    /// endpoint's own address. [`rebind`](Self::rebind) replaces only
    /// `socket`.
    pub fn with_preferred_addresses(
        mut config: EndpointConfig,
        server: ServerConfig,
        socket: quiver_udp::UdpSocket,
        preferred: Vec<quiver_udp::UdpSocket>,
    ) -> io::Result<Self> {
        let local = socket.local_addr()?;
        let (mut v4, mut v6) = (None, None);
        for s in &preferred {
            let invalid = |why: &str| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("preferred address: {why}"),
                )
            };
            let addr = s.local_addr()?;
            if addr.ip().is_unspecified() {
                return Err(invalid("bound to an unspecified IP"));
            }
            if addr == local {
                return Err(invalid("the endpoint's own address"));
            }
            match preferred_address(addr) {
                SocketAddr::V4(a) if v4.is_none() => v4 = Some(a),
                SocketAddr::V6(a) if v6.is_none() => v6 = Some(a),
                _ => return Err(invalid("two sockets of one address family")),
            }
        }
        config.preferred_address_v4 = config.preferred_address_v4.or(v4);
        config.preferred_address_v6 = config.preferred_address_v6.or(v6);
        Self::build(config, Some(server), socket, preferred)
    }

    /// An endpoint with explicit endpoint settings (keep `reset_key` secret
    /// and stable across restarts for stateless resets to keep working;
    /// servers of a fleet use [`EndpointConfig::with_fleet_key`] to share
    /// reset and token keys).
    /// A preferred address set in `config` is advertised but not listened
    /// on: see [`with_preferred_addresses`](Self::with_preferred_addresses).
    pub fn with_config(
        config: EndpointConfig,
        server: Option<ServerConfig>,
        socket: quiver_udp::UdpSocket,
    ) -> io::Result<Self> {
        Self::build(config, server, socket, Vec::new())
    }

    fn build(
        config: EndpointConfig,
        server: Option<ServerConfig>,
        socket: quiver_udp::UdpSocket,
        preferred: Vec<quiver_udp::UdpSocket>,
    ) -> io::Result<Self> {
        // ICMP errors end a client's handshake with a server that is not
        // there at once (see `icmp.rs`); where the platform cannot, the
        // handshake timeout does. Not on servers: every report costs the
        // core a pass over the connections, and a server's connections
        // ignore them anyway (they heard from their peer).
        if server.is_none() {
            socket.enable_icmp_errors();
        }
        // What the core calls each preferred socket's address (RFC 9000
        // §9.6.1: the advertised one, by family).
        let preferred_local = preferred
            .iter()
            .map(|s| {
                Ok(match preferred_address(s.local_addr()?) {
                    SocketAddr::V4(a) => config.preferred_address_v4.unwrap_or(a).into(),
                    SocketAddr::V6(a) => config.preferred_address_v6.unwrap_or(a).into(),
                })
            })
            .collect::<io::Result<Vec<SocketAddr>>>()?;
        let mut proto = quiver_proto::Endpoint::new(
            Arc::new(config),
            server.map(|s| Arc::new(s.inner)),
            random_seed()?,
        );
        // Wall-clock token timestamps (RFC 9000 §8.1.3 expiry): tokens
        // survive a restart and pass between servers sharing a fleet key.
        if let Some(since_epoch) = wall_clock() {
            proto.set_wall_clock(crate::shared::now(), since_epoch);
        }
        let shared = Shared::new(State::new(proto, socket, preferred, preferred_local));
        let driver = Driver::new(shared.clone());
        tokio::spawn(driver);
        Ok(Self { shared })
    }

    /// The configuration [`connect`](Self::connect) uses.
    pub fn set_default_client_config(&mut self, config: ClientConfig) {
        self.shared.lock().default_client = Some(config);
    }

    /// Issues this endpoint's connection IDs from `generator` from now on,
    /// for example a [`QuicLbCidGenerator`](quiver_proto::quic_lb::QuicLbCidGenerator)
    /// so that a QUIC-LB load balancer routes every packet of a connection
    /// to this server. Set `EndpointConfig::local_cid_len` to the
    /// generator's length ([`with_config`](Self::with_config)) first: short
    /// headers carry no length, so received IDs are read at that length.
    pub fn set_cid_generator(&self, generator: Box<dyn quiver_proto::endpoint::CidGenerator>) {
        self.shared.lock().proto.set_cid_generator(generator);
    }

    /// Starts or stops accepting connections.
    pub fn set_server_config(&self, config: Option<ServerConfig>) {
        self.shared
            .lock()
            .proto
            .set_server_config(config.map(|s| Arc::new(s.inner)));
    }

    /// The socket's local address (after [`rebind`](Self::rebind), the
    /// new socket's).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let socket = self.shared.lock().socket.clone();
        socket.local_addr()
    }

    /// The local addresses of the sockets on the server's preferred
    /// addresses ([`with_preferred_addresses`](Self::with_preferred_addresses)),
    /// which are the advertised ones unless the endpoint configuration
    /// named others; empty for other endpoints.
    pub fn preferred_addresses(&self) -> io::Result<Vec<SocketAddr>> {
        let sockets = self.shared.lock().preferred.clone();
        sockets.iter().map(|s| s.local_addr()).collect()
    }

    /// Moves the endpoint to another UDP socket, e.g. after the host's
    /// address changed or to a new port, and tells every client connection
    /// it has migrated: each moves to a fresh connection ID from the
    /// server, restarts congestion control and validates the new path
    /// (RFC 9000 §9.2–§9.5, [`quiver_proto::Connection::migrate`]). The
    /// server sees the client at the new address.
    ///
    /// The socket gets the features the old one had (batched or
    /// portable); see [`rebind_with`](Self::rebind_with) to choose. Must be
    /// called within a tokio runtime. Datagrams still in flight to the old
    /// address are read until the new socket receives its first one;
    /// sends already handed to the old socket may be lost (QUIC recovers
    /// them).
    ///
    /// Connections whose handshake is not confirmed cannot migrate (RFC
    /// 9000 §9: "MUST NOT initiate connection migration before the
    /// handshake is confirmed"): they carry on from the new socket as they
    /// are, and the server may not follow. Server connections are left
    /// alone (a server does not migrate; clients talking to it from an
    /// address they did not use will drop its packets). A peer that sent
    /// `disable_active_migration` may drop our packets from the new
    /// address.
    ///
    /// All connections of an endpoint share its socket, so one connection
    /// cannot move alone: give a connection that must move its own
    /// endpoint, and rebind that. The sockets on a server's preferred
    /// addresses stay as they are.
    pub fn rebind(&self, socket: std::net::UdpSocket) -> io::Result<()> {
        let batched = self.shared.lock().socket.is_batched();
        let options = if batched {
            quiver_udp::Options::default()
        } else {
            quiver_udp::Options::portable()
        };
        self.rebind_with(quiver_udp::UdpSocket::from_std_with(socket, options)?)
    }

    /// [`rebind`](Self::rebind) onto a socket of the caller's making.
    pub fn rebind_with(&self, socket: quiver_udp::UdpSocket) -> io::Result<()> {
        let local = socket.local_addr()?;
        let mut state = self.shared.lock();
        if state.socket.icmp_errors() {
            socket.enable_icmp_errors();
        }
        state.socket = Arc::new(socket);
        state.socket_generation += 1;
        tracing::debug!(%local, "endpoint rebound");
        let time = now();
        let handles: Vec<_> = state.conns.keys().copied().collect();
        for h in handles {
            let Some(conn) = state.proto.connection(h) else {
                continue;
            };
            let result = conn.migrate(time);
            if let Some(cs) = state.conns.get(&h) {
                cs.span.in_scope(|| match result {
                    Ok(()) => tracing::debug!(%local, "migrated"),
                    Err(e) => tracing::debug!(error = %e, "not migrating"),
                });
            }
            state.process_connection(h);
        }
        state.wake_driver();
        Ok(())
    }

    /// Connects to `addr` with the default client configuration,
    /// verifying the server as `server_name`.
    pub fn connect(&self, addr: SocketAddr, server_name: &str) -> Result<Connecting, ConnectError> {
        let config = self
            .shared
            .lock()
            .default_client
            .clone()
            .ok_or(ConnectError::NoDefaultClientConfig)?;
        self.connect_with(&config, addr, server_name)
    }

    /// Connects to `addr` with `config`.
    pub fn connect_with(
        &self,
        config: &ClientConfig,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<Connecting, ConnectError> {
        // Only an IPv6 remote needs the socket's family (an IPv4 socket
        // cannot reach it): asking for it on every connect would cost a
        // getsockname(2) per handshake.
        if addr.port() == 0
            || addr.ip().is_unspecified()
            || (addr.is_ipv6() && self.local_addr().is_ok_and(|l| l.is_ipv4()))
        {
            return Err(ConnectError::InvalidRemoteAddress(addr));
        }
        let mut state = self.shared.lock();
        if state.closed {
            return Err(ConnectError::EndpointStopping);
        }
        let handle = state
            .proto
            .connect(now(), &config.inner, addr, server_name)?;
        let cs = ConnState::new(handle, Side::Client, addr);
        cs.span
            .in_scope(|| tracing::debug!(server_name, "connecting"));
        state.conns.insert(handle, cs);
        state.process_connection(handle);
        state.wake_driver();
        drop(state);
        Ok(Connecting::new(ConnRef::from_counted(
            self.shared.clone(),
            handle,
        )))
    }

    /// The next connection attempt, or `None` once the endpoint is closed.
    pub async fn accept(&self) -> Option<Incoming> {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if let Some((id, remote)) = state.incoming.pop_front() {
                return Poll::Ready(Some(Incoming {
                    shared: self.shared.clone(),
                    id,
                    remote,
                    decided: false,
                }));
            }
            if state.closed || state.driver_error.is_some() {
                return Poll::Ready(None);
            }
            register(&mut state.accept_wakers, cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Closes every connection with `code` and `reason` and stops
    /// accepting new ones. Use [`wait_idle`](Self::wait_idle) to let the
    /// closes reach the peers.
    pub fn close(&self, code: VarInt, reason: &[u8]) {
        let mut state = self.shared.lock();
        state.closed = true;
        let time = now();
        let reason = Bytes::copy_from_slice(reason);
        let handles: Vec<_> = state.conns.keys().copied().collect();
        for h in handles {
            if let Some(conn) = state.proto.connection(h) {
                conn.close(time, code, reason.clone());
            }
            state.process_connection(h);
        }
        while let Some((id, _)) = state.incoming.pop_front() {
            state.proto.ignore(id);
        }
        state.accept_wakers.drain(..).for_each(Waker::wake);
        state.wake_driver();
    }

    /// Waits until every connection has drained (after a close, for about
    /// three probe timeouts), so that the peers saw the closes.
    pub async fn wait_idle(&self) {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.is_idle() || state.driver_error.is_some() {
                return Poll::Ready(());
            }
            register(&mut state.idle_wakers, cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Waits until no connection will send again: each has drained, or is
    /// draining (its peer's CONNECTION_CLOSE arrived, RFC 9000 §10.2.2)
    /// with no reply left to send. After closing, this is usually one
    /// round trip, where [`wait_idle`](Self::wait_idle) also waits out the
    /// draining period (three probe timeouts): what a program that exits
    /// after closing needs to know its close was delivered.
    ///
    /// ```no_run
    /// # async fn f(endpoint: quiver::Endpoint, conn: quiver::Connection) {
    /// conn.close(quiver::VarInt::from_u32(0), b"done");
    /// // Bounded: a peer that never answers leaves us closing for 3 PTOs.
    /// let _ = tokio::time::timeout(std::time::Duration::from_secs(1), endpoint.wait_quiet()).await;
    /// # }
    /// ```
    pub async fn wait_quiet(&self) {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.is_quiet() || state.driver_error.is_some() {
                return Poll::Ready(());
            }
            register(&mut state.idle_wakers, cx.waker());
            Poll::Pending
        })
        .await
    }

    /// What admission control did with new clients and what the endpoint
    /// holds now (see [`crate::AdmissionConfig`]).
    pub fn stats(&self) -> crate::EndpointStats {
        self.shared.lock().proto.stats()
    }

    /// Connections not yet drained.
    pub fn open_connections(&self) -> usize {
        self.shared
            .lock()
            .conns
            .values()
            .filter(|c| !c.drained)
            .count()
    }
}

impl Clone for Endpoint {
    fn clone(&self) -> Self {
        self.shared.lock().endpoint_refs += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.endpoint_refs -= 1;
        if state.endpoint_refs == 0 {
            // No one can accept any more: turn pending attempts away.
            while let Some((id, _)) = state.incoming.pop_front() {
                state.proto.ignore(id);
            }
            state.wake_driver();
        }
    }
}

/// A connection attempt awaiting a decision. Dropping it ignores the
/// attempt. Awaiting it accepts.
#[derive(Debug)]
pub struct Incoming {
    shared: Arc<Shared>,
    id: IncomingId,
    remote: SocketAddr,
    decided: bool,
}

impl Incoming {
    /// The client's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.remote
    }

    /// Accepts the attempt; await the result for the connection.
    pub fn accept(mut self) -> Connecting {
        self.decided = true;
        let mut state = self.shared.lock();
        match state.proto.accept(now(), self.id) {
            Ok(handle) => {
                let cs = ConnState::new(handle, Side::Server, self.remote);
                cs.span.in_scope(|| tracing::debug!("accepted"));
                state.conns.insert(handle, cs);
                state.process_connection(handle);
                state.wake_driver();
                drop(state);
                Connecting::new(ConnRef::from_counted(self.shared.clone(), handle))
            }
            Err(e) => {
                tracing::debug!(error = %e, remote = %self.remote, "accept failed");
                Connecting::failed(ConnectionError::TransportError(TransportError::new(
                    TransportErrorCode::INTERNAL_ERROR,
                    "accept failed",
                )))
            }
        }
    }

    /// Accepts the attempt and closes it at once with an application
    /// error `code` and `reason`, in one step under the endpoint's lock, so
    /// that no handshake flight leaves before the close: the ClientHello
    /// has been read, and the client sees a CONNECTION_CLOSE of type
    /// APPLICATION_ERROR in the spaces it can read (RFC 9000 §10.2.3). The
    /// connection then drains on its own.
    pub fn accept_and_close(mut self, code: VarInt, reason: &[u8]) {
        self.decided = true;
        let mut state = self.shared.lock();
        let time = now();
        match state.proto.accept(time, self.id) {
            Ok(handle) => {
                if let Some(conn) = state.proto.connection(handle) {
                    conn.close(time, code, Bytes::copy_from_slice(reason));
                }
                let mut cs = ConnState::new(handle, Side::Server, self.remote);
                cs.span
                    .in_scope(|| tracing::debug!("accepted and closed at once"));
                // No handle: the state goes when the connection drains.
                cs.refs = 0;
                state.conns.insert(handle, cs);
                state.process_connection(handle);
                state.wake_driver();
            }
            Err(e) => {
                tracing::debug!(error = %e, remote = %self.remote, "accept failed");
            }
        }
    }

    /// Drops the attempt without answering (the client retransmits, then
    /// gives up).
    pub fn ignore(mut self) {
        self.decided = true;
        self.shared.lock().proto.ignore(self.id);
    }

    /// Refuses the attempt: the client gets a CONNECTION_CLOSE with
    /// CONNECTION_REFUSED in an Initial packet, and no state is kept
    /// (RFC 9000 §10.2.3).
    pub fn refuse(mut self) {
        self.decided = true;
        let mut state = self.shared.lock();
        state.proto.refuse(self.id);
        state.wake_driver();
    }

    /// Answers with a Retry, asking the client to prove its address
    /// (RFC 9000 §8.1.2). The client's next attempt arrives through
    /// [`Endpoint::accept`] with
    /// [`remote_address_validated`](Self::remote_address_validated) set.
    /// Fails, handing the attempt back, if the client returned our Retry's
    /// token already (a server sends at most one Retry per connection), or
    /// if the endpoint already sent the client an Initial (it acknowledged
    /// a probe that came before the ClientHello; the client would discard
    /// a Retry, RFC 9000 §17.2.5.2). An attempt validated by a NEW_TOKEN
    /// token may still be retried.
    pub fn retry(mut self) -> Result<(), RetryError> {
        let mut state = self.shared.lock();
        match state.proto.retry(now(), self.id) {
            Ok(()) => {
                self.decided = true;
                state.wake_driver();
                Ok(())
            }
            Err(
                quiver_proto::endpoint::RetryError::AlreadyValidated
                | quiver_proto::endpoint::RetryError::Answered,
            ) => {
                drop(state);
                Err(RetryError(Box::new(self)))
            }
            Err(quiver_proto::endpoint::RetryError::Unknown) => {
                // Dropped by the endpoint already (it is closing).
                self.decided = true;
                Ok(())
            }
        }
    }

    /// Whether the client's address is validated: it returned the token of
    /// our Retry, or a valid token from an earlier connection's NEW_TOKEN
    /// frame (RFC 9000 §8.1.3).
    pub fn remote_address_validated(&self) -> bool {
        self.shared
            .lock()
            .proto
            .incoming(self.id)
            .is_some_and(|i| i.remote_address_validated())
    }

    /// Whether the client's 0-RTT data may be accepted, when the server
    /// configuration allows early data (RFC 9001 §4.6.2; default: yes).
    /// With `false` TLS rejects it and the client sends its data again
    /// after the handshake. Call before [`accept`](Self::accept).
    pub fn set_early_data(&self, allowed: bool) {
        self.shared.lock().proto.set_early_data(self.id, allowed);
    }

    /// The server name and ALPN protocols of the client's ClientHello,
    /// when its first Initial holds all of it.
    pub fn client_hello(&self) -> Option<ClientHelloInfo> {
        self.shared.lock().proto.incoming(self.id)?.client_hello()
    }

    /// The server name (SNI) the client asked for, if its ClientHello
    /// could be read.
    pub fn server_name(&self) -> Option<String> {
        self.client_hello()?.server_name
    }

    /// The application protocols (ALPN) the client offers, most preferred
    /// first; empty if none or if its ClientHello could not be read.
    pub fn alpn_protocols(&self) -> Vec<Vec<u8>> {
        self.client_hello().map(|c| c.alpn).unwrap_or_default()
    }
}

/// [`Incoming::retry`] was refused: the client's address is already
/// validated by a Retry, or the client already received an Initial from
/// this server. The attempt is handed back for another decision.
#[derive(Debug, thiserror::Error)]
#[error("a Retry is not allowed for this attempt (already retried, or already answered)")]
pub struct RetryError(Box<Incoming>);

impl RetryError {
    /// The attempt, to accept, refuse or ignore.
    pub fn into_incoming(self) -> Incoming {
        *self.0
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.decided {
            self.shared.lock().proto.ignore(self.id);
        }
    }
}

impl IntoFuture for Incoming {
    type Output = Result<crate::Connection, ConnectionError>;
    type IntoFuture = Connecting;

    fn into_future(self) -> Connecting {
        self.accept()
    }
}

/// The address to advertise for a socket bound to `addr`: an
/// IPv4-mapped IPv6 address is the IPv4 address clients use.
fn preferred_address(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(ip) => SocketAddr::from((ip, a.port())),
            None => addr,
        },
        v4 => v4,
    }
}

/// 32 bytes from the operating system's secure random source.
/// The time since the Unix epoch: the runtime, not the core, reads clocks.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> Option<std::time::Duration> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
}

fn random_seed() -> io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(seed)
}
