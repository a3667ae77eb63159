//! ICMP "destination unreachable" reports (from the socket's error queue)
//! and the one case where a connection acts on them: a client whose first
//! flight met a closed port or an unreachable host, before anything came
//! back, gives up at once instead of waiting out its handshake timeout.

use std::net::SocketAddr;

use super::{Connection, ConnectionError, EndpointEvent, State};
use crate::Side;

/// What an ICMP or ICMPv6 error said about a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Unreachable {
    /// Nothing listens on that port (ICMP port unreachable, ICMPv6
    /// port unreachable): the connection was refused.
    #[error("connection refused")]
    Port,
    /// The host cannot be reached (host, network or protocol unreachable,
    /// ICMPv6 no route or address unreachable).
    #[error("host unreachable")]
    Host,
    /// A firewall or policy forbids the destination (administratively
    /// prohibited).
    #[error("destination prohibited")]
    Prohibited,
}

impl Connection {
    /// Acts on an ICMP report that a datagram to `remote` was undeliverable;
    /// `quoted` is the start of that datagram as the ICMP message quoted it
    /// (empty if unknown). True if the connection closed.
    ///
    /// ICMP is unauthenticated, so it is believed only where an off-path
    /// attacker gains nothing it could not get by dropping packets: during
    /// the client's handshake, before any datagram arrived (RFC 9000 §21.2:
    /// "the use of these packets is extremely limited"). After that it is
    /// ignored: loss detection decides.
    pub(crate) fn on_unreachable(
        &mut self,
        remote: SocketAddr,
        kind: Unreachable,
        quoted: &[u8],
    ) -> bool {
        if self.side != Side::Client
            || self.is_closed()
            || self.handshake_complete
            || self.stats.datagrams_received > 0
            || self.remote_address() != remote
        {
            return false;
        }
        // RFC 9000 §14.2.1: "ICMP message validation MUST include matching
        // IP addresses and UDP ports [...] and, when possible, connection
        // IDs"; RFC 8899 §4.6.1 likewise uses the quoted packet. The
        // address and port were matched above (and by the kernel, to this
        // socket); the quoted long header must carry the Destination
        // Connection ID we are sending with.
        if !quoted.is_empty() && quoted_dcid(quoted) != Some(&self.cids.remote_cid()[..]) {
            tracing::debug!(%remote, ?kind, "ICMP error quoting another connection ignored");
            return false;
        }
        tracing::debug!(%remote, ?kind, "destination unreachable during the handshake");
        self.on_fatal(ConnectionError::Unreachable(kind));
        // Nobody to tell: no closing period (RFC 9000 §10.2 concerns a
        // peer that may still send).
        self.state = State::Drained;
        self.timers.stop_all();
        self.endpoint_events.push_back(EndpointEvent::Drained);
        true
    }
}

/// The Destination Connection ID of a quoted long-header packet (RFC 9000
/// §17.2), or `None` if the bytes are not one.
fn quoted_dcid(quoted: &[u8]) -> Option<&[u8]> {
    let first = *quoted.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let len = usize::from(*quoted.get(5)?);
    quoted.get(6..6 + len)
}

#[cfg(test)]
mod tests {
    use super::quoted_dcid;

    #[test]
    fn quoted_long_header_dcid() {
        let mut pkt = vec![0xc0, 0, 0, 0, 1, 4, 1, 2, 3, 4, 0];
        assert_eq!(quoted_dcid(&pkt), Some(&[1u8, 2, 3, 4][..]));
        // Cut inside the DCID, a short header, nothing: not one.
        assert_eq!(quoted_dcid(&pkt[..8]), None);
        pkt[0] = 0x40;
        assert_eq!(quoted_dcid(&pkt), None);
        assert_eq!(quoted_dcid(&[]), None);
    }
}
