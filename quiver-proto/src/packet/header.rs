//! Packet headers as read before header protection is removed, and written
//! before it is applied (RFC 9000 §17, RFC 8999, RFC 9369 §3.2).
//!
//! Decoding yields plain data with byte offsets into the packet, not borrows,
//! so the caller can go on to remove protection in place in the same buffer.

use std::ops::Range;

use crate::coding::{Reader, UnexpectedEnd, VarInt};
use crate::packet::{PacketType, TruncatedPacketNumber};
use crate::{ConnectionId, Version};

/// Header form bit: 1 for long headers (RFC 9000 §17.2).
pub const LONG_HEADER_FORM: u8 = 0x80;
/// Fixed bit (RFC 9000 §17.2, §17.3.1).
pub const FIXED_BIT: u8 = 0x40;
/// The length of the Retry Integrity Tag (RFC 9001 §5.8).
pub const RETRY_INTEGRITY_TAG_LEN: usize = 16;
/// Bytes of a Length field we reserve when writing long headers: two bytes
/// cover packets of up to 16,383 bytes, more than any path MTU we send on.
const LENGTH_FIELD_SIZE: usize = 2;

/// Why a packet's header could not be read. The RFC's answer to all of
/// these is to drop the packet (and, in a datagram, the rest after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The packet ended inside the header or the Length field points past
    /// the end of the datagram.
    #[error("packet truncated")]
    Truncated,
    /// The fixed bit is 0 (RFC 9000 §17.2, §17.3.1: "MUST be discarded").
    #[error("fixed bit is zero")]
    FixedBitZero,
    /// A v1/v2 connection ID longer than 20 bytes (RFC 9000 §17.2: "MUST
    /// drop the packet").
    #[error("connection ID longer than 20 bytes")]
    ConnectionIdTooLong,
    /// A Version Negotiation packet whose version list is not a whole number
    /// of 32-bit versions, or is empty.
    #[error("malformed version negotiation packet")]
    MalformedVersionNegotiation,
    /// A Retry packet too short to hold its integrity tag.
    #[error("malformed retry packet")]
    MalformedRetry,
    /// The Length field is too small to hold even a packet number and the
    /// 16-byte header-protection sample.
    #[error("packet too short for header protection")]
    TooShortForProtection,
}

impl From<UnexpectedEnd> for HeaderError {
    fn from(_: UnexpectedEnd) -> Self {
        HeaderError::Truncated
    }
}

/// A packet's header as it arrived, header protection still on.
///
/// Offsets are relative to the start of this packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialPacket {
    /// The packet type.
    pub ty: PacketType,
    /// The first byte, still masked by header protection where it applies.
    pub first_byte: u8,
    /// The QUIC version; `None` for short headers, `Some(0)` never (Version
    /// Negotiation is [`PacketType::VersionNegotiation`]).
    pub version: Option<Version>,
    /// Destination Connection ID.
    pub dst_cid: ConnectionId,
    /// Source Connection ID (empty for short headers).
    pub src_cid: ConnectionId,
    /// The token of an Initial or Retry packet (empty range otherwise).
    pub token: Range<usize>,
    /// Where the protected packet number starts: for Initial, 0-RTT,
    /// Handshake and 1-RTT. For Retry and Version Negotiation it is where
    /// the type-specific tail starts (the tag, or the version list).
    pub pn_offset: usize,
    /// The whole length of this packet within the datagram.
    pub len: usize,
}

impl PartialPacket {
    /// Whether the packet has a long header.
    pub fn is_long(&self) -> bool {
        self.first_byte & LONG_HEADER_FORM != 0
    }

    /// Whether packet and header protection cover this packet (every type
    /// except Retry and Version Negotiation).
    pub fn is_protected(&self) -> bool {
        !matches!(self.ty, PacketType::Retry | PacketType::VersionNegotiation)
    }
}

/// A long-header packet of a version quiver does not speak. RFC 8999 lets us
/// read only its version and connection IDs (each up to 255 bytes), which is
/// all a Version Negotiation response needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedVersion {
    /// The version the sender used.
    pub version: u32,
    /// The Destination Connection ID, as offsets into the datagram.
    pub dst_cid: Range<usize>,
    /// The Source Connection ID, as offsets into the datagram.
    pub src_cid: Range<usize>,
}

/// What the start of a datagram (or of a packet in it) holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A packet of a version we speak (or a Version Negotiation packet).
    Packet(PartialPacket),
    /// A long header of an unknown version: answer with Version Negotiation.
    UnsupportedVersion(UnsupportedVersion),
}

