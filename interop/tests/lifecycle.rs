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

fn quinn_client(pki: &Pki) -> quinn::Endpoint {
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(pki.rustls_client(false)).unwrap();
    let mut ep = quinn::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    ep
}

fn quiver_server(pki: &Pki) -> quiver::Endpoint {
    let config = pki.quiver_server(false, quiver::TransportConfig::default());
    quiver::Endpoint::server(config, LOCALHOST.parse().unwrap()).unwrap()
}

/// A quiver server refuses: quinn reports the refusal at once.
#[tokio::test]
async fn quiver_refusal_is_reported_by_quinn_client_at_once() {
    bounded(async {
        let pki = Pki::new();
        let server = quiver_server(&pki);
        let addr = server.local_addr().unwrap();
        let client = quinn_client(&pki);
        let start = Instant::now();
        let (result, ()) = tokio::join!(client.connect(addr, "localhost").unwrap(), async {
            server.accept().await.expect("incoming").refuse();
        });
        assert!(
            matches!(result, Err(quinn::ConnectionError::ConnectionClosed(ref c)) if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED),
            "{result:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
    })
    .await;
}

/// A quiver server sends a Retry and accepts the validated attempt: quinn
/// completes the handshake (it checks our retry_source_connection_id).
#[tokio::test]
async fn quinn_client_completes_handshake_after_quiver_retry() {
    bounded(async {
        let pki = Pki::new();
        let server = quiver_server(&pki);
        let addr = server.local_addr().unwrap();
        let client = quinn_client(&pki);
        let (result, server_conn) =
            tokio::join!(client.connect(addr, "localhost").unwrap(), async {
                let first = server.accept().await.expect("incoming");
                assert!(!first.remote_address_validated());
                first.retry().expect("retry");
                let second = server.accept().await.expect("retried incoming");
                assert!(second.remote_address_validated());
                second.accept().await
            });
        let conn = result.expect("quinn connects after Retry");
        let server_conn = server_conn.expect("quiver accepts");
        conn.send_datagram(bytes::Bytes::from_static(b"after retry"))
            .unwrap();
        let got = server_conn.read_datagram().await.unwrap();
        assert_eq!(&got[..], b"after retry");
    })
    .await;
}

/// A quiver server closes while the handshake is in flight: the quinn
/// client, holding only Initial keys, reads the converted close
/// (APPLICATION_ERROR, RFC 9000 §10.2.3) at once instead of timing out.
#[tokio::test]
async fn quiver_close_during_handshake_is_reported_by_quinn_client() {
    bounded(async {
        let pki = Pki::new();
        let server = quiver_server(&pki);
        let addr = server.local_addr().unwrap();
        let client = quinn_client(&pki);
        let start = Instant::now();
        let (result, ()) = tokio::join!(client.connect(addr, "localhost").unwrap(), async {
            server
                .accept()
                .await
                .expect("incoming")
                .accept_and_close(quiver::VarInt::from_u32(0x2a), b"bye");
        });
        match result {
            Err(quinn::ConnectionError::ConnectionClosed(c)) => {
                assert_eq!(c.error_code, quinn::TransportErrorCode::APPLICATION_ERROR);
                assert!(c.reason.is_empty(), "no reason in Initial/Handshake");
            }
            Err(quinn::ConnectionError::ApplicationClosed(c)) => {
                assert_eq!(c.error_code, quinn::VarInt::from_u32(0x2a));
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
