//! Byte-for-byte checks against RFC 9001 Appendix A and RFC 9369 Appendix A.
//!
//! Both appendices have the same shape, so each file holds the hex values
//! copied from its RFC and the checks here run against either.

mod rfc9001;
mod rfc9369;

use rustls::crypto::tls13::OkmBlock;

use super::key_update::{MAX_HKDF_LABEL, hkdf_expand_label, hkdf_label};
use super::{
    CipherSuite, CryptoError, KeyUpdateSecrets, PacketKey, TrafficSecret, initial_keys,
    retry_integrity_tag, verify_retry_integrity,
};
use crate::coding::Reader;
use crate::{ConnectionId, Side, Version};

/// The values of one RFC's Appendix A, as hex (whitespace ignored).
pub(super) struct Vectors {
    pub version: Version,
    /// RFC 9001 §5.2 / RFC 9369 §3.3.1.
    pub initial_salt: &'static str,
    /// A.1: (label, output length, HkdfLabel bytes).
    pub labels: [(&'static str, usize, &'static str); 5],
    pub initial_secret: &'static str,
    pub client_initial_secret: &'static str,
    pub client_key: &'static str,
    pub client_iv: &'static str,
    pub client_hp: &'static str,
    pub server_initial_secret: &'static str,
    pub server_key: &'static str,
    pub server_iv: &'static str,
    pub server_hp: &'static str,
    /// A.2
    pub client_crypto_frame: &'static str,
    pub client_header: &'static str,
    pub client_sample: &'static str,
    pub client_mask: &'static str,
    pub client_protected_header: &'static str,
    pub client_packet: &'static str,
    /// A.3
    pub server_payload: &'static str,
    pub server_header: &'static str,
    pub server_sample: &'static str,
    pub server_mask: &'static str,
    pub server_protected_header: &'static str,
    pub server_packet: &'static str,
    /// A.4
    pub retry_packet: &'static str,
    /// A.5
    pub a5_secret: &'static str,
    pub a5_key: &'static str,
    pub a5_iv: &'static str,
    pub a5_hp: &'static str,
    pub a5_ku: &'static str,
    pub a5_nonce: &'static str,
    pub a5_header: &'static str,
    pub a5_payload: &'static str,
    pub a5_ciphertext: &'static str,
    pub a5_sample: &'static str,
    pub a5_mask: &'static str,
    pub a5_protected_header: &'static str,
    pub a5_packet: &'static str,
}

/// The client-chosen Destination Connection ID of both appendices.
const DCID: &str = "8394c8f03e515708";
/// A.2: packet number of the client Initial.
const CLIENT_PN: u64 = 2;
/// A.2: the payload is padded with PADDING frames to 1162 bytes.
const CLIENT_PAYLOAD_LEN: usize = 1162;
/// A.3: packet number of the server Initial.
const SERVER_PN: u64 = 1;
/// A.5: packet number of the short-header packet.
const A5_PN: u64 = 654_360_564;
const TAG_LEN: usize = 16;

fn hex(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).expect("valid hex in test vector")
}

fn dcid() -> ConnectionId {
    ConnectionId::new(&hex(DCID)).unwrap()
}

/// The Packet Number offset of an Initial packet (RFC 9001 §5.4.2):
/// first byte, version, DCID, SCID, token, Length.
fn initial_pn_offset(packet: &[u8]) -> usize {
    let mut r = Reader::new(packet);
    assert_eq!(r.u8().unwrap() & 0x80, 0x80, "long header");
    r.u32().unwrap();
    ConnectionId::decode_len_prefixed(&mut r).unwrap().unwrap();
    ConnectionId::decode_len_prefixed(&mut r).unwrap().unwrap();
    r.varint_prefixed().unwrap(); // token
    r.varint().unwrap(); // length
    r.position()
}

/// The unprotected packet number bytes as an integer.
fn truncated_pn(buf: &[u8], pn_offset: usize, pn_len: usize) -> u64 {
    buf[pn_offset..pn_offset + pn_len]
        .iter()
        .fold(0, |acc, b| (acc << 8) | u64::from(*b))
}

