//! Path validation (RFC 9000 §8.2) and connection migration (§9): which
//! path a datagram came on, moving to the peer's new address, validating
//! it and the old one, falling back when validation fails, and the
//! client's own moves.

use crate::qlog::PathState;
use std::net::SocketAddr;
use std::time::Instant;

use rand::RngCore;

use super::paths::{Challenge, Path, PathCongestion, PathKey};
use super::spaces::SpaceId;
use super::timers::Timer;
use super::{Connection, ConnectionError, EndpointEvent, State};
use crate::ConnectionId;
use crate::congestion::Pacer;
use crate::frame::Frame;
use crate::recovery::RttEstimator;

/// The smallest budget a probe datagram fits in: a short header with a
/// 20-byte CID, a PATH_CHALLENGE and the AEAD tag.
/// PINGs sent after stream data stops arriving mid-transfer (see
/// `Connection::on_stream_data_arrived`).
const SILENCE_PROBES: u32 = 3;

pub(crate) const MIN_PROBE_BUDGET: u64 = 1 + 20 + 4 + 9 + 16;

/// Where a received datagram came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RxPath {
    /// The active path.
    Active,
    /// A path we know besides the active one.
    Other,
    /// An address we have no state for: a path is created once a packet
    /// from it authenticates (junk creates nothing).
    New,
}

/// Why [`Connection::migrate`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MigrateError {
    /// RFC 9000 §9: "An endpoint MUST NOT initiate connection migration
    /// before the handshake is confirmed".
    #[error("the handshake is not confirmed yet")]
    NotConfirmed,
    /// The peer sent disable_active_migration (RFC 9000 §18.2).
    #[error("the peer disabled active migration")]
    DisabledByPeer,
    /// Only clients move (a server's other addresses are its preferred
    /// address, RFC 9000 §9.6).
    #[error("only a client can migrate")]
    NotClient,
    /// The connection has ended.
    #[error("the connection is closed")]
    Closed,
}

/// Whether a frame is a probing frame (RFC 9000 §9.1: "PATH_CHALLENGE,
/// PATH_RESPONSE, NEW_CONNECTION_ID, and PADDING frames are 'probing
/// frames', and all other frames are 'non-probing frames'").
pub(crate) fn is_probing(f: &Frame<'_>) -> bool {
    matches!(
        f,
        Frame::Padding(_)
            | Frame::PathChallenge(_)
            | Frame::PathResponse(_)
            | Frame::NewConnectionId(_)
    )
}

impl Connection {
    /// Classifies a datagram's source and counts it against that path's
    /// anti-amplification budget. Returns `None` when the datagram must be
    /// dropped.
    pub(crate) fn rx_path(&mut self, now: Instant, key: PathKey, len: usize) -> Option<RxPath> {
        if key == self.path.key() {
            self.path.on_received(now, len);
            return Some(RxPath::Active);
        }
        if let Some(i) = self.others.find(key) {
            self.others.get_mut(i).on_received(now, len);
            return Some(RxPath::Other);
        }
        // RFC 9000 §9: "If a client receives packets from an unknown server
        // address, the client MUST discard these packets." A server does
        // not let the peer migrate before the handshake is confirmed (§9:
        // the peer "MUST NOT initiate connection migration before the
        // handshake is confirmed"); it drops such packets, without a
        // stateless reset.
        if self.side.is_client() || !self.handshake_confirmed {
            return None;
        }
        // RFC 9000 §9: a peer told disable_active_migration "MUST NOT send
        // packets (including probing packets ...) from a different local
        // address to the address the peer used during the handshake"; if
        // it does, we "MUST either drop the incoming packets on that path
        // without generating a Stateless Reset or proceed with path
        // validation and allow the peer to migrate". We validate: a NAT
        // rebinding looks the same as a migration and is no choice of the
        // peer's ("Not all changes of peer address are intentional"), and
        // dropping would end every connection whose NAT moved it.
        Some(RxPath::New)
    }

