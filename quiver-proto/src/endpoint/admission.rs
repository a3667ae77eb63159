//! Admission control on the server side (issue 13): how many connections
//! and handshakes the endpoint holds, how many per source address, and the
//! point above which new clients must prove their address with a Retry
//! before any state is kept for them (RFC 9000 §8.1.2) or are refused
//! (RFC 9000 §5.2.2, §10.2.3).
//!
//! Everything here is O(1) per datagram: two counters, and one hash map
//! keyed by source address whose entries exist only while that address has
//! handshakes in progress, so its size is bounded by the handshake limit.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use rand::Rng;

use super::hash::SeededState;
use super::token::RetryToken;
use super::{DatagramEvent, Endpoint, stateless};
use crate::connection::ConnectionHandle;
use crate::packet::header::PartialPacket;
use crate::{ConnectionId, TransportErrorCode, Version};

/// Limits on what a server endpoint takes on; part of
/// [`super::ServerConfig`].
///
/// The defaults are sized for a small (2-core) server that must keep
/// serving its existing connections while flooded with fresh Initials:
///
/// - `retry_threshold` = 64: every handshake costs a certificate signature
///   (0.1–1 ms of one core for ECDSA P-256 / RSA-2048) and up to three
///   times the client's bytes in replies before the address is validated
///   (RFC 9000 §8.1). 64 unvalidated handshakes in flight bound that work to
///   well under a second of one core; above it, a client must first answer
///   a Retry, which costs us one AEAD seal and no state, and which a
///   spoofed source cannot answer.
/// - `max_handshakes` = 1024: the hard limit, reached only by clients that
///   answered a Retry (real addresses). 1024 signatures are about a second
///   of one core, inside the default idle timeout a handshake has to
///   finish in.
/// - `max_handshakes_per_source` = 16: enough for a NAT with several users
///   starting connections at once; one host cannot take more than a
///   quarter of the pre-Retry budget.
/// - `max_connections` = 10,000: idle connections cost nothing per datagram
///   (endpoint/schedule.rs); memory (buffers, stream state) is what they
///   cost, some tens of kilobytes each at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Connections (accepted and not yet drained, plus attempts awaiting
    /// the application) at most; new clients above it are refused.
    pub max_connections: usize,
    /// Handshakes in progress at most: accepted connections whose
    /// handshake is not complete plus attempts awaiting the application.
    /// New clients above it are refused with CONNECTION_REFUSED.
    pub max_handshakes: usize,
    /// Handshakes in progress from one source address at most (an IPv4
    /// address, or an IPv6 /64 prefix, which one host usually owns whole).
    /// Above it, a client whose address is not validated gets a Retry and
    /// one whose address is validated is refused.
    pub max_handshakes_per_source: usize,
    /// Above this many handshakes in progress, a new client without a
    /// valid Retry token is answered with a Retry and no state is kept
    /// (RFC 9000 §8.1.2). `usize::MAX` disables automatic Retry; 0 retries
    /// every client.
    pub retry_threshold: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_handshakes: 1024,
            max_handshakes_per_source: 16,
            retry_threshold: 64,
        }
    }
}

impl AdmissionConfig {
    /// No limits and no automatic Retry: every attempt reaches the
    /// application (benchmarks, tests that open many connections at once).
    pub const fn unlimited() -> Self {
        Self {
            max_connections: usize::MAX,
            max_handshakes: usize::MAX,
            max_handshakes_per_source: usize::MAX,
            retry_threshold: usize::MAX,
        }
    }
}

/// New clients refused by the endpoint, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusedStats {
    /// [`AdmissionConfig::max_connections`] was reached.
    pub connections: u64,
    /// [`AdmissionConfig::max_handshakes`] was reached.
    pub handshakes: u64,
    /// [`AdmissionConfig::max_handshakes_per_source`] was reached by a
    /// client whose address was validated.
    pub per_source: u64,
    /// The application called [`Endpoint::refuse`].
    pub application: u64,
}

