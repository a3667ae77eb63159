//! quiver against quinn (pinned) over loopback UDP, in both directions:
//! `quiver_client_*` tests run a quiver client against a quinn server,
//! `quinn_client_*` tests a quinn client against a quiver server.

mod common;

use bytes::Bytes;
use common::{
    both_ways, connect_quinn_to_quiver, connect_quiver_to_quinn, init_tracing, quinn_client,
    quinn_server, quinn_to_quiver, quiver_client_with, quiver_server, quiver_server_with,
    quiver_to_quinn, transfer_uni,
};
use quiver_interop::{ALPN, Pki, bounded, pattern};

const TEN_MB: usize = 10 * 1024 * 1024;
const STREAMS: usize = 200;

fn quinn_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

fn qv(code: u32) -> quiver::VarInt {
    quiver::VarInt::from_u32(code)
}

fn qn(code: u32) -> quinn::VarInt {
    quinn::VarInt::from_u32(code)
}

// ---------------------------------------------------------------- handshake

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_handshake() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quiver_to_quinn(&pki, false).await;
        assert_eq!(t.client.alpn_protocol().as_deref(), Some(ALPN));
        assert_eq!(quinn_alpn(&t.server).as_deref(), Some(ALPN));
        assert_eq!(
            t.server.remote_address(),
            t.endpoints.0.local_addr().unwrap()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_handshake() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quinn_to_quiver(&pki, false).await;
        assert_eq!(quinn_alpn(&t.client).as_deref(), Some(ALPN));
        assert_eq!(t.server.alpn_protocol().as_deref(), Some(ALPN));
        assert_eq!(t.server.server_name().as_deref(), Some("localhost"));
    })
    .await;
}

// ---------------------------------------------------------------- 10 MB

both_ways!(
    quiver_client_ten_megabytes_each_way,
    quinn_client_ten_megabytes_each_way,
    |t| {
        let server = t.server.clone();
        let serve = tokio::spawn(async move {
            let (mut send, mut recv) = server.accept_bi().await.unwrap();
            let up = recv.read_to_end(TEN_MB + 1).await.unwrap();
            assert!(up == pattern(TEN_MB, 1), "upload corrupted");
            send.write_all(&pattern(TEN_MB, 2)).await.unwrap();
            send.finish().unwrap();
            send.stopped().await.unwrap();
        });
        let (mut send, mut recv) = t.client.open_bi().await.unwrap();
        send.write_all(&pattern(TEN_MB, 1)).await.unwrap();
        send.finish().unwrap();
        let down = recv.read_to_end(TEN_MB + 1).await.unwrap();
        assert!(down == pattern(TEN_MB, 2), "download corrupted");
        serve.await.unwrap();
    }
);

// ---------------------------------------------------------------- 200 streams

