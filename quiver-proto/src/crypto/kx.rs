//! TLS 1.3 key exchange groups (RFC 8446 §4.2.7), including the hybrid
//! post-quantum X25519MLKEM768 (draft-ietf-tls-ecdhe-mlkem) that browsers
//! and large CDNs negotiate today.
//!
//! Every group but the hybrid comes from rustls's ring provider, like the
//! rest of quiver's TLS; X25519MLKEM768 comes from rustls's aws-lc-rs
//! provider, because ring has no ML-KEM (ARCHITECTURE.md, "Crypto
//! provider", says why this mix and what it costs).

use rustls::crypto::SupportedKxGroup;

/// A key exchange group for the TLS handshake.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KxGroup {
    /// X25519MLKEM768 (0x11ec): X25519 combined with ML-KEM-768, secure
    /// against a future quantum computer recording today's traffic. Its
    /// key share makes a ClientHello span two Initial packets.
    X25519MlKem768,
    /// X25519 (RFC 7748).
    X25519,
    /// secp256r1 (NIST P-256).
    Secp256r1,
    /// secp384r1 (NIST P-384).
    Secp384r1,
}

impl KxGroup {
    /// Every group, in the default order of preference: the hybrid first
    /// (a client also sends an X25519 share with it, so a server without
    /// ML-KEM answers without a HelloRetryRequest).
    pub const ALL: [KxGroup; 4] = [
        KxGroup::X25519MlKem768,
        KxGroup::X25519,
        KxGroup::Secp256r1,
        KxGroup::Secp384r1,
    ];

    /// The rustls implementation.
    pub fn rustls(self) -> &'static dyn SupportedKxGroup {
        match self {
            KxGroup::X25519MlKem768 => rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768,
            KxGroup::X25519 => rustls::crypto::ring::kx_group::X25519,
            KxGroup::Secp256r1 => rustls::crypto::ring::kx_group::SECP256R1,
            KxGroup::Secp384r1 => rustls::crypto::ring::kx_group::SECP384R1,
        }
    }

    /// The group matching a rustls one (e.g. the one a handshake chose).
    pub fn from_rustls(group: &dyn SupportedKxGroup) -> Option<Self> {
        KxGroup::ALL
            .into_iter()
            .find(|g| g.rustls().name() == group.name())
    }

    /// The name used on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            KxGroup::X25519MlKem768 => "x25519mlkem768",
            KxGroup::X25519 => "x25519",
            KxGroup::Secp256r1 => "secp256r1",
            KxGroup::Secp384r1 => "secp384r1",
        }
    }
}

impl std::fmt::Display for KxGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A key exchange group name that is not one of [`KxGroup::name`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown key exchange group {0:?} (expected x25519mlkem768, x25519, secp256r1 or secp384r1)"
)]
pub struct UnknownKxGroup(pub String);

impl std::str::FromStr for KxGroup {
    type Err = UnknownKxGroup;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        KxGroup::ALL
            .into_iter()
            .find(|g| g.name() == lower || (lower == "p256" && *g == KxGroup::Secp256r1))
            .or_else(|| (lower == "p384").then_some(KxGroup::Secp384r1))
            .ok_or_else(|| UnknownKxGroup(s.to_owned()))
    }
}
