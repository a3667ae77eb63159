//! The bridge between the connection and its streams: frames in, frames
//! out, acknowledgments and losses, and the application's stream calls.

use std::time::Instant;

use super::sent::Retransmits;
use super::spaces::SpaceId;
use super::{Connection, Event};
use crate::frame::{Dir, Frame};
use crate::streams::{
    ControlFrame, FinishError, ReadError, StreamChunk, StreamError, StreamId, StreamsConfig,
    WriteError,
};
use crate::transport_params::TransportParameters;
use crate::{TransportConfig, TransportError, VarInt};

/// Stream content of a sent packet.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamRetransmits {
    pub(crate) chunks: Vec<StreamChunk>,
    pub(crate) control: Vec<ControlFrame>,
}

/// Emptied chunk lists a connection keeps for reuse.
const MAX_SPARE_CHUNK_LISTS: usize = 64;

/// Stream settings derived from the transport configuration.
pub(crate) fn streams_config(config: &TransportConfig) -> StreamsConfig {
    StreamsConfig {
        stream_receive_window: config.stream_receive_window,
        max_stream_receive_window: config.max_stream_receive_window,
        receive_window: config.receive_window,
        max_receive_window: config.max_receive_window,
        max_concurrent_bidi_streams: config.max_concurrent_bidi_streams,
        max_concurrent_uni_streams: config.max_concurrent_uni_streams,
        send_buffer: config.send_buffer,
    }
}

impl Connection {
    /// Received stream data held for reassembly: page bytes and
    /// out-of-order pieces, for tests that check a peer cannot grow them
    /// without bound.
    #[doc(hidden)]
    pub fn recv_reassembly_for_test(&self) -> (usize, usize) {
        (self.streams.recv_buffered(), self.streams.recv_fragments())
    }

    /// Streams held (open in at least one direction), for tests.
    #[doc(hidden)]
    pub fn stream_count_for_test(&self) -> usize {
        self.streams.stream_count()
    }

    pub(crate) fn streams_on_frame(
        &mut self,
        now: Instant,
        f: Frame<'_>,
    ) -> Result<(), TransportError> {
        let result = self.streams_apply_frame(f);
        self.qlog_streams(now);
        result
    }

