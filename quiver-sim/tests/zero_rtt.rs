//! 0-RTT between quiver endpoints (RFC 9001 §4.6, RFC 9000 §7.4.1,
//! §12.3): a resumed client sends streams before the handshake completes;
//! accepted, under loss, rejected, and bounded by the remembered limits.
//! Closing with 0-RTT keys is a stage of the close matrix
//! (close_matrix/zero_rtt.rs).

mod common_zero_rtt;

use std::sync::Arc;
use std::time::Duration;

use common_zero_rtt::{early_data_pair, early_data_pair_with, first_connection};

use quiver_proto::frame::Dir;
use quiver_proto::{
    AdmissionConfig, ConnectionHandle, NewTokenConfig, ServerConfig, TransportConfig,
};
use quiver_sim::quic::{AppConfig, Pair, SendPlan, SharedApp, TestPki};
use quiver_sim::{LinkConfig, Seed, for_each_seed};

/// Both sides allow early data; the server uses `server_transport`.
fn pair(seed: Seed, link: LinkConfig, server_transport: TransportConfig) -> Pair {
    build(seed, link, server_transport, &TestPki::new())
}

fn pair_with_pki(seed: Seed, pki: &TestPki) -> Pair {
    build(seed, LinkConfig::default(), TransportConfig::default(), pki)
}

fn build(seed: Seed, link: LinkConfig, server_transport: TransportConfig, pki: &TestPki) -> Pair {
    early_data_pair(seed, link, server_transport, pki)
}

/// Client and server applications: the client opens `plans` as early as
/// it may, the server reads.
fn apps(pair: &mut Pair, plans: Vec<SendPlan>) -> (SharedApp, SharedApp) {
    let client = pair.client_app(AppConfig {
        send: plans,
        early: true,
        ..AppConfig::default()
    });
    // Not the first connection's server side, which may still be open.
    let server = pair.server_app_for_new_connections(AppConfig::default());
    (client, server)
}

/// The server connection made after the first one.
fn second_server(pair: &mut Pair) -> ConnectionHandle {
    *pair.server().accepted.last().expect("accepted")
}

/// A resumed connection whose streams (4000 bytes one way, 2000 on a
/// bidirectional stream) go in 0-RTT: runs it to the end, checks that the
/// server read 0-RTT packets, that both sides accepted 0-RTT, and that both
/// streams were complete at the server before the client's handshake
/// completed. Returns the server's connection.
fn streams_arrive_in_0rtt(seed: Seed, pair: &mut Pair) -> ConnectionHandle {
    first_connection(pair);
    let (client, server) = apps(pair, vec![SendPlan::uni(4000), SendPlan::bi(2000)]);
    let c2 = pair.connect();
    assert!(pair.client().conn(c2).is_zero_rtt_offered());
    pair.poke_client();
    assert!(pair.run_until(Duration::from_secs(5), |p| {
        server.borrow().bytes_received() == 6000
            && server.borrow().streams_finished() == 2
            && p.client().conn(c2).is_handshake_complete()
    }));
    server.borrow().assert_intact();
    let s2 = second_server(pair);
    assert!(pair.server().conn(s2).is_zero_rtt_accepted(), "{seed}");
    assert!(
        pair.server().conn(s2).stats().zero_rtt_packets_received > 0,
        "{seed}"
    );
    assert!(pair.client().conn(c2).is_zero_rtt_accepted(), "{seed}");
    assert!(pair.client().conn(c2).is_resumed(), "{seed}");
    let connected = client.borrow().connected_at.expect("connected");
    for (id, r) in &server.borrow().recv {
        let fin = r.fin_at.expect("finished");
        assert!(
            fin < connected,
            "{seed}: stream {id:?} at {fin:?}, connected {connected:?}"
        );
    }
    s2
}

