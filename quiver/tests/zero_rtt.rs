//! 0-RTT through the runtime on both sides (RFC 9001 §4.6): a server that
//! takes the connection at once with `Connecting::into_0rtt` and opens a
//! stream of its own, as an HTTP/3 server opens its control stream.

mod common;

use std::time::Duration;

use common::{LOCALHOST, Pki, bounded};
use quiver::{CountingSessionStore, Endpoint};

/// A server that takes a connection in 0-RTT (`into_0rtt`) echoes the
/// client's 0-RTT request and speaks first on a stream of its own, as an
/// HTTP/3 server opens its control stream, all before the client's
/// Finished arrives (0.5-RTT data, RFC 9001 §5.7). Before the core let a
/// server open streams with 1-RTT keys, that open waited for a MAX_STREAMS
/// that never came, until the idle timeout; the runtime now also wakes
/// stream openers when the handshake completes. `ZeroRttAccepted` answers
/// after the connection has closed.
#[tokio::test]
async fn server_in_0rtt_answers_and_opens_a_stream_of_its_own() {
    bounded(async {
        let pki = Pki::new();
        let server_config = pki.server_builder().early_data(true).build().unwrap();
        let server = Endpoint::server(server_config, LOCALHOST.parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let serving = server.clone();
        let served = tokio::spawn(async move {
            let mut early = Vec::new();
            while let Some(incoming) = serving.accept().await {
                let connecting = incoming.accept();
                let (conn, in_0rtt) = match connecting.into_0rtt() {
                    Ok((conn, _accepted)) => (conn, true),
                    Err(connecting) => (connecting.await.unwrap(), false),
                };
                early.push(in_0rtt);
                // Echo the client's request, then speak first on a
                // stream of our own.
                let (mut send, mut recv) = conn.accept_bi().await.unwrap();
                let request = recv.read_to_end(1024).await.unwrap();
                send.write_all(&request).await.unwrap();
                send.finish().unwrap();
                let mut own = conn.open_uni().await.unwrap();
                own.write_all(b"server first").await.unwrap();
                own.finish().unwrap();
                conn.closed().await;
                if early.len() == 2 {
                    return early;
                }
            }
            early
        });

        let store = CountingSessionStore::new(4);
        let config = pki
            .client_builder()
            .session_store(store.clone())
            .early_data(true)
            .build()
            .unwrap();
        let mut client = Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        client.set_default_client_config(config);

        let exchange = |conn: quiver::Connection| async move {
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            send.write_all(b"request").await.unwrap();
            send.finish().unwrap();
            assert_eq!(recv.read_to_end(1024).await.unwrap(), b"request");
            let mut own = conn.accept_uni().await.unwrap();
            assert_eq!(own.read_to_end(1024).await.unwrap(), b"server first");
            conn.close(0u32.into(), b"done");
        };
        let first = client.connect(addr, "localhost").unwrap().await.unwrap();
        assert!(store.wait_beyond(0, Duration::from_secs(10)).await);
        exchange(first).await;

        let (second, accepted) = client
            .connect(addr, "localhost")
            .unwrap()
            .into_0rtt()
            .unwrap_or_else(|_| panic!("the ticket allows 0-RTT"));
        exchange(second).await;
        // Closed by now; the answer stands.
        assert!(accepted.await, "0-RTT accepted");
        assert_eq!(served.await.unwrap(), [false, true]);
        // No wait_idle: a client that closes before its handshake is
        // confirmed (it had its answers in 0.5-RTT data) lingers several seconds
        // in the closing state (close.rs, the founding lesson).
    })
    .await;
}
