//! CUBIC congestion control (RFC 9438), with HyStart++ (RFC 9406) for the
//! first slow start.
//!
//! Windows are kept in bytes (RFC 9438 §4.1: implementations "can use
//! bytes to express window sizes, which would require factoring in the
//! SMSS wherever necessary"); the cubic function itself is evaluated in
//! segments of the maximum datagram size and seconds, as the RFC writes
//! it, and converted.
//!
//! Recovery periods follow RFC 9002 §7.3.2, as [`super::NewReno`] does: one
//! reduction per period, no growth from acknowledgments of packets sent
//! before it began.

use std::time::{Duration, Instant};

use super::hystart::{HyStart, Phase};
use super::{Controller, ControllerFactory, initial_window, minimum_window};
use crate::recovery::RttEstimator;

/// β_cubic, the multiplicative decrease factor (RFC 9438 §4.6: "The
/// parameter β_cubic SHOULD be set to 0.7").
pub const BETA_CUBIC: f64 = 0.7;

/// C, in segments per second cubed (RFC 9438 §5.1: "C SHOULD be set to
/// 0.4").
pub const C: f64 = 0.4;

/// α_cubic of the Reno-friendly region (RFC 9438 §4.3: "α_cubic = 3 *
/// (1 - β_cubic) / (1 + β_cubic)").
pub const ALPHA_CUBIC: f64 = 3.0 * (1.0 - BETA_CUBIC) / (1.0 + BETA_CUBIC);

/// Settings for [`Cubic`]; also its [`ControllerFactory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CubicConfig {
    /// The initial congestion window in bytes; `None` (the default) uses the
    /// RECOMMENDED `min(10 * mds, max(14720, 2 * mds))` of RFC 9002 §7.2.
    pub initial_window: Option<u64>,
    /// Use HyStart++ (RFC 9406) in the first slow start (RFC 9438 §4.10:
    /// "CUBIC SHOULD use the HyStart++ slow start algorithm"). On by
    /// default; off, slow start runs until the first loss.
    pub hystart: bool,
    /// Fast convergence (RFC 9438 §4.7: it "SHOULD be implemented"; "In
    /// network environments with only a single CUBIC flow and without any
    /// other traffic, fast convergence SHOULD be disabled"). On by default,
    /// as a sender rarely knows it is alone on its path.
    pub fast_convergence: bool,
}

impl Default for CubicConfig {
    fn default() -> Self {
        Self {
            initial_window: None,
            hystart: true,
            fast_convergence: true,
        }
    }
}

impl ControllerFactory for CubicConfig {
    fn build(&self, _now: Instant, max_datagram_size: u16) -> Box<dyn Controller> {
        Box::new(Cubic::new(*self, max_datagram_size))
    }
}

/// The CUBIC controller of RFC 9438: slow start (HyStart++ the first time),
/// then a window that follows `W_cubic(t) = C * (t - K)^3 + W_max` after
/// each congestion event, but never grows slower than Reno would (the
/// Reno-friendly region, §4.3).
///
/// The window does not grow for acknowledgments reported as
/// application-limited, and the time those last is left out of `t`
/// (RFC 9438 §4.2, §5.8). That is also what lets the multiplicative
/// decrease start from `cwnd` rather than the flight size (§4.6: "A QUIC
/// sender that uses a cwnd value to calculate new values for cwnd and
/// ssthresh after detecting a congestion event is REQUIRED to apply
/// similar mechanisms").
///
/// Not implemented: the undo of spurious congestion events (§4.9, a MAY),
/// which needs the loss detection to report them.
#[derive(Debug, Clone)]
pub struct Cubic {
    config: CubicConfig,
    max_datagram_size: u16,
    window: u64,
    /// Fractional bytes of growth not yet added to `window`.
    carry: f64,
    /// Slow start threshold; `u64::MAX` while infinite (RFC 9002 §7.3.1).
    ssthresh: u64,
    /// `congestion_recovery_start_time` of RFC 9002 Appendix B.2.
    recovery_start_time: Option<Instant>,
    /// HyStart++ while in the first slow start.
    hystart: Option<HyStart>,
    /// W_max in bytes.
    w_max: f64,
    /// cwnd_prior in bytes.
    cwnd_prior: u64,
    /// K in seconds, of the current congestion avoidance stage.
    k: f64,
    /// t_epoch; `None` until the current congestion avoidance stage takes
    /// its first acknowledgment.
    epoch: Option<Instant>,
    /// W_est in bytes.
    w_est: f64,
    /// The stage begins with `W_max = cwnd_epoch` and `K = 0` (RFC 9438
    /// §4.8 after a timeout, §4.10 after HyStart++ left slow start).
    w_max_from_epoch: bool,
    /// Since when acknowledgments have been application-limited.
    app_limited_since: Option<Instant>,
    /// When the last in-flight packet was sent.
    last_sent: Option<Instant>,
    /// RFC 9438 §4.9.2: the state saved before the last reduction, to
    /// restore if its losses prove spurious.
    undo: Option<Undo>,
}

