//! TLS session resumption against quinn, both directions (RFC 9001 §4.5):
//! the second connection resumes the first one's session and the server
//! presents no certificate.

mod common;

use std::sync::Arc;

use common::*;
use quinn::crypto::rustls::QuicClientConfig;
use quiver::proto::crypto::HandshakeKind;
use quiver_interop::{ALPN, CountingSessionStore, CountingVerifier, Pki, bounded};

/// A quiver client configuration that keeps its tickets in `store` and
/// verifies certificates with `verifier`.
fn quiver_client_config(
    store: Arc<CountingSessionStore>,
    verifier: Arc<CountingVerifier>,
) -> quiver::ClientConfig {
    let crypto = quiver::proto::crypto::ClientConfig::with_server_cert_verifier(verifier)
        .alpn_protocols(vec![ALPN.to_vec()])
        .with_session_store(store)
        .build()
        .unwrap();
    quiver::ClientConfig::from_proto(quiver::proto::ClientConfig {
        crypto: Arc::new(crypto),
        transport: Arc::new(quiver::TransportConfig::default()),
        version: quiver::proto::Version::V1,
        available_versions: Vec::new(),
        token_store: None,
    })
}

/// quiver client, quinn server: the second connection resumes (quiver's
/// TLS reports a PSK handshake) and verifies no certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_resumes_with_quinn_server() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let server = quinn_server(&pki, false);
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            while let Some(incoming) = server.accept().await {
                tokio::spawn(async move {
                    if let Ok(conn) = incoming.await {
                        conn.closed().await;
                    }
                });
            }
        });
        let store = Arc::new(CountingSessionStore::default());
        let verifier = CountingVerifier::new(pki.roots());
        let mut client = quiver::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        client.set_default_client_config(quiver_client_config(store.clone(), verifier.clone()));

        let first = client.connect(addr, "localhost").unwrap().await.unwrap();
        assert_eq!(first.handshake_kind(), Some(HandshakeKind::Full));
        assert_eq!(verifier.verified(), 1);
        store.wait_for_tickets(1).await;

        let second = client.connect(addr, "localhost").unwrap().await.unwrap();
        assert!(second.is_resumed(), "{:?}", second.handshake_kind());
        assert_eq!(
            verifier.verified(),
            1,
            "the resumed handshake verified a certificate"
        );
        first.close(quiver::VarInt::from_u32(0), b"");
        second.close(quiver::VarInt::from_u32(0), b"");
    })
    .await;
}

/// quinn client, quiver server: quiver's server reports the resumption,
/// and quinn's client verified a certificate only the first time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_resumes_with_quiver_server() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let server = quiver_server(&pki, false);
        let addr = server.local_addr().unwrap();
        let store = Arc::new(CountingSessionStore::default());
        let verifier = CountingVerifier::new(pki.roots());
        let mut rustls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
        rustls.alpn_protocols = vec![ALPN.to_vec()];
        rustls.resumption = rustls::client::Resumption::store(store.clone());
        let crypto = QuicClientConfig::try_from(rustls).unwrap();
        let mut client = quinn::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        client.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));

        let mut kinds = Vec::new();
        let mut conns = Vec::new();
        for _ in 0..2 {
            let connecting = client.connect(addr, "localhost").unwrap();
            let (c, s) = tokio::join!(connecting, async {
                server.accept().await.expect("incoming").await
            });
            let (c, s) = (c.unwrap(), s.unwrap());
            kinds.push(s.handshake_kind());
            store.wait_for_tickets(1).await;
            conns.push((c, s));
        }
        assert_eq!(
            kinds,
            [Some(HandshakeKind::Full), Some(HandshakeKind::Resumed)]
        );
        assert_eq!(
            verifier.verified(),
            1,
            "the resumed handshake verified a certificate"
        );
        assert!(conns[1].1.is_resumed());
    })
    .await;
}
