//! Reordering-tolerant loss detection (RFC 9002 §6.1 thresholds made
//! adaptive as RACK, RFC 8985 §6.2, does) and undoing the congestion
//! response to losses that prove spurious.
//!
//! A packet declared lost and acknowledged afterwards was reordered, not
//! lost. The first such packet turns the packet threshold off (loss by
//! time alone, as RACK judges it), and each widens the time threshold by a
//! quarter of an RTT, up to twice the RTT. After [`DECAY_EPISODES`] loss episodes without a spurious loss the
//! allowance returns to RFC 9002's defaults (RFC 8985 §6.2: "reo_wnd_mult
//! ... reset ... after 16 loss recoveries").
//!
//! A loss *episode* runs from the first loss after the last episode until
//! a packet sent after that loss is acknowledged (the span of one
//! congestion response, RFC 9002 §7.3.2). When every packet lost in the
//! episode turns out to have arrived, the controller is told to undo its
//! response ([`crate::congestion::Controller::on_spurious_congestion_event`]).
//!
//! Losses in every packet number space count: the congestion response is
//! the connection's, whichever space lost the packet (RFC 9002 §7: "The
//! signals QUIC provides for congestion control are generic"), and a
//! server Initial held back behind its coalesced Handshake packet is the
//! first spurious loss a reordering path shows. Left standing, that
//! response cost the whole transfer its slow start. The thresholds adapted
//! here apply to the application data space only; the handshake spaces
//! keep RFC 9002's, but a spurious loss there widens the application
//! data space's thresholds too (the path reorders, whatever it carries).
//!
//! Once an episode's response is undone the episode ends: the controller
//! forgot its recovery period, so the next loss starts a new response,
//! which must be a new episode to be undone in turn.
//!
//! Memory is bounded: at most [`MAX_RECORDS`] recently lost packets are
//! remembered.

use std::collections::VecDeque;
use std::time::Instant;

use super::spaces::SpaceId;
use crate::recovery::PACKET_THRESHOLD;

/// Lost packets remembered for spotting a late acknowledgment.
const MAX_RECORDS: usize = 256;
/// The packet threshold once reordering is seen: loss by time only.
const TIME_ONLY: u64 = u64::MAX;
/// RFC 9002 §6.1.2's kTimeThreshold is 9/8; adaptation may reach 2.
const DEFAULT_TIME_EIGHTHS: u32 = 9;
const MAX_TIME_EIGHTHS: u32 = 16;
/// Episodes without a spurious loss before the allowance resets.
const DECAY_EPISODES: u32 = 16;

#[derive(Debug, Clone, Copy)]
struct Lost {
    space: SpaceId,
    pn: u64,
    episode: u64,
    /// When it was sent: how late its acknowledgment came measures the
    /// reordering.
    sent: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    id: u64,
    /// When its first loss was declared.
    start: Instant,
    lost: u32,
    spurious: u32,
    undone: bool,
    ended: bool,
}

/// What a late acknowledgment of lost packets calls for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spurious {
    /// Lost packets found acknowledged.
    pub(crate) packets: u32,
    /// Every loss of the current episode proved spurious: undo the
    /// congestion response.
    pub(crate) undo: bool,
    /// When the earliest sent of these packets left: with the ACK's
    /// arrival, how long reordering held it back.
    pub(crate) earliest_sent: Option<Instant>,
}

/// Loss history and reordering allowance of the application data space.
#[derive(Debug, Clone)]
pub(crate) struct Reordering {
    lost: VecDeque<Lost>,
    episode: Option<Episode>,
    next_episode: u64,
    episodes_without_spurious: u32,
    /// The packet threshold in force (RFC 9002 §6.1.1: 3 by default).
    pub(crate) packet_threshold: u64,
    /// The time threshold in force, in eighths of an RTT (§6.1.2: 9).
    pub(crate) time_eighths: u32,
}

impl Default for Reordering {
    fn default() -> Self {
        Self {
            lost: VecDeque::new(),
            episode: None,
            next_episode: 0,
            episodes_without_spurious: 0,
            packet_threshold: PACKET_THRESHOLD,
            time_eighths: DEFAULT_TIME_EIGHTHS,
        }
    }
}

