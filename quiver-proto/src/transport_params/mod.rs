//! Transport parameters (RFC 9000 §18).
//!
//! Each endpoint declares its transport parameters once, inside the TLS
//! `quic_transport_parameters` extension. The encoding is a flat sequence of
//! `(id (i), length (i), value)` tuples (RFC 9000 §18, Figures 20 and 21).
//!
//! [`TransportParameters`] holds every parameter of RFC 9000 §18.2 plus
//! `version_information` (RFC 9368 §3, required by RFC 9369 §4) and
//! `max_datagram_frame_size` (RFC 9221 §3), with the RFC defaults.
//! [`TransportParameters::decode`] enforces every rule whose violation is a
//! `TRANSPORT_PARAMETER_ERROR`; the checks that need connection state (that
//! the CIDs match those seen in Initial and Retry packets, RFC 9000 §7.3)
//! are left to the connection.
//!
//! ```
//! use quiver_proto::Side;
//! use quiver_proto::transport_params::TransportParameters;
//!
//! let params = TransportParameters {
//!     initial_max_data: 1 << 20,
//!     ..TransportParameters::default()
//! };
//! let mut wire = Vec::new();
//! params.encode(Side::Client, &mut wire);
//! assert_eq!(wire, [0x04, 0x04, 0x80, 0x10, 0x00, 0x00]);
//! assert_eq!(TransportParameters::decode(Side::Client, &wire).unwrap(), params);
//! ```

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use bytes::BufMut;

use crate::coding::{Reader, UnexpectedEnd, VarInt};
use crate::{ConnectionId, Side, TransportError};

mod id;
#[cfg(test)]
mod tests;

pub use id::TransportParameterId;

/// RFC 9000 §18.2: "Values below 1200 are invalid."
const MIN_MAX_UDP_PAYLOAD_SIZE: u64 = 1200;
/// RFC 9000 §18.2: "the maximum permitted UDP payload of 65527".
const DEFAULT_MAX_UDP_PAYLOAD_SIZE: u64 = 65527;
/// RFC 9000 §18.2: ack_delay_exponent "Values above 20 are invalid."
const MAX_ACK_DELAY_EXPONENT: u8 = 20;
/// RFC 9000 §18.2: max_ack_delay "Values of 2^14 or greater are invalid."
const MAX_ACK_DELAY_LIMIT_MS: u64 = 1 << 14;
/// RFC 9000 §4.6: a stream limit above 2^60 could not be expressed.
const MAX_STREAMS_LIMIT: u64 = 1 << 60;
/// Length of a stateless reset token (RFC 9000 §10.3).
const RESET_TOKEN_SIZE: usize = 16;

/// The `preferred_address` transport parameter (RFC 9000 §18.2, Figure 22):
/// where a server would like the client to migrate after the handshake
/// (§9.6), with the connection ID (sequence number 1) to use there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PreferredAddress {
    /// The IPv4 address, or `None`, sent as `0.0.0.0:0` (RFC 9000 §18.2
    /// lets a server offer only one address family this way).
    pub address_v4: Option<SocketAddrV4>,
    /// The IPv6 address, or `None`, sent as `[::]:0`. Flow info and scope
    /// id are not carried on the wire and decode as zero.
    pub address_v6: Option<SocketAddrV6>,
    /// The connection ID to use at the new address; never zero-length.
    pub connection_id: ConnectionId,
    /// The stateless reset token for `connection_id`.
    pub stateless_reset_token: [u8; RESET_TOKEN_SIZE],
}

impl PreferredAddress {
    fn encoded_len(&self) -> usize {
        4 + 2 + 16 + 2 + 1 + self.connection_id.len() + RESET_TOKEN_SIZE
    }