    /// A packet of the current datagram authenticated: a new address
    /// gets its path now (with the datagram counted against its
    /// anti-amplification budget), before the frames are processed.
    pub(crate) fn on_authenticated(&mut self, now: Instant, rx: RxPath, datagram_len: usize) {
        let key = self.rx_key();
        if rx == RxPath::New && self.others.find(key).is_none() {
            let mut path = Path::new(key.remote, false);
            path.local = key.local;
            path.on_received(now, datagram_len);
            if key.local.is_some() {
                // RFC 9000 §9.6.2: "The server MUST probe on the path
                // toward the client from its preferred address."
                path.challenge = Some(self.new_challenge(now));
                // §9.5: "An endpoint MUST NOT reuse a connection ID when
                // sending from more than one local address": the path
                // gets a spare ID of the client's (without one, the
                // active ID is reused, linkably).
                path.dst_cid = self.cids.spare_remote();
                if path.dst_cid.is_none() {
                    tracing::debug!("no spare connection ID for the preferred address");
                }
                self.qlog_path(now, key.remote, PathState::ProbingStarted);
            }
            self.others.insert(path);
            self.arm_path_timer(now);
        }
    }

    /// The path of the datagram being processed.
    pub(crate) fn rx_key(&self) -> PathKey {
        PathKey {
            remote: self.rx_remote,
            local: self.rx_local,
        }
    }

    /// Whether `local` is one of the preferred addresses this server
    /// offered (RFC 9000 §9.6.1).
    pub(crate) fn is_preferred_local(&self, local: SocketAddr) -> bool {
        if self.side.is_client() {
            return false;
        }
        self.local_params.preferred_address.is_some_and(|pa| {
            pa.address_v4.map(SocketAddr::V4) == Some(local)
                || pa.address_v6.map(SocketAddr::V6) == Some(local)
        })
    }

    /// A packet from another path was processed; `largest` says it has
    /// the highest packet number of its space so far, `non_probing` that
    /// it carried a non-probing frame.
    pub(crate) fn after_packet_from(
        &mut self,
        now: Instant,
        rx: RxPath,
        dst_cid: ConnectionId,
        largest: bool,
        non_probing: bool,
    ) {
        if rx == RxPath::Active {
            self.path.peer_dst_cid = Some(dst_cid);
            return;
        }
        // RFC 9000 §9: "Clients are responsible for initiating all
        // migrations": a server that sends from another of its addresses
        // (its original one, after we moved to its preferred address) has
        // not moved us.
        if self.side.is_client() {
            return;
        }
        // §9.3: "An endpoint only changes the address to which it sends
        // packets in response to the highest-numbered non-probing packet."
        if !(non_probing && largest) || self.is_closed() {
            return;
        }
        let key = self.rx_key();
        if key.local.is_none() && self.path.local.is_some() {
            // RFC 9000 §9.6.2: once we send from the preferred address, the
            // server "SHOULD drop newer packets for this connection that
            // are received on the old IP address" and "MAY continue to
            // process delayed packets": they are processed, but do not
            // move us back.
            return;
        }
        if key.local.is_some() {
            // RFC 9000 §9.6.2: "The server MUST send non-probing packets
            // from its original address until it receives a non-probing
            // packet from the client at its preferred address and until
            // the server has validated the new path."
            let Some(i) = self.others.find(key) else {
                return;
            };
            let path = self.others.get_mut(i);
            if !path.validated {
                path.migrate_when_validated = Some(dst_cid);
                return;
            }
        }
        self.migrate_to_peer_address(now, key, dst_cid);
    }

