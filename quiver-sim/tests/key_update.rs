//! 1-RTT key updates (RFC 9001 §6): started on request and before the
//! confidentiality limit, by either side or both at once, under loss and
//! reordering; and the integrity limit on forged packets (§6.6).

use std::time::Duration;

use quiver_proto::{ConnectionError, TransportConfig, TransportErrorCode};
use quiver_sim::quic::{AppConfig, CLIENT_ADDR, Pair, SERVER_ADDR, SendPlan, SharedApp};
use quiver_sim::{LinkConfig, Seed, for_each_seed};

const MB: u64 = 1_000_000;

fn link() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(10),
        bandwidth: Some(2_500_000),
        ..LinkConfig::default()
    }
}

/// Both directions: `len` bytes each way; returns both apps.
fn both_ways(pair: &mut Pair, len: u64) -> (SharedApp, SharedApp) {
    let plan = AppConfig {
        send: vec![SendPlan::uni(len)],
        ..AppConfig::default()
    };
    let c = pair.client_app(plan.clone());
    let s = pair.server_app(plan);
    (c, s)
}

fn finish(pair: &mut Pair, c: &SharedApp, s: &SharedApp, len: u64, limit: Duration) {
    let done = pair.run_until(limit, |_| {
        c.borrow().streams_finished() == 1 && s.borrow().streams_finished() == 1
    });
    assert!(
        done,
        "incomplete: client read {}, server read {} of {len}; client {:?}",
        c.borrow().bytes_received(),
        s.borrow().bytes_received(),
        c.borrow().lost
    );
    c.borrow().assert_intact();
    s.borrow().assert_intact();
    assert!(c.borrow().lost.is_none() && s.borrow().lost.is_none());
}

/// `Connection::force_key_update` after confirmation: both sides move to
/// phase 1 and the transfer carries on.
#[test]
fn a_forced_key_update_is_answered_and_data_flows_on() {
    for_each_seed(5, |seed| {
        let mut pair = Pair::new(seed, link());
        let (c, s) = both_ways(&mut pair, MB);
        let (client, _) = pair.connect_and_wait(Duration::from_secs(10));
        assert_eq!(pair.client_conn(client).key_phase(), Some(false));
        pair.client_conn(client).force_key_update();
        pair.poke_client();
        finish(&mut pair, &c, &s, MB, Duration::from_secs(30));
        assert_eq!(pair.client_conn(client).key_phase(), Some(true));
        assert_eq!(pair.server_conn().key_phase(), Some(true));
        assert_eq!(pair.client_conn(client).stats().key_updates, 1);
        assert_eq!(pair.server_conn().stats().key_updates, 1);
    });
}

/// RFC 9001 §6.1: "An endpoint MUST NOT initiate a key update prior to
/// having confirmed the handshake": a request made earlier waits.
#[test]
fn no_key_update_before_confirmation() {
    let mut pair = Pair::new(Seed::from_env_or(1), link());
    let client = pair.connect();
    pair.client_conn(client).force_key_update();
    // Run until the client has 1-RTT keys but is not yet confirmed.
    let ok = pair.run_until(Duration::from_secs(5), |p| {
        p.client_conn(client).is_handshake_complete()
    });
    assert!(ok);
    assert!(!pair.client_conn(client).is_handshake_confirmed());
    assert_eq!(pair.client_conn(client).key_phase(), Some(false));
    pair.run_until(Duration::from_secs(5), |p| {
        p.client_conn(client).is_handshake_confirmed()
    });
    pair.net.run_for(Duration::from_millis(200));
    assert_eq!(pair.client_conn(client).key_phase(), Some(true));
}

