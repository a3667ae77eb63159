//! A connection attempt the application has not yet decided on.

use std::net::SocketAddr;
use std::time::Instant;

use super::token::RetryToken;
use crate::crypto::{Keys, client_hello_length, parse_client_hello};
use crate::frame::{self, Frame};
use crate::packet::header::{self, Parsed};
use crate::packet::{PacketType, TruncatedPacketNumber};
use crate::{ConnectionId, Version};

/// Identifies a pending [`Incoming`] attempt.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub struct IncomingId(pub(crate) u64);

/// A client's first Initial, held until the application accepts or
/// declines it; no connection state exists yet.
#[derive(Debug)]
pub struct Incoming {
    id: IncomingId,
    pub(crate) remote: SocketAddr,
    pub(crate) version: Version,
    pub(crate) orig_dst_cid: ConnectionId,
    pub(crate) src_cid: ConnectionId,
    /// A valid Retry token: the client's address is validated.
    pub(crate) retry: Option<RetryToken>,
    /// A valid NEW_TOKEN token validated the address (RFC 9000 §8.1.3).
    pub(crate) new_token_validated: bool,
    datagram: Vec<u8>,
    /// Later Initial datagrams of a ClientHello that spans several (a
    /// post-quantum key share does), at most `MAX_DATAGRAMS` - 1.
    more: Vec<Vec<u8>>,
    /// When the first datagram arrived.
    pub(crate) created: Instant,
    /// The ECN codepoint the datagram arrived with.
    pub(crate) ecn: Option<crate::EcnCodepoint>,
    /// The server's Initial keys for this attempt (RFC 9001 §5.2), derived
    /// once for the checks here and handed to the connection.
    keys: Keys,
    /// 0-RTT datagrams of this attempt that arrived while it waited, at
    /// most [`MAX_BUFFERED_ZERO_RTT`] (RFC 9001 §4.6: a server may buffer
    /// 0-RTT it cannot read yet).
    pub(crate) zero_rtt: Vec<Vec<u8>>,
    /// Whether 0-RTT may be accepted (see `Endpoint::set_early_data`).
    pub(crate) early_data: bool,
    /// The client's Initial CRYPTO stream as far as the datagrams held
    /// carry it, decrypted once per datagram on arrival (not again for
    /// each question about the ClientHello).
    hello: CryptoAssembly,
    /// Whether the first datagram's first Initial carries CRYPTO bytes
    /// from offset 0.
    starts_stream: bool,
    /// The packet number of the first datagram's first Initial, when that
    /// packet holds only PING and PADDING frames.
    first_ping_only_pn: Option<u64>,
    /// The Source CID of an Initial the endpoint already sent for this
    /// attempt (an ACK of a probe that held no ClientHello, packet number
    /// 0): the connection keeps it and numbers its own Initials after it.
    pub(crate) answered_cid: Option<ConnectionId>,
}

/// How many 0-RTT datagrams a pending attempt holds until it is accepted;
/// later ones are dropped and the client resends their data in 1-RTT.
pub const MAX_BUFFERED_ZERO_RTT: usize = 8;

impl Incoming {
    /// An attempt from the first datagram; `cids` are the client's first
    /// Destination and Source CIDs.
    pub(crate) fn new(
        id: IncomingId,
        remote: SocketAddr,
        version: Version,
        (orig_dst_cid, src_cid): (ConnectionId, ConnectionId),
        retry: Option<RetryToken>,
        datagram: Vec<u8>,
        now: Instant,
    ) -> Self {
        let keys = crate::crypto::initial_keys(version, &orig_dst_cid, crate::Side::Server);
        let mut hello = CryptoAssembly::default();
        let added = hello.add_datagram(&keys, &datagram);
        Self {
            id,
            remote,
            version,
            orig_dst_cid,
            src_cid,
            retry,
            new_token_validated: false,
            datagram,
            more: Vec::new(),
            created: now,
            ecn: None,
            keys,
            zero_rtt: Vec::new(),
            early_data: true,
            hello,
            starts_stream: added.starts,
            first_ping_only_pn: added.ping_only_pn,
            answered_cid: None,
        }
    }

