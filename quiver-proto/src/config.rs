//! Configuration: transport settings shared by connections, and the
//! endpoint's own settings.

use std::sync::Arc;
use std::time::Duration;

use crate::congestion::{ControllerFactory, CubicConfig};
use crate::transport_params::TransportParameters;
use crate::{ConnectionId, VarInt, Version};

/// Transport settings of a connection (RFC 9000 §18 and local policy).
///
/// ```
/// use std::time::Duration;
/// let mut config = quiver_proto::TransportConfig::default();
/// config.max_idle_timeout = Some(Duration::from_secs(10));
/// config.keep_alive_interval = Some(Duration::from_secs(3));
/// ```
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Idle timeout we advertise (RFC 9000 §10.1); `None` disables ours.
    pub max_idle_timeout: Option<Duration>,
    /// Send a PING when nothing else was sent for this long, keeping the
    /// connection (and NAT bindings) alive.
    pub keep_alive_interval: Option<Duration>,
    /// RTT assumed before the first sample (RFC 9002 §6.2.2: 333 ms).
    pub initial_rtt: Duration,
    /// How long we may delay ACKs (advertised as max_ack_delay).
    pub max_ack_delay: Duration,
    /// Receive window of each stream, in bytes, to start with.
    pub stream_receive_window: u64,
    /// Receive window of the whole connection, to start with.
    pub receive_window: u64,
    /// Auto-tuning may grow a stream's window up to this.
    pub max_stream_receive_window: u64,
    /// Auto-tuning may grow the connection's window up to this.
    pub max_receive_window: u64,
    /// Bytes buffered per stream for sending before writes block.
    pub send_buffer: u64,
    /// Peer-initiated bidirectional streams open at once.
    pub max_concurrent_bidi_streams: u64,
    /// Peer-initiated unidirectional streams open at once.
    pub max_concurrent_uni_streams: u64,
    /// Largest DATAGRAM frame we accept (RFC 9221 §3); `None` disables
    /// datagrams.
    pub max_datagram_frame_size: Option<u64>,
    /// Received datagrams buffered before the oldest are dropped.
    pub datagram_receive_buffer: usize,
    /// Connection IDs from the peer we keep (active_connection_id_limit).
    pub active_connection_id_limit: u64,
    /// Largest UDP payload we send before path MTU discovery: 1200 is
    /// the minimum every QUIC path carries (RFC 9000 §14).
    pub max_udp_payload_size: u16,
    /// Largest datagram size path MTU discovery probes for (RFC 9000
    /// §14.3); `None` keeps `max_udp_payload_size` for the whole
    /// connection. 1452 fits a 1500-byte Ethernet MTU under IPv6.
    pub mtu_discovery_upper_bound: Option<u16>,
    /// How long a completed path MTU search holds before probing upwards
    /// again (RFC 8899 §5.1.1 PMTU_RAISE_TIMER: 600 s by default).
    pub mtu_raise_interval: Duration,
    /// Congestion controller: [`CubicConfig`] (CUBIC with HyStart++) by
    /// default; [`NewRenoConfig`](crate::congestion::NewRenoConfig),
    /// [`BbrConfig`](crate::congestion::BbrConfig) (BBRv3), or any
    /// [`ControllerFactory`] of the application's.
    pub congestion: Arc<dyn ControllerFactory>,
    /// A client moves to the server's preferred address once the
    /// handshake is confirmed and the new path is validated (RFC 9000
    /// §9.6.2). On by default.
    pub migrate_to_preferred_address: bool,
    /// Send the disable_active_migration transport parameter (RFC 9000
    /// §18.2): the peer must not move to a new address of its own while
    /// talking to the address it used during the handshake (§9). A
    /// packet from a new peer address anyway (a NAT rebinding looks the
    /// same) is validated and followed, the second choice §9 gives ("MUST
    /// either drop the incoming packets on that path ... or proceed with
    /// path validation and allow the peer to migrate"). Moving to a
    /// server's preferred address stays allowed. Off by default.
    pub disable_active_migration: bool,
    /// Mark packets ECT(0) and react to congestion the path reports with
    /// ECN-CE (RFC 9000 §13.4, RFC 9002 §7.1), on paths that pass ECN
    /// validation. Received codepoints are reported either way. On by
    /// default.
    pub ecn: bool,
    /// Packets sealed under one 1-RTT key before we update it (RFC 9001
    /// §6.6); `None` is 7/8 of the AEAD's confidentiality limit (2^23
    /// packets for AES-GCM). Lower it to exercise key updates.
    pub key_update_interval: Option<u64>,
    /// Received packets failing authentication before the connection
    /// closes with AEAD_LIMIT_REACHED (RFC 9001 §6.6); `None` is the
    /// AEAD's integrity limit.
    pub aead_integrity_limit: Option<u64>,
    /// Advertise grease_quic_bit (RFC 9287 §3): accept packets whose QUIC
    /// bit is 0. Packets to a peer that advertised it get the bit cleared
    /// at random once its parameters are known (§3.1). On by default.
    pub grease_quic_bit: bool,
    /// The least ACK delay we can honour, advertised as `min_ack_delay`
    /// (draft-ietf-quic-ack-frequency-12 §3) so the peer may send
    /// ACK_FREQUENCY and IMMEDIATE_ACK frames; `None` does not advertise the
    /// extension. 1 ms by default: timers in the tokio runtime fire at
    /// millisecond granularity (and RFC 9002 §6.1.2's kGranularity is
    /// 1 ms), so shorter delays could not be honoured. Must not exceed
    /// `max_ack_delay` (it is clamped to it).
    pub min_ack_delay: Option<Duration>,
    /// Ask a peer that advertised `min_ack_delay` for fewer ACKs once the
    /// congestion window is large (ACK_FREQUENCY, draft §8), and put
    /// IMMEDIATE_ACK in PTO probes (draft §7). On by default; without it
    /// we still honour the peer's requests.
    pub ack_frequency: bool,
    /// Skip a 1-RTT packet number when an ACK arrives while a small
    /// congestion window was full and the peer does not take
    /// ACK_FREQUENCY: the next packet follows a gap, which the peer
    /// acknowledges at once (RFC 9000 §13.2.1, RFC 9002 §6.2.4), instead
    /// of holding its ACK for more packets or its max_ack_delay. On by
    /// default; an ACK of a skipped number closes the connection with
    /// PROTOCOL_VIOLATION (RFC 9000 §21.4).
    pub elicit_acks: bool,
    /// Makes each connection's qlog event sink ([`crate::qlog`]); `None`
    /// (the default) logs nothing and costs nothing.
    pub qlog: Option<Arc<dyn crate::qlog::QlogFactory>>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            max_idle_timeout: Some(Duration::from_secs(30)),
            keep_alive_interval: None,
            initial_rtt: crate::recovery::INITIAL_RTT,
            max_ack_delay: Duration::from_millis(25),
            stream_receive_window: 1 << 20,
            receive_window: 4 << 20,
            max_stream_receive_window: 16 << 20,
            max_receive_window: 64 << 20,
            send_buffer: 4 << 20,
            max_concurrent_bidi_streams: 100,
            max_concurrent_uni_streams: 100,
            max_datagram_frame_size: Some(65_535),
            datagram_receive_buffer: 1 << 20,
            active_connection_id_limit: 4,
            max_udp_payload_size: 1200,
            mtu_discovery_upper_bound: Some(1452),
            mtu_raise_interval: Duration::from_secs(600),
            congestion: Arc::new(CubicConfig::default()),
            migrate_to_preferred_address: true,
            disable_active_migration: false,
            ecn: true,
            key_update_interval: None,
            aead_integrity_limit: None,
            grease_quic_bit: true,
            min_ack_delay: Some(Duration::from_millis(1)),
            ack_frequency: true,
            elicit_acks: true,
            qlog: None,
        }
    }
}

