//! A scriptable application for the scenario tests: deterministic
//! payloads, send plans, and what each side received.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use quiver_proto::frame::Dir;
use quiver_proto::streams::{FinishError, ReadError, StreamEvent, StreamId, WriteError};
use quiver_proto::{Connection, ConnectionError, ConnectionHandle, Event, VarInt};

use super::QuicNode;

/// Byte `offset` onwards of the deterministic payload of stream `stream`,
/// written into `buf`. Each stream has its own content, so data delivered
/// to the wrong stream or offset is caught.
pub fn fill_pattern(stream: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = pos / 8;
        let mut state = word ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
        let bytes = crate::splitmix64(&mut state).to_le_bytes();
        let skip = (pos % 8) as usize;
        let n = (8 - skip).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&bytes[skip..skip + n]);
        i += n;
        pos += n as u64;
    }
}

/// `len` bytes of stream `stream`'s payload from `offset` (see
/// [`fill_pattern`]).
pub fn pattern(stream: u64, offset: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill_pattern(stream, offset, &mut v);
    v
}

/// A stream the application opens once the handshake completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendPlan {
    /// Bidirectional or unidirectional.
    pub dir: Dir,
    /// Bytes of [`pattern`] data to write.
    pub len: u64,
    /// Finish (FIN) after the data.
    pub finish: bool,
    /// Reset the stream with this code after writing the data (instead of
    /// finishing).
    pub reset: Option<VarInt>,
}

impl SendPlan {
    /// `len` bytes on a bidirectional stream, then FIN.
    pub fn bi(len: u64) -> Self {
        Self {
            dir: Dir::Bi,
            len,
            finish: true,
            reset: None,
        }
    }

    /// `len` bytes on a unidirectional stream, then FIN.
    pub fn uni(len: u64) -> Self {
        Self {
            dir: Dir::Uni,
            ..Self::bi(len)
        }
    }
}

/// What a [`QuicNode`]'s scripted application does.
#[derive(Debug, Clone, Default)]
pub struct AppConfig {
    /// Streams to open and write, in order, as stream limits allow.
    pub send: Vec<SendPlan>,
    /// Echo what arrives on a peer's bidirectional stream back on it, and
    /// finish it when the peer's FIN is read.
    pub echo: bool,
    /// Don't check received data against [`pattern`].
    pub no_verify: bool,
    /// Send STOP_SENDING with this code on every stream the peer opens, as
    /// soon as it is accepted.
    pub stop_incoming: Option<VarInt>,
    /// Open the planned streams before the handshake completes when the
    /// connection allows it (a client sending 0-RTT).
    pub early: bool,
    /// Read with `Connection::read_chunk` (no copy) instead of `read`.
    pub read_chunks: bool,
}

/// What the application saw of one stream it receives on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecvLog {
    /// Bytes read.
    pub bytes: u64,
    /// The FIN was read; when.
    pub fin_at: Option<Instant>,
    /// First offset whose byte differed from [`pattern`].
    pub mismatch: Option<u64>,
    /// `ReadError::Reset` reported this code.
    pub reset: Option<VarInt>,
    /// Any other read error.
    pub error: Option<ReadError>,
    /// When and how much each successful read returned, for flow-control
    /// tests (only the first 64 reads).
    pub first_reads: Vec<(Instant, usize)>,
}

/// What the application did with one stream it sends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendLog {
    /// The plan it follows.
    pub plan: Option<SendPlan>,
    /// Bytes the connection took.
    pub written: u64,
    /// `finish` or `reset_stream` was called.
    pub ended: bool,
    /// `StreamEvent::Finished`: everything was acknowledged; when.
    pub acked_at: Option<Instant>,
    /// `StreamEvent::Stopped` with this code.
    pub stopped: Option<VarInt>,
    /// A write error other than `Blocked`.
    pub error: Option<WriteError>,
    /// Echo data read but not yet taken by the connection.
    pending_echo: Vec<u8>,
    /// The peer's FIN was read: finish once the echo is flushed.
    echo_fin: bool,
}

/// The state of a scripted application, shared with the test.
#[derive(Debug, Default)]
pub struct AppState {
    /// The configuration.
    pub config: AppConfig,
    /// `Event::Connected` arrived; when.
    pub connected_at: Option<Instant>,
    /// `Event::HandshakeConfirmed` arrived; when.
    pub confirmed_at: Option<Instant>,
    /// `Event::ConnectionLost`: when, and why.
    pub lost: Option<(Instant, ConnectionError)>,
    /// While set, streams are not read (to hold flow-control credit).
    pub read_paused: bool,
    /// Received datagrams, in order.
    pub datagrams: Vec<Bytes>,
    /// Streams received on.
    pub recv: BTreeMap<StreamId, RecvLog>,
    /// Streams sent on (opened by us, or echoing).
    pub send: BTreeMap<StreamId, SendLog>,
    /// Stream events other than `Readable` and `Writable`, in order.
    pub stream_events: Vec<(Instant, StreamEvent)>,
    /// Plans not yet opened.
    next_plan: usize,
    scratch: Vec<u8>,
}

