//! Closing and draining (RFC 9000 §10.2.1, §10.2.2): the closing side
//! answers at a limited rate and goes silent after three PTOs (seven
//! before confirmation); a draining side sends at most one packet; a
//! server short of anti-amplification budget sends the close copy its
//! client can read first (§8.1, §10.2.3); a client that closed during the
//! handshake repeats its close on its own for a server out of budget.
//! Split from the close matrix, whose helpers it shares.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quiver_proto::packet::PacketType;
use quiver_proto::{ConnectionError, ConnectionHandle, Endpoint, VarInt};
use quiver_sim::quic::{CLIENT_ADDR, Pair, SERVER_ADDR};
use quiver_sim::{LinkConfig, Seed, TraceKind, Verdict, for_each_seed};

mod common_close;
use common_close::{
    WireKind, closes_in, describe_log, draining_violations, only_close_and_padding, wire_packets,
};

/// The application's close code and reason.
const APP_CODE: u32 = 0x2a;
const APP_REASON: &[u8] = b"bye";

/// One-way delay of every link: the path's RTT is 20 ms.
const LINK_DELAY: Duration = Duration::from_millis(10);
const PATH_RTT_MS: u64 = 20;
const PATH_RTT: Duration = Duration::from_millis(PATH_RTT_MS);

/// A client and server with a confirmed connection on the 20 ms path, the
/// server's connection logging what it sends from now on.
fn established(seed: u64) -> (Pair, ConnectionHandle, ConnectionHandle) {
    let mut pair = Pair::new(
        Seed::from_env_or(seed),
        LinkConfig {
            delay: LINK_DELAY,
            ..LinkConfig::default()
        },
    );
    let client = pair.connect();
    pair.client().conn(client).enable_sent_log_for_test();
    assert!(pair.run_handshake(client, Duration::from_secs(5)));
    // Let HANDSHAKE_DONE and the first ACKs settle.
    pair.net.run_for(Duration::from_millis(200));
    let server = pair.server().endpoint.connection_handles()[0];
    assert!(pair.server().conn(server).is_handshake_confirmed());
    pair.server().conn(server).enable_sent_log_for_test();
    (pair, client, server)
}

/// Records when the server's connection `h` is drained.
fn watch_drained(pair: &mut Pair, h: ConnectionHandle) -> Rc<Cell<Option<Instant>>> {
    let drained = Rc::new(Cell::new(None));
    let seen = drained.clone();
    pair.server().set_app(move |ep: &mut Endpoint, now| {
        if seen.get().is_none() && ep.connection(h).is_some_and(|c| c.is_drained()) {
            seen.set(Some(now));
        }
    });
    drained
}

