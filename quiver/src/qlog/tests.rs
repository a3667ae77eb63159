//! The JSON-SEQ writer: every record parses, strings from the network are
//! escaped, metrics carry only what changed.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quiver_proto::packet::PacketType;
use quiver_proto::qlog::{
    CloseCode, ConnectionState, DropTrigger, Owner, PacketInfo, QlogConnectionInfo, QlogEvent,
    QlogSink, RecoveryMetrics,
};
use quiver_proto::transport_params::TransportParameters;
use quiver_proto::{ConnectionError, ConnectionId, Side, VarInt, Version};
use serde_json::Value;

use super::{QlogDir, QlogWriter};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn info(start: Instant) -> QlogConnectionInfo {
    QlogConnectionInfo {
        side: Side::Server,
        orig_dst_cid: ConnectionId::new(&[0xab, 0x01, 0xff]).unwrap(),
        start,
        version: Version::V1,
    }
}

/// RFC 7464: RS, a JSON text, LF.
fn parse(bytes: &[u8]) -> Vec<Value> {
    assert_eq!(bytes[0], 0x1e);
    bytes
        .split(|&b| b == 0x1e)
        .skip(1)
        .map(|r| {
            assert_eq!(r.last(), Some(&b'\n'));
            serde_json::from_slice(r).unwrap_or_else(|e| panic!("{e}: {r:?}"))
        })
        .collect()
}

#[test]
fn records_parse_and_network_strings_are_escaped() {
    let start = crate::shared::now();
    let out = Shared::default();
    let mut w = QlogWriter::new(out.clone(), &info(start));
    // PING, three PADDING, and an application CONNECTION_CLOSE (0x1d,
    // code 7) whose reason holds a quote, a backslash, a newline, a
    // control byte and invalid UTF-8.
    let reason = b"a\"b\\c\nd\x01e\xff";
    let mut payload = vec![0x01, 0, 0, 0, 0x1d, 7, reason.len() as u8];
    payload.extend_from_slice(reason);
    let later = start + Duration::from_micros(1500);
    w.event(
        later,
        &QlogEvent::PacketSent(PacketInfo {
            packet_type: PacketType::OneRtt,
            packet_number: 42,
            length: 60,
            payload: &payload,
        }),
    );
    let params = TransportParameters::default();
    w.event(
        later,
        &QlogEvent::ParametersSet {
            owner: Owner::Remote,
            params: &params,
        },
    );
    let error = ConnectionError::ApplicationClosed {
        code: VarInt::from_u32(7),
        reason: bytes::Bytes::from_static(reason),
    };
    w.event(
        later,
        &QlogEvent::ConnectionClosed {
            owner: Owner::Remote,
            error: &error,
            code: Some(CloseCode::Application(7)),
            reason,
        },
    );
    w.event(
        later,
        &QlogEvent::ConnectionStateUpdated {
            old: Some(ConnectionState::Draining),
            new: ConnectionState::Closed,
        },
    );
    // A truncated frame is reported as unknown, not trusted.
    w.event(
        later,
        &QlogEvent::PacketReceived(PacketInfo {
            packet_type: PacketType::Handshake,
            packet_number: 1,
            length: 30,
            payload: &[0x06, 0x00, 0x40],
        }),
    );
    drop(w);
    let recs = parse(&out.0.lock().unwrap());
    assert_eq!(recs.len(), 6);
    assert_eq!(recs[0]["qlog_version"], "0.3");
    assert_eq!(recs[0]["qlog_format"], "JSON-SEQ");
    assert_eq!(recs[0]["trace"]["vantage_point"]["type"], "server");
    assert_eq!(recs[0]["trace"]["common_fields"]["ODCID"], "ab01ff");
    let sent = &recs[1];
    assert_eq!(sent["name"], "transport:packet_sent");
    assert_eq!(sent["time"], 1.5);
    assert_eq!(sent["data"]["header"]["packet_type"], "1RTT");
    assert_eq!(sent["data"]["header"]["packet_number"], 42);
    let frames = sent["data"]["frames"].as_array().unwrap();
    assert_eq!(frames[0]["frame_type"], "ping");
    assert_eq!(frames[1]["frame_type"], "padding");
    assert_eq!(frames[1]["length"], 3);
    assert_eq!(frames[2]["error_space"], "application");
    assert_eq!(frames[2]["reason"], "a\"b\\c\nd\u{1}e\u{fffd}");
    assert_eq!(recs[2]["data"]["owner"], "remote");
    assert_eq!(recs[2]["data"]["max_udp_payload_size"], 65527);
    assert_eq!(recs[3]["name"], "connectivity:connection_closed");
    assert_eq!(recs[3]["data"]["application_code"], 7);
    assert_eq!(recs[3]["data"]["reason"], "a\"b\\c\nd\u{1}e\u{fffd}");
    assert_eq!(recs[4]["data"]["old"], "draining");
    assert_eq!(recs[4]["data"]["new"], "closed");
    assert_eq!(recs[5]["data"]["frames"][0]["frame_type"], "unknown");
}