/// RFC 9438 §4.9.2's `undo_*` variables.
#[derive(Debug, Clone, Copy)]
struct Undo {
    cwnd: u64,
    cwnd_prior: u64,
    ssthresh: u64,
    w_max: f64,
    k: f64,
    epoch: Option<Instant>,
    w_est: f64,
}

impl Cubic {
    /// A controller in slow start with the initial window for
    /// `max_datagram_size`.
    pub fn new(config: CubicConfig, max_datagram_size: u16) -> Self {
        let mut cubic = Self {
            config,
            max_datagram_size,
            window: 0,
            carry: 0.0,
            // RFC 9002 §7.3.1: "the slow start threshold is initialized to an
            // infinite value".
            ssthresh: u64::MAX,
            recovery_start_time: None,
            hystart: config.hystart.then(HyStart::new),
            w_max: 0.0,
            cwnd_prior: 0,
            k: 0.0,
            epoch: None,
            w_est: 0.0,
            w_max_from_epoch: false,
            app_limited_since: None,
            last_sent: None,
            undo: None,
        };
        cubic.window = cubic.initial_window();
        cubic
    }

    /// The slow start threshold in bytes (`u64::MAX` while infinite).
    pub fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    /// W_max in bytes: the window at the last congestion event (reduced by
    /// fast convergence).
    pub fn w_max(&self) -> u64 {
        self.w_max as u64
    }

    /// K: how long the current congestion avoidance stage takes to grow
    /// back to W_max (RFC 9438 §4.2, Figure 2).
    pub fn k(&self) -> Duration {
        Duration::from_secs_f64(self.k)
    }

    /// The phase of HyStart++, while it runs (the first slow start only).
    pub fn hystart_phase(&self) -> Option<Phase> {
        self.hystart.as_ref().map(HyStart::phase)
    }

    /// The smallest window a congestion event can leave (RFC 9002 §7.2).
    pub fn minimum_window(&self) -> u64 {
        minimum_window(self.max_datagram_size)
    }

    /// Whether a packet sent at `sent_time` was sent during the current
    /// recovery period (RFC 9002 Appendix B.5 `InCongestionRecovery`).
    pub fn in_recovery(&self, sent_time: Instant) -> bool {
        self.recovery_start_time
            .is_some_and(|start| sent_time <= start)
    }

    /// Whether the controller is in slow start (RFC 9438 §4.10, RFC 9002
    /// §7.3.1).
    pub fn in_slow_start(&self) -> bool {
        self.window < self.ssthresh
    }

    /// W_cubic(t) in bytes (RFC 9438 §4.2, Figure 1).
    fn w_cubic(&self, t: f64) -> f64 {
        let mds = f64::from(self.max_datagram_size);
        C * (t - self.k).powi(3) * mds + self.w_max
    }

    /// Begins a congestion avoidance stage at `now` (RFC 9438 §4.2, §4.3).
    fn start_epoch(&mut self, now: Instant) -> Instant {
        let cwnd = self.window as f64;
        if self.w_max_from_epoch {
            self.w_max = cwnd;
            self.w_max_from_epoch = false;
        }
        // RFC 9438 §4.2, Figure 2: K = cubic_root((W_max - cwnd_epoch) / C).
        let mds = f64::from(self.max_datagram_size);
        self.k = if self.w_max > cwnd {
            ((self.w_max - cwnd) / mds / C).cbrt()
        } else {
            0.0
        };
        // RFC 9438 §4.3: "W_est is set equal to cwnd_epoch at the start of
        // the congestion avoidance stage."
        self.w_est = cwnd;
        self.epoch = Some(now);
        now
    }

