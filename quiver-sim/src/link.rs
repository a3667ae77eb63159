//! The model of one direction of one path: configuration, state and statistics.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rng::Rng;
use crate::trace::DropReason;

/// Impairments of one direction of a path (`src → dst`).
///
/// Build one with struct update syntax:
/// `LinkConfig { loss_rate: 0.01, ..LinkConfig::default() }`.
/// Rates are probabilities in `[0, 1]`, drawn independently per datagram.
///
/// A datagram goes through, in order: the network's scripted filter, the MTU
/// check, the bottleneck queue (`bandwidth`, `queue_limit`), burst loss,
/// random loss, then duplication; each copy is corrupted and delayed
/// (`delay`, `jitter`, `reorder_*`) independently.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Fixed one-way propagation delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `[0, jitter]` per datagram; makes
    /// datagrams sent closer together than `jitter` arrive out of order.
    pub jitter: Duration,
    /// Bottleneck rate in bytes (of UDP payload) per second; `None` is
    /// unlimited. Datagrams are serialized one after another through a FIFO,
    /// so a burst leaves the link paced at this rate.
    pub bandwidth: Option<u64>,
    /// Bytes the bottleneck FIFO may hold (waiting or being serialized); a
    /// datagram that does not fit is tail-dropped. `None` is unlimited. Only
    /// meaningful with `bandwidth`.
    pub queue_limit: Option<usize>,
    /// Probability that a datagram is lost, independently of the others.
    pub loss_rate: f64,
    /// Correlated (bursty) loss; applied in addition to `loss_rate`.
    pub burst_loss: Option<GilbertElliott>,
    /// Probability that a datagram is held back by `reorder_delay`.
    pub reorder_rate: f64,
    /// Extra delay of a datagram picked by `reorder_rate`.
    pub reorder_delay: Duration,
    /// Probability that a datagram is delivered twice (the copy has its own
    /// delay, jitter and corruption).
    pub duplicate_rate: f64,
    /// Probability that one uniformly chosen bit of a datagram is flipped.
    pub corrupt_rate: f64,
    /// Largest datagram (UDP payload, bytes) the link carries; larger ones
    /// are dropped.
    pub mtu: usize,
    /// A middlebox that clears the ECN field of every datagram.
    pub ecn_bleach: bool,
    /// Probability that a datagram sent with an ECT codepoint arrives
    /// marked CE (a congested ECN-capable queue; 1.0 marks everything).
    pub ce_rate: f64,
}

impl Default for LinkConfig {
    /// A clean link: 10 ms one way, unlimited bandwidth, no impairments, and
    /// an MTU of 1472 (a 1500-byte IPv4 Ethernet MTU minus 28 bytes of IP and
    /// UDP headers).
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            bandwidth: None,
            queue_limit: None,
            loss_rate: 0.0,
            burst_loss: None,
            reorder_rate: 0.0,
            reorder_delay: Duration::from_millis(10),
            duplicate_rate: 0.0,
            corrupt_rate: 0.0,
            mtu: 1472,
            ecn_bleach: false,
            ce_rate: 0.0,
        }
    }
}

impl LinkConfig {
    /// Panics with a clear message if a rate is outside `[0, 1]` or the
    /// bandwidth is zero.
    pub(crate) fn validate(&self) {
        let rate = |name: &str, p: f64| {
            assert!(
                (0.0..=1.0).contains(&p),
                "LinkConfig::{name} must be a probability in [0, 1], got {p}"
            );
        };
        rate("loss_rate", self.loss_rate);
        rate("reorder_rate", self.reorder_rate);
        rate("duplicate_rate", self.duplicate_rate);
        rate("corrupt_rate", self.corrupt_rate);
        rate("ce_rate", self.ce_rate);
        if let Some(ge) = &self.burst_loss {
            rate("burst_loss.p_good_to_bad", ge.p_good_to_bad);
            rate("burst_loss.p_bad_to_good", ge.p_bad_to_good);
            rate("burst_loss.loss_in_bad", ge.loss_in_bad);
        }
        assert!(
            self.bandwidth != Some(0),
            "LinkConfig::bandwidth must be positive (use None for unlimited)"
        );
    }
}

