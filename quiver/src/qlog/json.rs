//! The JSON of qlog records (`qlog_version` 0.3, the event names and
//! fields of draft-ietf-quic-qlog-quic-events-03 that qvis reads).
//!
//! Written by hand into a reused buffer: about a dozen event types, no
//! intermediate values, and every string that comes from the network
//! (reason phrases) escaped.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use quiver_proto::frame::{Dir, Frame, Iter};
use quiver_proto::packet::PacketType;
use quiver_proto::qlog::{
    CloseCode, CongestionState, CongestionTrigger, ConnectionState, DropTrigger, KeyTrigger,
    KeyType, LossTrigger, Owner, PacketInfo, PathState, QlogConnectionInfo, QlogEvent,
    RecoveryMetrics,
};
use quiver_proto::transport_params::TransportParameters;
use quiver_proto::{ConnectionError, Side, Version};

/// RFC 7464 §2.2: each JSON text is preceded by RS (0x1E) and followed by
/// LF.
const RS: u8 = 0x1e;

/// The header record.
pub(super) fn header(out: &mut Vec<u8>, info: &QlogConnectionInfo, reference_ms: f64) {
    let side = side_name(info.side);
    out.push(RS);
    let _ = write!(
        out,
        r#"{{"qlog_version":"0.3","qlog_format":"JSON-SEQ","title":"quiver qlog","description":"quiver {} {side}","trace":{{"vantage_point":{{"name":"quiver","type":"{side}"}},"title":"quiver qlog","description":"","configuration":{{"time_offset":0.0}},"common_fields":{{"ODCID":"{odcid}","group_id":"{odcid}","protocol_type":["QUIC"],"reference_time":{reference_ms:.3},"time_format":"relative"}}}}}}"#,
        env!("CARGO_PKG_VERSION"),
        odcid = hex(&info.orig_dst_cid),
    );
    out.push(b'\n');
}

