//! ACK processing, loss detection and probe timeouts for the connection
//! (RFC 9002 §5-§7, following the pseudocode of its Appendix A).

use std::time::{Duration, Instant};

use super::sent::{Retransmits, SentPacket};
use super::spaces::SpaceId;
use super::timers::Timer;
use super::{Connection, State};
use crate::TransportError;
use crate::frame::Ack;
use crate::qlog::{CongestionTrigger, LossTrigger, QlogEvent};
use crate::recovery::{LostPacketInfo, loss_delay, persistent_congestion_duration};

impl Connection {
    /// RFC 9002 Appendix A.5 `OnPacketSent`.
    pub(crate) fn on_packet_sent(
        &mut self,
        now: Instant,
        space: SpaceId,
        pn: u64,
        mut packet: SentPacket,
    ) {
        if packet.in_flight {
            let before = self.bytes_in_flight;
            // draft-ietf-ccwg-bbr §5.4: HandleRestartFromIdle() before
            // sending "if (C.inflight == 0 && C.app_limited)".
            if before == 0 && self.delivery.is_app_limited() {
                self.cc.on_restart_from_idle(now);
            }
            self.bytes_in_flight += u64::from(packet.size);
            // draft-ietf-ccwg-bbr §4.1.2.2 OnPacketSent(P).
            packet.delivery = self
                .delivery
                .on_packet_sent(now, before, self.bytes_in_flight);
            self.cc
                .on_packet_sent(now, u64::from(packet.size), self.bytes_in_flight);
        }
        if packet.ack_eliciting {
            let s = self.space_mut(space);
            s.time_of_last_ack_eliciting = Some(now);
            s.ack_eliciting_in_flight += 1;
            // RFC 9000 §10.1: the idle timer restarts "when sending an
            // ack-eliciting packet if no other ack-eliciting packets have
            // been sent since last receiving and processing a packet".
            if !self.idle_restarted_by_send {
                self.idle_restarted_by_send = true;
                self.reset_idle_timer(now);
            }
        }
        if let Some(keys) = &mut self.one_rtt {
            if space == SpaceId::ApplicationData && keys.first_pn_in_phase.is_none() {
                keys.first_pn_in_phase = Some(pn);
            }
        }
        self.space_mut(space).sent.insert(pn, packet);
        self.set_loss_detection_timer(now);
    }

