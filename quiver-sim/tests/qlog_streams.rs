//! qlog's stream and datagram events (`quiver_proto::qlog`): every stream
//! state change (transport:stream_state_updated, RFC 9000 §3), the UDP
//! datagrams of each receive and transmit (transport:datagrams_received,
//! transport:datagrams_sent) and the DATAGRAM frames (RFC 9221) inside
//! the packets, as draft-ietf-quic-qlog-quic-events-03 names them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quiver_proto::frame::{Frame, Iter};
use quiver_proto::qlog::{
    Owner, QlogConnectionInfo, QlogEvent, QlogFactory, QlogSink, StreamSide, StreamState,
    StreamStateUpdate,
};
use quiver_proto::streams::StreamId;
use quiver_proto::{ConnectionHandle, ConnectionStats, Side, TransportConfig, VarInt};
use quiver_sim::quic::{AppConfig, Pair, SendPlan, SharedApp};
use quiver_sim::{LinkConfig, for_each_seed};

/// An owned summary of the events this file checks.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// A packet sent or received: the streams its STREAM and RESET_STREAM
    /// frames name and
    /// the lengths of its DATAGRAM frames.
    Packet {
        sent: bool,
        streams: Vec<StreamId>,
        datagrams: Vec<usize>,
    },
    DatagramsSent {
        count: u16,
        segment_size: u16,
        length: u32,
    },
    DatagramsReceived(u16),
    Stream(StreamStateUpdate),
}

#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Side, Instant, Seen)>>>);

struct Sink {
    side: Side,
    log: Arc<Mutex<Vec<(Side, Instant, Seen)>>>,
}

impl QlogFactory for Recorder {
    fn new_sink(&self, info: &QlogConnectionInfo) -> Option<Box<dyn QlogSink>> {
        Some(Box::new(Sink {
            side: info.side,
            log: self.0.clone(),
        }))
    }
}

fn packet(sent: bool, payload: &[u8]) -> Seen {
    let mut streams = Vec::new();
    let mut datagrams = Vec::new();
    for f in Iter::new(payload) {
        match f.expect("frames decode") {
            Frame::Stream(s) => streams.push(StreamId::from_varint(s.id)),
            Frame::ResetStream(r) => streams.push(StreamId::from_varint(r.id)),
            Frame::Datagram(d) => datagrams.push(d.data.len()),
            _ => {}
        }
    }
    Seen::Packet {
        sent,
        streams,
        datagrams,
    }
}

impl QlogSink for Sink {
    fn event(&mut self, now: Instant, event: &QlogEvent<'_>) {
        let seen = match event {
            QlogEvent::PacketSent(p) => packet(true, p.payload),
            QlogEvent::PacketReceived(p) => packet(false, p.payload),
            QlogEvent::DatagramsSent {
                count,
                segment_size,
                length,
            } => Seen::DatagramsSent {
                count: *count,
                segment_size: *segment_size,
                length: *length,
            },
            QlogEvent::DatagramsReceived { length } => Seen::DatagramsReceived(*length),
            QlogEvent::StreamStateUpdated(u) => Seen::Stream(*u),
            _ => return,
        };
        self.log.lock().unwrap().push((self.side, now, seen));
    }
}

fn qlog_config(recorder: &Recorder) -> TransportConfig {
    TransportConfig {
        qlog: Some(Arc::new(recorder.clone())),
        ..TransportConfig::default()
    }
}

/// Runs a connected pair until `done`, then closes it and drains both
/// ends; returns the client's and the server's statistics.
fn finish(
    pair: &mut Pair,
    client: ConnectionHandle,
    done: impl FnMut(&mut Pair) -> bool,
) -> (ConnectionStats, ConnectionStats) {
    assert!(pair.run_until(Duration::from_secs(60), done));
    let now = pair.net.now();
    pair.client_conn(client)
        .close(now, VarInt::from_u32(0), Bytes::new());
    pair.poke_client();
    pair.run_until(Duration::from_secs(10), |p| {
        p.client_conn(client).is_drained() && p.server_conn().is_drained()
    });
    (pair.client_conn(client).stats(), pair.server_conn().stats())
}

