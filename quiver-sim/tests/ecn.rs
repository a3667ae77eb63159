//! ECN (RFC 9000 §13.4, RFC 9002 §7.1): packets are marked ECT(0), the
//! peer's counts come back in ACK frames and are validated, CE marks are a
//! congestion signal, and paths that bleach or mangle marks turn marking
//! off.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::VarInt;
use quiver_sim::quic::{AppConfig, CLIENT_ADDR, Pair, SERVER_ADDR, SendPlan, SharedApp};
use quiver_sim::{LinkConfig, Seed, for_each_seed};

const MB: u64 = 1_000_000;

/// A download of `len` bytes; runs until it completes and returns the
/// client's app.
fn download(pair: &mut Pair, len: u64) -> SharedApp {
    pair.server_app(AppConfig {
        send: vec![SendPlan::uni(len)],
        ..AppConfig::default()
    });
    let r = pair.client_app(AppConfig::default());
    pair.connect_and_wait(Duration::from_secs(10));
    let done = pair.run_until(Duration::from_secs(60), |_| {
        r.borrow().streams_finished() == 1
    });
    assert!(done, "download incomplete: {}", r.borrow().bytes_received());
    r.borrow().assert_intact();
    r
}

fn link() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(10),
        bandwidth: Some(2_500_000),
        ..LinkConfig::default()
    }
}

/// On a clean path both sides mark every packet after validation, and
/// neither sees a CE or fails validation.
#[test]
fn packets_are_marked_and_validation_passes_on_a_clean_path() {
    for_each_seed(5, |seed| {
        let mut pair = Pair::new(seed, link());
        download(&mut pair, MB);
        let server = pair.server_conn().stats();
        assert!(!server.ecn_failed, "{server:?}");
        // Nearly every packet is marked: all but those sent between the
        // testing period and the first validating ACK.
        assert!(
            server.ecn_marked_sent * 10 >= server.packets_sent * 9,
            "{} of {} marked",
            server.ecn_marked_sent,
            server.packets_sent
        );
        assert_eq!(server.ecn_ce_events, 0);
    });
}

/// RFC 9002 §7.1: CE marks are congestion: the sender backs off (CE
/// events, a smaller window than on the unmarked path) without losing
/// anything, and the download completes.
#[test]
fn ce_marks_are_a_congestion_signal() {
    for_each_seed(5, |seed| {
        let marking = LinkConfig {
            ce_rate: 0.02,
            ..link()
        };
        let mut pair = Pair::new(seed, marking);
        download(&mut pair, 2 * MB);
        let server = pair.server_conn().stats();
        assert!(!server.ecn_failed, "{server:?}");
        assert!(server.ecn_ce_events > 0, "{server:?}");
        let client = pair.client_conn(quiver_proto::ConnectionHandle(0)).stats();
        assert!(client.ecn_ce_received > 0, "{client:?}");
    });
}

/// Appendix A.4's "all ECN-CE marked" failure judges all the testing
/// packets, not the first ACK's: on a path that marks a fifth of the
/// packets CE, the first one or two acknowledged are sometimes both CE,
/// and validation used to fail there (BBR's CE test at seed 19 saw it:
/// ten packets marked, then none).
#[test]
fn heavy_random_ce_marking_passes_validation() {
    for_each_seed(40, |seed| {
        let marking = LinkConfig {
            ce_rate: 0.3,
            ..link()
        };
        let mut pair = Pair::new(seed, marking);
        download(&mut pair, MB / 4);
        let server = pair.server_conn().stats();
        assert!(!server.ecn_failed, "{seed}: {server:?}");
        assert!(server.ecn_ce_events > 0, "{seed}: {server:?}");
    });
}

/// RFC 9000 §13.4.2.1: a middlebox that clears the ECN field makes the
/// peer report no counts: validation fails and marking stops.
#[test]
fn a_bleaching_path_fails_validation() {
    for_each_seed(5, |seed| {
        let bleach = LinkConfig {
            ecn_bleach: true,
            ..link()
        };
        let mut pair = Pair::new(seed, bleach);
        download(&mut pair, MB);
        let server = pair.server_conn().stats();
        assert!(server.ecn_failed, "{server:?}");
        assert!(server.ecn_marked_sent <= 20, "{server:?}");
    });
}

/// Appendix A.4: a middlebox that sets CE on everything fails validation
/// rather than halving the window every round trip.
#[test]
fn a_path_marking_everything_ce_fails_validation() {
    for_each_seed(5, |seed| {
        let all_ce = LinkConfig {
            ce_rate: 1.0,
            ..link()
        };
        let mut pair = Pair::new(seed, all_ce);
        download(&mut pair, MB);
        let server = pair.server_conn().stats();
        assert!(server.ecn_failed, "{server:?}");
        assert_eq!(server.ecn_ce_events, 0, "{server:?}");
    });
}

/// With ECN off in the configuration nothing is marked, but received
/// marks are still reported (RFC 9000 §13.4.1: "Even if an endpoint does
/// not set an ECT field in packets it sends, the endpoint MUST provide
/// feedback").
#[test]
fn ecn_off_marks_nothing_yet_reports() {
    let off = quiver_proto::TransportConfig {
        ecn: false,
        ..Default::default()
    };
    let mut pair = Pair::with_configs(
        Seed::from_env_or(1),
        link(),
        off,
        quiver_proto::TransportConfig::default(),
    );
    download(&mut pair, MB);
    let client = pair.client_conn(quiver_proto::ConnectionHandle(0)).stats();
    assert_eq!(client.ecn_marked_sent, 0);
    let server = pair.server_conn().stats();
    assert!(!server.ecn_failed, "the client reported: {server:?}");
}

/// RFC 9000 §13.4.1: on a path whose ECN validation passed, the close
/// leaves marked ECT(0) like the rest of the path's traffic (an observer
/// such as the interop runner's ECN check or an impairing relay sees every
/// 1-RTT datagram marked), whichever side closes.
#[test]
fn the_close_is_marked_on_a_capable_path() {
    for_each_seed(5, |seed| {
        for client_closes in [true, false] {
            let mut pair = Pair::new(seed, link());
            download(&mut pair, MB / 4);
            let (closer, closer_addr) = if client_closes {
                (pair.client().endpoint.connection_handles()[0], CLIENT_ADDR)
            } else {
                (pair.server().endpoint.connection_handles()[0], SERVER_ADDR)
            };
            let close_at = pair.net.now();
            let marks: Rc<RefCell<Vec<u8>>> = Rc::default();
            {
                let marks = marks.clone();
                pair.net.set_tap(move |d| {
                    if d.src == closer_addr && d.time >= close_at {
                        marks.borrow_mut().push(d.ecn);
                    }
                });
            }
            let node = if client_closes {
                pair.client()
            } else {
                pair.server()
            };
            assert!(!node.conn(closer).stats().ecn_failed);
            node.conn(closer)
                .close(close_at, VarInt::from_u32(0x2a), Bytes::from_static(b"bye"));
            if client_closes {
                pair.poke_client();
            } else {
                pair.poke_server();
            }
            pair.net.run_for(Duration::from_millis(50));
            let marks = marks.borrow();
            assert!(!marks.is_empty(), "no close sent");
            // 0b10: ECT(0).
            assert!(
                marks.iter().all(|&ecn| ecn == 0b10),
                "client closes: {client_closes}, codepoints {marks:?}"
            );
        }
    });
}