/// The long packet type field (bits 0x30) for `ty` in `version`
/// (RFC 9000 Table 5; RFC 9369 §3.2 for v2).
pub fn long_type_bits(version: Version, ty: PacketType) -> Option<u8> {
    let bits = match (version, ty) {
        (Version::V1, PacketType::Initial) => 0b00,
        (Version::V1, PacketType::ZeroRtt) => 0b01,
        (Version::V1, PacketType::Handshake) => 0b10,
        (Version::V1, PacketType::Retry) => 0b11,
        // RFC 9369 §3.2: Initial 0b01, 0-RTT 0b10, Handshake 0b11, Retry 0b00.
        (Version::V2, PacketType::Initial) => 0b01,
        (Version::V2, PacketType::ZeroRtt) => 0b10,
        (Version::V2, PacketType::Handshake) => 0b11,
        (Version::V2, PacketType::Retry) => 0b00,
        _ => return None,
    };
    Some(bits << 4)
}

fn long_type_from_bits(version: Version, first_byte: u8) -> PacketType {
    let bits = (first_byte & 0x30) >> 4;
    let table = match version {
        Version::V1 => [
            PacketType::Initial,
            PacketType::ZeroRtt,
            PacketType::Handshake,
            PacketType::Retry,
        ],
        Version::V2 => [
            PacketType::Retry,
            PacketType::Initial,
            PacketType::ZeroRtt,
            PacketType::Handshake,
        ],
    };
    table[usize::from(bits)]
}

/// Reads the header of the packet at the start of `buf`.
///
/// `local_cid_len` is the length of the connection IDs this endpoint issues:
/// a short header does not encode its Destination Connection ID's length
/// (RFC 9000 §17.3.1), so the receiver must know it.
pub fn decode(buf: &[u8], local_cid_len: usize) -> Result<Parsed, HeaderError> {
    decode_with(buf, local_cid_len, false)
}

/// Like [`decode`], accepting packets whose fixed bit (the QUIC Bit) is 0
/// when `accept_fixed_bit_zero`: RFC 9287 §3, "An endpoint that advertises
/// the grease_quic_bit transport parameter MUST accept packets with the
/// QUIC Bit set to a value of 0."
pub fn decode_with(
    buf: &[u8],
    local_cid_len: usize,
    accept_fixed_bit_zero: bool,
) -> Result<Parsed, HeaderError> {
    let mut r = Reader::new(buf);
    let first = r.u8()?;
    if first & LONG_HEADER_FORM == 0 {
        return decode_short(buf, first, local_cid_len, accept_fixed_bit_zero).map(Parsed::Packet);
    }
    let version = r.u32()?;
    // RFC 8999 §5.1: connection IDs of other versions may be up to 255 bytes.
    let dcid_start = r.position() + 1;
    let dcid = r.u8_prefixed()?;
    let scid_start = r.position() + 1;
    let scid = r.u8_prefixed()?;

    if version == 0 {
        // RFC 9000 §17.2.1: Version Negotiation. The Unused bits, fixed bit
        // included, "MUST" be ignored by clients.
        let versions = r.rest();
        if versions.is_empty() || versions.len() % 4 != 0 {
            return Err(HeaderError::MalformedVersionNegotiation);
        }
        return Ok(Parsed::Packet(PartialPacket {
            ty: PacketType::VersionNegotiation,
            first_byte: first,
            version: None,
            dst_cid: cid(dcid)?,
            src_cid: cid(scid)?,
            token: 0..0,
            pn_offset: r.position() - versions.len(),
            len: buf.len(),
        }));
    }

    let Some(known) = Version::from_number(version) else {
        return Ok(Parsed::UnsupportedVersion(UnsupportedVersion {
            version,
            dst_cid: dcid_start..dcid_start + dcid.len(),
            src_cid: scid_start..scid_start + scid.len(),
        }));
    };
    // RFC 9000 §17.2: "Packets containing a zero value for this bit are not
    // valid packets in this version and MUST be discarded." (Unless we
    // advertised grease_quic_bit, RFC 9287 §3.)
    if first & FIXED_BIT == 0 && !accept_fixed_bit_zero {
        return Err(HeaderError::FixedBitZero);
    }
    // RFC 9000 §17.2: v1 connection IDs over 20 bytes "MUST drop the packet".
    let dst_cid = cid(dcid)?;
    let src_cid = cid(scid)?;
    let ty = long_type_from_bits(known, first);

    let mut token = 0..0;
    match ty {
        PacketType::Retry => {
            // RFC 9000 §17.2.5: the token fills the packet up to the tag.
            let rest = r.remaining();
            if rest < RETRY_INTEGRITY_TAG_LEN {
                return Err(HeaderError::MalformedRetry);
            }
            let start = r.position();
            let token_len = rest - RETRY_INTEGRITY_TAG_LEN;
            return Ok(Parsed::Packet(PartialPacket {
                ty,
                first_byte: first,
                version: Some(known),
                dst_cid,
                src_cid,
                token: start..start + token_len,
                pn_offset: start + token_len,
                len: buf.len(),
            }));
        }
        PacketType::Initial => {
            let len = r.varint()?.into_inner();
            let len = usize::try_from(len).map_err(|_| HeaderError::Truncated)?;
            let start = r.position();
            r.skip(len)?;
            token = start..start + len;
        }
        _ => {}
    }
    let length = r.varint()?.into_inner();
    let pn_offset = r.position();
    let length = usize::try_from(length).map_err(|_| HeaderError::Truncated)?;
    if length > r.remaining() {
        return Err(HeaderError::Truncated);
    }
    // RFC 9001 §5.4.2: the sample starts 4 bytes after the packet number
    // and is 16 bytes long, so a valid packet has at least 20 bytes there.
    if length < 4 + 16 {
        return Err(HeaderError::TooShortForProtection);
    }
    Ok(Parsed::Packet(PartialPacket {
        ty,
        first_byte: first,
        version: Some(known),
        dst_cid,
        src_cid,
        token,
        pn_offset,
        len: pn_offset + length,
    }))
}