/// What the endpoint did with new clients, and what it holds now
/// ([`Endpoint::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Attempts accepted ([`Endpoint::accept`]).
    pub accepted: u64,
    /// Attempts refused with CONNECTION_REFUSED, by reason.
    pub refused: RefusedStats,
    /// Clients sent a Retry by admission control, without any state kept.
    pub retried_automatically: u64,
    /// Attempts answered with [`Endpoint::retry`] by the application.
    pub retried_by_application: u64,
    /// Attempts dropped by the application ([`Endpoint::ignore`]).
    pub ignored: u64,
    /// Handshakes in progress now: accepted connections whose handshake is
    /// not complete, plus attempts awaiting the application.
    pub handshakes: usize,
    /// Attempts awaiting the application now.
    pub pending_incoming: usize,
    /// Server connections now: accepted and not yet drained.
    pub connections: usize,
    /// NEW_TOKEN tokens made for accepted connections (RFC 9000 §8.1.3).
    pub new_tokens_issued: u64,
    /// Initials whose NEW_TOKEN token validated the client's address.
    pub new_tokens_accepted: u64,
    /// NEW_TOKEN tokens that were not ours, altered, or issued to another
    /// IP address: treated as no token.
    pub new_tokens_invalid: u64,
    /// NEW_TOKEN tokens past their lifetime: treated as no token.
    pub new_tokens_expired: u64,
    /// NEW_TOKEN tokens used again (RFC 9000 §8.1.4): treated as no token.
    pub new_tokens_reused: u64,
    /// Client probes (a PING-only Initial) that arrived without their
    /// ClientHello and were acknowledged, so the client resent it at once.
    pub probes_acknowledged: u64,
}

/// Why admission control refused a client.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Connections,
    Handshakes,
    PerSource,
}

/// The admission state of a server endpoint.
#[derive(Debug)]
pub(super) struct Admission {
    pub(super) stats: EndpointStats,
    /// Accepted connections not yet drained → source key and whether their
    /// handshake is still in progress (our own handles: the seeded hasher).
    live: HashMap<ConnectionHandle, (IpAddr, bool), SeededState>,
    /// Accepted connections still handshaking.
    handshaking: usize,
    /// Source key → handshakes in progress (attempts awaiting the
    /// application and handshaking connections). Entries leave at zero, so
    /// there are at most as many as handshakes in progress. Keys come from
    /// the network: std's SipHash.
    per_source: HashMap<IpAddr, usize>,
}

/// The key a source address is counted under: an IPv4 address, or the /64
/// prefix of an IPv6 address.
pub(super) fn source_key(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (!0u128 << 64))),
        },
    }
}

impl Admission {
    pub(super) fn new(hasher: SeededState) -> Self {
        Self {
            stats: EndpointStats::default(),
            live: HashMap::with_hasher(hasher),
            handshaking: 0,
            per_source: HashMap::new(),
        }
    }

    fn add_source(&mut self, key: IpAddr) {
        *self.per_source.entry(key).or_insert(0) += 1;
    }

    fn release_source(&mut self, key: IpAddr) {
        if let Some(n) = self.per_source.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&key);
            }
        }
    }

    /// A pending attempt from `remote` was created.
    pub(super) fn incoming_added(&mut self, remote: SocketAddr) {
        self.add_source(source_key(remote));
    }

    /// A pending attempt from `remote` left the queue (accepted, refused,
    /// retried or ignored).
    pub(super) fn incoming_removed(&mut self, remote: SocketAddr) {
        self.release_source(source_key(remote));
    }

    /// An attempt from `remote` became connection `handle`.
    pub(super) fn accepted(&mut self, handle: ConnectionHandle, remote: SocketAddr) {
        let key = source_key(remote);
        self.stats.accepted += 1;
        self.handshaking += 1;
        self.add_source(key);
        self.live.insert(handle, (key, true));
    }

    /// Called each time the endpoint looks at a connection's events: a
    /// finished (or abandoned) handshake stops counting as one, a drained
    /// connection stops counting at all. One look-up.
    pub(super) fn update(&mut self, handle: ConnectionHandle, handshake_over: bool, drained: bool) {
        let Some((key, handshaking)) = self.live.get_mut(&handle) else {
            return;
        };
        let key = *key;
        if *handshaking && (handshake_over || drained) {
            *handshaking = false;
            self.handshaking -= 1;
            self.release_source(key);
        }
        if drained {
            self.live.remove(&handle);
        }
    }

    /// The connection was removed from the endpoint.
    pub(super) fn removed(&mut self, handle: ConnectionHandle) {
        self.update(handle, true, true);
    }

    /// The current figures, with the counts that are state rather than
    /// history filled in.
    pub(super) fn snapshot(&self, pending_incoming: usize) -> EndpointStats {
        EndpointStats {
            handshakes: self.handshaking + pending_incoming,
            pending_incoming,
            connections: self.live.len(),
            ..self.stats
        }
    }

    /// What to do with a new client: `None` to go on and make an attempt,
    /// `Some(Ok(()))` to send a Retry, `Some(Err(_))` to refuse.
    fn decide(
        &self,
        config: &AdmissionConfig,
        remote: SocketAddr,
        validated: bool,
        pending_incoming: usize,
    ) -> Option<Result<(), Refusal>> {
        let handshakes = self.handshaking + pending_incoming;
        if self.live.len() + pending_incoming >= config.max_connections {
            return Some(Err(Refusal::Connections));
        }
        if handshakes >= config.max_handshakes {
            return Some(Err(Refusal::Handshakes));
        }
        let from_source = self
            .per_source
            .get(&source_key(remote))
            .copied()
            .unwrap_or(0);
        if from_source >= config.max_handshakes_per_source {
            // An unvalidated source may be spoofed: make it prove its
            // address before refusing the real owner because of forgeries.
            return Some(if validated {
                Err(Refusal::PerSource)
            } else {
                Ok(())
            });
        }
        // RFC 9000 §8.1.2: Retry validates the address before the server
        // commits state (and crypto work) to the client.
        (!validated && handshakes >= config.retry_threshold).then_some(Ok(()))
    }
}

