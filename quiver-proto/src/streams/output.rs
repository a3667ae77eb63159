//! Frames we send for streams, and what happens when their packets are
//! acknowledged or lost (RFC 9000 §13.3).

use super::id::dir_index;
use super::send::{SendState, Skip};
use super::{ControlFrame, StreamChunk, StreamEvent, StreamId, StreamsState};
use crate::coding::VarInt;
use crate::frame::{
    DataBlocked, Dir, MaxData, MaxStreamData, MaxStreams, ResetStream, StopSending,
    StreamDataBlocked, StreamsBlocked,
};

/// Appends a frame of `len` bytes with `encode` if it fits in `max_len`
/// bytes after `start`.
fn put(
    buf: &mut Vec<u8>,
    start: usize,
    max_len: usize,
    len: usize,
    encode: impl FnOnce(&mut Vec<u8>),
) -> bool {
    if buf.len() - start + len > max_len {
        return false;
    }
    encode(buf);
    true
}

fn varint(x: u64) -> VarInt {
    VarInt::from_u64_unchecked(x.min(VarInt::MAX.into_inner()))
}

const DIRS: [Dir; 2] = [Dir::Bi, Dir::Uni];

impl StreamsState {
    /// Whether control frames are waiting for
    /// [`write_control_frames`](Self::write_control_frames).
    pub fn has_control_frames(&self) -> bool {
        !self.reset_pending.is_empty()
            || !self.stop_pending.is_empty()
            || self.max_data_pending
            || !self.max_stream_data_pending.is_empty()
            || self.max_streams_pending.contains(&true)
            || self.data_blocked_pending
            || !self.stream_data_blocked_pending.is_empty()
            || self.streams_blocked_pending.contains(&true)
    }

    /// Whether some stream has data (or a FIN) that flow control lets us
    /// send now.
    pub fn has_stream_data(&self) -> bool {
        let conn = self.conn_send.available();
        self.sched.values().flatten().any(|id| {
            self.streams
                .get(id)
                .and_then(|e| e.send.as_ref())
                .is_some_and(|s| s.has_sendable() && (conn > 0 || !s.needs_new_credit()))
        })
    }

