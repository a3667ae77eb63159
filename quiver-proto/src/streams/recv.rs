//! The receiving part of a stream (RFC 9000 §3.2) with its flow-control
//! window and final-size rules (RFC 9000 §4.1, §4.5).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ReadError;
use super::assembler::Assembler;
use super::flow_control::RecvWindow;
use crate::TransportError;
use crate::coding::VarInt;

/// States of the receiving part of a stream (RFC 9000 §3.2, Figure 3).
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub(super) enum RecvState {
    /// Receiving; the final size is unknown.
    Recv,
    /// A FIN arrived; the final size is known.
    SizeKnown,
    /// Every byte up to the final size arrived.
    DataRecvd,
    /// The peer reset the stream; the application has not been told yet.
    ResetRecvd,
    /// The application read everything including the FIN: terminal.
    DataRead,
    /// The application saw the reset: terminal.
    ResetRead,
}

/// What a STREAM or RESET_STREAM frame changed, for the connection's
/// bookkeeping.
#[derive(Debug, Default, Copy, Clone, PartialEq, Eq)]
pub(super) struct RecvDelta {
    /// Bytes newly consumed without the application reading them
    /// (discarded), to credit to the connection window.
    pub(super) discarded: u64,
    /// The application has something new to read (data, FIN or reset).
    pub(super) readable: bool,
}

/// The receiving part of a stream.
#[derive(Debug)]
pub(super) struct RecvStream {
    pub(super) state: RecvState,
    assembler: Assembler,
    final_size: Option<u64>,
    /// Stream-level window; `consumed` counts bytes read or discarded.
    pub(super) window: RecvWindow,
    reset_code: Option<VarInt>,
    /// The application stopped reading, with this code (STOP_SENDING).
    pub(super) stopped: Option<VarInt>,
    /// A Readable event is outstanding since the last read.
    pub(super) notified: bool,
    /// The Maximum Stream Data value most recently sent in a frame.
    pub(super) max_sent: u64,
}

impl RecvStream {
    /// A stream in the Recv state whose initial limit is `initial_limit`.
    pub(super) fn new(initial_limit: u64, window: u64, max_window: u64) -> Self {
        Self {
            state: RecvState::Recv,
            assembler: Assembler::new(),
            final_size: None,
            window: RecvWindow::new(initial_limit, window, max_window),
            reset_code: None,
            stopped: None,
            notified: false,
            max_sent: initial_limit,
        }
    }

    /// Whether the part is done: read to the end, reset and reported, or
    /// abandoned by the application with the final size known (so that
    /// connection-level flow control has accounted for every byte, RFC 9000
    /// §4.5: "The receiver MUST use the final size of the stream to account
    /// for all bytes sent on the stream in its connection-level flow
    /// controller").
    pub(super) fn is_terminal(&self) -> bool {
        matches!(self.state, RecvState::DataRead | RecvState::ResetRead)
    }

    /// The error code of the peer's RESET_STREAM, once one was applied.
    pub(super) fn reset_code(&self) -> Option<VarInt> {
        self.reset_code
    }

    /// Memory held for unread data.
    pub(super) fn allocated(&self) -> usize {
        self.assembler.allocated()
    }

    /// Out-of-order pieces held (see [`Assembler::fragments`]).
    pub(super) fn fragments(&self) -> usize {
        self.assembler.fragments()
    }

    /// Checks a STREAM frame covering `offset..end` against the final size
    /// and the stream window, changing nothing. Returns by how much the
    /// highest received offset grows (what the connection window is
    /// charged, RFC 9000 §4.1).
    pub(super) fn check_data(&self, end: u64, fin: bool) -> Result<u64, TransportError> {
        if let Some(size) = self.final_size {
            // RFC 9000 §4.5: "Once a final size for a stream is known, it
            // cannot change. If a RESET_STREAM or STREAM frame is received
            // indicating a change in the final size for the stream, an
            // endpoint SHOULD respond with an error of type FINAL_SIZE_ERROR
            // ... A receiver SHOULD treat receipt of data at or beyond the
            // final size as an error of type FINAL_SIZE_ERROR".
            if end > size || (fin && end != size) {
                return Err(TransportError::final_size_error(
                    "stream data beyond or changing the final size",
                ));
            }
        } else if fin && end < self.window.received() {
            // A FIN below data already received changes the final size.
            return Err(TransportError::final_size_error(
                "final size below data already received",
            ));
        }
        // RFC 9000 §19.10: "An endpoint MUST terminate a connection with an
        // error of type FLOW_CONTROL_ERROR if it receives more data than the
        // largest maximum stream data that it has sent for the affected
        // stream."
        if !self.window.allows(end) {
            return Err(TransportError::flow_control_error(
                "stream data exceeds MAX_STREAM_DATA",
            ));
        }
        Ok(end.saturating_sub(self.window.received()))
    }

