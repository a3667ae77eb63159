//! The TLS 1.3 cipher suites QUIC can use (RFC 9001 §5.3), backed by
//! rustls's ring provider.

use rustls::Tls13CipherSuite;
use rustls::crypto::ring::cipher_suite as ring_suites;
use rustls::quic::Algorithm;

/// A TLS 1.3 cipher suite usable for QUIC packet protection.
///
/// RFC 9001 §5.3: a cipher suite MUST NOT be negotiated unless a header
/// protection scheme is defined for it, which excludes
/// TLS_AES_128_CCM_8_SHA256; all suites here have one.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CipherSuite {
    /// TLS_AES_128_GCM_SHA256; also the suite of Initial packets
    /// (RFC 9001 §5.2).
    Aes128GcmSha256,
    /// TLS_AES_256_GCM_SHA384.
    Aes256GcmSha384,
    /// TLS_CHACHA20_POLY1305_SHA256.
    ChaCha20Poly1305Sha256,
}

impl CipherSuite {
    /// The rustls TLS 1.3 suite.
    pub fn tls13(self) -> &'static Tls13CipherSuite {
        let supported = match self {
            CipherSuite::Aes128GcmSha256 => &ring_suites::TLS13_AES_128_GCM_SHA256,
            CipherSuite::Aes256GcmSha384 => &ring_suites::TLS13_AES_256_GCM_SHA384,
            CipherSuite::ChaCha20Poly1305Sha256 => &ring_suites::TLS13_CHACHA20_POLY1305_SHA256,
        };
        supported
            .tls13()
            .expect("rustls's TLS13_* ring suites are TLS 1.3 suites")
    }

    /// The rustls QUIC key-generation algorithm for this suite.
    pub fn quic_algorithm(self) -> &'static dyn Algorithm {
        self.tls13()
            .quic
            .expect("rustls's ring TLS 1.3 suites all support QUIC")
    }

    /// The suite matching a rustls TLS 1.3 suite (e.g. the one a handshake
    /// negotiated), if QUIC can use it.
    pub fn from_rustls(suite: &Tls13CipherSuite) -> Option<Self> {
        use rustls::CipherSuite as Cs;
        match suite.common.suite {
            Cs::TLS13_AES_128_GCM_SHA256 => Some(CipherSuite::Aes128GcmSha256),
            Cs::TLS13_AES_256_GCM_SHA384 => Some(CipherSuite::Aes256GcmSha384),
            Cs::TLS13_CHACHA20_POLY1305_SHA256 => Some(CipherSuite::ChaCha20Poly1305Sha256),
            _ => None,
        }
    }

    /// Every suite, AES-128-GCM first: the default of every quiver
    /// configuration without `cipher_suites(..)`. Browsers and
    /// BoringSSL-based stacks offer this order; rustls's own (and so
    /// quinn's) puts TLS_AES_256_GCM_SHA384 first, whose TLS key schedule
    /// runs on SHA-384, about 6% more instructions per resumed handshake
    /// (README, "Handshakes"; ARCHITECTURE.md, "Cipher suite order").
    pub const ALL: [CipherSuite; 3] = [
        CipherSuite::Aes128GcmSha256,
        CipherSuite::Aes256GcmSha384,
        CipherSuite::ChaCha20Poly1305Sha256,
    ];

    /// The short name used on the command line: `aes128gcm`, `aes256gcm`
    /// or `chacha20`.
    pub fn name(self) -> &'static str {
        match self {
            CipherSuite::Aes128GcmSha256 => "aes128gcm",
            CipherSuite::Aes256GcmSha384 => "aes256gcm",
            CipherSuite::ChaCha20Poly1305Sha256 => "chacha20",
        }
    }

    /// Length of the AEAD key and of the header-protection key, in bytes.
    pub fn key_len(self) -> usize {
        match self {
            CipherSuite::Aes128GcmSha256 => 16,
            CipherSuite::Aes256GcmSha384 | CipherSuite::ChaCha20Poly1305Sha256 => 32,
        }
    }

    /// Length of the suite's hash, and so of its traffic secrets, in bytes.
    pub fn secret_len(self) -> usize {
        match self {
            CipherSuite::Aes128GcmSha256 | CipherSuite::ChaCha20Poly1305Sha256 => 32,
            CipherSuite::Aes256GcmSha384 => 48,
        }
    }
}

impl std::fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A cipher suite name that is not one of [`CipherSuite::name`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cipher suite {0:?} (expected aes128gcm, aes256gcm or chacha20)")]
pub struct UnknownCipherSuite(pub String);

impl std::str::FromStr for CipherSuite {
    type Err = UnknownCipherSuite;

    /// Parses a short name (`chacha20`), case-insensitively; the TLS names
    /// (`TLS_CHACHA20_POLY1305_SHA256`) are accepted too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let lower = lower.strip_prefix("tls_").unwrap_or(&lower);
        match lower {
            "aes128gcm" | "aes-128-gcm" | "aes_128_gcm_sha256" => Ok(CipherSuite::Aes128GcmSha256),
            "aes256gcm" | "aes-256-gcm" | "aes_256_gcm_sha384" => Ok(CipherSuite::Aes256GcmSha384),
            "chacha20" | "chacha20-poly1305" | "chacha20_poly1305_sha256" => {
                Ok(CipherSuite::ChaCha20Poly1305Sha256)
            }
            _ => Err(UnknownCipherSuite(s.to_owned())),
        }
    }
}
