//! Packets that arrive before the keys to read them (RFC 9001 §4.1.4:
//! "an endpoint SHOULD buffer received packets if they might be processed
//! using keys that aren't yet available"; §5.7).
//!
//! Reordering sends a server's Handshake packet ahead of the Initial that
//! carries the ServerHello, and the client has no Handshake keys for it
//! yet; a 1-RTT packet can likewise overtake the Handshake packet with the
//! Finished message. Dropped, such a packet is a real loss to its sender:
//! a probe timeout and a congestion response on a path that lost nothing.
//! Kept, it is read as soon as the packets before it install the keys.
//!
//! Memory is bounded ([`MAX_PACKETS`], [`MAX_BYTES`]); what does not fit
//! is dropped as before. Nothing here runs once the handshake is done.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use super::Connection;
use super::migration::RxPath;
use super::spaces::SpaceId;
use crate::packet::PacketType;
use crate::packet::header::{self, Parsed};

/// Packets kept at most: a handshake flight's worth.
const MAX_PACKETS: usize = 8;
/// Bytes kept at most.
const MAX_BYTES: usize = 16 * 1024;

/// One packet kept, with what its datagram said about where it came from.
#[derive(Debug)]
struct Early {
    ty: PacketType,
    remote: SocketAddr,
    local: Option<SocketAddr>,
    ecn: Option<crate::EcnCodepoint>,
    datagram_len: usize,
    data: Vec<u8>,
}

/// Packets waiting for their keys.
#[derive(Debug, Default)]
pub(crate) struct EarlyPackets {
    packets: VecDeque<Early>,
    bytes: usize,
}

impl Connection {
    /// Whether a packet of type `ty` that could not be read for want of
    /// keys may be kept until they arrive: Handshake packets before the
    /// Handshake keys, 1-RTT packets before 1-RTT reading may begin (RFC
    /// 9001 §5.7: a server waits for the handshake to complete), from the
    /// active path only.
    fn may_keep_early(&self, ty: PacketType, rx: RxPath) -> bool {
        if rx != RxPath::Active || self.handshake_complete && self.one_rtt.is_some() {
            return false;
        }
        // Never a packet that is readable now: it failed for another
        // reason, and keeping it would read it again and again.
        match ty {
            PacketType::Handshake => {
                !self.can_read_early(ty) && !self.space(SpaceId::Handshake).discarded
            }
            PacketType::OneRtt => !self.can_read_early(ty),
            _ => false,
        }
    }

    /// Keeps `packet` (type `ty`, from a datagram of `datagram_len`
    /// bytes) if it may be read later; returns whether it was kept.
    pub(super) fn keep_early_packet(
        &mut self,
        ty: PacketType,
        rx: RxPath,
        datagram_len: usize,
        packet: &[u8],
    ) -> bool {
        if !self.may_keep_early(ty, rx) {
            return false;
        }
        let e = &mut self.early_packets;
        if e.packets.len() >= MAX_PACKETS || e.bytes + packet.len() > MAX_BYTES {
            return false;
        }
        e.bytes += packet.len();
        // A copy, off the hot path: only during the handshake, and only
        // for packets that overtook the ones with their keys.
        e.packets.push_back(Early {
            ty,
            remote: self.rx_remote,
            local: self.rx_local,
            ecn: self.rx_ecn,
            datagram_len,
            data: packet.to_vec(),
        });
        true
    }

    /// Whether keys to read a packet of type `ty` are there now.
    fn can_read_early(&self, ty: PacketType) -> bool {
        match ty {
            PacketType::Handshake => self.space(SpaceId::Handshake).keys.is_some(),
            _ => self.one_rtt.is_some() && (self.side.is_client() || self.handshake_complete),
        }
    }

    /// Reads the kept packets whose keys have arrived, in the order they
    /// came (one may bring the keys of the next); drops those that can no
    /// longer be read.
    pub(super) fn read_early_packets(&mut self, now: Instant) {
        if self.early_packets.packets.is_empty() {
            return;
        }
        let (remote, local, ecn) = (self.rx_remote, self.rx_local, self.rx_ecn);
        while let Some(at) = (0..self.early_packets.packets.len())
            .find(|&i| self.can_read_early(self.early_packets.packets[i].ty))
        {
            let Some(mut p) = self.early_packets.packets.remove(at) else {
                break;
            };
            self.early_packets.bytes -= p.data.len();
            self.rx_remote = p.remote;
            self.rx_local = p.local;
            self.rx_ecn = p.ecn;
            let cid_len = self.endpoint_config.local_cid_len;
            let grease = self.local_params.grease_quic_bit;
            if let Ok(Parsed::Packet(parsed)) = header::decode_with(&p.data, cid_len, grease) {
                let len = parsed.len.min(p.data.len());
                self.handle_packet(
                    now,
                    RxPath::Active,
                    p.datagram_len,
                    &parsed,
                    &mut p.data[..len],
                );
            }
            if self.state == super::State::Drained {
                break;
            }
        }
        // Handshake packets whose keys are gone will never be read.
        let handshake_gone = self.space(SpaceId::Handshake).discarded;
        let e = &mut self.early_packets;
        e.packets
            .retain(|p| !(handshake_gone && p.ty == PacketType::Handshake));
        e.bytes = e.packets.iter().map(|p| p.data.len()).sum();
        (self.rx_remote, self.rx_local, self.rx_ecn) = (remote, local, ecn);
    }
}