/// Gilbert–Elliott two-state loss: the link flips between a good state (no
/// loss from this model) and a bad state (loss with `loss_in_bad`), with one
/// state transition per datagram, starting good.
///
/// The mean length of a bad period is `1 / p_bad_to_good` datagrams; the
/// long-run share of datagrams sent in the bad state is
/// `p_good_to_bad / (p_good_to_bad + p_bad_to_good)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Per-datagram probability of moving from good to bad.
    pub p_good_to_bad: f64,
    /// Per-datagram probability of moving from bad back to good.
    pub p_bad_to_good: f64,
    /// Probability that a datagram sent in the bad state is lost.
    pub loss_in_bad: f64,
}

/// Datagrams lost per reason on one link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Dropped by the scripted filter.
    pub filter: u64,
    /// Larger than the link's MTU.
    pub mtu: u64,
    /// Tail-dropped: the bottleneck queue was full.
    pub queue_full: u64,
    /// Random (independent) loss.
    pub loss: u64,
    /// Gilbert–Elliott burst loss.
    pub burst_loss: u64,
    /// Arrived at an address no node is bound to.
    pub no_route: u64,
}

impl DropCounts {
    /// Datagrams dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Filter => self.filter,
            DropReason::Mtu => self.mtu,
            DropReason::QueueFull => self.queue_full,
            DropReason::Loss => self.loss,
            DropReason::BurstLoss => self.burst_loss,
            DropReason::NoRoute => self.no_route,
        }
    }

    /// Datagrams dropped for any reason.
    pub fn total(&self) -> u64 {
        self.filter + self.mtu + self.queue_full + self.loss + self.burst_loss + self.no_route
    }

    pub(crate) fn add(&mut self, reason: DropReason) {
        match reason {
            DropReason::Filter => self.filter += 1,
            DropReason::Mtu => self.mtu += 1,
            DropReason::QueueFull => self.queue_full += 1,
            DropReason::Loss => self.loss += 1,
            DropReason::BurstLoss => self.burst_loss += 1,
            DropReason::NoRoute => self.no_route += 1,
        }
    }

    fn merge(&mut self, other: &DropCounts) {
        self.filter += other.filter;
        self.mtu += other.mtu;
        self.queue_full += other.queue_full;
        self.loss += other.loss;
        self.burst_loss += other.burst_loss;
        self.no_route += other.no_route;
    }
}

/// Counters of one link (one direction between two addresses).
///
/// `delivered` counts copies, so with duplication it can exceed `sent`;
/// `sent + duplicated == delivered + dropped.total() + in flight`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams handed to the link.
    pub sent: u64,
    /// Bytes handed to the link.
    pub sent_bytes: u64,
    /// Datagrams (including duplicate copies) handed to the destination node.
    pub delivered: u64,
    /// Bytes handed to the destination node.
    pub delivered_bytes: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Copies that had a bit flipped.
    pub corrupted: u64,
    /// Deliveries of a datagram sent before one already delivered.
    pub reordered: u64,
    /// Losses by reason.
    pub dropped: DropCounts,
}

impl LinkStats {
    /// Adds `other`'s counters to these.
    pub fn merge(&mut self, other: &LinkStats) {
        self.sent += other.sent;
        self.sent_bytes += other.sent_bytes;
        self.delivered += other.delivered;
        self.delivered_bytes += other.delivered_bytes;
        self.duplicated += other.duplicated;
        self.corrupted += other.corrupted;
        self.reordered += other.reordered;
        self.dropped.merge(&other.dropped);
    }
}

/// One copy of a datagram scheduled for delivery.
#[derive(Debug)]
pub(crate) struct Scheduled {
    pub(crate) arrival: Instant,
    pub(crate) data: Vec<u8>,
    pub(crate) corrupted: bool,
}

/// The mutable state of one link.
#[derive(Debug)]
pub(crate) struct Link {
    rng: Rng,
    /// Gilbert–Elliott state.
    bad: bool,
    /// When the bottleneck finishes serializing its last queued datagram.
    busy_until: Option<Instant>,
    /// (serialization finish time, size) of each datagram in the bottleneck.
    backlog: VecDeque<(Instant, usize)>,
    backlog_bytes: usize,
    /// Highest per-link index delivered so far, to count reordering.
    pub(crate) highest_delivered: Option<u64>,
    pub(crate) stats: LinkStats,
}

