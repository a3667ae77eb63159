//! The record of stream state changes kept for qlog (see
//! [`crate::qlog::StreamStateUpdate`]).
//!
//! Off unless the connection has a qlog sink: each place a state can
//! change captures the old state (a byte) and calls one of these methods,
//! which return at once when off. When on, changes are kept as small
//! plain records in a reused vector until the connection, which knows the
//! time, hands them to its sink; nothing is formatted here.

use super::StreamId;
use super::recv::{RecvState, RecvStream};
use super::send::{SendState, SendStream};
use crate::qlog::{Owner, StreamSide, StreamState, StreamStateUpdate};

/// Stream state changes not yet handed to the qlog sink; `None` when
/// qlog is off.
#[derive(Debug, Default)]
pub(super) struct StreamLog(Option<Vec<StreamStateUpdate>>);

impl StreamLog {
    /// Starts recording.
    pub(super) fn enable(&mut self) {
        self.0.get_or_insert_with(Vec::new);
    }

    /// Whether changes are recorded.
    #[inline]
    pub(super) fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Hands each recorded change to `f`, oldest first, and forgets them
    /// (the vector's room is kept for the next ones).
    pub(super) fn drain(&mut self, mut f: impl FnMut(&StreamStateUpdate)) {
        if let Some(log) = &mut self.0 {
            for u in log.drain(..) {
                f(&u);
            }
        }
    }

    /// The stream was created (`by`: who opened it) or released.
    #[inline]
    pub(super) fn stream(&mut self, id: StreamId, new: StreamState, by: Option<Owner>) {
        if let Some(log) = &mut self.0 {
            log.push(StreamStateUpdate {
                stream_id: id,
                side: None,
                old: None,
                new,
                trigger: by,
                error_code: None,
            });
        }
    }

    /// The sending part `s` of stream `id` was in `old` before the call
    /// that may have changed it (RFC 9000 §3.1).
    #[inline]
    pub(super) fn send(&mut self, id: StreamId, old: SendState, s: &SendStream) {
        let Some(log) = &mut self.0 else {
            return;
        };
        if s.state == old {
            return;
        }
        let reset = matches!(s.state, SendState::ResetSent | SendState::ResetRecvd);
        // A reset is ours, or asked for by the peer's STOP_SENDING (RFC
        // 9000 §3.5).
        let trigger = reset.then(|| {
            if s.stop_code.is_some() {
                Owner::Remote
            } else {
                Owner::Local
            }
        });
        log.push(StreamStateUpdate {
            stream_id: id,
            side: Some(StreamSide::Sending),
            old: Some(send_state(old)),
            new: send_state(s.state),
            trigger,
            error_code: s.reset.filter(|_| reset).map(|(code, _)| code.into_inner()),
        });
    }

    /// The receiving part `r` of stream `id` was in `old` before the call
    /// that may have changed it (RFC 9000 §3.2).
    #[inline]
    pub(super) fn recv(&mut self, id: StreamId, old: RecvState, r: &RecvStream) {
        let Some(log) = &mut self.0 else {
            return;
        };
        if r.state == old {
            return;
        }
        let reset = matches!(r.state, RecvState::ResetRecvd | RecvState::ResetRead);
        // Ended early by our STOP_SENDING (RFC 9000 §3.5), or reset by the
        // peer's RESET_STREAM.
        let (trigger, code) = match (r.stopped, reset) {
            (Some(stop), _) => (Some(Owner::Local), r.reset_code().or(Some(stop))),
            (None, true) => (Some(Owner::Remote), r.reset_code()),
            (None, false) => (None, None),
        };
        log.push(StreamStateUpdate {
            stream_id: id,
            side: Some(StreamSide::Receiving),
            old: Some(recv_state(old)),
            new: recv_state(r.state),
            trigger,
            error_code: code.map(|c| c.into_inner()),
        });
    }
}

fn send_state(s: SendState) -> StreamState {
    match s {
        SendState::Ready => StreamState::Ready,
        SendState::Send => StreamState::Send,
        SendState::DataSent => StreamState::DataSent,
        SendState::DataRecvd => StreamState::DataReceived,
        SendState::ResetSent => StreamState::ResetSent,
        SendState::ResetRecvd => StreamState::ResetReceived,
    }
}

fn recv_state(s: RecvState) -> StreamState {
    match s {
        RecvState::Recv => StreamState::Receive,
        RecvState::SizeKnown => StreamState::SizeKnown,
        RecvState::DataRecvd => StreamState::DataReceived,
        RecvState::ResetRecvd => StreamState::ResetReceived,
        RecvState::DataRead => StreamState::DataRead,
        RecvState::ResetRead => StreamState::ResetRead,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{StreamsConfig, StreamsState};
    use crate::Side;
    use crate::frame::Dir;
    use crate::qlog::{Owner, StreamState, StreamStateUpdate};
    use crate::transport_params::TransportParameters;

    /// A client's streams with a peer that allows everything; `qlog` on
    /// or off. Opens a unidirectional stream, writes, finishes and sends.
    fn run(qlog: bool) -> (StreamsState, Vec<StreamStateUpdate>) {
        let config = StreamsConfig::default();
        let mut local = TransportParameters::default();
        config.apply_to(&mut local);
        let mut st = StreamsState::new(Side::Client, &config, &local);
        if qlog {
            st.enable_qlog();
        }
        st.set_peer_params(&local);
        let id = st.open(Dir::Uni).unwrap();
        st.write(id, b"hello").unwrap();
        st.finish(id).unwrap();
        let mut buf = Vec::new();
        st.write_stream_frames(&mut buf, 1200, &mut Vec::new());
        let mut seen = Vec::new();
        st.drain_qlog(|u| seen.push(*u));
        (st, seen)
    }

    #[test]
    fn off_records_nothing_and_holds_no_buffer() {
        let (st, seen) = run(false);
        assert!(seen.is_empty());
        assert!(st.qlog.0.is_none());
    }

    /// RFC 9000 §3.1: the first STREAM frame, here carrying the FIN, moves
    /// the sending part from "Ready" to "Data Sent".
    #[test]
    fn on_records_open_then_data_sent() {
        let (_, seen) = run(true);
        let states: Vec<(Option<StreamState>, StreamState, Option<Owner>)> =
            seen.iter().map(|u| (u.old, u.new, u.trigger)).collect();
        assert_eq!(
            states,
            [
                (None, StreamState::Open, Some(Owner::Local)),
                (Some(StreamState::Ready), StreamState::DataSent, None),
            ]
        );
    }
}
