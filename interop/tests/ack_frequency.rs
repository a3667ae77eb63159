//! The ACK frequency extension (draft-ietf-quic-ack-frequency) against
//! quinn 0.11, which advertises min_ack_delay (1 ms) and honours
//! ACK_FREQUENCY, and can send it when configured: both directions.

mod common;

use std::sync::Arc;

use common::{LOCALHOST, init_tracing, quinn_server};
use quinn::crypto::rustls::QuicClientConfig;
use quiver_interop::{Pki, bounded, pattern};

const TEN_MB: usize = 10 * 1024 * 1024;

// quiver uploads to quinn: quinn advertised min_ack_delay, so quiver's
// sender asks it for fewer ACKs (draft §8) and quinn accepts the frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_sends_ack_frequency_to_quinn() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let quinn_ep = quinn_server(&pki, false);
        let mut quiver_ep = quiver::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        quiver_ep.set_default_client_config(
            pki.quiver_client(false, quiver::TransportConfig::default()),
        );
        let addr = quinn_ep.local_addr().unwrap();
        let connecting = quiver_ep.connect(addr, "localhost").unwrap();
        let (client, server) = tokio::join!(connecting, async {
            quinn_ep.accept().await.expect("incoming").await
        });
        let (client, server) = (client.unwrap(), server.unwrap());
        let receiver = server.clone();
        let receive = tokio::spawn(async move {
            let mut recv = receiver.accept_uni().await.unwrap();
            recv.read_to_end(TEN_MB + 1).await.unwrap()
        });
        let mut send = client.open_uni().await.unwrap();
        send.write_all(&pattern(TEN_MB, 5)).await.unwrap();
        send.finish().unwrap();
        let up = receive.await.unwrap();
        assert!(up == pattern(TEN_MB, 5), "upload corrupted");
        let sent = client.stats().ack_frequency_sent;
        let received = server.stats().frame_rx.ack_frequency;
        assert!(sent > 0, "quiver sent no ACK_FREQUENCY");
        assert!(received > 0 && received <= sent, "{received} of {sent}");
        assert!(server.close_reason().is_none());
    })
    .await;
}

// A quinn client configured to send ACK_FREQUENCY uploads to quiver, which
// advertised min_ack_delay: quiver honours the frames (and any
// IMMEDIATE_ACK) without closing the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_sends_ack_frequency_to_quiver() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let server_ep = common::quiver_server(&pki, false);
        let crypto = QuicClientConfig::try_from(pki.rustls_client(false)).unwrap();
        let mut transport = quinn::TransportConfig::default();
        transport.ack_frequency_config(Some(quinn::AckFrequencyConfig::default()));
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(Arc::new(transport));
        let mut client_ep = quinn::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        client_ep.set_default_client_config(config);
        let addr = server_ep.local_addr().unwrap();
        let connecting = client_ep.connect(addr, "localhost").unwrap();
        let (client, server) = tokio::join!(connecting, async {
            server_ep.accept().await.expect("incoming").await
        });
        let (client, server) = (client.unwrap(), server.unwrap());
        let receiver = server.clone();
        let receive = tokio::spawn(async move {
            let mut recv = receiver.accept_uni().await.unwrap();
            recv.read_to_end(TEN_MB + 1).await.unwrap()
        });
        let mut send = client.open_uni().await.unwrap();
        send.write_all(&pattern(TEN_MB, 6)).await.unwrap();
        send.finish().unwrap();
        let up = receive.await.unwrap();
        assert!(up == pattern(TEN_MB, 6), "upload corrupted");
        assert!(client.stats().frame_tx.ack_frequency > 0, "quinn sent none");
        assert!(client.close_reason().is_none());
        // quiver sent ACKs back throughout (the upload completed), and
        // never ACK_FREQUENCY of its own as a pure receiver.
        assert!(server.stats().ack_packets_sent > 0);
    })
    .await;
}
