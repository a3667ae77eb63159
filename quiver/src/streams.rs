//! Streams: [`SendStream`] ([`AsyncWrite`]) and [`RecvStream`]
//! ([`AsyncRead`]).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};

use quiver_proto::streams::{self as ps, StreamId};
use quiver_proto::{ConnectionError, ConnectionHandle, VarInt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::connection::{ConnRef, conn_state};
use crate::shared::{State, now};

/// Why a write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The peer asked us to stop sending (STOP_SENDING) with this code.
    #[error("stopped by peer with code {0}")]
    Stopped(VarInt),
    /// The connection ended.
    #[error("connection lost: {0}")]
    ConnectionLost(#[from] ConnectionError),
    /// The stream was finished or reset already.
    #[error("stream closed")]
    ClosedStream,
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The peer abandoned the stream (RESET_STREAM) with this code.
    #[error("reset by peer with code {0}")]
    Reset(VarInt),
    /// The connection ended.
    #[error("connection lost: {0}")]
    ConnectionLost(#[from] ConnectionError),
    /// The stream was stopped already.
    #[error("stream closed")]
    ClosedStream,
}

/// Why [`RecvStream::read_to_end`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadToEndError {
    /// Reading failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The stream held more than the limit.
    #[error("stream longer than the limit")]
    TooLong,
}

/// Why [`SendStream::stopped`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoppedError {
    /// The connection ended.
    #[error("connection lost: {0}")]
    ConnectionLost(#[from] ConnectionError),
}

/// The stream was already finished, reset or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream closed")]
pub struct ClosedStream;

impl From<WriteError> for io::Error {
    fn from(e: WriteError) -> Self {
        let kind = match e {
            WriteError::Stopped(_) | WriteError::ConnectionLost(_) => {
                io::ErrorKind::ConnectionReset
            }
            WriteError::ClosedStream => io::ErrorKind::NotConnected,
        };
        io::Error::new(kind, e)
    }
}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> Self {
        let kind = match e {
            ReadError::Reset(_) | ReadError::ConnectionLost(_) => io::ErrorKind::ConnectionReset,
            ReadError::ClosedStream => io::ErrorKind::NotConnected,
        };
        io::Error::new(kind, e)
    }
}

/// The error a write that took nothing reports (`Blocked` waits instead).
fn write_error(state: &mut State, h: ConnectionHandle, e: ps::WriteError) -> WriteError {
    match e {
        ps::WriteError::Stopped(code) => WriteError::Stopped(code),
        ps::WriteError::ConnectionLost => conn_state(state, h).lost().into(),
        ps::WriteError::Blocked | ps::WriteError::ClosedStream | ps::WriteError::UnknownStream => {
            WriteError::ClosedStream
        }
    }
}

/// The sending half of a stream. Dropping it finishes the stream (unless
/// it was reset), so data written is delivered.
#[derive(Debug)]
pub struct SendStream {
    conn: ConnRef,
    id: StreamId,
    /// Finished or reset: nothing more to do on drop.
    done: bool,
}

impl SendStream {
    pub(crate) fn new(conn: ConnRef, id: StreamId) -> Self {
        Self {
            conn,
            id,
            done: false,
        }
    }

