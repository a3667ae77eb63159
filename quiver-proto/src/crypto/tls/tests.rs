//! In-memory handshakes between two [`TlsSession`]s, error mapping, and the
//! ClientHello reader.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::*;
use crate::ConnectionId;
use crate::crypto::{ClientConfig, PacketKey, ServerConfig};

/// RFC 8446 §6.2 alert numbers used below.
const UNEXPECTED_MESSAGE: u8 = 10;
const DECODE_ERROR: u8 = 50;
const HANDSHAKE_FAILURE: u8 = 40;
const UNKNOWN_CA: u8 = 48;
const MISSING_EXTENSION: u8 = 109;
const CERTIFICATE_REQUIRED: u8 = 116;
const NO_APPLICATION_PROTOCOL: u8 = 120;

struct Identity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    fn new(name: &str) -> Self {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        Self {
            cert: ck.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
        }
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        roots
    }

    fn server_config(&self, alpn: &[&[u8]]) -> ServerConfig {
        ServerConfig::with_single_cert(vec![self.cert.clone()], self.key.clone_key())
            .alpn_protocols(protocols(alpn))
            .build()
            .unwrap()
    }
}

fn protocols(alpn: &[&[u8]]) -> Vec<Vec<u8>> {
    alpn.iter().map(|p| p.to_vec()).collect()
}

fn client_config(roots: RootCertStore, alpn: &[&[u8]]) -> ClientConfig {
    ClientConfig::with_root_certificates(roots)
        .alpn_protocols(protocols(alpn))
        .build()
        .unwrap()
}

fn cid(bytes: &[u8]) -> ConnectionId {
    ConnectionId::new(bytes).unwrap()
}

fn client_params() -> TransportParameters {
    TransportParameters {
        initial_max_data: 1 << 20,
        max_idle_timeout: Duration::from_secs(30),
        initial_source_connection_id: Some(cid(&[0xc1; 8])),
        ..TransportParameters::default()
    }
}

fn server_params() -> TransportParameters {
    TransportParameters {
        initial_max_data: 1 << 16,
        initial_max_streams_bidi: 100,
        original_destination_connection_id: Some(cid(&[0x0d; 8])),
        initial_source_connection_id: Some(cid(&[0x5e; 8])),
        stateless_reset_token: Some([0x42; 16]),
        ..TransportParameters::default()
    }
}

/// A session with the keys it has produced and the bytes it has to send.
struct Peer {
    tls: TlsSession,
    handshake: Option<Keys>,
    one_rtt: Option<(Keys, KeyUpdateSecrets)>,
    outbox: Vec<(Level, Vec<u8>)>,
}

impl Peer {
    fn new(tls: TlsSession) -> Self {
        let mut peer = Self {
            tls,
            handshake: None,
            one_rtt: None,
            outbox: Vec::new(),
        };
        peer.drain();
        peer
    }

    fn drain(&mut self) {
        while let Some(out) = self.tls.poll_output() {
            match out {
                TlsOutput::Data { level, data } => self.outbox.push((level, data)),
                TlsOutput::HandshakeKeys(keys) => {
                    assert!(self.handshake.is_none(), "handshake keys twice");
                    self.handshake = Some(keys);
                }
                TlsOutput::OneRttKeys { keys, update } => {
                    assert!(self.handshake.is_some(), "1-RTT keys before handshake keys");
                    assert!(self.one_rtt.is_none(), "1-RTT keys twice");
                    self.one_rtt = Some((keys, update));
                }
            }
        }
    }
}

/// Delivers everything `from` has to send to `to`; reports whether anything
/// was delivered.
fn deliver(from: &mut Peer, to: &mut Peer) -> Result<bool, TransportError> {
    let outbox = std::mem::take(&mut from.outbox);
    let any = !outbox.is_empty();
    for (level, data) in outbox {
        to.tls.read_handshake(level, &data)?;
        to.drain();
    }
    Ok(any)
}

/// Which side failed, and how.
#[derive(Debug)]
struct Failed {
    side: Side,
    error: TransportError,
}

fn run(client: &mut Peer, server: &mut Peer) -> Result<(), Failed> {
    loop {
        let c = deliver(client, server).map_err(|error| Failed {
            side: Side::Server,
            error,
        })?;
        let s = deliver(server, client).map_err(|error| Failed {
            side: Side::Client,
            error,
        })?;
        if !c && !s {
            return Ok(());
        }
    }
}

fn pair(client: &ClientConfig, server: &ServerConfig) -> (Peer, Peer) {
    let c = TlsSession::client(client, Version::V1, "localhost", &client_params()).unwrap();
    let s = TlsSession::server(server, Version::V1, &server_params()).unwrap();
    (Peer::new(c), Peer::new(s))
}