    fn encode<B: BufMut>(&self, buf: &mut B) {
        let v4 = self
            .address_v4
            .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        buf.put_slice(&v4.ip().octets());
        buf.put_u16(v4.port());
        let v6 = self
            .address_v6
            .unwrap_or(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0));
        buf.put_slice(&v6.ip().octets());
        buf.put_u16(v6.port());
        buf.put_u8(self.connection_id.len() as u8);
        buf.put_slice(&self.connection_id);
        buf.put_slice(&self.stateless_reset_token);
    }

    /// Parses the value of a `preferred_address` parameter, which must be
    /// consumed exactly.
    fn decode(value: &[u8]) -> Result<Self, TransportError> {
        // RFC 9000 §18.2, Figure 22: every field has a fixed size except the
        // CID, whose length byte says how long it is; anything else is
        // malformed.
        let malformed = |_: UnexpectedEnd| {
            TransportError::transport_parameter_error("malformed preferred_address")
        };
        let mut r = Reader::new(value);
        let ip4 = Ipv4Addr::from(r.array::<4>().map_err(malformed)?);
        let port4 = r.u16().map_err(malformed)?;
        let ip6 = Ipv6Addr::from(r.array::<16>().map_err(malformed)?);
        let port6 = r.u16().map_err(malformed)?;
        // RFC 9000 §17.2: connection IDs are at most 20 bytes in QUIC v1.
        let connection_id = ConnectionId::decode_len_prefixed(&mut r)
            .map_err(malformed)?
            .ok_or(TransportError::transport_parameter_error(
                "preferred_address connection ID longer than 20 bytes",
            ))?;
        let stateless_reset_token = r.array().map_err(malformed)?;
        if !r.is_empty() {
            return Err(TransportError::transport_parameter_error(
                "trailing bytes in preferred_address",
            ));
        }
        // RFC 9000 §18.2: servers "MAY choose to only send a preferred
        // address of one address family by sending an all-zero address and
        // port (0.0.0.0:0 or [::]:0) for the other family".
        let address_v4 =
            (!(ip4.is_unspecified() && port4 == 0)).then(|| SocketAddrV4::new(ip4, port4));
        let address_v6 =
            (!(ip6.is_unspecified() && port6 == 0)).then(|| SocketAddrV6::new(ip6, port6, 0, 0));
        Ok(Self {
            address_v4,
            address_v6,
            connection_id,
            stateless_reset_token,
        })
    }
}

/// The `version_information` transport parameter (RFC 9368 §3), which QUIC
/// v2 endpoints must send and validate (RFC 9369 §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionInformation {
    /// The version of the packets that carry these parameters. Never zero.
    pub chosen_version: u32,
    /// The versions the sender supports, in its order of preference. May be
    /// empty; never contains zero.
    pub available_versions: Vec<u32>,
}

impl VersionInformation {
    fn encoded_len(&self) -> usize {
        4 * (1 + self.available_versions.len())
    }

    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(self.chosen_version);
        for v in &self.available_versions {
            buf.put_u32(*v);
        }
    }

    fn decode(value: &[u8]) -> Result<Self, TransportError> {
        // RFC 9368 §4: a Version Information "too short or if its length is
        // not divisible by four" is a parsing failure, closed with
        // TRANSPORT_PARAMETER_ERROR in QUIC v1 (a Chosen Version needs 4).
        if value.is_empty() || value.len() % 4 != 0 {
            return Err(TransportError::transport_parameter_error(
                "version_information length not a non-zero multiple of 4",
            ));
        }
        let mut words = value
            .chunks_exact(4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        let chosen_version = words.next().unwrap_or_default();
        Ok(Self {
            chosen_version,
            available_versions: words.collect(),
        })
    }
}

/// A reserved transport parameter to send (RFC 9000 §18.1), so that peers
/// keep exercising the rule that unknown parameters are ignored (§7.4.2).
///
/// quiver-proto draws no randomness: the caller supplies the random number
/// that picks the id, and the (arbitrary, typically short and random) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grease<'a> {
    id: TransportParameterId,
    value: &'a [u8],
}

