//! HyStart++ (RFC 9406): slow start that leaves early, through a
//! Conservative Slow Start (CSS) phase, when the round trip time grows.
//!
//! [`HyStart`] is not a [`super::Controller`] of its own: a controller
//! (here [`super::Cubic`]) consults it for every acknowledgment it takes in
//! its first slow start and applies the growth it returns.
//!
//! # Rounds and RTT samples
//! RFC 9406 §4.2 measures rounds with sequence numbers ("When windowEnd is
//! ACKed, the current round ends and windowEnd is set to SND.NXT"). A
//! controller sees send times rather than packet numbers, so a round here
//! starts at an instant `round_start`, and it ends when a packet sent at or
//! after that instant is acknowledged: that packet was at or past SND.NXT
//! when the round began.
//!
//! The controller is told about each newly acknowledged packet, not each
//! ACK frame. Acknowledgments processed at one instant belong to one ACK
//! (frames of one datagram at most), so each new instant counts as one RTT
//! sample (`rttSampleCount += 1`), and its RTT is the smallest
//! `now - sent_time` of its packets, which is the one of its largest
//! acknowledged packet: the `latest_rtt` of RFC 9002 §5.2.

use std::time::{Duration, Instant};

/// MIN_RTT_THRESH (RFC 9406 §4.3: "MIN_RTT_THRESH = 4 msec").
pub const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
/// MAX_RTT_THRESH (RFC 9406 §4.3: "MAX_RTT_THRESH = 16 msec").
pub const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
/// MIN_RTT_DIVISOR (RFC 9406 §4.3: "MIN_RTT_DIVISOR = 8").
pub const MIN_RTT_DIVISOR: u32 = 8;
/// N_RTT_SAMPLE (RFC 9406 §4.3: "N_RTT_SAMPLE = 8").
pub const N_RTT_SAMPLE: u32 = 8;
/// CSS_GROWTH_DIVISOR (RFC 9406 §4.3: "CSS_GROWTH_DIVISOR = 4"; it "MUST
/// be at least 2").
pub const CSS_GROWTH_DIVISOR: u64 = 4;
/// CSS_ROUNDS (RFC 9406 §4.3: "CSS_ROUNDS = 5").
pub const CSS_ROUNDS: u32 = 5;

/// The phase of HyStart++.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Standard slow start, watching for a delay increase.
    SlowStart,
    /// Conservative Slow Start: growth divided by [`CSS_GROWTH_DIVISOR`].
    Css {
        /// `cssBaselineMinRtt`: the round minimum that triggered CSS.
        baseline: Duration,
        /// Rounds ended since CSS began (the partial round it began in
        /// counts, RFC 9406 §4.2).
        rounds: u32,
    },
    /// Slow start is over (CSS ran [`CSS_ROUNDS`] rounds): the controller
    /// must enter congestion avoidance with `ssthresh = cwnd`.
    Done,
}

/// What one acknowledgment does to the window in slow start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Growth {
    /// Bytes to add to the congestion window.
    pub increase: u64,
    /// Slow start ends: set `ssthresh = cwnd` (RFC 9406 §4.2: "If
    /// CSS_ROUNDS rounds are complete, enter congestion avoidance by
    /// setting the ssthresh to the current cwnd").
    pub exit_slow_start: bool,
}

/// HyStart++ state for one slow start (RFC 9406 §4.2).
///
/// The sender is paced, so `L` is infinite (RFC 9406 §4.3: "A paced TCP
/// implementation SHOULD use L = infinity").
#[derive(Debug, Clone)]
pub struct HyStart {
    phase: Phase,
    /// Packets sent at or after this instant end the round when acked;
    /// `None` before the first acknowledgment.
    round_start: Option<Instant>,
    /// `lastRoundMinRTT`; `None` for infinity.
    last_round_min: Option<Duration>,
    /// `currentRoundMinRTT`; `None` for infinity.
    current_round_min: Option<Duration>,
    /// `rttSampleCount` of the current round.
    samples: u32,
    /// When the last RTT sample was taken (one per ACK).
    last_sample: Option<Instant>,
}

impl Default for HyStart {
    fn default() -> Self {
        Self::new()
    }
}

