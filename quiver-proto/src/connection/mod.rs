//! A QUIC connection as a sans-IO state machine.
//!
//! Inputs: datagrams (through `Endpoint::handle`) and
//! [`Connection::handle_timeout`]; outputs: [`Connection::poll_transmit`],
//! [`Connection::poll_timeout`] and [`Connection::poll`]. Time always comes
//! in as `now`.
//!
//! The parts live in their own files: `spaces` (packet number spaces),
//! `recv` (packet decryption and frame processing), `send` (packet
//! assembly), `recovery` (ACKs, loss detection, PTO), `close` (closing and
//! draining), `cids` (connection IDs), `keys` (1-RTT keys and key update).

mod ack_elicit;
mod ack_frequency;
mod cids;
mod close;
mod crypto_stream;
mod early_packets;
mod ecn;
mod error;
mod gso;
mod key_update;
mod keys;
mod migration;
mod mtud;
mod new_token;
mod paths;
mod qlog;
mod recovery;
mod recv;
mod reorder;
mod replay;
mod send;
mod sent;
mod spaces;
mod stateless;
mod streams_glue;
mod timers;
mod unreachable;
pub(crate) mod version;
mod zero_rtt;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use self::cids::CidState;
use self::close::CloseState;
pub use self::error::ConnectionError;
pub use self::gso::MAX_TRANSMIT_BYTES;
use self::keys::OneRttKeys;
pub use self::migration::MigrateError;
use self::spaces::{PacketSpace, SpaceId};
use self::timers::{Timer, TimerTable};
pub use self::unreachable::Unreachable;
use crate::config::{EndpointConfig, TransportConfig};
use crate::congestion::delivery_rate::DeliveryRateEstimator;
use crate::congestion::{Controller, Pacer};
use crate::crypto::TlsSession;
use crate::recovery::RttEstimator;
use crate::transport_params::TransportParameters;
use crate::{ConnectionId, Side, TransportError, VarInt, Version};

/// Identifies a connection within its endpoint.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub usize);

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed: streams may be used.
    Connected,
    /// The handshake is confirmed (RFC 9001 §4.1.2).
    HandshakeConfirmed,
    /// The connection ended; the reason is final.
    ConnectionLost {
        /// Why.
        reason: ConnectionError,
    },
    /// DATAGRAM frames arrived: read them with [`Connection::read_datagram`]
    /// until it returns `None`. Raised when the first one arrives while none
    /// waits unread, not for each.
    DatagramReceived,
    /// Something happened on a stream.
    Stream(crate::streams::StreamEvent),
}

/// What the connection asks of its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EndpointEvent {
    /// Stop routing this connection ID to us.
    RetireCid(ConnectionId),
    /// The connection is gone: free its state.
    Drained,
    /// Check datagrams that route nowhere against this peer reset token
    /// (RFC 9000 §10.3.1): one of the peer's connection IDs is in use.
    ResetToken([u8; 16]),
    /// Stop checking this token: its connection ID was retired.
    RetireResetToken([u8; 16]),
}

/// One datagram to send, or several back to back (see
/// [`Connection::poll_transmit`]'s `max_datagrams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// Bytes written at the end of the caller's buffer: every datagram of
    /// the transmit, contiguous.
    pub size: usize,
    /// `None`: the transmit is one datagram. `Some(n)`: it is several, cut
    /// every `n` bytes (the last may be shorter), for a GSO send
    /// (`UDP_SEGMENT`) or to be sent one by one.
    pub segment_size: Option<usize>,
    /// The ECN codepoint to send it with (RFC 9000 §13.4); `None` is
    /// Not-ECT.
    pub ecn: Option<crate::EcnCodepoint>,
    /// The local address to send from: `None` for the endpoint's own
    /// address (the one the connection started on), `Some` for a server's
    /// preferred address (RFC 9000 §9.6.2: the answer to a probe there,
    /// and everything once the client has moved there).
    pub src: Option<SocketAddr>,
}