/// RFC 9001 §6.6 with a low interval: the sender updates over and over
/// (each only once the previous phase is acknowledged, §6.1, and three
/// PTOs after that, §6.5), both sides at once, over loss and reordering.
#[test]
fn repeated_updates_from_both_sides_under_loss_and_reordering() {
    for_each_seed(5, |seed| {
        let frequent = TransportConfig {
            key_update_interval: Some(200),
            ..TransportConfig::default()
        };
        let lossy = LinkConfig {
            loss_rate: 0.03,
            reorder_rate: 0.05,
            reorder_delay: Duration::from_millis(15),
            ..link()
        };
        let mut pair = Pair::with_configs(seed, lossy, frequent.clone(), frequent);
        let (c, s) = both_ways(&mut pair, 2 * MB);
        let (client, _) = pair.connect_and_wait(Duration::from_secs(10));
        finish(&mut pair, &c, &s, 2 * MB, Duration::from_secs(120));
        let cu = pair.client_conn(client).stats().key_updates;
        let su = pair.server_conn().stats().key_updates;
        assert!(cu >= 3 && su >= 3, "client {cu} server {su} updates");
    });
}

/// Both sides force an update in the same round trip: each moves to the
/// same next generation, and neither sees a KEY_UPDATE_ERROR.
#[test]
fn simultaneous_updates_from_both_sides() {
    for_each_seed(10, |seed| {
        let mut pair = Pair::new(seed, link());
        let (c, s) = both_ways(&mut pair, MB);
        let (client, _) = pair.connect_and_wait(Duration::from_secs(10));
        pair.net.run_for(Duration::from_millis(100));
        pair.client_conn(client).force_key_update();
        pair.server_conn().force_key_update();
        pair.poke_client();
        pair.poke_server();
        finish(&mut pair, &c, &s, MB, Duration::from_secs(30));
        assert_eq!(pair.client_conn(client).key_phase(), Some(true));
        assert_eq!(pair.server_conn().key_phase(), Some(true));
    });
}

/// RFC 9001 §6.6: more forged 1-RTT packets than the integrity limit
/// close the connection with AEAD_LIMIT_REACHED.
#[test]
fn the_integrity_limit_closes_with_aead_limit_reached() {
    let strict = TransportConfig {
        aead_integrity_limit: Some(10),
        ..TransportConfig::default()
    };
    let mut pair = Pair::with_configs(
        Seed::from_env_or(1),
        link(),
        TransportConfig::default(),
        strict,
    );
    let c = pair.client_app(AppConfig::default());
    pair.connect_and_wait(Duration::from_secs(10));
    // A genuine short-header datagram of the client, as a template.
    let template: std::rc::Rc<std::cell::RefCell<Option<Vec<u8>>>> = Default::default();
    let sink = template.clone();
    pair.net.set_tap(move |d| {
        if d.src == CLIENT_ADDR && d.data[0] & 0x80 == 0 && sink.borrow().is_none() {
            *sink.borrow_mut() = Some(d.data.to_vec());
        }
    });
    pair.server_conn()
        .send_datagram(bytes::Bytes::from_static(b"x"))
        .unwrap();
    pair.poke_server();
    pair.net.run_for(Duration::from_millis(100));
    pair.net.clear_tap();
    let template = template.borrow().clone().expect("a 1-RTT datagram");
    for i in 0..11u8 {
        let mut forged = template.clone();
        let last = forged.len() - 1;
        forged[last] ^= i + 1; // the tag no longer matches
        pair.net.inject(CLIENT_ADDR, SERVER_ADDR, forged);
    }
    pair.net.run_for(Duration::from_millis(100));
    let reason = pair.server_conn().close_reason().cloned();
    assert!(
        matches!(&reason, Some(ConnectionError::TransportError(e)) if e.code == TransportErrorCode::AEAD_LIMIT_REACHED),
        "{reason:?}"
    );
    // The client learns why.
    pair.net.run_for(Duration::from_millis(100));
    let lost = c.borrow().lost.clone().map(|(_, e)| e);
    assert!(
        matches!(&lost, Some(ConnectionError::ConnectionClosed { code, .. }) if *code == TransportErrorCode::AEAD_LIMIT_REACHED),
        "{lost:?}"
    );
}