fn decode_short(
    buf: &[u8],
    first: u8,
    local_cid_len: usize,
    accept_fixed_bit_zero: bool,
) -> Result<PartialPacket, HeaderError> {
    // RFC 9000 §17.3.1: fixed bit zero "MUST be discarded" (RFC 9287 §3:
    // unless we advertised grease_quic_bit).
    if first & FIXED_BIT == 0 && !accept_fixed_bit_zero {
        return Err(HeaderError::FixedBitZero);
    }
    let mut r = Reader::new(buf);
    r.skip(1)?;
    let dst_cid = cid(r.bytes(local_cid_len)?)?;
    let pn_offset = r.position();
    if r.remaining() < 4 + 16 {
        return Err(HeaderError::TooShortForProtection);
    }
    Ok(PartialPacket {
        ty: PacketType::OneRtt,
        first_byte: first,
        version: None,
        dst_cid,
        src_cid: ConnectionId::EMPTY,
        token: 0..0,
        pn_offset,
        len: buf.len(),
    })
}

fn cid(bytes: &[u8]) -> Result<ConnectionId, HeaderError> {
    ConnectionId::new(bytes).ok_or(HeaderError::ConnectionIdTooLong)
}

/// The version-independent prefix of a datagram: the Destination Connection
/// ID of its first packet, for routing (RFC 8999 §5). Returns `None` when
/// the datagram is too short.
pub fn first_dst_cid(buf: &[u8], local_cid_len: usize) -> Option<&[u8]> {
    let mut r = Reader::new(buf);
    let first = r.u8().ok()?;
    if first & LONG_HEADER_FORM == 0 {
        return r.bytes(local_cid_len).ok();
    }
    r.skip(4).ok()?;
    r.u8_prefixed().ok()
}

/// A header to write. After writing the payload, call
/// [`PartialEncode::finish`] to fill in the Length field; then seal and
/// apply header protection (see [`crate::crypto`]).
#[derive(Debug, Clone)]
pub enum Header<'a> {
    /// An Initial packet (RFC 9000 §17.2.2).
    Initial {
        /// Version.
        version: Version,
        /// Destination Connection ID.
        dst_cid: ConnectionId,
        /// Source Connection ID.
        src_cid: ConnectionId,
        /// Token from a Retry or NEW_TOKEN (empty from servers).
        token: &'a [u8],
        /// Packet number as sent.
        number: TruncatedPacketNumber,
    },
    /// A 0-RTT or Handshake packet.
    Long {
        /// [`PacketType::ZeroRtt`] or [`PacketType::Handshake`].
        ty: PacketType,
        /// Version.
        version: Version,
        /// Destination Connection ID.
        dst_cid: ConnectionId,
        /// Source Connection ID.
        src_cid: ConnectionId,
        /// Packet number as sent.
        number: TruncatedPacketNumber,
    },
    /// A 1-RTT packet (RFC 9000 §17.3.1).
    Short {
        /// The latency spin bit (§17.4).
        spin: bool,
        /// The key phase bit (RFC 9001 §6).
        key_phase: bool,
        /// Destination Connection ID.
        dst_cid: ConnectionId,
        /// Packet number as sent.
        number: TruncatedPacketNumber,
    },
}

