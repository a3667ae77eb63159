//! Packets the server sends without a connection's keys, as a client
//! reads them: Version Negotiation (RFC 9000 §6.2), Retry (§17.2.5) and
//! stateless resets (§10.3).

use std::time::Instant;

use bytes::Bytes;

use super::spaces::SpaceId;
use super::{Connection, ConnectionError, State};
use crate::ConnectionId;
use crate::packet::header::{self, PartialPacket};
use crate::qlog::DropTrigger;

impl Connection {
    /// RFC 9000 §6.2: a client's reaction to Version Negotiation.
    pub(super) fn on_version_negotiation(&mut self, p: &PartialPacket, packet: &[u8]) {
        // Only before anything else was received from the server, and only
        // when it echoes our connection IDs (§17.2.1).
        if self.side.is_server()
            || self.received_server_initial
            || p.dst_cid != self.cids.initial_local().unwrap_or(ConnectionId::EMPTY)
            || p.src_cid != self.orig_dst_cid
        {
            return;
        }
        // §6.2: "A client MUST discard a Version Negotiation packet that
        // lists the QUIC version selected by the client"; otherwise a new
        // attempt in a version we share, or none (`version.rs`).
        let versions = header::version_negotiation_versions(&packet[p.pn_offset..]);
        self.on_version_list(versions);
    }

    /// RFC 9000 §17.2.5.2: a client handles at most one Retry.
    pub(super) fn on_retry(&mut self, now: Instant, p: &PartialPacket, packet: &[u8]) {
        if self.side.is_server()
            || self.received_server_initial
            || self.retry_src_cid.is_some()
            || p.version != Some(self.version)
            || p.token.is_empty()
        {
            // "A client MUST discard a Retry packet with a zero-length Retry
            // Token field", and any after the first or after an Initial.
            return;
        }
        // RFC 9001 §5.8: the integrity tag binds it to our original DCID.
        if crate::crypto::verify_retry_integrity(self.version, &self.orig_dst_cid, packet).is_err()
        {
            let trigger = DropTrigger::UnexpectedPacket;
            self.packet_dropped(now, Some(p.ty), packet.len(), trigger);
            return;
        }
        self.retry_src_cid = Some(p.src_cid);
        self.peer_initial_src_cid = Some(p.src_cid);
        self.retry_token = Bytes::copy_from_slice(&packet[p.token.clone()]);
        self.cids.set_initial_remote(p.src_cid);
        // RFC 9001 §5.2: new Initial keys from the Retry's Source CID.
        let initial = crate::crypto::initial_keys(self.version, &p.src_cid, self.side);
        let (in_flight, first_sent) = {
            let s = self.space_mut(SpaceId::Initial);
            s.keys = Some(initial);
            let first_sent = s.sent.values().map(|p| p.time_sent).min();
            let in_flight: u64 = s
                .sent
                .values()
                .filter(|p| p.in_flight)
                .map(|p| u64::from(p.size))
                .sum();
            s.sent.clear();
            s.ack_eliciting_in_flight = 0;
            s.time_of_last_ack_eliciting = None;
            s.loss_time = None;
            // Everything sent in Initial goes again (§17.2.5.3: packet
            // numbers continue, they are not reset).
            s.crypto_send.requeue_unacked();
            (in_flight, first_sent)
        };
        self.bytes_in_flight = self.bytes_in_flight.saturating_sub(in_flight);
        // RFC 9002 §6.3: "The client MAY compute an RTT estimate to the
        // server as the time period from when the first Initial packet was
        // sent to when a Retry ... is received" (only while no probe has
        // resent it, which would make the sample ambiguous), and "Clients
        // that receive a Retry packet reset congestion control and loss
        // recovery state". Without both, the pacer still ran at the initial
        // window over the default 333 ms RTT with its burst spent on the
        // first flight, and the 0-RTT sent again below trickled out a
        // packet per 25 ms.
        if let Some(sent) = first_sent.filter(|_| self.pto_count == 0 && !self.rtt.has_sample()) {
            let zero = std::time::Duration::ZERO;
            self.rtt
                .update(now, now.saturating_duration_since(sent), zero, zero, false);
        }
        self.cc = self.config.congestion.build(now, self.max_udp_payload);
        self.pacer = crate::congestion::Pacer::new();
        self.pto_count = 0;
        // RFC 9002 §6.3: "Clients that receive a Retry packet reset
        // congestion control and loss recovery state". The 0-RTT packets
        // sent so far reached a server that kept no state and did not
        // read them: their streams go again, still in 0-RTT (RFC 9000
        // §17.2.5.3: "A client MAY attempt 0-RTT after receiving a Retry
        // packet by sending 0-RTT packets to the connection ID provided by
        // the server", numbered on, not from 0), instead of waiting for
        // loss detection and then 1-RTT.
        if self.sends_zero_rtt() {
            self.requeue_zero_rtt_sent(now);
        }
        self.set_loss_detection_timer(now);
    }

    /// RFC 9000 §10.3.1: a datagram we cannot decrypt whose last 16 bytes
    /// equal a reset token the peer gave us is a stateless reset.
    pub(super) fn check_stateless_reset(&mut self, now: Instant, packet: &[u8]) {
        if self.is_stateless_reset(packet) {
            self.on_stateless_reset(now);
        }
    }

    /// Whether `datagram` ends in one of the peer's stateless reset tokens.
    pub(crate) fn is_stateless_reset(&self, datagram: &[u8]) -> bool {
        // §10.3: "short header packets that are smaller than 21 bytes are
        // never valid"; a reset is at least that long.
        if datagram.len() < 21 {
            return false;
        }
        let tail: [u8; 16] = datagram[datagram.len() - 16..]
            .try_into()
            .expect("16 bytes");
        // §10.3.1: "SHOULD use a comparison that does not leak
        // information"; every token is compared in full.
        self.cids
            .remote_reset_tokens()
            .fold(false, |found, t| found | constant_time_eq(&t, &tail))
    }

    /// The peer reset the connection: report it and go silent.
    pub(crate) fn on_stateless_reset(&mut self, now: Instant) {
        if matches!(self.state, State::Draining | State::Drained) {
            return;
        }
        self.on_fatal(ConnectionError::Reset);
        // §10.3.1: "the endpoint MUST enter the draining period and not
        // send any further packets on this connection".
        self.state = State::Draining;
        self.close = None;
        self.timers.stop_all();
        let pto = self.pto_duration(SpaceId::ApplicationData);
        self.timers.set(super::timers::Timer::Close, now + 3 * pto);
    }
}

/// Compares reset tokens without an early exit (RFC 9000 §10.3.1: "SHOULD
/// use a constant-time comparison").
fn constant_time_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
