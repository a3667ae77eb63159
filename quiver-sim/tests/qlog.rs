//! The qlog event sink (`quiver_proto::qlog`): a connection reports its
//! life to the sink its `TransportConfig::qlog` factory made, and nothing
//! when none is set.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quiver_proto::frame::{Frame, Iter};
use quiver_proto::qlog::{
    CloseCode, CongestionState, ConnectionState, DropTrigger, KeyTrigger, KeyType, Owner,
    PathState, QlogConnectionInfo, QlogEvent, QlogFactory, QlogSink, RecoveryMetrics,
};
use quiver_proto::{ConnectionId, Side, TransportConfig, VarInt};
use quiver_sim::quic::{AppConfig, Pair, SendPlan};
use quiver_sim::{LinkConfig, for_each_seed, loopback};

/// An owned summary of one event, enough to check what was reported.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Version,
    Params(Owner),
    Sent { pn: u64, frames: usize },
    Received { pn: u64 },
    Lost,
    Dropped(DropTrigger),
    Metrics(RecoveryMetrics),
    Congestion(CongestionState),
    Key(KeyType, u64, KeyTrigger),
    KeyDiscarded(KeyType),
    Path(SocketAddr, PathState),
    State(Option<ConnectionState>, ConnectionState),
    Closed(Owner, Option<CloseCode>, Vec<u8>),
}

#[derive(Debug, Default)]
struct Log {
    info: Vec<QlogConnectionInfo>,
    events: Vec<(Side, Instant, Seen)>,
}

#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Log>>);

struct Sink {
    side: Side,
    log: Arc<Mutex<Log>>,
}

impl QlogFactory for Recorder {
    fn new_sink(&self, info: &QlogConnectionInfo) -> Option<Box<dyn QlogSink>> {
        self.0.lock().unwrap().info.push(*info);
        Some(Box::new(Sink {
            side: info.side,
            log: self.0.clone(),
        }))
    }
}

/// Counts frames, failing on any that does not decode: what the sink is
/// given is the packet's plaintext.
fn frames(payload: &[u8]) -> usize {
    Iter::new(payload)
        .map(|f| f.expect("frames decode"))
        .filter(|f| !matches!(f, Frame::Padding(_)))
        .count()
}

impl QlogSink for Sink {
    fn event(&mut self, now: Instant, event: &QlogEvent<'_>) {
        let seen = match event {
            QlogEvent::VersionInformation { .. } => Seen::Version,
            QlogEvent::ParametersSet { owner, .. } => Seen::Params(*owner),
            QlogEvent::PacketSent(p) => Seen::Sent {
                pn: p.packet_number,
                frames: frames(p.payload),
            },
            QlogEvent::PacketReceived(p) => {
                frames(p.payload);
                Seen::Received {
                    pn: p.packet_number,
                }
            }
            QlogEvent::PacketLost { .. } => Seen::Lost,
            QlogEvent::PacketDropped { trigger, .. } => Seen::Dropped(*trigger),
            QlogEvent::MetricsUpdated(m) => Seen::Metrics(**m),
            QlogEvent::CongestionStateUpdated { new, .. } => Seen::Congestion(*new),
            QlogEvent::KeyUpdated {
                key_type,
                generation,
                trigger,
            } => Seen::Key(*key_type, *generation, *trigger),
            QlogEvent::KeyDiscarded { key_type } => Seen::KeyDiscarded(*key_type),
            QlogEvent::PathUpdated { remote, state } => Seen::Path(*remote, *state),
            QlogEvent::ConnectionStateUpdated { old, new } => Seen::State(*old, *new),
            // Checked in qlog_streams.rs.
            QlogEvent::DatagramsReceived { .. }
            | QlogEvent::DatagramsSent { .. }
            | QlogEvent::StreamStateUpdated(_) => return,
            QlogEvent::ConnectionClosed {
                owner,
                code,
                reason,
                ..
            } => Seen::Closed(*owner, *code, reason.to_vec()),
        };
        self.log.lock().unwrap().events.push((self.side, now, seen));
    }
}