    /// RFC 9000 §9.3: the peer moved to the path `key` (one in `others`);
    /// on a server, also the move to its preferred address (§9.6.2).
    fn migrate_to_peer_address(&mut self, now: Instant, key: PathKey, dst_cid: ConnectionId) {
        let Some(i) = self.others.find(key) else {
            return;
        };
        let remote = key.remote;
        let mut new = self.others.take(i);
        new.migrate_when_validated = None;
        let reserved = new.dst_cid.take();
        // A move between the server's own addresses is a new path too
        // (RFC 9000 §9.4 keeps the state only for a peer's port change).
        let same_ip = self.path.same_ip(remote);
        let port_only = same_ip && self.path.local == key.local;
        // Challenges are timed from the path we are leaving (the new one
        // has no RTT sample yet).
        let challenge_new = self.new_challenge(now);
        let challenge_old = self.new_challenge(now);
        // A new Destination CID means the peer moved on purpose; RFC 9000
        // §9.5: "an endpoint MUST NOT reuse a connection ID when sending to
        // more than one destination address" — a NAT rebinding (same CID)
        // may keep it ("MAY continue to use the current connection ID").
        let intentional = self.path.peer_dst_cid.is_some_and(|c| c != dst_cid);
        let mut old = std::mem::replace(&mut self.path, new);
        self.path.peer_dst_cid = Some(dst_cid);
        tracing::debug!(from = %old.remote, to = %remote, port_only, intentional, "peer migrated");
        self.stats.migrations += 1;
        self.qlog_path(now, remote, PathState::Migrated);
        // RFC 9000 §13.4.2: ECN is validated on each new path.
        self.ecn.restart(self.config.ecn);

        // RFC 9000 §9.4: congestion state. A path we return to gets back
        // what it had; a new address starts afresh unless only the port
        // changed (NAT rebinding: "MAY instead retain").
        if let Some(saved) = self.path.saved.take() {
            old.saved = Some(self.swap_congestion(*saved));
        } else if !port_only {
            let fresh = self.fresh_congestion(now);
            old.saved = Some(self.swap_congestion(fresh));
        }
        if let Some(cid) = reserved.filter(|c| self.cids.switch_remote_to(c)) {
            // The ID this path was probed with (§9.5).
            tracing::trace!(%cid, "moved to the path's reserved connection ID");
        } else if intentional && !self.cids.rotate_remote() {
            tracing::debug!("peer migrated but gave us no spare connection ID");
        }
        if !intentional && !same_ip {
            // A NAT rebinding to a new address under the same connection
            // ID: our policy is to move the peer to fresh IDs of ours so
            // that one ID does not link the two paths any longer (§9.5).
            // Port-only changes (the common NAT timeout) keep them.
            self.cids.rotate_local();
        }
        // §9.3: "MUST initiate path validation ... if validation is not
        // already underway".
        if !self.path.validated && self.path.challenge.is_none() {
            self.path.challenge = Some(challenge_new);
        }
        // §9.3.3: "In response to an apparent migration, endpoints MUST
        // validate the previously active path using a PATH_CHALLENGE
        // frame." Only a path that was validated is worth keeping to fall
        // back to; an unvalidated one is abandoned (§9.3: "After changing
        // the address ..., an endpoint can abandon any path validation for
        // other addresses").
        // A move between our own addresses (RFC 9000 §9.6.2) leaves the
        // peer's address as it was: nothing to re-check, and a challenge
        // from the old address would reuse the new path's ID there (§9.5).
        if old.validated {
            if old.challenge.is_none() && old.remote != remote {
                old.challenge = Some(challenge_old);
            }
            self.others.insert(old);
        }
        self.others
            .retain(|p| p.validated || p.challenge.is_none() || p.remote == remote);
        // A move elsewhere supersedes one awaiting validation (§9.3: the
        // highest-numbered non-probing packet decides).
        for p in self.others.iter_mut() {
            p.migrate_when_validated = None;
        }
        self.arm_path_timer(now);
        self.set_loss_detection_timer(now);
    }

