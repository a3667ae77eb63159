//! `quiver decode`: show what is in a datagram, packet by packet and frame
//! by frame. Initial packets are decrypted with the keys every observer can
//! derive (RFC 9001 §5.2); other packets show their header only.

use std::fmt::Write as _;

use clap::ValueEnum;
use quiver_proto::coding::Reader;
use quiver_proto::crypto::{self, Keys};
use quiver_proto::frame::{self, Frame};
use quiver_proto::packet::{
    PacketType, Packets, Parsed, PartialPacket, TruncatedPacketNumber, header,
};
use quiver_proto::{ConnectionId, Side, Version};

/// Arguments of `quiver decode`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The datagram as hex (whitespace allowed).
    #[arg(required_unless_present = "example")]
    hex: Option<String>,
    /// Decode a datagram from the RFCs' test vectors instead.
    #[arg(long, value_enum, conflicts_with = "hex")]
    example: Option<Example>,
    /// Length of the receiver's connection IDs (short headers do not say).
    #[arg(long, default_value_t = 8)]
    cid_len: usize,
    /// The client's original Destination Connection ID (hex): Initial keys
    /// derive from it, so it decrypts the server's Initials and Retry.
    #[arg(long)]
    odcid: Option<String>,
}

/// Datagrams from the RFCs' appendices.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Example {
    /// RFC 9001 Appendix A.2: a QUIC v1 client Initial.
    Rfc9001ClientInitial,
    /// RFC 9001 Appendix A.3: the server's Initial in reply.
    Rfc9001ServerInitial,
    /// RFC 9001 Appendix A.4: a Retry.
    Rfc9001Retry,
    /// RFC 9369 Appendix A.2: a QUIC v2 client Initial.
    Rfc9369ClientInitial,
    /// RFC 9369 Appendix A.3: the server's v2 Initial.
    Rfc9369ServerInitial,
    /// RFC 9369 Appendix A.4: a v2 Retry.
    Rfc9369Retry,
}

/// The client's Destination Connection ID in the RFC examples.
const EXAMPLE_ODCID: &str = "8394c8f03e515708";

impl Example {
    fn hex(self) -> &'static str {
        match self {
            Example::Rfc9001ClientInitial => include_str!("examples/rfc9001-client-initial.hex"),
            Example::Rfc9001ServerInitial => include_str!("examples/rfc9001-server-initial.hex"),
            Example::Rfc9001Retry => include_str!("examples/rfc9001-retry.hex"),
            Example::Rfc9369ClientInitial => include_str!("examples/rfc9369-client-initial.hex"),
            Example::Rfc9369ServerInitial => include_str!("examples/rfc9369-server-initial.hex"),
            Example::Rfc9369Retry => include_str!("examples/rfc9369-retry.hex"),
        }
    }
}

/// Runs `quiver decode`, printing to stdout.
pub fn run(args: &Args) -> Result<(), String> {
    let (hex_in, odcid) = match args.example {
        Some(ex) => (ex.hex().to_owned(), Some(EXAMPLE_ODCID.to_owned())),
        None => (args.hex.clone().unwrap_or_default(), args.odcid.clone()),
    };
    let datagram = parse_hex(&hex_in).map_err(|e| format!("datagram: {e}"))?;
    let odcid = odcid
        .map(|h| {
            let b = parse_hex(&h).map_err(|e| format!("--odcid: {e}"))?;
            ConnectionId::new(&b).ok_or_else(|| "--odcid: longer than 20 bytes".to_owned())
        })
        .transpose()?;
    if args.cid_len > 20 {
        return Err("--cid-len: at most 20".into());
    }
    print!("{}", describe(&datagram, args.cid_len, odcid.as_ref()));
    Ok(())
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).map_err(|e| format!("not hex: {e}"))
}

/// A human-readable account of `datagram`.
pub fn describe(datagram: &[u8], cid_len: usize, odcid: Option<&ConnectionId>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "datagram: {} bytes", datagram.len());
    // A greased QUIC bit (RFC 9287) is shown, not rejected.
    for (i, item) in Packets::new(datagram, cid_len)
        .accept_fixed_bit_zero(true)
        .enumerate()
    {
        let packet = match item {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(out, "packet {i}: unreadable header: {e}");
                break;
            }
        };
        let bytes = &datagram[packet.offset..];
        match packet.parsed {
            Parsed::UnsupportedVersion(u) => {
                let _ = writeln!(
                    out,
                    "packet {i} @{}: long header, unsupported version {:#010x}, dcid {}, scid {} (answer: Version Negotiation)",
                    packet.offset,
                    u.version,
                    hex::encode(&bytes[u.dst_cid]),
                    hex::encode(&bytes[u.src_cid]),
                );
            }
            Parsed::Packet(p) => {
                describe_packet(&mut out, i, packet.offset, &bytes[..p.len], &p, odcid)
            }
        }
    }
    out
}

