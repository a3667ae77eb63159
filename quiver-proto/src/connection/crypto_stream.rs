//! The CRYPTO stream of one packet number space (RFC 9000 §7.5, §19.6):
//! TLS handshake bytes in order, with retransmission of lost ranges and
//! bounded reassembly of what arrives out of order.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::frame::{Crypto, CryptoHeader, max_crypto_data};
use crate::range_set::RangeSet;
use crate::{TransportError, VarInt};

/// How far past the in-order point received CRYPTO data may reach.
/// RFC 9000 §7.5: "Implementations MUST support buffering at least 4096
/// bytes of data received in out-of-order CRYPTO frames." We allow more
/// because certificate chains are often larger.
pub(crate) const MAX_CRYPTO_BUFFER: u64 = 64 * 1024;

/// Out-of-order CRYPTO frames held at most per packet number space. A
/// flight of [`MAX_CRYPTO_BUFFER`] bytes in full packets is some 55 frames,
/// and clients that scatter their ClientHello in small frames use a few
/// dozen; each held frame costs a map entry and an allocation, so the
/// bytes bound alone would let one-byte frames cost some 64 Ki of them.
const MAX_CRYPTO_FRAGMENTS: usize = 512;

/// The sending half: every byte handed over by TLS, kept until the space is
/// discarded (a handshake is a few kilobytes), with the ranges that still
/// need to go out.
#[derive(Debug, Default)]
pub(crate) struct CryptoSend {
    data: Vec<u8>,
    /// Ranges to send: new data and data declared lost.
    pending: RangeSet,
    acked: RangeSet,
}

impl CryptoSend {
    /// Queues `bytes` from TLS for sending.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        let start = self.data.len() as u64;
        self.data.extend_from_slice(bytes);
        self.pending.insert(start..self.data.len() as u64);
    }

    /// Whether anything is waiting to be sent.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes one CRYPTO frame of at most `space` bytes, returning the range
    /// it carries (to be remembered with the packet), or `None`.
    pub(crate) fn write_frame(&mut self, buf: &mut Vec<u8>, space: usize) -> Option<Range<u64>> {
        let range = self.pending.first()?;
        let max = max_crypto_data(space, VarInt::from_u64_unchecked(range.start))?;
        if max == 0 {
            return None;
        }
        let len = (range.end - range.start).min(max as u64);
        let range = range.start..range.start + len;
        self.pending.remove(range.clone());
        let header = CryptoHeader {
            offset: VarInt::from_u64_unchecked(range.start),
            len: len as usize,
        };
        header.encode(buf);
        buf.extend_from_slice(&self.data[range.start as usize..range.end as usize]);
        Some(range)
    }

    /// The peer acknowledged a packet carrying `range`.
    pub(crate) fn on_acked(&mut self, range: Range<u64>) {
        self.acked.insert(range.clone());
        // A range may also be queued for retransmission: no need any more.
        self.pending.remove(range);
    }

    /// A packet carrying `range` was declared lost: send again what of it
    /// was not acknowledged since.
    pub(crate) fn on_lost(&mut self, range: Range<u64>) {
        let mut start = range.start;
        for acked in self.acked.iter() {
            if acked.end <= start {
                continue;
            }
            if acked.start >= range.end {
                break;
            }
            if acked.start > start {
                self.pending.insert(start..acked.start);
            }
            start = start.max(acked.end);
        }
        if start < range.end {
            self.pending.insert(start..range.end);
        }
    }

    /// Queues every unacknowledged byte again: for PTO probes, which should
    /// carry data that may be lost (RFC 9002 §6.2.4).
    pub(crate) fn requeue_unacked(&mut self) {
        let len = self.data.len() as u64;
        if len > 0 {
            self.on_lost(0..len);
        }
    }
}

/// The receiving half: out-of-order frames held until the gap before them
/// fills, never reaching more than [`MAX_CRYPTO_BUFFER`] past what TLS has
/// consumed.
#[derive(Debug, Default)]
pub(crate) struct CryptoRecv {
    /// Offset up to which data has been handed to TLS.
    read: u64,
    /// Buffered chunks by offset (may overlap; trimmed on delivery).
    chunks: BTreeMap<u64, Vec<u8>>,
    buffered: u64,
}