/// Applies header protection to a synthetic packet `first ‖ 0000 ‖ sample`
/// with a 4-byte packet number, so the packet-number bytes become
/// mask[1..5] and the first byte shows the low bits of mask[0].
fn check_mask(header: &super::HeaderKey, sample: &[u8], mask: &[u8]) {
    for (first, bits) in [(0xc3u8, 0x0fu8), (0x43, 0x1f)] {
        let mut buf = vec![first, 0, 0, 0, 0];
        buf.extend_from_slice(sample);
        header.apply(&mut buf, 1).unwrap();
        assert_eq!(buf[0], first ^ (mask[0] & bits), "first byte mask");
        assert_eq!(&buf[1..5], &mask[1..5], "packet number mask");
        assert_eq!(header.remove(&mut buf, 1).unwrap(), 4);
        assert_eq!(&buf[..5], &[first, 0, 0, 0, 0]);
    }
}

/// Seals the same message with two keys and expects identical output.
fn same_packet_key(a: &PacketKey, b: &PacketKey) {
    let mut x = b"header\x00\x00 some payload bytes 0123456789abcdef".to_vec();
    x.extend_from_slice(&[0; TAG_LEN]);
    let mut y = x.clone();
    a.seal(7, &mut x, 8).unwrap();
    b.seal(7, &mut y, 8).unwrap();
    assert_eq!(x, y);
}

pub(super) fn a_1_keys(v: &Vectors) {
    // HkdfLabel encodings (RFC 8446 §7.1).
    for (label, len, expected) in v.labels {
        let mut buf = [0; MAX_HKDF_LABEL];
        assert_eq!(
            hkdf_label(label.as_bytes(), len, &mut buf),
            hex(expected),
            "{label}"
        );
    }

    // initial_secret = HKDF-Extract(initial_salt, cid) = HMAC(salt, cid).
    let hkdf = CipherSuite::Aes128GcmSha256.tls13().hkdf_provider;
    let salt = hex(v.initial_salt);
    let extract = hkdf.hmac_sign(&OkmBlock::new(&salt), &hex(DCID));
    assert_eq!(extract.as_ref(), hex(v.initial_secret).as_slice());

    let initial = hkdf.extract_from_secret(Some(&salt), &hex(DCID));
    let mut client_secret = [0; 32];
    hkdf_expand_label(&*initial, b"client in", &mut client_secret);
    assert_eq!(client_secret.as_slice(), hex(v.client_initial_secret));
    let mut server_secret = [0; 32];
    hkdf_expand_label(&*initial, b"server in", &mut server_secret);
    assert_eq!(server_secret.as_slice(), hex(v.server_initial_secret));

    let suite = CipherSuite::Aes128GcmSha256;
    let client = TrafficSecret::new(suite, v.version, &client_secret).unwrap();
    let m = client.key_material();
    assert_eq!(m.key, hex(v.client_key));
    assert_eq!(m.iv.as_slice(), hex(v.client_iv));
    assert_eq!(m.hp, hex(v.client_hp));
    let server = TrafficSecret::new(suite, v.version, &server_secret).unwrap();
    let m = server.key_material();
    assert_eq!(m.key, hex(v.server_key));
    assert_eq!(m.iv.as_slice(), hex(v.server_iv));
    assert_eq!(m.hp, hex(v.server_hp));

    // rustls's Initial keys do not expose their bytes: check hp through the
    // masks given in A.2 and A.3, and key/iv against the raw derivation.
    let client_keys = initial_keys(v.version, &dcid(), Side::Client);
    let server_keys = initial_keys(v.version, &dcid(), Side::Server);
    let client_sample = hex(v.client_sample);
    let client_mask = hex(v.client_mask);
    let server_sample = hex(v.server_sample);
    let server_mask = hex(v.server_mask);
    check_mask(&client_keys.local.header, &client_sample, &client_mask);
    check_mask(&server_keys.remote.header, &client_sample, &client_mask);
    check_mask(&server_keys.local.header, &server_sample, &server_mask);
    check_mask(&client_keys.remote.header, &server_sample, &server_mask);
    check_mask(&client.header_key(), &client_sample, &client_mask);
    check_mask(&server.header_key(), &server_sample, &server_mask);
    same_packet_key(&client_keys.local.packet, &client.packet_key());
    same_packet_key(&server_keys.remote.packet, &client.packet_key());
    same_packet_key(&server_keys.local.packet, &server.packet_key());
    same_packet_key(&client_keys.remote.packet, &server.packet_key());
}

/// A.2: header ‖ CRYPTO frame ‖ PADDING to 1162 bytes ‖ room for the tag.
fn client_plain_packet(v: &Vectors) -> (Vec<u8>, usize) {
    let header = hex(v.client_header);
    let mut buf = header.clone();
    buf.extend_from_slice(&hex(v.client_crypto_frame));
    buf.resize(header.len() + CLIENT_PAYLOAD_LEN + TAG_LEN, 0);
    (buf, header.len())
}

