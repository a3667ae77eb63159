//! Congestion control (RFC 9002 §7): the [`Controller`] trait the connection
//! drives, [`NewReno`] (§7.3, Appendix B), [`Cubic`] (RFC 9438) with
//! [`HyStart`]++ (RFC 9406), [`Bbr`] (BBRv3, draft-ietf-ccwg-bbr) fed by
//! [`delivery_rate`] samples, and a [`Pacer`] (§7.7).
//!
//! The controller is chosen per connection through
//! [`crate::TransportConfig::congestion`], an `Arc<dyn ControllerFactory>`:
//! [`NewRenoConfig`], [`CubicConfig`], [`BbrConfig`], or any type of the application's that
//! implements [`ControllerFactory`].
//!
//! # Division of labour
//! The **caller** (the connection's loss recovery) tracks `bytes_in_flight`:
//! it already keeps every sent packet's size and must drop discarded
//! Initial/Handshake packets from flight (RFC 9002 Appendix B.9). It also
//! decides when the sender is application- or flow-control-limited (§7.8)
//! and passes that to [`Controller::on_ack`]. A controller only answers how
//! large the congestion window is.
//!
//! Controllers that model the path (BBR) also get one [`RateSample`] per
//! ACK ([`Controller::on_rate_sample`]) and each lost packet's send-time
//! state ([`Controller::on_packet_lost`]), and may set the pacing rate
//! ([`Controller::pacing_rate`]); all default to doing nothing.
//!
//! For one ACK frame the caller reports losses first
//! ([`Controller::on_congestion_event`]) and then acknowledgments
//! ([`Controller::on_ack`], one call per newly acknowledged in-flight
//! packet), matching Appendix A.7's `OnAckReceived`.
//!
//! RFC 9002 §7: "An endpoint MUST NOT send a packet if it would cause
//! bytes_in_flight to be larger than the congestion window, unless the
//! packet is sent on a PTO timer expiration or when entering recovery"; and
//! §7.5: "Probe packets MUST NOT be blocked by the congestion controller" —
//! enforcing both is the caller's job.

pub mod bbr;
mod cubic;
pub mod delivery_rate;
pub mod hystart;
mod new_reno;
mod pacer;

pub use bbr::{Bbr, BbrConfig, BbrState};
pub use cubic::{ALPHA_CUBIC, BETA_CUBIC, C as CUBIC_C, Cubic, CubicConfig};
pub use delivery_rate::{LostPacket, PacketDelivery, RateSample};
pub use hystart::HyStart;
pub use new_reno::{NewReno, NewRenoConfig};
pub use pacer::{PACING_GAIN, Pacer};

use std::fmt::Debug;
use std::time::Instant;

use crate::recovery::RttEstimator;

/// A sender-side congestion controller for one path (RFC 9002 §7).
///
/// Alternatives to NewReno (CUBIC, BBR) implement this trait; RFC 9002 §7:
/// "the chosen controller MUST conform to the congestion control guidelines
/// specified in Section 3.1 of RFC 8085".
pub trait Controller: Send + Debug {
    /// An in-flight packet (one carrying ack-eliciting frames or PADDING) of
    /// `bytes` bytes was sent; `bytes_in_flight` includes it. Packets only
    /// carrying ACK frames are not reported (RFC 9002 §7: they "do not count
    /// toward bytes in flight and are not congestion controlled").
    fn on_packet_sent(&mut self, now: Instant, bytes: u64, bytes_in_flight: u64) {
        let _ = (now, bytes, bytes_in_flight);
    }

    /// An in-flight packet of `bytes` bytes, sent at `sent_time`, was newly
    /// acknowledged (RFC 9002 Appendix B.5 `OnPacketAcked`). `app_limited`:
    /// the congestion window was not fully used when it was acknowledged
    /// (§7.8).
    fn on_ack(
        &mut self,
        now: Instant,
        sent_time: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    );

