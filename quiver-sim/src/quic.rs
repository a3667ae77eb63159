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

/// What a [`QuicNode`] does with connection attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Accept every attempt at once.
    Accept,
    /// Leave attempts pending for the test to decide.
    Manual,
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
    app: Option<AppHook>,
    buf: Vec<u8>,
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
            app: None,
            buf: Vec::with_capacity(65536),
        }
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
        let mut data = data.to_vec();
        self.endpoint.handle(now, from, &mut data);
        self.after_input(now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.buf.clear();
        let t = self.endpoint.poll_transmit(now, &mut self.buf)?;
        Some(Transmit::new(
            t.destination,
            self.buf[self.buf.len() - t.size..].to_vec(),
        ))
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
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
        Self {
            cert: ck.cert.der().clone(),
            key: Arc::new(PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into())),
        }
    }

    /// A server configuration presenting the certificate.
    pub fn server_config(&self, transport: TransportConfig) -> ServerConfig {
        let crypto =
            crypto::ServerConfig::with_single_cert(vec![self.cert.clone()], self.key.clone_key())
                .alpn_protocols(vec![TEST_ALPN.to_vec()])
                .build()
                .expect("server config");
        ServerConfig {
            crypto: Arc::new(crypto),
            transport: Arc::new(transport),
        }
    }

    /// A client configuration trusting the certificate.
    pub fn client_config(&self, transport: TransportConfig) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).expect("root");
        let crypto = crypto::ClientConfig::with_root_certificates(roots)
            .alpn_protocols(vec![TEST_ALPN.to_vec()])
            .build()
            .expect("client config");
        ClientConfig {
            crypto: Arc::new(crypto),
            transport: Arc::new(transport),
            version: quiver_proto::Version::V1,
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
        let pki = TestPki::new();
        let mut net = Network::new(seed);
        net.set_default_link(link);
        let mut rng = net.rng("quic-keys");
        let seed_bytes = |rng: &mut crate::Rng| {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            b
        };
        let server_ep = Endpoint::new(
            Arc::new(EndpointConfig::new(seed_bytes(&mut rng))),
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
        }
    }

    /// The client node.
    pub fn client(&mut self) -> &mut QuicNode {
        self.net.node_mut::<QuicNode>(self.client)
    }

    /// The server node.
    pub fn server(&mut self) -> &mut QuicNode {
        self.net.node_mut::<QuicNode>(self.server)
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
