//! BBR's network path model (draft-ietf-ccwg-bbr-latest §5.5) and control
//! parameters (§5.6).

use std::time::{Duration, Instant};

use super::{
    BETA, Bbr, BbrState, EXTRA_ACKED_FILTER_LEN, HEADROOM, INF, LOSS_THRESH, PACING_MARGIN_PERCENT,
    PROBE_RTT_CWND_GAIN, STARTUP_PACING_GAIN, bdp, mul,
};
use crate::congestion::delivery_rate::{LostPacket, RateSample, rate};

impl Bbr {
    // §5.5.1 Round counting.

    /// `UpdateRound()`.
    pub(super) fn update_round(&mut self, rs: &RateSample) {
        if rs.prior_delivered >= self.next_round_delivered {
            self.start_round();
            self.round_count += 1;
            self.rounds_since_probe_up += 1;
            self.round_start = true;
            // C.is_cwnd_limited covers the last round trip.
            self.cwnd_limited_prev = self.cwnd_limited_now;
            self.cwnd_limited_now = false;
        } else {
            self.round_start = false;
        }
    }

    /// `StartRound()`.
    pub(super) fn start_round(&mut self) {
        self.next_round_delivered = self.delivered;
    }

    // §5.5.5 max_bw.

    /// `UpdateMaxBw()`.
    fn update_max_bw(&mut self, rs: &RateSample) {
        self.update_round(rs);
        // §5.5.4: app-limited samples count only when they raise max_bw.
        if rs.delivery_rate > 0 && (rs.delivery_rate >= self.max_bw || !rs.is_app_limited) {
            self.max_bw = self.max_bw_filter.update(rs.delivery_rate);
        }
    }

    /// `AdvanceMaxBwFilter()` (§5.5.6).
    pub(super) fn advance_max_bw_filter(&mut self) {
        self.max_bw_filter.advance();
        self.max_bw = self.max_bw_filter.get();
    }

    // §5.5.9 extra_acked.

    /// `UpdateACKAggregation()`.
    pub(super) fn update_ack_aggregation(&mut self, now: Instant, rs: &RateSample) {
        let interval = now.saturating_duration_since(self.extra_acked_interval_start);
        let mut expected = bdp(self.bw, interval);
        // Reset interval if ACK rate is below expected rate.
        if self.extra_acked_delivered <= expected {
            self.extra_acked_delivered = 0;
            self.extra_acked_interval_start = now;
            expected = 0;
        }
        self.extra_acked_delivered += rs.newly_acked;
        let extra = (self.extra_acked_delivered - expected).min(self.cwnd);
        let filter_len = if self.full_bw_reached {
            EXTRA_ACKED_FILTER_LEN
        } else {
            1 // in Startup, just remember 1 round
        };
        self.extra_acked = self
            .extra_acked_filter
            .update(self.round_count, extra, filter_len);
    }

    // §5.5.10 Loss.

    /// `UpdateLatestDeliverySignals()` (§5.5.10.3).
    pub(super) fn update_latest_delivery_signals(&mut self, rs: &RateSample) {
        self.loss_round_start = false;
        self.bw_latest = self.bw_latest.max(rs.delivery_rate);
        self.inflight_latest = self.inflight_latest.max(rs.delivered);
        if rs.prior_delivered >= self.loss_round_delivered {
            self.loss_round_delivered = self.delivered;
            self.loss_round_start = true;
        }
        if rs.newly_lost > 0 {
            self.loss_events_in_round = self.loss_events_in_round.saturating_add(1);
        }
    }

    /// `AdvanceLatestDeliverySignals()`.
    pub(super) fn advance_latest_delivery_signals(&mut self, rs: &RateSample) {
        if self.loss_round_start {
            self.bw_latest = rs.delivery_rate;
            self.inflight_latest = rs.delivered;
            self.loss_events_in_round = 0;
        }
    }

    /// `ResetCongestionSignals()`.
    pub(super) fn reset_congestion_signals(&mut self) {
        self.is_loss_in_round = false;
        self.bw_latest = 0;
        self.inflight_latest = 0;
    }

