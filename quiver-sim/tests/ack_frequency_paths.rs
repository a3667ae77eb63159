//! draft-ietf-quic-ack-frequency-12 around path changes and idle periods:
//! §8.4, an IMMEDIATE_ACK with the client's first non-probing packet after
//! it migrates and a new ACK_FREQUENCY (the RFC 9000 defaults until the
//! new path's RTT is known), and §6.1, an ACK soon after the first
//! ack-eliciting packet that follows more than an RTT without ACKs.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use quiver_proto::frame::{AckFrequency, Frame, Iter};
use quiver_proto::{TransportConfig, VarInt};
use quiver_sim::quic::{AppConfig, Pair, SERVER_ADDR, SendPlan};
use quiver_sim::{LinkConfig, for_each_seed, loopback};

const MB: u64 = 1_000_000;
/// `send_raw_frames_for_test`'s number for the application data space.
const ONE_RTT: u8 = 2;
/// The RFC 9000 §18.2 default max_ack_delay, which both sides advertise.
const DEFAULT_MAX_ACK_DELAY: Duration = Duration::from_millis(25);

/// A 50 Mbit/s path with a 20 ms RTT and a 256 KB bottleneck queue: a
/// window large enough for the sender to ask for fewer ACKs.
fn fast_link() -> LinkConfig {
    LinkConfig {
        bandwidth: Some(50_000_000 / 8),
        queue_limit: Some(256 * 1024),
        ..LinkConfig::default()
    }
}

/// The ACK_FREQUENCY frames a connection sent, with when.
fn sent_ack_frequencies(
    log: &[quiver_proto::connection::LoggedPacket],
) -> Vec<(Instant, AckFrequency)> {
    let mut out = Vec::new();
    for p in log {
        for f in Iter::new(&p.payload).flatten() {
            if let Frame::AckFrequency(a) = f {
                out.push((p.time, a));
            }
        }
    }
    out
}

// draft §8.4: "an endpoint that has sent an ACK_FREQUENCY frame earlier in
// the connection ought to send a new ACK_FREQUENCY frame upon confirmation
// of connection migration with updated information". A client uploading
// fast has asked the server for fewer ACKs; when it migrates (its
// controller and RTT estimator start over, RFC 9000 §9.4) its next
// ACK_FREQUENCY asks at once for the defaults (threshold 1, the server's
// own max_ack_delay), and it asks for fewer ACKs again only after the new
// path gave an RTT sample (a round trip, 20 ms, at least).
#[test]
fn migration_resets_the_ack_frequency_until_the_new_path_has_an_rtt() {
    for_each_seed(5, |seed| {
        let len = 40 * MB;
        let mut pair = Pair::new(seed, fast_link());
        pair.client_app(AppConfig {
            send: vec![SendPlan::uni(len)],
            ..AppConfig::default()
        });
        let receiver = pair.server_app(AppConfig::default());
        let (client, _) = pair.connect_and_wait(Duration::from_secs(10));
        pair.client_conn(client).enable_sent_log_for_test();
        pair.net.run_for(Duration::from_millis(1500));
        let before = sent_ack_frequencies(pair.client_conn(client).sent_log_for_test());
        assert!(
            before
                .iter()
                .any(|(_, f)| f.ack_eliciting_threshold.into_inner() > 1),
            "{seed}: no request for fewer ACKs before the migration: {before:?}"
        );

        pair.net.rebind(pair.client, loopback(9, 7000));
        let migrated_at = pair.net.now();
        pair.client_conn(client)
            .migrate(migrated_at)
            .expect("migrate");
        pair.poke_client();
        let done = pair.run_until(Duration::from_secs(60), |_| {
            receiver.borrow().streams_finished() == 1
        });
        assert!(done, "{seed}: upload incomplete");
        receiver.borrow().assert_intact();

        let after: Vec<_> = sent_ack_frequencies(pair.client_conn(client).sent_log_for_test())
            .into_iter()
            .filter(|(t, _)| *t >= migrated_at)
            .collect();
        let (first_at, first) = after.first().expect("no ACK_FREQUENCY after migrating");
        assert!(
            *first_at - migrated_at < Duration::from_millis(5),
            "{seed}: the reset went out {:?} after migrating",
            *first_at - migrated_at
        );
        assert_eq!(first.ack_eliciting_threshold.into_inner(), 1, "{seed}");
        // §8.4: "a client can bundle an IMMEDIATE_ACK frame with the first
        // non-probing frame (Section 9.2 of [QUIC-TRANSPORT]) it sends".
        let log = pair.client_conn(client).sent_log_for_test();
        let first_non_probing = log
            .iter()
            .filter(|p| p.time >= migrated_at)
            .find(|p| {
                Iter::new(&p.payload).flatten().any(|f| {
                    !matches!(
                        f,
                        Frame::PathChallenge(_)
                            | Frame::PathResponse(_)
                            | Frame::NewConnectionId(_)
                            | Frame::Padding(_)
                    )
                })
            })
            .expect("a non-probing packet after migrating");
        assert!(
            Iter::new(&first_non_probing.payload)
                .flatten()
                .any(|f| matches!(f, Frame::ImmediateAck)),
            "{seed}: no IMMEDIATE_ACK in the first non-probing packet after migrating"
        );
        assert_eq!(
            first.request_max_ack_delay.into_inner(),
            DEFAULT_MAX_ACK_DELAY.as_micros() as u64,
            "{seed}"
        );
        for (t, f) in &after {
            if f.ack_eliciting_threshold.into_inner() > 1 {
                assert!(
                    *t - migrated_at >= Duration::from_millis(20),
                    "{seed}: asked for fewer ACKs {:?} after migrating, before an RTT sample",
                    *t - migrated_at
                );
            }
        }
        // And it did ask again on the new path, which is as fast.
        assert!(
            after
                .iter()
                .any(|(_, f)| f.ack_eliciting_threshold.into_inner() > 1),
            "{seed}: never asked for fewer ACKs on the new path: {after:?}"
        );
    });
}

