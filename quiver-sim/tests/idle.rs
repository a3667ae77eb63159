//! Idle timeout (RFC 9000 §10.1) and keep-alive.
//!
//! "Each endpoint advertises a max_idle_timeout, but the effective value at
//! an endpoint is computed as the minimum of the two advertised values (or
//! the sole advertised value, if only one endpoint advertises a non-zero
//! value)." An endpoint "restarts its idle timer when a packet from its
//! peer is received and processed successfully", and also "when sending an
//! ack-eliciting packet if no other ack-eliciting packets have been sent
//! since last receiving and processing a packet". On expiry the connection
//! is silently closed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use quiver_proto::{ConnectionError, TransportConfig};
use quiver_sim::quic::{AppConfig, CLIENT_ADDR, Pair, SERVER_ADDR, SharedApp};
use quiver_sim::{LinkConfig, Network, Seed, TraceKind, for_each_seed};

/// Timers fire at the instant they are due in virtual time; this only
/// absorbs rounding.
const SLACK: Duration = Duration::from_millis(1);

fn config(idle: Option<Duration>, keep_alive: Option<Duration>) -> TransportConfig {
    TransportConfig {
        max_idle_timeout: idle,
        keep_alive_interval: keep_alive,
        ..TransportConfig::default()
    }
}

/// A connected pair with the given idle settings, recording, and both
/// applications installed (they do nothing but watch events).
fn pair(
    seed: Seed,
    link: LinkConfig,
    client: TransportConfig,
    server: TransportConfig,
) -> (Pair, SharedApp, SharedApp) {
    let mut pair = Pair::with_configs(seed, link, client, server);
    pair.net.record(true);
    let c = pair.client_app(AppConfig::default());
    let s = pair.server_app(AppConfig::default());
    pair.connect_and_wait(Duration::from_secs(25));
    (pair, c, s)
}

/// The last time `addr` received a datagram, and the last time it
/// received or sent one, before `until`.
fn last_activity(net: &Network, addr: SocketAddr, until: Instant) -> (Instant, Instant) {
    let mut received = net.epoch();
    let mut any = net.epoch();
    for e in net.trace().iter().filter(|e| e.time <= until) {
        match e.kind {
            TraceKind::Delivered { .. } if e.dst == addr => {
                received = e.time;
                any = e.time;
            }
            TraceKind::Sent if e.src == addr => any = e.time,
            _ => {}
        }
    }
    (received, any)
}

/// Checks that `app`'s connection at `addr` timed out `timeout` after its
/// last activity, silently.
fn assert_timed_out_after(net: &Network, app: &SharedApp, addr: SocketAddr, timeout: Duration) {
    let (at, reason) = app.borrow().lost.clone().expect("connection still open");
    assert_eq!(reason, ConnectionError::TimedOut);
    let (received, any) = last_activity(net, addr, at);
    let idle = at - received;
    assert!(
        idle >= timeout && at <= any + timeout + SLACK,
        "{addr}: timed out {idle:?} after its last receipt ({:?} after its last send or receipt), expected {timeout:?}\n{}",
        at - any,
        net.dump_trace()
    );
    // Silently: nothing at all is sent afterwards (no CONNECTION_CLOSE).
    assert!(
        net.trace()
            .iter()
            .all(|e| !(e.src == addr && e.time > at && e.kind == TraceKind::Sent)),
        "{addr} sent after its idle timeout"
    );
}

#[test]
fn idle_timeout_fires_at_the_smaller_of_both_sides_values() {
    for (client_idle, server_idle) in [(5, 3), (3, 5), (4, 4)] {
        let (mut pair, c, s) = pair(
            Seed::from_env_or(1),
            LinkConfig::default(),
            config(Some(Duration::from_secs(client_idle)), None),
            config(Some(Duration::from_secs(server_idle)), None),
        );
        let negotiated = Duration::from_secs(client_idle.min(server_idle));
        pair.run_until(Duration::from_secs(60), |_| {
            c.borrow().lost.is_some() && s.borrow().lost.is_some()
        });
        assert_timed_out_after(&pair.net, &c, CLIENT_ADDR, negotiated);
        assert_timed_out_after(&pair.net, &s, SERVER_ADDR, negotiated);
    }
}