/// Seals a packet with `seal` and opens it with `open`.
fn assert_packet_keys_match(seal: &PacketKey, open: &PacketKey) {
    let header = [0x40, 0x01, 0x02, 0x03, 0x04];
    let payload = b"interoperable keys";
    let mut buf = [&header[..], payload, &[0; 16]].concat();
    seal.seal(7, &mut buf, header.len()).unwrap();
    assert_ne!(&buf[header.len()..header.len() + payload.len()], payload);
    let len = open.open(7, &mut buf, header.len()).unwrap();
    assert_eq!(&buf[header.len()..header.len() + len], payload);
}

/// Header protection applied by one side is removed by the other.
fn assert_header_keys_match(local: &DirectionalKeys, remote: &DirectionalKeys) {
    let mut packet = vec![0x41, 1, 2, 3, 4];
    packet.extend_from_slice(&[0x5a; 40]);
    let original = packet.clone();
    local.header.apply(&mut packet, 1).unwrap();
    assert_ne!(packet, original);
    remote.header.remove(&mut packet, 1).unwrap();
    assert_eq!(packet, original);
}

fn assert_keys_match(client: &Keys, server: &Keys) {
    assert_packet_keys_match(&client.local.packet, &server.remote.packet);
    assert_packet_keys_match(&server.local.packet, &client.remote.packet);
    assert_header_keys_match(&client.local, &server.remote);
    assert_header_keys_match(&server.local, &client.remote);
}

fn assert_crypto_error(error: &TransportError, alert: u8) {
    assert_eq!(error.code, TransportErrorCode::crypto(alert), "{error}");
    assert_eq!(error.code.0, 0x100 + u64::from(alert));
}

#[test]
fn handshake_completes_with_alpn_sni_params_and_interoperable_keys() {
    let id = Identity::new("localhost");
    let (mut client, mut server) = pair(
        &client_config(id.roots(), &[b"quiver", b"h3"]),
        &id.server_config(&[b"h3"]),
    );
    run(&mut client, &mut server).unwrap();

    for peer in [&client, &server] {
        assert!(!peer.tls.is_handshaking());
        assert_eq!(peer.tls.alpn(), Some(&b"h3"[..]));
        assert_eq!(peer.tls.read_level(), Level::OneRtt);
        assert_eq!(peer.tls.write_level(), Level::OneRtt);
    }
    assert_eq!(server.tls.server_name(), Some("localhost"));
    assert_eq!(client.tls.server_name(), None);
    assert_eq!(client.tls.peer_transport_params(), Some(&server_params()));
    assert_eq!(server.tls.peer_transport_params(), Some(&client_params()));
    assert_eq!(client.tls.peer_certificates(), Some(&[id.cert.clone()][..]));
    assert_eq!(server.tls.peer_certificates(), None);

    let (ch, sh) = (client.handshake.unwrap(), server.handshake.unwrap());
    assert_keys_match(&ch, &sh);
    let (c1, mut cu) = client.one_rtt.unwrap();
    let (s1, mut su) = server.one_rtt.unwrap();
    assert_keys_match(&c1, &s1);
    // Key phase 1 (RFC 9001 §6) agrees as well.
    let (cn, sn) = (cu.next_packet_keys(), su.next_packet_keys());
    assert_packet_keys_match(&cn.local, &sn.remote);
    assert_packet_keys_match(&sn.local, &cn.remote);

    let mut a = [0; 32];
    let mut b = [0; 32];
    client
        .tls
        .export_keying_material(&mut a, b"quiver test", None)
        .unwrap();
    server
        .tls
        .export_keying_material(&mut b, b"quiver test", None)
        .unwrap();
    assert_eq!(a, b);
}

/// Kinds of output, to compare sequences.
#[derive(Debug, PartialEq)]
enum Kind {
    Data(Level),
    HandshakeKeys,
    OneRttKeys,
}

fn kinds(tls: &mut TlsSession) -> (Vec<Kind>, Vec<(Level, Vec<u8>)>) {
    let mut kinds = Vec::new();
    let mut data = Vec::new();
    while let Some(out) = tls.poll_output() {
        kinds.push(match out {
            TlsOutput::Data { level, data: d } => {
                data.push((level, d));
                Kind::Data(level)
            }
            TlsOutput::HandshakeKeys(_) => Kind::HandshakeKeys,
            TlsOutput::OneRttKeys { .. } => Kind::OneRttKeys,
        });
    }
    (kinds, data)
}

fn feed(tls: &mut TlsSession, data: &[(Level, Vec<u8>)]) {
    for (level, bytes) in data {
        tls.read_handshake(*level, bytes).unwrap();
    }
}

