//! The endpoint: one UDP socket's worth of QUIC. It routes datagrams to
//! connections by Destination Connection ID (RFC 9000 §5.2), surfaces new
//! connection attempts for the application to admit, answers unsupported
//! versions (§6.1) and owns its connections.
//!
//! ```no_run
//! # use std::time::Instant;
//! # fn demo(mut endpoint: quiver_proto::Endpoint, now: Instant) {
//! let mut buf = Vec::new();
//! // Up to 10 datagrams per transmit, for a socket with GSO; 1 without.
//! while let Some(t) = endpoint.poll_transmit(now, 10, &mut buf) {
//!     let contents = &buf[buf.len() - t.size..];
//!     for datagram in t.datagrams(contents) {
//!         // send datagram to t.destination (or all at once with GSO,
//!         // segment size t.segment_size)
//!     }
//! }
//! # }
//! ```

mod admission;
mod assembly;
mod attempts;
mod cid_generator;
mod early;
mod hash;
mod incoming;
mod new_token;
mod reset;
mod reset_tokens;
mod schedule;
mod stateless;
mod token;
mod version;

#[cfg(test)]
mod probe_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unreachable_tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use self::admission::Admission;
pub use self::admission::{AdmissionConfig, EndpointStats, RefusedStats};
pub use self::cid_generator::{CidGenerator, RandomCidGenerator};
pub use self::hash::{FoldHasher, SeededState};
pub use self::incoming::{Incoming, IncomingId};
pub use self::new_token::NewTokenConfig;
use self::new_token::NewTokenKey;
use self::reset::ResetKey;
use self::reset_tokens::ResetTokens;
use self::schedule::Connections;
use self::token::{TokenClock, TokenKey};
use crate::config::{EndpointConfig, TransportConfig};
use crate::connection::{Connection, ConnectionHandle, ConnectionParams, EndpointEvent, Transmit};
use crate::crypto::{self, TlsSession};
use crate::packet::PacketType;
use crate::packet::header::{self, Parsed};
use crate::{ConnectionId, Side, TransportErrorCode, Version};

/// Server settings: TLS and transport.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// TLS configuration (certificate, ALPN, client authentication).
    pub crypto: Arc<crypto::ServerConfig>,
    /// Transport settings for accepted connections.
    pub transport: Arc<TransportConfig>,
    /// Limits on connections and handshakes, automatic Retry.
    pub admission: AdmissionConfig,
    /// NEW_TOKEN address-validation tokens (RFC 9000 §8.1.3).
    pub new_tokens: NewTokenConfig,
}

/// Client settings: TLS, transport and version.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// TLS configuration (roots, ALPN, client certificate).
    pub crypto: Arc<crypto::ClientConfig>,
    /// Transport settings.
    pub transport: Arc<TransportConfig>,
    /// The version to start with: the Chosen Version of our first flight
    /// (RFC 9368 §2).
    pub version: Version,
    /// The versions we support and offer in version_information, most
    /// preferred first (RFC 9368 §3): a server may switch the connection to
    /// one compatible with `version` (§2.3), and a Version Negotiation
    /// packet makes us retry in the first of them it lists (§2.1).
    /// `version` is offered too, first if it is not in the list; empty (the
    /// default) offers `version` alone, so no server moves us off it.
    pub available_versions: Vec<Version>,
    /// Where tokens from servers' NEW_TOKEN frames are kept and taken for
    /// the next connection's Initial to the same server name (RFC 9000
    /// §8.1.3); shared by every connection made with this configuration.
    /// `None` keeps no tokens.
    pub token_store: Option<Arc<dyn crate::TokenStore>>,
}

impl ClientConfig {
    /// A client configuration with default transport settings, QUIC v1
    /// and no other version offered.
    pub fn new(crypto: Arc<crypto::ClientConfig>) -> Self {
        Self {
            crypto,
            transport: Arc::new(TransportConfig::default()),
            version: Version::V1,
            available_versions: Vec::new(),
            token_store: Some(Arc::new(crate::InMemoryTokenStore::default())),
        }
    }
}

impl ServerConfig {
    /// A server configuration with default transport settings.
    pub fn new(crypto: Arc<crypto::ServerConfig>) -> Self {
        Self {
            crypto,
            transport: Arc::new(TransportConfig::default()),
            admission: AdmissionConfig::default(),
            new_tokens: NewTokenConfig::default(),
        }
    }
}

