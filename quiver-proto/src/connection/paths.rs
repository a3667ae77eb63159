//! Network paths (RFC 9000 §9): the 4-tuple a connection sends on, its
//! validation (§8.2) and its anti-amplification budget (§8.1, §9.3.1).
//!
//! A connection has one active path (where non-probing packets go) and at
//! most [`MAX_OTHER_PATHS`] others: paths being probed, the last validated
//! path kept as a fallback after a migration (§9.3.2), and paths the peer
//! probes us on. The active path's congestion controller, RTT estimator,
//! pacer and PMTU state live in the connection itself (they are what every
//! packet touches); a path that stops being active keeps them in
//! [`Path::saved`], so a migration that is abandoned restores them
//! (§9.3: "restoring loss detection and congestion state").

use std::net::SocketAddr;
use std::time::Instant;

use crate::ConnectionId;
use crate::congestion::{Controller, Pacer};
use crate::recovery::RttEstimator;

use super::mtud::MtuDiscovery;

/// Paths kept besides the active one. Each costs a few hundred bytes; a
/// peer spraying packets from many addresses only ever evicts its own
/// unvalidated paths.
pub(crate) const MAX_OTHER_PATHS: usize = 4;
/// PATH_RESPONSE payloads owed on one path. RFC 9000 §8.2.2 asks for one
/// response per challenge; a flood of challenges keeps only the newest.
const MAX_RESPONSES: usize = 4;

/// The congestion and recovery state of a path that is not active.
#[derive(Debug)]
pub(crate) struct PathCongestion {
    pub(crate) rtt: RttEstimator,
    pub(crate) cc: Box<dyn Controller>,
    pub(crate) pacer: Pacer,
    pub(crate) delivery: crate::congestion::delivery_rate::DeliveryRateEstimator,
    pub(crate) max_udp_payload: u16,
    pub(crate) mtud: Option<MtuDiscovery>,
}

/// An outstanding path validation (RFC 9000 §8.2.1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Challenge {
    /// The unpredictable payload we expect echoed.
    pub(crate) data: [u8; 8],
    /// When to send the next PATH_CHALLENGE (None: due now).
    pub(crate) next_send: Option<Instant>,
    /// PATH_CHALLENGEs sent so far, for the backoff.
    pub(crate) sent: u32,
    /// The first resend interval: the PTO of the path in use when the
    /// validation began (the new path's is unknown).
    pub(crate) interval: std::time::Duration,
    /// RFC 9000 §8.2.4: when the validation is abandoned.
    pub(crate) deadline: Instant,
}

/// What identifies a path: the peer's address and, on a server that
/// offers a preferred address (RFC 9000 §9.6), which of its own addresses
/// the path uses. `local` is `None` for the address the connection was
/// accepted on (and always on a client: its runtime sends from one local
/// address per connection, and a local change moves the whole connection,
/// see [`super::Connection::migrate`]); `Some` only for the server's
/// preferred address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathKey {
    pub(crate) remote: SocketAddr,
    pub(crate) local: Option<SocketAddr>,
}

/// One network path, identified by its [`PathKey`].
#[derive(Debug)]
pub(crate) struct Path {
    pub(crate) remote: SocketAddr,
    /// The server's preferred address this path uses, `None` for the
    /// original one (see [`PathKey`]).
    pub(crate) local: Option<SocketAddr>,
    /// RFC 9000 §8: the peer's ownership of the address is confirmed.
    pub(crate) validated: bool,
    /// Bytes received on this path while it was unvalidated (§8.1).
    pub(crate) received: u64,
    /// Bytes sent on this path while it was unvalidated (§8.1).
    pub(crate) sent: u64,
    pub(crate) challenge: Option<Challenge>,
    /// Echoes owed for PATH_CHALLENGEs received on this path (§8.2.2).
    pub(crate) responses: Vec<[u8; 8]>,
    /// Congestion state while not active.
    pub(crate) saved: Option<Box<PathCongestion>>,
    /// The Destination CID the peer last used on this path: a change of
    /// address with a new CID is an intentional migration, the same CID a
    /// NAT rebinding (§9.3.3, §9.5).
    pub(crate) peer_dst_cid: Option<ConnectionId>,
    /// When a packet last arrived on this path (eviction order).
    pub(crate) last_received: Option<Instant>,
    /// Whether the anti-amplification limit applies: to an address the
    /// peer showed up from, not to one we chose to probe (a server's
    /// preferred address, RFC 9000 §9.6.2).
    pub(crate) limited: bool,
    /// The peer's connection ID to use on this path while it is probed,
    /// when it differs from the active one (RFC 9000 §9.5).
    pub(crate) dst_cid: Option<ConnectionId>,
    /// A server's path on its preferred address that the client's
    /// highest-numbered non-probing packet arrived on before the path was
    /// validated: the server moves there once validation succeeds (RFC
    /// 9000 §9.6.2), with this Destination CID the client used.
    pub(crate) migrate_when_validated: Option<ConnectionId>,
}

impl Path {
    pub(crate) fn new(remote: SocketAddr, validated: bool) -> Self {
        Self {
            remote,
            local: None,
            validated,
            received: 0,
            sent: 0,
            challenge: None,
            responses: Vec::new(),
            saved: None,
            peer_dst_cid: None,
            last_received: None,
            limited: true,
            dst_cid: None,
            migrate_when_validated: None,
        }
    }

