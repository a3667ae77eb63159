//! AES-128 packet and header keys from raw key bytes, on `ring`.
//!
//! rustls's public [`rustls::quic::Algorithm`] only accepts an `AeadKey`,
//! which code outside rustls can build only at 32 bytes. For
//! TLS_AES_128_GCM_SHA256 keys derived from a caller-supplied traffic secret
//! (see [`TrafficSecret`](super::TrafficSecret)) we therefore implement the
//! rustls key traits over ring's AEAD and QUIC header-protection primitives.
//! Only the QUIC framing (nonce construction, mask application) lives here.

use ring::aead;
use rustls::Error;
use rustls::quic::{self, Tag};

/// RFC 9001 §6.6: for AEAD_AES_128_GCM the confidentiality limit is 2^23
/// encrypted packets.
const AES_GCM_CONFIDENTIALITY_LIMIT: u64 = 1 << 23;
/// RFC 9001 §6.6: for AEAD_AES_128_GCM the integrity limit is 2^52 invalid
/// packets.
const AES_GCM_INTEGRITY_LIMIT: u64 = 1 << 52;

/// AEAD_AES_128_GCM packet protection with a given key and IV.
pub(super) struct Aes128GcmPacketKey {
    key: aead::LessSafeKey,
    iv: [u8; aead::NONCE_LEN],
}

impl Aes128GcmPacketKey {
    /// A key from 16 key bytes and a 12-byte IV; `None` if `key` has the
    /// wrong length.
    pub(super) fn new(key: &[u8], iv: [u8; aead::NONCE_LEN]) -> Option<Self> {
        let key = aead::UnboundKey::new(&aead::AES_128_GCM, key).ok()?;
        Some(Self {
            key: aead::LessSafeKey::new(key),
            iv,
        })
    }

    /// RFC 9001 §5.3: the 62-bit packet number, left-padded with zeros to
    /// the IV size in network byte order, exclusive-ORed with the IV.
    fn nonce(&self, pn: u64) -> aead::Nonce {
        let mut nonce = self.iv;
        for (n, p) in nonce[aead::NONCE_LEN - 8..]
            .iter_mut()
            .zip(pn.to_be_bytes())
        {
            *n ^= p;
        }
        aead::Nonce::assume_unique_for_key(nonce)
    }
}

impl quic::PacketKey for Aes128GcmPacketKey {
    fn encrypt_in_place(&self, pn: u64, header: &[u8], payload: &mut [u8]) -> Result<Tag, Error> {
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(pn), aead::Aad::from(header), payload)
            .map_err(|_| Error::EncryptError)?;
        Ok(Tag::from(tag.as_ref()))
    }

    fn decrypt_in_place<'a>(
        &self,
        pn: u64,
        header: &[u8],
        payload: &'a mut [u8],
    ) -> Result<&'a [u8], Error> {
        let plain = self
            .key
            .open_in_place(self.nonce(pn), aead::Aad::from(header), payload)
            .map_err(|_| Error::DecryptError)?;
        Ok(plain)
    }

    fn tag_len(&self) -> usize {
        aead::AES_128_GCM.tag_len()
    }

    fn confidentiality_limit(&self) -> u64 {
        AES_GCM_CONFIDENTIALITY_LIMIT
    }

    fn integrity_limit(&self) -> u64 {
        AES_GCM_INTEGRITY_LIMIT
    }
}

/// AES-128-based header protection (RFC 9001 §5.4.3).
pub(super) struct Aes128HeaderKey(aead::quic::HeaderProtectionKey);

impl Aes128HeaderKey {
    /// A key from 16 bytes; `None` if `key` has the wrong length.
    pub(super) fn new(key: &[u8]) -> Option<Self> {
        aead::quic::HeaderProtectionKey::new(&aead::quic::AES_128, key)
            .ok()
            .map(Self)
    }

    /// RFC 9001 §5.4.1, Figure 6. `unmask` selects whether the packet number
    /// length is read after (removal) or before (application) masking.
    fn xor(&self, sample: &[u8], first: &mut u8, pn: &mut [u8], unmask: bool) -> Result<(), Error> {
        let mask = self
            .0
            .new_mask(sample)
            .map_err(|_| Error::General("invalid header protection sample".into()))?;
        if pn.len() > 4 {
            return Err(Error::General("packet number too long".into()));
        }
        let bits = if *first & 0x80 == 0x80 {
            0x0f // long header: 4 bits masked
        } else {
            0x1f // short header: 5 bits masked
        };
        let plain_first = if unmask {
            *first ^ (mask[0] & bits)
        } else {
            *first
        };
        let pn_len = usize::from(plain_first & 0x03) + 1;
        *first ^= mask[0] & bits;
        for (b, m) in pn.iter_mut().zip(&mask[1..]).take(pn_len) {
            *b ^= m;
        }
        Ok(())
    }
}

impl quic::HeaderProtectionKey for Aes128HeaderKey {
    fn encrypt_in_place(&self, sample: &[u8], first: &mut u8, pn: &mut [u8]) -> Result<(), Error> {
        self.xor(sample, first, pn, false)
    }

    fn decrypt_in_place(&self, sample: &[u8], first: &mut u8, pn: &mut [u8]) -> Result<(), Error> {
        self.xor(sample, first, pn, true)
    }

    fn sample_len(&self) -> usize {
        self.0.algorithm().sample_len()
    }
}
