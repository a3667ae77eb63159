//! quiver endpoints as simulation nodes, and a two-endpoint scenario
//! harness for the protocol tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_proto::crypto;
use quiver_proto::{
    ClientConfig, Connection, ConnectionHandle, Endpoint, EndpointConfig, ServerConfig,
    TransportConfig,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{LinkConfig, Network, Node, NodeId, Seed, Transmit, loopback};

mod app;
pub use app::*;
use app::{install_app, install_app_filtered};

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
