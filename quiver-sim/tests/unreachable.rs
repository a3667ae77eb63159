//! ICMP "destination unreachable" reports (`Endpoint::handle_unreachable`)
//! in virtual time, over impaired links.
//!
//! RFC 9000 §14.2.1: "ICMP message validation MUST include matching IP
//! addresses and UDP ports [...] and, when possible, connection IDs";
//! §21.2: unauthenticated ICMP is of "extremely limited" use. quiver
//! believes a report only for a client's first flight, before anything came
//! back: the attempt then ends at once (one round trip) rather than at its
//! idle timeout. Once the server answered, forged or stale reports change
//! nothing.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use quiver_proto::{ConnectionError, TransportConfig, Unreachable};
use quiver_sim::quic::{AppConfig, CLIENT_ADDR, Pair, SERVER_ADDR, SendPlan};
use quiver_sim::{LinkConfig, Verdict, for_each_seed};

const DELAY: Duration = Duration::from_millis(20);
const IDLE: Duration = Duration::from_secs(30);

fn link(loss: f64) -> LinkConfig {
    LinkConfig {
        delay: DELAY,
        jitter: Duration::from_millis(3),
        loss_rate: loss,
        ..LinkConfig::default()
    }
}

fn transport() -> TransportConfig {
    TransportConfig {
        max_idle_timeout: Some(IDLE),
        ..TransportConfig::default()
    }
}

/// Datagrams with when they were sent.
type Sent = Rc<RefCell<Vec<(Instant, Vec<u8>)>>>;

/// The client's datagrams to the server, with when they were sent.
fn record_client_datagrams(pair: &mut Pair) -> Sent {
    let sent: Sent = Rc::default();
    let s = sent.clone();
    pair.net.set_tap(move |d| {
        if d.src == CLIENT_ADDR && d.dst == SERVER_ADDR {
            s.borrow_mut().push((d.time, d.data.to_vec()));
        }
    });
    sent
}

/// The first 64 bytes of a datagram, as an ICMP message quotes them.
fn quote(d: &[u8]) -> Vec<u8> {
    d[..d.len().min(64)].to_vec()
}

// Nothing listens at the server's address: each datagram there comes back
// as a port unreachable one round trip later (itself lost as often as a
// datagram). The first report that arrives ends the attempt.
#[test]
fn port_unreachable_ends_the_attempt_in_a_round_trip() {
    for_each_seed(4, |seed| {
        let mut pair = Pair::with_configs(seed, link(0.2), transport(), transport());
        pair.net.set_filter(|d| {
            if d.dst == SERVER_ADDR {
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        });
        let sent = record_client_datagrams(&mut pair);
        let mut icmp_rng = pair.net.rng("icmp");
        let client = pair.connect();
        let start = pair.net.now();
        let mut reported = 0;
        let mut ended_at = None;
        while ended_at.is_none() && pair.net.now() < start + IDLE {
            if !pair.net.step() {
                break;
            }
            let now = pair.net.now();
            // Reports due by now, each lost with the link's probability.
            let due: Vec<Vec<u8>> = {
                let mut sent = sent.borrow_mut();
                let split = sent.partition_point(|(t, _)| *t + 2 * DELAY <= now);
                sent.drain(..split).map(|(_, d)| quote(&d)).collect()
            };
            for q in due {
                if icmp_rng.chance(0.2) {
                    continue;
                }
                reported += 1;
                let closed =
                    pair.client()
                        .endpoint
                        .handle_unreachable(SERVER_ADDR, Unreachable::Port, &q);
                if !closed.is_empty() {
                    assert_eq!(closed, vec![client]);
                    ended_at = Some(now);
                    break;
                }
            }
        }
        let ended_at = ended_at.expect("a report ended the attempt");
        assert_eq!(reported, 1, "the first report that arrives is believed");
        assert_eq!(
            pair.client_conn(client).close_reason(),
            Some(&ConnectionError::Unreachable(Unreachable::Port))
        );
        // A round trip per lost report, PTOs between retransmissions: far
        // below the idle timeout either way.
        assert!(
            ended_at - start < Duration::from_secs(5),
            "{:?}",
            ended_at - start
        );
    });
}

// Once the server has answered, reports about it are ignored however they
// come: forged with the client's first datagram quoted, any kind, with or
// without a quote, during the handshake and throughout a transfer over a
// lossy link; the transfer completes intact.
#[test]
fn reports_after_the_first_answer_change_nothing() {
    for_each_seed(4, |seed| {
        let mut pair = Pair::with_configs(seed, link(0.05), transport(), transport());
        let sent = record_client_datagrams(&mut pair);
        let receiver = pair.server_app(AppConfig::default());
        pair.client_app(AppConfig {
            send: vec![SendPlan::uni(300_000)],
            ..AppConfig::default()
        });
        let client = pair.connect();
        let mut next = pair.net.now();
        let mut forged = 0;
        let done = pair.run_until(Duration::from_secs(60), |p| {
            let now = p.net.now();
            let answered = p.client_conn(client).stats().datagrams_received > 0;
            if answered && now >= next {
                next = now + Duration::from_millis(10);
                let first = quote(&sent.borrow()[0].1);
                for kind in [
                    Unreachable::Port,
                    Unreachable::Host,
                    Unreachable::Prohibited,
                ] {
                    for q in [&first[..], &[][..]] {
                        let closed = p.client().endpoint.handle_unreachable(SERVER_ADDR, kind, q);
                        assert!(closed.is_empty());
                        forged += 1;
                    }
                }
            }
            receiver.borrow().streams_finished() == 1
        });
        assert!(done, "transfer incomplete");
        assert!(forged > 50, "{forged}");
        let r = receiver.borrow();
        r.assert_intact();
        assert_eq!(r.bytes_received(), 300_000);
        assert!(r.lost.is_none(), "{:?}", r.lost);
        assert_eq!(pair.client_conn(client).close_reason(), None);
    });
}
