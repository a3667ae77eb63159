//! Helpers for the close matrix: reading packet types off datagrams on the
//! wire (long-header types are not covered by header protection, RFC 9001
//! §5.4.1), and reading CONNECTION_CLOSE frames out of a connection's log of
//! sent plaintext.
#![allow(dead_code)]

use std::ops::Range;

use std::time::Instant;

use quiver_proto::ConnectionError;
use quiver_proto::connection::LoggedPacket;
use quiver_proto::frame::{Frame, Iter};
use quiver_proto::packet::PacketType;

/// The kind of one packet of a datagram, as visible on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireKind {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
    VersionNegotiation,
    Short,
}

fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *data.get(*pos)?;
    let len = 1usize << (first >> 6);
    let bytes = data.get(*pos..*pos + len)?;
    let mut v = u64::from(first & 0x3f);
    for b in &bytes[1..] {
        v = (v << 8) | u64::from(*b);
    }
    *pos += len;
    Some(v)
}

/// The packets coalesced in a QUIC v1 datagram (RFC 9000 §12.2), with their
/// byte ranges. Stops at anything it cannot parse.
pub fn wire_packets(data: &[u8]) -> Vec<(WireKind, Range<usize>)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let b0 = data[start];
        if b0 & 0x80 == 0 {
            // A short header packet runs to the end of the datagram.
            out.push((WireKind::Short, start..data.len()));
            break;
        }
        let mut pos = start + 1;
        let Some(version) = data.get(pos..pos + 4) else {
            break;
        };
        pos += 4;
        if version == [0, 0, 0, 0] {
            out.push((WireKind::VersionNegotiation, start..data.len()));
            break;
        }
        let kind = match (b0 >> 4) & 0x3 {
            0 => WireKind::Initial,
            1 => WireKind::ZeroRtt,
            2 => WireKind::Handshake,
            _ => WireKind::Retry,
        };
        for _ in 0..2 {
            let Some(&len) = data.get(pos) else {
                return out;
            };
            pos += 1 + usize::from(len);
        }
        if kind == WireKind::Retry {
            out.push((kind, start..data.len()));
            break;
        }
        if kind == WireKind::Initial {
            let Some(token_len) = varint(data, &mut pos) else {
                break;
            };
            pos += token_len as usize;
        }
        let Some(len) = varint(data, &mut pos) else {
            break;
        };
        let end = pos + len as usize;
        if end > data.len() {
            break;
        }
        out.push((kind, start..end));
        start = end;
    }
    out
}

/// Whether the datagram carries a packet of `kind`.
pub fn carries(data: &[u8], kind: WireKind) -> bool {
    wire_packets(data).iter().any(|(k, _)| *k == kind)
}

/// The datagram without its Handshake packets: `None` if it has none,
/// `Some(empty)` if nothing else is left.
pub fn strip_handshake(data: &[u8]) -> Option<Vec<u8>> {
    let packets = wire_packets(data);
    if !packets.iter().any(|(k, _)| *k == WireKind::Handshake) {
        return None;
    }
    let mut out = Vec::new();
    for (kind, range) in packets {
        if kind != WireKind::Handshake {
            out.extend_from_slice(&data[range]);
        }
    }
    Some(out)
}

/// A CONNECTION_CLOSE frame found in a sent packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseSeen {
    /// 0x1d (application) rather than 0x1c (transport).
    pub application: bool,
    /// The error code.
    pub code: u64,
    /// The reason phrase.
    pub reason: Vec<u8>,
}

/// The CONNECTION_CLOSE frames in a packet's plaintext.
///
/// # Panics
/// If the payload does not decode: we sent it, so it must.
pub fn closes_in(packet: &LoggedPacket) -> Vec<CloseSeen> {
    let mut out = Vec::new();
    for f in Iter::new(&packet.payload) {
        match f.expect("a packet we sent decodes") {
            Frame::ConnectionClose(c) => out.push(CloseSeen {
                application: false,
                code: u64::from(c.error_code),
                reason: c.reason.to_vec(),
            }),
            Frame::ApplicationClose(c) => out.push(CloseSeen {
                application: true,
                code: u64::from(c.error_code),
                reason: c.reason.to_vec(),
            }),
            _ => {}
        }
    }
    out
}

