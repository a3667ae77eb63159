//! Streams (RFC 9000 §2, §3, §4): stream IDs, the send and receive state
//! machines, flow control, stream limits and the scheduling of STREAM
//! frames into packets.
//!
//! [`StreamsState`] is driven by the connection:
//! - the application calls [`open`](StreamsState::open),
//!   [`accept`](StreamsState::accept), [`write`](StreamsState::write),
//!   [`finish`](StreamsState::finish), [`reset`](StreamsState::reset),
//!   [`read`](StreamsState::read), [`stop`](StreamsState::stop) and
//!   [`set_priority`](StreamsState::set_priority), and learns what changed
//!   from [`poll_event`](StreamsState::poll_event);
//! - frames from the peer go to the `on_*` methods, which return the
//!   connection error the RFC prescribes for a violation;
//! - packet assembly calls [`write_control_frames`](StreamsState::write_control_frames)
//!   and [`write_stream_frames`](StreamsState::write_stream_frames), keeps
//!   the returned [`ControlFrame`] and [`StreamChunk`] records with the sent
//!   packet, and reports them back acknowledged or lost.
//!
//! Nothing here reads a clock: [`read`](StreamsState::read) takes `now` and
//! the RTT for receive-window auto-tuning.
//!
//! # Choices
//! - **Writes are buffered independently of flow-control credit**, up to
//!   [`StreamsConfig::send_buffer`] unacknowledged bytes per stream; credit
//!   only limits what [`write_stream_frames`](StreamsState::write_stream_frames)
//!   sends. `WriteError::Blocked` thus means "buffer full", and
//!   [`StreamEvent::Writable`] follows once acknowledgements free room.
//! - **A peer's RESET_STREAM interrupts delivery**: unread data is dropped
//!   at once and the next read reports the reset (RFC 9000 §3.2 allows
//!   this), unless all data had already arrived, in which case the reset is
//!   suppressed.
//! - **STOP_SENDING from the peer resets the stream at once**, also from
//!   "Data Sent" (RFC 9000 §3.5 permits deferring; we do not).
//! - Received data is held in pages (see `assembler`), so the memory of a
//!   stream is bounded by its advertised window, and the memory of all
//!   streams by the connection window (which counts the highest offset
//!   received on each stream, RFC 9000 §4.1).
//! - **Fragmented data closes the connection**: more than
//!   [`MAX_FRAGMENTS_PER_STREAM`] out-of-order pieces on one stream, or
//!   [`MAX_FRAGMENTS_PER_CONNECTION`] on all, is a PROTOCOL_VIOLATION (RFC 9000 §21.7, §21.9), so the
//!   bookkeeping of gaps stays bounded however the peer spreads its bytes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::Side;
use crate::coding::VarInt;
use crate::frame::Dir;
use crate::qlog::{Owner, StreamState, StreamStateUpdate};
use crate::transport_params::TransportParameters;

mod assembler;
mod errors;
mod flow_control;
mod id;
mod input;
mod output;
mod qlog;
mod recv;
mod send;
#[cfg(test)]
mod tests;

pub use errors::{FinishError, ReadError, StreamError, WriteError};
pub use id::StreamId;

use errors::Missing;
use flow_control::{RecvWindow, SendCredit};
use id::dir_index;
use qlog::StreamLog;
use recv::RecvStream;
use send::SendStream;

/// Out-of-order pieces of stream data a connection may hold on all its
/// streams before it closes with PROTOCOL_VIOLATION (RFC 9000 §21.7). Each
/// costs a range of bookkeeping (a few tens of bytes); a sender leaves one
/// gap per packet lost or reordered in flight, far fewer than this even at
/// the largest windows auto-tuning reaches (64 MiB is some 50,000 packets
/// of 1,200 bytes, which would need a third of them missing at once).
pub const MAX_FRAGMENTS_PER_CONNECTION: usize = 16_384;

/// Out-of-order pieces one stream may hold (PROTOCOL_VIOLATION past it). A
/// sender leaves a gap per lost or reordered packet in flight; thousands
/// of them on one stream are not a network's doing.
pub const MAX_FRAGMENTS_PER_STREAM: usize = 4096;

