//! ACK frames, types 0x02 and 0x03 (RFC 9000 §19.3).
//!
//! Decoding keeps the encoded Gap/ACK Range Length pairs as a borrowed slice
//! (validated once, at decode time) and walks them lazily with
//! [`AckRanges`], so a frame listing thousands of ranges costs no allocation.

use std::fmt;
use std::iter::FusedIterator;
use std::ops::RangeInclusive;

use bytes::BufMut;

use super::FrameType;
use crate::TransportError;
use crate::coding::{Reader, VarInt};

/// The three ECN counts of an ACK frame of type 0x03 (RFC 9000 §19.3.2).
#[derive(Debug, Copy, Clone, Default, PartialEq, Eq, Hash)]
pub struct EcnCounts {
    /// Packets received with the ECT(0) codepoint in this packet number space.
    pub ect0: VarInt,
    /// Packets received with the ECT(1) codepoint in this packet number space.
    pub ect1: VarInt,
    /// Packets received with the ECN-CE codepoint in this packet number space.
    pub ce: VarInt,
}

impl EcnCounts {
    fn decode(r: &mut Reader<'_>) -> Result<Self, TransportError> {
        Ok(Self {
            ect0: r.varint()?,
            ect1: r.varint()?,
            ce: r.varint()?,
        })
    }

    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.ect0.encode(buf);
        self.ect1.encode(buf);
        self.ce.encode(buf);
    }

    fn encoded_len(&self) -> usize {
        self.ect0.size() + self.ect1.size() + self.ce.size()
    }
}

/// A decoded ACK frame, borrowing its ACK Range fields from the packet.
///
/// Only [`Frame::decode`](super::Frame::decode) creates one, so the ranges are
/// known to be well formed; to send an ACK, use [`encode_ack`].
#[derive(Copy, Clone)]
pub struct Ack<'a> {
    largest: u64,
    ack_delay: u64,
    first_range: u64,
    /// The ACK Range Count field: ranges after the first.
    extra_ranges: usize,
    /// The ACK Range fields exactly as received.
    raw_ranges: &'a [u8],
    /// The smallest packet number acknowledged, computed while validating.
    smallest: u64,
    ecn: Option<EcnCounts>,
}

impl<'a> Ack<'a> {
    /// The Largest Acknowledged field.
    pub fn largest(&self) -> u64 {
        self.largest
    }

    /// The ACK Delay field as sent, before scaling by the peer's
    /// `ack_delay_exponent` (RFC 9000 §19.3: "decoded by multiplying the
    /// value in the field by 2 to the power of the ack_delay_exponent").
    pub fn ack_delay(&self) -> u64 {
        self.ack_delay
    }

    /// The ECN counts, present in frames of type 0x03 only.
    pub fn ecn(&self) -> Option<EcnCounts> {
        self.ecn
    }

    /// How many ranges the frame acknowledges (the ACK Range Count plus one).
    pub fn range_count(&self) -> usize {
        self.extra_ranges + 1
    }

    /// The smallest packet number acknowledged.
    pub fn smallest(&self) -> u64 {
        self.smallest
    }

