//! Packet keys (RFC 9001 §5.3) and Initial keys (RFC 9001 §5.2).

use std::fmt;

use super::{CipherSuite, CryptoError, HeaderKey, rustls_side, rustls_version};
use crate::{ConnectionId, Side, Version};

/// An AEAD packet-protection key and IV for one direction (RFC 9001 §5.3).
///
/// Seals and opens packets in place in a datagram buffer, without
/// allocating.
pub struct PacketKey {
    inner: Box<dyn rustls::quic::PacketKey>,
}

impl PacketKey {
    /// Encrypts a packet in place.
    ///
    /// `buf` holds `header ‖ payload ‖ room for the tag`: the first
    /// `header_len` bytes are the unprotected header up to and including the
    /// packet number, used as associated data; the last [`tag_len`] bytes are
    /// overwritten with the authentication tag; everything in between is the
    /// plaintext, encrypted in place. `pn` is the full packet number, which
    /// forms the nonce with the IV (RFC 9001 §5.3).
    ///
    /// Apply header protection only afterwards (RFC 9001 §5.3: the AEAD is
    /// applied prior to header protection).
    ///
    /// [`tag_len`]: Self::tag_len
    pub fn seal(&self, pn: u64, buf: &mut [u8], header_len: usize) -> Result<(), CryptoError> {
        let tag_len = self.tag_len();
        if buf.len() < header_len.saturating_add(tag_len) {
            return Err(CryptoError::PacketTooShort);
        }
        let (header, rest) = buf.split_at_mut(header_len);
        let (payload, tag_room) = rest.split_at_mut(rest.len() - tag_len);
        let tag = self
            .inner
            .encrypt_in_place(pn, header, payload)
            .map_err(|_| CryptoError::EncryptFailed)?;
        tag_room.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Decrypts a packet in place, returning the plaintext payload length.
    ///
    /// `buf` holds `header ‖ ciphertext ‖ tag` with header protection
    /// already removed (RFC 9001 §5.3: header protection is removed first);
    /// `header_len` covers the header up to and including the packet number
    /// and `pn` is the reconstructed full packet number. On success the
    /// plaintext is at `buf[header_len..header_len + len]`. On
    /// [`CryptoError::DecryptFailed`] the packet MUST be discarded and the
    /// failure counted against [`integrity_limit`] (RFC 9001 §6.6).
    ///
    /// [`integrity_limit`]: Self::integrity_limit
    pub fn open(&self, pn: u64, buf: &mut [u8], header_len: usize) -> Result<usize, CryptoError> {
        if buf.len() < header_len.saturating_add(self.tag_len()) {
            return Err(CryptoError::PacketTooShort);
        }
        let (header, payload) = buf.split_at_mut(header_len);
        let plain = self
            .inner
            .decrypt_in_place(pn, header, payload)
            .map_err(|_| CryptoError::DecryptFailed)?;
        Ok(plain.len())
    }

    /// Length of the AEAD authentication tag (16 for every QUIC suite,
    /// RFC 9001 §5.3).
    pub fn tag_len(&self) -> usize {
        self.inner.tag_len()
    }

    /// How many packets may be encrypted with this key (RFC 9001 §6.6).
    ///
    /// Endpoints MUST count packets encrypted with each key and MUST
    /// initiate a key update before exceeding this limit (RFC 9001 §6.6).
    pub fn confidentiality_limit(&self) -> u64 {
        self.inner.confidentiality_limit()
    }

    /// How many packets failing authentication a connection may receive,
    /// across all keys, before it MUST be closed with AEAD_LIMIT_REACHED
    /// (RFC 9001 §6.6).
    pub fn integrity_limit(&self) -> u64 {
        self.inner.integrity_limit()
    }

    /// The wrapped rustls key.
    pub fn as_rustls(&self) -> &dyn rustls::quic::PacketKey {
        &*self.inner
    }
}

impl From<Box<dyn rustls::quic::PacketKey>> for PacketKey {
    fn from(inner: Box<dyn rustls::quic::PacketKey>) -> Self {
        Self { inner }
    }
}

impl fmt::Debug for PacketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketKey")
            .field("tag_len", &self.tag_len())
            .finish_non_exhaustive()
    }
}

/// Packet and header protection keys for one direction.
#[derive(Debug)]
pub struct DirectionalKeys {
    /// Encrypts or decrypts packet payloads.
    pub packet: PacketKey,
    /// Applies or removes header protection.
    pub header: HeaderKey,
}

impl From<rustls::quic::DirectionalKeys> for DirectionalKeys {
    fn from(keys: rustls::quic::DirectionalKeys) -> Self {
        Self {
            packet: keys.packet.into(),
            header: keys.header.into(),
        }
    }
}

/// Keys for both directions of a packet number space.
#[derive(Debug)]
pub struct Keys {
    /// Protects packets this endpoint sends.
    pub local: DirectionalKeys,
    /// Removes protection from packets the peer sends.
    pub remote: DirectionalKeys,
}

impl From<rustls::quic::Keys> for Keys {
    fn from(keys: rustls::quic::Keys) -> Self {
        Self {
            local: keys.local.into(),
            remote: keys.remote.into(),
        }
    }
}

/// Packet keys for both directions after a key update (RFC 9001 §6); header
/// protection keys are not updated.
#[derive(Debug)]
pub struct PacketKeyPair {
    /// Encrypts packets this endpoint sends.
    pub local: PacketKey,
    /// Decrypts packets the peer sends.
    pub remote: PacketKey,
}

impl From<rustls::quic::PacketKeySet> for PacketKeyPair {
    fn from(set: rustls::quic::PacketKeySet) -> Self {
        Self {
            local: set.local.into(),
            remote: set.remote.into(),
        }
    }
}

/// The Initial keys for `side`, derived from the Destination Connection ID
/// of the client's first Initial packet (RFC 9001 §5.2), with the version's
/// initial salt and labels (RFC 9001 §5.2 for v1, RFC 9369 §3.3.1–§3.3.2 for
/// v2).
///
/// Initial packets always use AEAD_AES_128_GCM with AES header protection
/// (RFC 9001 §5.2, §5.4.1). After processing a Retry, the client derives new
/// Initial keys from the Retry's Source Connection ID, which becomes its new
/// Destination Connection ID (RFC 9001 §5.2, RFC 9000 §17.2.5.2).
pub fn initial_keys(version: Version, client_dcid: &ConnectionId, side: Side) -> Keys {
    let suite = CipherSuite::Aes128GcmSha256;
    rustls::quic::Keys::initial(
        rustls_version(version),
        suite.tls13(),
        suite.quic_algorithm(),
        client_dcid,
        rustls_side(side),
    )
    .into()
}
