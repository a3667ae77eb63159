//! Several datagrams per transmit (GSO batches built by the core) and the
//! pacer that bounds them, in virtual time.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use quiver_sim::quic::{AppConfig, DEFAULT_MAX_DATAGRAMS, Pair, SendPlan, TransmitCounts};
use quiver_sim::{LinkConfig, for_each_seed};

const MB: u64 = 1_000_000;

/// The server sends `len` bytes to the client, taking `max_datagrams` per
/// transmit; returns the virtual time the transfer took after the
/// handshake and the server's transmit counts.
fn download(pair: &mut Pair, len: u64, max_datagrams: usize) -> (Duration, TransmitCounts) {
    pair.server().set_max_datagrams(max_datagrams);
    pair.client().set_max_datagrams(max_datagrams);
    pair.server_app(AppConfig {
        send: vec![SendPlan::uni(len)],
        ..AppConfig::default()
    });
    let receiver = pair.client_app(AppConfig::default());
    pair.connect_and_wait(Duration::from_secs(25));
    let start = pair.net.now();
    let done = pair.run_until(Duration::from_secs(60), |_| {
        receiver.borrow().streams_finished() == 1
    });
    let r = receiver.borrow();
    assert!(done, "{} of {len} bytes", r.bytes_received());
    r.assert_intact();
    (pair.net.now() - start, pair.server().transmits)
}

#[test]
fn bulk_transfer_sends_multi_datagram_transmits() {
    let link = LinkConfig {
        delay: Duration::from_millis(10),
        ..LinkConfig::default()
    };
    for_each_seed(3, |seed| {
        let mut pair = Pair::new(seed, link.clone());
        let (_, counts) = download(&mut pair, 2 * MB, DEFAULT_MAX_DATAGRAMS);
        assert!(counts.batched > 0, "{counts:?}");
        assert_eq!(counts.largest, DEFAULT_MAX_DATAGRAMS as u64, "{counts:?}");
        // In virtual time the pacer wakes the sender the moment a packet's
        // credit is there, so batches form after idle periods and ACKs
        // that open the window, not at every release.
        assert!(counts.datagrams > counts.transmits, "{counts:?}");
    });
}

/// Batching changes how datagrams are handed to the socket, not which
/// datagrams leave when: with one or ten per transmit the transfer is the
/// same, to the nanosecond and the datagram.
#[test]
fn batches_put_the_same_datagrams_on_the_wire() {
    let link = LinkConfig {
        delay: Duration::from_millis(15),
        loss_rate: 0.01,
        bandwidth: Some(50_000_000 / 8),
        queue_limit: Some(150_000),
        ..LinkConfig::default()
    };
    for_each_seed(3, |seed| {
        let mut runs = Vec::new();
        for max in [1, DEFAULT_MAX_DATAGRAMS] {
            let mut pair = Pair::new(seed, link.clone());
            let (took, counts) = download(&mut pair, MB, max);
            let stats = pair.server_conn().stats();
            runs.push((took, counts.datagrams, stats.packets_lost));
        }
        assert_eq!(runs[0], runs[1], "one per transmit, then batches");
    });
}

/// On a 20 Mbit/s bottleneck with a shallow queue, the pacer spreads the
/// batches: no millisecond carries more than a send quantum and what the
/// rate earns meanwhile (draft-ietf-ccwg-bbr §5.6.3, RFC 9002 §7.7), the
/// queue seldom overflows, and the link stays busy.
#[test]
fn pacing_holds_on_a_rate_limited_path() {
    let rate = 20_000_000 / 8;
    let link = LinkConfig {
        delay: Duration::from_millis(20),
        bandwidth: Some(rate),
        queue_limit: Some(40_000),
        ..LinkConfig::default()
    };
    for_each_seed(3, |seed| {
        let mut pair = Pair::new(seed, link.clone());
        let sends: Rc<RefCell<Vec<(Instant, usize)>>> = Rc::default();
        let tap = sends.clone();
        let server = quiver_sim::quic::SERVER_ADDR;
        pair.net.set_tap(move |d| {
            if d.src == server {
                tap.borrow_mut().push((d.time, d.data.len()));
            }
        });
        let len = 4 * MB;
        let (took, counts) = download(&mut pair, len, DEFAULT_MAX_DATAGRAMS);
        assert!(counts.batched > 0, "{counts:?}");
        let sends = sends.borrow();
        // The most bytes sent within any 1 ms.
        let mut burst = 0;
        let mut window = 0;
        let mut first = 0;
        for &(t, size) in sends.iter() {
            window += size;
            while sends[first].0 + Duration::from_millis(1) <= t {
                window -= sends[first].1;
                first += 1;
            }
            burst = burst.max(window);
        }
        let stats = pair.server_conn().stats();
        eprintln!(
            "seed {seed:?}: {took:?}, largest 1 ms burst {burst} B, {} of {} packets lost, {counts:?}",
            stats.packets_lost, stats.packets_sent
        );
        assert!(burst <= 30_000, "{burst} bytes within 1 ms");
        // 4 MB at 2.5 MB/s is 1.6 s; slow start and recovery add some.
        assert!(took < Duration::from_millis(2_600), "{took:?}");
        assert!(
            stats.packets_lost * 10 < stats.packets_sent,
            "{} of {} lost",
            stats.packets_lost,
            stats.packets_sent
        );
    });
}