#[test]
fn outputs_follow_encryption_level_order() {
    let id = Identity::new("localhost");
    let client_cfg = client_config(id.roots(), &[b"h3"]);
    let mut c =
        TlsSession::client(&client_cfg, Version::V2, "localhost", &client_params()).unwrap();
    let mut s =
        TlsSession::server(&id.server_config(&[b"h3"]), Version::V2, &server_params()).unwrap();
    assert_eq!(s.read_level(), Level::Initial);

    let (k, ch) = kinds(&mut c);
    assert_eq!(k, [Kind::Data(Level::Initial)]);
    feed(&mut s, &ch);
    let (k, flight) = kinds(&mut s);
    assert_eq!(
        k,
        [
            Kind::Data(Level::Initial),
            Kind::HandshakeKeys,
            Kind::Data(Level::Handshake),
            Kind::OneRttKeys,
        ]
    );
    // The server reads the client's Finished at the Handshake level.
    assert_eq!(s.read_level(), Level::Handshake);
    assert!(s.is_handshaking());

    feed(&mut c, &flight[..1]);
    let (k, _) = kinds(&mut c);
    assert_eq!(k, [Kind::HandshakeKeys]);
    assert_eq!(c.read_level(), Level::Handshake);
    feed(&mut c, &flight[1..]);
    let (k, finished) = kinds(&mut c);
    assert_eq!(k, [Kind::Data(Level::Handshake), Kind::OneRttKeys]);
    assert!(!c.is_handshaking());
    assert_eq!(c.read_level(), Level::OneRtt);

    feed(&mut s, &finished);
    assert!(!s.is_handshaking());
    // Session tickets go out after the handshake, at 1-RTT.
    let (k, tickets) = kinds(&mut s);
    assert!(!k.is_empty());
    assert!(k.iter().all(|k| *k == Kind::Data(Level::OneRtt)), "{k:?}");
    feed(&mut c, &tickets);
    assert!(c.poll_output().is_none());
}

/// The interop runner's `chacha20` case: a client that offers only
/// TLS_CHACHA20_POLY1305_SHA256 gets it, with working packet and header
/// protection keys (RFC 9001 §5.3, §5.4.4); a server that accepts none of
/// the offered suites fails with handshake_failure.
#[test]
fn cipher_suite_selection() {
    use crate::crypto::CipherSuite;
    let id = Identity::new("localhost");
    for suite in CipherSuite::ALL {
        let client = ClientConfig::with_root_certificates(id.roots())
            .alpn_protocols(protocols(&[b"h3"]))
            .cipher_suites(&[suite])
            .build()
            .unwrap();
        let (mut c, mut s) = pair(&client, &id.server_config(&[b"h3"]));
        run(&mut c, &mut s).unwrap();
        assert_eq!(c.tls.cipher_suite(), Some(suite));
        assert_eq!(s.tls.cipher_suite(), Some(suite));
        assert_keys_match(
            &c.one_rtt.as_ref().unwrap().0,
            &s.one_rtt.as_ref().unwrap().0,
        );
        assert_keys_match(c.handshake.as_ref().unwrap(), s.handshake.as_ref().unwrap());
    }

    let client = ClientConfig::with_root_certificates(id.roots())
        .alpn_protocols(protocols(&[b"h3"]))
        .cipher_suites(&[CipherSuite::ChaCha20Poly1305Sha256])
        .build()
        .unwrap();
    let server = ServerConfig::with_single_cert(vec![id.cert.clone()], id.key.clone_key())
        .alpn_protocols(protocols(&[b"h3"]))
        .cipher_suites(&[CipherSuite::Aes128GcmSha256, CipherSuite::Aes256GcmSha384])
        .build()
        .unwrap();
    let (mut c, mut s) = pair(&client, &server);
    let failed = run(&mut c, &mut s).unwrap_err();
    assert_eq!(failed.side, Side::Server);
    assert_crypto_error(&failed.error, HANDSHAKE_FAILURE);
    assert_eq!("chacha20".parse(), Ok(CipherSuite::ChaCha20Poly1305Sha256));
    assert_eq!(
        "TLS_AES_256_GCM_SHA384".parse(),
        Ok(CipherSuite::Aes256GcmSha384)
    );
    assert!("rc4".parse::<CipherSuite>().is_err());
}