impl Transmit {
    /// The datagrams of this transmit in `contents` (the `size` bytes it
    /// wrote): one, or one per segment.
    pub fn datagrams<'a>(&self, contents: &'a [u8]) -> std::slice::Chunks<'a, u8> {
        contents.chunks(self.segment_size.unwrap_or(self.size).max(1))
    }

    /// How many datagrams this transmit carries.
    pub fn count(&self) -> usize {
        match self.segment_size {
            Some(n) if n > 0 => self.size.div_ceil(n),
            _ => 1,
        }
    }
}

/// Counters for the application and for tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionStats {
    /// UDP datagrams sent.
    pub datagrams_sent: u64,
    /// UDP datagrams received.
    pub datagrams_received: u64,
    /// Bytes of UDP payload sent.
    pub bytes_sent: u64,
    /// Bytes of UDP payload received.
    pub bytes_received: u64,
    /// QUIC packets sent.
    pub packets_sent: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// Received packets dropped (undecryptable, duplicate, malformed, or
    /// from an address we do not accept).
    pub packets_dropped: u64,
    /// Times the connection moved to another path (RFC 9000 §9): the
    /// peer's new address, a fallback, or our own move.
    pub migrations: u64,
    /// Times the path stopped carrying our datagram size and we fell back
    /// to 1200 bytes (RFC 8899 §4.3).
    pub pmtu_black_holes: u64,
    /// Packets sent marked ECT(0) (RFC 9000 §13.4).
    pub ecn_marked_sent: u64,
    /// Datagrams received with an ECN codepoint (ECT(0), ECT(1) or CE).
    pub ecn_marked_received: u64,
    /// Datagrams received marked ECN-CE.
    pub ecn_ce_received: u64,
    /// Congestion events from increases of the peer's ECN-CE count
    /// (RFC 9002 §7.1).
    pub ecn_ce_events: u64,
    /// Whether ECN marking is off on the current path: validation failed
    /// (RFC 9000 §13.4.2.2) or the configuration disabled it.
    pub ecn_failed: bool,
    /// 1-RTT key updates, started by either side (RFC 9001 §6).
    pub key_updates: u64,
    /// Received packets that failed authentication (RFC 9001 §6.6).
    pub authentication_failures: u64,
    /// Packets declared lost that were acknowledged later (reordered).
    pub spurious_losses: u64,
    /// Congestion responses undone because every loss behind them proved
    /// spurious.
    pub congestion_undos: u64,
    /// Times persistent congestion was established (RFC 9002 §7.6.2).
    pub persistent_congestion: u64,
    /// Probe timeouts that fired (RFC 9002 §6.2), in any packet number
    /// space.
    pub probe_timeouts: u64,
    /// 0-RTT packets read (server; RFC 9001 §4.6).
    pub zero_rtt_packets_received: u64,
    /// 1-RTT packets sent carrying an ACK frame.
    pub ack_packets_sent: u64,
    /// ACK_FREQUENCY frames sent (draft-ietf-quic-ack-frequency §4).
    pub ack_frequency_sent: u64,
    /// 1-RTT packet numbers skipped to draw a prompt ACK from a peer that
    /// delays its ACKs ([`TransportConfig::elicit_acks`]).
    ///
    /// [`TransportConfig::elicit_acks`]: crate::TransportConfig::elicit_acks
    pub packet_numbers_skipped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Established,
    /// RFC 9000 §10.2.1: we sent CONNECTION_CLOSE.
    Closing,
    /// RFC 9000 §10.2.2: the peer sent CONNECTION_CLOSE.
    Draining,
    /// Nothing left to do.
    Drained,
}

