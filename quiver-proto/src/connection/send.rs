//! Sending: packet assembly into datagrams (RFC 9000 §12.2, §13, §14),
//! packet protection applied in place in the caller's buffer.

use std::time::Instant;

use super::paths::PathKey;
use super::sent::{Retransmits, SentPacket};
use super::spaces::SpaceId;
use super::timers::Timer;
use super::{Connection, State, Transmit};
use crate::VarInt;
use crate::frame::{
    self, DatagramHeader, FrameType, PathChallenge, PathResponse, RetireConnectionId,
};
use crate::packet::header::{Header, PartialEncode};
use crate::packet::{PacketType, TruncatedPacketNumber};

/// RFC 9000 §14.1: datagrams carrying a client's Initial (and a server's
/// ack-eliciting Initial) are padded to at least 1200 bytes.
pub(super) const MIN_INITIAL_DATAGRAM: usize = 1200;
/// AEAD tag length of every QUIC v1/v2 cipher suite.
pub(super) const TAG_LEN: usize = 16;
/// Smallest room worth opening a packet for.
pub(super) const MIN_PACKET_ROOM: usize = 64;

/// A packet being written: its header is in the buffer, frames follow.
struct OpenPacket {
    space: SpaceId,
    ty: PacketType,
    pn: u64,
    header: PartialEncode,
    ack_eliciting: bool,
    retransmits: Retransmits,
    largest_ack: Option<u64>,
    mtu_probe: bool,
    /// A path probe (PATH_CHALLENGE / PATH_RESPONSE): not counted in
    /// flight, so probing a path does not touch the active path's
    /// congestion control (RFC 9000 §9.4: "A sender can make exceptions
    /// for probe packets").
    path_probe: bool,
}

