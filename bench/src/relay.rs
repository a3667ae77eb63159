//! A seeded UDP relay that impairs the path between a client and a server
//! in this process: delay, jitter, random loss, burst loss
//! (Gilbert–Elliott), reordering, and a rate limit with a drop-tail queue.
//!
//! The client sends to [`Relay::addr`]; the relay forwards to the server
//! from a socket of its own and sends the server's answers back to the last
//! client address it heard from. Each direction is impaired independently,
//! with the same settings and its own random stream derived from the seed,
//! in this order: loss (random, then burst), the bottleneck queue (tail
//! drop when `queue` bytes are waiting, then serialisation at `rate`), then
//! propagation (`delay` plus a uniform `0..jitter`, plus `reorder_delay` for
//! the datagrams `reorder` picks). Datagrams leave in order of their
//! delivery time, so jitter and `reorder` reorder them.
//!
//! Timers are tokio's (a millisecond): a delayed datagram leaves at the
//! first timer tick at or after its time, and a rate limit releases the
//! datagrams due within a millisecond together. A datagram due at once
//! (no delay, no queue) with none waiting before it is forwarded at once.

use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Gilbert–Elliott burst loss: a two-state chain stepped once per datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving from the good state to the bad one.
    pub p_good_to_bad: f64,
    /// Probability of moving from the bad state back to the good one.
    pub p_bad_to_good: f64,
    /// Probability that a datagram is lost in the bad state.
    pub loss_in_bad: f64,
}

/// How the relay impairs each direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..jitter` per datagram.
    pub jitter: Duration,
    /// Probability that a datagram is lost, independently of the others.
    pub loss: f64,
    /// Burst loss, on top of `loss`.
    pub burst: Option<GilbertElliott>,
    /// Probability that a datagram is held back by `reorder_delay`.
    pub reorder: f64,
    /// How long a reordered datagram is held back.
    pub reorder_delay: Duration,
    /// Bottleneck rate in bits per second; `None` for none.
    pub rate: Option<u64>,
    /// Bytes the bottleneck queue holds before it drops arrivals.
    pub queue: u64,
}

impl Default for Impairment {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            burst: None,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(10),
            rate: None,
            queue: 256 * 1024,
        }
    }
}

impl Impairment {
    /// Parses `key=value,...`: `delay=10ms`, `jitter=2ms`, `loss=5%`,
    /// `burst=P_GB:P_BG[:LOSS_IN_BAD]` (percentages, e.g. `burst=1%:25%`),
    /// `reorder=5%`, `reorder_delay=10ms`, `rate=50Mbit` (or `kbit`,
    /// `Gbit`), `queue=64KB` (or `B`, `KiB`, `MB`, `MiB`).
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let mut imp = Self::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .with_context(|| format!("{item:?}: expected key=value"))?;
            let what = || format!("{key}={value}");
            match key {
                "delay" => imp.delay = duration(value).with_context(what)?,
                "jitter" => imp.jitter = duration(value).with_context(what)?,
                "loss" => imp.loss = probability(value).with_context(what)?,
                "reorder" => imp.reorder = probability(value).with_context(what)?,
                "reorder_delay" => imp.reorder_delay = duration(value).with_context(what)?,
                "rate" => imp.rate = Some(rate(value).with_context(what)?),
                "queue" => imp.queue = bytes(value).with_context(what)?,
                "burst" => {
                    let parts: Vec<&str> = value.split(':').collect();
                    if !(2..=3).contains(&parts.len()) {
                        bail!("{}: expected P_GB:P_BG[:LOSS_IN_BAD]", what());
                    }
                    imp.burst = Some(GilbertElliott {
                        p_good_to_bad: probability(parts[0]).with_context(what)?,
                        p_bad_to_good: probability(parts[1]).with_context(what)?,
                        loss_in_bad: match parts.get(2) {
                            Some(p) => probability(p).with_context(what)?,
                            None => 1.0,
                        },
                    });
                }
                _ => bail!(
                    "unknown impairment {key:?} (delay, jitter, loss, burst, reorder, \
                     reorder_delay, rate, queue)"
                ),
            }
        }
        Ok(imp)
    }
}

