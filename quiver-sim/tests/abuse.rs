//! A hostile peer (issue 13): floods that are each legal, or nearly, frame
//! by frame, and would grow the victim's state or work without end. Where
//! the RFC names a transport error the victim closes with exactly that
//! code; where it names none, the victim's state stays bounded and the
//! connection stays up.
//!
//! The abuse is played with `send_raw_frames_for_test` (encoded frames put
//! verbatim into the next 1-RTT packet, one call per packet) on a clean
//! link, so every frame arrives; seeds vary keys and connection IDs.

use std::time::Duration;

use quiver_proto::frame::{
    Crypto, Datagram, Frame, NewConnectionId, RetireConnectionId, Stream, encode_ack,
};
use quiver_proto::streams::{MAX_FRAGMENTS_PER_CONNECTION, MAX_FRAGMENTS_PER_STREAM};
use quiver_proto::{
    ConnectionError, ConnectionHandle, ConnectionId, Event, TransportConfig, TransportErrorCode,
    VarInt,
};
use quiver_sim::quic::{AppConfig, Pair};
use quiver_sim::{LinkConfig, Seed, for_each_seed};

const ONE_RTT: u8 = 2;
/// Frame bytes per raw packet: fits any packet the connection sends.
const PACKET_BUDGET: usize = 1000;
/// Bytes per reassembly page (quiver-proto's `streams::assembler::PAGE`).
const PAGE: usize = 4096;

fn v(x: u64) -> VarInt {
    VarInt::from_u64(x).unwrap()
}

/// Encodes `frames` into packets of at most [`PACKET_BUDGET`] bytes.
fn packets<'a>(frames: impl IntoIterator<Item = Frame<'a>>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for f in frames {
        let mut one = Vec::new();
        f.encode(&mut one);
        if buf.len() + one.len() > PACKET_BUDGET {
            out.push(std::mem::take(&mut buf));
        }
        buf.extend_from_slice(&one);
    }
    if !buf.is_empty() {
        out.push(buf);
    }
    out
}

fn connected(
    seed: Seed,
    client: TransportConfig,
    server: TransportConfig,
) -> (Pair, ConnectionHandle) {
    let mut pair = Pair::with_configs(seed, LinkConfig::default(), client, server);
    let (client, _) = pair.connect_and_wait(Duration::from_secs(5));
    (pair, client)
}

fn send_raw(pair: &mut Pair, client: ConnectionHandle, packets: Vec<Vec<u8>>) {
    for p in packets {
        pair.client_conn(client)
            .send_raw_frames_for_test(ONE_RTT, p);
    }
}

/// Runs until the server closed; returns the code it closed with, after
/// checking the client heard the same code from it.
fn server_close_code(
    pair: &mut Pair,
    client: ConnectionHandle,
) -> (TransportErrorCode, Option<u64>) {
    let closed = pair.run_until(Duration::from_secs(5), |p| {
        p.server_conn().close_reason().is_some() && p.client_conn(client).close_reason().is_some()
    });
    assert!(closed, "server: {:?}", pair.server_conn().close_reason());
    let (code, frame_type) = match pair.server_conn().close_reason() {
        Some(ConnectionError::TransportError(t)) => (t.code, t.frame_type),
        other => panic!("server closed with {other:?}"),
    };
    match pair.client_conn(client).close_reason() {
        Some(ConnectionError::ConnectionClosed { code: c, .. }) => assert_eq!(*c, code),
        other => panic!("client saw {other:?}"),
    }
    (code, frame_type)
}

fn assert_up(pair: &mut Pair, client: ConnectionHandle) {
    assert_eq!(pair.server_conn().close_reason(), None);
    assert_eq!(pair.client_conn(client).close_reason(), None);
}

// ----- stream reassembly (RFC 9000 §21.7) -----

