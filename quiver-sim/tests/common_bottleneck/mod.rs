//! Two bulk flows through one bottleneck, for fairness and coexistence
//! tests: a server sends an endless stream on each connection, and two
//! client hosts, behind one shared link from the server (one drop-tail
//! queue, one rate), read everything and count the bytes.
#![allow(dead_code)] // each test file uses a subset

mod cross_traffic;

pub use cross_traffic::{CROSS_ADDR, CrossTraffic, SINK_ADDR, Sink};

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use quiver_proto::congestion::{Controller, ControllerFactory};
use quiver_proto::frame::Dir;
use quiver_proto::streams::StreamId;
use quiver_proto::{ConnectionHandle, TransportConfig};
use quiver_sim::quic::{CLIENT_ADDR, Pair, SERVER_ADDR};
use quiver_sim::{LinkConfig, NodeId, Seed, loopback};

/// The bottleneck: 20 Mbit/s.
pub const RATE: u64 = 20_000_000 / 8;
/// 20 ms each way.
pub const ONE_WAY: Duration = Duration::from_millis(20);
/// RATE * 40 ms.
pub const BDP: u64 = 100_000;
/// The second client host.
pub const CLIENT2_ADDR: SocketAddr = loopback(3, 5000);

/// A [`RATE`] link with [`ONE_WAY`] delay and a drop-tail queue of
/// `queue` bytes.
pub fn bottleneck(queue: usize) -> LinkConfig {
    LinkConfig {
        delay: ONE_WAY,
        bandwidth: Some(RATE),
        queue_limit: Some(queue),
        ..LinkConfig::default()
    }
}

/// Bytes per second.
pub fn goodput(len: u64, took: Duration) -> u64 {
    (len as f64 / took.as_secs_f64()) as u64
}

/// Builds each connection's controller from the next factory of a list,
/// in the order the server accepts them (cycling).
#[derive(Debug)]
pub struct InTurn {
    factories: Vec<Arc<dyn ControllerFactory>>,
    built: AtomicUsize,
}

impl InTurn {
    pub fn new(factories: Vec<Arc<dyn ControllerFactory>>) -> Self {
        assert!(!factories.is_empty());
        Self {
            factories,
            built: AtomicUsize::new(0),
        }
    }
}

impl ControllerFactory for InTurn {
    fn build(&self, now: Instant, max_datagram_size: u16) -> Box<dyn Controller> {
        let n = self.built.fetch_add(1, Ordering::Relaxed);
        self.factories[n % self.factories.len()].build(now, max_datagram_size)
    }
}

/// Bytes a client node received, per connection.
pub type Received = Rc<RefCell<HashMap<ConnectionHandle, u64>>>;

/// Every server connection sends an endless unidirectional stream.
pub fn bulk_server(pair: &mut Pair) {
    let mut streams: HashMap<ConnectionHandle, StreamId> = HashMap::new();
    let chunk = vec![0x5a; 32 * 1024];
    pair.server().set_app(move |ep, _now| {
        for h in ep.connection_handles() {
            let Some(conn) = ep.connection(h) else {
                continue;
            };
            while conn.poll().is_some() {}
            let id = match streams.get(&h) {
                Some(id) => *id,
                None => match conn.open_stream(Dir::Uni) {
                    Some(id) => *streams.entry(h).or_insert(id),
                    None => continue,
                },
            };
            while conn.write(id, &chunk).is_ok_and(|n| n > 0) {}
        }
    });
}

/// Client node `node` reads everything on every connection, counting the
/// bytes per connection.
pub fn bulk_client(pair: &mut Pair, node: NodeId) -> Received {
    let received: Received = Rc::default();
    let counts = received.clone();
    let mut incoming: Vec<(ConnectionHandle, StreamId)> = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    pair.net
        .node_mut::<quiver_sim::quic::QuicNode>(node)
        .set_app(move |ep, now| {
            for h in ep.connection_handles() {
                let Some(conn) = ep.connection(h) else {
                    continue;
                };
                while conn.poll().is_some() {}
                while let Some(id) = conn.accept_stream(Dir::Uni) {
                    incoming.push((h, id));
                }
                for &(_, id) in incoming.iter().filter(|(c, _)| *c == h) {
                    while let Ok(Some(n)) = conn.read(now, id, &mut buf) {
                        if n == 0 {
                            break;
                        }
                        *counts.borrow_mut().entry(h).or_default() += n as u64;
                    }
                }
            }
        });
    received
}

/// What each of two flows delivered over the measured span.
#[derive(Debug, Clone, Copy)]
pub struct Shares {
    /// Bytes of the flow that started first, and of the second.
    pub first: u64,
    pub second: u64,
    pub span: Duration,
}

