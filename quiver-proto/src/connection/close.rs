//! Closing and draining (RFC 9000 §10.2), and which packet spaces carry
//! the CONNECTION_CLOSE frame (§10.2.3).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::spaces::SpaceId;
use super::timers::Timer;
use super::{Connection, ConnectionError, Event, State};
use crate::frame::{ApplicationClose, ConnectionClose, FrameType};
use crate::packet::PacketType;
use crate::{TransportError, TransportErrorCode, VarInt};

/// Incoming packets answered one for one while closing.
const FREE_CLOSE_ANSWERS: u8 = 3;

/// Why we are closing.
#[derive(Debug, Clone)]
pub(crate) enum CloseReason {
    /// The application asked (CONNECTION_CLOSE 0x1d).
    Application { code: VarInt, reason: Bytes },
    /// A transport error (0x1c).
    Transport(TransportError),
}

/// The close we send and repeat while closing.
#[derive(Debug, Clone)]
pub(crate) struct CloseState {
    pub(crate) reason: CloseReason,
    /// Send the close packet(s) at the next opportunity.
    pub(crate) pending: bool,
    /// Packets received while closing since we last answered.
    received_since_send: u64,
    /// Packets to receive before answering again; doubles each time so a
    /// flood of packets cannot make us amplify (RFC 9000 §10.2.1: "SHOULD
    /// limit the rate at which it generates packets in the closing state").
    answer_every: u64,
    /// Packets answered one for one before the rate starts to halve.
    free_answers: u8,
    /// We started draining on the peer's 0x1c APPLICATION_ERROR close in an
    /// Initial or Handshake packet of the datagram being processed: a 1-RTT
    /// packet coalesced after it may carry the application's own close
    /// (see [`Connection::may_upgrade_peer_close`]).
    pub(crate) upgradable: bool,
    /// Draining: the one space our single reply goes in (see
    /// [`Connection::on_peer_close`]).
    reply_space: Option<SpaceId>,
    /// Closing: the last close datagram lacked some of the copies of
    /// [`Connection::close_spaces`], the anti-amplification budget being
    /// short (see [`Connection::plan_close_datagram`]).
    incomplete: bool,
    /// Closing client before confirmation: the wait before it sends its
    /// close again unprompted (see [`Connection::on_close_probe_timeout`]).
    probe_interval: Option<Duration>,
}

impl Connection {
    /// Enters the closing state (RFC 9000 §10.2.1) unless already closed.
    pub(crate) fn close_inner(&mut self, now: Instant, reason: CloseReason) {
        if matches!(
            self.state,
            State::Closing | State::Draining | State::Drained
        ) {
            return;
        }
        if matches!(reason, CloseReason::Application { .. }) {
            self.on_fatal(ConnectionError::LocallyClosed);
        }
        self.state = State::Closing;
        self.close = Some(CloseState {
            reason,
            pending: true,
            received_since_send: 0,
            answer_every: 1,
            free_answers: FREE_CLOSE_ANSWERS,
            upgradable: false,
            reply_space: None,
            incomplete: false,
            probe_interval: None,
        });
        self.enter_closing_period(now);
    }

    /// The peer sent CONNECTION_CLOSE in a packet of type `ty`: report it
    /// and drain (§10.2.2).
    pub(crate) fn on_peer_close(&mut self, now: Instant, ty: PacketType, error: ConnectionError) {
        if self.state == State::Draining {
            self.upgrade_peer_close(error);
            return;
        }
        self.on_fatal(error.clone());
        if self.state == State::Drained {
            return;
        }
        let was_closing = self.state == State::Closing;
        self.state = State::Draining;
        // RFC 9000 §10.2.3: before confirmation the peer sends its close at
        // every level we might read, coalesced in one datagram in ascending
        // order (§12.2); an application close is converted to 0x1c
        // APPLICATION_ERROR without reason in Initial and Handshake packets,
        // only the 1-RTT copy keeps the application's code and reason. Keep
        // reading this datagram's 1-RTT packet, which comes last, to report
        // the application's close rather than its stand-in. The RFC allows
        // it and asks for it: §12.2, "The receiver of coalesced QUIC packets
        // MUST individually process each QUIC packet ... and MUST attempt
        // to process the remaining packets", and draining (§10.2.2) forbids
        // sending, not reading. It stops at the end of the datagram: the
        // application learns the reason once the datagram is processed, and
        // a later datagram is a later close (the peer's next answer), which
        // would change what it was already told.
        let upgradable = ty != PacketType::OneRtt
            && matches!(
                &error,
                ConnectionError::ConnectionClosed { code, .. }
                    if *code == TransportErrorCode::APPLICATION_ERROR
            );
        // RFC 9000 §10.2.2: "An endpoint that receives a CONNECTION_CLOSE
        // frame MAY send a single packet containing a CONNECTION_CLOSE frame
        // before entering the draining state, using a NO_ERROR code if
        // appropriate." It lets the peer leave its closing state at once.
        // A single packet, not one per space we hold keys for: at the level
        // the peer's close came in, which the peer can read since it just
        // wrote it.
        let reply_space = match ty {
            PacketType::Initial => SpaceId::Initial,
            PacketType::Handshake => SpaceId::Handshake,
            _ => SpaceId::ApplicationData,
        };
        if !was_closing {
            self.close = Some(CloseState {
                reason: CloseReason::Transport(TransportError::new(
                    TransportErrorCode::NO_ERROR,
                    "",
                )),
                pending: true,
                received_since_send: 0,
                answer_every: u64::MAX,
                free_answers: 0,
                upgradable,
                reply_space: Some(reply_space),
                incomplete: false,
                probe_interval: None,
            });
        } else if let Some(close) = &mut self.close {
            // "an endpoint that is in the closing state MAY ... enter the
            // draining state" without answering again.
            close.pending = false;
        }
        self.enter_closing_period(now);
    }

