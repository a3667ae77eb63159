//! Frames from the peer that concern streams (RFC 9000 §19.4 to §19.14),
//! each checked against the stream states and limits.

use super::id::dir_index;
use super::{
    MAX_FRAGMENTS_PER_CONNECTION, MAX_FRAGMENTS_PER_STREAM, StreamEvent, StreamId, StreamsState,
};
use crate::TransportError;
use crate::frame::{
    DataBlocked, Dir, FrameType, MaxData, MaxStreamData, MaxStreams, ResetStream, StopSending,
    Stream, StreamDataBlocked, StreamsBlocked,
};

/// Which part of a stream a frame addresses at our end.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
enum Part {
    /// Our receiving part: STREAM, RESET_STREAM, STREAM_DATA_BLOCKED.
    Recv,
    /// Our sending part: MAX_STREAM_DATA, STOP_SENDING.
    Send,
}

impl StreamsState {
    /// Finds the stream a frame of type `ty` names, opening the peer's
    /// streams up to it. `Ok(false)`: the stream existed and was released;
    /// the frame is stale and ignored.
    fn stream_for_frame(
        &mut self,
        id: StreamId,
        part: Part,
        ty: FrameType,
    ) -> Result<bool, TransportError> {
        let local = id.initiator() == self.side;
        let err = |e: TransportError| e.with_frame(ty.value());
        if id.dir() == Dir::Uni {
            match (part, local) {
                // RFC 9000 §19.8: "An endpoint MUST terminate the connection
                // with error STREAM_STATE_ERROR if it receives a STREAM frame
                // ... for a send-only stream"; likewise RESET_STREAM (§19.4)
                // and STREAM_DATA_BLOCKED (§19.13).
                (Part::Recv, true) => {
                    return Err(err(TransportError::stream_state_error(
                        "frame for a send-only stream",
                    )));
                }
                // RFC 9000 §19.10, §19.5: "An endpoint that receives a
                // MAX_STREAM_DATA [or STOP_SENDING] frame for a receive-only
                // stream MUST terminate the connection with error
                // STREAM_STATE_ERROR."
                (Part::Send, false) => {
                    return Err(err(TransportError::stream_state_error(
                        "frame for a receive-only stream",
                    )));
                }
                _ => {}
            }
        }
        let d = dir_index(id.dir());
        if local {
            // RFC 9000 §19.8: "An endpoint MUST terminate the connection with
            // error STREAM_STATE_ERROR if it receives a STREAM frame for a
            // locally initiated stream that has not yet been created"; §19.10
            // and §19.5 say the same of MAX_STREAM_DATA and STOP_SENDING.
            if id.index() >= self.next_local[d] {
                return Err(err(TransportError::stream_state_error(
                    "frame for a locally initiated stream not yet created",
                )));
            }
        } else {
            // RFC 9000 §4.6: "An endpoint that receives a frame with a stream
            // ID exceeding the limit it has sent MUST treat this as a
            // connection error of type STREAM_LIMIT_ERROR".
            if id.index() >= self.max_remote[d] {
                return Err(err(TransportError::stream_limit_error(
                    "stream ID exceeds MAX_STREAMS",
                )));
            }
            if id.index() >= self.next_remote[d] {
                // RFC 9000 §3.2: "Before a stream is created, all streams of
                // the same type with lower-numbered stream IDs MUST be
                // created."
                for index in self.next_remote[d]..=id.index() {
                    self.create(StreamId::new(id.initiator(), id.dir(), index));
                }
                self.next_remote[d] = id.index() + 1;
                self.events.push_back(StreamEvent::Opened { dir: id.dir() });
            }
        }
        Ok(self.streams.contains_key(&id))
    }