impl Reordering {
    /// In-flight packet `pn` of `space` was declared lost.
    pub(crate) fn on_lost(&mut self, now: Instant, space: SpaceId, pn: u64, sent: Instant) {
        let episode = match &mut self.episode {
            Some(e) if !e.ended => e,
            _ => {
                if self.episode.is_some_and(|e| e.spurious == 0) {
                    self.episodes_without_spurious += 1;
                    if self.episodes_without_spurious >= DECAY_EPISODES {
                        self.packet_threshold = PACKET_THRESHOLD;
                        self.time_eighths = DEFAULT_TIME_EIGHTHS;
                        self.episodes_without_spurious = 0;
                    }
                }
                let id = self.next_episode;
                self.next_episode += 1;
                self.episode.insert(Episode {
                    id,
                    start: now,
                    lost: 0,
                    spurious: 0,
                    undone: false,
                    ended: false,
                })
            }
        };
        episode.lost += 1;
        let record = Lost {
            space,
            pn,
            episode: episode.id,
            sent,
        };
        if self.lost.len() >= MAX_RECORDS {
            self.lost.pop_front();
        }
        // Losses are declared in ascending order within a batch; keep the
        // list sorted, by space then packet number, across batches too.
        let at = self.lost.partition_point(|l| (l.space, l.pn) < (space, pn));
        self.lost.insert(at, record);
    }

    /// Whether any recently lost packet is remembered.
    pub(crate) fn has_lost(&self) -> bool {
        !self.lost.is_empty()
    }

    /// A packet sent at `sent_time` was acknowledged: the episode ends once
    /// a packet sent after it began is (RFC 9002 §7.3.2).
    pub(crate) fn on_acked_sent_at(&mut self, sent_time: Instant) {
        if let Some(e) = &mut self.episode {
            if sent_time > e.start {
                e.ended = true;
            }
        }
    }

    /// An ACK in `space` acknowledged the packet numbers in `range`: any of
    /// them we declared lost were only late.
    pub(crate) fn on_ack_range(
        &mut self,
        space: SpaceId,
        range: std::ops::RangeInclusive<u64>,
    ) -> Spurious {
        let mut out = Spurious::default();
        if self.lost.is_empty() {
            return out;
        }
        let from = self
            .lost
            .partition_point(|l| (l.space, l.pn) < (space, *range.start()));
        let to = self
            .lost
            .partition_point(|l| (l.space, l.pn) <= (space, *range.end()));
        if from == to {
            return out;
        }
        for l in self.lost.drain(from..to) {
            out.packets += 1;
            out.earliest_sent = Some(out.earliest_sent.map_or(l.sent, |e| e.min(l.sent)));
            // RFC 8985 §6.2: once reordering is seen, loss is judged by
            // time alone ("RACK ... does not use a fixed packet-count
            // threshold"): a packet-count threshold lags behind a reordering
            // distance that grows with the sending rate.
            self.packet_threshold = TIME_ONLY;
            if let Some(e) = &mut self.episode {
                if e.id == l.episode {
                    e.spurious += 1;
                    if e.spurious >= e.lost && !e.undone {
                        e.undone = true;
                        // The controller forgets its recovery period on
                        // undo (RFC 9438 §4.9.2 restores the state from
                        // before it), so a later loss is a new response:
                        // it must open a new episode to be undone too.
                        e.ended = true;
                        out.undo = true;
                    }
                }
            }
        }
        self.time_eighths = (self.time_eighths + 2).min(MAX_TIME_EIGHTHS);
        self.episodes_without_spurious = 0;
        out
    }