    /// `UpdateCongestionSignals()`.
    pub(super) fn update_congestion_signals(&mut self, rs: &RateSample) {
        self.update_max_bw(rs);
        if !self.loss_round_start {
            return; // wait until end of round trip
        }
        self.adapt_lower_bounds_from_congestion();
        self.is_loss_in_round = false;
    }

    /// `AdaptLowerBoundsFromCongestion()`: once per round.
    fn adapt_lower_bounds_from_congestion(&mut self) {
        if self.is_probing_bw() {
            return;
        }
        if self.is_loss_in_round {
            // InitLowerBounds()
            if self.bw_shortterm == INF {
                self.bw_shortterm = self.max_bw;
            }
            if self.inflight_shortterm == INF {
                self.inflight_shortterm = self.cwnd;
            }
            // LossLowerBounds()
            self.bw_shortterm = self.bw_latest.max(mul(self.bw_shortterm, BETA));
            self.inflight_shortterm = self.inflight_latest.max(mul(self.inflight_shortterm, BETA));
        }
    }

    /// `ResetShortTermModel()`.
    pub(super) fn reset_short_term_model(&mut self) {
        self.bw_shortterm = INF;
        self.inflight_shortterm = INF;
    }

    /// `BoundBWForModel()`.
    pub(super) fn bound_bw_for_model(&mut self) {
        self.bw = self.max_bw.min(self.bw_shortterm);
    }

    /// `IsInflightTooHigh()` for `lost` bytes lost of `tx_in_flight`
    /// (§5.5.10.2). QUIC always has selective ACKs (§2.2).
    pub(super) fn is_inflight_too_high(lost: u64, tx_in_flight: u64) -> bool {
        lost as f64 > tx_in_flight as f64 * LOSS_THRESH
    }

    /// `HandleInflightTooHigh()`; `tx_in_flight` and `is_app_limited` are
    /// the sample's.
    pub(super) fn handle_inflight_too_high(
        &mut self,
        now: Instant,
        tx_in_flight: u64,
        is_app_limited: bool,
    ) {
        self.prev_probe_too_high = true;
        self.is_bw_probe_sample = false; // only react once per bw probe
        if !is_app_limited {
            self.inflight_longterm = tx_in_flight.max(mul(self.target_inflight(), BETA));
        }
        if self.state == BbrState::ProbeBwUp {
            self.undo_state = Some(BbrState::ProbeBwUp);
            self.start_probe_bw_down(now);
        }
    }

    /// `NoteLoss()`.
    fn note_loss(&mut self) {
        if !self.is_loss_in_round {
            self.loss_round_delivered = self.delivered;
            self.save_state_upon_loss();
        }
        self.is_loss_in_round = true;
    }

    /// `HandleLostPacket(P)` (§5.5.10.2).
    pub(super) fn handle_lost_packet(&mut self, now: Instant, p: &LostPacket) {
        self.note_loss();
        if !self.is_bw_probe_sample {
            return; // not a packet sent while probing bandwidth
        }
        if Self::is_inflight_too_high(p.lost_since_sent, p.tx_in_flight) {
            let at_loss = Self::inflight_at_loss(p);
            self.handle_inflight_too_high(now, at_loss, p.is_app_limited);
        }
    }

    /// `InflightAtLoss(P)`: the in-flight volume at which losses crossed
    /// `BBR.LossThresh`, within packet P.
    fn inflight_at_loss(p: &LostPacket) -> u64 {
        let inflight_prev = p.tx_in_flight.saturating_sub(p.size);
        let lost_prev = p.lost_since_sent.saturating_sub(p.size) as f64;
        let lost_prefix =
            ((LOSS_THRESH * inflight_prev as f64 - lost_prev) / (1.0 - LOSS_THRESH)).max(0.0);
        inflight_prev.saturating_add(lost_prefix as u64)
    }

