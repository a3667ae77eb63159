//! Shared setup for quiver's loopback tests.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use quiver::{
    ClientConfig, ClientConfigBuilder, Connection, Endpoint, ServerConfig, ServerConfigBuilder,
    TransportConfig,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub const ALPN: &[u8] = b"quiver-test";

/// Fails the test instead of hanging it.
pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test timed out after 30 s")
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub struct Pki {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

impl Pki {
    pub fn new() -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        Self {
            cert: ck.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
        }
    }

    pub fn server(&self, transport: TransportConfig) -> ServerConfig {
        self.server_builder().transport(transport).build().unwrap()
    }

    /// A server configuration for this certificate and [`ALPN`], to finish.
    pub fn server_builder(&self) -> ServerConfigBuilder {
        ServerConfig::with_single_cert(vec![self.cert.clone()], self.key.clone_key())
            .alpn_protocols(&[ALPN])
    }

    pub fn client(&self, transport: TransportConfig) -> ClientConfig {
        self.client_builder().transport(transport).build().unwrap()
    }

    /// A client configuration trusting this certificate, offering
    /// [`ALPN`], to finish.
    pub fn client_builder(&self) -> ClientConfigBuilder {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        ClientConfig::with_root_certificates(roots).alpn_protocols(&[ALPN])
    }
}

pub const LOCALHOST: &str = "127.0.0.1:0";

/// A server endpoint and a client endpoint with default settings.
pub fn pair() -> (Endpoint, Endpoint) {
    pair_with(TransportConfig::default(), TransportConfig::default())
}

pub fn pair_with(client: TransportConfig, server: TransportConfig) -> (Endpoint, Endpoint) {
    let pki = Pki::new();
    let server = Endpoint::server(pki.server(server), LOCALHOST.parse().unwrap()).unwrap();
    let mut client_ep = Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
    client_ep.set_default_client_config(pki.client(client));
    (server, client_ep)
}

/// Connects the client to the server; returns (client side, server side).
pub async fn connect(server: &Endpoint, client: &Endpoint) -> (Connection, Connection) {
    let addr: SocketAddr = server.local_addr().unwrap();
    let connecting = client.connect(addr, "localhost").unwrap();
    let (c, s) = tokio::join!(connecting, async {
        server.accept().await.expect("incoming").accept().await
    });
    (c.expect("client connects"), s.expect("server accepts"))
}