/// Why [`Endpoint::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TLS configuration or server name was rejected.
    #[error("TLS configuration: {0}")]
    Config(#[from] crypto::ConfigError),
}

/// Why [`Endpoint::retry`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No such pending attempt.
    #[error("no such incoming connection")]
    Unknown,
    /// The attempt already carries a valid Retry token: RFC 9000 §8.1.2,
    /// "a server cannot send another Retry packet".
    #[error("the client's address is already validated")]
    AlreadyValidated,
    /// The endpoint already sent the client an Initial packet (it
    /// acknowledged a probe that came without a ClientHello): RFC 9000
    /// §17.2.5.2, the client "MUST discard any subsequent Retry packets".
    #[error("the client already received an Initial packet from this server")]
    Answered,
}

/// Why [`Endpoint::accept`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// No server configuration, or no such pending attempt.
    #[error("no such incoming connection, or not a server")]
    Unknown,
    /// The TLS configuration was rejected.
    #[error("TLS configuration: {0}")]
    Config(#[from] crypto::ConfigError),
}

/// What a datagram did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramEvent {
    /// It went to this connection; poll it.
    Connection(ConnectionHandle),
    /// A new connection attempt awaits a decision: see
    /// [`Endpoint::poll_incoming`].
    NewConnection(IncomingId),
    /// It was answered statelessly or dropped.
    Handled,
}

/// At most this many attempts wait for the application's decision; more
/// are dropped (the client retransmits).
const MAX_PENDING_INCOMING: usize = 1024;
/// Stateless responses queued at most.
const MAX_STATELESS_QUEUE: usize = 256;

/// A QUIC endpoint (client, server, or both) without I/O.
#[derive(Debug)]
pub struct Endpoint {
    config: Arc<EndpointConfig>,
    server: Option<Arc<ServerConfig>>,
    rng: ChaCha20Rng,
    /// The ECN codepoint of the datagram being handled, for an `Incoming`
    /// made from it.
    rx_ecn: Option<crate::EcnCodepoint>,
    cid_generator: Box<dyn CidGenerator>,
    connections: Connections,
    next_handle: usize,
    /// Our connection IDs → connection.
    routes: HashMap<ConnectionId, ConnectionHandle, SeededState>,
    /// Client-chosen Destination CIDs of Initials → connection, so
    /// retransmitted Initials reach the connection they created.
    initial_routes: HashMap<ConnectionId, ConnectionHandle>,
    /// Peer addresses → connection, used only when our connection IDs are
    /// zero length: RFC 9000 §5.1 lets an endpoint use them when it "can
    /// route by address" instead. One connection per peer address; a
    /// newer connection from the same address takes the route over.
    addr_routes: HashMap<SocketAddr, ConnectionHandle, SeededState>,
    /// Peer reset tokens in use → connection, for datagrams that route
    /// nowhere (RFC 9000 §10.3.1).
    reset_tokens: ResetTokens,
    /// Our stateless reset key, from `config.reset_key` (RFC 9000 §10.3.2).
    reset_key: ResetKey,
    incoming: VecDeque<Incoming>,
    /// Attempts whose ClientHello is still arriving, not yet reported.
    assembly: assembly::Assembly,
    /// (client's first DCID, address) of each pending attempt (reported or
    /// assembling) → its id, so a retransmitted Initial or a 0-RTT
    /// datagram finds its attempt in one look-up (client-chosen keys:
    /// std's SipHash).
    incoming_keys: HashMap<(ConnectionId, SocketAddr), IncomingId>,
    /// 0-RTT and later Initial datagrams that arrived before the Initial
    /// that makes their attempt (RFC 9000 §5.2.2).
    early: early::EarlyDatagrams,
    next_incoming: u64,
    stateless: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Token timestamps: wall-clock milliseconds once the runtime set the
    /// wall clock, else from the first input's `now`.
    token_clock: Option<TokenClock>,
    /// Retry token key.
    token_key: TokenKey,
    /// NEW_TOKEN token key.
    new_token_key: NewTokenKey,
    /// Stateless resets sent in the current one-second window.
    resets_in_window: u32,
    reset_window_start: Option<Instant>,
    /// Admission control: counts of connections and handshakes, per source.
    admission: Admission,
}

/// Connection ID draws at most per new ID (see `Endpoint::new_cid`).
const MAX_CID_DRAWS: usize = 16;