    /// A fresh PATH_CHALLENGE, due now, abandoned after RFC 9000 §8.2.4's
    /// "three times the larger of the current PTO or the PTO for the new
    /// path (using kInitialRtt)".
    fn new_challenge(&mut self, now: Instant) -> Challenge {
        let mut data = [0u8; 8];
        // §8.2.1: "MUST use unpredictable data in every PATH_CHALLENGE".
        self.rng.fill_bytes(&mut data);
        let initial = RttEstimator::new(self.config.initial_rtt);
        let max_ack_delay = self.peer_max_ack_delay();
        let new_path_pto =
            crate::recovery::pto_duration(&initial, SpaceId::ApplicationData, max_ack_delay, 0);
        let current = self.pto_duration(SpaceId::ApplicationData);
        Challenge {
            data,
            next_send: None,
            sent: 0,
            interval: current,
            deadline: now + 3 * current.max(new_path_pto),
        }
    }

    /// Swaps the connection's congestion state for `next`, returning the
    /// old one: every change of path that changes the congestion state
    /// goes through here (RFC 9000 §9.4).
    fn swap_congestion(&mut self, mut next: PathCongestion) -> Box<PathCongestion> {
        next.delivery.activate_after(&self.delivery);
        // RFC 9002 §7.6.2 compares losses with the path's RTT samples:
        // losses on the old path say nothing about the new one.
        self.persistent.reset();
        let old = PathCongestion {
            rtt: std::mem::replace(&mut self.rtt, next.rtt),
            cc: std::mem::replace(&mut self.cc, next.cc),
            pacer: std::mem::replace(&mut self.pacer, next.pacer),
            delivery: std::mem::replace(&mut self.delivery, next.delivery),
            max_udp_payload: std::mem::replace(&mut self.max_udp_payload, next.max_udp_payload),
            mtud: std::mem::replace(&mut self.mtud, next.mtud),
        };
        // draft-ietf-quic-ack-frequency-12 §8.4: a new controller and RTT
        // estimator call for a new ACK_FREQUENCY (the defaults, until the
        // new path's RTT is known).
        self.ack_frequency_on_path_change();
        Box::new(old)
    }

    /// A PMTU search from `base` up to what we allow and what the peer
    /// accepts (RFC 9000 §14.3.1), if discovery is configured.
    pub(crate) fn new_mtu_discovery(&self, base: u16) -> Option<super::mtud::MtuDiscovery> {
        let upper = self.config.mtu_discovery_upper_bound?;
        let peer_max = self.peer_params.as_ref().map_or(1200, |p| {
            p.max_udp_payload_size.min(u64::from(u16::MAX)) as u16
        });
        Some(super::mtud::MtuDiscovery::new(
            base,
            upper.min(peer_max),
            self.config.mtu_raise_interval,
        ))
    }

    /// Initial values for a new path (RFC 9002 Appendices A.3 and B.3);
    /// PMTU discovery starts again from the minimum.
    fn fresh_congestion(&self, now: Instant) -> PathCongestion {
        let mtu = 1200;
        let mtud = self.new_mtu_discovery(mtu);
        PathCongestion {
            rtt: RttEstimator::new(self.config.initial_rtt),
            cc: self.config.congestion.build(now, mtu),
            pacer: Pacer::new(),
            delivery: crate::congestion::delivery_rate::DeliveryRateEstimator::new(now),
            max_udp_payload: mtu,
            mtud,
        }
    }

    /// A PATH_CHALLENGE arrived on the path of the current datagram.
    pub(crate) fn on_path_challenge(&mut self, data: [u8; 8]) {
        // RFC 9000 §8.2.2: "A PATH_RESPONSE frame MUST be sent on the
        // network path where the PATH_CHALLENGE frame was received."
        let key = self.rx_key();
        if key == self.path.key() {
            self.path.owe_response(data);
            // §9.3.3: "An endpoint that receives a PATH_CHALLENGE on an
            // active path SHOULD send a non-probing packet in response",
            // which moves a peer fooled by forwarded copies back.
            self.ping_pending = true;
        } else if let Some(i) = self.others.find(key) {
            self.others.get_mut(i).owe_response(data);
        }
    }

