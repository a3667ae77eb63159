//! What tests can observe and script: datagram descriptions, verdicts and the trace.

use std::net::SocketAddr;
use std::time::Instant;

/// A datagram as it enters a link, shown to the scripted filter and the tap.
#[derive(Clone, Copy, Debug)]
pub struct DatagramInfo<'a> {
    /// Sender's address.
    pub src: SocketAddr,
    /// Destination address.
    pub dst: SocketAddr,
    /// Position of this datagram among those sent on the `src → dst` link,
    /// from 0, counting every datagram (including ones later dropped).
    pub index: u64,
    /// Virtual time it was sent.
    pub time: Instant,
    /// Its bytes.
    pub data: &'a [u8],
    /// The ECN codepoint its sender set (RFC 3168: 0 not-ECT, 1 ECT(1),
    /// 2 ECT(0), 3 CE), before any link bleaches or marks it.
    pub ecn: u8,
}

/// What the scripted filter decides for a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let the link model carry it (it may still be lost by the model).
    Deliver,
    /// Drop it (counted as [`DropReason::Filter`]).
    Drop,
    /// Let the link model carry it, then hold it back this much longer:
    /// reorders one chosen datagram behind later ones.
    Delay(std::time::Duration),
}

/// Why a datagram did not arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// The scripted filter returned [`Verdict::Drop`].
    Filter,
    /// Larger than the link's MTU.
    Mtu,
    /// Tail-dropped at a full bottleneck queue.
    QueueFull,
    /// Independent random loss (`loss_rate`).
    Loss,
    /// Gilbert–Elliott burst loss.
    BurstLoss,
    /// No node is bound to the destination address when it arrives.
    NoRoute,
}

/// What happened to a datagram on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceKind {
    /// Handed to the link by its sender (before any impairment).
    Sent,
    /// Lost.
    Dropped(DropReason),
    /// Handed to the destination node.
    Delivered {
        /// This is the extra copy made by duplication.
        duplicate: bool,
        /// A bit was flipped on the way.
        corrupted: bool,
    },
}

/// One entry of the network's recorded trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Virtual time of the event.
    pub time: Instant,
    /// Sender's address.
    pub src: SocketAddr,
    /// Destination address.
    pub dst: SocketAddr,
    /// The datagram's index on its link (see [`DatagramInfo::index`]).
    pub index: u64,
    /// What happened.
    pub kind: TraceKind,
    /// The bytes: as sent for `Sent` and `Dropped`, as received (possibly
    /// corrupted) for `Delivered`.
    pub data: Vec<u8>,
}
