//! Handshakes in the simulated network: without loss, with scripted loss of
//! the first packets in either direction, with random loss, with a bit
//! flipped in an early datagram, and in QUIC v2.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use quiver_proto::Version;
use quiver_sim::quic::{CLIENT_ADDR, Pair, SERVER_ADDR};
use quiver_sim::{LinkConfig, Seed, Verdict, for_each_seed};

/// Generous: the client's PTO starts at about a second (RFC 9002 §6.2.2,
/// initial RTT 333 ms) and doubles, and the default idle timeout is 30 s.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(25);

#[test]
fn handshake_completes_without_loss() {
    let mut pair = Pair::new(Seed::from_env_or(1), LinkConfig::default());
    let conn = pair.connect();
    assert!(pair.run_handshake(conn, Duration::from_secs(5)));
    // One round trip for the handshake and half another for the
    // HANDSHAKE_DONE that confirms it at the client: 10 ms each way.
    assert!(
        pair.net.elapsed() <= Duration::from_millis(60),
        "{:?}",
        pair.net.elapsed()
    );
}

/// Drops the first `n` datagrams `from` sends, then checks that both sides
/// complete the handshake and that the dropped ones really were sent.
fn handshake_with_first_datagrams_dropped(from: std::net::SocketAddr, n: u64) {
    let mut pair = Pair::new(Seed::from_env_or(1), LinkConfig::default());
    pair.net.set_filter(move |d| {
        if d.src == from && d.index < n {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let (client, _server) = pair.connect_and_wait(HANDSHAKE_LIMIT);
    let to = if from == CLIENT_ADDR {
        SERVER_ADDR
    } else {
        CLIENT_ADDR
    };
    assert_eq!(pair.net.link_stats(from, to).dropped.filter, n, "n = {n}");
    assert!(pair.client_conn(client).is_handshake_confirmed());
    assert!(pair.server_conn().is_handshake_confirmed());
}

#[test]
fn handshake_completes_with_each_of_the_first_client_datagrams_dropped() {
    for n in 1..=6 {
        handshake_with_first_datagrams_dropped(CLIENT_ADDR, n);
    }
}

#[test]
fn handshake_completes_with_each_of_the_first_server_datagrams_dropped() {
    for n in 1..=6 {
        handshake_with_first_datagrams_dropped(SERVER_ADDR, n);
    }
}

/// Drops exactly the `k`-th datagram (only that one) in one direction.
#[test]
fn handshake_completes_with_any_single_early_datagram_dropped() {
    for from in [CLIENT_ADDR, SERVER_ADDR] {
        for k in 0..6 {
            let mut pair = Pair::new(Seed::from_env_or(1), LinkConfig::default());
            pair.net.set_filter(move |d| {
                if d.src == from && d.index == k {
                    Verdict::Drop
                } else {
                    Verdict::Deliver
                }
            });
            pair.connect_and_wait(HANDSHAKE_LIMIT);
        }
    }
}

#[test]
fn handshake_completes_with_ten_percent_loss() {
    for_each_seed(20, |seed| {
        let link = LinkConfig {
            loss_rate: 0.1,
            ..LinkConfig::default()
        };
        let mut pair = Pair::new(seed, link);
        let conn = pair.connect();
        assert!(
            pair.run_handshake(conn, Duration::from_secs(20)),
            "seed {seed:?}"
        );
    });
}

#[test]
fn handshake_completes_with_five_to_twenty_percent_loss() {
    for_each_seed(30, |seed| {
        for loss_rate in [0.05, 0.1, 0.15, 0.2] {
            let link = LinkConfig {
                loss_rate,
                ..LinkConfig::default()
            };
            let mut pair = Pair::new(seed, link);
            let (client, _) = pair.connect_and_wait(HANDSHAKE_LIMIT);
            assert!(
                !pair.client_conn(client).is_closed(),
                "loss {loss_rate}: client closed: {:?}",
                pair.client_conn(client).close_reason()
            );
        }
    });
}

#[test]
fn quic_v2_handshake_completes() {
    let mut pair = Pair::new(Seed::from_env_or(1), LinkConfig::default());
    pair.client_config.version = Version::V2;
    // Every long header on the wire, both ways, carries the v2 version
    // number (RFC 9369 §3.1: 0x6b3343cf).
    let versions = Rc::new(RefCell::new(Vec::new()));
    let seen = versions.clone();
    pair.net.set_tap(move |d| {
        if d.data[0] & 0x80 != 0 {
            let v = u32::from_be_bytes(d.data[1..5].try_into().unwrap());
            seen.borrow_mut().push(v);
        }
    });
    let (client, _) = pair.connect_and_wait(Duration::from_secs(5));
    assert_eq!(pair.client_conn(client).version(), Version::V2);
    assert_eq!(pair.server_conn().version(), Version::V2);
    let versions = versions.borrow();
    assert!(versions.len() >= 2, "no long headers seen");
    assert!(versions.iter().all(|&v| v == 0x6b33_43cf), "{versions:x?}");
}

#[test]
fn quic_v2_handshake_completes_with_loss() {
    for_each_seed(20, |seed| {
        let link = LinkConfig {
            loss_rate: 0.15,
            ..LinkConfig::default()
        };
        let mut pair = Pair::new(seed, link);
        pair.client_config.version = Version::V2;
        let (client, _) = pair.connect_and_wait(HANDSHAKE_LIMIT);
        assert_eq!(pair.client_conn(client).version(), Version::V2);
    });
}

/// The client's first Initial is replaced by a copy with one bit flipped
/// (as a corrupting link would): the server must not let the damaged copy,
/// which fails authentication, shape the connection, and the handshake
/// completes once the client retransmits (its first PTO is about 1 s).
fn handshake_after_corrupted_first_initial(byte: usize, bit: u8) -> Pair {
    let mut pair = Pair::new(Seed::from_env_or(1), LinkConfig::default());
    pair.net.record(true);
    pair.net.set_filter(|d| {
        if d.src == CLIENT_ADDR && d.index == 0 {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let client = pair.connect();
    // Send the first Initial (dropped by the filter) without advancing the
    // clock, then inject its damaged copy in its place.
    pair.net.run_for(Duration::ZERO);
    let mut data = pair.net.sent_from(CLIENT_ADDR).next().unwrap().data.clone();
    data[byte] ^= 1 << bit;
    pair.net.inject(CLIENT_ADDR, SERVER_ADDR, data);
    let done = pair.run_handshake(client, Duration::from_secs(10));
    assert!(
        done,
        "byte {byte} bit {bit}: handshake failed: {:?}",
        pair.client_conn(client).close_reason()
    );
    assert!(
        pair.net.elapsed() < Duration::from_millis(1500),
        "byte {byte} bit {bit}: handshake took {:?}\n{}",
        pair.net.elapsed(),
        pair.net.dump_trace()
    );
    pair
}

#[test]
fn a_corrupted_first_initial_with_a_damaged_source_cid_does_not_derail_the_handshake() {
    // Bytes 23..31 are the client's 8-byte Source Connection ID (after the
    // first byte, version, and 16-byte Destination Connection ID).
    let pair = handshake_after_corrupted_first_initial(25, 0);
    let mut pair = pair;
    assert_eq!(
        pair.server().accepted.len(),
        1,
        "a second connection was needed"
    );
}

/// Replaces the `k`-th datagram `from` sends by a copy with one bit
/// flipped, delivered as the original would have been. Returns how long
/// the handshake took.
fn handshake_with_flipped_bit(
    from: std::net::SocketAddr,
    k: u64,
    byte: usize,
    bit: u8,
) -> Option<Duration> {
    let mut pair = Pair::new(Seed::from_env_or(1), LinkConfig::default());
    let captured = Rc::new(RefCell::new(None));
    let tap = captured.clone();
    pair.net.set_tap(move |d| {
        if d.src == from && d.index == k {
            *tap.borrow_mut() = Some(d.data.to_vec());
        }
    });
    pair.net.set_filter(move |d| {
        if d.src == from && d.index == k {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let client = pair.connect();
    pair.net.run_for(Duration::ZERO);
    while captured.borrow().is_none() {
        if !pair.net.step() || pair.net.elapsed() > Duration::from_secs(5) {
            return None; // never sent: nothing to corrupt
        }
    }
    let mut data = captured.borrow_mut().take().unwrap();
    if byte >= data.len() {
        return None;
    }
    data[byte] ^= 1 << bit;
    let to = if from == CLIENT_ADDR {
        SERVER_ADDR
    } else {
        CLIENT_ADDR
    };
    pair.net.inject(from, to, data);
    let done = pair.run_handshake(client, Duration::from_secs(20));
    assert!(
        done,
        "datagram {k} from {from}, byte {byte} bit {bit}: handshake failed: {:?}",
        pair.client_conn(client).close_reason()
    );
    Some(pair.net.elapsed())
}

#[test]
fn handshake_completes_whatever_bit_of_an_early_datagram_is_flipped() {
    for from in [CLIENT_ADDR, SERVER_ADDR] {
        for k in 0..3 {
            for byte in (0..48).chain((48..1200).step_by(101)) {
                for bit in 0..8 {
                    if let Some(took) = handshake_with_flipped_bit(from, k, byte, bit) {
                        // No worse than losing the datagram: a PTO or two.
                        assert!(
                            took < Duration::from_secs(4),
                            "datagram {k} from {from}, byte {byte} bit {bit}: handshake took {took:?}"
                        );
                    }
                }
            }
        }
    }
}
