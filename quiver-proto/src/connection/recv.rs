//! Receiving: datagrams to packets, protection removed in place, frames
//! processed (RFC 9000 §12, RFC 9001 §5).

use std::net::SocketAddr;
use std::time::Instant;

use super::migration::RxPath;

use bytes::Bytes;

use super::spaces::SpaceId;
use super::{Connection, ConnectionError, EndpointEvent, Event, State};
use crate::coding::Reader;
use crate::crypto::{Level, TlsOutput};
use crate::frame::{self, Frame};
use crate::packet::header::{self, Parsed, PartialPacket};
use crate::packet::{PacketType, TruncatedPacketNumber};
use crate::qlog::{DropTrigger, KeyTrigger, KeyType};
use crate::{ConnectionId, TransportError, TransportErrorCode, VarInt};

/// Packets and frames of one decrypted packet, summarised for ACK logic.
pub(super) struct Decrypted {
    pub(super) space: SpaceId,
    pub(super) pn: u64,
    pub(super) header_len: usize,
    pub(super) payload_len: usize,
}

impl Connection {
    /// Processes a datagram routed to this connection, received from
    /// `remote` on the local address `local` (`None`: not known, or the
    /// endpoint's own address). `data` is modified in place (protection
    /// is removed where it lies).
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local: Option<SocketAddr>,
        ecn: Option<crate::EcnCodepoint>,
        data: &mut [u8],
    ) {
        self.handle_datagram_packets(now, remote, local, ecn, data);
        self.qlog_sync(now);
    }

    fn handle_datagram_packets(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local: Option<SocketAddr>,
        ecn: Option<crate::EcnCodepoint>,
        data: &mut [u8],
    ) {
        if self.state == State::Drained {
            return;
        }
        self.stats.datagrams_received += 1;
        if let Some(q) = &mut self.qlog {
            // One datagram per call (transport:datagrams_received).
            let length = u16::try_from(data.len()).unwrap_or(u16::MAX);
            q.sink
                .event(now, &crate::qlog::QlogEvent::DatagramsReceived { length });
        }
        self.stats.bytes_received += data.len() as u64;
        // Only a server's preferred address makes a path of its own; any
        // other local address is the one the connection started on.
        let local = local.filter(|l| self.is_preferred_local(*l));
        let key = super::paths::PathKey { remote, local };
        let Some(rx) = self.rx_path(now, key, data.len()) else {
            self.packet_dropped(now, None, data.len(), DropTrigger::DosPrevention);
            return;
        };
        self.rx_remote = remote;
        self.rx_local = local;
        self.rx_ecn = ecn;
        self.stats.ecn_marked_received += u64::from(ecn.is_some());
        if ecn == Some(crate::EcnCodepoint::Ce) {
            self.stats.ecn_ce_received += 1;
        }
        let datagram_len = data.len();
        let cid_len = self.endpoint_config.local_cid_len;
        let mut offset = 0;
        let mut first_dst: Option<ConnectionId> = None;
        while offset < data.len() {
            // RFC 9287 §3: "An endpoint that advertises the grease_quic_bit
            // transport parameter MUST accept packets with the QUIC Bit set
            // to a value of 0."
            let grease = self.local_params.grease_quic_bit;
            let parsed = match header::decode_with(&data[offset..], cid_len, grease) {
                Ok(Parsed::Packet(p)) => p,
                Ok(Parsed::UnsupportedVersion(_)) => {
                    let len = data.len() - offset;
                    self.packet_dropped(now, None, len, DropTrigger::UnsupportedVersion);
                    break;
                }
                Err(_) => {
                    let len = data.len() - offset;
                    self.packet_dropped(now, None, len, DropTrigger::HeaderParseError);
                    break;
                }
            };
            // RFC 9000 §12.2: ignore coalesced packets for another CID.
            if *first_dst.get_or_insert(parsed.dst_cid) != parsed.dst_cid {
                break;
            }
            let end = offset + parsed.len;
            let is_short = !parsed.is_long();
            let handled =
                self.handle_packet(now, rx, datagram_len, &parsed, &mut data[offset..end]);
            if !handled && is_short && end == data.len() {
                self.check_stateless_reset(now, &data[offset..end]);
            }
            offset = end;
            if self.state == State::Drained {
                return;
            }
        }
        // Packets kept for want of keys the ones above brought.
        self.read_early_packets(now);
        // A 1-RTT close coalesced after a converted one was read above.
        self.end_of_datagram_while_closed();
    }

    /// Counts a packet dropped unread, and tells qlog why.
    pub(super) fn packet_dropped(
        &mut self,
        now: Instant,
        packet_type: Option<PacketType>,
        len: usize,
        trigger: DropTrigger,
    ) {
        self.stats.packets_dropped += 1;
        if let Some(q) = &mut self.qlog {
            let event = crate::qlog::QlogEvent::PacketDropped {
                packet_type,
                length: u16::try_from(len).unwrap_or(u16::MAX),
                trigger,
            };
            q.sink.event(now, &event);
        }
    }

    /// One packet; returns whether it was authenticated.
    pub(super) fn handle_packet(
        &mut self,
        now: Instant,
        rx: RxPath,
        datagram_len: usize,
        p: &PartialPacket,
        packet: &mut [u8],
    ) -> bool {
        match p.ty {
            PacketType::VersionNegotiation => {
                self.on_version_negotiation(p, packet);
                return false;
            }
            PacketType::Retry => {
                self.on_retry(now, p, packet);
                return false;
            }
            PacketType::ZeroRtt if !self.can_read_zero_rtt() => {
                // A client never reads 0-RTT; a server without 0-RTT keys
                // (early data rejected, or the keys are gone) discards it
                // (RFC 9000 §17.2.3, RFC 9001 §4.9.3).
                tracing::debug!("0-RTT packet dropped: no 0-RTT keys");
                self.packet_dropped(now, Some(p.ty), packet.len(), DropTrigger::KeyUnavailable);
                return false;
            }
            _ => {}
        }
        if self.state == State::Draining && !self.may_upgrade_peer_close(p.ty) {
            // RFC 9000 §10.2.2: "An endpoint that has entered the draining
            // state MUST NOT send any packets"; nothing more to learn, except
            // the application's own close in the 1-RTT packet coalesced after
            // the converted close we started draining on (§10.2.3).
            return false;
        }
        // RFC 9369 §4.1: packets of another version are dropped, except
        // the original version's Initials and a client's switch.
        let Ok(switched) = self.accept_packet_version(p) else {
            let trigger = DropTrigger::UnsupportedVersion;
            self.packet_dropped(now, Some(p.ty), packet.len(), trigger);
            return false;
        };
        if p.is_long() && self.peer_src_cid_fixed() && Some(p.src_cid) != self.peer_initial_src_cid
        {
            // RFC 9000 §7.2: "Once a client has received a valid Initial
            // packet from the server, it MUST discard any subsequent packet
            // it receives on that connection with a different Source
            // Connection ID", and a server: "if subsequent Initial packets
            // include a different Source Connection ID, they MUST be
            // discarded".
            let trigger = DropTrigger::UnexpectedSourceConnectionId;
            self.packet_dropped(now, Some(p.ty), packet.len(), trigger);
            return false;
        }
        if p.ty == PacketType::Initial && self.side.is_client() && !p.token.is_empty() {
            // RFC 9000 §17.2.2: a client receiving an Initial with a token
            // "MUST either discard the packet or generate a connection error".
            let trigger = DropTrigger::UnexpectedPacket;
            self.packet_dropped(now, Some(p.ty), packet.len(), trigger);
            return false;
        }
        // Whether or not we may read it (RFC 9001 §5.7), a 1-RTT packet says
        // the peer holds 1-RTT keys: it orders the copies of a close that
        // the anti-amplification budget cannot fit at once.
        if p.ty == PacketType::OneRtt {
            self.peer_sent_one_rtt = true;
        }
        // RFC 9000 §10.2.1: "An endpoint in the closing state sends a packet
        // containing a CONNECTION_CLOSE frame in response to any incoming
        // packet that it attributes to the connection", and "an endpoint's
        // selected connection ID and the QUIC version are sufficient
        // information to identify packets for a closing connection". So
        // count it whether or not we can decrypt it: a peer that missed our
        // close may only be sending what we cannot read (1-RTT to a server
        // whose handshake is not complete, Initial after we dropped those
        // keys). Answers stay rate-limited and within the anti-amplification
        // budget.
        self.on_packet_while_closed();
        let failures = self.stats.authentication_failures;
        let Some(d) = self.decrypt(now, p, packet) else {
            if let Some(undo) = switched {
                self.undo_version_switch(undo);
            }
            let trigger = if self.stats.authentication_failures > failures {
                DropTrigger::DecryptionFailure
            } else if self.keep_early_packet(p.ty, rx, datagram_len, packet) {
                // RFC 9001 §4.1.4: kept until its keys arrive.
                return false;
            } else {
                DropTrigger::KeyUnavailable
            };
            self.packet_dropped(now, Some(p.ty), packet.len(), trigger);
            return false;
        };
        if !header::reserved_bits_ok(packet[0]) {
            // RFC 9000 §17.2, §17.3.1: non-zero reserved bits after removing
            // protection is a PROTOCOL_VIOLATION.
            self.on_transport_error(
                now,
                TransportError::protocol_violation("reserved header bits set"),
            );
            return true;
        }
        if self.space(d.space).is_duplicate(d.pn) {
            self.packet_dropped(now, Some(p.ty), packet.len(), DropTrigger::Duplicate);
            return true;
        }

        // The packet is authentic: it counts as activity (RFC 9000 §10.1).
        self.last_activity = Some(now);
        self.idle_restarted_by_send = false;
        self.reset_idle_timer(now);
        // RFC 9000 §9.3: only the highest-numbered non-probing packet moves
        // us to a new peer address.
        let largest = self
            .space(d.space)
            .largest_received
            .is_none_or(|(l, _)| d.pn > l);

        if self.side.is_client() && p.ty == PacketType::Initial && !self.received_server_initial {
            // RFC 9000 §7.2: the client switches its Destination CID to the
            // server's chosen Source CID on the first Initial.
            self.received_server_initial = true;
            self.cids.set_initial_remote(p.src_cid);
            self.peer_initial_src_cid = Some(p.src_cid);
        }
        if self.side.is_server()
            && p.ty == PacketType::Initial
            && self.space(SpaceId::Initial).largest_received.is_none()
        {
            // RFC 9000 §7.2: "A server MUST set the Destination Connection
            // ID it uses for sending packets based on the first received
            // Initial packet", and §7.3 checks initial_source_connection_id
            // against it. The connection was created from the first
            // datagram before anything was decrypted; a damaged or forged
            // copy fails authentication and is discarded, not received, so
            // the CID comes from the first Initial that authenticates.
            self.cids.set_initial_remote(p.src_cid);
            self.peer_initial_src_cid = Some(p.src_cid);
        }
        if self.side.is_server() && p.ty == PacketType::Handshake {
            // RFC 9000 §8.1: a Handshake packet proves the client got our
            // Initial: its address is validated. RFC 9001 §4.9.1: "a server
            // MUST discard Initial keys when it first successfully processes
            // a Handshake packet".
            self.path.validated = true;
            self.discard_space(now, SpaceId::Initial);
        }

        let payload = &packet[d.header_len..d.header_len + d.payload_len];
        if let Some(q) = &mut self.qlog {
            let info = crate::qlog::PacketInfo {
                packet_type: p.ty,
                packet_number: d.pn,
                length: u16::try_from(packet.len()).unwrap_or(u16::MAX),
                payload,
            };
            q.sink
                .event(now, &crate::qlog::QlogEvent::PacketReceived(info));
        }
        if self.is_closed() {
            // Still notice the peer's close (it ends our closing early).
            for f in frame::Iter::new(payload).flatten() {
                if let Some(reason) = peer_close_reason(&f) {
                    self.on_peer_close(now, p.ty, reason);
                    break;
                }
            }
            return true;
        }
        self.on_authenticated(now, rx, datagram_len);
        let result = self.process_payload(now, p, d.space, payload);
        if let Ok((_, non_probing)) = result {
            self.after_packet_from(now, rx, p.dst_cid, largest, non_probing);
        }
        match result.map(|(ack_eliciting, _)| ack_eliciting) {
            // The packet may have completed the handshake and discarded its
            // own space: then there is nothing left to acknowledge.
            Ok(ack_eliciting) if !self.space(d.space).discarded => {
                // RFC 9000 §13.2.1: "An endpoint MUST acknowledge all
                // ack-eliciting Initial and Handshake packets immediately".
                // draft-ietf-quic-ack-frequency §6: in 1-RTT, as the peer's
                // latest ACK_FREQUENCY asks (RFC 9000 §13.2 until one came).
                let policy = match d.space {
                    SpaceId::ApplicationData => self.ack_frequency.policy,
                    _ => super::ack_frequency::AckPolicy::default_with_delay(
                        std::time::Duration::ZERO,
                    ),
                };
                let ecn = self.rx_ecn;
                let space = self.space_mut(d.space);
                space.on_packet_received(now, d.pn, ack_eliciting, policy);
                if ack_eliciting && d.space == SpaceId::ApplicationData {
                    self.hurry_ack_after_idle(now);
                }
                let space = self.space_mut(d.space);
                // RFC 9000 §13.4.1: each processed packet of the datagram
                // counts its IP header's codepoint in its own space.
                if let Some(cp) = ecn {
                    let i = match cp {
                        crate::EcnCodepoint::Ect0 => 0,
                        crate::EcnCodepoint::Ect1 => 1,
                        crate::EcnCodepoint::Ce => 2,
                    };
                    space.ecn_received[i] += 1;
                    space.ecn_seen = true;
                }
                // draft-ietf-quic-ack-frequency §6.3: "If the Ack-Eliciting
                // Threshold is larger than 1, an endpoint SHOULD send an
                // immediate acknowledgement when a packet marked with ... CE
                // ... is received and the previously received packet was not
                // marked CE."
                let ce = ecn == Some(crate::EcnCodepoint::Ce);
                if ce && !space.last_ce && policy.threshold > 1 {
                    space.ack_immediately = true;
                }
                space.last_ce = ce;
            }
            Ok(_) => {}
            Err(e) => self.on_transport_error(now, e),
        }
        self.drain_tls(now);
        true
    }

    /// Whether the peer's Source Connection ID is settled by a valid
    /// Initial it sent (RFC 9000 §7.2), so long-header packets carrying
    /// another one are discarded.
    fn peer_src_cid_fixed(&self) -> bool {
        if self.side.is_client() {
            self.received_server_initial
        } else {
            let initial = self.space(SpaceId::Initial);
            initial.largest_received.is_some() || initial.discarded
        }
    }

    /// Removes header and packet protection in place.
    fn decrypt(&mut self, now: Instant, p: &PartialPacket, packet: &mut [u8]) -> Option<Decrypted> {
        let space = match p.ty {
            PacketType::Initial => SpaceId::Initial,
            PacketType::Handshake => SpaceId::Handshake,
            PacketType::ZeroRtt => return self.decrypt_zero_rtt(now, p, packet),
            _ => SpaceId::ApplicationData,
        };
        if space != SpaceId::ApplicationData {
            let keys = self.read_keys(space, p.version)?;
            let pn_len = keys.remote.header.remove(packet, p.pn_offset).ok()?;
            let header_len = p.pn_offset + pn_len;
            let largest = self.space(space).largest_received.map(|(pn, _)| pn);
            let pn = expand(packet, p.pn_offset, pn_len, largest);
            let Ok(payload_len) = keys.remote.packet.open(pn, packet, header_len) else {
                self.on_authentication_failure(now);
                return None;
            };
            return Some(Decrypted {
                space,
                pn,
                header_len,
                payload_len,
            });
        }
        // 1-RTT. RFC 9001 §5.7: a server must not process 1-RTT packets
        // before the handshake completes; a client may once it has keys.
        if self.side.is_server() && !self.handshake_complete {
            return None;
        }
        let largest = self.space(space).largest_received;
        let confirmed = self.handshake_confirmed;
        let keys = self.one_rtt.as_mut()?;
        keys.expire_previous(now);
        let pn_len = keys.remote_header.remove(packet, p.pn_offset).ok()?;
        let header_len = p.pn_offset + pn_len;
        let pn = expand(packet, p.pn_offset, pn_len, largest.map(|(pn, _)| pn));
        let phase = header::key_phase(packet[0]);
        if phase == keys.key_phase {
            let Ok(payload_len) = keys.remote.open(pn, packet, header_len) else {
                self.on_authentication_failure(now);
                return None;
            };
            let pto = self.pto_duration(SpaceId::ApplicationData);
            let keys = self.one_rtt.as_mut()?;
            keys.on_current_phase_received(pn, now + 3 * pto);
            self.on_one_rtt_received();
            return Some(Decrypted {
                space,
                pn,
                header_len,
                payload_len,
            });
        }
        // The other phase bit: a packet older than the current phase under
        // the previous keys (RFC 9001 §6.5), including the peer's packets
        // sent before it saw an update we started; or the peer updating
        // keys (§6.3).
        if keys.is_previous_phase(pn) {
            let (prev, _) = keys.previous_remote.as_ref()?;
            let Ok(payload_len) = prev.open(pn, packet, header_len) else {
                self.on_authentication_failure(now);
                return None;
            };
            return Some(Decrypted {
                space,
                pn,
                header_len,
                payload_len,
            });
        }
        if keys
            .first_remote_pn_in_phase
            .is_some_and(|first| pn < first)
        {
            // Older than the current phase, and its keys are gone.
            return None;
        }
        if !confirmed || !keys.phase_acked {
            // RFC 9001 §6.1: no update before confirmation; §6.2: the peer
            // must not update again before acknowledging our current phase.
            // Try to decrypt to tell an error from garbage.
            let mut copy = packet.to_vec();
            if keys.next_remote().open(pn, &mut copy, header_len).is_ok() {
                self.on_transport_error(
                    now,
                    TransportError::key_update_error("key update before it was allowed"),
                );
            } else {
                self.on_authentication_failure(now);
            }
            return None;
        }
        let Ok(payload_len) = keys.next_remote().open(pn, packet, header_len) else {
            self.on_authentication_failure(now);
            return None;
        };
        let pto = self.pto_duration(SpaceId::ApplicationData);
        let keys = self.one_rtt.as_mut()?;
        // RFC 9001 §6.5: keep the old keys about three PTOs for reordering.
        keys.update(Some(now + 3 * pto));
        keys.on_current_phase_received(pn, now + 3 * pto);
        self.stats.key_updates += 1;
        tracing::debug!(key_phase = keys.key_phase, "peer updated keys");
        self.qlog_key_updated(now, KeyType::OneRtt, KeyTrigger::RemoteUpdate);
        Some(Decrypted {
            space,
            pn,
            header_len,
            payload_len,
        })
    }

    /// Processes the frames of an authenticated packet. Returns whether it
    /// was ack-eliciting, and whether it carried a non-probing frame
    /// (RFC 9000 §9.1).
    fn process_payload(
        &mut self,
        now: Instant,
        p: &PartialPacket,
        space: SpaceId,
        payload: &[u8],
    ) -> Result<(bool, bool), TransportError> {
        // RFC 9000 §12.4: a packet with no frames is a PROTOCOL_VIOLATION.
        frame::check_not_empty(payload)?;
        let mut ack_eliciting = false;
        let mut non_probing = false;
        // A Reader rather than `frame::Iter`: the DATAGRAM size check below
        // needs each frame's encoded length.
        let mut r = Reader::new(payload);
        while !r.is_empty() {
            let start = r.position();
            let f = Frame::decode(&mut r)?;
            let encoded_len = r.position() - start;
            let ty = f.ty();
            // RFC 9000 §19.19: an error's Frame Type is "the type of frame
            // that triggered the error", as received. A decoded STREAM or
            // DATAGRAM frame re-encodes with normalised OFF/LEN bits
            // (`Frame::ty`), so the type is read back from the packet.
            let received_ty = Reader::new(&payload[start..])
                .varint()
                .map_or(ty.value(), |t| t.into_inner());
            // RFC 9000 §12.4: a frame in a packet type that does not allow
            // it "MUST" be a PROTOCOL_VIOLATION. §12.5: a server "MAY"
            // treat RETIRE_CONNECTION_ID in 0-RTT (allowed by Table 3) the
            // same; quiver does: acting on it (sequence 0, say) retired the
            // server's handshake connection ID before its first Initial,
            // and the client then refused the handshake for an
            // initial_source_connection_id mismatch (§7.3).
            if !frame::is_allowed_strict(ty, p.ty) {
                return Err(TransportError::protocol_violation(
                    "frame not allowed in this packet type",
                )
                .with_frame(received_ty));
            }
            if let (Frame::Datagram(_), Some(max)) = (&f, self.local_params.max_datagram_frame_size)
            {
                // RFC 9221 §3: max_datagram_frame_size is "the maximum size
                // of a DATAGRAM frame (including the frame type, length, and
                // payload)"; only a frame "larger than" it is a
                // PROTOCOL_VIOLATION. (This used to add a fixed 3 bytes to
                // the data length, rejecting frames of exactly the limit
                // whose type and length took fewer.)
                if encoded_len as u64 > max {
                    return Err(TransportError::protocol_violation("DATAGRAM too large")
                        .with_frame(received_ty));
                }
            }
            ack_eliciting |= f.is_ack_eliciting();
            non_probing |= !super::migration::is_probing(&f);
            // Errors naming a frame name this one: give its received type.
            self.process_frame(now, p, space, f)
                .map_err(|e| match e.frame_type {
                    Some(_) => e.with_frame(received_ty),
                    None => e,
                })?;
            if self.is_closed() {
                break;
            }
        }
        Ok((ack_eliciting, non_probing))
    }

    fn process_frame(
        &mut self,
        now: Instant,
        p: &PartialPacket,
        space: SpaceId,
        f: Frame<'_>,
    ) -> Result<(), TransportError> {
        match f {
            Frame::Padding(_) | Frame::Ping => {}
            Frame::Ack(ack) => self.on_ack_received(now, space, &ack)?,
            Frame::Crypto(c) => {
                self.space_mut(space).crypto_recv.on_frame(&c)?;
                let level = match space {
                    SpaceId::Initial => Level::Initial,
                    SpaceId::Handshake => Level::Handshake,
                    SpaceId::ApplicationData => Level::OneRtt,
                };
                let mut data = std::mem::take(&mut self.crypto_scratch);
                data.clear();
                if self.space_mut(space).crypto_recv.read(&mut data) {
                    let result = self.tls.read_handshake(level, &data);
                    self.crypto_scratch = data;
                    result?;
                    self.drain_tls(now);
                } else {
                    self.crypto_scratch = data;
                }
            }
            Frame::NewToken(t) => {
                // RFC 9000 §19.7: "A server MUST treat receipt of a NEW_TOKEN
                // frame as a connection error of type PROTOCOL_VIOLATION."
                if self.side.is_server() {
                    return Err(
                        TransportError::protocol_violation("NEW_TOKEN from a client")
                            .with_frame(0x07),
                    );
                }
                // RFC 9000 §8.1.3: kept for the next connection.
                self.on_new_token_frame(t.token);
            }
            // draft-ietf-quic-ack-frequency §4, §5.
            Frame::AckFrequency(f) => self.on_ack_frequency_frame(f)?,
            Frame::ImmediateAck => self.on_immediate_ack_frame()?,
            Frame::HandshakeDone => {
                // RFC 9000 §19.20: "A server MUST treat receipt of a
                // HANDSHAKE_DONE frame as a connection error of type
                // PROTOCOL_VIOLATION."
                if self.side.is_server() {
                    return Err(
                        TransportError::protocol_violation("HANDSHAKE_DONE from a client")
                            .with_frame(0x1e),
                    );
                }
                self.on_handshake_confirmed(now);
            }
            Frame::NewConnectionId(n) => {
                let limit = self.local_params.active_connection_id_limit;
                self.cids.on_new_cid(&n, limit)?;
            }
            Frame::RetireConnectionId(r) => {
                if let Some(cid) = self.cids.on_retire(r.sequence.into_inner(), &p.dst_cid)? {
                    self.endpoint_events
                        .push_back(EndpointEvent::RetireCid(cid));
                }
            }
            // RFC 9000 §8.2.2: answer with PATH_RESPONSE echoing the data,
            // on the path it came on.
            Frame::PathChallenge(c) => self.on_path_challenge(c.0),
            Frame::PathResponse(r) => self.on_path_response(now, r.0),
            Frame::ConnectionClose(c) => {
                let code = c.code();
                let reason = Bytes::copy_from_slice(c.reason);
                let error = if code == TransportErrorCode::CONNECTION_REFUSED {
                    ConnectionError::Refused
                } else {
                    ConnectionError::ConnectionClosed {
                        code,
                        frame_type: (c.frame_type.value() != 0).then_some(c.frame_type.value()),
                        reason,
                    }
                };
                self.on_peer_close(now, p.ty, error);
            }
            Frame::ApplicationClose(c) => {
                self.on_peer_close(
                    now,
                    p.ty,
                    ConnectionError::ApplicationClosed {
                        code: c.error_code,
                        reason: Bytes::copy_from_slice(c.reason),
                    },
                );
            }
            Frame::Datagram(d) => {
                // RFC 9221 §3: DATAGRAM frames without having advertised
                // support, or larger than advertised, are PROTOCOL_VIOLATION.
                // (Their size was checked in `process_payload`.)
                if self.local_params.max_datagram_frame_size.is_none() {
                    return Err(
                        TransportError::protocol_violation("unexpected DATAGRAM").with_frame(0x30)
                    );
                }
                // Bounded buffer: drop the oldest (RFC 9221 §5 lets a
                // receiver drop datagrams). Each held datagram also costs a
                // queue entry and an allocation, so their number is bounded
                // too: otherwise empty or one-byte DATAGRAM frames would fit
                // millions of entries in the byte budget.
                let max_held = (self.config.datagram_receive_buffer / DATAGRAM_ENTRY_COST).max(1);
                while (self.datagrams_in_bytes + d.data.len() > self.config.datagram_receive_buffer
                    || self.datagrams_in.len() >= max_held)
                    && !self.datagrams_in.is_empty()
                {
                    if let Some(old) = self.datagrams_in.pop_front() {
                        self.datagrams_in_bytes -= old.len();
                    }
                }
                if d.data.len() <= self.config.datagram_receive_buffer {
                    // One event while datagrams wait unread, not one each:
                    // the event queue of an application that does not read
                    // them would grow with every frame.
                    if self.datagrams_in.is_empty() {
                        self.events.push_back(Event::DatagramReceived);
                    }
                    self.datagrams_in_bytes += d.data.len();
                    self.datagrams_in.push_back(Bytes::copy_from_slice(d.data));
                }
            }
            Frame::Stream(s) => {
                self.on_stream_data_arrived(now, s.fin);
                self.streams_on_frame(now, f)?;
            }
            Frame::ResetStream(_)
            | Frame::StopSending(_)
            | Frame::MaxData(_)
            | Frame::MaxStreamData(_)
            | Frame::MaxStreams(_)
            | Frame::DataBlocked(_)
            | Frame::StreamDataBlocked(_)
            | Frame::StreamsBlocked(_) => self.streams_on_frame(now, f)?,
        }
        Ok(())
    }

    /// Applies everything TLS produced: handshake bytes to send, new keys,
    /// and handshake completion.
    pub(crate) fn drain_tls(&mut self, now: Instant) {
        while let Some(out) = self.tls.poll_output() {
            match out {
                TlsOutput::Data { level, data } => {
                    let space = match level {
                        Level::Initial => SpaceId::Initial,
                        Level::Handshake => SpaceId::Handshake,
                        Level::ZeroRtt | Level::OneRtt => SpaceId::ApplicationData,
                    };
                    if !self.space(space).discarded {
                        self.space_mut(space).crypto_send.write(&data);
                    }
                }
                TlsOutput::HandshakeKeys(keys) => {
                    self.space_mut(SpaceId::Handshake).keys = Some(keys);
                    self.qlog_key_updated(now, KeyType::Handshake, KeyTrigger::Tls);
                }
                TlsOutput::OneRttKeys { keys, update } => {
                    self.one_rtt = Some(super::keys::OneRttKeys::new(
                        keys.local.header,
                        keys.remote.header,
                        keys.local.packet,
                        keys.remote.packet,
                        update,
                    ));
                    self.qlog_key_updated(now, KeyType::OneRtt, KeyTrigger::Tls);
                }
            }
        }
        self.install_zero_rtt_keys();
        // A resuming client's TLS session exposes the parameters remembered
        // from the last connection (for 0-RTT, RFC 9000 §7.4.1) before the
        // server's EncryptedExtensions arrive; those must not be taken for
        // this connection's. The client waits for the handshake to complete.
        let fresh = self.side.is_server() || !self.tls.is_handshaking();
        if self.peer_params.is_none() && fresh {
            if let Some(params) = self.tls.peer_transport_params().cloned() {
                if let Err(e) = self.on_peer_params(now, params) {
                    self.on_transport_error(now, e);
                    return;
                }
            }
        }
        if !self.handshake_complete && !self.tls.is_handshaking() && self.peer_params.is_some() {
            self.handshake_complete = true;
            self.on_client_handshake_complete(now);
            if self.state == State::Handshake {
                self.state = State::Established;
            }
            self.events.push_back(Event::Connected);
            if self.side.is_server() {
                // RFC 9001 §4.1.2: "the TLS handshake is considered confirmed
                // at the server when the handshake completes"; RFC 9000
                // §19.20: the server sends HANDSHAKE_DONE.
                self.handshake_done_pending = true;
                self.on_handshake_confirmed(now);
            }
        }
    }

    /// RFC 9000 §7.3 and §7.4: check and apply the peer's parameters.
    fn on_peer_params(
        &mut self,
        now: Instant,
        params: crate::transport_params::TransportParameters,
    ) -> Result<(), TransportError> {
        let tp_err = TransportError::transport_parameter_error;
        // RFC 9368 §4, required by RFC 9369 §4.
        self.validate_version_information(&params)?;
        // RFC 9000 §7.3: "An endpoint MUST treat the absence of the
        // initial_source_connection_id transport parameter from either
        // endpoint ... as a connection error of type
        // TRANSPORT_PARAMETER_ERROR", and a mismatch with the Source
        // Connection ID of the peer's Initial likewise.
        let Some(initial_src) = params.initial_source_connection_id else {
            return Err(tp_err("missing initial_source_connection_id"));
        };
        if Some(initial_src) != self.peer_initial_src_cid {
            return Err(tp_err("initial_source_connection_id does not match"));
        }
        if self.side.is_client() {
            // "... or the absence of the original_destination_connection_id
            // transport parameter from the server".
            if params.original_destination_connection_id != Some(self.orig_dst_cid) {
                return Err(tp_err("original_destination_connection_id does not match"));
            }
            // Retry: retry_source_connection_id present exactly after a Retry
            // and equal to its Source CID.
            if params.retry_source_connection_id != self.retry_src_cid {
                return Err(tp_err("retry_source_connection_id does not match"));
            }
            if let Some(token) = params.stateless_reset_token {
                self.cids.set_initial_remote_reset_token(token);
            }
            // RFC 9000 §5.1.1: "the sequence number of the connection ID
            // supplied in the preferred_address transport parameter is 1".
            if let Some(pa) = &params.preferred_address {
                let frame = crate::frame::NewConnectionId {
                    sequence: VarInt::from_u32(1),
                    retire_prior_to: VarInt::ZERO,
                    id: pa.connection_id,
                    reset_token: pa.stateless_reset_token,
                };
                let limit = self.local_params.active_connection_id_limit;
                self.cids
                    .on_new_cid(&frame, limit)
                    .map_err(|_| tp_err("preferred_address connection ID rejected"))?;
            }
        }
        if params.max_udp_payload_size < u64::from(self.max_udp_payload) {
            self.max_udp_payload = params.max_udp_payload_size.max(1200) as u16;
        }
        self.streams_set_peer_params(&params);
        if let Some(q) = &mut self.qlog {
            let event = crate::qlog::QlogEvent::ParametersSet {
                owner: crate::qlog::Owner::Remote,
                params: &params,
            };
            q.sink.event(now, &event);
        }
        self.peer_params = Some(params);
        self.reset_idle_timer(now);
        Ok(())
    }

    /// RFC 9001 §4.1.2: the handshake is confirmed.
    pub(crate) fn on_handshake_confirmed(&mut self, now: Instant) {
        if self.handshake_confirmed {
            return;
        }
        self.handshake_confirmed = true;
        // RFC 9000 §14.3.1: DPLPMTUD starts once the handshake is done, up
        // to what we allow and what the peer accepts.
        self.mtud = self.new_mtu_discovery(self.max_udp_payload);
        // RFC 9001 §4.9.2: "An endpoint MUST discard its Handshake keys when
        // the TLS handshake is confirmed".
        self.discard_space(now, SpaceId::Initial);
        self.discard_space(now, SpaceId::Handshake);
        self.events.push_back(Event::HandshakeConfirmed);
        self.new_token_on_confirmed();
        self.start_preferred_address_probe(now);
        self.set_loss_detection_timer(now);
    }

    /// RFC 9002 Appendix A.11 `OnPacketNumberSpaceDiscarded`.
    pub(crate) fn discard_space(&mut self, now: Instant, id: SpaceId) {
        if self.space(id).discarded {
            return;
        }
        let in_flight = self.space_mut(id).discard();
        self.persistent.on_space_discarded(id);
        self.bytes_in_flight = self.bytes_in_flight.saturating_sub(in_flight);
        let key_type = super::qlog::key_type(id);
        self.qlog(now, crate::qlog::QlogEvent::KeyDiscarded { key_type });
        self.pto_count = 0;
        self.set_loss_detection_timer(now);
    }
}

/// What a held datagram is charged, bytes of budget per queue entry, for
/// the bound on how many are held: about what a `Bytes` entry and a small
/// allocation cost.
const DATAGRAM_ENTRY_COST: usize = 64;

pub(super) fn expand(packet: &[u8], pn_offset: usize, pn_len: usize, largest: Option<u64>) -> u64 {
    TruncatedPacketNumber::from_wire(&packet[pn_offset..pn_offset + pn_len]).expand(largest)
}

fn peer_close_reason(f: &Frame<'_>) -> Option<ConnectionError> {
    match f {
        Frame::ConnectionClose(c) => Some(ConnectionError::ConnectionClosed {
            code: c.code(),
            frame_type: (c.frame_type.value() != 0).then_some(c.frame_type.value()),
            reason: Bytes::copy_from_slice(c.reason),
        }),
        Frame::ApplicationClose(c) => Some(ConnectionError::ApplicationClosed {
            code: c.error_code,
            reason: Bytes::copy_from_slice(c.reason),
        }),
        _ => None,
    }
}