    /// RFC 9002 Appendix A.7 `OnAckReceived`.
    pub(crate) fn on_ack_received(
        &mut self,
        now: Instant,
        space: SpaceId,
        ack: &Ack<'_>,
    ) -> Result<(), TransportError> {
        let largest = ack.largest();
        // RFC 9000 §13.1: acknowledging a packet we never sent "MAY" be
        // treated as PROTOCOL_VIOLATION; we do, as it signals a broken or
        // optimistic-ACK peer.
        if largest >= self.space(space).next_pn {
            return Err(
                TransportError::protocol_violation("ACK of a packet never sent").with_frame(0x02),
            );
        }
        let skip_due = space == SpaceId::ApplicationData && {
            self.check_ack_of_skipped(ack)?;
            self.ack_eliciting_skip_due()
        };
        // draft-ietf-ccwg-bbr §4.1.2.4: CheckIfApplicationLimited() "at
        // the beginning of ACK processing, before updating the estimated
        // amount of data in flight".
        self.check_app_limited();
        let s = self.space_mut(space);
        let largest_increased = s.largest_acked.is_none_or(|l| largest > l);
        s.largest_acked = Some(s.largest_acked.map_or(largest, |l| l.max(largest)));

        // The records go through a buffer the connection keeps, so an ACK
        // allocates nothing.
        let mut newly_acked = std::mem::take(&mut self.acked_scratch);
        newly_acked.clear();
        let s = self.space_mut(space);
        for range in ack.ranges() {
            s.sent.remove_range(range, &mut newly_acked);
        }
        // Before the early return below: an ACK whose only news is a
        // packet we had declared lost (it arrived late, and we no longer
        // track it) is exactly the proof of reordering. Every space: a
        // server Initial held back behind the Handshake packet coalesced
        // with it is a spurious loss whose response, left standing, costs
        // the transfer its slow start (RFC 9002 §7: one controller for all
        // spaces).
        let undo = self.detect_spurious_losses(now, space, ack);
        if newly_acked.is_empty() {
            self.acked_scratch = newly_acked;
            return Ok(());
        }
        if skip_due {
            self.arm_ack_eliciting_skip();
        }
        // Ranges come largest first.
        newly_acked.sort_unstable_by_key(|(pn, _)| *pn);
        // RFC 9002 §7.6.2: an acknowledgment sent within a run of losses
        // of another space ends that run.
        let (_, latest) = newly_acked.last().expect("non-empty");
        self.persistent.on_acked(space, latest.time_sent);

        // RFC 9002 §5.1: an RTT sample when the largest acknowledged is
        // newly acknowledged and at least one newly acknowledged packet was
        // ack-eliciting.
        let (largest_new_pn, largest_new) = newly_acked.last().expect("non-empty");
        if *largest_new_pn == largest && newly_acked.iter().any(|(_, p)| p.ack_eliciting) {
            let latest_rtt = now.saturating_duration_since(largest_new.time_sent);
            let ack_delay = if space == SpaceId::ApplicationData {
                self.decode_ack_delay(ack.ack_delay())
            } else {
                // RFC 9002 §5.3: Initial and Handshake ack delay is ignored.
                Duration::ZERO
            };
            let max_ack_delay = self.peer_max_ack_delay();
            self.rtt.update(
                now,
                latest_rtt,
                ack_delay,
                max_ack_delay,
                self.handshake_confirmed,
            );
        }

        // RFC 9002 Appendix A.7: process ECN information; RFC 9000
        // §13.4.2.1 validates it against what we marked.
        let newly_marked = newly_acked.iter().filter(|(_, p)| p.ecn).count() as u64;
        let ce_increase = self
            .ecn
            .on_ack(space, ack.ecn(), newly_marked, largest_increased);
        if ce_increase > 0 {
            // RFC 9002 §7.1, Appendix B.7: "If the ECN-CE count increased,
            // OnCongestionEvent(sent_time of the largest acknowledged)".
            let (_, largest_new) = newly_acked.last().expect("non-empty");
            self.stats.ecn_ce_events += 1;
            self.cc
                .on_congestion_event(now, largest_new.time_sent, false, 0);
            if let Some(q) = &mut self.qlog {
                q.on_congestion_event(now, CongestionTrigger::Ecn);
            }
        }

        // RFC 9002 §7.3.2: the recovery period ends when a packet sent
        // after it began is acknowledged, in whichever space.
        let (_, largest_new) = newly_acked.last().expect("non-empty");
        self.reordering.on_acked_sent_at(largest_new.time_sent);
        if let Some(q) = &mut self.qlog {
            q.on_acked_sent_at(largest_new.time_sent, undo);
        }

        let app_limited = self.bytes_in_flight < self.cc.window() / 2;
        for (pn, packet) in newly_acked.drain(..) {
            if packet.ack_eliciting {
                let s = self.space_mut(space);
                s.ack_eliciting_in_flight = s.ack_eliciting_in_flight.saturating_sub(1);
            }
            if packet.in_flight {
                self.bytes_in_flight = self.bytes_in_flight.saturating_sub(u64::from(packet.size));
                // draft-ietf-ccwg-bbr §4.1.2.3 UpdateRateSample(P).
                self.delivery.on_packet_acked(
                    now,
                    pn,
                    packet.time_sent,
                    u64::from(packet.size),
                    &packet.delivery,
                );
                self.cc.on_ack(
                    now,
                    packet.time_sent,
                    u64::from(packet.size),
                    app_limited,
                    &self.rtt,
                );
            }
            // Acknowledged large packets also clear black-hole suspicion.
            if let Some(size) = self.mtud.as_mut().and_then(|m| m.on_acked(pn, packet.size)) {
                tracing::debug!(size, "path MTU raised");
                self.max_udp_payload = size;
                self.cc.set_max_datagram_size(size);
            }
            if let Some(largest_ack) = packet.largest_ack {
                self.space_mut(space).on_ack_of_ack(largest_ack);
            }
            if space == SpaceId::ApplicationData {
                if let Some(keys) = &mut self.one_rtt {
                    if keys.first_pn_in_phase.is_some_and(|first| pn >= first) && !keys.phase_acked
                    {
                        keys.phase_acked = true;
                        keys.phase_acked_at = Some(now);
                    }
                }
            }
            self.on_retransmits_acked(space, packet.retransmits);
        }
        self.acked_scratch = newly_acked;

        self.detect_and_remove_lost_packets(now, space);

        // draft-ietf-ccwg-bbr §4.1.2.3 GenerateRateSample(), then the
        // controller's per-ACK steps (§5.2.3).
        if let Some(sample) = self.delivery.generate(now, self.rtt.min_rtt()) {
            self.cc.on_rate_sample(now, &sample, self.bytes_in_flight);
            if self.cc.wants_app_limited() {
                self.delivery.mark_app_limited(self.bytes_in_flight);
            }
        }

        // RFC 9002 §6.2.1: "The PTO backoff factor is reset when an
        // acknowledgment is received, except ... a client does not reset the
        // PTO backoff factor on receiving acknowledgments in Initial
        // packets" before it knows the server validated its address.
        if !(self.side.is_client() && space == SpaceId::Initial) {
            self.pto_count = 0;
        }
        if space == SpaceId::ApplicationData {
            self.ack_frequency_update(now);
        }
        self.set_loss_detection_timer(now);
        Ok(())
    }

