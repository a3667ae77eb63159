//! Setup shared by the interop tests: both stacks' endpoints on loopback
//! and a connection between them in either direction.

// Each test file uses its own part of this.
#![allow(dead_code, unused_macros)]

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
    quinn_client_with(pki, client_cert, quinn::TransportConfig::default())
}

/// [`quinn_client`] with its transport settings.
pub fn quinn_client_with(
    pki: &Pki,
    client_cert: bool,
    transport: quinn::TransportConfig,
) -> quinn::Endpoint {
    let crypto = QuicClientConfig::try_from(pki.rustls_client(client_cert)).unwrap();
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    let mut ep = quinn::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
    ep.set_default_client_config(config);
    ep
}

/// A quiver server on loopback.
pub fn quiver_server(pki: &Pki, client_auth: bool) -> quiver::Endpoint {
    quiver_server_with(pki, client_auth, quiver::TransportConfig::default())
}

/// [`quiver_server`] with its transport settings.
pub fn quiver_server_with(
    pki: &Pki,
    client_auth: bool,
    transport: quiver::TransportConfig,
) -> quiver::Endpoint {
    let config = pki.quiver_server(client_auth, transport);
    quiver::Endpoint::server(config, LOCALHOST.parse().unwrap()).unwrap()
}

/// A quiver client on loopback trusting the test CA.
pub fn quiver_client(pki: &Pki, client_cert: bool) -> quiver::Endpoint {
    quiver_client_with(pki, client_cert, quiver::TransportConfig::default())
}

/// [`quiver_client`] with its transport settings.
pub fn quiver_client_with(
    pki: &Pki,
    client_cert: bool,
    transport: quiver::TransportConfig,
) -> quiver::Endpoint {
    let mut ep = quiver::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
    ep.set_default_client_config(pki.quiver_client(client_cert, transport));
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
    connect_quiver_to_quinn(
        quiver_client(pki, client_auth),
        quinn_server(pki, client_auth),
    )
    .await
}

/// Connects the quiver `client_ep` to the quinn `server_ep`.
pub async fn connect_quiver_to_quinn(
    client_ep: quiver::Endpoint,
    server_ep: quinn::Endpoint,
) -> QuiverToQuinn {
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
    connect_quinn_to_quiver(
        quinn_client(pki, client_auth),
        quiver_server(pki, client_auth),
    )
    .await
}

/// Connects the quinn `client_ep` to the quiver `server_ep`.
pub async fn connect_quinn_to_quiver(
    client_ep: quinn::Endpoint,
    server_ep: quiver::Endpoint,
) -> QuinnToQuiver {
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

/// Sends `$data` (a `&[u8]`) on a new unidirectional stream of the
/// connection `$from` and evaluates to what `$to` read from it. A macro,
/// not a function, because `$from` and `$to` may be either stack's
/// connection: quinn and quiver name these methods alike.
macro_rules! transfer_uni {
    ($from:expr, $to:expr, $data:expr) => {{
        let data: &[u8] = $data;
        let limit = data.len() + 1;
        let to = $to.clone();
        let receive = tokio::spawn(async move {
            let mut recv = to.accept_uni().await.unwrap();
            recv.read_to_end(limit).await.unwrap()
        });
        let mut send = $from.open_uni().await.unwrap();
        send.write_all(data).await.unwrap();
        send.finish().unwrap();
        receive.await.unwrap()
    }};
}
#[allow(unused_imports)] // each test file uses its own part of this
pub(crate) use transfer_uni;

/// One scenario, two tests: `$quiver_client` plays `$body` with `$t` a
/// [`QuiverToQuinn`], `$quinn_client` with `$t` a [`QuinnToQuiver`]
/// (neither with client authentication). The body may use only what
/// both stacks' connections name alike.
macro_rules! both_ways {
    ($quiver_client:ident, $quinn_client:ident, |$t:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $quiver_client() {
            $crate::common::init_tracing();
            quiver_interop::bounded(async {
                let pki = quiver_interop::Pki::new();
                let $t = $crate::common::quiver_to_quinn(&pki, false).await;
                $body
            })
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $quinn_client() {
            $crate::common::init_tracing();
            quiver_interop::bounded(async {
                let pki = quiver_interop::Pki::new();
                let $t = $crate::common::quinn_to_quiver(&pki, false).await;
                $body
            })
            .await;
        }
    };
}
#[allow(unused_imports)] // each test file uses its own part of this
pub(crate) use both_ways;
