//! Unreliable datagrams (RFC 9221): delivered intact, never retransmitted,
//! and bounded by max_datagram_frame_size and the path.

use std::time::Duration;

use bytes::Bytes;
use quiver_proto::connection::SendDatagramError;
use quiver_proto::frame::{Datagram, Frame};
use quiver_proto::{ConnectionError, ConnectionHandle, TransportConfig, TransportErrorCode};
use quiver_sim::quic::{AppConfig, CLIENT_ADDR, Pair, SERVER_ADDR, SharedApp, pattern};
use quiver_sim::{LinkConfig, Seed, Verdict, for_each_seed};

fn datagram(i: u64, len: usize) -> Bytes {
    Bytes::from(pattern(i, 0, len))
}

/// A connected pair with both applications watching, and the client's
/// handle.
fn connected(
    link: LinkConfig,
    client: TransportConfig,
    server: TransportConfig,
    seed: Seed,
) -> (Pair, ConnectionHandle, SharedApp, SharedApp) {
    let mut pair = Pair::with_configs(seed, link, client, server);
    let c = pair.client_app(AppConfig::default());
    let s = pair.server_app(AppConfig::default());
    let (client, _) = pair.connect_and_wait(Duration::from_secs(25));
    (pair, client, c, s)
}

#[test]
fn datagrams_are_delivered_intact_and_in_order_without_loss() {
    let (mut pair, client, c, s) = connected(
        LinkConfig::default(),
        TransportConfig::default(),
        TransportConfig::default(),
        Seed::from_env_or(1),
    );
    let max = pair.client_conn(client).max_datagram_size();
    // Sizes from empty (RFC 9221 §4: "empty (i.e., zero-length) datagrams
    // are allowed") to the largest that fits.
    let sent: Vec<Bytes> = (0..300u64)
        .map(|i| datagram(i, (i as usize * 37) % (max + 1)))
        .collect();
    for d in &sent {
        pair.client_conn(client).send_datagram(d.clone()).unwrap();
    }
    // And the other way.
    let back: Vec<Bytes> = (1000..1100u64).map(|i| datagram(i, 100)).collect();
    for d in &back {
        pair.server_conn().send_datagram(d.clone()).unwrap();
    }
    let done = pair.run_until(Duration::from_secs(5), |_| {
        s.borrow().datagrams.len() == sent.len() && c.borrow().datagrams.len() == back.len()
    });
    assert!(
        done,
        "server got {} of {}, client {} of {}",
        s.borrow().datagrams.len(),
        sent.len(),
        c.borrow().datagrams.len(),
        back.len()
    );
    assert_eq!(s.borrow().datagrams, sent);
    assert_eq!(c.borrow().datagrams, back);
}

#[test]
fn a_datagram_of_the_largest_allowed_size_is_delivered() {
    let (mut pair, client, _c, s) = connected(
        LinkConfig::default(),
        TransportConfig::default(),
        TransportConfig::default(),
        Seed::from_env_or(1),
    );
    let max = pair.client_conn(client).max_datagram_size();
    assert!(max >= 1000, "{max}");
    let d = datagram(7, max);
    pair.client_conn(client).send_datagram(d.clone()).unwrap();
    pair.run_until(Duration::from_secs(5), |_| !s.borrow().datagrams.is_empty());
    assert_eq!(s.borrow().datagrams, vec![d]);
}

#[test]
fn too_large_datagrams_are_rejected_at_send() {
    let (mut pair, client, _c, _s) = connected(
        LinkConfig::default(),
        TransportConfig::default(),
        TransportConfig::default(),
        Seed::from_env_or(1),
    );
    let conn = pair.client_conn(client);
    let max = conn.max_datagram_size();
    assert_eq!(
        conn.send_datagram(datagram(0, max + 1)),
        Err(SendDatagramError::TooLarge { max })
    );
    assert_eq!(
        conn.send_datagram(datagram(0, 10_000)),
        Err(SendDatagramError::TooLarge { max })
    );
    assert_eq!(conn.send_datagram(datagram(0, max)), Ok(()));
}

#[test]
fn datagrams_respect_the_peers_max_datagram_frame_size() {
    // RFC 9221 §3: max_datagram_frame_size is "the maximum size of a
    // DATAGRAM frame (including the frame type, length, and payload)". The
    // server accepts frames of at most 500 bytes: 1 byte of type and 2 of
    // length leave 497 bytes of data.
    let server = TransportConfig {
        max_datagram_frame_size: Some(500),
        ..TransportConfig::default()
    };
    let (mut pair, client, c, s) = connected(
        LinkConfig::default(),
        TransportConfig::default(),
        server,
        Seed::from_env_or(1),
    );
    let conn = pair.client_conn(client);
    let mut accepted = Vec::new();
    for len in [496, 497, 498, 499, 500, 501] {
        match conn.send_datagram(datagram(len as u64, len)) {
            Ok(()) => accepted.push(len),
            Err(SendDatagramError::TooLarge { max }) => assert!(len > max, "{len} > {max}"),
            Err(e) => panic!("{len}: {e}"),
        }
    }
    assert_eq!(accepted, [496, 497]);
    pair.run_until(Duration::from_secs(2), |_| s.borrow().datagrams.len() == 2);
    let got: Vec<usize> = s.borrow().datagrams.iter().map(|d| d.len()).collect();
    assert_eq!(got, accepted);
    assert!(c.borrow().lost.is_none() && s.borrow().lost.is_none());
}

