//! The ACK frequency extension (draft-ietf-quic-ack-frequency) against
//! quinn 0.11, which advertises min_ack_delay (1 ms) and honours
//! ACK_FREQUENCY, and can send it when configured: both directions.

mod common;

use common::{
    connect_quinn_to_quiver, init_tracing, quinn_client_with, quiver_server, quiver_to_quinn,
    transfer_uni,
};
use quiver_interop::{Pki, bounded, pattern};

const TEN_MB: usize = 10 * 1024 * 1024;

// quiver uploads to quinn: quinn advertised min_ack_delay, so quiver's
// sender asks it for fewer ACKs (draft §8) and quinn accepts the frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_sends_ack_frequency_to_quinn() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quiver_to_quinn(&pki, false).await;
        let up = transfer_uni!(t.client, t.server, &pattern(TEN_MB, 5));
        assert!(up == pattern(TEN_MB, 5), "upload corrupted");
        let sent = t.client.stats().ack_frequency_sent;
        let received = t.server.stats().frame_rx.ack_frequency;
        assert!(sent > 0, "quiver sent no ACK_FREQUENCY");
        assert!(received > 0 && received <= sent, "{received} of {sent}");
        assert!(t.server.close_reason().is_none());
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
        let mut transport = quinn::TransportConfig::default();
        transport.ack_frequency_config(Some(quinn::AckFrequencyConfig::default()));
        let t = connect_quinn_to_quiver(
            quinn_client_with(&pki, false, transport),
            quiver_server(&pki, false),
        )
        .await;
        let up = transfer_uni!(t.client, t.server, &pattern(TEN_MB, 6));
        assert!(up == pattern(TEN_MB, 6), "upload corrupted");
        assert!(
            t.client.stats().frame_tx.ack_frequency > 0,
            "quinn sent none"
        );
        assert!(t.client.close_reason().is_none());
        // quiver sent ACKs back throughout (the upload completed), and
        // never ACK_FREQUENCY of its own as a pure receiver.
        assert!(t.server.stats().ack_packets_sent > 0);
    })
    .await;
}