    /// RFC 8985: packets we declared lost that the peer acknowledges now
    /// were only reordered. Widens the loss thresholds to fit, and when all
    /// of an episode's losses prove so, undoes its congestion response;
    /// returns whether it did.
    fn detect_spurious_losses(&mut self, now: Instant, space: SpaceId, ack: &Ack<'_>) -> bool {
        // Nothing declared lost to find (the usual case): skip decoding
        // the ranges again.
        if !self.reordering.has_lost() {
            return false;
        }
        let mut spurious = 0;
        let mut undo = false;
        let mut earliest_sent: Option<Instant> = None;
        for range in ack.ranges() {
            let s = self.reordering.on_ack_range(space, range);
            spurious += s.packets;
            undo |= s.undo;
            if let Some(t) = s.earliest_sent {
                earliest_sent = Some(earliest_sent.map_or(t, |e| e.min(t)));
            }
        }
        self.stats.spurious_losses += u64::from(spurious);
        if let Some(sent) = earliest_sent {
            // The same RTT basis as the time threshold (RFC 9002 §6.1.2:
            // max(smoothed_rtt, latest_rtt)).
            let basis = self.rtt.smoothed_rtt().max(self.rtt.latest_rtt());
            self.reordering.cover_lateness(now, sent, basis);
        }
        if undo {
            self.stats.congestion_undos += 1;
            self.cc.on_spurious_congestion_event();
        }
        undo
    }

    fn decode_ack_delay(&self, raw: u64) -> Duration {
        let exponent = self
            .peer_params
            .as_ref()
            .map_or(3, |p| u32::from(p.ack_delay_exponent));
        let micros = raw.checked_shl(exponent).unwrap_or(u64::MAX);
        Duration::from_micros(micros.min(1 << 40))
    }

