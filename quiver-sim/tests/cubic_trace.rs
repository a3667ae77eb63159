//! Diagnostic for the ignored `two_cubic_flows_share_fairly` of
//! `fairness.rs` (issue 10): runs the same two-CUBIC-flow bottleneck and
//! prints, per flow, every congestion event (cwnd before and after, W_max,
//! K) and the window twice a second, so that who takes the drops and how
//! the windows evolve can be read off. Not an assertion: ignored, run by
//! hand:
//!
//! ```text
//! V=1 QUIVER_SIM_SEED=0x9 cargo test --release -p quiver-sim \
//!     --test cubic_trace -- --ignored --nocapture
//! ```
//!
//! Knobs (environment): `V` prints the trace (otherwise only the shares),
//! `FC=0` turns fast convergence off, `JIT` (µs) and `LOSS` (probability)
//! add per-datagram jitter and random loss to the link, `CROSS` (bytes/s)
//! Poisson cross traffic through the bottleneck, `WARM` and `SPAN`
//! (seconds) replace the 10 s warm-up and the 30 s measured span;
//! `CTRL=bbr` runs two BBR flows instead (shares only, no trace),
//! `CTRL=reno` two NewReno flows (traced, without W_max and K).
//! `GAIN` paces at that multiple of cwnd/srtt instead of RFC 9002 §7.7's
//! N = 1.25 (through `Controller::pacing_rate`); `AF=0` turns the
//! sender's ACK_FREQUENCY requests off (the receiver ACKs every second
//! packet, RFC 9000 §13.2.2).
//!
//! Whatever the knobs, the last lines give per flow, over the measured
//! span: packets sent, congestion events (new recovery periods; of them,
//! those where this flow had grown its window more, or less, than the
//! other in the round trip before the drop, and those where its window
//! was the larger of the two when the dropped packet was sent, with the
//! number expected if drops fell in proportion to the windows), packets
//! declared lost, the per-packet loss rate and the mean cwnd; and the
//! larger flow's loss rate relative to the smaller one's. Mind that this
//! last ratio, averaged over the span, is biased below 1 by selection
//! (the flow that took fewer drops is the larger one): the per-event
//! count is the one that tells whether drops are proportional.
//!
//! To sweep seeds and add the counts up, e.g.:
//!
//! ```text
//! QUIVER_SIM_SEEDS=48 cargo test -q --release -p quiver-sim \
//!     --test cubic_trace -- --ignored --nocapture 2>&1 | grep 'as the larger'
//! ```

mod common_bottleneck;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quiver_proto::congestion::{
    BbrConfig, CUBIC_C, Controller, ControllerFactory, Cubic, CubicConfig, NewReno, NewRenoConfig,
};
use quiver_proto::recovery::RttEstimator;
use quiver_sim::{Seed, for_each_seed};

use common_bottleneck::{BDP, bottleneck, two_flows_configured};
use quiver_proto::TransportConfig;

/// Prints only when `V` is set.
macro_rules! trace {
    ($($a:tt)*) => {
        if std::env::var_os("V").is_some() {
            eprintln!($($a)*)
        }
    };
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A [`Cubic`] that reports what it does.
#[derive(Debug, Clone)]
struct Traced {
    /// 1 for the first flow, 2 for the second.
    flow: usize,
    inner: Cubic,
    /// `CTRL=reno`: NewReno in place of `inner` (no W_max or K traced).
    reno: Option<NewReno>,
    max_datagram_size: u16,
    /// The simulation's start, for printing times in seconds.
    t0: Instant,
    last_print: f64,
    /// Pacing gain override (`GAIN`), if any.
    gain: Option<f64>,
    srtt: Duration,
    /// Seconds after `t0` from which [`Counts`] are kept.
    measure_from: f64,
    counts: Arc<Mutex<Counts>>,
    /// The other flow's.
    other: Arc<Mutex<Counts>>,
}

/// One flow's counters over the measured span.
#[derive(Debug, Default)]
struct Counts {
    sent: u64,
    events: u64,
    lost_bytes: u64,
    cwnd_sum: f64,
    cwnd_samples: u64,
    /// (seconds, cwnd) at each ACK over the last second.
    history: VecDeque<(f64, u64)>,
    /// Congestion events whose lost packet's flow had grown its window
    /// more than the other flow had over the round trip before the drop.
    grower_hit: u64,
    /// ... and those where it had grown less (ties in neither).
    other_hit: u64,
    /// Congestion events where this flow's window (before the
    /// reduction) was the larger of the two at that moment.
    as_larger: u64,
    /// The sum, over this flow's congestion events, of the larger
    /// window's share of both windows at that moment: what `as_larger`
    /// plus the other flow's would add up to if drops fell on the flows
    /// in proportion to their sending rates.
    larger_share: f64,
}

impl Counts {
    /// The window at `t` seconds (the last sample at or before it).
    fn cwnd_at(&self, t: f64) -> Option<u64> {
        self.history
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map(|(_, c)| *c)
    }

    /// How much the window grew from `t - span` to `t`.
    fn growth(&self, t: f64, span: f64) -> Option<i64> {
        Some(self.cwnd_at(t)? as i64 - self.cwnd_at(t - span)? as i64)
    }
}

impl Traced {
    fn ctl(&mut self) -> &mut dyn Controller {
        match &mut self.reno {
            Some(reno) => reno,
            None => &mut self.inner,
        }
    }

    fn ctl_ref(&self) -> &dyn Controller {
        match &self.reno {
            Some(reno) => reno,
            None => &self.inner,
        }
    }

    fn secs(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.t0).as_secs_f64()
    }
}

