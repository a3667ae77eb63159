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
