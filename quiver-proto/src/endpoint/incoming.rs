//! A connection attempt the application has not yet decided on.

use std::net::SocketAddr;

use super::token::RetryToken;
use crate::crypto::{Keys, parse_client_hello};
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
    datagram: Vec<u8>,
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
}

/// How many 0-RTT datagrams a pending attempt holds until it is accepted;
/// later ones are dropped and the client resends their data in 1-RTT.
pub const MAX_BUFFERED_ZERO_RTT: usize = 8;

impl Incoming {
    pub(crate) fn new(
        id: IncomingId,
        remote: SocketAddr,
        version: Version,
        orig_dst_cid: ConnectionId,
        src_cid: ConnectionId,
        retry: Option<RetryToken>,
        datagram: Vec<u8>,
    ) -> Self {
        let keys = crate::crypto::initial_keys(version, &orig_dst_cid, crate::Side::Server);
        Self {
            id,
            remote,
            version,
            orig_dst_cid,
            src_cid,
            retry,
            datagram,
            ecn: None,
            keys,
            zero_rtt: Vec::new(),
            early_data: true,
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
    /// token from our Retry (RFC 9000 §8.1.2). A validated attempt cannot be
    /// retried again.
    pub fn remote_address_validated(&self) -> bool {
        self.retry.is_some()
    }

    /// The QUIC version the client used.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The server name (SNI) and ALPN protocols of the ClientHello, when
    /// the first Initial holds the whole ClientHello and it parses.
    pub fn client_hello(&self) -> Option<crate::crypto::ClientHelloInfo> {
        let mut copy = self.datagram.clone();
        let crypto = first_crypto_data(&self.keys, &mut copy)?;
        parse_client_hello(&crypto)
    }

    /// Whether the datagram's first Initial starts the client's CRYPTO
    /// stream. An Initial without it (a probe whose twin was lost, or
    /// garbage that happens to decrypt) cannot start a handshake, so no
    /// connection should be created for it.
    pub(crate) fn starts_crypto_stream(&self) -> bool {
        let mut copy = self.datagram.clone();
        first_crypto_data(&self.keys, &mut copy).is_some_and(|d| !d.is_empty())
    }

    /// The first datagram and the Initial keys.
    pub(crate) fn into_parts(self) -> (Vec<u8>, Keys) {
        (self.datagram, self.keys)
    }

    /// Whether the client's 0-RTT will be accepted if TLS allows it (true
    /// unless refused with `Endpoint::set_early_data`).
    pub fn early_data_allowed(&self) -> bool {
        self.early_data
    }
}

/// The CRYPTO bytes from offset 0 carried by the datagram's first Initial
/// (clients may split and reorder their ClientHello across frames).
fn first_crypto_data(keys: &Keys, datagram: &mut [u8]) -> Option<Vec<u8>> {
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
    let mut chunks: Vec<(u64, &[u8])> = frame::Iter::new(payload)
        .map_while(Result::ok)
        .filter_map(|f| match f {
            Frame::Crypto(c) => Some((c.offset.into_inner(), c.data)),
            _ => None,
        })
        .collect();
    chunks.sort_unstable_by_key(|(offset, _)| *offset);
    let mut out = Vec::new();
    for (offset, data) in chunks {
        let end = offset + data.len() as u64;
        let have = out.len() as u64;
        if offset > have {
            break;
        }
        if end > have {
            out.extend_from_slice(&data[(have - offset) as usize..]);
        }
    }
    Some(out)
}
