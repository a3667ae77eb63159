//! Forged long-header packets for the conformance tests: a client's first
//! Initial built from rustls's QUIC client with raw transport-parameter
//! bytes (quiver's own encoder refuses to write invalid ones), Initial
//! packets sealed with the Initial keys of a connection ID (RFC 9001
//! §5.2) with any payload and first-byte bits, and the CONNECTION_CLOSE
//! read back out of the victim's Initials (RFC 9000 §10.2.3: before the
//! handshake, the close goes in an Initial packet).
#![allow(dead_code)] // each test file uses a subset

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use quiver_proto::crypto::initial_keys;
use quiver_proto::frame::{self, Crypto, Frame};
use quiver_proto::packet::header::{self, Header, Parsed};
use quiver_proto::packet::{PacketType, TruncatedPacketNumber};
use quiver_proto::{ConnectionId, Side, TransportErrorCode, VarInt, Version};
use quiver_sim::quic::{CLIENT_ADDR, Pair, SERVER_ADDR, TEST_ALPN, TestPki};
use quiver_sim::{LinkConfig, Seed, Verdict, loopback};
use rustls::RootCertStore;

/// Where the forged client's datagrams come from.
pub const FORGED_CLIENT: SocketAddr = loopback(9, 7000);

/// The long-header reserved bits (RFC 9000 §17.2), under header protection.
pub const LONG_RESERVED_BITS: u8 = 0x0c;

/// One transport parameter: ID, then value, each with its varint framing
/// (RFC 9000 §18).
pub fn param(buf: &mut Vec<u8>, id: u64, value: &[u8]) {
    VarInt::from_u64(id).unwrap().encode(buf);
    VarInt::from_u64(value.len() as u64).unwrap().encode(buf);
    buf.extend_from_slice(value);
}

/// `x` as a QUIC varint.
pub fn varint(x: u64) -> Vec<u8> {
    let mut v = Vec::new();
    VarInt::from_u64(x).unwrap().encode(&mut v);
    v
}

/// The client's parameters: initial_source_connection_id (required, RFC
/// 9000 §7.3) and `extra`.
pub fn client_params(scid: &ConnectionId, extra: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut buf = Vec::new();
    param(&mut buf, 0x0f, scid);
    for (id, value) in extra {
        param(&mut buf, *id, value);
    }
    buf
}

/// A ClientHello from rustls's QUIC client carrying `params` verbatim.
pub fn client_hello(pki: &TestPki, params: Vec<u8>) -> Vec<u8> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![TEST_ALPN.to_vec()];
    let mut tls = rustls::quic::ClientConnection::new(
        Arc::new(config),
        rustls::quic::Version::V1,
        "localhost".try_into().unwrap(),
        params,
    )
    .unwrap();
    let mut hello = Vec::new();
    tls.write_hs(&mut hello);
    assert!(!hello.is_empty());
    hello
}

/// One QUIC v1 Initial packet sent by `sender`, protected with the Initial
/// keys of `keys_cid` (the client's first Destination Connection ID, RFC
/// 9001 §5.2). `plaintext` is the payload exactly as given (it may be
/// empty); `first_byte_bits` are or-ed into the first byte before packet
/// and header protection (say [`LONG_RESERVED_BITS`]). The packet number
/// takes four bytes, so even an empty payload leaves room for the header
/// protection sample (RFC 9001 §5.4.2).
pub fn seal_initial(
    keys_cid: &ConnectionId,
    sender: Side,
    dst: &ConnectionId,
    src: &ConnectionId,
    pn: u64,
    plaintext: &[u8],
    first_byte_bits: u8,
) -> Vec<u8> {
    seal_with(
        keys_cid,
        sender,
        dst,
        src,
        pn,
        plaintext,
        &[],
        first_byte_bits,
    )
}

/// [`seal_initial`] with a Token field (RFC 9000 §17.2.2), which only
/// clients may fill.
pub fn seal_initial_with_token(
    keys_cid: &ConnectionId,
    sender: Side,
    dst: &ConnectionId,
    src: &ConnectionId,
    pn: u64,
    plaintext: &[u8],
    token: &[u8],
) -> Vec<u8> {
    seal_with(keys_cid, sender, dst, src, pn, plaintext, token, 0)
}