impl Link {
    pub(crate) fn new(rng: Rng) -> Self {
        Self {
            rng,
            bad: false,
            busy_until: None,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            highest_delivered: None,
            stats: LinkStats::default(),
        }
    }

    /// The ECN codepoint a datagram sent with `ecn` arrives with. Draws
    /// randomness only when CE marking is configured, so seeds of links
    /// without it are unchanged.
    pub(crate) fn ecn(&mut self, cfg: &LinkConfig, ecn: u8) -> u8 {
        if cfg.ecn_bleach {
            return 0;
        }
        if ecn & 0b11 != 0 && cfg.ce_rate > 0.0 && self.rng.chance(cfg.ce_rate) {
            return 0b11;
        }
        ecn & 0b11
    }

    /// Runs a datagram sent at `now` through the model (everything after the
    /// scripted filter): either the copies to deliver, or why it was dropped
    /// (with the datagram back, for the trace).
    pub(crate) fn transmit(
        &mut self,
        now: Instant,
        cfg: &LinkConfig,
        data: Vec<u8>,
    ) -> Result<(Scheduled, Option<Scheduled>), (DropReason, Vec<u8>)> {
        if data.len() > cfg.mtu {
            return Err((DropReason::Mtu, data));
        }
        let departure = match cfg.bandwidth {
            None => now,
            Some(rate) => match self.enqueue(now, data.len(), rate, cfg.queue_limit) {
                Some(finish) => finish,
                None => return Err((DropReason::QueueFull, data)),
            },
        };
        if let Some(ge) = &cfg.burst_loss {
            if self.bad {
                if self.rng.chance(ge.p_bad_to_good) {
                    self.bad = false;
                }
            } else if self.rng.chance(ge.p_good_to_bad) {
                self.bad = true;
            }
            if self.bad && self.rng.chance(ge.loss_in_bad) {
                return Err((DropReason::BurstLoss, data));
            }
        }
        if self.rng.chance(cfg.loss_rate) {
            return Err((DropReason::Loss, data));
        }
        let extra = self.rng.chance(cfg.duplicate_rate).then(|| data.clone());
        let first = self.schedule(departure, cfg, data);
        let second = extra.map(|d| self.schedule(departure, cfg, d));
        Ok((first, second))
    }

    /// Puts a datagram into the bottleneck FIFO; returns when its last byte
    /// leaves, or `None` if the queue is full.
    fn enqueue(
        &mut self,
        now: Instant,
        len: usize,
        rate: u64,
        limit: Option<usize>,
    ) -> Option<Instant> {
        while let Some(&(finish, size)) = self.backlog.front() {
            if finish > now {
                break;
            }
            self.backlog.pop_front();
            self.backlog_bytes -= size;
        }
        if limit.is_some_and(|limit| self.backlog_bytes + len > limit) {
            return None;
        }
        let start = self.busy_until.map_or(now, |busy| busy.max(now));
        let nanos = (len as u128 * 1_000_000_000) / u128::from(rate);
        let finish = start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.busy_until = Some(finish);
        self.backlog.push_back((finish, len));
        self.backlog_bytes += len;
        Some(finish)
    }

    fn schedule(&mut self, departure: Instant, cfg: &LinkConfig, mut data: Vec<u8>) -> Scheduled {
        let mut corrupted = false;
        if !data.is_empty() && self.rng.chance(cfg.corrupt_rate) {
            let bit = self.rng.below(data.len() as u64 * 8);
            data[(bit / 8) as usize] ^= 1 << (bit % 8);
            corrupted = true;
        }
        let mut arrival = departure + cfg.delay + self.rng.duration_up_to(cfg.jitter);
        if self.rng.chance(cfg.reorder_rate) {
            arrival += cfg.reorder_delay;
        }
        Scheduled {
            arrival,
            data,
            corrupted,
        }
    }
}
