//! Several datagrams in one [`Transmit`]: the batch a UDP socket sends
//! with one system call through generic segmentation offload (GSO).
//!
//! The first datagram is written as any other ([`Connection::poll_transmit`]
//! with one datagram); when it filled its room, further datagrams follow
//! it in the caller's buffer, each at most as large as the first (the
//! segment size), until the caller's limit, the congestion window or the
//! pacer stops them, or one comes out shorter: a shorter datagram ends
//! the batch, because a GSO send cuts its buffer into equal segments and
//! only the last may be short. All of them go to the same address, from
//! the same address, with the same ECN codepoint: one set of socket
//! options for the whole send.
//!
//! Each datagram is built on its own, so the rules per datagram hold for
//! each: packets coalesce within one datagram only (RFC 9000 §12.2), and
//! a datagram carrying an Initial packet is padded to 1200 bytes
//! (§14.1).

use std::time::Instant;

use super::send::{MIN_INITIAL_DATAGRAM, MIN_PACKET_ROOM, TAG_LEN};
use super::spaces::SpaceId;
use super::{Connection, State, Transmit};

/// The most bytes one [`Transmit`] carries: the largest UDP payload over
/// IPv4 (65,535 less the 20-byte IP and 8-byte UDP headers), which is
/// also what one GSO send may carry.
pub const MAX_TRANSMIT_BYTES: usize = 65_507;

impl Connection {
    /// Appends datagrams after the `first` one of `transmit` (written at
    /// `start` in `buf`), each no larger than it, while `max_datagrams`
    /// allows and there is something to send; sets the transmit's size and
    /// segment size.
    pub(super) fn append_segments(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
        transmit: &mut Transmit,
        first_filled: bool,
    ) {
        let segment = transmit.size;
        if max_datagrams <= 1 || !first_filled || segment < MIN_PACKET_ROOM + TAG_LEN {
            return;
        }
        let ecn = transmit.ecn.is_some();
        let mut count = 1;
        while count < max_datagrams && transmit.size + segment <= MAX_TRANSMIT_BYTES {
            if !matches!(self.state, State::Handshake | State::Established) {
                break;
            }
            // One codepoint per send (it is in every IP header alike): a
            // change of marking (RFC 9000 §13.4.2: testing ends, or
            // validation fails) starts a new transmit.
            if self.ecn.marking() != ecn {
                break;
            }
            // RFC 9000 §14.1: a datagram with an Initial packet is padded
            // to 1200 bytes, which a smaller segment cannot hold.
            if segment < MIN_INITIAL_DATAGRAM && self.can_send_in(SpaceId::Initial) {
                break;
            }
            // A path probe leaves on its own path, possibly from another
            // address: it goes first, in the next transmit.
            if self.path_probe_due(now).is_some() {
                break;
            }
            // So does a path MTU probe (RFC 9000 §14.4), larger than the
            // segments: the datagrams go out in the order they would one
            // at a time.
            if self.mtu_probe_due(now) {
                break;
            }
            let max = self.max_datagram_len().min(segment);
            self.tx_ecn = ecn;
            let size = self.write_datagram(now, buf, max);
            if size == 0 {
                if self.state == State::Established {
                    self.check_app_limited();
                }
                break;
            }
            self.stats.datagrams_sent += 1;
            self.stats.bytes_sent += size as u64;
            let key = self.path.key();
            if let Some(path) = self.path_mut(key) {
                path.on_sent(size);
            }
            transmit.size += size;
            count += 1;
            if size < segment {
                // Only the last segment may be short.
                break;
            }
        }
        if count > 1 {
            transmit.segment_size = Some(segment);
        }
    }
}

