//! Datagram Packetization Layer PMTU Discovery (RFC 9000 §14.3, RFC 8899):
//! after the handshake, probe larger datagrams with PING + PADDING and use
//! the largest size the peer acknowledges.
//!
//! The search is a binary search between the confirmed size and an upper
//! bound (our configuration and the peer's max_udp_payload_size). A size
//! whose probe is lost three times is taken as too large. Probe losses are
//! not congestion signals (RFC 9000 §14.4).

/// Probes of one size lost before that size is considered too large
/// (RFC 8899 §5.1.2 MAX_PROBES).
const MAX_PROBES: u8 = 3;
/// Stop searching when the interval is this narrow.
const SEARCH_GRANULARITY: u16 = 16;

#[derive(Debug, Clone)]
pub(crate) struct MtuDiscovery {
    /// Largest size known to work.
    confirmed: u16,
    /// Largest size that might work.
    upper: u16,
    /// The probe in flight: its packet number and size.
    in_flight: Option<(u64, u16)>,
    failures: u8,
}

impl MtuDiscovery {
    /// A search from `base` (the size in use) up to `upper`.
    pub(crate) fn new(base: u16, upper: u16) -> Self {
        Self {
            confirmed: base,
            upper: upper.max(base),
            in_flight: None,
            failures: 0,
        }
    }

    /// The size to probe next, if a probe is due.
    pub(crate) fn next_probe(&self) -> Option<u16> {
        if self.in_flight.is_some() || self.upper - self.confirmed < SEARCH_GRANULARITY {
            return None;
        }
        Some(self.confirmed + (self.upper - self.confirmed).div_ceil(2))
    }

    /// A probe of `size` bytes went out as packet `pn`.
    pub(crate) fn on_probe_sent(&mut self, pn: u64, size: u16) {
        self.in_flight = Some((pn, size));
    }

    /// Packet `pn` was acknowledged; returns the new maximum datagram size
    /// if it was our probe.
    pub(crate) fn on_acked(&mut self, pn: u64) -> Option<u16> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_search_converges_on_the_path_mtu() {
        let path = 1400u16;
        let mut m = MtuDiscovery::new(1200, 1452);
        let mut pn = 0;
        let mut used = 1200;
        while let Some(size) = m.next_probe() {
            m.on_probe_sent(pn, size);
            if size <= path {
                used = m.on_acked(pn).unwrap();
            } else {
                assert!(m.on_lost(pn));
            }
            pn += 1;
            assert!(pn < 100, "search does not end");
        }
        assert!(used <= path && path - used < SEARCH_GRANULARITY, "{used}");
    }

    #[test]
    fn other_packets_do_not_count_as_probes() {
        let mut m = MtuDiscovery::new(1200, 1452);
        let size = m.next_probe().unwrap();
        m.on_probe_sent(7, size);
        assert_eq!(m.on_acked(6), None);
        assert!(!m.on_lost(8));
        assert!(m.next_probe().is_none(), "one probe at a time");
        assert_eq!(m.on_acked(7), Some(size));
    }
}
