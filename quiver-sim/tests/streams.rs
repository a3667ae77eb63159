//! Streams end to end: many concurrent streams, flow control that blocks
//! and resumes a sender, and RESET_STREAM / STOP_SENDING reaching the peer.

use std::time::Duration;

use quiver_proto::frame::Dir;
use quiver_proto::streams::{ReadError, StreamEvent, WriteError};
use quiver_proto::{TransportConfig, VarInt};
use quiver_sim::quic::{AppConfig, Pair, SendPlan, SharedApp};
use quiver_sim::{LinkConfig, Seed, for_each_seed};

const LIMIT: Duration = Duration::from_secs(60);

/// Stream `i`'s length: 1 to 3,000 bytes, varied.
fn echo_len(i: u64) -> u64 {
    1 + (i * 7919) % 3000
}

/// The client opens `n` bidirectional streams, each with its own data and
/// a FIN; the server echoes each back. Checks every stream came back whole.
fn echo_streams(pair: &mut Pair, n: u64) -> SharedApp {
    let client = pair.client_app(AppConfig {
        send: (0..n).map(|i| SendPlan::bi(echo_len(i))).collect(),
        ..AppConfig::default()
    });
    let server = pair.server_app(AppConfig {
        echo: true,
        ..AppConfig::default()
    });
    pair.connect_and_wait(Duration::from_secs(25));
    let done = pair.run_until(LIMIT, |_| client.borrow().streams_finished() == n as usize);
    let c = client.borrow();
    let s = server.borrow();
    assert!(
        done,
        "{} of {n} echoes complete; server finished reading {}",
        c.streams_finished(),
        s.streams_finished()
    );
    c.assert_intact();
    s.assert_intact();
    assert_eq!(c.send.len(), n as usize);
    for (i, (id, log)) in c.recv.iter().enumerate() {
        assert_eq!(id.index(), i as u64);
        assert_eq!(log.bytes, echo_len(i as u64), "stream {id}");
    }
    assert!(c.lost.is_none() && s.lost.is_none());
    drop(c);
    client
}

/// Whether the client was ever told it may open streams again after
/// hitting the peer's limit.
fn was_stream_limited(client: &SharedApp) -> bool {
    client
        .borrow()
        .stream_events
        .iter()
        .any(|(_, e)| matches!(e, StreamEvent::Available { dir: Dir::Bi }))
}

#[test]
fn a_thousand_concurrent_bidirectional_streams_each_echo_intact() {
    let server_transport = TransportConfig {
        max_concurrent_bidi_streams: 1000,
        ..TransportConfig::default()
    };
    let mut pair = Pair::with_configs(
        Seed::from_env_or(1),
        LinkConfig::default(),
        TransportConfig::default(),
        server_transport,
    );
    let client = echo_streams(&mut pair, 1000);
    // All 1000 were open at once: the client never waited for credit.
    assert!(!was_stream_limited(&client));
}

#[test]
fn a_thousand_streams_through_a_limit_of_a_hundred_reuse_stream_credit() {
    // The server allows 100 at a time (the default): the client opens the
    // rest as MAX_STREAMS raises the limit (RFC 9000 §4.6).
    let mut pair = Pair::new(Seed::from_env_or(1), LinkConfig::default());
    let client = echo_streams(&mut pair, 1000);
    assert!(was_stream_limited(&client));
}

#[test]
fn concurrent_streams_echo_intact_over_loss() {
    for_each_seed(10, |seed| {
        let link = LinkConfig {
            loss_rate: 0.03,
            jitter: Duration::from_millis(2),
            ..LinkConfig::default()
        };
        let mut pair = Pair::new(seed, link);
        echo_streams(&mut pair, 300);
    });
}