/// Stateless resets sent per second at most (RFC 9000 §10.3.3 suggests
/// limits so resets cannot be used for amplification or loops).
const MAX_RESETS_PER_SECOND: u32 = 100;

impl Endpoint {
    /// An endpoint; `server` makes it accept connections. `rng_seed` seeds
    /// every random choice it makes (connection IDs, greasing): pass OS
    /// randomness in production, a fixed value in simulations.
    pub fn new(
        config: Arc<EndpointConfig>,
        server: Option<Arc<ServerConfig>>,
        rng_seed: [u8; 32],
    ) -> Self {
        let mut rng = ChaCha20Rng::from_seed(rng_seed);
        let generator_seed: [u8; 32] = rng.random();
        let hash_seed = SeededState::new(rng.random());
        let reset_tokens = ResetTokens::new(&config.reset_key, hash_seed);
        let reset_key = ResetKey::new(&config.reset_key);
        let token_secret = config.token_secret();
        Self {
            cid_generator: Box::new(RandomCidGenerator::new(
                config.local_cid_len,
                generator_seed,
            )),
            config,
            server,
            rng,
            rx_ecn: None,
            connections: Connections::new(hash_seed),
            next_handle: 0,
            routes: HashMap::with_hasher(hash_seed),
            initial_routes: HashMap::new(),
            addr_routes: HashMap::with_hasher(hash_seed),
            reset_tokens,
            reset_key,
            incoming: VecDeque::new(),
            assembly: assembly::Assembly::default(),
            incoming_keys: HashMap::new(),
            early: early::EarlyDatagrams::default(),
            next_incoming: 0,
            stateless: VecDeque::new(),
            token_clock: None,
            token_key: TokenKey::new(&token_secret),
            new_token_key: NewTokenKey::new(&token_secret),
            resets_in_window: 0,
            reset_window_start: None,
            admission: Admission::new(hash_seed),
        }
    }

    /// Replaces the connection ID generator (e.g. to encode routing
    /// information for a load balancer). Its IDs must have the configured
    /// length.
    pub fn set_cid_generator(&mut self, generator: Box<dyn CidGenerator>) {
        self.cid_generator = generator;
    }

    /// Sets or clears the server configuration.
    pub fn set_server_config(&mut self, server: Option<Arc<ServerConfig>>) {
        self.server = server;
    }

    /// The connection behind `handle`. The endpoint visits it again in
    /// its next `poll_transmit` and `poll_timeout`: whatever is done with it
    /// may give it something to send or move its deadline.
    pub fn connection(&mut self, handle: ConnectionHandle) -> Option<&mut Connection> {
        self.connections.get_mut(handle)
    }

    /// The connection behind `handle`, to read only: unlike
    /// [`Endpoint::connection`] it does not mark the connection for a visit,
    /// so looking at many connections costs nothing later.
    pub fn connection_ref(&self, handle: ConnectionHandle) -> Option<&Connection> {
        self.connections.get(handle)
    }

    /// The connection's next event for the application
    /// ([`Connection::poll`]), without marking it for a visit: taking events
    /// changes nothing it sends or waits for. For a runtime that checks many
    /// connections for events.
    pub fn poll_event(&mut self, handle: ConnectionHandle) -> Option<crate::Event> {
        self.connections.slot_untouched(handle)?.conn.poll()
    }

    /// Handles of every connection.
    pub fn connection_handles(&self) -> Vec<ConnectionHandle> {
        let mut v: Vec<_> = self.connections.handles().collect();
        v.sort();
        v
    }

    /// Sizes of the routing tables: our connection IDs, client Initial
    /// IDs, peer reset tokens. For tests that check a peer cannot grow them.
    #[doc(hidden)]
    pub fn table_sizes_for_test(&self) -> (usize, usize, usize) {
        (
            self.routes.len(),
            self.initial_routes.len(),
            self.reset_tokens.len(),
        )
    }

    /// Datagrams held for attempts not made yet (0-RTT, or later parts of
    /// a ClientHello, arrived before their first Initial): for tests that
    /// check a flood cannot grow it beyond its bound.
    #[doc(hidden)]
    pub fn early_datagrams_for_test(&self) -> usize {
        self.early.len()
    }

    /// Frees a connection's state. Call it once a connection reported
    /// [`crate::Event::ConnectionLost`] and is drained (or to drop one
    /// abruptly).
    pub fn remove(&mut self, handle: ConnectionHandle) -> Option<Connection> {
        let slot = self.connections.remove(handle)?;
        self.admission.removed(handle);
        self.unroute(handle, slot.cids, slot.initial_cid, slot.reset_tokens);
        self.unroute_addr(handle, slot.addr);
        Some(*slot.conn)
    }