impl<'a> Grease<'a> {
    /// A reserved parameter `31 * N + 27`, with `N` derived from `random`
    /// (reduced so that the id stays below 2^62), carrying `value`.
    pub fn new(random: u64, value: &'a [u8]) -> Self {
        let max_n = (VarInt::MAX.into_inner() - 27) / 31;
        let n = random % (max_n + 1);
        Self {
            id: TransportParameterId(31 * n + 27),
            value,
        }
    }

    /// The reserved id that will be sent.
    pub fn id(&self) -> TransportParameterId {
        self.id
    }

    /// The value that will be sent.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }
}

/// The transport parameters one endpoint declares (RFC 9000 §7.4, §18.2).
///
/// `Default` gives the RFC defaults, i.e. the values in effect when a
/// parameter is absent. Integer parameters are varints on the wire, so they
/// must be below 2^62; [`validate`](Self::validate) checks this and every
/// other range rule. Durations are carried in whole milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportParameters {
    /// `original_destination_connection_id` (0x00): the Destination
    /// Connection ID of the client's first Initial (RFC 9000 §7.3). Server
    /// only.
    pub original_destination_connection_id: Option<ConnectionId>,
    /// `max_idle_timeout` (0x01); zero disables the idle timeout (§10.1).
    pub max_idle_timeout: Duration,
    /// `stateless_reset_token` (0x02) for the handshake connection ID
    /// (§10.3). Server only.
    pub stateless_reset_token: Option<[u8; RESET_TOKEN_SIZE]>,
    /// `max_udp_payload_size` (0x03): at least 1200; default 65527.
    pub max_udp_payload_size: u64,
    /// `initial_max_data` (0x04): connection-level flow control limit.
    pub initial_max_data: u64,
    /// `initial_max_stream_data_bidi_local` (0x05): limit for bidirectional
    /// streams opened by the sender of these parameters.
    pub initial_max_stream_data_bidi_local: u64,
    /// `initial_max_stream_data_bidi_remote` (0x06): limit for bidirectional
    /// streams opened by the receiver of these parameters.
    pub initial_max_stream_data_bidi_remote: u64,
    /// `initial_max_stream_data_uni` (0x07): limit for unidirectional streams
    /// opened by the receiver of these parameters.
    pub initial_max_stream_data_uni: u64,
    /// `initial_max_streams_bidi` (0x08): at most 2^60 (§4.6).
    pub initial_max_streams_bidi: u64,
    /// `initial_max_streams_uni` (0x09): at most 2^60 (§4.6).
    pub initial_max_streams_uni: u64,
    /// `ack_delay_exponent` (0x0a): at most 20; default 3.
    pub ack_delay_exponent: u8,
    /// `max_ack_delay` (0x0b): below 2^14 ms; default 25 ms.
    pub max_ack_delay: Duration,
    /// `disable_active_migration` (0x0c): the sender does not support
    /// active migration on its handshake address (§9).
    pub disable_active_migration: bool,
    /// `preferred_address` (0x0d): the server's preferred address (§9.6).
    /// Server only.
    pub preferred_address: Option<PreferredAddress>,
    /// `active_connection_id_limit` (0x0e): at least 2; default 2.
    pub active_connection_id_limit: u64,
    /// `initial_source_connection_id` (0x0f): the Source Connection ID of
    /// the sender's first Initial (§7.3).
    pub initial_source_connection_id: Option<ConnectionId>,
    /// `retry_source_connection_id` (0x10): the Source Connection ID of the
    /// server's Retry (§7.3). Server only.
    pub retry_source_connection_id: Option<ConnectionId>,
    /// `version_information` (0x11, RFC 9368 §3).
    pub version_information: Option<VersionInformation>,
    /// `max_datagram_frame_size` (0x20, RFC 9221 §3). `None` when absent,
    /// which like `Some(0)` means DATAGRAM frames are not supported.
    pub max_datagram_frame_size: Option<u64>,
    /// `grease_quic_bit` (0x2ab2, RFC 9287 §3): the sender accepts packets
    /// whose QUIC Bit (the fixed bit, 0x40) is 0.
    pub grease_quic_bit: bool,
    /// `min_ack_delay` (0xff04de1b, draft-ietf-quic-ack-frequency-12 §3):
    /// the least delay the sender can honour for ACKs, in whole
    /// microseconds on the wire. Its presence means the sender accepts
    /// ACK_FREQUENCY and IMMEDIATE_ACK frames. Never above
    /// `max_ack_delay`.
    pub min_ack_delay: Option<Duration>,
}