/// Total bytes the receiver's reads returned at the first instant it read.
fn first_read_burst(reads: &[(std::time::Instant, usize)]) -> usize {
    let Some(&(first, _)) = reads.first() else {
        return 0;
    };
    reads
        .iter()
        .filter(|(t, _)| *t == first)
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn a_sender_blocked_by_the_stream_window_resumes_when_the_receiver_reads() {
    const WINDOW: u64 = 16 * 1024;
    let server_transport = TransportConfig {
        stream_receive_window: WINDOW,
        max_stream_receive_window: WINDOW,
        ..TransportConfig::default()
    };
    let mut pair = Pair::with_configs(
        Seed::from_env_or(1),
        LinkConfig::default(),
        TransportConfig::default(),
        server_transport,
    );
    let len = 200 * 1024;
    let client = pair.client_app(AppConfig {
        send: vec![SendPlan::uni(len)],
        ..AppConfig::default()
    });
    let server = pair.server_app(AppConfig::default());
    server.borrow_mut().read_paused = true;
    let (c, _) = pair.connect_and_wait(Duration::from_secs(5));
    // The receiver reads nothing for a second: the sender stalls at the
    // window, though all its data is buffered.
    pair.net.run_for(Duration::from_secs(1));
    assert_eq!(client.borrow().send.values().next().unwrap().written, len);
    assert_eq!(server.borrow().bytes_received(), 0);
    assert!(!pair.client_conn(c).is_closed());
    server.borrow_mut().read_paused = false;
    pair.poke_server();
    let done = pair.run_until(LIMIT, |_| server.borrow().streams_finished() == 1);
    let s = server.borrow();
    assert!(done, "{} of {len} bytes read", s.bytes_received());
    s.assert_intact();
    assert_eq!(s.bytes_received(), len);
    // What had arrived while blocked is exactly the window.
    let log = s.recv.values().next().unwrap();
    assert_eq!(first_read_burst(&log.first_reads), WINDOW as usize);
}

#[test]
fn a_sender_blocked_by_the_connection_window_resumes_when_the_receiver_reads() {
    const WINDOW: u64 = 24 * 1024;
    let server_transport = TransportConfig {
        receive_window: WINDOW,
        max_receive_window: WINDOW,
        ..TransportConfig::default()
    };
    let mut pair = Pair::with_configs(
        Seed::from_env_or(1),
        LinkConfig::default(),
        TransportConfig::default(),
        server_transport,
    );
    let streams = 4;
    let len = 50 * 1024;
    let client = pair.client_app(AppConfig {
        send: vec![SendPlan::uni(len); streams],
        ..AppConfig::default()
    });
    let server = pair.server_app(AppConfig::default());
    server.borrow_mut().read_paused = true;
    pair.connect_and_wait(Duration::from_secs(5));
    pair.net.run_for(Duration::from_secs(1));
    assert!(client.borrow().send.values().all(|s| s.written == len));
    server.borrow_mut().read_paused = false;
    pair.poke_server();
    let done = pair.run_until(LIMIT, |_| server.borrow().streams_finished() == streams);
    let s = server.borrow();
    assert!(done, "{} bytes read", s.bytes_received());
    s.assert_intact();
    assert_eq!(s.bytes_received(), streams as u64 * len);
    // Across all streams, what arrived while blocked is exactly the
    // connection window.
    let first = s
        .recv
        .values()
        .filter_map(|r| r.first_reads.first().map(|(t, _)| *t))
        .min()
        .unwrap();
    let burst: usize = s
        .recv
        .values()
        .flat_map(|r| &r.first_reads)
        .filter(|(t, _)| *t == first)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(burst, WINDOW as usize);
}

#[test]
fn flow_controlled_transfer_with_small_windows_completes_over_loss() {
    for_each_seed(10, |seed| {
        let small = TransportConfig {
            stream_receive_window: 8 * 1024,
            max_stream_receive_window: 8 * 1024,
            receive_window: 12 * 1024,
            max_receive_window: 12 * 1024,
            ..TransportConfig::default()
        };
        let link = LinkConfig {
            loss_rate: 0.05,
            ..LinkConfig::default()
        };
        let mut pair = Pair::with_configs(seed, link, small.clone(), small);
        let client = pair.client_app(AppConfig {
            send: vec![SendPlan::bi(100 * 1024), SendPlan::uni(60 * 1024)],
            ..AppConfig::default()
        });
        let server = pair.server_app(AppConfig {
            echo: true,
            ..AppConfig::default()
        });
        pair.connect_and_wait(Duration::from_secs(25));
        let done = pair.run_until(LIMIT, |_| {
            server.borrow().streams_finished() == 2 && client.borrow().streams_finished() == 1
        });
        assert!(done, "server read {}", server.borrow().bytes_received());
        server.borrow().assert_intact();
        client.borrow().assert_intact();
        assert_eq!(client.borrow().bytes_received(), 100 * 1024);
    });
}

#[test]
fn reset_stream_reaches_the_peer_as_a_reset_with_its_code() {
    for_each_seed(10, |seed| {
        let link = LinkConfig {
            loss_rate: if seed.0 == 0 { 0.0 } else { 0.1 },
            ..LinkConfig::default()
        };
        let mut pair = Pair::new(seed, link);
        let code = VarInt::from_u32(42);
        let plans = [Dir::Bi, Dir::Uni].map(|dir| SendPlan {
            dir,
            len: 5000,
            finish: false,
            reset: Some(code),
        });
        let _client = pair.client_app(AppConfig {
            send: plans.to_vec(),
            ..AppConfig::default()
        });
        let server = pair.server_app(AppConfig::default());
        pair.connect_and_wait(Duration::from_secs(25));
        let done = pair.run_until(LIMIT, |_| {
            let s = server.borrow();
            s.recv.len() == 2 && s.recv.values().all(|r| r.reset.is_some())
        });
        let s = server.borrow();
        assert!(done, "{:?}", s.recv);
        for (id, r) in &s.recv {
            assert_eq!(r.reset, Some(code), "stream {id}");
            assert_eq!(r.fin_at, None);
            assert_eq!(r.mismatch, None);
        }
        // The reset is reported once; the stream is then closed.
        let ids: Vec<_> = s.recv.keys().copied().collect();
        drop(s);
        let now = pair.net.now();
        for id in ids {
            let mut buf = [0u8; 16];
            assert_eq!(
                pair.server_conn().read(now, id, &mut buf),
                Err(ReadError::ClosedStream)
            );
        }
    });
}

#[test]
fn stop_sending_reaches_the_peer_as_stopped_with_its_code() {
    for_each_seed(10, |seed| {
        let link = LinkConfig {
            loss_rate: if seed.0 == 0 { 0.0 } else { 0.1 },
            ..LinkConfig::default()
        };
        let mut pair = Pair::new(seed, link);
        let code = VarInt::from_u32(7);
        // The client writes far more than flows in a round trip, and never
        // finishes: only STOP_SENDING ends the stream.
        let client = pair.client_app(AppConfig {
            send: vec![SendPlan {
                dir: Dir::Bi,
                len: 2_000_000,
                finish: false,
                reset: None,
            }],
            ..AppConfig::default()
        });
        let server = pair.server_app(AppConfig {
            stop_incoming: Some(code),
            ..AppConfig::default()
        });
        let (c, _) = pair.connect_and_wait(Duration::from_secs(25));
        let done = pair.run_until(LIMIT, |_| {
            client
                .borrow()
                .send
                .values()
                .next()
                .is_some_and(|s| s.stopped.is_some())
        });
        assert!(done, "{:?}", client.borrow().send);
        let (id, log) = {
            let c = client.borrow();
            let (id, log) = c.send.iter().next().unwrap();
            (*id, log.clone())
        };
        assert_eq!(log.stopped, Some(code));
        assert!(
            client
                .borrow()
                .stream_events
                .iter()
                .any(|(_, e)| *e == StreamEvent::Stopped { id, code })
        );
        // Writing and finishing now fail with the peer's code.
        assert_eq!(
            pair.client_conn(c).write(id, b"more"),
            Err(WriteError::Stopped(code))
        );
        // Whatever reached the server before it stopped reading was intact,
        // and the stream never ended normally.
        let s = server.borrow();
        s.assert_intact();
        assert!(s.recv.values().all(|r| r.fin_at.is_none()));
    });
}
