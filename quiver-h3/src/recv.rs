//! The receiving side of a stream as h3's [`quic::RecvStream`].

use std::task::{Context, Poll};

use bytes::Bytes;
use h3::error::Code;
use h3::quic::{self, StreamErrorIncoming, StreamId};
use quiver::{Dir, Side};

use crate::error::{code, read_error, stream_id};

/// The receiving side of a quiver stream, handing h3 the data as
/// [`Bytes`] chunks.
///
/// The chunks are quiver's own receive buffer
/// ([`quiver::RecvStream::read_chunk`]): nothing is copied between the
/// packet and h3.
///
/// Dropped before its end, it asks the peer to stop sending with an
/// HTTP/3 code rather than quiver's default 0 (RFC 9114 §4.1.1, §4.1.2):
/// `H3_REQUEST_CANCELLED` when a client abandons a response,
/// `H3_NO_ERROR` when a server answered without reading the whole
/// request (the client must then still read the response) and for
/// unidirectional streams.
#[derive(Debug)]
pub struct RecvStream {
    stream: quiver::RecvStream,
    /// The STOP_SENDING code if dropped before the end.
    abandon: Code,
}

impl RecvStream {
    /// Wraps a quiver receive stream of a connection where we are `side`.
    pub(crate) fn new(stream: quiver::RecvStream, side: Side) -> Self {
        let abandon = match (stream.id().dir(), side) {
            (Dir::Bi, Side::Client) => Code::H3_REQUEST_CANCELLED,
            _ => Code::H3_NO_ERROR,
        };
        Self { stream, abandon }
    }

    /// The quiver stream underneath.
    pub fn get_ref(&self) -> &quiver::RecvStream {
        &self.stream
    }
}

impl quic::RecvStream for RecvStream {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        self.stream
            .poll_read_chunk(cx, usize::MAX)
            .map_err(read_error)
    }

    /// STOP_SENDING with `error_code`; nothing happens if the stream
    /// already ended or was stopped.
    fn stop_sending(&mut self, error_code: u64) {
        let _ = self.stream.stop(code(error_code));
    }

    fn recv_id(&self) -> StreamId {
        stream_id(self.stream.id())
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        // Refused by quiver (harmlessly) if the stream ended, was reset or
        // was stopped already; otherwise quiver's own drop would stop it
        // with code 0.
        let _ = self.stream.stop(code(self.abandon.value()));
    }
}