/// RFC 9000 §17.2.5.3: "A client MAY attempt 0-RTT after receiving a
/// Retry packet by sending 0-RTT packets to the connection ID provided by
/// the server"; RFC 9002 §6.3: a Retry resets loss recovery. A server that
/// answers every new client with a Retry (and issues no NEW_TOKEN, so the
/// resumed client has no token either) read none of the 0-RTT sent before
/// it: the client sends those streams again in 0-RTT, and they arrive
/// before its handshake completes. (They used to wait for loss detection
/// and then go in 1-RTT.)
#[test]
fn zero_rtt_goes_again_in_0rtt_after_a_retry() {
    for_each_seed(5, |seed| {
        let pki = TestPki::new();
        let mut pair = early_data_pair_with(
            seed,
            LinkConfig::default(),
            TransportConfig::default(),
            &pki,
            |server| {
                server.admission = AdmissionConfig {
                    retry_threshold: 0,
                    ..AdmissionConfig::default()
                };
                server.new_tokens = NewTokenConfig {
                    enabled: false,
                    ..NewTokenConfig::default()
                };
            },
        );
        streams_arrive_in_0rtt(seed, &mut pair);
        // Both connections were retried: the 0-RTT went before and after.
        assert!(
            pair.server().endpoint.stats().retried_automatically >= 2,
            "{seed}: {:?}",
            pair.server().endpoint.stats()
        );
    });
}

/// RFC 9001 §4.6.1: the client's streams go in 0-RTT packets, the server
/// reads them, and the data arrives before the client's handshake
/// completes (one round trip earlier than without 0-RTT).
#[test]
fn accepted_0rtt_delivers_streams_before_the_handshake_completes() {
    for_each_seed(3, |seed| {
        let mut pair = pair(seed, LinkConfig::default(), TransportConfig::default());
        streams_arrive_in_0rtt(seed, &mut pair);
    });
}

/// RFC 9000 §7 (Figure 5), RFC 9001 §5.7: the server answers 0-RTT in
/// "0.5-RTT data", 1-RTT packets sent with its first flight, before the
/// client's Finished arrives: its echo of the client's 0-RTT stream and a
/// stream it opens itself reach the client before the server's own
/// handshake completes, one round trip earlier than it could otherwise
/// answer. (The core used to hold a server's stream data, and its
/// stream opening, until then.)
#[test]
fn server_answers_0rtt_in_half_rtt_data() {
    for_each_seed(3, |seed| {
        let mut pair = pair(seed, LinkConfig::default(), TransportConfig::default());
        first_connection(&mut pair);
        let client = pair.client_app(AppConfig {
            send: vec![SendPlan::bi(2000)],
            early: true,
            ..AppConfig::default()
        });
        let server = pair.server_app_for_new_connections(AppConfig {
            send: vec![SendPlan::uni(1000)],
            echo: true,
            early: true,
            ..AppConfig::default()
        });
        let c2 = pair.connect();
        pair.poke_client();
        assert!(
            pair.run_until(Duration::from_secs(5), |_| {
                client.borrow().streams_finished() == 2 && server.borrow().connected_at.is_some()
            }),
            "{seed}: client read {}",
            client.borrow().bytes_received()
        );
        client.borrow().assert_intact();
        assert_eq!(client.borrow().bytes_received(), 3000, "{seed}");
        assert!(pair.client().conn(c2).is_zero_rtt_accepted(), "{seed}");
        let server_connected = server.borrow().connected_at.expect("connected");
        for (id, r) in &client.borrow().recv {
            let fin = r.fin_at.expect("finished");
            assert!(
                fin < server_connected,
                "{seed}: stream {id:?} complete at {fin:?}, server connected {server_connected:?}"
            );
        }
    });
}

/// 0-RTT under 15% loss both ways: lost 0-RTT packets are recovered
/// (sent again in 1-RTT once the handshake completes) and every byte
/// arrives intact.
#[test]
fn zero_rtt_survives_loss() {
    for_each_seed(6, |seed| {
        let link = LinkConfig {
            loss_rate: 0.15,
            ..LinkConfig::default()
        };
        let mut pair = pair(seed, link, TransportConfig::default());
        first_connection(&mut pair);
        let (_, server) = apps(
            &mut pair,
            vec![
                SendPlan::uni(3000),
                SendPlan::uni(20_000),
                SendPlan::bi(1000),
            ],
        );
        let c2 = pair.connect();
        pair.poke_client();
        assert!(pair.run_until(Duration::from_secs(30), |_| {
            server.borrow().streams_finished() == 3
        }));
        server.borrow().assert_intact();
        assert_eq!(server.borrow().bytes_received(), 24_000);
        assert_eq!(pair.client().conn(c2).close_reason(), None);
    });
}

