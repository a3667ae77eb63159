//! A set of `u64` values stored as sorted, disjoint ranges.
//!
//! Used for the packet numbers a receiver has processed (to build ACK
//! frames, RFC 9000 §13.2) and for the byte offsets of stream data that has
//! arrived (reassembly bookkeeping).
//!
//! Ranges are **half-open** (`start..end`, `end` excluded), as
//! [`std::ops::Range`] is. Stored ranges are never empty, never overlap and
//! never touch: inserting `3..5` next to `5..8` leaves the single range
//! `3..8`. Because `end` is exclusive, the value `u64::MAX` cannot be
//! stored; QUIC packet numbers and stream offsets are below 2^62, so this
//! never matters in practice.

use std::collections::{BTreeMap, btree_map};
use std::ops::Range;

/// A sorted set of disjoint, non-adjacent, half-open `u64` ranges.
///
/// Backed by a `BTreeMap` from range start to range end, so insertion,
/// removal and look-up cost O(log n) in the number of ranges (plus the
/// ranges merged or split by the operation).
///
/// An optional bound on the number of ranges ([`RangeSet::with_max_ranges`])
/// makes the set drop its *smallest* ranges when it grows past the bound, so
/// a peer that sends packets with scattered packet numbers cannot make the
/// ACK state grow without limit (RFC 9000 §13.2.3: "A receiver limits the
/// number of ACK Ranges it remembers"; "older ranges (those with the
/// smallest packet numbers) are omitted").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start -> end (exclusive). Invariant: for consecutive entries
    /// `(s1, e1)`, `(s2, e2)`: `s1 < e1 < s2 < e2`.
    map: BTreeMap<u64, u64>,
    max_ranges: Option<usize>,
}

impl RangeSet {
    /// An empty set with no bound on the number of ranges.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set that keeps at most `max_ranges` ranges, dropping the
    /// smallest ones when an insertion exceeds the bound.
    ///
    /// # Panics
    /// If `max_ranges` is zero.
    pub fn with_max_ranges(max_ranges: usize) -> Self {
        let mut set = Self::new();
        set.set_max_ranges(Some(max_ranges));
        set
    }

    /// Changes the bound on the number of ranges (`None`: unbounded). A
    /// tighter bound drops the smallest ranges at once.
    ///
    /// # Panics
    /// If the bound is `Some(0)`.
    pub fn set_max_ranges(&mut self, max_ranges: Option<usize>) {
        assert!(max_ranges != Some(0), "RangeSet bound must be at least 1");
        self.max_ranges = max_ranges;
        self.enforce_bound();
    }

    /// The bound on the number of ranges, if any.
    pub fn max_ranges(&self) -> Option<usize> {
        self.max_ranges
    }

    /// Adds every value of `range`, merging it with ranges it overlaps or
    /// touches. Returns whether any value was not already present. An empty
    /// range changes nothing and returns `false`.
    ///
    /// If the set is bounded and now holds too many ranges, the smallest are
    /// dropped, possibly including the one just inserted; the return value
    /// still reports whether `range` added new values.
    pub fn insert(&mut self, range: Range<u64>) -> bool {
        let Range { mut start, mut end } = range;
        if start >= end {
            return false;
        }
        // The common case, in-order data and increasing packet numbers: the
        // new range starts within or right at the end of the last one, so
        // it only moves that end (no range follows to merge with).
        if let Some(mut last) = self.map.last_entry() {
            if start >= *last.key() && start <= *last.get() {
                if end <= *last.get() {
                    return false;
                }
                *last.get_mut() = end;
                return true;
            }
        }
        // A range starting at or before `start` that reaches `start` absorbs
        // the new one (or is absorbed into it).
        if let Some((&prev_start, &prev_end)) = self.map.range(..=start).next_back() {
            if prev_end >= end {
                return false; // already fully contained
            }
            if prev_end >= start {
                start = prev_start;
                self.map.remove(&prev_start);
            }
        }
        // Absorb every following range that starts within or right at `end`.
        while let Some((&next_start, &next_end)) = self.map.range(start..=end).next() {
            end = end.max(next_end);
            self.map.remove(&next_start);
        }
        self.map.insert(start, end);
        self.enforce_bound();
        true
    }

    /// Adds the single value `value`. Returns whether it was new.
    ///
    /// `u64::MAX` cannot be represented (see the module docs) and is ignored.
    pub fn insert_one(&mut self, value: u64) -> bool {
        match value.checked_add(1) {
            Some(end) => self.insert(value..end),
            None => false,
        }
    }

    /// Whether `value` is in the set.
    pub fn contains(&self, value: u64) -> bool {
        self.map
            .range(..=value)
            .next_back()
            .is_some_and(|(_, &end)| value < end)
    }

    /// Whether every value of `range` is in the set (`true` for an empty
    /// range).
    pub fn contains_range(&self, range: Range<u64>) -> bool {
        if range.start >= range.end {
            return true;
        }
        self.map
            .range(..=range.start)
            .next_back()
            .is_some_and(|(_, &end)| range.end <= end)
    }

