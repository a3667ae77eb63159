//! 1-RTT keys from traffic secrets, and key update (RFC 9001 §5.1, §6).

use std::fmt;

use rustls::crypto::cipher::{AeadKey, Iv};
use rustls::crypto::tls13::{HkdfExpander, OkmBlock};

use super::ring_fallback::{Aes128GcmPacketKey, Aes128HeaderKey};
use super::{CipherSuite, CryptoError, DirectionalKeys, HeaderKey, PacketKey, PacketKeyPair};
use crate::Version;

/// Length of every QUIC AEAD IV (RFC 9001 §5.3, 96-bit nonces).
pub(super) const IV_LEN: usize = 12;
/// Longest AEAD or header-protection key of any supported suite.
const MAX_KEY_LEN: usize = 32;

/// Packet-protection key label (RFC 9001 §5.1, RFC 9369 §3.3.2).
fn key_label(version: Version) -> &'static [u8] {
    match version {
        Version::V1 => b"quic key",
        Version::V2 => b"quicv2 key",
    }
}

/// IV label (RFC 9001 §5.1, RFC 9369 §3.3.2).
fn iv_label(version: Version) -> &'static [u8] {
    match version {
        Version::V1 => b"quic iv",
        Version::V2 => b"quicv2 iv",
    }
}

/// Header-protection key label (RFC 9001 §5.4, RFC 9369 §3.3.2).
fn hp_label(version: Version) -> &'static [u8] {
    match version {
        Version::V1 => b"quic hp",
        Version::V2 => b"quicv2 hp",
    }
}

/// Key-update label (RFC 9001 §6.1, RFC 9369 §3.3.2).
fn ku_label(version: Version) -> &'static [u8] {
    match version {
        Version::V1 => b"quic ku",
        Version::V2 => b"quicv2 ku",
    }
}

/// Longest `HkdfLabel` we build: 2 + 1 + "tls13 " + label + 1, for labels
/// up to 22 bytes (ours are at most 10).
pub(super) const MAX_HKDF_LABEL: usize = 32;

/// Encodes the TLS 1.3 `HkdfLabel` structure (RFC 8446 §7.1) with an empty
/// context into `buf`, returning the encoded bytes.
pub(super) fn hkdf_label<'a>(
    label: &[u8],
    out_len: usize,
    buf: &'a mut [u8; MAX_HKDF_LABEL],
) -> &'a [u8] {
    const PREFIX: &[u8] = b"tls13 ";
    let full_len = PREFIX.len() + label.len();
    let total = 2 + 1 + full_len + 1;
    assert!(total <= MAX_HKDF_LABEL, "internal HKDF label too long");
    let out_len = u16::try_from(out_len).expect("HKDF output length fits in u16");
    buf[..2].copy_from_slice(&out_len.to_be_bytes());
    buf[2] = full_len as u8;
    buf[3..3 + PREFIX.len()].copy_from_slice(PREFIX);
    buf[3 + PREFIX.len()..3 + full_len].copy_from_slice(label);
    buf[3 + full_len] = 0; // empty context
    &buf[..total]
}

/// HKDF-Expand-Label(secret, label, "", out.len()) (RFC 8446 §7.1) with
/// rustls's HKDF.
pub(super) fn hkdf_expand_label(expander: &dyn HkdfExpander, label: &[u8], out: &mut [u8]) {
    let mut buf = [0; MAX_HKDF_LABEL];
    let info = hkdf_label(label, out.len(), &mut buf);
    expander
        .expand_slice(&[info], out)
        .expect("QUIC key material is far below the HKDF output limit");
}

/// Raw key material derived from a traffic secret; test-only view.
#[cfg(test)]
pub(super) struct KeyMaterial {
    pub(super) key: Vec<u8>,
    pub(super) iv: [u8; IV_LEN],
    pub(super) hp: Vec<u8>,
}