impl AppState {
    /// Bytes read across all streams.
    pub fn bytes_received(&self) -> u64 {
        self.recv.values().map(|r| r.bytes).sum()
    }

    /// Streams whose FIN was read.
    pub fn streams_finished(&self) -> usize {
        self.recv.values().filter(|r| r.fin_at.is_some()).count()
    }

    /// Panics if any received data differed from the pattern.
    pub fn assert_intact(&self) {
        for (id, r) in &self.recv {
            assert_eq!(r.mismatch, None, "stream {id}: data corrupted at offset");
        }
    }
}

/// A scripted application's state, shared between its node and the test.
pub type SharedApp = Rc<RefCell<AppState>>;

pub(super) fn install_app(node: &mut QuicNode, config: AppConfig) -> SharedApp {
    install_app_filtered(node, config, |_| true)
}

pub(super) fn install_app_filtered(
    node: &mut QuicNode,
    config: AppConfig,
    only: impl Fn(ConnectionHandle) -> bool + 'static,
) -> SharedApp {
    let state = Rc::new(RefCell::new(AppState {
        config,
        scratch: vec![0; 64 * 1024],
        ..AppState::default()
    }));
    let shared = state.clone();
    node.set_app(move |endpoint, now| {
        let mut state = shared.borrow_mut();
        for handle in endpoint.connection_handles() {
            if !only(handle) {
                continue;
            }
            if let Some(conn) = endpoint.connection(handle) {
                state.drive(conn, now);
            }
        }
    });
    state
}

impl AppState {
    /// One pass of the application over a connection.
    fn drive(&mut self, conn: &mut Connection, now: Instant) {
        let mut readable: Vec<StreamId> = Vec::new();
        let mut accept = false;
        while let Some(ev) = conn.poll() {
            match ev {
                Event::Connected => self.connected_at = Some(now),
                Event::HandshakeConfirmed => self.confirmed_at = Some(now),
                Event::ConnectionLost { reason } => {
                    if self.lost.is_none() {
                        self.lost = Some((now, reason));
                    }
                }
                Event::DatagramReceived => {
                    while let Some(d) = conn.read_datagram() {
                        self.datagrams.push(d);
                    }
                }
                Event::Stream(ev) => {
                    match ev {
                        StreamEvent::Readable { id } => readable.push(id),
                        StreamEvent::Opened { .. } => accept = true,
                        StreamEvent::Finished { id } => {
                            self.send.entry(id).or_default().acked_at = Some(now);
                        }
                        StreamEvent::Stopped { id, code } => {
                            self.send.entry(id).or_default().stopped = Some(code);
                        }
                        StreamEvent::Writable { .. } | StreamEvent::Available { .. } => {}
                    }
                    if !matches!(
                        ev,
                        StreamEvent::Readable { .. } | StreamEvent::Writable { .. }
                    ) {
                        self.stream_events.push((now, ev));
                    }
                }
            }
        }
        if conn.is_closed() {
            return;
        }
        if accept || conn.is_handshake_complete() {
            for dir in [Dir::Bi, Dir::Uni] {
                while let Some(id) = conn.accept_stream(dir) {
                    self.recv.entry(id).or_default();
                    readable.push(id);
                    if let Some(code) = self.config.stop_incoming {
                        // Best effort: the stream may already be closed.
                        let _ = conn.stop_sending(id, code);
                    }
                }
            }
        }
        if !self.read_paused {
            // Read every stream not yet done: events may have been missed
            // while paused.
            let open: Vec<StreamId> = self
                .recv
                .iter()
                .filter(|(_, r)| r.fin_at.is_none() && r.reset.is_none() && r.error.is_none())
                .map(|(id, _)| *id)
                .collect();
            readable.extend(open);
            readable.sort_unstable();
            readable.dedup();
            for id in readable {
                self.read_stream(conn, now, id);
            }
        }
        if conn.is_handshake_complete() || self.config.early {
            self.open_planned(conn);
        }
        self.write_all(conn);
    }