#[allow(clippy::too_many_arguments)]
fn seal_with(
    keys_cid: &ConnectionId,
    sender: Side,
    dst: &ConnectionId,
    src: &ConnectionId,
    pn: u64,
    plaintext: &[u8],
    token: &[u8],
    first_byte_bits: u8,
) -> Vec<u8> {
    let keys = initial_keys(Version::V1, keys_cid, sender);
    let mut buf = Vec::new();
    let encoded = Header::Initial {
        version: Version::V1,
        dst_cid: *dst,
        src_cid: *src,
        token,
        number: TruncatedPacketNumber::with_len(pn, 4),
    }
    .encode(&mut buf);
    buf.extend_from_slice(plaintext);
    buf.resize(buf.len() + keys.local.packet.tag_len(), 0);
    let payload_and_tag = buf.len() - encoded.header_end();
    assert!(encoded.finish(&mut buf, payload_and_tag));
    buf[0] |= first_byte_bits;
    keys.local
        .packet
        .seal(pn, &mut buf, encoded.header_end())
        .unwrap();
    keys.local
        .header
        .apply(&mut buf, encoded.pn_offset)
        .unwrap();
    buf
}

/// A CRYPTO frame at offset 0 followed by PADDING (zero bytes) so that the
/// sealed Initial fills `datagram_len` bytes (RFC 9000 §14.1).
pub fn crypto_padded(data: &[u8], header_and_tag: usize, datagram_len: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    Frame::Crypto(Crypto {
        offset: VarInt::from_u32(0),
        data,
    })
    .encode(&mut buf);
    buf.resize(
        datagram_len.saturating_sub(header_and_tag).max(buf.len()),
        0,
    );
    buf
}

/// A client's first Initial carrying a ClientHello with `params`, padded to
/// 1200 bytes (RFC 9000 §14.1).
pub fn client_initial(
    pki: &TestPki,
    dcid: &ConnectionId,
    scid: &ConnectionId,
    params: Vec<u8>,
) -> Vec<u8> {
    let hello = client_hello(pki, params);
    let overhead = seal_initial(dcid, Side::Client, dcid, scid, 0, &[], 0).len();
    let plaintext = crypto_padded(&hello, overhead, 1200);
    let packet = seal_initial(dcid, Side::Client, dcid, scid, 0, &plaintext, 0);
    assert_eq!(packet.len(), 1200);
    packet
}

/// The CONNECTION_CLOSE (code, frame type, reason) in Initials sent by
/// `sender`, read with the keys of the client's `dcid`; `None` if there
/// is none.
pub fn initial_close_from(
    datagrams: &[Vec<u8>],
    dcid: &ConnectionId,
    sender: Side,
) -> Option<(TransportErrorCode, u64, String)> {
    let reader = match sender {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    };
    let keys = initial_keys(Version::V1, dcid, reader);
    for d in datagrams {
        let Ok(Parsed::Packet(p)) = header::decode(d, 8) else {
            continue;
        };
        if p.ty != PacketType::Initial {
            continue;
        }
        let mut packet = d[..p.len].to_vec();
        let Ok(pn_len) = keys.remote.header.remove(&mut packet, p.pn_offset) else {
            continue;
        };
        let header_len = p.pn_offset + pn_len;
        let pn = TruncatedPacketNumber::from_wire(&packet[p.pn_offset..header_len]).expand(None);
        let Ok(len) = keys.remote.packet.open(pn, &mut packet, header_len) else {
            continue;
        };
        let close = frame::Iter::new(&packet[header_len..header_len + len])
            .flatten()
            .find_map(|f| match f {
                Frame::ConnectionClose(c) => Some((
                    c.code(),
                    u64::from(c.frame_type),
                    String::from_utf8_lossy(c.reason).into_owned(),
                )),
                _ => None,
            });
        if close.is_some() {
            return close;
        }
    }
    None
}

/// The server's CONNECTION_CLOSE (code, reason) in its Initials.
pub fn initial_close(
    datagrams: &[Vec<u8>],
    dcid: &ConnectionId,
) -> Option<(TransportErrorCode, String)> {
    initial_close_from(datagrams, dcid, Side::Server).map(|(code, _, reason)| (code, reason))
}

/// A forged client talking to a real quiver server.
pub struct ForgedClient {
    pub pki: TestPki,
    pub pair: Pair,
    /// The client's first Destination Connection ID (keys the Initials).
    pub dcid: ConnectionId,
    /// The client's Source Connection ID.
    pub scid: ConnectionId,
    /// Everything the server sent to the forged client.
    pub seen: Rc<RefCell<Vec<Vec<u8>>>>,
}