/// RFC 9001 §4.6.2: the server now refuses 0-RTT (a configuration
/// without early data sharing the first one's session storage: the ticket
/// still resumes). The client's 0-RTT packets count as lost and the same
/// streams' data is sent again in 1-RTT (the limits did not change),
/// arriving whole.
#[test]
fn rejected_0rtt_data_is_sent_again_in_1rtt() {
    for_each_seed(3, |seed| {
        let pki = TestPki::new();
        let mut pair = pair_with_pki(seed, &pki);
        let early = pki.server_crypto().enable_early_data().build().unwrap();
        let storage = early.rustls().session_storage.clone();
        pair.server()
            .endpoint
            .set_server_config(Some(Arc::new(ServerConfig {
                crypto: Arc::new(early),
                ..pki.server_config(TransportConfig::default())
            })));
        first_connection(&mut pair);
        let crypto = pki
            .server_crypto()
            .with_session_storage(storage)
            .build()
            .unwrap();
        pair.server()
            .endpoint
            .set_server_config(Some(Arc::new(ServerConfig {
                crypto: Arc::new(crypto),
                ..pki.server_config(TransportConfig::default())
            })));
        let (_, server) = apps(&mut pair, vec![SendPlan::uni(5000), SendPlan::bi(1500)]);
        let c2 = pair.connect();
        assert!(pair.client().conn(c2).is_zero_rtt_offered());
        pair.poke_client();
        assert!(pair.run_until(Duration::from_secs(5), |_| {
            server.borrow().streams_finished() == 2
        }));
        server.borrow().assert_intact();
        assert_eq!(server.borrow().bytes_received(), 6500);
        let s2 = second_server(&mut pair);
        assert!(pair.server().conn(s2).is_resumed());
        assert!(!pair.server().conn(s2).is_zero_rtt_accepted());
        assert_eq!(pair.server().conn(s2).stats().zero_rtt_packets_received, 0);
        assert!(!pair.client().conn(c2).is_zero_rtt_accepted());
        assert_eq!(pair.client().conn(c2).close_reason(), None);
    });
}

/// RFC 9000 §7.4.1: in 0-RTT the client uses the remembered limits: with
/// a server allowing 2 unidirectional streams, the third cannot be opened
/// before the handshake; the server, which keeps its limits, sees no
/// violation.
#[test]
fn remembered_limits_bound_0rtt() {
    let transport = TransportConfig {
        max_concurrent_uni_streams: 2,
        ..TransportConfig::default()
    };
    let mut pair = pair(Seed::from_env_or(41), LinkConfig::default(), transport);
    first_connection(&mut pair);
    let c2 = pair.connect();
    let conn = pair.client().conn(c2);
    assert!(conn.is_zero_rtt_offered());
    let a = conn.open_stream(Dir::Uni).expect("first");
    let b = conn.open_stream(Dir::Uni).expect("second");
    assert!(
        conn.open_stream(Dir::Uni).is_none(),
        "a third stream in 0-RTT"
    );
    for id in [a, b] {
        conn.write(id, b"early").unwrap();
        conn.finish(id).unwrap();
    }
    assert!(pair.run_handshake(c2, Duration::from_secs(5)));
    pair.net.run_for(Duration::from_millis(200));
    let s2 = second_server(&mut pair);
    assert!(pair.server().conn(s2).stats().zero_rtt_packets_received > 0);
    assert_eq!(pair.server().conn(s2).close_reason(), None);
    assert_eq!(pair.client().conn(c2).close_reason(), None);
}