/// 2% loss with jitter: enough for losses and recovery periods.
fn lossy() -> LinkConfig {
    LinkConfig {
        loss_rate: 0.02,
        jitter: Duration::from_millis(2),
        ..LinkConfig::default()
    }
}

#[test]
fn sink_receives_the_life_of_a_lossy_transfer_with_key_updates() {
    for_each_seed(4, |seed| {
        let recorder = Recorder::default();
        let client_cfg = TransportConfig {
            qlog: Some(Arc::new(recorder.clone())),
            // RFC 9001 §6: exercise key updates (generation and trigger).
            key_update_interval: Some(300),
            ..TransportConfig::default()
        };
        let server_cfg = TransportConfig {
            qlog: Some(Arc::new(recorder.clone())),
            ..TransportConfig::default()
        };
        let mut pair = Pair::with_configs(seed, lossy(), client_cfg, server_cfg);
        let plan = AppConfig {
            send: vec![SendPlan::uni(2_000_000)],
            ..AppConfig::default()
        };
        let _client_app = pair.client_app(plan);
        let server_app = pair.server_app(AppConfig::default());
        let (client, _) = pair.connect_and_wait(Duration::from_secs(25));
        assert!(pair.run_until(Duration::from_secs(60), |_| {
            server_app.borrow().streams_finished() == 1
        }));
        let now = pair.net.now();
        pair.client_conn(client)
            .close(now, VarInt::from_u32(7), Bytes::from_static(b"done"));
        pair.poke_client();
        pair.run_until(Duration::from_secs(10), |p| {
            p.client_conn(client).is_drained() && p.server_conn().is_drained()
        });
        let client_stats = pair.client_conn(client).stats();
        let server_stats = pair.server_conn().stats();

        let log = recorder.0.lock().unwrap();
        // One sink per connection, told its role and the client's original
        // Destination Connection ID (the name qlog files go by).
        assert_eq!(log.info.len(), 2, "{:?}", log.info);
        assert_eq!(log.info[0].side, Side::Client);
        assert_eq!(log.info[1].side, Side::Server);
        assert_eq!(log.info[0].orig_dst_cid, log.info[1].orig_dst_cid);
        assert_ne!(log.info[0].orig_dst_cid, ConnectionId::EMPTY);

        for (side, stats) in [(Side::Client, client_stats), (Side::Server, server_stats)] {
            let ev: Vec<(Instant, &Seen)> = log
                .events
                .iter()
                .filter(|(s, ..)| *s == side)
                .map(|(_, t, e)| (*t, e))
                .collect();
            assert!(
                ev.windows(2).all(|w| w[0].0 <= w[1].0),
                "{side:?}: time order"
            );
            let count = |f: &dyn Fn(&Seen) -> bool| ev.iter().filter(|(_, e)| f(e)).count();
            // Every packet sealed and every loss is reported.
            let sent = count(&|e| matches!(e, Seen::Sent { .. }));
            assert_eq!(sent as u64, stats.packets_sent, "{side:?} packet_sent");
            // Lost PMTU probes are reported too, but not counted in the
            // stats (they are no congestion signal, RFC 9000 §14.4).
            let lost = count(&|e| matches!(e, Seen::Lost)) as u64;
            assert!(lost >= stats.packets_lost, "{side:?} packet_lost {lost}");
            assert!(
                lost <= stats.packets_lost + 20,
                "{side:?} packet_lost {lost}"
            );
            assert!(stats.packets_lost > 0, "{side:?}: the link lost nothing");
            assert!(count(&|e| matches!(e, Seen::Received { .. })) > 0);
            assert!(count(&|e| matches!(e, Seen::Sent { frames, .. } if *frames > 0)) > 0);
            assert_eq!(count(&|e| *e == Seen::Version), 1);
            assert_eq!(count(&|e| *e == Seen::Params(Owner::Local)), 1);
            assert_eq!(count(&|e| *e == Seen::Params(Owner::Remote)), 1);
            // Metrics only when they changed.
            let metrics: Vec<&RecoveryMetrics> = ev
                .iter()
                .filter_map(|(_, e)| match e {
                    Seen::Metrics(m) => Some(m),
                    _ => None,
                })
                .collect();
            assert!(metrics.len() > 10, "{side:?}: {} metrics", metrics.len());
            assert!(metrics.windows(2).all(|w| w[0] != w[1]), "{side:?}: repeat");
            // Keys: Initial, Handshake and 1-RTT installed, Initial and
            // Handshake discarded (RFC 9001 §4.9).
            for k in [KeyType::Initial, KeyType::Handshake, KeyType::OneRtt] {
                assert!(count(&|e| matches!(e, Seen::Key(t, 0, KeyTrigger::Tls) if *t == k)) == 1);
            }
            for k in [KeyType::Initial, KeyType::Handshake] {
                assert_eq!(count(&|e| *e == Seen::KeyDiscarded(k)), 1, "{side:?} {k:?}");
            }
            let updates = count(&|e| {
                matches!(
                    e,
                    Seen::Key(KeyType::OneRtt, g, KeyTrigger::LocalUpdate | KeyTrigger::RemoteUpdate)
                        if *g > 0
                )
            });
            assert_eq!(updates as u64, stats.key_updates, "{side:?} key updates");
            assert!(stats.key_updates > 0);
            // The connection's states in order.
            let transitions: Vec<(Option<ConnectionState>, ConnectionState)> = ev
                .iter()
                .filter_map(|(_, e)| match e {
                    Seen::State(old, new) => Some((*old, *new)),
                    _ => None,
                })
                .collect();
            // Each reports the state before it.
            assert_eq!(transitions[0].0, None);
            assert!(transitions.windows(2).all(|w| w[1].0 == Some(w[0].1)));
            let states: Vec<ConnectionState> = transitions.iter().map(|t| t.1).collect();
            // The client closes; it may drain on the server's reply (RFC
            // 9000 §10.2.2). The server drains.
            let mut expected = vec![
                ConnectionState::HandshakeStarted,
                ConnectionState::HandshakeComplete,
                ConnectionState::HandshakeConfirmed,
            ];
            if side == Side::Client {
                expected.push(ConnectionState::Closing);
            }
            if side == Side::Server || states.contains(&ConnectionState::Draining) {
                expected.push(ConnectionState::Draining);
            }
            expected.push(ConnectionState::Closed);
            assert_eq!(states, expected, "{side:?}");
            // The sender's losses put its controller in recovery, and out
            // again (RFC 9002 §7.3.2); the receiver's are ACK-only packets,
            // which are no congestion signal.
            if side == Side::Client {
                let phase = |c| count(&|e| *e == Seen::Congestion(c));
                assert!(phase(CongestionState::Recovery) > 0);
                assert!(phase(CongestionState::CongestionAvoidance) > 0);
            }
            // The close, with the application's code and reason (RFC 9000
            // §19.19), owned by the client.
            let owner = if side == Side::Client {
                Owner::Local
            } else {
                Owner::Remote
            };
            let closed: Vec<_> = ev
                .iter()
                .filter(|(_, e)| matches!(e, Seen::Closed(..)))
                .collect();
            assert_eq!(
                closed.iter().map(|(_, e)| *e).collect::<Vec<_>>(),
                [&Seen::Closed(
                    owner,
                    Some(CloseCode::Application(7)),
                    b"done".to_vec()
                )],
                "{side:?}"
            );
        }
    });
}

