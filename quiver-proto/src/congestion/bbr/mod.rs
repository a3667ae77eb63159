//! BBRv3 (draft-ietf-ccwg-bbr-latest, the revision of 3 August 2026, in
//! /work/shared/rfc/draft-ietf-ccwg-bbr.txt): a model-based congestion
//! controller that paces at its estimate of the bottleneck bandwidth and
//! bounds what is in flight by a multiple of the bandwidth-delay product,
//! with the v3 loss responses (`inflight_longterm`, the short-term
//! `bw_shortterm`/`inflight_shortterm` bounds and `BBR.LossThresh`).
//!
//! Chosen per connection with [`BbrConfig`]. It needs the delivery-rate
//! samples of [`super::delivery_rate`], which the connection feeds through
//! [`Controller::on_rate_sample`] and [`Controller::on_packet_lost`], and
//! it paces with its own rate ([`Controller::pacing_rate`]).
//!
//! Files: this one holds the state, constants and the [`Controller`]
//! glue (the per-ACK steps of §5.2.3); `filter.rs` the windowed filters;
//! `model.rs` the path model (§5.5: rounds, max_bw, min_rtt, aggregation,
//! loss responses, undo) and control parameters (§5.6: pacing rate, cwnd);
//! `states.rs` the state machine (§5.3: Startup, Drain, ProbeBW, ProbeRTT,
//! restart from idle).
//!
//! Deviations from the draft, where QUIC or this implementation differ,
//! are noted at each place with the section; in short: loss recovery
//! episodes are RFC 9002's recovery periods; the RTO response is RFC 9002
//! §7.6.2's persistent congestion response; the Startup high-loss exit
//! counts ACKs that declared losses instead of discontiguous lost ranges;
//! CE marks are a congestion signal like loss (§3.7 only requires that
//! they be treated as congestion); randomness comes from a generator
//! seeded by the factory, so runs are reproducible.

mod filter;
mod model;
mod states;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::delivery_rate::{LostPacket, RateSample};
use super::{Controller, ControllerFactory, initial_window, minimum_window};
use crate::recovery::RttEstimator;
use filter::{MaxBwFilter, WindowedMax};

/// `BBR.StartupPacingGain`, 4 * ln(2) (§2.5).
pub const STARTUP_PACING_GAIN: f64 = 2.77;
/// `BBR.DrainPacingGain` (§2.5).
pub const DRAIN_PACING_GAIN: f64 = 0.5;
/// `BBR.DefaultCwndGain` (§2.6).
pub const DEFAULT_CWND_GAIN: f64 = 2.0;
/// `BBR.PacingMarginPercent` (§2.5).
pub const PACING_MARGIN_PERCENT: u64 = 1;
/// `BBR.LossThresh`, the tolerated loss rate per round when probing (§2.8).
pub const LOSS_THRESH: f64 = 0.02;
/// `BBR.Beta`, the multiplicative decrease per lossy round (§2.8).
pub const BETA: f64 = 0.7;
/// `BBR.Headroom` (§2.8).
pub const HEADROOM: f64 = 0.15;
/// `BBR.ExtraAckedFilterLen`, in rounds (§2.12).
pub const EXTRA_ACKED_FILTER_LEN: u64 = 10;
/// `BBR.MinRTTFilterLen` (§2.16.1).
pub const MIN_RTT_FILTER_LEN: Duration = Duration::from_secs(10);
/// `BBR.ProbeRTTCwndGain` (§2.16.2).
pub const PROBE_RTT_CWND_GAIN: f64 = 0.5;
/// `BBR.ProbeRTTDuration` (§2.16.2).
pub const PROBE_RTT_DURATION: Duration = Duration::from_millis(200);
/// `BBR.ProbeRTTInterval` (§2.16.2; §5.3.4.2: "each BBR flow MUST use the
/// standard BBR.ProbeRTTInterval of 5 secs").
pub const PROBE_RTT_INTERVAL: Duration = Duration::from_secs(5);
/// `BBRStartupFullLossCnt` (§5.3.1.3).
pub const STARTUP_FULL_LOSS_COUNT: u32 = 6;
/// ProbeBW_DOWN's and ProbeBW_UP's pacing gains (§5.3.3.1, §5.3.3.5).
const PROBE_DOWN_PACING_GAIN: f64 = 0.9;
const PROBE_UP_PACING_GAIN: f64 = 1.25;
/// ProbeBW_UP's cwnd gain (§5.3.3.5).
const PROBE_UP_CWND_GAIN: f64 = 2.25;

/// "Infinity" for volumes and rates.
const INF: u64 = u64::MAX;

