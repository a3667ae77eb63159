//! Loss recovery (RFC 9002): a lost tail is recovered by the probe timeout,
//! and corrupted datagrams are dropped without harm.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use quiver_sim::quic::{AppConfig, CLIENT_ADDR, Pair, SERVER_ADDR, SendPlan, SharedApp};
use quiver_sim::{LinkConfig, Seed, Verdict, for_each_seed};

/// Smallest datagram taken to carry stream data: an ACK-only 1-RTT packet
/// is about 40 bytes (1 + 8-byte CID + packet number + ACK + 16-byte tag).
const DATA_DATAGRAM: usize = 60;

const LEN: u64 = 200_000;

/// One datagram as the tap saw it.
#[derive(Debug, Clone)]
struct Sent {
    index: u64,
    time: Instant,
    len: usize,
}

/// Sets up a pair where `sender` sends [`LEN`] bytes on one stream; the
/// receiver's windows exceed the transfer, so after the handshake the
/// sender's datagrams all carry stream data. Returns the pair, the
/// receiver's state, and the log of the sender's datagrams.
fn setup(
    seed: Seed,
    link: LinkConfig,
    sender: SocketAddr,
) -> (Pair, SharedApp, Rc<RefCell<Vec<Sent>>>) {
    let mut pair = Pair::new(seed, link);
    let plan = AppConfig {
        send: vec![SendPlan::uni(LEN)],
        ..AppConfig::default()
    };
    let receiver = if sender == CLIENT_ADDR {
        pair.client_app(plan);
        pair.server_app(AppConfig::default())
    } else {
        pair.server_app(plan);
        pair.client_app(AppConfig::default())
    };
    let log = Rc::new(RefCell::new(Vec::new()));
    let tap_log = log.clone();
    pair.net.set_tap(move |d| {
        if d.src == sender {
            tap_log.borrow_mut().push(Sent {
                index: d.index,
                time: d.time,
                len: d.data.len(),
            });
        }
    });
    (pair, receiver, log)
}

fn run_transfer(pair: &mut Pair, receiver: &SharedApp, limit: Duration) -> Option<Instant> {
    pair.connect();
    let done = pair.run_until(limit, |_| receiver.borrow().streams_finished() == 1);
    done.then(|| {
        receiver
            .borrow()
            .recv
            .values()
            .next()
            .unwrap()
            .fin_at
            .unwrap()
    })
}

