//! Datagrams that arrive before the connection attempt they belong to:
//! 0-RTT packets reordered ahead of the client's first Initial (RFC 9000
//! §5.2.2: "the server MAY buffer a limited number of these packets in
//! anticipation of a late-arriving Initial packet"; RFC 9001 §4.7), and
//! the later Initial datagrams of a ClientHello that spans several (RFC
//! 9001 §4.3), whose first datagram was lost or reordered behind them.
//!
//! They are kept here, keyed by the client's first Destination CID and
//! address, and handed to the attempt that Initial creates. A server that
//! dropped them would make the client resend its 0-RTT data in 1-RTT, and
//! would miss every round of a client whose first datagram happens to be
//! lost each time the later one arrives.
//!
//! Nothing here is authenticated (the packets cannot be decrypted yet), so
//! everything is bounded: datagrams per key, per source address and in
//! all, keys in all, and age. When full, the oldest key is evicted: a flood
//! of forged packets costs at most [`MAX_DATAGRAMS`] datagrams of memory
//! and displaces genuine ones only while it lasts.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::admission::source_key;
use crate::ConnectionId;

/// Datagrams held in all, at most (about 384 KB of 1,500-byte datagrams).
pub(super) const MAX_DATAGRAMS: usize = 256;
/// Keys (client's first Destination CID and address) held at most.
pub(super) const MAX_KEYS: usize = 128;
/// Datagrams held per key at most: a first flight's 0-RTT and the rest of
/// its ClientHello.
pub(super) const MAX_PER_KEY: usize = 8;
/// Datagrams held per source address at most (see `admission`'s
/// `source_key`: one IPv4 address or IPv6 /64), so one host cannot take
/// the whole buffer.
pub(super) const MAX_PER_SOURCE: usize = 16;
/// How long a datagram waits for its attempt: the client resends a lost
/// first Initial after its PTO (1 s at first, then doubling), so a few of
/// them, as for a ClientHello assembling (`assembly::ASSEMBLY_TIMEOUT`).
pub(super) const MAX_AGE: Duration = super::assembly::ASSEMBLY_TIMEOUT;

/// What an early datagram starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EarlyKind {
    /// A 0-RTT packet.
    ZeroRtt,
    /// An Initial packet carrying a later part of the ClientHello.
    Initial,
}

type Key = (ConnectionId, SocketAddr);

#[derive(Debug)]
struct Entry {
    created: Instant,
    datagrams: Vec<(EarlyKind, Vec<u8>)>,
}

/// The buffer of early datagrams (see the module documentation).
#[derive(Debug, Default)]
pub(super) struct EarlyDatagrams {
    /// Client-chosen keys: std's SipHash with a random key.
    entries: HashMap<Key, Entry>,
    /// Keys by age, oldest first, with their creation time; a record whose
    /// entry was taken (or re-created later) is stale and skipped.
    order: VecDeque<(Key, Instant)>,
    per_source: HashMap<IpAddr, usize>,
    datagrams: usize,
}