/// Whether the packet carries only close frames and padding.
pub fn only_close_and_padding(packet: &LoggedPacket) -> bool {
    Iter::new(&packet.payload).all(|f| {
        matches!(
            f,
            Ok(Frame::Padding(_) | Frame::ConnectionClose(_) | Frame::ApplicationClose(_))
        )
    })
}

/// A short name of a packet type, for messages.
pub fn level(ty: PacketType) -> &'static str {
    match ty {
        PacketType::Initial => "Initial",
        PacketType::Handshake => "Handshake",
        PacketType::OneRtt => "1-RTT",
        PacketType::ZeroRtt => "0-RTT",
        PacketType::Retry => "Retry",
        PacketType::VersionNegotiation => "VN",
    }
}

/// One line per packet of a sent log: time, type, pn and frame types.
pub fn describe_log(log: &[LoggedPacket], epoch: std::time::Instant) -> String {
    let mut s = String::new();
    for p in log {
        let frames: Vec<String> = Iter::new(&p.payload)
            .map(|f| match f {
                Ok(Frame::Padding(_)) => "PAD".to_owned(),
                Ok(Frame::ConnectionClose(c)) => format!(
                    "CLOSE_0x1c(code={:#x},reason={:?})",
                    u64::from(c.error_code),
                    String::from_utf8_lossy(c.reason)
                ),
                Ok(Frame::ApplicationClose(c)) => format!(
                    "CLOSE_0x1d(code={:#x},reason={:?})",
                    u64::from(c.error_code),
                    String::from_utf8_lossy(c.reason)
                ),
                Ok(f) => format!("{:?}", f.ty()),
                Err(e) => format!("ERR({e})"),
            })
            .collect();
        s.push_str(&format!(
            "  {:>10.6}s {:<9} pn={:<3} {}\n",
            (p.time - epoch).as_secs_f64(),
            level(p.ty),
            p.pn,
            frames.join(" ")
        ));
    }
    s
}

/// RFC 9000 §10.2.2 on the log of an endpoint that received the peer's
/// CONNECTION_CLOSE at `end`: it "MAY send a single packet containing a
/// CONNECTION_CLOSE frame before entering the draining state ... MUST NOT
/// send further packets". So: at most one packet with a close, nothing
/// after it, and nothing at all after `end`.
pub fn draining_violations(
    log: &[LoggedPacket],
    end: Option<&(Instant, ConnectionError, bool)>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let Some((end, ..)) = end else {
        return errors;
    };
    let closes: Vec<usize> = (0..log.len())
        .filter(|&i| !closes_in(&log[i]).is_empty())
        .collect();
    if closes.len() > 1 {
        errors.push(format!(
            "the draining side sent {} packets with a close, not at most one",
            closes.len()
        ));
    }
    if let Some(&first) = closes.first() {
        if log.len() > first + 1 {
            errors.push(format!(
                "the draining side sent {} packets after its close",
                log.len() - first - 1
            ));
        }
        if !only_close_and_padding(&log[first]) {
            errors.push("the draining side's reply is not just a close".to_owned());
        }
    }
    if let Some(p) = log.iter().find(|p| p.time > *end) {
        errors.push(format!(
            "the draining side sent {} pn {} after it ended",
            level(p.ty),
            p.pn
        ));
    }
    errors
}

fn rank(ty: PacketType) -> u8 {
    match ty {
        PacketType::Initial => 0,
        PacketType::Handshake => 1,
        _ => 2,
    }
}

/// The close packets split into datagrams: each datagram's packets go in
/// strictly increasing level order (RFC 9000 §12.2), so a level that does
/// not increase starts a new datagram.
pub fn close_datagrams(close_log: &[LoggedPacket]) -> Vec<Vec<&LoggedPacket>> {
    let mut out: Vec<Vec<&LoggedPacket>> = Vec::new();
    for p in close_log {
        match out.last_mut() {
            Some(d)
                if d.last()
                    .is_some_and(|q| rank(q.ty) < rank(p.ty) && q.time == p.time) =>
            {
                d.push(p)
            }
            _ => out.push(vec![p]),
        }
    }
    out
}