/// A QUIC connection.
#[derive(Debug)]
pub struct Connection {
    side: Side,
    version: Version,
    config: Arc<TransportConfig>,
    endpoint_config: Arc<EndpointConfig>,
    state: State,
    tls: TlsSession,
    spaces: [PacketSpace; 3],
    one_rtt: Option<OneRttKeys>,
    handshake_complete: bool,
    handshake_confirmed: bool,
    /// The active path (RFC 9000 §9): where non-probing packets go, with
    /// its validation state and anti-amplification budget (§8.1). Its
    /// congestion state is `rtt`, `cc`, `pacer`, `max_udp_payload` and
    /// `mtud` below.
    path: paths::Path,
    /// Paths besides the active one: probed, kept to fall back to, or
    /// probed by the peer.
    others: paths::OtherPaths,
    /// Where the datagram being processed came from.
    rx_remote: SocketAddr,
    /// The server's preferred address the datagram being processed
    /// arrived on (`None`: the original address; see `paths::PathKey`).
    rx_local: Option<SocketAddr>,
    /// ECN validation of the active path (RFC 9000 §13.4.2).
    ecn: ecn::EcnValidation,
    /// The ECN codepoint of the datagram being processed.
    rx_ecn: Option<crate::EcnCodepoint>,
    /// Whether the datagram being written is marked ECT(0).
    tx_ecn: bool,
    /// The application asked for a key update (RFC 9001 §6.1).
    key_update_requested: bool,
    /// Reordering allowance and recent losses (RFC 8985 §6.2).
    reordering: reorder::Reordering,
    /// Packets that came before their keys (RFC 9001 §4.1.4).
    early_packets: early_packets::EarlyPackets,
    /// Runs of losses that may establish persistent congestion (RFC 9002
    /// §7.6.2), across loss events.
    persistent: crate::recovery::PersistentCongestion,
    /// PINGs sent since stream data stopped arriving mid-transfer.
    silence_probes: u32,
    /// Client: the server's preferred address while we validate it.
    preferred_path: Option<SocketAddr>,
    /// For PATH_CHALLENGE data (RFC 9000 §8.2.1), seeded by the endpoint.
    rng: rand_chacha::ChaCha20Rng,

    rtt: RttEstimator,
    cc: Box<dyn Controller>,
    pacer: Pacer,
    /// Delivery-rate sampling for the controller (draft-ietf-ccwg-bbr §4.1).
    delivery: DeliveryRateEstimator,
    /// Whether congestion control and pacing let new data out now.
    data_allowed: bool,
    bytes_in_flight: u64,
    pto_count: u32,
    max_udp_payload: u16,
    /// Path MTU discovery, from handshake confirmation on.
    mtud: Option<mtud::MtuDiscovery>,

    cids: CidState,
    /// The client's first Destination Connection ID (RFC 9000 §7.3).
    orig_dst_cid: ConnectionId,
    /// The Source Connection ID of a Retry we received (client).
    retry_src_cid: Option<ConnectionId>,
    /// The token to put in our Initials (client, from a Retry).
    retry_token: Bytes,
    local_params: TransportParameters,
    peer_params: Option<TransportParameters>,

    timers: TimerTable,
    /// RFC 9000 §10.1: the negotiated idle timeout.
    idle_timeout: Option<Duration>,
    /// Time of the last ack-eliciting packet sent since the last receipt
    /// (RFC 9000 §10.1 restarts the idle timer only for the first).
    idle_restarted_by_send: bool,
    handshake_done_pending: bool,
    /// ACK_FREQUENCY / IMMEDIATE_ACK state (draft-ietf-quic-ack-frequency).
    ack_frequency: ack_frequency::AckFrequencyState,
    /// NEW_TOKEN: the server's token to send, the client's token store.
    new_token: new_token::NewTokenState,
    ping_pending: bool,
    streams: crate::streams::StreamsState,
    datagrams_in: VecDeque<Bytes>,
    datagrams_in_bytes: usize,
    datagrams_out: VecDeque<Bytes>,
    close: Option<CloseState>,
    error: Option<ConnectionError>,
    events: VecDeque<Event>,
    endpoint_events: VecDeque<EndpointEvent>,
    stats: ConnectionStats,
    /// Reused scratch for TLS handshake bytes.
    crypto_scratch: Vec<u8>,
    /// Reused scratch for the packets an ACK acknowledges.
    acked_scratch: Vec<(u64, sent::SentPacket)>,
    /// Packet numbers skipped to draw prompt ACKs (`ack_elicit.rs`).
    skipped: ack_elicit::SkippedNumbers,
    /// Emptied stream-chunk lists of acknowledged or lost packets, for
    /// the next packets' records.
    chunk_lists: Vec<Vec<crate::streams::StreamChunk>>,
    /// When we last received an authenticated packet.
    last_activity: Option<Instant>,
    /// Client: whether an Initial from the server arrived.
    received_server_initial: bool,
    /// Whether a short header packet for this connection arrived, read or
    /// not (see [`Connection::peer_lowest_level`]).
    peer_sent_one_rtt: bool,
    /// The Source CID of the peer's first Initial (or Retry), which its
    /// initial_source_connection_id must match (RFC 9000 §7.3).
    peer_initial_src_cid: Option<ConnectionId>,
    /// Raw frame bytes to send as they are (test hook for misbehaviour).
    raw_frames: Vec<(SpaceId, Vec<u8>)>,
    /// Plaintext of every packet sent, when enabled (test observation).
    sent_log: Option<Vec<LoggedPacket>>,
    /// Version negotiation (RFC 9368): see `version.rs`.
    vn: version::VersionState,
    /// The qlog sink, when configured (`qlog.rs`).
    qlog: Option<qlog::Qlog>,
    /// Server: 0-RTT read keys and decision (RFC 9001 §4.6).
    zero_rtt: zero_rtt::ZeroRtt,
}

