//! Packet protection (RFC 9001 §5) on rustls's `quic` module.
//!
//! quiver never implements cryptographic primitives itself. Key derivation,
//! AEAD and header-protection masks come from rustls (`rustls::quic`, ring
//! provider); `ring` is used directly only where rustls has no public API:
//! the fixed-key Retry Integrity Tag (RFC 9001 §5.8) and AES-128-GCM keys
//! built from a caller-supplied traffic secret (rustls cannot build a 16-byte
//! `AeadKey` outside the crate).
//!
//! * [`initial_keys`]: Initial keys for QUIC v1 and v2 (RFC 9001 §5.2,
//!   RFC 9369 §3.3.1).
//! * [`PacketKey`]: AEAD seal/open in place (RFC 9001 §5.3), with the usage
//!   limits of RFC 9001 §6.6.
//! * [`HeaderKey`]: header protection (RFC 9001 §5.4).
//! * [`retry_integrity_tag`] / [`verify_retry_integrity`]: RFC 9001 §5.8,
//!   RFC 9369 §3.3.3.
//! * [`TrafficSecret`] and [`KeyUpdateSecrets`]: 1-RTT keys and key update
//!   (RFC 9001 §6).
//! * [`TlsSession`]: the TLS handshake in CRYPTO frames (RFC 9001 §4), with
//!   [`ClientConfig`] and [`ServerConfig`].

mod config;
mod header_protection;
mod key_update;
mod keys;
mod kx;
mod resumption;
mod retry;
mod ring_fallback;
mod suite;
mod tls;

#[cfg(test)]
mod vectors;

pub use config::{
    ClientConfig, ClientConfigBuilder, ConfigError, QUIC_MAX_EARLY_DATA_SIZE, ServerConfig,
    ServerConfigBuilder,
};
pub use header_protection::HeaderKey;
pub use key_update::{KeyUpdateSecrets, TrafficSecret};
pub use keys::{DirectionalKeys, Keys, PacketKey, PacketKeyPair, initial_keys};
pub use kx::{KxGroup, UnknownKxGroup};
pub use resumption::{
    DEFAULT_SESSION_STORE_SIZE, DEFAULT_TICKETS_PER_CONNECTION, HandshakeKind, memory_session_store,
};
pub use retry::{
    MAX_RETRY_PACKET_LEN, RETRY_INTEGRITY_TAG_LEN, retry_integrity_tag, verify_retry_integrity,
};
pub use suite::{CipherSuite, UnknownCipherSuite};
pub use tls::{
    ClientHelloInfo, Level, TlsOutput, TlsSession, client_hello_length, parse_client_hello,
};

/// Length of the header-protection sample for every cipher suite QUIC
/// defines (RFC 9001 §5.4.2).
pub const SAMPLE_LEN: usize = 16;

/// Offset of the header-protection sample from the start of the Packet
/// Number field: the packet number is assumed to be 4 bytes long
/// (RFC 9001 §5.4.2).
pub const SAMPLE_OFFSET_FROM_PN: usize = 4;

/// Why a packet-protection operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// AEAD authentication failed: the packet must be discarded (RFC 9001
    /// §5.3, RFC 9000 §12.2) and counted against the integrity limit
    /// (RFC 9001 §6.6).
    #[error("packet decryption failed")]
    DecryptFailed,
    /// The AEAD refused to encrypt (payload too long for the algorithm).
    #[error("packet encryption failed")]
    EncryptFailed,
    /// The packet (or buffer) is too short: it cannot hold a complete
    /// header-protection sample (RFC 9001 §5.4.2), the AEAD tag, or the
    /// stated header.
    #[error("packet too short")]
    PacketTooShort,
    /// The packet-number offset or header length is impossible (e.g. zero,
    /// which would overlap the first byte).
    #[error("invalid header layout")]
    InvalidHeader,
    /// The Retry Integrity Tag did not verify (RFC 9001 §5.8).
    #[error("retry integrity tag mismatch")]
    RetryIntegrityMismatch,
    /// The Retry packet exceeds [`MAX_RETRY_PACKET_LEN`].
    #[error("retry packet too long")]
    RetryPacketTooLong,
    /// A traffic secret did not have the cipher suite's hash length.
    #[error("traffic secret has length {actual}, expected {expected}")]
    InvalidSecretLength {
        /// The hash length of the cipher suite.
        expected: usize,
        /// The length that was supplied.
        actual: usize,
    },
}

/// Maps quiver's version to rustls's.
fn rustls_version(version: crate::Version) -> rustls::quic::Version {
    match version {
        crate::Version::V1 => rustls::quic::Version::V1,
        crate::Version::V2 => rustls::quic::Version::V2,
    }
}

/// Maps quiver's side to rustls's.
fn rustls_side(side: crate::Side) -> rustls::Side {
    match side {
        crate::Side::Client => rustls::Side::Client,
        crate::Side::Server => rustls::Side::Server,
    }
}
