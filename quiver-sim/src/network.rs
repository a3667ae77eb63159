//! The simulated network: nodes, links, the event queue and the virtual clock.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::link::{Link, LinkConfig, LinkStats};
use crate::node::{AnyNode, Node};
use crate::rng::{Rng, mix};
use crate::seed::Seed;
use crate::trace::{DatagramInfo, DropReason, TraceEvent, TraceKind, Verdict};

/// `127.0.0.host:port`, the address style of simulated nodes.
pub const fn loopback(host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), port)
}

/// The origin of virtual time, shared by every network of the process so
/// that traces of two runs compare equal.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    // `Instant` has no constructor other than `now()`. This reading is only an
    // arbitrary, fixed origin: the simulation never reads the wall clock
    // again, and only durations past this origin carry meaning.
    #[allow(clippy::disallowed_methods)]
    *EPOCH.get_or_init(Instant::now)
}

/// Identifies a node of a [`Network`], in the order nodes were added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(usize);

impl NodeId {
    /// Position of the node in the order nodes were added, from 0.
    pub fn index(self) -> usize {
        self.0
    }
}

/// The default cap on events (deliveries, timeouts, datagrams sent) of one
/// network; see [`Network::set_max_events`].
pub const DEFAULT_MAX_EVENTS: u64 = 5_000_000;