fn protect(keys: &super::DirectionalKeys, pn: u64, mut buf: Vec<u8>) -> Vec<u8> {
    let pn_offset = initial_pn_offset(&buf);
    let pn_len = usize::from(buf[0] & 0x03) + 1;
    keys.packet.seal(pn, &mut buf, pn_offset + pn_len).unwrap();
    keys.header.apply(&mut buf, pn_offset).unwrap();
    buf
}

pub(super) fn a_2_client_initial_protect(v: &Vectors) {
    let (plain, header_len) = client_plain_packet(v);
    assert_eq!(plain.len(), 1200);
    let keys = initial_keys(v.version, &dcid(), Side::Client);

    let pn_offset = initial_pn_offset(&plain);
    assert_eq!(pn_offset + 4, header_len);
    let mut sealed = plain.clone();
    keys.local
        .packet
        .seal(CLIENT_PN, &mut sealed, header_len)
        .unwrap();
    assert_eq!(
        &sealed[pn_offset + 4..pn_offset + 4 + 16],
        hex(v.client_sample).as_slice()
    );

    let packet = protect(&keys.local, CLIENT_PN, plain.clone());
    assert_eq!(&packet[..header_len], hex(v.client_protected_header));
    assert_eq!(packet, hex(v.client_packet));

    // The same from the raw secret (ring AES-128-GCM fallback path).
    let raw = client_traffic_secret(v);
    assert_eq!(protect(&raw.keys(), CLIENT_PN, plain), packet);
}

fn client_traffic_secret(v: &Vectors) -> TrafficSecret {
    let secret = hex(v.client_initial_secret);
    TrafficSecret::new(CipherSuite::Aes128GcmSha256, v.version, &secret).unwrap()
}

/// Removes protection; returns (header_len, payload_len) and checks the pn.
fn unprotect(keys: &super::DirectionalKeys, buf: &mut [u8], pn_offset: usize, pn: u64) -> usize {
    let pn_len = keys.header.remove(buf, pn_offset).unwrap();
    assert_eq!(truncated_pn(buf, pn_offset, pn_len), pn);
    let header_len = pn_offset + pn_len;
    let len = keys.packet.open(pn, buf, header_len).unwrap();
    header_len + len
}

pub(super) fn a_2_client_initial_unprotect(v: &Vectors) {
    let keys = initial_keys(v.version, &dcid(), Side::Server);
    let (plain, header_len) = client_plain_packet(v);
    let packet = hex(v.client_packet);
    let pn_offset = initial_pn_offset(&packet);

    let mut buf = packet.clone();
    let end = unprotect(&keys.remote, &mut buf, pn_offset, CLIENT_PN);
    assert_eq!(end, header_len + CLIENT_PAYLOAD_LEN);
    assert_eq!(&buf[..end], &plain[..end]);

    // Tampering with a ciphertext byte or the header fails authentication.
    for at in [header_len + 100, 3] {
        let mut buf = packet.clone();
        buf[at] ^= 1;
        keys.remote.header.remove(&mut buf, pn_offset).unwrap();
        assert_eq!(
            keys.remote.packet.open(CLIENT_PN, &mut buf, header_len),
            Err(CryptoError::DecryptFailed)
        );
    }
    // The client's own remote keys are the server's: they cannot open it.
    let client = initial_keys(v.version, &dcid(), Side::Client);
    let mut buf = packet.clone();
    client.remote.header.remove(&mut buf, pn_offset).unwrap();
    assert!(
        client
            .remote
            .packet
            .open(CLIENT_PN, &mut buf, header_len)
            .is_err()
    );
}

pub(super) fn a_3_server_initial(v: &Vectors) {
    let header = hex(v.server_header);
    let mut plain = header.clone();
    plain.extend_from_slice(&hex(v.server_payload));
    plain.resize(plain.len() + TAG_LEN, 0);
    let pn_offset = initial_pn_offset(&plain);
    assert_eq!(pn_offset + 2, header.len());

    let server = initial_keys(v.version, &dcid(), Side::Server);
    let mut sealed = plain.clone();
    server
        .local
        .packet
        .seal(SERVER_PN, &mut sealed, header.len())
        .unwrap();
    assert_eq!(
        &sealed[pn_offset + 4..pn_offset + 20],
        hex(v.server_sample).as_slice()
    );
    let packet = protect(&server.local, SERVER_PN, plain.clone());
    assert_eq!(&packet[..header.len()], hex(v.server_protected_header));
    assert_eq!(packet, hex(v.server_packet));

    let client = initial_keys(v.version, &dcid(), Side::Client);
    let mut buf = packet;
    let end = unprotect(&client.remote, &mut buf, pn_offset, SERVER_PN);
    assert_eq!(end, plain.len() - TAG_LEN);
    assert_eq!(&buf[..end], &plain[..end]);
}

