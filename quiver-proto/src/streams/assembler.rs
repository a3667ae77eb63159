//! Reassembly of out-of-order stream data into an ordered byte stream
//! (RFC 9000 §2.2).
//!
//! RFC 9000 §2.2: "Endpoints MUST be able to deliver stream data to an
//! application as an ordered byte stream. Delivering an ordered byte stream
//! requires that an endpoint buffer any data that is received out of order,
//! up to the advertised flow control limit."
//!
//! Data is stored in fixed-size pages aligned on stream offsets and
//! allocated only when a byte of theirs arrives, so a peer that sends a few
//! bytes far ahead costs one page, not the whole gap. The caller only hands
//! in data below the stream's flow-control limit, so at most
//! `limit - read offset` bytes (rounded out to whole pages) are ever held,
//! plus a few read pages kept for reuse.
//! Pages are [`BytesMut`]s: [`Assembler::read_chunk`] hands the readable
//! part of the front page to the application as a [`Bytes`] sharing the
//! page (no copy), and [`Assembler::read`] copies out and advances past it
//! the same way. A page whose chunks the application has dropped is reused
//! like one read by copy.
//! Bytes that were already received are simply written again (RFC 9000
//! §2.2: "The data at a given offset MUST NOT change if it is sent multiple
//! times"), which costs no memory; bytes below the read offset are dropped.
//!
//! Bookkeeping is one range per *fragment* (data received above a gap),
//! a few tens of bytes each, which a peer sending one byte per gap could
//! otherwise multiply without end (RFC 9000 §21.7, "Stream Fragmentation
//! and Reassembly Attacks": "QUIC deployments SHOULD provide mitigations
//! ... limiting the size of tracking data structures"). The stream layer
//! caps fragments per stream (`MAX_FRAGMENTS_PER_STREAM`) and per
//! connection, so memory is at most the flow-control credit (pages), a
//! page per stream for rounding, and a bounded number of ranges.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::range_set::RangeSet;

/// Bytes per page.
pub(super) const PAGE: usize = 4096;

/// An ordered byte stream assembled from pieces at arbitrary offsets.
#[derive(Debug, Default)]
pub(super) struct Assembler {
    /// Offset of the next byte the application will read.
    read: u64,
    /// Offsets received so far (including those already read).
    received: RangeSet,
    /// `pages[i]` holds offsets `(base_page + i) * PAGE ..`; `None` until a
    /// byte of it arrives. A page's length is the end of what was written
    /// into it (gaps below are zero-filled), so in-order data is appended
    /// without zeroing the page first. The front page has had its first
    /// [`head`](Self::head) bytes (those already read) split or advanced
    /// off.
    pages: VecDeque<Option<BytesMut>>,
    /// The page holding `read`.
    base_page: u64,
    /// Pages already read, kept for the next ones (at most [`SPARE_PAGES`]):
    /// a stream read as it arrives reuses a few pages instead of allocating
    /// and zeroing one per 4 KiB. A page handed out by
    /// [`read_chunk`](Self::read_chunk) is reusable once the application
    /// has dropped its chunks.
    spare: Vec<BytesMut>,
}

/// Read pages kept for reuse per stream.
const SPARE_PAGES: usize = 4;

impl Assembler {
    /// An empty assembler at offset 0.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Offset of the next byte to read: the bytes delivered so far.
    pub(super) fn read_offset(&self) -> u64 {
        self.read
    }

    /// The end of the data received contiguously from offset 0.
    pub(super) fn contiguous_end(&self) -> u64 {
        match self.received.first() {
            Some(r) if r.start == 0 => r.end,
            _ => 0,
        }
    }

    /// Bytes that can be read now.
    pub(super) fn readable(&self) -> u64 {
        self.contiguous_end() - self.read
    }

    /// Whether every byte of `0..end` has arrived.
    pub(super) fn has_all(&self, end: u64) -> bool {
        end == 0 || self.received.contains_range(0..end)
    }