/// Stream and flow-control settings of one endpoint.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct StreamsConfig {
    /// The receive window of a stream: the credit advertised beyond what
    /// the application has read.
    pub stream_receive_window: u64,
    /// The largest a stream's receive window may grow by auto-tuning.
    pub max_stream_receive_window: u64,
    /// The connection-level receive window (MAX_DATA beyond data consumed).
    pub receive_window: u64,
    /// The largest the connection window may grow by auto-tuning.
    pub max_receive_window: u64,
    /// Bidirectional streams the peer may have open at once.
    pub max_concurrent_bidi_streams: u64,
    /// Unidirectional streams the peer may have open at once.
    pub max_concurrent_uni_streams: u64,
    /// Bytes a stream buffers for sending (written, not yet acknowledged).
    pub send_buffer: u64,
}

impl Default for StreamsConfig {
    /// 256 KiB stream windows growing to 8 MiB, a 1 MiB connection window
    /// growing to 24 MiB, 100 concurrent streams of each kind, 1 MiB send
    /// buffers.
    fn default() -> Self {
        Self {
            stream_receive_window: 256 * 1024,
            max_stream_receive_window: 8 * 1024 * 1024,
            receive_window: 1024 * 1024,
            max_receive_window: 24 * 1024 * 1024,
            max_concurrent_bidi_streams: 100,
            max_concurrent_uni_streams: 100,
            send_buffer: 1024 * 1024,
        }
    }
}

impl StreamsConfig {
    /// Writes the initial limits these settings imply into the transport
    /// parameters we send (RFC 9000 §18.2: initial_max_data,
    /// initial_max_stream_data_*, initial_max_streams_*).
    pub fn apply_to(&self, params: &mut TransportParameters) {
        params.initial_max_data = self.receive_window;
        params.initial_max_stream_data_bidi_local = self.stream_receive_window;
        params.initial_max_stream_data_bidi_remote = self.stream_receive_window;
        params.initial_max_stream_data_uni = self.stream_receive_window;
        params.initial_max_streams_bidi = self.max_concurrent_bidi_streams;
        params.initial_max_streams_uni = self.max_concurrent_uni_streams;
    }
}

/// Something the application may want to act on.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The peer opened streams of this kind: call [`StreamsState::accept`].
    Opened {
        /// The kind of stream.
        dir: Dir,
    },
    /// Data, the end of the stream or a reset can be read.
    Readable {
        /// The stream.
        id: StreamId,
    },
    /// A stream whose write was refused has buffer room again.
    Writable {
        /// The stream.
        id: StreamId,
    },
    /// All data we sent, and the FIN, were acknowledged.
    Finished {
        /// The stream.
        id: StreamId,
    },
    /// The peer sent STOP_SENDING; the stream has been reset with `code`.
    Stopped {
        /// The stream.
        id: StreamId,
        /// The peer's application error code.
        code: VarInt,
    },
    /// The peer raised its stream limit after [`StreamsState::open`]
    /// returned `None`: streams of this kind may be opened.
    Available {
        /// The kind of stream.
        dir: Dir,
    },
}

/// A STREAM frame that was sent: what the connection keeps with the sent
/// packet and reports back through
/// [`on_stream_chunk_acked`](StreamsState::on_stream_chunk_acked) or
/// [`on_stream_chunk_lost`](StreamsState::on_stream_chunk_lost).
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct StreamChunk {
    /// The stream.
    pub id: StreamId,
    /// Offset of the first byte.
    pub offset: u64,
    /// Bytes of data.
    pub len: u64,
    /// Whether the frame carried the FIN bit.
    pub fin: bool,
}