    /// Charges `grown` bytes to the connection window. RFC 9000 §19.9: "An
    /// endpoint MUST terminate a connection with an error of type
    /// FLOW_CONTROL_ERROR if it receives more data than the maximum data
    /// value that it has sent."
    fn charge_connection(&mut self, grown: u64, ty: FrameType) -> Result<(), TransportError> {
        let total = self.conn_recv.received().saturating_add(grown);
        if !self.conn_recv.allows(total) {
            return Err(
                TransportError::flow_control_error("data exceeds MAX_DATA").with_frame(ty.value())
            );
        }
        self.conn_recv.add_received(grown);
        Ok(())
    }

    /// Signals Readable unless a signal is already outstanding.
    fn notify_readable(&mut self, id: StreamId) {
        if let Some(recv) = self.streams.get_mut(&id).and_then(|e| e.recv.as_mut()) {
            if !recv.notified {
                recv.notified = true;
                self.events.push_back(StreamEvent::Readable { id });
            }
        }
    }

    /// A STREAM frame (RFC 9000 §19.8).
    pub fn on_stream_frame(&mut self, frame: &Stream<'_>) -> Result<(), TransportError> {
        let ty = frame.ty();
        let id = StreamId::from_varint(frame.id);
        if !self.stream_for_frame(id, Part::Recv, ty)? {
            return Ok(());
        }
        let offset = frame.offset.into_inner();
        // The decoder bounds offset + length by 2^62-1 (RFC 9000 §19.8).
        let end = offset + frame.data.len() as u64;
        let recv = self
            .streams
            .get_mut(&id)
            .and_then(|e| e.recv.as_mut())
            .expect("checked part");
        let grown = recv
            .check_data(end, frame.fin)
            .map_err(|e| e.with_frame(ty.value()))?;
        self.charge_connection(grown, ty)?;
        let recv = self
            .streams
            .get_mut(&id)
            .and_then(|e| e.recv.as_mut())
            .expect("checked part");
        let before = recv.fragments();
        let old = recv.state;
        let delta = recv.on_data(offset, frame.data, frame.fin);
        self.qlog.recv(id, old, recv);
        let after = recv.fragments();
        self.recount_fragments(before, after);
        // RFC 9000 §21.7: "QUIC deployments SHOULD provide mitigations for
        // stream fragmentation attacks ... limiting the size of tracking data
        // structures", and §21.9: to "excessive quantities of any
        // non-productive packets ... Endpoints MAY respond ... with a
        // connection error". No code names the condition; PROTOCOL_VIOLATION
        // is the one for errors "not covered by more specific error codes"
        // (§20.1). The limit is checked right after the one range that
        // crossed it was added, so the state never grows further.
        if after > MAX_FRAGMENTS_PER_STREAM || self.recv_fragments > MAX_FRAGMENTS_PER_CONNECTION {
            return Err(
                TransportError::protocol_violation("stream data in too many fragments")
                    .with_frame(ty.value()),
            );
        }
        self.credit_discarded(delta.discarded);
        if delta.readable {
            self.notify_readable(id);
        }
        self.maybe_release(id);
        Ok(())
    }

    /// A RESET_STREAM frame (RFC 9000 §19.4).
    pub fn on_reset_stream(&mut self, frame: &ResetStream) -> Result<(), TransportError> {
        let ty = FrameType::RESET_STREAM;
        let id = StreamId::from_varint(frame.id);
        if !self.stream_for_frame(id, Part::Recv, ty)? {
            return Ok(());
        }
        let final_size = frame.final_size.into_inner();
        let recv = self
            .streams
            .get_mut(&id)
            .and_then(|e| e.recv.as_mut())
            .expect("checked part");
        let grown = recv
            .check_reset(final_size)
            .map_err(|e| e.with_frame(ty.value()))?;
        self.charge_connection(grown, ty)?;
        let recv = self
            .streams
            .get_mut(&id)
            .and_then(|e| e.recv.as_mut())
            .expect("checked part");
        let before = recv.fragments();
        let old = recv.state;
        let delta = recv.on_reset(frame.error_code, final_size);
        self.qlog.recv(id, old, recv);
        let after = recv.fragments();
        self.recount_fragments(before, after);
        // RFC 9000 §4.5: "The receiver MUST use the final size of the stream
        // to account for all bytes sent on the stream in its connection-level
        // flow controller": the unread bytes up to it are credited back.
        self.credit_discarded(delta.discarded);
        if delta.readable {
            self.notify_readable(id);
        }
        self.maybe_release(id);
        Ok(())
    }