    /// A congestion signal (RFC 9002 Appendix B.6 `OnCongestionEvent`): the
    /// loss of in-flight packets, the latest of which was sent at
    /// `sent_time` (`lost_bytes` in total), or an increase of the peer's
    /// ECN-CE count (Appendix B.7), with `sent_time` the send time of the
    /// largest acknowledged packet and `lost_bytes` zero.
    ///
    /// `is_persistent_congestion`: the losses establish persistent congestion
    /// (§7.6.2; see [`crate::recovery::establishes_persistent_congestion`]).
    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent_time: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    );

    /// Every loss behind the last congestion response turned out to be
    /// reordering: the peer acknowledged each packet declared lost (RFC
    /// 8985 §6.2 spurious retransmission). A controller that saved its
    /// state when it reacted restores it; the default ignores this.
    fn on_spurious_congestion_event(&mut self) {}

    /// The ACK being processed produced delivery-rate sample `sample`
    /// (draft-ietf-ccwg-bbr-latest §4.1, see [`delivery_rate`]); called
    /// once per ACK frame that newly acknowledged in-flight packets, after
    /// [`Controller::on_ack`] and [`Controller::on_congestion_event`] for
    /// it. `bytes_in_flight` is as of the end of that processing. The
    /// default ignores it.
    fn on_rate_sample(&mut self, now: Instant, sample: &RateSample, bytes_in_flight: u64) {
        let _ = (now, sample, bytes_in_flight);
    }

    /// An in-flight packet was declared lost (draft-ietf-ccwg-bbr §5.2.4
    /// per-loss steps), called for each before the
    /// [`Controller::on_congestion_event`] covering it. The default
    /// ignores it.
    fn on_packet_lost(&mut self, now: Instant, lost: &LostPacket) {
        let _ = (now, lost);
    }

    /// The sender is about to send after an idle period in an
    /// application-limited phase, with nothing in flight
    /// (draft-ietf-ccwg-bbr §5.4 `HandleRestartFromIdle`). The default
    /// ignores it.
    fn on_restart_from_idle(&mut self, now: Instant) {
        let _ = now;
    }

    /// The rate, in bytes per second, at which the pacer spreads packets;
    /// `None` (the default) lets the pacer derive it from the window and
    /// the smoothed RTT (RFC 9002 §7.7).
    fn pacing_rate(&self) -> Option<u64> {
        None
    }

    /// Whether the sender should mark itself application-limited after
    /// the last [`Controller::on_rate_sample`], so that the samples of
    /// the next round trip do not lower a bandwidth estimate (BBR does
    /// while in ProbeRTT, draft-ietf-ccwg-bbr §5.3.4.3
    /// `HandleProbeRTT`). The default is `false`.
    fn wants_app_limited(&self) -> bool {
        false
    }

    /// The path's maximum datagram size changed (e.g. after path MTU
    /// discovery, RFC 9002 §7.2).
    fn set_max_datagram_size(&mut self, max_datagram_size: u16);

    /// The congestion window, in bytes.
    fn window(&self) -> u64;

    /// The window the controller started with, in bytes (RFC 9002 §7.2).
    fn initial_window(&self) -> u64;

    /// A boxed copy of this controller (lets `Box<dyn Controller>` be
    /// cloned).
    fn clone_box(&self) -> Box<dyn Controller>;

    /// Whether the controller is in slow start, for event logs (qlog's
    /// congestion_state_updated); `None` (the default) when it has no
    /// such phase or does not say.
    fn is_slow_start(&self) -> Option<bool> {
        None
    }
}

impl Clone for Box<dyn Controller> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// Builds a [`Controller`] for each new path or connection; held by the
/// connection configuration (typically as `Arc<dyn ControllerFactory>`).
pub trait ControllerFactory: Send + Sync + Debug {
    /// A controller for a path starting at `now` whose maximum datagram size
    /// is `max_datagram_size`.
    fn build(&self, now: Instant, max_datagram_size: u16) -> Box<dyn Controller>;
}

/// The smallest maximum datagram size QUIC allows (RFC 9000 §14: "a
/// minimum value of 1200 bytes", RFC 9002 Appendix B.2); the usual starting
/// value.
pub const MIN_MAX_DATAGRAM_SIZE: u16 = 1200;

/// The RECOMMENDED initial window for `max_datagram_size` (RFC 9002 §7.2:
/// "Endpoints SHOULD use an initial congestion window of ten times the
/// maximum datagram size (max_datagram_size), while limiting the window to
/// the larger of 14,720 bytes or twice the maximum datagram size").
pub fn initial_window(max_datagram_size: u16) -> u64 {
    let mds = u64::from(max_datagram_size);
    (10 * mds).min(14_720.max(2 * mds))
}

/// The RECOMMENDED minimum window for `max_datagram_size` (RFC 9002 §7.2:
/// "The RECOMMENDED value is 2 * max_datagram_size").
pub fn minimum_window(max_datagram_size: u16) -> u64 {
    2 * u64::from(max_datagram_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_window_formula() {
        assert_eq!(initial_window(1200), 12_000);
        assert_eq!(initial_window(1472), 14_720);
        assert_eq!(initial_window(1500), 14_720);
        assert_eq!(initial_window(9000), 18_000);
        assert_eq!(minimum_window(1200), 2400);
    }

    #[test]
    fn boxed_controllers_clone() {
        let now = crate::recovery::test_epoch();
        let a: Box<dyn Controller> = NewRenoConfig::default().build(now, 1200);
        let b = a.clone();
        assert_eq!(a.window(), b.window());
    }
}
