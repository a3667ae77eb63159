//! The windowed filters of BBR's path model (draft-ietf-ccwg-bbr-latest
//! §5.5.3, §5.5.9): a two-slot max filter over ProbeBW cycles for
//! `BBR.max_bw`, and Kathleen Nichols' windowed running max for
//! `BBR.extra_acked`.

/// `BBR.max_bw_filter` (draft-ietf-ccwg-bbr §2.11, §5.5.3-§5.5.6): the
/// maximum of the samples of the current and the previous ProbeBW cycle
/// (`BBR.MaxBwFilterLen` = 2). As §2.11 notes, `BBR.cycle_count` "only
/// needs to be tracked with a single bit", so the filter keeps one slot per
/// cycle and [`MaxBwFilter::advance`] replaces the older one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MaxBwFilter {
    /// The current cycle's maximum and the previous cycle's.
    slots: [u64; 2],
}

impl MaxBwFilter {
    /// Takes a sample of the current cycle; returns the filter's maximum.
    pub(crate) fn update(&mut self, sample: u64) -> u64 {
        self.slots[0] = self.slots[0].max(sample);
        self.get()
    }

    /// `AdvanceMaxBwFilter()`: a new cycle starts; the previous one's
    /// samples are forgotten.
    pub(crate) fn advance(&mut self) {
        self.slots = [0, self.slots[0]];
    }

    /// The maximum over both cycles.
    pub(crate) fn get(&self) -> u64 {
        self.slots[0].max(self.slots[1])
    }
}

/// A windowed running maximum over a virtual time (rounds), after Kathleen
/// Nichols' algorithm as in Linux's `lib/win_minmax.c` (draft-ietf-ccwg-bbr
/// §5.5.5 [KN_FILTER]): three samples — the best, second best and third
/// best in successive sub-windows — so it needs no history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WindowedMax {
    /// (time, value), best first.
    s: [(u64, u64); 3],
}

impl WindowedMax {
    /// Forgets everything but `value` at `time`.
    pub(crate) fn reset(&mut self, time: u64, value: u64) -> u64 {
        self.s = [(time, value); 3];
        value
    }

    /// Adds `value` measured at `time` to a window `window` long; returns
    /// the maximum over the window.
    pub(crate) fn update(&mut self, time: u64, value: u64, window: u64) -> u64 {
        let new = (time, value);
        if value >= self.s[0].1 || time.saturating_sub(self.s[2].0) > window {
            // A new best, or nothing left in the window.
            return self.reset(time, value);
        }
        if value >= self.s[1].1 {
            self.s[1] = new;
            self.s[2] = new;
        } else if value >= self.s[2].1 {
            self.s[2] = new;
        }
        self.subwin_update(new, window)
    }

    /// Ages the best samples out as the window passes them.
    fn subwin_update(&mut self, new: (u64, u64), window: u64) -> u64 {
        let dt = new.0.saturating_sub(self.s[0].0);
        if dt > window {
            // The best is out of the window: promote the others.
            self.s[0] = self.s[1];
            self.s[1] = self.s[2];
            self.s[2] = new;
            if new.0.saturating_sub(self.s[0].0) > window {
                self.s[0] = self.s[1];
                self.s[1] = self.s[2];
                self.s[2] = new;
            }
        } else if self.s[1].0 == self.s[0].0 && dt > window / 4 {
            // A quarter of the window without a second best: take one.
            self.s[1] = new;
            self.s[2] = new;
        } else if self.s[2].0 == self.s[1].0 && dt > window / 2 {
            self.s[2] = new;
        }
        self.s[0].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // §5.5.6: the max_bw filter covers the current and previous cycles.
    #[test]
    fn max_bw_remembers_two_cycles() {
        let mut f = MaxBwFilter::default();
        assert_eq!(f.update(100), 100);
        assert_eq!(f.update(50), 100);
        f.advance();
        assert_eq!(f.update(70), 100, "previous cycle still counts");
        f.advance();
        assert_eq!(f.get(), 70, "two cycles later the 100 is gone");
        f.advance();
        assert_eq!(f.get(), 0);
    }

    #[test]
    fn windowed_max_expires_old_best() {
        let mut f = WindowedMax::default();
        assert_eq!(f.update(0, 10, 10), 10);
        // Within the first quarter window a lower sample is not kept.
        assert_eq!(f.update(1, 8, 10), 10);
        assert_eq!(f.update(5, 6, 10), 10);
        // Round 11: the 10 of round 0 is out; the next best remains.
        assert_eq!(f.update(11, 1, 10), 6);
        assert_eq!(f.update(13, 2, 10), 6);
        assert_eq!(f.update(30, 3, 10), 3, "everything expired");
        assert_eq!(f.update(30, 9, 10), 9);
    }

    #[test]
    fn window_of_one_round_tracks_recent_values() {
        let mut f = WindowedMax::default();
        f.update(0, 100, 1);
        assert_eq!(f.update(1, 20, 1), 100);
        assert_eq!(f.update(2, 30, 1), 30);
        assert_eq!(f.update(3, 10, 1), 30);
        assert_eq!(f.update(4, 5, 1), 10);
    }
}
