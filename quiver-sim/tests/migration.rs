//! Connection migration (RFC 9000 §9) and path validation (§8.2): NAT
//! rebinding mid-transfer (port, then address, once and repeatedly), the
//! client's own move, packets forwarded from a spoofed address, and the
//! anti-amplification limit on every new path.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use quiver_proto::ConnectionHandle;
use quiver_sim::quic::{AppConfig, CLIENT_ADDR, Pair, SERVER_ADDR, SendPlan, SharedApp};
use quiver_sim::{LinkConfig, Seed, for_each_seed, loopback};

const MB: u64 = 1_000_000;

/// 10 ms each way at 20 Mbit/s: a 4 MB download lasts well over a
/// second, so the path changes happen mid-transfer.
fn link() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(10),
        bandwidth: Some(2_500_000),
        ..LinkConfig::default()
    }
}

/// A download of `len` bytes from the server on one stream, started; runs
/// the handshake. Returns the client's handle and the client's app.
fn download(pair: &mut Pair, len: u64) -> (ConnectionHandle, SharedApp) {
    pair.server_app(AppConfig {
        send: vec![SendPlan::uni(len)],
        ..AppConfig::default()
    });
    let receiver = pair.client_app(AppConfig::default());
    let (client, _) = pair.connect_and_wait(Duration::from_secs(10));
    (client, receiver)
}

/// Runs until the download finished (or `limit`), then checks it arrived
/// whole and intact, with the connection alive.
fn finish(pair: &mut Pair, receiver: &SharedApp, len: u64, limit: Duration) {
    let done = pair.run_until(limit, |_| receiver.borrow().streams_finished() == 1);
    let r = receiver.borrow();
    assert!(
        done,
        "download incomplete: {} of {len} bytes; client lost: {:?}; server {:?}",
        r.bytes_received(),
        r.lost,
        pair.server_conn().stats(),
    );
    r.assert_intact();
    assert_eq!(r.bytes_received(), len);
    assert!(r.lost.is_none(), "{:?}", r.lost);
}

/// The client's NAT maps it to `addr` from now on; its old mapping keeps
/// delivering for 50 ms more (a pure receiver sends only when something
/// arrives: with the old mapping dropped at once, nothing would tell the
/// server where the client went).
fn rebind_nat(pair: &mut Pair, addr: SocketAddr) {
    let old = pair.net.addr(pair.client);
    pair.net.nat_rebind(pair.client, addr);
    pair.net.run_for(Duration::from_millis(50));
    pair.net.expire_mapping(old);
}

/// A datagram seen by a tap: when, from, to, how long.
type Sent = (std::time::Instant, SocketAddr, SocketAddr, usize);

/// Bytes sent per (src, dst) pair, counted by a tap.
type Bytes = Rc<RefCell<BTreeMap<(SocketAddr, SocketAddr), u64>>>;

fn count_bytes(pair: &mut Pair) -> Bytes {
    let bytes: Bytes = Rc::default();
    let sink = bytes.clone();
    pair.net.set_tap(move |d| {
        *sink.borrow_mut().entry((d.src, d.dst)).or_default() += d.data.len() as u64;
    });
    bytes
}