/// Runs the transfer once to find the sender's last `n` data-carrying
/// datagrams, then runs it again, identically (same seed), with exactly
/// those dropped, and again with the first `probes_lost` datagrams after
/// them dropped too. The lost tail is only recoverable by the probe
/// timeout: no later packet is acknowledged to reveal the loss.
fn tail_loss(seed: Seed, link: LinkConfig, sender: SocketAddr, n: usize, probes_lost: u64) {
    let (mut pair, receiver, log) = setup(seed, link.clone(), sender);
    let clean_done =
        run_transfer(&mut pair, &receiver, Duration::from_secs(30)).expect("clean run");
    let tail: Vec<u64> = log
        .borrow()
        .iter()
        .filter(|s| s.time < clean_done && s.len > DATA_DATAGRAM)
        .map(|s| s.index)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .take(n)
        .collect();
    assert_eq!(tail.len(), n);
    let last = *tail.iter().max().unwrap();

    let (mut pair, receiver, _log) = setup(seed, link, sender);
    let dropped = Rc::new(RefCell::new(Vec::new()));
    let seen = dropped.clone();
    pair.net.set_filter(move |d| {
        let is_probe = d.index > last && d.index <= last + probes_lost;
        if d.src == sender && (tail.contains(&d.index) || is_probe) {
            seen.borrow_mut().push(d.index);
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let done = run_transfer(&mut pair, &receiver, Duration::from_secs(30));
    let r = receiver.borrow();
    let done = done.unwrap_or_else(|| {
        panic!(
            "n={n} probes_lost={probes_lost}: transfer stalled, {} of {LEN} read\n{}",
            r.bytes_received(),
            pair.net.dump_trace()
        )
    });
    r.assert_intact();
    assert_eq!(r.bytes_received(), LEN);
    assert!(r.lost.is_none());
    // The whole tail was dropped; of the probes, as many as were sent
    // before the transfer completed (probes carry data, RFC 9002 §6.2.4,
    // so recovery may need fewer datagrams than planned).
    let dropped = dropped.borrow().len();
    assert!(
        (n..=n + probes_lost as usize).contains(&dropped),
        "dropped {dropped}, planned {n} + {probes_lost} probes"
    );
    // Recovery takes a PTO or a few (tens of ms each here, doubling per
    // lost probe), far from the 30 s idle timeout.
    let delay = done - clean_done;
    let bound = Duration::from_millis(500) * (1 << probes_lost);
    assert!(
        delay < bound,
        "n={n} probes_lost={probes_lost}: recovery took {delay:?} longer than without loss"
    );
}

#[test]
fn tail_loss_of_client_data_is_recovered_by_the_probe_timeout() {
    for n in 1..=6 {
        tail_loss(
            Seed::from_env_or(1),
            LinkConfig::default(),
            CLIENT_ADDR,
            n,
            0,
        );
    }
}

#[test]
fn tail_loss_of_server_data_is_recovered_by_the_probe_timeout() {
    for n in 1..=6 {
        tail_loss(
            Seed::from_env_or(1),
            LinkConfig::default(),
            SERVER_ADDR,
            n,
            0,
        );
    }
}

#[test]
fn tail_loss_is_recovered_even_when_the_probes_are_lost_too() {
    for probes_lost in 1..=4 {
        tail_loss(
            Seed::from_env_or(1),
            LinkConfig::default(),
            CLIENT_ADDR,
            3,
            probes_lost,
        );
    }
}

#[test]
fn tail_loss_is_recovered_on_a_lossy_jittery_link() {
    for_each_seed(20, |seed| {
        let link = LinkConfig {
            loss_rate: 0.02,
            jitter: Duration::from_millis(3),
            ..LinkConfig::default()
        };
        let sender = if seed.0 % 2 == 0 {
            CLIENT_ADDR
        } else {
            SERVER_ADDR
        };
        tail_loss(seed, link, sender, 1 + (seed.0 % 4) as usize, seed.0 % 3);
    });
}

#[test]
fn corrupted_datagrams_are_dropped_without_harming_the_connection() {
    for_each_seed(20, |seed| {
        // A tenth of all datagrams, both ways, handshake included, have a
        // bit flipped: header, CID, length or ciphertext.
        let link = LinkConfig {
            corrupt_rate: 0.1,
            ..LinkConfig::default()
        };
        let mut pair = Pair::new(seed, link);
        let client = pair.client_app(AppConfig {
            send: vec![SendPlan::bi(300_000)],
            ..AppConfig::default()
        });
        let server = pair.server_app(AppConfig {
            echo: true,
            ..AppConfig::default()
        });
        let c = pair.connect();
        let done = pair.run_until(Duration::from_secs(60), |_| {
            client.borrow().streams_finished() == 1
        });
        assert!(
            done,
            "echo incomplete: client read {}, client {:?}",
            client.borrow().bytes_received(),
            pair.client_conn(c).close_reason()
        );
        client.borrow().assert_intact();
        server.borrow().assert_intact();
        assert_eq!(client.borrow().bytes_received(), 300_000);
        assert!(client.borrow().lost.is_none() && server.borrow().lost.is_none());
        let corrupted = pair.net.total_stats().corrupted;
        assert!(corrupted > 0);
        // Every corrupted datagram failed authentication (or routing).
        let dropped = pair.client_conn(c).stats().packets_dropped
            + pair.server_conn().stats().packets_dropped;
        assert!(dropped > 0, "{corrupted} corrupted, none dropped");
    });
}