fn describe_packet(
    out: &mut String,
    i: usize,
    offset: usize,
    bytes: &[u8],
    p: &PartialPacket,
    odcid: Option<&ConnectionId>,
) {
    let version = p.version.map(|v| format!("{v:?} ")).unwrap_or_default();
    let _ = write!(
        out,
        "packet {i} @{offset}: {version}{:?}, {} bytes, dcid {}",
        p.ty, p.len, p.dst_cid
    );
    if p.is_long() {
        let _ = write!(out, ", scid {}", p.src_cid);
    }
    if !p.token.is_empty() || matches!(p.ty, PacketType::Initial | PacketType::Retry) {
        let _ = write!(out, ", token {} bytes", p.token.len());
    }
    let _ = writeln!(out);
    match p.ty {
        PacketType::VersionNegotiation => {
            let versions: Vec<String> = header::version_negotiation_versions(&bytes[p.pn_offset..])
                .map(|v| format!("{v:#010x}"))
                .collect();
            let _ = writeln!(out, "  versions: {}", versions.join(" "));
        }
        PacketType::Retry => {
            let version = p.version.unwrap_or(Version::V1);
            let verdict = match odcid {
                None => "not checked (give --odcid)".to_owned(),
                Some(odcid) => match crypto::verify_retry_integrity(version, odcid, bytes) {
                    Ok(()) => "valid".to_owned(),
                    Err(e) => format!("INVALID ({e})"),
                },
            };
            let _ = writeln!(out, "  retry integrity tag: {verdict}");
        }
        PacketType::Initial => {
            let version = p.version.unwrap_or(Version::V1);
            // A client's Initial is protected with keys from its own DCID;
            // a server's with keys from the client's original DCID.
            let attempts = [
                (Side::Server, odcid.copied().unwrap_or(p.dst_cid)),
                (Side::Client, odcid.copied().unwrap_or(p.dst_cid)),
            ];
            for (receiver, cid) in attempts {
                let keys = crypto::initial_keys(version, &cid, receiver);
                if let Some(text) = open_and_describe(bytes, p, &keys) {
                    let sender = match receiver.peer() {
                        Side::Client => "client",
                        Side::Server => "server",
                    };
                    let _ = writeln!(
                        out,
                        "  decrypted with the {sender}'s Initial keys (cid {cid})"
                    );
                    out.push_str(&text);
                    return;
                }
            }
            let _ = writeln!(out, "  could not decrypt (wrong --odcid?)");
        }
        _ => {
            let _ = writeln!(
                out,
                "  protected payload: {} bytes (keys not known)",
                p.len - p.pn_offset
            );
        }
    }
}

/// Removes header and packet protection from a copy and lists the frames.
fn open_and_describe(bytes: &[u8], p: &PartialPacket, keys: &Keys) -> Option<String> {
    let mut buf = bytes.to_vec();
    let pn_len = keys.remote.header.remove(&mut buf, p.pn_offset).ok()?;
    let header_len = p.pn_offset + pn_len;
    let number = TruncatedPacketNumber::from_wire(&buf[p.pn_offset..header_len]);
    let pn = number.expand(None);
    let payload_len = keys.remote.packet.open(pn, &mut buf, header_len).ok()?;
    let mut out = String::new();
    let _ = writeln!(out, "  packet number {pn} ({pn_len} bytes on the wire)");
    if !header::reserved_bits_ok(buf[0]) {
        let _ = writeln!(out, "  reserved bits set: PROTOCOL_VIOLATION");
    }
    let payload = &buf[header_len..header_len + payload_len];
    for frame in frame::Iter::new(payload) {
        match frame {
            Ok(f) => {
                let allowed = if frame::is_allowed(f.ty(), p.ty) {
                    ""
                } else {
                    "  (not allowed in this packet type: PROTOCOL_VIOLATION)"
                };
                let _ = writeln!(out, "  {}{allowed}", frame_summary(&f));
            }
            Err(e) => {
                let _ = writeln!(out, "  malformed frame: {e}");
                break;
            }
        }
    }
    Some(out)
}