#[test]
fn a_factory_may_decline_and_no_factory_is_the_default() {
    #[derive(Debug)]
    struct Decline(Arc<Mutex<u32>>);
    impl QlogFactory for Decline {
        fn new_sink(&self, _: &QlogConnectionInfo) -> Option<Box<dyn QlogSink>> {
            *self.0.lock().unwrap() += 1;
            None
        }
    }
    assert!(TransportConfig::default().qlog.is_none());
    let asked = Arc::new(Mutex::new(0));
    let cfg = TransportConfig {
        qlog: Some(Arc::new(Decline(asked.clone()))),
        ..TransportConfig::default()
    };
    for_each_seed(2, |seed| {
        *asked.lock().unwrap() = 0;
        let mut pair = Pair::with_configs(seed, LinkConfig::default(), cfg.clone(), cfg.clone());
        pair.client_app(AppConfig::default());
        pair.server_app(AppConfig::default());
        pair.connect_and_wait(Duration::from_secs(25));
        assert_eq!(*asked.lock().unwrap(), 2);
    });
}

/// Duplicated and corrupted datagrams are dropped unread, each reported
/// with its reason (transport:packet_dropped): a copy of a packet already
/// read (RFC 9000 §12.3) and one that fails authentication (RFC 9001
/// §5.3, §9.5).
#[test]
fn dropped_packets_are_reported_with_their_reason() {
    for_each_seed(4, |seed| {
        let recorder = Recorder::default();
        let cfg = TransportConfig {
            qlog: Some(Arc::new(recorder.clone())),
            ..TransportConfig::default()
        };
        let link = LinkConfig {
            duplicate_rate: 0.05,
            corrupt_rate: 0.05,
            ..LinkConfig::default()
        };
        let mut pair = Pair::with_configs(seed, link, cfg.clone(), cfg);
        let plan = AppConfig {
            send: vec![SendPlan::uni(500_000)],
            ..AppConfig::default()
        };
        let _client_app = pair.client_app(plan);
        let server_app = pair.server_app(AppConfig::default());
        pair.connect_and_wait(Duration::from_secs(25));
        assert!(pair.run_until(Duration::from_secs(60), |_| {
            server_app.borrow().streams_finished() == 1
        }));
        let log = recorder.0.lock().unwrap();
        let dropped = |t| {
            log.events
                .iter()
                .filter(|(_, _, e)| *e == Seen::Dropped(t))
                .count()
        };
        assert!(dropped(DropTrigger::Duplicate) > 0, "seed {seed}");
        assert!(dropped(DropTrigger::DecryptionFailure) > 0, "seed {seed}");
    });
}