impl Default for TransportParameters {
    /// The RFC 9000 §18.2 defaults: what a peer that sends nothing declares.
    fn default() -> Self {
        Self {
            original_destination_connection_id: None,
            max_idle_timeout: Duration::ZERO,
            stateless_reset_token: None,
            max_udp_payload_size: DEFAULT_MAX_UDP_PAYLOAD_SIZE,
            initial_max_data: 0,
            initial_max_stream_data_bidi_local: 0,
            initial_max_stream_data_bidi_remote: 0,
            initial_max_stream_data_uni: 0,
            initial_max_streams_bidi: 0,
            initial_max_streams_uni: 0,
            ack_delay_exponent: 3,
            max_ack_delay: Duration::from_millis(25),
            disable_active_migration: false,
            preferred_address: None,
            active_connection_id_limit: 2,
            initial_source_connection_id: None,
            retry_source_connection_id: None,
            version_information: None,
            max_datagram_frame_size: None,
            grease_quic_bit: false,
            min_ack_delay: None,
        }
    }
}

fn tp_error(reason: &'static str) -> TransportError {
    TransportError::transport_parameter_error(reason)
}

/// A duration in whole milliseconds, saturated to the varint range.
fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .min(VarInt::MAX.into_inner())
}

/// A value as a varint, saturated: only reached for parameters that
/// [`TransportParameters::validate`] would reject.
fn saturating_varint(x: u64) -> VarInt {
    VarInt::from_u64(x).unwrap_or(VarInt::MAX)
}

fn put_header<B: BufMut>(buf: &mut B, id: TransportParameterId, len: usize) {
    saturating_varint(id.0).encode(buf);
    saturating_varint(len as u64).encode(buf);
}

fn put_varint_param<B: BufMut>(buf: &mut B, id: TransportParameterId, value: u64) {
    let value = saturating_varint(value);
    put_header(buf, id, value.size());
    value.encode(buf);
}

fn put_bytes_param<B: BufMut>(buf: &mut B, id: TransportParameterId, value: &[u8]) {
    put_header(buf, id, value.len());
    buf.put_slice(value);
}

/// Parses an integer parameter's value: one varint filling it exactly.
fn varint_value(value: &[u8]) -> Result<u64, TransportError> {
    // RFC 9000 §18.2: integer parameters "use a variable-length integer
    // encoding"; a value that is shorter or longer than its varint is
    // malformed (§7.4: an invalid value is a TRANSPORT_PARAMETER_ERROR).
    let mut r = Reader::new(value);
    let v = r
        .varint()
        .map_err(|_| tp_error("truncated integer transport parameter"))?;
    if !r.is_empty() {
        return Err(tp_error("integer transport parameter has trailing bytes"));
    }
    Ok(v.into_inner())
}

/// Parses a connection ID parameter's value.
fn cid_value(value: &[u8]) -> Result<ConnectionId, TransportError> {
    // RFC 9000 §17.2: QUIC v1 connection IDs are at most 20 bytes. A
    // zero-length value is a zero-length CID (§7.3).
    ConnectionId::new(value).ok_or(tp_error("connection ID longer than 20 bytes"))
}