/// The default order offers TLS_AES_128_GCM_SHA256 first, as browsers do
/// (ARCHITECTURE.md, "Cipher suite order"): two default configurations
/// negotiate it, and a server follows the client's order, so a client
/// preferring AES-256 (rustls's own order, quinn's) still gets AES-256.
#[test]
fn default_cipher_suite_order_is_aes128_first() {
    use crate::crypto::CipherSuite;
    let id = Identity::new("localhost");
    let client = ClientConfig::with_root_certificates(id.roots())
        .alpn_protocols(protocols(&[b"h3"]))
        .build()
        .unwrap();
    let offered: Vec<_> = client
        .rustls()
        .crypto_provider()
        .cipher_suites
        .iter()
        .filter_map(|s| s.tls13().and_then(CipherSuite::from_rustls))
        .collect();
    assert_eq!(offered, CipherSuite::ALL);
    let (mut c, mut s) = pair(&client, &id.server_config(&[b"h3"]));
    run(&mut c, &mut s).unwrap();
    assert_eq!(c.tls.cipher_suite(), Some(CipherSuite::Aes128GcmSha256));
    assert_eq!(s.tls.cipher_suite(), Some(CipherSuite::Aes128GcmSha256));

    let aes256_first = ClientConfig::with_root_certificates(id.roots())
        .alpn_protocols(protocols(&[b"h3"]))
        .cipher_suites(&[
            CipherSuite::Aes256GcmSha384,
            CipherSuite::ChaCha20Poly1305Sha256,
            CipherSuite::Aes128GcmSha256,
        ])
        .build()
        .unwrap();
    let (mut c, mut s) = pair(&aes256_first, &id.server_config(&[b"h3"]));
    run(&mut c, &mut s).unwrap();
    assert_eq!(s.tls.cipher_suite(), Some(CipherSuite::Aes256GcmSha384));
}

/// Key exchange (issue: X25519MLKEM768 offered and accepted): by default
/// both sides use the hybrid, whose ClientHello no longer fits one Initial
/// packet; a client offering the hybrid reaches a classical server without
/// a HelloRetryRequest (it sends an X25519 share beside it); a client whose
/// only share the server does not take gets a HelloRetryRequest and
/// completes (RFC 8446 §4.1.4); no common group is handshake_failure.
#[test]
fn key_exchange_groups() {
    use crate::crypto::KxGroup;
    use rustls::HandshakeKind;
    let id = Identity::new("localhost");
    let client_with = |groups: Option<&[KxGroup]>| {
        let b =
            ClientConfig::with_root_certificates(id.roots()).alpn_protocols(protocols(&[b"h3"]));
        match groups {
            Some(g) => b.kx_groups(g),
            None => b,
        }
        .build()
        .unwrap()
    };
    let server_with = |groups: Option<&[KxGroup]>| {
        let b = ServerConfig::with_single_cert(vec![id.cert.clone()], id.key.clone_key())
            .alpn_protocols(protocols(&[b"h3"]));
        match groups {
            Some(g) => b.kx_groups(g),
            None => b,
        }
        .build()
        .unwrap()
    };
    let classical = [KxGroup::X25519, KxGroup::Secp256r1];
    // (client's groups, server's groups, the group used, the kind).
    type Case<'a> = (
        Option<&'a [KxGroup]>,
        Option<&'a [KxGroup]>,
        KxGroup,
        HandshakeKind,
    );
    let cases: [Case; 4] = [
        (None, None, KxGroup::X25519MlKem768, HandshakeKind::Full),
        (None, Some(&classical), KxGroup::X25519, HandshakeKind::Full),
        (Some(&classical), None, KxGroup::X25519, HandshakeKind::Full),
        (
            Some(&[KxGroup::Secp384r1, KxGroup::X25519]),
            Some(&[KxGroup::X25519]),
            KxGroup::X25519,
            HandshakeKind::FullWithHelloRetryRequest,
        ),
    ];
    for (client_groups, server_groups, group, kind) in cases {
        let (mut c, mut s) = pair(&client_with(client_groups), &server_with(server_groups));
        let hello_len: usize = c
            .outbox
            .iter()
            .filter(|(l, _)| *l == Level::Initial)
            .map(|(_, d)| d.len())
            .sum();
        // The hybrid's key share alone is 1216 bytes: more than one
        // Initial packet can carry.
        assert_eq!(
            hello_len > 1200,
            client_groups.is_none(),
            "ClientHello of {hello_len} bytes"
        );
        run(&mut c, &mut s).unwrap();
        assert_eq!(
            c.tls.kx_group(),
            Some(group),
            "{client_groups:?} {server_groups:?}"
        );
        assert_eq!(s.tls.kx_group(), Some(group));
        assert_eq!(c.tls.conn.handshake_kind(), Some(kind));
        assert_keys_match(
            &c.one_rtt.as_ref().unwrap().0,
            &s.one_rtt.as_ref().unwrap().0,
        );
    }
    let (mut c, mut s) = pair(
        &client_with(Some(&[KxGroup::X25519MlKem768])),
        &server_with(Some(&classical)),
    );
    let failed = run(&mut c, &mut s).unwrap_err();
    assert_eq!(failed.side, Side::Server);
    assert_crypto_error(&failed.error, HANDSHAKE_FAILURE);
    assert_eq!("X25519MLKEM768".parse(), Ok(KxGroup::X25519MlKem768));
    assert_eq!("p256".parse(), Ok(KxGroup::Secp256r1));
}

