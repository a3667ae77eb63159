//! `CountingSessionStore` through the runtime: it counts the TLS 1.3
//! tickets a server sends after the handshake (RFC 8446 §4.6.1), so a
//! client can wait for one before its next connection, which then resumes
//! (RFC 9001 §4.5).

mod common;

use std::time::Duration;

use common::{LOCALHOST, Pki, bounded};
use quiver::{CountingSessionStore, Endpoint, TransportConfig};

#[tokio::test]
async fn counting_store_tells_when_a_ticket_arrived_and_the_next_connection_resumes() {
    bounded(async {
        let pki = Pki::new();
        let server = Endpoint::server(
            pki.server(TransportConfig::default()),
            LOCALHOST.parse().unwrap(),
        )
        .unwrap();
        let addr = server.local_addr().unwrap();
        let serving = server.clone();
        tokio::spawn(async move {
            while let Some(incoming) = serving.accept().await {
                let connection = incoming.await.unwrap();
                // Held open until the client closes.
                tokio::spawn(async move { connection.closed().await });
            }
        });
        let store = CountingSessionStore::new(4);
        let config = pki
            .client_builder()
            .session_store(store.clone())
            .build()
            .unwrap();
        let mut client = Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        client.set_default_client_config(config);

        assert_eq!(store.received(), 0);
        let first = client.connect(addr, "localhost").unwrap().await.unwrap();
        assert!(!first.is_resumed());
        assert!(store.wait_beyond(0, Duration::from_secs(10)).await);
        let seen = store.received();
        assert!(seen >= 1);
        first.close(0u32.into(), b"");

        let second = client.connect(addr, "localhost").unwrap().await.unwrap();
        assert!(second.is_resumed());
        assert!(store.wait_beyond(seen, Duration::from_secs(10)).await);
        second.close(0u32.into(), b"");
        client.wait_idle().await;
    })
    .await;
}