    /// Removes every value of `range`, splitting a stored range if `range`
    /// falls inside it. Returns whether any value was removed.
    pub fn remove(&mut self, range: Range<u64>) -> bool {
        let Range { start, end } = range;
        if start >= end {
            return false;
        }
        let mut removed = false;
        // A range starting before `start` may overlap the removed span.
        if let Some((&prev_start, &prev_end)) = self.map.range(..start).next_back() {
            if prev_end > start {
                self.map.insert(prev_start, start);
                if prev_end > end {
                    self.map.insert(end, prev_end);
                    return true;
                }
                removed = true;
            }
        }
        // Ranges starting inside `start..end` lose their head or vanish.
        while let Some((&next_start, &next_end)) = self.map.range(start..end).next() {
            self.map.remove(&next_start);
            if next_end > end {
                self.map.insert(end, next_end);
            }
            removed = true;
        }
        removed
    }

    /// Removes every value below `value` (RFC 9000 §13.2.4: once an ACK
    /// frame is acknowledged the receiver can stop acknowledging packets up
    /// to its Largest Acknowledged).
    pub fn remove_below(&mut self, value: u64) -> bool {
        self.remove(0..value)
    }

    /// Removes and returns the range holding the smallest values.
    pub fn pop_min(&mut self) -> Option<Range<u64>> {
        self.map.pop_first().map(|(s, e)| s..e)
    }

    /// Removes and returns the range holding the largest values.
    pub fn pop_max(&mut self) -> Option<Range<u64>> {
        self.map.pop_last().map(|(s, e)| s..e)
    }

    /// The range holding the smallest values.
    pub fn first(&self) -> Option<Range<u64>> {
        self.map.first_key_value().map(|(&s, &e)| s..e)
    }

    /// The range holding the largest values.
    pub fn last(&self) -> Option<Range<u64>> {
        self.map.last_key_value().map(|(&s, &e)| s..e)
    }

    /// The smallest value in the set.
    pub fn min(&self) -> Option<u64> {
        self.map.first_key_value().map(|(&s, _)| s)
    }

    /// The largest value in the set (inclusive, i.e. the last range's
    /// `end - 1`).
    pub fn max(&self) -> Option<u64> {
        self.map.last_key_value().map(|(_, &e)| e - 1)
    }

    /// The number of ranges (not values).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the set holds no value.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Removes every range.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// The ranges in ascending order; `.rev()` gives them in descending
    /// order (largest first, as an ACK frame lists them).
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.map.iter())
    }

    fn enforce_bound(&mut self) {
        if let Some(max) = self.max_ranges {
            while self.map.len() > max {
                self.map.pop_first();
            }
        }
    }
}

/// Iterator over the ranges of a [`RangeSet`], ascending; double-ended.
#[derive(Debug, Clone)]
pub struct Iter<'a>(btree_map::Iter<'a, u64, u64>);