    /// One acknowledgment in congestion avoidance (RFC 9438 §4.2-§4.5).
    fn congestion_avoidance(&mut self, now: Instant, bytes: u64, rtt: &RttEstimator) {
        let epoch = match self.epoch {
            Some(e) => e,
            None => self.start_epoch(now),
        };
        let mds = f64::from(self.max_datagram_size);
        let cwnd = self.window as f64;
        let acked = bytes as f64;
        let t = now.saturating_duration_since(epoch).as_secs_f64();
        // RFC 9438 §4.2: target = W_cubic(t + RTT), RTT the smoothed RTT,
        // bounded to [cwnd, 1.5 * cwnd].
        let target = self
            .w_cubic(t + rtt.smoothed_rtt().as_secs_f64())
            .clamp(cwnd, 1.5 * cwnd);
        // RFC 9438 §4.3, Figure 4, in bytes: W_est += α_cubic * acked *
        // SMSS / cwnd; α_cubic is 1 "once W_est has grown to reach the cwnd
        // at the time of most recently setting ssthresh".
        let alpha = if self.w_est >= self.cwnd_prior as f64 {
            1.0
        } else {
            ALPHA_CUBIC
        };
        self.w_est += alpha * acked * mds / cwnd;
        let next = if self.w_cubic(t) < self.w_est {
            // RFC 9438 §4.3: in the Reno-friendly region "cwnd SHOULD be set
            // to W_est" (never below the current window here).
            self.w_est.max(cwnd)
        } else {
            // RFC 9438 §4.4, §4.5: "cwnd MUST be incremented by (target -
            // cwnd) / cwnd for each received new ACK", scaled by the
            // segments it acknowledges.
            cwnd + (target - cwnd) * acked / cwnd
        };
        self.grow(next - cwnd);
    }

    fn grow(&mut self, bytes: f64) {
        let total = bytes.max(0.0) + self.carry;
        let whole = total.floor();
        self.carry = total - whole;
        self.window = self.window.saturating_add(whole as u64);
    }
}

impl Controller for Cubic {
    fn on_packet_sent(&mut self, now: Instant, bytes: u64, bytes_in_flight: u64) {
        // RFC 9438 §5.8: t must not include idle periods. A packet that
        // finds nothing else in flight ends one; the stage's clock skips it.
        if bytes_in_flight == bytes {
            if let (Some(epoch), Some(last)) = (self.epoch, self.last_sent) {
                self.epoch = Some(epoch + now.saturating_duration_since(last));
            }
        }
        self.last_sent = Some(now);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent_time: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        // RFC 9002 §7.3.2: "during a recovery period, the congestion window
        // does not change".
        if self.in_recovery(sent_time) {
            return;
        }
        if app_limited {
            // RFC 9438 §5.8: "CUBIC does not increase its congestion window
            // if a flow is application limited", and §4.2: t "MUST NOT
            // include periods during which cwnd has not been updated due to
            // application-limited behavior". HyStart++ still takes the RTT
            // sample.
            if self.in_slow_start() {
                if let Some(hs) = &mut self.hystart {
                    hs.on_ack(now, sent_time, bytes, true);
                }
            }
            self.app_limited_since.get_or_insert(now);
            return;
        }
        if let Some(since) = self.app_limited_since.take() {
            if let Some(epoch) = self.epoch {
                self.epoch = Some(epoch + now.saturating_duration_since(since));
            }
        }
        if self.in_slow_start() {
            match &mut self.hystart {
                Some(hs) => {
                    let growth = hs.on_ack(now, sent_time, bytes, false);
                    self.window = self.window.saturating_add(growth.increase);
                    if growth.exit_slow_start {
                        // RFC 9406 §4.2: "enter congestion avoidance by
                        // setting the ssthresh to the current cwnd"; RFC
                        // 9438 §4.10: "CUBIC sets cwnd_prior = cwnd", and the
                        // stage starts with K = 0 and W_max = cwnd_epoch.
                        self.ssthresh = self.window;
                        self.cwnd_prior = self.window;
                        self.w_max_from_epoch = true;
                        self.epoch = None;
                        self.hystart = None;
                    }
                }
                // RFC 9002 §7.3.1: "the congestion window increases by the
                // number of bytes acknowledged".
                None => self.window = self.window.saturating_add(bytes),
            }
            return;
        }
        self.congestion_avoidance(now, bytes, rtt);
    }

