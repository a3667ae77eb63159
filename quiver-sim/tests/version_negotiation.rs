//! Version negotiation (RFC 9368, RFC 9369 §4) and greasing of the QUIC bit
//! (RFC 9287) in the simulated network: a v1 → v2 compatible upgrade, a
//! v1-only server, Version Negotiation and a new attempt, forged Version
//! Negotiation caught by version_information, and the QUIC bit cleared only
//! towards peers that advertised grease_quic_bit.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use quiver_proto::packet::header::{self, Parsed};
use quiver_proto::{ConnectionError, Endpoint, TransportConfig, TransportErrorCode, Version};
use quiver_sim::quic::{Admission, AppConfig, CLIENT_ADDR, Pair, SERVER_ADDR, SendPlan};
use quiver_sim::{LinkConfig, Seed, Verdict, for_each_seed};

const LIMIT: Duration = Duration::from_secs(25);
const V1: u32 = 0x0000_0001;
const V2: u32 = 0x6b33_43cf;

/// One datagram seen on the wire.
#[derive(Debug, Clone)]
struct Seen {
    from_client: bool,
    time: Instant,
    first_byte: u8,
    /// The Version field of a long header (0 for Version Negotiation).
    version: Option<u32>,
}

/// Records every datagram's first byte and long-header version.
fn tap(pair: &mut Pair) -> Rc<RefCell<Vec<Seen>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    pair.net.set_tap(move |d| {
        let long = d.data[0] & 0x80 != 0;
        log.borrow_mut().push(Seen {
            from_client: d.src == CLIENT_ADDR,
            time: d.time,
            first_byte: d.data[0],
            version: long.then(|| u32::from_be_bytes(d.data[1..5].try_into().unwrap())),
        });
    });
    seen
}

const PREFER_V1: &[Version] = &[Version::V1, Version::V2];
const PREFER_V2: &[Version] = &[Version::V2, Version::V1];

/// Who supports which versions: the server `server` (in preference
/// order), the client starts in `start` offering `offered`.
#[derive(Clone, Copy)]
struct Versions<'a> {
    server: &'a [Version],
    start: Version,
    offered: &'a [Version],
}

/// Both offer both; the server prefers v2, the client starts in v1: the
/// compatible upgrade of RFC 9369 §4.1.
const UPGRADE_TO_V2: Versions<'static> = Versions {
    server: PREFER_V2,
    start: Version::V1,
    offered: PREFER_V1,
};

/// A pair with these versions.
fn pair(seed: Seed, link: LinkConfig, versions: Versions<'_>) -> Pair {
    let server = versions.server.to_vec();
    let mut pair = Pair::with_server_endpoint(
        seed,
        link,
        TransportConfig::default(),
        TransportConfig::default(),
        move |c| c.supported_versions = server,
    );
    pair.client_config.version = versions.start;
    pair.client_config.available_versions = versions.offered.to_vec();
    pair
}

/// [`pair`] on a default link, seeded from `QUIVER_SIM_SEED` or `seed`.
fn pair_seeded(seed: u64, versions: Versions<'_>) -> Pair {
    pair(Seed::from_env_or(seed), LinkConfig::default(), versions)
}

/// A lossless link on even seeds, 10 % loss on odd ones.
fn lossy_on_odd_seeds(seed: Seed) -> LinkConfig {
    LinkConfig {
        loss_rate: if seed.0 % 2 == 0 { 0.0 } else { 0.1 },
        ..LinkConfig::default()
    }
}

/// The long-header versions one side sent, in order.
fn long_header_versions(seen: &[Seen], from_client: bool) -> Vec<u32> {
    seen.iter()
        .filter(|s| s.from_client == from_client)
        .filter_map(|s| s.version)
        .collect()
}

/// Whether the datagram's QUIC bit (RFC 9287) was cleared.
fn greased(s: &Seen) -> bool {
    s.first_byte & 0x40 == 0
}

fn transport_code(e: Option<&ConnectionError>) -> Option<TransportErrorCode> {
    match e {
        Some(ConnectionError::TransportError(e)) => Some(e.code),
        Some(ConnectionError::ConnectionClosed { code, .. }) => Some(*code),
        _ => None,
    }
}