    /// Whether the connection will send nothing more: it drained, or it is
    /// draining with no reply left to send. RFC 9000 §10.2.2: a draining
    /// endpoint received the peer's CONNECTION_CLOSE and "MUST NOT send
    /// any packets" beyond the single optional reply; so the peer has
    /// finished with it, and a program about to exit loses nothing by not
    /// waiting out the draining period.
    pub fn is_quiet(&self) -> bool {
        match self.state {
            State::Drained => true,
            State::Draining => self.close.as_ref().is_none_or(|c| !c.pending),
            _ => false,
        }
    }

    /// Whether a packet of type `ty`, arriving while draining, should still
    /// be read: only the 1-RTT packet of the datagram whose converted close
    /// started the draining (see [`Connection::on_peer_close`]).
    pub(crate) fn may_upgrade_peer_close(&self, ty: PacketType) -> bool {
        ty == PacketType::OneRtt && self.close.as_ref().is_some_and(|c| c.upgradable)
    }

    /// The datagram is processed: no later packet can upgrade the reason.
    pub(crate) fn end_of_datagram_while_closed(&mut self) {
        if let Some(close) = &mut self.close {
            close.upgradable = false;
        }
    }

    /// A closing client's probe timer fired: send the close again and back
    /// off (see [`Connection::enter_closing_period`]).
    pub(crate) fn on_close_probe_timeout(&mut self, now: Instant) {
        if self.state != State::Closing {
            return;
        }
        let Some(close) = &mut self.close else { return };
        let Some(interval) = close.probe_interval else {
            return;
        };
        close.pending = true;
        let next = interval * 2;
        close.probe_interval = Some(next);
        self.timers.set(Timer::CloseProbe, now + next);
    }

    /// While draining, a close in the 1-RTT packet of the same datagram as
    /// the converted one we drained on replaces it: it is the same close,
    /// with the application's code and reason (§10.2.3). The application
    /// has not seen the first reason yet (one datagram is processed at
    /// once), so its event is corrected in place.
    fn upgrade_peer_close(&mut self, error: ConnectionError) {
        let Some(close) = &mut self.close else { return };
        if !std::mem::take(&mut close.upgradable)
            || !matches!(error, ConnectionError::ApplicationClosed { .. })
        {
            return;
        }
        for event in &mut self.events {
            if let Event::ConnectionLost { reason } = event {
                if Some(&*reason) == self.error.as_ref() {
                    *reason = error.clone();
                }
            }
        }
        self.error = Some(error);
    }