fn frame_summary(f: &Frame<'_>) -> String {
    match f {
        Frame::Padding(n) => format!("PADDING x{n}"),
        Frame::Crypto(c) => {
            let mut s = format!("CRYPTO offset {} len {}", c.offset, c.data.len());
            // Only offset 0 surely starts a message: a client may split its
            // ClientHello into frames in any order (Chromium does), and the
            // first byte of a piece means nothing.
            if let Some(hello) = tls_handshake_type(c.data).filter(|_| c.offset.into_inner() == 0) {
                let _ = write!(s, " ({hello})");
            }
            s
        }
        Frame::Stream(st) => format!(
            "STREAM id {} offset {} len {}{}",
            st.id,
            st.offset,
            st.data.len(),
            if st.fin { " fin" } else { "" }
        ),
        Frame::Datagram(d) => format!("DATAGRAM len {}", d.data.len()),
        Frame::AckFrequency(f) => format!(
            "ACK_FREQUENCY seq {} threshold {} max_ack_delay {}us reordering {}",
            f.sequence, f.ack_eliciting_threshold, f.request_max_ack_delay, f.reordering_threshold
        ),
        Frame::Ack(a) => {
            let ranges: Vec<String> = a
                .ranges()
                .map(|r| format!("{}..={}", r.start(), r.end()))
                .collect();
            format!("ACK delay {} ranges [{}]", a.ack_delay(), ranges.join(", "))
        }
        Frame::ConnectionClose(c) => format!(
            "CONNECTION_CLOSE {} frame {} reason {:?}",
            c.code(),
            c.frame_type,
            String::from_utf8_lossy(c.reason)
        ),
        Frame::ApplicationClose(c) => format!(
            "CONNECTION_CLOSE (application) code {:#x} reason {:?}",
            c.error_code.into_inner(),
            String::from_utf8_lossy(c.reason)
        ),
        other => format!("{other:?}"),
    }
}

/// The TLS handshake message type at the start of CRYPTO data, if known.
fn tls_handshake_type(data: &[u8]) -> Option<&'static str> {
    let mut r = Reader::new(data);
    Some(match r.u8().ok()? {
        1 => "ClientHello",
        2 => "ServerHello",
        4 => "NewSessionTicket",
        8 => "EncryptedExtensions",
        11 => "Certificate",
        13 => "CertificateRequest",
        15 => "CertificateVerify",
        20 => "Finished",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(ex: Example) -> String {
        let odcid = ConnectionId::new(&hex::decode(EXAMPLE_ODCID).unwrap()).unwrap();
        describe(&parse_hex(ex.hex()).unwrap(), 8, Some(&odcid))
    }

    #[test]
    fn decodes_rfc9001_client_initial() {
        let out = example(Example::Rfc9001ClientInitial);
        assert!(
            out.contains("V1 Initial, 1200 bytes, dcid 8394c8f03e515708"),
            "{out}"
        );
        assert!(out.contains("packet number 2"), "{out}");
        assert!(
            out.contains("CRYPTO offset 0 len 241 (ClientHello)"),
            "{out}"
        );
        assert!(out.contains("PADDING x917"), "{out}");
    }

    #[test]
    fn decodes_rfc9001_server_initial() {
        let out = example(Example::Rfc9001ServerInitial);
        assert!(out.contains("server's Initial keys"), "{out}");
        assert!(out.contains("ACK delay 0 ranges [0..=0]"), "{out}");
        assert!(out.contains("(ServerHello)"), "{out}");
    }

    #[test]
    fn checks_retry_tags() {
        for ex in [Example::Rfc9001Retry, Example::Rfc9369Retry] {
            let out = example(ex);
            assert!(out.contains("retry integrity tag: valid"), "{out}");
        }
    }

    #[test]
    fn decodes_rfc9369_v2_initials() {
        let out = example(Example::Rfc9369ClientInitial);
        assert!(out.contains("V2 Initial"), "{out}");
        assert!(out.contains("(ClientHello)"), "{out}");
        let out = example(Example::Rfc9369ServerInitial);
        assert!(out.contains("(ServerHello)"), "{out}");
    }

    #[test]
    fn garbage_is_reported_not_panicked_on() {
        let out = describe(&[0xc0, 1, 2], 8, None);
        assert!(out.contains("unreadable header"), "{out}");
    }

    #[test]
    fn only_offset_zero_is_named_as_a_tls_message() {
        let crypto = |offset: u32, data: &'static [u8]| {
            frame_summary(&Frame::Crypto(frame::Crypto {
                offset: quiver_proto::VarInt::from_u32(offset),
                data,
            }))
        };
        assert_eq!(crypto(0, &[1, 0]), "CRYPTO offset 0 len 2 (ClientHello)");
        // A piece of a ClientHello that happens to start with 2.
        assert_eq!(crypto(1319, &[2, 0]), "CRYPTO offset 1319 len 2");
    }
}