    /// A packet sent at `sent` and declared lost was acknowledged at `now`:
    /// widen the time threshold at once to cover that delay, in eighths of
    /// `rtt` (the RTT the threshold is a multiple of), plus an eighth,
    /// capped as always. RFC 8985 §6.2 grows its window in steps of
    /// min_rtt/4 per recovery with reordering, so a path that holds
    /// packets back for most of an RTT costs several spurious losses (and
    /// congestion responses) before the window fits; one measurement is
    /// enough to fit it.
    pub(crate) fn cover_lateness(&mut self, now: Instant, sent: Instant, rtt: std::time::Duration) {
        let rtt = rtt.as_nanos().max(1);
        let late = now.saturating_duration_since(sent).as_nanos();
        let needed = u32::try_from((late * 8).div_ceil(rtt) + 1).unwrap_or(u32::MAX);
        self.time_eighths = self.time_eighths.max(needed).min(MAX_TIME_EIGHTHS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const APP: SpaceId = SpaceId::ApplicationData;

    fn t0() -> Instant {
        crate::connection::tests::epoch()
    }

    #[test]
    fn a_late_ack_of_a_lost_packet_widens_the_thresholds() {
        let mut r = Reordering::default();
        r.on_lost(t0(), APP, 10, t0());
        let s = r.on_ack_range(APP, 10..=10);
        assert_eq!(s.packets, 1);
        assert!(s.undo, "the only loss of the episode was spurious");
        assert_eq!(r.packet_threshold, TIME_ONLY);
        assert_eq!(r.time_eighths, 11);
    }

    /// One late acknowledgment widens the time threshold to the delay it
    /// measured (plus an eighth), not only by the usual step.
    #[test]
    fn the_threshold_covers_the_lateness_measured() {
        let mut r = Reordering::default();
        let rtt = Duration::from_millis(20);
        // Acknowledged 35 ms after it was sent: 14 eighths of 20 ms, + 1.
        r.cover_lateness(t0() + Duration::from_millis(35), t0(), rtt);
        assert_eq!(r.time_eighths, 15);
        // Never narrower than before, never beyond the cap.
        r.cover_lateness(t0() + Duration::from_millis(5), t0(), rtt);
        assert_eq!(r.time_eighths, 15);
        r.cover_lateness(t0() + Duration::from_secs(1), t0(), rtt);
        assert_eq!(r.time_eighths, MAX_TIME_EIGHTHS);
    }

    #[test]
    fn undo_only_when_every_loss_of_the_episode_was_spurious() {
        let mut r = Reordering::default();
        r.on_lost(t0(), APP, 10, t0());
        r.on_lost(t0(), APP, 11, t0());
        assert!(!r.on_ack_range(APP, 10..=10).undo);
        assert!(r.on_ack_range(APP, 11..=11).undo);
        // Once only.
        assert!(!r.on_ack_range(APP, 11..=11).undo);
    }

    /// The controller forgets its recovery period when undoing, so a loss
    /// after the undo is a new congestion response, even before a packet
    /// sent after the first loss is acknowledged: it opens a new episode,
    /// which undoes in turn. It joined the undone episode before, and its
    /// response stood for good (seed 0x2f of `reordering.rs`).
    #[test]
    fn a_loss_after_an_undo_opens_an_episode_of_its_own() {
        let mut r = Reordering::default();
        r.on_lost(t0(), APP, 7, t0());
        assert!(r.on_ack_range(APP, 7..=7).undo);
        r.on_lost(t0() + Duration::from_millis(30), APP, 18, t0());
        assert!(r.on_ack_range(APP, 18..=18).undo);
    }

    /// Packet numbers of different spaces are different packets; a
    /// handshake space's loss proving spurious undoes its response too.
    #[test]
    fn spaces_are_told_apart() {
        let mut r = Reordering::default();
        r.on_lost(t0(), SpaceId::Initial, 0, t0());
        r.on_lost(t0(), APP, 0, t0());
        let s = r.on_ack_range(SpaceId::Handshake, 0..=5);
        assert_eq!(s.packets, 0);
        assert!(!r.on_ack_range(SpaceId::Initial, 0..=0).undo);
        let s = r.on_ack_range(APP, 0..=0);
        assert_eq!(s.packets, 1);
        assert!(s.undo);
        assert!(!r.has_lost());
    }

    #[test]
    fn a_new_episode_starts_after_a_later_packet_is_acknowledged() {
        let mut r = Reordering::default();
        r.on_lost(t0(), APP, 10, t0());
        r.on_acked_sent_at(t0() + Duration::from_millis(1));
        r.on_lost(
            t0() + Duration::from_millis(5),
            APP,
            20,
            t0() + Duration::from_millis(5),
        );
        // The first episode's loss proving spurious does not undo the new
        // episode's response.
        assert!(!r.on_ack_range(APP, 10..=10).undo);
        assert!(r.on_ack_range(APP, 20..=20).undo);
    }

    #[test]
    fn thresholds_are_capped_and_decay() {
        let mut r = Reordering::default();
        for i in 0..20 {
            r.on_lost(t0(), APP, 1000 + i, t0());
            r.on_ack_range(APP, 1000 + i..=1000 + i);
        }
        assert_eq!(r.packet_threshold, TIME_ONLY);
        assert_eq!(r.time_eighths, MAX_TIME_EIGHTHS);
        let mut t = t0();
        for i in 0..=DECAY_EPISODES as u64 {
            r.on_lost(t, APP, 9000 + i, t);
            t += Duration::from_millis(1);
            r.on_acked_sent_at(t);
        }
        r.on_lost(t, APP, 99_000, t);
        assert_eq!(r.packet_threshold, PACKET_THRESHOLD);
        assert_eq!(r.time_eighths, DEFAULT_TIME_EIGHTHS);
    }

    #[test]
    fn memory_is_bounded() {
        let mut r = Reordering::default();
        for pn in 0..10_000 {
            r.on_lost(t0(), APP, pn, t0());
        }
        assert!(r.lost.len() <= MAX_RECORDS);
    }
}