    fn open_planned(&mut self, conn: &mut Connection) {
        while let Some(plan) = self.config.send.get(self.next_plan).copied() {
            let Some(id) = conn.open_stream(plan.dir) else {
                break;
            };
            self.next_plan += 1;
            self.send.insert(
                id,
                SendLog {
                    plan: Some(plan),
                    ..SendLog::default()
                },
            );
        }
    }

    fn read_stream(&mut self, conn: &mut Connection, now: Instant, id: StreamId) {
        let verify = !self.config.no_verify;
        let echo = self.config.echo && id.dir() == Dir::Bi && id.initiator() != conn.side();
        let mut buf = std::mem::take(&mut self.scratch);
        let log = self.recv.entry(id).or_default();
        if log.fin_at.is_some() || log.reset.is_some() || log.error.is_some() {
            self.scratch = buf;
            return;
        }
        let chunks = self.config.read_chunks;
        loop {
            let mut chunk = Bytes::new();
            let result = if chunks {
                conn.read_chunk(now, id, usize::MAX).map(|c| {
                    c.map(|c| {
                        chunk = c;
                        chunk.len()
                    })
                })
            } else {
                conn.read(now, id, &mut buf)
            };
            match result {
                Ok(Some(n)) => {
                    let data = if chunks { &chunk[..] } else { &buf[..n] };
                    if verify && log.mismatch.is_none() {
                        let expected = pattern(id.into_inner(), log.bytes, n);
                        if let Some(i) = data.iter().zip(&expected).position(|(a, b)| a != b) {
                            log.mismatch = Some(log.bytes + i as u64);
                        }
                    }
                    if log.first_reads.len() < 64 {
                        log.first_reads.push((now, n));
                    }
                    log.bytes += n as u64;
                    if echo {
                        self.send
                            .entry(id)
                            .or_default()
                            .pending_echo
                            .extend_from_slice(data);
                    }
                }
                Ok(None) => {
                    log.fin_at = Some(now);
                    if echo {
                        self.send.entry(id).or_default().echo_fin = true;
                    }
                    break;
                }
                Err(ReadError::Blocked) => break,
                Err(ReadError::Reset(code)) => {
                    log.reset = Some(code);
                    break;
                }
                Err(e) => {
                    log.error = Some(e);
                    break;
                }
            }
        }
        self.scratch = buf;
    }

    fn write_all(&mut self, conn: &mut Connection) {
        let mut chunk = std::mem::take(&mut self.scratch);
        for (&id, log) in self.send.iter_mut() {
            if log.ended || log.error.is_some() || log.stopped.is_some() {
                continue;
            }
            // Echo: flush what was read.
            if !log.pending_echo.is_empty() {
                match conn.write(id, &log.pending_echo) {
                    Ok(n) => {
                        log.written += n as u64;
                        log.pending_echo.drain(..n);
                    }
                    Err(WriteError::Blocked) => {}
                    Err(e) => log.error = Some(e),
                }
            }
            if log.echo_fin && log.pending_echo.is_empty() && log.error.is_none() {
                log.ended = true;
                if let Err(e) = conn.finish(id) {
                    log.error = Some(WriteError::from_finish(e));
                }
                continue;
            }
            let Some(plan) = log.plan else { continue };
            while log.written < plan.len {
                let n = (plan.len - log.written).min(chunk.len() as u64) as usize;
                fill_pattern(id.into_inner(), log.written, &mut chunk[..n]);
                match conn.write(id, &chunk[..n]) {
                    Ok(0) | Err(WriteError::Blocked) => break,
                    Ok(taken) => log.written += taken as u64,
                    Err(e) => {
                        log.error = Some(e);
                        break;
                    }
                }
            }
            if log.written == plan.len && log.error.is_none() {
                if let Some(code) = plan.reset {
                    log.ended = true;
                    if conn.reset_stream(id, code).is_err() {
                        log.error = Some(WriteError::ClosedStream);
                    }
                } else if plan.finish {
                    log.ended = true;
                    if let Err(e) = conn.finish(id) {
                        log.error = Some(WriteError::from_finish(e));
                    }
                }
            }
        }
        self.scratch = chunk;
    }
}

/// Maps a finish failure onto the write error of the same meaning.
trait FromFinish {
    fn from_finish(e: FinishError) -> Self;
}

impl FromFinish for WriteError {
    fn from_finish(e: FinishError) -> Self {
        match e {
            FinishError::Stopped(code) => WriteError::Stopped(code),
            FinishError::ClosedStream => WriteError::ClosedStream,
            FinishError::UnknownStream => WriteError::UnknownStream,
            FinishError::ConnectionLost => WriteError::ConnectionLost,
        }
    }
}
