//! Connection lifecycle against quinn: a quinn server that refuses, sends a
//! Retry, or closes during the handshake, and a quiver client that must
//! report each exactly and at once (never by idle timeout).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use quinn::crypto::rustls::QuicServerConfig;
use quiver::proto::{ConnectionError, TransportErrorCode};
use quiver_interop::{Pki, bounded};

const LOCALHOST: &str = "127.0.0.1:0";

fn quinn_server_with(pki: &Pki, alpn: &[u8]) -> quinn::Endpoint {
    let mut tls = pki.rustls_server(false);
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = QuicServerConfig::try_from(tls).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    quinn::Endpoint::server(config, LOCALHOST.parse().unwrap()).unwrap()
}

fn quiver_client(pki: &Pki) -> quiver::Endpoint {
    let mut ep = quiver::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
    ep.set_default_client_config(pki.quiver_client(false, quiver::TransportConfig::default()));
    ep
}

/// quinn refuses the attempt (CONNECTION_REFUSED in an Initial): the quiver
/// client reports `Refused` within a fraction of a second.
#[tokio::test]
async fn quinn_refusal_is_reported_by_quiver_client_at_once() {
    bounded(async {
        let pki = Pki::new();
        let server = quinn_server_with(&pki, quiver_interop::ALPN);
        let addr = server.local_addr().unwrap();
        let client = quiver_client(&pki);
        let start = Instant::now();
        let (result, ()) = tokio::join!(client.connect(addr, "localhost").unwrap(), async {
            server.accept().await.expect("incoming").refuse();
        });
        assert_eq!(result.err(), Some(ConnectionError::Refused));
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    })
    .await;
}

/// quinn answers with a Retry, then accepts the validated attempt: the
/// quiver client follows the Retry and checks retry_source_connection_id
/// (RFC 9000 §7.3, §17.2.5).
#[tokio::test]
async fn quiver_client_completes_handshake_after_quinn_retry() {
    bounded(async {
        let pki = Pki::new();
        let server = quinn_server_with(&pki, quiver_interop::ALPN);
        let addr = server.local_addr().unwrap();
        let client = quiver_client(&pki);
        let (result, server_conn) =
            tokio::join!(client.connect(addr, "localhost").unwrap(), async {
                let first = server.accept().await.expect("incoming");
                assert!(!first.remote_address_validated());
                first.retry().unwrap();
                let second = server.accept().await.expect("retried incoming");
                assert!(second.remote_address_validated());
                second.accept().unwrap().await
            });
        let conn = result.expect("quiver client connects after Retry");
        let server_conn = server_conn.expect("quinn accepts");
        // Prove the connection works: a datagram round trip.
        conn.send_datagram(bytes::Bytes::from_static(b"after retry"))
            .unwrap();
        let got = server_conn.read_datagram().await.unwrap();
        assert_eq!(&got[..], b"after retry");
    })
    .await;
}

/// quinn closes during the handshake because no ALPN matches (a TLS alert,
/// CRYPTO_ERROR 0x178, RFC 9001 §8.1): the quiver client reports that code
/// at once, not an idle timeout.
#[tokio::test]
async fn quinn_close_during_handshake_is_reported_by_quiver_client() {
    bounded(async {
        let pki = Pki::new();
        let server = quinn_server_with(&pki, b"not-what-the-client-offers");
        let addr = server.local_addr().unwrap();
        let client = quiver_client(&pki);
        let start = Instant::now();
        let (result, _) = tokio::join!(client.connect(addr, "localhost").unwrap(), async {
            let incoming = server.accept().await.expect("incoming");
            // quinn reads the ClientHello at accept and fails there; the
            // close goes out either way.
            match incoming.accept() {
                Ok(connecting) => connecting.await.err(),
                Err(e) => Some(e),
            }
        });
        match result.err() {
            Some(ConnectionError::ConnectionClosed { code, .. }) => {
                assert_eq!(
                    code,
                    TransportErrorCode::crypto(120),
                    "no_application_protocol"
                );
            }
            other => panic!("expected the server's close, got {other:?}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    })
    .await;
}