impl TransportConfig {
    /// The transport parameters these settings advertise.
    pub(crate) fn transport_parameters(
        &self,
        initial_src_cid: ConnectionId,
    ) -> TransportParameters {
        TransportParameters {
            max_idle_timeout: self.max_idle_timeout.unwrap_or(Duration::ZERO),
            initial_max_data: self.receive_window,
            initial_max_stream_data_bidi_local: self.stream_receive_window,
            initial_max_stream_data_bidi_remote: self.stream_receive_window,
            initial_max_stream_data_uni: self.stream_receive_window,
            initial_max_streams_bidi: self.max_concurrent_bidi_streams,
            initial_max_streams_uni: self.max_concurrent_uni_streams,
            max_ack_delay: self.max_ack_delay,
            active_connection_id_limit: self.active_connection_id_limit,
            max_datagram_frame_size: self.max_datagram_frame_size,
            initial_source_connection_id: Some(initial_src_cid),
            grease_quic_bit: self.grease_quic_bit,
            disable_active_migration: self.disable_active_migration,
            // draft-ietf-quic-ack-frequency-12 §3: "An endpoint's
            // min_ack_delay MUST NOT be greater than its max_ack_delay."
            // max_ack_delay goes out in whole milliseconds.
            min_ack_delay: self.min_ack_delay.map(|d| {
                d.min(Duration::from_millis(
                    u64::try_from(self.max_ack_delay.as_millis()).unwrap_or(u64::MAX),
                ))
            }),
            ..TransportParameters::default()
        }
    }
}