    /// The acknowledged packet numbers, largest range first.
    pub fn ranges(&self) -> AckRanges<'a> {
        AckRanges {
            r: Reader::new(self.raw_ranges),
            first: Some(self.largest - self.first_range..=self.largest),
            prev_smallest: self.largest - self.first_range,
            left: self.extra_ranges,
        }
    }

    /// The frame type this frame encodes as.
    pub fn ty(&self) -> FrameType {
        if self.ecn.is_some() {
            FrameType::ACK_ECN
        } else {
            FrameType::ACK
        }
    }

    /// Decodes the fields after the Frame Type (`ty` is ACK or ACK_ECN).
    pub(super) fn decode(r: &mut Reader<'a>, ty: FrameType) -> Result<Self, TransportError> {
        let largest = r.varint()?.into_inner();
        let ack_delay = r.varint()?.into_inner();
        let count = r.varint()?.into_inner();
        let first_range = r.varint()?.into_inner();
        // RFC 9000 §19.3.1: "If any computed packet number is negative, an
        // endpoint MUST generate a connection error of type FRAME_ENCODING_ERROR."
        let mut smallest =
            largest
                .checked_sub(first_range)
                .ok_or(TransportError::frame_encoding_error(
                    "ACK range below packet number 0",
                ))?;
        // Each ACK Range is at least two bytes: a count that cannot fit in
        // what is left is truncated, and rejecting it here bounds the loop.
        if count > (r.remaining() / 2) as u64 {
            return Err(TransportError::frame_encoding_error("ACK ranges truncated"));
        }
        let extra_ranges = count as usize;
        let rest = r.peek_rest();
        let start = r.position();
        for _ in 0..extra_ranges {
            let gap = r.varint()?.into_inner();
            let len = r.varint()?.into_inner();
            // RFC 9000 §19.3.1: "largest = previous_smallest - gap - 2" and
            // "smallest = largest - ack_range"; negative is FRAME_ENCODING_ERROR.
            smallest = smallest
                .checked_sub(gap)
                .and_then(|x| x.checked_sub(2))
                .and_then(|largest| largest.checked_sub(len))
                .ok_or(TransportError::frame_encoding_error(
                    "ACK range below packet number 0",
                ))?;
        }
        let raw_ranges = &rest[..r.position() - start];
        let ecn = if ty == FrameType::ACK_ECN {
            Some(EcnCounts::decode(r)?)
        } else {
            None
        };
        Ok(Self {
            largest,
            ack_delay,
            first_range,
            extra_ranges,
            raw_ranges,
            smallest,
            ecn,
        })
    }

    /// Writes the frame, re-using the ACK Range fields as received.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        self.ty().to_varint().encode(buf);
        VarInt::from_u64_unchecked(self.largest).encode(buf);
        VarInt::from_u64_unchecked(self.ack_delay).encode(buf);
        VarInt::from_u64_unchecked(self.extra_ranges as u64).encode(buf);
        VarInt::from_u64_unchecked(self.first_range).encode(buf);
        buf.put_slice(self.raw_ranges);
        if let Some(ecn) = &self.ecn {
            ecn.encode(buf);
        }
    }

    /// Bytes [`Ack::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.ty().size()
            + VarInt::size_of(self.largest)
            + VarInt::size_of(self.ack_delay)
            + VarInt::size_of(self.extra_ranges as u64)
            + VarInt::size_of(self.first_range)
            + self.raw_ranges.len()
            + self.ecn.as_ref().map_or(0, EcnCounts::encoded_len)
    }
}

/// Two ACK frames are equal when they acknowledge the same packets with the
/// same delay and ECN counts, however their varints were encoded.
impl PartialEq for Ack<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.largest == other.largest
            && self.ack_delay == other.ack_delay
            && self.ecn == other.ecn
            && self.ranges().eq(other.ranges())
    }
}

impl Eq for Ack<'_> {}

impl fmt::Debug for Ack<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ack")
            .field("ack_delay", &self.ack_delay)
            .field("ranges", &DebugRanges(self.ranges()))
            .field("ecn", &self.ecn)
            .finish()
    }
}

struct DebugRanges<'a>(AckRanges<'a>);

impl fmt::Debug for DebugRanges<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.clone()).finish()
    }
}

/// The packet numbers an [`Ack`] acknowledges, one contiguous range at a
/// time, largest first.
#[derive(Debug, Clone)]
pub struct AckRanges<'a> {
    r: Reader<'a>,
    first: Option<RangeInclusive<u64>>,
    prev_smallest: u64,
    left: usize,
}

impl Iterator for AckRanges<'_> {
    type Item = RangeInclusive<u64>;

    fn next(&mut self) -> Option<RangeInclusive<u64>> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.left == 0 {
            return None;
        }
        // Validated at decode time, so none of these fail; if one did, end
        // the iteration rather than panic.
        let step = (|| {
            let gap = self.r.varint().ok()?.into_inner();
            let len = self.r.varint().ok()?.into_inner();
            let largest = self.prev_smallest.checked_sub(gap)?.checked_sub(2)?;
            Some(largest.checked_sub(len)?..=largest)
        })();
        match step {
            Some(range) => {
                self.left -= 1;
                self.prev_smallest = *range.start();
                Some(range)
            }
            None => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.left + usize::from(self.first.is_some());
        (n, Some(n))
    }
}

impl ExactSizeIterator for AckRanges<'_> {}
impl FusedIterator for AckRanges<'_> {}