/// The plaintext of a packet this connection sent (see
/// [`Connection::enable_sent_log_for_test`]).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedPacket {
    /// When it was sent.
    pub time: Instant,
    /// Its type.
    pub ty: crate::packet::PacketType,
    /// Its packet number.
    pub pn: u64,
    /// Its frames, unencrypted (decode with [`crate::frame::Iter`]).
    pub payload: Vec<u8>,
}

/// Everything needed to create a connection; the endpoint fills it in.
pub(crate) struct ConnectionParams {
    pub(crate) side: Side,
    pub(crate) version: Version,
    pub(crate) config: Arc<TransportConfig>,
    pub(crate) endpoint_config: Arc<EndpointConfig>,
    pub(crate) tls: TlsSession,
    pub(crate) local_params: TransportParameters,
    pub(crate) remote: SocketAddr,
    pub(crate) local_cid: ConnectionId,
    pub(crate) local_reset_token: [u8; 16],
    pub(crate) remote_cid: ConnectionId,
    pub(crate) orig_dst_cid: ConnectionId,
    pub(crate) address_validated: bool,
    pub(crate) now: Instant,
    /// Seeds the connection's own random generator.
    pub(crate) rng_seed: [u8; 32],
    /// The Initial keys, when the caller already derived them (a server
    /// did, to read the first Initial).
    pub(crate) initial_keys: Option<crate::crypto::Keys>,
    /// Version negotiation state (RFC 9368).
    pub(crate) vn: version::VersionState,
}