impl TransportParameters {
    /// Appends the parameters as `side` sends them.
    ///
    /// Only values that differ from the defaults are written (an `Option`
    /// that is `Some` is always written). The server-only parameters
    /// (original_destination_connection_id, stateless_reset_token,
    /// preferred_address, retry_source_connection_id) are skipped when
    /// `side` is the client (RFC 9000 §18.2).
    ///
    /// The parameters should pass [`validate`](Self::validate); otherwise
    /// the peer will reject what is written (debug builds panic).
    pub fn encode<B: BufMut>(&self, side: Side, buf: &mut B) {
        self.encode_inner(side, None, buf);
    }

    /// Like [`encode`](Self::encode), preceded by one reserved parameter
    /// (RFC 9000 §18.1) built by the caller from its own randomness.
    pub fn encode_with_grease<B: BufMut>(&self, side: Side, grease: Grease<'_>, buf: &mut B) {
        self.encode_inner(side, Some(grease), buf);
    }

    fn encode_inner<B: BufMut>(&self, side: Side, grease: Option<Grease<'_>>, buf: &mut B) {
        debug_assert_eq!(
            self.validate(),
            Ok(()),
            "encoding invalid transport parameters"
        );
        type Id = TransportParameterId;
        let defaults = Self::default();

        if let Some(g) = grease {
            put_bytes_param(buf, g.id, g.value);
        }

        // RFC 9000 §18.2: "A client MUST NOT include any server-only
        // transport parameter".
        let server = side == Side::Server;
        if let (true, Some(cid)) = (server, &self.original_destination_connection_id) {
            put_bytes_param(buf, Id::ORIGINAL_DESTINATION_CONNECTION_ID, cid);
        }
        if self.max_idle_timeout != defaults.max_idle_timeout {
            put_varint_param(
                buf,
                Id::MAX_IDLE_TIMEOUT,
                duration_ms(self.max_idle_timeout),
            );
        }
        if let (true, Some(token)) = (server, &self.stateless_reset_token) {
            put_bytes_param(buf, Id::STATELESS_RESET_TOKEN, token);
        }
        for (id, value, default) in [
            (
                Id::MAX_UDP_PAYLOAD_SIZE,
                self.max_udp_payload_size,
                defaults.max_udp_payload_size,
            ),
            (Id::INITIAL_MAX_DATA, self.initial_max_data, 0),
            (
                Id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL,
                self.initial_max_stream_data_bidi_local,
                0,
            ),
            (
                Id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE,
                self.initial_max_stream_data_bidi_remote,
                0,
            ),
            (
                Id::INITIAL_MAX_STREAM_DATA_UNI,
                self.initial_max_stream_data_uni,
                0,
            ),
            (
                Id::INITIAL_MAX_STREAMS_BIDI,
                self.initial_max_streams_bidi,
                0,
            ),
            (Id::INITIAL_MAX_STREAMS_UNI, self.initial_max_streams_uni, 0),
            (
                Id::ACK_DELAY_EXPONENT,
                self.ack_delay_exponent.into(),
                defaults.ack_delay_exponent.into(),
            ),
            (
                Id::MAX_ACK_DELAY,
                duration_ms(self.max_ack_delay),
                duration_ms(defaults.max_ack_delay),
            ),
        ] {
            if value != default {
                put_varint_param(buf, id, value);
            }
        }
        if self.disable_active_migration {
            // RFC 9000 §18.2: "This parameter is a zero-length value."
            put_header(buf, Id::DISABLE_ACTIVE_MIGRATION, 0);
        }
        if let (true, Some(pa)) = (server, &self.preferred_address) {
            put_header(buf, Id::PREFERRED_ADDRESS, pa.encoded_len());
            pa.encode(buf);
        }
        if self.active_connection_id_limit != defaults.active_connection_id_limit {
            put_varint_param(
                buf,
                Id::ACTIVE_CONNECTION_ID_LIMIT,
                self.active_connection_id_limit,
            );
        }
        if let Some(cid) = &self.initial_source_connection_id {
            put_bytes_param(buf, Id::INITIAL_SOURCE_CONNECTION_ID, cid);
        }
        if let (true, Some(cid)) = (server, &self.retry_source_connection_id) {
            put_bytes_param(buf, Id::RETRY_SOURCE_CONNECTION_ID, cid);
        }
        if let Some(vi) = &self.version_information {
            put_header(buf, Id::VERSION_INFORMATION, vi.encoded_len());
            vi.encode(buf);
        }
        if let Some(size) = self.max_datagram_frame_size {
            put_varint_param(buf, Id::MAX_DATAGRAM_FRAME_SIZE, size);
        }
        if self.grease_quic_bit {
            // RFC 9287 §3: "The transport parameter is sent with an empty
            // value".
            put_header(buf, Id::GREASE_QUIC_BIT, 0);
        }
        if let Some(d) = self.min_ack_delay {
            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            put_varint_param(buf, Id::MIN_ACK_DELAY, us.min(VarInt::MAX.into_inner()));
        }
    }