both_ways!(
    quiver_client_two_hundred_concurrent_streams,
    quinn_client_two_hundred_concurrent_streams,
    |t| {
        let server = t.server.clone();
        tokio::spawn(async move {
            while let Ok((mut send, mut recv)) = server.accept_bi().await {
                tokio::spawn(async move {
                    let data = recv.read_to_end(1 << 20).await.unwrap();
                    send.write_all(&data).await.unwrap();
                    send.finish().unwrap();
                    let _ = send.stopped().await;
                });
            }
        });
        let tasks: Vec<_> = (0..STREAMS)
            .map(|i| {
                let conn = t.client.clone();
                tokio::spawn(async move {
                    let (mut send, mut recv) = conn.open_bi().await.unwrap();
                    let data = pattern(1000 + i, i as u8);
                    send.write_all(&data).await.unwrap();
                    send.finish().unwrap();
                    assert_eq!(recv.read_to_end(1 << 20).await.unwrap(), data);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }
);

// ---------------------------------------------------------------- datagrams

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_datagrams() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quiver_to_quinn(&pki, false).await;
        // Unreliable, but loopback does not lose a handful of datagrams.
        t.client
            .send_datagram(Bytes::from_static(b"quiver to quinn"))
            .unwrap();
        assert_eq!(
            t.server.read_datagram().await.unwrap(),
            &b"quiver to quinn"[..]
        );
        t.server
            .send_datagram(Bytes::from_static(b"quinn to quiver"))
            .unwrap();
        assert_eq!(
            t.client.read_datagram().await.unwrap(),
            &b"quinn to quiver"[..]
        );
        let big = Bytes::from(pattern(t.client.max_datagram_size().unwrap(), 3));
        t.client.send_datagram(big.clone()).unwrap();
        assert_eq!(t.server.read_datagram().await.unwrap(), big);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_datagrams() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quinn_to_quiver(&pki, false).await;
        t.client
            .send_datagram(Bytes::from_static(b"quinn to quiver"))
            .unwrap();
        assert_eq!(
            t.server.read_datagram().await.unwrap(),
            &b"quinn to quiver"[..]
        );
        t.server
            .send_datagram(Bytes::from_static(b"quiver to quinn"))
            .unwrap();
        assert_eq!(
            t.client.read_datagram().await.unwrap(),
            &b"quiver to quinn"[..]
        );
    })
    .await;
}

// ---------------------------------------------------------------- reset / stop

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_reset_and_stop() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quiver_to_quinn(&pki, false).await;
        // quiver resets; quinn's reader sees the code.
        let mut send = t.client.open_uni().await.unwrap();
        send.write_all(b"some data, then a reset").await.unwrap();
        send.reset(qv(77)).unwrap();
        let mut recv = t.server.accept_uni().await.unwrap();
        match recv.read_to_end(1 << 20).await {
            Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
                assert_eq!(code, qn(77))
            }
            other => panic!("expected a reset, got {other:?}"),
        }
        // quinn stops; quiver's writer sees the code.
        let (mut send, _recv) = t.client.open_bi().await.unwrap();
        send.write_all(b"x").await.unwrap();
        let (_s, mut s_recv) = t.server.accept_bi().await.unwrap();
        s_recv.stop(qn(78)).unwrap();
        assert_eq!(send.stopped().await.unwrap(), Some(qv(78)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_reset_and_stop() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quinn_to_quiver(&pki, false).await;
        // quinn resets; quiver's reader sees the code.
        let mut send = t.client.open_uni().await.unwrap();
        send.write_all(b"some data, then a reset").await.unwrap();
        send.reset(qn(77)).unwrap();
        let mut recv = t.server.accept_uni().await.unwrap();
        assert_eq!(
            recv.read_to_end(1 << 20).await,
            Err(quiver::ReadToEndError::Read(quiver::ReadError::Reset(qv(
                77
            ))))
        );
        // quiver stops; quinn's writer sees the code.
        let (mut send, _recv) = t.client.open_bi().await.unwrap();
        send.write_all(b"x").await.unwrap();
        let (_s, mut s_recv) = t.server.accept_bi().await.unwrap();
        s_recv.stop(qv(78)).unwrap();
        assert_eq!(send.stopped().await.unwrap(), Some(qn(78)));
    })
    .await;
}

// ---------------------------------------------------------------- close

fn assert_quinn_app_close(e: quinn::ConnectionError, code: u32, reason: &[u8]) {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, qn(code));
            assert_eq!(&c.reason[..], reason);
        }
        other => panic!("expected an application close, got {other:?}"),
    }
}

