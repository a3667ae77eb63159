//! Datagram Packetization Layer PMTU Discovery (RFC 9000 §14.3, RFC 8899):
//! after the handshake, probe larger datagrams with PING + PADDING and use
//! the largest size the peer acknowledges; detect black holes and search
//! again; re-probe upwards periodically.
//!
//! The search is a binary search between the confirmed size and an upper
//! bound (our configuration and the peer's max_udp_payload_size). A size
//! whose probe is lost three times is taken as too large. Probe losses are
//! not congestion signals (RFC 9000 §14.4).
//!
//! Black holes (RFC 8899 §4.3: "a PL ... needs to detect ... when the
//! actual PMTU has become smaller than the PLPMTU"): the path stops
//! carrying datagrams of the size in use while smaller ones still get
//! through. Two signs: [`BLACK_HOLE_LOSS_EVENTS`] loss events in which
//! every lost packet was larger than the base size, with no packet larger
//! than the base acknowledged meanwhile; or a second consecutive PTO while
//! we send larger than the base (everything large vanishing, nothing
//! acknowledged, so no loss is ever declared). Either way the size drops to
//! the base (1200, which every QUIC path carries) and the search starts
//! again from there (RFC 8899 §5.2: "a black hole ... the PLPMTU is set to
//! BASE_PLPMTU").

use std::time::{Duration, Instant};

/// Probes of one size lost before that size is considered too large
/// (RFC 8899 §5.1.2 MAX_PROBES).
const MAX_PROBES: u8 = 3;
/// Stop searching when the interval is this narrow.
const SEARCH_GRANULARITY: u16 = 16;
/// RFC 8899 §5.1.2 BASE_PLPMTU for QUIC (RFC 9000 §14: 1200).
pub(crate) const BASE_PLPMTU: u16 = 1200;
/// Loss events of only large packets, with none acknowledged, before the
/// path is taken for a black hole. Random loss keeps acknowledging large
/// packets in between; three is quinn's choice too.
pub(crate) const BLACK_HOLE_LOSS_EVENTS: u8 = 3;

#[derive(Debug, Clone)]
pub(crate) struct MtuDiscovery {
    /// Largest size known to work.
    confirmed: u16,
    /// Largest size that might work.
    upper: u16,
    /// The upper bound the search started with, for re-probing.
    ceiling: u16,
    /// The probe in flight: its packet number and size.
    in_flight: Option<(u64, u16)>,
    failures: u8,
    /// RFC 8899 §5.1.1 PMTU_RAISE_TIMER: when the last search ended, and
    /// how long until the next tries the ceiling again.
    completed_at: Option<Instant>,
    raise_interval: Duration,
    /// Loss events of only large packets since a large one was acked.
    suspicious_losses: u8,
}

impl MtuDiscovery {
    /// A search from `base` (the size in use) up to `upper`, searching
    /// again every `raise_interval` after it completes.
    pub(crate) fn new(base: u16, upper: u16, raise_interval: Duration) -> Self {
        Self {
            confirmed: base,
            upper: upper.max(base),
            ceiling: upper.max(base),
            in_flight: None,
            failures: 0,
            completed_at: None,
            raise_interval,
            suspicious_losses: 0,
        }
    }

    /// The size to probe next, if a probe is due.
    pub(crate) fn next_probe(&mut self, now: Instant) -> Option<u16> {
        if self.in_flight.is_some() {
            return None;
        }
        if self.upper - self.confirmed < SEARCH_GRANULARITY {
            let done = *self.completed_at.get_or_insert(now);
            // RFC 8899 §5.1.1: "The PMTU_RAISE_TIMER is configured to the
            // period a sender will continue to use the current PLPMTU,
            // after which it reenters the Search Phase".
            if now < done + self.raise_interval
                || self.ceiling - self.confirmed < SEARCH_GRANULARITY
            {
                return None;
            }
            self.completed_at = None;
            self.upper = self.ceiling;
            self.failures = 0;
        }
        Some(self.confirmed + (self.upper - self.confirmed).div_ceil(2))
    }

    /// A probe of `size` bytes went out as packet `pn`.
    pub(crate) fn on_probe_sent(&mut self, pn: u64, size: u16) {
        self.in_flight = Some((pn, size));
    }

    /// Packet `pn` of `size` bytes was acknowledged; returns the new
    /// maximum datagram size if it was our probe.
    pub(crate) fn on_acked(&mut self, pn: u64, size: u16) -> Option<u16> {
        if size > BASE_PLPMTU {
            self.suspicious_losses = 0;
        }
        let (probe, size) = self.in_flight?;
        if probe != pn {
            return None;
        }
        self.in_flight = None;
        self.failures = 0;
        self.confirmed = size;
        Some(size)
    }

    /// Packet `pn` was declared lost; returns whether it was our probe (so
    /// the loss is not a congestion signal).
    pub(crate) fn on_lost(&mut self, pn: u64) -> bool {
        let Some((probe, size)) = self.in_flight else {
            return false;
        };
        if probe != pn {
            return false;
        }
        self.in_flight = None;
        self.failures += 1;
        if self.failures >= MAX_PROBES {
            self.failures = 0;
            self.upper = size - 1;
        }
        true
    }