/// RFC 9221 §3 with RFC 9000 §7.4.1: a DATAGRAM sent before the handshake
/// completes goes in 0-RTT, sized by the remembered
/// max_datagram_frame_size, and reaches the server's application before
/// the client could send any 1-RTT packet.
#[test]
fn datagrams_go_in_0rtt() {
    for_each_seed(2, |seed| {
        let mut pair = pair(seed, LinkConfig::default(), TransportConfig::default());
        first_connection(&mut pair);
        let server = pair.server_app_for_new_connections(AppConfig::default());
        let c2 = pair.connect();
        let conn = pair.client().conn(c2);
        conn.enable_sent_log_for_test();
        assert!(conn.is_zero_rtt_offered());
        assert!(conn.max_datagram_size() > 1000);
        conn.send_datagram(bytes::Bytes::from_static(b"early datagram"))
            .expect("a datagram in 0-RTT");
        assert!(pair.run_until(Duration::from_secs(5), |p| {
            p.client().conn(c2).is_handshake_complete()
        }));
        let sent_0rtt = pair
            .client()
            .conn(c2)
            .sent_log_for_test()
            .iter()
            .any(|p| p.ty == quiver_proto::packet::PacketType::ZeroRtt);
        assert!(sent_0rtt);
        // The client has not sent any 1-RTT packet yet.
        assert_eq!(
            server.borrow().datagrams,
            [bytes::Bytes::from_static(b"early datagram")]
        );
    });
}

/// RFC 9000 §7.4.1: a server whose limits dropped (same TLS configuration,
/// so same tickets; fewer unidirectional streams) must not accept 0-RTT
/// sent under the old ones: it rejects it. The client, whose 0-RTT relied
/// on limits that shrank, fails the connection with `ZeroRttRejected`
/// rather than resend (RFC 9001 §4.6.2), the server sees NO_ERROR, and
/// nothing the client sent violated the server's limits.
#[test]
fn lowered_limits_reject_0rtt() {
    let pki = TestPki::new();
    let mut pair = pair_with_pki(Seed::from_env_or(44), &pki);
    let crypto = Arc::new(pki.server_crypto().enable_early_data().build().unwrap());
    let config = |uni: u64| {
        Arc::new(ServerConfig {
            crypto: crypto.clone(),
            ..pki.server_config(TransportConfig {
                max_concurrent_uni_streams: uni,
                ..TransportConfig::default()
            })
        })
    };
    pair.server().endpoint.set_server_config(Some(config(100)));
    first_connection(&mut pair);
    pair.server().endpoint.set_server_config(Some(config(2)));
    let c2 = pair.connect();
    let conn = pair.client().conn(c2);
    let id = conn.open_stream(Dir::Uni).expect("0-RTT stream");
    conn.write(id, b"early").unwrap();
    assert!(pair.run_until(Duration::from_secs(5), |p| {
        p.client().conn(c2).close_reason().is_some()
    }));
    // The application learns why, to connect again (RFC 9001 §4.6.2).
    assert_eq!(
        pair.client().conn(c2).close_reason(),
        Some(&quiver_proto::ConnectionError::ZeroRttRejected)
    );
    let s2 = second_server(&mut pair);
    assert!(pair.server().conn(s2).is_resumed());
    assert!(!pair.server().conn(s2).is_zero_rtt_accepted());
    assert_eq!(pair.server().conn(s2).stats().zero_rtt_packets_received, 0);
    pair.net.run_for(Duration::from_secs(1));
    match pair.server().conn(s2).close_reason() {
        Some(quiver_proto::ConnectionError::ConnectionClosed { code, .. }) => {
            // The server did nothing wrong.
            assert_eq!(*code, quiver_proto::TransportErrorCode::NO_ERROR);
        }
        other => panic!("server ended with {other:?}"),
    }
}

/// Whether a client datagram starts with an Initial packet (long header,
/// type 0: RFC 9000 §17.2, not covered by header protection).
fn starts_with_initial(data: &[u8]) -> bool {
    data.first().is_some_and(|b| b & 0xb0 == 0x80)
}

