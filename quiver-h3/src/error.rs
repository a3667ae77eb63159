//! quiver's errors as h3 sees them.
//!
//! h3 tells three things apart: the whole connection ended
//! ([`ConnectionErrorIncoming`]: the peer's application closed it with an
//! HTTP/3 code, it timed out, or something h3 has no word for), the peer
//! ended one side of a stream with a code (RESET_STREAM on its sending
//! side, STOP_SENDING on its receiving side: both
//! [`StreamErrorIncoming::StreamTerminated`]), and anything else.

use std::sync::Arc;

use h3::quic::{ConnectionErrorIncoming, StreamErrorIncoming};
use quiver::{ConnectionError, ReadError, VarInt, WriteError};

/// Maps why a quiver connection ended to h3's terms: an application close
/// keeps its code (h3 reads `H3_NO_ERROR` and the other HTTP/3 codes from
/// it), an idle timeout is [`ConnectionErrorIncoming::Timeout`], and every
/// other cause (transport errors, a local close, a stateless reset, a
/// refusal) is passed through as [`ConnectionErrorIncoming::Undefined`]
/// holding the quiver error.
pub fn connection_error(e: ConnectionError) -> ConnectionErrorIncoming {
    match e {
        ConnectionError::ApplicationClosed { code, .. } => {
            ConnectionErrorIncoming::ApplicationClose {
                error_code: code.into_inner(),
            }
        }
        ConnectionError::TimedOut => ConnectionErrorIncoming::Timeout,
        other => ConnectionErrorIncoming::Undefined(Arc::new(other)),
    }
}

/// A connection error met by a stream operation.
pub(crate) fn stream_connection_error(e: ConnectionError) -> StreamErrorIncoming {
    StreamErrorIncoming::ConnectionErrorIncoming {
        connection_error: connection_error(e),
    }
}

/// Maps a failed read: the peer's RESET_STREAM code is
/// [`StreamErrorIncoming::StreamTerminated`].
pub fn read_error(e: ReadError) -> StreamErrorIncoming {
    match e {
        ReadError::Reset(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        ReadError::ConnectionLost(e) => stream_connection_error(e),
        e @ ReadError::ClosedStream => StreamErrorIncoming::Unknown(Box::new(e)),
    }
}

/// Maps a failed write: the peer's STOP_SENDING code is
/// [`StreamErrorIncoming::StreamTerminated`].
pub fn write_error(e: WriteError) -> StreamErrorIncoming {
    match e {
        WriteError::Stopped(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        WriteError::ConnectionLost(e) => stream_connection_error(e),
        e @ WriteError::ClosedStream => StreamErrorIncoming::Unknown(Box::new(e)),
    }
}

/// An h3 error code as a QUIC varint; codes past 2^62 - 1 (which no
/// HTTP/3 code is) become the largest varint rather than panicking.
pub(crate) fn code(value: u64) -> VarInt {
    VarInt::from_u64(value).unwrap_or(VarInt::MAX)
}

/// quiver's stream ID as h3's.
pub(crate) fn stream_id(id: quiver::StreamId) -> h3::quic::StreamId {
    h3::quic::StreamId::try_from(id.into_inner()).expect("a QUIC stream ID is a varint")
}
