//! quiver endpoints as simulation nodes, and a two-endpoint scenario
//! harness for the protocol tests.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quiver_proto::crypto;
use quiver_proto::frame::Dir;
use quiver_proto::streams::{FinishError, ReadError, StreamEvent, StreamId, WriteError};
use quiver_proto::{
    ClientConfig, Connection, ConnectionError, ConnectionHandle, Endpoint, EndpointConfig, Event,
    ServerConfig, TransportConfig, VarInt,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{LinkConfig, Network, Node, NodeId, Seed, Transmit, loopback};

/// What a [`QuicNode`] does with connection attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Accept every attempt at once.
    Accept,
    /// Leave attempts pending for the test to decide.
    Manual,
}

/// Datagrams per transmit a [`QuicNode`] takes by default: batches as a
/// GSO socket sends them, cut into datagrams again by the network.
pub const DEFAULT_MAX_DATAGRAMS: usize = 10;

/// Counts of a [`QuicNode`]'s transmits (each one `poll_transmit` result).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TransmitCounts {
    /// Transmits.
    pub transmits: u64,
    /// Datagrams in them.
    pub datagrams: u64,
    /// Transmits of more than one datagram.
    pub batched: u64,
    /// The most datagrams one transmit carried.
    pub largest: u64,
}

/// Called after every input to a node, to play the application's part.
pub type AppHook = Box<dyn FnMut(&mut Endpoint, Instant)>;

/// A quiver [`Endpoint`] on the simulated network.
pub struct QuicNode {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// How attempts are admitted.
    pub admission: Admission,
    /// Connections this node accepted, in order.
    pub accepted: Vec<ConnectionHandle>,
    /// What the endpoint's transmits carried.
    pub transmits: TransmitCounts,
    app: Option<AppHook>,
    buf: Vec<u8>,
    /// Datagrams one transmit may carry (see [`QuicNode::set_max_datagrams`]).
    max_datagrams: usize,
}

impl std::fmt::Debug for QuicNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicNode")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl QuicNode {
    /// Wraps an endpoint.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            admission: Admission::Accept,
            accepted: Vec::new(),
            transmits: TransmitCounts::default(),
            app: None,
            buf: Vec::with_capacity(65536),
            max_datagrams: DEFAULT_MAX_DATAGRAMS,
        }
    }

    /// How many datagrams the endpoint may write per transmit (its
    /// `poll_transmit`'s `max_datagrams`): [`DEFAULT_MAX_DATAGRAMS`], as a
    /// socket with GSO takes them, unless changed; 1 for one at a time.
    /// The network carries each datagram of a transmit on its own.
    pub fn set_max_datagrams(&mut self, n: usize) {
        self.max_datagrams = n.max(1);
    }

    /// Installs the application's behaviour, run after every input.
    pub fn set_app(&mut self, app: impl FnMut(&mut Endpoint, Instant) + 'static) {
        self.app = Some(Box::new(app));
    }

    /// The connection behind `handle`.
    pub fn conn(&mut self, handle: ConnectionHandle) -> &mut Connection {
        self.endpoint
            .connection(handle)
            .expect("no such connection")
    }

    /// Runs the application hook now, without any input (for example after
    /// the test changed what the application should do). Its datagrams
    /// leave at the network's next step.
    pub fn poke(&mut self, now: Instant) {
        self.after_input(now);
    }

    fn after_input(&mut self, now: Instant) {
        if self.admission == Admission::Accept {
            while let Some(id) = self.endpoint.poll_incoming().map(|i| i.id()) {
                if let Ok(h) = self.endpoint.accept(now, id) {
                    self.accepted.push(h);
                }
            }
        }
        if let Some(app) = &mut self.app {
            app(&mut self.endpoint, now);
        }
    }
}