impl CryptoRecv {
    /// Takes a CRYPTO frame; RFC 9000 §7.5: data beyond the buffer bound
    /// is a connection error of type CRYPTO_BUFFER_EXCEEDED.
    pub(crate) fn on_frame(&mut self, frame: &Crypto<'_>) -> Result<(), TransportError> {
        let start = frame.offset.into_inner();
        let end = start + frame.data.len() as u64;
        if end > self.read + MAX_CRYPTO_BUFFER {
            return Err(TransportError::crypto_buffer_exceeded(
                "CRYPTO data beyond the reassembly buffer",
            )
            .with_frame(0x06));
        }
        if end <= self.read || frame.data.is_empty() {
            // Entirely old data (a retransmission we already have).
            return Ok(());
        }
        let skip = self.read.saturating_sub(start);
        let start = start + skip;
        let data = &frame.data[skip as usize..];
        if let Some(existing) = self.chunks.get(&start) {
            if existing.len() >= data.len() {
                return Ok(());
            }
        }
        // RFC 9000 §7.5: "an endpoint MAY ... close the connection with a
        // CRYPTO_BUFFER_EXCEEDED error code" when it cannot buffer more;
        // counted in frames as well as bytes (§21.7: "limiting the size of
        // tracking data structures").
        if self.chunks.len() >= MAX_CRYPTO_FRAGMENTS && !self.chunks.contains_key(&start) {
            return Err(TransportError::crypto_buffer_exceeded(
                "CRYPTO data in too many fragments",
            )
            .with_frame(0x06));
        }
        // Bound memory by what may be outstanding, duplicates included.
        if self.buffered + data.len() as u64 > 2 * MAX_CRYPTO_BUFFER {
            return Err(
                TransportError::crypto_buffer_exceeded("too much duplicated CRYPTO data")
                    .with_frame(0x06),
            );
        }
        self.buffered += data.len() as u64;
        if let Some(old) = self.chunks.insert(start, data.to_vec()) {
            self.buffered -= old.len() as u64;
        }
        Ok(())
    }

    /// The next in-order bytes for TLS, appended to `out`. Returns whether
    /// anything was appended.
    pub(crate) fn read(&mut self, out: &mut Vec<u8>) -> bool {
        let before = out.len();
        while let Some((&start, _)) = self.chunks.first_key_value() {
            if start > self.read {
                break;
            }
            let (start, chunk) = self.chunks.pop_first().expect("non-empty");
            self.buffered -= chunk.len() as u64;
            let end = start + chunk.len() as u64;
            if end <= self.read {
                continue;
            }
            let from = (self.read - start) as usize;
            out.extend_from_slice(&chunk[from..]);
            self.read = end;
        }
        out.len() > before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::Reader;
    use crate::frame::Frame;

    fn frame(offset: u64, data: &[u8]) -> Crypto<'_> {
        Crypto {
            offset: VarInt::from_u64_unchecked(offset),
            data,
        }
    }

    #[test]
    fn out_of_order_crypto_frames_reassemble() {
        let mut rx = CryptoRecv::default();
        rx.on_frame(&frame(5, b"world")).unwrap();
        let mut out = Vec::new();
        assert!(!rx.read(&mut out));
        rx.on_frame(&frame(0, b"hello")).unwrap();
        rx.on_frame(&frame(3, b"lowo")).unwrap();
        assert!(rx.read(&mut out));
        assert_eq!(out, b"helloworld");
        // Old data again is ignored.
        rx.on_frame(&frame(0, b"hello")).unwrap();
        assert!(!rx.read(&mut out));
    }

    /// RFC 9000 §7.5: CRYPTO_BUFFER_EXCEEDED past the reassembly bound.
    #[test]
    fn crypto_data_beyond_buffer_is_crypto_buffer_exceeded() {
        let mut rx = CryptoRecv::default();
        let err = rx.on_frame(&frame(MAX_CRYPTO_BUFFER, b"x")).unwrap_err();
        assert_eq!(err.code, crate::TransportErrorCode::CRYPTO_BUFFER_EXCEEDED);
    }

    /// One-byte CRYPTO frames with gaps between them are cut off by count,
    /// far below the byte bound.
    #[test]
    fn too_many_crypto_fragments_is_crypto_buffer_exceeded() {
        let mut rx = CryptoRecv::default();
        for i in 0..MAX_CRYPTO_FRAGMENTS as u64 {
            rx.on_frame(&frame(2 * i + 1, b"x")).unwrap();
        }
        // A repeat of a held offset is no new fragment.
        rx.on_frame(&frame(1, b"xy")).unwrap();
        let err = rx
            .on_frame(&frame(2 * MAX_CRYPTO_FRAGMENTS as u64 + 1, b"x"))
            .unwrap_err();
        assert_eq!(err.code, crate::TransportErrorCode::CRYPTO_BUFFER_EXCEEDED);
        assert_eq!(rx.chunks.len(), MAX_CRYPTO_FRAGMENTS);
    }

    #[test]
    fn lost_ranges_are_resent_except_acked_parts() {
        let mut tx = CryptoSend::default();
        tx.write(&[7; 3000]);
        let mut buf = Vec::new();
        let first = tx.write_frame(&mut buf, 1000).unwrap();
        let second = tx.write_frame(&mut buf, 1000).unwrap();
        let third = tx.write_frame(&mut buf, 2000).unwrap();
        assert_eq!(third.end, 3000);
        assert!(!tx.has_pending());
        tx.on_acked(second.clone());
        tx.on_lost(0..3000);
        let mut resent = Vec::new();
        while let Some(r) = tx.write_frame(&mut Vec::new(), 5000) {
            resent.push(r);
        }
        assert_eq!(resent, vec![first.start..second.start, second.end..3000]);
        tx.on_acked(0..3000);
        assert!(!tx.has_pending());
        // Frames decode back to the data.
        let mut r = Reader::new(&buf);
        let mut total = 0;
        while !r.is_empty() {
            match Frame::decode(&mut r).unwrap() {
                Frame::Crypto(c) => total += c.data.len(),
                f => panic!("{f:?}"),
            }
        }
        assert_eq!(total, 3000);
    }
}