/// The states of BBR's state machine (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BbrState {
    /// Exponential search for the bandwidth (§5.3.1).
    Startup,
    /// Draining the queue Startup built (§5.3.2).
    Drain,
    /// Decelerating below the estimated bandwidth (§5.3.3.1).
    ProbeBwDown,
    /// Cruising at the estimated bandwidth (§5.3.3.2).
    ProbeBwCruise,
    /// Refilling the pipe before probing (§5.3.3.3).
    ProbeBwRefill,
    /// Probing for more bandwidth (§5.3.3.4).
    ProbeBwUp,
    /// Draining the queue to measure the minimum RTT (§5.3.4).
    ProbeRtt,
}

/// Which ACKs carry feedback from bandwidth probing (§2.14
/// `BBR.ack_phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckPhase {
    Init,
    Refilling,
    ProbeStarting,
    ProbeFeedback,
    ProbeStopping,
}

/// Builds [`Bbr`] controllers (see [`crate::TransportConfig::congestion`]).
///
/// Each controller's randomized bandwidth-probe timing (§5.3.3.8
/// `PickProbeWait`) is seeded from the factory's seed and the number of
/// controllers it built before, so flows differ from one another while a
/// run is reproducible (no clock or global generator is read).
#[derive(Debug, Default)]
pub struct BbrConfig {
    seed: u64,
    built: AtomicU64,
}

impl BbrConfig {
    /// A factory whose controllers' randomness derives from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            built: AtomicU64::new(0),
        }
    }
}

impl Clone for BbrConfig {
    fn clone(&self) -> Self {
        Self::new(self.seed)
    }
}

impl ControllerFactory for BbrConfig {
    fn build(&self, now: Instant, max_datagram_size: u16) -> Box<dyn Controller> {
        let n = self.built.fetch_add(1, Ordering::Relaxed);
        let seed = self.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Box::new(Bbr::new(now, max_datagram_size, seed))
    }
}

/// The BBRv3 congestion controller for one path (draft-ietf-ccwg-bbr).
#[derive(Debug, Clone)]
pub struct Bbr {
    // Transport connection state (§2.2, §2.4).
    /// `C.SMSS`: the maximum datagram size (§2.2: "for QUIC BBR
    /// implementations the C.SMSS SHOULD be the QUIC maximum datagram
    /// size").
    smss: u64,
    initial_cwnd: u64,
    cwnd: u64,
    pacing_rate: u64,
    send_quantum: u64,
    /// `C.inflight` as last reported.
    inflight: u64,
    /// `C.delivered` as of the last sample.
    delivered: u64,
    /// Whether the window was fully used in this round and the previous
    /// one (`C.is_cwnd_limited`).
    cwnd_limited_now: bool,
    cwnd_limited_prev: bool,
    /// RFC 9002 §7.3.2 recovery period: when it started.
    recovery_start: Option<Instant>,

    // General algorithm state (§2.7).
    state: BbrState,
    pacing_gain: f64,
    cwnd_gain: f64,
    round_count: u64,
    round_start: bool,
    next_round_delivered: u64,
    idle_restart: bool,
    drain_start_round: u64,

    // Path model (§2.9-§2.12).
    max_bw_filter: MaxBwFilter,
    max_bw: u64,
    bw_shortterm: u64,
    bw: u64,
    min_rtt: Option<Duration>,
    min_rtt_stamp: Instant,
    extra_acked: u64,
    extra_acked_filter: WindowedMax,
    extra_acked_interval_start: Instant,
    extra_acked_delivered: u64,
    max_inflight: u64,
    inflight_longterm: u64,
    inflight_shortterm: u64,
    bw_latest: u64,
    inflight_latest: u64,
    loss_round_delivered: u64,
    loss_round_start: bool,
    is_loss_in_round: bool,
    /// ACKs that declared losses this loss round (the §5.3.1.3 count).
    loss_events_in_round: u32,

    // Startup (§2.13).
    full_bw_reached: bool,
    full_bw_now: bool,
    full_bw: u64,
    full_bw_count: u32,

    // ProbeBW (§2.14).
    ack_phase: AckPhase,
    is_bw_probe_sample: bool,
    bw_probe_up_acked: u64,
    probe_up_acked_per_inc: u64,
    bw_probe_up_rounds: u32,
    rounds_since_probe_up: u64,
    bw_probe_wait: Duration,
    cycle_stamp: Instant,
    prev_probe_too_high: bool,
    prev_probe_precautionary: bool,

    // Undo (§2.15).
    undo_state: Option<BbrState>,
    undo_bw_shortterm: u64,
    undo_inflight_shortterm: u64,
    undo_inflight_longterm: u64,
    prior_cwnd: u64,

    // ProbeRTT (§2.16).
    probe_rtt_min_delay: Option<Duration>,
    probe_rtt_min_stamp: Instant,
    probe_rtt_expired: bool,
    probe_rtt_done_stamp: Option<Instant>,
    probe_rtt_round_done: bool,