/// RFC 9000 §9.3, §9.4: a NAT rebinding changes the client's port
/// mid-transfer; the server follows at once, validates the new address,
/// keeps its congestion state, and the download stalls for no more than
/// about a round trip plus validation.
#[test]
fn nat_rebinding_of_the_port_mid_download() {
    for_each_seed(5, |seed| {
        let mut baseline = Pair::new(seed, link());
        let (_, r) = download(&mut baseline, 4 * MB);
        let start = baseline.net.now();
        finish(&mut baseline, &r, 4 * MB, Duration::from_secs(60));
        let undisturbed = baseline.net.now() - start;

        let mut pair = Pair::new(seed, link());
        let (_, r) = download(&mut pair, 4 * MB);
        let start = pair.net.now();
        pair.net.run_for(Duration::from_millis(300));
        let window_before = pair.server_conn().congestion_window();
        let new_addr = loopback(2, 6000);
        rebind_nat(&mut pair, new_addr);
        finish(&mut pair, &r, 4 * MB, Duration::from_secs(60));
        let took = pair.net.now() - start;
        let server = pair.server_conn();
        assert_eq!(server.remote_address(), new_addr);
        assert!(server.is_path_validated());
        assert!(server.stats().migrations >= 1);
        assert!(window_before > 0);
        // One RTT (20 ms) plus validation, plus the packets in flight to
        // the old port lost: well under a second more than undisturbed.
        assert!(
            took < undisturbed + Duration::from_millis(800),
            "took {took:?}, undisturbed {undisturbed:?}"
        );
    });
}

/// RFC 9000 §9.4: a change of address (not only port) resets congestion
/// control on the new path; the download still completes.
#[test]
fn nat_rebinding_of_the_address_mid_download() {
    for_each_seed(5, |seed| {
        let mut pair = Pair::new(seed, link());
        let (_, r) = download(&mut pair, 4 * MB);
        pair.net.run_for(Duration::from_millis(300));
        let new_addr = loopback(7, 5000);
        rebind_nat(&mut pair, new_addr);
        finish(&mut pair, &r, 4 * MB, Duration::from_secs(60));
        let server = pair.server_conn();
        assert_eq!(server.remote_address(), new_addr);
        assert!(server.is_path_validated());
    });
}

/// A NAT that rebinds every second, alternating port and address changes,
/// over a long download.
#[test]
fn repeated_rebinding_every_second() {
    for_each_seed(3, |seed| {
        let mut pair = Pair::new(
            seed,
            LinkConfig {
                delay: Duration::from_millis(10),
                bandwidth: Some(5_000_000),
                ..LinkConfig::default()
            },
        );
        let len = 20 * MB;
        let (_, r) = download(&mut pair, len);
        let mut last = CLIENT_ADDR;
        for i in 1..=8u16 {
            pair.net.run_for(Duration::from_secs(1));
            if r.borrow().streams_finished() == 1 {
                break;
            }
            let next = if i % 2 == 0 {
                loopback(10 + i as u8, 5000)
            } else {
                SocketAddr::new(last.ip(), 6000 + i)
            };
            rebind_nat(&mut pair, next);
            last = next;
        }
        finish(&mut pair, &r, len, Duration::from_secs(60));
        assert_eq!(pair.server_conn().remote_address(), last);
    });
}

/// RFC 9000 §9.2, §9.5: the client moves to a new local address on its
/// own; it switches to a connection ID not used before, and the server
/// follows.
#[test]
fn client_active_migration_mid_download_uses_a_new_connection_id() {
    for_each_seed(5, |seed| {
        let mut pair = Pair::new(seed, link());
        let (client, r) = download(&mut pair, 4 * MB);
        // Record the DCIDs of the client's short-header packets by source.
        let cids: Rc<RefCell<BTreeMap<SocketAddr, Vec<Vec<u8>>>>> = Rc::default();
        let sink = cids.clone();
        pair.net.set_tap(move |d| {
            if d.dst == SERVER_ADDR && d.data[0] & 0x80 == 0 {
                let cid = d.data[1..9].to_vec();
                let mut map = sink.borrow_mut();
                let seen = map.entry(d.src).or_default();
                if !seen.contains(&cid) {
                    seen.push(cid);
                }
            }
        });
        pair.net.run_for(Duration::from_millis(300));
        let new_addr = loopback(9, 7000);
        pair.net.rebind(pair.client, new_addr);
        let now = pair.net.now();
        pair.client_conn(client).migrate(now).expect("migrate");
        pair.poke_client();
        finish(&mut pair, &r, 4 * MB, Duration::from_secs(60));
        assert_eq!(pair.server_conn().remote_address(), new_addr);
        let cids = cids.borrow();
        let old = &cids[&CLIENT_ADDR];
        let new = &cids[&new_addr];
        assert!(
            new.iter().all(|c| !old.contains(c)),
            "a connection ID used from both addresses: old {old:?} new {new:?}"
        );
    });
}

