//! Loss recovery (RFC 9002 §5, §6): RTT estimation, the probe timeout, and
//! acknowledgment-based loss detection.
//!
//! Everything here is pure arithmetic on values the caller passes in,
//! `now` included; the connection owns the sent-packet records and the
//! timers.

mod loss;
mod persistent;
mod pto;
mod rtt;

pub use loss::{detect_lost, detect_lost_skipping, detect_lost_with, loss_delay, loss_delay_with};
pub use persistent::{LostPacketInfo, PersistentCongestion};
pub use pto::{establishes_persistent_congestion, persistent_congestion_duration, pto_duration};
pub use rtt::RttEstimator;

use std::time::Duration;

/// kPacketThreshold: how many packets a later acknowledged packet must be
/// ahead of an unacknowledged one for the latter to be declared lost.
///
/// RFC 9002 §6.1.1: "The RECOMMENDED initial value for the packet
/// reordering threshold (kPacketThreshold) is 3"; implementations "SHOULD
/// NOT use a packet threshold less than 3".
pub const PACKET_THRESHOLD: u64 = 3;

/// kTimeThreshold as the fraction `numerator / denominator` of an RTT
/// (RFC 9002 §6.1.2: "The RECOMMENDED time threshold (kTimeThreshold),
/// expressed as an RTT multiplier, is 9/8").
pub const TIME_THRESHOLD: (u32, u32) = (9, 8);

/// kGranularity, the local timer granularity (RFC 9002 §6.1.2: "The
/// RECOMMENDED value of the timer granularity (kGranularity) is 1
/// millisecond").
pub const GRANULARITY: Duration = Duration::from_millis(1);

/// kInitialRtt, the RTT assumed before any sample (RFC 9002 §6.2.2: "When
/// no previous RTT is available, the initial RTT SHOULD be set to 333
/// milliseconds").
pub const INITIAL_RTT: Duration = Duration::from_millis(333);

/// kPersistentCongestionThreshold, the multiple of the PTO period over
/// which losing every packet establishes persistent congestion (RFC 9002
/// §7.6.1: "The RECOMMENDED value for kPersistentCongestionThreshold is
/// 3").
pub const PERSISTENT_CONGESTION_THRESHOLD: u32 = 3;

/// A packet number space (RFC 9000 §12.3, RFC 9002 Appendix A.2
/// `kPacketNumberSpace`). Loss detection and the PTO are per space; RTT and
/// congestion control are per path.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PacketNumberSpace {
    /// Initial packets.
    Initial,
    /// Handshake packets.
    Handshake,
    /// 0-RTT and 1-RTT packets.
    ApplicationData,
}

impl PacketNumberSpace {
    /// The three spaces, in the order RFC 9002 Appendix A iterates them.
    pub const ALL: [PacketNumberSpace; 3] = [
        PacketNumberSpace::Initial,
        PacketNumberSpace::Handshake,
        PacketNumberSpace::ApplicationData,
    ];
}

/// A base instant for unit tests: only differences from it matter, so the
/// one clock read in the crate's tests never influences a result.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}