/// The measured abuse of issue 13: one-byte STREAM frames at every other
/// offset across all 100 streams the server allows. Before the cap it
/// grew the server by some 40 bytes per gap with the connection open; now
/// the server closes with PROTOCOL_VIOLATION once the connection holds
/// more than `MAX_FRAGMENTS_PER_CONNECTION` pieces, holding one page per
/// stream and no more pieces than the cap.
#[test]
fn one_byte_gaps_across_all_streams_close_with_protocol_violation() {
    for_each_seed(2, |seed| {
        let (mut pair, client) =
            connected(seed, TransportConfig::default(), TransportConfig::default());
        let streams = 100u64; // the server's max_concurrent_bidi_streams
        let frames_wanted = MAX_FRAGMENTS_PER_CONNECTION as u64 + 100;
        let frames = (0..frames_wanted).map(|i| {
            Frame::Stream(Stream {
                id: v(4 * (i % streams)), // client bidirectional streams
                offset: v(2 * (i / streams) + 1),
                fin: false,
                data: b"x",
            })
        });
        send_raw(&mut pair, client, packets(frames));
        let (code, frame_type) = server_close_code(&mut pair, client);
        assert_eq!(code, TransportErrorCode::PROTOCOL_VIOLATION);
        assert_eq!(frame_type, Some(0x0e), "STREAM with OFF and LEN");
        let (bytes, fragments) = pair.server_conn().recv_reassembly_for_test();
        assert!(
            fragments <= MAX_FRAGMENTS_PER_CONNECTION + 1,
            "{fragments} fragments"
        );
        assert!(bytes <= streams as usize * PAGE, "{bytes} bytes buffered");
    });
}

/// The per-stream cap: one stream with a gap before every byte.
#[test]
fn one_byte_gaps_on_one_stream_close_with_protocol_violation() {
    for_each_seed(2, |seed| {
        let (mut pair, client) =
            connected(seed, TransportConfig::default(), TransportConfig::default());
        let frames = (0..MAX_FRAGMENTS_PER_STREAM as u64 + 50).map(|i| {
            Frame::Stream(Stream {
                id: v(0),
                offset: v(2 * i + 1),
                fin: false,
                data: b"x",
            })
        });
        send_raw(&mut pair, client, packets(frames));
        let (code, frame_type) = server_close_code(&mut pair, client);
        assert_eq!(code, TransportErrorCode::PROTOCOL_VIOLATION);
        assert_eq!(frame_type, Some(0x0e));
        let (bytes, fragments) = pair.server_conn().recv_reassembly_for_test();
        assert!(
            fragments <= MAX_FRAGMENTS_PER_STREAM + 1,
            "{fragments} fragments"
        );
        // 2 × 4097 offsets: three pages.
        assert!(bytes <= 3 * PAGE, "{bytes} bytes buffered");
    });
}

/// CRYPTO frames of one byte with a gap before each, in 1-RTT packets
/// (post-handshake TLS messages travel there): within the 64 KiB the
/// server buffers ahead, but it holds at most 512 such pieces and closes
/// with CRYPTO_BUFFER_EXCEEDED past them (RFC 9000 §7.5: "MAY close the
/// connection with a CRYPTO_BUFFER_EXCEEDED error code").
#[test]
fn one_byte_gaps_in_the_crypto_stream_close_with_crypto_buffer_exceeded() {
    for_each_seed(2, |seed| {
        let (mut pair, client) =
            connected(seed, TransportConfig::default(), TransportConfig::default());
        let frames = (0..600u64).map(|i| {
            Frame::Crypto(Crypto {
                offset: v(2 * i + 1),
                data: b"x",
            })
        });
        send_raw(&mut pair, client, packets(frames));
        let (code, frame_type) = server_close_code(&mut pair, client);
        assert_eq!(code, TransportErrorCode::CRYPTO_BUFFER_EXCEEDED);
        assert_eq!(frame_type, Some(0x06));
    });
}

// ----- acknowledgments (RFC 9000 §13.1, §19.3) -----