impl Shares {
    /// Both flows together, in bytes per second.
    pub fn total_goodput(&self) -> u64 {
        goodput(self.first + self.second, self.span)
    }

    /// The smaller share over the larger (1: equal).
    pub fn balance(&self) -> f64 {
        let (lo, hi) = (self.first.min(self.second), self.first.max(self.second));
        if hi == 0 { 1.0 } else { lo as f64 / hi as f64 }
    }
}

impl std::fmt::Display for Shares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "first {} B/s, second {} B/s (balance {:.2})",
            goodput(self.first, self.span),
            goodput(self.second, self.span),
            self.balance()
        )
    }
}

/// Two flows from two client hosts whose downloads share one bottleneck
/// `link` (the server's links to both hosts go through one queue). The
/// server's connections take their controllers from `first` and `second`
/// in the order they connect; the second flow starts once the first has
/// completed its handshake and run for `head_start`. After `warmup` more,
/// each flow's bytes are counted for `span`.
pub fn two_flows(
    seed: Seed,
    link: LinkConfig,
    first: Arc<dyn ControllerFactory>,
    second: Arc<dyn ControllerFactory>,
    head_start: Duration,
    warmup: Duration,
    span: Duration,
) -> Shares {
    two_flows_with_cross_traffic(seed, link, 0, first, second, head_start, warmup, span)
}

/// [`two_flows`], with [`CrossTraffic`] of `cross_rate` bytes per second
/// on average (none if 0) through the same bottleneck queue from the
/// start.
#[allow(clippy::too_many_arguments)]
pub fn two_flows_with_cross_traffic(
    seed: Seed,
    link: LinkConfig,
    cross_rate: u64,
    first: Arc<dyn ControllerFactory>,
    second: Arc<dyn ControllerFactory>,
    head_start: Duration,
    warmup: Duration,
    span: Duration,
) -> Shares {
    two_flows_configured(
        seed,
        link,
        cross_rate,
        TransportConfig::default(),
        first,
        second,
        head_start,
        warmup,
        span,
    )
}

/// [`two_flows_with_cross_traffic`] with the server's transport
/// configuration `server` (its controller replaced by `first` and
/// `second`), for diagnostics that switch a mechanism off.
#[allow(clippy::too_many_arguments)]
pub fn two_flows_configured(
    seed: Seed,
    link: LinkConfig,
    cross_rate: u64,
    server: TransportConfig,
    first: Arc<dyn ControllerFactory>,
    second: Arc<dyn ControllerFactory>,
    head_start: Duration,
    warmup: Duration,
    span: Duration,
) -> Shares {
    let server = TransportConfig {
        congestion: Arc::new(InTurn::new(vec![first, second])),
        ..server
    };
    let mut pair = Pair::with_configs(seed, link, TransportConfig::default(), server);
    let client2 = pair.add_client(CLIENT2_ADDR);
    pair.net
        .share_link(SERVER_ADDR, CLIENT2_ADDR, (SERVER_ADDR, CLIENT_ADDR));
    if cross_rate > 0 {
        let rng = pair.net.rng("cross-traffic");
        let start = pair.net.now();
        pair.net
            .add_node(CROSS_ADDR, CrossTraffic::new(rng, cross_rate, start));
        pair.net.add_node(SINK_ADDR, Sink);
        pair.net
            .share_link(CROSS_ADDR, SINK_ADDR, (SERVER_ADDR, CLIENT_ADDR));
    }
    bulk_server(&mut pair);
    let client1 = pair.client;
    let got1 = bulk_client(&mut pair, client1);
    let got2 = bulk_client(&mut pair, client2);

    let h1 = pair.connect_from(client1);
    assert!(pair.run_handshake(h1, Duration::from_secs(5)), "{seed}");
    pair.run_until(head_start, |_| false);
    let h2 = pair.connect_from(client2);
    let confirmed = pair.run_until(Duration::from_secs(5), |p| {
        p.net
            .node_mut::<quiver_sim::quic::QuicNode>(client2)
            .endpoint
            .connection(h2)
            .is_some_and(|c| c.is_handshake_confirmed())
    });
    assert!(confirmed, "{seed}: the second flow did not connect");
    assert_eq!(pair.server().accepted.len(), 2);
    pair.run_until(warmup, |_| false);
    let at = |r: &Received, h| r.borrow().get(&h).copied().unwrap_or(0);
    let (a0, b0) = (at(&got1, h1), at(&got2, h2));
    pair.run_until(span, |_| false);
    Shares {
        first: at(&got1, h1) - a0,
        second: at(&got2, h2) - b0,
        span,
    }
}
