//! Explicit Congestion Notification codepoints (RFC 3168 §5), as datagrams
//! carry them in and out of the sans-IO core (RFC 9000 §13.4).

/// An ECN codepoint: the two low bits of the IPv4 TOS byte or the IPv6
/// Traffic Class. Not-ECT is the absence of one (`None`).
///
/// ```
/// use quiver_proto::EcnCodepoint;
/// assert_eq!(EcnCodepoint::from_bits(0b10), Some(EcnCodepoint::Ect0));
/// assert_eq!(EcnCodepoint::Ce.bits(), 0b11);
/// assert_eq!(EcnCodepoint::from_bits(0), None);
/// ```
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub enum EcnCodepoint {
    /// ECT(0), `0b10`: what quiver marks its packets with.
    Ect0,
    /// ECT(1), `0b01`.
    Ect1,
    /// Congestion Experienced, `0b11`.
    Ce,
}

impl EcnCodepoint {
    /// The codepoint in the low two bits of `tos`; `None` for Not-ECT.
    pub fn from_bits(tos: u8) -> Option<Self> {
        match tos & 0b11 {
            0b10 => Some(Self::Ect0),
            0b01 => Some(Self::Ect1),
            0b11 => Some(Self::Ce),
            _ => None,
        }
    }

    /// The two-bit value.
    pub fn bits(self) -> u8 {
        match self {
            Self::Ect0 => 0b10,
            Self::Ect1 => 0b01,
            Self::Ce => 0b11,
        }
    }
}