impl Node for QuicNode {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.handle_datagram_ecn(now, from, 0, data);
    }

    fn handle_datagram_ecn(&mut self, now: Instant, from: SocketAddr, ecn: u8, data: &[u8]) {
        let mut data = data.to_vec();
        let ecn = quiver_proto::EcnCodepoint::from_bits(ecn);
        self.endpoint.handle_ecn(now, from, ecn, &mut data);
        self.after_input(now);
    }

    fn handle_datagram_to(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        ecn: u8,
        data: &[u8],
    ) {
        let mut data = data.to_vec();
        let ecn = quiver_proto::EcnCodepoint::from_bits(ecn);
        self.endpoint
            .handle_with_local(now, from, Some(to), ecn, &mut data);
        self.after_input(now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.buf.clear();
        let t = self
            .endpoint
            .poll_transmit(now, self.max_datagrams, &mut self.buf)?;
        let count = t.count() as u64;
        let c = &mut self.transmits;
        c.transmits += 1;
        c.datagrams += count;
        c.batched += u64::from(count > 1);
        c.largest = c.largest.max(count);
        Some(Transmit {
            ecn: t.ecn.map_or(0, |e| e.bits()),
            src: t.src,
            segment_size: t.segment_size,
            ..Transmit::new(t.destination, self.buf[self.buf.len() - t.size..].to_vec())
        })
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.endpoint.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        self.after_input(now);
    }
}

/// A self-signed certificate for "localhost" and the TLS configurations
/// that trust it, with ALPN "quiver-test".
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The certificate.
    pub cert: CertificateDer<'static>,
    key: Arc<PrivateKeyDer<'static>>,
}

/// The ALPN protocol the test configurations use.
pub const TEST_ALPN: &[u8] = b"quiver-test";

impl TestPki {
    /// A fresh key and certificate.
    pub fn new() -> Self {
        Self::with_cert_size(0)
    }

    /// A fresh key and a certificate of at least `min_len` bytes (padded
    /// with extra subject alternative names), to make the server's first
    /// flight exceed the anti-amplification limit (RFC 9000 §8.1).
    pub fn with_cert_size(min_len: usize) -> Self {
        let mut names = vec!["localhost".to_owned()];
        // Each name adds its length plus a few bytes of DER framing.
        let mut approx = 400;
        while approx < min_len {
            names.push(format!(
                "padding-{:04}.{}.invalid",
                names.len(),
                "x".repeat(48)
            ));
            approx += 70;
        }
        let ck = rcgen::generate_simple_self_signed(names).expect("rcgen");
        let cert = ck.cert.der().clone();
        assert!(cert.len() >= min_len, "certificate of {} bytes", cert.len());
        Self {
            cert,
            key: Arc::new(PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into())),
        }
    }

    /// The TLS configuration of [`server_config`](Self::server_config),
    /// to adjust before building.
    pub fn server_crypto(&self) -> crypto::ServerConfigBuilder {
        crypto::ServerConfig::with_single_cert(vec![self.cert.clone()], self.key.clone_key())
            .alpn_protocols(vec![TEST_ALPN.to_vec()])
    }

    /// A server configuration presenting the certificate.
    pub fn server_config(&self, transport: TransportConfig) -> ServerConfig {
        let crypto = self.server_crypto().build().expect("server config");
        ServerConfig {
            crypto: Arc::new(crypto),
            transport: Arc::new(transport),
            admission: Default::default(),
            new_tokens: Default::default(),
        }
    }

    /// The TLS configuration of [`client_config`](Self::client_config),
    /// to adjust before building.
    pub fn client_crypto(&self) -> crypto::ClientConfigBuilder {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).expect("root");
        crypto::ClientConfig::with_root_certificates(roots).alpn_protocols(vec![TEST_ALPN.to_vec()])
    }

    /// A client configuration trusting the certificate.
    pub fn client_config(&self, transport: TransportConfig) -> ClientConfig {
        self.client_config_with_groups(transport, &crypto::KxGroup::ALL)
    }

    /// A client configuration offering only the key exchange `groups`:
    /// `[KxGroup::X25519]` keeps the ClientHello within one Initial
    /// datagram (the default hybrid's key share needs two).
    pub fn client_config_with_groups(
        &self,
        transport: TransportConfig,
        groups: &[crypto::KxGroup],
    ) -> ClientConfig {
        let crypto = self
            .client_crypto()
            .kx_groups(groups)
            .build()
            .expect("client config");
        ClientConfig {
            crypto: Arc::new(crypto),
            transport: Arc::new(transport),
            version: quiver_proto::Version::V1,
            available_versions: Vec::new(),
            token_store: Some(Arc::new(quiver_proto::InMemoryTokenStore::default())),
        }
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// A client and a server endpoint on one simulated network.
pub struct Pair {
    /// The network.
    pub net: Network,
    /// The client node.
    pub client: NodeId,
    /// The server node.
    pub server: NodeId,
    /// The client's configuration, for [`Pair::connect`].
    pub client_config: ClientConfig,
    /// The certificate both sides use.
    pub pki: TestPki,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("seed", &self.net.seed())
            .finish()
    }
}

