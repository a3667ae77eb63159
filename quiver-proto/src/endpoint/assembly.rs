//! Connection attempts whose ClientHello is still arriving: it spans
//! several Initial datagrams when it carries a post-quantum key share
//! (X25519MLKEM768, as Chromium and quiver's own client send), and the
//! application deciding at `Incoming` needs its server name and ALPN.
//!
//! Such an attempt waits here, bounded in number and in time, until its
//! ClientHello is whole (or it holds `incoming::MAX_DATAGRAMS`
//! datagrams); only then is it reported. Its datagrams go to the
//! connection when it is accepted, so nothing the client sent is lost.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::incoming::Incoming;

/// Attempts assembling at once, at most; a new one beyond it evicts the
/// oldest (whose client will send its ClientHello again).
pub(super) const MAX_ASSEMBLING: usize = 256;

/// How long an attempt may wait for the rest of its ClientHello: a client
/// whose second Initial was lost resends it after its PTO (1 s at first
/// with the RFC 9002 §6.2.2 initial RTT, then doubling), so a few PTOs.
pub(super) const ASSEMBLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts waiting for the rest of their ClientHello, oldest first.
#[derive(Debug, Default)]
pub(super) struct Assembly {
    queue: VecDeque<Incoming>,
}

impl Assembly {
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Adds an attempt; returns the oldest one when that makes too many.
    pub(super) fn push(&mut self, incoming: Incoming) -> Option<Incoming> {
        let evicted = (self.queue.len() >= MAX_ASSEMBLING)
            .then(|| self.queue.pop_front())
            .flatten();
        self.queue.push_back(incoming);
        evicted
    }

    /// The oldest attempt, if it has waited longer than
    /// [`ASSEMBLY_TIMEOUT`] at `now`.
    pub(super) fn pop_expired(&mut self, now: Instant) -> Option<Incoming> {
        let front = self.queue.front()?;
        if now.saturating_duration_since(front.created) < ASSEMBLY_TIMEOUT {
            return None;
        }
        self.queue.pop_front()
    }

    /// The attempt `id`, if it is assembling: attempts are pushed in
    /// the order their ids were given and leave without reordering, so the
    /// queue is sorted by id.
    pub(super) fn position_of(&self, id: super::IncomingId) -> Option<usize> {
        self.queue.binary_search_by_key(&id.0, |i| i.id().0).ok()
    }

    pub(super) fn get_mut(&mut self, pos: usize) -> Option<&mut Incoming> {
        self.queue.get_mut(pos)
    }

    pub(super) fn remove(&mut self, pos: usize) -> Option<Incoming> {
        self.queue.remove(pos)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::connection::tests::Pair;
    use crate::{ConnectionHandle, DatagramEvent, Event};

    fn client_datagrams(pair: &mut Pair) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(t) = pair.client.poll_transmit(pair.now, 1, &mut buf) {
            out.push(buf[buf.len() - t.size..].to_vec());
        }
        out
    }

    fn deliver(pair: &mut Pair, datagram: &[u8]) -> DatagramEvent {
        let mut d = datagram.to_vec();
        pair.server.handle(pair.now, pair.client_addr, &mut d)
    }

    fn connected(pair: &mut Pair, client: ConnectionHandle) -> bool {
        let mut connected = false;
        while let Some(e) = pair.client.poll_event(client) {
            connected |= matches!(e, Event::Connected);
        }
        connected
    }

    /// The default (post-quantum) ClientHello spans two Initial datagrams:
    /// the attempt is reported once both are in, with the server name and
    /// ALPN of the whole ClientHello, and both datagrams reach the
    /// connection.
    #[test]
    fn client_hello_over_two_datagrams_is_reported_whole() {
        let mut pair = Pair::new();
        let client = pair.connect();
        let first_flight = client_datagrams(&mut pair);
        assert_eq!(
            first_flight.len(),
            2,
            "X25519MLKEM768's key share needs two"
        );
        assert!(matches!(
            deliver(&mut pair, &first_flight[0]),
            DatagramEvent::Handled
        ));
        assert!(pair.server.poll_incoming().is_none());
        assert_eq!(pair.server.stats().pending_incoming, 1);
        let DatagramEvent::NewConnection(id) = deliver(&mut pair, &first_flight[1]) else {
            panic!("not reported after the second datagram");
        };
        let hello = pair.server.incoming(id).unwrap().client_hello().unwrap();
        assert_eq!(hello.server_name.as_deref(), Some("localhost"));
        assert_eq!(hello.alpn, vec![b"test".to_vec()]);
        pair.server.accept(pair.now, id).unwrap();
        pair.drive();
        assert!(connected(&mut pair, client));
    }