    /// A loss event (other than probes) whose smallest lost packet had
    /// `smallest_lost` bytes. Returns true on a black hole: the caller
    /// falls back to [`BASE_PLPMTU`].
    pub(crate) fn on_loss_event(&mut self, smallest_lost: u16) -> bool {
        if smallest_lost <= BASE_PLPMTU || self.confirmed <= BASE_PLPMTU {
            return false;
        }
        self.suspicious_losses += 1;
        if self.suspicious_losses < BLACK_HOLE_LOSS_EVENTS {
            return false;
        }
        self.restart();
        true
    }

    /// The probe timeout fired for the `pto_count`-th time in a row.
    /// Returns true on a black hole (see the module docs).
    pub(crate) fn on_pto(&mut self, pto_count: u32) -> bool {
        if pto_count < 2 || self.confirmed <= BASE_PLPMTU {
            return false;
        }
        self.restart();
        true
    }

    /// Back to the base size, searching again up to the ceiling.
    fn restart(&mut self) {
        self.confirmed = BASE_PLPMTU;
        self.upper = self.ceiling;
        self.in_flight = None;
        self.failures = 0;
        self.completed_at = None;
        self.suspicious_losses = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAISE: Duration = Duration::from_secs(600);

    fn now() -> Instant {
        crate::connection::tests::epoch()
    }

    /// Runs the search against a path of `path` bytes; returns the size
    /// found.
    fn search(m: &mut MtuDiscovery, at: Instant, path: u16, pn: &mut u64) -> u16 {
        let mut used = m.confirmed;
        while let Some(size) = m.next_probe(at) {
            m.on_probe_sent(*pn, size);
            if size <= path {
                used = m.on_acked(*pn, size).unwrap();
            } else {
                assert!(m.on_lost(*pn));
            }
            *pn += 1;
            assert!(*pn < 1000, "search does not end");
        }
        used
    }

    #[test]
    fn binary_search_converges_on_the_path_mtu() {
        let path = 1400u16;
        let mut m = MtuDiscovery::new(1200, 1452, RAISE);
        let used = search(&mut m, now(), path, &mut 0);
        assert!(used <= path && path - used < SEARCH_GRANULARITY, "{used}");
    }

    #[test]
    fn other_packets_do_not_count_as_probes() {
        let mut m = MtuDiscovery::new(1200, 1452, RAISE);
        let size = m.next_probe(now()).unwrap();
        m.on_probe_sent(7, size);
        assert_eq!(m.on_acked(6, 1200), None);
        assert!(!m.on_lost(8));
        assert!(m.next_probe(now()).is_none(), "one probe at a time");
        assert_eq!(m.on_acked(7, size), Some(size));
    }

    /// RFC 8899 §5.1.1: after PMTU_RAISE_TIMER the search tries the
    /// ceiling again, and finds a path that grew.
    #[test]
    fn a_grown_path_is_found_by_the_periodic_re_probe() {
        let mut m = MtuDiscovery::new(1200, 1452, RAISE);
        let mut pn = 0;
        let t0 = now();
        let used = search(&mut m, t0, 1300, &mut pn);
        assert!(used <= 1300 && used > 1300 - SEARCH_GRANULARITY);
        assert_eq!(m.next_probe(t0 + RAISE / 2), None, "not before the timer");
        let used = search(&mut m, t0 + RAISE, 1452, &mut pn);
        assert!(used > 1452 - SEARCH_GRANULARITY, "{used}");
    }

    /// RFC 8899 §4.3: large packets lost repeatedly with none acknowledged
    /// is a black hole; random losses between acknowledged large packets
    /// are not.
    #[test]
    fn black_hole_after_repeated_large_losses_without_large_acks() {
        let mut m = MtuDiscovery::new(1200, 1452, RAISE);
        search(&mut m, now(), 1452, &mut 0);
        for _ in 0..10 {
            assert!(!m.on_loss_event(1440));
            assert!(!m.on_loss_event(1440));
            m.on_acked(9999, 1440);
        }
        // Small packets lost: not a sign.
        for _ in 0..10 {
            assert!(!m.on_loss_event(60));
        }
        assert!(!m.on_loss_event(1440));
        assert!(!m.on_loss_event(1440));
        assert!(m.on_loss_event(1440));
        assert_eq!(m.confirmed, BASE_PLPMTU);
        // The search starts again at once.
        assert!(m.next_probe(now()).is_some());
    }

    #[test]
    fn second_consecutive_pto_while_large_is_a_black_hole() {
        let mut m = MtuDiscovery::new(1200, 1452, RAISE);
        assert!(!m.on_pto(5), "nothing to fall back from at the base size");
        search(&mut m, now(), 1452, &mut 0);
        assert!(!m.on_pto(1));
        assert!(m.on_pto(2));
        assert_eq!(m.confirmed, BASE_PLPMTU);
    }
}