    /// A PATH_RESPONSE arrived (on any path, §8.2.3: "A PATH_RESPONSE frame
    /// received on any network path validates the path on which the
    /// PATH_CHALLENGE was sent").
    pub(crate) fn on_path_response(&mut self, now: Instant, data: [u8; 8]) {
        let matches = |p: &Path| p.challenge.is_some_and(|c| c.data == data);
        if matches(&self.path) {
            self.path.challenge = None;
            if !self.path.validated {
                tracing::debug!(remote = %self.path.remote, "path validated");
                self.qlog_path(now, self.path.remote, PathState::Validated);
            }
            self.path.validated = true;
            // The budget no longer limits us: re-arm what it stopped.
            self.set_loss_detection_timer(now);
        } else {
            let validated = self.others.iter_mut().find(|p| matches(p)).map(|p| {
                p.challenge = None;
                p.validated = true;
                (p.key(), p.migrate_when_validated.take())
            });
            if let Some((key, _)) = validated {
                self.qlog_path(now, key.remote, PathState::Validated);
            }
            match validated {
                Some((key, _)) if self.preferred_path == Some(key.remote) => {
                    self.move_to_preferred_address(now, key);
                }
                // RFC 9000 §9.6.2: "Once the server has completed its path
                // validation and has received a non-probing packet with a
                // new largest packet number on its preferred address, the
                // server begins sending non-probing packets to the client
                // exclusively from its preferred IP address."
                Some((key, Some(dst_cid))) => {
                    self.migrate_to_peer_address(now, key, dst_cid);
                }
                _ => {}
            }
        }
        // Anything else is a late or forged response: ignored (§8.2.3).
        self.arm_path_timer(now);
    }

    /// The path-validation timer: resend challenges that are due, abandon
    /// validations that timed out (RFC 9000 §8.2.4).
    pub(crate) fn on_path_timer(&mut self, now: Instant) {
        // Non-active paths whose validation failed are unusable.
        self.others
            .retain(|p| p.challenge.is_none_or(|c| c.deadline > now));
        let active_failed = self.path.challenge.is_some_and(|c| c.deadline <= now);
        if active_failed {
            self.path.challenge = None;
            if !self.path.validated {
                self.qlog_path(now, self.path.remote, PathState::Failed);
            }
            if self.path.validated {
                // A validated path re-checked after the peer probed it:
                // nothing to undo.
            } else if let Some(i) = self.others.last_validated() {
                // §9.3.2: "an endpoint MUST revert to using the last
                // validated peer address when validation of a new peer
                // address fails."
                let mut back = self.others.take(i);
                if let Some(saved) = back.saved.take() {
                    self.swap_congestion(*saved);
                }
                tracing::debug!(from = %self.path.remote, to = %back.remote, "path validation failed: falling back");
                back.challenge = None;
                self.qlog_path(now, back.remote, PathState::Migrated);
                self.path = back;
                self.set_loss_detection_timer(now);
            } else {
                // §9.3.2: "If an endpoint has no state about the last
                // validated peer address, it MUST close the connection
                // silently by discarding all connection state."
                tracing::debug!("path validation failed with no validated path left");
                self.on_fatal(ConnectionError::TimedOut);
                self.state = State::Drained;
                self.timers.stop_all();
                self.endpoint_events.push_back(EndpointEvent::Drained);
                return;
            }
        }
        self.arm_path_timer(now);
    }

    /// Sets the path timer to the earliest challenge resend or deadline.
    /// A resend already due is not a deadline: it goes out when sending is
    /// allowed (a timer in the past would fire again and again while the
    /// congestion window holds the probe back).
    pub(crate) fn arm_path_timer(&mut self, now: Instant) {
        let next = std::iter::once(&self.path)
            .chain(self.others.iter())
            .filter_map(|p| p.challenge)
            .map(|c| match c.next_send {
                Some(t) if t > now => t.min(c.deadline),
                _ => c.deadline,
            })
            .min();
        match next {
            Some(t) => self.timers.set(Timer::PathValidation, t),
            None => self.timers.stop(Timer::PathValidation),
        }
    }