    fn enter_closing_period(&mut self, now: Instant) {
        // RFC 9000 §10.2: the closing and draining states "SHOULD persist
        // for at least three times the current PTO interval".
        let mut pto = self.pto_duration(SpaceId::ApplicationData);
        if !self.handshake_confirmed {
            // Before confirmation the peer may have no RTT sample yet (ours
            // may come from a packet whose ACK it never got), so it probes
            // on the PTO of RFC 9002 §6.2.2, from the initial RTT: with
            // 333 ms, about 1 s. A closing period of three of our (shorter)
            // PTOs would end before its first probe arrives, and that probe
            // is the only chance to answer it with the close if the close
            // was lost (§10.2.1); the peer then hangs until its idle
            // timeout. Last at least three of those PTOs ("at least three
            // times the current PTO interval" allows longer).
            let initial = crate::recovery::RttEstimator::new(self.config.initial_rtt);
            let peer_pto = crate::recovery::pto_duration(
                &initial,
                SpaceId::Initial,
                std::time::Duration::ZERO,
                0,
            );
            pto = pto.max(peer_pto);
        }
        // Before confirmation, three PTOs answer only the peer's first two
        // probes (sent 1 and 3 PTOs after its last packet, backing off per
        // RFC 9002 §6.2.1); when both answers are lost, its third probe,
        // 7 PTOs after, would find no state and it would hang until its
        // idle timeout. So stay for seven: the state of an unconfirmed
        // connection is small, and refused attempts keep none at all.
        let periods = if self.handshake_confirmed { 3 } else { 7 };
        self.timers.stop_all();
        self.timers.set(Timer::Close, now + periods * pto);
        // RFC 9002 §6.2.2.1: a client before confirmation arms its PTO
        // "even if there are no packets in flight", because a server at its
        // anti-amplification limit (RFC 9000 §8.1) cannot send the probe
        // that would prompt it. The same deadlock awaits a closing client
        // whose close was lost: the server, out of budget, waits for a
        // packet that the closing client sends only in answer to one
        // (§10.2.1), and ends by its idle timeout. So such a client sends
        // its close again on its own, on the PTO schedule with backoff
        // (1, 3 PTOs after closing; the period ends at 7), which the rate
        // limit of §10.2.1 allows.
        if self.side.is_client() && !self.handshake_confirmed && self.state == State::Closing {
            if let Some(close) = &mut self.close {
                close.probe_interval = Some(pto);
                self.timers.set(Timer::CloseProbe, now + pto);
            }
        }
        for space in &mut self.spaces {
            space.sent.clear();
            space.loss_time = None;
        }
        self.bytes_in_flight = 0;
    }

    /// A packet arrived while closing: answer with the close again, at a
    /// decreasing rate (RFC 9000 §10.2.1). While draining, send nothing.
    pub(crate) fn on_packet_while_closed(&mut self) {
        if self.state != State::Closing {
            return;
        }
        if let Some(close) = &mut self.close {
            if close.incomplete {
                // Copies of the close are missing for want of budget, and
                // this packet raised it (RFC 9000 §8.1): send them now. The
                // budget, three times what the peer sent, bounds these
                // answers, so they do not count against the rate.
                close.pending = true;
                return;
            }
            close.received_since_send += 1;
            if close.received_since_send >= close.answer_every {
                close.received_since_send = 0;
                // The first few packets are each answered: a lossy path may
                // have eaten the close, and the peer's retransmissions are
                // themselves paced by its PTO. Then the rate halves each
                // time, so a flood cannot make us amplify.
                close.free_answers = close.free_answers.saturating_sub(1);
                if close.free_answers == 0 {
                    close.answer_every = close.answer_every.saturating_mul(2);
                }
                close.pending = true;
            }
        }
    }

