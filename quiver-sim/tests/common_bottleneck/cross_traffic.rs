//! Unresponsive background traffic through the bottleneck: datagrams of a
//! fixed size at exponentially distributed intervals (a Poisson process),
//! from a host that ignores losses, to a host that ignores what it gets.
//!
//! A real shared bottleneck carries other traffic, whose random arrivals
//! keep the queue's occupancy moving near its limit; this lets a test
//! check whether a result depends on the perfectly regular queue of two
//! paced flows alone (for the fairness tests it does not: see
//! `fairness.rs`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use quiver_sim::{Node, Rng, Transmit, loopback};

/// Where the background traffic comes from.
pub const CROSS_ADDR: SocketAddr = loopback(10, 6000);
/// Where it goes.
pub const SINK_ADDR: SocketAddr = loopback(11, 6000);
/// The size of each background datagram.
pub const CROSS_DATAGRAM: usize = 1200;

/// Sends [`CROSS_DATAGRAM`]-byte datagrams to [`SINK_ADDR`] as a Poisson
/// process of mean rate `rate` bytes per second.
#[derive(Debug)]
pub struct CrossTraffic {
    rng: Rng,
    /// Mean gap between datagrams, in seconds.
    mean_gap: f64,
    next: Option<Instant>,
    due: bool,
}

impl CrossTraffic {
    /// Background traffic of `rate` bytes per second on average, starting
    /// at `start`.
    pub fn new(rng: Rng, rate: u64, start: Instant) -> Self {
        assert!(rate > 0);
        Self {
            rng,
            mean_gap: CROSS_DATAGRAM as f64 / rate as f64,
            next: Some(start),
            due: false,
        }
    }

    /// An exponentially distributed gap (inverse transform sampling).
    fn gap(&mut self) -> Duration {
        // 1 - U is in (0, 1]: its logarithm is finite.
        let u = 1.0 - self.rng.next_f64();
        Duration::from_secs_f64(-u.ln() * self.mean_gap)
    }
}

impl Node for CrossTraffic {
    fn handle_datagram(&mut self, _now: Instant, _from: SocketAddr, _data: &[u8]) {}

    fn poll_transmit(&mut self, _now: Instant) -> Option<Transmit> {
        if !std::mem::take(&mut self.due) {
            return None;
        }
        Some(Transmit::new(SINK_ADDR, vec![0; CROSS_DATAGRAM]))
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.next
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.next.is_some_and(|next| next <= now) {
            self.due = true;
            let gap = self.gap();
            self.next = Some(now + gap);
        }
    }
}

/// Receives the background traffic and drops it.
#[derive(Debug)]
pub struct Sink;

impl Node for Sink {
    fn handle_datagram(&mut self, _now: Instant, _from: SocketAddr, _data: &[u8]) {}

    fn poll_transmit(&mut self, _now: Instant) -> Option<Transmit> {
        None
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}
}
