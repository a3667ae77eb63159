//! Bulk transfers over impaired links: the bytes arrive intact and in order.

use std::time::Duration;

use quiver_sim::quic::{AppConfig, CLIENT_ADDR, Pair, SERVER_ADDR, SendPlan, SharedApp};
use quiver_sim::{LinkConfig, Seed, for_each_seed};

const MB: u64 = 1_000_000;

/// A lossy, reordering link: 5% loss, up to 5 ms of jitter on a 10 ms
/// one-way delay, and 2% of datagrams held back a further 15 ms.
fn lossy_reordering_link() -> LinkConfig {
    LinkConfig {
        loss_rate: 0.05,
        jitter: Duration::from_millis(5),
        reorder_rate: 0.02,
        reorder_delay: Duration::from_millis(15),
        ..LinkConfig::default()
    }
}

/// Sends `len` bytes on one stream from the client (or the server) and runs
/// until the receiver has read the FIN. Returns the receiver's state and
/// the virtual time the transfer took after the handshake.
fn transfer(
    pair: &mut Pair,
    len: u64,
    client_sends: bool,
    limit: Duration,
) -> (SharedApp, Duration) {
    let plan = AppConfig {
        send: vec![SendPlan::uni(len)],
        ..AppConfig::default()
    };
    let (sender, receiver) = if client_sends {
        (pair.client_app(plan), pair.server_app(AppConfig::default()))
    } else {
        (pair.server_app(plan), pair.client_app(AppConfig::default()))
    };
    let (client, _) = pair.connect_and_wait(Duration::from_secs(25));
    let start = pair.net.now();
    let done = pair.run_until(limit, |_| receiver.borrow().streams_finished() == 1);
    let r = receiver.borrow();
    assert!(
        done,
        "transfer incomplete after {limit:?}: {} of {len} bytes read; sender {:?}; client {:?}",
        r.bytes_received(),
        sender.borrow().send,
        pair.client_conn(client).stats(),
    );
    r.assert_intact();
    assert_eq!(r.bytes_received(), len);
    assert!(r.lost.is_none(), "{:?}", r.lost);
    drop(r);
    (receiver, pair.net.now() - start)
}

#[test]
fn ten_megabytes_client_to_server_arrive_intact_over_loss_and_reordering() {
    for_each_seed(3, |seed| {
        let mut pair = Pair::new(seed, lossy_reordering_link());
        transfer(&mut pair, 10 * MB, true, Duration::from_secs(300));
        let stats = pair.net.link_stats(CLIENT_ADDR, SERVER_ADDR);
        assert!(stats.dropped.loss > 0 && stats.reordered > 0, "{stats:?}");
    });
}

#[test]
fn ten_megabytes_server_to_client_arrive_intact_over_loss_and_reordering() {
    for_each_seed(3, |seed| {
        let mut pair = Pair::new(seed, lossy_reordering_link());
        transfer(&mut pair, 10 * MB, false, Duration::from_secs(300));
    });
}

#[test]
fn one_megabyte_arrives_intact_over_loss_and_reordering_on_many_seeds() {
    for_each_seed(20, |seed| {
        let mut pair = Pair::new(seed, lossy_reordering_link());
        transfer(&mut pair, MB, seed.0 % 2 == 0, Duration::from_secs(120));
    });
}

#[test]
fn one_megabyte_read_as_chunks_arrives_intact_over_loss_and_reordering() {
    // `read_chunk` hands out the reassembly buffer itself: RFC 9000 §2.2
    // ordered delivery over loss and reordering, and the credit it
    // returns (§4.1/§4.2) must keep a transfer larger than the windows
    // going.
    for_each_seed(10, |seed| {
        let mut pair = Pair::new(seed, lossy_reordering_link());
        let plan = AppConfig {
            send: vec![SendPlan::uni(MB)],
            ..AppConfig::default()
        };
        let reader = AppConfig {
            read_chunks: true,
            ..AppConfig::default()
        };
        let (sender, receiver) = if seed.0 % 2 == 0 {
            (pair.client_app(plan), pair.server_app(reader))
        } else {
            (pair.server_app(plan), pair.client_app(reader))
        };
        pair.connect_and_wait(Duration::from_secs(25));
        let done = pair.run_until(Duration::from_secs(120), |_| {
            receiver.borrow().streams_finished() == 1
        });
        let r = receiver.borrow();
        assert!(
            done,
            "{} of {MB} bytes read; {:?}",
            r.bytes_received(),
            sender.borrow().send
        );
        r.assert_intact();
        assert_eq!(r.bytes_received(), MB);
    });
}

#[test]
fn transfer_over_a_bandwidth_limited_link_completes() {
    // 10 Mbit/s with a 64 KB bottleneck queue: tail drops when the sender
    // overshoots the queue.
    let link = LinkConfig {
        bandwidth: Some(10_000_000 / 8),
        queue_limit: Some(64 * 1024),
        ..LinkConfig::default()
    };
    let mut pair = Pair::new(Seed::from_env_or(1), link);
    let len = 5 * MB;
    let (_, took) = transfer(&mut pair, len, true, Duration::from_secs(120));
    // At 1.25 MB/s the data alone needs 4 s; congestion control may not
    // leave the link idle for long.
    assert!(took >= Duration::from_secs(4), "{took:?}");
    assert!(
        took <= Duration::from_secs(12),
        "took {took:?} for {len} bytes at 10 Mbit/s"
    );
}

#[test]
fn transfer_through_a_shallow_bottleneck_queue_recovers_from_tail_drops() {
    for_each_seed(5, |seed| {
        // 10 Mbit/s with room for only 8 full datagrams: slow start
        // overflows it, and the queue drops are the only losses.
        let link = LinkConfig {
            bandwidth: Some(10_000_000 / 8),
            queue_limit: Some(8 * 1200),
            jitter: Duration::from_millis(1),
            ..LinkConfig::default()
        };
        let mut pair = Pair::new(seed, link);
        transfer(&mut pair, 2 * MB, true, Duration::from_secs(60));
        let stats = pair.net.link_stats(CLIENT_ADDR, SERVER_ADDR);
        assert!(stats.dropped.queue_full > 0, "{stats:?}");
    });
}