/// The state updates of one side, per stream, in order.
fn streams_of(
    log: &[(Side, Instant, Seen)],
    side: Side,
) -> BTreeMap<StreamId, Vec<StreamStateUpdate>> {
    let mut map: BTreeMap<StreamId, Vec<StreamStateUpdate>> = BTreeMap::new();
    for (s, _, e) in log {
        if let (true, Seen::Stream(u)) = (*s == side, e) {
            map.entry(u.stream_id).or_default().push(*u);
        }
    }
    map
}

/// Checks the shape every stream's history has: opened by `opener`
/// first, closed last, and each part's updates chained (each `old` is the
/// part's previous `new`, from "ready" or "receive", RFC 9000 §3.1, §3.2).
/// Returns the states of the part `side`, in order.
fn part(updates: &[StreamStateUpdate], opener: Owner, side: StreamSide) -> Vec<StreamState> {
    let first = updates.first().expect("updates");
    assert_eq!(
        (first.side, first.old, first.new, first.trigger),
        (None, None, StreamState::Open, Some(opener)),
        "{updates:#?}"
    );
    let last = updates.last().unwrap();
    assert_eq!(
        (last.side, last.new),
        (None, StreamState::Closed),
        "{updates:#?}"
    );
    assert_eq!(
        updates.iter().filter(|u| u.side.is_none()).count(),
        2,
        "{updates:#?}"
    );
    let mut state = match side {
        StreamSide::Sending => StreamState::Ready,
        StreamSide::Receiving => StreamState::Receive,
    };
    let mut states = Vec::new();
    for u in updates.iter().filter(|u| u.side == Some(side)) {
        assert_eq!(u.old, Some(state), "{updates:#?}");
        assert_ne!(u.old, Some(u.new));
        state = u.new;
        states.push(u.new);
    }
    states
}

/// A finished stream, a reset one and DATAGRAM frames on a GSO-batching
/// pair: each stream's states in order with who caused them and the reset
/// code; one datagrams_received per datagram and one datagrams_sent per
/// transmit, counting what the connection counted; the DATAGRAM frames
/// in the packets with their lengths.
#[test]
fn streams_datagrams_and_datagram_frames_are_reported() {
    for_each_seed(4, |seed| transfer(seed, LinkConfig::default(), true));
}

/// The same on a lossy, reordering link: stream states still chain in
/// order, once each, and every datagram is counted (the DATAGRAM frames
/// may be lost).
#[test]
fn stream_states_chain_on_a_lossy_link() {
    let link = LinkConfig {
        loss_rate: 0.03,
        jitter: Duration::from_millis(3),
        ..LinkConfig::default()
    };
    for_each_seed(8, |seed| transfer(seed, link.clone(), false));
}