#[test]
fn a_datagram_frame_of_exactly_the_advertised_size_is_accepted() {
    // The receiving side of the same rule: a frame whose total size equals
    // max_datagram_frame_size is within the limit. 1 byte of type, 1 of
    // length (data under 64 bytes), 48 of data: 50 bytes.
    let server = TransportConfig {
        max_datagram_frame_size: Some(50),
        ..TransportConfig::default()
    };
    let (mut pair, client, _c, s) = connected(
        LinkConfig::default(),
        TransportConfig::default(),
        server,
        Seed::from_env_or(1),
    );
    let data = [5u8; 48];
    let mut frames = Vec::new();
    Frame::Datagram(Datagram { data: &data }).encode(&mut frames);
    assert_eq!(frames.len(), 50);
    pair.client_conn(client).send_raw_frames_for_test(2, frames);
    pair.run_until(Duration::from_secs(2), |_| !s.borrow().datagrams.is_empty());
    assert_eq!(pair.server_conn().close_reason(), None);
    assert_eq!(s.borrow().datagrams, vec![Bytes::copy_from_slice(&data)]);
}

#[test]
fn a_datagram_frame_larger_than_advertised_is_a_protocol_violation() {
    // RFC 9221 §3: "An endpoint that receives a DATAGRAM frame that is
    // larger than the value it sent in its max_datagram_frame_size
    // transport parameter MUST terminate the connection with an error of
    // type PROTOCOL_VIOLATION." 51 bytes against 50.
    let server = TransportConfig {
        max_datagram_frame_size: Some(50),
        ..TransportConfig::default()
    };
    let (mut pair, client, _c, _s) = connected(
        LinkConfig::default(),
        TransportConfig::default(),
        server,
        Seed::from_env_or(1),
    );
    let mut frames = Vec::new();
    Frame::Datagram(Datagram { data: &[5u8; 49] }).encode(&mut frames);
    assert_eq!(frames.len(), 51);
    pair.client_conn(client).send_raw_frames_for_test(2, frames);
    assert_protocol_violation(&mut pair, client);
}

fn assert_protocol_violation(pair: &mut Pair, client: ConnectionHandle) {
    pair.run_until(Duration::from_secs(2), |p| {
        p.client_conn(client).close_reason().is_some()
    });
    match pair.server_conn().close_reason() {
        Some(ConnectionError::TransportError(e)) => {
            assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION, "{e}");
            assert_eq!(e.frame_type, Some(0x31), "{e}");
        }
        other => panic!("server: {other:?}"),
    }
    match pair.client_conn(client).close_reason() {
        Some(ConnectionError::ConnectionClosed { code, .. }) => {
            assert_eq!(*code, TransportErrorCode::PROTOCOL_VIOLATION);
        }
        other => panic!("client: {other:?}"),
    }
}

#[test]
fn datagrams_to_a_peer_that_does_not_accept_them_are_refused() {
    let server = TransportConfig {
        max_datagram_frame_size: None,
        ..TransportConfig::default()
    };
    let (mut pair, client, _c, _s) = connected(
        LinkConfig::default(),
        TransportConfig::default(),
        server,
        Seed::from_env_or(1),
    );
    assert_eq!(
        pair.client_conn(client).send_datagram(datagram(0, 10)),
        Err(SendDatagramError::UnsupportedByPeer)
    );
}

#[test]
fn a_datagram_frame_to_a_peer_that_did_not_advertise_support_is_a_protocol_violation() {
    // RFC 9221 §3: "An endpoint that receives a DATAGRAM frame when it has
    // not indicated support via the transport parameter MUST terminate the
    // connection with an error of type PROTOCOL_VIOLATION."
    let server = TransportConfig {
        max_datagram_frame_size: None,
        ..TransportConfig::default()
    };
    let (mut pair, client, _c, _s) = connected(
        LinkConfig::default(),
        TransportConfig::default(),
        server,
        Seed::from_env_or(1),
    );
    let mut frames = Vec::new();
    Frame::Datagram(Datagram { data: b"unwanted" }).encode(&mut frames);
    pair.client_conn(client).send_raw_frames_for_test(2, frames);
    assert_protocol_violation(&mut pair, client);
}

#[test]
fn datagrams_are_never_retransmitted_or_duplicated() {
    // RFC 9221 §5: DATAGRAM frames are not retransmitted on loss. Over a
    // lossy link that also duplicates datagrams, what arrives is a
    // subsequence of what was sent, each at most once and intact.
    for_each_seed(20, |seed| {
        let link = LinkConfig {
            loss_rate: 0.1,
            duplicate_rate: 0.1,
            ..LinkConfig::default()
        };
        let (mut pair, client, _c, s) = connected(
            link,
            TransportConfig::default(),
            TransportConfig::default(),
            seed,
        );
        // Besides the random loss, the 2nd and 5th datagrams the client
        // sends from now on are lost for certain.
        let base = pair.net.link_stats(CLIENT_ADDR, SERVER_ADDR).sent;
        pair.net.set_filter(move |d| {
            if d.src == CLIENT_ADDR && (d.index == base + 1 || d.index == base + 4) {
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        });
        let sent: Vec<Bytes> = (0..200u64).map(|i| datagram(i, 200)).collect();
        for d in &sent {
            pair.client_conn(client).send_datagram(d.clone()).unwrap();
        }
        pair.net.run_for(Duration::from_secs(3));
        assert_eq!(
            pair.net.link_stats(CLIENT_ADDR, SERVER_ADDR).dropped.filter,
            2
        );
        let got = s.borrow().datagrams.clone();
        let mut rest = sent.iter();
        for d in &got {
            assert!(
                rest.any(|x| x == d),
                "received a datagram out of order, twice or altered"
            );
        }
        // What was lost stays lost; most of the rest arrives.
        assert!(
            got.len() > sent.len() / 2 && got.len() < sent.len(),
            "{} of {}",
            got.len(),
            sent.len()
        );
    });
}