    /// An ECN-CE increase. §3.7 leaves the response open but requires CE
    /// to count as congestion: it is a loss signal for the round (the
    /// short-term bounds adapt once per round outside probing, §5.5.10.3),
    /// and it ends a bandwidth probe as excess loss would (§5.5.10.2), at
    /// the in-flight volume of the latest sample.
    pub(super) fn on_ce(&mut self, now: Instant) {
        self.note_loss();
        if self.is_bw_probe_sample {
            self.handle_inflight_too_high(now, self.inflight.max(self.min_pipe_cwnd()), false);
        }
    }

    // §5.5.11 Undo.

    /// `SaveStateUponLoss()`.
    fn save_state_upon_loss(&mut self) {
        self.save_cwnd();
        self.undo_state = None;
        self.undo_bw_shortterm = self.bw_shortterm;
        self.undo_inflight_shortterm = self.inflight_shortterm;
        self.undo_inflight_longterm = self.inflight_longterm;
    }

    /// `HandleSpuriousLossDetection()`.
    pub(super) fn handle_spurious_loss_detection(&mut self) {
        self.restore_cwnd();
        self.is_loss_in_round = false;
        self.reset_full_bw();
        self.bw_shortterm = self.bw_shortterm.max(self.undo_bw_shortterm);
        self.inflight_shortterm = self.inflight_shortterm.max(self.undo_inflight_shortterm);
        self.inflight_longterm = self.inflight_longterm.max(self.undo_inflight_longterm);
        match self.undo_state {
            Some(BbrState::Startup) if self.state != BbrState::Startup => {
                self.full_bw_reached = false;
                if self.state != BbrState::ProbeRtt {
                    self.enter_startup();
                }
            }
            Some(BbrState::ProbeBwUp)
                if !matches!(self.state, BbrState::ProbeBwUp | BbrState::ProbeRtt) =>
            {
                self.start_probe_bw_refill();
            }
            _ => {}
        }
        self.undo_state = None;
    }

    /// `SaveCwnd()` (§5.6.4.4).
    pub(super) fn save_cwnd(&mut self) {
        if !self.in_loss_recovery() && self.state != BbrState::ProbeRtt {
            self.prior_cwnd = self.cwnd;
        } else {
            self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
        }
    }

    /// `RestoreCwnd()`.
    pub(super) fn restore_cwnd(&mut self) {
        self.cwnd = self.cwnd.max(self.prior_cwnd);
    }

    // §5.6.2 Pacing rate.