    /// Parses and validates the parameters sent by `side_of_sender`.
    ///
    /// Unknown and reserved ids are ignored (RFC 9000 §7.4.2, §18.1). Every
    /// malformed or invalid value, repeated known id, or server-only
    /// parameter sent by a client is a `TRANSPORT_PARAMETER_ERROR`. Whether
    /// the CIDs match the packets seen, and whether the required ones are
    /// present (§7.3), is for the caller to check.
    pub fn decode(side_of_sender: Side, bytes: &[u8]) -> Result<Self, TransportError> {
        let mut params = Self::default();
        // One bit per known id: no allocation however long the input.
        let mut seen = 0u32;
        let mut r = Reader::new(bytes);
        while !r.is_empty() {
            // RFC 9000 §18: each parameter is id (i), length (i), value.
            let id = r
                .varint()
                .map_err(|_| tp_error("truncated transport parameter id"))?;
            let id = TransportParameterId(id.into_inner());
            let value = r
                .varint_prefixed()
                .map_err(|_| tp_error("truncated transport parameter"))?;
            let Some(bit) = id.known_bit() else {
                // RFC 9000 §7.4.2: "An endpoint MUST ignore transport
                // parameters that it does not support", which includes the
                // reserved ids 31 * N + 27 of §18.1.
                continue;
            };
            // RFC 9000 §7.4: "An endpoint SHOULD treat receipt of duplicate
            // transport parameters as a connection error of type
            // TRANSPORT_PARAMETER_ERROR."
            if seen & (1 << bit) != 0 {
                return Err(tp_error("duplicate transport parameter"));
            }
            seen |= 1 << bit;
            // RFC 9000 §18.2: "A client MUST NOT include any server-only
            // transport parameter [...]. A server MUST treat receipt of any
            // of these transport parameters as a connection error of type
            // TRANSPORT_PARAMETER_ERROR."
            if side_of_sender == Side::Client && id.is_server_only() {
                return Err(tp_error("server-only transport parameter sent by client"));
            }
            params.decode_one(id, value)?;
        }
        // RFC 9000 §18.2: "A server that chooses a zero-length connection ID
        // MUST NOT provide a preferred address."
        let zero_len_scid = params
            .initial_source_connection_id
            .is_some_and(|cid| cid.is_empty());
        if zero_len_scid && params.preferred_address.is_some() {
            return Err(tp_error("preferred_address with zero-length connection ID"));
        }
        // RFC 9368 §4: "If a server receives Version Information where the
        // Chosen Version is not included in Available Versions, it MUST
        // treat it as a parsing failure" (§4: TRANSPORT_PARAMETER_ERROR in
        // QUIC v1). §3: the client's list includes its Chosen Version.
        if let (Side::Client, Some(vi)) = (side_of_sender, &params.version_information) {
            if !vi.available_versions.contains(&vi.chosen_version) {
                return Err(tp_error(
                    "client version_information omits its Chosen Version",
                ));
            }
        }
        params.validate()?;
        Ok(params)
    }