/// A TLS traffic secret for one direction, with the cipher suite and QUIC
/// version that turn it into packet protection keys (RFC 9001 §5.1).
///
/// During a live handshake rustls hands out keys and [`rustls::quic::Secrets`]
/// directly (see [`KeyUpdateSecrets`]); this type derives the same keys from
/// a secret obtained elsewhere.
#[derive(Clone)]
pub struct TrafficSecret {
    suite: CipherSuite,
    version: Version,
    secret: OkmBlock,
}

impl TrafficSecret {
    /// Wraps `secret`, which must be as long as the suite's hash.
    pub fn new(suite: CipherSuite, version: Version, secret: &[u8]) -> Result<Self, CryptoError> {
        if secret.len() != suite.secret_len() {
            return Err(CryptoError::InvalidSecretLength {
                expected: suite.secret_len(),
                actual: secret.len(),
            });
        }
        Ok(Self {
            suite,
            version,
            secret: OkmBlock::new(secret),
        })
    }

    /// The cipher suite.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The QUIC version whose labels are used.
    pub fn version(&self) -> Version {
        self.version
    }

    fn expander(&self) -> Box<dyn HkdfExpander> {
        self.suite
            .tls13()
            .hkdf_provider
            .expander_for_okm(&self.secret)
    }

    /// key = HKDF-Expand-Label(secret, "quic key", "", key_len) and
    /// iv = HKDF-Expand-Label(secret, "quic iv", "", 12) (RFC 9001 §5.1;
    /// "quicv2 key"/"quicv2 iv" for v2, RFC 9369 §3.3.2).
    pub fn packet_key(&self) -> PacketKey {
        let expander = self.expander();
        let key_len = self.suite.key_len();
        let mut key = [0; MAX_KEY_LEN];
        hkdf_expand_label(&*expander, key_label(self.version), &mut key[..key_len]);
        let mut iv = [0; IV_LEN];
        hkdf_expand_label(&*expander, iv_label(self.version), &mut iv);
        let packet: Box<dyn rustls::quic::PacketKey> = if key_len == MAX_KEY_LEN {
            self.suite
                .quic_algorithm()
                .packet_key(AeadKey::from(key), Iv::from(iv))
        } else {
            Box::new(
                Aes128GcmPacketKey::new(&key[..key_len], iv).expect("AES-128-GCM key is 16 bytes"),
            )
        };
        key.fill(0);
        packet.into()
    }

    /// hp = HKDF-Expand-Label(secret, "quic hp", "", key_len) (RFC 9001
    /// §5.4; "quicv2 hp" for v2, RFC 9369 §3.3.2).
    ///
    /// Header protection keys are not updated by a key update (RFC 9001
    /// §6.1): use the header key of the first 1-RTT secret for the whole
    /// connection.
    pub fn header_key(&self) -> HeaderKey {
        let expander = self.expander();
        let key_len = self.suite.key_len();
        let mut hp = [0; MAX_KEY_LEN];
        hkdf_expand_label(&*expander, hp_label(self.version), &mut hp[..key_len]);
        let header: Box<dyn rustls::quic::HeaderProtectionKey> = if key_len == MAX_KEY_LEN {
            self.suite
                .quic_algorithm()
                .header_protection_key(AeadKey::from(hp))
        } else {
            Box::new(Aes128HeaderKey::new(&hp[..key_len]).expect("AES-128 key is 16 bytes"))
        };
        hp.fill(0);
        header.into()
    }

    /// Packet and header keys for this secret.
    pub fn keys(&self) -> DirectionalKeys {
        DirectionalKeys {
            packet: self.packet_key(),
            header: self.header_key(),
        }
    }