/// Client address in a [`Pair`].
pub const CLIENT_ADDR: SocketAddr = loopback(2, 5000);
/// Server address in a [`Pair`].
pub const SERVER_ADDR: SocketAddr = loopback(1, 4433);

impl Pair {
    /// Default transport settings on both sides, the given link both ways.
    pub fn new(seed: Seed, link: LinkConfig) -> Self {
        Self::with_configs(
            seed,
            link,
            TransportConfig::default(),
            TransportConfig::default(),
        )
    }

    /// Explicit transport settings for client and server.
    pub fn with_configs(
        seed: Seed,
        link: LinkConfig,
        client_transport: TransportConfig,
        server_transport: TransportConfig,
    ) -> Self {
        Self::with_pki(
            seed,
            link,
            client_transport,
            server_transport,
            TestPki::new(),
        )
    }

    /// Explicit transport settings and certificate.
    pub fn with_pki(
        seed: Seed,
        link: LinkConfig,
        client_transport: TransportConfig,
        server_transport: TransportConfig,
        pki: TestPki,
    ) -> Self {
        Self::build(seed, link, client_transport, server_transport, pki, |_| {})
    }

    /// Explicit transport settings, and `configure` adjusts the server
    /// endpoint's settings (a preferred address, say).
    pub fn with_server_endpoint(
        seed: Seed,
        link: LinkConfig,
        client_transport: TransportConfig,
        server_transport: TransportConfig,
        configure: impl FnOnce(&mut EndpointConfig),
    ) -> Self {
        Self::build(
            seed,
            link,
            client_transport,
            server_transport,
            TestPki::new(),
            configure,
        )
    }

    fn build(
        seed: Seed,
        link: LinkConfig,
        client_transport: TransportConfig,
        server_transport: TransportConfig,
        pki: TestPki,
        configure: impl FnOnce(&mut EndpointConfig),
    ) -> Self {
        let mut net = Network::new(seed);
        net.set_default_link(link);
        let mut rng = net.rng("quic-keys");
        let seed_bytes = |rng: &mut crate::Rng| {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            b
        };
        let mut server_endpoint = EndpointConfig::new(seed_bytes(&mut rng));
        configure(&mut server_endpoint);
        let server_ep = Endpoint::new(
            Arc::new(server_endpoint),
            Some(Arc::new(pki.server_config(server_transport))),
            seed_bytes(&mut rng),
        );
        let client_ep = Endpoint::new(
            Arc::new(EndpointConfig::new(seed_bytes(&mut rng))),
            None,
            seed_bytes(&mut rng),
        );
        let server = net.add_node(SERVER_ADDR, QuicNode::new(server_ep));
        let client = net.add_node(CLIENT_ADDR, QuicNode::new(client_ep));
        Self {
            net,
            client,
            server,
            client_config: pki.client_config(client_transport),
            pki,
        }
    }