    /// The stream's ID.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Writes some of `buf`, waiting for room in the send buffer; returns
    /// how much was taken.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, WriteError> {
        poll_fn(|cx| self.poll_write_inner(cx, buf)).await
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), WriteError> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Polling form of [`write`](Self::write), for callers that implement
    /// poll-based traits and want the typed [`WriteError`] (the
    /// [`AsyncWrite`] impl wraps it in an [`io::Error`]).
    pub fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, WriteError>> {
        self.poll_write_inner(cx, buf)
    }

    /// Writes as much of `buf` as the stream takes, all its chunks under
    /// one lock of the endpoint, and advances `buf` past it: `Ok(n)` bytes
    /// taken, waiting only while it can take none. For a [`Buf`] made of
    /// several pieces (a frame header and its payload) this is one call
    /// where [`poll_send`](Self::poll_send) would be one per piece.
    ///
    /// ```no_run
    /// # use std::future::poll_fn;
    /// # async fn f(mut send: quiver::SendStream) -> Result<(), quiver::WriteError> {
    /// use bytes::Buf;
    /// let mut frame = (&b"\x00\x05"[..]).chain(&b"hello"[..]);
    /// while frame.has_remaining() {
    ///     poll_fn(|cx| send.poll_send_buf(cx, &mut frame)).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_send_buf<B: Buf>(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut B,
    ) -> Poll<Result<usize, WriteError>> {
        if !buf.has_remaining() {
            return Poll::Ready(Ok(0));
        }
        let id = self.id;
        self.conn.with(|state, h| {
            let cs = conn_state(state, h);
            if let Some(code) = cs.stopped.get(&id) {
                return Poll::Ready(Err(WriteError::Stopped(*code)));
            }
            if let Some(e) = &cs.error {
                return Poll::Ready(Err(WriteError::ConnectionLost(e.clone())));
            }
            let Some(conn) = state.proto.connection(h) else {
                return Poll::Ready(Err(conn_state(state, h).lost().into()));
            };
            let mut taken = 0;
            let end = loop {
                let chunk = buf.chunk();
                match conn.write(id, chunk) {
                    Ok(n) => {
                        let whole = n == chunk.len();
                        buf.advance(n);
                        taken += n;
                        if !whole || !buf.has_remaining() {
                            break None;
                        }
                    }
                    Err(e) => break Some(e),
                }
            };
            if taken > 0 {
                // What was taken is reported; an error shows on the next
                // call.
                state.wake_driver();
                return Poll::Ready(Ok(taken));
            }
            match end {
                None => Poll::Ready(Ok(0)),
                Some(ps::WriteError::Blocked) => {
                    let cs = conn_state(state, h);
                    cs.wakers.write.insert(id, cx.waker().clone());
                    Poll::Pending
                }
                Some(e) => Poll::Ready(Err(write_error(state, h, e))),
            }
        })
    }

    fn poll_write_inner(
        &mut self,
        cx: &mut Context<'_>,
        mut buf: &[u8],
    ) -> Poll<Result<usize, WriteError>> {
        self.poll_send_buf(cx, &mut buf)
    }

    /// Ends the stream: the peer reads to the end of what was written.
    /// Does not wait; see [`stopped`](Self::stopped) to learn when the
    /// peer has everything.
    pub fn finish(&mut self) -> Result<(), ClosedStream> {
        let id = self.id;
        let r = self.conn.with(|state, h| {
            let conn = state.proto.connection(h).ok_or(ClosedStream)?;
            conn.finish(id).map_err(|_| ClosedStream)?;
            state.wake_driver();
            Ok(())
        });
        if r.is_ok() {
            self.done = true;
        }
        r
    }

    /// Like [`finish`](Self::finish), but tells a stream the peer asked us
    /// to stop sending (STOP_SENDING) apart from one already finished or
    /// reset: `Ok(None)` when the end was queued, `Ok(Some(code))` when
    /// the peer had stopped the stream with `code` (there is nothing left
    /// to finish; quinn's `finish` reports this as success).
    pub fn try_finish(&mut self) -> Result<Option<VarInt>, ClosedStream> {
        let id = self.id;
        let r = self.conn.with(|state, h| {
            let conn = state.proto.connection(h).ok_or(ClosedStream)?;
            match conn.finish(id) {
                Ok(()) => {
                    state.wake_driver();
                    Ok(None)
                }
                Err(ps::FinishError::Stopped(code)) => Ok(Some(code)),
                Err(_) => Err(ClosedStream),
            }
        });
        if r.is_ok() {
            self.done = true;
        }
        r
    }

    /// Abandons the stream (RESET_STREAM with `code`): unsent data is
    /// dropped and the peer's reads fail with the code.
    pub fn reset(&mut self, code: VarInt) -> Result<(), ClosedStream> {
        let id = self.id;
        let r = self.conn.with(|state, h| {
            let conn = state.proto.connection(h).ok_or(ClosedStream)?;
            conn.reset_stream(id, code).map_err(|_| ClosedStream)?;
            state.wake_driver();
            Ok(())
        });
        self.done = true;
        r
    }

    /// Waits until the peer has acknowledged all data and the end of the
    /// stream (`Ok(None)`), or asked us to stop sending (`Ok(Some(code))`).
    pub async fn stopped(&mut self) -> Result<Option<VarInt>, StoppedError> {
        let id = self.id;
        poll_fn(|cx| {
            self.conn.with(|state, h| {
                let cs = conn_state(state, h);
                if let Some(code) = cs.stopped.get(&id) {
                    return Poll::Ready(Ok(Some(*code)));
                }
                if cs.finished.contains(&id) {
                    return Poll::Ready(Ok(None));
                }
                if cs.error.is_some() || cs.drained {
                    return Poll::Ready(Err(cs.lost().into()));
                }
                cs.wakers.stopped.insert(id, cx.waker().clone());
                Poll::Pending
            })
        })
        .await
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        let (id, done) = (self.id, self.done);
        self.conn.with(|state, h| {
            if !done {
                if let Some(conn) = state.proto.connection(h) {
                    if conn.finish(id).is_ok() {
                        state.wake_driver();
                    }
                }
            }
            if let Some(cs) = state.conns.get_mut(&h) {
                cs.wakers.write.remove(&id);
                cs.wakers.stopped.remove(&id);
                // Its end, seen or still to come, is nobody's now.
                cs.live_send.remove(&id);
                cs.stopped.remove(&id);
                cs.finished.remove(&id);
            }
        });
    }
}

