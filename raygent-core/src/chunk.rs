//! Deterministic, streaming chunking of any iterator.

use std::convert::Infallible;
use std::ops::Range;

use crate::{Error, Result};

/// A slice of the input: items `[start, start + items.len())`, chunk number `index`.
///
/// Chunk `i` of a job with chunk size `n` always holds items `[i*n, (i+1)*n)`
/// (the last one may be shorter), which is what lets a resumed job skip
/// exactly the chunks it committed before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<T> {
    /// The chunk's index in the input, from 0.
    pub index: u64,
    /// The index of the chunk's first item in the input.
    pub start: u64,
    /// The items.
    pub items: Vec<T>,
}

impl<T> Chunk<T> {
    /// The input indices this chunk holds, as a half-open range.
    pub fn range(&self) -> Range<u64> {
        self.start..self.start + self.items.len() as u64
    }
}

/// Splits a fallible stream of items into [`Chunk`]s without collecting it.
///
/// When the input yields an error, the partial chunk in progress is dropped
/// (so no chunk ever holds fewer items than its index promises, except the
/// last), the error is returned with the index of the bad item, and the
/// iterator ends.
///
/// ```
/// use raygent_core::Chunks;
/// let chunks: Vec<_> = Chunks::new(0..7u32, 3).unwrap().map(|c| c.unwrap().items).collect();
/// assert_eq!(chunks, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
/// ```
pub struct Chunks<I> {
    iter: I,
    size: usize,
    next_index: u64,
    next_start: u64,
    done: bool,
}

impl<I: Iterator> Chunks<std::iter::Map<I, fn(I::Item) -> Result<I::Item, Infallible>>> {
    /// Chunks an infallible iterator. Fails if `size` is 0.
    pub fn new(iter: impl IntoIterator<IntoIter = I>, size: usize) -> Result<Self> {
        Chunks::try_new(iter.into_iter().map(Ok as fn(_) -> _), size)
    }
}

impl<I> Chunks<I> {
    /// Chunks an iterator of `Result`s. Fails if `size` is 0.
    pub fn try_new(iter: I, size: usize) -> Result<Self> {
        if size == 0 {
            return Err(Error::InvalidConfig("chunk size must be at least 1".into()));
        }
        Ok(Chunks {
            iter,
            size,
            next_index: 0,
            next_start: 0,
            done: false,
        })
    }

    /// The chunk size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The index the next chunk will have.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// The input index of the next chunk's first item.
    pub fn next_start(&self) -> u64 {
        self.next_start
    }
}

/// The error a fallible [`Chunks`] yields: which item was bad, and why.
#[derive(Debug)]
pub struct InputError<E> {
    /// Index of the item that could not be read.
    pub item: u64,
    /// The input's error.
    pub error: E,
}

impl<T, E, I: Iterator<Item = std::result::Result<T, E>>> Iterator for Chunks<I> {
    type Item = std::result::Result<Chunk<T>, InputError<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut items = Vec::with_capacity(self.size);
        while items.len() < self.size {
            match self.iter.next() {
                Some(Ok(item)) => items.push(item),
                Some(Err(error)) => {
                    self.done = true;
                    return Some(Err(InputError {
                        item: self.next_start + items.len() as u64,
                        error,
                    }));
                }
                None => {
                    self.done = true;
                    break;
                }
            }
        }
        if items.is_empty() {
            return None;
        }
        let chunk = Chunk {
            index: self.next_index,
            start: self.next_start,
            items,
        };
        self.next_index += 1;
        self.next_start += chunk.items.len() as u64;
        Some(Ok(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ranges_follow_the_size() {
        for size in [1usize, 2, 3, 7, 10, 11, 100] {
            let chunks: Vec<_> = Chunks::new(0..10u64, size)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            assert_eq!(chunks.len(), 10usize.div_ceil(size));
            for (i, c) in chunks.iter().enumerate() {
                let i = i as u64;
                let s = size as u64;
                assert_eq!(c.index, i);
                assert_eq!(c.range(), i * s..((i + 1) * s).min(10));
                assert_eq!(c.items, (c.range()).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn zero_size_is_refused() {
        assert!(matches!(
            Chunks::new(0..1u8, 0),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn empty_input_has_no_chunks() {
        assert_eq!(Chunks::new(std::iter::empty::<u8>(), 4).unwrap().count(), 0);
    }

    #[test]
    fn an_input_error_drops_the_partial_chunk() {
        let input = (0..8u32).map(|i| if i == 5 { Err("bad") } else { Ok(i) });
        let out: Vec<_> = Chunks::try_new(input, 2).unwrap().collect();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].as_ref().unwrap().items, vec![0, 1]);
        assert_eq!(out[1].as_ref().unwrap().items, vec![2, 3]);
        let err = out[2].as_ref().unwrap_err();
        assert_eq!(err.item, 5);
        assert_eq!(err.error, "bad");
    }
}