    /// Makes the client offer only the key exchange `groups` from the next
    /// [`Pair::connect`]: `[KxGroup::X25519]` keeps its ClientHello within
    /// one Initial datagram, for scripts that lose "every client datagram
    /// but the first" (the default hybrid key share needs two).
    pub fn offer_kx_groups(&mut self, groups: &[crypto::KxGroup]) {
        let transport = (*self.client_config.transport).clone();
        self.client_config = self.pki.client_config_with_groups(transport, groups);
    }

    /// The client node.
    pub fn client(&mut self) -> &mut QuicNode {
        self.net.node_mut::<QuicNode>(self.client)
    }

    /// The server node.
    pub fn server(&mut self) -> &mut QuicNode {
        self.net.node_mut::<QuicNode>(self.server)
    }

    /// Adds another client endpoint at `addr` (with the client's
    /// configuration), for scenarios with several hosts: see
    /// [`Network::share_link`] to put them behind one bottleneck.
    pub fn add_client(&mut self, addr: SocketAddr) -> NodeId {
        let mut rng = self.net.rng(&format!("quic-keys-{addr}"));
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let config = EndpointConfig::new(seed);
        rng.fill_bytes(&mut seed);
        let endpoint = Endpoint::new(Arc::new(config), None, seed);
        self.net.add_node(addr, QuicNode::new(endpoint))
    }

    /// Starts a connection from client node `node` (the client or one
    /// added by [`Pair::add_client`]) to the server.
    pub fn connect_from(&mut self, node: NodeId) -> ConnectionHandle {
        let now = self.net.now();
        let config = self.client_config.clone();
        self.net
            .node_mut::<QuicNode>(node)
            .endpoint
            .connect(now, &config, SERVER_ADDR, "localhost")
            .expect("connect")
    }

    /// Starts a connection from the client to the server.
    pub fn connect(&mut self) -> ConnectionHandle {
        let now = self.net.now();
        let config = self.client_config.clone();
        self.client()
            .endpoint
            .connect(now, &config, SERVER_ADDR, "localhost")
            .expect("connect")
    }

    /// Runs until the client's connection has completed its handshake (or
    /// ended), for at most `limit` of virtual time. Returns whether it
    /// completed.
    pub fn run_handshake(&mut self, handle: ConnectionHandle, limit: Duration) -> bool {
        let deadline = self.net.now() + limit;
        let client = self.client;
        self.net.run_while(|net| {
            let node = net.node_mut::<QuicNode>(client);
            let Some(conn) = node.endpoint.connection(handle) else {
                return false;
            };
            let done = conn.is_handshake_confirmed() || conn.is_closed();
            !done && net.now() < deadline
        });
        let node = self.net.node_mut::<QuicNode>(client);
        node.endpoint
            .connection(handle)
            .is_some_and(|c| c.is_handshake_confirmed())
    }
}

impl Pair {
    /// The client's connection `handle`.
    ///
    /// # Panics
    /// If the client endpoint has no such connection.
    pub fn client_conn(&mut self, handle: ConnectionHandle) -> &mut Connection {
        self.client().conn(handle)
    }

    /// The first connection the server accepted, if any.
    pub fn server_handle(&mut self) -> Option<ConnectionHandle> {
        self.server().accepted.first().copied()
    }

    /// The first connection the server accepted.
    ///
    /// # Panics
    /// If the server has accepted none.
    pub fn server_conn(&mut self) -> &mut Connection {
        let handle = self
            .server_handle()
            .expect("the server accepted no connection");
        self.server().conn(handle)
    }