    fn on_spurious_congestion_event(&mut self) {
        // RFC 9438 §4.9.2: "Once the previously declared packet loss is
        // confirmed to be spurious, CUBIC MAY restore the original values of
        // the above-mentioned variables ... if the current cwnd is lower
        // than cwnd_prior".
        let Some(u) = self.undo.take() else {
            return;
        };
        if self.window < self.cwnd_prior {
            self.window = u.cwnd;
            self.cwnd_prior = u.cwnd_prior;
            self.ssthresh = u.ssthresh;
            self.w_max = u.w_max;
            self.k = u.k;
            self.epoch = u.epoch;
            self.w_est = u.w_est;
            self.carry = 0.0;
            self.recovery_start_time = None;
        }
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent_time: Instant,
        is_persistent_congestion: bool,
        _lost_bytes: u64,
    ) {
        // RFC 9002 §7.3.2: one reduction per recovery period.
        if !self.in_recovery(sent_time) {
            // RFC 9438 §4.9.2: "a CUBIC implementation MAY save the current
            // value of the following variables before the congestion
            // window is reduced".
            self.undo = Some(Undo {
                cwnd: self.window,
                cwnd_prior: self.cwnd_prior,
                ssthresh: self.ssthresh,
                w_max: self.w_max,
                k: self.k,
                epoch: self.epoch,
                w_est: self.w_est,
            });
            self.recovery_start_time = Some(now);
            // RFC 9406 §4.2: "If loss or ECN marking is observed at any time
            // during standard slow start or CSS, enter congestion
            // avoidance"; §4.3: HyStart++ is for the initial slow start
            // only.
            self.hystart = None;
            let cwnd = self.window as f64;
            // RFC 9438 §4.7: with fast convergence, "W_max = cwnd * (1 +
            // β_cubic) / 2 if cwnd < W_max", otherwise "W_max = cwnd".
            self.w_max = if self.config.fast_convergence && cwnd < self.w_max {
                cwnd * (1.0 + BETA_CUBIC) / 2.0
            } else {
                cwnd
            };
            // RFC 9438 §4.6, Figure 5 (cwnd for flight_size, see the type's
            // documentation): "cwnd_prior = cwnd", "ssthresh = cwnd *
            // β_cubic", "cwnd = max(ssthresh, 2)", here the minimum window
            // of RFC 9002 §7.2.
            self.cwnd_prior = self.window;
            self.ssthresh = ((cwnd * BETA_CUBIC).round() as u64).max(self.minimum_window());
            self.window = self.ssthresh;
            self.carry = 0.0;
            self.epoch = None;
            self.w_max_from_epoch = false;
            self.app_limited_since = None;
        }
        if is_persistent_congestion {
            // RFC 9002 §7.6.2: the window "MUST be reduced to the minimum
            // congestion window"; recovery ends and slow start resumes up
            // to ssthresh. RFC 9438 §4.8: the following stage starts with
            // K = 0 and W_max = cwnd_epoch, W_est = cwnd_epoch.
            self.window = self.minimum_window();
            self.recovery_start_time = None;
            self.epoch = None;
            self.w_max_from_epoch = true;
        }
    }

    /// As [`super::NewReno`]: RFC 9002 §7.2 "the initial congestion window
    /// SHOULD be recalculated with the new size" while untouched; any
    /// window stays at least the new minimum.
    fn set_max_datagram_size(&mut self, max_datagram_size: u16) {
        let untouched = self.window == self.initial_window()
            && self.ssthresh == u64::MAX
            && self.recovery_start_time.is_none();
        self.max_datagram_size = max_datagram_size;
        if untouched {
            self.window = self.initial_window();
        }
        self.window = self.window.max(self.minimum_window());
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn initial_window(&self) -> u64 {
        self.config
            .initial_window
            .unwrap_or_else(|| initial_window(self.max_datagram_size))
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }

    fn is_slow_start(&self) -> Option<bool> {
        Some(self.window < self.ssthresh)
    }
}

#[cfg(test)]
#[path = "cubic_tests.rs"]
mod tests;