    /// Stores the value of the known parameter `id`. Range checks that are
    /// not about the encoding are left to [`validate`](Self::validate).
    fn decode_one(&mut self, id: TransportParameterId, value: &[u8]) -> Result<(), TransportError> {
        type Id = TransportParameterId;
        match id {
            Id::ORIGINAL_DESTINATION_CONNECTION_ID => {
                self.original_destination_connection_id = Some(cid_value(value)?);
            }
            Id::MAX_IDLE_TIMEOUT => {
                self.max_idle_timeout = Duration::from_millis(varint_value(value)?);
            }
            Id::STATELESS_RESET_TOKEN => {
                // RFC 9000 §18.2: "This parameter is a sequence of 16 bytes."
                let token = <[u8; RESET_TOKEN_SIZE]>::try_from(value)
                    .map_err(|_| tp_error("stateless_reset_token is not 16 bytes"))?;
                self.stateless_reset_token = Some(token);
            }
            Id::MAX_UDP_PAYLOAD_SIZE => self.max_udp_payload_size = varint_value(value)?,
            Id::INITIAL_MAX_DATA => self.initial_max_data = varint_value(value)?,
            Id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL => {
                self.initial_max_stream_data_bidi_local = varint_value(value)?;
            }
            Id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE => {
                self.initial_max_stream_data_bidi_remote = varint_value(value)?;
            }
            Id::INITIAL_MAX_STREAM_DATA_UNI => {
                self.initial_max_stream_data_uni = varint_value(value)?;
            }
            Id::INITIAL_MAX_STREAMS_BIDI => self.initial_max_streams_bidi = varint_value(value)?,
            Id::INITIAL_MAX_STREAMS_UNI => self.initial_max_streams_uni = varint_value(value)?,
            Id::ACK_DELAY_EXPONENT => {
                // Saturated: anything above 20 is rejected by `validate`.
                self.ack_delay_exponent = u8::try_from(varint_value(value)?).unwrap_or(u8::MAX);
            }
            Id::MAX_ACK_DELAY => {
                self.max_ack_delay = Duration::from_millis(varint_value(value)?);
            }
            Id::DISABLE_ACTIVE_MIGRATION => {
                // RFC 9000 §18.2: "This parameter is a zero-length value."
                if !value.is_empty() {
                    return Err(tp_error("disable_active_migration is not empty"));
                }
                self.disable_active_migration = true;
            }
            Id::PREFERRED_ADDRESS => {
                self.preferred_address = Some(PreferredAddress::decode(value)?);
            }
            Id::ACTIVE_CONNECTION_ID_LIMIT => {
                self.active_connection_id_limit = varint_value(value)?;
            }
            Id::INITIAL_SOURCE_CONNECTION_ID => {
                self.initial_source_connection_id = Some(cid_value(value)?);
            }
            Id::RETRY_SOURCE_CONNECTION_ID => {
                self.retry_source_connection_id = Some(cid_value(value)?);
            }
            Id::VERSION_INFORMATION => {
                self.version_information = Some(VersionInformation::decode(value)?);
            }
            Id::MAX_DATAGRAM_FRAME_SIZE => {
                self.max_datagram_frame_size = Some(varint_value(value)?);
            }
            Id::GREASE_QUIC_BIT => {
                // RFC 9287 §3: "an endpoint that understands this transport
                // parameter MUST treat receipt of a non-empty value of the
                // transport parameter as a connection error of type
                // TRANSPORT_PARAMETER_ERROR."
                if !value.is_empty() {
                    return Err(tp_error("grease_quic_bit is not empty"));
                }
                self.grease_quic_bit = true;
            }
            Id::MIN_ACK_DELAY => {
                // draft-ietf-quic-ack-frequency-12 §3: in microseconds.
                self.min_ack_delay = Some(Duration::from_micros(varint_value(value)?));
            }
            // `known_bit` admits exactly the ids above.
            _ => {}
        }
        Ok(())
    }