    /// Its identifier, for [`crate::Endpoint::accept`].
    pub fn id(&self) -> IncomingId {
        self.id
    }

    /// The client's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.remote
    }

    /// Whether the client's address is validated: it returned a valid
    /// token from our Retry (RFC 9000 §8.1.2), or from a NEW_TOKEN frame of
    /// an earlier connection (§8.1.3). An attempt with a Retry token cannot
    /// be retried again.
    pub fn remote_address_validated(&self) -> bool {
        self.retry.is_some() || self.new_token_validated
    }

    /// The QUIC version the client used.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The server name (SNI) and ALPN protocols of the ClientHello, when it
    /// parses. The endpoint reports an attempt once its whole ClientHello
    /// is in, however many Initial datagrams it spans (or once it holds
    /// four of them).
    pub fn client_hello(&self) -> Option<crate::crypto::ClientHelloInfo> {
        parse_client_hello(self.hello.prefix())
    }

    /// Whether the whole ClientHello is in (or cannot be completed here:
    /// the datagrams held are at their bound, or the stream does not start
    /// with a ClientHello and TLS will reject it).
    pub(crate) fn client_hello_complete(&self) -> bool {
        if 1 + self.more.len() >= MAX_DATAGRAMS {
            return true;
        }
        let prefix = self.hello.prefix();
        match client_hello_length(prefix) {
            Some(len) => prefix.len() >= len,
            None => prefix.len() >= 4,
        }
    }

    /// Keeps another Initial datagram of this attempt; false when
    /// `MAX_DATAGRAMS` are held already, or when it brings nothing new: a
    /// duplicate, or a retransmission of CRYPTO bytes held already (the
    /// network may duplicate datagrams, RFC 9000 §21.10, and the client
    /// resends on loss), would otherwise use up the room for the rest of
    /// the ClientHello, and the attempt would be reported without it.
    pub(crate) fn add_datagram(&mut self, data: &[u8]) -> bool {
        if 1 + self.more.len() >= MAX_DATAGRAMS {
            return false;
        }
        if !self.hello.add_datagram(&self.keys, data).new {
            return false;
        }
        self.more.push(data.to_vec());
        true
    }

    /// Whether the datagram's first Initial starts the client's CRYPTO
    /// stream. An Initial without it (a probe whose twin was lost, or
    /// garbage that happens to decrypt) cannot start a handshake, so no
    /// connection should be created for it.
    pub(crate) fn starts_crypto_stream(&self) -> bool {
        self.starts_stream
    }

    /// Whether the datagram's first Initial carries ClientHello bytes
    /// beyond offset 0: with [`Incoming::starts_crypto_stream`] false, a
    /// later part of a ClientHello that spans several datagrams, arrived
    /// before the first part.
    pub(crate) fn carries_later_crypto_data(&self) -> bool {
        // Read from what the attempt assembled (the datagram was decrypted
        // once, when it arrived): bytes beyond offset 0 sit either in the
        // prefix, past the first, or in the chunks beyond a gap.
        self.hello.prefix.len() > 1 || self.hello.beyond.iter().any(|(_, d)| !d.is_empty())
    }

    /// The packet number to acknowledge when the first datagram's first
    /// Initial holds only PING (and PADDING): a probe, which clients
    /// (quiche) pair with their ClientHello on a PTO. When only the probe
    /// arrives, an acknowledgement tells the client at once that the
    /// ClientHello was lost (RFC 9002 §6.1), rather than after another
    /// PTO. `None` for anything else, an undecryptable datagram included.
    pub(crate) fn probe_to_acknowledge(&self) -> Option<u64> {
        self.first_ping_only_pn
    }

    /// The first datagram, the later ones, and the Initial keys.
    pub(crate) fn into_parts(self) -> (Vec<u8>, Vec<Vec<u8>>, Keys) {
        (self.datagram, self.more, self.keys)
    }

    /// Whether the client's 0-RTT will be accepted if TLS allows it (true
    /// unless refused with `Endpoint::set_early_data`).
    pub fn early_data_allowed(&self) -> bool {
        self.early_data
    }
}