    /// A path we probe on our own initiative, with the peer's connection
    /// ID `dst_cid` reserved for it.
    pub(crate) fn probe(remote: SocketAddr, dst_cid: ConnectionId) -> Self {
        Self {
            limited: false,
            dst_cid: Some(dst_cid),
            ..Self::new(remote, false)
        }
    }

    /// RFC 9000 §8.1: what may still be sent to an unvalidated address.
    pub(crate) fn budget(&self) -> u64 {
        if self.validated || !self.limited {
            return u64::MAX;
        }
        (3 * self.received).saturating_sub(self.sent)
    }

    /// Counts a datagram received on this path.
    pub(crate) fn on_received(&mut self, now: Instant, len: usize) {
        if !self.validated {
            self.received += len as u64;
        }
        self.last_received = Some(now);
    }

    /// Counts a datagram sent on this path.
    pub(crate) fn on_sent(&mut self, len: usize) {
        if !self.validated {
            self.sent += len as u64;
        }
    }

    /// Queues the echo of a PATH_CHALLENGE received on this path.
    pub(crate) fn owe_response(&mut self, data: [u8; 8]) {
        if self.responses.len() >= MAX_RESPONSES {
            self.responses.remove(0);
        }
        self.responses.push(data);
    }

    /// Whether a probe datagram is due on this path now.
    pub(crate) fn wants_probe(&self, now: Instant) -> bool {
        !self.responses.is_empty() || self.challenge_due(now)
    }

    /// Whether a PATH_CHALLENGE is due on this path now.
    pub(crate) fn challenge_due(&self, now: Instant) -> bool {
        self.challenge
            .is_some_and(|c| c.next_send.is_none_or(|t| t <= now))
    }

    /// The path's identity.
    pub(crate) fn key(&self) -> PathKey {
        PathKey {
            remote: self.remote,
            local: self.local,
        }
    }

    /// Whether only the port differs from `other` (RFC 9000 §9.4: a NAT
    /// rebinding, which may keep the congestion state).
    pub(crate) fn same_ip(&self, other: SocketAddr) -> bool {
        self.remote.ip() == other.ip()
    }
}

/// The paths other than the active one, bounded.
#[derive(Debug, Default)]
pub(crate) struct OtherPaths {
    paths: Vec<Path>,
}

impl OtherPaths {
    pub(crate) fn find(&self, key: PathKey) -> Option<usize> {
        self.paths.iter().position(|p| p.key() == key)
    }

    pub(crate) fn get_mut(&mut self, i: usize) -> &mut Path {
        &mut self.paths[i]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Path> {
        self.paths.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Path> {
        self.paths.iter_mut()
    }

    pub(crate) fn take(&mut self, i: usize) -> Path {
        self.paths.remove(i)
    }

    /// Adds a path, evicting when full: unvalidated paths first (oldest
    /// activity first), and a validated one (the fallback) only when every
    /// path is validated.
    pub(crate) fn insert(&mut self, path: Path) -> usize {
        if self.paths.len() >= MAX_OTHER_PATHS {
            let victim = self
                .paths
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| (p.validated, p.last_received))
                .map(|(i, _)| i)
                .expect("full");
            self.paths.remove(victim);
        }
        self.paths.push(path);
        self.paths.len() - 1
    }

    /// Removes every path for which `keep` does not hold.
    pub(crate) fn retain(&mut self, keep: impl FnMut(&Path) -> bool) {
        self.paths.retain(keep);
    }

    /// The most recently used validated path, for falling back to
    /// (RFC 9000 §9.3.2: "the last validated peer address").
    pub(crate) fn last_validated(&self) -> Option<usize> {
        self.paths
            .iter()
            .enumerate()
            .filter(|(_, p)| p.validated)
            .max_by_key(|(_, p)| p.last_received)
            .map(|(i, _)| i)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.paths.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn amplification_budget_is_three_times_received_until_validated() {
        // RFC 9000 §8.1, §9.3.1.
        let mut p = Path::new(addr(1), false);
        assert_eq!(p.budget(), 0);
        p.on_received(crate::connection::tests::epoch(), 100);
        assert_eq!(p.budget(), 300);
        p.on_sent(250);
        assert_eq!(p.budget(), 50);
        p.on_sent(100);
        assert_eq!(p.budget(), 0);
        p.validated = true;
        assert_eq!(p.budget(), u64::MAX);
    }

    #[test]
    fn responses_are_bounded_newest_kept() {
        let mut p = Path::new(addr(1), true);
        for i in 0..10u8 {
            p.owe_response([i; 8]);
        }
        assert_eq!(p.responses, vec![[6; 8], [7; 8], [8; 8], [9; 8]]);
    }

    #[test]
    fn eviction_prefers_unvalidated_and_stale_paths() {
        let now = crate::connection::tests::epoch();
        let mut others = OtherPaths::default();
        let mut fallback = Path::new(addr(1), true);
        fallback.last_received = Some(now);
        others.insert(fallback);
        for port in 2..20 {
            let mut p = Path::new(addr(port), false);
            p.last_received = Some(now + std::time::Duration::from_millis(u64::from(port)));
            others.insert(p);
        }
        assert_eq!(others.len(), MAX_OTHER_PATHS);
        let key = |port| PathKey {
            remote: addr(port),
            local: None,
        };
        assert!(others.find(key(1)).is_some(), "the validated path stays");
        assert!(others.find(key(19)).is_some());
        assert!(others.find(key(2)).is_none());
        assert_eq!(others.last_validated(), others.find(key(1)));
    }
}