/// RFC 9000 §10.2.1: "An endpoint in the closing state sends a packet
/// containing a CONNECTION_CLOSE frame in response to any incoming packet
/// ... An endpoint SHOULD limit the rate at which it generates packets in
/// the closing state"; §10.2: the state lasts "at least three times the
/// current PTO interval", then the connection sends nothing more.
///
/// The server closes a confirmed connection while every server→client
/// datagram is lost, so the client never learns and sends a DATAGRAM every
/// 2 ms for a second. Bounds: the closing period is three PTOs, PTO =
/// smoothed_rtt + max(4·rttvar, 1 ms) + max_ack_delay with smoothed_rtt ≈
/// 20 ms and 0 < rttvar ≤ 2·RTT here. The client's max_ack_delay is 25 ms,
/// or what the server's ACK_FREQUENCY asked for instead (as little as the
/// client's min_ack_delay, 1 ms; draft-ietf-quic-ack-frequency §7), so it
/// must lie within [3 × (RTT + 1 ms), 3 × (RTT + 8·RTT + 25 ms)] =
/// [63 ms, 615 ms]. The
/// rate: with N packets received while closing, at most ⌈log2(N + 1)⌉ + 2
/// answers (the first three one for one, then after 1, 2, 4, … packets),
/// and at least two.
#[test]
fn closing_answers_at_a_decreasing_rate_then_goes_silent() {
    let (mut pair, client, server) = established(21);
    let drained_at = watch_drained(&mut pair, server);
    pair.net.set_filter(|d| match d.src == SERVER_ADDR {
        true => Verdict::Drop,
        false => Verdict::Deliver,
    });
    pair.net.record(true);
    let close_at = pair.net.now();
    pair.server().conn(server).close(
        close_at,
        VarInt::from_u32(APP_CODE),
        Bytes::from_static(APP_REASON),
    );
    while pair.net.now() < close_at + Duration::from_secs(1) {
        let _ = pair
            .client()
            .conn(client)
            .send_datagram(Bytes::from_static(b"anyone there?"));
        pair.net.run_for(Duration::from_millis(2));
    }
    let drained_at = drained_at.get().expect("the closing period ended");
    let period = drained_at - close_at;
    let (low, high) = (
        3 * (PATH_RTT + Duration::from_millis(1)),
        3 * (PATH_RTT + 8 * PATH_RTT + Duration::from_millis(25)),
    );
    assert!(
        period >= low && period <= high,
        "closing lasted {period:?}, not within [{low:?}, {high:?}]"
    );

    // What the server's connection sent: 1-RTT closes only, none after the
    // closing period.
    let log = pair.server().conn(server).sent_log_for_test().to_vec();
    let epoch = pair.net.epoch();
    for p in &log {
        assert!(
            p.ty == PacketType::OneRtt && closes_in(p).len() == 1 && only_close_and_padding(p),
            "not a 1-RTT close:\n{}",
            describe_log(&log, epoch)
        );
        assert!(
            p.time <= drained_at,
            "sent after the closing period:\n{}",
            describe_log(&log, epoch)
        );
    }
    assert_eq!(log[0].time, close_at, "the close leaves at once");

    // Answers against packets received while closing.
    let trace = pair.net.trace();
    let received: Vec<Instant> = trace
        .iter()
        .filter(|e| {
            e.src == CLIENT_ADDR
                && matches!(e.kind, TraceKind::Delivered { .. })
                && e.time >= close_at
                && e.time < drained_at
        })
        .map(|e| e.time)
        .collect();
    let answers: Vec<Instant> = log[1..].iter().map(|p| p.time).collect();
    let n = received.len() as u64;
    // The first three one for one, then after 1, 2, 4, … packets.
    let max_answers = u64::from(64 - n.leading_zeros()) + 2; // ⌈log2(n + 1)⌉ + 2
    assert!(n >= 20, "the client sent too little to test: {n}");
    assert!(
        answers.len() >= 2 && answers.len() as u64 <= max_answers,
        "{} answers to {n} packets (allowed 2..={max_answers}):\n{}",
        answers.len(),
        describe_log(&log, epoch)
    );
    eprintln!(
        "closing lasted {period:?}; {} answers to {n} packets",
        answers.len()
    );
    // The first packet after the close is answered at once, and every
    // answer is a response to a packet received at that instant.
    assert_eq!(answers[0], received[0]);
    for a in &answers {
        assert!(
            received.contains(a),
            "answer at {:?} to nothing",
            *a - epoch
        );
    }
}