impl std::fmt::Display for Impairment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "delay {:?}", self.delay)?;
        if !self.jitter.is_zero() {
            write!(f, ", jitter {:?}", self.jitter)?;
        }
        if self.loss > 0.0 {
            write!(f, ", loss {}%", self.loss * 100.0)?;
        }
        if let Some(b) = self.burst {
            write!(
                f,
                ", burst loss (good->bad {}%, bad->good {}%, loss in bad {}%)",
                b.p_good_to_bad * 100.0,
                b.p_bad_to_good * 100.0,
                b.loss_in_bad * 100.0
            )?;
        }
        if self.reorder > 0.0 {
            write!(
                f,
                ", reorder {}% by {:?}",
                self.reorder * 100.0,
                self.reorder_delay
            )?;
        }
        if let Some(rate) = self.rate {
            write!(
                f,
                ", rate {} Mbit/s, queue {} bytes",
                rate as f64 / 1e6,
                self.queue
            )?;
        }
        write!(f, ", each direction")
    }
}

fn duration(s: &str) -> anyhow::Result<Duration> {
    let (n, unit) = split_number(s)?;
    Ok(match unit {
        "us" => Duration::from_secs_f64(n / 1e6),
        "ms" => Duration::from_secs_f64(n / 1e3),
        "s" => Duration::from_secs_f64(n),
        _ => bail!("unit {unit:?}: use us, ms or s"),
    })
}

fn probability(s: &str) -> anyhow::Result<f64> {
    let (n, unit) = split_number(s)?;
    let p = match unit {
        "%" => n / 100.0,
        "" => n,
        _ => bail!("unit {unit:?}: use % or a fraction"),
    };
    if !(0.0..=1.0).contains(&p) {
        bail!("{s}: not a probability");
    }
    Ok(p)
}

fn rate(s: &str) -> anyhow::Result<u64> {
    let (n, unit) = split_number(s)?;
    let scale = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "Mbit" => 1e6,
        "Gbit" => 1e9,
        _ => bail!("unit {unit:?}: use bit, kbit, Mbit or Gbit"),
    };
    let r = (n * scale) as u64;
    if r == 0 {
        bail!("a rate of zero");
    }
    Ok(r)
}

fn bytes(s: &str) -> anyhow::Result<u64> {
    let (n, unit) = split_number(s)?;
    let scale = match unit {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "KiB" => 1024.0,
        "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        _ => bail!("unit {unit:?}: use B, KB, KiB, MB or MiB"),
    };
    Ok((n * scale) as u64)
}

fn split_number(s: &str) -> anyhow::Result<(f64, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n: f64 = s[..end]
        .parse()
        .with_context(|| format!("{s:?}: not a number"))?;
    Ok((n, &s[end..]))
}

/// Datagrams the relay dropped or reordered, both directions together.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams received from either side.
    pub received: AtomicU64,
    /// Lost at random.
    pub lost: AtomicU64,
    /// Lost in a burst.
    pub burst_lost: AtomicU64,
    /// Dropped at the tail of a full bottleneck queue.
    pub queue_dropped: AtomicU64,
    /// Held back by `reorder_delay`.
    pub reordered: AtomicU64,
}

impl Counters {
    /// `received R, lost L (random) + B (burst) + Q (queue), reordered O`.
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} datagrams, lost {} at random + {} in bursts + {} at the queue, {} reordered",
            get(&self.received),
            get(&self.lost),
            get(&self.burst_lost),
            get(&self.queue_dropped),
            get(&self.reordered)
        )
    }
}

