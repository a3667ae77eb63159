//! A peer that asks for ACK delays longer than our probe timeout (issue
//! 10's second question): through ACK_FREQUENCY's Requested Max Ack Delay
//! (draft-ietf-quic-ack-frequency-12 §4) or its own max_ack_delay
//! transport parameter (RFC 9000 §18.2), up to the 2^14 ms limit. Neither
//! side may probe forever or miss its idle timeout: probes back off (RFC
//! 9002 §6.2.1), and the idle timeout is the negotiated one, raised to
//! three PTOs at most (RFC 9000 §10.1).

use std::time::Duration;

use quiver_proto::frame::{AckFrequency, Frame};
use quiver_proto::{ConnectionError, TransportConfig, VarInt};
use quiver_sim::quic::{AppConfig, Pair, SharedApp};
use quiver_sim::{LinkConfig, Seed, for_each_seed};

/// `send_raw_frames_for_test`'s number for the application data space.
const ONE_RTT: u8 = 2;
const IDLE: Duration = Duration::from_secs(3);

fn encode(frames: &[Frame<'_>]) -> Vec<u8> {
    let mut buf = Vec::new();
    for f in frames {
        f.encode(&mut buf);
    }
    buf
}

fn config(max_ack_delay: Duration) -> TransportConfig {
    TransportConfig {
        max_idle_timeout: Some(IDLE),
        max_ack_delay,
        // The client plays a foreign ACK_FREQUENCY sender by hand: its own
        // sender side, which would account for what it asked (draft §7),
        // is off.
        ack_frequency: false,
        ..TransportConfig::default()
    }
}

fn connected(
    seed: Seed,
    client: TransportConfig,
    server: TransportConfig,
) -> (Pair, SharedApp, SharedApp, quiver_proto::ConnectionHandle) {
    let mut pair = Pair::with_configs(seed, LinkConfig::default(), client, server);
    let c = pair.client_app(AppConfig::default());
    let s = pair.server_app(AppConfig::default());
    let (client, _) = pair.connect_and_wait(Duration::from_secs(5));
    pair.net.run_for(Duration::from_millis(500));
    (pair, c, s, client)
}

/// Runs until both sides lost the connection; returns when each did
/// (from now) and why, client first.
fn both_end(
    pair: &mut Pair,
    c: &SharedApp,
    s: &SharedApp,
    limit: Duration,
) -> ((Duration, ConnectionError), (Duration, ConnectionError)) {
    let start = pair.net.now();
    let done = pair.run_until(limit, |_| {
        c.borrow().lost.is_some() && s.borrow().lost.is_some()
    });
    assert!(
        done,
        "still open after {limit:?}: client {:?} server {:?}",
        c.borrow().lost,
        s.borrow().lost
    );
    let at = |app: &SharedApp| {
        let (at, reason) = app.borrow().lost.clone().unwrap();
        (at - start, reason)
    };
    (at(c), at(s))
}

/// The client asks the server for ACKs after 100 packets or 10 s, far
/// beyond its PTO (it does not account for the request, as a foreign peer
/// may not: draft §7 would have it use 10 s in its PTO), then sends two
/// PINGs a millisecond apart and falls silent. The first is acknowledged
/// at once (draft §6.1, the first after a pause); the second waits for
/// the 10 s, so the client probes. Its probes back off (RFC 9002 §6.2.1)
/// and do not restart its idle timer (RFC 9000 §10.1: only the first
/// ack-eliciting packet since a receipt does), so it times out one idle
/// period after the last packet it received, and the server one idle
/// period after the last probe, its pending ACK unsent.
#[test]
fn requested_max_ack_delay_beyond_the_pto_neither_probes_forever_nor_stays_open() {
    for_each_seed(3, |seed| {
        let default = config(Duration::from_millis(25));
        let (mut pair, c, s, client) = connected(seed, default.clone(), default);
        let v = |x| VarInt::from_u64(x).unwrap();
        let frames = encode(&[Frame::AckFrequency(AckFrequency {
            sequence: v(1),
            ack_eliciting_threshold: v(100),
            request_max_ack_delay: v(10_000_000),
            reordering_threshold: v(0),
        })]);
        pair.client_conn(client)
            .send_raw_frames_for_test(ONE_RTT, frames);
        pair.poke_client();
        pair.net.run_for(Duration::from_millis(500));
        for _ in 0..2 {
            pair.client_conn(client)
                .send_raw_frames_for_test(ONE_RTT, encode(&[Frame::Ping]));
            pair.poke_client();
            pair.net.run_for(Duration::from_millis(1));
        }
        let ((ct, cr), (st, sr)) = both_end(&mut pair, &c, &s, Duration::from_secs(60));
        let probes = pair.client_conn(client).stats().probe_timeouts;
        assert_eq!(cr, ConnectionError::TimedOut);
        assert_eq!(sr, ConnectionError::TimedOut);
        // The client's PTO is ~0.1 s: it doubles to past the idle timeout
        // in about five expirations.
        assert!((1..=6).contains(&probes), "client probes {probes}");
        assert!(ct <= IDLE + Duration::from_millis(100), "client {ct:?}");
        assert!(st <= 2 * IDLE + Duration::from_millis(100), "server {st:?}");
        assert_eq!(pair.server_conn().stats().probe_timeouts, 0);
    });
}

/// The server advertises a max_ack_delay of 16 s (the largest valid, RFC
/// 9000 §18.2) and honours it for a lone PING; the client's PTO includes
/// it (RFC 9002 §6.2.1) and so does its idle timeout (at least three PTOs,
/// RFC 9000 §10.1): ~48 s. The server's own PTO does not (it uses the
/// client's 25 ms), so it times out after its 3 s holding the ACK it owes,
/// and the client learns at its first probe, from the stateless reset.
/// Nobody probes more than once or stays open.
#[test]
fn advertised_max_ack_delay_beyond_the_pto_neither_probes_forever_nor_stays_open() {
    for_each_seed(3, |seed| {
        let client_cfg = config(Duration::from_millis(25));
        let server_cfg = config(Duration::from_millis(16_000));
        let (mut pair, c, s, client) = connected(seed, client_cfg, server_cfg);
        pair.client_conn(client)
            .send_raw_frames_for_test(ONE_RTT, encode(&[Frame::Ping]));
        pair.poke_client();
        let ((ct, cr), (st, sr)) = both_end(&mut pair, &c, &s, Duration::from_secs(200));
        let probes = pair.client_conn(client).stats().probe_timeouts;
        assert_eq!(sr, ConnectionError::TimedOut);
        assert!(st <= IDLE + Duration::from_millis(100), "server {st:?}");
        assert!(
            matches!(cr, ConnectionError::Reset | ConnectionError::TimedOut),
            "{cr:?}"
        );
        assert!(ct <= Duration::from_secs(17), "client {ct:?}");
        assert_eq!(probes, 1, "client probes");
    });
}