/// RFC 9000 §10.2.2: "An endpoint that receives a CONNECTION_CLOSE frame
/// MAY send a single packet containing a CONNECTION_CLOSE frame before
/// entering the draining state ... An endpoint MUST NOT send further
/// packets." The client receives the server's close, then ten more copies
/// of it over 50 ms, and its application keeps trying to send: it sends
/// one packet at most, a close, and then nothing. Once after confirmation
/// and once during the handshake (the server's close in Initial, Handshake
/// and 1-RTT right behind its first flight).
#[test]
fn draining_peer_sends_at_most_one_packet_then_nothing() {
    for during_handshake in [false, true] {
        let (mut pair, client, server_close_at) = if during_handshake {
            let mut pair = Pair::new(
                Seed::from_env_or(22),
                LinkConfig {
                    delay: LINK_DELAY,
                    ..LinkConfig::default()
                },
            );
            let client = pair.connect();
            pair.client().conn(client).enable_sent_log_for_test();
            while pair.net.link_stats(SERVER_ADDR, CLIENT_ADDR).sent == 0 {
                assert!(pair.net.step());
            }
            let server = pair.server().endpoint.connection_handles()[0];
            let now = pair.net.now();
            pair.server().conn(server).close(
                now,
                VarInt::from_u32(APP_CODE),
                Bytes::from_static(APP_REASON),
            );
            (pair, client, now)
        } else {
            let (mut pair, client, server) = established(23);
            let now = pair.net.now();
            pair.server().conn(server).close(
                now,
                VarInt::from_u32(APP_CODE),
                Bytes::from_static(APP_REASON),
            );
            (pair, client, now)
        };
        // Capture the server's close datagrams, to replay them.
        let captured: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
        {
            let captured = captured.clone();
            pair.net.set_tap(move |d| {
                if d.src == SERVER_ADDR && d.time >= server_close_at {
                    captured.borrow_mut().push(d.data.to_vec());
                }
            });
        }
        pair.net.record(true);
        // Until the client has the close.
        let ended = |pair: &mut Pair| pair.client().conn(client).close_reason().is_some();
        while !ended(&mut pair) {
            assert!(pair.net.step());
        }
        let end = pair.net.now();
        let expected = ConnectionError::ApplicationClosed {
            code: VarInt::from_u32(APP_CODE),
            reason: Bytes::from_static(APP_REASON),
        };
        assert_eq!(pair.client().conn(client).close_reason(), Some(&expected));
        let close = captured.borrow().first().cloned().expect("captured");
        for _ in 0..10 {
            pair.net.inject(SERVER_ADDR, CLIENT_ADDR, close.clone());
            let sent = pair
                .client()
                .conn(client)
                .send_datagram(Bytes::from_static(b"one more"));
            assert!(sent.is_err(), "a drained connection took a datagram");
            pair.net.run_for(Duration::from_millis(5));
        }
        pair.net.run_for(Duration::from_millis(50));
        let log = pair.client().conn(client).sent_log_for_test().to_vec();
        let end_record = (end, expected, true);
        let errors = draining_violations(&log, Some(&end_record));
        let sent_datagrams = pair
            .net
            .sent_from(CLIENT_ADDR)
            .filter(|e| e.time > end)
            .count();
        // Its packets from the close on: at most one, a close; no datagram
        // after the instant it read the close.
        assert!(
            errors.is_empty() && sent_datagrams == 0,
            "during handshake: {during_handshake}: {errors:?}, {sent_datagrams} datagrams \
             later:\n{}",
            describe_log(&log, pair.net.epoch())
        );
    }
}

