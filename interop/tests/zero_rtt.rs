//! 0-RTT from quinn clients to a quiver server (RFC 9001 §4.6): accepted
//! (the request arrives in 0-RTT packets the server reads), and rejected
//! (quinn learns it and sends again in 1-RTT).

mod common;

use std::sync::Arc;

use common::*;
use quinn::crypto::rustls::QuicClientConfig;
use quiver_interop::{ALPN, CountingSessionStore, Pki, bounded};

/// A quinn client that keeps its tickets in `store` and attempts 0-RTT.
fn quinn_client_0rtt(pki: &Pki, store: Arc<CountingSessionStore>) -> quinn::Endpoint {
    let mut rustls = pki.rustls_client(false);
    rustls.enable_early_data = true;
    rustls.resumption = rustls::client::Resumption::store(store);
    let crypto = QuicClientConfig::try_from(rustls).unwrap();
    let mut client = quinn::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    client
}

/// The labels of the secrets a TLS key log was given.
#[derive(Debug, Default)]
struct Labels(std::sync::Mutex<Vec<String>>);

impl rustls::KeyLog for Labels {
    fn log(&self, label: &str, _client_random: &[u8], _secret: &[u8]) {
        self.0.lock().unwrap().push(label.to_owned());
    }
}

/// A quiver server whose tickets allow 0-RTT, logging its secrets' labels
/// to `labels`.
fn quiver_server_0rtt_logged(pki: &Pki, labels: Arc<Labels>) -> quiver::Endpoint {
    let crypto = quiver::proto::crypto::ServerConfig::with_single_cert(
        pki.server.chain.clone(),
        pki.server.key.clone_key(),
    )
    .alpn_protocols(vec![ALPN.to_vec()])
    .enable_early_data()
    .with_key_log(labels)
    .build()
    .unwrap();
    let config = quiver::ServerConfig::from_proto(quiver::proto::ServerConfig {
        crypto: Arc::new(crypto),
        transport: Arc::new(quiver::TransportConfig::default()),
        admission: Default::default(),
        new_tokens: Default::default(),
    });
    quiver::Endpoint::server(config, LOCALHOST.parse().unwrap()).unwrap()
}

/// A quiver server whose tickets allow 0-RTT.
fn quiver_server_0rtt(pki: &Pki) -> quiver::Endpoint {
    let config = quiver::ServerConfig::with_single_cert(
        pki.server.chain.clone(),
        pki.server.key.clone_key(),
    )
    .alpn_protocols(&[ALPN])
    .early_data(true)
    .build()
    .unwrap();
    quiver::Endpoint::server(config, LOCALHOST.parse().unwrap()).unwrap()
}

/// One full connection, leaving a ticket that allows 0-RTT in `store`.
async fn first_connection(
    client: &quinn::Endpoint,
    server: &quiver::Endpoint,
    store: &CountingSessionStore,
) {
    let addr = server.local_addr().unwrap();
    let connecting = client.connect(addr, "localhost").unwrap();
    let (c, s) = tokio::join!(connecting, async {
        server.accept().await.expect("incoming").await
    });
    let (c, s) = (c.unwrap(), s.unwrap());
    assert!(!s.is_zero_rtt_accepted());
    store.wait_for_tickets(1).await;
    c.close(quinn::VarInt::from_u32(0), b"");
    drop(s);
}

/// Reads one uni stream on `conn` to its end.
async fn read_one(conn: &quiver::Connection) -> Vec<u8> {
    let mut recv = conn.accept_uni().await.expect("a stream");
    recv.read_to_end(1 << 16).await.unwrap()
}

/// RFC 9001 §4.6.1: quinn resumes with 0-RTT, sends a request in 0-RTT
/// packets, and quiver reads them (counted) before the handshake ends.
/// The key log holds the early secret, so captures of 0-RTT decrypt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_0rtt_accepted_by_quiver() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let labels = Arc::new(Labels::default());
        let server = quiver_server_0rtt_logged(&pki, labels.clone());
        let store = Arc::new(CountingSessionStore::default());
        let client = quinn_client_0rtt(&pki, store.clone());
        first_connection(&client, &server, &store).await;

        let addr = server.local_addr().unwrap();
        let (conn, accepted) = client
            .connect(addr, "localhost")
            .unwrap()
            .into_0rtt()
            .expect("the ticket allows 0-RTT");
        let mut send = conn.open_uni().await.unwrap();
        send.write_all(b"GET /early\r\n").await.unwrap();
        send.finish().unwrap();
        let s = server.accept().await.unwrap().await.unwrap();
        assert!(s.is_resumed());
        assert!(s.is_zero_rtt_accepted());
        assert_eq!(read_one(&s).await, b"GET /early\r\n");
        assert!(accepted.await, "quinn says 0-RTT was rejected");
        assert!(
            s.stats().zero_rtt_packets_received > 0,
            "no 0-RTT packet was read"
        );
        let labels = labels.0.lock().unwrap();
        assert!(
            labels.iter().any(|l| l == "CLIENT_EARLY_TRAFFIC_SECRET"),
            "{labels:?}"
        );
    })
    .await;
}