    /// Applies a STREAM frame that passed [`check_data`](Self::check_data).
    pub(super) fn on_data(&mut self, offset: u64, data: &[u8], fin: bool) -> RecvDelta {
        let end = offset + data.len() as u64;
        let grown = end.saturating_sub(self.window.received());
        self.window.set_received(end);
        let mut delta = RecvDelta::default();
        if fin && self.final_size.is_none() {
            self.final_size = Some(end);
            if self.state == RecvState::Recv {
                self.state = RecvState::SizeKnown;
            }
        }
        if self.stopped.is_some() || !matches!(self.state, RecvState::Recv | RecvState::SizeKnown) {
            // RFC 9000 §3.5: "STREAM frames received after sending a
            // STOP_SENDING frame are still counted toward connection and
            // stream flow control, even though these frames can be discarded
            // upon receipt." After a reset or once everything arrived, data
            // is a retransmission or is discarded with the stream.
            self.window.consume(grown);
            delta.discarded = grown;
            if self.stopped.is_some() && self.final_size.is_some() {
                self.state = RecvState::DataRead;
            }
            return delta;
        }
        delta.readable = self.assembler.insert(offset, data);
        if let Some(size) = self.final_size {
            if self.assembler.has_all(size) {
                // RFC 9000 §3.2: "Once all data for the stream has been
                // received, the receiving part enters the "Data Recvd" state."
                self.state = RecvState::DataRecvd;
                delta.readable = true;
            }
        }
        delta
    }

    /// Checks a RESET_STREAM frame, changing nothing; returns by how much
    /// the highest received offset grows.
    pub(super) fn check_reset(&self, final_size: u64) -> Result<u64, TransportError> {
        // RFC 9000 §4.5: a RESET_STREAM "indicating a change in the final
        // size for the stream" is a FINAL_SIZE_ERROR; so is one below data
        // already received (that data would lie beyond the final size).
        if self.final_size.is_some_and(|size| size != final_size)
            || final_size < self.window.received()
        {
            return Err(TransportError::final_size_error(
                "RESET_STREAM changes the final size",
            ));
        }
        // RFC 9000 §4.1: the final size counts against the stream limit.
        if !self.window.allows(final_size) {
            return Err(TransportError::flow_control_error(
                "RESET_STREAM final size exceeds MAX_STREAM_DATA",
            ));
        }
        Ok(final_size - self.window.received())
    }

    /// Applies a RESET_STREAM that passed [`check_reset`](Self::check_reset).
    pub(super) fn on_reset(&mut self, code: VarInt, final_size: u64) -> RecvDelta {
        self.window.set_received(final_size);
        self.final_size = Some(final_size);
        let mut delta = RecvDelta::default();
        match self.state {
            RecvState::Recv | RecvState::SizeKnown => {
                // RFC 9000 §3.2: "Receiving a RESET_STREAM frame in the "Recv"
                // or "Size Known" state causes the stream to enter the "Reset
                // Recvd" state." We interrupt delivery and discard unread data
                // (which §3.2 permits), returning its credit.
                self.assembler.clear();
                delta.discarded = self.discard_unread();
                self.reset_code = Some(code);
                if self.stopped.is_some() {
                    // The application already gave up on the stream.
                    self.state = RecvState::ResetRead;
                } else {
                    self.state = RecvState::ResetRecvd;
                    delta.readable = true;
                }
            }
            // RFC 9000 §3.2: "A RESET_STREAM signal might be suppressed or
            // withheld if stream data is completely received": the
            // application reads everything instead. In the other states the
            // stream was already reset or fully read.
            _ => {}
        }
        delta
    }

    /// Marks everything received as consumed; returns the bytes that were
    /// not consumed before.
    fn discard_unread(&mut self) -> u64 {
        let n = self.window.received() - self.window.consumed();
        self.window.consume(n);
        n
    }

    /// Reads ordered data into `buf`. Returns the result and the bytes the
    /// application consumed.
    pub(super) fn read(&mut self, buf: &mut [u8]) -> (Result<Option<usize>, ReadError>, u64) {
        self.read_with(|assembler| {
            let n = assembler.read(buf);
            // An empty buffer reads 0 bytes while data is waiting.
            (n > 0 || (buf.is_empty() && assembler.readable() > 0)).then_some((n, n))
        })
    }