#[test]
fn alpn_mismatch_fails_with_no_application_protocol() {
    let id = Identity::new("localhost");
    let (mut client, mut server) = pair(
        &client_config(id.roots(), &[b"hq-interop"]),
        &id.server_config(&[b"h3"]),
    );
    let failed = run(&mut client, &mut server).unwrap_err();
    assert_eq!(failed.side, Side::Server);
    // RFC 9001 §8.1: no_application_protocol, QUIC error code 0x0178.
    assert_crypto_error(&failed.error, NO_APPLICATION_PROTOCOL);
    assert_eq!(failed.error.code.0, 0x178);
    assert!(server.tls.error_detail().is_some());
}

#[test]
fn untrusted_certificate_fails_with_unknown_ca() {
    let id = Identity::new("localhost");
    let (mut client, mut server) = pair(
        &client_config(RootCertStore::empty(), &[b"h3"]),
        &id.server_config(&[b"h3"]),
    );
    let failed = run(&mut client, &mut server).unwrap_err();
    assert_eq!(failed.side, Side::Client);
    assert_crypto_error(&failed.error, UNKNOWN_CA);
    assert_eq!(failed.error.code.0, 0x130);
    assert!(client.one_rtt.is_none());
}

#[test]
fn insecure_client_accepts_untrusted_certificate() {
    let id = Identity::new("some.other.name");
    let client_cfg = ClientConfig::with_insecure_no_verification()
        .alpn_protocols(protocols(&[b"h3"]))
        .build()
        .unwrap();
    let (mut client, mut server) = pair(&client_cfg, &id.server_config(&[b"h3"]));
    run(&mut client, &mut server).unwrap();
    assert!(!client.tls.is_handshaking());
}

fn client_auth_server(server_id: &Identity, client_id: &Identity) -> ServerConfig {
    ServerConfig::with_single_cert(vec![server_id.cert.clone()], server_id.key.clone_key())
        .with_client_roots(client_id.roots(), true)
        .alpn_protocols(protocols(&[b"h3"]))
        .build()
        .unwrap()
}

#[test]
fn required_client_certificate_is_verified_and_exposed() {
    let server_id = Identity::new("localhost");
    let client_id = Identity::new("client.example");
    let client_cfg = ClientConfig::with_root_certificates(server_id.roots())
        .with_client_auth_cert(vec![client_id.cert.clone()], client_id.key.clone_key())
        .alpn_protocols(protocols(&[b"h3"]))
        .build()
        .unwrap();
    let (mut client, mut server) = pair(&client_cfg, &client_auth_server(&server_id, &client_id));
    run(&mut client, &mut server).unwrap();
    assert!(!server.tls.is_handshaking());
    assert_eq!(
        server.tls.peer_certificates(),
        Some(&[client_id.cert.clone()][..])
    );
}

#[test]
fn missing_required_client_certificate_fails_with_certificate_required() {
    let server_id = Identity::new("localhost");
    let client_id = Identity::new("client.example");
    let (mut client, mut server) = pair(
        &client_config(server_id.roots(), &[b"h3"]),
        &client_auth_server(&server_id, &client_id),
    );
    let failed = run(&mut client, &mut server).unwrap_err();
    assert_eq!(failed.side, Side::Server);
    assert_crypto_error(&failed.error, CERTIFICATE_REQUIRED);
}

#[test]
fn garbage_crypto_data_fails_with_crypto_error_and_stays_failed() {
    let id = Identity::new("localhost");
    let mut server =
        TlsSession::server(&id.server_config(&[b"h3"]), Version::V1, &server_params()).unwrap();
    let error = server
        .read_handshake(Level::Initial, &[0xff; 64])
        .unwrap_err();
    let alert = error.code.tls_alert().expect("a CRYPTO_ERROR");
    assert!(
        alert == UNEXPECTED_MESSAGE || alert == DECODE_ERROR,
        "unexpected alert {alert}: {error}"
    );
    assert!(server.error_detail().is_some());
    // The session is dead: later input gets the same error.
    assert_eq!(
        server.read_handshake(Level::Initial, &[1, 2, 3]),
        Err(error)
    );
    assert!(server.poll_output().is_none());
}

#[test]
fn crypto_data_at_wrong_level_is_protocol_violation() {
    let id = Identity::new("localhost");
    let cfg = id.server_config(&[b"h3"]);
    for level in [Level::ZeroRtt, Level::Handshake, Level::OneRtt] {
        let mut server = TlsSession::server(&cfg, Version::V1, &server_params()).unwrap();
        let error = server.read_handshake(level, &[1, 0, 0, 0]).unwrap_err();
        assert_eq!(
            error.code,
            TransportErrorCode::PROTOCOL_VIOLATION,
            "{level:?}"
        );
    }
}