/// RFC 9000 §13.1: "An endpoint SHOULD treat receipt of an acknowledgment
/// for a packet it did not send as a connection error of type
/// PROTOCOL_VIOLATION". An ACK with as many ranges as fit a packet, all
/// for packet numbers far beyond any sent.
#[test]
fn an_ack_with_hundreds_of_ranges_for_packets_never_sent_is_a_protocol_violation() {
    let (mut pair, client) = connected(
        Seed::from_env_or(1),
        TransportConfig::default(),
        TransportConfig::default(),
    );
    let ranges: Vec<_> = (0..400u64)
        .map(|i| {
            let pn = 1_000_000 - 2 * i;
            pn..=pn
        })
        .collect();
    let mut frame = Vec::new();
    encode_ack(ranges, v(0), None, &mut frame);
    assert!(frame.len() <= PACKET_BUDGET);
    send_raw(&mut pair, client, vec![frame]);
    let (code, frame_type) = server_close_code(&mut pair, client);
    assert_eq!(code, TransportErrorCode::PROTOCOL_VIOLATION);
    assert_eq!(frame_type, Some(0x02));
}

/// ACKs that each carry hundreds of ranges, all for packets the server did
/// send, again and again: legal, so the connection stays up and keeps
/// carrying data.
#[test]
fn a_flood_of_acks_with_hundreds_of_valid_ranges_is_harmless() {
    let (mut pair, client) = connected(
        Seed::from_env_or(1),
        TransportConfig::default(),
        TransportConfig::default(),
    );
    // The server sends some packets to acknowledge.
    let sid = pair
        .server_conn()
        .open_stream(quiver_proto::frame::Dir::Uni)
        .unwrap();
    pair.server_conn().write(sid, &[7; 1 << 20]).unwrap();
    pair.server_conn().finish(sid).unwrap();
    pair.net.run_for(Duration::from_secs(1));
    let sent = pair.server_conn().stats().datagrams_sent;
    assert!(sent > 600, "{sent} datagrams");
    // Every other packet number below what 1-RTT surely used.
    let top = sent - 20;
    let ranges: Vec<_> = (0..(top / 2).min(400))
        .map(|i| top - 2 * i)
        .map(|pn| pn..=pn)
        .collect();
    let mut frame = Vec::new();
    encode_ack(ranges, v(0), None, &mut frame);
    send_raw(&mut pair, client, vec![frame; 200]);
    pair.net.run_for(Duration::from_millis(500));
    assert_up(&mut pair, client);
    // Still working: data from the client arrives.
    let app = pair.server_app(AppConfig {
        no_verify: true,
        ..AppConfig::default()
    });
    let id = pair
        .client_conn(client)
        .open_stream(quiver_proto::frame::Dir::Uni)
        .unwrap();
    pair.client_conn(client)
        .write(id, b"after the flood")
        .unwrap();
    pair.client_conn(client).finish(id).unwrap();
    pair.poke_client();
    pair.net.run_for(Duration::from_millis(200));
    assert_eq!(app.borrow().bytes_received(), 15);
    assert_up(&mut pair, client);
}

// ----- connection IDs (RFC 9000 §5.1) -----

fn new_cid(seq: u64, retire_prior_to: u64) -> Frame<'static> {
    let b = (seq as u16).to_be_bytes();
    Frame::NewConnectionId(NewConnectionId {
        sequence: v(seq),
        retire_prior_to: v(retire_prior_to),
        id: ConnectionId::new(&[b[0], b[1], 0xc1, 0xd0]).unwrap(),
        reset_token: [(seq as u8) ^ 0x5a; 16],
    })
}