/// A control frame that was sent, for retransmission decisions (RFC 9000
/// §13.3) when its packet is acknowledged or lost.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub enum ControlFrame {
    /// RESET_STREAM for this stream.
    ResetStream(StreamId),
    /// STOP_SENDING for this stream, with the error code.
    StopSending(StreamId, VarInt),
    /// MAX_DATA with this limit.
    MaxData(u64),
    /// MAX_STREAM_DATA for this stream with this limit.
    MaxStreamData(StreamId, u64),
    /// MAX_STREAMS for this kind of stream with this count.
    MaxStreams(Dir, u64),
    /// DATA_BLOCKED at this limit.
    DataBlocked(u64),
    /// STREAM_DATA_BLOCKED for this stream at this limit.
    StreamDataBlocked(StreamId, u64),
    /// STREAMS_BLOCKED for this kind of stream at this limit.
    StreamsBlocked(Dir, u64),
}

/// Initial per-stream limits from one side's transport parameters.
#[derive(Debug, Copy, Clone, Default)]
struct InitialLimits {
    /// For bidirectional streams opened by the side that sent them.
    bidi_local: u64,
    /// For bidirectional streams opened by the other side.
    bidi_remote: u64,
    /// For unidirectional streams opened by the other side.
    uni: u64,
}

impl InitialLimits {
    fn from_params(p: &TransportParameters) -> Self {
        Self {
            bidi_local: p.initial_max_stream_data_bidi_local,
            bidi_remote: p.initial_max_stream_data_bidi_remote,
            uni: p.initial_max_stream_data_uni,
        }
    }

    /// The limit for a stream, given whether the side that sent these
    /// parameters opened it.
    fn for_stream(&self, dir: Dir, opened_by_sender: bool) -> u64 {
        match (dir, opened_by_sender) {
            (Dir::Bi, true) => self.bidi_local,
            (Dir::Bi, false) => self.bidi_remote,
            (Dir::Uni, _) => self.uni,
        }
    }
}

/// One stream: its sending part, receiving part, or both.
#[derive(Debug)]
struct StreamEntry {
    send: Option<SendStream>,
    recv: Option<RecvStream>,
    /// Higher is sent first.
    priority: i32,
    /// Present in the scheduler's queue.
    queued: bool,
}

/// All streams of a connection with their flow control and limits.
#[derive(Debug)]
pub struct StreamsState {
    side: Side,
    config: StreamsConfig,
    streams: BTreeMap<StreamId, StreamEntry>,
    /// Per direction (bidi, uni): streams we opened so far.
    next_local: [u64; 2],
    /// The peer's MAX_STREAMS limits.
    max_local: [u64; 2],
    /// `open` failed since the limit last grew.
    open_blocked: [bool; 2],
    streams_blocked_pending: [bool; 2],
    /// The limit a STREAMS_BLOCKED was last queued for.
    streams_blocked_at: [Option<u64>; 2],
    /// Streams the peer opened so far.
    next_remote: [u64; 2],
    /// Our stream limits (advertised or about to be).
    max_remote: [u64; 2],
    /// The limit most recently sent in MAX_STREAMS (or the parameter).
    max_remote_sent: [u64; 2],
    /// Peer streams released and not yet credited back.
    remote_credit: [u64; 2],
    max_streams_pending: [bool; 2],
    /// The next peer stream `accept` returns.
    next_accept: [u64; 2],
    conn_recv: RecvWindow,
    max_data_pending: bool,
    max_data_sent: u64,
    conn_send: SendCredit,
    data_blocked_pending: bool,
    local_limits: InitialLimits,
    peer_limits: InitialLimits,
    /// Out-of-order pieces held on all streams, at most
    /// [`MAX_FRAGMENTS_PER_CONNECTION`] (plus the one that crosses it and
    /// closes the connection).
    recv_fragments: usize,
    reset_pending: BTreeSet<StreamId>,
    stop_pending: BTreeMap<StreamId, VarInt>,
    max_stream_data_pending: BTreeSet<StreamId>,
    stream_data_blocked_pending: BTreeSet<StreamId>,
    /// Streams with something to send, by priority, each level in
    /// round-robin order.
    sched: BTreeMap<i32, VecDeque<StreamId>>,
    events: VecDeque<StreamEvent>,
    /// State changes kept for qlog (nothing when it is off).
    qlog: StreamLog,
}