    /// The remote address of the next path with a probe due, if any:
    /// PATH_CHALLENGE or PATH_RESPONSE to send.
    pub(crate) fn path_probe_due(&self, now: Instant) -> Option<PathKey> {
        if !self.sends_application_data() {
            return None;
        }
        // A path whose budget cannot fit a probe waits for more bytes from
        // it rather than hold up the others; so does the active path while
        // the congestion window is full (see `write_path_probe`).
        // Other paths first, the active one last: a peer that keeps one
        // PATH_RESPONSE per address it hears from (quinn 0.11 does) then
        // answers the challenge that matters most, the new path's.
        let window_open = self.bytes_in_flight + 1200 <= self.cc.window();
        let active_due =
            self.path.challenge_due(now) || (window_open && self.path.wants_probe(now));
        self.others
            .iter()
            .filter(|p| p.wants_probe(now))
            .chain(std::iter::once(&self.path).filter(|_| active_due))
            .find(|p| p.budget() >= MIN_PROBE_BUDGET)
            .map(Path::key)
    }

    /// The path `key` (the active one or another).
    pub(crate) fn path_mut(&mut self, key: PathKey) -> Option<&mut Path> {
        if self.path.key() == key {
            return Some(&mut self.path);
        }
        let i = self.others.find(key)?;
        Some(self.others.get_mut(i))
    }

    /// A PATH_CHALLENGE was just sent on `key`: schedule the next one
    /// a PTO later, doubling each time (RFC 9000 §9.4: the timer "SHOULD be
    /// set as described in Section 6.2.1 of [QUIC-RECOVERY] and MUST NOT be
    /// more aggressive"), until the validation's deadline.
    pub(crate) fn on_challenge_sent(&mut self, now: Instant, key: PathKey) {
        if let Some(c) = self.path_mut(key).and_then(|p| p.challenge.as_mut()) {
            c.sent += 1;
            c.next_send = Some(now + c.interval * (1 << (c.sent - 1).min(6)));
        }
        self.arm_path_timer(now);
    }

    /// RFC 9000 §9.6.2: once the handshake is confirmed, a client that
    /// accepts the server's preferred address validates a path to it,
    /// with the connection ID the server gave for it, and moves there
    /// when validation succeeds.
    pub(crate) fn start_preferred_address_probe(&mut self, now: Instant) {
        if self.side.is_server() || !self.config.migrate_to_preferred_address {
            return;
        }
        let Some(pa) = self.peer_params.as_ref().and_then(|p| p.preferred_address) else {
            return;
        };
        // The same address family as the server's current address (the
        // runtime's socket has one).
        let target = match self.path.remote {
            SocketAddr::V4(_) => pa.address_v4.map(SocketAddr::V4),
            SocketAddr::V6(_) => pa.address_v6.map(SocketAddr::V6),
        };
        let Some(target) = target.filter(|t| *t != self.path.remote) else {
            return;
        };
        let mut path = Path::probe(target, pa.connection_id);
        path.challenge = Some(self.new_challenge(now));
        self.others.insert(path);
        self.preferred_path = Some(target);
        tracing::debug!(%target, "probing the server's preferred address");
        self.qlog_path(now, target, PathState::ProbingStarted);
        self.arm_path_timer(now);
    }

    /// The path to the server's preferred address is validated: move to it
    /// (RFC 9000 §9.6.2: "the client ... SHOULD begin sending all future
    /// packets to the new server address using the new connection ID").
    fn move_to_preferred_address(&mut self, now: Instant, key: PathKey) {
        let remote = key.remote;
        let Some(i) = self.others.find(key) else {
            return;
        };
        self.preferred_path = None;
        let mut new = self.others.take(i);
        let dst_cid = new.dst_cid.take();
        let port_only = self.path.same_ip(remote);
        let mut old = std::mem::replace(&mut self.path, new);
        if !port_only {
            let fresh = self.fresh_congestion(now);
            old.saved = Some(self.swap_congestion(fresh));
        }
        if let Some(cid) = dst_cid {
            self.cids.switch_remote_to(&cid);
        }
        // The original address stays known: the server may still send from
        // it until it sees us at the new one (§9.6.2).
        old.challenge = None;
        self.others.insert(old);
        self.ping_pending = true;
        self.stats.migrations += 1;
        self.ecn.restart(self.config.ecn);
        tracing::debug!(%remote, "moved to the server's preferred address");
        self.qlog_path(now, remote, PathState::Migrated);
        self.set_loss_detection_timer(now);
    }

