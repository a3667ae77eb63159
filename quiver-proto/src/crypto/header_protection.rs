//! Header protection (RFC 9001 §5.4).

use std::fmt;

use super::{CryptoError, SAMPLE_OFFSET_FROM_PN};

/// A header-protection key for one direction (RFC 9001 §5.4).
///
/// Header protection keys are not changed by a key update (RFC 9001 §6.1).
pub struct HeaderKey {
    inner: Box<dyn rustls::quic::HeaderProtectionKey>,
}

/// The longest encoded packet number (RFC 9000 §17.1), which is also how
/// far the sample is offset from the Packet Number field (RFC 9001 §5.4.2).
const MAX_PN_LEN: usize = SAMPLE_OFFSET_FROM_PN;

impl HeaderKey {
    /// Applies header protection to the packet at the start of `buf`, whose
    /// payload has already been sealed (RFC 9001 §5.3, §5.4.1).
    ///
    /// `pn_offset` is the offset of the Packet Number field. The packet
    /// number length is read from the first byte before masking. The first
    /// byte's form bit (0x80) selects long (4 bits masked) or short
    /// (5 bits masked) header (RFC 9001 §5.4.1).
    pub fn apply(&self, buf: &mut [u8], pn_offset: usize) -> Result<(), CryptoError> {
        let (first, pn, sample) = self.split(buf, pn_offset)?;
        self.inner
            .encrypt_in_place(sample, first, pn)
            .map_err(|_| CryptoError::InvalidHeader)
    }

    /// Removes header protection from the packet at the start of `buf`,
    /// returning the packet number length (1 to 4 bytes, RFC 9000 §17.1).
    ///
    /// Afterwards the first byte and the packet number at
    /// `buf[pn_offset..pn_offset + pn_len]` are unprotected; the header for
    /// [`PacketKey::open`](super::PacketKey::open) is `pn_offset + pn_len`
    /// bytes long. Fails with [`CryptoError::PacketTooShort`] if the packet
    /// cannot hold a complete sample: such packets MUST be discarded
    /// (RFC 9001 §5.4.2).
    pub fn remove(&self, buf: &mut [u8], pn_offset: usize) -> Result<usize, CryptoError> {
        let (first, pn, sample) = self.split(buf, pn_offset)?;
        self.inner
            .decrypt_in_place(sample, first, pn)
            .map_err(|_| CryptoError::InvalidHeader)?;
        Ok(usize::from(*first & 0x03) + 1)
    }

    /// Length of the ciphertext sample (RFC 9001 §5.4.2).
    pub fn sample_len(&self) -> usize {
        self.inner.sample_len()
    }

    /// Splits `buf` into the first byte, the (up to) 4 packet-number bytes
    /// and the sample taken at `pn_offset + 4` (RFC 9001 §5.4.2).
    fn split<'a>(
        &self,
        buf: &'a mut [u8],
        pn_offset: usize,
    ) -> Result<(&'a mut u8, &'a mut [u8], &'a [u8]), CryptoError> {
        if pn_offset == 0 {
            return Err(CryptoError::InvalidHeader);
        }
        let sample_len = self.sample_len();
        // RFC 9001 §5.4.2: an endpoint MUST discard packets that are not long
        // enough to contain a complete sample.
        let needed = pn_offset
            .checked_add(MAX_PN_LEN + sample_len)
            .ok_or(CryptoError::PacketTooShort)?;
        if buf.len() < needed {
            return Err(CryptoError::PacketTooShort);
        }
        let (head, rest) = buf.split_at_mut(pn_offset);
        let (pn, rest) = rest.split_at_mut(MAX_PN_LEN);
        Ok((&mut head[0], pn, &rest[..sample_len]))
    }

    /// The wrapped rustls key.
    pub fn as_rustls(&self) -> &dyn rustls::quic::HeaderProtectionKey {
        &*self.inner
    }
}

impl From<Box<dyn rustls::quic::HeaderProtectionKey>> for HeaderKey {
    fn from(inner: Box<dyn rustls::quic::HeaderProtectionKey>) -> Self {
        Self { inner }
    }
}

impl fmt::Debug for HeaderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderKey")
            .field("sample_len", &self.sample_len())
            .finish_non_exhaustive()
    }
}