    /// Stops routing a connection's IDs and peer reset tokens to it.
    fn unroute(
        &mut self,
        handle: ConnectionHandle,
        cids: Vec<ConnectionId>,
        initial_cid: Option<ConnectionId>,
        reset_tokens: Vec<reset_tokens::Transformed>,
    ) {
        for key in &reset_tokens {
            self.reset_tokens.remove(key, handle);
        }
        for cid in cids {
            if self.routes.get(&cid) == Some(&handle) {
                self.routes.remove(&cid);
            }
        }
        if let Some(cid) = initial_cid {
            if self.initial_routes.get(&cid) == Some(&handle) {
                self.initial_routes.remove(&cid);
            }
        }
    }

    /// Routes datagrams from `remote` to `handle` when our connection IDs
    /// are zero length (the peer then sends none to route by).
    fn route_addr(&mut self, handle: ConnectionHandle, remote: SocketAddr) {
        if self.config.local_cid_len != 0 {
            return;
        }
        if let Some(old) = self.addr_routes.insert(remote, handle) {
            if let Some(slot) = self.connections.slot_untouched(old) {
                slot.addr = None;
            }
        }
        if let Some(slot) = self.connections.slot_untouched(handle) {
            slot.addr = Some(remote);
        }
    }

    fn unroute_addr(&mut self, handle: ConnectionHandle, addr: Option<SocketAddr>) {
        if let Some(addr) = addr {
            if self.addr_routes.get(&addr) == Some(&handle) {
                self.addr_routes.remove(&addr);
            }
        }
    }

    /// Starts a connection to `remote`, verifying the server as
    /// `server_name`.
    pub fn connect(
        &mut self,
        now: Instant,
        config: &ClientConfig,
        remote: SocketAddr,
        server_name: &str,
    ) -> Result<ConnectionHandle, ConnectError> {
        let local_cid = self.new_cid();
        let attempt = version::Attempt {
            version: config.version,
            after_vn: false,
        };
        let conn =
            self.client_connection(now, config, (remote, server_name), attempt, local_cid)?;
        let handle = self.next_handle();
        self.routes.insert(local_cid, handle);
        self.connections.insert(handle, conn).cids.push(local_cid);
        self.route_addr(handle, remote);
        Ok(handle)
    }

    /// An ICMP (or ICMPv6) error reported that a datagram to `remote` was
    /// undeliverable; `quoted` is the start of that datagram as the ICMP
    /// message quoted it (empty if the platform does not say). A client
    /// connection to `remote` still in its handshake, that has received
    /// nothing yet and whose Destination Connection ID the quote carries,
    /// closes at once with [`crate::ConnectionError::Unreachable`]; every
    /// other connection ignores the report (RFC 9000 §14.2.1: ICMP must be
    /// validated; §21.2: unauthenticated ICMP is of extremely limited use).
    /// Returns the connections closed, to be visited for their events.
    /// Costs a pass over the connections: meant for the rare error, not for
    /// every datagram.
    pub fn handle_unreachable(
        &mut self,
        remote: SocketAddr,
        kind: crate::Unreachable,
        quoted: &[u8],
    ) -> Vec<ConnectionHandle> {
        let candidates: Vec<ConnectionHandle> = self
            .connections
            .handles()
            .filter(|&h| {
                self.connections.get(h).is_some_and(|c| {
                    c.side() == crate::Side::Client
                        && !c.is_handshake_complete()
                        && c.remote_address() == remote
                })
            })
            .collect();
        candidates
            .into_iter()
            .filter(|&h| {
                self.connections
                    .get_mut(h)
                    .is_some_and(|c| c.on_unreachable(remote, kind, quoted))
            })
            .collect()
    }

    /// Processes a received datagram. `data` is modified in place.
    pub fn handle(&mut self, now: Instant, remote: SocketAddr, data: &mut [u8]) -> DatagramEvent {
        self.handle_ecn(now, remote, None, data)
    }

    /// Processes a received datagram that carried the ECN codepoint `ecn`
    /// (RFC 9000 §13.4.1: the counts go back to the peer in ACK frames).
    /// `data` is modified in place.
    pub fn handle_ecn(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        ecn: Option<crate::EcnCodepoint>,
        data: &mut [u8],
    ) -> DatagramEvent {
        self.handle_with_local(now, remote, None, ecn, data)
    }