/// RFC 9001 §4.6.2: the server refuses 0-RTT for this attempt
/// (`Incoming::set_early_data(false)`): the handshake still resumes,
/// quinn learns of the rejection, no 0-RTT packet is read, and a request
/// sent again after the handshake arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_0rtt_rejected_by_quiver() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let server = quiver_server_0rtt(&pki);
        let store = Arc::new(CountingSessionStore::default());
        let client = quinn_client_0rtt(&pki, store.clone());
        first_connection(&client, &server, &store).await;

        let addr = server.local_addr().unwrap();
        let (conn, accepted) = client
            .connect(addr, "localhost")
            .unwrap()
            .into_0rtt()
            .expect("the ticket allows 0-RTT");
        let mut early = conn.open_uni().await.unwrap();
        early.write_all(b"GET /early\r\n").await.unwrap();
        let _ = early.finish();
        let incoming = server.accept().await.unwrap();
        incoming.set_early_data(false);
        let s = incoming.await.unwrap();
        assert!(!accepted.await, "quinn says 0-RTT was accepted");
        assert!(s.is_resumed());
        assert!(!s.is_zero_rtt_accepted());
        assert_eq!(s.stats().zero_rtt_packets_received, 0);
        // The application sends again (quinn's streams of 0-RTT fail).
        let mut send = conn.open_uni().await.unwrap();
        send.write_all(b"GET /again\r\n").await.unwrap();
        send.finish().unwrap();
        assert_eq!(read_one(&s).await, b"GET /again\r\n");
    })
    .await;
}

/// A quinn server config allowing (or not) 0-RTT, on session `storage`.
fn quinn_server_config(
    pki: &Pki,
    early_data: bool,
    storage: Option<Arc<dyn rustls::server::StoresServerSessions>>,
) -> (
    quinn::ServerConfig,
    Arc<dyn rustls::server::StoresServerSessions>,
) {
    let mut tls = pki.rustls_server(false);
    if early_data {
        tls.max_early_data_size = u32::MAX;
    }
    if let Some(storage) = storage {
        tls.session_storage = storage;
    }
    let storage = tls.session_storage.clone();
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    (quinn::ServerConfig::with_crypto(Arc::new(crypto)), storage)
}

/// A quinn server that sends what every client uni stream carried to
/// the returned channel.
fn quinn_reader(
    config: quinn::ServerConfig,
) -> (
    quinn::Endpoint,
    tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let server = quinn::Endpoint::server(config, LOCALHOST.parse().unwrap()).unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let ep = server.clone();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok(mut recv) = conn.accept_uni().await {
                    if let Ok(data) = recv.read_to_end(1 << 16).await {
                        let _ = tx.send(data);
                    }
                }
            });
        }
    });
    (server, rx)
}

/// A quiver client endpoint that keeps its tickets in `store` and sends
/// 0-RTT when it can.
fn quiver_client_0rtt(pki: &Pki, store: Arc<CountingSessionStore>) -> quiver::Endpoint {
    let config = quiver::ClientConfig::with_root_certificates(pki.roots())
        .alpn_protocols(&[ALPN])
        .session_store(store)
        .early_data(true)
        .build()
        .unwrap();
    let mut client = quiver::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
    client.set_default_client_config(config);
    client
}

/// Resumes with 0-RTT and sends `data` on a uni stream at once; returns
/// whether quinn accepted it.
async fn send_in_0rtt(client: &quiver::Endpoint, addr: std::net::SocketAddr, data: &[u8]) -> bool {
    let (conn, accepted) = client
        .connect(addr, "localhost")
        .unwrap()
        .into_0rtt()
        .expect("the ticket allows 0-RTT");
    let mut send = conn.open_uni().await.unwrap();
    send.write_all(data).await.unwrap();
    send.finish().unwrap();
    let accepted = accepted.await;
    assert!(conn.is_resumed());
    // Keep the connection until the stream is delivered.
    let _ = send.stopped().await;
    accepted
}

/// RFC 9001 §4.6: quiver's client sends a request in 0-RTT to quinn,
/// which accepts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_0rtt_accepted_by_quinn() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let (config, _) = quinn_server_config(&pki, true, None);
        let (server, mut rx) = quinn_reader(config);
        let addr = server.local_addr().unwrap();
        let store = Arc::new(CountingSessionStore::default());
        let client = quiver_client_0rtt(&pki, store.clone());
        let first = client.connect(addr, "localhost").unwrap().await.unwrap();
        assert!(!first.is_resumed());
        store.wait_for_tickets(1).await;
        first.close(quiver::VarInt::from_u32(0), b"");
        assert!(send_in_0rtt(&client, addr, b"GET /early\r\n").await);
        assert_eq!(rx.recv().await.unwrap(), b"GET /early\r\n");
    })
    .await;
}

/// RFC 9001 §4.6.2: quinn now rejects 0-RTT (early data off, same
/// session storage: the session still resumes); quiver's transport sends
/// the stream's data again in 1-RTT and it arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_0rtt_rejected_by_quinn() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let (config, storage) = quinn_server_config(&pki, true, None);
        let (server, mut rx) = quinn_reader(config);
        let addr = server.local_addr().unwrap();
        let store = Arc::new(CountingSessionStore::default());
        let client = quiver_client_0rtt(&pki, store.clone());
        let first = client.connect(addr, "localhost").unwrap().await.unwrap();
        store.wait_for_tickets(1).await;
        first.close(quiver::VarInt::from_u32(0), b"");
        let (config, _) = quinn_server_config(&pki, false, Some(storage));
        server.set_server_config(Some(config));
        assert!(!send_in_0rtt(&client, addr, b"GET /again\r\n").await);
        assert_eq!(rx.recv().await.unwrap(), b"GET /again\r\n");
    })
    .await;
}