impl Connection {
    pub(crate) fn new(p: ConnectionParams) -> Self {
        let initial_side = p.side;
        // RFC 9001 §5.2: Initial keys derive from the client's first DCID.
        let initial = p.initial_keys.unwrap_or_else(|| {
            crate::crypto::initial_keys(p.version, &p.orig_dst_cid, initial_side)
        });
        let mtu = p.config.max_udp_payload_size;
        let cc = p.config.congestion.build(p.now, mtu);
        let streams = crate::streams::StreamsState::new(
            p.side,
            &streams_glue::streams_config(&p.config),
            &p.local_params,
        );
        let mut conn = Self {
            side: p.side,
            version: p.version,
            endpoint_config: p.endpoint_config,
            state: State::Handshake,
            tls: p.tls,
            spaces: [
                PacketSpace::new(Some(initial)),
                PacketSpace::new(None),
                PacketSpace::new(None),
            ],
            one_rtt: None,
            handshake_complete: false,
            handshake_confirmed: false,
            // A client knows the address it chose (RFC 9000 §8.1 limits
            // only the server before it validates the client).
            path: paths::Path::new(p.remote, p.address_validated || p.side.is_client()),
            others: paths::OtherPaths::default(),
            rx_remote: p.remote,
            rx_local: None,
            ecn: ecn::EcnValidation::new(p.config.ecn),
            rx_ecn: None,
            tx_ecn: false,
            key_update_requested: false,
            reordering: reorder::Reordering::default(),
            early_packets: early_packets::EarlyPackets::default(),
            persistent: crate::recovery::PersistentCongestion::default(),
            silence_probes: 0,
            preferred_path: None,
            rng: rand::SeedableRng::from_seed(p.rng_seed),
            rtt: RttEstimator::new(p.config.initial_rtt),
            cc,
            pacer: Pacer::new(),
            delivery: DeliveryRateEstimator::new(p.now),
            data_allowed: true,
            bytes_in_flight: 0,
            pto_count: 0,
            max_udp_payload: mtu,
            mtud: None,
            cids: CidState::new(p.local_cid, p.local_reset_token, p.remote_cid),
            orig_dst_cid: p.orig_dst_cid,
            retry_src_cid: None,
            retry_token: Bytes::new(),
            local_params: p.local_params,
            peer_params: None,
            timers: TimerTable::default(),
            idle_timeout: p.config.max_idle_timeout.filter(|d| !d.is_zero()),
            idle_restarted_by_send: false,
            handshake_done_pending: false,
            ack_frequency: ack_frequency::AckFrequencyState::new(p.config.max_ack_delay),
            new_token: Default::default(),
            ping_pending: false,
            streams,
            datagrams_in: VecDeque::new(),
            datagrams_in_bytes: 0,
            datagrams_out: VecDeque::new(),
            close: None,
            error: None,
            events: VecDeque::new(),
            endpoint_events: VecDeque::new(),
            stats: ConnectionStats::default(),
            crypto_scratch: Vec::new(),
            acked_scratch: Vec::new(),
            skipped: ack_elicit::SkippedNumbers::default(),
            chunk_lists: Vec::new(),
            last_activity: None,
            received_server_initial: false,
            peer_sent_one_rtt: false,
            peer_initial_src_cid: p.side.is_server().then_some(p.remote_cid),
            raw_frames: Vec::new(),
            sent_log: None,
            vn: p.vn,
            qlog: None,
            zero_rtt: zero_rtt::ZeroRtt::default(),
            config: p.config,
        };
        if let Some(factory) = &conn.config.qlog {
            let info = crate::qlog::QlogConnectionInfo {
                side: conn.side,
                orig_dst_cid: conn.orig_dst_cid,
                start: p.now,
                version: conn.version,
            };
            conn.qlog = factory.new_sink(&info).map(qlog::Qlog::new);
            if conn.qlog.is_some() {
                conn.streams.enable_qlog();
            }
            conn.qlog_start(p.now);
        }
        conn.reset_idle_timer(p.now);
        if conn.side.is_client() {
            // The client speaks first: its ClientHello.
            conn.drain_tls(p.now);
        }
        conn
    }

