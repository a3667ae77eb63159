//! Anti-amplification (RFC 9000 §8.1): "Prior to validating the client
//! address, servers MUST NOT send more than three times as many bytes as
//! the number of bytes they have received." The server validates the
//! client's address when it receives a Handshake packet from it.
//!
//! The network's recorded trace is checked datagram by datagram: the bytes
//! the server *sent* against the bytes actually *delivered* to it (the tap
//! sees what the client sends, which includes datagrams later lost, so it
//! would allow the server more than the RFC does).

use std::time::Duration;

use quiver_proto::{TransportConfig, Version};
use quiver_sim::quic::{CLIENT_ADDR, Pair, SERVER_ADDR, TestPki};
use quiver_sim::{LinkConfig, Network, Seed, TraceKind, Verdict, for_each_seed};

/// A certificate this large makes the server's first flight (about 8 KB)
/// much more than three client Initials: the limit binds.
const CERT_LEN: usize = 8000;

/// Whether a datagram holds a Handshake packet (possibly coalesced after
/// an Initial). Only the unprotected parts of long headers are read: the
/// type bits (RFC 9000 §17.2; their meaning differs in v2, RFC 9369 §3.2),
/// the connection IDs, the token and the Length field.
fn has_handshake_packet(mut d: &[u8]) -> bool {
    fn varint(d: &[u8], p: &mut usize) -> Option<u64> {
        let first = *d.get(*p)?;
        let len = 1usize << (first >> 6);
        let bytes = d.get(*p..*p + len)?;
        *p += len;
        Some(
            bytes[1..]
                .iter()
                .fold(u64::from(first & 0x3f), |v, b| v << 8 | u64::from(*b)),
        )
    }
    loop {
        let Some(&first) = d.first() else {
            return false;
        };
        if first & 0x80 == 0 || d.len() < 7 {
            return false; // a short header runs to the end of the datagram
        }
        let version = u32::from_be_bytes(d[1..5].try_into().unwrap());
        let ty = (first >> 4) & 0x03;
        let (initial, handshake) = if version == Version::V2.number() {
            (1, 3)
        } else {
            (0, 2)
        };
        if ty == handshake {
            return true;
        }
        let mut p = 5;
        let dcid = usize::from(d[p]);
        p += 1 + dcid;
        let Some(&scid) = d.get(p) else { return false };
        p += 1 + usize::from(scid);
        if ty == initial {
            let Some(token) = varint(d, &mut p) else {
                return false;
            };
            p += token as usize;
        }
        let Some(len) = varint(d, &mut p) else {
            return false;
        };
        let end = p + len as usize;
        if end > d.len() {
            return false;
        }
        d = &d[end..];
    }
}

/// What the trace shows of the server before it validated the client.
#[derive(Debug, Default)]
struct Budget {
    /// Bytes delivered to the server before validation.
    received: u64,
    /// Bytes the server sent before validation.
    sent: u64,
    /// Highest sent / received ratio reached.
    peak: f64,
    validated: bool,
}

/// Walks the recorded trace, asserting the limit at every datagram the
/// server sends before it received a Handshake packet.
fn check_amplification(net: &Network) -> Budget {
    let mut b = Budget::default();
    for e in net.trace() {
        if b.validated {
            break;
        }
        match e.kind {
            TraceKind::Delivered { .. } if e.dst == SERVER_ADDR => {
                b.received += e.data.len() as u64;
                if has_handshake_packet(&e.data) {
                    b.validated = true;
                }
            }
            TraceKind::Sent if e.src == SERVER_ADDR => {
                b.sent += e.data.len() as u64;
                assert!(
                    b.sent <= 3 * b.received,
                    "seed {}: at {:?} the server had sent {} bytes for {} received\n{}",
                    net.seed(),
                    e.time - net.epoch(),
                    b.sent,
                    b.received,
                    net.dump_trace()
                );
                b.peak = b.peak.max(b.sent as f64 / b.received as f64);
            }
            _ => {}
        }
    }
    b
}

fn large_cert_pair(seed: Seed, link: LinkConfig) -> Pair {
    let mut pair = Pair::with_pki(
        seed,
        link,
        TransportConfig::default(),
        TransportConfig::default(),
        TestPki::with_cert_size(CERT_LEN),
    );
    pair.net.record(true);
    pair
}

/// As [`large_cert_pair`], the client offering X25519 only: its ClientHello
/// fits its first Initial datagram.
fn large_cert_pair_classical(seed: Seed, link: LinkConfig) -> Pair {
    let mut pair = large_cert_pair(seed, link);
    pair.offer_kx_groups(&[quiver_proto::crypto::KxGroup::X25519]);
    pair
}