    /// Steps the network until `done` holds (checked before the first step
    /// and after each one) or `limit` of virtual time has passed. Returns
    /// whether `done` held. A step may jump past the deadline to the next
    /// event; the check happens after it.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) -> bool {
        let deadline = self.net.now() + limit;
        loop {
            if done(self) {
                return true;
            }
            if self.net.now() >= deadline || !self.net.step() {
                return done(self);
            }
        }
    }

    /// Connects the client and runs the handshake until both sides have
    /// completed it, for at most `limit`. Returns the client's and the
    /// server's handles.
    ///
    /// # Panics
    /// If the handshake does not complete in time.
    pub fn connect_and_wait(&mut self, limit: Duration) -> (ConnectionHandle, ConnectionHandle) {
        let client = self.connect();
        let ok = self.run_until(limit, |p| {
            let client_done = p.client_conn(client).is_handshake_confirmed();
            let server_done = p
                .server_handle()
                .is_some_and(|h| p.server().conn(h).is_handshake_complete());
            client_done && server_done
        });
        assert!(ok, "handshake did not complete within {limit:?}");
        let server = self.server_handle().expect("accepted");
        (client, server)
    }

    /// Runs the client's application hook now (see [`QuicNode::poke`]).
    pub fn poke_client(&mut self) {
        let now = self.net.now();
        self.client().poke(now);
    }

    /// Runs the server's application hook now (see [`QuicNode::poke`]).
    pub fn poke_server(&mut self) {
        let now = self.net.now();
        self.server().poke(now);
    }

    /// Installs `config` as the client's application; returns its state.
    pub fn client_app(&mut self, config: AppConfig) -> SharedApp {
        install_app(self.client(), config)
    }

    /// Installs `config` as the server's application; returns its state.
    pub fn server_app(&mut self, config: AppConfig) -> SharedApp {
        install_app(self.server(), config)
    }

    /// Like [`Pair::server_app`], driving only server connections made
    /// after this call. The scripted state is keyed by stream ID, so an
    /// earlier connection still open (its peer's CONNECTION_CLOSE lost, it
    /// lives until its idle timeout) would otherwise have the same stream
    /// IDs read on it, fail with `UnknownStream` and stop the new
    /// connection's streams from being read.
    pub fn server_app_for_new_connections(&mut self, config: AppConfig) -> SharedApp {
        let before = self.server().endpoint.connection_handles();
        install_app_filtered(self.server(), config, move |h| !before.contains(&h))
    }

    /// Like [`Pair::server_app`], driving only the server connections
    /// `only` selects: the scripted state is keyed by stream ID, so it can
    /// follow one connection's streams when the server has several.
    pub fn server_app_only(
        &mut self,
        config: AppConfig,
        only: impl Fn(ConnectionHandle) -> bool + 'static,
    ) -> SharedApp {
        install_app_filtered(self.server(), config, only)
    }
}

// ----- a scriptable application for the scenario tests -----

/// Byte `offset` onwards of the deterministic payload of stream `stream`,
/// written into `buf`. Each stream has its own content, so data delivered
/// to the wrong stream or offset is caught.
pub fn fill_pattern(stream: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = pos / 8;
        let mut state = word ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
        let bytes = crate::splitmix64(&mut state).to_le_bytes();
        let skip = (pos % 8) as usize;
        let n = (8 - skip).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&bytes[skip..skip + n]);
        i += n;
        pos += n as u64;
    }
}

/// `len` bytes of stream `stream`'s payload from `offset` (see
/// [`fill_pattern`]).
pub fn pattern(stream: u64, offset: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill_pattern(stream, offset, &mut v);
    v
}

/// A stream the application opens once the handshake completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendPlan {
    /// Bidirectional or unidirectional.
    pub dir: Dir,
    /// Bytes of [`pattern`] data to write.
    pub len: u64,
    /// Finish (FIN) after the data.
    pub finish: bool,
    /// Reset the stream with this code after writing the data (instead of
    /// finishing).
    pub reset: Option<VarInt>,
}

impl SendPlan {
    /// `len` bytes on a bidirectional stream, then FIN.
    pub fn bi(len: u64) -> Self {
        Self {
            dir: Dir::Bi,
            len,
            finish: true,
            reset: None,
        }
    }

    /// `len` bytes on a unidirectional stream, then FIN.
    pub fn uni(len: u64) -> Self {
        Self {
            dir: Dir::Uni,
            ..Self::bi(len)
        }
    }
}