    /// Stream data arrived (`fin`: it ended its stream). While a transfer
    /// is under way, a silence of a PTO with nothing of ours in flight is
    /// suspicious: the peer may be sending to an address we no longer have
    /// (a NAT that rebound and dropped the old mapping at once), and a
    /// receiver that only acknowledges would never tell it otherwise. A
    /// PING then shows the peer where we are (its answer, from our new
    /// address, moves it, RFC 9000 §9.3). At most [`SILENCE_PROBES`], with
    /// backoff, per silence.
    pub(crate) fn on_stream_data_arrived(&mut self, now: Instant, fin: bool) {
        self.silence_probes = 0;
        if fin || !self.handshake_confirmed {
            self.timers.stop(Timer::SilenceProbe);
            return;
        }
        let pto = self.pto_duration(SpaceId::ApplicationData);
        self.timers.set(Timer::SilenceProbe, now + pto);
    }

    pub(crate) fn on_silence_probe_timeout(&mut self, now: Instant) {
        if self.is_closed() || self.silence_probes >= SILENCE_PROBES {
            return;
        }
        // Something of ours in flight gets its answer or a PTO anyway.
        if self.space(SpaceId::ApplicationData).ack_eliciting_in_flight == 0 {
            self.ping_pending = true;
            self.silence_probes += 1;
        }
        let pto = self.pto_duration(SpaceId::ApplicationData);
        self.timers
            .set(Timer::SilenceProbe, now + pto * (1 << self.silence_probes));
    }

    /// The local address changed (the runtime rebound its socket, or the
    /// application moved this connection): RFC 9000 §9.2 active migration
    /// by the client. The server sees a new peer address and validates
    /// it; we move to a new connection ID (§9.5) and start congestion
    /// control afresh on the new path (§9.4).
    pub fn migrate(&mut self, now: Instant) -> Result<(), MigrateError> {
        if self.is_closed() {
            return Err(MigrateError::Closed);
        }
        if self.side.is_server() {
            return Err(MigrateError::NotClient);
        }
        if !self.handshake_confirmed {
            return Err(MigrateError::NotConfirmed);
        }
        if self
            .peer_params
            .as_ref()
            .is_some_and(|p| p.disable_active_migration)
        {
            return Err(MigrateError::DisabledByPeer);
        }
        // §9.5: "An endpoint MUST NOT reuse a connection ID when sending
        // from more than one local address". Without a spare ID the move
        // still happens (the socket already changed), linkably.
        if !self.cids.rotate_remote() {
            tracing::debug!("migrating without a spare connection ID from the peer");
        }
        let challenge = self.new_challenge(now);
        let fresh = self.fresh_congestion(now);
        self.swap_congestion(fresh);
        // Other paths were probed from the old local address.
        self.others = Default::default();
        self.path.responses.clear();
        // A non-probing packet at once moves the server to us (§9.3), and
        // a PATH_CHALLENGE checks the new path both ways.
        self.ping_pending = true;
        // draft-ietf-quic-ack-frequency-12 §8.4: "a client can bundle an
        // IMMEDIATE_ACK frame with the first non-probing frame".
        self.ack_frequency.immediate_ack_pending = self.ack_frequency_enabled();
        self.path.challenge = Some(challenge);
        self.stats.migrations += 1;
        self.qlog_path(now, self.path.remote, PathState::Migrated);
        self.ecn.restart(self.config.ecn);
        self.arm_path_timer(now);
        self.set_loss_detection_timer(now);
        Ok(())
    }
}
