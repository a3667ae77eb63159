//! Setup shared by the interop tests: both stacks' endpoints on loopback
//! and a connection between them in either direction.

// Each test file uses its own part of this.
#![allow(dead_code)]

use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quiver_interop::Pki;

/// Where every endpoint binds.
pub const LOCALHOST: &str = "127.0.0.1:0";

/// Logs to the test output, filtered by `RUST_LOG`.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A quinn server on loopback.
pub fn quinn_server(pki: &Pki, client_auth: bool) -> quinn::Endpoint {
    let crypto = QuicServerConfig::try_from(pki.rustls_server(client_auth)).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    quinn::Endpoint::server(config, LOCALHOST.parse().unwrap()).unwrap()
}

/// A quinn client on loopback trusting the test CA.
pub fn quinn_client(pki: &Pki, client_cert: bool) -> quinn::Endpoint {
    let crypto = QuicClientConfig::try_from(pki.rustls_client(client_cert)).unwrap();
    let mut ep = quinn::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    ep
}

/// A quiver server on loopback.
pub fn quiver_server(pki: &Pki, client_auth: bool) -> quiver::Endpoint {
    let config = pki.quiver_server(client_auth, quiver::TransportConfig::default());
    quiver::Endpoint::server(config, LOCALHOST.parse().unwrap()).unwrap()
}

/// A quiver client on loopback trusting the test CA.
pub fn quiver_client(pki: &Pki, client_cert: bool) -> quiver::Endpoint {
    let mut ep = quiver::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
    ep.set_default_client_config(
        pki.quiver_client(client_cert, quiver::TransportConfig::default()),
    );
    ep
}

/// A quiver client connected to a quinn server.
pub struct QuiverToQuinn {
    pub client: quiver::Connection,
    pub server: quinn::Connection,
    pub endpoints: (quiver::Endpoint, quinn::Endpoint),
}

/// Connects a quiver client to a quinn server.
pub async fn quiver_to_quinn(pki: &Pki, client_auth: bool) -> QuiverToQuinn {
    let server_ep = quinn_server(pki, client_auth);
    let client_ep = quiver_client(pki, client_auth);
    let addr = server_ep.local_addr().unwrap();
    let connecting = client_ep.connect(addr, "localhost").unwrap();
    let (client, server) = tokio::join!(connecting, async {
        server_ep.accept().await.expect("incoming").await
    });
    QuiverToQuinn {
        client: client.expect("quiver client connects"),
        server: server.expect("quinn server accepts"),
        endpoints: (client_ep, server_ep),
    }
}

/// A quinn client connected to a quiver server.
pub struct QuinnToQuiver {
    pub client: quinn::Connection,
    pub server: quiver::Connection,
    pub endpoints: (quinn::Endpoint, quiver::Endpoint),
}

/// Connects a quinn client to a quiver server.
pub async fn quinn_to_quiver(pki: &Pki, client_auth: bool) -> QuinnToQuiver {
    let server_ep = quiver_server(pki, client_auth);
    let client_ep = quinn_client(pki, client_auth);
    let addr = server_ep.local_addr().unwrap();
    let connecting = client_ep.connect(addr, "localhost").unwrap();
    let (client, server) = tokio::join!(connecting, async {
        server_ep.accept().await.expect("incoming").await
    });
    QuinnToQuiver {
        client: client.expect("quinn client connects"),
        server: server.expect("quiver server accepts"),
        endpoints: (client_ep, server_ep),
    }
}