/// Writes an ACK frame acknowledging `ranges`, given largest first.
///
/// Overlapping or adjacent ranges are merged, so the output of any sorted
/// range set can be passed directly. `ack_delay` is the already-scaled ACK
/// Delay field (RFC 9000 §13.2.5). With `ecn`, the frame is type 0x03.
///
/// # Panics
/// If `ranges` is empty, a range is empty (`start > end`), a range's end is
/// above a preceding range's end (not sorted largest first), or a packet
/// number is 2^62 or more.
pub fn encode_ack<B, I>(ranges: I, ack_delay: VarInt, ecn: Option<EcnCounts>, buf: &mut B)
where
    B: BufMut,
    I: IntoIterator<Item = RangeInclusive<u64>>,
    I::IntoIter: Clone,
{
    let mut ranges = Descending::new(ranges.into_iter());
    let first = ranges
        .next()
        .expect("an ACK frame needs at least one range");
    let extra = ranges.clone().count() as u64;
    let ty = if ecn.is_some() {
        FrameType::ACK_ECN
    } else {
        FrameType::ACK
    };
    ty.to_varint().encode(buf);
    VarInt::from_u64_unchecked(*first.end()).encode(buf);
    ack_delay.encode(buf);
    VarInt::from_u64_unchecked(extra).encode(buf);
    VarInt::from_u64_unchecked(first.end() - first.start()).encode(buf);
    let mut prev_smallest = *first.start();
    for range in ranges {
        // Descending guarantees end + 2 <= prev_smallest (at least one gap).
        VarInt::from_u64_unchecked(prev_smallest - range.end() - 2).encode(buf);
        VarInt::from_u64_unchecked(range.end() - range.start()).encode(buf);
        prev_smallest = *range.start();
    }
    if let Some(ecn) = &ecn {
        ecn.encode(buf);
    }
}

/// Bytes [`encode_ack`] writes for the same arguments.
///
/// # Panics
/// As [`encode_ack`].
pub fn ack_encoded_len<I>(ranges: I, ack_delay: VarInt, ecn: Option<EcnCounts>) -> usize
where
    I: IntoIterator<Item = RangeInclusive<u64>>,
    I::IntoIter: Clone,
{
    let mut ranges = Descending::new(ranges.into_iter());
    let first = ranges
        .next()
        .expect("an ACK frame needs at least one range");
    let mut extra = 0u64;
    let mut len = FrameType::ACK.size()
        + VarInt::size_of(*first.end())
        + ack_delay.size()
        + VarInt::size_of(first.end() - first.start());
    let mut prev_smallest = *first.start();
    for range in ranges {
        len += VarInt::size_of(prev_smallest - range.end() - 2)
            + VarInt::size_of(range.end() - range.start());
        prev_smallest = *range.start();
        extra += 1;
    }
    len + VarInt::size_of(extra) + ecn.as_ref().map_or(0, EcnCounts::encoded_len)
}

/// Merges overlapping or adjacent ranges of a largest-first sequence, so
/// that consecutive outputs are separated by at least one missing packet.
#[derive(Clone)]
struct Descending<I: Iterator<Item = RangeInclusive<u64>>> {
    inner: std::iter::Peekable<I>,
}

impl<I: Iterator<Item = RangeInclusive<u64>>> Descending<I> {
    fn new(inner: I) -> Self {
        Self {
            inner: inner.peekable(),
        }
    }
}

impl<I: Iterator<Item = RangeInclusive<u64>>> Iterator for Descending<I> {
    type Item = RangeInclusive<u64>;

