//! BBR's state machine (draft-ietf-ccwg-bbr-latest §5.3, §5.4): Startup,
//! Drain, the ProbeBW cycle (DOWN, CRUISE, REFILL, UP), ProbeRTT and
//! restarting from idle.

use std::time::{Duration, Instant};

use super::{
    AckPhase, Bbr, BbrState, DEFAULT_CWND_GAIN, DRAIN_PACING_GAIN, INF, MIN_RTT_FILTER_LEN,
    PROBE_DOWN_PACING_GAIN, PROBE_RTT_CWND_GAIN, PROBE_RTT_DURATION, PROBE_RTT_INTERVAL,
    PROBE_UP_CWND_GAIN, PROBE_UP_PACING_GAIN, STARTUP_FULL_LOSS_COUNT, STARTUP_PACING_GAIN,
};
use crate::congestion::delivery_rate::RateSample;

impl Bbr {
    // §5.3.1 Startup.

    /// `EnterStartup()`.
    pub(super) fn enter_startup(&mut self) {
        self.state = BbrState::Startup;
        self.pacing_gain = STARTUP_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    /// `ResetFullBW()` (§5.3.1.2).
    pub(super) fn reset_full_bw(&mut self) {
        self.full_bw = 0;
        self.full_bw_count = 0;
        self.full_bw_now = false;
    }

    /// `CheckFullBWReached()` (§5.3.1.2): three non-app-limited rounds
    /// without 25% growth.
    pub(super) fn check_full_bw_reached(&mut self, rs: &RateSample) {
        if self.full_bw_now || !self.round_start || rs.is_app_limited {
            return;
        }
        if rs.delivery_rate as f64 >= self.full_bw as f64 * 1.25 {
            self.reset_full_bw();
            self.full_bw = rs.delivery_rate;
            return;
        }
        self.full_bw_count += 1;
        self.full_bw_now = self.full_bw_count >= 3;
        if self.full_bw_now {
            self.full_bw_reached = true;
        }
    }

    /// `CheckStartupDone()`.
    pub(super) fn check_startup_done(&mut self, rs: &RateSample) {
        self.check_startup_high_loss(rs);
        if self.state == BbrState::Startup && self.full_bw_reached {
            self.enter_drain();
        }
    }

    /// `CheckStartupHighLoss()` (§5.3.1.3). Evaluated at the end of each
    /// loss round: a round that declared losses (that is, spent in
    /// recovery), whose loss rate exceeded `BBR.LossThresh`, and in which
    /// at least `BBRStartupFullLossCnt` ACKs declared losses. The draft
    /// counts discontiguous lost ranges; QUIC's loss detection reports
    /// packets, so ACKs that declared losses stand in for ranges (as
    /// Linux's `loss_events_in_round` does).
    fn check_startup_high_loss(&mut self, rs: &RateSample) {
        if self.state != BbrState::Startup
            || self.full_bw_reached
            || !self.loss_round_start
            || rs.is_app_limited
            || self.loss_events_in_round < STARTUP_FULL_LOSS_COUNT
            || !Self::is_inflight_too_high(rs.lost, rs.tx_in_flight)
        {
            return;
        }
        self.undo_state = Some(BbrState::Startup);
        self.full_bw_reached = true;
        self.inflight_longterm = self.bdp().max(self.inflight_latest);
    }

    // §5.3.2 Drain.

    /// `EnterDrain()`.
    fn enter_drain(&mut self) {
        self.state = BbrState::Drain;
        self.pacing_gain = DRAIN_PACING_GAIN; // pace slowly
        self.cwnd_gain = DEFAULT_CWND_GAIN; // maintain cwnd
        self.drain_start_round = self.round_count;
    }

    /// `CheckDrainDone()`.
    pub(super) fn check_drain_done(&mut self, now: Instant) {
        if self.state == BbrState::Drain
            && (self.inflight <= self.inflight_for(1.0)
                || self.round_count > self.drain_start_round + 3)
        {
            self.enter_probe_bw(now);
        }
    }

    // §5.3.3 ProbeBW.

    /// `EnterProbeBW()`.
    fn enter_probe_bw(&mut self, now: Instant) {
        self.cwnd_gain = DEFAULT_CWND_GAIN;
        self.start_probe_bw_down(now);
    }

    /// `StartProbeBW_DOWN()`.
    pub(super) fn start_probe_bw_down(&mut self, now: Instant) {
        self.reset_congestion_signals();
        self.probe_up_acked_per_inc = INF; // not growing inflight_longterm
        self.pick_probe_wait();
        self.cycle_stamp = now; // start wall clock
        self.ack_phase = AckPhase::ProbeStopping;
        self.start_round();
        self.state = BbrState::ProbeBwDown;
        // §5.3.3.1: "switching to a BBR.pacing_gain of 0.90"; §5.6.1's
        // table: cwnd gain 2.
        self.pacing_gain = PROBE_DOWN_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    /// `StartProbeBW_CRUISE()`.
    fn start_probe_bw_cruise(&mut self) {
        self.state = BbrState::ProbeBwCruise;
        self.pacing_gain = 1.0;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    /// `StartProbeBW_REFILL()`.
    pub(super) fn start_probe_bw_refill(&mut self) {
        self.reset_short_term_model();
        self.bw_probe_up_rounds = 0;
        self.bw_probe_up_acked = 0;
        self.prev_probe_precautionary = false;
        self.ack_phase = AckPhase::Refilling;
        self.start_round();
        self.state = BbrState::ProbeBwRefill;
        self.pacing_gain = 1.0;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    /// `StartProbeBW_UP()`.
    fn start_probe_bw_up(&mut self, rs: &RateSample) {
        self.ack_phase = AckPhase::ProbeStarting;
        self.start_round();
        self.reset_full_bw();
        self.full_bw = rs.delivery_rate;
        self.state = BbrState::ProbeBwUp;
        self.pacing_gain = PROBE_UP_PACING_GAIN;
        self.cwnd_gain = PROBE_UP_CWND_GAIN;
        self.raise_inflight_longterm_slope();
    }

    /// `UpdateProbeBWCyclePhase()`: on each ACK.
    pub(super) fn update_probe_bw_cycle_phase(&mut self, now: Instant, rs: &RateSample) {
        if !self.full_bw_reached {
            return; // only handling steady-state behavior here
        }
        if self.adapt_long_term_model(rs) {
            return; // already decided state transition
        }
        match self.state {
            BbrState::ProbeBwDown => {
                if self.is_time_to_probe_bw(now) {
                    return;
                }
                if self.is_time_to_cruise() {
                    self.start_probe_bw_cruise();
                }
            }
            BbrState::ProbeBwCruise => {
                self.is_time_to_probe_bw(now);
            }
            // After one round of REFILL, start UP.
            BbrState::ProbeBwRefill if self.round_start => {
                self.is_bw_probe_sample = true;
                self.start_probe_bw_up(rs);
            }
            BbrState::ProbeBwUp => self.check_probe_up_done(now, rs),
            _ => {}
        }
    }

    /// ProbeBW_UP's exit: "if (IsTimeToGoDown()) ... StartProbeBW_DOWN()".
    fn check_probe_up_done(&mut self, now: Instant, rs: &RateSample) {
        if self.is_time_to_go_down(rs) {
            self.prev_probe_too_high = false; // no high loss (yet)
            self.start_probe_bw_down(now);
        }
    }

    /// `IsInAProbeBWState()`.
    pub(super) fn is_in_a_probe_bw_state(&self) -> bool {
        matches!(
            self.state,
            BbrState::ProbeBwDown
                | BbrState::ProbeBwCruise
                | BbrState::ProbeBwRefill
                | BbrState::ProbeBwUp
        )
    }

    /// `IsTimeToCruise()`: DOWN to CRUISE once there is headroom and the
    /// queue is drained.
    fn is_time_to_cruise(&self) -> bool {
        if self.inflight > self.inflight_with_headroom() {
            return false; // not enough headroom
        }
        // C.inflight > estimated BDP: Inflight(BBR.max_bw, 1.0) (§5.3.3.9).
        self.inflight <= self.inflight_at_max_bw(1.0)
    }

    /// `IsTimeToGoDown()`: UP to DOWN.
    fn is_time_to_go_down(&mut self, rs: &RateSample) -> bool {
        // Precautionary Bandwidth Probing: Deceleration (§5.3.3.6).
        if self.prev_probe_too_high && self.inflight >= self.inflight_longterm {
            self.prev_probe_precautionary = true;
            return true;
        }
        if self.is_cwnd_limited() && self.cwnd >= self.inflight_longterm {
            // bw is limited by BBR.inflight_longterm.
            self.reset_full_bw();
            self.full_bw = rs.delivery_rate;
        } else if self.full_bw_now {
            return true; // we estimate we've fully used path bw
        }
        false
    }

    /// `IsProbingBW()`.
    pub(super) fn is_probing_bw(&self) -> bool {
        matches!(
            self.state,
            BbrState::Startup | BbrState::ProbeBwRefill | BbrState::ProbeBwUp
        )
    }

    /// `RaiseInflightLongtermSlope()`.
    fn raise_inflight_longterm_slope(&mut self) {
        let growth_this_round = 1u64 << self.bw_probe_up_rounds;
        self.bw_probe_up_rounds = (self.bw_probe_up_rounds + 1).min(30);
        self.probe_up_acked_per_inc = (self.cwnd / growth_this_round).max(self.smss);
    }

    /// `ProbeInflightLongtermUpward()`.
    fn probe_inflight_longterm_upward(&mut self, rs: &RateSample) {
        if !self.is_cwnd_limited() || self.cwnd < self.inflight_longterm {
            return; // not fully using inflight_longterm, so don't grow it
        }
        self.bw_probe_up_acked += rs.newly_acked;
        if self.bw_probe_up_acked >= self.probe_up_acked_per_inc {
            let delta = self.bw_probe_up_acked / self.probe_up_acked_per_inc;
            self.bw_probe_up_acked -= delta * self.probe_up_acked_per_inc;
            self.inflight_longterm = self
                .inflight_longterm
                .saturating_add(delta.saturating_mul(self.smss));
        }
        if self.round_start {
            self.raise_inflight_longterm_slope();
        }
    }

    /// `AdaptLongTermModel()`: returns whether it decided a transition.
    fn adapt_long_term_model(&mut self, rs: &RateSample) -> bool {
        if self.ack_phase == AckPhase::ProbeStarting && self.round_start {
            // Starting to get bw probing samples.
            self.ack_phase = AckPhase::ProbeFeedback;
        }
        if self.ack_phase == AckPhase::ProbeStopping && self.round_start {
            // End of samples from bw probing phase.
            self.is_bw_probe_sample = false;
            self.ack_phase = AckPhase::Init;
            if self.is_in_a_probe_bw_state() && !rs.is_app_limited {
                self.advance_max_bw_filter();
            }
            // Precautionary Bandwidth Probing: Acceleration.
            if self.is_in_a_probe_bw_state()
                && self.prev_probe_precautionary
                && !self.prev_probe_too_high
            {
                self.start_probe_bw_refill();
                return true;
            }
        }
        if !Self::is_inflight_too_high(rs.lost, rs.tx_in_flight) {
            // Loss rate is safe. Adjust upper bounds upward.
            if self.inflight_longterm == INF {
                return false; // no upper bounds to raise
            }
            if rs.tx_in_flight > self.inflight_longterm {
                self.inflight_longterm = rs.tx_in_flight;
            }
            if self.state == BbrState::ProbeBwUp {
                self.probe_inflight_longterm_upward(rs);
            }
        }
        false
    }

    /// `IsTimeToProbeBW()`: DOWN or CRUISE to REFILL.
    fn is_time_to_probe_bw(&mut self, now: Instant) -> bool {
        let elapsed = now > self.cycle_stamp + self.bw_probe_wait;
        if elapsed || self.is_reno_coexistence_probe_time() {
            self.start_probe_bw_refill();
            return true;
        }
        false
    }

    /// `PickProbeWait()`: 0 or 1 rounds, and 2 to 3 seconds.
    fn pick_probe_wait(&mut self) {
        self.rounds_since_probe_up = u64::from(self.random() >= 0.5);
        let extra = Duration::from_secs_f64(self.random());
        self.bw_probe_wait = Duration::from_secs(2) + extra;
    }

    #[cfg(test)]
    pub(super) fn pick_probe_wait_for_test(&mut self) {
        self.pick_probe_wait();
    }

    /// `IsRenoCoexistenceProbeTime()`. `TargetInflight()` counts packets
    /// here (a Reno flow grows by one packet per round; Linux's
    /// `bbr_target_inflight` is in packets too), so it is divided by
    /// `C.SMSS`.
    fn is_reno_coexistence_probe_time(&self) -> bool {
        let reno_rounds = self.target_inflight() / self.smss.max(1);
        self.rounds_since_probe_up >= reno_rounds.min(63)
    }

    // §5.3.4 ProbeRTT.

    /// `UpdateMinRTT()` (§5.3.4.3).
    pub(super) fn update_min_rtt(&mut self, now: Instant, rs: &RateSample) {
        self.probe_rtt_expired = now > self.probe_rtt_min_stamp + PROBE_RTT_INTERVAL;
        if self.probe_rtt_min_delay.is_none_or(|d| rs.rtt < d) || self.probe_rtt_expired {
            self.probe_rtt_min_delay = Some(rs.rtt);
            self.probe_rtt_min_stamp = now;
        }
        let min_rtt_expired = now > self.min_rtt_stamp + MIN_RTT_FILTER_LEN;
        let probe = self.probe_rtt_min_delay;
        if probe.is_some_and(|p| self.min_rtt.is_none_or(|m| p < m)) || min_rtt_expired {
            self.min_rtt = probe;
            self.min_rtt_stamp = self.probe_rtt_min_stamp;
        }
    }

    /// `CheckProbeRTT()`.
    pub(super) fn check_probe_rtt(&mut self, now: Instant, rs: &RateSample) {
        if self.state != BbrState::ProbeRtt && self.probe_rtt_expired && !self.idle_restart {
            self.enter_probe_rtt();
            self.save_cwnd();
            self.probe_rtt_done_stamp = None;
            self.ack_phase = AckPhase::ProbeStopping;
            self.start_round();
        }
        if self.state == BbrState::ProbeRtt {
            self.handle_probe_rtt(now);
        }
        if rs.delivered > 0 {
            self.idle_restart = false;
        }
    }

    /// `EnterProbeRTT()`.
    fn enter_probe_rtt(&mut self) {
        self.state = BbrState::ProbeRtt;
        self.pacing_gain = 1.0;
        self.cwnd_gain = PROBE_RTT_CWND_GAIN;
    }

    /// `HandleProbeRTT()`. Its `MarkConnectionAppLimited()` is the
    /// connection's, which asks [`crate::congestion::Controller::wants_app_limited`]
    /// after each sample.
    fn handle_probe_rtt(&mut self, now: Instant) {
        if self.probe_rtt_done_stamp.is_none() && self.inflight <= self.probe_rtt_cwnd() {
            // Wait for at least ProbeRTTDuration and one round to elapse.
            self.probe_rtt_done_stamp = Some(now + PROBE_RTT_DURATION);
            self.probe_rtt_round_done = false;
            self.start_round();
        } else if self.probe_rtt_done_stamp.is_some() {
            if self.round_start {
                self.probe_rtt_round_done = true;
            }
            if self.probe_rtt_round_done {
                self.check_probe_rtt_done(now);
            }
        }
    }

    /// `CheckProbeRTTDone()`.
    fn check_probe_rtt_done(&mut self, now: Instant) {
        if self.probe_rtt_done_stamp.is_some_and(|done| now > done) {
            // Schedule next ProbeRTT.
            self.probe_rtt_min_stamp = now;
            self.restore_cwnd();
            self.exit_probe_rtt(now);
        }
    }

    /// `ExitProbeRTT()` (§5.3.4.4).
    fn exit_probe_rtt(&mut self, now: Instant) {
        self.reset_short_term_model();
        if self.full_bw_reached {
            self.start_probe_bw_down(now);
            self.start_probe_bw_cruise();
        } else {
            self.enter_startup();
        }
    }

    // §5.4 Restarting from idle.

    /// `HandleRestartFromIdle()`; the caller checks `C.inflight == 0 &&
    /// C.app_limited`.
    pub(super) fn handle_restart_from_idle(&mut self, now: Instant) {
        self.idle_restart = true;
        self.extra_acked_interval_start = now;
        if self.is_in_a_probe_bw_state() {
            self.set_pacing_rate_with_gain(1.0);
        } else if self.state == BbrState::ProbeRtt {
            self.check_probe_rtt_done(now);
        }
    }
}