impl StreamsState {
    /// Stream state for the `side` end of a connection. `local` are the
    /// transport parameters we send: their initial limits are what the peer
    /// may use before any frame of ours (normally set by
    /// [`StreamsConfig::apply_to`]). Until
    /// [`set_peer_params`](Self::set_peer_params), we may open no stream and
    /// send no data.
    pub fn new(side: Side, config: &StreamsConfig, local: &TransportParameters) -> Self {
        Self {
            side,
            config: *config,
            streams: BTreeMap::new(),
            next_local: [0; 2],
            max_local: [0; 2],
            open_blocked: [false; 2],
            streams_blocked_pending: [false; 2],
            streams_blocked_at: [None; 2],
            next_remote: [0; 2],
            max_remote: [
                local.initial_max_streams_bidi,
                local.initial_max_streams_uni,
            ],
            max_remote_sent: [
                local.initial_max_streams_bidi,
                local.initial_max_streams_uni,
            ],
            remote_credit: [0; 2],
            max_streams_pending: [false; 2],
            next_accept: [0; 2],
            conn_recv: RecvWindow::new(
                local.initial_max_data,
                config.receive_window,
                config.max_receive_window,
            ),
            max_data_pending: false,
            max_data_sent: local.initial_max_data,
            conn_send: SendCredit::new(0),
            data_blocked_pending: false,
            local_limits: InitialLimits::from_params(local),
            peer_limits: InitialLimits::default(),
            recv_fragments: 0,
            reset_pending: BTreeSet::new(),
            stop_pending: BTreeMap::new(),
            max_stream_data_pending: BTreeSet::new(),
            stream_data_blocked_pending: BTreeSet::new(),
            sched: BTreeMap::new(),
            events: VecDeque::new(),
            qlog: StreamLog::default(),
        }
    }