    /// Appends pending RESET_STREAM, STOP_SENDING, MAX_DATA,
    /// MAX_STREAM_DATA, MAX_STREAMS, DATA_BLOCKED, STREAM_DATA_BLOCKED and
    /// STREAMS_BLOCKED frames to `buf`, at most `max_len` bytes in all,
    /// recording each in `sent`. Returns the bytes written. Frames that do
    /// not fit stay pending. Values are current when written (RFC 9000
    /// §13.3).
    pub fn write_control_frames(
        &mut self,
        buf: &mut Vec<u8>,
        max_len: usize,
        sent: &mut Vec<ControlFrame>,
    ) -> usize {
        let start = buf.len();
        // RFC 9000 §13.3: "Cancellation of stream transmission, as carried
        // in a RESET_STREAM frame, is sent until acknowledged or until all
        // stream data is acknowledged by the peer".
        while let Some(id) = self.reset_pending.pop_first() {
            let Some((code, final_size)) = self
                .streams
                .get(&id)
                .and_then(|e| e.send.as_ref())
                .filter(|s| s.state == SendState::ResetSent)
                .and_then(|s| s.reset)
            else {
                continue;
            };
            let f = ResetStream {
                id: id.to_varint(),
                error_code: code,
                final_size: varint(final_size),
            };
            if !put(buf, start, max_len, f.encoded_len(), |b| f.encode(b)) {
                self.reset_pending.insert(id);
                break;
            }
            sent.push(ControlFrame::ResetStream(id));
        }
        while let Some((id, code)) = self.stop_pending.pop_first() {
            let f = StopSending {
                id: id.to_varint(),
                error_code: code,
            };
            if !put(buf, start, max_len, f.encoded_len(), |b| f.encode(b)) {
                self.stop_pending.insert(id, code);
                break;
            }
            sent.push(ControlFrame::StopSending(id, code));
        }
        if self.max_data_pending {
            let max = self.conn_recv.limit();
            let f = MaxData(varint(max));
            if put(buf, start, max_len, f.encoded_len(), |b| f.encode(b)) {
                self.max_data_pending = false;
                self.max_data_sent = max;
                sent.push(ControlFrame::MaxData(max));
            }
        }
        while let Some(id) = self.max_stream_data_pending.pop_first() {
            let Some(recv) = self.streams.get_mut(&id).and_then(|e| e.recv.as_mut()) else {
                continue;
            };
            let max = recv.window.limit();
            // RFC 9000 §3.3: "The receiver only sends MAX_STREAM_DATA frames in
            // the "Recv" state."
            if !recv.may_send_max_stream_data() {
                continue;
            }
            let f = MaxStreamData {
                id: id.to_varint(),
                max: varint(max),
            };
            if !put(buf, start, max_len, f.encoded_len(), |b| f.encode(b)) {
                self.max_stream_data_pending.insert(id);
                break;
            }
            recv.max_sent = max;
            sent.push(ControlFrame::MaxStreamData(id, max));
        }
        for (d, dir) in DIRS.into_iter().enumerate() {
            if !self.max_streams_pending[d] {
                continue;
            }
            let count = self.max_remote[d];
            let f = MaxStreams {
                dir,
                count: varint(count),
            };
            if put(buf, start, max_len, f.encoded_len(), |b| f.encode(b)) {
                self.max_streams_pending[d] = false;
                self.max_remote_sent[d] = count;
                sent.push(ControlFrame::MaxStreams(dir, count));
            }
        }
        if self.data_blocked_pending {
            let limit = self.conn_send.limit();
            let f = DataBlocked(varint(limit));
            if !self.conn_send.blocked_at(limit) {
                self.data_blocked_pending = false;
            } else if put(buf, start, max_len, f.encoded_len(), |b| f.encode(b)) {
                self.data_blocked_pending = false;
                sent.push(ControlFrame::DataBlocked(limit));
            }
        }
        while let Some(id) = self.stream_data_blocked_pending.pop_first() {
            let Some(send) = self.streams.get(&id).and_then(|e| e.send.as_ref()) else {
                continue;
            };
            let limit = send.credit.limit();
            if !send.blocked_on_stream_credit() {
                continue;
            }
            let f = StreamDataBlocked {
                id: id.to_varint(),
                limit: varint(limit),
            };
            if !put(buf, start, max_len, f.encoded_len(), |b| f.encode(b)) {
                self.stream_data_blocked_pending.insert(id);
                break;
            }
            sent.push(ControlFrame::StreamDataBlocked(id, limit));
        }
        for (d, dir) in DIRS.into_iter().enumerate() {
            if !self.streams_blocked_pending[d] {
                continue;
            }
            let limit = self.max_local[d];
            if self.next_local[d] < limit {
                self.streams_blocked_pending[d] = false; // no longer blocked
                continue;
            }
            let f = StreamsBlocked {
                dir,
                limit: varint(limit),
            };
            if put(buf, start, max_len, f.encoded_len(), |b| f.encode(b)) {
                self.streams_blocked_pending[d] = false;
                sent.push(ControlFrame::StreamsBlocked(dir, limit));
            }
        }
        buf.len() - start
    }

