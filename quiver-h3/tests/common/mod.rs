//! Shared setup for the quiver-h3 tests: certificates, quiver and quinn
//! endpoints speaking ALPN `h3`, a small HTTP/3 server application generic
//! over the QUIC transport, and client helpers.

#![allow(dead_code)]

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use h3::error::StreamError;
use h3::quic;
use http::{Request, Response, StatusCode};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;

pub const LOCALHOST: &str = "127.0.0.1:0";
pub const TEN_MB: usize = 10 * 1024 * 1024;

/// Fails the test instead of hanging it.
pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test timed out after 60 s")
}

/// `len` bytes of a pattern that shows misplaced or lost data.
pub fn pattern(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// A self-signed certificate for "localhost".
pub struct Pki {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

impl Pki {
    pub fn new() -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        Self {
            cert: ck.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
        }
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        roots
    }

    pub fn quiver_server(&self) -> quiver::Endpoint {
        let config =
            quiver::ServerConfig::with_single_cert(vec![self.cert.clone()], self.key.clone_key())
                .alpn_protocols(&[quiver_h3::ALPN])
                .build()
                .unwrap();
        quiver::Endpoint::server(config, LOCALHOST.parse().unwrap()).unwrap()
    }

    pub fn quiver_client(&self) -> quiver::Endpoint {
        self.quiver_client_with(quiver::TransportConfig::default())
    }

    pub fn quiver_client_with(&self, transport: quiver::TransportConfig) -> quiver::Endpoint {
        let mut ep = quiver::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        ep.set_default_client_config(
            quiver::ClientConfig::with_root_certificates(self.roots())
                .alpn_protocols(&[quiver_h3::ALPN])
                .transport(transport)
                .build()
                .unwrap(),
        );
        ep
    }

    pub fn quinn_server(&self) -> quinn::Endpoint {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], self.key.clone_key())
            .unwrap();
        tls.alpn_protocols = vec![quiver_h3::ALPN.to_vec()];
        let crypto = QuicServerConfig::try_from(tls).unwrap();
        let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        quinn::Endpoint::server(config, LOCALHOST.parse().unwrap()).unwrap()
    }

    pub fn quinn_client(&self) -> quinn::Endpoint {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        tls.alpn_protocols = vec![quiver_h3::ALPN.to_vec()];
        let crypto = QuicClientConfig::try_from(tls).unwrap();
        let mut ep = quinn::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        ep
    }
}

/// Connects the endpoint `$client` to the endpoint `$server`, of either
/// stack (quinn and quiver name these methods alike), and evaluates to
/// the two connections.
macro_rules! connect {
    ($client:expr, $server:expr) => {{
        let addr: SocketAddr = $server.local_addr().unwrap();
        let connecting = $client.connect(addr, "localhost").unwrap();
        let (c, s) = tokio::join!(connecting, async {
            $server.accept().await.expect("incoming").await
        });
        (c.unwrap(), s.unwrap())
    }};
}

/// A quiver client connected to a quiver server: (client, server).
pub async fn quiver_pair(
    client: &quiver::Endpoint,
    server: &quiver::Endpoint,
) -> (quiver::Connection, quiver::Connection) {
    let (c, s) = connect!(client, server);
    assert_eq!(c.alpn_protocol().as_deref(), Some(quiver_h3::ALPN));
    (c, s)
}

/// A quiver client connected to a quinn server: (client, server).
pub async fn quiver_quinn_pair(
    client: &quiver::Endpoint,
    server: &quinn::Endpoint,
) -> (quiver::Connection, quinn::Connection) {
    let (c, s) = connect!(client, server);
    assert_eq!(c.alpn_protocol().as_deref(), Some(quiver_h3::ALPN));
    (c, s)
}

/// A quinn client connected to a quiver server: (client, server).
pub async fn quinn_quiver_pair(
    client: &quinn::Endpoint,
    server: &quiver::Endpoint,
) -> (quinn::Connection, quiver::Connection) {
    let (c, s) = connect!(client, server);
    assert_eq!(s.alpn_protocol().as_deref(), Some(quiver_h3::ALPN));
    (c, s)
}

// ------------------------------------------------------------ server side

/// What the server application saw of one request.
#[derive(Debug)]
pub enum Served {
    /// The request's headers were read.
    Resolved { path: String },
    /// The request ended: answered, or failed.
    Done {
        path: String,
        result: Result<(), StreamError>,
    },
}

