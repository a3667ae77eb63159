//! Stream state changes as qlog reports them (transport:stream_state_updated
//! of draft-ietf-quic-qlog-quic-events-03, the revision the other events
//! follow).
//!
//! The streams module records a [`StreamStateUpdate`] at each change of a
//! stream's send or receive state machine (RFC 9000 §3.1, §3.2), when it
//! is created and when its state is released; the connection hands them
//! to the sink. The newer draft in /work/shared/rfc renames the event
//! `quic:stream_state_updated`, makes `stream_side` mandatory and adds the
//! `trigger` field (local / remote) that [`StreamStateUpdate::trigger`]
//! carries here already.
//!
//! The drafts say implementations "SHOULD mainly log the simplified
//! BaseStreamStates" (idle / open / closed) and keep the granular ones
//! for in-depth debugging, and that tools "SHOULD be able to deal with
//! both types equally" (draft-ietf-quic-qlog-quic-events §5.13 in
//! /work/shared/rfc). We log "open" and "closed" for the stream as a
//! whole and the granular RFC 9000 §3 states of each part between them:
//! the FIN and reset states are what a reader of a trace looks for, and
//! each part gets its own event (§5.13: "two separate events with
//! different stream_side fields SHOULD be logged").

use super::Owner;
use crate::streams::StreamId;

/// One change of a stream's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStateUpdate {
    /// The stream.
    pub stream_id: StreamId,
    /// Which part changed; `None` for the stream as a whole (opened,
    /// closed).
    pub side: Option<StreamSide>,
    /// The state before (`None` when the stream was just created).
    pub old: Option<StreamState>,
    /// The state now.
    pub new: StreamState,
    /// Whose action caused it, when that tells a reader something: who
    /// opened the stream, who asked for a reset (our RESET_STREAM, or the
    /// peer's STOP_SENDING), who ended a receiving part early.
    pub trigger: Option<Owner>,
    /// The application error code of the RESET_STREAM or STOP_SENDING
    /// behind a reset state (not a field of the draft; qlog allows
    /// extension fields).
    pub error_code: Option<u64>,
}

/// Which part of a stream (qlog's `stream_side`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamSide {
    /// The sending part (RFC 9000 §3.1).
    Sending,
    /// The receiving part (RFC 9000 §3.2).
    Receiving,
}

/// A stream state, named as qlog names them (the states of RFC 9000 §3.1
/// and §3.2, and qlog's own "open" and "closed" for the whole stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// The stream was created (opened by us or by the peer).
    Open,
    /// Its state is released: both parts ended (RFC 9000 §3.3).
    Closed,
    /// Sending: created, nothing sent ("Ready").
    Ready,
    /// Sending: data sent ("Send").
    Send,
    /// Sending: the FIN was sent ("Data Sent").
    DataSent,
    /// Sending: RESET_STREAM sent ("Reset Sent").
    ResetSent,
    /// Receiving: the final size is unknown ("Recv").
    Receive,
    /// Receiving: a FIN arrived ("Size Known").
    SizeKnown,
    /// Both: all data acknowledged (sending) or arrived (receiving)
    /// ("Data Recvd").
    DataReceived,
    /// Receiving: the application read everything ("Data Read").
    DataRead,
    /// Both: the peer's RESET_STREAM arrived (receiving), or ours was
    /// acknowledged (sending) ("Reset Recvd").
    ResetReceived,
    /// Receiving: the application learned of the reset ("Reset Read").
    ResetRead,
}
