//! Connection events for structured logs (qlog).
//!
//! The connection reports what happens to it as plain data
//! ([`QlogEvent`], borrowing packet payloads and parameters rather than
//! copying them) to a [`QlogSink`], one per connection, made by the
//! [`QlogFactory`] in [`TransportConfig::qlog`](crate::TransportConfig::qlog).
//! Nothing is formatted here: the sink decides (the `quiver` runtime writes
//! qlog JSON-SEQ files). With no factory configured, each place that could
//! report costs one `Option` check and nothing else.
//!
//! The events follow the QUIC event definitions of qlog as qvis loads them
//! (`qlog_version` 0.3: the names and fields of
//! draft-ietf-quic-qlog-quic-events-03, with the `transport:`,
//! `recovery:`, `security:` and `connectivity:` categories); see
//! `ARCHITECTURE.md`. The newer draft in /work/shared/rfc puts every event
//! in one `quic:` namespace and renames some (`datagrams_sent` became
//! `udp_datagrams_sent`, `metrics_updated` `recovery_metrics_updated`).

use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::connection::ConnectionError;
use crate::packet::PacketType;
use crate::transport_params::TransportParameters;
use crate::{ConnectionId, Side, Version};

mod stream;

pub use stream::{StreamSide, StreamState, StreamStateUpdate};

/// Receives one connection's events, in order.
pub trait QlogSink: Send {
    /// Something happened at `now`.
    fn event(&mut self, now: Instant, event: &QlogEvent<'_>);
}

/// Makes the sink of each new connection (or none, to leave it unlogged).
pub trait QlogFactory: Send + Sync + Debug {
    /// A connection starts: its role, the client's original Destination
    /// Connection ID (the name qlog files go by) and its start time.
    fn new_sink(&self, info: &QlogConnectionInfo) -> Option<Box<dyn QlogSink>>;
}

/// What a [`QlogFactory`] learns about a new connection.
#[derive(Debug, Clone, Copy)]
pub struct QlogConnectionInfo {
    /// Our role.
    pub side: Side,
    /// The client's first Destination Connection ID (RFC 9000 §7.3).
    pub orig_dst_cid: ConnectionId,
    /// When the connection was created; event times are relative to it.
    pub start: Instant,
    /// The version the connection starts with.
    pub version: Version,
}

/// Which endpoint something belongs to or came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Us.
    Local,
    /// The peer.
    Remote,
}

/// An event of a connection's life.
#[derive(Debug, Clone, Copy)]
pub enum QlogEvent<'a> {
    /// Transport parameters were set: ours when the connection starts, the
    /// peer's once authenticated (transport:parameters_set).
    ParametersSet {
        /// Whose.
        owner: Owner,
        /// The parameters.
        params: &'a TransportParameters,
    },
    /// Versions offered and chosen (transport:version_information).
    VersionInformation {
        /// The versions we support.
        local_versions: &'a [Version],
        /// The version in use.
        chosen: Version,
    },
    /// A packet was sealed for sending (transport:packet_sent).
    PacketSent(PacketInfo<'a>),
    /// A packet was decrypted and accepted (transport:packet_received).
    PacketReceived(PacketInfo<'a>),
    /// One UDP datagram reached the connection (transport:datagrams_received,
    /// one per call of the connection's receive).
    DatagramsReceived {
        /// Its UDP payload size in bytes.
        length: u16,
    },
    /// The connection produced UDP datagrams to send in one batch
    /// (transport:datagrams_sent): `count` datagrams of `segment_size`
    /// bytes but the last, `length` bytes in all (a GSO batch when
    /// `count` > 1).
    DatagramsSent {
        /// How many datagrams.
        count: u16,
        /// The size of each but the last.
        segment_size: u16,
        /// The bytes of all of them.
        length: u32,
    },
    /// A stream changed state (transport:stream_state_updated).
    StreamStateUpdated(StreamStateUpdate),
    /// A packet was declared lost (recovery:packet_lost).
    PacketLost {
        /// Its type.
        packet_type: PacketType,
        /// Its packet number.
        packet_number: u64,
        /// Its size in bytes.
        length: u16,
        /// What declared it lost.
        trigger: LossTrigger,
    },
    /// A packet that reached the connection was dropped unread
    /// (transport:packet_dropped).
    PacketDropped {
        /// Its type, when the header could be parsed.
        packet_type: Option<PacketType>,
        /// Its size in bytes (the rest of the datagram when it could not
        /// be parsed).
        length: u16,
        /// Why.
        trigger: DropTrigger,
    },
    /// Recovery state changed since the last report
    /// (recovery:metrics_updated).
    MetricsUpdated(&'a RecoveryMetrics),
    /// The congestion controller changed phase
    /// (recovery:congestion_state_updated).
    CongestionStateUpdated {
        /// The phase before.
        old: CongestionState,
        /// The phase now.
        new: CongestionState,
        /// Why, when known.
        trigger: Option<CongestionTrigger>,
    },
    /// Keys were installed or updated (security:key_updated).
    KeyUpdated {
        /// Which keys.
        key_type: KeyType,
        /// The 1-RTT key generation (0 for the handshake's keys).
        generation: u64,
        /// Why.
        trigger: KeyTrigger,
    },
    /// Keys were discarded (security:key_discarded).
    KeyDiscarded {
        /// Which keys.
        key_type: KeyType,
    },
    /// A path changed state (connectivity:path_updated; qvis shows it as a
    /// generic event).
    PathUpdated {
        /// The peer address of the path.
        remote: SocketAddr,
        /// What happened to it.
        state: PathState,
    },
    /// The connection changed state (connectivity:connection_state_updated).
    ConnectionStateUpdated {
        /// The state before (`None` for the first report).
        old: Option<ConnectionState>,
        /// The state now.
        new: ConnectionState,
    },
    /// The connection ended (connectivity:connection_closed).
    ConnectionClosed {
        /// Who ended it.
        owner: Owner,
        /// Why, as the application is told.
        error: &'a ConnectionError,
        /// The CONNECTION_CLOSE code, when a frame carried one.
        code: Option<CloseCode>,
        /// The CONNECTION_CLOSE reason phrase (may be empty).
        reason: &'a [u8],
    },
}

/// The error code of a CONNECTION_CLOSE frame (RFC 9000 §19.19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// Type 0x1c: a transport error code (§20.1).
    Transport(u64),
    /// Type 0x1d: the application's code.
    Application(u64),
}

/// A packet sent or received.
#[derive(Debug, Clone, Copy)]
pub struct PacketInfo<'a> {
    /// Its type.
    pub packet_type: PacketType,
    /// Its packet number.
    pub packet_number: u64,
    /// Its size on the wire (header, payload and tag), bytes.
    pub length: u16,
    /// Its frames, decrypted (iterate with [`crate::frame::Iter`]).
    pub payload: &'a [u8],
}

