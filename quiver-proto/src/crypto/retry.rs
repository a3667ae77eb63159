//! The Retry Integrity Tag (RFC 9001 §5.8, RFC 9369 §3.3.3).
//!
//! rustls has no API for this fixed-key AEAD, so it uses ring's
//! AEAD_AES_128_GCM directly.

use ring::aead;

use super::CryptoError;
use crate::{ConnectionId, MAX_CID_SIZE, Version};

/// Length of the Retry Integrity Tag: 128 bits (RFC 9001 §5.8).
pub const RETRY_INTEGRITY_TAG_LEN: usize = 16;

/// The longest Retry packet, tag included, that quiver will build a tag for
/// or verify. The Retry Pseudo-Packet is assembled on the stack, so its size
/// must be bounded; this is well above any Retry that fits a 1500-byte MTU.
pub const MAX_RETRY_PACKET_LEN: usize = 2048;

/// ODCID Length (8) ‖ ODCID (0..160) ‖ Retry packet without the tag.
const MAX_PSEUDO_PACKET_LEN: usize = 1 + MAX_CID_SIZE + MAX_RETRY_PACKET_LEN;

/// RFC 9001 §5.8: K = 0xbe0c690b9f66575a1d766b54e368c84e.
const V1_KEY: [u8; 16] = [
    0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e,
];
/// RFC 9001 §5.8: N = 0x461599d35d632bf2239825bb.
const V1_NONCE: [u8; aead::NONCE_LEN] = [
    0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb,
];
/// RFC 9369 §3.3.3: key = 0x8fb4b01b56ac48e260fbcbcead7ccc92.
const V2_KEY: [u8; 16] = [
    0x8f, 0xb4, 0xb0, 0x1b, 0x56, 0xac, 0x48, 0xe2, 0x60, 0xfb, 0xcb, 0xce, 0xad, 0x7c, 0xcc, 0x92,
];
/// RFC 9369 §3.3.3: nonce = 0xd86969bc2d7c6d9990efb04a.
const V2_NONCE: [u8; aead::NONCE_LEN] = [
    0xd8, 0x69, 0x69, 0xbc, 0x2d, 0x7c, 0x6d, 0x99, 0x90, 0xef, 0xb0, 0x4a,
];

/// The AEAD key and nonce for `version`.
fn key_and_nonce(version: Version) -> Result<(aead::LessSafeKey, aead::Nonce), CryptoError> {
    let (key, nonce) = match version {
        Version::V1 => (&V1_KEY, V1_NONCE),
        Version::V2 => (&V2_KEY, V2_NONCE),
    };
    let key =
        aead::UnboundKey::new(&aead::AES_128_GCM, key).map_err(|_| CryptoError::EncryptFailed)?;
    Ok((
        aead::LessSafeKey::new(key),
        aead::Nonce::assume_unique_for_key(nonce),
    ))
}

/// Builds the Retry Pseudo-Packet (RFC 9001 §5.8, Figure 8) in `buf`:
/// ODCID Length ‖ ODCID ‖ the Retry packet without its tag.
fn pseudo_packet<'a>(
    buf: &'a mut [u8; MAX_PSEUDO_PACKET_LEN],
    odcid: &ConnectionId,
    retry_without_tag: &[u8],
) -> Result<&'a [u8], CryptoError> {
    if retry_without_tag.len() + RETRY_INTEGRITY_TAG_LEN > MAX_RETRY_PACKET_LEN {
        return Err(CryptoError::RetryPacketTooLong);
    }
    let odcid_len = odcid.len();
    // A ConnectionId is at most 20 bytes, so this fits in a u8.
    buf[0] = odcid_len as u8;
    buf[1..1 + odcid_len].copy_from_slice(odcid);
    let end = 1 + odcid_len + retry_without_tag.len();
    buf[1 + odcid_len..end].copy_from_slice(retry_without_tag);
    Ok(&buf[..end])
}

/// Computes the Retry Integrity Tag for a Retry packet sent in response to
/// an Initial whose Destination Connection ID was `odcid`.
///
/// `retry_without_tag` is the whole Retry packet up to (not including) the
/// tag. The tag is AEAD_AES_128_GCM with the version's fixed key and nonce,
/// empty plaintext, and the Retry Pseudo-Packet as associated data
/// (RFC 9001 §5.8; v2 key and nonce from RFC 9369 §3.3.3).
pub fn retry_integrity_tag(
    version: Version,
    odcid: &ConnectionId,
    retry_without_tag: &[u8],
) -> Result<[u8; RETRY_INTEGRITY_TAG_LEN], CryptoError> {
    let mut buf = [0; MAX_PSEUDO_PACKET_LEN];
    let aad = pseudo_packet(&mut buf, odcid, retry_without_tag)?;
    let (key, nonce) = key_and_nonce(version)?;
    let tag = key
        .seal_in_place_separate_tag(nonce, aead::Aad::from(aad), &mut [])
        .map_err(|_| CryptoError::EncryptFailed)?;
    let mut out = [0; RETRY_INTEGRITY_TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    Ok(out)
}

/// Verifies the Retry Integrity Tag at the end of `retry_packet` (the whole
/// Retry packet as received), given the Destination Connection ID the
/// client put in its Initial (RFC 9001 §5.8, RFC 9369 §3.3.3).
///
/// A client MUST discard a Retry packet whose tag does not verify
/// (RFC 9000 §17.2.5.2). The tag is checked by AEAD decryption, so the
/// comparison is constant-time.
pub fn verify_retry_integrity(
    version: Version,
    odcid: &ConnectionId,
    retry_packet: &[u8],
) -> Result<(), CryptoError> {
    let Some(body_len) = retry_packet.len().checked_sub(RETRY_INTEGRITY_TAG_LEN) else {
        return Err(CryptoError::PacketTooShort);
    };
    let (body, tag) = retry_packet.split_at(body_len);
    let mut buf = [0; MAX_PSEUDO_PACKET_LEN];
    let aad = pseudo_packet(&mut buf, odcid, body)?;
    let (key, nonce) = key_and_nonce(version)?;
    // Empty ciphertext followed by the tag: opening checks the tag.
    let mut in_out = [0; RETRY_INTEGRITY_TAG_LEN];
    in_out.copy_from_slice(tag);
    key.open_in_place(nonce, aead::Aad::from(aad), &mut in_out)
        .map(|_| ())
        .map_err(|_| CryptoError::RetryIntegrityMismatch)
}
