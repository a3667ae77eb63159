//! Packet number encoding and decoding (RFC 9000 §17.1, Appendix A.2, A.3).
//!
//! A packet number is a 62-bit integer sent truncated to its 1 to 4 least
//! significant bytes; the receiver reconstructs the full value from the
//! largest packet number it has processed in the same space.

use bytes::BufMut;

/// A packet number truncated for the wire: its low `len` bytes.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct TruncatedPacketNumber {
    value: u32,
    len: usize,
}

impl TruncatedPacketNumber {
    /// Chooses the encoding of `full_pn` given the largest packet number the
    /// peer has acknowledged in this space (RFC 9000 §17.1, Appendix A.2).
    ///
    /// RFC 9000 §17.1: "the sender MUST use a packet number size able to
    /// represent more than twice as large a range as the difference between
    /// the largest acknowledged packet number and the packet number being
    /// sent."
    pub fn encode(full_pn: u64, largest_acked: Option<u64>) -> Self {
        let num_unacked = match largest_acked {
            None => full_pn + 1,
            Some(acked) => full_pn.saturating_sub(acked),
        };
        // Bits to represent twice the range, i.e. log2(num_unacked) + 1.
        let min_bits = 64 - num_unacked.leading_zeros() + 1;
        let len = (min_bits.div_ceil(8) as usize).clamp(1, 4);
        Self::with_len(full_pn, len)
    }

    /// `full_pn` truncated to exactly `len` bytes (1 to 4).
    ///
    /// # Panics
    /// If `len` is not 1 to 4.
    pub fn with_len(full_pn: u64, len: usize) -> Self {
        assert!((1..=4).contains(&len), "packet number length {len}");
        let mask = if len == 4 {
            u32::MAX
        } else {
            (1u32 << (8 * len)) - 1
        };
        Self {
            value: full_pn as u32 & mask,
            len,
        }
    }

    /// The value as received, `len` bytes big-endian.
    pub fn from_wire(bytes: &[u8]) -> Self {
        debug_assert!((1..=4).contains(&bytes.len()));
        let value = bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        Self {
            value,
            len: bytes.len(),
        }
    }

    /// The encoded length in bytes.
    pub fn len(self) -> usize {
        self.len
    }

    /// Always false: a packet number has at least one byte. (For clippy's
    /// `len_without_is_empty`.)
    pub fn is_empty(self) -> bool {
        false
    }

    /// The truncated value.
    pub fn value(self) -> u32 {
        self.value
    }

    /// The two low bits of the first header byte that give the length - 1.
    pub fn len_bits(self) -> u8 {
        (self.len - 1) as u8
    }

    /// Writes the truncated number, big-endian, in `len` bytes.
    pub fn encode_to<B: BufMut>(self, buf: &mut B) {
        buf.put_uint(u64::from(self.value), self.len);
    }

    /// Reconstructs the full packet number (RFC 9000 Appendix A.3), given
    /// the largest packet number successfully processed in this space.
    pub fn expand(self, largest_pn: Option<u64>) -> u64 {
        let expected = largest_pn.map_or(0, |pn| pn + 1);
        let win = 1u64 << (8 * self.len);
        let hwin = win / 2;
        let mask = win - 1;
        let candidate = (expected & !mask) | u64::from(self.value);
        // The extra bounds keep the result within [0, 2^62).
        if candidate.saturating_add(hwin) <= expected && candidate < (1 << 62) - win {
            candidate + win
        } else if candidate > expected + hwin && candidate >= win {
            candidate - win
        } else {
            candidate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9000 Appendix A.2: with 0xabe8b3 acknowledged, 0xac5c02 needs 16
    /// bits and 0xace8fe needs 24.
    #[test]
    fn rfc9000_appendix_a2_encoding_examples() {
        assert_eq!(
            TruncatedPacketNumber::encode(0xac5c02, Some(0xabe8b3)).len(),
            2
        );
        assert_eq!(
            TruncatedPacketNumber::encode(0xace8fe, Some(0xabe8b3)).len(),
            3
        );
    }

    /// RFC 9000 Appendix A.3: largest 0xa82f30ea, 16-bit 0x9b32 → 0xa82f9b32.
    #[test]
    fn rfc9000_appendix_a3_decoding_example() {
        let t = TruncatedPacketNumber::from_wire(&[0x9b, 0x32]);
        assert_eq!(t.expand(Some(0xa82f30ea)), 0xa82f9b32);
    }

    #[test]
    fn first_packets_use_one_byte() {
        assert_eq!(TruncatedPacketNumber::encode(0, None).len(), 1);
        assert_eq!(TruncatedPacketNumber::encode(63, None).len(), 1);
        assert_eq!(TruncatedPacketNumber::encode(127, None).len(), 2);
        assert_eq!(TruncatedPacketNumber::encode(1 << 40, Some(0)).len(), 4);
    }

    #[test]
    fn expand_handles_wraparound_both_ways() {
        // Just past a byte boundary.
        let t = TruncatedPacketNumber::with_len(0x100, 1);
        assert_eq!(t.expand(Some(0xff)), 0x100);
        // A late packet from below the window start.
        let t = TruncatedPacketNumber::with_len(0xfe, 1);
        assert_eq!(t.expand(Some(0x101)), 0xfe);
        // Near zero there is nothing below.
        let t = TruncatedPacketNumber::with_len(0xff, 1);
        assert_eq!(t.expand(Some(0)), 0xff);
        // Near the top of the space, never exceed 2^62 - 1.
        let top = (1u64 << 62) - 1;
        let t = TruncatedPacketNumber::with_len(0, 1);
        assert!(t.expand(Some(top - 1)) < 1 << 62);
    }

    proptest::proptest! {
        /// Whatever the encoder picks, the decoder recovers the number when
        /// the receiver's largest is the sender's largest acknowledged or
        /// anything up to the packet before it.
        #[test]
        fn encode_then_expand_roundtrips(
            largest_acked in 0u64..(1 << 40),
            ahead in 1u64..(1 << 20),
            rx_lag in 0u64..(1 << 20),
        ) {
            let pn = largest_acked + ahead;
            let t = TruncatedPacketNumber::encode(pn, Some(largest_acked));
            // The receiver has processed at least `largest_acked`.
            let rx_largest = (largest_acked + rx_lag).min(pn - 1);
            proptest::prop_assert_eq!(t.expand(Some(rx_largest)), pn);
        }

        #[test]
        fn expand_never_panics(value: u32, len in 1usize..=4, largest in proptest::option::of(0u64..(1 << 62))) {
            let t = TruncatedPacketNumber::with_len(u64::from(value), len);
            proptest::prop_assert!(t.expand(largest) < 1 << 62);
        }
    }
}