/// What a [`QuicNode`]'s scripted application does.
#[derive(Debug, Clone, Default)]
pub struct AppConfig {
    /// Streams to open and write, in order, as stream limits allow.
    pub send: Vec<SendPlan>,
    /// Echo what arrives on a peer's bidirectional stream back on it, and
    /// finish it when the peer's FIN is read.
    pub echo: bool,
    /// Don't check received data against [`pattern`].
    pub no_verify: bool,
    /// Send STOP_SENDING with this code on every stream the peer opens, as
    /// soon as it is accepted.
    pub stop_incoming: Option<VarInt>,
    /// Open the planned streams before the handshake completes when the
    /// connection allows it (a client sending 0-RTT).
    pub early: bool,
    /// Read with `Connection::read_chunk` (no copy) instead of `read`.
    pub read_chunks: bool,
}

/// What the application saw of one stream it receives on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecvLog {
    /// Bytes read.
    pub bytes: u64,
    /// The FIN was read; when.
    pub fin_at: Option<Instant>,
    /// First offset whose byte differed from [`pattern`].
    pub mismatch: Option<u64>,
    /// `ReadError::Reset` reported this code.
    pub reset: Option<VarInt>,
    /// Any other read error.
    pub error: Option<ReadError>,
    /// When and how much each successful read returned, for flow-control
    /// tests (only the first 64 reads).
    pub first_reads: Vec<(Instant, usize)>,
}

/// What the application did with one stream it sends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendLog {
    /// The plan it follows.
    pub plan: Option<SendPlan>,
    /// Bytes the connection took.
    pub written: u64,
    /// `finish` or `reset_stream` was called.
    pub ended: bool,
    /// `StreamEvent::Finished`: everything was acknowledged; when.
    pub acked_at: Option<Instant>,
    /// `StreamEvent::Stopped` with this code.
    pub stopped: Option<VarInt>,
    /// A write error other than `Blocked`.
    pub error: Option<WriteError>,
    /// Echo data read but not yet taken by the connection.
    pending_echo: Vec<u8>,
    /// The peer's FIN was read: finish once the echo is flushed.
    echo_fin: bool,
}

/// The state of a scripted application, shared with the test.
#[derive(Debug, Default)]
pub struct AppState {
    /// The configuration.
    pub config: AppConfig,
    /// `Event::Connected` arrived; when.
    pub connected_at: Option<Instant>,
    /// `Event::HandshakeConfirmed` arrived; when.
    pub confirmed_at: Option<Instant>,
    /// `Event::ConnectionLost`: when, and why.
    pub lost: Option<(Instant, ConnectionError)>,
    /// While set, streams are not read (to hold flow-control credit).
    pub read_paused: bool,
    /// Received datagrams, in order.
    pub datagrams: Vec<Bytes>,
    /// Streams received on.
    pub recv: BTreeMap<StreamId, RecvLog>,
    /// Streams sent on (opened by us, or echoing).
    pub send: BTreeMap<StreamId, SendLog>,
    /// Stream events other than `Readable` and `Writable`, in order.
    pub stream_events: Vec<(Instant, StreamEvent)>,
    /// Plans not yet opened.
    next_plan: usize,
    scratch: Vec<u8>,
}

impl AppState {
    /// Bytes read across all streams.
    pub fn bytes_received(&self) -> u64 {
        self.recv.values().map(|r| r.bytes).sum()
    }

    /// Streams whose FIN was read.
    pub fn streams_finished(&self) -> usize {
        self.recv.values().filter(|r| r.fin_at.is_some()).count()
    }

    /// Panics if any received data differed from the pattern.
    pub fn assert_intact(&self) {
        for (id, r) in &self.recv {
            assert_eq!(r.mismatch, None, "stream {id}: data corrupted at offset");
        }
    }
}

/// A scripted application's state, shared between its node and the test.
pub type SharedApp = Rc<RefCell<AppState>>;