/// Builds [`Traced`] controllers, numbering the flows.
#[derive(Debug)]
struct TracedFactory {
    config: CubicConfig,
    /// The first build time and the flows built so far.
    built: Mutex<(Option<Instant>, usize)>,
    /// Build NewReno controllers instead.
    reno: bool,
    gain: Option<f64>,
    measure_from: f64,
    counts: [Arc<Mutex<Counts>>; 2],
}

impl ControllerFactory for TracedFactory {
    fn build(&self, now: Instant, max_datagram_size: u16) -> Box<dyn Controller> {
        let mut built = self.built.lock().expect("not poisoned");
        let t0 = *built.0.get_or_insert(now);
        built.1 += 1;
        Box::new(Traced {
            flow: built.1,
            inner: Cubic::new(self.config, max_datagram_size),
            reno: self
                .reno
                .then(|| NewReno::new(NewRenoConfig::default(), max_datagram_size)),
            max_datagram_size,
            t0,
            last_print: 0.0,
            gain: self.gain,
            srtt: Duration::ZERO,
            measure_from: self.measure_from,
            counts: self.counts[(built.1 - 1).min(1)].clone(),
            other: self.counts[(2 - built.1).min(1)].clone(),
        })
    }
}

impl Controller for Traced {
    fn on_packet_sent(&mut self, now: Instant, bytes: u64, bytes_in_flight: u64) {
        if self.secs(now) >= self.measure_from {
            let mut c = self.counts.lock().expect("not poisoned");
            c.sent += 1;
            c.cwnd_sum += self.ctl_ref().window() as f64;
            c.cwnd_samples += 1;
        }
        self.ctl().on_packet_sent(now, bytes, bytes_in_flight)
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent_time: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.ctl().on_ack(now, sent_time, bytes, app_limited, rtt);
        self.srtt = rtt.smoothed_rtt();
        {
            let t = self.secs(now);
            let mut c = self.counts.lock().expect("not poisoned");
            c.history.push_back((t, self.ctl_ref().window()));
            while c.history.front().is_some_and(|(at, _)| *at < t - 1.0) {
                c.history.pop_front();
            }
        }
        let t = self.secs(now);
        if app_limited {
            trace!("{t:8.3} f{} app-limited ack", self.flow);
        }
        if t - self.last_print >= 0.5 {
            self.last_print = t;
            trace!(
                "{t:8.3} f{} cwnd {} srtt {:?}",
                self.flow,
                self.ctl_ref().window(),
                rtt.smoothed_rtt()
            );
        }
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent_time: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        let (before, w_max_before) = (self.ctl_ref().window(), self.inner.w_max());
        self.ctl()
            .on_congestion_event(now, sent_time, is_persistent_congestion, lost_bytes);
        // A loss in a recovery period already started does not reduce
        // the window (RFC 9002 §7.3.2, RFC 9438 §4.6).
        let in_recovery = self.ctl_ref().window() >= before;
        let t = self.secs(now);
        if t >= self.measure_from {
            let mut c = self.counts.lock().expect("not poisoned");
            c.lost_bytes += lost_bytes;
            c.events += u64::from(!in_recovery);
            if !in_recovery {
                // The queue is at the sender's side of the link: the
                // packet was dropped when it was sent. Who had grown its
                // window more over the round trip before that?
                let at = self.secs(sent_time);
                let span = self.srtt.as_secs_f64();
                let own = c.growth(at, span);
                let others = self.other.lock().expect("not poisoned");
                let other = others.growth(at, span);
                // Sizes when the packet was dropped (both set by earlier
                // events only), not a round trip later at its detection,
                // when the loser has grown a little more.
                if let (Some(mine), Some(theirs)) = (c.cwnd_at(at), others.cwnd_at(at)) {
                    let (big, small) = (mine.max(theirs), mine.min(theirs));
                    c.as_larger += u64::from(mine > theirs);
                    c.larger_share += big as f64 / (big + small).max(1) as f64;
                }
                drop(others);
                if let (Some(own), Some(other)) = (own, other) {
                    trace!(
                        "{t:8.3} f{} growth before the drop {own} B, other flow {other} B",
                        self.flow
                    );
                    c.grower_hit += u64::from(own > other);
                    c.other_hit += u64::from(own < other);
                }
            }
        }
        if in_recovery {
            trace!("{t:8.3} f{} loss in recovery: {lost_bytes} B", self.flow);
        } else if self.reno.is_some() {
            trace!(
                "{t:8.3} f{} LOSS cwnd {before} -> {}, lost {lost_bytes} B, persistent {is_persistent_congestion}",
                self.flow,
                self.ctl_ref().window()
            );
        } else {
            // K is computed when the stage takes its first ACK: from W_max
            // and the new cwnd here (RFC 9438 §4.2, Figure 2).
            let k = ((self.inner.w_max() as f64 - self.inner.window() as f64).max(0.0)
                / f64::from(self.max_datagram_size)
                / CUBIC_C)
                .cbrt();
            trace!(
                "{t:8.3} f{} LOSS cwnd {before} -> {} W_max {w_max_before} -> {} K ~{k:.2} s, lost {lost_bytes} B, persistent {is_persistent_congestion}",
                self.flow,
                self.inner.window(),
                self.inner.w_max()
            );
        }
    }