    /// Checks every range rule of RFC 9000 §18.2 (and RFC 9368 §3), and that
    /// every integer fits a varint. [`decode`](Self::decode) applies this
    /// to what it receives; call it on locally configured parameters before
    /// [`encode`](Self::encode).
    pub fn validate(&self) -> Result<(), TransportError> {
        let max = VarInt::MAX.into_inner();
        // RFC 9000 §18.2: integer parameters are varints (§16), < 2^62.
        let integers = [
            self.initial_max_data,
            self.initial_max_stream_data_bidi_local,
            self.initial_max_stream_data_bidi_remote,
            self.initial_max_stream_data_uni,
            self.max_udp_payload_size,
            self.active_connection_id_limit,
            self.max_datagram_frame_size.unwrap_or(0),
        ];
        if integers.iter().any(|&v| v > max) || self.max_idle_timeout.as_millis() > u128::from(max)
        {
            return Err(tp_error("transport parameter exceeds 2^62-1"));
        }
        // RFC 9000 §18.2: max_udp_payload_size "Values below 1200 are
        // invalid."
        if self.max_udp_payload_size < MIN_MAX_UDP_PAYLOAD_SIZE {
            return Err(tp_error("max_udp_payload_size below 1200"));
        }
        // RFC 9000 §4.6: a max_streams transport parameter "received with a
        // value greater than 2^60" is a TRANSPORT_PARAMETER_ERROR.
        if self.initial_max_streams_bidi > MAX_STREAMS_LIMIT
            || self.initial_max_streams_uni > MAX_STREAMS_LIMIT
        {
            return Err(tp_error("initial_max_streams above 2^60"));
        }
        // RFC 9000 §18.2: ack_delay_exponent "Values above 20 are invalid."
        if self.ack_delay_exponent > MAX_ACK_DELAY_EXPONENT {
            return Err(tp_error("ack_delay_exponent above 20"));
        }
        // RFC 9000 §18.2: max_ack_delay "Values of 2^14 or greater are
        // invalid."
        if self.max_ack_delay.as_millis() >= u128::from(MAX_ACK_DELAY_LIMIT_MS) {
            return Err(tp_error("max_ack_delay of 2^14 ms or more"));
        }
        // draft-ietf-quic-ack-frequency-12 §3: "Endpoints that support this
        // extension MUST treat receipt of a min_ack_delay that is greater
        // than the max_ack_delay as a connection error of type
        // TRANSPORT_PARAMETER_ERROR."
        if self
            .min_ack_delay
            .is_some_and(|min| min > self.max_ack_delay)
        {
            return Err(tp_error("min_ack_delay above max_ack_delay"));
        }
        // RFC 9000 §18.2: active_connection_id_limit "An endpoint that
        // receives a value less than 2 MUST close the connection with an
        // error of type TRANSPORT_PARAMETER_ERROR."
        if self.active_connection_id_limit < 2 {
            return Err(tp_error("active_connection_id_limit below 2"));
        }
        // RFC 9000 §18.2: "a server MUST NOT include a zero-length
        // connection ID in this transport parameter. A client MUST treat a
        // violation of these requirements as a connection error of type
        // TRANSPORT_PARAMETER_ERROR."
        if self
            .preferred_address
            .is_some_and(|pa| pa.connection_id.is_empty())
        {
            return Err(tp_error("preferred_address with zero-length connection ID"));
        }
        // RFC 9368 §4: "If an endpoint receives a Chosen Version equal to
        // zero, or any Available Version equal to zero, it MUST treat it as a
        // parsing failure" (TRANSPORT_PARAMETER_ERROR).
        if let Some(vi) = &self.version_information {
            if vi.chosen_version == 0 || vi.available_versions.contains(&0) {
                return Err(tp_error("version_information contains version 0"));
            }
        }
        Ok(())
    }
}