impl AsyncWrite for SendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_inner(cx, buf)
            .map_err(io::Error::from)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.done {
            this.finish()
                .map_err(|e| io::Error::new(io::ErrorKind::NotConnected, e))?;
        }
        Poll::Ready(Ok(()))
    }
}

/// The receiving half of a stream. Dropping it before the end asks the
/// peer to stop sending (STOP_SENDING with code 0).
#[derive(Debug)]
pub struct RecvStream {
    conn: ConnRef,
    id: StreamId,
    /// The end of the stream was read.
    eof: bool,
    /// The peer reset the stream with this code.
    reset: Option<VarInt>,
    /// `stop` was called.
    stopped: bool,
}

impl RecvStream {
    pub(crate) fn new(conn: ConnRef, id: StreamId) -> Self {
        Self {
            conn,
            id,
            eof: false,
            reset: None,
            stopped: false,
        }
    }

    /// The stream's ID.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Reads into `buf`, waiting for data: `Ok(Some(n))`, or `Ok(None)` at
    /// the end of the stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ReadError> {
        poll_fn(|cx| self.poll_read_inner(cx, buf)).await
    }

    /// Reads the whole stream, failing if it holds more than `limit` bytes.
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, ReadToEndError> {
        let mut out = Vec::new();
        // Chunks: one copy, into `out`, and no bounce buffer.
        while let Some(chunk) = self.read_chunk(usize::MAX).await? {
            if out.len() + chunk.len() > limit {
                return Err(ReadToEndError::TooLong);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Polling form of [`read`](Self::read), for callers that implement
    /// poll-based traits and want the typed [`ReadError`] (the
    /// [`AsyncRead`] impl wraps it in an [`io::Error`]).
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<Option<usize>, ReadError>> {
        self.poll_read_inner(cx, buf)
    }

    fn poll_read_inner(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<Option<usize>, ReadError>> {
        if buf.is_empty() && self.readable_state().is_none() {
            return Poll::Ready(Ok(Some(0)));
        }
        self.poll_with(cx, |conn, id| conn.read(now(), id, buf))
    }

    /// Takes the next data of the stream, at most `max` bytes, without
    /// copying it out of quiver's receive buffer, waiting for data:
    /// `Ok(Some(chunk))`, or `Ok(None)` at the end of the stream. A chunk
    /// can be shorter than what has arrived (chunks end where quiver's
    /// buffer pages do); `read` and `read_chunk` can be mixed.
    ///
    /// The chunk shares memory with the stream's buffer, which is reused
    /// once every chunk of it is dropped: keeping chunks for long keeps
    /// that memory.
    ///
    /// ```no_run
    /// # async fn f(mut recv: quiver::RecvStream) -> Result<(), quiver::ReadError> {
    /// let mut total = 0;
    /// while let Some(chunk) = recv.read_chunk(usize::MAX).await? {
    ///     total += chunk.len(); // a `bytes::Bytes`, handed on as is
    /// }
    /// println!("{total} bytes");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, ReadError> {
        poll_fn(|cx| self.poll_read_chunk(cx, max)).await
    }

    /// Polling form of [`read_chunk`](Self::read_chunk).
    pub fn poll_read_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<Result<Option<Bytes>, ReadError>> {
        if max == 0 && self.readable_state().is_none() {
            return Poll::Ready(Ok(Some(Bytes::new())));
        }
        self.poll_with(cx, |conn, id| conn.read_chunk(now(), id, max))
    }

    /// What this handle already knows ends reading: `None` if the stream
    /// may still be read.
    fn readable_state(&self) -> Option<Result<Option<()>, ReadError>> {
        if self.eof {
            return Some(Ok(None));
        }
        if let Some(code) = self.reset {
            return Some(Err(ReadError::Reset(code)));
        }
        if self.stopped {
            return Some(Err(ReadError::ClosedStream));
        }
        None
    }

    /// The part of reading shared by [`poll_recv`](Self::poll_recv) and
    /// [`poll_read_chunk`](Self::poll_read_chunk): `read` takes data from
    /// the connection; a blocked read registers the waker.
    fn poll_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        read: impl FnOnce(&mut quiver_proto::Connection, StreamId) -> Result<Option<T>, ps::ReadError>,
    ) -> Poll<Result<Option<T>, ReadError>> {
        if let Some(end) = self.readable_state() {
            return Poll::Ready(end.map(|_| None));
        }
        let id = self.id;
        let r = self.conn.with(|state, h| {
            let Some(conn) = state.proto.connection(h) else {
                return Poll::Ready(Err(conn_state(state, h).lost().into()));
            };
            match read(conn, id) {
                Ok(r) => {
                    // Reading may free flow-control credit to announce.
                    if conn.has_stream_control_frames() {
                        state.wake_driver();
                    }
                    Poll::Ready(Ok(r))
                }
                Err(ps::ReadError::Blocked) => {
                    let cs = conn_state(state, h);
                    cs.wakers.read.insert(id, cx.waker().clone());
                    Poll::Pending
                }
                Err(ps::ReadError::Reset(code)) => {
                    state.wake_driver();
                    Poll::Ready(Err(ReadError::Reset(code)))
                }
                Err(ps::ReadError::ConnectionLost) => {
                    Poll::Ready(Err(conn_state(state, h).lost().into()))
                }
                Err(ps::ReadError::ClosedStream | ps::ReadError::UnknownStream) => {
                    Poll::Ready(Err(ReadError::ClosedStream))
                }
            }
        });
        match &r {
            Poll::Ready(Ok(None)) => self.eof = true,
            Poll::Ready(Err(ReadError::Reset(code))) => self.reset = Some(*code),
            _ => {}
        }
        r
    }

    /// Stops reading: unread and future data is discarded and the peer is
    /// asked to stop sending (STOP_SENDING with `code`).
    pub fn stop(&mut self, code: VarInt) -> Result<(), ClosedStream> {
        if self.stopped || self.eof || self.reset.is_some() {
            return Err(ClosedStream);
        }
        self.stopped = true;
        let id = self.id;
        self.conn.with(|state, h| {
            let conn = state.proto.connection(h).ok_or(ClosedStream)?;
            conn.stop_sending(id, code).map_err(|_| ClosedStream)?;
            state.wake_driver();
            Ok(())
        })
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        let id = self.id;
        let stop = !(self.stopped || self.eof || self.reset.is_some());
        self.conn.with(|state, h| {
            if stop {
                if let Some(conn) = state.proto.connection(h) {
                    if conn.stop_sending(id, VarInt::from_u32(0)).is_ok() {
                        state.wake_driver();
                    }
                }
            }
            if let Some(cs) = state.conns.get_mut(&h) {
                cs.wakers.read.remove(&id);
            }
        });
    }
}

impl AsyncRead for RecvStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let unfilled = buf.initialize_unfilled();
        match std::task::ready!(this.poll_read_inner(cx, unfilled)) {
            Ok(Some(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Ok(None) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(e.into())),
        }
    }
}
