//! The interface between the simulated network and an endpoint under test.

use std::any::Any;
use std::net::SocketAddr;
use std::time::Instant;

/// An endpoint on the simulated network: a sans-IO state machine driven by
/// datagrams and timers, in virtual time.
///
/// The network calls `handle_*` for inputs and then drains `poll_transmit`
/// until it returns `None`; it consults `poll_timeout` to decide when to
/// wake the node next.
pub trait Node {
    /// A datagram arrived from `from`, at virtual time `now`.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]);
    /// A datagram arrived with the ECN codepoint `ecn` (the two low bits
    /// of the IP header's traffic class: 0 Not-ECT, 1 ECT(1), 2 ECT(0),
    /// 3 CE). Nodes that do not read ECN need not implement it.
    fn handle_datagram_ecn(&mut self, now: Instant, from: SocketAddr, ecn: u8, data: &[u8]) {
        let _ = ecn;
        self.handle_datagram(now, from, data);
    }
    /// A datagram arrived from `from`, addressed to `to` (the node's own
    /// address or one of its aliases, [`crate::Network::add_alias`]): what
    /// a runtime learns from the socket a datagram arrived on, or
    /// `IP_PKTINFO`. Nodes that do not care need not implement it.
    fn handle_datagram_to(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        ecn: u8,
        data: &[u8],
    ) {
        let _ = to;
        self.handle_datagram_ecn(now, from, ecn, data);
    }
    /// The next datagram this node wants to send, if any.
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit>;
    /// When this node next needs [`handle_timeout`](Node::handle_timeout);
    /// a time in the past means "now".
    fn poll_timeout(&mut self) -> Option<Instant>;
    /// Virtual time reached the time returned by
    /// [`poll_timeout`](Node::poll_timeout).
    fn handle_timeout(&mut self, now: Instant);
}

/// One or more datagrams a node sends to one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send.
    pub destination: SocketAddr,
    /// The datagram, or with `segment_size` several back to back.
    pub contents: Vec<u8>,
    /// GSO-style batching: `contents` is split into datagrams of this size
    /// (the last may be shorter), each carried by the link independently.
    pub segment_size: Option<usize>,
    /// The ECN codepoint to send with (0 Not-ECT, 1 ECT(1), 2 ECT(0),
    /// 3 CE).
    pub ecn: u8,
    /// The local address to send from: one of the node's aliases
    /// ([`crate::Network::add_alias`]); `None`, or an address the node
    /// does not own, sends from the node's own address.
    pub src: Option<SocketAddr>,
}

impl Transmit {
    /// A single datagram to `destination`.
    pub fn new(destination: SocketAddr, contents: Vec<u8>) -> Self {
        Self {
            destination,
            contents,
            segment_size: None,
            ecn: 0,
            src: None,
        }
    }

    /// The individual datagrams.
    pub(crate) fn into_datagrams(self) -> Vec<Vec<u8>> {
        match self.segment_size {
            Some(size) if size > 0 && size < self.contents.len() => {
                self.contents.chunks(size).map(<[u8]>::to_vec).collect()
            }
            _ => vec![self.contents],
        }
    }
}

/// A [`Node`] that can be downcast back to its concrete type.
pub(crate) trait AnyNode: Node {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Node + 'static> AnyNode for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segmented_transmit_splits_into_datagrams() {
        let dst: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let t = Transmit {
            destination: dst,
            contents: vec![0; 25],
            ecn: 0,
            segment_size: Some(10),
            src: None,
        };
        let sizes: Vec<usize> = t.into_datagrams().iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
        assert_eq!(
            Transmit::new(dst, vec![1; 3]).into_datagrams(),
            [vec![1; 3]]
        );
    }
}
