//! QUIC versions this implementation speaks (RFC 9000, RFC 9369).

/// A QUIC version quiver implements.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub enum Version {
    /// QUIC version 1, RFC 9000.
    V1,
    /// QUIC version 2, RFC 9369.
    V2,
}

impl Version {
    /// The versions quiver supports, in order of preference.
    pub const SUPPORTED: [Version; 2] = [Version::V1, Version::V2];

    /// The 32-bit version number on the wire.
    pub const fn number(self) -> u32 {
        match self {
            Version::V1 => 0x0000_0001,
            // RFC 9369 §3.1
            Version::V2 => 0x6b33_43cf,
        }
    }

    /// The supported version with wire number `n`, if any.
    pub const fn from_number(n: u32) -> Option<Self> {
        match n {
            0x0000_0001 => Some(Version::V1),
            0x6b33_43cf => Some(Version::V2),
            _ => None,
        }
    }

    /// Whether `n` is reserved for forcing version negotiation (RFC 9000 §15:
    /// versions matching 0x?a?a?a?a).
    pub const fn is_reserved(n: u32) -> bool {
        n & 0x0f0f_0f0f == 0x0a0a_0a0a
    }
}
