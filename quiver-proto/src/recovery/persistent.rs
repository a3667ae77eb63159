//! Establishing persistent congestion (RFC 9002 §7.6.2) across loss
//! events: the losses one ACK (or one loss timer) declares are only part of
//! the story, since a long outage is usually detected in several steps (a
//! time-threshold loss, PTOs, then the ACK of a probe).
//!
//! RFC 9002 §7.6.2: persistent congestion is established "if two packets
//! that are ack-eliciting are declared lost, and: across all packet number
//! spaces, none of the packets sent between the send times of these two
//! packets are acknowledged; the duration between the send times of these
//! two packets exceeds the persistent congestion duration; and a prior RTT
//! sample existed when these two packets were sent."
//!
//! The bookkeeping is one fixed-size record per packet number space, never
//! a list of packets, and rests on two facts about how losses are declared
//! (RFC 9002 §6.1, Appendix A.10):
//!
//! - Every packet a connection sends is recorded (its packet number is in
//!   the sent-packet map until acknowledged or declared lost), and the
//!   losses one detection pass declares are all the outstanding packets
//!   below a bound (both thresholds are monotonic in packet number, and so
//!   in send time). Losses in a space are therefore declared in increasing
//!   packet-number order, and a packet between two lost ones that was
//!   neither declared lost nor is outstanding was acknowledged. So within a
//!   space, "nothing between was acknowledged" is exactly "the lost packet
//!   numbers are consecutive", across passes as well as within one.
//! - Between spaces, packet numbers say nothing; send times do. A run of
//!   losses in one space is dropped when a packet of another space sent
//!   after the run began is acknowledged. That may forget a qualifying
//!   sub-run (only while two spaces are in use, during the handshake), so
//!   it can fail to declare persistent congestion but never declares it
//!   wrongly, the direction §7.6.2 itself accepts for implementations that
//!   consider one space only.
//!
//! Packets sent before the first RTT sample neither start nor end a run
//! (§7.6.2: "a prior RTT sample existed when these two packets were
//! sent"), and do not break one either: they were not acknowledged
//! (Appendix B.8 simply leaves them out of `pc_lost`).

use std::time::{Duration, Instant};

use super::PacketNumberSpace;

/// The losses of one packet number space that could, together, establish
/// persistent congestion.
#[derive(Debug, Clone, Copy)]
struct LostRun {
    /// The packet number of the last packet declared lost in the space
    /// (of any kind: a lost ACK-only packet is not an acknowledged one).
    last_pn: u64,
    /// Send times of the first and last ack-eliciting packets of the run
    /// that were sent after the first RTT sample.
    first_eliciting: Option<Instant>,
    last_eliciting: Option<Instant>,
}

/// Tracks runs of declared losses with nothing acknowledged between them,
/// in every packet number space (RFC 9002 §7.6.2). Constant size.
#[derive(Debug, Clone, Default)]
pub struct PersistentCongestion {
    runs: [Option<LostRun>; 3],
}

/// A packet declared lost, as [`PersistentCongestion::on_lost`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct LostPacketInfo {
    /// Its packet number space.
    pub space: PacketNumberSpace,
    /// Its packet number.
    pub pn: u64,
    /// When it was sent.
    pub time_sent: Instant,
    /// Whether it was ack-eliciting (only those can bound the period).
    pub ack_eliciting: bool,
}

fn index(space: PacketNumberSpace) -> usize {
    match space {
        PacketNumberSpace::Initial => 0,
        PacketNumberSpace::Handshake => 1,
        PacketNumberSpace::ApplicationData => 2,
    }
}

impl PersistentCongestion {
    /// Packets of `space` were acknowledged, the latest of them sent at
    /// `latest_sent`. Within `space`, the gap this leaves in the lost
    /// packet numbers already breaks a run; runs in the other spaces that
    /// began before `latest_sent` are dropped (RFC 9002 §7.6.2: "across
    /// all packet number spaces, none of the packets sent between ... are
    /// acknowledged").
    pub fn on_acked(&mut self, space: PacketNumberSpace, latest_sent: Instant) {
        for (i, run) in self.runs.iter_mut().enumerate() {
            if i == index(space) {
                continue;
            }
            if run
                .and_then(|r| r.first_eliciting)
                .is_some_and(|first| latest_sent > first)
            {
                *run = None;
            }
        }
    }

    /// Packet `lost` was declared lost; packets of a space must come in
    /// increasing packet-number order, as loss detection declares them.
    /// `first_rtt_sample` is when the path's first RTT sample was taken
    /// and `duration` the persistent congestion duration (§7.6.1).
    ///
    /// Returns true when this loss establishes persistent congestion; the
    /// run then starts over, so one outage collapses the window once.
    pub fn on_lost(
        &mut self,
        lost: LostPacketInfo,
        first_rtt_sample: Option<Instant>,
        duration: Duration,
    ) -> bool {
        let slot = &mut self.runs[index(lost.space)];
        // A gap in the lost packet numbers is a packet that was
        // acknowledged: the run starts again here.
        let mut run = match *slot {
            Some(r) if lost.pn == r.last_pn.wrapping_add(1) => r,
            _ => LostRun {
                last_pn: lost.pn,
                first_eliciting: None,
                last_eliciting: None,
            },
        };
        run.last_pn = lost.pn;
        // RFC 9002 §7.6.2: "a prior RTT sample existed when these two
        // packets were sent"; Appendix B.8 keeps those sent after it.
        let counts = lost.ack_eliciting && first_rtt_sample.is_some_and(|s| lost.time_sent > s);
        if counts {
            run.first_eliciting.get_or_insert(lost.time_sent);
            run.last_eliciting = Some(lost.time_sent);
        }
        let established = match (run.first_eliciting, run.last_eliciting) {
            // RFC 9002 §7.6.2: "the duration between the send times of
            // these two packets exceeds the persistent congestion
            // duration".
            (Some(first), Some(last)) => {
                super::establishes_persistent_congestion(first, last, duration)
            }
            _ => false,
        };
        if established {
            // Declared once per run: what follows starts a new period.
            run.first_eliciting = None;
            run.last_eliciting = None;
        }
        *slot = Some(run);
        established
    }

    /// The space's keys were discarded (RFC 9002 §6.4): nothing more of it
    /// will be declared lost.
    pub fn on_space_discarded(&mut self, space: PacketNumberSpace) {
        self.runs[index(space)] = None;
    }

    /// Forgets every run (a new path: its RTT samples start again).
    pub fn reset(&mut self) {
        self.runs = [None; 3];
    }
}

#[cfg(test)]
#[path = "persistent_tests.rs"]
mod tests;