    /// xorshift64* state for `PickProbeWait`.
    rng: u64,
}

impl Bbr {
    /// `OnInit()` (§5.2.1) for a path starting at `now`; `seed` seeds the
    /// randomized probe timing.
    pub fn new(now: Instant, max_datagram_size: u16, seed: u64) -> Self {
        let initial_cwnd = initial_window(max_datagram_size);
        let mut bbr = Self {
            smss: u64::from(max_datagram_size),
            initial_cwnd,
            cwnd: initial_cwnd,
            pacing_rate: 0,
            send_quantum: 0,
            inflight: 0,
            delivered: 0,
            cwnd_limited_now: false,
            cwnd_limited_prev: false,
            recovery_start: None,
            state: BbrState::Startup,
            pacing_gain: STARTUP_PACING_GAIN,
            cwnd_gain: DEFAULT_CWND_GAIN,
            round_count: 0,
            round_start: false,
            next_round_delivered: 0,
            idle_restart: false,
            drain_start_round: 0,
            max_bw_filter: MaxBwFilter::default(),
            max_bw: 0,
            bw_shortterm: INF,
            bw: 0,
            min_rtt: None,
            min_rtt_stamp: now,
            extra_acked: 0,
            extra_acked_filter: WindowedMax::default(),
            extra_acked_interval_start: now,
            extra_acked_delivered: 0,
            max_inflight: 0,
            inflight_longterm: INF,
            inflight_shortterm: INF,
            bw_latest: 0,
            inflight_latest: 0,
            loss_round_delivered: 0,
            loss_round_start: false,
            is_loss_in_round: false,
            loss_events_in_round: 0,
            full_bw_reached: false,
            full_bw_now: false,
            full_bw: 0,
            full_bw_count: 0,
            ack_phase: AckPhase::Init,
            is_bw_probe_sample: false,
            bw_probe_up_acked: 0,
            probe_up_acked_per_inc: INF,
            bw_probe_up_rounds: 0,
            rounds_since_probe_up: 0,
            bw_probe_wait: Duration::ZERO,
            cycle_stamp: now,
            prev_probe_too_high: false,
            prev_probe_precautionary: false,
            undo_state: None,
            undo_bw_shortterm: 0,
            undo_inflight_shortterm: 0,
            undo_inflight_longterm: 0,
            prior_cwnd: 0,
            probe_rtt_min_delay: None,
            probe_rtt_min_stamp: now,
            probe_rtt_expired: false,
            probe_rtt_done_stamp: None,
            probe_rtt_round_done: false,
            // xorshift needs a non-zero state; splitmix64's finalizer spreads
            // nearby seeds apart.
            rng: splitmix(seed) | 1,
        };
        bbr.reset_congestion_signals();
        bbr.reset_short_term_model();
        bbr.reset_full_bw();
        bbr.init_pacing_rate(None);
        bbr.enter_startup();
        bbr.set_send_quantum();
        bbr
    }

    /// The current state (§5.1).
    pub fn state(&self) -> BbrState {
        self.state
    }

    /// `BBR.bw`: the bandwidth estimate used for pacing, in bytes per
    /// second (§2.9.1).
    pub fn bandwidth(&self) -> u64 {
        self.bw
    }

    /// `BBR.max_bw`, in bytes per second (§2.9.1).
    pub fn max_bandwidth(&self) -> u64 {
        self.max_bw
    }

    /// `BBR.min_rtt` (§2.9.2), `None` before any sample.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// `BBR.inflight_longterm` (§2.9.2), `None` while unset (infinite).
    pub fn inflight_longterm(&self) -> Option<u64> {
        (self.inflight_longterm != INF).then_some(self.inflight_longterm)
    }

    /// Whether Startup found the pipe full (`BBR.full_bw_reached`).
    pub fn full_bw_reached(&self) -> bool {
        self.full_bw_reached
    }

    /// `BBR.MinPipeCwnd` = 4 * C.SMSS (§2.8).
    fn min_pipe_cwnd(&self) -> u64 {
        4 * self.smss
    }

    fn in_loss_recovery(&self) -> bool {
        self.recovery_start.is_some()
    }

    /// `C.is_cwnd_limited` (§2.2): the window was full at some point in the
    /// last packet-timed round.
    fn is_cwnd_limited(&self) -> bool {
        self.cwnd_limited_now || self.cwnd_limited_prev
    }