    /// Which side of the connection we are.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The QUIC version in use.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.path.remote
    }

    /// The local address the connection sends from: `None` for the
    /// endpoint's own address, a server's preferred address once the
    /// client has moved there (RFC 9000 §9.6.2).
    pub fn local_address(&self) -> Option<SocketAddr> {
        self.path.local
    }

    /// Whether the peer's current address is validated (RFC 9000 §8).
    pub fn is_path_validated(&self) -> bool {
        self.path.validated
    }

    /// The current RTT estimate.
    pub fn rtt(&self) -> Duration {
        self.rtt.smoothed_rtt()
    }

    /// Counters.
    pub fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            ecn_failed: self.ecn.state == ecn::EcnState::Failed,
            ..self.stats
        }
    }

    /// The largest UDP payload this connection sends now: 1200 at first,
    /// raised by path MTU discovery (RFC 9000 §14.3).
    pub fn path_mtu(&self) -> u16 {
        self.max_udp_payload
    }

    /// The congestion window in bytes.
    pub fn congestion_window(&self) -> u64 {
        self.cc.window()
    }

    /// Whether the handshake has completed.
    pub fn is_handshake_complete(&self) -> bool {
        self.handshake_complete
    }

    /// Whether the handshake is confirmed (RFC 9001 §4.1.2).
    pub fn is_handshake_confirmed(&self) -> bool {
        self.handshake_confirmed
    }

    /// The negotiated application protocol (ALPN).
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.tls.alpn()
    }

    /// The negotiated TLS cipher suite, once the handshake has chosen it.
    pub fn cipher_suite(&self) -> Option<crate::crypto::CipherSuite> {
        self.tls.cipher_suite()
    }

    /// The TLS key exchange group the handshake used, once chosen.
    pub fn kx_group(&self) -> Option<crate::crypto::KxGroup> {
        self.tls.kx_group()
    }

    /// Which kind of TLS handshake the connection ran, once known (a
    /// server knows after the ClientHello, a client after the
    /// ServerHello): [`HandshakeKind::Resumed`](crate::crypto::HandshakeKind::Resumed)
    /// when a session ticket from an earlier connection was used
    /// (RFC 9001 §4.5) and the server sent no certificate.
    pub fn handshake_kind(&self) -> Option<crate::crypto::HandshakeKind> {
        self.tls.handshake_kind()
    }

    /// Whether the handshake resumed an earlier session (see
    /// [`handshake_kind`](Self::handshake_kind)).
    pub fn is_resumed(&self) -> bool {
        self.handshake_kind() == Some(crate::crypto::HandshakeKind::Resumed)
    }

    /// The server name the client asked for (SNI), on the server side.
    pub fn server_name(&self) -> Option<&str> {
        self.tls.server_name()
    }

    /// The peer's transport parameters, once known.
    pub fn peer_params(&self) -> Option<&TransportParameters> {
        self.peer_params.as_ref()
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<&ConnectionError> {
        self.error.as_ref()
    }

    /// Whether the connection has ended (closing, draining or drained).
    pub fn is_closed(&self) -> bool {
        matches!(
            self.state,
            State::Closing | State::Draining | State::Drained
        )
    }

    /// Whether every resource can be freed.
    pub fn is_drained(&self) -> bool {
        self.state == State::Drained
    }

    /// The client's original Destination Connection ID.
    pub(crate) fn orig_dst_cid(&self) -> ConnectionId {
        self.orig_dst_cid
    }

    /// How many more connection IDs the endpoint should issue to us.
    pub(crate) fn cids_wanted(&self) -> u64 {
        match (&self.peer_params, self.is_closed()) {
            (Some(p), false) if self.handshake_complete => {
                self.cids.wanted(p.active_connection_id_limit)
            }
            _ => 0,
        }
    }

    /// The server's preferred-address connection ID (RFC 9000 §9.6.1).
    pub(crate) fn issue_preferred_address_cid(&mut self, cid: ConnectionId, reset_token: [u8; 16]) {
        self.cids.issue_preferred(cid, reset_token);
    }

    /// Starts the Initial packet numbers at `next`: the endpoint already
    /// sent the client Initials below it without state (RFC 9000 §12.3:
    /// never reuse a packet number in a space).
    pub(crate) fn skip_initial_packet_numbers(&mut self, next: u64) {
        let space = self.space_mut(SpaceId::Initial);
        space.next_pn = space.next_pn.max(next);
    }

    /// A new connection ID from the endpoint, to announce to the peer.
    pub(crate) fn issue_cid(&mut self, cid: ConnectionId, reset_token: [u8; 16]) {
        self.cids.issue(cid, reset_token);
    }

    /// The next event for the application.
    pub fn poll(&mut self) -> Option<Event> {
        if self.events.is_empty() {
            self.collect_stream_events();
        }
        self.events.pop_front()
    }

    pub(crate) fn poll_endpoint_event(&mut self) -> Option<EndpointEvent> {
        self.endpoint_events.pop_front().or_else(|| {
            self.cids.poll_token_change().map(|c| match c {
                cids::TokenChange::Check(t) => EndpointEvent::ResetToken(t),
                cids::TokenChange::Stop(t) => EndpointEvent::RetireResetToken(t),
            })
        })
    }

    /// When [`Connection::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // An ACK the anti-amplification limit keeps us from sending (RFC
        // 9000 §8.1, a new path not yet validated) waits for the peer's
        // next datagram, not for a deadline already past: reporting that
        // deadline had the caller call `handle_timeout` again and again
        // without anything changing (a busy loop; quiver-sim's livelock
        // guard caught it after a NAT rebinding).
        let ack_due = if self.is_closed() || self.amplification_blocked() {
            None
        } else {
            self.spaces
                .iter()
                .filter(|s| s.ack_pending)
                .filter_map(|s| s.ack_deadline)
                .min()
        };
        match (self.timers.next(), ack_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handle_timers(now);
        self.qlog_sync(now);
    }

    fn handle_timers(&mut self, now: Instant) {
        for timer in self.timers.expired(now) {
            match timer {
                Timer::Close => {
                    // RFC 9000 §10.2: the closing or draining period is over.
                    self.state = State::Drained;
                    self.timers.stop_all();
                    self.endpoint_events.push_back(EndpointEvent::Drained);
                    return;
                }
                Timer::Idle => {
                    // RFC 9000 §10.1: "the connection is silently closed and
                    // its state is discarded".
                    self.on_fatal(ConnectionError::TimedOut);
                    self.state = State::Drained;
                    self.timers.stop_all();
                    self.endpoint_events.push_back(EndpointEvent::Drained);
                    return;
                }
                Timer::LossDetection => self.on_loss_detection_timeout(now),
                Timer::KeepAlive => {
                    self.ping_pending = true;
                }
                Timer::Pacing => {}
                Timer::CloseProbe => self.on_close_probe_timeout(now),
                Timer::SilenceProbe => self.on_silence_probe_timeout(now),
                Timer::PathValidation => {
                    self.on_path_timer(now);
                    if self.state == State::Drained {
                        return;
                    }
                }
            }
        }
    }

    /// Sends an unreliable datagram (RFC 9221). Fails if the peer does not
    /// accept datagrams or `data` cannot fit its limit.
    pub fn send_datagram(&mut self, data: Bytes) -> Result<(), SendDatagramError> {
        if let Some(e) = &self.error {
            return Err(SendDatagramError::ConnectionLost(e.clone()));
        }
        let Some(peer) = self.datagram_params() else {
            return Err(SendDatagramError::NotYet);
        };
        let Some(max) = peer.max_datagram_frame_size else {
            return Err(SendDatagramError::UnsupportedByPeer);
        };
        let limit = self.max_datagram_size().min(max_payload_for_frame(max));
        if data.len() > limit {
            return Err(SendDatagramError::TooLarge { max: limit });
        }
        // Bounded: drop the oldest rather than buffer without limit.
        if self.datagrams_out.len() >= 1024 {
            self.datagrams_out.pop_front();
        }
        self.datagrams_out.push_back(data);
        Ok(())
    }

    /// The largest datagram payload that can be sent now: what fits in one
    /// packet and within the peer's max_datagram_frame_size (RFC 9221 §3),
    /// or 0 while the peer has not said it accepts datagrams.
    pub fn max_datagram_size(&self) -> usize {
        // Short header with a 20-byte CID and 4-byte packet number, the
        // AEAD tag, and the DATAGRAM frame's type and length.
        let path = usize::from(self.max_udp_payload).saturating_sub(1 + 20 + 4 + 16 + 1 + 2);
        match self.datagram_params().map(|p| p.max_datagram_frame_size) {
            Some(Some(frame)) => path.min(max_payload_for_frame(frame)),
            Some(None) => 0,
            None => path,
        }
    }

    /// The peer's certificate chain, once the handshake has provided it.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.tls.peer_certificates()
    }

    /// The next received datagram.
    pub fn read_datagram(&mut self) -> Option<Bytes> {
        let d = self.datagrams_in.pop_front()?;
        self.datagrams_in_bytes -= d.len();
        Some(d)
    }

    /// Closes the connection with an application error code and reason
    /// (RFC 9000 §10.2). Before the handshake is confirmed the close is
    /// sent in every space the peer may read (§10.2.3).
    pub fn close(&mut self, now: Instant, code: VarInt, reason: Bytes) {
        self.close_inner(now, close::CloseReason::Application { code, reason });
    }

    /// Sends `frames` (already encoded) verbatim in the next packet of the
    /// given space: 0 Initial, 1 Handshake, 2 application data (a 0-RTT
    /// packet while a client has only 0-RTT keys). Exists so
    /// tests can play a misbehaving peer; never use it otherwise.
    #[doc(hidden)]
    pub fn send_raw_frames_for_test(&mut self, space: u8, frames: Vec<u8>) {
        let space = match space {
            0 => SpaceId::Initial,
            1 => SpaceId::Handshake,
            _ => SpaceId::ApplicationData,
        };
        self.raw_frames.push((space, frames));
    }

    /// Starts keeping the plaintext of every packet sent, so tests can check
    /// what went out in which packet type.
    #[doc(hidden)]
    pub fn enable_sent_log_for_test(&mut self) {
        self.sent_log.get_or_insert_with(Vec::new);
    }

    /// The packets sent since [`Connection::enable_sent_log_for_test`].
    #[doc(hidden)]
    pub fn sent_log_for_test(&self) -> &[LoggedPacket] {
        self.sent_log.as_deref().unwrap_or(&[])
    }

    /// Records a fatal condition once: the first reason wins.
    fn on_fatal(&mut self, reason: ConnectionError) {
        if self.error.is_none() {
            self.error = Some(reason.clone());
            self.events.push_back(Event::ConnectionLost { reason });
        }
    }

    /// A protocol violation by the peer: close with its code (RFC 9000 §11).
    fn on_transport_error(&mut self, now: Instant, error: TransportError) {
        tracing::debug!(%error, "closing on transport error");
        self.on_fatal(ConnectionError::TransportError(error.clone()));
        self.close_inner(now, close::CloseReason::Transport(error));
    }

    fn reset_idle_timer(&mut self, now: Instant) {
        // Closing and draining have their own end (RFC 9000 §10.2); the idle
        // timer must not cut them short or stretch them.
        if self.is_closed() {
            return;
        }
        let Some(timeout) = self.effective_idle_timeout() else {
            self.timers.stop(Timer::Idle);
            return;
        };
        self.timers.set(Timer::Idle, now + timeout);
        if let Some(interval) = self.config.keep_alive_interval {
            self.timers.set(Timer::KeepAlive, now + interval);
        }
    }

    /// RFC 9000 §10.1: the idle timeout is the minimum of both sides'
    /// values, and at least three PTOs "to avoid excessively small idle
    /// timeout periods".
    fn effective_idle_timeout(&self) -> Option<Duration> {
        let ours = self.idle_timeout;
        let theirs = self
            .peer_params
            .as_ref()
            .map(|p| p.max_idle_timeout)
            .filter(|d| !d.is_zero());
        let timeout = match (ours, theirs) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(timeout.max(3 * self.pto_duration(SpaceId::ApplicationData)))
    }

    fn pto_duration(&self, space: SpaceId) -> Duration {
        let max_ack_delay = self.peer_max_ack_delay();
        crate::recovery::pto_duration(&self.rtt, space, max_ack_delay, self.pto_count)
    }

    fn space(&self, id: SpaceId) -> &PacketSpace {
        &self.spaces[id as usize]
    }

    fn space_mut(&mut self, id: SpaceId) -> &mut PacketSpace {
        &mut self.spaces[id as usize]
    }
}