/// One event record. `last` holds the metrics written before, so that a
/// metrics update carries only the fields that changed; `s` is scratch
/// for the data object, reused between events.
pub(super) fn event(
    out: &mut Vec<u8>,
    s: &mut String,
    time: Duration,
    side: Side,
    last: &mut Option<RecoveryMetrics>,
    event: &QlogEvent<'_>,
) {
    s.clear();
    let name = match event {
        QlogEvent::ParametersSet { owner, params } => {
            parameters(s, *owner, params);
            "transport:parameters_set"
        }
        QlogEvent::VersionInformation {
            local_versions,
            chosen,
        } => {
            let list = if side == Side::Client {
                "client_versions"
            } else {
                "server_versions"
            };
            let _ = write!(s, r#"{{"{list}":["#);
            for (i, v) in local_versions.iter().enumerate() {
                let sep = if i > 0 { "," } else { "" };
                let _ = write!(s, r#"{sep}"{}""#, version(*v));
            }
            let _ = write!(s, r#"],"chosen_version":"{}"}}"#, version(*chosen));
            "transport:version_information"
        }
        QlogEvent::PacketSent(p) => {
            packet(s, p);
            "transport:packet_sent"
        }
        QlogEvent::PacketReceived(p) => {
            packet(s, p);
            "transport:packet_received"
        }
        QlogEvent::DatagramsReceived { length } => {
            super::transport::datagrams(s, 1, *length, u32::from(*length));
            "transport:datagrams_received"
        }
        QlogEvent::DatagramsSent {
            count,
            segment_size,
            length,
        } => {
            super::transport::datagrams(s, *count, *segment_size, *length);
            "transport:datagrams_sent"
        }
        QlogEvent::StreamStateUpdated(u) => {
            super::transport::stream_state(s, u);
            "transport:stream_state_updated"
        }
        QlogEvent::PacketLost {
            packet_type: ty,
            packet_number,
            length,
            trigger,
        } => {
            let trigger = match trigger {
                LossTrigger::ReorderingThreshold => "reordering_threshold",
                LossTrigger::TimeThreshold => "time_threshold",
            };
            let _ = write!(
                s,
                r#"{{"header":{{"packet_type":"{}","packet_number":{packet_number}}},"raw":{{"length":{length}}},"trigger":"{trigger}"}}"#,
                packet_type(*ty)
            );
            "recovery:packet_lost"
        }
        QlogEvent::PacketDropped {
            packet_type: ty,
            length,
            trigger,
        } => {
            // The packet_dropped triggers of draft-ietf-quic-qlog-quic-events-03.
            let trigger = match trigger {
                DropTrigger::KeyUnavailable => "key_unavailable",
                DropTrigger::DecryptionFailure => "payload_decrypt_error",
                DropTrigger::HeaderParseError => "header_parse_error",
                DropTrigger::UnsupportedVersion => "unsupported_version",
                DropTrigger::UnexpectedSourceConnectionId => "unexpected_source_connection_id",
                DropTrigger::UnexpectedPacket => "unexpected_packet",
                DropTrigger::Duplicate => "duplicate",
                DropTrigger::DosPrevention => "dos_prevention",
            };
            s.push('{');
            if let Some(ty) = ty {
                let _ = write!(s, r#""header":{{"packet_type":"{}"}},"#, packet_type(*ty));
            }
            let _ = write!(s, r#""raw":{{"length":{length}}},"trigger":"{trigger}"}}"#);
            "transport:packet_dropped"
        }
        QlogEvent::MetricsUpdated(m) => {
            metrics(s, m, last.as_ref());
            *last = Some(**m);
            "recovery:metrics_updated"
        }
        QlogEvent::CongestionStateUpdated { old, new, trigger } => {
            let _ = write!(
                s,
                r#"{{"old":"{}","new":"{}""#,
                congestion(*old),
                congestion(*new)
            );
            match trigger {
                Some(CongestionTrigger::PersistentCongestion) => {
                    s.push_str(r#","trigger":"persistent_congestion""#)
                }
                Some(CongestionTrigger::Ecn) => s.push_str(r#","trigger":"ECN""#),
                Some(CongestionTrigger::Loss) | None => {}
            }
            s.push('}');
            "recovery:congestion_state_updated"
        }
        QlogEvent::KeyUpdated {
            key_type,
            generation,
            trigger,
        } => {
            // qlog names keys per direction: one record for each.
            let trigger = match trigger {
                KeyTrigger::Tls => "tls",
                KeyTrigger::RemoteUpdate => "remote_update",
                KeyTrigger::LocalUpdate => "local_update",
            };
            for (i, dir) in ["client", "server"].into_iter().enumerate() {
                if i > 0 {
                    record(out, time, "security:key_updated", s);
                    s.clear();
                }
                let _ = write!(
                    s,
                    r#"{{"key_type":"{dir}_{}_secret","generation":{generation},"trigger":"{trigger}"}}"#,
                    key_name(*key_type)
                );
            }
            "security:key_updated"
        }
        QlogEvent::KeyDiscarded { key_type } => {
            for (i, dir) in ["client", "server"].into_iter().enumerate() {
                if i > 0 {
                    record(out, time, "security:key_discarded", s);
                    s.clear();
                }
                let _ = write!(
                    s,
                    r#"{{"key_type":"{dir}_{}_secret","trigger":"tls"}}"#,
                    key_name(*key_type)
                );
            }
            "security:key_discarded"
        }
        QlogEvent::PathUpdated { remote, state } => {
            // Not in the 0.3 event set; the names of the newest draft's
            // migration_state_updated (qvis lists it as is).
            let state = match state {
                PathState::ProbingStarted => "probing_started",
                PathState::Validated => "probing_successful",
                PathState::Failed => "probing_abandoned",
                PathState::Migrated => "migration_complete",
            };
            let _ = write!(s, r#"{{"new":"{state}","path_remote":"#);
            address(s, *remote);
            s.push('}');
            "connectivity:migration_state_updated"
        }
        QlogEvent::ConnectionStateUpdated { old, new } => {
            s.push('{');
            if let Some(old) = old {
                let _ = write!(s, r#""old":"{}","#, conn_state(*old));
            }
            let _ = write!(s, r#""new":"{}"}}"#, conn_state(*new));
            "connectivity:connection_state_updated"
        }
        QlogEvent::ConnectionClosed {
            owner,
            error,
            code,
            reason,
        } => {
            let _ = write!(s, r#"{{"owner":"{}""#, owner_name(*owner));
            match code {
                Some(CloseCode::Transport(c)) => {
                    let _ = write!(s, r#","connection_code":{c}"#);
                }
                Some(CloseCode::Application(c)) => {
                    let _ = write!(s, r#","application_code":{c}"#);
                }
                None => {}
            }
            s.push_str(r#","reason":"#);
            string(s, &String::from_utf8_lossy(reason));
            let trigger = match error {
                ConnectionError::TimedOut => "idle_timeout",
                ConnectionError::Reset => "stateless_reset",
                ConnectionError::VersionMismatch => "version_mismatch",
                ConnectionError::LocallyClosed | ConnectionError::ApplicationClosed { .. } => {
                    "application"
                }
                _ => "error",
            };
            let _ = write!(s, r#","trigger":"{trigger}"}}"#);
            "connectivity:connection_closed"
        }
    };
    record(out, time, name, s);
}

fn record(out: &mut Vec<u8>, time: Duration, name: &str, data: &str) {
    out.push(RS);
    let _ = write!(
        out,
        r#"{{"time":{:.3},"name":"{name}","data":{data}}}"#,
        ms(time)
    );
    out.push(b'\n');
}

fn packet(s: &mut String, p: &PacketInfo<'_>) {
    let _ = write!(
        s,
        r#"{{"header":{{"packet_type":"{}","packet_number":{}}},"raw":{{"length":{}}},"frames":["#,
        packet_type(p.packet_type),
        p.packet_number,
        p.length
    );
    for (i, f) in Iter::new(p.payload).enumerate() {
        if i > 0 {
            s.push(',');
        }
        match f {
            Ok(f) => frame(s, &f),
            Err(_) => {
                // Our own packets and accepted ones decode; anything else
                // is reported, not trusted.
                s.push_str(r#"{"frame_type":"unknown"}"#);
                break;
            }
        }
    }
    s.push_str("]}");
}

fn frame(s: &mut String, f: &Frame<'_>) {
    let _ = match f {
        Frame::Padding(n) => write!(s, r#"{{"frame_type":"padding","length":{n}}}"#),
        Frame::Ping => write!(s, r#"{{"frame_type":"ping"}}"#),
        Frame::Ack(a) => {
            s.push_str(r#"{"frame_type":"ack","acked_ranges":["#);
            // Ranges come largest first; qlog lists [smallest, largest].
            for (i, r) in a.ranges().enumerate() {
                let sep = if i > 0 { "," } else { "" };
                let _ = write!(s, "{sep}[{},{}]", r.start(), r.end());
            }
            s.push(']');
            if let Some(e) = a.ecn() {
                let _ = write!(
                    s,
                    r#","ect0":{},"ect1":{},"ce":{}"#,
                    e.ect0.into_inner(),
                    e.ect1.into_inner(),
                    e.ce.into_inner()
                );
            }
            write!(s, "}}")
        }
        Frame::ResetStream(r) => write!(
            s,
            r#"{{"frame_type":"reset_stream","stream_id":{},"error_code":{},"final_size":{}}}"#,
            r.id.into_inner(),
            r.error_code.into_inner(),
            r.final_size.into_inner()
        ),
        Frame::StopSending(r) => write!(
            s,
            r#"{{"frame_type":"stop_sending","stream_id":{},"error_code":{}}}"#,
            r.id.into_inner(),
            r.error_code.into_inner()
        ),
        Frame::Crypto(c) => write!(
            s,
            r#"{{"frame_type":"crypto","offset":{},"length":{}}}"#,
            c.offset.into_inner(),
            c.data.len()
        ),
        Frame::NewToken(t) => write!(
            s,
            r#"{{"frame_type":"new_token","token":{{"raw":{{"length":{}}}}}}}"#,
            t.token.len()
        ),
        Frame::Stream(st) => write!(
            s,
            r#"{{"frame_type":"stream","stream_id":{},"offset":{},"length":{},"fin":{}}}"#,
            st.id.into_inner(),
            st.offset.into_inner(),
            st.data.len(),
            st.fin
        ),
        Frame::MaxData(m) => write!(
            s,
            r#"{{"frame_type":"max_data","maximum":{}}}"#,
            m.0.into_inner()
        ),
        Frame::MaxStreamData(m) => write!(
            s,
            r#"{{"frame_type":"max_stream_data","stream_id":{},"maximum":{}}}"#,
            m.id.into_inner(),
            m.max.into_inner()
        ),
        Frame::MaxStreams(m) => write!(
            s,
            r#"{{"frame_type":"max_streams","stream_type":"{}","maximum":{}}}"#,
            dir(m.dir),
            m.count.into_inner()
        ),
        Frame::DataBlocked(d) => write!(
            s,
            r#"{{"frame_type":"data_blocked","limit":{}}}"#,
            d.0.into_inner()
        ),
        Frame::StreamDataBlocked(d) => write!(
            s,
            r#"{{"frame_type":"stream_data_blocked","stream_id":{},"limit":{}}}"#,
            d.id.into_inner(),
            d.limit.into_inner()
        ),
        Frame::StreamsBlocked(d) => write!(
            s,
            r#"{{"frame_type":"streams_blocked","stream_type":"{}","limit":{}}}"#,
            dir(d.dir),
            d.limit.into_inner()
        ),
        Frame::NewConnectionId(n) => write!(
            s,
            r#"{{"frame_type":"new_connection_id","sequence_number":{},"retire_prior_to":{},"connection_id_length":{},"connection_id":"{}","stateless_reset_token":"{}"}}"#,
            n.sequence.into_inner(),
            n.retire_prior_to.into_inner(),
            n.id.len(),
            hex(&n.id),
            hex(&n.reset_token)
        ),
        Frame::RetireConnectionId(r) => write!(
            s,
            r#"{{"frame_type":"retire_connection_id","sequence_number":{}}}"#,
            r.sequence.into_inner()
        ),
        Frame::PathChallenge(p) => write!(
            s,
            r#"{{"frame_type":"path_challenge","data":"{}"}}"#,
            hex(&p.0)
        ),
        Frame::PathResponse(p) => write!(
            s,
            r#"{{"frame_type":"path_response","data":"{}"}}"#,
            hex(&p.0)
        ),
        Frame::ConnectionClose(c) => {
            let _ = write!(
                s,
                r#"{{"frame_type":"connection_close","error_space":"transport","error_code":{},"raw_error_code":{},"trigger_frame_type":{},"reason":"#,
                c.error_code.into_inner(),
                c.error_code.into_inner(),
                c.frame_type.value()
            );
            string(s, &String::from_utf8_lossy(c.reason));
            write!(s, "}}")
        }
        Frame::ApplicationClose(c) => {
            let _ = write!(
                s,
                r#"{{"frame_type":"connection_close","error_space":"application","error_code":{},"raw_error_code":{},"reason":"#,
                c.error_code.into_inner(),
                c.error_code.into_inner()
            );
            string(s, &String::from_utf8_lossy(c.reason));
            write!(s, "}}")
        }
        Frame::HandshakeDone => write!(s, r#"{{"frame_type":"handshake_done"}}"#),
        Frame::Datagram(d) => write!(
            s,
            r#"{{"frame_type":"datagram","length":{}}}"#,
            d.data.len()
        ),
        // draft-ietf-quic-ack-frequency-12 §4-5 frames, named as in qlog.
        Frame::AckFrequency(f) => write!(
            s,
            r#"{{"frame_type":"ack_frequency","sequence_number":{},"ack_eliciting_threshold":{},"request_max_ack_delay":{},"reordering_threshold":{}}}"#,
            f.sequence, f.ack_eliciting_threshold, f.request_max_ack_delay, f.reordering_threshold
        ),
        Frame::ImmediateAck => write!(s, r#"{{"frame_type":"immediate_ack"}}"#),
    };
}

fn metrics(s: &mut String, m: &RecoveryMetrics, last: Option<&RecoveryMetrics>) {
    let mut sep = "";
    s.push('{');
    let mut field = |s: &mut String, changed: bool, name: &str, value: &dyn std::fmt::Display| {
        if changed {
            let _ = write!(s, r#"{sep}"{name}":{value}"#);
            sep = ",";
        }
    };
    let changed = |f: &dyn Fn(&RecoveryMetrics) -> u128| last.is_none_or(|l| f(l) != f(m));
    // Before the first RTT sample min_rtt and latest_rtt are 0 and
    // smoothed_rtt is the 333 ms initial RTT (RFC 9002 §6.2.2), not
    // measurements: qvis plots every RTT value it is given and scales its
    // RTT graph to the largest, so the RTT fields wait for a sample.
    let sampled = !m.latest_rtt.is_zero();
    let had_sample = last.is_some_and(|l| !l.latest_rtt.is_zero());
    let rtt_changed = |f: &dyn Fn(&RecoveryMetrics) -> u128| sampled && (!had_sample || changed(f));
    field(
        s,
        rtt_changed(&|x| x.min_rtt.as_nanos()),
        "min_rtt",
        &Ms(m.min_rtt),
    );
    field(
        s,
        rtt_changed(&|x| x.smoothed_rtt.as_nanos()),
        "smoothed_rtt",
        &Ms(m.smoothed_rtt),
    );
    field(
        s,
        rtt_changed(&|x| x.latest_rtt.as_nanos()),
        "latest_rtt",
        &Ms(m.latest_rtt),
    );
    field(
        s,
        rtt_changed(&|x| x.rtt_variance.as_nanos()),
        "rtt_variance",
        &Ms(m.rtt_variance),
    );
    field(
        s,
        changed(&|x| u128::from(x.congestion_window)),
        "congestion_window",
        &m.congestion_window,
    );
    field(
        s,
        changed(&|x| u128::from(x.bytes_in_flight)),
        "bytes_in_flight",
        &m.bytes_in_flight,
    );
    if let Some(rate) = m.pacing_rate {
        field(
            s,
            changed(&|x| u128::from(x.pacing_rate.unwrap_or(0))),
            "pacing_rate",
            &rate,
        );
    }
    field(
        s,
        changed(&|x| u128::from(x.pto_count)),
        "pto_count",
        &m.pto_count,
    );
    s.push('}');
}

fn parameters(s: &mut String, owner: Owner, p: &TransportParameters) {
    let _ = write!(s, r#"{{"owner":"{}""#, owner_name(owner));
    let cids = [
        (
            "original_destination_connection_id",
            p.original_destination_connection_id,
        ),
        (
            "initial_source_connection_id",
            p.initial_source_connection_id,
        ),
        ("retry_source_connection_id", p.retry_source_connection_id),
    ];
    for (name, cid) in cids {
        if let Some(cid) = cid {
            let _ = write!(s, r#","{name}":"{}""#, hex(&cid));
        }
    }
    if let Some(t) = &p.stateless_reset_token {
        let _ = write!(s, r#","stateless_reset_token":"{}""#, hex(t));
    }
    let _ = write!(
        s,
        r#","disable_active_migration":{},"max_idle_timeout":{},"max_udp_payload_size":{},"ack_delay_exponent":{},"max_ack_delay":{},"active_connection_id_limit":{},"initial_max_data":{},"initial_max_stream_data_bidi_local":{},"initial_max_stream_data_bidi_remote":{},"initial_max_stream_data_uni":{},"initial_max_streams_bidi":{},"initial_max_streams_uni":{}"#,
        p.disable_active_migration,
        p.max_idle_timeout.as_millis(),
        p.max_udp_payload_size,
        p.ack_delay_exponent,
        p.max_ack_delay.as_millis(),
        p.active_connection_id_limit,
        p.initial_max_data,
        p.initial_max_stream_data_bidi_local,
        p.initial_max_stream_data_bidi_remote,
        p.initial_max_stream_data_uni,
        p.initial_max_streams_bidi,
        p.initial_max_streams_uni,
    );
    if let Some(m) = p.max_datagram_frame_size {
        let _ = write!(s, r#","max_datagram_frame_size":{m}"#);
    }
    if let Some(pa) = &p.preferred_address {
        s.push_str(r#","preferred_address":{"#);
        if let Some(a) = pa.address_v4 {
            let _ = write!(s, r#""ip_v4":"{}","port_v4":{},"#, a.ip(), a.port());
        }
        if let Some(a) = pa.address_v6 {
            let _ = write!(s, r#""ip_v6":"{}","port_v6":{},"#, a.ip(), a.port());
        }
        let _ = write!(
            s,
            r#""connection_id":"{}","stateless_reset_token":"{}"}}"#,
            hex(&pa.connection_id),
            hex(&pa.stateless_reset_token)
        );
    }
    s.push('}');
}

fn address(s: &mut String, a: SocketAddr) {
    let _ = match a {
        SocketAddr::V4(a) => write!(s, r#"{{"ip_v4":"{}","port_v4":{}}}"#, a.ip(), a.port()),
        SocketAddr::V6(a) => write!(s, r#"{{"ip_v6":"{}","port_v6":{}}}"#, a.ip(), a.port()),
    };
}

/// A JSON string, escaped (RFC 8259 §7).
fn string(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

fn hex(bytes: &[u8]) -> HexBytes<'_> {
    HexBytes(bytes)
}

struct HexBytes<'a>(&'a [u8]);

impl std::fmt::Display for HexBytes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Milliseconds with microsecond precision, as qlog's times are.
struct Ms(Duration);

impl std::fmt::Display for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3}", ms(self.0))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn version(v: Version) -> HexVersion {
    HexVersion(v.number())
}

struct HexVersion(u32);

impl std::fmt::Display for HexVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Server => "server",
    }
}

fn owner_name(owner: Owner) -> &'static str {
    match owner {
        Owner::Local => "local",
        Owner::Remote => "remote",
    }
}

fn packet_type(ty: PacketType) -> &'static str {
    match ty {
        PacketType::Initial => "initial",
        PacketType::ZeroRtt => "0RTT",
        PacketType::Handshake => "handshake",
        PacketType::Retry => "retry",
        PacketType::VersionNegotiation => "version_negotiation",
        PacketType::OneRtt => "1RTT",
    }
}

fn key_name(k: KeyType) -> &'static str {
    match k {
        KeyType::Initial => "initial",
        KeyType::Handshake => "handshake",
        KeyType::OneRtt => "1rtt",
    }
}

fn congestion(c: CongestionState) -> &'static str {
    match c {
        CongestionState::SlowStart => "slow_start",
        CongestionState::CongestionAvoidance => "congestion_avoidance",
        CongestionState::Recovery => "recovery",
    }
}

fn conn_state(c: ConnectionState) -> &'static str {
    match c {
        ConnectionState::HandshakeStarted => "handshake_started",
        ConnectionState::HandshakeComplete => "handshake_complete",
        ConnectionState::HandshakeConfirmed => "handshake_confirmed",
        ConnectionState::Closing => "closing",
        ConnectionState::Draining => "draining",
        ConnectionState::Closed => "closed",
    }
}

fn dir(d: Dir) -> &'static str {
    match d {
        Dir::Bi => "bidirectional",
        Dir::Uni => "unidirectional",
    }
}