    fn next(&mut self) -> Option<RangeInclusive<u64>> {
        let first = self.inner.next()?;
        let (mut start, end) = first.into_inner();
        assert!(start <= end, "empty ACK range");
        assert!(
            end <= VarInt::MAX.into_inner(),
            "packet number out of range"
        );
        while let Some(next) = self.inner.peek() {
            assert!(next.start() <= next.end(), "empty ACK range");
            assert!(
                *next.end() <= end,
                "ACK ranges must be sorted largest first"
            );
            if next.end().saturating_add(1) < start {
                break;
            }
            start = start.min(*next.start());
            self.inner.next();
        }
        Some(start..=end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;

    fn encode(ranges: &[RangeInclusive<u64>], delay: u32, ecn: Option<EcnCounts>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_ack(
            ranges.iter().cloned(),
            VarInt::from_u32(delay),
            ecn,
            &mut out,
        );
        assert_eq!(
            out.len(),
            ack_encoded_len(ranges.iter().cloned(), VarInt::from_u32(delay), ecn)
        );
        out
    }

    fn decode(bytes: &[u8]) -> Result<Ack<'_>, TransportError> {
        match Frame::decode(&mut Reader::new(bytes))? {
            Frame::Ack(ack) => Ok(ack),
            other => panic!("not an ACK: {other:?}"),
        }
    }

    #[test]
    fn ack_single_range_matches_hand_encoding() {
        // type 0x02, largest 10, delay 3, count 0, first range 2 -> 8..=10
        let bytes = encode(&[8..=10], 3, None);
        assert_eq!(bytes, [0x02, 10, 3, 0, 2]);
        let ack = decode(&bytes).unwrap();
        assert_eq!(ack.largest(), 10);
        assert_eq!(ack.ack_delay(), 3);
        assert_eq!(ack.smallest(), 8);
        assert_eq!(ack.ranges().collect::<Vec<_>>(), [8..=10]);
        assert_eq!(ack.ecn(), None);
    }

    #[test]
    fn ack_multiple_ranges_use_gap_minus_two_encoding() {
        // 15..=20, 10..=12, 0..=5: gaps (15-12-2)=1 and (10-5-2)=3.
        let bytes = encode(&[15..=20, 10..=12, 0..=5], 0, None);
        assert_eq!(bytes, [0x02, 20, 0, 2, 5, 1, 2, 3, 5]);
        let ack = decode(&bytes).unwrap();
        assert_eq!(ack.range_count(), 3);
        assert_eq!(ack.ranges().len(), 3);
        assert_eq!(ack.ranges().collect::<Vec<_>>(), [15..=20, 10..=12, 0..=5]);
    }

    #[test]
    fn ack_ecn_counts_use_type_0x03() {
        let ecn = EcnCounts {
            ect0: VarInt::from_u32(1),
            ect1: VarInt::from_u32(2),
            ce: VarInt::from_u32(300),
        };
        let bytes = encode(&[5..=5], 0, Some(ecn));
        assert_eq!(bytes, [0x03, 5, 0, 0, 0, 1, 2, 0x41, 0x2c]);
        assert_eq!(decode(&bytes).unwrap().ecn(), Some(ecn));
    }

    #[test]
    fn ack_encoder_merges_adjacent_and_overlapping_ranges() {
        let merged = encode(&[9..=10, 7..=8, 6..=9, 1..=2], 0, None);
        assert_eq!(merged, encode(&[6..=10, 1..=2], 0, None));
    }

    #[test]
    #[should_panic(expected = "sorted largest first")]
    fn ack_encoder_rejects_ascending_ranges() {
        encode(&[1..=2, 5..=6], 0, None);
    }

    #[test]
    fn ack_first_range_below_zero_is_frame_encoding_error() {
        // RFC 9000 §19.3.1: a negative computed packet number.
        let err = decode(&[0x02, 3, 0, 0, 4]).unwrap_err();
        assert_eq!(err.code, crate::TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x02));
    }

    #[test]
    fn ack_gap_below_zero_is_frame_encoding_error() {
        // 5..=10, then gap 4: largest = 5 - 4 - 2 = -1.
        let err = decode(&[0x02, 10, 0, 1, 5, 4, 0]).unwrap_err();
        assert_eq!(err.code, crate::TransportErrorCode::FRAME_ENCODING_ERROR);
        // gap 3 reaches exactly packet 0, which is fine.
        let ack = decode(&[0x02, 10, 0, 1, 5, 3, 0]).unwrap();
        assert_eq!(ack.ranges().collect::<Vec<_>>(), [5..=10, 0..=0]);
    }

    #[test]
    fn ack_range_length_below_zero_is_frame_encoding_error() {
        let err = decode(&[0x02, 10, 0, 1, 5, 0, 4]).unwrap_err();
        assert_eq!(err.code, crate::TransportErrorCode::FRAME_ENCODING_ERROR);
    }

    #[test]
    fn ack_huge_range_count_is_frame_encoding_error_without_looping() {
        let err = decode(&[0x02, 10, 0, 0xbf, 0xff, 0xff, 0xff, 0]).unwrap_err();
        assert_eq!(err.code, crate::TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x02));
    }

    #[test]
    fn ack_missing_ecn_counts_is_frame_encoding_error() {
        let err = decode(&[0x03, 10, 0, 0, 0, 1, 2]).unwrap_err();
        assert_eq!(err.code, crate::TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(err.frame_type, Some(0x03));
    }

    #[test]
    fn ack_reencodes_received_ranges_byte_for_byte() {
        // Non-minimal varints in the ranges are kept as received.
        let bytes = [0x02, 20, 0, 1, 5, 0x40, 1, 0x40, 2];
        let ack = decode(&bytes).unwrap();
        let mut out = Vec::new();
        ack.encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(ack.encoded_len(), bytes.len());
        assert_eq!(ack.ranges().collect::<Vec<_>>(), [15..=20, 10..=12]);
    }
}