    /// A uniform random number in `[0, 1)`.
    fn random(&mut self) -> f64 {
        // xorshift64*.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `UpdateOnACK()` (§5.2.3) for one rate sample.
    fn update_on_ack(&mut self, now: Instant, rs: &RateSample) {
        // UpdateModelAndState()
        self.update_latest_delivery_signals(rs);
        self.update_congestion_signals(rs);
        self.update_ack_aggregation(now, rs);
        self.check_full_bw_reached(rs);
        self.check_startup_done(rs);
        self.check_drain_done(now);
        self.update_probe_bw_cycle_phase(now, rs);
        self.update_min_rtt(now, rs);
        self.check_probe_rtt(now, rs);
        self.advance_latest_delivery_signals(rs);
        self.bound_bw_for_model();
        // UpdateControlParameters()
        self.set_pacing_rate();
        self.set_send_quantum();
        self.set_cwnd(rs);
    }
}

impl Controller for Bbr {
    fn on_packet_sent(&mut self, _now: Instant, _bytes: u64, bytes_in_flight: u64) {
        self.inflight = bytes_in_flight;
        // C.is_cwnd_limited: no room for another full-sized packet.
        if bytes_in_flight + self.smss > self.cwnd {
            self.cwnd_limited_now = true;
        }
    }

    fn on_ack(
        &mut self,
        _now: Instant,
        sent_time: Instant,
        bytes: u64,
        _app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.inflight = self.inflight.saturating_sub(bytes);
        // InitPacingRate() once the first RTT sample exists (§5.6.2: "the
        // initial C.srtt after the first non-zero RTT sample").
        if self.max_bw == 0 && rtt.has_sample() {
            self.init_pacing_rate(Some(rtt.smoothed_rtt()));
        }
        // RFC 9002 §7.3.2: "The recovery period ... ends ... when a packet
        // sent during the recovery period is acknowledged"; then
        // RestoreCwnd() (§5.6.4.4).
        if self.recovery_start.is_some_and(|start| sent_time > start) {
            self.recovery_start = None;
            self.restore_cwnd();
        }
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent_time: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        if lost_bytes == 0 {
            // An ECN-CE increase (RFC 9002 Appendix B.7). §3.7: "the
            // congestion controller response MUST treat any CE marks as
            // congestion".
            self.on_ce(now);
        }
        // §5.6.4.4 OnEnterFastRecovery(): a new RFC 9002 §7.3.2 recovery
        // period. SaveStateUponLoss() already ran in NoteLoss() for the
        // round's first loss (on_packet_lost comes first), so only the
        // window is saved here.
        if self.recovery_start.is_none_or(|start| sent_time > start) {
            self.save_cwnd();
            self.recovery_start = Some(now);
        }
        if is_persistent_congestion {
            // §5.6.4.4 OnEnterRTO() sets cwnd to inflight + 1 packet; QUIC
            // has no RTO, and RFC 9002 §7.6.2 says "the sender's congestion
            // window MUST be reduced to the minimum congestion window".
            self.save_cwnd();
            self.cwnd = minimum_window(self.smss as u16);
        }
    }

    fn on_spurious_congestion_event(&mut self) {
        self.recovery_start = None;
        self.handle_spurious_loss_detection();
    }

    fn on_rate_sample(&mut self, now: Instant, sample: &RateSample, bytes_in_flight: u64) {
        self.inflight = bytes_in_flight;
        self.delivered = sample.total_delivered;
        self.update_on_ack(now, sample);
    }

    fn on_packet_lost(&mut self, now: Instant, lost: &LostPacket) {
        self.delivered = lost.total_delivered;
        self.handle_lost_packet(now, lost);
    }

    fn on_restart_from_idle(&mut self, now: Instant) {
        self.handle_restart_from_idle(now);
    }

    fn pacing_rate(&self) -> Option<u64> {
        Some(self.pacing_rate)
    }

    fn wants_app_limited(&self) -> bool {
        // §5.3.4.3 HandleProbeRTT(): "Ignore low rate samples during
        // ProbeRTT: MarkConnectionAppLimited()".
        self.state == BbrState::ProbeRtt
    }

    fn set_max_datagram_size(&mut self, max_datagram_size: u16) {
        self.smss = u64::from(max_datagram_size);
        self.cwnd = self.cwnd.max(self.min_pipe_cwnd());
    }

    fn window(&self) -> u64 {
        self.cwnd
    }

    fn initial_window(&self) -> u64 {
        self.initial_cwnd
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }
}

/// splitmix64's output function.
fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `x * gain`, keeping infinity infinite.
fn mul(x: u64, gain: f64) -> u64 {
    if x == INF {
        INF
    } else {
        (x as f64 * gain) as u64
    }
}

/// `bw * rtt` in bytes.
fn bdp(bw: u64, rtt: Duration) -> u64 {
    u64::try_from(u128::from(bw) * rtt.as_nanos() / 1_000_000_000).unwrap_or(INF)
}