    fn on_spurious_congestion_event(&mut self) {
        trace!("f{} undo", self.flow);
        self.ctl().on_spurious_congestion_event()
    }

    fn set_max_datagram_size(&mut self, max_datagram_size: u16) {
        self.max_datagram_size = max_datagram_size;
        self.ctl().set_max_datagram_size(max_datagram_size)
    }

    fn window(&self) -> u64 {
        self.ctl_ref().window()
    }

    fn initial_window(&self) -> u64 {
        self.ctl_ref().initial_window()
    }

    fn pacing_rate(&self) -> Option<u64> {
        let gain = self.gain?;
        (!self.srtt.is_zero())
            .then(|| (gain * self.ctl_ref().window() as f64 / self.srtt.as_secs_f64()) as u64)
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }
}

#[test]
#[ignore = "diagnostic trace, run by hand"]
fn trace_two_cubic_flows() {
    for_each_seed(1, |seed: Seed| {
        let head_start = Duration::from_millis(1000 + seed.derive("head-start") % 2000);
        let warm = Duration::from_secs(env_or("WARM", 10));
        let counts: [Arc<Mutex<Counts>>; 2] = Default::default();
        let concrete = Arc::new(TracedFactory {
            config: CubicConfig {
                fast_convergence: env_or("FC", 1) != 0,
                ..CubicConfig::default()
            },
            built: Mutex::new((None, 0)),
            reno: std::env::var("CTRL").is_ok_and(|cc| cc == "reno"),
            gain: std::env::var("GAIN").ok().and_then(|g| g.parse().ok()),
            // The handshakes take a few round trips more: close enough.
            measure_from: (head_start + warm).as_secs_f64(),
            counts: counts.clone(),
        });
        let factory: Arc<dyn ControllerFactory> = concrete;
        // `CTRL=bbr`: two BBR flows instead, shares only.
        let (first, second) = if std::env::var("CTRL").is_ok_and(|cc| cc == "bbr") {
            let a: Arc<dyn ControllerFactory> = Arc::new(BbrConfig::new(seed.derive("bbr-1")));
            let b: Arc<dyn ControllerFactory> = Arc::new(BbrConfig::new(seed.derive("bbr-2")));
            (a, b)
        } else {
            (factory.clone(), factory)
        };
        let mut link = bottleneck(BDP as usize);
        link.jitter = Duration::from_micros(env_or("JIT", 0));
        link.loss_rate = env_or("LOSS", 0.0);
        let server = TransportConfig {
            ack_frequency: env_or("AF", 1) != 0,
            ..TransportConfig::default()
        };
        let shares = two_flows_configured(
            seed,
            link,
            env_or("CROSS", 0),
            server,
            first,
            second,
            head_start,
            warm,
            Duration::from_secs(env_or("SPAN", 30)),
        );
        eprintln!("{seed}: {shares}");
        let mut rates = [0.0; 2];
        let mut cwnds = [0.0; 2];
        for (i, c) in counts.iter().enumerate() {
            let c = c.lock().expect("not poisoned");
            let lost = c.lost_bytes as f64 / 1437.0;
            rates[i] = lost / c.sent.max(1) as f64;
            cwnds[i] = c.cwnd_sum / c.cwnd_samples.max(1) as f64;
            eprintln!(
                "{seed}: f{} sent {} events {} (grew more {}, less {}; as the larger {}, expected {:.1}) lost ~{lost:.0} loss/pkt {:.5} mean cwnd {:.0}",
                i + 1,
                c.sent,
                c.events,
                c.grower_hit,
                c.other_hit,
                c.as_larger,
                c.larger_share,
                rates[i],
                cwnds[i]
            );
        }
        let (big, small) = if cwnds[0] >= cwnds[1] { (0, 1) } else { (1, 0) };
        eprintln!(
            "{seed}: larger flow's loss/pkt over smaller's {:.2}",
            rates[big] / rates[small].max(f64::MIN_POSITIVE)
        );
    });
}