#[test]
fn idle_timeout_is_the_sole_advertised_value_when_one_side_disables_it() {
    for client_has_timeout in [true, false] {
        let timeout = Duration::from_secs(2);
        let (with, without) = (config(Some(timeout), None), config(None, None));
        let (client, server) = if client_has_timeout {
            (with, without)
        } else {
            (without, with)
        };
        let (mut pair, c, s) = pair(Seed::from_env_or(1), LinkConfig::default(), client, server);
        pair.run_until(Duration::from_secs(60), |_| {
            c.borrow().lost.is_some() && s.borrow().lost.is_some()
        });
        assert_timed_out_after(&pair.net, &c, CLIENT_ADDR, timeout);
        assert_timed_out_after(&pair.net, &s, SERVER_ADDR, timeout);
    }
}

#[test]
fn without_idle_timeouts_an_idle_connection_stays_open() {
    let (mut pair, c, s) = pair(
        Seed::from_env_or(1),
        LinkConfig::default(),
        config(None, None),
        config(None, None),
    );
    pair.net.run_for(Duration::from_secs(3600));
    assert!(c.borrow().lost.is_none() && s.borrow().lost.is_none());
    assert!(!pair.server_conn().is_closed());
}

#[test]
fn idle_timeout_is_at_least_three_probe_timeouts() {
    // 50 ms advertised on both sides, over a 400 ms round trip: RFC 9000
    // §10.1 raises the period to three PTOs, else the connection could not
    // even finish its handshake exchanges.
    let link = LinkConfig {
        delay: Duration::from_millis(200),
        ..LinkConfig::default()
    };
    let short = config(Some(Duration::from_millis(50)), None);
    let (mut pair, c, s) = pair(Seed::from_env_or(1), link, short.clone(), short);
    let rtt = pair.server_conn().rtt();
    pair.run_until(Duration::from_secs(60), |_| {
        c.borrow().lost.is_some() && s.borrow().lost.is_some()
    });
    for (app, addr) in [(&c, CLIENT_ADDR), (&s, SERVER_ADDR)] {
        let (at, reason) = app.borrow().lost.clone().unwrap();
        assert_eq!(reason, ConnectionError::TimedOut);
        let (received, _) = last_activity(&pair.net, addr, at);
        // A PTO is more than the smoothed RTT plus max_ack_delay (25 ms).
        let floor = 3 * (rtt + Duration::from_millis(25));
        assert!(
            at - received >= floor,
            "{addr}: {:?} < {floor:?}",
            at - received
        );
    }
}

#[test]
fn keep_alive_keeps_an_idle_connection_open_beyond_the_idle_timeout() {
    for keep_alive_on_client in [true, false] {
        let timeout = Some(Duration::from_secs(3));
        let keep_alive = config(timeout, Some(Duration::from_secs(1)));
        let plain = config(timeout, None);
        let (client, server) = if keep_alive_on_client {
            (keep_alive, plain)
        } else {
            (plain, keep_alive)
        };
        let (mut pair, c, s) = pair(Seed::from_env_or(1), LinkConfig::default(), client, server);
        pair.net.run_for(Duration::from_secs(60));
        assert!(c.borrow().lost.is_none(), "{:?}", c.borrow().lost);
        assert!(s.borrow().lost.is_none(), "{:?}", s.borrow().lost);
        // Something was sent at least once per idle period throughout.
        let times: Vec<Instant> = pair.net.trace().iter().map(|e| e.time).collect();
        let longest_gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(longest_gap < Duration::from_secs(3), "{longest_gap:?}");
    }
}

#[test]
fn keep_alive_keeps_a_connection_open_over_a_lossy_link() {
    for_each_seed(20, |seed| {
        let link = LinkConfig {
            loss_rate: 0.1,
            ..LinkConfig::default()
        };
        let (mut pair, c, s) = pair(
            seed,
            link,
            config(Some(Duration::from_secs(5)), Some(Duration::from_secs(1))),
            config(Some(Duration::from_secs(5)), None),
        );
        pair.net.run_for(Duration::from_secs(60));
        assert!(c.borrow().lost.is_none(), "{:?}", c.borrow().lost);
        assert!(s.borrow().lost.is_none(), "{:?}", s.borrow().lost);
    });
}