    /// Applies the peer's transport parameters: connection and stream
    /// credit, and how many streams we may open. Limits only grow, so this
    /// may follow remembered 0-RTT parameters.
    pub fn set_peer_params(&mut self, peer: &TransportParameters) {
        self.conn_send.raise(peer.initial_max_data);
        self.peer_limits = InitialLimits::from_params(peer);
        for (d, count) in [peer.initial_max_streams_bidi, peer.initial_max_streams_uni]
            .into_iter()
            .enumerate()
        {
            self.raise_local_limit(d, count);
        }
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            let limit = self
                .peer_limits
                .for_stream(id.dir(), id.initiator() != self.side);
            let entry = self.streams.get_mut(&id).expect("listed");
            if let Some(send) = entry.send.as_mut() {
                if send.credit.raise(limit) && send.has_sendable() {
                    self.schedule(id);
                }
            }
        }
    }

    /// Opens a stream of kind `dir`, or returns `None` if the peer's
    /// MAX_STREAMS limit is reached (RFC 9000 §4.6: "Endpoints MUST NOT
    /// exceed the limit set by their peer"); a STREAMS_BLOCKED frame is then
    /// queued and [`StreamEvent::Available`] follows when the limit grows.
    pub fn open(&mut self, dir: Dir) -> Option<StreamId> {
        let d = dir_index(dir);
        if self.next_local[d] >= self.max_local[d] {
            self.open_blocked[d] = true;
            // RFC 9000 §4.6: "An endpoint that is unable to open a new stream
            // due to the peer's limits SHOULD send a STREAMS_BLOCKED frame".
            if self.streams_blocked_at[d] != Some(self.max_local[d]) {
                self.streams_blocked_at[d] = Some(self.max_local[d]);
                self.streams_blocked_pending[d] = true;
            }
            return None;
        }
        // RFC 9000 §2.1: "A QUIC endpoint MUST NOT reuse a stream ID within a
        // connection": indices only grow.
        let id = StreamId::new(self.side, dir, self.next_local[d]);
        self.next_local[d] += 1;
        self.create(id);
        Some(id)
    }

    /// The next stream of kind `dir` the peer opened, in stream ID order.
    pub fn accept(&mut self, dir: Dir) -> Option<StreamId> {
        let d = dir_index(dir);
        if self.next_accept[d] >= self.next_remote[d] {
            return None;
        }
        let id = StreamId::new(self.side.peer(), dir, self.next_accept[d]);
        self.next_accept[d] += 1;
        Some(id)
    }

    /// Copies as much of `data` into the stream's send buffer as
    /// [`StreamsConfig::send_buffer`] allows, whatever the flow-control
    /// credit, and returns how much. `Err(Blocked)` if nothing fit.
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, WriteError> {
        let send = self
            .lookup(id)?
            .send
            .as_mut()
            .ok_or(WriteError::UnknownStream)?;
        let n = send.write(data)?;
        if n > 0 {
            self.schedule(id);
        }
        Ok(n)
    }

    /// Ends the stream after the data written so far: a FIN will follow.
    pub fn finish(&mut self, id: StreamId) -> Result<(), FinishError> {
        let send = self
            .lookup(id)?
            .send
            .as_mut()
            .ok_or(FinishError::UnknownStream)?;
        send.finish()?;
        self.schedule(id);
        Ok(())
    }

    /// Abandons sending: queues RESET_STREAM with `code` and the final size
    /// (the data sent so far) and drops unsent and unacknowledged data.
    pub fn reset(&mut self, id: StreamId, code: VarInt) -> Result<(), StreamError> {
        let send = self
            .lookup(id)?
            .send
            .as_mut()
            .ok_or(StreamError::UnknownStream)?;
        let old = send.state;
        if !send.reset(code) {
            return Err(StreamError::ClosedStream);
        }
        self.qlog_send(id, old);
        self.reset_pending.insert(id);
        Ok(())
    }

    /// Reads ordered data into `buf`: `Ok(Some(n))` for `n` bytes,
    /// `Ok(None)` once at the end of the stream (then the stream part is
    /// closed), `Err(Reset)` once if the peer reset it.
    ///
    /// `now` and `rtt` (the smoothed RTT) drive receive-window
    /// auto-tuning: MAX_STREAM_DATA and MAX_DATA are queued once half the
    /// window is consumed, and a window whose updates come more often than
    /// every `2 * rtt` doubles, up to the configured maximum.
    pub fn read(
        &mut self,
        now: Instant,
        rtt: Duration,
        id: StreamId,
        buf: &mut [u8],
    ) -> Result<Option<usize>, ReadError> {
        self.read_with(now, rtt, id, |recv| recv.read(buf))
    }

    /// Takes the next in-order data, at most `max` bytes, as a [`Bytes`]
    /// sharing the reassembly buffer (no copy): `Ok(Some(chunk))`,
    /// `Ok(None)` at the end of the stream. A chunk can be shorter than
    /// what is readable; flow-control credit is returned as by
    /// [`read`](Self::read).
    pub fn read_chunk(
        &mut self,
        now: Instant,
        rtt: Duration,
        id: StreamId,
        max: usize,
    ) -> Result<Option<Bytes>, ReadError> {
        self.read_with(now, rtt, id, |recv| recv.read_chunk(max))
    }

    /// What [`read`](Self::read) and [`read_chunk`](Self::read_chunk)
    /// share: `take` reads from the stream's receiving part and returns the
    /// bytes consumed, which are credited to the connection window; window
    /// updates are queued and a finished stream released.
    fn read_with<T>(
        &mut self,
        now: Instant,
        rtt: Duration,
        id: StreamId,
        take: impl FnOnce(&mut RecvStream) -> (Result<Option<T>, ReadError>, u64),
    ) -> Result<Option<T>, ReadError> {
        let recv = self
            .lookup(id)?
            .recv
            .as_mut()
            .ok_or(ReadError::UnknownStream)?;
        let old = recv.state;
        let (result, consumed) = take(recv);
        // RFC 9000 §4.2: credit freed by reading is announced with
        // MAX_STREAM_DATA / MAX_DATA when the window policy says so.
        let update = recv.poll_window_update(Some((now, rtt)));
        self.qlog_recv(id, old);
        if update {
            self.max_stream_data_pending.insert(id);
        }
        self.conn_recv.consume(consumed);
        if self.conn_recv.poll_update(Some((now, rtt))) {
            self.max_data_pending = true;
        }
        if matches!(result, Ok(None) | Err(ReadError::Reset(_))) {
            self.maybe_release(id);
        }
        result
    }

    /// Stops reading: drops unread data and, while the final size is
    /// unknown or data still missing, queues STOP_SENDING with `code` (RFC
    /// 9000 §3.5). Later data is counted for flow control and discarded.
    pub fn stop(&mut self, id: StreamId, code: VarInt) -> Result<(), StreamError> {
        let recv = self
            .lookup(id)?
            .recv
            .as_mut()
            .ok_or(StreamError::UnknownStream)?;
        let before = recv.fragments();
        let old = recv.state;
        let (send_stop, discarded) = recv.stop(code).ok_or(StreamError::ClosedStream)?;
        let after = recv.fragments();
        // RFC 9000 §3.5: from "Recv" the part stays there until the peer
        // answers; nothing is logged until then.
        self.qlog_recv(id, old);
        self.recount_fragments(before, after);
        if send_stop {
            self.stop_pending.insert(id, code);
        }
        self.credit_discarded(discarded);
        self.maybe_release(id);
        Ok(())
    }

    /// Sets the stream's priority (RFC 9000 §2.3): streams with a higher
    /// value send first; equal priorities share in round-robin. Default 0.
    pub fn set_priority(&mut self, id: StreamId, priority: i32) -> Result<(), StreamError> {
        let entry = self.lookup(id)?;
        if entry.send.is_none() {
            return Err(StreamError::UnknownStream);
        }
        let old = entry.priority;
        entry.priority = priority;
        if entry.queued && old != priority {
            if let Some(level) = self.sched.get_mut(&old) {
                level.retain(|&q| q != id);
                if level.is_empty() {
                    self.sched.remove(&old);
                }
            }
            self.sched.entry(priority).or_default().push_back(id);
        }
        Ok(())
    }

    /// Records stream state changes for qlog from now on; collect them
    /// with [`drain_qlog`](Self::drain_qlog). Off by default, and then
    /// recording costs one check per state change.
    pub fn enable_qlog(&mut self) {
        self.qlog.enable();
    }

    /// Hands the state changes recorded since the last call to `f`, in
    /// order.
    pub fn drain_qlog(&mut self, f: impl FnMut(&StreamStateUpdate)) {
        self.qlog.drain(f);
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }

    /// Streams currently held (open in at least one direction).
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Out-of-order pieces held on all streams (kept up to date, not
    /// counted on each call).
    pub fn recv_fragments(&self) -> usize {
        self.recv_fragments
    }

    /// Logs a change of stream `id`'s sending part from `old`, for calls
    /// that reached the stream through [`lookup`](Self::lookup).
    fn qlog_send(&mut self, id: StreamId, old: send::SendState) {
        if self.qlog.is_on() {
            if let Some(send) = self.streams.get(&id).and_then(|e| e.send.as_ref()) {
                self.qlog.send(id, old, send);
            }
        }
    }

    /// Likewise for the receiving part.
    fn qlog_recv(&mut self, id: StreamId, old: recv::RecvState) {
        if self.qlog.is_on() {
            if let Some(recv) = self.streams.get(&id).and_then(|e| e.recv.as_ref()) {
                self.qlog.recv(id, old, recv);
            }
        }
    }

    /// Updates the connection's count of out-of-order pieces after one
    /// stream's went from `before` to `after`.
    fn recount_fragments(&mut self, before: usize, after: usize) {
        self.recv_fragments = self.recv_fragments.saturating_sub(before) + after;
    }

    /// Bytes held for received, unread data on all streams.
    pub fn recv_buffered(&self) -> usize {
        self.streams
            .values()
            .filter_map(|e| e.recv.as_ref())
            .map(|r| r.allocated())
            .sum()
    }

    /// The stream for an application call, or whether it is closed
    /// (released, or an ID below the ones opened) or unknown.
    fn lookup(&mut self, id: StreamId) -> Result<&mut StreamEntry, Missing> {
        if let Some(entry) = self.streams.get_mut(&id) {
            return Ok(entry);
        }
        let d = dir_index(id.dir());
        let opened = if id.initiator() == self.side {
            self.next_local[d]
        } else {
            self.next_remote[d]
        };
        Err(if id.index() < opened {
            Missing::Closed
        } else {
            Missing::Unknown
        })
    }

    /// Creates the state of a new stream (ours or the peer's).
    fn create(&mut self, id: StreamId) {
        let local = id.initiator() == self.side;
        let dir = id.dir();
        let send = (dir == Dir::Bi || local).then(|| {
            SendStream::new(
                self.peer_limits.for_stream(dir, !local),
                self.config.send_buffer,
            )
        });
        let recv = (dir == Dir::Bi || !local).then(|| {
            let mut recv = RecvStream::new(
                self.local_limits.for_stream(dir, local),
                self.config.stream_receive_window,
                self.config.max_stream_receive_window,
            );
            // A window larger than the initial parameter is advertised at once.
            if recv.poll_window_update(None) {
                self.max_stream_data_pending.insert(id);
            }
            recv
        });
        self.streams.insert(
            id,
            StreamEntry {
                send,
                recv,
                priority: 0,
                queued: false,
            },
        );
        let by = if local { Owner::Local } else { Owner::Remote };
        self.qlog.stream(id, StreamState::Open, Some(by));
    }

    /// Raises the number of streams of kind `d` we may open.
    fn raise_local_limit(&mut self, d: usize, count: u64) {
        // RFC 9000 §4.6: "MAX_STREAMS frames that do not increase the stream
        // limit MUST be ignored."
        if count <= self.max_local[d] {
            return;
        }
        self.max_local[d] = count;
        if std::mem::take(&mut self.open_blocked[d]) {
            let dir = [Dir::Bi, Dir::Uni][d];
            self.events.push_back(StreamEvent::Available { dir });
        }
    }

    /// Returns connection credit for bytes dropped unread.
    fn credit_discarded(&mut self, discarded: u64) {
        if discarded > 0 {
            self.conn_recv.consume(discarded);
            if self.conn_recv.poll_update(None) {
                self.max_data_pending = true;
            }
        }
    }

    /// Removes the stream once both parts are terminal; for a peer's stream,
    /// gives the stream credit back (RFC 9000 §4.6: "Implementations might
    /// choose to increase limits as streams are closed, to keep the number
    /// of streams available to peers roughly consistent").
    fn maybe_release(&mut self, id: StreamId) {
        let Some(entry) = self.streams.get(&id) else {
            return;
        };
        let send_done = entry.send.as_ref().is_none_or(|s| s.is_terminal());
        let recv_done = entry.recv.as_ref().is_none_or(|r| r.is_terminal());
        if !(send_done && recv_done) {
            return;
        }
        if let Some(recv) = self.streams.remove(&id).and_then(|e| e.recv) {
            self.recount_fragments(recv.fragments(), 0);
        }
        self.qlog.stream(id, StreamState::Closed, None);
        if id.initiator() != self.side {
            let d = dir_index(id.dir());
            self.remote_credit[d] += 1;
            let concurrent = [
                self.config.max_concurrent_bidi_streams,
                self.config.max_concurrent_uni_streams,
            ][d];
            // Advertise once half the concurrent streams were released.
            if self.remote_credit[d] >= (concurrent / 2).max(1) {
                self.flush_stream_credit(d);
            }
        }
    }

    /// Advertises the released peer streams in a MAX_STREAMS frame.
    fn flush_stream_credit(&mut self, d: usize) {
        let credit = std::mem::take(&mut self.remote_credit[d]);
        if credit == 0 {
            return;
        }
        self.max_remote[d] = (self.max_remote[d] + credit).min(crate::frame::MAX_STREAM_COUNT);
        self.max_streams_pending[d] = true;
    }
}