pub(super) fn a_4_retry_tag(v: &Vectors) {
    let retry = hex(v.retry_packet);
    let (body, tag) = retry.split_at(retry.len() - TAG_LEN);
    let odcid = dcid();
    assert_eq!(
        retry_integrity_tag(v.version, &odcid, body)
            .unwrap()
            .as_slice(),
        tag
    );
    verify_retry_integrity(v.version, &odcid, &retry).unwrap();

    // Forged tag, altered token, wrong ODCID and wrong version all fail.
    let mut forged = retry.clone();
    *forged.last_mut().unwrap() ^= 0x80;
    assert_eq!(
        verify_retry_integrity(v.version, &odcid, &forged),
        Err(CryptoError::RetryIntegrityMismatch)
    );
    let mut altered = retry.clone();
    altered[body.len() - 1] ^= 1;
    assert_eq!(
        verify_retry_integrity(v.version, &odcid, &altered),
        Err(CryptoError::RetryIntegrityMismatch)
    );
    let other = ConnectionId::new(&hex("8394c8f03e515709")).unwrap();
    assert_eq!(
        verify_retry_integrity(v.version, &other, &retry),
        Err(CryptoError::RetryIntegrityMismatch)
    );
    let other_version = match v.version {
        Version::V1 => Version::V2,
        Version::V2 => Version::V1,
    };
    assert_eq!(
        verify_retry_integrity(other_version, &odcid, &retry),
        Err(CryptoError::RetryIntegrityMismatch)
    );
    assert_eq!(
        verify_retry_integrity(v.version, &odcid, &retry[..15]),
        Err(CryptoError::PacketTooShort)
    );
    let huge = vec![0; super::MAX_RETRY_PACKET_LEN + 1];
    assert_eq!(
        verify_retry_integrity(v.version, &odcid, &huge),
        Err(CryptoError::RetryPacketTooLong)
    );
}

fn a5_secret(v: &Vectors) -> TrafficSecret {
    let secret = hex(v.a5_secret);
    TrafficSecret::new(CipherSuite::ChaCha20Poly1305Sha256, v.version, &secret).unwrap()
}

pub(super) fn a_5_chacha20_short_header(v: &Vectors) {
    let secret = a5_secret(v);
    let m = secret.key_material();
    assert_eq!(m.key, hex(v.a5_key));
    assert_eq!(m.iv.as_slice(), hex(v.a5_iv));
    assert_eq!(m.hp, hex(v.a5_hp));
    assert_eq!(secret.next().secret_bytes(), hex(v.a5_ku));

    // nonce = iv XOR left-padded packet number (RFC 9001 §5.3).
    let mut nonce = m.iv;
    for (n, p) in nonce[4..].iter_mut().zip(A5_PN.to_be_bytes()) {
        *n ^= p;
    }
    assert_eq!(nonce.as_slice(), hex(v.a5_nonce));

    let keys = secret.keys();
    let header = hex(v.a5_header);
    let pn_offset = 1; // short header, empty DCID
    let mut buf = header.clone();
    buf.extend_from_slice(&hex(v.a5_payload));
    buf.resize(buf.len() + TAG_LEN, 0);
    let plain = buf.clone();
    keys.packet.seal(A5_PN, &mut buf, header.len()).unwrap();
    assert_eq!(&buf[header.len()..], hex(v.a5_ciphertext));
    assert_eq!(&buf[pn_offset + 4..], hex(v.a5_sample));
    keys.header.apply(&mut buf, pn_offset).unwrap();
    assert_eq!(&buf[..header.len()], hex(v.a5_protected_header));
    assert_eq!(buf, hex(v.a5_packet));
    check_mask(&keys.header, &hex(v.a5_sample), &hex(v.a5_mask));

    // Unprotect: the 21-byte packet is exactly long enough to sample.
    let pn_len = keys.header.remove(&mut buf, pn_offset).unwrap();
    assert_eq!(pn_len, 3);
    assert_eq!(truncated_pn(&buf, pn_offset, pn_len), A5_PN & 0xff_ffff);
    let len = keys
        .packet
        .open(A5_PN, &mut buf, pn_offset + pn_len)
        .unwrap();
    assert_eq!(len, 1);
    assert_eq!(&buf[..header.len() + len], &plain[..header.len() + len]);

    // One byte shorter cannot hold a sample: error, not panic (§5.4.2).
    let mut short = hex(v.a5_packet);
    short.pop();
    assert_eq!(
        keys.header.remove(&mut short, pn_offset),
        Err(CryptoError::PacketTooShort)
    );
    assert_eq!(
        keys.header.apply(&mut short, pn_offset),
        Err(CryptoError::PacketTooShort)
    );
    assert_eq!(
        keys.header.remove(&mut short, 0),
        Err(CryptoError::InvalidHeader)
    );
    assert_eq!(
        keys.packet.open(A5_PN, &mut short[..10], 4),
        Err(CryptoError::PacketTooShort)
    );
}