/// A ClientHello from a raw rustls QUIC client carrying `params` verbatim.
fn raw_client_hello(params: Vec<u8>) -> Vec<u8> {
    let config = client_config(RootCertStore::empty(), &[b"h3"]);
    let mut conn = rustls::quic::ClientConnection::new(
        Arc::clone(config.rustls()),
        rustls::quic::Version::V1,
        ServerName::try_from("localhost").unwrap(),
        params,
    )
    .unwrap();
    let mut hello = Vec::new();
    assert!(conn.write_hs(&mut hello).is_none());
    hello
}

#[test]
fn invalid_transport_parameters_fail_with_transport_parameter_error() {
    let id = Identity::new("localhost");
    let cfg = id.server_config(&[b"h3"]);
    for params in [
        // max_udp_payload_size (0x03) of 1000: below 1200 (RFC 9000 §18.2).
        vec![0x03, 0x02, 0x43, 0xe8],
        // stateless_reset_token (0x02) from a client (RFC 9000 §18.2).
        [&[0x02, 0x10][..], &[0; 16]].concat(),
        // Truncated parameter.
        vec![0x04, 0x04, 0x80],
    ] {
        let hello = raw_client_hello(params);
        let mut server = TlsSession::server(&cfg, Version::V1, &server_params()).unwrap();
        let error = server.read_handshake(Level::Initial, &hello).unwrap_err();
        assert_eq!(error.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR);
        assert!(server.peer_transport_params().is_none());
    }
}

#[test]
fn invalid_local_transport_parameters_are_refused() {
    let id = Identity::new("localhost");
    let params = TransportParameters {
        ack_delay_exponent: 21,
        ..TransportParameters::default()
    };
    let err = TlsSession::server(&id.server_config(&[]), Version::V1, &params).unwrap_err();
    assert!(matches!(err, ConfigError::TransportParameters(_)), "{err}");
}