/// Serves one HTTP/3 connection until the client goes away, each request
/// on its own task; reports every request's outcome on `events`. Returns
/// how the connection ended: `Ok` when h3 says no request is left (after
/// a GOAWAY), or the error `accept` failed with.
///
/// Routes: `GET /size/N` (N pattern bytes), `POST /echo` (the body back),
/// anything else 404.
pub async fn serve<C>(
    conn: C,
    events: Option<mpsc::UnboundedSender<Served>>,
) -> Result<(), h3::error::ConnectionError>
where
    C: quic::Connection<Bytes> + Send + 'static,
    C::BidiStream: quic::BidiStream<Bytes> + Send + 'static,
    <C::BidiStream as quic::BidiStream<Bytes>>::SendStream: Send,
    <C::BidiStream as quic::BidiStream<Bytes>>::RecvStream: Send,
    C::OpenStreams: Send,
    C::SendStream: Send,
    C::RecvStream: Send,
{
    let mut h3 = h3::server::Connection::<C, Bytes>::new(conn)
        .await
        .expect("server h3 handshake");
    loop {
        match h3.accept().await {
            Ok(Some(resolver)) => {
                let events = events.clone();
                tokio::spawn(async move {
                    let (request, stream) = match resolver.resolve_request().await {
                        Ok(r) => r,
                        Err(e) => {
                            if let Some(events) = events {
                                let path = "(unresolved)".to_owned();
                                let _ = events.send(Served::Done {
                                    path,
                                    result: Err(e),
                                });
                            }
                            return;
                        }
                    };
                    let path = request.uri().path().to_owned();
                    if let Some(events) = &events {
                        let _ = events.send(Served::Resolved { path: path.clone() });
                    }
                    let result = handle(request, stream).await;
                    if let Some(events) = events {
                        let _ = events.send(Served::Done { path, result });
                    }
                });
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

async fn handle<S>(
    request: Request<()>,
    mut stream: h3::server::RequestStream<S, Bytes>,
) -> Result<(), StreamError>
where
    S: quic::BidiStream<Bytes>,
{
    let path = request.uri().path().to_owned();
    if let Some(n) = path.strip_prefix("/size/") {
        let n: usize = n.parse().unwrap();
        let response = Response::builder()
            .status(StatusCode::OK)
            .header("content-length", n)
            .body(())
            .unwrap();
        stream.send_response(response).await?;
        let body = pattern(n);
        for chunk in body.chunks(64 * 1024) {
            stream.send_data(body.slice_ref(chunk)).await?;
        }
        return stream.finish().await;
    }
    if path == "/echo" {
        let mut body = BytesMut::new();
        while let Some(mut chunk) = stream.recv_data().await? {
            while chunk.has_remaining() {
                let c = chunk.chunk();
                body.extend_from_slice(c);
                let n = c.len();
                chunk.advance(n);
            }
        }
        let response = Response::builder()
            .status(StatusCode::OK)
            .header("content-length", body.len())
            .body(())
            .unwrap();
        stream.send_response(response).await?;
        stream.send_data(body.freeze()).await?;
        return stream.finish().await;
    }
    let response = Response::builder()
        .status(StatusCode::NOT_FOUND)
        .body(())
        .unwrap();
    stream.send_response(response).await?;
    stream.finish().await
}

// ------------------------------------------------------------ client side

/// Starts an HTTP/3 client on `conn`; the driver runs on its own task and
/// yields why the connection ended.
pub async fn client<C>(
    conn: C,
) -> (
    h3::client::SendRequest<C::OpenStreams, Bytes>,
    tokio::task::JoinHandle<h3::error::ConnectionError>,
)
where
    C: quic::Connection<Bytes> + Send + 'static,
    C::OpenStreams: Send,
    C::RecvStream: Send,
    C::SendStream: Send,
{
    let (mut driver, send) = h3::client::new(conn).await.expect("client h3 handshake");
    let driver = tokio::spawn(async move { poll_fn(|cx| driver.poll_close(cx)).await });
    (send, driver)
}

/// A response and its whole body.
pub struct Got {
    pub response: Response<()>,
    pub body: Bytes,
}

/// Sends `method path` with `body` (none if empty) and reads the whole
/// response.
pub async fn request<O>(
    send: &mut h3::client::SendRequest<O, Bytes>,
    method: &str,
    path: &str,
    body: Bytes,
) -> Result<Got, StreamError>
where
    O: quic::OpenStreams<Bytes>,
{
    let request = Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"))
        .body(())
        .unwrap();
    let mut stream = send.send_request(request).await?;
    if !body.is_empty() {
        stream.send_data(body).await?;
    }
    match stream.finish().await {
        Ok(()) => {}
        // The server answered without reading the whole request and asked
        // us to stop sending: the response stands (RFC 9114 §4.1.2). h3
        // writes a grease frame in its first `finish`, which meets the
        // stop; h3-quinn's server stops with quinn's code 0, ours with
        // H3_NO_ERROR.
        Err(StreamError::RemoteTerminate { .. }) => {}
        Err(e) => return Err(e),
    }
    let response = stream.recv_response().await?;
    let body = read_body(&mut stream).await?;
    Ok(Got { response, body })
}

/// Reads a response body to its end.
pub async fn read_body<S>(
    stream: &mut h3::client::RequestStream<S, Bytes>,
) -> Result<Bytes, StreamError>
where
    S: quic::RecvStream,
{
    let mut out = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await? {
        while chunk.has_remaining() {
            let c = chunk.chunk();
            out.extend_from_slice(c);
            let n = c.len();
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}

pub fn content_length(response: &Response<()>) -> Option<usize> {
    response
        .headers()
        .get("content-length")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

// ------------------------------------------------------------ scenarios

/// GET with a response body and POST with a request body, checked byte
/// for byte; then a 404.
pub async fn get_and_post<O: quic::OpenStreams<Bytes>>(
    send: &mut h3::client::SendRequest<O, Bytes>,
) {
    let got = request(send, "GET", "/size/5000", Bytes::new())
        .await
        .unwrap();
    assert_eq!(got.response.status(), StatusCode::OK);
    assert_eq!(content_length(&got.response), Some(5000));
    assert_eq!(got.body, pattern(5000));

    let upload = pattern(300_000);
    let got = request(send, "POST", "/echo", upload.clone())
        .await
        .unwrap();
    assert_eq!(got.response.status(), StatusCode::OK);
    assert_eq!(content_length(&got.response), Some(upload.len()));
    assert_eq!(got.body, upload);

    let got = request(send, "GET", "/missing", Bytes::new())
        .await
        .unwrap();
    assert_eq!(got.response.status(), StatusCode::NOT_FOUND);
    assert!(got.body.is_empty());
}

/// `n` requests at once on one connection, GETs and POSTs of various
/// sizes, each on its own task.
pub async fn concurrent<O>(send: &h3::client::SendRequest<O, Bytes>, n: usize)
where
    O: quic::OpenStreams<Bytes> + Clone + Send + 'static,
    O::BidiStream: Send,
{
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let mut send = send.clone();
        tasks.spawn(async move {
            let size = 1000 + i * 977;
            if i % 2 == 0 {
                let got = request(&mut send, "GET", &format!("/size/{size}"), Bytes::new())
                    .await
                    .unwrap();
                assert_eq!(got.body, pattern(size), "GET {i}");
            } else {
                let got = request(&mut send, "POST", "/echo", pattern(size))
                    .await
                    .unwrap();
                assert_eq!(got.body, pattern(size), "POST {i}");
            }
            i
        });
    }
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
        done += 1;
    }
    assert_eq!(done, n);
}

/// A 10 MB response, checked byte for byte.
pub async fn large_response<O: quic::OpenStreams<Bytes>>(
    send: &mut h3::client::SendRequest<O, Bytes>,
) {
    let got = request(send, "GET", &format!("/size/{TEN_MB}"), Bytes::new())
        .await
        .unwrap();
    assert_eq!(got.response.status(), StatusCode::OK);
    assert_eq!(content_length(&got.response), Some(TEN_MB));
    assert_eq!(got.body.len(), TEN_MB);
    assert!(got.body == pattern(TEN_MB), "10 MB body differs");
}

/// The client abandons its request body (RESET_STREAM with
/// H3_REQUEST_CANCELLED) once the server reads it: the server's read fails
/// with that code; then the client stops reading a large response
/// (STOP_SENDING with the same code) and the server's write fails with it.
/// The connection carries on.
pub async fn client_cancels<O: quic::OpenStreams<Bytes>>(
    send: &mut h3::client::SendRequest<O, Bytes>,
    served: &mut mpsc::UnboundedReceiver<Served>,
) {
    use h3::error::Code;
    let req = Request::post("https://localhost/echo").body(()).unwrap();
    let mut stream = send.send_request(req).await.unwrap();
    stream.send_data(pattern(10_000)).await.unwrap();
    let resolved = served.recv().await.unwrap();
    assert!(matches!(resolved, Served::Resolved { ref path } if path == "/echo"));
    stream.stop_stream(Code::H3_REQUEST_CANCELLED);
    match served.recv().await.unwrap() {
        Served::Done {
            result: Err(StreamError::RemoteTerminate { code }),
            ..
        } => assert_eq!(code, Code::H3_REQUEST_CANCELLED),
        other => panic!("server saw {other:?}"),
    }

    let req = Request::get("https://localhost/size/50000000")
        .body(())
        .unwrap();
    let mut stream = send.send_request(req).await.unwrap();
    stream.finish().await.unwrap();
    let response = stream.recv_response().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(stream.recv_data().await.unwrap().is_some());
    stream.stop_sending(Code::H3_REQUEST_CANCELLED);
    assert!(matches!(served.recv().await, Some(Served::Resolved { .. })));
    match served.recv().await.unwrap() {
        Served::Done {
            result: Err(StreamError::RemoteTerminate { code }),
            ..
        } => assert_eq!(code, Code::H3_REQUEST_CANCELLED),
        other => panic!("server saw {other:?}"),
    }
    drop(stream);

    let got = request(send, "GET", "/size/10", Bytes::new())
        .await
        .unwrap();
    assert_eq!(got.body, pattern(10));
}

/// Accepts two requests, sends GOAWAY naming the last one (nothing after
/// it will be processed), answers both with their path as the body, and
/// waits until h3 says the connection is done: `accept` yields `None`, or
/// fails with the client's H3_NO_ERROR close once it has seen the GOAWAY
/// and has nothing in flight. Returns how many requests still reached the
/// application after the GOAWAY.
pub async fn goaway_server<C>(conn: C) -> usize
where
    C: quic::Connection<Bytes>,
{
    let mut h3 = h3::server::Connection::<C, Bytes>::new(conn).await.unwrap();
    let mut accepted = Vec::new();
    for _ in 0..2 {
        let resolver = h3.accept().await.unwrap().unwrap();
        accepted.push(resolver.resolve_request().await.unwrap());
    }
    h3.shutdown(0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for (request, mut stream) in accepted {
        let body = Bytes::from(request.uri().path().to_owned());
        let response = Response::builder().status(200).body(()).unwrap();
        stream.send_response(response).await.unwrap();
        stream.send_data(body).await.unwrap();
        stream.finish().await.unwrap();
    }
    let mut late = 0;
    loop {
        match h3.accept().await {
            Ok(Some(_)) => late += 1,
            Ok(None) => return late,
            Err(e) => {
                assert!(e.is_h3_no_error(), "server accept: {e:?}");
                return late;
            }
        }
    }
}

/// The client side of [`goaway_server`]: two requests in flight are
/// answered after the GOAWAY, a later one is refused (not sent, or
/// rejected with H3_REQUEST_REJECTED if it crossed the GOAWAY), and the
/// connection ends with H3_NO_ERROR on both sides.
pub async fn goaway_client<O>(
    mut send: h3::client::SendRequest<O, Bytes>,
    driver: tokio::task::JoinHandle<h3::error::ConnectionError>,
    server: tokio::task::JoinHandle<usize>,
) where
    O: quic::OpenStreams<Bytes> + Clone,
{
    use h3::error::Code;
    let mut send_b = send.clone();
    let (a, b) = tokio::join!(
        request(&mut send, "GET", "/a", Bytes::new()),
        request(&mut send_b, "GET", "/b", Bytes::new()),
    );
    assert_eq!(a.unwrap().body, "/a");
    assert_eq!(b.unwrap().body, "/b");
    // The GOAWAY went out before the responses.
    tokio::time::sleep(Duration::from_millis(20)).await;
    match request(&mut send, "GET", "/late", Bytes::new()).await {
        Err(StreamError::RemoteClosing) => {}
        Err(StreamError::RemoteTerminate { code }) => assert_eq!(code, Code::H3_REQUEST_REJECTED),
        Err(StreamError::ConnectionError(e)) if e.is_h3_no_error() => {}
        other => panic!("late request: {:?}", other.map(|g| g.response)),
    }
    drop((send, send_b));
    let end = driver.await.unwrap();
    assert!(end.is_h3_no_error(), "driver ended with {end:?}");
    assert_eq!(
        server.await.unwrap(),
        0,
        "no request after GOAWAY reached the application"
    );
}