#[test]
fn metrics_updates_carry_only_changed_fields() {
    let start = crate::shared::now();
    let out = Shared::default();
    let mut w = QlogWriter::new(out.clone(), &info(start));
    let mut m = RecoveryMetrics {
        smoothed_rtt: Duration::from_millis(333),
        congestion_window: 12_000,
        pacing_rate: Some(360_000),
        ..RecoveryMetrics::default()
    };
    w.event(start, &QlogEvent::MetricsUpdated(&m));
    m.bytes_in_flight = 1200;
    w.event(start, &QlogEvent::MetricsUpdated(&m));
    drop(w);
    let recs = parse(&out.0.lock().unwrap());
    let first = recs[1]["data"].as_object().unwrap();
    // No RTT sample yet: the initial RTT is not written (qvis would plot it).
    assert_eq!(first.len(), 4, "{first:?}");
    assert!(first.get("smoothed_rtt").is_none(), "{first:?}");
    let second = recs[2]["data"].as_object().unwrap();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second["bytes_in_flight"], 1200);
}

#[test]
fn metrics_rtt_fields_start_with_the_first_sample() {
    let start = crate::shared::now();
    let out = Shared::default();
    let mut w = QlogWriter::new(out.clone(), &info(start));
    let mut m = RecoveryMetrics {
        smoothed_rtt: Duration::from_millis(333),
        congestion_window: 12_000,
        ..RecoveryMetrics::default()
    };
    w.event(start, &QlogEvent::MetricsUpdated(&m));
    // A first sample equal to the initial RTT still writes smoothed_rtt.
    m.min_rtt = Duration::from_millis(333);
    m.latest_rtt = Duration::from_millis(333);
    m.rtt_variance = Duration::from_micros(166_500);
    w.event(start, &QlogEvent::MetricsUpdated(&m));
    drop(w);
    let recs = parse(&out.0.lock().unwrap());
    let second = recs[2]["data"].as_object().unwrap();
    assert_eq!(second.len(), 4, "{second:?}");
    assert_eq!(second["smoothed_rtt"], 333.0);
    assert_eq!(second["latest_rtt"], 333.0);
}

#[test]
fn file_name_is_odcid_and_role() {
    let i = info(crate::shared::now());
    assert_eq!(QlogDir::file_name(&i), "ab01ff_server.sqlog");
}

#[test]
fn packet_dropped_names_type_and_trigger() {
    let start = crate::shared::now();
    let out = Shared::default();
    let mut w = QlogWriter::new(out.clone(), &info(start));
    w.event(
        start,
        &QlogEvent::PacketDropped {
            packet_type: Some(PacketType::Handshake),
            length: 77,
            trigger: DropTrigger::DecryptionFailure,
        },
    );
    w.event(
        start,
        &QlogEvent::PacketDropped {
            packet_type: None,
            length: 5,
            trigger: DropTrigger::HeaderParseError,
        },
    );
    drop(w);
    let recs = parse(&out.0.lock().unwrap());
    assert_eq!(recs[1]["name"], "transport:packet_dropped");
    assert_eq!(recs[1]["data"]["header"]["packet_type"], "handshake");
    assert_eq!(recs[1]["data"]["raw"]["length"], 77);
    assert_eq!(recs[1]["data"]["trigger"], "payload_decrypt_error");
    assert!(recs[2]["data"].get("header").is_none());
    assert_eq!(recs[2]["data"]["trigger"], "header_parse_error");
}

