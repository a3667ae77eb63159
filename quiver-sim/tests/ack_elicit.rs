//! A sender facing a peer that delays its ACKs and does not take
//! ACK_FREQUENCY skips a packet number when an ACK frees a small full
//! window, so the peer acknowledges the next flight at once (RFC 9000
//! §13.2.1, RFC 9002 §6.2.4; `connection/ack_elicit.rs`); an ACK of a
//! skipped number is a PROTOCOL_VIOLATION (RFC 9000 §21.4).

use std::time::Duration;

use quiver_proto::frame::encode_ack;
use quiver_proto::{ConnectionError, ConnectionStats, TransportConfig, TransportErrorCode, VarInt};
use quiver_sim::quic::{AppConfig, Pair, SendPlan};
use quiver_sim::{LinkConfig, Seed, for_each_seed};

const MB: u64 = 1_000_000;
/// `send_raw_frames_for_test`'s number for the application data space.
const ONE_RTT: u8 = 2;

/// impaired.sh's transferloss path: 5 ms each way, 20 Mbit/s with a
/// 25-datagram queue, 5% random loss.
fn lossy_link() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(5),
        bandwidth: Some(20_000_000 / 8),
        queue_limit: Some(25 * 1500),
        loss_rate: 0.05,
        ..LinkConfig::default()
    }
}

/// A receiver that takes no ACK_FREQUENCY (no `min_ack_delay`).
fn plain_receiver() -> TransportConfig {
    TransportConfig {
        min_ack_delay: None,
        ..TransportConfig::default()
    }
}

/// The client uploads `len` bytes to a server that acknowledges every
/// `threshold + 1`th ack-eliciting packet (or after its 25 ms
/// max_ack_delay) as s2n-quic does; returns the virtual time after the
/// handshake and the client's stats.
fn upload_to_a_late_acker(
    seed: Seed,
    client: TransportConfig,
    server: TransportConfig,
    threshold: u64,
    len: u64,
) -> (Duration, ConnectionStats) {
    let mut pair = Pair::with_configs(seed, lossy_link(), client, server);
    let _sender = pair.client_app(AppConfig {
        send: vec![SendPlan::uni(len)],
        ..AppConfig::default()
    });
    let receiver = pair.server_app(AppConfig::default());
    let (client, _) = pair.connect_and_wait(Duration::from_secs(25));
    pair.server_conn().delay_acks_for_test(threshold);
    let start = pair.net.now();
    let done = pair.run_until(Duration::from_secs(300), |_| {
        receiver.borrow().streams_finished() == 1
    });
    assert!(done, "upload of {len} bytes did not finish ({seed:?})");
    receiver.borrow().assert_intact();
    (pair.net.now() - start, pair.client_conn(client).stats())
}

#[test]
fn skipping_a_number_per_flight_speeds_up_a_lossy_upload_to_a_late_acker() {
    for_each_seed(4, |seed| {
        let (t_on, on) =
            upload_to_a_late_acker(seed, TransportConfig::default(), plain_receiver(), 9, MB);
        let off_config = TransportConfig {
            elicit_acks: false,
            ..TransportConfig::default()
        };
        let (t_off, off) = upload_to_a_late_acker(seed, off_config, plain_receiver(), 9, MB);
        eprintln!(
            "{seed:?}: {t_on:?} with {} numbers skipped, {t_off:?} without",
            on.packet_numbers_skipped
        );
        assert!(on.packet_numbers_skipped > 0);
        assert_eq!(off.packet_numbers_skipped, 0);
        // Measured against s2n-quic's client on the same path: 4.6-5.5 s
        // for 1 MB without, 3.0-3.6 s with. Here: at least 15% faster.
        assert!(
            t_on * 100 <= t_off * 85,
            "{seed:?}: {t_on:?} with skips, {t_off:?} without"
        );
    });
}

#[test]
fn a_peer_that_takes_ack_frequency_is_not_sent_gaps() {
    for_each_seed(2, |seed| {
        // The server advertises min_ack_delay: the client asks it for
        // prompt ACKs with ACK_FREQUENCY and IMMEDIATE_ACK instead.
        let (_, stats) = upload_to_a_late_acker(
            seed,
            TransportConfig::default(),
            TransportConfig::default(),
            1,
            MB / 4,
        );
        assert_eq!(stats.packet_numbers_skipped, 0, "{seed:?}");
    });
}

#[test]
fn an_ack_of_a_skipped_number_is_a_protocol_violation() {
    let seed = Seed(7);
    let mut pair = Pair::with_configs(
        seed,
        lossy_link(),
        TransportConfig::default(),
        plain_receiver(),
    );
    let _sender = pair.client_app(AppConfig {
        send: vec![SendPlan::uni(4 * MB)],
        ..AppConfig::default()
    });
    let _receiver = pair.server_app(AppConfig::default());
    let (client, _) = pair.connect_and_wait(Duration::from_secs(25));
    pair.server_conn().delay_acks_for_test(9);
    pair.client_conn(client).enable_sent_log_for_test();
    let skipped = pair.run_until(Duration::from_secs(60), |p| {
        p.client_conn(client).stats().packet_numbers_skipped >= 3
    });
    assert!(skipped, "no packet number skipped");
    // The gap in what the client sent is the skipped number.
    let mut pns: Vec<u64> = pair
        .client_conn(client)
        .sent_log_for_test()
        .iter()
        .filter(|p| p.ty == quiver_proto::packet::PacketType::OneRtt)
        .map(|p| p.pn)
        .collect();
    pns.sort_unstable();
    eprintln!("{} 1-RTT packets logged, up to {:?}", pns.len(), pns.last());
    let gap = pns
        .windows(2)
        .find(|w| w[1] > w[0] + 1)
        .map(|w| w[0] + 1)
        .expect("a gap in the numbers sent");
    // An optimistic ACK: the server claims the skipped number.
    let mut frame = Vec::new();
    encode_ack([gap..=gap], VarInt::from_u32(0), None, &mut frame);
    pair.server_conn().send_raw_frames_for_test(ONE_RTT, frame);
    pair.run_until(Duration::from_secs(5), |p| {
        p.client_conn(client).close_reason().is_some()
    });
    match pair.client_conn(client).close_reason().cloned() {
        Some(ConnectionError::TransportError(e)) => {
            assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION, "{e:?}");
            assert_eq!(e.frame_type, Some(0x02));
        }
        other => panic!("closed with {other:?}"),
    }
}