    /// Processes a received datagram that arrived on the local address
    /// `local` (which socket, or `IP_PKTINFO`; `None` when not known) and
    /// carried the ECN codepoint `ecn`. A server with a preferred address
    /// (RFC 9000 §9.6) needs it: a datagram to its preferred address is on
    /// a path of its own, answered from that address (see
    /// [`Transmit::src`]); any other local address counts as the endpoint's
    /// own. `data` is modified in place.
    pub fn handle_with_local(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local: Option<SocketAddr>,
        ecn: Option<crate::EcnCodepoint>,
        data: &mut [u8],
    ) -> DatagramEvent {
        self.token_now(now);
        self.rx_ecn = ecn;
        let cid_len = self.config.local_cid_len;
        let Some(dst) = header::first_dst_cid(data, cid_len) else {
            return DatagramEvent::Handled;
        };
        if let Some(dst) = ConnectionId::new(dst) {
            let handle = if dst.is_empty() && cid_len == 0 {
                self.addr_routes.get(&remote)
            } else {
                self.routes
                    .get(&dst)
                    .or_else(|| self.initial_routes.get(&dst))
            }
            .copied();
            if let Some(handle) = handle {
                if let Some(conn) = self.connections.get_mut(handle) {
                    conn.handle_datagram(now, remote, local, ecn, data);
                    self.restart_if_asked(now, handle);
                    self.maintain(handle);
                    return DatagramEvent::Connection(handle);
                }
            }
        }
        // RFC 9000 §10.3.1: a datagram that routes nowhere may be a stateless
        // reset for one of our connections ("the comparison MUST be
        // performed when the first packet in an incoming datagram ... cannot
        // be associated with a connection"). A reset has the short header
        // form (§10.3: "Header Form (1) = 0"), so a datagram starting with a
        // long header is none. One look-up in the token table, whatever the
        // number of connections; the connection confirms in constant time
        // (the table is keyed by token alone: see `reset_tokens`).
        let short_header = data[0] & 0x80 == 0;
        let reset = short_header
            .then(|| self.reset_tokens.lookup(data))
            .flatten()
            .filter(|h| {
                self.connections
                    .slot_untouched(*h)
                    .is_some_and(|s| s.conn.is_stateless_reset(data))
            });
        if let Some(handle) = reset {
            if let Some(conn) = self.connections.get_mut(handle) {
                conn.on_stateless_reset(now);
            }
            self.maintain(handle);
            return DatagramEvent::Connection(handle);
        }
        // RFC 9287 §3: a server advertising grease_quic_bit accepts packets
        // with the QUIC bit 0 (a client may clear it on its first Initials
        // only with a NEW_TOKEN token from such a server, §3.1).
        let grease = self
            .server
            .as_ref()
            .is_some_and(|s| s.transport.grease_quic_bit);
        match header::decode_with(data, cid_len, grease) {
            Ok(Parsed::UnsupportedVersion(u)) => {
                self.send_version_negotiation(remote, data, &u);
                DatagramEvent::Handled
            }
            Ok(Parsed::Packet(p)) if p.ty == PacketType::Initial => {
                let supported = p
                    .version
                    .is_some_and(|v| self.config.supported_versions.contains(&v));
                if !supported {
                    // A version we implement but do not offer here: answer
                    // as for any unsupported version (RFC 9000 §6.1).
                    let dst_start = 6;
                    let src_start = dst_start + p.dst_cid.len() + 1;
                    let u = header::UnsupportedVersion {
                        version: p.version.map_or(0, |v| v.number()),
                        dst_cid: dst_start..dst_start + p.dst_cid.len(),
                        src_cid: src_start..src_start + p.src_cid.len(),
                    };
                    self.send_version_negotiation(remote, data, &u);
                    return DatagramEvent::Handled;
                }
                self.on_new_initial(now, remote, data, &p)
            }
            Ok(Parsed::Packet(p)) if p.ty == PacketType::OneRtt => {
                self.send_stateless_reset(now, remote, data, &p.dst_cid);
                DatagramEvent::Handled
            }
            Ok(Parsed::Packet(p)) if p.ty == PacketType::ZeroRtt => {
                self.buffer_zero_rtt(now, remote, data, &p.dst_cid);
                DatagramEvent::Handled
            }
            _ => DatagramEvent::Handled,
        }
    }

