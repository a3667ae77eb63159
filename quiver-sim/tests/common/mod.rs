//! Test nodes shared by the scenario files.
#![allow(dead_code)] // each test file uses a subset

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use quiver_sim::{Node, Transmit, loopback};

pub const A: SocketAddr = loopback(1, 4433);
pub const B: SocketAddr = loopback(2, 4433);
pub const C: SocketAddr = loopback(3, 4433);
pub const D: SocketAddr = loopback(4, 4433);

/// `size` bytes: `seq` big-endian, then a pattern derived from it.
pub fn payload(seq: u64, size: usize) -> Vec<u8> {
    assert!(size >= 8);
    let mut data = seq.to_be_bytes().to_vec();
    data.extend((0..size - 8).map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8));
    data
}

/// The sequence number at the front of a payload.
pub fn seq_of(data: &[u8]) -> u64 {
    u64::from_be_bytes(data[..8].try_into().unwrap())
}

/// A datagram a node received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    pub time: Instant,
    pub from: SocketAddr,
    pub data: Vec<u8>,
}

/// Sends `count` datagrams of `size` bytes (sequence numbers 0, 1, …) to
/// `dst`, one every `interval` from `start` (all at once if `interval` is
/// zero), paced by its own timer; records what comes back.
#[derive(Debug)]
pub struct Sender {
    dst: SocketAddr,
    count: u64,
    size: usize,
    interval: Duration,
    next: Instant,
    pub sent: u64,
    pub received: Vec<Arrival>,
}

impl Sender {
    pub fn new(
        dst: SocketAddr,
        count: u64,
        size: usize,
        interval: Duration,
        start: Instant,
    ) -> Self {
        Self {
            dst,
            count,
            size,
            interval,
            next: start,
            sent: 0,
            received: Vec::new(),
        }
    }

    /// Sequence numbers received, in arrival order.
    pub fn received_seqs(&self) -> Vec<u64> {
        self.received.iter().map(|a| seq_of(&a.data)).collect()
    }
}

impl Node for Sender {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.received.push(Arrival {
            time: now,
            from,
            data: data.to_vec(),
        });
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.sent >= self.count || now < self.next {
            return None;
        }
        let data = payload(self.sent, self.size);
        self.sent += 1;
        self.next += self.interval;
        Some(Transmit::new(self.dst, data))
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        (self.sent < self.count).then_some(self.next)
    }
    fn handle_timeout(&mut self, _now: Instant) {}
}

/// Records every datagram; with `echo`, sends each straight back.
#[derive(Debug, Default)]
pub struct Echo {
    echo: bool,
    replies: VecDeque<(SocketAddr, Vec<u8>)>,
    pub received: Vec<Arrival>,
}

impl Echo {
    /// Echoes everything back.
    pub fn new() -> Self {
        Self {
            echo: true,
            ..Self::default()
        }
    }

    /// Only records.
    pub fn sink() -> Self {
        Self::default()
    }

    /// Sequence numbers received, in arrival order.
    pub fn received_seqs(&self) -> Vec<u64> {
        self.received.iter().map(|a| seq_of(&a.data)).collect()
    }
}

impl Node for Echo {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.received.push(Arrival {
            time: now,
            from,
            data: data.to_vec(),
        });
        if self.echo {
            self.replies.push_back((from, data.to_vec()));
        }
    }
    fn poll_transmit(&mut self, _now: Instant) -> Option<Transmit> {
        self.replies
            .pop_front()
            .map(|(to, data)| Transmit::new(to, data))
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _now: Instant) {}
}

/// Asks to be woken at each of `wakeups` and records when it was.
#[derive(Debug)]
pub struct Alarm {
    wakeups: VecDeque<Instant>,
    pub fired: Vec<Instant>,
}

impl Alarm {
    pub fn new(mut wakeups: Vec<Instant>) -> Self {
        wakeups.sort();
        Self {
            wakeups: wakeups.into(),
            fired: Vec::new(),
        }
    }
}

impl Node for Alarm {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {}
    fn poll_transmit(&mut self, _: Instant) -> Option<Transmit> {
        None
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.wakeups.front().copied()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.fired.push(now);
        while self.wakeups.front().is_some_and(|&t| t <= now) {
            self.wakeups.pop_front();
        }
    }
}

/// A broken node whose timer is always due: a livelock.
#[derive(Debug)]
pub struct Spinner {
    pub at: Instant,
}

impl Node for Spinner {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {}
    fn poll_transmit(&mut self, _: Instant) -> Option<Transmit> {
        None
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        Some(self.at)
    }
    fn handle_timeout(&mut self, _: Instant) {}
}

/// Lengths of the runs of consecutive `true`s.
pub fn runs(flags: &[bool]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut current = 0;
    for &f in flags {
        if f {
            current += 1;
        } else if current > 0 {
            out.push(current);
            current = 0;
        }
    }
    if current > 0 {
        out.push(current);
    }
    out
}

/// `127.0.0.host:port`.
pub fn loopback_port(host: u8, port: u16) -> SocketAddr {
    loopback(host, port)
}
