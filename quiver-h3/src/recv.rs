//! The receiving side of a stream as h3's [`quic::RecvStream`].

use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use h3::error::Code;
use h3::quic::{self, StreamErrorIncoming, StreamId};
use quiver::{Dir, Side};

use crate::error::{code, read_error, stream_id};

/// The size of the buffers reads are made into.
const CHUNK: usize = 64 * 1024;
/// Less room than this left in the buffer: start a new one.
const MIN_READ: usize = 4 * 1024;

/// The receiving side of a quiver stream, handing h3 the data as
/// [`Bytes`] chunks.
///
/// Reads copy out of quiver's reassembly into a buffer that is split off
/// as each chunk, so one allocation serves several small reads.
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
    buf: BytesMut,
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
        Self {
            stream,
            buf: BytesMut::new(),
            abandon,
        }
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
        // Read into all the room left after the chunks already handed out
        // (a fresh allocation only when little is left); a pending read
        // keeps the buffer as is.
        if self.buf.capacity() < MIN_READ {
            self.buf.reserve(CHUNK);
        }
        self.buf.resize(self.buf.capacity(), 0);
        match std::task::ready!(self.stream.poll_recv(cx, &mut self.buf)) {
            Ok(Some(n)) => {
                self.buf.truncate(n);
                Poll::Ready(Ok(Some(self.buf.split().freeze())))
            }
            Ok(None) => Poll::Ready(Ok(None)),
            Err(e) => Poll::Ready(Err(read_error(e))),
        }
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