// draft §6.1: "When no acknowledgment has been sent in over one smoothed
// round trip time, receivers are encouraged to send an acknowledgment soon
// after receiving an ack-eliciting packet." The client asks the server to
// wait for 100 ack-eliciting packets or 500 ms; after seconds of silence
// one PING gets its ACK within a round trip, not 500 ms later.
#[test]
fn first_packet_after_idle_is_acknowledged_at_once() {
    for_each_seed(5, |seed| {
        let mut pair = Pair::with_configs(
            seed,
            LinkConfig::default(),
            TransportConfig {
                // Only the raw frame below asks for anything.
                ack_frequency: false,
                ..TransportConfig::default()
            },
            // The server's max_ack_delay covers the delay asked below, so
            // the client's PTO (which includes it, RFC 9002 §6.2.1) does
            // not fire probes while the server waits as asked: the
            // connection then goes idle.
            TransportConfig {
                max_ack_delay: Duration::from_millis(600),
                ..TransportConfig::default()
            },
        );
        let (client, _) = pair.connect_and_wait(Duration::from_secs(10));
        let v = |x| VarInt::from_u64(x).unwrap();
        let request = Frame::AckFrequency(AckFrequency {
            sequence: v(0),
            ack_eliciting_threshold: v(100),
            request_max_ack_delay: v(500_000),
            reordering_threshold: v(0),
        });
        let mut frames = Vec::new();
        request.encode(&mut frames);
        pair.client_conn(client)
            .send_raw_frames_for_test(ONE_RTT, frames);
        pair.poke_client();
        // The request itself waits up to 500 ms for its ACK.
        pair.net.run_for(Duration::from_secs(2));

        let from_server: Rc<RefCell<Vec<Instant>>> = Rc::default();
        let log = from_server.clone();
        pair.net.set_tap(move |d| {
            if d.src == SERVER_ADDR {
                log.borrow_mut().push(d.time);
            }
        });
        let ping_at = pair.net.now();
        pair.client_conn(client)
            .send_raw_frames_for_test(ONE_RTT, vec![0x01]);
        pair.poke_client();
        pair.net.run_for(Duration::from_millis(300));
        let answered = from_server.borrow().first().copied();
        let answered = answered.unwrap_or_else(|| panic!("{seed}: no ACK within 300 ms"));
        // 10 ms to the server, which answers at once.
        assert!(
            answered - ping_at <= Duration::from_millis(15),
            "{seed}: acknowledged {:?} after the PING",
            answered - ping_at
        );
    });
}