    /// The token timestamp at `now` (milliseconds).
    fn token_now(&mut self, now: Instant) -> u64 {
        self.token_clock
            .get_or_insert_with(|| TokenClock::new(now, 0))
            .millis(now)
    }

    /// Tells the endpoint the wall-clock time: `since_unix_epoch` at `now`.
    /// Token issue times are then wall-clock times, so tokens stay valid
    /// across a restart and between servers of a fleet sharing the token
    /// secret ([`EndpointConfig::with_fleet_key`]). Without it, times count
    /// from the endpoint's first input and only this endpoint can check
    /// them. The core never reads a clock itself: the runtime calls this.
    pub fn set_wall_clock(&mut self, now: Instant, since_unix_epoch: std::time::Duration) {
        let ms = u64::try_from(since_unix_epoch.as_millis()).unwrap_or(u64::MAX);
        self.token_clock = Some(TokenClock::new(now, ms));
    }

    /// Accepts a pending connection attempt.
    pub fn accept(
        &mut self,
        now: Instant,
        id: IncomingId,
    ) -> Result<ConnectionHandle, AcceptError> {
        let server = self.server.clone().ok_or(AcceptError::Unknown)?;
        let mut incoming = self.take_incoming(id).ok_or(AcceptError::Unknown)?;
        // A CID the client already took from an Initial we sent (RFC 9000
        // §7.2: it discards later packets with another Source CID).
        let answered = incoming.answered_cid;
        let local_cid = answered.unwrap_or_else(|| self.new_cid());
        let token = self.reset_key.token(&local_cid);
        let mut params = server.transport.transport_parameters(local_cid);
        // RFC 9000 §18.2: the largest UDP payload this endpoint accepts.
        params.max_udp_payload_size = self.config.max_udp_payload_size.into_inner().max(1200);
        // RFC 9000 §7.3: after a Retry, original_destination_connection_id
        // is the client's first DCID (from the token) and
        // retry_source_connection_id the Retry's Source CID.
        match incoming.retry {
            Some(retry) => {
                params.original_destination_connection_id = Some(retry.orig_dst_cid);
                params.retry_source_connection_id = Some(retry.retry_src_cid);
            }
            None => params.original_destination_connection_id = Some(incoming.orig_dst_cid),
        }
        params.stateless_reset_token = Some(token);
        // RFC 9000 §9.6.1: the preferred address with its own connection
        // ID (sequence number 1, §5.1.1) and reset token.
        let preferred_cid = (self.config.preferred_address_v4.is_some()
            || self.config.preferred_address_v6.is_some())
        .then(|| {
            let cid = self.new_cid();
            let token = self.reset_key.token(&cid);
            params.preferred_address = Some(crate::transport_params::PreferredAddress {
                address_v4: self.config.preferred_address_v4,
                address_v6: self.config.preferred_address_v6,
                connection_id: cid,
                stateless_reset_token: token,
            });
            (cid, token)
        });
        let address_validated = incoming.remote_address_validated();
        // RFC 9368 §2.3: the version to answer in, and §3: ours to send
        // (Available Versions: every version we support).
        let version = self.negotiated_version(&incoming);
        params.version_information = Some(crate::connection::version::version_information(
            version,
            &self.config.supported_versions,
        ));
        let early_data = incoming.early_data
            && server.crypto.early_data()
            && server.crypto.early_data_keeps([
                params.active_connection_id_limit,
                params.initial_max_data,
                params.initial_max_stream_data_bidi_local,
                params.initial_max_stream_data_bidi_remote,
                params.initial_max_stream_data_uni,
                params.initial_max_streams_bidi,
                params.initial_max_streams_uni,
            ]);
        let tls = TlsSession::server_with(&server.crypto, version, &params, early_data)?;
        let handle = self.next_handle();
        let original = incoming.version;
        let remote = incoming.remote;
        let remote_cid = incoming.src_cid;
        let orig_dst_cid = incoming.orig_dst_cid;
        // RFC 9000 §13.4.1: the first datagram's codepoint is counted too,
        // or a peer that marked it would fail our ACKs' validation.
        let ecn = incoming.ecn;
        let zero_rtt = std::mem::take(&mut incoming.zero_rtt);
        let (mut datagram, more, initial_keys) = incoming.into_parts();
        let (vn, initial_keys) =
            self.server_version_state(original, version, &orig_dst_cid, initial_keys);
        let mut conn = Box::new(Connection::new(ConnectionParams {
            side: Side::Server,
            version,
            config: server.transport.clone(),
            endpoint_config: self.config.clone(),
            tls,
            local_params: params,
            remote,
            local_cid,
            local_reset_token: token,
            remote_cid,
            // The DCID of this Initial: the server's Initial keys derive
            // from it (after a Retry, the Retry's Source CID).
            orig_dst_cid,
            address_validated,
            now,
            rng_seed: self.rng.random(),
            initial_keys: Some(initial_keys),
            vn,
        }));
        if let Some((cid, token)) = preferred_cid {
            conn.issue_preferred_address_cid(cid, token);
        }
        if answered.is_some() {
            // RFC 9000 §12.3: that Initial used packet number 0.
            conn.skip_initial_packet_numbers(1);
        }
        if server.new_tokens.enabled {
            // RFC 9000 §8.1.3: a token for the client's next connection,
            // sent once the handshake is confirmed.
            let now_ms = self.token_now(now);
            let token = self.new_token_key.issue(now_ms, remote, &mut self.rng);
            conn.set_new_token_to_send(token.into());
            self.admission.stats.new_tokens_issued += 1;
        }
        conn.handle_datagram(now, remote, None, ecn, &mut datagram);
        for mut datagram in more {
            conn.handle_datagram(now, remote, None, ecn, &mut datagram);
        }
        for mut early in zero_rtt {
            conn.handle_datagram(now, remote, None, ecn, &mut early);
        }
        self.routes.insert(local_cid, handle);
        if let Some((cid, _)) = preferred_cid {
            self.routes.insert(cid, handle);
        }
        let initial_cid = conn.orig_dst_cid();
        self.initial_routes.insert(initial_cid, handle);
        let slot = self.connections.insert(handle, conn);
        slot.cids.push(local_cid);
        if let Some((cid, _)) = preferred_cid {
            slot.cids.push(cid);
        }
        slot.initial_cid = Some(initial_cid);
        self.route_addr(handle, remote);
        self.admission.accepted(handle, remote);
        self.maintain(handle);
        Ok(handle)
    }

