//! A connection as h3's [`quic::Connection`] and [`quic::OpenStreams`].

use std::task::{Context, Poll};

use bytes::Buf;
use h3::error::Code;
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming};
use quiver::Side;

use crate::bidi::BidiStream;
use crate::error::{code, connection_error, stream_connection_error};
use crate::recv::RecvStream;
use crate::send::SendStream;

/// A quiver connection that h3 runs HTTP/3 over.
///
/// Accepting and opening streams are quiver's own polling calls
/// ([`quiver::Connection::poll_accept_bi`] and the like): no futures are
/// boxed or kept between polls.
///
/// ```no_run
/// # async fn demo(conn: quiver::Connection) -> Result<(), Box<dyn std::error::Error>> {
/// let (mut driver, mut send_request) =
///     h3::client::new(quiver_h3::Connection::new(conn)).await?;
/// tokio::spawn(async move { driver.wait_idle().await });
/// let request = http::Request::get("https://localhost/").body(())?;
/// let mut stream = send_request.send_request(request).await?;
/// match stream.finish().await {
///     // A server may stop reading once its response is complete
///     // (RFC 9114 §4.1.2): the response still stands.
///     Ok(()) | Err(h3::error::StreamError::RemoteTerminate { .. }) => {}
///     Err(e) => return Err(e.into()),
/// }
/// let response = stream.recv_response().await?;
/// # let _ = response; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Connection {
    conn: quiver::Connection,
    side: Side,
}

impl Connection {
    /// Wraps an established quiver connection (negotiated with ALPN
    /// [`ALPN`](crate::ALPN)).
    pub fn new(conn: quiver::Connection) -> Self {
        let side = conn.side();
        Self { conn, side }
    }

    /// The quiver connection underneath.
    pub fn inner(&self) -> &quiver::Connection {
        &self.conn
    }
}

impl<B: Buf> quic::Connection<B> for Connection {
    type RecvStream = RecvStream;
    type OpenStreams = OpenStreams;

    fn poll_accept_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<RecvStream, ConnectionErrorIncoming>> {
        self.conn
            .poll_accept_uni(cx)
            .map_ok(|recv| RecvStream::new(recv, self.side))
            .map_err(connection_error)
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream<B>, ConnectionErrorIncoming>> {
        self.conn
            .poll_accept_bi(cx)
            .map_ok(|(send, recv)| BidiStream::new(send, recv, self.side))
            .map_err(connection_error)
    }

    fn opener(&self) -> OpenStreams {
        OpenStreams {
            conn: self.conn.clone(),
            side: self.side,
        }
    }
}

impl<B: Buf> quic::OpenStreams<B> for Connection {
    type BidiStream = BidiStream<B>;
    type SendStream = SendStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream<B>, StreamErrorIncoming>> {
        open_bidi(&self.conn, self.side, cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<SendStream<B>, StreamErrorIncoming>> {
        open_send(&self.conn, cx)
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        close(&self.conn, code, reason)
    }
}

/// Opens streams on a connection that h3 drives elsewhere (one per
/// request sender).
#[derive(Debug, Clone)]
pub struct OpenStreams {
    conn: quiver::Connection,
    side: Side,
}

impl<B: Buf> quic::OpenStreams<B> for OpenStreams {
    type BidiStream = BidiStream<B>;
    type SendStream = SendStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream<B>, StreamErrorIncoming>> {
        open_bidi(&self.conn, self.side, cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<SendStream<B>, StreamErrorIncoming>> {
        open_send(&self.conn, cx)
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        close(&self.conn, code, reason)
    }
}

fn open_bidi<B: Buf>(
    conn: &quiver::Connection,
    side: Side,
    cx: &mut Context<'_>,
) -> Poll<Result<BidiStream<B>, StreamErrorIncoming>> {
    conn.poll_open_bi(cx)
        .map_ok(|(send, recv)| BidiStream::new(send, recv, side))
        .map_err(stream_connection_error)
}

fn open_send<B: Buf>(
    conn: &quiver::Connection,
    cx: &mut Context<'_>,
) -> Poll<Result<SendStream<B>, StreamErrorIncoming>> {
    conn.poll_open_uni(cx)
        .map_ok(SendStream::new)
        .map_err(stream_connection_error)
}

/// CONNECTION_CLOSE with the HTTP/3 code: the peer's h3 sees
/// [`ConnectionErrorIncoming::ApplicationClose`] with it.
fn close(conn: &quiver::Connection, h3_code: Code, reason: &[u8]) {
    conn.close(code(h3_code.value()), reason);
}
