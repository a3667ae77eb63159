//! Transport errors: what a peer did wrong, with the code RFC 9000 §20.1 names.

use std::fmt;

use crate::coding::{UnexpectedEnd, VarInt};

/// A QUIC transport error code (RFC 9000 §20.1), carried in a
/// CONNECTION_CLOSE frame of type 0x1c.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransportErrorCode(pub u64);

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $val:expr,)*) => {
        impl TransportErrorCode {
            $($(#[$doc])* pub const $name: Self = Self($val);)*

            /// The RFC's name for this code, if it has one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    0x0100..=0x01ff => Some("CRYPTO_ERROR"),
                    _ => None,
                }
            }
        }
    };
}

codes! {
    /// An endpoint uses this with CONNECTION_CLOSE to signal that the
    /// connection is being closed abruptly in the absence of any error.
    NO_ERROR = 0x00,
    /// The endpoint encountered an internal error and cannot continue.
    INTERNAL_ERROR = 0x01,
    /// The server refused to accept a new connection.
    CONNECTION_REFUSED = 0x02,
    /// Received more data than permitted in advertised data limits.
    FLOW_CONTROL_ERROR = 0x03,
    /// Received a frame for a stream identifier that exceeded the advertised limit.
    STREAM_LIMIT_ERROR = 0x04,
    /// Received a frame for a stream that was not in a state that permitted it.
    STREAM_STATE_ERROR = 0x05,
    /// Received a STREAM or RESET_STREAM frame inconsistent with an established final size.
    FINAL_SIZE_ERROR = 0x06,
    /// Received a frame that was badly formatted.
    FRAME_ENCODING_ERROR = 0x07,
    /// Received transport parameters that were badly formatted or invalid.
    TRANSPORT_PARAMETER_ERROR = 0x08,
    /// The number of connection IDs provided by the peer exceeds active_connection_id_limit.
    CONNECTION_ID_LIMIT_ERROR = 0x09,
    /// Detected an error with protocol compliance not covered by a more specific code.
    PROTOCOL_VIOLATION = 0x0a,
    /// A server received a client Initial that contained an invalid Token field.
    INVALID_TOKEN = 0x0b,
    /// The application or application protocol caused the connection to be closed.
    APPLICATION_ERROR = 0x0c,
    /// Received more data in CRYPTO frames than can be buffered.
    CRYPTO_BUFFER_EXCEEDED = 0x0d,
    /// Detected errors in performing key updates.
    KEY_UPDATE_ERROR = 0x0e,
    /// Reached the confidentiality or integrity limit for the AEAD algorithm.
    AEAD_LIMIT_REACHED = 0x0f,
    /// No viable network path exists.
    NO_VIABLE_PATH = 0x10,
    /// Version negotiation failure (RFC 9368 §4, also used by RFC 9369).
    VERSION_NEGOTIATION_ERROR = 0x11,
}

impl TransportErrorCode {
    /// The code for a TLS alert (RFC 9001 §4.8): 0x0100 + alert.
    pub const fn crypto(alert: u8) -> Self {
        Self(0x100 | alert as u64)
    }

    /// The TLS alert carried by a CRYPTO_ERROR code, if this is one.
    pub fn tls_alert(self) -> Option<u8> {
        (0x100..=0x1ff).contains(&self.0).then_some(self.0 as u8)
    }
}

impl fmt::Debug for TransportErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for TransportErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self.tls_alert()) {
            (Some(_), Some(alert)) => write!(f, "CRYPTO_ERROR (TLS alert {alert})"),
            (Some(name), None) => f.write_str(name),
            (None, _) => write!(f, "unknown transport error {:#x}", self.0),
        }
    }
}

impl From<VarInt> for TransportErrorCode {
    fn from(v: VarInt) -> Self {
        Self(v.into_inner())
    }
}

/// A protocol violation by the peer: the code to close with, the frame type
/// that triggered it (if any), and a reason phrase for the peer's logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}{}: {reason}", frame_type.map(|t| format!(" in frame {t:#x}")).unwrap_or_default())]
pub struct TransportError {
    /// The code that goes on the wire.
    pub code: TransportErrorCode,
    /// The frame type that caused the error, when known (RFC 9000 §19.19).
    pub frame_type: Option<u64>,
    /// A human-readable reason; sent to the peer as the reason phrase.
    pub reason: &'static str,
}

impl TransportError {
    /// An error with the given code and reason and no frame type.
    pub const fn new(code: TransportErrorCode, reason: &'static str) -> Self {
        Self {
            code,
            frame_type: None,
            reason,
        }
    }

    /// The same error, attributed to frame type `ty`.
    pub const fn with_frame(mut self, ty: u64) -> Self {
        self.frame_type = Some(ty);
        self
    }
}

macro_rules! constructors {
    ($($fn:ident => $code:ident,)*) => {
        impl TransportError {
            $(
                #[doc = concat!("A `", stringify!($code), "` error.")]
                pub const fn $fn(reason: &'static str) -> Self {
                    Self::new(TransportErrorCode::$code, reason)
                }
            )*
        }
    };
}

constructors! {
    internal_error => INTERNAL_ERROR,
    connection_refused => CONNECTION_REFUSED,
    flow_control_error => FLOW_CONTROL_ERROR,
    stream_limit_error => STREAM_LIMIT_ERROR,
    stream_state_error => STREAM_STATE_ERROR,
    final_size_error => FINAL_SIZE_ERROR,
    frame_encoding_error => FRAME_ENCODING_ERROR,
    transport_parameter_error => TRANSPORT_PARAMETER_ERROR,
    connection_id_limit_error => CONNECTION_ID_LIMIT_ERROR,
    protocol_violation => PROTOCOL_VIOLATION,
    invalid_token => INVALID_TOKEN,
    crypto_buffer_exceeded => CRYPTO_BUFFER_EXCEEDED,
    key_update_error => KEY_UPDATE_ERROR,
    aead_limit_reached => AEAD_LIMIT_REACHED,
}

impl From<UnexpectedEnd> for TransportError {
    /// A frame or parameter that ends early is badly formatted.
    fn from(_: UnexpectedEnd) -> Self {
        Self::frame_encoding_error("truncated")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        assert_eq!(
            TransportErrorCode::APPLICATION_ERROR.to_string(),
            "APPLICATION_ERROR"
        );
        assert_eq!(
            TransportErrorCode::crypto(42).to_string(),
            "CRYPTO_ERROR (TLS alert 42)"
        );
        assert_eq!(
            TransportErrorCode(0x1234).to_string(),
            "unknown transport error 0x1234"
        );
        let e = TransportError::protocol_violation("bad").with_frame(0x1e);
        assert_eq!(e.to_string(), "PROTOCOL_VIOLATION in frame 0x1e: bad");
    }
}