    /// Ranges received above a gap: out-of-order pieces not yet joined
    /// to the in-order data.
    pub(super) fn fragments(&self) -> usize {
        let ranges = self.received.len();
        match self.received.first() {
            Some(r) if r.start == 0 => ranges - 1,
            _ => ranges,
        }
    }

    /// Memory held for data, in bytes (whole pages; spare pages aside).
    pub(super) fn allocated(&self) -> usize {
        self.pages.iter().flatten().count() * PAGE
    }

    /// Bytes of the front page already read and removed from it.
    fn head(&self) -> usize {
        (self.read - self.base_page * PAGE as u64) as usize
    }

    /// An empty page: a spare one none of whose chunks is still held by
    /// the application, else a new one.
    fn new_page(spare: &mut Vec<BytesMut>) -> BytesMut {
        // `try_reclaim` succeeds only when no chunk of the page is alive,
        // and never allocates.
        match spare.iter_mut().position(|p| p.try_reclaim(PAGE)) {
            Some(i) => spare.swap_remove(i),
            None => BytesMut::with_capacity(PAGE),
        }
    }

    /// Stores `data`, which starts at stream offset `offset`. Returns
    /// whether bytes became readable that were not before.
    pub(super) fn insert(&mut self, offset: u64, data: &[u8]) -> bool {
        let end = offset + data.len() as u64;
        let start = offset.max(self.read);
        if start >= end || self.received.contains_range(start..end) {
            return false; // nothing new: already read or already buffered
        }
        let before = self.contiguous_end();
        let mut pos = start;
        let mut src = &data[(start - offset) as usize..];
        while !src.is_empty() {
            let page = (pos / PAGE as u64 - self.base_page) as usize;
            let within = (pos % PAGE as u64) as usize;
            let n = src.len().min(PAGE - within);
            if self.pages.len() <= page {
                self.pages.resize_with(page + 1, || None);
            }
            // The front page starts at the read offset, not at its own.
            let within = if page == 0 {
                within - self.head()
            } else {
                within
            };
            let spare = &mut self.spare;
            let slot = self.pages[page].get_or_insert_with(|| Self::new_page(spare));
            if slot.len() < within {
                slot.resize(within, 0);
            }
            // Overwrite what the page already holds, append the rest.
            let overlap = slot.len().min(within + n) - within;
            slot[within..within + overlap].copy_from_slice(&src[..overlap]);
            slot.extend_from_slice(&src[overlap..n]);
            src = &src[n..];
            pos += n as u64;
        }
        self.received.insert(start..end);
        self.contiguous_end() > before
    }