fn install_app(node: &mut QuicNode, config: AppConfig) -> SharedApp {
    install_app_filtered(node, config, |_| true)
}

fn install_app_filtered(
    node: &mut QuicNode,
    config: AppConfig,
    only: impl Fn(ConnectionHandle) -> bool + 'static,
) -> SharedApp {
    let state = Rc::new(RefCell::new(AppState {
        config,
        scratch: vec![0; 64 * 1024],
        ..AppState::default()
    }));
    let shared = state.clone();
    node.set_app(move |endpoint, now| {
        let mut state = shared.borrow_mut();
        for handle in endpoint.connection_handles() {
            if !only(handle) {
                continue;
            }
            if let Some(conn) = endpoint.connection(handle) {
                state.drive(conn, now);
            }
        }
    });
    state
}

impl AppState {
    /// One pass of the application over a connection.
    fn drive(&mut self, conn: &mut Connection, now: Instant) {
        let mut readable: Vec<StreamId> = Vec::new();
        let mut accept = false;
        while let Some(ev) = conn.poll() {
            match ev {
                Event::Connected => self.connected_at = Some(now),
                Event::HandshakeConfirmed => self.confirmed_at = Some(now),
                Event::ConnectionLost { reason } => {
                    if self.lost.is_none() {
                        self.lost = Some((now, reason));
                    }
                }
                Event::DatagramReceived => {
                    while let Some(d) = conn.read_datagram() {
                        self.datagrams.push(d);
                    }
                }
                Event::Stream(ev) => {
                    match ev {
                        StreamEvent::Readable { id } => readable.push(id),
                        StreamEvent::Opened { .. } => accept = true,
                        StreamEvent::Finished { id } => {
                            self.send.entry(id).or_default().acked_at = Some(now);
                        }
                        StreamEvent::Stopped { id, code } => {
                            self.send.entry(id).or_default().stopped = Some(code);
                        }
                        StreamEvent::Writable { .. } | StreamEvent::Available { .. } => {}
                    }
                    if !matches!(
                        ev,
                        StreamEvent::Readable { .. } | StreamEvent::Writable { .. }
                    ) {
                        self.stream_events.push((now, ev));
                    }
                }
            }
        }
        if conn.is_closed() {
            return;
        }
        if accept || conn.is_handshake_complete() {
            for dir in [Dir::Bi, Dir::Uni] {
                while let Some(id) = conn.accept_stream(dir) {
                    self.recv.entry(id).or_default();
                    readable.push(id);
                    if let Some(code) = self.config.stop_incoming {
                        // Best effort: the stream may already be closed.
                        let _ = conn.stop_sending(id, code);
                    }
                }
            }
        }
        if !self.read_paused {
            // Read every stream not yet done: events may have been missed
            // while paused.
            let open: Vec<StreamId> = self
                .recv
                .iter()
                .filter(|(_, r)| r.fin_at.is_none() && r.reset.is_none() && r.error.is_none())
                .map(|(id, _)| *id)
                .collect();
            readable.extend(open);
            readable.sort_unstable();
            readable.dedup();
            for id in readable {
                self.read_stream(conn, now, id);
            }
        }
        if conn.is_handshake_complete() || self.config.early {
            self.open_planned(conn);
        }
        self.write_all(conn);
    }

    fn open_planned(&mut self, conn: &mut Connection) {
        while let Some(plan) = self.config.send.get(self.next_plan).copied() {
            let Some(id) = conn.open_stream(plan.dir) else {
                break;
            };
            self.next_plan += 1;
            self.send.insert(
                id,
                SendLog {
                    plan: Some(plan),
                    ..SendLog::default()
                },
            );
        }
    }