/// RFC 9000 §9: "An endpoint MUST NOT initiate connection migration
/// before the handshake is confirmed."
#[test]
fn migration_before_confirmation_is_refused() {
    let mut pair = Pair::new(Seed::from_env_or(1), link());
    let client = pair.connect();
    let now = pair.net.now();
    assert_eq!(
        pair.client_conn(client).migrate(now),
        Err(quiver_proto::MigrateError::NotConfirmed)
    );
}

/// RFC 9000 §9.3.2, §9.3.3: an attacker forwards copies of the client's
/// packets from a spoofed address, ahead of the originals. The server may
/// move there, but the spoofed address cannot answer its challenge; the
/// real client's packets (and the validation of the old path) bring the
/// server back, the download completes, and the server never sends the
/// spoofed address more than three times what came from it (§8.1, §9.3.1).
#[test]
fn off_path_forwarded_copies_do_not_hijack_the_connection() {
    for_each_seed(10, |seed| {
        let mut pair = Pair::new(seed, link());
        let (_, r) = download(&mut pair, 2 * MB);
        let spoofed = loopback(66, 6666);
        // Copies arrive 5 ms before the originals (which take 10 ms).
        pair.net.set_link(
            spoofed,
            SERVER_ADDR,
            LinkConfig {
                delay: Duration::from_millis(5),
                ..LinkConfig::default()
            },
        );
        let bytes = count_bytes(&mut pair);
        pair.net.run_for(Duration::from_millis(200));
        // Forward a burst of copies of the client's next datagrams.
        let copies: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
        let sink = copies.clone();
        let counter = bytes.clone();
        pair.net.set_tap(move |d| {
            *counter.borrow_mut().entry((d.src, d.dst)).or_default() += d.data.len() as u64;
            if d.src == CLIENT_ADDR && d.dst == SERVER_ADDR {
                sink.borrow_mut().push(d.data.to_vec());
            }
        });
        let until = pair.net.now() + Duration::from_millis(100);
        while pair.net.now() < until {
            pair.net.run_for(Duration::from_millis(1));
            let batch: Vec<Vec<u8>> = copies.borrow_mut().drain(..).collect();
            for c in batch {
                pair.net.inject(spoofed, SERVER_ADDR, c);
            }
        }
        finish(&mut pair, &r, 2 * MB, Duration::from_secs(60));
        assert_eq!(pair.server_conn().remote_address(), CLIENT_ADDR);
        // The copies won the race: the server moved there and back.
        let migrations = pair.server_conn().stats().migrations;
        assert!(migrations >= 2, "{migrations} migrations");
        let b = bytes.borrow();
        let from = b.get(&(spoofed, SERVER_ADDR)).copied().unwrap_or(0);
        let to = b.get(&(SERVER_ADDR, spoofed)).copied().unwrap_or(0);
        assert!(from > 0, "nothing forwarded");
        assert!(
            to <= 3 * from,
            "sent {to} to the spoofed address, received {from}"
        );
    });
}