fn quiver_app_close(code: u32, reason: &'static [u8]) -> quiver::ConnectionError {
    quiver::ConnectionError::ApplicationClosed {
        code: qv(code),
        reason: Bytes::from_static(reason),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_close_with_code() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quiver_to_quinn(&pki, false).await;
        t.client.close(qv(0x42), b"quiver says bye");
        assert_quinn_app_close(t.server.closed().await, 0x42, b"quiver says bye");
        assert_eq!(
            t.client.closed().await,
            quiver::ConnectionError::LocallyClosed
        );
        t.endpoints.0.wait_idle().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_server_close_with_code() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quiver_to_quinn(&pki, false).await;
        t.server.close(qn(0x43), b"quinn says bye");
        assert_eq!(
            t.client.closed().await,
            quiver_app_close(0x43, b"quinn says bye")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_close_with_code() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quinn_to_quiver(&pki, false).await;
        t.client.close(qn(0x44), b"quinn says bye");
        assert_eq!(
            t.server.closed().await,
            quiver_app_close(0x44, b"quinn says bye")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_server_close_with_code() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quinn_to_quiver(&pki, false).await;
        t.server.close(qv(0x45), b"quiver says bye");
        assert_quinn_app_close(t.client.closed().await, 0x45, b"quiver says bye");
        t.endpoints.1.wait_idle().await;
    })
    .await;
}

// ---------------------------------------------------------------- client auth

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_certificate_accepted_by_quinn() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quiver_to_quinn(&pki, true).await;
        let certs = t
            .server
            .peer_identity()
            .expect("client presented a certificate")
            .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
            .unwrap();
        assert_eq!(certs[0], pki.client.chain[0]);
        let mut send = t.client.open_uni().await.unwrap();
        send.write_all(b"authenticated").await.unwrap();
        send.finish().unwrap();
        let mut recv = t.server.accept_uni().await.unwrap();
        assert_eq!(recv.read_to_end(100).await.unwrap(), b"authenticated");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_certificate_accepted_by_quiver() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let t = quinn_to_quiver(&pki, true).await;
        let mut send = t.client.open_uni().await.unwrap();
        send.write_all(b"authenticated").await.unwrap();
        send.finish().unwrap();
        let mut recv = t.server.accept_uni().await.unwrap();
        assert_eq!(recv.read_to_end(100).await.unwrap(), b"authenticated");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_without_certificate_refused_by_quiver() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let server_ep = quiver_server(&pki, true);
        let client_ep = quinn_client(&pki, false);
        let addr = server_ep.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let r = server_ep.accept().await.expect("incoming").await;
            assert!(r.is_err(), "quiver accepted a client without certificate");
        });
        // TLS 1.3 clients finish before the server checks their
        // certificate: the refusal arrives as the connection's close.
        let outcome = match client_ep.connect(addr, "localhost").unwrap().await {
            Err(e) => e,
            Ok(conn) => conn.closed().await,
        };
        match outcome {
            quinn::ConnectionError::ConnectionClosed(c) => {
                // CRYPTO_ERROR: 0x100 + a TLS alert.
                let code = u64::from(c.error_code);
                assert!((0x100..0x200).contains(&code), "{c:?}");
            }
            other => panic!("expected a TLS alert, got {other:?}"),
        }
        server.await.unwrap();
    })
    .await;
}

// ---------------------------------------------------------------- BBR

// A quiver server running BBRv3 (draft-ietf-ccwg-bbr) sends 10 MB to a
// quinn client: its delivery-rate samples (§4.1) come from quinn's ACKs,
// and the upload back is paced by quiver's client running BBR too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_ten_megabytes_with_bbr_on_both_quiver_ends() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let bbr = || quiver::TransportConfig {
            congestion: std::sync::Arc::new(quiver::proto::congestion::BbrConfig::default()),
            ..quiver::TransportConfig::default()
        };
        let t = connect_quinn_to_quiver(
            quinn_client(&pki, false),
            quiver_server_with(&pki, false, bbr()),
        )
        .await;
        let down = transfer_uni!(t.server, t.client, &pattern(TEN_MB, 3));
        assert!(down == pattern(TEN_MB, 3), "download corrupted");
        // And quiver as the client, uploading to quinn with BBR.
        let t = connect_quiver_to_quinn(
            quiver_client_with(&pki, false, bbr()),
            quinn_server(&pki, false),
        )
        .await;
        let up = transfer_uni!(t.client, t.server, &pattern(TEN_MB, 4));
        assert!(up == pattern(TEN_MB, 4), "upload corrupted");
    })
    .await;
}