#[test]
fn the_server_sends_at_most_three_times_what_it_received_before_validation() {
    let mut pair = large_cert_pair(Seed::from_env_or(1), LinkConfig::default());
    pair.connect_and_wait(Duration::from_secs(10));
    let b = check_amplification(&pair.net);
    assert!(b.validated);
    // The limit bound: the server used (nearly) all of its budget.
    assert!(b.peak > 2.5, "{b:?}");
}

#[test]
fn the_amplification_limit_holds_under_random_loss() {
    for_each_seed(30, |seed| {
        for loss_rate in [0.05, 0.15, 0.3] {
            let link = LinkConfig {
                loss_rate,
                ..LinkConfig::default()
            };
            let mut pair = large_cert_pair(seed, link);
            let client = pair.connect();
            let done = pair.run_handshake(client, Duration::from_secs(25));
            check_amplification(&pair.net);
            if loss_rate < 0.3 {
                assert!(done, "loss {loss_rate}: handshake incomplete");
            }
        }
    });
}

/// The default ClientHello (a post-quantum key share) spans two Initial
/// datagrams: a server that hears only the first cannot answer, so it
/// sends nothing at all (and keeps the attempt only a bounded time).
#[test]
fn a_server_that_hears_half_a_client_hello_sends_nothing() {
    for_each_seed(5, |seed| {
        let mut pair = large_cert_pair(seed, LinkConfig::default());
        pair.net.set_filter(|d| {
            if d.src == CLIENT_ADDR && d.index > 0 {
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        });
        let client = pair.connect();
        assert!(!pair.run_handshake(client, Duration::from_secs(30)));
        let sent = pair.net.link_stats(SERVER_ADDR, CLIENT_ADDR).sent_bytes;
        assert_eq!(sent, 0);
    });
}

#[test]
fn the_amplification_limit_holds_when_client_datagrams_are_lost_after_the_first_initial() {
    for_each_seed(30, |seed| {
        let mut pair = large_cert_pair(seed, LinkConfig::default());
        let client = pair.connect();
        // The first Initial is on its way; from now on 80% of what the
        // client sends is lost (the server's replies all arrive).
        pair.net.step();
        pair.net.set_link(
            CLIENT_ADDR,
            SERVER_ADDR,
            LinkConfig {
                loss_rate: 0.8,
                ..LinkConfig::default()
            },
        );
        pair.run_handshake(client, Duration::from_secs(40));
        let b = check_amplification(&pair.net);
        assert!(b.received >= 1200, "{b:?}");
    });
}

#[test]
fn a_server_that_hears_only_the_first_initial_sends_at_most_three_times_it() {
    for_each_seed(10, |seed| {
        let mut pair = large_cert_pair_classical(seed, LinkConfig::default());
        pair.net.set_filter(|d| {
            if d.src == CLIENT_ADDR && d.index > 0 {
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        });
        let client = pair.connect();
        assert!(!pair.run_handshake(client, Duration::from_secs(60)));
        let b = check_amplification(&pair.net);
        assert!(!b.validated);
        let first = pair
            .net
            .link_stats(CLIENT_ADDR, SERVER_ADDR)
            .delivered_bytes;
        let sent = pair.net.link_stats(SERVER_ADDR, CLIENT_ADDR).sent_bytes;
        assert_eq!(b.received, first);
        // Everything the server ever sent, retransmissions included.
        assert!(sent <= 3 * first, "sent {sent} for {first}");
        assert!(
            sent > 2 * first,
            "the server left its budget unused: {sent}"
        );
    });
}

#[test]
fn the_amplification_limit_holds_in_quic_v2() {
    for_each_seed(10, |seed| {
        let link = LinkConfig {
            loss_rate: 0.1,
            ..LinkConfig::default()
        };
        let mut pair = large_cert_pair(seed, link);
        pair.client_config.version = Version::V2;
        pair.connect_and_wait(Duration::from_secs(25));
        let b = check_amplification(&pair.net);
        assert!(b.validated);
    });
}

#[test]
fn handshake_packets_are_recognised_in_coalesced_datagrams() {
    // The first datagram with a Handshake packet the client sends follows
    // its Initial ACK in the same datagram: check the parser finds it.
    let mut pair = large_cert_pair(Seed::from_env_or(1), LinkConfig::default());
    pair.connect_and_wait(Duration::from_secs(10));
    let client_datagrams: Vec<_> = pair.net.sent_from(CLIENT_ADDR).collect();
    assert!(!has_handshake_packet(&client_datagrams[0].data));
    assert!(
        client_datagrams
            .iter()
            .any(|e| has_handshake_packet(&e.data))
    );
}