/// A finished stream, a reset one and five DATAGRAM frames each way over
/// `link`; `lossless`: the frames all arrive.
fn transfer(seed: quiver_sim::Seed, link: LinkConfig, lossless: bool) {
    let recorder = Recorder::default();
    let mut pair = Pair::with_configs(seed, link, qlog_config(&recorder), qlog_config(&recorder));
    let reset = SendPlan {
        finish: false,
        reset: Some(VarInt::from_u32(5)),
        ..SendPlan::uni(20_000)
    };
    let plan = AppConfig {
        send: vec![SendPlan::uni(300_000), reset],
        ..AppConfig::default()
    };
    let _client_app = pair.client_app(plan);
    let server_app: SharedApp = pair.server_app(AppConfig::default());
    let (client, _) = pair.connect_and_wait(Duration::from_secs(25));
    // RFC 9221: five DATAGRAM frames of 100 to 140 bytes each way.
    for i in 0..5 {
        let d = Bytes::from(vec![i as u8; 100 + 10 * i]);
        pair.client_conn(client).send_datagram(d.clone()).unwrap();
        pair.server_conn().send_datagram(d).unwrap();
    }
    // Until both ends released both streams.
    let (client_stats, server_stats) = finish(&mut pair, client, |p| {
        let app = server_app.borrow();
        app.streams_finished() == 1
            && app.recv.values().any(|r| r.reset.is_some())
            && (!lossless || app.datagrams.len() == 5)
            && p.server_conn().stream_count_for_test() == 0
            && p.client_conn(client).stream_count_for_test() == 0
    });
    assert!(
        lossless || client_stats.packets_lost > 0,
        "the link lost nothing"
    );
    let log = recorder.0.lock().unwrap();

    // The streams: client uni 0 finishes, client uni 1 is reset.
    let finished = StreamId::new(Side::Client, quiver_proto::frame::Dir::Uni, 0);
    let was_reset = StreamId::new(Side::Client, quiver_proto::frame::Dir::Uni, 1);
    let client_streams = streams_of(&log, Side::Client);
    let server_streams = streams_of(&log, Side::Server);
    assert_eq!(
        client_streams.keys().copied().collect::<Vec<_>>(),
        [finished, was_reset]
    );
    assert_eq!(
        server_streams.keys().copied().collect::<Vec<_>>(),
        [finished, was_reset]
    );

    // RFC 9000 §3.1: Ready -> Send -> Data Sent -> Data Recvd.
    let sent = part(
        &client_streams[&finished],
        Owner::Local,
        StreamSide::Sending,
    );
    assert_eq!(
        sent,
        [
            StreamState::Send,
            StreamState::DataSent,
            StreamState::DataReceived
        ],
        "seed {seed}"
    );
    // RFC 9000 §3.2: Recv -> (Size Known) -> Data Recvd -> Data Read.
    let received = part(
        &server_streams[&finished],
        Owner::Remote,
        StreamSide::Receiving,
    );
    assert_eq!(
        received.last().copied(),
        Some(StreamState::DataRead),
        "seed {seed}: {received:?}"
    );
    assert!(
        received.contains(&StreamState::DataReceived),
        "{received:?}"
    );

    // The reset: "Reset Sent" then, once acknowledged, "Reset Recvd"
    // (RFC 9000 §3.1), both with our code; the receiver goes to "Reset
    // Recvd" and, once the application read it, "Reset Read" (§3.2).
    let updates = &client_streams[&was_reset];
    let sent = part(updates, Owner::Local, StreamSide::Sending);
    assert_eq!(
        &sent[sent.len() - 2..],
        [StreamState::ResetSent, StreamState::ResetReceived],
        "seed {seed}"
    );
    for u in updates.iter().filter(|u| u.side.is_some()).rev().take(2) {
        assert_eq!((u.trigger, u.error_code), (Some(Owner::Local), Some(5)));
    }
    let updates = &server_streams[&was_reset];
    let received = part(updates, Owner::Remote, StreamSide::Receiving);
    assert_eq!(
        received,
        [StreamState::ResetReceived, StreamState::ResetRead],
        "seed {seed}"
    );
    for u in updates.iter().filter(|u| u.side.is_some()) {
        assert_eq!((u.trigger, u.error_code), (Some(Owner::Remote), Some(5)));
    }

    for (side, stats) in [(Side::Client, client_stats), (Side::Server, server_stats)] {
        let ev: Vec<&Seen> = log
            .iter()
            .filter(|(s, ..)| *s == side)
            .map(|(_, _, e)| e)
            .collect();
        // Order: a stream is reported open before the first packet we
        // send on it, and (the peer's) after the first packet that
        // carried it.
        let own: &[StreamId] = if side == Side::Client {
            &[finished, was_reset]
        } else {
            &[]
        };
        for id in [finished, was_reset] {
            let opened = ev
                .iter()
                .position(|e| matches!(e, Seen::Stream(u) if u.stream_id == id && u.new == StreamState::Open))
                .unwrap();
            let carried = ev
                .iter()
                .position(|e| {
                    matches!(e, Seen::Packet { sent, streams, .. }
                        if *sent == own.contains(&id) && streams.contains(&id))
                })
                .unwrap();
            if own.contains(&id) {
                assert!(opened < carried, "{side:?} {id}");
            } else {
                assert!(opened > carried, "{side:?} {id}");
            }
        }

        // One datagrams_received per datagram the connection took.
        let received: Vec<u16> = ev
            .iter()
            .filter_map(|e| match e {
                Seen::DatagramsReceived(len) => Some(*len),
                _ => None,
            })
            .collect();
        assert_eq!(received.len() as u64, stats.datagrams_received, "{side:?}");
        assert_eq!(
            received.iter().map(|l| u64::from(*l)).sum::<u64>(),
            stats.bytes_received,
            "{side:?}"
        );
        // One datagrams_sent per transmit, counting every datagram; a
        // GSO batch is one event of several.
        let batches: Vec<(u16, u16, u32)> = ev
            .iter()
            .filter_map(|e| match e {
                Seen::DatagramsSent {
                    count,
                    segment_size,
                    length,
                } => Some((*count, *segment_size, *length)),
                _ => None,
            })
            .collect();
        let datagrams: u64 = batches.iter().map(|b| u64::from(b.0)).sum();
        assert_eq!(datagrams, stats.datagrams_sent, "{side:?}");
        for (count, segment, length) in &batches {
            assert!(*count >= 1);
            assert!(*length > u32::from(*segment) * (u32::from(*count) - 1));
            assert!(*length <= u32::from(*segment) * u32::from(*count));
        }
        if side == Side::Client {
            assert!(batches.iter().any(|b| b.0 > 1), "no GSO batch");
        }

        // RFC 9221: the DATAGRAM frames are in the packets, with their
        // lengths, once each way (without loss: they are never
        // retransmitted, §5.2).
        for sent in [true, false].into_iter().filter(|_| lossless) {
            let mut lengths: Vec<usize> = ev
                .iter()
                .filter_map(|e| match e {
                    Seen::Packet {
                        sent: s, datagrams, ..
                    } if *s == sent => Some(datagrams.iter().copied()),
                    _ => None,
                })
                .flatten()
                .collect();
            lengths.sort_unstable();
            assert_eq!(lengths, [100, 110, 120, 130, 140], "{side:?} sent {sent}");
        }
    }
}