/// Where a written header's variable parts are, for finishing the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialEncode {
    /// Offset of the packet's first byte in the buffer.
    pub start: usize,
    /// Offset of the packet number (the header-protection anchor).
    pub pn_offset: usize,
    /// Length of the packet number in bytes.
    pub pn_len: usize,
    /// Offset of the two-byte Length field, for long headers.
    length_offset: Option<usize>,
}

impl PartialEncode {
    /// Offset where the payload starts (the end of the header).
    pub fn header_end(&self) -> usize {
        self.pn_offset + self.pn_len
    }

    /// Length of the header, from the packet's first byte.
    pub fn header_len(&self) -> usize {
        self.header_end() - self.start
    }

    /// Fills in the Length field once the payload has been written:
    /// `payload_and_tag_len` counts the payload plus the AEAD tag that
    /// sealing will append. Returns false if the packet is too long for the
    /// two-byte Length field (the caller sized it wrong).
    pub fn finish(&self, buf: &mut [u8], payload_and_tag_len: usize) -> bool {
        let Some(at) = self.length_offset else {
            return true;
        };
        let len = self.pn_len + payload_and_tag_len;
        if VarInt::size_of(len as u64) > LENGTH_FIELD_SIZE {
            return false;
        }
        let mut field = &mut buf[at..at + LENGTH_FIELD_SIZE];
        VarInt::from_u64_unchecked(len as u64).encode_with_size(LENGTH_FIELD_SIZE, &mut field);
        true
    }
}

impl Header<'_> {
    /// The packet type.
    pub fn ty(&self) -> PacketType {
        match self {
            Header::Initial { .. } => PacketType::Initial,
            Header::Long { ty, .. } => *ty,
            Header::Short { .. } => PacketType::OneRtt,
        }
    }

    /// The number of bytes [`Header::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Header::Initial {
                dst_cid,
                src_cid,
                token,
                number,
                ..
            } => {
                7 + dst_cid.len()
                    + src_cid.len()
                    + VarInt::size_of(token.len() as u64)
                    + token.len()
                    + LENGTH_FIELD_SIZE
                    + number.len()
            }
            Header::Long {
                dst_cid,
                src_cid,
                number,
                ..
            } => 7 + dst_cid.len() + src_cid.len() + LENGTH_FIELD_SIZE + number.len(),
            Header::Short {
                dst_cid, number, ..
            } => 1 + dst_cid.len() + number.len(),
        }
    }

    /// Appends the unprotected header to `buf`, reserving the Length field.
    ///
    /// # Panics
    /// If a [`Header::Long`] carries a type other than 0-RTT or Handshake.
    pub fn encode(&self, buf: &mut Vec<u8>) -> PartialEncode {
        let start = buf.len();
        let mut length_offset = None;
        let number = match *self {
            Header::Initial {
                version,
                dst_cid,
                src_cid,
                token,
                number,
            } => {
                write_long_prefix(
                    buf,
                    version,
                    PacketType::Initial,
                    number,
                    &dst_cid,
                    &src_cid,
                );
                VarInt::from_u64_unchecked(token.len() as u64).encode(buf);
                buf.extend_from_slice(token);
                length_offset = Some(buf.len());
                buf.extend_from_slice(&[0; LENGTH_FIELD_SIZE]);
                number
            }
            Header::Long {
                ty,
                version,
                dst_cid,
                src_cid,
                number,
            } => {
                assert!(matches!(ty, PacketType::ZeroRtt | PacketType::Handshake));
                write_long_prefix(buf, version, ty, number, &dst_cid, &src_cid);
                length_offset = Some(buf.len());
                buf.extend_from_slice(&[0; LENGTH_FIELD_SIZE]);
                number
            }
            Header::Short {
                spin,
                key_phase,
                dst_cid,
                number,
            } => {
                // RFC 9000 §17.3.1: reserved bits (0x18) MUST be 0.
                let mut first = FIXED_BIT | number.len_bits();
                if spin {
                    first |= 0x20;
                }
                if key_phase {
                    first |= 0x04;
                }
                buf.push(first);
                buf.extend_from_slice(&dst_cid);
                number
            }
        };
        let pn_offset = buf.len();
        number.encode_to(buf);
        PartialEncode {
            start,
            pn_offset,
            pn_len: number.len(),
            length_offset,
        }
    }
}

