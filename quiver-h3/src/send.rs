//! The sending side of a stream as h3's [`quic::SendStream`] and
//! [`quic::SendStreamUnframed`].

use std::fmt;
use std::task::{Context, Poll};

use bytes::Buf;
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};

use crate::error::{code, stream_id, write_error};

/// The sending side of a quiver stream.
///
/// h3 hands over one frame at a time with
/// [`send_data`](quic::SendStream::send_data) and then polls
/// [`poll_ready`](quic::SendStream::poll_ready) until quiver's send buffer
/// has taken all of it.
pub struct SendStream<B: Buf> {
    stream: quiver::SendStream,
    /// The frame being written, if any.
    writing: Option<WriteBuf<B>>,
}

impl<B: Buf> SendStream<B> {
    /// Wraps a quiver send stream.
    pub(crate) fn new(stream: quiver::SendStream) -> Self {
        Self {
            stream,
            writing: None,
        }
    }

    /// The quiver stream underneath.
    pub fn get_ref(&self) -> &quiver::SendStream {
        &self.stream
    }
}

impl<B: Buf> fmt::Debug for SendStream<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendStream")
            .field("stream", &self.stream)
            .field("pending", &self.writing.as_ref().map_or(0, Buf::remaining))
            .finish()
    }
}

impl<B: Buf> quic::SendStream<B> for SendStream<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        if let Some(data) = &mut self.writing {
            // The frame's header and payload in one call (one lock).
            while data.has_remaining() {
                std::task::ready!(self.stream.poll_send_buf(cx, data)).map_err(write_error)?;
            }
        }
        self.writing = None;
        Poll::Ready(Ok(()))
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        if self.writing.is_some() {
            // h3 polls poll_ready to completion before sending more; if it
            // did not, h3 closes the connection with H3_INTERNAL_ERROR.
            return Err(StreamErrorIncoming::ConnectionErrorIncoming {
                connection_error: ConnectionErrorIncoming::InternalError(
                    "send_data called while a frame was still being written".into(),
                ),
            });
        }
        self.writing = Some(data.into());
        Ok(())
    }

    /// Finishes the stream (FIN after the data written); does not wait for
    /// the peer to acknowledge it. A stream the peer already stopped
    /// (STOP_SENDING) counts as finished, as with h3-quinn: a server may
    /// answer before reading the whole request and stop it with
    /// H3_NO_ERROR, and the client must still read the response
    /// (RFC 9114 §4.1.2); writes report the stop.
    fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        Poll::Ready(match self.stream.try_finish() {
            Ok(_stopped) => Ok(()),
            Err(e) => Err(StreamErrorIncoming::Unknown(Box::new(e))),
        })
    }

    /// RESET_STREAM with `reset_code`, dropping any frame not yet written;
    /// nothing happens if the stream already ended.
    fn reset(&mut self, reset_code: u64) {
        self.writing = None;
        let _ = self.stream.reset(code(reset_code));
    }

    fn send_id(&self) -> StreamId {
        stream_id(self.stream.id())
    }
}

impl<B: Buf> quic::SendStreamUnframed<B> for SendStream<B> {
    fn poll_send<D: Buf>(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut D,
    ) -> Poll<Result<usize, StreamErrorIncoming>> {
        if self.writing.is_some() {
            // Finish the frame h3 handed over first: raw bytes must not
            // land inside it.
            std::task::ready!(quic::SendStream::poll_ready(self, cx))?;
        }
        let n = std::task::ready!(self.stream.poll_send_buf(cx, buf)).map_err(write_error)?;
        Poll::Ready(Ok(n))
    }
}