/// RFC 9368 §2.3, RFC 9369 §4.1: a server preferring v2 answers a v1 first
/// flight offering v2 in v2; the client switches on the server's first
/// packet. Everything the server sends is v2; the client's long headers are
/// v1 only until it learns the server's choice.
#[test]
fn compatible_upgrade_from_v1_to_v2() {
    for_each_seed(10, |seed| {
        let mut pair = pair(seed, lossy_on_odd_seeds(seed), UPGRADE_TO_V2);
        let seen = tap(&mut pair);
        let (client, _) = pair.connect_and_wait(LIMIT);
        assert_eq!(pair.client_conn(client).version(), Version::V2);
        assert_eq!(pair.server_conn().version(), Version::V2);
        let seen = seen.borrow();
        assert_eq!(seen[0].version, Some(V1), "the client starts in v1");
        let server = long_header_versions(&seen, false);
        assert!(!server.is_empty());
        assert!(
            server.iter().all(|&v| v == V2),
            "server long headers {server:x?}"
        );
        // Once the client sends a v2 long header it never goes back.
        let client = long_header_versions(&seen, true);
        let first_v2 = client
            .iter()
            .position(|&v| v == V2)
            .expect("client switched to v2");
        assert!(client[first_v2..].iter().all(|&v| v == V2), "{client:x?}");
        assert!(client[..first_v2].iter().all(|&v| v == V1), "{client:x?}");
    });
}