    fn read_stream(&mut self, conn: &mut Connection, now: Instant, id: StreamId) {
        let verify = !self.config.no_verify;
        let echo = self.config.echo && id.dir() == Dir::Bi && id.initiator() != conn.side();
        let mut buf = std::mem::take(&mut self.scratch);
        let log = self.recv.entry(id).or_default();
        if log.fin_at.is_some() || log.reset.is_some() || log.error.is_some() {
            self.scratch = buf;
            return;
        }
        let chunks = self.config.read_chunks;
        loop {
            let mut chunk = Bytes::new();
            let result = if chunks {
                conn.read_chunk(now, id, usize::MAX).map(|c| {
                    c.map(|c| {
                        chunk = c;
                        chunk.len()
                    })
                })
            } else {
                conn.read(now, id, &mut buf)
            };
            match result {
                Ok(Some(n)) => {
                    let data = if chunks { &chunk[..] } else { &buf[..n] };
                    if verify && log.mismatch.is_none() {
                        let expected = pattern(id.into_inner(), log.bytes, n);
                        if let Some(i) = data.iter().zip(&expected).position(|(a, b)| a != b) {
                            log.mismatch = Some(log.bytes + i as u64);
                        }
                    }
                    if log.first_reads.len() < 64 {
                        log.first_reads.push((now, n));
                    }
                    log.bytes += n as u64;
                    if echo {
                        self.send
                            .entry(id)
                            .or_default()
                            .pending_echo
                            .extend_from_slice(data);
                    }
                }
                Ok(None) => {
                    log.fin_at = Some(now);
                    if echo {
                        self.send.entry(id).or_default().echo_fin = true;
                    }
                    break;
                }
                Err(ReadError::Blocked) => break,
                Err(ReadError::Reset(code)) => {
                    log.reset = Some(code);
                    break;
                }
                Err(e) => {
                    log.error = Some(e);
                    break;
                }
            }
        }
        self.scratch = buf;
    }

    fn write_all(&mut self, conn: &mut Connection) {
        let mut chunk = std::mem::take(&mut self.scratch);
        for (&id, log) in self.send.iter_mut() {
            if log.ended || log.error.is_some() || log.stopped.is_some() {
                continue;
            }
            // Echo: flush what was read.
            if !log.pending_echo.is_empty() {
                match conn.write(id, &log.pending_echo) {
                    Ok(n) => {
                        log.written += n as u64;
                        log.pending_echo.drain(..n);
                    }
                    Err(WriteError::Blocked) => {}
                    Err(e) => log.error = Some(e),
                }
            }
            if log.echo_fin && log.pending_echo.is_empty() && log.error.is_none() {
                log.ended = true;
                if let Err(e) = conn.finish(id) {
                    log.error = Some(WriteError::from_finish(e));
                }
                continue;
            }
            let Some(plan) = log.plan else { continue };
            while log.written < plan.len {
                let n = (plan.len - log.written).min(chunk.len() as u64) as usize;
                fill_pattern(id.into_inner(), log.written, &mut chunk[..n]);
                match conn.write(id, &chunk[..n]) {
                    Ok(0) | Err(WriteError::Blocked) => break,
                    Ok(taken) => log.written += taken as u64,
                    Err(e) => {
                        log.error = Some(e);
                        break;
                    }
                }
            }
            if log.written == plan.len && log.error.is_none() {
                if let Some(code) = plan.reset {
                    log.ended = true;
                    if conn.reset_stream(id, code).is_err() {
                        log.error = Some(WriteError::ClosedStream);
                    }
                } else if plan.finish {
                    log.ended = true;
                    if let Err(e) = conn.finish(id) {
                        log.error = Some(WriteError::from_finish(e));
                    }
                }
            }
        }
        self.scratch = chunk;
    }
}

/// Maps a finish failure onto the write error of the same meaning.
trait FromFinish {
    fn from_finish(e: FinishError) -> Self;
}

impl FromFinish for WriteError {
    fn from_finish(e: FinishError) -> Self {
        match e {
            FinishError::Stopped(code) => WriteError::Stopped(code),
            FinishError::ClosedStream => WriteError::ClosedStream,
            FinishError::UnknownStream => WriteError::UnknownStream,
            FinishError::ConnectionLost => WriteError::ConnectionLost,
        }
    }
}