    /// RFC 9002 Appendix A.10 `DetectAndRemoveLostPackets`.
    pub(crate) fn detect_and_remove_lost_packets(&mut self, now: Instant, space: SpaceId) {
        let Some(largest_acked) = self.space(space).largest_acked else {
            return;
        };
        // The application space's thresholds adapt to the reordering seen
        // (RFC 8985 §6.2, `reorder.rs`); the handshake spaces keep RFC
        // 9002's.
        let (delay, packet_threshold) = if space == SpaceId::ApplicationData {
            let r = &self.reordering;
            (
                crate::recovery::loss_delay_with(&self.rtt, r.time_eighths, 8),
                r.packet_threshold,
            )
        } else {
            (loss_delay(&self.rtt), crate::recovery::PACKET_THRESHOLD)
        };
        let mut lost_pns: Vec<u64> = Vec::new();
        // The numbers we skipped are no packets (`ack_elicit.rs`).
        let skipped = match space {
            SpaceId::ApplicationData => self.skipped.sorted(),
            _ => &[],
        };
        let s = &mut self.spaces[space as usize];
        let loss_time = crate::recovery::detect_lost_skipping(
            now,
            largest_acked,
            delay,
            packet_threshold,
            skipped,
            // Only packets sent before the largest acknowledged can be lost;
            // skipping the rest keeps this O(losses) per ACK instead of
            // O(packets in flight).
            s.sent.up_to(largest_acked).map(|(pn, p)| (pn, p.time_sent)),
            |pn| lost_pns.push(pn),
        );
        s.loss_time = loss_time;
        if lost_pns.is_empty() {
            return;
        }
        let mut lost = Vec::with_capacity(lost_pns.len());
        // RFC 9002 §7.6.2 over every packet declared lost, in packet
        // number order (MTU probes and ACK-only packets included: lost,
        // not acknowledged, they keep a run going).
        let mut persistent = false;
        let pc_duration = persistent_congestion_duration(&self.rtt, self.peer_max_ack_delay());
        let first_sample = self.rtt.first_sample_time();
        for pn in lost_pns {
            let Some(p) = self.space_mut(space).sent.remove(pn) else {
                continue;
            };
            let info = LostPacketInfo {
                space,
                pn,
                time_sent: p.time_sent,
                // RFC 9000 §14.4: a lost PMTU probe is no congestion signal,
                // so it does not bound a period either.
                ack_eliciting: p.ack_eliciting && !p.mtu_probe,
            };
            persistent |= self.persistent.on_lost(info, first_sample, pc_duration);
            if let Some(q) = &mut self.qlog {
                // RFC 9002 §6.1: lost by the packet threshold (§6.1.1) or
                // else by the time threshold (§6.1.2).
                let trigger = if largest_acked >= pn.saturating_add(packet_threshold) {
                    LossTrigger::ReorderingThreshold
                } else {
                    LossTrigger::TimeThreshold
                };
                let event = QlogEvent::PacketLost {
                    packet_type: super::qlog::packet_type(space),
                    packet_number: pn,
                    length: p.size,
                    trigger,
                };
                q.sink.event(now, &event);
            }
            if p.mtu_probe {
                // RFC 9000 §14.4: a lost PMTU probe "SHOULD NOT trigger a
                // congestion control reaction"; it only shrinks the search.
                if let Some(m) = &mut self.mtud {
                    m.on_lost(pn);
                }
                self.bytes_in_flight = self.bytes_in_flight.saturating_sub(u64::from(p.size));
                let s = self.space_mut(space);
                s.ack_eliciting_in_flight = s.ack_eliciting_in_flight.saturating_sub(1);
                continue;
            }
            if p.in_flight {
                self.reordering.on_lost(now, space, pn, p.time_sent);
            }
            lost.push(p);
        }
        self.on_packets_lost(now, space, lost, persistent);
    }

    /// RFC 9002 Appendix B.8 `OnPacketsLost`, plus requeuing what they
    /// carried. `persistent`: these losses, with earlier ones, establish
    /// persistent congestion (RFC 9002 §7.6.2, `recovery/persistent.rs`).
    fn on_packets_lost(
        &mut self,
        now: Instant,
        space: SpaceId,
        lost: Vec<SentPacket>,
        persistent: bool,
    ) {
        self.stats.packets_lost += lost.len() as u64;
        let mut lost_bytes = 0;
        let mut smallest_lost = u16::MAX;
        let mut latest_sent: Option<Instant> = None;
        let marked_lost = lost.iter().filter(|p| p.ecn).count() as u64;
        if marked_lost > 0 {
            self.ecn.on_marked_lost(marked_lost);
        }
        for p in &lost {
            if p.in_flight {
                // draft-ietf-ccwg-bbr §5.2.4: the per-loss steps, with the
                // packet's delivery snapshot.
                if let Some(view) = self.delivery.on_packet_lost(u64::from(p.size), &p.delivery) {
                    self.cc.on_packet_lost(now, &view);
                }
                lost_bytes += u64::from(p.size);
                smallest_lost = smallest_lost.min(p.size);
                latest_sent = latest_sent.max(Some(p.time_sent));
            }
            if p.ack_eliciting {
                let s = self.space_mut(space);
                s.ack_eliciting_in_flight = s.ack_eliciting_in_flight.saturating_sub(1);
            }
        }
        self.bytes_in_flight = self.bytes_in_flight.saturating_sub(lost_bytes);
        if space == SpaceId::ApplicationData
            && latest_sent.is_some()
            && self
                .mtud
                .as_mut()
                .is_some_and(|m| m.on_loss_event(smallest_lost))
        {
            self.on_pmtu_black_hole();
        }
        if let Some(sent_time) = latest_sent {
            self.cc
                .on_congestion_event(now, sent_time, persistent, lost_bytes);
            if let Some(q) = &mut self.qlog {
                let trigger = if persistent {
                    CongestionTrigger::PersistentCongestion
                } else {
                    CongestionTrigger::Loss
                };
                q.on_congestion_event(now, trigger);
            }
            if persistent {
                self.stats.persistent_congestion += 1;
                self.rtt.reset_min_rtt();
            }
        }
        for p in lost {
            self.on_retransmits_lost(space, p.retransmits);
        }
    }