/// A ClientHello from a TLS-over-TCP rustls client: no QUIC transport
/// parameters extension, and a non-empty legacy_session_id (RFC 8446
/// Appendix D.4 middlebox compatibility).
fn tcp_client_hello() -> Vec<u8> {
    let config = client_config(RootCertStore::empty(), &[]);
    let mut conn = rustls::ClientConnection::new(
        Arc::clone(config.rustls()),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut records = Vec::new();
    conn.write_tls(&mut records).unwrap();
    // One handshake record: type 22, version, 2-byte length.
    assert_eq!(records[0], 22);
    let len = usize::from(u16::from_be_bytes([records[3], records[4]]));
    assert_eq!(records.len(), 5 + len);
    records.split_off(5)
}

#[test]
fn client_hello_with_legacy_session_id_is_protocol_violation() {
    let id = Identity::new("localhost");
    let hello = tcp_client_hello();
    assert_ne!(hello[SESSION_ID_LEN_OFFSET], 0);
    let mut server =
        TlsSession::server(&id.server_config(&[]), Version::V1, &server_params()).unwrap();
    // Split in two so the check spans reads.
    server.read_handshake(Level::Initial, &hello[..20]).unwrap();
    let error = server
        .read_handshake(Level::Initial, &hello[20..])
        .unwrap_err();
    assert_eq!(error.code, TransportErrorCode::PROTOCOL_VIOLATION);
}

#[test]
fn missing_transport_parameters_extension_fails_with_missing_extension() {
    let id = Identity::new("localhost");
    // Drop the legacy_session_id so only the missing extension is wrong.
    let mut hello = tcp_client_hello();
    let sid_len = usize::from(hello[SESSION_ID_LEN_OFFSET]);
    hello.drain(SESSION_ID_LEN_OFFSET + 1..SESSION_ID_LEN_OFFSET + 1 + sid_len);
    hello[SESSION_ID_LEN_OFFSET] = 0;
    let body_len = (hello.len() - 4) as u32;
    hello[1..4].copy_from_slice(&body_len.to_be_bytes()[1..]);

    let mut server =
        TlsSession::server(&id.server_config(&[]), Version::V1, &server_params()).unwrap();
    let error = server.read_handshake(Level::Initial, &hello).unwrap_err();
    // RFC 9001 §8.2: missing_extension, 0x016d.
    assert_crypto_error(&error, MISSING_EXTENSION);
    assert_eq!(error.code.0, 0x16d);
}

#[test]
fn resumed_client_gets_zero_rtt_keys_matching_server() {
    let id = Identity::new("localhost");
    let client_cfg = ClientConfig::with_root_certificates(id.roots())
        .alpn_protocols(protocols(&[b"h3"]))
        .enable_early_data()
        .build()
        .unwrap();
    let server_cfg = ServerConfig::with_single_cert(vec![id.cert.clone()], id.key.clone_key())
        .alpn_protocols(protocols(&[b"h3"]))
        .enable_early_data()
        .build()
        .unwrap();
    let (mut client, mut server) = pair(&client_cfg, &server_cfg);
    assert!(client.tls.zero_rtt_keys().is_none());
    run(&mut client, &mut server).unwrap();

    // The second connection resumes with the ticket and offers 0-RTT.
    let (mut client, mut server) = pair(&client_cfg, &server_cfg);
    // The remembered server parameters are known before any reply
    // (RFC 9000 §7.4.1).
    assert_eq!(client.tls.peer_transport_params(), Some(&server_params()));
    let client_0rtt = client.tls.zero_rtt_keys().expect("client 0-RTT keys");
    deliver(&mut client, &mut server).unwrap();
    let server_0rtt = server.tls.zero_rtt_keys().expect("server 0-RTT keys");
    assert_packet_keys_match(&client_0rtt.packet, &server_0rtt.packet);
    assert_header_keys_match(&client_0rtt, &server_0rtt);
    run(&mut client, &mut server).unwrap();
    assert!(!client.tls.is_handshaking());
}

/// RFC 9001 Appendix A.2: the CRYPTO frame of the client Initial.
const RFC9001_A2_CRYPTO_FRAME: &str = "
    060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868
    04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578
    616d706c652e636f6dff01000100000a00080006001d00170018001000070005
    04616c706e000500050100000000003300260024001d00209370b2c9caa47fba
    baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400
    0d0010000e0403050306030203080408050806002d00020101001c0002400100
    3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000
    75300901100f088394c8f03e51570806048000ffff";

fn rfc9001_client_hello() -> Vec<u8> {
    let hex: String = RFC9001_A2_CRYPTO_FRAME
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let frame = hex::decode(hex).unwrap();
    // Frame type 0x06, offset 0, length 0x40f1 (= 241, a 2-byte varint).
    assert_eq!(frame[..4], [0x06, 0x00, 0x40, 0xf1]);
    let data = frame[4..].to_vec();
    assert_eq!(data.len(), 241);
    data
}

#[test]
fn parses_sni_and_alpn_from_rfc9001_client_hello() {
    let hello = rfc9001_client_hello();
    assert_eq!(client_hello_length(&hello), Some(241));
    let info = parse_client_hello(&hello).unwrap();
    assert_eq!(info.server_name.as_deref(), Some("example.com"));
    assert_eq!(info.alpn, [b"alpn".to_vec()]);
    assert!(info.quic_transport_parameters.is_some());
    // Trailing stream bytes after the message are ignored.
    let mut longer = hello.clone();
    longer.extend_from_slice(&[0xaa; 10]);
    assert_eq!(parse_client_hello(&longer), Some(info));
}

#[test]
fn incomplete_client_hello_is_not_parsed() {
    let hello = rfc9001_client_hello();
    for len in 0..hello.len() {
        assert_eq!(parse_client_hello(&hello[..len]), None, "prefix of {len}");
    }
    assert_eq!(client_hello_length(&hello[..3]), None);
    assert_eq!(client_hello_length(&hello[..4]), Some(241));
}

#[test]
fn malformed_client_hello_extensions_are_rejected() {
    let hello = rfc9001_client_hello();
    // Not a ClientHello (ServerHello type).
    let mut other = hello.clone();
    other[0] = 2;
    assert_eq!(parse_client_hello(&other), None);
    assert_eq!(client_hello_length(&other), None);
    // SNI list length one too long: overruns the extension.
    let sni = hello.windows(4).position(|w| w == [0x00, 0x00, 0x00, 0x10]);
    let mut bad = hello.clone();
    bad[sni.unwrap() + 5] += 1;
    assert_eq!(parse_client_hello(&bad), None);
    // An empty protocol name (RFC 7301 §3.1).
    let alpn = hello
        .windows(6)
        .position(|w| w == [0x00, 0x10, 0x00, 0x07, 0x00, 0x05])
        .unwrap();
    let mut bad = hello.clone();
    bad[alpn + 6] = 0;
    assert_eq!(parse_client_hello(&bad), None);
}

#[test]
fn parses_sni_and_alpn_from_rustls_client_hello() {
    let config = client_config(RootCertStore::empty(), &[b"h3", b"hq-interop"]);
    let mut c = TlsSession::client(&config, Version::V1, "localhost", &client_params()).unwrap();
    let Some(TlsOutput::Data { level, data }) = c.poll_output() else {
        panic!("no ClientHello");
    };
    assert_eq!(level, Level::Initial);
    assert_eq!(client_hello_length(&data), Some(data.len()));
    let info = parse_client_hello(&data).unwrap();
    assert_eq!(info.server_name.as_deref(), Some("localhost"));
    assert_eq!(info.alpn, protocols(&[b"h3", b"hq-interop"]));
    // The raw transport parameters, for a server choosing a version
    // (RFC 9368 §2.3).
    let raw = info.quic_transport_parameters.unwrap();
    assert_eq!(
        TransportParameters::decode(Side::Client, &raw).unwrap(),
        client_params()
    );
    assert_eq!(
        data[SESSION_ID_LEN_OFFSET], 0,
        "QUIC: empty legacy_session_id"
    );
}

#[test]
fn client_hello_without_sni_for_ip_address() {
    let config = client_config(RootCertStore::empty(), &[]);
    let mut c = TlsSession::client(&config, Version::V1, "127.0.0.1", &client_params()).unwrap();
    let Some(TlsOutput::Data { data, .. }) = c.poll_output() else {
        panic!("no ClientHello");
    };
    let info = parse_client_hello(&data).unwrap();
    assert_eq!(info.server_name, None);
    assert!(info.alpn.is_empty());
}

#[test]
fn invalid_server_name_is_refused() {
    let config = client_config(RootCertStore::empty(), &[]);
    let err =
        TlsSession::client(&config, Version::V1, "not a name!", &client_params()).unwrap_err();
    assert!(matches!(err, ConfigError::InvalidServerName(_)), "{err}");
}

proptest! {
    #[test]
    fn client_hello_parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = client_hello_length(&data);
        let _ = parse_client_hello(&data);
    }

    #[test]
    fn client_hello_parser_survives_mutations(
        index in 0usize..241,
        value in any::<u8>(),
        cut in 0usize..=241,
    ) {
        let mut hello = rfc9001_client_hello();
        hello[index] = value;
        hello.truncate(cut);
        let _ = parse_client_hello(&hello);
    }
}

