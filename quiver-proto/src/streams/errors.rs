//! Errors of the application operations on streams: one type per
//! operation, so each lists only what that operation can meet.

#[cfg(doc)]
use super::{StreamEvent, StreamsState};
use crate::coding::VarInt;

/// Why [`StreamsState::write`] wrote nothing.
#[derive(Debug, Copy, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The stream's send buffer is full; wait for [`StreamEvent::Writable`].
    #[error("send buffer full")]
    Blocked,
    /// The peer asked us to stop sending (STOP_SENDING) with this code; the
    /// stream has been reset.
    #[error("stopped by peer with code {0}")]
    Stopped(VarInt),
    /// The stream was finished, reset or released.
    #[error("stream closed")]
    ClosedStream,
    /// No such stream, or it cannot be written (a peer's unidirectional
    /// stream).
    #[error("unknown stream")]
    UnknownStream,
    /// The connection is gone; its reason is in
    /// [`crate::Connection::close_reason`].
    #[error("connection lost")]
    ConnectionLost,
}

/// Why [`StreamsState::read`] returned no data.
#[derive(Debug, Copy, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// No data is available yet; wait for [`StreamEvent::Readable`].
    #[error("no data available")]
    Blocked,
    /// The peer reset the stream with this code (reported once).
    #[error("reset by peer with code {0}")]
    Reset(VarInt),
    /// The stream was read to the end, its reset reported, stopped, or
    /// released.
    #[error("stream closed")]
    ClosedStream,
    /// No such stream, or it cannot be read (our unidirectional stream).
    #[error("unknown stream")]
    UnknownStream,
    /// The connection is gone; its reason is in
    /// [`crate::Connection::close_reason`].
    #[error("connection lost")]
    ConnectionLost,
}

/// Why [`StreamsState::finish`] failed.
#[derive(Debug, Copy, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinishError {
    /// The peer asked us to stop sending with this code.
    #[error("stopped by peer with code {0}")]
    Stopped(VarInt),
    /// The stream was already finished, reset or released.
    #[error("stream closed")]
    ClosedStream,
    /// No such stream, or it cannot be written.
    #[error("unknown stream")]
    UnknownStream,
    /// The connection is gone; its reason is in
    /// [`crate::Connection::close_reason`].
    #[error("connection lost")]
    ConnectionLost,
}

/// Why [`StreamsState::reset`], [`StreamsState::stop`] or
/// [`StreamsState::set_priority`] failed.
#[derive(Debug, Copy, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The stream part is already closed (reset, fully sent and
    /// acknowledged, read to the end, stopped) or released.
    #[error("stream closed")]
    ClosedStream,
    /// No such stream, or it has no part in this direction.
    #[error("unknown stream")]
    UnknownStream,
    /// The connection is gone; its reason is in
    /// [`crate::Connection::close_reason`].
    #[error("connection lost")]
    ConnectionLost,
}

/// Lookup failure shared by the application operations.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub(super) enum Missing {
    /// Released, or below the IDs opened so far.
    Closed,
    /// Never opened.
    Unknown,
}

macro_rules! from_missing {
    ($($ty:ident),*) => {$(
        impl From<Missing> for $ty {
            fn from(m: Missing) -> Self {
                match m {
                    Missing::Closed => Self::ClosedStream,
                    Missing::Unknown => Self::UnknownStream,
                }
            }
        }
    )*};
}
from_missing!(WriteError, ReadError, FinishError, StreamError);