    /// A STOP_SENDING frame (RFC 9000 §19.5): the stream is reset with the
    /// peer's code.
    pub fn on_stop_sending(&mut self, frame: &StopSending) -> Result<(), TransportError> {
        let id = StreamId::from_varint(frame.id);
        if !self.stream_for_frame(id, Part::Send, FrameType::STOP_SENDING)? {
            return Ok(());
        }
        let send = self
            .streams
            .get_mut(&id)
            .and_then(|e| e.send.as_mut())
            .expect("checked part");
        // RFC 9000 §3.5: "An endpoint that receives a STOP_SENDING frame MUST
        // send a RESET_STREAM frame if the stream is in the "Ready" or "Send"
        // state."
        let old = send.state;
        let reset = send.on_stop_sending(frame.error_code);
        self.qlog.send(id, old, send);
        if reset {
            self.reset_pending.insert(id);
            self.events.push_back(StreamEvent::Stopped {
                id,
                code: frame.error_code,
            });
        }
        Ok(())
    }

    /// A MAX_DATA frame (RFC 9000 §19.9).
    pub fn on_max_data(&mut self, frame: &MaxData) {
        // RFC 9000 §4.1: "A sender MUST ignore any MAX_STREAM_DATA or MAX_DATA
        // frames that do not increase flow control limits."
        self.conn_send.raise(frame.0.into_inner());
    }

    /// A MAX_STREAM_DATA frame (RFC 9000 §19.10).
    pub fn on_max_stream_data(&mut self, frame: &MaxStreamData) -> Result<(), TransportError> {
        let id = StreamId::from_varint(frame.id);
        if !self.stream_for_frame(id, Part::Send, FrameType::MAX_STREAM_DATA)? {
            return Ok(());
        }
        let send = self
            .streams
            .get_mut(&id)
            .and_then(|e| e.send.as_mut())
            .expect("checked part");
        // RFC 9000 §4.1: frames "that do not increase flow control limits"
        // are ignored (SendCredit::raise).
        if send.credit.raise(frame.max.into_inner()) && send.has_sendable() {
            self.schedule(id);
        }
        Ok(())
    }

    /// A MAX_STREAMS frame (RFC 9000 §19.11). Counts above 2^60 were
    /// rejected by the decoder.
    pub fn on_max_streams(&mut self, frame: &MaxStreams) {
        self.raise_local_limit(dir_index(frame.dir), frame.count.into_inner());
    }

    /// A DATA_BLOCKED frame (RFC 9000 §19.12): informational. Our MAX_DATA
    /// updates never wait for it (RFC 9000 §4.2: "a receiver MUST NOT wait
    /// for a STREAM_DATA_BLOCKED or DATA_BLOCKED frame").
    pub fn on_data_blocked(&mut self, _frame: &DataBlocked) {}

    /// A STREAM_DATA_BLOCKED frame (RFC 9000 §19.13): checked for the
    /// stream's direction and existence (it may open a peer's stream),
    /// otherwise informational.
    pub fn on_stream_data_blocked(
        &mut self,
        frame: &StreamDataBlocked,
    ) -> Result<(), TransportError> {
        let id = StreamId::from_varint(frame.id);
        self.stream_for_frame(id, Part::Recv, FrameType::STREAM_DATA_BLOCKED)?;
        Ok(())
    }

    /// A STREAMS_BLOCKED frame (RFC 9000 §19.14). If the peer is blocked at
    /// our current limit and streams were released since, the credit is
    /// advertised now rather than when half the limit is free.
    pub fn on_streams_blocked(&mut self, frame: &StreamsBlocked) {
        let d = dir_index(frame.dir);
        if frame.limit.into_inner() >= self.max_remote[d] {
            self.flush_stream_credit(d);
        }
    }
}