/// Settings of an endpoint, shared by all its connections.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Length of the connection IDs we issue (RFC 9000 §5.1); 8 by default.
    pub local_cid_len: usize,
    /// Key for stateless reset tokens (RFC 9000 §10.3.2), and for
    /// address-validation tokens. Keep it secret and stable across restarts
    /// when tokens must survive them.
    pub reset_key: [u8; 32],
    /// Versions we accept as a server and offer in Version Negotiation and
    /// version_information, in our order of preference: a server switches
    /// a client to the first one the client offers that its first flight
    /// converts to (RFC 9368 §2.3). v1 first by default.
    pub supported_versions: Vec<Version>,
    /// Largest UDP payload we accept (max_udp_payload_size).
    pub max_udp_payload_size: VarInt,
    /// A server's preferred IPv4 address (RFC 9000 §9.6), advertised to
    /// every client in the preferred_address transport parameter. The
    /// endpoint must receive on it too.
    pub preferred_address_v4: Option<std::net::SocketAddrV4>,
    /// A server's preferred IPv6 address (RFC 9000 §9.6).
    pub preferred_address_v6: Option<std::net::SocketAddrV6>,
    /// Secret for address-validation tokens (Retry and NEW_TOKEN, RFC 9000
    /// §8.1); `None` derives them from `reset_key`. Servers sharing it
    /// (and a wall clock, [`crate::Endpoint::set_wall_clock`]) accept each
    /// other's tokens.
    pub token_key: Option<[u8; 32]>,
}

impl EndpointConfig {
    /// A configuration whose secret key is `reset_key` (take it from a
    /// cryptographically secure source).
    pub fn new(reset_key: [u8; 32]) -> Self {
        Self {
            local_cid_len: 8,
            reset_key,
            supported_versions: Version::SUPPORTED.to_vec(),
            max_udp_payload_size: VarInt::from_u32(65_527),
            preferred_address_v4: None,
            preferred_address_v6: None,
            token_key: None,
        }
    }

    /// A configuration for one server of a fleet (issue 13): the stateless
    /// reset key and the token secret are derived from `secret` (HKDF-SHA256,
    /// RFC 5869, with distinct labels), so every endpoint configured with
    /// the same secret recognises the others' stateless resets (RFC 9000
    /// §10.3.2: "all endpoints sharing a static key") and accepts their
    /// Retry and NEW_TOKEN tokens (§8.1.3, §8.1.4). `secret` should hold at
    /// least 32 random bytes and be distributed like any private key.
    pub fn with_fleet_key(secret: &[u8]) -> Self {
        let mut config = Self::new(fleet_derive(secret, b"quiver fleet stateless reset key"));
        config.token_key = Some(fleet_derive(secret, b"quiver fleet token key"));
        config
    }

    /// The secret Retry and NEW_TOKEN token keys derive from.
    pub(crate) fn token_secret(&self) -> [u8; 32] {
        self.token_key.unwrap_or(self.reset_key)
    }
}

/// HKDF-SHA256 (RFC 5869) of `secret` with a fixed salt: one 32-byte
/// output block for `label`.
fn fleet_derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    use ring::hmac;
    let salt = hmac::Key::new(hmac::HMAC_SHA256, b"quiver fleet key v1");
    let prk = hmac::sign(&salt, secret);
    let prk = hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref());
    let mut ctx = hmac::Context::with_key(&prk);
    ctx.update(label);
    ctx.update(&[1]);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}