    /// The next datagrams to send, written at the end of `buf`: one, or up
    /// to `max_datagrams` of one connection to one destination (see
    /// [`Connection::poll_transmit`](crate::Connection::poll_transmit)).
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        if let Some((destination, data)) = self.stateless.pop_front() {
            buf.extend_from_slice(&data);
            return Some(Transmit {
                destination,
                size: data.len(),
                segment_size: None,
                ecn: None,
                src: None,
            });
        }
        // Each connection in the queue is asked once at most; one that
        // sends goes to the back, one with nothing to send leaves the queue
        // until something touches it again.
        for _ in 0..self.connections.queued() {
            let (handle, conn) = self.connections.next_queued()?;
            let sent = conn.poll_transmit(now, max_datagrams, buf);
            if sent.is_some() {
                self.connections.touch(handle);
            }
            self.maintain(handle);
            if sent.is_some() {
                return sent;
            }
        }
        None
    }

    /// The earliest time any connection needs [`Endpoint::handle_timeout`].
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.connections.poll_timeout()
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.connections.take_due(now) {
            let handle = self.connections.due(i);
            if let Some(conn) = self.connections.get_mut(handle) {
                conn.handle_timeout(now);
            }
            self.maintain(handle);
        }
    }

    /// The connections whose timers ran in the last
    /// [`Endpoint::handle_timeout`]: they may have events.
    pub fn timed_out(&self) -> &[ConnectionHandle] {
        self.connections.timed_out()
    }

    /// Applies a connection's requests: connection IDs to issue or retire,
    /// and routing cleanup when it is drained.
    fn maintain(&mut self, handle: ConnectionHandle) {
        let Some(slot) = self.connections.slot_untouched(handle) else {
            return;
        };
        let mut drained = false;
        while let Some(ev) = slot.conn.poll_endpoint_event() {
            match ev {
                EndpointEvent::RetireCid(cid) => {
                    if self.routes.get(&cid) == Some(&handle) {
                        self.routes.remove(&cid);
                    }
                    slot.cids.retain(|c| *c != cid);
                }
                EndpointEvent::Drained => drained = true,
                EndpointEvent::ResetToken(token) => {
                    let key = self.reset_tokens.transform(&token);
                    if self.reset_tokens.insert(key, handle) && !slot.reset_tokens.contains(&key) {
                        slot.reset_tokens.push(key);
                    }
                }
                EndpointEvent::RetireResetToken(token) => {
                    let key = self.reset_tokens.transform(&token);
                    self.reset_tokens.remove(&key, handle);
                    slot.reset_tokens.retain(|k| *k != key);
                }
            }
        }
        let handshake_over = slot.conn.is_handshake_complete() || slot.conn.is_closed();
        self.admission.update(handle, handshake_over, drained);
        if drained {
            let cids = std::mem::take(&mut slot.cids);
            let initial_cid = slot.initial_cid.take();
            let reset_tokens = std::mem::take(&mut slot.reset_tokens);
            let addr = slot.addr.take();
            self.unroute(handle, cids, initial_cid, reset_tokens);
            self.unroute_addr(handle, addr);
            return;
        }
        let wanted = slot.conn.cids_wanted();
        // RFC 9000 §5.1.1: "An endpoint that selects a zero-length
        // connection ID during the handshake cannot issue a new connection
        // ID."
        if wanted == 0 || self.config.local_cid_len == 0 {
            return;
        }
        for _ in 0..wanted {
            let cid = self.new_cid();
            let token = self.reset_key.token(&cid);
            self.routes.insert(cid, handle);
            if let Some(slot) = self.connections.slot_untouched(handle) {
                slot.cids.push(cid);
                slot.conn.issue_cid(cid, token);
            }
        }
        // NEW_CONNECTION_ID frames to send.
        self.connections.touch(handle);
    }

    /// A connection ID not routed to any connection, drawing again on a
    /// collision — a bounded number of times: with zero-length IDs (or a
    /// generator whose space is used up) every draw collides, and looping
    /// until one does not would never end. The last draw is returned then;
    /// zero-length IDs cannot tell connections apart anyway.
    fn new_cid(&mut self) -> ConnectionId {
        let mut cid = self.cid_generator.generate();
        for _ in 0..MAX_CID_DRAWS {
            if !self.routes.contains_key(&cid) {
                break;
            }
            cid = self.cid_generator.generate();
        }
        cid
    }

    fn next_handle(&mut self) -> ConnectionHandle {
        let h = ConnectionHandle(self.next_handle);
        self.next_handle += 1;
        h
    }

    fn queue_stateless(&mut self, remote: SocketAddr, data: Vec<u8>) {
        if self.stateless.len() < MAX_STATELESS_QUEUE {
            self.stateless.push_back((remote, data));
        }
    }

    /// RFC 9000 §6.1: answer an unknown version with the ones we speak.
    fn send_version_negotiation(
        &mut self,
        remote: SocketAddr,
        data: &[u8],
        u: &header::UnsupportedVersion,
    ) {
        // RFC 9000 §6.1: only servers send it, and §5.2.2: a server SHOULD
        // not answer datagrams smaller than 1200 bytes (they cannot be a
        // valid client Initial and would amplify).
        if self.server.is_none() || data.len() < 1200 {
            return;
        }
        let mut versions: Vec<u32> = self
            .config
            .supported_versions
            .iter()
            .map(|v| v.number())
            .collect();
        // RFC 9000 §6.3: include a reserved version so clients do not ossify.
        let grease = (self.rng.next_u32() & 0xf0f0_f0f0) | 0x0a0a_0a0a;
        versions.push(grease);
        let mut out =
            Vec::with_capacity(7 + u.dst_cid.len() + u.src_cid.len() + 4 * versions.len());
        let unused: u8 = self.rng.random();
        header::encode_version_negotiation(
            &mut out,
            &data[u.dst_cid.clone()],
            &data[u.src_cid.clone()],
            &versions,
            unused,
        );
        self.queue_stateless(remote, out);
    }

    /// RFC 9000 §10.3: a short-header packet for an unknown connection.
    fn send_stateless_reset(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        data: &[u8],
        dst_cid: &ConnectionId,
    ) {
        // A global rate limit keeps resets from being a reflection tool.
        let window = self.reset_window_start.get_or_insert(now);
        if now.saturating_duration_since(*window) >= std::time::Duration::from_secs(1) {
            *window = now;
            self.resets_in_window = 0;
        }
        if self.resets_in_window >= MAX_RESETS_PER_SECOND {
            return;
        }
        self.resets_in_window += 1;
        if let Some(packet) = reset::build(&self.reset_key, dst_cid, data.len(), &mut self.rng) {
            self.queue_stateless(remote, packet);
        }
    }
}