/// The largest payload a DATAGRAM frame with a Length field can carry
/// when the whole frame (type, length, data) must fit in `frame_limit`
/// bytes (RFC 9221 §3: the limit includes "the frame type, length, and
/// payload").
fn max_payload_for_frame(frame_limit: u64) -> usize {
    let avail = frame_limit.saturating_sub(1);
    // The length field grows with the payload: try each varint size.
    let best = [1u64, 2, 4, 8]
        .into_iter()
        .filter_map(|len_size| {
            let payload = avail.checked_sub(len_size)?;
            (VarInt::size_of(payload) as u64 <= len_size).then_some(payload)
        })
        .max()
        .unwrap_or(0);
    usize::try_from(best).unwrap_or(usize::MAX)
}

/// Why [`Connection::send_datagram`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendDatagramError {
    /// The handshake has not told us whether the peer takes datagrams.
    #[error("peer's transport parameters not yet known")]
    NotYet,
    /// The peer did not advertise max_datagram_frame_size (RFC 9221 §3).
    #[error("peer does not accept datagrams")]
    UnsupportedByPeer,
    /// Larger than the peer's limit or the path allows.
    #[error("datagram too large (max {max} bytes)")]
    TooLarge {
        /// The current limit.
        max: usize,
    },
    /// The connection is gone.
    #[error("connection lost: {0}")]
    ConnectionLost(ConnectionError),
}