impl EarlyDatagrams {
    /// Keeps `data` for the attempt of `key`, if the bounds allow; returns
    /// whether it was kept.
    pub(super) fn push(&mut self, now: Instant, key: Key, kind: EarlyKind, data: &[u8]) -> bool {
        self.expire(now);
        let source = source_key(key.1);
        if self.per_source.get(&source).copied().unwrap_or(0) >= MAX_PER_SOURCE {
            return false;
        }
        if let Some(entry) = self.entries.get(&key) {
            if entry.datagrams.len() >= MAX_PER_KEY {
                return false;
            }
        } else {
            while self.entries.len() >= MAX_KEYS {
                self.evict_oldest();
            }
        }
        while self.datagrams >= MAX_DATAGRAMS {
            self.evict_oldest();
        }
        if !self.entries.contains_key(&key) {
            self.order.push_back((key, now));
            self.entries.insert(
                key,
                Entry {
                    created: now,
                    datagrams: Vec::new(),
                },
            );
        }
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.datagrams.push((kind, data.to_vec()));
            self.datagrams += 1;
            *self.per_source.entry(source).or_default() += 1;
        }
        // Stale records of keys taken meanwhile: keep the queue bounded
        // by what it indexes.
        while self.order.len() > 2 * MAX_KEYS {
            self.evict_oldest();
        }
        true
    }

    /// The datagrams kept for `key` (oldest first), removed; empty if none
    /// or too old.
    pub(super) fn take(&mut self, now: Instant, key: &Key) -> Vec<(EarlyKind, Vec<u8>)> {
        self.expire(now);
        match self.entries.remove(key) {
            Some(entry) => {
                self.release(key, entry.datagrams.len());
                entry.datagrams
            }
            None => Vec::new(),
        }
    }

    /// Datagrams held now.
    pub(super) fn len(&self) -> usize {
        self.datagrams
    }

    /// Drops the entries older than [`MAX_AGE`].
    fn expire(&mut self, now: Instant) {
        while let Some(&(_, created)) = self.order.front() {
            if now.saturating_duration_since(created) < MAX_AGE {
                break;
            }
            self.evict_oldest();
        }
    }

    /// Drops the oldest key's datagrams (nothing if its record is stale).
    fn evict_oldest(&mut self) {
        let Some((key, created)) = self.order.pop_front() else {
            return;
        };
        if self.entries.get(&key).is_some_and(|e| e.created == created)
            && let Some(entry) = self.entries.remove(&key)
        {
            tracing::debug!(n = entry.datagrams.len(), "early datagrams dropped");
            self.release(&key, entry.datagrams.len());
        }
    }

    fn release(&mut self, key: &Key, n: usize) {
        self.datagrams -= n;
        let source = source_key(key.1);
        if let Some(count) = self.per_source.get_mut(&source) {
            *count = count.saturating_sub(n);
            if *count == 0 {
                self.per_source.remove(&source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32, port: u16) -> Key {
        let mut cid = [0u8; 8];
        cid[..4].copy_from_slice(&i.to_be_bytes());
        (
            ConnectionId::new(&cid).expect("8 bytes"),
            SocketAddr::from(([10, (i >> 8) as u8, i as u8, 1], port)),
        )
    }

    /// A flood of forged 0-RTT datagrams, each for a new key from a new
    /// address, never holds more than the bounds; a genuine one pushed
    /// last is kept and handed over.
    #[test]
    fn a_flood_stays_within_the_bounds() {
        let now = crate::connection::tests::epoch();
        let mut buf = EarlyDatagrams::default();
        for i in 0..10_000 {
            let k = key(i, 1000);
            buf.push(now, k, EarlyKind::ZeroRtt, &[0; 1200]);
            assert!(buf.len() <= MAX_DATAGRAMS);
            assert!(buf.entries.len() <= MAX_KEYS);
            assert!(buf.order.len() <= 2 * MAX_KEYS);
        }
        let genuine = key(20_000, 443);
        assert!(buf.push(now, genuine, EarlyKind::ZeroRtt, b"x"));
        assert_eq!(buf.take(now, &genuine).len(), 1);
    }

    /// One source cannot hold more than its share, nor one key more than
    /// its own; what is taken frees the share.
    #[test]
    fn per_source_and_per_key_bounds() {
        let now = crate::connection::tests::epoch();
        let mut buf = EarlyDatagrams::default();
        let k = key(1, 1000);
        for _ in 0..MAX_PER_KEY {
            assert!(buf.push(now, k, EarlyKind::ZeroRtt, b"a"));
        }
        assert!(!buf.push(now, k, EarlyKind::ZeroRtt, b"a"));
        // Other ports of the same address share the source's bound.
        let mut kept = MAX_PER_KEY;
        for port in 1001..1100 {
            let other = (k.0, SocketAddr::new(k.1.ip(), port));
            if buf.push(now, other, EarlyKind::ZeroRtt, b"b") {
                kept += 1;
            }
        }
        assert_eq!(kept, MAX_PER_SOURCE);
        assert_eq!(buf.take(now, &k).len(), MAX_PER_KEY);
        assert!(buf.push(now, k, EarlyKind::Initial, b"c"));
    }

    /// Datagrams older than `MAX_AGE` are gone.
    #[test]
    fn old_datagrams_expire() {
        let now = crate::connection::tests::epoch();
        let mut buf = EarlyDatagrams::default();
        let k = key(1, 1000);
        buf.push(now, k, EarlyKind::ZeroRtt, b"a");
        assert!(buf.take(now + MAX_AGE, &k).is_empty());
        assert_eq!(buf.len(), 0);
        assert!(buf.per_source.is_empty());
    }
}