/// RFC 9369 §4.1: the server "MUST NOT discard its original version
/// Initial receive keys until it successfully processes a Handshake packet
/// with the negotiated version": with its first flight lost, the client
/// repeats its v1 Initial, which the server (already in v2) still reads.
#[test]
fn server_reads_original_version_initials_after_switching() {
    let mut pair = pair_seeded(11, UPGRADE_TO_V2);
    pair.net.set_filter(|d| {
        if d.src == SERVER_ADDR && d.index < 2 {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let seen = tap(&mut pair);
    let (client, _) = pair.connect_and_wait(LIMIT);
    assert_eq!(pair.client_conn(client).version(), Version::V2);
    let seen = seen.borrow();
    let v1_from_client = seen
        .iter()
        .filter(|s| s.from_client && s.version == Some(V1))
        .count();
    assert!(v1_from_client >= 2, "{seen:?}");
    // Each of them was read, none dropped for its version.
    let stats = pair.server_conn().stats();
    assert_eq!(stats.packets_dropped, 0, "{stats:?}");
}

/// RFC 9369 §4.1: "If the server sends a Retry packet, it MUST use the
/// original version", and the client's Initial with the token stays in
/// it; the server then upgrades as before, with Initial keys from the
/// Retry's Source Connection ID.
#[test]
fn compatible_upgrade_after_retry() {
    let mut pair = pair_seeded(8, UPGRADE_TO_V2);
    pair.server().admission = Admission::Manual;
    pair.server().set_app(move |ep: &mut Endpoint, now| {
        while let Some((id, ok)) = ep
            .poll_incoming()
            .map(|i| (i.id(), i.remote_address_validated()))
        {
            if ok {
                ep.accept(now, id).unwrap();
            } else {
                ep.retry(now, id).unwrap();
            }
        }
    });
    let seen = tap(&mut pair);
    let client = pair.connect();
    assert!(pair.run_handshake(client, LIMIT));
    assert_eq!(pair.client_conn(client).version(), Version::V2);
    let seen = seen.borrow();
    // The Retry: the server's first datagram, a v1 long header (type 0b11).
    let retry = seen.iter().find(|s| !s.from_client).unwrap();
    assert_eq!((retry.version, retry.first_byte & 0x30), (Some(V1), 0x30));
    let client_versions = long_header_versions(&seen, true);
    assert_eq!(
        client_versions[..2],
        [V1, V1],
        "first Initial and the one with the token"
    );
}

/// A key update after the upgrade uses v2's "quicv2 ku" label (RFC 9369
/// §3.3.2) on both sides: data keeps flowing across it.
#[test]
fn key_update_after_compatible_upgrade() {
    let mut pair = pair_seeded(9, UPGRADE_TO_V2);
    let app = pair.client_app(AppConfig {
        send: vec![SendPlan::bi(200_000)],
        echo: true,
        ..AppConfig::default()
    });
    pair.server_app(AppConfig {
        echo: true,
        ..AppConfig::default()
    });
    let (client, _) = pair.connect_and_wait(LIMIT);
    pair.client_conn(client).force_key_update();
    let done = pair.run_until(Duration::from_secs(30), |_| {
        app.borrow().bytes_received() >= 200_000
    });
    assert!(done, "echo incomplete after a key update");
    app.borrow().assert_intact();
    assert_eq!(pair.client_conn(client).version(), Version::V2);
    assert!(pair.client_conn(client).stats().key_updates >= 1);
    assert!(pair.server_conn().stats().key_updates >= 1);
}

/// The other direction (RFC 9369 §4.1: "the same requirements in either
/// direction"): a client starting in v2 that also offers v1 is moved to v1
/// by a server preferring v1.
#[test]
fn compatible_negotiation_from_v2_to_v1() {
    let mut pair = pair_seeded(
        10,
        Versions {
            server: PREFER_V1,
            start: Version::V2,
            offered: PREFER_V2,
        },
    );
    let seen = tap(&mut pair);
    let (client, _) = pair.connect_and_wait(LIMIT);
    assert_eq!(pair.client_conn(client).version(), Version::V1);
    assert_eq!(pair.server_conn().version(), Version::V1);
    let seen = seen.borrow();
    assert_eq!(seen[0].version, Some(V2));
    assert!(long_header_versions(&seen, false).iter().all(|&v| v == V1));
}

/// A v1-only server keeps a client that prefers v2 (and offers it) in v1:
/// no packet of the connection is v2.
#[test]
fn v1_only_server_with_v2_preferring_client() {
    let mut pair = pair_seeded(
        2,
        Versions {
            server: &[Version::V1],
            start: Version::V1,
            offered: PREFER_V2,
        },
    );
    let seen = tap(&mut pair);
    let (client, _) = pair.connect_and_wait(LIMIT);
    assert_eq!(pair.client_conn(client).version(), Version::V1);
    assert_eq!(pair.server_conn().version(), Version::V1);
    assert!(
        seen.borrow()
            .iter()
            .filter_map(|s| s.version)
            .all(|v| v == V1)
    );
}

/// A server preferring v1 (the default order) does not upgrade a client
/// that offers v2 too.
#[test]
fn server_preferring_v1_stays_in_v1() {
    let mut pair = pair_seeded(
        3,
        Versions {
            server: PREFER_V1,
            start: Version::V1,
            offered: PREFER_V2,
        },
    );
    let (client, _) = pair.connect_and_wait(LIMIT);
    assert_eq!(pair.client_conn(client).version(), Version::V1);
}

/// RFC 9000 §6.2, RFC 9368 §2.1: a server speaking only v2 answers a v1
/// Initial with Version Negotiation; the client starts a new attempt in
/// v2 behind the same handle, and the handshake completes (the server's
/// version_information passes the §4 downgrade check).
#[test]
fn version_negotiation_then_new_attempt_in_v2() {
    for_each_seed(10, |seed| {
        let versions = Versions {
            server: &[Version::V2],
            start: Version::V1,
            offered: PREFER_V1,
        };
        let mut pair = pair(seed, lossy_on_odd_seeds(seed), versions);
        let seen = tap(&mut pair);
        let (client, _) = pair.connect_and_wait(LIMIT);
        assert_eq!(pair.client_conn(client).version(), Version::V2);
        assert_eq!(pair.server_conn().version(), Version::V2);
        assert_eq!(pair.client().endpoint.connection_handles(), vec![client]);
        let seen = seen.borrow();
        // Lost first Initials aside, a Version Negotiation reached the wire.
        if seed.0 % 2 == 0 {
            assert!(seen.iter().any(|s| !s.from_client && s.version == Some(0)));
        }
    });
}

/// Drops the client's first datagram and answers it with a Version
/// Negotiation packet listing `versions`, as an on-path attacker would.
fn forge_version_negotiation(pair: &mut Pair, versions: &[u32]) {
    pair.net.record(true);
    pair.net.set_filter(|d| {
        if d.src == CLIENT_ADDR && d.index == 0 {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    pair.net.run_for(Duration::ZERO);
    let first = pair.net.sent_from(CLIENT_ADDR).next().unwrap().data.clone();
    let Ok(Parsed::Packet(p)) = header::decode(&first, 0) else {
        panic!("client's first datagram is not an Initial");
    };
    let mut vn = Vec::new();
    header::encode_version_negotiation(&mut vn, &p.dst_cid, &p.src_cid, versions, 0x40);
    pair.net.inject(SERVER_ADDR, CLIENT_ADDR, vn);
}

/// RFC 9368 §4: both sides prefer v2, an attacker's Version Negotiation
/// lists only v1. The client retries in v1, but the server's Available
/// Versions show it would have chosen v2: VERSION_NEGOTIATION_ERROR.
#[test]
fn forged_version_negotiation_downgrade_is_detected() {
    // The server prefers v1 (no compatible upgrade muddies the check)...
    for server in [PREFER_V1, PREFER_V2] {
        let mut pair = pair_seeded(
            4,
            Versions {
                server,
                start: Version::V2,
                offered: PREFER_V2,
            },
        );
        let client = pair.connect();
        forge_version_negotiation(&mut pair, &[V1, 0x1a2a_3a4a]);
        pair.run_until(LIMIT, |p| p.client_conn(client).close_reason().is_some());
        let reason = pair.client_conn(client).close_reason().cloned();
        assert_eq!(
            transport_code(reason.as_ref()),
            Some(TransportErrorCode::VERSION_NEGOTIATION_ERROR),
            "server {server:?}: {reason:?}"
        );
        assert!(!pair.client_conn(client).is_handshake_complete());
        // The server hears why.
        pair.run_until(Duration::from_secs(2), |p| {
            p.server_conn().close_reason().is_some()
        });
        let reason = pair.server_conn().close_reason().cloned();
        assert_eq!(
            transport_code(reason.as_ref()),
            Some(TransportErrorCode::VERSION_NEGOTIATION_ERROR),
            "server {server:?}: {reason:?}"
        );
    }
}

/// RFC 9368 §4: "Clients MUST ignore any received Version Negotiation
/// packets that contain the Original Version."
#[test]
fn version_negotiation_listing_the_original_version_is_ignored() {
    let mut pair = pair_seeded(
        5,
        Versions {
            server: PREFER_V1,
            start: Version::V1,
            offered: PREFER_V1,
        },
    );
    let client = pair.connect();
    forge_version_negotiation(&mut pair, &[V2, V1]);
    assert!(pair.run_handshake(client, LIMIT));
    assert_eq!(pair.client_conn(client).version(), Version::V1);
}

/// Counts datagrams with the QUIC bit cleared, per direction, after a
/// transfer both ways; returns the tap records and the client's
/// handshake-complete time.
fn grease_run(
    seed: Seed,
    client_grease: bool,
    server_grease: bool,
) -> (Vec<Seen>, Instant, Instant) {
    let client_transport = TransportConfig {
        grease_quic_bit: client_grease,
        ..TransportConfig::default()
    };
    let server_transport = TransportConfig {
        grease_quic_bit: server_grease,
        ..TransportConfig::default()
    };
    let mut pair = Pair::with_configs(
        seed,
        LinkConfig::default(),
        client_transport,
        server_transport,
    );
    let seen = tap(&mut pair);
    let plan = AppConfig {
        send: vec![SendPlan::bi(300_000)],
        echo: true,
        ..AppConfig::default()
    };
    let client_app = pair.client_app(plan);
    let server_app = pair.server_app(AppConfig {
        echo: true,
        ..AppConfig::default()
    });
    pair.connect_and_wait(LIMIT);
    let done = pair.run_until(Duration::from_secs(30), |_| {
        client_app.borrow().bytes_received() >= 300_000
    });
    assert!(done, "echo incomplete");
    let client_connected = client_app.borrow().connected_at.unwrap();
    let server_connected = server_app.borrow().connected_at.unwrap();
    let seen = seen.borrow().clone();
    (seen, client_connected, server_connected)
}

/// RFC 9287: both sides advertise grease_quic_bit (the default), so both
/// clear the bit on some packets, and each peer reads them; the client
/// never clears it before it has the server's parameters (it processes
/// them as its handshake completes).
#[test]
fn quic_bit_greased_both_ways() {
    for_each_seed(5, |seed| {
        let (seen, client_connected, _) = grease_run(seed, true, true);
        let cleared = |from_client: bool| {
            seen.iter()
                .filter(|s| s.from_client == from_client && greased(s))
                .count()
        };
        let total =
            |from_client: bool| seen.iter().filter(|s| s.from_client == from_client).count();
        for side in [true, false] {
            let (c, t) = (cleared(side), total(side));
            assert!(c > 0 && c * 3 < t, "client {side}: {c} of {t} cleared");
        }
        assert!(!greased(&seen[0]), "first Initial greased");
        assert!(
            seen.iter()
                .filter(|s| s.from_client && s.time < client_connected)
                .all(|s| !greased(s)),
            "client cleared the bit before the server's parameters"
        );
    });
}

/// RFC 9287 §3.1: "An endpoint MUST NOT set the QUIC Bit to 0 without
/// knowing whether the peer supports the extension": a peer that does not
/// advertise grease_quic_bit never sees it cleared, while it may clear it
/// on its own packets towards one that does.
#[test]
fn quic_bit_kept_towards_peers_not_advertising_grease() {
    let (seen, _, _) = grease_run(Seed::from_env_or(6), false, true);
    assert!(seen.iter().filter(|s| !s.from_client).all(|s| !greased(s)));
    assert!(seen.iter().any(|s| s.from_client && greased(s)));

    let (seen, _, _) = grease_run(Seed::from_env_or(7), true, false);
    assert!(seen.iter().filter(|s| s.from_client).all(|s| !greased(s)));
    assert!(seen.iter().any(|s| !s.from_client && greased(s)));
}