    /// The spaces the close goes out in (RFC 9000 §10.2.3): before the
    /// handshake is confirmed, every space we hold keys for, because we
    /// cannot know which the peer can read; once confirmed, only 1-RTT.
    /// A draining endpoint's single reply uses one space (§10.2.2).
    pub(crate) fn close_spaces(&self) -> impl Iterator<Item = SpaceId> + '_ {
        let only = self.close.as_ref().and_then(|c| c.reply_space);
        SpaceId::ALL.into_iter().filter(move |&id| {
            if only.is_some_and(|only| only != id) {
                return false;
            }
            let has_keys = match id {
                SpaceId::ApplicationData => self.one_rtt.is_some(),
                _ => self.space(id).keys.is_some(),
            };
            has_keys && (!self.handshake_confirmed || id == SpaceId::ApplicationData)
        })
    }

    /// The packets of the next close datagram of at most `max` bytes, in
    /// ascending level order (RFC 9000 §12.2), each with the fewest bytes
    /// it takes: `overhead[space]` (header, AEAD tag, sample padding) and
    /// its frame with the reason phrase cut to nothing, which the writer
    /// lets grow into the room left.
    ///
    /// Every space of [`Connection::close_spaces`] when they fit. A server
    /// whose anti-amplification budget (RFC 9000 §8.1) cannot fit all the
    /// copies must choose. §10.2.3: "the goal is to ensure that the peer
    /// will process the frame. Generally, this means sending the frame in a
    /// packet with the highest level of packet protection", the lower
    /// levels being for a peer that may lack its keys. So the copies are
    /// taken by priority: the lowest level the peer may still read
    /// ([`Connection::peer_lowest_level`]), then the levels above it, which
    /// it may also read and which carry more (the 1-RTT copy alone carries
    /// the application's code and reason), then those below it, most
    /// likely useless. The copies left out go at the next packet received,
    /// which raises the budget (see [`Connection::on_packet_while_closed`]).
    pub(crate) fn plan_close_datagram(
        &mut self,
        max: usize,
        overhead: [usize; 3],
    ) -> Vec<(SpaceId, usize)> {
        let all: Vec<SpaceId> = self.close_spaces().collect();
        let floor = self.peer_lowest_level();
        let by_priority = all
            .iter()
            .filter(|&&s| s >= floor)
            .chain(all.iter().rev().filter(|&&s| s < floor));
        let mut plan = Vec::with_capacity(all.len());
        let mut used = 0;
        for &space in by_priority {
            let mut frame = Vec::new();
            self.write_close_frame(space, &mut frame, 0);
            let len = overhead[space as usize] + frame.len();
            if used + len <= max {
                used += len;
                plan.push((space, len));
            }
        }
        plan.sort_unstable_by_key(|&(space, _)| space);
        let closing = self.state == State::Closing;
        if let Some(close) = &mut self.close {
            close.incomplete = closing && plan.len() < all.len();
        }
        plan
    }

    /// The lowest packet protection level the peer may still read, and one
    /// it is known to read when above Initial: the levels below it are no
    /// use to it.
    ///
    /// Initial, unless a server got a short header packet from its client
    /// (RFC 9000 §17.3.1: 1-RTT packets are used "after the version and
    /// 1-RTT keys are negotiated"). The client then has 1-RTT keys, so its
    /// handshake is complete: it holds Handshake keys too (it drops them
    /// only at confirmation, RFC 9001 §4.9.2, which needs our
    /// HANDSHAKE_DONE or an ACK of 1-RTT, neither of which a server sends
    /// before its own handshake completes, and then it would have
    /// processed the client's Handshake packet and so be free of the
    /// anti-amplification limit) and has sent its Finished in a Handshake
    /// packet, dropping its Initial keys (§4.9.1). The server may not
    /// decrypt the packet before its handshake completes (§5.7), so this
    /// rests on unauthenticated header bits; but §10.2.1 attributes packets
    /// to a closing connection by connection ID alone, and the evidence
    /// only orders the copies of a close that cannot all go at once: a
    /// forged packet at worst delays the lower copies to the next answer,
    /// no more than an on-path attacker could do anyway (§21.2).
    fn peer_lowest_level(&self) -> SpaceId {
        if self.peer_sent_one_rtt {
            SpaceId::ApplicationData
        } else {
            SpaceId::Initial
        }
    }

    /// Writes the CONNECTION_CLOSE frame for `space` into `buf`, within
    /// `max_len` bytes.
    pub(crate) fn write_close_frame(&self, space: SpaceId, buf: &mut Vec<u8>, max_len: usize) {
        let Some(close) = &self.close else { return };
        match &close.reason {
            CloseReason::Application { code, reason } if space == SpaceId::ApplicationData => {
                let mut frame = ApplicationClose {
                    error_code: *code,
                    reason,
                };
                frame.reason = fit_reason(reason, frame.encoded_len(), max_len);
                frame.encode(buf);
            }
            CloseReason::Application { .. } => {
                // RFC 9000 §10.2.3: "Sending a CONNECTION_CLOSE of type 0x1d
                // in an Initial or Handshake packet could expose application
                // state or be used to alter application state. A
                // CONNECTION_CLOSE of type 0x1d MUST be replaced by a
                // CONNECTION_CLOSE of type 0x1c when sending the frame in
                // Initial or Handshake packets. Otherwise, information about
                // the application state might be revealed. Endpoints MUST
                // clear the value of the Reason Phrase field and SHOULD use
                // the APPLICATION_ERROR code when converting to a
                // CONNECTION_CLOSE of type 0x1c."
                ConnectionClose {
                    error_code: VarInt::from_u64_unchecked(TransportErrorCode::APPLICATION_ERROR.0),
                    frame_type: FrameType::PADDING,
                    reason: &[],
                }
                .encode(buf);
            }
            CloseReason::Transport(e) => {
                let reason = e.reason.as_bytes();
                let mut frame = ConnectionClose {
                    error_code: VarInt::from_u64_unchecked(e.code.0),
                    frame_type: e
                        .frame_type
                        .and_then(|t| FrameType::try_from(t).ok())
                        .unwrap_or(FrameType::PADDING),
                    reason,
                };
                frame.reason = fit_reason(reason, frame.encoded_len(), max_len);
                frame.encode(buf);
            }
        }
    }
}

/// The reason phrase cut so a frame whose full encoding is `frame_len`
/// bytes fits in `max_len`.
fn fit_reason(reason: &[u8], frame_len: usize, max_len: usize) -> &[u8] {
    let overhead = frame_len - reason.len();
    truncate_utf8(reason, max_len.saturating_sub(overhead).min(reason.len()))
}

/// `bytes` cut to at most `max` bytes without splitting a UTF-8 character.
fn truncate_utf8(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    let mut end = max;
    while end > 0 && (bytes[end] & 0xc0) == 0x80 {
        end -= 1;
    }
    &bytes[..end]
}