    /// Takes the next ordered data, at most `max` bytes, without copying it
    /// (see [`Assembler::read_chunk`]). Returns the result and the bytes the
    /// application consumed, like [`read`](Self::read).
    pub(super) fn read_chunk(&mut self, max: usize) -> (Result<Option<Bytes>, ReadError>, u64) {
        self.read_with(|assembler| {
            if max == 0 {
                return (assembler.readable() > 0).then(|| (Bytes::new(), 0));
            }
            let chunk = assembler.read_chunk(max)?;
            let n = chunk.len();
            Some((chunk, n))
        })
    }

    /// The state machine shared by [`read`](Self::read) and
    /// [`read_chunk`](Self::read_chunk): `take` removes readable data from
    /// the assembler and returns it with its length, or `None` if there is
    /// none; the length is credited to the stream window.
    fn read_with<T>(
        &mut self,
        take: impl FnOnce(&mut Assembler) -> Option<(T, usize)>,
    ) -> (Result<Option<T>, ReadError>, u64) {
        self.notified = false;
        if self.stopped.is_some() {
            return (Err(ReadError::ClosedStream), 0);
        }
        match self.state {
            RecvState::ResetRecvd => {
                self.state = RecvState::ResetRead;
                let code = self.reset_code.unwrap_or(VarInt::ZERO);
                (Err(ReadError::Reset(code)), 0)
            }
            RecvState::DataRead | RecvState::ResetRead => (Err(ReadError::ClosedStream), 0),
            RecvState::Recv | RecvState::SizeKnown | RecvState::DataRecvd => {
                if let Some((data, n)) = take(&mut self.assembler) {
                    // RFC 9000 §4.1/§4.2: consumed bytes free stream credit
                    // (and connection credit, counted by the caller).
                    self.window.consume(n as u64);
                    return (Ok(Some(data)), n as u64);
                }
                if self.final_size == Some(self.assembler.read_offset()) {
                    // RFC 9000 §3.2: "Once stream data has been delivered, the
                    // stream enters the "Data Read" state".
                    self.state = RecvState::DataRead;
                    return (Ok(None), 0);
                }
                (Err(ReadError::Blocked), 0)
            }
        }
    }

    /// The application stops reading (RFC 9000 §3.5). Returns whether a
    /// STOP_SENDING frame should be sent and the bytes discarded, or `None`
    /// if the stream was already done.
    pub(super) fn stop(&mut self, code: VarInt) -> Option<(bool, u64)> {
        if self.stopped.is_some() || self.is_terminal() {
            return None;
        }
        let discarded = self.discard_unread();
        self.assembler.clear();
        self.stopped = Some(code);
        Some(match self.state {
            // RFC 9000 §3.5: "If the stream is in the "Recv" or "Size Known"
            // state, the transport SHOULD signal this by sending a
            // STOP_SENDING frame".
            RecvState::Recv => (true, discarded),
            RecvState::SizeKnown => {
                self.state = RecvState::DataRead;
                (true, discarded)
            }
            RecvState::DataRecvd => {
                self.state = RecvState::DataRead;
                (false, discarded)
            }
            _ => {
                self.state = RecvState::ResetRead;
                (false, discarded)
            }
        })
    }

    /// Whether a STOP_SENDING is still useful (RFC 9000 §3.5: "once either
    /// all stream data or a RESET_STREAM frame has been received for the
    /// stream ... sending a STOP_SENDING frame is unnecessary").
    pub(super) fn stop_sending_useful(&self) -> bool {
        self.stopped.is_some() && self.state == RecvState::Recv
    }

    /// Decides whether to raise the stream limit. RFC 9000 §3.3: "The
    /// receiver only sends MAX_STREAM_DATA frames in the "Recv" state."
    pub(super) fn poll_window_update(&mut self, timing: Option<(Instant, Duration)>) -> bool {
        self.may_send_max_stream_data() && self.window.poll_update(timing)
    }

    /// Whether MAX_STREAM_DATA may be sent: in "Recv", still reading.
    pub(super) fn may_send_max_stream_data(&self) -> bool {
        self.state == RecvState::Recv && self.stopped.is_none()
    }

    /// Whether a MAX_STREAM_DATA frame carrying `max` is still worth
    /// resending after loss (RFC 9000 §13.3: "the most recently sent" value
    /// is resent, and not once the final size is known).
    pub(super) fn resend_max_stream_data(&self, max: u64) -> bool {
        self.may_send_max_stream_data() && max == self.max_sent
    }
}