impl Endpoint {
    /// What the endpoint did with new clients and holds now.
    pub fn stats(&self) -> EndpointStats {
        self.admission
            .snapshot(self.incoming.len() + self.assembly.len())
    }

    /// Admission control for a new client's Initial `p` from `remote`,
    /// before any state is made for it: `Some` when it was answered here
    /// (a Retry or a refusal) and no attempt must be made.
    pub(super) fn admit(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        p: &PartialPacket,
        version: Version,
        validated: bool,
    ) -> Option<DatagramEvent> {
        let config = self.server.as_ref()?.admission;
        let decision = self.admission.decide(
            &config,
            remote,
            validated,
            self.incoming.len() + self.assembly.len(),
        )?;
        match decision {
            Ok(()) => {
                self.admission.stats.retried_automatically += 1;
                self.send_retry(now, remote, version, &p.dst_cid, &p.src_cid);
            }
            Err(reason) => {
                let counter = match reason {
                    Refusal::Connections => &mut self.admission.stats.refused.connections,
                    Refusal::Handshakes => &mut self.admission.stats.refused.handshakes,
                    Refusal::PerSource => &mut self.admission.stats.refused.per_source,
                };
                *counter += 1;
                self.send_refusal(remote, version, &p.dst_cid, &p.src_cid);
            }
        }
        Some(DatagramEvent::Handled)
    }

    /// RFC 9000 §5.2.2 and §10.2.3: a refusal is a CONNECTION_CLOSE with
    /// CONNECTION_REFUSED in an Initial packet, and no state is kept.
    pub(super) fn send_refusal(
        &mut self,
        remote: SocketAddr,
        version: Version,
        client_dst_cid: &ConnectionId,
        client_src_cid: &ConnectionId,
    ) {
        let server_cid = self.new_cid();
        let close = stateless::initial_close(
            version,
            (client_dst_cid, client_src_cid),
            &server_cid,
            0,
            TransportErrorCode::CONNECTION_REFUSED,
            "",
        );
        self.queue_stateless(remote, close);
    }

    /// RFC 9000 §8.1.2, §17.2.5: a Retry carrying a token bound to
    /// `remote` and the client's first Destination CID.
    pub(super) fn send_retry(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        version: Version,
        client_dst_cid: &ConnectionId,
        client_src_cid: &ConnectionId,
    ) {
        let retry_src_cid = self.new_cid();
        let now_ms = self.token_now(now);
        let token = self.token_key.issue(
            now_ms,
            remote,
            &RetryToken {
                orig_dst_cid: *client_dst_cid,
                retry_src_cid,
            },
        );
        let unused: u8 = self.rng.random();
        if let Some(packet) = stateless::retry(
            version,
            client_dst_cid,
            client_src_cid,
            &retry_src_cid,
            &token,
            unused,
        ) {
            self.queue_stateless(remote, packet);
        }
    }
}

#[cfg(test)]
mod tests;