    fn streams_apply_frame(&mut self, f: Frame<'_>) -> Result<(), TransportError> {
        match f {
            Frame::Stream(s) => self.streams.on_stream_frame(&s),
            Frame::ResetStream(r) => self.streams.on_reset_stream(&r),
            Frame::StopSending(s) => self.streams.on_stop_sending(&s),
            Frame::MaxData(m) => {
                self.streams.on_max_data(&m);
                Ok(())
            }
            Frame::MaxStreamData(m) => self.streams.on_max_stream_data(&m),
            Frame::MaxStreams(m) => {
                self.streams.on_max_streams(&m);
                Ok(())
            }
            Frame::DataBlocked(d) => {
                self.streams.on_data_blocked(&d);
                Ok(())
            }
            Frame::StreamDataBlocked(d) => self.streams.on_stream_data_blocked(&d),
            Frame::StreamsBlocked(s) => {
                self.streams.on_streams_blocked(&s);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn streams_set_peer_params(&mut self, p: &TransportParameters) {
        self.streams.set_peer_params(p);
    }

    pub(crate) fn streams_on_acked(&mut self, s: StreamRetransmits) {
        for chunk in &s.chunks {
            self.streams.on_stream_chunk_acked(chunk);
        }
        for frame in &s.control {
            self.streams.on_control_acked(frame);
        }
        self.recycle_chunks(s.chunks);
    }

    pub(crate) fn streams_on_lost(&mut self, s: StreamRetransmits) {
        for chunk in &s.chunks {
            self.streams.on_stream_chunk_lost(chunk);
        }
        for frame in &s.control {
            self.streams.on_control_lost(frame);
        }
        self.recycle_chunks(s.chunks);
    }

    /// RFC 9002 §6.2.4: probes "SHOULD carry data" when there is any; with
    /// no new data, send again the stream data of the oldest packets still
    /// in flight, so a lost tail is repaired by the probe itself rather than
    /// one round trip later. The packets stay in flight: whichever copy is
    /// acknowledged first wins.
    pub(crate) fn streams_requeue_for_probe(&mut self) {
        if self.streams.has_stream_data() {
            return;
        }
        let chunks: Vec<StreamChunk> = self
            .space(SpaceId::ApplicationData)
            .sent
            .values()
            .filter(|p| !p.retransmits.stream.chunks.is_empty())
            .take(2)
            .flat_map(|p| p.retransmits.stream.chunks.iter().copied())
            .collect();
        for chunk in &chunks {
            self.streams.on_stream_chunk_lost(chunk);
        }
    }

    pub(crate) fn streams_has_control_frames(&self) -> bool {
        self.sends_application_data() && self.streams.has_control_frames()
    }

    /// Whether stream control frames (flow-control credit, resets,
    /// STOP_SENDING, blocked signals) wait to be sent: after a
    /// [`Connection::read`], the sign that it freed credit worth announcing.
    pub fn has_stream_control_frames(&self) -> bool {
        self.streams_has_control_frames()
    }

    pub(crate) fn streams_has_data(&self) -> bool {
        self.streams.has_stream_data()
    }

    pub(crate) fn streams_write_control(
        &mut self,
        buf: &mut Vec<u8>,
        limit: usize,
        r: &mut Retransmits,
    ) -> bool {
        if !self.sends_application_data() || buf.len() >= limit {
            return false;
        }
        let max = limit - buf.len();
        self.streams
            .write_control_frames(buf, max, &mut r.stream.control)
            > 0
    }

    pub(crate) fn streams_write_data(
        &mut self,
        buf: &mut Vec<u8>,
        limit: usize,
        r: &mut Retransmits,
    ) -> bool {
        if buf.len() >= limit {
            return false;
        }
        let max = limit - buf.len();
        if r.stream.chunks.capacity() == 0 {
            r.stream.chunks = self.chunk_lists.pop().unwrap_or_default();
        }
        let written = self
            .streams
            .write_stream_frames(buf, max, &mut r.stream.chunks);
        if r.stream.chunks.is_empty() {
            self.recycle_chunks(std::mem::take(&mut r.stream.chunks));
        }
        written > 0
    }

    /// Keeps a packet's emptied chunk list for a later packet: stream data
    /// then costs no allocation per packet.
    fn recycle_chunks(&mut self, mut chunks: Vec<StreamChunk>) {
        if chunks.capacity() > 0 && self.chunk_lists.len() < MAX_SPARE_CHUNK_LISTS {
            chunks.clear();
            self.chunk_lists.push(chunks);
        }
    }

    /// Opens a stream, or `None` while the peer's stream limit is reached
    /// (a STREAMS_BLOCKED frame tells it so; wait for
    /// [`crate::streams::StreamEvent::Available`]).
    pub fn open_stream(&mut self, dir: Dir) -> Option<StreamId> {
        // Before the handshake completes, a client sending 0-RTT may open
        // streams, under the remembered limits (RFC 9000 §7.4.1), and a
        // server with 1-RTT keys, under the limits of the client's
        // transport parameters, for its 0.5-RTT data (RFC 9001 §5.7).
        if self.is_closed() || !self.can_send_in(SpaceId::ApplicationData) {
            return None;
        }
        self.streams.open(dir)
    }

    /// The next stream the peer opened, if any.
    pub fn accept_stream(&mut self, dir: Dir) -> Option<StreamId> {
        if self.is_closed() {
            return None;
        }
        self.streams.accept(dir)
    }

    /// Queues data on a stream; returns how much was taken.
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, WriteError> {
        if self.is_closed() {
            return Err(WriteError::ConnectionLost);
        }
        self.streams.write(id, data)
    }

    /// Ends the stream after the data written so far (FIN).
    pub fn finish(&mut self, id: StreamId) -> Result<(), FinishError> {
        if self.is_closed() {
            return Err(FinishError::ConnectionLost);
        }
        self.streams.finish(id)
    }

    /// Abandons sending on a stream with an application error code
    /// (RESET_STREAM, RFC 9000 §19.4).
    pub fn reset_stream(&mut self, id: StreamId, code: VarInt) -> Result<(), StreamError> {
        if self.is_closed() {
            return Err(StreamError::ConnectionLost);
        }
        self.streams.reset(id, code)
    }

    /// Reads in-order data from a stream: `Ok(Some(n))` bytes, `Ok(None)`
    /// at the end of the stream.
    pub fn read(
        &mut self,
        now: Instant,
        id: StreamId,
        buf: &mut [u8],
    ) -> Result<Option<usize>, ReadError> {
        if self.is_closed() {
            return Err(ReadError::ConnectionLost);
        }
        let rtt = self.rtt.smoothed_rtt();
        let result = self.streams.read(now, rtt, id, buf);
        self.qlog_streams(now);
        result
    }

    /// Takes the next in-order data of a stream, at most `max` bytes, as a
    /// [`Bytes`](bytes::Bytes) sharing the reassembly buffer instead of
    /// copying it: `Ok(Some(chunk))`, `Ok(None)` at the end of the stream.
    /// A chunk can be shorter than what is readable (it ends at a buffer
    /// page); reads and chunk reads can be mixed. Flow-control credit is
    /// returned as by [`read`](Self::read).
    pub fn read_chunk(
        &mut self,
        now: Instant,
        id: StreamId,
        max: usize,
    ) -> Result<Option<bytes::Bytes>, ReadError> {
        if self.is_closed() {
            return Err(ReadError::ConnectionLost);
        }
        let rtt = self.rtt.smoothed_rtt();
        let result = self.streams.read_chunk(now, rtt, id, max);
        self.qlog_streams(now);
        result
    }

    /// Asks the peer to stop sending on a stream (STOP_SENDING, §19.5).
    pub fn stop_sending(&mut self, id: StreamId, code: VarInt) -> Result<(), StreamError> {
        if self.is_closed() {
            return Err(StreamError::ConnectionLost);
        }
        self.streams.stop(id, code)
    }

    /// Sets a stream's priority: higher goes first; equal priorities share
    /// bandwidth round-robin.
    pub fn set_priority(&mut self, id: StreamId, priority: i32) -> Result<(), StreamError> {
        self.streams.set_priority(id, priority)
    }

    /// Moves stream events into the connection's event queue.
    pub(crate) fn collect_stream_events(&mut self) {
        while let Some(ev) = self.streams.poll_event() {
            self.events.push_back(Event::Stream(ev));
        }
    }
}