fn write_long_prefix(
    buf: &mut Vec<u8>,
    version: Version,
    ty: PacketType,
    number: TruncatedPacketNumber,
    dst_cid: &ConnectionId,
    src_cid: &ConnectionId,
) {
    let type_bits = long_type_bits(version, ty).expect("long packet type");
    // RFC 9000 §17.2: reserved bits (0x0c) MUST be 0 before protection.
    buf.push(LONG_HEADER_FORM | FIXED_BIT | type_bits | number.len_bits());
    buf.extend_from_slice(&version.number().to_be_bytes());
    buf.push(dst_cid.len() as u8);
    buf.extend_from_slice(dst_cid);
    buf.push(src_cid.len() as u8);
    buf.extend_from_slice(src_cid);
}

/// Appends a Retry packet without its integrity tag (RFC 9000 §17.2.5); the
/// caller appends the tag computed over the pseudo-packet (RFC 9001 §5.8).
/// `unused` supplies the four low bits of the first byte, which are
/// unused in Retry and set arbitrarily.
pub fn encode_retry(
    buf: &mut Vec<u8>,
    version: Version,
    dst_cid: &ConnectionId,
    src_cid: &ConnectionId,
    token: &[u8],
    unused: u8,
) {
    let type_bits = long_type_bits(version, PacketType::Retry).expect("retry");
    buf.push(LONG_HEADER_FORM | FIXED_BIT | type_bits | (unused & 0x0f));
    buf.extend_from_slice(&version.number().to_be_bytes());
    buf.push(dst_cid.len() as u8);
    buf.extend_from_slice(dst_cid);
    buf.push(src_cid.len() as u8);
    buf.extend_from_slice(src_cid);
    buf.extend_from_slice(token);
}

/// Appends a Version Negotiation packet answering a packet whose
/// Destination and Source Connection IDs were `their_dst` and `their_src`
/// (RFC 9000 §17.2.1). `unused` is the random low 7 bits of the first byte;
/// quiver sets 0x40 as the RFC recommends. `versions` should include a
/// reserved (greasing) version so peers do not ossify on the list (§6.3).
pub fn encode_version_negotiation(
    buf: &mut Vec<u8>,
    their_dst: &[u8],
    their_src: &[u8],
    versions: &[u32],
    unused: u8,
) {
    // RFC 9000 §17.2.1: servers "SHOULD set the most significant bit of
    // this field (0x40) to 1".
    buf.push(LONG_HEADER_FORM | FIXED_BIT | (unused & 0x3f));
    // "The Version field of a Version Negotiation packet MUST be set to
    // 0x00000000."
    buf.extend_from_slice(&0u32.to_be_bytes());
    // "The server MUST include the value from the Source Connection ID field
    // of the packet it receives in the Destination Connection ID field" and
    // vice versa.
    buf.push(their_src.len() as u8);
    buf.extend_from_slice(their_src);
    buf.push(their_dst.len() as u8);
    buf.extend_from_slice(their_dst);
    for v in versions {
        buf.extend_from_slice(&v.to_be_bytes());
    }
}

/// The versions listed in a Version Negotiation packet's tail (from
/// [`PartialPacket::pn_offset`] to its end).
pub fn version_negotiation_versions(tail: &[u8]) -> impl Iterator<Item = u32> + Clone + '_ {
    tail.chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// Checks the reserved bits of a first byte whose header protection has
/// been removed (RFC 9000 §17.2, §17.3.1): non-zero is PROTOCOL_VIOLATION,
/// to be applied only after packet protection has also been removed.
pub fn reserved_bits_ok(first_byte: u8) -> bool {
    let mask = if first_byte & LONG_HEADER_FORM != 0 {
        0x0c
    } else {
        0x18
    };
    first_byte & mask == 0
}

/// The packet number length encoded in an unprotected first byte.
pub fn pn_len(first_byte: u8) -> usize {
    usize::from(first_byte & 0x03) + 1
}

/// The key phase bit of an unprotected short header (RFC 9001 §6).
pub fn key_phase(first_byte: u8) -> bool {
    first_byte & 0x04 != 0
}
