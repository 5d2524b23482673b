//! The reorder actor: finished chunks arrive in any order and leave in
//! input order.

use std::collections::VecDeque;

use crate::flow::Released;

/// Holds chunks that finished ahead of an older one, and releases the
/// contiguous prefix.
///
/// Chunk indices in flight lie within the dispatch window above `next`, so
/// the held chunks sit in a ring indexed by `index - next` (no tree, no
/// hashing).
#[derive(Debug)]
pub(crate) struct Reorder<O> {
    /// The next chunk to release.
    next: u64,
    /// `held[i]` is chunk `next + i`, once it has finished.
    held: VecDeque<Option<Released<O>>>,
    /// No chunk at or after this is ever released: one before it was
    /// dropped (the job is stopping).
    end: u64,
}

impl<O> Reorder<O> {
    pub(crate) fn new(first_chunk: u64) -> Self {
        Reorder {
            next: first_chunk,
            held: VecDeque::new(),
            end: u64::MAX,
        }
    }

    /// Takes a finished chunk.
    pub(crate) fn insert(&mut self, r: Released<O>) {
        if r.index >= self.end || r.index < self.next {
            return;
        }
        let i = (r.index - self.next) as usize;
        if i >= self.held.len() {
            self.held.resize_with(i + 1, || None);
        }
        self.held[i] = Some(r);
    }

    /// Chunk `index` will never be released (it was not run, or it aborted
    /// the job): neither will anything after it.
    pub(crate) fn end_at(&mut self, index: u64) {
        if index < self.end {
            self.end = index.max(self.next);
            let dropped = self
                .held
                .len()
                .saturating_sub((self.end - self.next) as usize);
            if dropped > 0 {
                tracing::debug!(dropped, "dropping chunks behind one that did not finish");
            }
            self.held.truncate((self.end - self.next) as usize);
        }
    }

    /// The next chunk in input order, if it has finished.
    pub(crate) fn pop(&mut self) -> Option<Released<O>> {
        if self.next >= self.end || !matches!(self.held.front(), Some(Some(_))) {
            return None;
        }
        self.next += 1;
        self.held.pop_front().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Outcome;

    fn chunk(index: u64) -> Released<u64> {
        Released {
            index,
            outcome: Outcome::Done {
                start: index,
                results: vec![index],
            },
            fingerprint: None,
        }
    }

    fn drain(r: &mut Reorder<u64>) -> Vec<u64> {
        std::iter::from_fn(|| r.pop()).map(|c| c.index).collect()
    }

    #[test]
    fn chunks_leave_in_input_order() {
        let mut r = Reorder::new(10);
        r.insert(chunk(12));
        r.insert(chunk(11));
        assert_eq!(drain(&mut r), [] as [u64; 0]);
        r.insert(chunk(10));
        assert_eq!(drain(&mut r), [10, 11, 12]);
        r.insert(chunk(14));
        r.insert(chunk(13));
        assert_eq!(drain(&mut r), [13, 14]);
    }

    #[test]
    fn nothing_after_a_dropped_chunk_is_released() {
        let mut r = Reorder::new(0);
        r.insert(chunk(1));
        r.insert(chunk(3));
        r.end_at(2);
        r.insert(chunk(4));
        r.insert(chunk(0));
        assert_eq!(drain(&mut r), [0, 1]);
        r.end_at(5);
        assert_eq!(drain(&mut r), [] as [u64; 0], "a later end does not reopen");
    }
}