/// Initial datagrams an attempt holds at most before it is reported, the
/// ClientHello whole or not: Chromium's post-quantum ClientHello takes two;
/// four leave room for a large certificate-compression or padding
/// extension while bounding what one attempt costs before any decision.
pub const MAX_DATAGRAMS: usize = 4;

/// The Initial CRYPTO stream of an attempt, assembled as its datagrams
/// arrive: the contiguous prefix from offset 0, and the chunks beyond a gap
/// (clients may split and reorder their ClientHello across frames and
/// datagrams). Bounded by the datagrams an attempt may hold
/// ([`MAX_DATAGRAMS`]).
#[derive(Debug, Default)]
struct CryptoAssembly {
    prefix: Vec<u8>,
    /// (offset, bytes) chunks that start beyond `prefix`.
    beyond: Vec<(u64, Vec<u8>)>,
}

impl CryptoAssembly {
    /// The stream from offset 0, as far as it is contiguous.
    fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Adds the CRYPTO frames of the datagram's first Initial (decrypted
    /// on a copy).
    fn add_datagram(&mut self, keys: &Keys, datagram: &[u8]) -> Added {
        let mut copy = datagram.to_vec();
        let Some(first) = crypto_chunks(keys, &mut copy) else {
            // Not an Initial we can read: nothing to assemble, but kept
            // for the connection as before.
            return Added {
                starts: false,
                new: true,
                ping_only_pn: None,
            };
        };
        let starts = first
            .chunks
            .iter()
            .any(|(off, data)| *off == 0 && !data.is_empty());
        // Coalesced packets after the Initial (other than zero padding)
        // are not judged here: such a datagram is always new.
        let new = first.more_packets
            || first
                .chunks
                .iter()
                .any(|(off, data)| !data.is_empty() && !self.covers(*off, data.len()));
        self.add_chunks(first.chunks);
        Added {
            starts,
            new,
            ping_only_pn: first.ping_only_pn,
        }
    }

    /// Whether `len` bytes at `offset` are all held already, in the prefix
    /// or in one waiting chunk.
    fn covers(&self, offset: u64, len: usize) -> bool {
        let end = offset + len as u64;
        end <= self.prefix.len() as u64
            || self
                .beyond
                .iter()
                .any(|(o, d)| *o <= offset && end <= o + d.len() as u64)
    }

    /// Adds (offset, bytes) chunks: those that reach the prefix extend it,
    /// those it already covers are dropped, the others wait.
    fn add_chunks(&mut self, chunks: Vec<(u64, Vec<u8>)>) {
        self.beyond.extend(chunks);
        self.beyond.sort_unstable_by_key(|(offset, _)| *offset);
        let mut kept = Vec::new();
        for (offset, data) in self.beyond.drain(..) {
            let have = self.prefix.len() as u64;
            let end = offset + data.len() as u64;
            if offset > have {
                kept.push((offset, data));
            } else if end > have {
                self.prefix
                    .extend_from_slice(&data[(have - offset) as usize..]);
            }
        }
        self.beyond = kept;
    }
}

/// What [`CryptoAssembly::add_datagram`] found in a datagram.
struct Added {
    /// Its first Initial carries CRYPTO bytes from offset 0.
    starts: bool,
    /// It carries something not held already.
    new: bool,
    /// Its first Initial's packet number, if that packet holds only PING
    /// and PADDING frames.
    ping_only_pn: Option<u64>,
}

/// The CRYPTO frames of a datagram's first Initial.
struct FirstInitial {
    /// (offset, bytes) of each CRYPTO frame.
    chunks: Vec<(u64, Vec<u8>)>,
    /// Non-zero bytes follow the packet: coalesced packets.
    more_packets: bool,
    /// The packet's number, if it holds PING and PADDING frames only.
    ping_only_pn: Option<u64>,
}