impl HyStart {
    /// HyStart++ at the start of a connection: in slow start, both round
    /// minima infinite (RFC 9406 §4.2: "lastRoundMinRTT and
    /// currentRoundMinRTT are initialized to infinity").
    pub fn new() -> Self {
        Self {
            phase: Phase::SlowStart,
            round_start: None,
            last_round_min: None,
            current_round_min: None,
            samples: 0,
            last_sample: None,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the sender is in Conservative Slow Start.
    pub fn in_css(&self) -> bool {
        matches!(self.phase, Phase::Css { .. })
    }

    /// An in-flight packet of `bytes` bytes sent at `sent_time` was newly
    /// acknowledged at `now` while the controller was in slow start.
    /// Returns by how much the window grows (`app_limited`: not at all,
    /// RFC 9002 §7.8, though the RTT sample still counts) and whether slow
    /// start is over.
    pub fn on_ack(
        &mut self,
        now: Instant,
        sent_time: Instant,
        bytes: u64,
        app_limited: bool,
    ) -> Growth {
        if self.phase == Phase::Done {
            return Growth {
                increase: if app_limited { 0 } else { bytes },
                exit_slow_start: false,
            };
        }
        // RFC 9406 §4.2: "When windowEnd is ACKed, the current round ends".
        match self.round_start {
            None => self.start_round(now),
            Some(start) if sent_time >= start => {
                if let Phase::Css { rounds, .. } = &mut self.phase {
                    *rounds += 1;
                    // RFC 9406 §4.2: "CSS lasts at most CSS_ROUNDS rounds.
                    // If the transition into CSS happens in the middle of a
                    // round, that partial round counts towards the limit."
                    if *rounds >= CSS_ROUNDS {
                        self.phase = Phase::Done;
                        return Growth {
                            increase: 0,
                            exit_slow_start: true,
                        };
                    }
                }
                self.start_round(now);
            }
            Some(_) => {}
        }

        // RFC 9406 §4.2: "currentRoundMinRTT = min(currentRoundMinRTT,
        // currRTT); rttSampleCount += 1", one sample per ACK (see the
        // module documentation).
        let rtt = now.saturating_duration_since(sent_time);
        self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
        if self.last_sample != Some(now) {
            self.last_sample = Some(now);
            self.samples += 1;
        }

        // RFC 9406 §4.2: "cwnd = cwnd + min(N, L * SMSS)" in slow start and
        // "cwnd = cwnd + (min(N, L * SMSS) / CSS_GROWTH_DIVISOR)" in CSS,
        // with L infinite.
        let increase = match (app_limited, self.phase) {
            (true, _) => 0,
            (false, Phase::Css { .. }) => bytes / CSS_GROWTH_DIVISOR,
            (false, _) => bytes,
        };

        if self.samples >= N_RTT_SAMPLE {
            if let Some(current) = self.current_round_min {
                match self.phase {
                    Phase::SlowStart => {
                        if let Some(last) = self.last_round_min {
                            // RFC 9406 §4.2: "RttThresh = max(MIN_RTT_THRESH,
                            // min(lastRoundMinRTT / MIN_RTT_DIVISOR,
                            // MAX_RTT_THRESH))"; "if (currentRoundMinRTT >=
                            // (lastRoundMinRTT + RttThresh))" enter CSS.
                            let thresh = (last / MIN_RTT_DIVISOR)
                                .min(MAX_RTT_THRESH)
                                .max(MIN_RTT_THRESH);
                            if current >= last + thresh {
                                self.phase = Phase::Css {
                                    baseline: current,
                                    rounds: 0,
                                };
                            }
                        }
                    }
                    Phase::Css { baseline, .. } => {
                        // RFC 9406 §4.2: "if (currentRoundMinRTT <
                        // cssBaselineMinRtt) ... resume slow start".
                        if current < baseline {
                            self.phase = Phase::SlowStart;
                        }
                    }
                    Phase::Done => {}
                }
            }
        }
        Growth {
            increase,
            exit_slow_start: false,
        }
    }

    /// RFC 9406 §4.2: "At the start of each round during standard slow
    /// start and CSS": `lastRoundMinRTT = currentRoundMinRTT;
    /// currentRoundMinRTT = infinity; rttSampleCount = 0`.
    fn start_round(&mut self, now: Instant) {
        self.round_start = Some(now);
        self.last_round_min = self.current_round_min.take();
        self.samples = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::test_epoch;

    const MDS: u64 = 1200;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Drives one round: `acks` ACKs of two packets each, sent at `sent`
    /// (all after the round started), acknowledged `rtt` later, one ms
    /// apart. Returns the total increase and whether slow start ended.
    fn round(hs: &mut HyStart, t: &mut Instant, acks: u32, rtt: Duration) -> (u64, bool) {
        let mut increase = 0;
        let mut exit = false;
        let sent = *t;
        for i in 0..acks {
            let now = sent + rtt + ms(u64::from(i));
            for _ in 0..2 {
                let g = hs.on_ack(now, sent + ms(u64::from(i)), MDS, false);
                increase += g.increase;
                exit |= g.exit_slow_start;
            }
        }
        // The next round's packets go out after the last ACK of this one.
        *t = sent + rtt + ms(u64::from(acks));
        (increase, exit)
    }

    // RFC 9406 §4.2: standard slow start grows by the bytes acknowledged
    // (L infinite) and stays there while the RTT is flat.
    #[test]
    fn flat_rtt_stays_in_slow_start() {
        let mut hs = HyStart::new();
        let mut t = test_epoch();
        for _ in 0..6 {
            let (inc, exit) = round(&mut hs, &mut t, 10, ms(50));
            assert_eq!(inc, 20 * MDS);
            assert!(!exit);
        }
        assert_eq!(hs.phase(), Phase::SlowStart);
    }

    // RFC 9406 §4.2: rounds end when a packet sent after the round began is
    // acknowledged; packets from before do not end it.
    #[test]
    fn rounds_are_delimited_by_send_times() {
        let t0 = test_epoch();
        let mut hs = HyStart::new();
        hs.on_ack(t0 + ms(50), t0, MDS, false);
        assert_eq!(hs.round_start, Some(t0 + ms(50)));
        // Sent before the round started: same round.
        hs.on_ack(t0 + ms(60), t0 + ms(10), MDS, false);
        assert_eq!(hs.round_start, Some(t0 + ms(50)));
        assert_eq!(hs.samples, 2);
        // Two packets of one ACK are one RTT sample.
        hs.on_ack(t0 + ms(70), t0 + ms(15), MDS, false);
        hs.on_ack(t0 + ms(70), t0 + ms(20), MDS, false);
        assert_eq!(hs.samples, 3);
        assert_eq!(hs.current_round_min, Some(ms(50)));
        // Sent at the round's start: a new round.
        hs.on_ack(t0 + ms(100), t0 + ms(50), MDS, false);
        assert_eq!(hs.round_start, Some(t0 + ms(100)));
        assert_eq!(hs.last_round_min, Some(ms(50)));
        assert_eq!(hs.samples, 1);
    }

    // RFC 9406 §4.2: a round minimum at least RttThresh above the last
    // round's enters CSS; growth is then divided by CSS_GROWTH_DIVISOR.
    #[test]
    fn delay_increase_enters_css() {
        let mut hs = HyStart::new();
        let mut t = test_epoch();
        round(&mut hs, &mut t, 10, ms(40));
        round(&mut hs, &mut t, 10, ms(40));
        // RttThresh = max(4 ms, min(40/8, 16)) = 5 ms: 44 ms is not enough.
        round(&mut hs, &mut t, 10, ms(44));
        assert_eq!(hs.phase(), Phase::SlowStart);
        // 44 -> 50 ms is (threshold 44/8 = 5.5 ms).
        round(&mut hs, &mut t, 10, ms(50));
        assert!(hs.in_css(), "{:?}", hs.phase());
        // Within the round CSS began in, the later ACKs grow a quarter.
        let (inc, _) = round(&mut hs, &mut t, 10, ms(50));
        assert_eq!(inc, 20 * MDS / CSS_GROWTH_DIVISOR);
    }

    // The check needs N_RTT_SAMPLE samples in the round.
    #[test]
    fn too_few_samples_do_not_enter_css() {
        let mut hs = HyStart::new();
        let mut t = test_epoch();
        round(&mut hs, &mut t, 7, ms(20));
        round(&mut hs, &mut t, 7, ms(20));
        round(&mut hs, &mut t, 7, ms(60));
        assert_eq!(hs.phase(), Phase::SlowStart);
        round(&mut hs, &mut t, 8, ms(100));
        assert!(hs.in_css());
    }

    // RFC 9406 §4.2: in CSS, a round minimum below the baseline means the
    // exit was spurious: back to slow start.
    #[test]
    fn css_returns_to_slow_start_when_rtt_falls() {
        let mut hs = HyStart::new();
        let mut t = test_epoch();
        round(&mut hs, &mut t, 10, ms(40));
        round(&mut hs, &mut t, 10, ms(60));
        let Phase::Css { baseline, .. } = hs.phase() else {
            panic!("not in CSS: {:?}", hs.phase());
        };
        assert_eq!(baseline, ms(60));
        round(&mut hs, &mut t, 10, ms(61));
        assert!(hs.in_css());
        let (inc, exit) = round(&mut hs, &mut t, 10, ms(45));
        assert!(!exit);
        assert_eq!(hs.phase(), Phase::SlowStart);
        // Up to the first packet of the 8th ACK (the 8th sample), that round
        // was still in CSS.
        assert_eq!(inc, 15 * MDS / CSS_GROWTH_DIVISOR + 5 * MDS);
    }

    // RFC 9406 §4.2: after CSS_ROUNDS rounds (the partial one included),
    // slow start is over.
    #[test]
    fn css_exits_to_congestion_avoidance_after_css_rounds() {
        let mut hs = HyStart::new();
        let mut t = test_epoch();
        round(&mut hs, &mut t, 10, ms(40));
        round(&mut hs, &mut t, 10, ms(60)); // CSS from the 8th ACK on
        for _ in 1..CSS_ROUNDS {
            let (_, exit) = round(&mut hs, &mut t, 10, ms(60));
            assert!(!exit);
            assert!(hs.in_css());
        }
        // The first ACK of the next round completes the fifth round.
        let (_, exit) = round(&mut hs, &mut t, 10, ms(60));
        assert!(exit);
        assert_eq!(hs.phase(), Phase::Done);
    }

    // RFC 9002 §7.8: no growth while application-limited, but the RTT
    // sample counts.
    #[test]
    fn app_limited_acks_count_samples_without_growth() {
        let t0 = test_epoch();
        let mut hs = HyStart::new();
        let g = hs.on_ack(t0 + ms(30), t0, MDS, true);
        assert_eq!(g.increase, 0);
        assert_eq!(hs.samples, 1);
    }
}
