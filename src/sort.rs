//! Sorting the large arrays of an import (tens of millions of entries) on two threads.
//!
//! An import sorts the directory by email, its identity keys by hash, and the keys again
//! to find duplicates. Each is a few seconds on one core for 10 M accounts; sorting two
//! halves at once and merging them takes a little over half of that on this project's
//! two-core reference machine. Callers sort small fixed-size entries that carry the
//! deciding bytes inline (see `store::directory`), so the comparisons rarely chase a
//! pointer: that mattered more than the threads.

use std::cmp::Ordering;

/// Below this many entries the second thread costs more than it saves.
const PARALLEL_FROM: usize = 1 << 16;

/// `v` sorted by `cmp`, not stable: both halves are sorted on their own thread, then
/// merged into the returned vector.
pub fn par_sorted<T, F>(mut v: Vec<T>, cmp: F) -> Vec<T>
where
    T: Copy + Send,
    F: Fn(&T, &T) -> Ordering + Sync,
{
    if v.len() < PARALLEL_FROM {
        v.sort_unstable_by(&cmp);
        return v;
    }
    let mid = v.len() / 2;
    let (left, right) = v.split_at_mut(mid);
    std::thread::scope(|s| {
        s.spawn(|| left.sort_unstable_by(&cmp));
        right.sort_unstable_by(&cmp);
    });
    let (left, right) = v.split_at(mid);
    let mut out = Vec::with_capacity(v.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        if cmp(&left[i], &right[j]).is_le() {
            out.push(left[i]);
            i += 1;
        } else {
            out.push(right[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&left[i..]);
    out.extend_from_slice(&right[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn sorts_like_the_standard_sort_on_both_sides_of_the_threshold() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for n in [
            0,
            1,
            2,
            1000,
            PARALLEL_FROM - 1,
            PARALLEL_FROM,
            3 * PARALLEL_FROM + 5,
        ] {
            // Few distinct keys, so that ties between the halves are merged too.
            let v: Vec<(u16, u32)> = (0..n as u32)
                .map(|i| (rng.random_range(0..500), i))
                .collect();
            let mut want = v.clone();
            want.sort_by_key(|e| e.0);
            let got = par_sorted(v, |a, b| a.0.cmp(&b.0));
            assert_eq!(got.len(), want.len());
            assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "n = {n}");
            let mut got_ids: Vec<u32> = got.iter().map(|e| e.1).collect();
            got_ids.sort_unstable();
            assert!(
                got_ids.iter().copied().eq(0..n as u32),
                "n = {n}: an entry lost"
            );
        }
    }
}