    /// The secret of the next key phase: `secret_<n+1> =
    /// HKDF-Expand-Label(secret_<n>, "quic ku", "", Hash.length)` (RFC 9001
    /// §6.1; "quicv2 ku" for v2, RFC 9369 §3.3.2).
    pub fn next(&self) -> Self {
        let mut next = [0; OkmBlock::MAX_LEN];
        let len = self.suite.secret_len();
        hkdf_expand_label(&*self.expander(), ku_label(self.version), &mut next[..len]);
        let secret = OkmBlock::new(&next[..len]);
        next.fill(0);
        Self {
            suite: self.suite,
            version: self.version,
            secret,
        }
    }

    /// The secret bytes (tests only).
    #[cfg(test)]
    pub(super) fn secret_bytes(&self) -> &[u8] {
        self.secret.as_ref()
    }

    /// The derived key, IV and header-protection key (tests only).
    #[cfg(test)]
    pub(super) fn key_material(&self) -> KeyMaterial {
        let expander = self.expander();
        let mut key = vec![0; self.suite.key_len()];
        hkdf_expand_label(&*expander, key_label(self.version), &mut key);
        let mut iv = [0; IV_LEN];
        hkdf_expand_label(&*expander, iv_label(self.version), &mut iv);
        let mut hp = vec![0; self.suite.key_len()];
        hkdf_expand_label(&*expander, hp_label(self.version), &mut hp);
        KeyMaterial { key, iv, hp }
    }
}

impl fmt::Debug for TrafficSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrafficSecret")
            .field("suite", &self.suite)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The secrets from which successive 1-RTT packet keys are derived
/// (RFC 9001 §6).
///
/// Each call to [`next_packet_keys`](Self::next_packet_keys) returns the
/// packet keys of the current generation and advances both directions'
/// secrets with the "quic ku" ("quicv2 ku") label (RFC 9001 §6.1). Header
/// protection keys are not updated (RFC 9001 §6.1).
pub struct KeyUpdateSecrets {
    inner: Inner,
}

enum Inner {
    /// From a live rustls session (`KeyChange::OneRtt { next, .. }`).
    Rustls(rustls::quic::Secrets),
    /// From secrets supplied by the caller.
    Raw {
        local: TrafficSecret,
        remote: TrafficSecret,
    },
}

impl KeyUpdateSecrets {
    /// Secrets for key update from explicit traffic secrets; the first
    /// [`next_packet_keys`](Self::next_packet_keys) returns the keys of
    /// `local` and `remote` themselves.
    pub fn from_traffic_secrets(local: TrafficSecret, remote: TrafficSecret) -> Self {
        Self {
            inner: Inner::Raw { local, remote },
        }
    }

    /// Returns the packet keys of the current generation and moves to the
    /// next (RFC 9001 §6.1).
    ///
    /// An endpoint that initiates a key update MUST update both its send and
    /// receive keys (RFC 9001 §6.1), which this does together.
    pub fn next_packet_keys(&mut self) -> PacketKeyPair {
        match &mut self.inner {
            Inner::Rustls(secrets) => secrets.next_packet_keys().into(),
            Inner::Raw { local, remote } => {
                let keys = PacketKeyPair {
                    local: local.packet_key(),
                    remote: remote.packet_key(),
                };
                *local = local.next();
                *remote = remote.next();
                keys
            }
        }
    }
}

/// Wraps the secrets rustls hands out in `KeyChange::OneRtt { next, .. }`.
/// rustls has already advanced them past the keys returned alongside, so
/// the first [`next_packet_keys`](KeyUpdateSecrets::next_packet_keys) gives
/// the keys for key phase 1.
impl From<rustls::quic::Secrets> for KeyUpdateSecrets {
    fn from(secrets: rustls::quic::Secrets) -> Self {
        Self {
            inner: Inner::Rustls(secrets),
        }
    }
}

impl fmt::Debug for KeyUpdateSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.inner {
            Inner::Rustls(_) => "rustls",
            Inner::Raw { .. } => "raw",
        };
        f.debug_struct("KeyUpdateSecrets")
            .field("source", &source)
            .finish_non_exhaustive()
    }
}