    /// `InitPacingRate()`: `srtt` is `None` before the first RTT sample
    /// (the draft then uses 1 ms).
    pub(super) fn init_pacing_rate(&mut self, srtt: Option<Duration>) {
        let srtt = srtt
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_millis(1));
        let nominal = rate(self.initial_cwnd, srtt);
        self.pacing_rate = mul(nominal, STARTUP_PACING_GAIN);
    }

    /// `SetPacingRateWithGain(gain)`.
    pub(super) fn set_pacing_rate_with_gain(&mut self, gain: f64) {
        let rate = mul(self.bw, gain) / 100 * (100 - PACING_MARGIN_PERCENT);
        if self.full_bw_reached || rate > self.pacing_rate {
            self.pacing_rate = rate;
        }
    }

    /// `SetPacingRate()`.
    pub(super) fn set_pacing_rate(&mut self) {
        self.set_pacing_rate_with_gain(self.pacing_gain);
    }

    /// `SetSendQuantum()` (§5.6.3).
    pub(super) fn set_send_quantum(&mut self) {
        self.send_quantum = (self.pacing_rate / 1000).clamp(2 * self.smss, 64 * 1024);
    }

    // §5.6.4 Congestion window.

    /// `BDPMultiple(gain)` (§5.6.4.2), on `BBR.bw`.
    pub(super) fn bdp_multiple(&self, gain: f64) -> u64 {
        self.bdp_multiple_at(self.bw, gain)
    }

    /// `BDPMultiple` on a given bandwidth estimate.
    fn bdp_multiple_at(&self, bw: u64, gain: f64) -> u64 {
        match self.min_rtt {
            None => self.initial_cwnd, // no valid RTT samples yet
            Some(rtt) => mul(bdp(bw, rtt), gain),
        }
    }

    /// `BBR.bdp` = `BBR.bw * BBR.min_rtt` (§2.9.2).
    pub(super) fn bdp(&self) -> u64 {
        self.bdp_multiple(1.0)
    }

    /// `QuantizationBudget(inflight_cap)`. QUIC's offload budget is the
    /// send quantum (§5.5.8.2).
    fn quantization_budget(&self, inflight_cap: u64) -> u64 {
        let mut cap = inflight_cap
            .max(self.send_quantum)
            .max(self.min_pipe_cwnd());
        if self.state == BbrState::ProbeBwUp {
            cap = cap.saturating_add(2 * self.smss);
        }
        cap
    }

    /// `Inflight(gain)`.
    pub(super) fn inflight_for(&self, gain: f64) -> u64 {
        self.quantization_budget(self.bdp_multiple(gain))
    }

    /// `Inflight(BBR.max_bw, gain)`: the two-argument form §5.3.3.9's
    /// `IsTimeToCruise()` uses (as Linux's `bbr_inflight(sk,
    /// bbr_max_bw(sk), BBR_UNIT)` does), on the long-term maximum rather
    /// than `BBR.bw`, which inflight_shortterm may have cut.
    pub(super) fn inflight_at_max_bw(&self, gain: f64) -> u64 {
        self.quantization_budget(self.bdp_multiple_at(self.max_bw, gain))
    }

    /// `UpdateMaxInflight()`.
    fn update_max_inflight(&mut self) {
        let cap = self
            .bdp_multiple(self.cwnd_gain)
            .saturating_add(self.extra_acked);
        self.max_inflight = self.quantization_budget(cap);
    }

    /// `TargetInflight()` (§5.3.3.8): our estimated BDP, unless congestion
    /// cut the window.
    pub(super) fn target_inflight(&self) -> u64 {
        self.bdp().min(self.cwnd)
    }

    /// `InflightWithHeadroom()` (§5.3.3.9).
    pub(super) fn inflight_with_headroom(&self) -> u64 {
        if self.inflight_longterm == INF {
            return INF;
        }
        let headroom = self.smss.max(mul(self.inflight_longterm, HEADROOM));
        self.inflight_longterm
            .saturating_sub(headroom)
            .max(self.min_pipe_cwnd())
    }

    /// `ProbeRTTCwnd()` (§5.6.4.5).
    pub(super) fn probe_rtt_cwnd(&self) -> u64 {
        self.bdp_multiple(PROBE_RTT_CWND_GAIN)
            .max(self.min_pipe_cwnd())
    }

    /// `SetCwnd()` (§5.6.4.6).
    pub(super) fn set_cwnd(&mut self, rs: &RateSample) {
        self.update_max_inflight();
        if self.full_bw_reached {
            self.cwnd = self
                .cwnd
                .saturating_add(rs.newly_acked)
                .min(self.max_inflight);
        } else if self.cwnd < self.max_inflight || self.delivered < self.initial_cwnd {
            self.cwnd = self.cwnd.saturating_add(rs.newly_acked);
        }
        self.cwnd = self.cwnd.max(self.min_pipe_cwnd());
        // BoundCwndForProbeRTT()
        if self.state == BbrState::ProbeRtt {
            self.cwnd = self.cwnd.min(self.probe_rtt_cwnd());
        }
        self.bound_cwnd_for_model();
    }

    /// `BoundCwndForModel()` (§5.6.4.7).
    fn bound_cwnd_for_model(&mut self) {
        let mut cap = INF;
        if self.is_in_a_probe_bw_state() && self.state != BbrState::ProbeBwCruise {
            cap = self.inflight_longterm;
        } else if matches!(self.state, BbrState::ProbeRtt | BbrState::ProbeBwCruise) {
            cap = self.inflight_with_headroom();
        }
        // Apply BBR.inflight_shortterm (possibly infinite).
        cap = cap.min(self.inflight_shortterm).max(self.min_pipe_cwnd());
        self.cwnd = self.cwnd.min(cap);
    }
}
