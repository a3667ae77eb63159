//! Why a connection ended, as the application sees it.

use bytes::Bytes;

use crate::{TransportError, TransportErrorCode, VarInt};

/// Why a connection ended. Every operation on a closed connection reports
/// this, so the application always learns the exact cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The peer's application closed the connection (CONNECTION_CLOSE 0x1d).
    #[error("closed by peer: application error {code:#x}{}", reason_suffix(reason))]
    ApplicationClosed {
        /// The application's error code.
        code: VarInt,
        /// The peer's reason phrase.
        reason: Bytes,
    },
    /// The peer closed the connection with a transport error (0x1c).
    #[error("closed by peer: transport error {code}{}", reason_suffix(reason))]
    ConnectionClosed {
        /// The transport error code (APPLICATION_ERROR when the peer's
        /// application closed during the handshake, RFC 9000 §10.2.3).
        code: TransportErrorCode,
        /// The frame type that caused it, if the peer said.
        frame_type: Option<u64>,
        /// The peer's reason phrase.
        reason: Bytes,
    },
    /// We detected a protocol violation by the peer and closed.
    #[error("protocol violation by peer: {0}")]
    TransportError(TransportError),
    /// The local application closed the connection.
    #[error("closed locally")]
    LocallyClosed,
    /// Nothing was heard from the peer for the idle timeout (RFC 9000 §10.1).
    #[error("timed out")]
    TimedOut,
    /// The peer sent a stateless reset (RFC 9000 §10.3).
    #[error("stateless reset")]
    Reset,
    /// The peer supports none of our versions (RFC 9000 §6.2).
    #[error("no common QUIC version with peer")]
    VersionMismatch,
    /// The server refused the connection (CONNECTION_REFUSED).
    #[error("connection refused by peer")]
    Refused,
    /// Before anything came back, an ICMP error said the server's address
    /// cannot be reached (nothing listens on the port, no route to the
    /// host); see [`crate::Endpoint::handle_unreachable`].
    #[error("destination unreachable: {0}")]
    Unreachable(super::Unreachable),
    /// Client: the server rejected 0-RTT and the transport could not send
    /// the 0-RTT data again in 1-RTT, because what it was sent under may
    /// have changed (RFC 9001 §4.6.2): the server's limits are smaller
    /// than the ones remembered with the ticket (RFC 9000 §7.4.1), or more
    /// than one application protocol was offered, so the negotiated one
    /// may differ. (When neither holds, the transport resends the data
    /// itself and the connection goes on.)
    ///
    /// The connection is closed (the server sees NO_ERROR) and nothing the
    /// application sent reached the server's application. To recover,
    /// connect again and send the data once that handshake completes
    /// (await the connection; don't send in 0-RTT): a ticket the server
    /// issued before its settings changed may be rejected again.
    #[error("0-RTT rejected by the server, and its limits or protocol may have changed")]
    ZeroRttRejected,
}

fn reason_suffix(reason: &Bytes) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" (reason {:?})", String::from_utf8_lossy(reason))
    }
}