/// RFC 9000 §5.1.2: "An endpoint SHOULD limit the number of connection IDs
/// it has retired locally for which RETIRE_CONNECTION_ID frames have not
/// yet been acknowledged ... it MAY choose to treat having connection IDs
/// in need of retirement that exceed this limit as a connection error of
/// type CONNECTION_ID_LIMIT_ERROR." Thirty-six NEW_CONNECTION_ID frames in
/// one packet, each retiring all before it: the server would owe some 38
/// retirements at once (it allows 32).
#[test]
fn a_burst_of_new_connection_ids_each_retiring_the_last_is_a_connection_id_limit_error() {
    for_each_seed(2, |seed| {
        let (mut pair, client) =
            connected(seed, TransportConfig::default(), TransportConfig::default());
        let frames: Vec<_> = (100..136).map(|s| new_cid(s, s)).collect();
        let packets = packets(frames);
        assert_eq!(packets.len(), 1, "one packet");
        send_raw(&mut pair, client, packets);
        // The server's close goes to one of the new IDs, which the client's
        // endpoint does not route (they were made up): only the server's
        // side is checked.
        let closed = pair.run_until(Duration::from_secs(5), |p| {
            p.server_conn().close_reason().is_some()
        });
        assert!(closed);
        match pair.server_conn().close_reason() {
            Some(ConnectionError::TransportError(t)) => {
                assert_eq!(t.code, TransportErrorCode::CONNECTION_ID_LIMIT_ERROR);
                assert_eq!(t.frame_type, Some(0x18));
            }
            other => panic!("server closed with {other:?}"),
        }
    });
}

/// Paced churn, legal: a NEW_CONNECTION_ID retiring all earlier IDs every
/// round trip. The server follows to each new ID; its endpoint checks the
/// reset token of the one ID in use only (RFC 9000 §10.3.1) and its tables
/// stay the size they were.
#[test]
fn paced_new_connection_id_churn_keeps_the_endpoint_tables_bounded() {
    for_each_seed(2, |seed| {
        let (mut pair, client) =
            connected(seed, TransportConfig::default(), TransportConfig::default());
        let (routes, initial_routes, tokens) = pair.server().endpoint.table_sizes_for_test();
        assert_eq!(tokens, 1, "the token of the client ID in use");
        for s in 100..116 {
            send_raw(&mut pair, client, packets([new_cid(s, s)]));
            pair.poke_client();
            pair.net.run_for(Duration::from_millis(30));
            assert_eq!(pair.server_conn().close_reason(), None, "round {s}");
            assert_eq!(
                pair.server().endpoint.table_sizes_for_test(),
                (routes, initial_routes, 1),
                "round {s}"
            );
        }
    });
}

/// RETIRE_CONNECTION_ID for every ID the server issues, as soon as it is
/// issued: legal, and each costs the server a replacement; the IDs it
/// routes stay within what it issues at once.
#[test]
fn retiring_every_issued_connection_id_keeps_the_server_routes_bounded() {
    // The client accepts any number of IDs, so that the replacements it
    // never retired itself do not make it close.
    let client_config = TransportConfig {
        active_connection_id_limit: 1000,
        ..TransportConfig::default()
    };
    let (mut pair, client) = connected(
        Seed::from_env_or(1),
        client_config,
        TransportConfig::default(),
    );
    pair.net.run_for(Duration::from_millis(100));
    let (routes, _, _) = pair.server().endpoint.table_sizes_for_test();
    for seq in 1..=200u64 {
        send_raw(
            &mut pair,
            client,
            packets([Frame::RetireConnectionId(RetireConnectionId {
                sequence: v(seq),
            })]),
        );
        pair.poke_client();
        pair.net.run_for(Duration::from_millis(25));
        assert_up(&mut pair, client);
        let (now_routes, _, _) = pair.server().endpoint.table_sizes_for_test();
        assert!(
            now_routes <= routes,
            "round {seq}: {now_routes} routes, {routes} at first"
        );
    }
}

// ----- floods of frames that change little -----