/// A running relay; dropping it stops it.
pub struct Relay {
    addr: SocketAddr,
    counters: Arc<Counters>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Relay {
    /// A relay on loopback towards `server`, impairing both directions as
    /// `imp` says, its randomness from `seed`.
    pub async fn start(server: SocketAddr, imp: &Impairment, seed: u64) -> anyhow::Result<Self> {
        let front = Arc::new(UdpSocket::bind(crate::ports::loopback()).await?);
        let back = Arc::new(UdpSocket::bind(crate::ports::loopback()).await?);
        back.connect(server).await?;
        let addr = front.local_addr()?;
        let counters = Arc::new(Counters::default());
        // The client's address, learnt from its datagrams.
        let client = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
        let up = Direction::new(imp.clone(), seed, 0, counters.clone());
        let down = Direction::new(imp.clone(), seed, 1, counters.clone());
        let tasks = vec![
            tokio::spawn(up.run(front.clone(), Sink::Connected(back.clone()), client.clone())),
            tokio::spawn(down.run(back, Sink::Client(front), client)),
        ];
        Ok(Self {
            addr,
            counters,
            tasks,
        })
    }

    /// Where the client sends.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the relay has dropped and reordered so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// Where a direction delivers.
enum Sink {
    /// The back socket, connected to the server.
    Connected(Arc<UdpSocket>),
    /// The front socket, to the last client address.
    Client(Arc<UdpSocket>),
}

/// A datagram waiting for its delivery time.
struct Pending {
    at: Instant,
    seq: u64,
    data: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One direction's impairment state.
struct Direction {
    imp: Impairment,
    rng: ChaCha8Rng,
    counters: Arc<Counters>,
    /// Gilbert–Elliott state.
    bad: bool,
    /// When the bottleneck finishes serialising what it holds.
    busy_until: Option<Instant>,
    /// Departure times and sizes of the datagrams in the bottleneck queue.
    queued: VecDeque<(Instant, u64)>,
    queued_bytes: u64,
    pending: BinaryHeap<Pending>,
    seq: u64,
}

impl Direction {
    fn new(imp: Impairment, seed: u64, direction: u64, counters: Arc<Counters>) -> Self {
        Self {
            imp,
            rng: ChaCha8Rng::seed_from_u64(seed.wrapping_mul(2).wrapping_add(direction)),
            counters,
            bad: false,
            busy_until: None,
            queued: VecDeque::new(),
            queued_bytes: 0,
            pending: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Decides the fate of a datagram arriving at `now`: `None` if dropped,
    /// else its delivery time.
    fn admit(&mut self, now: Instant, len: u64) -> Option<Instant> {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        if self.imp.loss > 0.0 && self.rng.random::<f64>() < self.imp.loss {
            self.counters.lost.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if let Some(ge) = self.imp.burst {
            let flip = if self.bad {
                ge.p_bad_to_good
            } else {
                ge.p_good_to_bad
            };
            if self.rng.random::<f64>() < flip {
                self.bad = !self.bad;
            }
            if self.bad && self.rng.random::<f64>() < ge.loss_in_bad {
                self.counters.burst_lost.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        let mut at = now;
        if let Some(rate) = self.imp.rate {
            while self.queued.front().is_some_and(|(t, _)| *t <= now) {
                let (_, n) = self.queued.pop_front().expect("non-empty");
                self.queued_bytes -= n;
            }
            if self.queued_bytes + len > self.imp.queue {
                self.counters.queue_dropped.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            let start = self.busy_until.map_or(now, |b| b.max(now));
            let departs = start + Duration::from_secs_f64(len as f64 * 8.0 / rate as f64);
            self.busy_until = Some(departs);
            self.queued.push_back((departs, len));
            self.queued_bytes += len;
            at = departs;
        }
        at += self.imp.delay;
        if !self.imp.jitter.is_zero() {
            at += self.imp.jitter.mul_f64(self.rng.random::<f64>());
        }
        if self.imp.reorder > 0.0 && self.rng.random::<f64>() < self.imp.reorder {
            self.counters.reordered.fetch_add(1, Ordering::Relaxed);
            at += self.imp.reorder_delay;
        }
        Some(at)
    }

    async fn run(
        mut self,
        from: Arc<UdpSocket>,
        to: Sink,
        client: Arc<std::sync::Mutex<Option<SocketAddr>>>,
    ) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let next = self.pending.peek().map(|p| p.at);
            tokio::select! {
                received = from.recv_from(&mut buf) => {
                    let Ok((n, peer)) = received else { continue };
                    if matches!(to, Sink::Connected(_)) {
                        *client.lock().expect("not poisoned") = Some(peer);
                    }
                    let now = Instant::now();
                    if let Some(at) = self.admit(now, n as u64) {
                        if at <= now && self.pending.is_empty() {
                            // Due now (no delay, no queue): forward at once,
                            // not at the timer's next millisecond.
                            deliver(&to, &client, &buf[..n]);
                        } else {
                            self.seq += 1;
                            self.pending.push(Pending { at, seq: self.seq, data: buf[..n].to_vec() });
                        }
                    }
                }
                () = sleep_until(next) => {
                    let now = Instant::now();
                    while self.pending.peek().is_some_and(|p| p.at <= now) {
                        let p = self.pending.pop().expect("non-empty");
                        deliver(&to, &client, &p.data);
                    }
                }
            }
        }
    }
}

/// Sends `data` on. A full socket buffer or a vanished peer is one more
/// lost datagram.
fn deliver(to: &Sink, client: &std::sync::Mutex<Option<SocketAddr>>, data: &[u8]) {
    let _ = match to {
        Sink::Connected(s) => s.try_send(data),
        Sink::Client(s) => match *client.lock().expect("not poisoned") {
            Some(peer) => s.try_send_to(data, peer),
            None => Ok(0),
        },
    };
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example() {
        let imp = Impairment::parse("delay=10ms,loss=5%,reorder=5%").unwrap();
        assert_eq!(imp.delay, Duration::from_millis(10));
        assert!((imp.loss - 0.05).abs() < 1e-12);
        assert!((imp.reorder - 0.05).abs() < 1e-12);
        let imp = Impairment::parse("rate=50Mbit,queue=64KiB,burst=1%:25%,jitter=500us").unwrap();
        assert_eq!(imp.rate, Some(50_000_000));
        assert_eq!(imp.queue, 65_536);
        assert_eq!(imp.jitter, Duration::from_micros(500));
        assert_eq!(
            imp.burst,
            Some(GilbertElliott {
                p_good_to_bad: 0.01,
                p_bad_to_good: 0.25,
                loss_in_bad: 1.0
            })
        );
        assert!(Impairment::parse("loss=150%").is_err());
        assert!(Impairment::parse("colour=red").is_err());
    }

    #[test]
    fn same_seed_same_fate() {
        let imp =
            Impairment::parse("delay=5ms,jitter=3ms,loss=10%,reorder=10%,burst=5%:50%").unwrap();
        let fates = |seed| {
            let mut d = Direction::new(imp.clone(), seed, 0, Arc::default());
            let now = Instant::now();
            (0..1000)
                .map(|_| d.admit(now, 1200).map(|t| t - now))
                .collect::<Vec<_>>()
        };
        assert_eq!(fates(1), fates(1));
        assert_ne!(fates(1), fates(2));
        let lost = fates(3).iter().filter(|f| f.is_none()).count();
        assert!((100..300).contains(&lost), "{lost}");
    }

    #[test]
    fn rate_limit_serialises_and_drops_at_the_tail() {
        // 9.6 Mbit/s: one 1200-byte datagram per millisecond; room for 3.
        let imp = Impairment::parse("rate=9.6Mbit,queue=3600B").unwrap();
        let mut d = Direction::new(imp, 0, 0, Arc::default());
        let now = Instant::now();
        let fates: Vec<_> = (0..5)
            .map(|_| d.admit(now, 1200).map(|t| t - now))
            .collect();
        let ms = Duration::from_millis;
        assert_eq!(fates, [Some(ms(1)), Some(ms(2)), Some(ms(3)), None, None]);
        // Once the first has left, there is room for one more.
        assert_eq!(d.admit(now + ms(1), 1200), Some(now + ms(4)));
    }
}
