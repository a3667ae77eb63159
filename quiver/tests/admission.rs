//! Admission control through the runtime: the configuration set on a
//! `ServerConfig` and the counters read from `Endpoint::stats`.

mod common;

use common::{ALPN, LOCALHOST, Pki, bounded, connect};
use quiver::{AdmissionConfig, ConnectionError, Endpoint, ServerConfig, TransportConfig};

fn server(pki: &Pki, admission: AdmissionConfig) -> Endpoint {
    let config = ServerConfig::with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
        .alpn_protocols(&[ALPN])
        .admission(admission)
        .build()
        .unwrap();
    Endpoint::server(config, LOCALHOST.parse().unwrap()).unwrap()
}

/// With a Retry threshold of 0 every client proves its address first (RFC
/// 9000 §8.1.2) and the application only sees validated attempts; with a
/// handshake limit of 0 every client is refused (RFC 9000 §5.2.2).
#[tokio::test]
async fn automatic_retry_and_refusal_are_counted() {
    bounded(async {
        let pki = Pki::new();
        let retrying = server(
            &pki,
            AdmissionConfig {
                retry_threshold: 0,
                ..AdmissionConfig::default()
            },
        );
        let mut client = Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        client.set_default_client_config(pki.client(TransportConfig::default()));
        let addr = retrying.local_addr().unwrap();
        let connecting = client.connect(addr, "localhost").unwrap();
        let (c, validated) = tokio::join!(connecting, async {
            let incoming = retrying.accept().await.unwrap();
            let validated = incoming.remote_address_validated();
            incoming.accept().await.unwrap();
            validated
        });
        c.unwrap();
        assert!(validated);
        let stats = retrying.stats();
        // One answer per attempt, though its (post-quantum) ClientHello
        // spans two datagrams: the second, not starting the CRYPTO stream,
        // is not answered again.
        assert_eq!((stats.retried_automatically, stats.accepted), (1, 1));
        assert_eq!(stats.connections, 1);

        let refusing = server(
            &pki,
            AdmissionConfig {
                max_handshakes: 0,
                ..AdmissionConfig::default()
            },
        );
        let addr = refusing.local_addr().unwrap();
        let result = client.connect(addr, "localhost").unwrap().await;
        assert_eq!(result.unwrap_err(), ConnectionError::Refused);
        let stats = refusing.stats();
        assert_eq!((stats.refused.handshakes, stats.accepted), (1, 0));

        // Defaults let an ordinary connection through untouched.
        let plain = server(&pki, AdmissionConfig::default());
        connect(&plain, &client).await;
        let stats = plain.stats();
        assert_eq!((stats.accepted, stats.retried_automatically), (1, 0));
    })
    .await;
}