/// RFC 9000 §8.1, §9.3.1: on a new path, nothing beyond three times what
/// was received is sent before validation — checked on every datagram
/// towards a client that changes address while the server has a lot to
/// send.
#[test]
fn amplification_limit_holds_on_every_new_path() {
    for_each_seed(10, |seed| {
        let mut pair = Pair::new(seed, link());
        let (_, r) = download(&mut pair, 2 * MB);
        pair.net.run_for(Duration::from_millis(200));
        // Per new address: bytes received from it, bytes sent to it
        // before its first datagram carrying anything but ACKs could have
        // validated it. The server validates within one round trip, so
        // check the window of the first 15 ms (shorter than the RTT).
        let new_addr = loopback(8, 5555);
        let rebind_at = pair.net.now();
        let log: Rc<RefCell<Vec<Sent>>> = Rc::default();
        let sink = log.clone();
        pair.net.set_tap(move |d| {
            sink.borrow_mut().push((d.time, d.src, d.dst, d.data.len()));
        });
        rebind_nat(&mut pair, new_addr);
        finish(&mut pair, &r, 2 * MB, Duration::from_secs(60));
        let log = log.borrow();
        let (mut from, mut to) = (0usize, 0usize);
        for &(time, src, dst, len) in log.iter() {
            if time > rebind_at + Duration::from_millis(15) {
                break;
            }
            if src == new_addr {
                from += len;
            }
            if dst == new_addr {
                to += len;
                assert!(to <= 3 * from, "{to} bytes sent for {from} received");
            }
        }
        assert!(to > 0, "the server never answered the new address");
    });
}

/// The founding lesson, on a moved path: a close right after the client's
/// NAT rebinding reaches the client.
#[test]
fn close_right_after_a_rebinding_reaches_the_peer() {
    for_each_seed(5, |seed| {
        let mut pair = Pair::new(seed, link());
        let (_, r) = download(&mut pair, 4 * MB);
        pair.net.run_for(Duration::from_millis(200));
        rebind_nat(&mut pair, loopback(2, 6001));
        // Wait until the server has moved, then close at once.
        let moved = pair.run_until(Duration::from_secs(1), |p| {
            p.server_conn().remote_address() == loopback(2, 6001)
        });
        assert!(moved);
        let now = pair.net.now();
        pair.server_conn()
            .close(now, quiver_proto::VarInt::from_u32(0x2a), "bye".into());
        pair.poke_server();
        let closed = pair.run_until(Duration::from_secs(2), |_| r.borrow().lost.is_some());
        assert!(closed, "the client never learned of the close");
        let lost = r.borrow().lost.clone().unwrap().1;
        assert!(
            matches!(lost, quiver_proto::ConnectionError::ApplicationClosed { code, .. } if code.into_inner() == 0x2a),
            "{lost:?}"
        );
    });
}

const PREFERRED: SocketAddr = loopback(5, 4500);

/// A pair whose server advertises `PREFERRED` (and receives on it).
fn preferred_pair(seed: Seed, client: quiver_proto::TransportConfig) -> Pair {
    let mut pair = Pair::with_server_endpoint(
        seed,
        link(),
        client,
        quiver_proto::TransportConfig::default(),
        |e| {
            e.preferred_address_v4 = match PREFERRED {
                SocketAddr::V4(a) => Some(a),
                SocketAddr::V6(_) => None,
            }
        },
    );
    pair.net.add_alias(pair.server, PREFERRED);
    pair
}

/// RFC 9000 §9.6: the client validates the server's preferred address
/// after confirmation and moves there, with the connection ID the server
/// gave for it; the download completes.
#[test]
fn client_moves_to_the_servers_preferred_address() {
    for_each_seed(5, |seed| {
        let mut pair = preferred_pair(seed, quiver_proto::TransportConfig::default());
        let to: Bytes = count_bytes(&mut pair);
        let (client, r) = download(&mut pair, 2 * MB);
        finish(&mut pair, &r, 2 * MB, Duration::from_secs(60));
        let conn = pair.client_conn(client);
        assert_eq!(conn.remote_address(), PREFERRED);
        assert!(conn.stats().migrations >= 1);
        let to = to.borrow();
        let preferred = to.get(&(CLIENT_ADDR, PREFERRED)).copied().unwrap_or(0);
        assert!(
            preferred > 10_000,
            "only {preferred} bytes to the preferred address"
        );
    });
}