/// RFC 9000 §8.1 and §10.2.3: a server that closes before its client's
/// address is validated may send only three times what it received, which
/// can be too little for every copy of the close (Initial, Handshake,
/// 1-RTT). Once a 1-RTT packet of the client has shown that it holds 1-RTT
/// keys, the 1-RTT copy, the only one with the application's code and
/// reason, goes in the first close datagram; the copies left out follow in
/// the next one, as soon as the client's next packet raises the budget.
///
/// Script (the situation of close-matrix seed 0x9f): the server's first
/// flight and the client's probes are lost, so the server's own probe uses
/// up its budget; every client Handshake packet is lost, so the server
/// never validates the client. The server closes when its probe reaches
/// the client, whose handshake completes; the client's application then
/// sends a DATAGRAM every 10 ms (the first one tiny), in 1-RTT packets the
/// server cannot read (RFC 9001 §5.7) but which raise its budget. Once with
/// the first close datagram delivered, once with it lost.
#[test]
fn budget_limited_close_puts_the_one_rtt_copy_first() {
    for lose_first_close in [false, true] {
        let mut pair = Pair::new(
            Seed::from_env_or(24),
            LinkConfig {
                delay: LINK_DELAY,
                ..LinkConfig::default()
            },
        );
        // One Initial datagram per client flight: the script loses every
        // client Initial but the first.
        pair.offer_kx_groups(&[quiver_proto::crypto::KxGroup::X25519]);
        let close_index = Rc::new(Cell::new(None));
        {
            let close_index = close_index.clone();
            pair.net.set_filter(move |d| {
                let kinds: Vec<WireKind> = wire_packets(d.data).iter().map(|(k, _)| *k).collect();
                let lost = match d.src == SERVER_ADDR {
                    true => {
                        d.index == 0 || (lose_first_close && close_index.get() == Some(d.index))
                    }
                    false => {
                        kinds.contains(&WireKind::Handshake)
                            || (d.index > 0 && kinds.contains(&WireKind::Initial))
                    }
                };
                match lost {
                    true => Verdict::Drop,
                    false => Verdict::Deliver,
                }
            });
        }
        pair.net.record(true);
        let client = pair.connect();
        while pair.net.link_stats(SERVER_ADDR, CLIENT_ADDR).delivered == 0 {
            assert!(pair.net.step());
        }
        let server = pair.server().endpoint.connection_handles()[0];
        pair.server().conn(server).enable_sent_log_for_test();
        assert!(pair.client().conn(client).is_handshake_complete());
        let close_at = pair.net.now();
        close_index.set(Some(pair.net.link_stats(SERVER_ADDR, CLIENT_ADDR).sent));
        pair.server().conn(server).close(
            close_at,
            VarInt::from_u32(APP_CODE),
            Bytes::from_static(APP_REASON),
        );
        // The first DATAGRAM tiny, so the close cannot fit every copy.
        let mut payload = Bytes::from_static(b"hi");
        while pair.client().conn(client).close_reason().is_none() {
            let now = pair.net.now();
            assert!(now < close_at + Duration::from_secs(1), "no close");
            let _ = pair.client().conn(client).send_datagram(payload.clone());
            payload = Bytes::from_static(&[0; 64]);
            pair.net.run_for(Duration::from_millis(10));
        }
        let expected = ConnectionError::ApplicationClosed {
            code: VarInt::from_u32(APP_CODE),
            reason: Bytes::from_static(APP_REASON),
        };
        let log = pair.server().conn(server).sent_log_for_test().to_vec();
        let context = format!(
            "first close lost: {lose_first_close}\nserver sent:\n{}trace:\n{}",
            describe_log(&log, pair.net.epoch()),
            pair.net.dump_trace()
        );
        assert_eq!(
            pair.client().conn(client).close_reason(),
            Some(&expected),
            "{context}"
        );
        // The server's close datagrams, as the trace saw them leave.
        let closes: Vec<(Instant, Vec<WireKind>)> = pair
            .net
            .sent_from(SERVER_ADDR)
            .filter(|e| e.time >= close_at)
            .map(|e| {
                let kinds = wire_packets(&e.data).iter().map(|(k, _)| *k).collect();
                (e.time, kinds)
            })
            .collect();
        let all = vec![WireKind::Initial, WireKind::Handshake, WireKind::Short];
        assert!(closes.len() > usize::from(lose_first_close), "{context}");
        // The budget was spent at the close: the first close waited for the
        // client's first 1-RTT packet, and could not carry every copy.
        assert!(closes[0].0 > close_at, "{context}");
        assert!(closes[0].1.contains(&WireKind::Short), "{context}");
        assert!(closes[0].1.len() < all.len(), "{context}");
        if lose_first_close {
            assert_eq!(closes[1].1, all, "{context}");
        }
    }
}

