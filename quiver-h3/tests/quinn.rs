//! quiver's h3 transport against h3-quinn (h3 over quinn 0.11.12), both
//! directions: `quiver_client_*` runs an h3 client on quiver against an
//! h3 server on quinn, `quinn_client_*` the other way round.

mod common;

use bytes::Bytes;
use common::{Pki, Served, bounded, serve};
use h3::error::ConnectionError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

type QuiverSend = h3::client::SendRequest<quiver_h3::OpenStreams, Bytes>;
type QuinnSend = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// An h3 client on quiver talking to an h3 server on quinn.
struct QuiverToQuinn {
    send: QuiverSend,
    driver: JoinHandle<ConnectionError>,
    served: mpsc::UnboundedReceiver<Served>,
    server: JoinHandle<Result<(), ConnectionError>>,
    _endpoints: (quiver::Endpoint, quinn::Endpoint),
}

async fn quiver_to_quinn() -> QuiverToQuinn {
    let pki = Pki::new();
    let (server_ep, client_ep) = (pki.quinn_server(), pki.quiver_client());
    let addr = server_ep.local_addr().unwrap();
    let connecting = client_ep.connect(addr, "localhost").unwrap();
    let (client, server) = tokio::join!(connecting, async {
        server_ep.accept().await.expect("incoming").await
    });
    let (client, server) = (client.unwrap(), server.unwrap());
    assert_eq!(client.alpn_protocol().as_deref(), Some(quiver_h3::ALPN));
    let (events, served) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(h3_quinn::Connection::new(server), Some(events)));
    let (send, driver) = common::client(quiver_h3::Connection::new(client)).await;
    QuiverToQuinn {
        send,
        driver,
        served,
        server,
        _endpoints: (client_ep, server_ep),
    }
}

/// An h3 client on quinn talking to an h3 server on quiver.
struct QuinnToQuiver {
    send: QuinnSend,
    driver: JoinHandle<ConnectionError>,
    served: mpsc::UnboundedReceiver<Served>,
    server: JoinHandle<Result<(), ConnectionError>>,
    _endpoints: (quinn::Endpoint, quiver::Endpoint),
}

async fn quinn_to_quiver() -> QuinnToQuiver {
    let pki = Pki::new();
    let (server_ep, client_ep) = (pki.quiver_server(), pki.quinn_client());
    let addr = server_ep.local_addr().unwrap();
    let connecting = client_ep.connect(addr, "localhost").unwrap();
    let (client, server) = tokio::join!(connecting, async {
        server_ep.accept().await.expect("incoming").await
    });
    let (client, server) = (client.unwrap(), server.unwrap());
    assert_eq!(server.alpn_protocol().as_deref(), Some(quiver_h3::ALPN));
    let (events, served) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(quiver_h3::Connection::new(server), Some(events)));
    let (send, driver) = common::client(h3_quinn::Connection::new(client)).await;
    QuinnToQuiver {
        send,
        driver,
        served,
        server,
        _endpoints: (client_ep, server_ep),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_requests_with_bodies() {
    bounded(async {
        let mut t = quiver_to_quinn().await;
        common::get_and_post(&mut t.send).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_requests_with_bodies() {
    bounded(async {
        let mut t = quinn_to_quiver().await;
        common::get_and_post(&mut t.send).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_concurrent_requests() {
    bounded(async {
        let t = quiver_to_quinn().await;
        common::concurrent(&t.send, 80).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_concurrent_requests() {
    bounded(async {
        let t = quinn_to_quiver().await;
        common::concurrent(&t.send, 80).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_large_response() {
    bounded(async {
        let mut t = quiver_to_quinn().await;
        common::large_response(&mut t.send).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_large_response() {
    bounded(async {
        let mut t = quinn_to_quiver().await;
        common::large_response(&mut t.send).await;
    })
    .await;
}

/// The client hangs up cleanly (its last request sender dropped): the
/// server's h3, on the other stack, sees H3_NO_ERROR, and so does the
/// client's driver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_closes_with_no_error() {
    bounded(async {
        let mut t = quiver_to_quinn().await;
        common::get_and_post(&mut t.send).await;
        drop(t.send);
        let end = t.driver.await.unwrap();
        assert!(end.is_h3_no_error(), "driver ended with {end:?}");
        let end = t.server.await.unwrap().expect_err("the client closed");
        assert!(end.is_h3_no_error(), "server ended with {end:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_closes_with_no_error() {
    bounded(async {
        let mut t = quinn_to_quiver().await;
        common::get_and_post(&mut t.send).await;
        drop(t.send);
        let end = t.driver.await.unwrap();
        assert!(end.is_h3_no_error(), "driver ended with {end:?}");
        let end = t.server.await.unwrap().expect_err("the client closed");
        assert!(end.is_h3_no_error(), "server ended with {end:?}");
    })
    .await;
}

/// RESET_STREAM and STOP_SENDING codes cross between the stacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_cancels_request_and_response() {
    bounded(async {
        let mut t = quiver_to_quinn().await;
        common::client_cancels(&mut t.send, &mut t.served).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_cancels_request_and_response() {
    bounded(async {
        let mut t = quinn_to_quiver().await;
        common::client_cancels(&mut t.send, &mut t.served).await;
    })
    .await;
}

/// GOAWAY from the server on the other stack: requests in flight finish,
/// a later one is refused, both ends close with H3_NO_ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_server_goaway() {
    bounded(async {
        let pki = Pki::new();
        let (server_ep, client_ep) = (pki.quinn_server(), pki.quiver_client());
        let addr = server_ep.local_addr().unwrap();
        let connecting = client_ep.connect(addr, "localhost").unwrap();
        let (client, server) = tokio::join!(connecting, async {
            server_ep.accept().await.unwrap().await
        });
        let server = tokio::spawn(common::goaway_server(h3_quinn::Connection::new(
            server.unwrap(),
        )));
        let (send, driver) = common::client(quiver_h3::Connection::new(client.unwrap())).await;
        common::goaway_client(send, driver, server).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_server_goaway() {
    bounded(async {
        let pki = Pki::new();
        let (server_ep, client_ep) = (pki.quiver_server(), pki.quinn_client());
        let addr = server_ep.local_addr().unwrap();
        let connecting = client_ep.connect(addr, "localhost").unwrap();
        let (client, server) = tokio::join!(connecting, async {
            server_ep.accept().await.unwrap().await
        });
        let server = tokio::spawn(common::goaway_server(quiver_h3::Connection::new(
            server.unwrap(),
        )));
        let (send, driver) = common::client(h3_quinn::Connection::new(client.unwrap())).await;
        common::goaway_client(send, driver, server).await;
    })
    .await;
}