impl Connection {
    /// Whether `write_mtu_probe` would send a probe now.
    fn mtu_probe_due(&mut self, now: Instant) -> bool {
        if !self.path.validated || self.one_rtt.is_none() {
            return false;
        }
        let Some(size) = self.mtud.as_mut().and_then(|m| m.next_probe(now)) else {
            return false;
        };
        self.bytes_in_flight + u64::from(size) <= self.cc.window()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::tests::Pair;
    use crate::frame::Dir;
    use crate::packet::PacketType;

    /// A connected pair with `bytes` of stream data queued at the client.
    fn pair_with_data(bytes: usize) -> (Pair, crate::ConnectionHandle) {
        let mut pair = Pair::new();
        let h = pair.connect();
        pair.drive();
        let conn = pair.client.connection(h).unwrap();
        assert!(conn.is_handshake_complete());
        let id = conn.open_stream(Dir::Bi).unwrap();
        let data = vec![7u8; bytes];
        let mut written = 0;
        while written < bytes {
            let n = conn.write(id, &data[written..]).unwrap();
            assert!(n > 0, "stream buffer full");
            written += n;
        }
        (pair, h)
    }

    /// The datagram lengths of a transmit written at `buf[start..]`.
    fn segment_lens(t: &Transmit) -> Vec<usize> {
        let seg = t.segment_size.unwrap_or(t.size);
        let mut lens = vec![seg; t.size / seg];
        if t.size % seg != 0 {
            lens.push(t.size % seg);
        }
        lens
    }

    #[test]
    fn bulk_data_goes_out_in_equal_segments() {
        let (mut pair, h) = pair_with_data(20_000);
        let conn = pair.client.connection(h).unwrap();
        let mtu = usize::from(conn.path_mtu());
        let before = conn.stats();
        let mut buf = Vec::new();
        let t = conn.poll_transmit(pair.now, 8, &mut buf).unwrap();
        assert_eq!(t.size, buf.len(), "written contiguously from the start");
        assert_eq!(t.segment_size, Some(mtu));
        let lens = segment_lens(&t);
        assert!(lens.len() > 1 && lens.len() <= 8, "{lens:?}");
        assert!(lens[..lens.len() - 1].iter().all(|&l| l == mtu));
        let after = conn.stats();
        assert_eq!(
            after.datagrams_sent - before.datagrams_sent,
            lens.len() as u64
        );
        assert_eq!(after.bytes_sent - before.bytes_sent, t.size as u64);
        // Each segment is a packet on its own the peer reads.
        for d in buf.chunks(mtu) {
            let mut d = d.to_vec();
            pair.server.handle(pair.now, pair.client_addr, &mut d);
        }
        let server = pair.server.connection(crate::ConnectionHandle(0)).unwrap();
        assert_eq!(server.stats().packets_dropped, 0);
    }

    #[test]
    fn one_datagram_when_the_caller_takes_one() {
        let (mut pair, h) = pair_with_data(20_000);
        let conn = pair.client.connection(h).unwrap();
        let mut buf = Vec::new();
        let t = conn.poll_transmit(pair.now, 1, &mut buf).unwrap();
        assert_eq!(t.segment_size, None);
        assert_eq!(t.size, usize::from(conn.path_mtu()));
    }

    #[test]
    fn the_last_segment_may_be_short() {
        // Two and a bit datagrams of data.
        let (mut pair, h) = pair_with_data(3_300);
        let conn = pair.client.connection(h).unwrap();
        let mtu = usize::from(conn.path_mtu());
        let mut buf = Vec::new();
        let t = conn.poll_transmit(pair.now, 10, &mut buf).unwrap();
        let lens = segment_lens(&t);
        assert_eq!(lens.len(), 3, "{lens:?}");
        assert_eq!(&lens[..2], &[mtu, mtu]);
        assert!(lens[2] < mtu);
        assert_eq!(t.count(), 3);
        let datagrams: Vec<usize> = t.datagrams(&buf).map(<[u8]>::len).collect();
        assert_eq!(datagrams, lens);
        // Nothing more: the short one ended the batch and the data.
        assert!(conn.poll_transmit(pair.now, 10, &mut buf).is_none());
    }

    #[test]
    fn the_limits_bound_a_transmit() {
        let (mut pair, h) = pair_with_data(200_000);
        let conn = pair.client.connection(h).unwrap();
        let mut buf = Vec::new();
        let t = conn.poll_transmit(pair.now, usize::MAX, &mut buf).unwrap();
        assert!(t.size <= MAX_TRANSMIT_BYTES);
        // Within the congestion window and the pacer's burst.
        assert!(t.size as u64 <= conn.congestion_window());
    }

    // RFC 9000 §14.1: "A client MUST expand the payload of all UDP
    // datagrams carrying Initial packets to at least the smallest allowed
    // maximum datagram size of 1200 bytes"; per datagram, so per segment.
    // §12.2: packets coalesce within one datagram only.
    #[test]
    fn initial_padding_applies_to_each_segment() {
        let mut pair = Pair::new();
        let h = pair.connect();
        let conn = pair.client.connection(h).unwrap();
        conn.enable_sent_log_for_test();
        let mut buf = Vec::new();
        let mut datagrams = Vec::new();
        let mut batched = false;
        while let Some(t) = conn.poll_transmit(pair.now, 10, &mut buf) {
            batched |= t.segment_size.is_some();
            let start = buf.len() - t.size;
            let seg = t.segment_size.unwrap_or(t.size);
            datagrams.extend(buf[start..].chunks(seg).map(<[u8]>::len));
        }
        // The hybrid key share makes the ClientHello span two Initials.
        assert!(batched && datagrams.len() > 1, "{datagrams:?}");
        // Every datagram of the first flight carries an Initial: each is
        // padded on its own.
        assert!(datagrams.iter().all(|&l| l >= 1200), "{datagrams:?}");
        let initials = conn
            .sent_log_for_test()
            .iter()
            .filter(|p| p.ty == PacketType::Initial)
            .count();
        assert_eq!(initials, datagrams.len());
    }

    // A segment smaller than 1200 bytes never carries an Initial: a batch
    // is not started while the Initial space can send, unless its segments
    // hold 1200 bytes.
    #[test]
    fn no_short_segments_while_initials_may_follow() {
        let mut pair = Pair::new();
        let h = pair.connect();
        // The server's first flight, received by the client: the client
        // owes Initial and Handshake ACKs.
        let mut buf = Vec::new();
        while let Some(t) = pair.client.poll_transmit(pair.now, 10, &mut buf) {
            let start = buf.len() - t.size;
            let seg = t.segment_size.unwrap_or(t.size);
            for d in buf[start..].chunks(seg) {
                pair.server
                    .handle(pair.now, pair.client_addr, &mut d.to_vec());
            }
        }
        while let Some(id) = pair.server.poll_incoming().map(|i| i.id()) {
            pair.server.accept(pair.now, id).unwrap();
        }
        buf.clear();
        while let Some(t) = pair.server.poll_transmit(pair.now, 10, &mut buf) {
            let start = buf.len() - t.size;
            let seg = t.segment_size.unwrap_or(t.size);
            for d in buf[start..].chunks(seg) {
                assert!(d.len() >= 1200, "server Initial datagrams are padded");
                pair.client
                    .handle(pair.now, pair.server_addr, &mut d.to_vec());
            }
        }
        let conn = pair.client.connection(h).unwrap();
        buf.clear();
        while let Some(t) = conn.poll_transmit(pair.now, 10, &mut buf) {
            if let Some(seg) = t.segment_size {
                assert!(seg >= 1200, "segment {seg} with Initials pending");
            }
        }
    }
}