impl Iterator for Iter<'_> {
    type Item = Range<u64>;

    fn next(&mut self) -> Option<Range<u64>> {
        self.0.next().map(|(&s, &e)| s..e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Range<u64>> {
        self.0.next_back().map(|(&s, &e)| s..e)
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a RangeSet {
    type Item = Range<u64>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ranges(set: &RangeSet) -> Vec<Range<u64>> {
        set.iter().collect()
    }

    #[test]
    fn insert_merges_overlapping_and_adjacent() {
        let mut set = RangeSet::new();
        assert!(set.insert(10..20));
        assert!(set.insert(30..40));
        assert!(!set.insert(12..18), "contained");
        assert!(set.insert(20..25), "adjacent on the right");
        assert_eq!(ranges(&set), vec![10..25, 30..40]);
        assert!(set.insert(5..10), "adjacent on the left");
        assert!(set.insert(25..30), "bridges the gap");
        assert_eq!(ranges(&set), vec![5..40]);
        assert!(set.insert(0..100), "swallows everything");
        assert_eq!(ranges(&set), vec![0..100]);
        assert!(!set.insert(7..7), "empty");
    }

    #[test]
    fn insert_one_and_contains() {
        let mut set = RangeSet::new();
        for pn in [0, 1, 2, 5, 7, 6] {
            assert!(set.insert_one(pn));
        }
        assert!(!set.insert_one(6), "duplicate packet");
        assert_eq!(ranges(&set), vec![0..3, 5..8]);
        assert!(set.contains(2) && set.contains(5) && set.contains(7));
        assert!(!set.contains(3) && !set.contains(4) && !set.contains(8));
        assert!(!set.insert_one(u64::MAX));
        assert!(set.contains_range(5..8) && !set.contains_range(4..6));
    }

    #[test]
    fn remove_splits_and_trims() {
        let mut set = RangeSet::new();
        set.insert(0..10);
        set.insert(20..30);
        assert!(set.remove(3..5));
        assert_eq!(ranges(&set), vec![0..3, 5..10, 20..30]);
        assert!(set.remove(8..22));
        assert_eq!(ranges(&set), vec![0..3, 5..8, 22..30]);
        assert!(!set.remove(10..20));
        assert!(set.remove_below(6));
        assert_eq!(ranges(&set), vec![6..8, 22..30]);
    }

    #[test]
    fn min_max_pop_and_reverse_iteration() {
        let mut set = RangeSet::new();
        assert_eq!((set.min(), set.max()), (None, None));
        set.insert(4..6);
        set.insert(9..12);
        set.insert(1..2);
        assert_eq!((set.min(), set.max()), (Some(1), Some(11)));
        assert_eq!(
            set.iter().rev().collect::<Vec<_>>(),
            vec![9..12, 4..6, 1..2]
        );
        assert_eq!(set.len(), 3);
        assert_eq!(set.pop_min(), Some(1..2));
        assert_eq!(set.pop_max(), Some(9..12));
        assert_eq!((set.first(), set.last()), (Some(4..6), Some(4..6)));
    }

    // RFC 9000 §13.2.3: if an ACK frame cannot hold every range, "older
    // ranges (those with the smallest packet numbers) are omitted".
    #[test]
    fn bound_drops_smallest_ranges() {
        let mut set = RangeSet::with_max_ranges(3);
        for pn in (0..20).step_by(2) {
            set.insert_one(pn);
        }
        assert_eq!(ranges(&set), vec![14..15, 16..17, 18..19]);
        // A stale packet far below is accepted and dropped at once.
        assert!(set.insert_one(1));
        assert_eq!(set.len(), 3);
        assert_eq!(set.min(), Some(14));
        set.set_max_ranges(Some(1));
        assert_eq!(ranges(&set), vec![18..19]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Range<u64>),
        InsertOne(u64),
        Remove(Range<u64>),
        PopMin,
        PopMax,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..200, 0u64..20).prop_map(|(s, l)| Op::Insert(s..s + l)),
            4 => (0u64..200).prop_map(Op::InsertOne),
            2 => (0u64..200, 0u64..30).prop_map(|(s, l)| Op::Remove(s..s + l)),
            1 => Just(Op::PopMin),
            1 => Just(Op::PopMax),
        ]
    }

    /// The naive model's values grouped into maximal runs.
    fn model_ranges(model: &BTreeSet<u64>) -> Vec<Range<u64>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        for &v in model {
            match out.last_mut() {
                Some(r) if r.end == v => r.end += 1,
                _ => out.push(v..v + 1),
            }
        }
        out
    }

    fn check_invariants(set: &RangeSet) {
        let rs = ranges(set);
        for r in &rs {
            assert!(r.start < r.end, "empty range {r:?}");
        }
        for w in rs.windows(2) {
            assert!(w[0].end < w[1].start, "overlap or adjacency {w:?}");
        }
    }

    proptest! {
        #[test]
        fn matches_btreeset_model(ops in proptest::collection::vec(op(), 0..60)) {
            let mut set = RangeSet::new();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(r) => {
                        let new = r.clone().any(|v| !model.contains(&v));
                        model.extend(r.clone());
                        prop_assert_eq!(set.insert(r), new);
                    }
                    Op::InsertOne(v) => prop_assert_eq!(set.insert_one(v), model.insert(v)),
                    Op::Remove(r) => {
                        let had = r.clone().any(|v| model.contains(&v));
                        for v in r.clone() {
                            model.remove(&v);
                        }
                        prop_assert_eq!(set.remove(r), had);
                    }
                    Op::PopMin => {
                        let expect = model_ranges(&model).first().cloned();
                        if let Some(r) = &expect {
                            for v in r.clone() { model.remove(&v); }
                        }
                        prop_assert_eq!(set.pop_min(), expect);
                    }
                    Op::PopMax => {
                        let expect = model_ranges(&model).last().cloned();
                        if let Some(r) = &expect {
                            for v in r.clone() { model.remove(&v); }
                        }
                        prop_assert_eq!(set.pop_max(), expect);
                    }
                }
                check_invariants(&set);
                prop_assert_eq!(ranges(&set), model_ranges(&model));
                prop_assert_eq!(set.min(), model.first().copied());
                prop_assert_eq!(set.max(), model.last().copied());
            }
            for v in 0..240 {
                prop_assert_eq!(set.contains(v), model.contains(&v));
                for len in [1, 3, 10] {
                    let all = (v..v + len).all(|x| model.contains(&x));
                    prop_assert_eq!(set.contains_range(v..v + len), all);
                }
            }
            let mut rev: Vec<_> = set.iter().rev().collect();
            rev.reverse();
            prop_assert_eq!(rev, ranges(&set));
        }

        #[test]
        fn bounded_set_keeps_the_largest_ranges(
            values in proptest::collection::vec(0u64..300, 0..100),
            max in 1usize..6,
        ) {
            let mut bounded = RangeSet::with_max_ranges(max);
            let mut full = RangeSet::new();
            for v in values {
                bounded.insert_one(v);
                full.insert_one(v);
                check_invariants(&bounded);
                prop_assert!(bounded.len() <= max);
                // Every kept range holds only received values, and the
                // largest range always matches the unbounded set's.
                for r in bounded.iter() {
                    prop_assert!(full.contains_range(r));
                }
                prop_assert_eq!(bounded.max(), full.max());
            }
        }
    }
}
