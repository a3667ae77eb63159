//! HTTP Datagrams (RFC 9297) through h3-datagram: echoed by an h3 server
//! on quiver to an h3 client on quiver, and across quiver and h3-quinn in
//! both directions.

#![cfg(feature = "datagram")]

mod common;

use std::time::Duration;

use bytes::{Buf, Bytes};
use common::{Pki, bounded, quinn_quiver_pair, quiver_pair, quiver_quinn_pair};
use h3::quic;
use h3_datagram::datagram_handler::{HandleDatagramsExt, SendDatagramError};
use h3_datagram::quic_traits::DatagramConnectionExt;
use http::{Request, Response, StatusCode};

/// Answers one request with 200 and echoes the datagrams of its stream
/// until the connection ends.
async fn echo_server<C>(conn: C)
where
    C: quic::Connection<Bytes> + DatagramConnectionExt<Bytes>,
{
    let mut h3 = h3::server::builder()
        .enable_datagram(true)
        .build::<C, Bytes>(conn)
        .await
        .expect("server h3 handshake");
    let resolver = h3.accept().await.unwrap().unwrap();
    let (_request, mut stream) = resolver.resolve_request().await.unwrap();
    let response = Response::builder().status(StatusCode::OK).body(()).unwrap();
    stream.send_response(response).await.unwrap();
    let id = stream.id();
    let mut reader = h3.get_datagram_reader();
    let mut sender = h3.get_datagram_sender(id);
    while let Ok(datagram) = reader.read_datagram().await {
        assert_eq!(datagram.stream_id(), id);
        // Unreliable: a refusal here only loses that echo.
        let mut payload = datagram.into_payload();
        let _ = sender.send_datagram(payload.copy_to_bytes(payload.remaining()));
    }
}

/// Opens a request stream, sends datagrams on it until 20 distinct ones
/// came back intact, and checks that an oversized one is refused.
async fn echo_client<C>(conn: C)
where
    C: quic::Connection<Bytes> + DatagramConnectionExt<Bytes> + Send + 'static,
    C::OpenStreams: Send,
    C::RecvStream: Send,
    C::SendStream: Send,
    C::SendDatagramHandler: Send,
{
    let (mut driver, mut send) = h3::client::builder()
        .enable_datagram(true)
        .build::<C, _, Bytes>(conn)
        .await
        .expect("client h3 handshake");
    let request = Request::get("https://localhost/datagrams")
        .body(())
        .unwrap();
    let mut stream = send.send_request(request).await.unwrap();
    let response = stream.recv_response().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let id = stream.id();
    let mut sender = driver.get_datagram_sender(id);
    let mut reader = driver.get_datagram_reader();
    let _driver =
        tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });

    match sender.send_datagram(Bytes::from(vec![0u8; 70_000])) {
        Err(SendDatagramError::TooLarge { .. }) => {}
        other => panic!("oversized datagram: {other:?}"),
    }

    let mut seen = std::collections::HashSet::new();
    let mut next = 0u32;
    while seen.len() < 20 {
        assert!(
            next < 1000,
            "only {} of {next} datagrams came back",
            seen.len()
        );
        let payload = Bytes::from(format!(
            "datagram {next} {}",
            "x".repeat(next as usize % 500)
        ));
        sender.send_datagram(payload).unwrap();
        next += 1;
        if let Ok(got) =
            tokio::time::timeout(Duration::from_millis(200), reader.read_datagram()).await
        {
            let got = got.unwrap();
            assert_eq!(got.stream_id(), id);
            let mut payload = got.into_payload();
            let payload = payload.copy_to_bytes(payload.remaining());
            let text = String::from_utf8(payload.to_vec()).unwrap();
            let n: u32 = text.split(' ').nth(1).unwrap().parse().unwrap();
            assert_eq!(
                text,
                format!("datagram {n} {}", "x".repeat(n as usize % 500))
            );
            seen.insert(n);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_quiver_to_quiver() {
    bounded(async {
        let pki = Pki::new();
        let (server_ep, client_ep) = (pki.quiver_server(), pki.quiver_client());
        let (client, server) = quiver_pair(&client_ep, &server_ep).await;
        tokio::spawn(echo_server(quiver_h3::Connection::new(server)));
        echo_client(quiver_h3::Connection::new(client)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_quiver_client_quinn_server() {
    bounded(async {
        let pki = Pki::new();
        let (server_ep, client_ep) = (pki.quinn_server(), pki.quiver_client());
        let (client, server) = quiver_quinn_pair(&client_ep, &server_ep).await;
        tokio::spawn(echo_server(h3_quinn::Connection::new(server)));
        echo_client(quiver_h3::Connection::new(client)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_quinn_client_quiver_server() {
    bounded(async {
        let pki = Pki::new();
        let (server_ep, client_ep) = (pki.quiver_server(), pki.quinn_client());
        let (client, server) = quinn_quiver_pair(&client_ep, &server_ep).await;
        tokio::spawn(echo_server(quiver_h3::Connection::new(server)));
        echo_client(h3_quinn::Connection::new(client)).await;
    })
    .await;
}

/// A peer whose QUIC transport takes no datagrams: h3-datagram reports
/// them not available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_not_available_when_peer_takes_none() {
    bounded(async {
        let pki = Pki::new();
        let transport = quiver::TransportConfig {
            max_datagram_frame_size: None,
            ..Default::default()
        };
        let (server_ep, client_ep) = (pki.quiver_server(), pki.quiver_client_with(transport));
        let (client, server) = quiver_pair(&client_ep, &server_ep).await;
        let mut builder = h3::server::builder();
        builder.enable_datagram(true);
        let h3 = builder.build::<_, Bytes>(quiver_h3::Connection::new(server));
        let (h3, _client) = tokio::join!(h3, async {
            h3::client::new(quiver_h3::Connection::new(client))
                .await
                .unwrap()
        });
        let h3 = h3.unwrap();
        let id = h3::quic::StreamId::try_from(0u64).unwrap();
        let mut sender = h3.get_datagram_sender(id);
        match sender.send_datagram(Bytes::from_static(b"hello")) {
            Err(SendDatagramError::NotAvailable { .. }) => {}
            other => panic!("datagram to a peer without them: {other:?}"),
        }
    })
    .await;
}