    /// draft-ietf-ccwg-bbr §4.1.2.4 CheckIfApplicationLimited(): no data
    /// waits to be sent and the window is not full, so the path is
    /// application-limited until what is in flight is delivered. Data held
    /// back by the peer's flow control counts as "no data" here (quiver's
    /// stream scheduler does not tell the two apart), a conservative
    /// departure from §4.1.1.3.1, which treats receiver limits like network
    /// ones: such samples only ever raise bandwidth estimates.
    pub(crate) fn check_app_limited(&mut self) {
        // Cheapest checks first: this runs on every ACK.
        if self.bytes_in_flight < self.cc.window()
            && self.datagrams_out.is_empty()
            && !self.streams_has_data()
        {
            self.delivery.mark_app_limited(self.bytes_in_flight);
        }
    }

    /// RFC 8899 §4.3: the path no longer carries our datagram size: back
    /// to the 1200 bytes every QUIC path carries (RFC 9000 §14), searching
    /// again from there.
    fn on_pmtu_black_hole(&mut self) {
        tracing::debug!(from = self.max_udp_payload, "PMTU black hole: back to 1200");
        self.stats.pmtu_black_holes += 1;
        self.max_udp_payload = super::mtud::BASE_PLPMTU;
        self.cc.set_max_datagram_size(super::mtud::BASE_PLPMTU);
    }

    /// What a newly acknowledged packet carried is delivered.
    fn on_retransmits_acked(&mut self, space: SpaceId, r: Retransmits) {
        if let Some(range) = r.crypto {
            self.space_mut(space).crypto_send.on_acked(range);
        }
        if r.new_token {
            self.new_token_on_outcome(true);
        }
        if let Some(seq) = r.ack_frequency {
            self.ack_frequency.on_acked(seq);
        }
        self.streams_on_acked(r.stream);
    }

    /// What a lost packet carried is queued again (RFC 9000 §13.3).
    fn on_retransmits_lost(&mut self, space: SpaceId, r: Retransmits) {
        if let Some(range) = r.crypto {
            self.space_mut(space).crypto_send.on_lost(range);
        }
        if r.handshake_done && self.side.is_server() {
            self.handshake_done_pending = true;
        }
        if r.new_token {
            self.new_token_on_outcome(false);
        }
        if let Some(seq) = r.ack_frequency {
            self.ack_frequency.on_lost(seq);
        }
        for seq in r.new_cids {
            if !self.cids.pending_new.contains(&seq) {
                self.cids.pending_new.push(seq);
            }
        }
        for seq in r.retire_cids {
            if !self.cids.pending_retire.contains(&seq) {
                self.cids.pending_retire.push(seq);
            }
        }
        self.streams_on_lost(r.stream);
    }

    /// RFC 9002 Appendix A.8 `SetLossDetectionTimer`.
    pub(crate) fn set_loss_detection_timer(&mut self, _now: Instant) {
        if matches!(
            self.state,
            State::Closing | State::Draining | State::Drained
        ) {
            self.timers.stop(Timer::LossDetection);
            return;
        }
        // Time threshold loss detection first.
        let earliest_loss = SpaceId::ALL
            .into_iter()
            .filter_map(|id| self.space(id).loss_time)
            .min();
        if let Some(t) = earliest_loss {
            self.timers.set(Timer::LossDetection, t);
            return;
        }
        // RFC 9002 §6.2.2.1: a server blocked by the anti-amplification
        // limit must not arm the PTO.
        if !self.path.validated && self.amplification_budget() == 0 {
            self.timers.stop(Timer::LossDetection);
            return;
        }
        let anything_in_flight = self.pto_eligible_in_flight();
        // RFC 9002 §6.2.2.1: the client keeps a PTO armed until it knows the
        // server validated its address (it has Handshake keys acknowledged,
        // approximated by handshake completion).
        if !anything_in_flight && (self.side.is_server() || self.handshake_complete) {
            self.timers.stop(Timer::LossDetection);
            return;
        }
        match self.pto_time_and_space() {
            Some((t, _)) => self.timers.set(Timer::LossDetection, t),
            None => self.timers.stop(Timer::LossDetection),
        }
    }

