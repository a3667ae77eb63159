//! Duplicate detection for received packet numbers (RFC 9000 §12.3),
//! independent of the ranges we acknowledge.
//!
//! "A receiver MUST discard a newly unprotected packet unless it is certain
//! that it has not processed another packet with the same packet number
//! from the same packet number space." The ACK ranges cannot be the record
//! of what was processed: RFC 9000 §13.2.4 lets them forget everything the
//! peer has seen acknowledged. So the receive side keeps a sliding window
//! of the last [`WINDOW`] packet numbers below the largest received, as
//! the section suggests ("maintaining a minimum packet number below which
//! all packets are immediately dropped"): everything older is dropped, a
//! packet in the window is dropped when its bit is set. Memory and work
//! per packet are constant whatever the peer sends.

/// Packet numbers tracked below the largest received. A packet older than
/// this is dropped even if it was never processed: at 1,000 packets in
/// flight it is already far older than any loss detection would resend,
/// and its sender has declared it lost and retransmitted its frames.
pub(crate) const WINDOW: u64 = 2048;
const WORDS: usize = (WINDOW / 64) as usize;

/// Which packet numbers of one space have been processed.
#[derive(Debug, Clone)]
pub(crate) struct ReplayWindow {
    /// Largest processed packet number.
    largest: Option<u64>,
    /// Bit `pn % WINDOW` is set when `pn` (within the window) was processed.
    bits: Box<[u64; WORDS]>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            largest: None,
            bits: Box::new([0; WORDS]),
        }
    }
}

impl ReplayWindow {
    /// Whether `pn` must be discarded: already processed, or below the
    /// window's floor where we cannot tell.
    pub(crate) fn is_duplicate(&self, pn: u64) -> bool {
        let Some(largest) = self.largest else {
            return false;
        };
        if pn > largest {
            return false;
        }
        if largest - pn >= WINDOW {
            return true;
        }
        self.bit(pn)
    }

    /// Records `pn` as processed. Callers check [`Self::is_duplicate`]
    /// first.
    pub(crate) fn insert(&mut self, pn: u64) {
        match self.largest {
            None => {
                self.largest = Some(pn);
            }
            Some(largest) if pn > largest => {
                // Packet numbers between the old and new largest leave the
                // window's low end: clear their slots for reuse.
                let advance = pn - largest;
                if advance >= WINDOW {
                    self.bits.fill(0);
                } else {
                    let mut n = largest + 1;
                    while n < pn {
                        if n % 64 == 0 && pn - n >= 64 {
                            self.bits[Self::word(n)] = 0;
                            n += 64;
                        } else {
                            self.clear(n);
                            n += 1;
                        }
                    }
                    self.clear(pn);
                }
                self.largest = Some(pn);
            }
            Some(largest) if largest - pn >= WINDOW => return,
            Some(_) => {}
        }
        self.bits[Self::word(pn)] |= 1 << (pn % 64);
    }

    fn word(pn: u64) -> usize {
        ((pn % WINDOW) / 64) as usize
    }

    fn bit(&self, pn: u64) -> bool {
        self.bits[Self::word(pn)] & (1 << (pn % 64)) != 0
    }

    fn clear(&mut self, pn: u64) {
        self.bits[Self::word(pn)] &= !(1 << (pn % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_a_duplicate_before_the_first_packet() {
        let w = ReplayWindow::default();
        assert!(!w.is_duplicate(0));
        assert!(!w.is_duplicate(1 << 40));
    }

    #[test]
    fn processed_numbers_are_duplicates_others_are_not() {
        let mut w = ReplayWindow::default();
        for pn in [0, 1, 2, 5, 9, 7] {
            assert!(!w.is_duplicate(pn), "{pn}");
            w.insert(pn);
            assert!(w.is_duplicate(pn), "{pn}");
        }
        for pn in [3, 4, 6, 8, 10, 100] {
            assert!(!w.is_duplicate(pn), "{pn}");
        }
    }

    #[test]
    fn below_the_floor_everything_is_dropped() {
        let mut w = ReplayWindow::default();
        w.insert(0);
        w.insert(WINDOW + 10);
        // RFC 9000 §12.3: below the minimum, "immediately dropped".
        for pn in [0, 1, 10] {
            assert!(w.is_duplicate(pn), "{pn}");
        }
        // Inside the window but never seen: accepted.
        assert!(!w.is_duplicate(11));
        assert!(!w.is_duplicate(WINDOW + 9));
    }

    #[test]
    fn slots_reused_after_the_window_moves_start_empty() {
        let mut w = ReplayWindow::default();
        for pn in 0..WINDOW {
            w.insert(pn);
        }
        // Jump by less than a window, then by odd amounts across word
        // boundaries: the slots of numbers never received read as new.
        for (from, to) in [(WINDOW - 1, WINDOW + 100), (WINDOW + 100, WINDOW + 1000)] {
            w.insert(to);
            for pn in from + 1..to {
                assert!(!w.is_duplicate(pn), "{pn} after jump to {to}");
            }
            assert!(w.is_duplicate(to));
        }
        // Earlier numbers still inside the window stay remembered.
        assert!(w.is_duplicate(WINDOW - 1));
        // A jump beyond the window forgets everything in it.
        w.insert(10 * WINDOW);
        assert!(!w.is_duplicate(10 * WINDOW - 1));
        assert!(w.is_duplicate(10 * WINDOW - WINDOW));
    }

    #[test]
    fn matches_a_model_on_random_sequences() {
        // A simple xorshift keeps this deterministic without a dependency.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut w = ReplayWindow::default();
        let mut seen = std::collections::BTreeSet::new();
        let mut largest = 0u64;
        for _ in 0..50_000 {
            let r = next();
            let pn = match r % 4 {
                0 => largest + 1 + (r >> 8) % 200,
                1 => largest.saturating_sub((r >> 8) % (WINDOW + 50)),
                _ => largest + 1,
            };
            let expect =
                seen.contains(&pn) || largest.saturating_sub(pn) >= WINDOW && !seen.is_empty();
            assert_eq!(w.is_duplicate(pn), expect, "pn {pn} largest {largest}");
            if !expect {
                w.insert(pn);
                seen.insert(pn);
                largest = largest.max(pn);
            }
        }
    }
}