/// RFC 9000 §21.9: PING frames by the thousand. Nothing to bound but the
/// answers: the server acknowledges, sends no more datagrams than it
/// receives, and stays up.
#[test]
fn a_ping_flood_is_answered_without_amplification() {
    let (mut pair, client) = connected(
        Seed::from_env_or(1),
        TransportConfig::default(),
        TransportConfig::default(),
    );
    let before_rx = pair.server_conn().stats().datagrams_received;
    let before_tx = pair.server_conn().stats().datagrams_sent;
    send_raw(
        &mut pair,
        client,
        packets(std::iter::repeat_n(Frame::Ping, 500_000)),
    );
    pair.net.run_for(Duration::from_secs(1));
    assert_up(&mut pair, client);
    let rx = pair.server_conn().stats().datagrams_received - before_rx;
    let tx = pair.server_conn().stats().datagrams_sent - before_tx;
    assert!(rx >= 500, "{rx} datagrams received");
    assert!(tx <= rx, "{tx} datagrams sent for {rx} received");
}

/// Streams opened, written to and reset, 2,000 of them as fast as stream
/// credit allows: the server releases each once its application has seen
/// the reset, so it holds at most its stream limit and ends with none.
#[test]
fn stream_open_and_reset_churn_keeps_the_server_streams_bounded() {
    let (mut pair, client) = connected(
        Seed::from_env_or(1),
        TransportConfig::default(),
        TransportConfig::default(),
    );
    let app = pair.server_app(AppConfig {
        no_verify: true,
        ..AppConfig::default()
    });
    let mut opened = 0;
    for _ in 0..2000 {
        while opened < 2000 {
            let conn = pair.client_conn(client);
            let Some(id) = conn.open_stream(quiver_proto::frame::Dir::Uni) else {
                break;
            };
            conn.write(id, &[1; 500]).unwrap();
            conn.reset_stream(id, v(7)).unwrap();
            opened += 1;
        }
        pair.poke_client();
        pair.net.run_for(Duration::from_millis(10));
        let held = pair.server_conn().stream_count_for_test();
        assert!(held <= 100, "{held} streams held");
        let (bytes, _) = pair.server_conn().recv_reassembly_for_test();
        assert!(bytes <= 100 * PAGE, "{bytes} bytes buffered");
        if opened == 2000 && held == 0 {
            break;
        }
    }
    assert_eq!(opened, 2000);
    assert_eq!(pair.server_conn().stream_count_for_test(), 0);
    assert!(
        app.borrow().recv.len() >= 1000,
        "the application saw the resets"
    );
    assert_up(&mut pair, client);
}

/// DATAGRAM frames the application never reads, empty and one-byte ones
/// by the hundred thousand: the server drops the oldest (RFC 9221 §5) so it
/// holds at most its byte budget and a bounded number of entries (64 bytes
/// of budget each), with a single event for the application.
#[test]
fn unread_datagram_floods_are_bounded_by_bytes_and_count() {
    let server_config = TransportConfig {
        datagram_receive_buffer: 64 * 1024,
        ..TransportConfig::default()
    };
    let budget = server_config.datagram_receive_buffer;
    let (mut pair, client) = connected(
        Seed::from_env_or(1),
        TransportConfig::default(),
        server_config,
    );
    // Nothing polls the server's events or reads its datagrams.
    let empty = std::iter::repeat_n(Frame::Datagram(Datagram { data: b"" }), 100_000);
    let small = std::iter::repeat_n(Frame::Datagram(Datagram { data: b"x" }), 100_000);
    let big = std::iter::repeat_n(Frame::Datagram(Datagram { data: &[9; 900] }), 200);
    send_raw(&mut pair, client, packets(empty.chain(small).chain(big)));
    pair.net.run_for(Duration::from_secs(1));
    assert_up(&mut pair, client);
    let conn = pair.server_conn();
    let mut events = 0;
    while let Some(e) = conn.poll() {
        events += usize::from(e == Event::DatagramReceived);
    }
    assert_eq!(events, 1);
    let (mut held, mut bytes) = (0, 0);
    while let Some(d) = conn.read_datagram() {
        held += 1;
        bytes += d.len();
    }
    assert!(held <= budget / 64, "{held} datagrams held");
    assert!(bytes <= budget, "{bytes} bytes held");
    assert!(held > 0);
}
