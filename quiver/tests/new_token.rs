//! NEW_TOKEN through the runtime (RFC 9000 §8.1.3): the default token
//! store of a `ClientConfig` is shared by every connection made with it,
//! from any endpoint, so a client's second connection to a server that
//! retries every unvalidated client gets in without a Retry.

mod common;

use bytes::Bytes;
use common::{ALPN, LOCALHOST, Pki, bounded};
use quiver::{AdmissionConfig, Endpoint, ServerConfig, TransportConfig};

#[tokio::test]
async fn second_connection_uses_the_configs_token_and_skips_retry() {
    bounded(async {
        let pki = Pki::new();
        let config = ServerConfig::with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
            .alpn_protocols(&[ALPN])
            .admission(AdmissionConfig {
                retry_threshold: 0,
                ..AdmissionConfig::default()
            })
            .build()
            .unwrap();
        let server = Endpoint::server(config, LOCALHOST.parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let client_config = pki.client(TransportConfig::default());

        // First connection: a Retry, then the server's NEW_TOKEN. A
        // datagram the server sends after it (loopback keeps the order)
        // tells the client has the token.
        let mut first_client = Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        first_client.set_default_client_config(client_config.clone());
        let (c1, s1) = tokio::join!(first_client.connect(addr, "localhost").unwrap(), async {
            server.accept().await.unwrap().accept().await.unwrap()
        });
        let c1 = c1.unwrap();
        s1.send_datagram(Bytes::from_static(b"after the token"))
            .unwrap();
        assert_eq!(&c1.read_datagram().await.unwrap()[..], b"after the token");
        assert_eq!(server.stats().retried_automatically, 1);

        // Second connection, from another endpoint with a clone of the
        // configuration: the token validates it (no Retry).
        let mut second_client = Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        second_client.set_default_client_config(client_config);
        let (c2, s2) = tokio::join!(second_client.connect(addr, "localhost").unwrap(), async {
            let incoming = server.accept().await.unwrap();
            assert!(incoming.remote_address_validated());
            incoming.accept().await.unwrap()
        });
        c2.unwrap();
        drop(s2);
        let stats = server.stats();
        assert_eq!(stats.retried_automatically, 1, "{stats:?}");
        assert_eq!(stats.new_tokens_accepted, 1, "{stats:?}");
        assert_eq!(stats.new_tokens_issued, 2, "{stats:?}");
    })
    .await;
}
