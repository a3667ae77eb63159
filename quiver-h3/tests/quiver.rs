//! HTTP/3 with both the client and the server on quiver.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Pki, Served, bounded, pattern, quiver_pair, request, serve};
use h3::error::{Code, ConnectionError, StreamError};
use h3::quic::ConnectionErrorIncoming;
use http::{Request, StatusCode};
use tokio::sync::mpsc;

/// A quiver h3 server task and a quiver h3 client on one connection.
struct Setup {
    send: h3::client::SendRequest<quiver_h3::OpenStreams, Bytes>,
    served: mpsc::UnboundedReceiver<Served>,
    _endpoints: (quiver::Endpoint, quiver::Endpoint),
}

async fn setup() -> Setup {
    let pki = Pki::new();
    let (server_ep, client_ep) = (pki.quiver_server(), pki.quiver_client());
    let (client_conn, server_conn) = quiver_pair(&client_ep, &server_ep).await;
    let (events, served) = mpsc::unbounded_channel();
    tokio::spawn(serve(quiver_h3::Connection::new(server_conn), Some(events)));
    let (send, _driver) = common::client(quiver_h3::Connection::new(client_conn)).await;
    Setup {
        send,
        served,
        _endpoints: (client_ep, server_ep),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_post_with_bodies() {
    bounded(async {
        let mut t = setup().await;
        common::get_and_post(&mut t.send).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests() {
    bounded(async {
        let t = setup().await;
        common::concurrent(&t.send, 50).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabyte_response() {
    bounded(async {
        let mut t = setup().await;
        common::large_response(&mut t.send).await;
    })
    .await;
}

/// RESET_STREAM and STOP_SENDING from the client reach the server's h3
/// with their codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cancels_request_and_response() {
    bounded(async {
        let mut t = setup().await;
        common::client_cancels(&mut t.send, &mut t.served).await;
    })
    .await;
}

/// The server answers before the request body ended and drops the
/// request: its h3 transport asks the client to stop sending with
/// H3_NO_ERROR (not quiver's default 0), and the client keeps the
/// response (RFC 9114 §4.1.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_answers_before_request_ends() {
    bounded(async {
        let mut t = setup().await;
        let req = Request::post("https://localhost/size/1000")
            .body(())
            .unwrap();
        let mut stream = t.send.send_request(req).await.unwrap();
        stream.send_data(pattern(100)).await.unwrap();
        let response = stream.recv_response().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = common::read_body(&mut stream).await.unwrap();
        assert_eq!(body, pattern(1000));
        let code = loop {
            match stream.send_data(pattern(100)).await {
                Ok(()) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(StreamError::RemoteTerminate { code }) => break code,
                Err(e) => panic!("send_data: {e:?}"),
            }
        };
        assert_eq!(code, Code::H3_NO_ERROR);
    })
    .await;
}

/// The client drops a response half read: its h3 transport asks the
/// server to stop sending with H3_REQUEST_CANCELLED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_drops_response() {
    bounded(async {
        let mut t = setup().await;
        let req = Request::get("https://localhost/size/50000000")
            .body(())
            .unwrap();
        let mut stream = t.send.send_request(req).await.unwrap();
        stream.finish().await.unwrap();
        stream.recv_response().await.unwrap();
        assert!(stream.recv_data().await.unwrap().is_some());
        drop(stream);
        assert!(matches!(
            t.served.recv().await,
            Some(Served::Resolved { .. })
        ));
        match t.served.recv().await.unwrap() {
            Served::Done {
                result: Err(StreamError::RemoteTerminate { code }),
                ..
            } => assert_eq!(code, Code::H3_REQUEST_CANCELLED),
            other => panic!("server saw {other:?}"),
        }
    })
    .await;
}

/// The server closes the QUIC connection with an HTTP/3 code: the
/// client's h3 sees exactly that code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_closed_with_h3_code() {
    bounded(async {
        let pki = Pki::new();
        let (server_ep, client_ep) = (pki.quiver_server(), pki.quiver_client());
        let (client_conn, server_conn) = quiver_pair(&client_ep, &server_ep).await;
        let server = tokio::spawn(async move {
            let mut h3 = h3::server::Connection::<_, Bytes>::new(quiver_h3::Connection::new(
                server_conn.clone(),
            ))
            .await
            .unwrap();
            let resolver = h3.accept().await.unwrap().unwrap();
            let _request = resolver.resolve_request().await.unwrap();
            server_conn.close(
                quiver::VarInt::from_u64(Code::H3_EXCESSIVE_LOAD.value()).unwrap(),
                b"busy",
            );
            h3
        });
        let (mut send, driver) = common::client(quiver_h3::Connection::new(client_conn)).await;
        let err = request(&mut send, "GET", "/size/10", Bytes::new())
            .await
            .err()
            .expect("request fails");
        let excessive = Code::H3_EXCESSIVE_LOAD.value();
        match &err {
            StreamError::ConnectionError(ConnectionError::Remote(
                ConnectionErrorIncoming::ApplicationClose { error_code },
            )) => assert_eq!(*error_code, excessive),
            other => panic!("request failed with {other:?}"),
        }
        match driver.await.unwrap() {
            ConnectionError::Remote(ConnectionErrorIncoming::ApplicationClose { error_code }) => {
                assert_eq!(error_code, excessive)
            }
            other => panic!("driver ended with {other:?}"),
        }
        drop(server.await.unwrap());
    })
    .await;
}

/// Nothing heard from the peer for the idle timeout: h3 sees a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_is_a_timeout() {
    bounded(async {
        let pki = Pki::new();
        let transport = quiver::TransportConfig {
            max_idle_timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let (server_ep, client_ep) = (pki.quiver_server(), pki.quiver_client_with(transport));
        let (client_conn, server_conn) = quiver_pair(&client_ep, &server_ep).await;
        tokio::spawn(serve(quiver_h3::Connection::new(server_conn), None));
        let (mut send, driver) = common::client(quiver_h3::Connection::new(client_conn)).await;
        request(&mut send, "GET", "/size/10", Bytes::new())
            .await
            .unwrap();
        // Neither side has anything more to say: the negotiated 1 s
        // idle timeout ends the connection on both. (Shorter timeouts fired
        // before the request on a loaded machine.)
        let err = driver.await.unwrap();
        assert!(
            matches!(
                err,
                ConnectionError::Timeout
                    | ConnectionError::Remote(ConnectionErrorIncoming::Timeout)
            ),
            "driver ended with {err:?}"
        );
    })
    .await;
}

/// GOAWAY: the server stops taking requests after the two it accepted,
/// finishes them, and the connection closes with H3_NO_ERROR; a request
/// made afterwards is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_goaway_graceful_shutdown() {
    bounded(async {
        let pki = Pki::new();
        let (server_ep, client_ep) = (pki.quiver_server(), pki.quiver_client());
        let (client_conn, server_conn) = quiver_pair(&client_ep, &server_ep).await;
        let server = tokio::spawn(common::goaway_server(quiver_h3::Connection::new(
            server_conn,
        )));
        let (send, driver) = common::client(quiver_h3::Connection::new(client_conn)).await;
        common::goaway_client(send, driver, server).await;
    })
    .await;
}