/// RFC 9002 §6.2.2.1 applied to the closing state: a client that closed
/// during the handshake sends its close again on its own, on the PTO
/// schedule, because a server at its anti-amplification limit (RFC 9000
/// §8.1) cannot send the packet the close would answer (§10.2.1).
///
/// Script (close-matrix seed 0x1fa): the server hears only the client's
/// first Initial, so it may send 3 × 1200 bytes: its flight and two probes.
/// The client closes at once; every datagram it sends for the next two
/// seconds is lost — its first close and its answers to the server's flight
/// and probes. Out of budget, the server can say nothing more. The client's
/// own close probe (3 PTOs after closing) reaches it: the server ends with
/// the client's close, not by its idle timeout.
#[test]
fn closing_client_resends_its_close_to_a_server_out_of_budget() {
    let mut pair = Pair::new(
        Seed::from_env_or(25),
        LinkConfig {
            delay: LINK_DELAY,
            ..LinkConfig::default()
        },
    );
    // The server must hear the whole ClientHello in the first datagram.
    pair.offer_kx_groups(&[quiver_proto::crypto::KxGroup::X25519]);
    let lost_until = Rc::new(Cell::new(None::<Instant>));
    {
        let lost_until = lost_until.clone();
        pair.net.set_filter(move |d| {
            let lost =
                d.src == CLIENT_ADDR && d.index > 0 && lost_until.get().is_none_or(|t| d.time < t);
            if lost {
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        });
    }
    pair.net.record(true);
    let client = pair.connect();
    let close_at = pair.net.now();
    lost_until.set(Some(close_at + Duration::from_secs(2)));
    // Let the first Initial leave, then close before anything comes back.
    pair.net.run_for(Duration::from_millis(1));
    let now = pair.net.now();
    pair.client().conn(client).close(
        now,
        VarInt::from_u32(APP_CODE),
        Bytes::from_static(APP_REASON),
    );
    let mut server = None;
    while pair.net.now() < close_at + Duration::from_secs(10) {
        pair.net.run_for(Duration::from_millis(10));
        server = server.or_else(|| pair.server().endpoint.connection_handles().first().copied());
        if let Some(h) = server {
            if pair.server().conn(h).close_reason().is_some() {
                break;
            }
        }
    }
    let server = server.expect("the server accepted the attempt");
    let sent_by_server: usize = pair
        .net
        .sent_from(SERVER_ADDR)
        .filter(|e| e.time < close_at + Duration::from_secs(2))
        .map(|e| e.data.len())
        .sum();
    let context = format!(
        "server sent {sent_by_server} bytes\ntrace:\n{}",
        pair.net.dump_trace()
    );
    // The server spent its budget: three times the one datagram it got.
    assert!(sent_by_server <= 3 * 1200, "{context}");
    let expected = ConnectionError::ConnectionClosed {
        code: quiver_proto::TransportErrorCode::APPLICATION_ERROR,
        frame_type: None,
        reason: Bytes::new(),
    };
    assert_eq!(
        pair.server().conn(server).close_reason(),
        Some(&expected),
        "{context}"
    );
    // It was the client's probe, after the losses, that got through.
    let ended = pair.net.now();
    assert!(ended > close_at + Duration::from_secs(2), "{context}");
    assert!(ended < close_at + Duration::from_secs(4), "{context}");
}

/// `Connection::is_quiet`, what `Endpoint::wait_quiet` waits for before a
/// program exits: the side that closed is quiet once the peer's answering
/// CONNECTION_CLOSE arrives (it then drains and "MUST NOT send any
/// packets", RFC 9000 §10.2.2), about one round trip after the close and
/// long before the draining period (three PTOs) ends; the peer, draining,
/// is quiet once its single reply is sent.
#[test]
fn closing_side_is_quiet_once_the_peer_answers_long_before_it_drains() {
    for_each_seed(10, |seed| quiet_after_the_peers_answer(seed.0));
}

fn quiet_after_the_peers_answer(seed: u64) {
    let (mut pair, client, server) = established(seed);
    pair.net.record(true);
    let start = pair.net.now();
    pair.client().conn(client).close(
        start,
        VarInt::from_u32(APP_CODE),
        Bytes::from_static(APP_REASON),
    );
    assert!(
        !pair.client().conn(client).is_quiet(),
        "closing: it may still have to answer"
    );
    let mut server_quiet_at = None;
    let client_quiet_at = loop {
        assert!(pair.net.step());
        let now = pair.net.now();
        assert!(now - start < Duration::from_secs(5), "never quiet");
        let server_quiet = pair
            .server()
            .endpoint
            .connection(server)
            .is_none_or(|c| c.is_quiet());
        if server_quiet && server_quiet_at.is_none() {
            server_quiet_at = Some(now);
        }
        if pair.client().conn(client).is_quiet() {
            break now;
        }
    };
    assert!(
        server_quiet_at.is_some_and(|at| at <= client_quiet_at),
        "the server answered, so it was quiet first"
    );
    assert!(
        client_quiet_at - start <= 2 * PATH_RTT,
        "one round trip: {:?}",
        client_quiet_at - start
    );
    assert!(
        !pair.client().conn(client).is_drained(),
        "quiet before the draining period ends"
    );
    // Draining, it sends nothing more, and drains after three PTOs.
    let sent_before = pair.net.sent_from(CLIENT_ADDR).count();
    assert!(sent_before > 0, "the close was recorded");
    pair.net.run_for(Duration::from_secs(1));
    assert_eq!(pair.net.sent_from(CLIENT_ADDR).count(), sent_before);
    assert!(
        pair.client()
            .endpoint
            .connection(client)
            .is_none_or(|c| c.is_drained())
    );
}