/// RFC 9000 §5.2.2 ("the server MAY buffer a limited number of these
/// packets in anticipation of a late-arriving Initial packet"): the
/// client's 0-RTT datagrams overtake its Initials. The server keeps them,
/// reads them once the Initials make the attempt, and every byte arrives
/// in 0-RTT, before the client's handshake completes (nothing is resent
/// in 1-RTT, which dropping them would have made happen).
#[test]
fn zero_rtt_overtaking_its_initial_is_read_as_0rtt() {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use quiver_sim::Verdict;
    use quiver_sim::quic::{CLIENT_ADDR, SERVER_ADDR};
    for_each_seed(3, |seed| {
        let mut pair = pair(seed, LinkConfig::default(), TransportConfig::default());
        first_connection(&mut pair);
        let (client, server) = apps(&mut pair, vec![SendPlan::uni(6000)]);
        let holding = Rc::new(Cell::new(true));
        let held: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
        {
            let (holding, held) = (holding.clone(), held.clone());
            pair.net.set_filter(move |d| {
                if holding.get() && d.src == CLIENT_ADDR && starts_with_initial(d.data) {
                    held.borrow_mut().push(d.data.to_vec());
                    return Verdict::Drop;
                }
                Verdict::Deliver
            });
        }
        let c2 = pair.connect();
        pair.poke_client();
        // The first flight leaves; its 0-RTT-only datagrams arrive first.
        pair.net.run_for(Duration::from_millis(15));
        holding.set(false);
        assert!(held.borrow().len() >= 2, "the ClientHello's datagrams");
        assert!(pair.server().endpoint.early_datagrams_for_test() > 0);
        for d in held.borrow_mut().drain(..) {
            pair.net.inject(CLIENT_ADDR, SERVER_ADDR, d);
        }
        assert!(pair.run_until(Duration::from_secs(5), |p| {
            server.borrow().streams_finished() == 1 && p.client().conn(c2).is_handshake_complete()
        }));
        server.borrow().assert_intact();
        assert_eq!(pair.server().endpoint.early_datagrams_for_test(), 0);
        let s2 = second_server(&mut pair);
        assert!(pair.server().conn(s2).is_zero_rtt_accepted());
        assert!(pair.server().conn(s2).stats().zero_rtt_packets_received >= 5);
        assert!(pair.client().conn(c2).is_zero_rtt_accepted());
        let connected = client.borrow().connected_at.expect("connected");
        for (id, r) in &server.borrow().recv {
            let fin = r.fin_at.expect("finished");
            assert!(
                fin < connected,
                "stream {id:?} done at {fin:?}, after {connected:?}"
            );
        }
    });
}

/// A forged 0-RTT packet for a connection that does not exist: long
/// header type 1 (RFC 9000 §17.2.3), an 8-byte Destination CID of its own.
fn forged_0rtt(i: u32) -> Vec<u8> {
    let mut d = vec![0xd0, 0, 0, 0, 1, 8];
    d.extend_from_slice(&i.to_be_bytes());
    d.extend_from_slice(&[0xee; 4]);
    d.push(8);
    d.extend_from_slice(&[0x5c; 8]);
    let len: u16 = 1100;
    d.extend_from_slice(&(0x4000 | len).to_be_bytes());
    d.resize(d.len() + usize::from(len), 0xa5);
    d
}

/// A flood of forged 0-RTT packets, each for its own connection ID and
/// from one of thousands of addresses, holds no more than the endpoint's
/// bound of early datagrams at any time; meanwhile a genuine client
/// resumes and its 0-RTT is accepted and read.
#[test]
fn a_flood_of_forged_0rtt_stays_bounded() {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    use quiver_sim::quic::SERVER_ADDR;
    let mut pair = pair(
        Seed::from_env_or(45),
        LinkConfig::default(),
        TransportConfig::default(),
    );
    first_connection(&mut pair);
    let (_, server) = apps(&mut pair, vec![SendPlan::uni(4000)]);
    let mut most = 0;
    for i in 0..20_000u32 {
        let from = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
            1024 + (i % 7) as u16,
        );
        pair.net.inject(from, SERVER_ADDR, forged_0rtt(i));
        if i % 100 == 99 {
            pair.net.run_for(Duration::from_millis(1));
            most = most.max(pair.server().endpoint.early_datagrams_for_test());
        }
        if i == 10_000 {
            // A genuine client in the middle of the flood.
            pair.connect();
            pair.poke_client();
        }
    }
    assert!(most > 0, "the flood was buffered at all");
    assert!(most <= 256, "{most} early datagrams held");
    assert!(pair.run_until(Duration::from_secs(5), |_| {
        server.borrow().streams_finished() == 1
    }));
    server.borrow().assert_intact();
    let s2 = second_server(&mut pair);
    assert!(pair.server().conn(s2).stats().zero_rtt_packets_received > 0);
}