    /// Appends STREAM frames to `buf`, at most `max_len` bytes in all,
    /// recording each in `sent`; returns the bytes written.
    ///
    /// Streams of higher priority go first; streams of equal priority take
    /// turns, one frame each (round-robin). Lost data of a stream is sent
    /// before its new data (RFC 9000 §13.3). New data respects stream and
    /// connection credit (RFC 9000 §4.1: "Senders MUST NOT send data in
    /// excess of either limit"); when credit runs out with data waiting,
    /// STREAM_DATA_BLOCKED or DATA_BLOCKED is queued. Every frame has a
    /// Length field.
    pub fn write_stream_frames(
        &mut self,
        buf: &mut Vec<u8>,
        max_len: usize,
        sent: &mut Vec<StreamChunk>,
    ) -> usize {
        let start = buf.len();
        let mut level = self.sched.keys().next_back().copied();
        'levels: while let Some(priority) = level {
            // Streams in a row that could not send: a full turn of them ends
            // the level.
            let mut idle = 0;
            while let Some(queue) = self.sched.get_mut(&priority) {
                if idle >= queue.len() {
                    break;
                }
                let Some(id) = queue.pop_front() else {
                    break;
                };
                let Some(entry) = self.streams.get_mut(&id) else {
                    continue; // released
                };
                let Some(send) = entry.send.as_mut() else {
                    entry.queued = false;
                    continue;
                };
                let space = max_len - (buf.len() - start);
                let old = send.state;
                let written = send.write_frame(id, buf, space, self.conn_send.available());
                self.qlog.send(id, old, send);
                match written {
                    Ok((chunk, new)) => {
                        self.conn_send.consume(new);
                        sent.push(chunk);
                        idle = 0;
                        if send.has_sendable() {
                            self.sched.entry(priority).or_default().push_back(id);
                        } else {
                            entry.queued = false;
                            if send.blocked_on_stream_credit() && send.credit.take_blocked() {
                                self.stream_data_blocked_pending.insert(id);
                            }
                        }
                    }
                    Err(Skip::NoRoom) => {
                        self.sched.entry(priority).or_default().push_front(id);
                        break 'levels;
                    }
                    Err(Skip::ConnBlocked) => {
                        idle += 1;
                        self.sched.entry(priority).or_default().push_back(id);
                        if self.conn_send.take_blocked() {
                            self.data_blocked_pending = true;
                        }
                    }
                    Err(Skip::Idle) => {
                        entry.queued = false;
                        if send.blocked_on_stream_credit() && send.credit.take_blocked() {
                            self.stream_data_blocked_pending.insert(id);
                        }
                    }
                }
            }
            if self.sched.get(&priority).is_some_and(|q| q.is_empty()) {
                self.sched.remove(&priority);
            }
            level = self.sched.range(..priority).next_back().map(|(&p, _)| p);
        }
        buf.len() - start
    }

    /// Puts the stream in the scheduler's queue if it is not there, and
    /// queues STREAM_DATA_BLOCKED / DATA_BLOCKED if its data cannot go out.
    pub(super) fn schedule(&mut self, id: StreamId) {
        let Some(entry) = self.streams.get_mut(&id) else {
            return;
        };
        let Some(send) = entry.send.as_mut() else {
            return;
        };
        if send.blocked_on_stream_credit() && send.credit.take_blocked() {
            self.stream_data_blocked_pending.insert(id);
        }
        if !send.has_sendable() || entry.queued {
            return;
        }
        if send.needs_new_credit() && self.conn_send.take_blocked() {
            self.data_blocked_pending = true;
        }
        entry.queued = true;
        self.sched.entry(entry.priority).or_default().push_back(id);
    }

    /// A packet carrying `chunk` was acknowledged: frees acknowledged data;
    /// once all data and the FIN are acknowledged the sending part enters
    /// "Data Recvd" ([`StreamEvent::Finished`]) and may be released.
    pub fn on_stream_chunk_acked(&mut self, chunk: &StreamChunk) {
        let Some(send) = self
            .streams
            .get_mut(&chunk.id)
            .and_then(|e| e.send.as_mut())
        else {
            return;
        };
        let old = send.state;
        let (freed, done) = send.on_ack(chunk);
        self.qlog.send(chunk.id, old, send);
        if freed > 0 && send.want_writable && send.has_room() {
            send.want_writable = false;
            self.events
                .push_back(StreamEvent::Writable { id: chunk.id });
        }
        if done {
            self.events
                .push_back(StreamEvent::Finished { id: chunk.id });
            self.maybe_release(chunk.id);
        }
    }

    /// A packet carrying `chunk` was declared lost: its unacknowledged data
    /// (and FIN) are queued to be sent again ahead of new data.
    pub fn on_stream_chunk_lost(&mut self, chunk: &StreamChunk) {
        let Some(send) = self
            .streams
            .get_mut(&chunk.id)
            .and_then(|e| e.send.as_mut())
        else {
            return;
        };
        if send.on_lost(chunk) {
            self.schedule(chunk.id);
        }
    }

    /// A packet carrying `frame` was acknowledged. An acknowledged
    /// RESET_STREAM moves the sending part to "Reset Recvd" (RFC 9000 §3.1).
    pub fn on_control_acked(&mut self, frame: &ControlFrame) {
        if let ControlFrame::ResetStream(id) = *frame {
            if let Some(send) = self.streams.get_mut(&id).and_then(|e| e.send.as_mut()) {
                if send.state == SendState::ResetSent {
                    // RFC 9000 §3.1: "Once a packet containing a RESET_STREAM
                    // has been acknowledged, the sending part of the stream
                    // enters the "Reset Recvd" state".
                    send.state = SendState::ResetRecvd;
                    self.qlog.send(id, SendState::ResetSent, send);
                    self.maybe_release(id);
                }
            }
        }
    }

    /// A packet carrying `frame` was declared lost: queues it again if it
    /// still matters, with current values (RFC 9000 §13.3).
    pub fn on_control_lost(&mut self, frame: &ControlFrame) {
        match *frame {
            ControlFrame::ResetStream(id) => {
                let resend = self
                    .streams
                    .get(&id)
                    .and_then(|e| e.send.as_ref())
                    .is_some_and(|s| s.state == SendState::ResetSent);
                if resend {
                    self.reset_pending.insert(id);
                }
            }
            ControlFrame::StopSending(id, code) => {
                // RFC 9000 §3.5: "An endpoint is expected to send another
                // STOP_SENDING frame if a packet containing a previous
                // STOP_SENDING is lost", unless all data or a reset arrived.
                let resend = self
                    .streams
                    .get(&id)
                    .and_then(|e| e.recv.as_ref())
                    .is_some_and(|r| r.stop_sending_useful());
                if resend {
                    self.stop_pending.insert(id, code);
                }
            }
            ControlFrame::MaxData(max) => {
                // RFC 9000 §13.3: "an updated value is sent when the packet
                // containing the most recently sent MAX_DATA frame is declared
                // lost".
                if max == self.max_data_sent {
                    self.max_data_pending = true;
                }
            }
            ControlFrame::MaxStreamData(id, max) => {
                // RFC 9000 §13.3: likewise for MAX_STREAM_DATA, and "sending
                // MAX_STREAM_DATA frames [ceases] once the receiving part of
                // the stream enters a "Size Known" or "Reset Recvd" state."
                let resend = self
                    .streams
                    .get(&id)
                    .and_then(|e| e.recv.as_ref())
                    .is_some_and(|r| r.resend_max_stream_data(max));
                if resend {
                    self.max_stream_data_pending.insert(id);
                }
            }
            ControlFrame::MaxStreams(dir, count) => {
                let d = dir_index(dir);
                if count == self.max_remote_sent[d] {
                    self.max_streams_pending[d] = true;
                }
            }
            ControlFrame::DataBlocked(limit) => {
                // RFC 9000 §13.3: blocked frames are resent only while the
                // sender is still blocked at that limit.
                if self.conn_send.blocked_at(limit) {
                    self.data_blocked_pending = true;
                }
            }
            ControlFrame::StreamDataBlocked(id, limit) => {
                let resend = self
                    .streams
                    .get(&id)
                    .and_then(|e| e.send.as_ref())
                    .is_some_and(|s| s.blocked_on_stream_credit() && s.credit.blocked_at(limit));
                if resend {
                    self.stream_data_blocked_pending.insert(id);
                }
            }
            ControlFrame::StreamsBlocked(dir, limit) => {
                let d = dir_index(dir);
                if limit == self.max_local[d] && self.next_local[d] >= limit {
                    self.streams_blocked_pending[d] = true;
                }
            }
        }
    }
}
