//! quiver's h3 transport against h3-quinn (h3 over quinn 0.11.12), both
//! directions: `quiver_client_*` runs an h3 client on quiver against an
//! h3 server on quinn, `quinn_client_*` the other way round.

mod common;

use bytes::Bytes;
use common::{Pki, Served, bounded, quinn_quiver_pair, quiver_quinn_pair, serve};
use h3::error::ConnectionError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// An h3 client on one stack talking to an h3 server on the other;
/// `O` is the client's stream opener, `E` holds both endpoints.
struct H3Pair<O: h3::quic::OpenStreams<Bytes>, E> {
    send: h3::client::SendRequest<O, Bytes>,
    driver: JoinHandle<ConnectionError>,
    served: mpsc::UnboundedReceiver<Served>,
    server: JoinHandle<Result<(), ConnectionError>>,
    _endpoints: E,
}

/// An h3 client on quiver talking to an h3 server on quinn.
async fn quiver_to_quinn() -> H3Pair<quiver_h3::OpenStreams, (quiver::Endpoint, quinn::Endpoint)> {
    let pki = Pki::new();
    let (server_ep, client_ep) = (pki.quinn_server(), pki.quiver_client());
    let (client, server) = quiver_quinn_pair(&client_ep, &server_ep).await;
    let (events, served) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(h3_quinn::Connection::new(server), Some(events)));
    let (send, driver) = common::client(quiver_h3::Connection::new(client)).await;
    H3Pair {
        send,
        driver,
        served,
        server,
        _endpoints: (client_ep, server_ep),
    }
}

/// An h3 client on quinn talking to an h3 server on quiver.
async fn quinn_to_quiver() -> H3Pair<h3_quinn::OpenStreams, (quinn::Endpoint, quiver::Endpoint)> {
    let pki = Pki::new();
    let (server_ep, client_ep) = (pki.quiver_server(), pki.quinn_client());
    let (client, server) = quinn_quiver_pair(&client_ep, &server_ep).await;
    let (events, served) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(quiver_h3::Connection::new(server), Some(events)));
    let (send, driver) = common::client(h3_quinn::Connection::new(client)).await;
    H3Pair {
        send,
        driver,
        served,
        server,
        _endpoints: (client_ep, server_ep),
    }
}

/// One scenario, two tests: `$quiver_client` plays `$body` with `$t` from
/// [`quiver_to_quinn`], `$quinn_client` with `$t` from [`quinn_to_quiver`].
macro_rules! both_ways {
    ($quiver_client:ident, $quinn_client:ident, |mut $t:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $quiver_client() {
            bounded(async {
                #[allow(unused_mut)] // the body may only read `$t`
                let mut $t = quiver_to_quinn().await;
                $body
            })
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $quinn_client() {
            bounded(async {
                #[allow(unused_mut)] // the body may only read `$t`
                let mut $t = quinn_to_quiver().await;
                $body
            })
            .await;
        }
    };
}

both_ways!(
    quiver_client_requests_with_bodies,
    quinn_client_requests_with_bodies,
    |mut t| {
        common::get_and_post(&mut t.send).await;
    }
);

both_ways!(
    quiver_client_concurrent_requests,
    quinn_client_concurrent_requests,
    |mut t| {
        common::concurrent(&t.send, 80).await;
    }
);

both_ways!(
    quiver_client_large_response,
    quinn_client_large_response,
    |mut t| {
        common::large_response(&mut t.send).await;
    }
);

// The client hangs up cleanly (its last request sender dropped): the
// server's h3, on the other stack, sees H3_NO_ERROR, and so does the
// client's driver.
both_ways!(
    quiver_client_closes_with_no_error,
    quinn_client_closes_with_no_error,
    |mut t| {
        common::get_and_post(&mut t.send).await;
        drop(t.send);
        let end = t.driver.await.unwrap();
        assert!(end.is_h3_no_error(), "driver ended with {end:?}");
        let end = t.server.await.unwrap().expect_err("the client closed");
        assert!(end.is_h3_no_error(), "server ended with {end:?}");
    }
);

// RESET_STREAM and STOP_SENDING codes cross between the stacks.
both_ways!(
    quiver_client_cancels_request_and_response,
    quinn_client_cancels_request_and_response,
    |mut t| {
        common::client_cancels(&mut t.send, &mut t.served).await;
    }
);

/// GOAWAY from the server on the other stack: requests in flight finish,
/// a later one is refused, both ends close with H3_NO_ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_server_goaway() {
    bounded(async {
        let pki = Pki::new();
        let (server_ep, client_ep) = (pki.quinn_server(), pki.quiver_client());
        let (client, server) = quiver_quinn_pair(&client_ep, &server_ep).await;
        let server = tokio::spawn(common::goaway_server(h3_quinn::Connection::new(server)));
        let (send, driver) = common::client(quiver_h3::Connection::new(client)).await;
        common::goaway_client(send, driver, server).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_server_goaway() {
    bounded(async {
        let pki = Pki::new();
        let (server_ep, client_ep) = (pki.quiver_server(), pki.quinn_client());
        let (client, server) = quinn_quiver_pair(&client_ep, &server_ep).await;
        let server = tokio::spawn(common::goaway_server(quiver_h3::Connection::new(server)));
        let (send, driver) = common::client(h3_quinn::Connection::new(client)).await;
        common::goaway_client(send, driver, server).await;
    })
    .await;
}