/// RFC 9368 §2.3, RFC 9369 §4.1: a client that offered v2 while starting
/// in v1 moves its handshake to v2 before reading the ServerHello of a
/// server answering in v2; its keys (Handshake, 1-RTT, and the next key
/// phase, "quicv2 ku") then match the server's.
#[test]
fn client_switches_to_the_servers_version_before_the_server_hello() {
    let id = Identity::new("localhost");
    let client_config = client_config(id.roots(), &[b"h3"]);
    let c = TlsSession::client_offering(&client_config, Version::V1, "localhost", &client_params())
        .unwrap();
    let s = TlsSession::server(&id.server_config(&[b"h3"]), Version::V2, &server_params()).unwrap();
    let (mut client, mut server) = (Peer::new(c), Peer::new(s));
    deliver(&mut client, &mut server).unwrap();
    assert!(client.tls.set_version(Version::V2));
    assert_eq!(client.tls.version(), Version::V2);
    run(&mut client, &mut server).unwrap();
    assert!(!client.tls.set_version(Version::V1), "after Handshake keys");
    let (ch, sh) = (client.handshake.unwrap(), server.handshake.unwrap());
    assert_keys_match(&ch, &sh);
    let (c1, mut cu) = client.one_rtt.unwrap();
    let (s1, mut su) = server.one_rtt.unwrap();
    assert_keys_match(&c1, &s1);
    let (cn, sn) = (cu.next_packet_keys(), su.next_packet_keys());
    assert_packet_keys_match(&cn.local, &sn.remote);
    assert_packet_keys_match(&sn.local, &cn.remote);
}

/// The version's labels matter: without the switch the keys differ, and
/// a client that offered nothing else cannot switch.
#[test]
fn keys_of_different_versions_do_not_match() {
    let id = Identity::new("localhost");
    let client_config = client_config(id.roots(), &[b"h3"]);
    let c = TlsSession::client(&client_config, Version::V1, "localhost", &client_params()).unwrap();
    let s = TlsSession::server(&id.server_config(&[b"h3"]), Version::V2, &server_params()).unwrap();
    let (mut client, mut server) = (Peer::new(c), Peer::new(s));
    assert!(!client.tls.set_version(Version::V2));
    deliver(&mut client, &mut server).unwrap();
    deliver(&mut server, &mut client).unwrap();
    let (ch, sh) = (client.handshake.unwrap(), server.handshake.unwrap());
    let header = [0x40, 1, 2, 3, 4];
    let mut buf = [&header[..], b"payload", &[0; 16]].concat();
    sh.local.packet.seal(1, &mut buf, header.len()).unwrap();
    assert!(ch.remote.packet.open(1, &mut buf, header.len()).is_err());
}