    /// Copies readable bytes into `buf`; returns how many.
    pub(super) fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = (self.readable().min(buf.len() as u64)) as usize;
        let mut done = 0;
        while done < n {
            let page = self.front_page();
            let take = (n - done).min(page.len());
            buf[done..done + take].copy_from_slice(&page[..take]);
            page.advance(take);
            done += take;
            self.advance(take);
        }
        n
    }

    /// The next readable bytes, at most `max` of them, as a slice of the
    /// page they were received into (no copy): up to the end of that page,
    /// so a chunk may be shorter than what is readable. `None` if nothing is
    /// readable or `max` is 0.
    pub(super) fn read_chunk(&mut self, max: usize) -> Option<Bytes> {
        let n = self.readable().min(max as u64) as usize;
        if n == 0 {
            return None;
        }
        let page = self.front_page();
        let take = n.min(page.len());
        let chunk = page.split_to(take).freeze();
        self.advance(take);
        Some(chunk)
    }

    /// The front page, which holds the readable bytes at its start.
    fn front_page(&mut self) -> &mut BytesMut {
        self.pages[0]
            .as_mut()
            .expect("readable bytes are on an allocated page")
    }

    /// Moves the read offset past `n` bytes just removed from the front
    /// page; a page read to its end is dropped (kept as a spare).
    fn advance(&mut self, n: usize) {
        self.read += n as u64;
        if self.read % PAGE as u64 == 0 {
            if let Some(Some(page)) = self.pages.pop_front() {
                if self.spare.len() < SPARE_PAGES {
                    self.spare.push(page);
                }
            }
            self.base_page += 1;
        }
    }

    /// Drops all buffered data (after a reset or when the application
    /// stopped reading). Further inserts are still accepted; callers stop
    /// making them.
    pub(super) fn clear(&mut self) {
        self.pages = VecDeque::new();
        self.spare = Vec::new();
        self.received = RangeSet::new();
        self.read = 0;
        self.base_page = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(a: &mut Assembler) -> Vec<u8> {
        let mut out = vec![0; a.readable() as usize];
        let n = a.read(&mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn out_of_order_pieces_become_readable_in_order() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut a = Assembler::new();
        assert!(!a.insert(5000, &data[5000..]));
        assert_eq!(a.readable(), 0);
        assert!(a.insert(0, &data[..3000]));
        assert_eq!(read_all(&mut a), &data[..3000]);
        // Overlapping, duplicate and already-read pieces.
        assert!(!a.insert(0, &data[..100]));
        assert!(a.insert(2000, &data[2000..6000]));
        assert!(!a.insert(4000, &data[4000..4500]));
        assert_eq!(read_all(&mut a), &data[3000..]);
        assert!(a.has_all(10_000));
        assert_eq!(a.allocated(), PAGE, "only the page holding the read offset");
    }

    #[test]
    fn out_of_order_pieces_within_and_across_pages() {
        let data: Vec<u8> = (0..3 * PAGE).map(|i| (i * 13 + 1) as u8).collect();
        let mut a = Assembler::new();
        // Tail of the first page, then a piece across into the second,
        // then the head, with overlaps, then the rest.
        assert!(!a.insert(3000, &data[3000..3500]));
        assert!(!a.insert(3200, &data[3200..5000]));
        assert!(a.insert(0, &data[..3100]));
        assert_eq!(read_all(&mut a), &data[..5000]);
        assert!(!a.insert(9000, &data[9000..]));
        assert!(a.insert(5000, &data[5000..9100]));
        assert_eq!(read_all(&mut a), &data[5000..]);
        // Pages freed by reading are reused for the next data.
        let more: Vec<u8> = (0..2 * PAGE).map(|i| (i * 5) as u8).collect();
        let base = data.len() as u64;
        assert!(!a.insert(base + 100, &more[100..]));
        assert!(a.insert(base, &more[..100]));
        assert_eq!(read_all(&mut a), more);
    }

    #[test]
    fn fragments_count_pieces_above_gaps() {
        let mut a = Assembler::new();
        assert_eq!(a.fragments(), 0);
        a.insert(10, b"x");
        a.insert(20, b"x");
        a.insert(21, b"x"); // joins its neighbour
        assert_eq!(a.fragments(), 2);
        a.insert(0, &[0; 10]); // fills the first gap
        assert_eq!(a.fragments(), 1);
        a.clear();
        assert_eq!(a.fragments(), 0);
    }

    #[test]
    fn far_ahead_byte_costs_one_page() {
        let mut a = Assembler::new();
        a.insert(1 << 20, b"x");
        assert_eq!(a.allocated(), PAGE);
        assert_eq!(a.readable(), 0);
    }

    #[test]
    fn partial_reads_cross_page_boundaries() {
        let data: Vec<u8> = (0..3 * PAGE).map(|i| (i * 7) as u8).collect();
        let mut a = Assembler::new();
        a.insert(0, &data);
        let mut out = Vec::new();
        let mut buf = [0; 1000];
        loop {
            let n = a.read(&mut buf);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, data);
        assert_eq!(a.allocated(), 0);
    }
}