pub(super) fn a_5_key_update(v: &Vectors) {
    let secret = a5_secret(v);
    let ku = TrafficSecret::new(secret.suite(), v.version, &hex(v.a5_ku)).unwrap();
    let mut updates = KeyUpdateSecrets::from_traffic_secrets(secret.clone(), secret.clone());

    // Generation 0 is the A.5 key itself.
    let gen0 = updates.next_packet_keys();
    let mut buf = hex(v.a5_header);
    buf.extend_from_slice(&hex(v.a5_payload));
    buf.resize(buf.len() + TAG_LEN, 0);
    gen0.local.seal(A5_PN, &mut buf, 4).unwrap();
    assert_eq!(&buf[4..], hex(v.a5_ciphertext));

    // Generation 1 comes from the "ku" secret; it cannot open gen-0 packets.
    let gen1 = updates.next_packet_keys();
    same_packet_key(&gen1.local, &ku.packet_key());
    same_packet_key(&gen1.remote, &ku.packet_key());
    assert_eq!(
        gen1.remote.open(A5_PN, &mut buf.clone(), 4),
        Err(CryptoError::DecryptFailed)
    );
    assert_eq!(gen0.remote.open(A5_PN, &mut buf, 4), Ok(1));

    // Generation 2 = ku applied twice.
    let gen2 = updates.next_packet_keys();
    same_packet_key(&gen2.local, &ku.next().packet_key());
    assert_eq!(gen2.local.confidentiality_limit(), u64::MAX);
    assert_eq!(gen2.local.integrity_limit(), 1 << 36);
    assert_eq!(gen2.local.tag_len(), TAG_LEN);
}

#[test]
fn aead_limits_follow_rfc9001_section_6_6() {
    let keys = initial_keys(Version::V1, &dcid(), Side::Client);
    assert_eq!(keys.local.packet.confidentiality_limit(), 1 << 23);
    assert_eq!(keys.local.packet.integrity_limit(), 1 << 52);
    let raw = TrafficSecret::new(CipherSuite::Aes128GcmSha256, Version::V1, &[7; 32]).unwrap();
    assert_eq!(raw.packet_key().confidentiality_limit(), 1 << 23);
    assert_eq!(raw.packet_key().integrity_limit(), 1 << 52);
    assert_eq!(
        TrafficSecret::new(CipherSuite::Aes256GcmSha384, Version::V1, &[7; 32]).unwrap_err(),
        CryptoError::InvalidSecretLength {
            expected: 48,
            actual: 32
        }
    );
    let aes256 = TrafficSecret::new(CipherSuite::Aes256GcmSha384, Version::V2, &[7; 48]).unwrap();
    let keys = aes256.keys();
    let mut buf = [0u8; 40];
    buf[0] = 0x41;
    keys.packet.seal(9, &mut buf, 3).unwrap();
    keys.header.apply(&mut buf, 1).unwrap();
    assert_eq!(keys.header.remove(&mut buf, 1), Ok(2));
    assert_eq!(keys.packet.open(9, &mut buf, 3), Ok(40 - 3 - TAG_LEN));
}

#[test]
fn seal_rejects_buffer_without_room_for_tag() {
    let keys = initial_keys(Version::V1, &dcid(), Side::Client);
    let mut buf = [0u8; 20];
    assert_eq!(
        keys.local.packet.seal(0, &mut buf, 5),
        Err(CryptoError::PacketTooShort)
    );
    assert_eq!(
        keys.local.packet.open(0, &mut buf, 5),
        Err(CryptoError::PacketTooShort)
    );
}