/// RFC 9000 §9.3: after a NAT rebinding the server moves to the client's
/// new address and validates it (§8.2); its sink hears both, in order.
#[test]
fn path_changes_are_reported() {
    for_each_seed(3, |seed| {
        let recorder = Recorder::default();
        let cfg = TransportConfig {
            qlog: Some(Arc::new(recorder.clone())),
            ..TransportConfig::default()
        };
        let mut pair = Pair::with_configs(seed, LinkConfig::default(), cfg.clone(), cfg);
        pair.server_app(AppConfig {
            send: vec![SendPlan::uni(1_000_000)],
            ..AppConfig::default()
        });
        let receiver = pair.client_app(AppConfig::default());
        pair.connect_and_wait(Duration::from_secs(10));
        pair.net.run_for(Duration::from_millis(20));
        let new = loopback(9, 6000);
        let old = pair.net.addr(pair.client);
        pair.net.nat_rebind(pair.client, new);
        pair.net.run_for(Duration::from_millis(50));
        pair.net.expire_mapping(old);
        assert!(pair.run_until(Duration::from_secs(30), |_| {
            receiver.borrow().streams_finished() == 1
        }));
        let log = recorder.0.lock().unwrap();
        let server_paths: Vec<&Seen> = log
            .events
            .iter()
            .filter(|(side, _, e)| *side == Side::Server && matches!(e, Seen::Path(..)))
            .map(|(_, _, e)| e)
            .collect();
        // The old path is re-checked too (§9.3.2 keeps it to fall back to)
        // and may answer while its mapping lasts.
        assert_eq!(server_paths[0], &Seen::Path(new, PathState::Migrated));
        assert!(
            server_paths[1..].contains(&&Seen::Path(new, PathState::Validated)),
            "{server_paths:?}"
        );
        assert!(
            server_paths[1..].iter().all(
                |p| matches!(p, Seen::Path(a, PathState::Validated) if *a == new || *a == old)
            ),
            "{server_paths:?}"
        );
    });
}
