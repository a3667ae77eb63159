//! The JSON of the datagram and stream events: transport:datagrams_sent,
//! transport:datagrams_received and transport:stream_state_updated, with
//! the fields of draft-ietf-quic-qlog-quic-events-03 (the newer draft
//! names the first two `quic:udp_datagrams_sent` and
//! `quic:udp_datagrams_received`, and the last `quic:stream_state_updated`
//! with a mandatory `stream_side` and a `trigger`, which we write too).

use std::fmt::Write as _;

use quiver_proto::frame::Dir;
use quiver_proto::qlog::{Owner, StreamSide, StreamState, StreamStateUpdate};

/// `{"count":n,"raw":[{"length":..},..]}`: one RawInfo per datagram, all
/// of `segment_size` bytes but the last.
pub(super) fn datagrams(s: &mut String, count: u16, segment_size: u16, length: u32) {
    let _ = write!(s, r#"{{"count":{count},"raw":["#);
    let segment = u32::from(segment_size).max(1);
    let mut left = length;
    for i in 0..count {
        let len = if i + 1 == count {
            left
        } else {
            segment.min(left)
        };
        left -= len;
        let sep = if i > 0 { "," } else { "" };
        let _ = write!(s, r#"{sep}{{"length":{len}}}"#);
    }
    s.push_str("]}");
}

/// The data of a transport:stream_state_updated event.
pub(super) fn stream_state(s: &mut String, u: &StreamStateUpdate) {
    let stream_type = match u.stream_id.dir() {
        Dir::Bi => "bidirectional",
        Dir::Uni => "unidirectional",
    };
    let _ = write!(
        s,
        r#"{{"stream_id":{},"stream_type":"{stream_type}""#,
        u.stream_id.into_inner()
    );
    if let Some(side) = u.side {
        let side = match side {
            StreamSide::Sending => "sending",
            StreamSide::Receiving => "receiving",
        };
        let _ = write!(s, r#","stream_side":"{side}""#);
    }
    if let Some(old) = u.old {
        let _ = write!(s, r#","old":"{}""#, state(old));
    }
    let _ = write!(s, r#","new":"{}""#, state(u.new));
    if let Some(by) = u.trigger {
        let by = match by {
            Owner::Local => "local",
            Owner::Remote => "remote",
        };
        let _ = write!(s, r#","trigger":"{by}""#);
    }
    if let Some(code) = u.error_code {
        // Not a field of the draft: the application error code of the
        // RESET_STREAM or STOP_SENDING behind a reset state.
        let _ = write!(s, r#","error_code":{code}"#);
    }
    s.push('}');
}

/// The StreamState names of draft-ietf-quic-qlog-quic-events-03 (the same
/// in the newer draft).
fn state(st: StreamState) -> &'static str {
    match st {
        StreamState::Open => "open",
        StreamState::Closed => "closed",
        StreamState::Ready => "ready",
        StreamState::Send => "send",
        StreamState::DataSent => "data_sent",
        StreamState::ResetSent => "reset_sent",
        StreamState::Receive => "receive",
        StreamState::SizeKnown => "size_known",
        StreamState::DataReceived => "data_received",
        StreamState::DataRead => "data_read",
        StreamState::ResetReceived => "reset_received",
        StreamState::ResetRead => "reset_read",
    }
}