type LinkKey = (SocketAddr, SocketAddr);
type Filter = Box<dyn FnMut(&DatagramInfo<'_>) -> Verdict>;
type Tap = Box<dyn FnMut(&DatagramInfo<'_>)>;

struct Slot {
    addr: SocketAddr,
    node: Box<dyn AnyNode>,
}

/// A datagram copy on its way.
struct InFlight {
    time: Instant,
    seq: u64,
    src: SocketAddr,
    dst: SocketAddr,
    index: u64,
    data: Vec<u8>,
    ecn: u8,
    duplicate: bool,
    corrupted: bool,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    /// Arrival time, then the order of scheduling: ties never depend on
    /// anything but the run itself.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

/// A deterministic simulated network of [`Node`]s in virtual time.
///
/// Time starts at [`epoch`](Network::epoch) and only moves when the network
/// runs, jumping straight to the next delivery or node timeout: a simulated
/// hour costs no real time. Every random decision comes from the
/// [`Seed`]; each link draws from its own generator derived from the seed and
/// the link's two addresses, so adding a node or a link does not change what
/// happens on the others.
pub struct Network {
    seed: Seed,
    epoch: Instant,
    now: Instant,
    nodes: Vec<Slot>,
    by_addr: BTreeMap<SocketAddr, NodeId>,
    default_link: LinkConfig,
    link_configs: BTreeMap<LinkKey, LinkConfig>,
    /// Links that carry their datagrams through another's model
    /// ([`Network::share_link`]).
    shared: BTreeMap<LinkKey, LinkKey>,
    links: BTreeMap<LinkKey, Link>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    next_seq: u64,
    events: u64,
    max_events: u64,
    filter: Option<Filter>,
    tap: Option<Tap>,
    trace: Option<Vec<TraceEvent>>,
}

impl Network {
    /// An empty network whose randomness all derives from `seed`, with
    /// [`LinkConfig::default`] on every link.
    pub fn new(seed: Seed) -> Self {
        let epoch = epoch();
        Self {
            seed,
            epoch,
            now: epoch,
            nodes: Vec::new(),
            by_addr: BTreeMap::new(),
            default_link: LinkConfig::default(),
            link_configs: BTreeMap::new(),
            shared: BTreeMap::new(),
            links: BTreeMap::new(),
            in_flight: BinaryHeap::new(),
            next_seq: 0,
            events: 0,
            max_events: DEFAULT_MAX_EVENTS,
            filter: None,
            tap: None,
            trace: None,
        }
    }

    // ----- configuration -----

    /// The seed of this run.
    pub fn seed(&self) -> Seed {
        self.seed
    }

    /// An independent generator derived from the seed and `label`, for a
    /// node's own randomness (connection IDs, tokens…).
    pub fn rng(&self, label: &str) -> Rng {
        Rng::new(self.seed.derive(label))
    }

    /// Uses `config` for every link without its own configuration.
    ///
    /// # Panics
    /// If a rate is outside `[0, 1]` or the bandwidth is zero.
    pub fn set_default_link(&mut self, config: LinkConfig) {
        config.validate();
        self.default_link = config;
    }

    /// Uses `config` for datagrams from `src` to `dst` (one direction only).
    ///
    /// # Panics
    /// If a rate is outside `[0, 1]` or the bandwidth is zero.
    pub fn set_link(&mut self, src: SocketAddr, dst: SocketAddr, config: LinkConfig) {
        config.validate();
        self.link_configs.insert((src, dst), config);
    }

    /// Uses `config` in both directions between `a` and `b`.
    ///
    /// # Panics
    /// If a rate is outside `[0, 1]` or the bandwidth is zero.
    pub fn set_path(&mut self, a: SocketAddr, b: SocketAddr, config: LinkConfig) {
        self.set_link(a, b, config.clone());
        self.set_link(b, a, config);
    }

    /// Sends datagrams from `src` to `dst` through the `via.0 → via.1`
    /// link: one queue, one rate, one set of impairments and counters for
    /// both, as when two hosts sit behind one bottleneck. `via` must not
    /// itself be shared through another link.
    ///
    /// # Panics
    /// If `via` is already shared through another link.
    pub fn share_link(&mut self, src: SocketAddr, dst: SocketAddr, via: (SocketAddr, SocketAddr)) {
        assert!(
            !self.shared.contains_key(&via),
            "{via:?} is itself shared through another link"
        );
        if (src, dst) != via {
            self.shared.insert((src, dst), via);
        }
    }

    /// The link whose model carries datagrams from `src` to `dst`.
    fn link_key(&self, src: SocketAddr, dst: SocketAddr) -> LinkKey {
        self.shared.get(&(src, dst)).copied().unwrap_or((src, dst))
    }

    /// The configuration in force from `src` to `dst`.
    pub fn link_config(&self, src: SocketAddr, dst: SocketAddr) -> &LinkConfig {
        self.link_configs
            .get(&self.link_key(src, dst))
            .unwrap_or(&self.default_link)
    }

    /// Calls `filter` for every datagram entering any link, before the link
    /// model; [`Verdict::Drop`] drops it, [`Verdict::Delay`] holds it back.
    /// Replaces any previous filter.
    pub fn set_filter(&mut self, filter: impl FnMut(&DatagramInfo<'_>) -> Verdict + 'static) {
        self.filter = Some(Box::new(filter));
    }

    /// Removes the scripted filter.
    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Calls `tap` for every datagram entering any link (before the filter).
    /// Replaces any previous tap.
    pub fn set_tap(&mut self, tap: impl FnMut(&DatagramInfo<'_>) + 'static) {
        self.tap = Some(Box::new(tap));
    }

    /// Removes the tap.
    pub fn clear_tap(&mut self) {
        self.tap = None;
    }

    /// Starts (or stops and discards) recording every send, drop and
    /// delivery into [`trace`](Network::trace).
    pub fn record(&mut self, on: bool) {
        self.trace = on.then(Vec::new);
    }

    /// Caps the number of events (deliveries, timeouts, datagrams sent) this
    /// network processes; exceeding it panics, naming the seed. Guards
    /// against livelock; the default is [`DEFAULT_MAX_EVENTS`].
    pub fn set_max_events(&mut self, max: u64) {
        self.max_events = max;
    }

    // ----- nodes -----

    /// Binds `node` to `addr`.
    ///
    /// # Panics
    /// If another node is bound to `addr`.
    pub fn add_node(&mut self, addr: SocketAddr, node: impl Node + 'static) -> NodeId {
        let id = NodeId(self.nodes.len());
        let previous = self.by_addr.insert(addr, id);
        assert!(previous.is_none(), "address {addr} is already bound");
        self.nodes.push(Slot {
            addr,
            node: Box::new(node),
        });
        id
    }

    /// The node `id`, as its concrete type.
    ///
    /// # Panics
    /// If `id` is not a `N`.
    pub fn node<N: Node + 'static>(&self, id: NodeId) -> &N {
        self.nodes[id.0]
            .node
            .as_any()
            .downcast_ref()
            .unwrap_or_else(|| wrong_type::<N>(id))
    }

    /// The node `id`, as its concrete type, mutably (for example to make it
    /// open a stream; its datagrams leave at the next step).
    ///
    /// # Panics
    /// If `id` is not a `N`.
    pub fn node_mut<N: Node + 'static>(&mut self, id: NodeId) -> &mut N {
        self.nodes[id.0]
            .node
            .as_any_mut()
            .downcast_mut()
            .unwrap_or_else(|| wrong_type::<N>(id))
    }

    /// The address node `id` is bound to.
    pub fn addr(&self, id: NodeId) -> SocketAddr {
        self.nodes[id.0].addr
    }

    /// The node bound to `addr`, if any.
    pub fn node_at(&self, addr: SocketAddr) -> Option<NodeId> {
        self.by_addr.get(&addr).copied()
    }

    /// Moves node `id` to `addr` (a NAT rebinding or migration): it sends
    /// from `addr` from now on, and datagrams still in flight to its old
    /// address are dropped as [`DropReason::NoRoute`].
    ///
    /// # Panics
    /// If another node is bound to `addr`.
    pub fn rebind(&mut self, id: NodeId, addr: SocketAddr) {
        let old = self.nodes[id.0].addr;
        if old == addr {
            return;
        }
        assert!(
            !self.by_addr.contains_key(&addr),
            "address {addr} is already bound"
        );
        self.by_addr.remove(&old);
        self.by_addr.insert(addr, id);
        self.nodes[id.0].addr = addr;
    }

    /// A NAT rebinding that keeps the old mapping alive: node `id` sends
    /// from `addr` from now on, while datagrams addressed to its old
    /// address still reach it (as through a NAT whose old mapping has not
    /// expired yet), until [`Network::expire_mapping`] removes it.
    ///
    /// # Panics
    /// If another node is bound to `addr`.
    pub fn nat_rebind(&mut self, id: NodeId, addr: SocketAddr) {
        let old = self.nodes[id.0].addr;
        self.rebind(id, addr);
        if old != addr {
            self.by_addr.insert(old, id);
        }
    }

    /// Datagrams to `addr` reach node `id` too (a second address it
    /// receives on, such as a server's preferred address); it sends from
    /// its own address unless a [`crate::Transmit::src`] names the alias.
    ///
    /// # Panics
    /// If another node is bound to `addr`.
    pub fn add_alias(&mut self, id: NodeId, addr: SocketAddr) {
        assert!(
            !self.by_addr.contains_key(&addr),
            "address {addr} is already bound"
        );
        self.by_addr.insert(addr, id);
    }

    /// Ends an old mapping left by [`Network::nat_rebind`]: datagrams to
    /// `addr` are dropped as [`DropReason::NoRoute`] from now on.
    pub fn expire_mapping(&mut self, addr: SocketAddr) {
        if let Some(&id) = self.by_addr.get(&addr) {
            if self.nodes[id.0].addr != addr {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// Sends `data` from `src` to `dst` through the link model, as if a node
    /// at `src` had sent it (`src` need not be bound: spoofed or off-path
    /// datagrams).
    pub fn inject(&mut self, src: SocketAddr, dst: SocketAddr, data: Vec<u8>) {
        self.send(src, dst, data);
    }

    // ----- time -----

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time zero.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Virtual time elapsed since the epoch.
    pub fn elapsed(&self) -> Duration {
        self.now - self.epoch
    }

    /// Events processed so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Datagram copies on their way.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    // ----- running -----

    /// Advances to the next instant at which anything happens and processes
    /// everything due then: deliveries in arrival order, then node timeouts in
    /// node order, draining each node's transmits after each input. Returns
    /// `false`, without moving the clock, if nothing will ever happen (no
    /// datagram in flight, no node timer).
    pub fn step(&mut self) -> bool {
        self.drain_all();
        let Some(t) = self.next_event_time() else {
            return false;
        };
        self.now = self.now.max(t);
        self.process_due();
        true
    }

    /// Processes every event due at or before `deadline`, then sets the clock
    /// to `deadline` (if it is in the future).
    pub fn run_until(&mut self, deadline: Instant) {
        loop {
            self.drain_all();
            match self.next_event_time() {
                Some(t) if t <= deadline => {
                    self.now = self.now.max(t);
                    self.process_due();
                }
                _ => break,
            }
        }
        self.now = self.now.max(deadline);
    }

    /// [`run_until`](Network::run_until) `now + duration`.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now + duration);
    }

    /// Steps until nothing will ever happen again. Nodes with a timer that
    /// always re-arms never go idle: the event cap then ends the run.
    pub fn run_until_idle(&mut self) {
        while self.step() {}
    }

    /// Steps while `condition` holds. Returns `true` once it no longer
    /// holds, `false` if the network went idle first.
    pub fn run_while(&mut self, mut condition: impl FnMut(&mut Network) -> bool) -> bool {
        while condition(self) {
            if !self.step() {
                return false;
            }
        }
        true
    }

    // ----- observation -----

    /// Counters of the `src → dst` link (zero if it never carried anything;
    /// those of the link it shares, if any).
    pub fn link_stats(&self, src: SocketAddr, dst: SocketAddr) -> LinkStats {
        self.links
            .get(&self.link_key(src, dst))
            .map_or_else(LinkStats::default, |l| l.stats)
    }

    /// Counters of every link that carried something, by `(src, dst)`, in
    /// address order.
    pub fn all_link_stats(
        &self,
    ) -> impl Iterator<Item = ((SocketAddr, SocketAddr), LinkStats)> + '_ {
        self.links.iter().map(|(&key, link)| (key, link.stats))
    }

    /// The sum of all links' counters.
    pub fn total_stats(&self) -> LinkStats {
        let mut total = LinkStats::default();
        for link in self.links.values() {
            total.merge(&link.stats);
        }
        total
    }

    /// The recorded trace, in order of occurrence (empty unless
    /// [`record`](Network::record) is on).
    pub fn trace(&self) -> &[TraceEvent] {
        self.trace.as_deref().unwrap_or(&[])
    }

    /// Recorded datagrams sent from `src`, in order.
    pub fn sent_from(&self, src: SocketAddr) -> impl Iterator<Item = &TraceEvent> {
        self.trace()
            .iter()
            .filter(move |e| e.kind == TraceKind::Sent && e.src == src)
    }

    /// The recorded trace as text, one event per line with its virtual time,
    /// for failure messages.
    pub fn dump_trace(&self) -> String {
        let mut out = String::new();
        for e in self.trace() {
            let _ = writeln!(
                out,
                "{:>12.6}s {} -> {} #{} {:?} {} bytes",
                (e.time - self.epoch).as_secs_f64(),
                e.src,
                e.dst,
                e.index,
                e.kind,
                e.data.len()
            );
        }
        out
    }

    // ----- internals -----

    fn count_event(&mut self) {
        self.events += 1;
        if self.events > self.max_events {
            panic!(
                "quiver-sim: more than {} events by virtual time {:?} (livelock?) with seed {}; \
                 rerun with {}={} (raise the cap with Network::set_max_events)",
                self.max_events,
                self.now - self.epoch,
                self.seed,
                Seed::ENV,
                self.seed,
            );
        }
    }

    /// The earliest pending delivery or node timeout, not before `now`.
    fn next_event_time(&mut self) -> Option<Instant> {
        let mut next = self.in_flight.peek().map(|Reverse(d)| d.time);
        for slot in &mut self.nodes {
            if let Some(t) = slot.node.poll_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next.map(|t| t.max(self.now))
    }

    fn process_due(&mut self) {
        while self
            .in_flight
            .peek()
            .is_some_and(|Reverse(d)| d.time <= self.now)
        {
            if let Some(Reverse(d)) = self.in_flight.pop() {
                self.deliver(d);
            }
        }
        for i in 0..self.nodes.len() {
            let now = self.now;
            if self.nodes[i].node.poll_timeout().is_some_and(|t| t <= now) {
                self.count_event();
                self.nodes[i].node.handle_timeout(now);
                self.drain(i);
            }
        }
    }

    fn deliver(&mut self, d: InFlight) {
        self.count_event();
        let dst_node = self.by_addr.get(&d.dst).copied();
        let key = self.link_key(d.src, d.dst);
        let link = self
            .links
            .get_mut(&key)
            .expect("a datagram in flight has a link");
        let kind = match dst_node {
            None => {
                link.stats.dropped.add(DropReason::NoRoute);
                TraceKind::Dropped(DropReason::NoRoute)
            }
            Some(_) => {
                link.stats.delivered += 1;
                link.stats.delivered_bytes += d.data.len() as u64;
                if link.highest_delivered.is_some_and(|h| d.index < h) {
                    link.stats.reordered += 1;
                }
                link.highest_delivered = link.highest_delivered.max(Some(d.index));
                TraceKind::Delivered {
                    duplicate: d.duplicate,
                    corrupted: d.corrupted,
                }
            }
        };
        if let Some(trace) = &mut self.trace {
            trace.push(TraceEvent {
                time: self.now,
                src: d.src,
                dst: d.dst,
                index: d.index,
                kind,
                data: d.data.clone(),
            });
        }
        if let Some(id) = dst_node {
            self.nodes[id.0]
                .node
                .handle_datagram_to(self.now, d.src, d.dst, d.ecn, &d.data);
            self.drain(id.0);
        }
    }

    fn drain_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.drain(i);
        }
    }

    /// Sends everything node `i` has to send now.
    fn drain(&mut self, i: usize) {
        while let Some(transmit) = self.nodes[i].node.poll_transmit(self.now) {
            let src = transmit
                .src
                .filter(|a| self.by_addr.get(a) == Some(&NodeId(i)))
                .unwrap_or(self.nodes[i].addr);
            let destination = transmit.destination;
            let ecn = transmit.ecn;
            for datagram in transmit.into_datagrams() {
                self.send_ecn(src, destination, ecn, datagram);
            }
        }
    }

    /// Hands a datagram to the `src → dst` link at `now`.
    fn send(&mut self, src: SocketAddr, dst: SocketAddr, data: Vec<u8>) {
        self.send_ecn(src, dst, 0, data);
    }

    /// Hands a datagram with ECN codepoint `ecn` to the `src → dst` link.
    fn send_ecn(&mut self, src: SocketAddr, dst: SocketAddr, ecn: u8, data: Vec<u8>) {
        self.count_event();
        let now = self.now;
        let seed = self.seed;
        let key = self.link_key(src, dst);
        let link = self
            .links
            .entry(key)
            .or_insert_with(|| Link::new(Rng::new(link_seed(seed, key.0, key.1))));
        let index = link.stats.sent;
        link.stats.sent += 1;
        link.stats.sent_bytes += data.len() as u64;
        let info = DatagramInfo {
            src,
            dst,
            index,
            time: now,
            data: &data,
            ecn,
        };
        if let Some(tap) = &mut self.tap {
            tap(&info);
        }
        let verdict = match &mut self.filter {
            Some(filter) => filter(&info),
            None => Verdict::Deliver,
        };
        if let Some(trace) = &mut self.trace {
            trace.push(TraceEvent {
                time: now,
                src,
                dst,
                index,
                kind: TraceKind::Sent,
                data: data.clone(),
            });
        }
        let outcome = if verdict == Verdict::Drop {
            Err((DropReason::Filter, data))
        } else {
            let config = self.link_configs.get(&key).unwrap_or(&self.default_link);
            let mut outcome = link.transmit(now, config, data);
            if let (Verdict::Delay(d), Ok((first, second))) = (verdict, &mut outcome) {
                first.arrival += d;
                if let Some(second) = second {
                    second.arrival += d;
                }
            }
            outcome
        };
        let ecn = {
            let config = self.link_configs.get(&key).unwrap_or(&self.default_link);
            link.ecn(config, ecn)
        };
        match outcome {
            Err((reason, data)) => {
                link.stats.dropped.add(reason);
                if let Some(trace) = &mut self.trace {
                    trace.push(TraceEvent {
                        time: now,
                        src,
                        dst,
                        index,
                        kind: TraceKind::Dropped(reason),
                        data,
                    });
                }
            }
            Ok((first, second)) => {
                link.stats.duplicated += u64::from(second.is_some());
                for (copy, duplicate) in [(Some(first), false), (second, true)] {
                    let Some(copy) = copy else { continue };
                    link.stats.corrupted += u64::from(copy.corrupted);
                    self.in_flight.push(Reverse(InFlight {
                        time: copy.arrival,
                        seq: self.next_seq,
                        src,
                        dst,
                        index,
                        data: copy.data,
                        ecn,
                        duplicate,
                        corrupted: copy.corrupted,
                    }));
                    self.next_seq += 1;
                }
            }
        }
    }
}

fn wrong_type<N>(id: NodeId) -> ! {
    panic!("node {id:?} is not a {}", std::any::type_name::<N>())
}

/// The seed of the generator of the `src → dst` link: depends only on the
/// run's seed and the two addresses.
fn link_seed(seed: Seed, src: SocketAddr, dst: SocketAddr) -> u64 {
    let mut words = vec![0x6c69_6e6b];
    for addr in [src, dst] {
        match addr.ip() {
            IpAddr::V4(ip) => words.extend([4, u64::from(u32::from(ip))]),
            IpAddr::V6(ip) => {
                let bits = u128::from(ip);
                words.extend([6, (bits >> 64) as u64, bits as u64]);
            }
        }
        words.push(u64::from(addr.port()));
    }
    mix(seed.0, words)
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("seed", &self.seed)
            .field("elapsed", &self.elapsed())
            .field(
                "nodes",
                &self.nodes.iter().map(|s| s.addr).collect::<Vec<_>>(),
            )
            .field("links", &self.links.len())
            .field("in_flight", &self.in_flight.len())
            .field("events", &self.events)
            .field("recording", &self.trace.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for Network {
    /// Names the seed when a test panics while the network is alive, so any
    /// failing scenario can be replayed.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "quiver-sim: panicked during a simulation with seed {} (rerun with {}={})",
                self.seed,
                Seed::ENV,
                self.seed
            );
        }
    }
}
