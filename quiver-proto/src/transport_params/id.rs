//! Transport parameter identifiers (RFC 9000 §18, §18.1, §22.3).

use std::fmt;

use crate::coding::VarInt;

/// The identifier of a transport parameter (RFC 9000 §18, §22.3).
///
/// Any value below 2^62 may appear on the wire; the associated constants name
/// the parameters quiver understands.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransportParameterId(pub u64);

macro_rules! parameter_ids {
    ($($(#[$doc:meta])* $name:ident = $val:expr,)*) => {
        impl TransportParameterId {
            $($(#[$doc])* pub const $name: Self = Self($val);)*

            /// The registered name of this parameter, if quiver knows it.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

parameter_ids! {
    /// `original_destination_connection_id` (RFC 9000 §18.2); server only.
    ORIGINAL_DESTINATION_CONNECTION_ID = 0x00,
    /// `max_idle_timeout` in milliseconds (RFC 9000 §18.2).
    MAX_IDLE_TIMEOUT = 0x01,
    /// `stateless_reset_token`, 16 bytes (RFC 9000 §18.2); server only.
    STATELESS_RESET_TOKEN = 0x02,
    /// `max_udp_payload_size` (RFC 9000 §18.2).
    MAX_UDP_PAYLOAD_SIZE = 0x03,
    /// `initial_max_data` (RFC 9000 §18.2).
    INITIAL_MAX_DATA = 0x04,
    /// `initial_max_stream_data_bidi_local` (RFC 9000 §18.2).
    INITIAL_MAX_STREAM_DATA_BIDI_LOCAL = 0x05,
    /// `initial_max_stream_data_bidi_remote` (RFC 9000 §18.2).
    INITIAL_MAX_STREAM_DATA_BIDI_REMOTE = 0x06,
    /// `initial_max_stream_data_uni` (RFC 9000 §18.2).
    INITIAL_MAX_STREAM_DATA_UNI = 0x07,
    /// `initial_max_streams_bidi` (RFC 9000 §18.2).
    INITIAL_MAX_STREAMS_BIDI = 0x08,
    /// `initial_max_streams_uni` (RFC 9000 §18.2).
    INITIAL_MAX_STREAMS_UNI = 0x09,
    /// `ack_delay_exponent` (RFC 9000 §18.2).
    ACK_DELAY_EXPONENT = 0x0a,
    /// `max_ack_delay` in milliseconds (RFC 9000 §18.2).
    MAX_ACK_DELAY = 0x0b,
    /// `disable_active_migration`, zero-length (RFC 9000 §18.2).
    DISABLE_ACTIVE_MIGRATION = 0x0c,
    /// `preferred_address` (RFC 9000 §18.2); server only.
    PREFERRED_ADDRESS = 0x0d,
    /// `active_connection_id_limit` (RFC 9000 §18.2).
    ACTIVE_CONNECTION_ID_LIMIT = 0x0e,
    /// `initial_source_connection_id` (RFC 9000 §18.2).
    INITIAL_SOURCE_CONNECTION_ID = 0x0f,
    /// `retry_source_connection_id` (RFC 9000 §18.2); server only.
    RETRY_SOURCE_CONNECTION_ID = 0x10,
    /// `version_information` (RFC 9368 §3).
    VERSION_INFORMATION = 0x11,
    /// `max_datagram_frame_size` (RFC 9221 §3).
    MAX_DATAGRAM_FRAME_SIZE = 0x20,
    /// `grease_quic_bit`, zero-length (RFC 9287 §3).
    GREASE_QUIC_BIT = 0x2ab2,
    /// `min_ack_delay` in microseconds (draft-ietf-quic-ack-frequency-12
    /// §3, provisional codepoint of its §11.1).
    MIN_ACK_DELAY = 0xff04de1b,
}

impl TransportParameterId {
    /// The `n`th reserved id, `31 * n + 27` (RFC 9000 §18.1), or `None` if
    /// that is not below 2^62.
    pub const fn reserved(n: u64) -> Option<Self> {
        if n > (VarInt::MAX.into_inner() - 27) / 31 {
            return None;
        }
        Some(Self(31 * n + 27))
    }

    /// Whether this id has the reserved form `31 * N + 27` (RFC 9000 §18.1).
    pub const fn is_reserved(self) -> bool {
        self.0 % 31 == 27
    }

    /// Whether only a server may send this parameter (RFC 9000 §18.2).
    pub const fn is_server_only(self) -> bool {
        matches!(
            self,
            Self::ORIGINAL_DESTINATION_CONNECTION_ID
                | Self::STATELESS_RESET_TOKEN
                | Self::PREFERRED_ADDRESS
                | Self::RETRY_SOURCE_CONNECTION_ID
        )
    }

    /// A distinct bit for each id quiver understands, for duplicate
    /// detection without allocating; `None` for ids it ignores.
    pub(super) const fn known_bit(self) -> Option<u32> {
        match self.0 {
            0x00..=0x11 => Some(self.0 as u32),
            0x20 => Some(0x12),
            0x2ab2 => Some(0x13),
            0xff04de1b => Some(0x14),
            _ => None,
        }
    }
}

impl fmt::Debug for TransportParameterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for TransportParameterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None if self.is_reserved() => write!(f, "reserved transport parameter {:#x}", self.0),
            None => write!(f, "unknown transport parameter {:#x}", self.0),
        }
    }
}