    /// The second datagram first (the first lost or reordered): it waits,
    /// without an attempt, for the first, and the handshake completes from
    /// both (RFC 9001 §4.3; RFC 9000 §5.2.2).
    #[test]
    fn second_datagram_first_waits_for_the_first() {
        let mut pair = Pair::new();
        let client = pair.connect();
        let first_flight = client_datagrams(&mut pair);
        assert!(matches!(
            deliver(&mut pair, &first_flight[1]),
            DatagramEvent::Handled
        ));
        assert_eq!(pair.server.stats().pending_incoming, 0);
        assert_eq!(pair.server.early_datagrams_for_test(), 1);
        let DatagramEvent::NewConnection(id) = deliver(&mut pair, &first_flight[0]) else {
            panic!("not reported once the first datagram came");
        };
        let hello = pair.server.incoming(id).unwrap().client_hello().unwrap();
        assert_eq!(hello.server_name.as_deref(), Some("localhost"));
        pair.server.accept(pair.now, id).unwrap();
        pair.drive();
        assert!(connected(&mut pair, client));
    }

    /// The second datagram lost: the attempt waits, the client's PTO sends
    /// the ClientHello again, and the handshake completes.
    #[test]
    fn lost_second_datagram_is_recovered_by_the_client_retransmission() {
        let mut pair = Pair::new();
        let client = pair.connect();
        let first_flight = client_datagrams(&mut pair);
        deliver(&mut pair, &first_flight[0]);
        assert!(pair.server.poll_incoming().is_none());
        let pto = pair.client.poll_timeout().unwrap();
        pair.now = pto;
        pair.client.handle_timeout(pair.now);
        pair.drive();
        assert!(connected(&mut pair, client));
    }

    /// A padded client Initial for `dcid` carrying `data` at `offset` of
    /// the CRYPTO stream.
    fn crypto_initial(dcid: &crate::ConnectionId, offset: u64, data: &[u8]) -> Vec<u8> {
        let mut frames = vec![0x06];
        crate::VarInt::from_u64(offset).unwrap().encode(&mut frames);
        crate::VarInt::from_u64(data.len() as u64)
            .unwrap()
            .encode(&mut frames);
        frames.extend_from_slice(data);
        frames.resize(1200, 0); // PADDING: a datagram of at least 1200 bytes
        let scid = crate::ConnectionId::new(&[9; 8]).unwrap();
        super::super::tests::forge_initial(dcid, crate::Side::Client, *dcid, scid, offset, &frames)
    }

    /// An attempt whose ClientHello never completes is reported once it
    /// holds `MAX_DATAGRAMS` datagrams that each brought CRYPTO bytes not
    /// held before (bounded work and memory); duplicates do not count
    /// (they would use up the room for the rest of the ClientHello). One
    /// abandoned for `ASSEMBLY_TIMEOUT` is forgotten.
    #[test]
    fn incomplete_attempts_are_bounded_and_expire() {
        let mut pair = Pair::new();
        let dcid = crate::ConnectionId::new(&[7; 8]).unwrap();
        // A ClientHello header announcing 60,000 bytes that never come.
        let first = crypto_initial(&dcid, 0, &[1, 0, 0xea, 0x60, 3, 3]);
        assert!(matches!(deliver(&mut pair, &first), DatagramEvent::Handled));
        for _ in 0..super::super::incoming::MAX_DATAGRAMS {
            assert!(matches!(deliver(&mut pair, &first), DatagramEvent::Handled));
        }
        assert!(pair.server.poll_incoming().is_none(), "duplicates held");
        for i in 1..super::super::incoming::MAX_DATAGRAMS as u64 - 1 {
            let more = crypto_initial(&dcid, 1000 * i, &[0; 100]);
            assert!(matches!(deliver(&mut pair, &more), DatagramEvent::Handled));
        }
        let last = crypto_initial(&dcid, 50_000, &[0; 100]);
        let DatagramEvent::NewConnection(id) = deliver(&mut pair, &last) else {
            panic!("not reported at the bound");
        };
        assert!(pair.server.incoming(id).unwrap().client_hello().is_none());
        pair.server.ignore(id);

        let mut pair = Pair::new();
        let _client = pair.connect();
        let first = client_datagrams(&mut pair).remove(0);
        deliver(&mut pair, &first);
        assert_eq!(pair.server.stats().pending_incoming, 1);
        pair.now += super::ASSEMBLY_TIMEOUT + Duration::from_millis(1);
        // Expiry is checked when an Initial arrives: one from another
        // address starts its own attempt, and the expired one is gone.
        let mut elsewhere = first.clone();
        let other_addr = "127.0.0.1:5001".parse().unwrap();
        pair.server.handle(pair.now, other_addr, &mut elsewhere);
        assert_eq!(pair.server.stats().pending_incoming, 1);
        // The expired attempt's key is gone too: its datagram starts afresh.
        deliver(&mut pair, &first);
        assert_eq!(pair.server.stats().pending_incoming, 2);
    }
}
