//! The receiving side of a stream as h3's [`quic::RecvStream`].

use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use h3::quic::{self, StreamErrorIncoming, StreamId};

use crate::error::{code, read_error, stream_id};

/// How much one [`poll_data`](quic::RecvStream::poll_data) reads at most.
const CHUNK: usize = 64 * 1024;

/// The receiving side of a quiver stream, handing h3 the data as
/// [`Bytes`] chunks.
///
/// Reads copy out of quiver's reassembly into a buffer that is split off
/// as each chunk, so one allocation serves several small reads.
#[derive(Debug)]
pub struct RecvStream {
    stream: quiver::RecvStream,
    buf: BytesMut,
}

impl RecvStream {
    /// Wraps a quiver receive stream.
    pub fn new(stream: quiver::RecvStream) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
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
        // Zero-filled once per allocation; a pending read keeps it as is.
        self.buf.resize(CHUNK, 0);
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
