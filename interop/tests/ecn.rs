//! ECN against quinn 0.11.12 (RFC 9000 §13.4), both directions over
//! loopback: each side marks its packets ECT(0) and the other reports the
//! counts, so quiver's validation of the reports passes (marking stays on)
//! and quiver sees quinn's marks.

mod common;

use common::{init_tracing, quinn_to_quiver, quiver_to_quinn};
use quiver_interop::{Pki, bounded, pattern};

const SIZE: usize = 2 * 1024 * 1024;

fn assert_negotiated(stats: quiver::ConnectionStats) {
    assert!(
        stats.ecn_marked_sent > 100 && !stats.ecn_failed,
        "quiver's marks were not validated by quinn's reports: {stats:?}"
    );
    assert!(
        stats.ecn_marked_received > 100,
        "quinn's packets arrived unmarked: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecn_with_a_quinn_client() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quinn_to_quiver(&pki, false).await;
        let server = t.server.clone();
        let serve = tokio::spawn(async move {
            let (mut send, mut recv) = server.accept_bi().await.unwrap();
            recv.read_to_end(SIZE).await.unwrap();
            send.write_all(&pattern(SIZE, 3)).await.unwrap();
            send.finish().unwrap();
            let _ = send.stopped().await;
        });
        let (mut send, mut recv) = t.client.open_bi().await.unwrap();
        send.write_all(&pattern(SIZE / 4, 4)).await.unwrap();
        send.finish().unwrap();
        let got = recv.read_to_end(SIZE + 1).await.unwrap();
        assert!(got == pattern(SIZE, 3));
        serve.await.unwrap();
        assert_negotiated(t.server.stats());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecn_with_a_quinn_server() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quiver_to_quinn(&pki, false).await;
        let server = t.server.clone();
        let serve = tokio::spawn(async move {
            let (mut send, mut recv) = server.accept_bi().await.unwrap();
            recv.read_to_end(SIZE).await.unwrap();
            send.write_all(&pattern(SIZE, 5)).await.unwrap();
            send.finish().unwrap();
            let _ = send.stopped().await;
        });
        let (mut send, mut recv) = t.client.open_bi().await.unwrap();
        send.write_all(&pattern(SIZE / 4, 6)).await.unwrap();
        send.finish().unwrap();
        let got = recv.read_to_end(SIZE + 1).await.unwrap();
        assert!(got == pattern(SIZE, 5));
        serve.await.unwrap();
        assert_negotiated(t.client.stats());
    })
    .await;
}