/// The CRYPTO frames (offset, bytes) of the datagram's first Initial, if
/// it decrypts.
fn crypto_chunks(keys: &Keys, datagram: &mut [u8]) -> Option<FirstInitial> {
    // The endpoint admitted the packet under its grease_quic_bit setting
    // (RFC 9287 §3): a client resuming a session may clear the fixed bit
    // of its first Initial (§3.1, as quinn does), so it is not checked
    // again here.
    let Ok(Parsed::Packet(p)) = header::decode_with(datagram, 0, true) else {
        return None;
    };
    if p.ty != PacketType::Initial {
        return None;
    }
    let packet = &mut datagram[..p.len];
    let pn_len = keys.remote.header.remove(packet, p.pn_offset).ok()?;
    let header_len = p.pn_offset + pn_len;
    let pn = TruncatedPacketNumber::from_wire(&packet[p.pn_offset..header_len]).expand(None);
    let len = keys.remote.packet.open(pn, packet, header_len).ok()?;
    let payload = &packet[header_len..header_len + len];
    let (mut chunks, mut pings, mut other) = (Vec::new(), false, false);
    for f in frame::Iter::new(payload) {
        match f {
            Ok(Frame::Crypto(c)) => {
                chunks.push((c.offset.into_inner(), c.data.to_vec()));
                other = true;
            }
            Ok(Frame::Ping) => pings = true,
            Ok(Frame::Padding(_)) => {}
            // Anything else (a malformed frame included, a connection
            // error under RFC 9000 §12.4) is for a connection to judge.
            Ok(_) => other = true,
            Err(_) => {
                other = true;
                break;
            }
        }
    }
    let more_packets = datagram[p.len..].iter().any(|&b| b != 0);
    Some(FirstInitial {
        chunks,
        more_packets,
        ping_only_pn: (pings && !other).then_some(pn),
    })
}

#[cfg(test)]
mod tests {
    use super::CryptoAssembly;

    fn chunk(offset: u64, data: &[u8]) -> (u64, Vec<u8>) {
        (offset, data.to_vec())
    }

    #[test]
    fn crypto_assembly_joins_reordered_overlapping_and_repeated_chunks() {
        let mut a = CryptoAssembly::default();
        // The second half first (a ClientHello's second datagram arriving
        // before its first): nothing contiguous yet.
        a.add_chunks(vec![chunk(6, b"ghij"), chunk(10, b"kl")]);
        assert_eq!(a.prefix(), b"");
        // The start, split and out of order within the packet, with a
        // chunk overlapping the held one.
        a.add_chunks(vec![chunk(3, b"defgh"), chunk(0, b"abc")]);
        assert_eq!(a.prefix(), b"abcdefghijkl");
        // A retransmission of what is held changes nothing.
        a.add_chunks(vec![chunk(0, b"abcd"), chunk(4, b"")]);
        assert_eq!(a.prefix(), b"abcdefghijkl");
        assert!(a.beyond.is_empty());
    }

    #[test]
    fn crypto_assembly_tells_bytes_it_holds() {
        let mut a = CryptoAssembly::default();
        a.add_chunks(vec![chunk(0, b"abcd"), chunk(10, b"klmn")]);
        assert!(a.covers(0, 4) && a.covers(1, 2));
        assert!(a.covers(10, 4) && a.covers(11, 3));
        assert!(!a.covers(3, 2), "byte 4 is missing");
        assert!(!a.covers(9, 2) && !a.covers(12, 3));
    }

    #[test]
    fn crypto_assembly_keeps_chunks_beyond_a_gap() {
        let mut a = CryptoAssembly::default();
        a.add_chunks(vec![chunk(0, b"ab"), chunk(5, b"fg")]);
        assert_eq!(a.prefix(), b"ab");
        a.add_chunks(vec![chunk(2, b"cd")]);
        assert_eq!(a.prefix(), b"abcd");
        a.add_chunks(vec![chunk(4, b"e")]);
        assert_eq!(a.prefix(), b"abcdefg");
    }
}