#[test]
fn a_capped_file_keeps_only_the_end_past_its_cap() {
    let start = crate::shared::now();
    let out = Shared::default();
    let mut w = QlogWriter::new(out.clone(), &info(start));
    w.limit = 600;
    for pn in 0..100 {
        w.event(
            start,
            &QlogEvent::PacketSent(PacketInfo {
                packet_type: PacketType::OneRtt,
                packet_number: pn,
                length: 1200,
                payload: &[0x01],
            }),
        );
    }
    w.event(
        start,
        &QlogEvent::ConnectionStateUpdated {
            old: Some(ConnectionState::Draining),
            new: ConnectionState::Closed,
        },
    );
    drop(w);
    let bytes = out.0.lock().unwrap().clone();
    assert!(bytes.len() < 1200, "{} bytes", bytes.len());
    let recs = parse(&bytes);
    assert!(recs.len() < 10, "{} records", recs.len());
    assert_eq!(recs.last().unwrap()["data"]["new"], "closed");
}

/// The datagram and stream events of draft-ietf-quic-qlog-quic-events-03
/// (transport:datagrams_sent / datagrams_received: a count and one
/// RawInfo per datagram; transport:stream_state_updated), and RFC 9221
/// DATAGRAM frames listed in packets with their length.
#[test]
fn datagram_and_stream_events() {
    use quiver_proto::frame::Dir;
    use quiver_proto::qlog::{StreamSide, StreamState, StreamStateUpdate};
    use quiver_proto::streams::StreamId;

    let start = crate::shared::now();
    let out = Shared::default();
    let mut w = QlogWriter::new(out.clone(), &info(start));
    w.event(
        start,
        &QlogEvent::DatagramsSent {
            count: 3,
            segment_size: 1200,
            length: 3000,
        },
    );
    w.event(start, &QlogEvent::DatagramsReceived { length: 1252 });
    let id = StreamId::new(Side::Client, Dir::Bi, 1);
    w.event(
        start,
        &QlogEvent::StreamStateUpdated(StreamStateUpdate {
            stream_id: id,
            side: Some(StreamSide::Receiving),
            old: Some(StreamState::Receive),
            new: StreamState::ResetReceived,
            trigger: Some(Owner::Remote),
            error_code: Some(77),
        }),
    );
    w.event(
        start,
        &QlogEvent::StreamStateUpdated(StreamStateUpdate {
            stream_id: StreamId::new(Side::Server, Dir::Uni, 0),
            side: None,
            old: None,
            new: StreamState::Open,
            trigger: Some(Owner::Local),
            error_code: None,
        }),
    );
    // A DATAGRAM frame with a Length field (type 0x31, RFC 9221 §4), 5
    // bytes of data.
    let payload = [0x31, 5, 1, 2, 3, 4, 5];
    w.event(
        start,
        &QlogEvent::PacketReceived(PacketInfo {
            packet_type: PacketType::OneRtt,
            packet_number: 3,
            length: 30,
            payload: &payload,
        }),
    );
    drop(w);
    let recs = parse(&out.0.lock().unwrap());
    assert_eq!(recs[1]["name"], "transport:datagrams_sent");
    assert_eq!(
        recs[1]["data"],
        serde_json::json!({"count": 3, "raw": [{"length": 1200}, {"length": 1200}, {"length": 600}]})
    );
    assert_eq!(recs[2]["name"], "transport:datagrams_received");
    assert_eq!(
        recs[2]["data"],
        serde_json::json!({"count": 1, "raw": [{"length": 1252}]})
    );
    assert_eq!(recs[3]["name"], "transport:stream_state_updated");
    assert_eq!(
        recs[3]["data"],
        serde_json::json!({
            "stream_id": 4,
            "stream_type": "bidirectional",
            "stream_side": "receiving",
            "old": "receive",
            "new": "reset_received",
            "trigger": "remote",
            "error_code": 77
        })
    );
    assert_eq!(
        recs[4]["data"],
        serde_json::json!({
            "stream_id": 3,
            "stream_type": "unidirectional",
            "new": "open",
            "trigger": "local"
        })
    );
    assert_eq!(
        recs[5]["data"]["frames"],
        serde_json::json!([{"frame_type": "datagram", "length": 5}])
    );
}