    /// RFC 9002 Appendix A.8 `GetPtoTimeAndSpace`.
    fn pto_time_and_space(&self) -> Option<(Instant, SpaceId)> {
        let anything_in_flight = self.pto_eligible_in_flight();
        if !anything_in_flight {
            // RFC 9002 §6.2.2.1: an anti-deadlock probe from the client, in
            // Handshake if it has those keys, else Initial.
            let space = if self.space(SpaceId::Handshake).keys.is_some() {
                SpaceId::Handshake
            } else {
                SpaceId::Initial
            };
            let base = self.last_receipt_or_send()?;
            return Some((base + self.pto_duration(space), space));
        }
        let mut best: Option<(Instant, SpaceId)> = None;
        for id in SpaceId::ALL {
            let s = self.space(id);
            if s.ack_eliciting_in_flight == 0 {
                continue;
            }
            if id == SpaceId::ApplicationData && !self.handshake_confirmed {
                // RFC 9002 §6.2.1: "An endpoint MUST NOT set its PTO timer
                // for the Application Data packet number space until the
                // handshake is confirmed."
                continue;
            }
            let Some(sent) = s.time_of_last_ack_eliciting else {
                continue;
            };
            let t = sent + self.pto_duration(id);
            if best.is_none_or(|(b, _)| t < b) {
                best = Some((t, id));
            }
        }
        best
    }

    /// Whether ack-eliciting packets are in flight in a space whose PTO may
    /// be armed: not the application data space before confirmation (RFC
    /// 9002 §6.2.1). A client whose only packets in flight are 0-RTT ones
    /// (its Initials acknowledged, the server's Handshake flight lost) has
    /// nothing the PTO may cover, so it arms the anti-deadlock probe: RFC
    /// 9002 §6.2.2.1, "the client MUST set the probe timer if the client
    /// has not received an acknowledgment for any of its Handshake packets
    /// and the handshake is not confirmed [...], even if there are no
    /// packets in flight". Counting the 0-RTT packets left it with no
    /// timer at all, waiting for the idle timeout.
    fn pto_eligible_in_flight(&self) -> bool {
        SpaceId::ALL.into_iter().any(|id| {
            self.space(id).ack_eliciting_in_flight > 0
                && (id != SpaceId::ApplicationData || self.handshake_confirmed)
        })
    }

    fn last_receipt_or_send(&self) -> Option<Instant> {
        SpaceId::ALL
            .into_iter()
            .filter_map(|id| self.space(id).time_of_last_ack_eliciting)
            .max()
            .or(self.last_activity)
    }

    /// RFC 9002 Appendix A.9 `OnLossDetectionTimeout`.
    pub(crate) fn on_loss_detection_timeout(&mut self, now: Instant) {
        let earliest = SpaceId::ALL
            .into_iter()
            .filter_map(|id| self.space(id).loss_time.map(|t| (t, id)))
            .min();
        if let Some((_, space)) = earliest {
            self.detect_and_remove_lost_packets(now, space);
            self.set_loss_detection_timer(now);
            return;
        }
        let anything_in_flight = self.pto_eligible_in_flight();
        let space = if !anything_in_flight {
            // Anti-deadlock probe (client).
            if self.space(SpaceId::Handshake).keys.is_some() {
                SpaceId::Handshake
            } else {
                SpaceId::Initial
            }
        } else {
            match self.pto_time_and_space() {
                Some((_, space)) => space,
                None => return,
            }
        };
        // RFC 9002 §6.2.4: "When a PTO timer expires, a sender MUST send at
        // least one ack-eliciting packet in the packet number space as a
        // probe"; two help when loss is likely. Probes carry data that may
        // have been lost: every unacknowledged CRYPTO byte again.
        let s = self.space_mut(space);
        s.probes = 2;
        s.crypto_send.requeue_unacked();
        if space == SpaceId::ApplicationData {
            self.streams_requeue_for_probe();
        }
        // RFC 9002 §6.2.4: a probe of Initial data from the client should
        // also coalesce Handshake data when it has some.
        if space == SpaceId::Initial && self.space(SpaceId::Handshake).keys.is_some() {
            self.space_mut(SpaceId::Handshake)
                .crypto_send
                .requeue_unacked();
        }
        self.pto_count += 1;
        self.stats.probe_timeouts += 1;
        if space == SpaceId::ApplicationData
            && self.mtud.as_mut().is_some_and(|m| m.on_pto(self.pto_count))
        {
            self.on_pmtu_black_hole();
        }
        self.set_loss_detection_timer(now);
        if self.pto_count == 1 {
            tracing::trace!(?space, "probe timeout");
        }
    }
}