impl Connection {
    /// Writes the next datagrams to send at the end of `buf`: one, or up
    /// to `max_datagrams` (at least 1) to one destination, back to back,
    /// all of [`Transmit::segment_size`] bytes but the last, which may be
    /// shorter: what a socket with generic segmentation offload sends in
    /// one call. A caller that sends one datagram at a time passes 1.
    ///
    /// Returns `None` when there is nothing to send now (see
    /// [`Connection::poll_timeout`] for when there may be).
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        let mut filled = false;
        let mut transmit = self.write_next_datagram(now, buf, &mut filled);
        if let Some(t) = &mut transmit {
            self.append_segments(now, max_datagrams, buf, t, filled);
            if let Some(q) = &mut self.qlog {
                // One event per transmit: a GSO batch is one event with
                // count > 1 (transport:datagrams_sent).
                let event = crate::qlog::QlogEvent::DatagramsSent {
                    count: u16::try_from(t.count()).unwrap_or(u16::MAX),
                    segment_size: u16::try_from(t.segment_size.unwrap_or(t.size))
                        .unwrap_or(u16::MAX),
                    length: u32::try_from(t.size).unwrap_or(u32::MAX),
                };
                q.sink.event(now, &event);
            }
        }
        self.qlog_sync(now);
        transmit
    }

    /// One datagram; `filled` tells whether it is one of ordinary packets
    /// that took all the room it had (so more of its size may follow it in
    /// a batch).
    fn write_next_datagram(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
        filled: &mut bool,
    ) -> Option<Transmit> {
        let start = buf.len();
        let mut destination = self.path.key();
        // RFC 9000 §13.4: the active path's datagrams carry ECT(0) while it
        // is being tested or has passed validation; probes to other paths
        // are not marked. A close goes to the active path and is marked
        // like the rest of its traffic (§13.4.1 sets no exception; an
        // observer of the path, such as the interop runner's ECN check,
        // sees every 1-RTT datagram marked). It is not tracked for loss,
        // so it plays no part in validation (§13.4.2).
        self.tx_ecn = false;
        let size = match self.state {
            State::Drained => return None,
            State::Closing | State::Draining => {
                self.tx_ecn = self.ecn.marking();
                self.write_close_datagram(now, buf)
            }
            State::Handshake | State::Established => {
                let mut size = 0;
                if let Some(key) = self.path_probe_due(now) {
                    self.tx_ecn = key == self.path.key() && self.ecn.marking();
                    size = self.write_path_probe(now, buf, key);
                    if size > 0 {
                        destination = key;
                    }
                }
                if size == 0 {
                    self.tx_ecn = self.ecn.marking();
                }
                if size == 0 {
                    size = self.write_mtu_probe(now, buf);
                }
                if size == 0 {
                    let max = self.max_datagram_len();
                    size = self.write_datagram(now, buf, max);
                    *filled = size == max;
                }
                size
            }
        };
        if size == 0 {
            buf.truncate(start);
            if self.state == State::Established {
                self.check_app_limited();
            }
            return None;
        }
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += size as u64;
        if let Some(path) = self.path_mut(destination) {
            path.on_sent(size);
        }
        // RFC 9000 §8.2.2, §9.6.2: a probe leaves from the local address
        // of its path; everything else from the active path's.
        Some(Transmit {
            destination: destination.remote,
            size,
            segment_size: None,
            ecn: self.tx_ecn.then_some(crate::EcnCodepoint::Ect0),
            src: destination.local,
        })
    }

    /// RFC 9000 §8.1, §9.3.1: what may still be sent to the active path's
    /// address before it is validated.
    pub(crate) fn amplification_budget(&self) -> u64 {
        self.path.budget()
    }

    /// A datagram probing the path `key` (RFC 9000 §8.2): a due
    /// PATH_CHALLENGE and the PATH_RESPONSEs owed there, expanded to 1200
    /// bytes unless that path's anti-amplification budget forbids it
    /// (§8.2.1, §8.2.2). Returns 0 when the budget leaves no room.
    fn write_path_probe(&mut self, now: Instant, buf: &mut Vec<u8>, key: PathKey) -> usize {
        let Some(path) = self.path_mut(key) else {
            return 0;
        };
        let budget = usize::try_from(path.budget()).unwrap_or(usize::MAX);
        let dst_cid = path.dst_cid;
        let challenge = path
            .challenge
            .filter(|c| c.next_send.is_none_or(|t| t <= now))
            .map(|c| c.data);
        let max = MIN_INITIAL_DATAGRAM.min(budget);
        let overhead = self.header_overhead(SpaceId::ApplicationData) + TAG_LEN;
        if max < overhead + 9 + 3 {
            return 0;
        }
        // Answers on the active path are ordinary packets for congestion
        // control (RFC 9000 §8.2.2: a PATH_RESPONSE may be delayed when
        // "constrained by congestion control"), so a peer flooding us with
        // PATH_CHALLENGEs gets no more than the window allows. Our own
        // challenges, and anything on other paths, are probes outside it
        // (§9.4), so validating a new path never waits for data in flight
        // on the old one.
        let congestion_controlled = key == self.path.key() && challenge.is_none();
        if congestion_controlled && self.bytes_in_flight + max as u64 > self.cc.window() {
            return 0;
        }
        let start = buf.len();
        let mut p = self.open_packet_to(SpaceId::ApplicationData, buf, dst_cid);
        p.path_probe = !congestion_controlled;
        let limit = start + max - TAG_LEN;
        if let Some(data) = challenge {
            // §8.2.1: "SHOULD NOT send multiple PATH_CHALLENGE frames in a
            // single packet".
            frame::Frame::PathChallenge(PathChallenge(data)).encode(buf);
            p.ack_eliciting = true;
        }
        let path = self.path_mut(key).expect("found above");
        // §8.2.2: one PATH_RESPONSE per challenge, never repeated.
        while buf.len() + 9 <= limit {
            if path.responses.is_empty() {
                break;
            }
            let data = path.responses.remove(0);
            frame::Frame::PathResponse(PathResponse(data)).encode(buf);
            p.ack_eliciting = true;
        }
        if challenge.is_some() {
            self.on_challenge_sent(now, key);
        }
        self.seal_packet(now, buf, p, Some(start + max));
        buf.len() - start
    }

    /// The largest datagram the active path takes now: its MTU, within
    /// the anti-amplification budget.
    /// Whether the anti-amplification limit (RFC 9000 §8.1) leaves too
    /// little to send any ordinary packet, so only the peer's next datagram
    /// can let us send again.
    pub(super) fn amplification_blocked(&self) -> bool {
        self.max_datagram_len() < MIN_PACKET_ROOM + TAG_LEN
    }

    pub(super) fn max_datagram_len(&self) -> usize {
        let mtu = usize::from(self.max_udp_payload);
        let mut budget = self.amplification_budget();
        if self.path.challenge.is_some() && self.path.limited && !self.path.validated {
            // Keep room for the next PATH_CHALLENGE: on a new path still
            // limited to 3× what it received, data must not use up the
            // budget that validating it needs (RFC 9000 §9.3.1).
            budget = budget.saturating_sub(super::migration::MIN_PROBE_BUDGET);
        }
        mtu.min(usize::try_from(budget).unwrap_or(usize::MAX))
    }

    /// The close packets, one per space the peer may read (§10.2.3),
    /// coalesced into one datagram, as many as the anti-amplification
    /// budget fits (see [`Connection::plan_close_datagram`]).
    fn write_close_datagram(&mut self, now: Instant, buf: &mut Vec<u8>) -> usize {
        if !self.close.as_ref().is_some_and(|c| c.pending) {
            return 0;
        }
        if let Some(close) = &mut self.close {
            close.pending = false;
        }
        let start = buf.len();
        let max = self.max_datagram_len();
        // A packet takes its header, its tag and up to 3 bytes of sample
        // padding besides its frame.
        let overhead = SpaceId::ALL.map(|s| self.header_overhead(s) + TAG_LEN + 3);
        let plan = self.plan_close_datagram(max, overhead);
        let pad = self.side.is_client() && plan.iter().any(|&(s, _)| s == SpaceId::Initial);
        let mut open: Option<OpenPacket> = None;
        for (i, &(space, least)) in plan.iter().enumerate() {
            // Room kept for the packets after this one.
            let reserve: usize = plan[i + 1..].iter().map(|&(_, len)| len).sum();
            // The packet still open takes its tag (and up to 3 bytes of
            // sample padding) when sealed.
            let pending = if open.is_some() { TAG_LEN + 3 } else { 0 };
            let used = buf.len() - start + pending;
            if used + least + reserve > max + 3 {
                break;
            }
            if let Some(p) = open.take() {
                self.seal_packet(now, buf, p, None);
            }
            let mut p = self.open_packet(space, buf);
            let room = max.saturating_sub(buf.len() - start + TAG_LEN + reserve);
            self.write_close_frame(space, buf, room);
            p.ack_eliciting = false;
            open = Some(p);
            if space == SpaceId::Handshake && self.side.is_client() {
                // RFC 9001 §4.9.1: "a client MUST discard Initial keys when
                // it first sends a Handshake packet", a close packet too, so
                // later closes go without an Initial packet. This datagram's
                // Initial packet, written before, is already sealed.
                // Closing keeps no recovery state: only the space goes.
                self.space_mut(SpaceId::Initial).discard();
            }
        }
        let Some(last) = open else {
            return 0;
        };
        let pad_to = pad.then(|| (start + MIN_INITIAL_DATAGRAM.min(max)).max(buf.len()));
        self.seal_packet(now, buf, last, pad_to);
        // While draining, that single reply was the last packet.
        buf.len() - start
    }

    /// Whether new stream data and datagrams may go out now: the
    /// congestion window has room (RFC 9002 §7) and the pacer allows it
    /// (§7.7: "A sender SHOULD pace sending of all in-flight packets").
    fn update_send_allowance(&mut self, now: Instant) {
        let cwnd = self.cc.window();
        let mtu = self.max_udp_payload;
        if self.bytes_in_flight + u64::from(mtu) > cwnd {
            self.data_allowed = false;
            return;
        }
        let rate = self.cc.pacing_rate();
        match self.pacer.delay_at(
            now,
            u64::from(mtu),
            cwnd,
            self.rtt.smoothed_rtt(),
            mtu,
            rate,
        ) {
            Some(at) => {
                self.timers.set(Timer::Pacing, at);
                self.data_allowed = false;
            }
            None => self.data_allowed = true,
        }
    }

    /// A path MTU probe, when one is due (RFC 9000 §14.4): a 1-RTT packet of
    /// PING and PADDING of the size being tried, alone in its datagram.
    fn write_mtu_probe(&mut self, now: Instant, buf: &mut Vec<u8>) -> usize {
        // Not on a path still limited to 3× what it received (a new peer
        // address): the budget is for validating it (RFC 9000 §9.3.1).
        if !self.path.validated {
            return 0;
        }
        let Some(size) = self.mtud.as_mut().and_then(|m| m.next_probe(now)) else {
            return 0;
        };
        // Probes consume congestion window like any packet (§14.4).
        if self.bytes_in_flight + u64::from(size) > self.cc.window() || self.one_rtt.is_none() {
            return 0;
        }
        let start = buf.len();
        let mut p = self.open_packet(SpaceId::ApplicationData, buf);
        FrameType::PING.to_varint().encode(buf);
        p.ack_eliciting = true;
        p.mtu_probe = true;
        let pn = p.pn;
        self.seal_packet(now, buf, p, Some(start + usize::from(size)));
        if let Some(m) = &mut self.mtud {
            m.on_probe_sent(pn, size);
        }
        buf.len() - start
    }

    /// A datagram of ordinary packets, coalesced in space order (RFC 9000
    /// §12.2), at most `max` bytes long.
    pub(super) fn write_datagram(&mut self, now: Instant, buf: &mut Vec<u8>, max: usize) -> usize {
        self.maybe_update_keys(now);
        if self.state != State::Handshake && self.state != State::Established {
            return 0;
        }
        let start = buf.len();
        if max < MIN_PACKET_ROOM + TAG_LEN {
            return 0;
        }
        self.update_send_allowance(now);
        let mut pad_initial = false;
        let mut open: Option<OpenPacket> = None;
        for space in SpaceId::ALL {
            if !self.can_send_in(space) || !self.has_data_for(now, space) {
                continue;
            }
            let pending = if open.is_some() { TAG_LEN + 3 } else { 0 };
            let used = buf.len() - start + pending;
            if used + self.header_overhead(space) + MIN_PACKET_ROOM > max {
                break;
            }
            if let Some(p) = open.take() {
                self.seal_packet(now, buf, p, None);
            }
            let mut p = self.open_packet(space, buf);
            let limit = start + max - TAG_LEN;
            self.write_frames(now, buf, &mut p, limit);
            if p.ty == PacketType::Initial && (self.side.is_client() || p.ack_eliciting) {
                pad_initial = true;
            }
            if p.ty == PacketType::Handshake && self.side.is_client() {
                // RFC 9001 §4.9.1: "a client MUST discard Initial keys when it
                // first sends a Handshake packet".
                self.discard_space(now, SpaceId::Initial);
            }
            open = Some(p);
        }
        let Some(last) = open else {
            return 0;
        };
        let pad_to = pad_initial.then(|| (start + MIN_INITIAL_DATAGRAM.min(max)).max(buf.len()));
        self.seal_packet(now, buf, last, pad_to);
        let size = buf.len() - start;
        self.pacer.on_transmit(size as u64);
        size
    }

    /// Bytes of header a packet in `space` takes at most now: the real
    /// connection IDs and token, a 2-byte Length and a 4-byte packet number.
    /// Exact sizes matter when the anti-amplification budget is tight (a
    /// close must still fit, RFC 9000 §10.2.3).
    fn header_overhead(&self, space: SpaceId) -> usize {
        let dst = self.cids.remote_cid().len();
        let src = self.cids.initial_local().map_or(0, |c| c.len());
        match space {
            SpaceId::Initial => {
                let token = self.retry_token.len();
                7 + dst + src + VarInt::size_of(token as u64) + token + 2 + 4
            }
            SpaceId::Handshake => 7 + dst + src + 2 + 4,
            SpaceId::ApplicationData if self.sends_zero_rtt() => 7 + dst + src + 2 + 4,
            SpaceId::ApplicationData => 1 + dst + 4,
        }
    }

    /// Whether keys for `space` are available for sending.
    pub(super) fn can_send_in(&self, space: SpaceId) -> bool {
        match space {
            SpaceId::ApplicationData => self.sends_application_data() || self.sends_zero_rtt(),
            _ => self.space(space).keys.is_some(),
        }
    }

    /// Whether 1-RTT packets may go out, with stream data, DATAGRAMs,
    /// stream control frames and path probes: once the handshake
    /// completes (a client has its 1-RTT keys by then), and on a server as
    /// soon as it has the 1-RTT keys, after its Finished: "0.5-RTT data"
    /// (RFC 9000 §7, Figure 5; RFC 9001 §5.7: before the handshake
    /// completes the server's use of 1-RTT keys "is limited to sending
    /// data"). The answer to a request that came in 0-RTT then leaves a
    /// round trip before the client's Finished arrives, within the
    /// anti-amplification limit (RFC 9000 §8.1) until the client's address
    /// is validated. It is not retransmitted on a PTO before the handshake
    /// is confirmed (RFC 9002 §6.2.1) but by loss detection, as any 1-RTT
    /// data.
    pub(super) fn sends_application_data(&self) -> bool {
        self.one_rtt.is_some() && (self.handshake_complete || self.side.is_server())
    }

    fn has_data_for(&self, now: Instant, space: SpaceId) -> bool {
        let s = self.space(space);
        if s.wants_ack(now) || s.crypto_send.has_pending() || s.probes > 0 {
            return true;
        }
        if self.raw_frames.iter().any(|(id, _)| *id == space) {
            return true;
        }
        if space != SpaceId::ApplicationData {
            return false;
        }
        let cwnd_open = self.data_allowed;
        if self.sends_zero_rtt() {
            // RFC 9000 §7.4.1: 0-RTT carries stream and DATAGRAM frames
            // under the remembered limits; the rest waits for 1-RTT.
            return cwnd_open
                && (self.streams_has_data()
                    || self.streams_has_control_frames()
                    || !self.datagrams_out.is_empty());
        }
        self.ping_pending
            || self.handshake_done_pending
            || (self.handshake_complete && self.ack_frequency.has_pending())
            || self.new_token.is_pending()
            || !self.cids.pending_new.is_empty()
            || !self.cids.pending_retire.is_empty()
            || (cwnd_open && self.sends_application_data() && !self.datagrams_out.is_empty())
            || self.streams_has_control_frames()
            || (cwnd_open && self.sends_application_data() && self.streams_has_data())
    }

    fn open_packet(&mut self, space: SpaceId, buf: &mut Vec<u8>) -> OpenPacket {
        self.open_packet_to(space, buf, None)
    }

    /// Opens a packet to `dst_cid`, or to the active connection ID.
    fn open_packet_to(
        &mut self,
        space: SpaceId,
        buf: &mut Vec<u8>,
        dst_cid: Option<crate::ConnectionId>,
    ) -> OpenPacket {
        let largest_acked = self.space(space).largest_acked;
        self.take_armed_skip(space);
        let pn = self.space_mut(space).take_pn();
        let number = TruncatedPacketNumber::encode(pn, largest_acked);
        let dst_cid = dst_cid.unwrap_or_else(|| self.cids.remote_cid());
        let src_cid = self
            .cids
            .initial_local()
            .unwrap_or(crate::ConnectionId::EMPTY);
        let (header, ty) = match space {
            SpaceId::Initial => (
                Header::Initial {
                    version: self.version,
                    dst_cid,
                    src_cid,
                    token: &self.retry_token,
                    number,
                },
                PacketType::Initial,
            ),
            SpaceId::Handshake => (
                Header::Long {
                    ty: PacketType::Handshake,
                    version: self.version,
                    dst_cid,
                    src_cid,
                    number,
                },
                PacketType::Handshake,
            ),
            SpaceId::ApplicationData if self.sends_zero_rtt() => (
                Header::Long {
                    ty: PacketType::ZeroRtt,
                    version: self.version,
                    dst_cid,
                    src_cid,
                    number,
                },
                PacketType::ZeroRtt,
            ),
            SpaceId::ApplicationData => (
                Header::Short {
                    spin: false,
                    key_phase: self.one_rtt.as_ref().is_some_and(|k| k.key_phase),
                    dst_cid,
                    number,
                },
                PacketType::OneRtt,
            ),
        };
        let header = header.encode(buf);
        // RFC 9287 §3.1: the QUIC bit is not covered by header protection.
        if self.clear_quic_bit() {
            buf[header.start] &= !crate::packet::header::FIXED_BIT;
        }
        OpenPacket {
            space,
            ty,
            pn,
            header,
            ack_eliciting: false,
            retransmits: Retransmits::default(),
            largest_ack: None,
            mtu_probe: false,
            path_probe: false,
        }
    }

    /// The first frames queued by `send_raw_frames_for_test` for this
    /// packet's space that fit within `limit`.
    fn write_raw_frames(&mut self, buf: &mut Vec<u8>, p: &mut OpenPacket, limit: usize) {
        let space = p.space;
        if let Some(i) = self
            .raw_frames
            .iter()
            .position(|(id, f)| *id == space && buf.len() + f.len() <= limit)
        {
            let (_, frames) = self.raw_frames.remove(i);
            buf.extend_from_slice(&frames);
            p.ack_eliciting = true;
        }
    }

    /// Fills a packet with frames, never past `limit` (absolute offset in
    /// `buf`, the tag excluded).
    fn write_frames(&mut self, now: Instant, buf: &mut Vec<u8>, p: &mut OpenPacket, limit: usize) {
        let space = p.space;
        if p.ty == PacketType::ZeroRtt {
            // RFC 9000 §12.4, Table 3: no ACK, CRYPTO, HANDSHAKE_DONE or
            // NEW_TOKEN in 0-RTT; only streams (RFC 9001 §4.6).
            self.zero_rtt.sent = true;
            // Test frames too: `has_data_for` counts them in 0-RTT, so
            // leaving them out here would send empty packets without end.
            self.write_raw_frames(buf, p, limit);
            if self.streams_write_control(buf, limit, &mut p.retransmits) {
                p.ack_eliciting = true;
            }
            if self.data_allowed {
                self.write_datagram_frames(buf, limit, p);
                if self.streams_write_data(buf, limit, &mut p.retransmits) {
                    p.ack_eliciting = true;
                }
            }
            return;
        }
        // ACK first: it is small and makes the peer's recovery work.
        if self.space(space).ack_pending {
            self.write_ack(now, buf, p, limit);
        }
        self.write_raw_frames(buf, p, limit);
        if space == SpaceId::ApplicationData {
            if self.handshake_done_pending && buf.len() < limit {
                FrameType::HANDSHAKE_DONE.to_varint().encode(buf);
                self.handshake_done_pending = false;
                p.retransmits.handshake_done = true;
                p.ack_eliciting = true;
            }
            // draft-ietf-quic-ack-frequency §4 (1-RTT only, §3).
            if self.handshake_complete
                && let Some(f) = self
                    .ack_frequency
                    .take_pending(limit.saturating_sub(buf.len()))
            {
                f.encode(buf);
                p.retransmits.ack_frequency = Some(f.sequence.into_inner());
                p.ack_eliciting = true;
                self.stats.ack_frequency_sent += 1;
            }
            if self.write_new_token(buf, limit) {
                p.retransmits.new_token = true;
                p.ack_eliciting = true;
            }
            while let Some(&seq) = self.cids.pending_new.first() {
                let Some(f) = self.cids.new_cid_frame(seq) else {
                    self.cids.pending_new.remove(0);
                    continue;
                };
                let f = frame::Frame::NewConnectionId(f);
                if buf.len() + f.encoded_len() > limit {
                    break;
                }
                f.encode(buf);
                self.cids.pending_new.remove(0);
                p.retransmits.new_cids.push(seq);
                p.ack_eliciting = true;
            }
            while let Some(&seq) = self.cids.pending_retire.first() {
                let f = frame::Frame::RetireConnectionId(RetireConnectionId {
                    sequence: VarInt::from_u64_unchecked(seq),
                });
                if buf.len() + f.encoded_len() > limit {
                    break;
                }
                f.encode(buf);
                // In flight now; loss detection queues it again if lost.
                self.cids.pending_retire.remove(0);
                p.retransmits.retire_cids.push(seq);
                p.ack_eliciting = true;
            }
            if self.streams_write_control(buf, limit, &mut p.retransmits) {
                p.ack_eliciting = true;
            }
        }
        // RFC 9002 §6.2.4: each probe should carry data that may have been
        // lost. With two probes, the first takes every unacknowledged CRYPTO
        // byte; queue them again for the second, or it would be a bare PING
        // — useless to a server that lost the first and never saw our
        // ClientHello.
        if self.space(space).probes > 0 {
            let s = self.space_mut(space);
            if !s.crypto_send.has_pending() {
                s.crypto_send.requeue_unacked();
            }
            if space == SpaceId::ApplicationData {
                self.streams_requeue_for_probe();
            }
        }
        // CRYPTO data.
        while buf.len() < limit {
            let room = limit - buf.len();
            let Some(range) = self.space_mut(space).crypto_send.write_frame(buf, room) else {
                break;
            };
            p.ack_eliciting = true;
            // One CRYPTO range per packet record: merge adjacent pieces.
            p.retransmits.crypto = Some(match p.retransmits.crypto.take() {
                Some(prev) if prev.end == range.start => prev.start..range.end,
                Some(prev) => {
                    // Non-adjacent: keep the first; the second is requeued
                    // so it is tracked by a later packet.
                    self.space_mut(space).crypto_send.on_lost(range);
                    prev
                }
                None => range,
            });
        }
        if space == SpaceId::ApplicationData && self.sends_application_data() {
            let cwnd_open = self.data_allowed || self.space(space).probes > 0;
            if cwnd_open {
                self.write_datagram_frames(buf, limit, p);
                if self.streams_write_data(buf, limit, &mut p.retransmits) {
                    p.ack_eliciting = true;
                }
            }
        }
        // draft-ietf-quic-ack-frequency §7: "When sending PTO packets, one
        // can include an IMMEDIATE_ACK frame to elicit an immediate
        // acknowledgment", so a peer we told to delay ACKs does not delay
        // this one. (A peer on RFC 9000 defaults acknowledges a lone probe
        // within its max_ack_delay, already in the PTO; then we leave the
        // probe as it was.) It is ack-eliciting, so no PING is needed then.
        // §8.4: a client that migrated bundles one with its first
        // non-probing packet on the new path, so the server's answer (and
        // with it the move) is not held back by our requested ACK delay.
        if space == SpaceId::ApplicationData
            && p.ty == PacketType::OneRtt
            && ((self.space(space).probes > 0 && self.ack_frequency.changed_peer_acks())
                || self.ack_frequency.immediate_ack_pending)
            && self.ack_frequency_enabled()
            && buf.len() + frame::IMMEDIATE_ACK_LEN <= limit
        {
            FrameType::IMMEDIATE_ACK.to_varint().encode(buf);
            p.ack_eliciting = true;
            self.ack_frequency.immediate_ack_pending = false;
        }
        // A probe or keep-alive must elicit an ACK (RFC 9002 §6.2.4).
        let s = self.space_mut(space);
        if s.probes > 0 {
            s.probes -= 1;
            if !p.ack_eliciting && buf.len() < limit {
                FrameType::PING.to_varint().encode(buf);
                p.ack_eliciting = true;
            }
        }
        if space == SpaceId::ApplicationData && self.ping_pending && buf.len() < limit {
            self.ping_pending = false;
            if !p.ack_eliciting {
                FrameType::PING.to_varint().encode(buf);
                p.ack_eliciting = true;
            }
        }
    }

    /// Queued DATAGRAM frames, as many as fit before `limit`.
    fn write_datagram_frames(&mut self, buf: &mut Vec<u8>, limit: usize, p: &mut OpenPacket) {
        while let Some(d) = self.datagrams_out.front() {
            let room = limit.saturating_sub(buf.len());
            let Some(max) = frame::max_datagram_data(room, true) else {
                break;
            };
            if d.len() > max {
                break;
            }
            let d = self.datagrams_out.pop_front().expect("front");
            DatagramHeader {
                len: d.len(),
                len_field: true,
            }
            .encode(buf);
            buf.extend_from_slice(&d);
            p.ack_eliciting = true;
        }
    }

    fn write_ack(&mut self, now: Instant, buf: &mut Vec<u8>, p: &mut OpenPacket, limit: usize) {
        let s = self.space(p.space);
        let Some((largest, received_at)) = s.largest_received else {
            return;
        };
        // RFC 9000 §19.3: ACK Delay in microseconds scaled by our
        // ack_delay_exponent; zero outside 1-RTT is allowed.
        let delay = if p.space == SpaceId::ApplicationData {
            let micros = now.saturating_duration_since(received_at).as_micros() as u64;
            micros >> self.local_params.ack_delay_exponent
        } else {
            0
        };
        let delay = VarInt::from_u64(delay).unwrap_or(VarInt::MAX);
        // Drop old ranges until the frame fits.
        // RFC 9000 §13.4.1: "the endpoint MUST provide feedback about ECN
        // markings it receives", once it has seen any.
        let ecn = s.ecn_seen.then(|| frame::EcnCounts {
            ect0: VarInt::from_u64(s.ecn_received[0]).unwrap_or(VarInt::MAX),
            ect1: VarInt::from_u64(s.ecn_received[1]).unwrap_or(VarInt::MAX),
            ce: VarInt::from_u64(s.ecn_received[2]).unwrap_or(VarInt::MAX),
        });
        let ranges = s.ack_ranges();
        let mut count = ranges.clone().count();
        while count > 1
            && buf.len() + frame::ack_encoded_len(ranges.clone().take(count), delay, ecn) > limit
        {
            count -= 1;
        }
        if buf.len() + frame::ack_encoded_len(ranges.clone().take(count), delay, ecn) > limit {
            return;
        }
        frame::encode_ack(ranges.take(count), delay, ecn, buf);
        p.largest_ack = Some(largest);
        if p.space == SpaceId::ApplicationData {
            self.stats.ack_packets_sent += 1;
        }
        self.space_mut(p.space).on_ack_sent(now);
    }

    /// Pads (if asked), seals and applies header protection to an open
    /// packet, then records it.
    fn seal_packet(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
        p: OpenPacket,
        pad_to: Option<usize>,
    ) {
        // RFC 9001 §5.4.2: the header-protection sample needs at least 4
        // bytes of packet number plus payload before the tag.
        let min_end = p.header.pn_offset + 4;
        let mut end = buf.len().max(min_end);
        if let Some(pad_to) = pad_to {
            end = end.max(pad_to.saturating_sub(TAG_LEN));
        }
        buf.resize(end, 0); // PADDING frames are zero bytes.
        if let Some(q) = &mut self.qlog {
            // Stream state changes from building this packet (a FIN sent)
            // come before it.
            self.streams.drain_qlog(|u| {
                q.sink
                    .event(now, &crate::qlog::QlogEvent::StreamStateUpdated(*u))
            });
            let length = buf.len() + TAG_LEN - p.header.start;
            let info = crate::qlog::PacketInfo {
                packet_type: p.ty,
                packet_number: p.pn,
                length: u16::try_from(length).unwrap_or(u16::MAX),
                payload: &buf[p.header.header_end()..],
            };
            q.sink.event(now, &crate::qlog::QlogEvent::PacketSent(info));
        }
        if let Some(log) = &mut self.sent_log {
            log.push(super::LoggedPacket {
                time: now,
                ty: p.ty,
                pn: p.pn,
                payload: buf[p.header.header_end()..].to_vec(),
            });
        }
        let payload_len = buf.len() - p.header.header_end();
        buf.resize(buf.len() + TAG_LEN, 0);
        let finished = p.header.finish(buf, payload_len + TAG_LEN);
        debug_assert!(finished, "packet too long for its Length field");
        let packet = &mut buf[p.header.start..];
        let header_len = p.header.header_len();
        let pn_offset = p.header.pn_offset - p.header.start;
        let sealed = match p.space {
            SpaceId::ApplicationData if p.ty == PacketType::ZeroRtt => {
                let keys = self.zero_rtt.keys.as_ref().expect("0-RTT keys checked");
                keys.packet.seal(p.pn, packet, header_len).is_ok()
                    && keys.header.apply(packet, pn_offset).is_ok()
            }
            SpaceId::ApplicationData => {
                let keys = self.one_rtt.as_mut().expect("1-RTT keys checked");
                // RFC 9001 §6.6: "Endpoints MUST count the number of
                // encrypted packets for each set of keys."
                keys.sent_in_phase += 1;
                keys.local.seal(p.pn, packet, header_len).is_ok()
                    && keys.local_header.apply(packet, pn_offset).is_ok()
            }
            space => {
                let keys = self.space(space).keys.as_ref().expect("keys checked");
                keys.local.packet.seal(p.pn, packet, header_len).is_ok()
                    && keys.local.header.apply(packet, pn_offset).is_ok()
            }
        };
        debug_assert!(sealed, "sealing a well-formed packet cannot fail");
        let size = (buf.len() - p.header.start) as u16;
        self.stats.packets_sent += 1;
        if self.is_closed() {
            // Close packets are not tracked for loss (RFC 9000 §10.2.1).
            return;
        }
        let in_flight = !p.path_probe && (p.ack_eliciting || pad_to.is_some());
        if self.tx_ecn {
            self.stats.ecn_marked_sent += 1;
            let pto = self.pto_duration(p.space);
            self.ecn.on_marked_sent(now, p.space, pto);
        }
        self.on_packet_sent(
            now,
            p.space,
            p.pn,
            SentPacket {
                time_sent: now,
                size,
                ack_eliciting: p.ack_eliciting && !p.path_probe,
                in_flight,
                largest_ack: p.largest_ack,
                mtu_probe: p.mtu_probe,
                ecn: self.tx_ecn,
                delivery: crate::congestion::PacketDelivery::new(now),
                retransmits: p.retransmits,
            },
        );
    }
}