/// STOP_SENDING (RFC 9000 §3.5): the receiver's stop asks for the reset,
/// so the sender's "Reset Sent" is the peer's doing (trigger remote) and
/// the receiver's "Reset Read" its own (trigger local), both with the
/// code the STOP_SENDING carried.
#[test]
fn stop_sending_is_reported_on_both_ends() {
    for_each_seed(4, |seed| {
        let recorder = Recorder::default();
        let mut pair = Pair::with_configs(
            seed,
            LinkConfig::default(),
            qlog_config(&recorder),
            qlog_config(&recorder),
        );
        let plan = AppConfig {
            send: vec![SendPlan::uni(1_000_000)],
            ..AppConfig::default()
        };
        let client_app = pair.client_app(plan);
        let _server_app = pair.server_app(AppConfig {
            stop_incoming: Some(VarInt::from_u32(9)),
            ..AppConfig::default()
        });
        let (client, _) = pair.connect_and_wait(Duration::from_secs(25));
        finish(&mut pair, client, |p| {
            client_app
                .borrow()
                .send
                .values()
                .any(|s| s.stopped.is_some())
                && p.server_conn().stream_count_for_test() == 0
                && p.client_conn(client).stream_count_for_test() == 0
        });
        let log = recorder.0.lock().unwrap();
        let id = StreamId::new(Side::Client, quiver_proto::frame::Dir::Uni, 0);

        let updates = &streams_of(&log, Side::Client)[&id];
        let sent = part(updates, Owner::Local, StreamSide::Sending);
        assert_eq!(
            &sent[sent.len() - 2..],
            [StreamState::ResetSent, StreamState::ResetReceived],
            "seed {seed}"
        );
        for u in updates.iter().filter(|u| u.side.is_some()).rev().take(2) {
            assert_eq!((u.trigger, u.error_code), (Some(Owner::Remote), Some(9)));
        }

        let updates = &streams_of(&log, Side::Server)[&id];
        let received = part(updates, Owner::Remote, StreamSide::Receiving);
        assert_eq!(received, [StreamState::ResetRead], "seed {seed}");
        let u = updates.iter().find(|u| u.side.is_some()).unwrap();
        assert_eq!((u.trigger, u.error_code), (Some(Owner::Local), Some(9)));
    });
}