/// Why a packet was declared lost (RFC 9002 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossTrigger {
    /// Enough later packets were acknowledged (§6.1.1).
    ReorderingThreshold,
    /// It was sent long enough before an acknowledged one (§6.1.2).
    TimeThreshold,
}

/// Why a packet was dropped (the triggers of transport:packet_dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropTrigger {
    /// No keys to read it with: not yet installed, or already discarded.
    KeyUnavailable,
    /// It failed authentication.
    DecryptionFailure,
    /// Its header could not be parsed.
    HeaderParseError,
    /// Another QUIC version than the connection's.
    UnsupportedVersion,
    /// A Source Connection ID other than the peer's first (RFC 9000 §7.2).
    UnexpectedSourceConnectionId,
    /// A packet this side must not accept: a server's Initial with a
    /// token, a Retry that fails its integrity check.
    UnexpectedPacket,
    /// Its packet number was received before (RFC 9000 §12.3).
    Duplicate,
    /// From a new address while no more paths can be tracked, or beyond
    /// that path's limits (RFC 9000 §9.3).
    DosPrevention,
}

/// The recovery state reported in metrics updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecoveryMetrics {
    /// Smallest RTT seen (RFC 9002 §5.2).
    pub min_rtt: Duration,
    /// Smoothed RTT (§5.3).
    pub smoothed_rtt: Duration,
    /// Latest RTT sample.
    pub latest_rtt: Duration,
    /// RTT variation (§5.3).
    pub rtt_variance: Duration,
    /// Congestion window, bytes.
    pub congestion_window: u64,
    /// Bytes in flight (§2).
    pub bytes_in_flight: u64,
    /// Pacing rate, bits per second, when pacing applies.
    pub pacing_rate: Option<u64>,
    /// Consecutive probe timeouts (§6.2).
    pub pto_count: u32,
}

/// A congestion controller's phase (qlog's CongestionStateUpdated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CongestionState {
    /// Slow start (RFC 9002 §7.3.1).
    SlowStart,
    /// Congestion avoidance (§7.3.3).
    CongestionAvoidance,
    /// A recovery period (§7.3.2).
    Recovery,
}

/// What moved the controller into recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CongestionTrigger {
    /// Packets were declared lost.
    Loss,
    /// The peer reported ECN-CE marks (RFC 9002 §7.1).
    Ecn,
    /// The losses establish persistent congestion (§7.6).
    PersistentCongestion,
}

/// Which keys (qlog's KeyType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// Handshake keys (both directions).
    Handshake,
    /// Initial keys.
    Initial,
    /// 1-RTT keys.
    OneRtt,
}

/// Why keys changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTrigger {
    /// The TLS handshake produced them.
    Tls,
    /// The peer started a key update (RFC 9001 §6.2).
    RemoteUpdate,
    /// We started a key update (RFC 9001 §6.1).
    LocalUpdate,
}

/// What happened to a path (RFC 9000 §8.2, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    /// We started validating it.
    ProbingStarted,
    /// Validation succeeded.
    Validated,
    /// Validation failed or gave up.
    Failed,
    /// It became the active path.
    Migrated,
}

/// A connection's state (qlog's ConnectionState).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// The handshake is under way.
    HandshakeStarted,
    /// The handshake completed (RFC 9001 §4.1.1).
    HandshakeComplete,
    /// The handshake is confirmed (RFC 9001 §4.1.2).
    HandshakeConfirmed,
    /// We sent CONNECTION_CLOSE (RFC 9000 §10.2.1).
    Closing,
    /// The peer closed (RFC 9000 §10.2.2).
    Draining,
    /// Nothing is left.
    Closed,
}

impl ConnectionError {
    /// Whether the peer (rather than we) ended the connection, for logs.
    pub fn qlog_owner(&self) -> Owner {
        match self {
            ConnectionError::ApplicationClosed { .. }
            | ConnectionError::ConnectionClosed { .. }
            | ConnectionError::Reset
            | ConnectionError::VersionMismatch
            | ConnectionError::Refused
            // The network (ICMP) refused on the peer's behalf.
            | ConnectionError::Unreachable(_) => Owner::Remote,
            ConnectionError::TransportError(_)
            | ConnectionError::ZeroRttRejected
            | ConnectionError::LocallyClosed
            | ConnectionError::TimedOut => Owner::Local,
        }
    }
}
