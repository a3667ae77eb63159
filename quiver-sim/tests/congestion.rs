//! Congestion controllers chosen through `TransportConfig::congestion`:
//! one written here, outside quiver-proto, through the public
//! `ControllerFactory` and `Controller` traits, and the two quiver-proto
//! ships (NewReno, CUBIC with HyStart++) over impaired links.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quiver_proto::TransportConfig;
use quiver_proto::congestion::{Controller, ControllerFactory, CubicConfig, NewRenoConfig};
use quiver_proto::recovery::RttEstimator;
use quiver_sim::quic::{AppConfig, Pair, SendPlan};
use quiver_sim::{LinkConfig, Seed, for_each_seed};

const MB: u64 = 1_000_000;

/// A controller with a constant window that counts what it is told.
#[derive(Debug, Clone)]
struct FixedWindow {
    window: u64,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    built: AtomicU64,
    sent: AtomicU64,
    acked_bytes: AtomicU64,
    congestion_events: AtomicU64,
}

impl Controller for FixedWindow {
    fn on_packet_sent(&mut self, _now: Instant, _bytes: u64, bytes_in_flight: u64) {
        assert!(bytes_in_flight <= self.window + 2_000, "{bytes_in_flight}");
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
    }

    fn on_ack(
        &mut self,
        _now: Instant,
        _sent_time: Instant,
        bytes: u64,
        _app_limited: bool,
        _rtt: &RttEstimator,
    ) {
        self.counters
            .acked_bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }

    fn on_congestion_event(
        &mut self,
        _now: Instant,
        _sent_time: Instant,
        _is_persistent_congestion: bool,
        _lost_bytes: u64,
    ) {
        self.counters
            .congestion_events
            .fetch_add(1, Ordering::Relaxed);
    }

    fn set_max_datagram_size(&mut self, _max_datagram_size: u16) {}

    fn window(&self) -> u64 {
        self.window
    }

    fn initial_window(&self) -> u64 {
        self.window
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }
}

#[derive(Debug)]
struct FixedWindowFactory {
    window: u64,
    counters: Arc<Counters>,
}

impl ControllerFactory for FixedWindowFactory {
    fn build(&self, _now: Instant, _max_datagram_size: u16) -> Box<dyn Controller> {
        self.counters.built.fetch_add(1, Ordering::Relaxed);
        Box::new(FixedWindow {
            window: self.window,
            counters: self.counters.clone(),
        })
    }
}

fn transport(congestion: Arc<dyn ControllerFactory>) -> TransportConfig {
    TransportConfig {
        congestion,
        ..TransportConfig::default()
    }
}

/// The server sends `len` bytes to the client; returns the virtual time the
/// transfer took after the handshake.
fn download(pair: &mut Pair, len: u64, limit: Duration) -> Duration {
    pair.server_app(AppConfig {
        send: vec![SendPlan::uni(len)],
        ..AppConfig::default()
    });
    let receiver = pair.client_app(AppConfig::default());
    pair.connect_and_wait(Duration::from_secs(25));
    let start = pair.net.now();
    let done = pair.run_until(limit, |_| receiver.borrow().streams_finished() == 1);
    let r = receiver.borrow();
    assert!(
        done,
        "{} of {len} bytes after {limit:?}",
        r.bytes_received()
    );
    r.assert_intact();
    assert_eq!(r.bytes_received(), len);
    pair.net.now() - start
}

#[test]
fn a_controller_from_outside_the_crate_drives_the_sender() {
    let counters = Arc::new(Counters::default());
    let factory = Arc::new(FixedWindowFactory {
        window: 40_000,
        counters: counters.clone(),
    });
    let link = LinkConfig {
        loss_rate: 0.01,
        ..LinkConfig::default()
    };
    let mut pair = Pair::with_configs(
        Seed::from_env_or(7),
        link,
        TransportConfig::default(),
        transport(factory),
    );
    download(&mut pair, MB, Duration::from_secs(60));
    assert_eq!(pair.server_conn().congestion_window(), 40_000);
    assert_eq!(counters.built.load(Ordering::Relaxed), 1);
    // 1 MB in datagrams of at most 1452 bytes.
    assert!(counters.sent.load(Ordering::Relaxed) >= 680);
    assert!(counters.acked_bytes.load(Ordering::Relaxed) >= MB * 9 / 10);
    assert!(counters.congestion_events.load(Ordering::Relaxed) > 0);
}

/// 20 Mbit/s, 20 ms each way, a 100 KB bottleneck queue.
fn bottleneck() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(20),
        bandwidth: Some(20_000_000 / 8),
        queue_limit: Some(100_000),
        ..LinkConfig::default()
    }
}

#[test]
fn cubic_and_new_reno_fill_a_bottleneck() {
    let len = 5 * MB;
    for_each_seed(2, |seed| {
        for (name, cc) in [
            (
                "newreno",
                Arc::new(NewRenoConfig::default()) as Arc<dyn ControllerFactory>,
            ),
            ("cubic", Arc::new(CubicConfig::default())),
        ] {
            let mut pair =
                Pair::with_configs(seed, bottleneck(), transport(cc.clone()), transport(cc));
            let took = download(&mut pair, len, Duration::from_secs(60));
            // 2 s at the link's rate; slow start and recovery may add some.
            assert!(
                took < Duration::from_secs(4),
                "{name}: {took:?} for {len} bytes at 20 Mbit/s"
            );
        }
    });
}

#[test]
fn cubic_completes_over_loss_and_reordering() {
    let link = LinkConfig {
        loss_rate: 0.05,
        jitter: Duration::from_millis(5),
        reorder_rate: 0.05,
        reorder_delay: Duration::from_millis(15),
        ..LinkConfig::default()
    };
    for_each_seed(3, |seed| {
        let cc: Arc<dyn ControllerFactory> = Arc::new(CubicConfig::default());
        let mut pair = Pair::with_configs(seed, link.clone(), transport(cc.clone()), transport(cc));
        download(&mut pair, 2 * MB, Duration::from_secs(120));
    });
}

/// CUBIC's slow start on a deep-buffered bottleneck: HyStart++ sees the
/// queue's delay and leaves slow start before the queue overflows (RFC 9406
/// §4.1), so far fewer packets are lost than in plain slow start.
#[test]
fn hystart_leaves_slow_start_before_a_deep_queue_overflows() {
    let link = LinkConfig {
        delay: Duration::from_millis(20),
        bandwidth: Some(20_000_000 / 8),
        queue_limit: Some(400_000),
        ..LinkConfig::default()
    };
    let seed = Seed::from_env_or(3);
    let mut lost = Vec::new();
    for hystart in [true, false] {
        let cc: Arc<dyn ControllerFactory> = Arc::new(CubicConfig {
            hystart,
            ..CubicConfig::default()
        });
        let mut pair = Pair::with_configs(seed, link.clone(), transport(cc.clone()), transport(cc));
        download(&mut pair, 4 * MB, Duration::from_secs(60));
        lost.push(pair.server_conn().stats().packets_lost);
    }
    let (with, without) = (lost[0], lost[1]);
    assert!(
        without >= 20,
        "plain slow start overflows the queue: {lost:?}"
    );
    // 88 against 383 (the link has no randomness): CSS still overshoots a
    // little, growing the window 1.25 times a round for five rounds.
    assert!(
        with * 3 <= without,
        "HyStart++ {with} lost, plain {without}"
    );
}