/// With migration to the preferred address turned off the client stays.
#[test]
fn client_stays_when_told_not_to_migrate() {
    let client = quiver_proto::TransportConfig {
        migrate_to_preferred_address: false,
        ..Default::default()
    };
    let mut pair = preferred_pair(Seed::from_env_or(1), client);
    let (client, r) = download(&mut pair, MB);
    finish(&mut pair, &r, MB, Duration::from_secs(60));
    assert_eq!(pair.client_conn(client).remote_address(), SERVER_ADDR);
}

/// RFC 9000 §8.2.2 under abuse: a peer packs PATH_CHALLENGE frames into
/// its packets. Each path keeps only the newest few echoes owed, so state
/// stays bounded, the answers (padded to 1200 bytes as §8.2.2 requires)
/// come at most one datagram per packet received, within the congestion
/// window, and the connection carries on.
#[test]
fn a_flood_of_path_challenges_costs_bounded_state_and_bytes() {
    use quiver_proto::frame::{Frame, PathChallenge};
    let mut pair = Pair::new(Seed::from_env_or(1), link());
    let (client, r) = download(&mut pair, MB);
    pair.net.run_for(Duration::from_millis(100));
    let bytes = count_bytes(&mut pair);
    let mut frames = Vec::new();
    for i in 0..100u8 {
        Frame::PathChallenge(PathChallenge([i; 8])).encode(&mut frames);
    }
    for _ in 0..50 {
        pair.client_conn(client)
            .send_raw_frames_for_test(2, frames.clone());
    }
    pair.poke_client();
    finish(&mut pair, &r, MB, Duration::from_secs(30));
    // Every challenge-laden packet (about 900 bytes) got at most one
    // 1200-byte answer besides the download's own traffic: far from the
    // 100 answers each packet asked for.
    let b = bytes.borrow();
    let flood_packets = 50;
    let down = b.get(&(SERVER_ADDR, CLIENT_ADDR)).copied().unwrap_or(0);
    assert!(
        down < MB + 1_000_000 / 10 + flood_packets * 1300 * 4,
        "server sent {down} bytes"
    );
    assert!(pair.server_conn().close_reason().is_none());
}

/// RFC 9000 §9.2 under loss: the client moves mid-download over a link
/// losing 10% each way; the move and the download both complete.
#[test]
fn client_active_migration_during_heavy_loss() {
    for_each_seed(5, |seed| {
        let lossy = LinkConfig {
            loss_rate: 0.10,
            ..link()
        };
        let mut pair = Pair::new(seed, lossy);
        let (client, r) = download(&mut pair, MB);
        pair.net.run_for(Duration::from_millis(300));
        let new_addr = loopback(9, 7001);
        pair.net.rebind(pair.client, new_addr);
        let now = pair.net.now();
        pair.client_conn(client).migrate(now).expect("migrate");
        pair.poke_client();
        finish(&mut pair, &r, MB, Duration::from_secs(120));
        assert_eq!(pair.server_conn().remote_address(), new_addr);
    });
}