impl ForgedClient {
    /// A fresh server and connection IDs drawn from `seed`.
    pub fn new(seed: Seed) -> Self {
        let pki = TestPki::new();
        let mut pair = Pair::with_pki(
            seed,
            LinkConfig::default(),
            Default::default(),
            Default::default(),
            pki.clone(),
        );
        let mut rng = pair.net.rng("forged-cids");
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        let dcid = ConnectionId::new(&bytes).unwrap();
        let scid = ConnectionId::new(&bytes[..8]).unwrap();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let tap = seen.clone();
        pair.net.set_tap(move |d| {
            if d.src == SERVER_ADDR && d.dst == FORGED_CLIENT {
                tap.borrow_mut().push(d.data.to_vec());
            }
        });
        Self {
            pki,
            pair,
            dcid,
            scid,
            seen,
        }
    }

    /// Sends one datagram to the server and runs the network a while.
    pub fn send(&mut self, datagram: Vec<u8>) {
        self.pair.net.inject(FORGED_CLIENT, SERVER_ADDR, datagram);
        self.pair.net.run_for(Duration::from_millis(100));
    }

    /// Sends a first Initial with `params` verbatim.
    pub fn send_hello(&mut self, params: Vec<u8>) {
        let initial = client_initial(&self.pki, &self.dcid, &self.scid, params);
        self.send(initial);
    }

    /// The server's Initial CONNECTION_CLOSE (code, frame type, reason).
    pub fn close(&self) -> Option<(TransportErrorCode, u64, String)> {
        let seen = self.seen.borrow();
        assert!(!seen.is_empty(), "the server answered");
        initial_close_from(&seen, &self.dcid, Side::Server)
    }
}

/// Sends a client Initial whose transport parameters add `extra` and
/// returns the server's CONNECTION_CLOSE, if any.
pub fn server_answer(seed: Seed, extra: &[(u64, Vec<u8>)]) -> Option<(TransportErrorCode, String)> {
    let mut forged = ForgedClient::new(seed);
    let params = client_params(&forged.scid, extra);
    forged.send_hello(params);
    forged.close().map(|(code, _, reason)| (code, reason))
}

/// A real quiver client whose server answers are replaced by forged ones:
/// the real server's datagrams are dropped, and the test injects its own
/// Initials keyed to the client's first Destination Connection ID.
pub struct ForgedServer {
    pub pair: Pair,
    pub client: quiver_proto::ConnectionHandle,
    /// The client's first Destination Connection ID.
    pub dcid: ConnectionId,
    /// The client's Source Connection ID.
    pub scid: ConnectionId,
    allowed: Rc<RefCell<Vec<Vec<u8>>>>,
}

impl ForgedServer {
    /// Starts a client and lets its first Initial go out.
    pub fn new(seed: Seed) -> Self {
        let mut pair = Pair::new(seed, LinkConfig::default());
        let first = Rc::new(RefCell::new(None::<Vec<u8>>));
        let allowed = Rc::new(RefCell::new(Vec::<Vec<u8>>::new()));
        let (first_tap, allowed_f) = (first.clone(), allowed.clone());
        pair.net.set_filter(move |d| {
            if d.src == CLIENT_ADDR {
                first_tap
                    .borrow_mut()
                    .get_or_insert_with(|| d.data.to_vec());
                return Verdict::Deliver;
            }
            if d.src == SERVER_ADDR && d.dst == CLIENT_ADDR {
                let mut allowed = allowed_f.borrow_mut();
                if let Some(i) = allowed.iter().position(|a| a.as_slice() == d.data) {
                    allowed.remove(i);
                    return Verdict::Deliver;
                }
                return Verdict::Drop;
            }
            Verdict::Deliver
        });
        let client = pair.connect();
        pair.net.run_for(Duration::from_millis(5));
        let first = first.borrow().clone().expect("the client sent its Initial");
        let Ok(Parsed::Packet(p)) = header::decode(&first, 8) else {
            panic!("the client's first datagram is a long-header packet");
        };
        assert_eq!(p.ty, PacketType::Initial);
        Self {
            pair,
            client,
            dcid: p.dst_cid,
            scid: p.src_cid,
            allowed,
        }
    }

    /// Injects `datagram` as if the server sent it, and runs a while.
    pub fn send(&mut self, datagram: Vec<u8>) {
        self.allowed.borrow_mut().push(datagram.clone());
        self.pair.net.inject(SERVER_ADDR, CLIENT_ADDR, datagram);
        self.pair.net.run_for(Duration::from_millis(100));
    }
}