/// RFC 9000 §9.3.2: a single forwarded copy, from an address that cannot
/// answer, wins the race while the genuine packet is lost. The server
/// moves there, its validation fails (nobody answers the challenge), and
/// it returns to the client's validated address; the connection goes on.
#[test]
fn a_migration_to_a_dead_address_is_abandoned() {
    for_each_seed(10, |seed| {
        let mut pair = Pair::new(seed, link());
        let (client, _) = pair.connect_and_wait(Duration::from_secs(10));
        pair.net.run_for(Duration::from_millis(200));
        let dead = loopback(77, 7777);
        // The client's next datagram is lost on its own path, and a copy
        // arrives from the dead address instead.
        let copy: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
        let sink = copy.clone();
        pair.net.set_filter(move |d| {
            if d.src == CLIENT_ADDR && sink.borrow().is_none() {
                *sink.borrow_mut() = Some(d.data.to_vec());
                return quiver_sim::Verdict::Drop;
            }
            quiver_sim::Verdict::Deliver
        });
        // Something for the client to send: a datagram.
        pair.client_conn(client)
            .send_datagram(bytes::Bytes::from_static(b"ping"))
            .unwrap();
        pair.poke_client();
        pair.net.run_for(Duration::from_millis(1));
        pair.net.clear_filter();
        let data = copy.borrow_mut().take().expect("captured");
        pair.net.inject(dead, SERVER_ADDR, data);
        let moved = pair.run_until(Duration::from_millis(100), |p| {
            p.server_conn().remote_address() == dead
        });
        assert!(moved, "the forwarded copy did not move the server");
        let back = pair.run_until(Duration::from_secs(10), |p| {
            p.server_conn().remote_address() == CLIENT_ADDR
        });
        assert!(back, "the server stayed on the dead address");
        assert!(pair.server_conn().close_reason().is_none());
        assert!(pair.client_conn(client).close_reason().is_none());
        // And it still works.
        pair.server_conn()
            .send_datagram(bytes::Bytes::from_static(b"still here"))
            .unwrap();
        pair.poke_server();
        pair.net.run_for(Duration::from_millis(100));
    });
}

/// RFC 9000 §5.1.2, §9.5: after a NAT rebinding to a new address under an
/// unchanged connection ID, the server moves the client to fresh IDs
/// (Retire Prior To): within a few round trips the client's packets carry
/// an ID never used on the old path, and the old ones are retired.
#[test]
fn a_rebinding_to_a_new_address_rotates_the_servers_connection_ids() {
    for_each_seed(5, |seed| {
        let mut pair = Pair::new(seed, link());
        let (_, r) = download(&mut pair, 4 * MB);
        let cids: Rc<RefCell<BTreeMap<SocketAddr, Vec<Vec<u8>>>>> = Rc::default();
        let sink = cids.clone();
        pair.net.set_tap(move |d| {
            if d.dst == SERVER_ADDR && d.data[0] & 0x80 == 0 {
                let mut map = sink.borrow_mut();
                let seen = map.entry(d.src).or_default();
                let cid = d.data[1..9].to_vec();
                if seen.last() != Some(&cid) {
                    seen.push(cid);
                }
            }
        });
        pair.net.run_for(Duration::from_millis(300));
        let new_addr = loopback(12, 5000);
        rebind_nat(&mut pair, new_addr);
        finish(&mut pair, &r, 4 * MB, Duration::from_secs(60));
        let cids = cids.borrow();
        let old = &cids[&CLIENT_ADDR];
        let new = &cids[&new_addr];
        let last = new.last().unwrap();
        assert!(
            !old.contains(last),
            "the client still uses an ID from the old path: old {old:?} new {new:?}"
        );
    });
}

/// A NAT that rebinds and drops the old mapping at once, under a client
/// that only receives: everything in flight to the old port is lost and
/// the client, having nothing to acknowledge, would stay silent (this
/// stalled until the idle timeout before the silence probe). After a PTO
/// of silence mid-transfer it probes with a PING; the server sees the new
/// address and the download resumes (RFC 9000 §9.3).
#[test]
fn a_rebinding_that_drops_the_old_mapping_at_once() {
    for_each_seed(10, |seed| {
        let mut pair = Pair::new(seed, link());
        let (_, r) = download(&mut pair, 2 * MB);
        pair.net.run_for(Duration::from_millis(200));
        let before = r.borrow().bytes_received();
        let new_addr = loopback(2, 6100);
        pair.net.rebind(pair.client, new_addr);
        // Progress again within a few round trips (20 ms) plus the
        // client's PTO and the server's path validation.
        let resumed = pair.run_until(Duration::from_secs(1), |_| {
            r.borrow().bytes_received() > before + 200_000
        });
        assert!(resumed, "stalled after the rebinding");
        finish(&mut pair, &r, 2 * MB, Duration::from_secs(60));
        assert_eq!(pair.server_conn().remote_address(), new_addr);
    });
}
