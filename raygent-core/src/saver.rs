//! The `Saver` trait and an in-memory saver.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::{FailedChunk, SaveError};

/// A batch of results handed to a [`Saver`]: whole chunks, in input order.
#[derive(Debug)]
pub struct Batch<'a, T> {
    /// The chunks this batch covers (chunks that failed and were skipped
    /// under a skip policy are inside the range but have no results).
    pub chunks: Range<u64>,
    /// The input items this batch covers.
    pub items: Range<u64>,
    /// The results, in input order.
    pub results: &'a [T],
}

/// Where a resumed job restarts; see [`Saver::resume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// The first chunk that will be saved again.
    pub next_chunk: u64,
    /// The input index of that chunk's first item.
    pub next_item: u64,
}

/// Persists results, batch by batch, in input order.
///
/// The runtime calls [`save`](Saver::save) on a thread of its own (never a
/// task thread), with batches of at least `save_interval` results cut at
/// chunk boundaries (the last batch may be smaller), then
/// [`finish`](Saver::finish) once. When `save` returns `Ok`, the batch counts
/// as committed: a checkpoint may record it, so it must be durable.
///
/// A saver that can keep several saves in flight (uploading one part while
/// the next is encoded) implements [`submit`](Saver::submit) and
/// [`flush`](Saver::flush) as well; the runtime then calls those instead of
/// `save`, and counts a batch as committed only once the saver says so.
pub trait Saver<T>: Send + 'static {
    /// Saves one batch. An error stops the job and is returned to the caller.
    fn save(&mut self, batch: &Batch<'_, T>) -> Result<(), SaveError>;

    /// Starts saving one batch and may return before it is durable. Returns
    /// the chunk index below which every batch submitted so far is
    /// committed (durable, in order): batches are committed in the order
    /// they were submitted, never out of it. An error of this batch or of
    /// an earlier one still in flight stops the job.
    ///
    /// The default saves synchronously: every batch is committed on return.
    fn submit(&mut self, batch: &Batch<'_, T>) -> Result<u64, SaveError> {
        self.save(batch)?;
        Ok(batch.chunks.end)
    }

    /// Waits until every submitted batch is committed, or returns the error
    /// of the first one that failed. Called before [`finish`](Saver::finish)
    /// and when a job stops. Defaults to doing nothing (nothing is ever in
    /// flight with the default [`submit`](Saver::submit)).
    fn flush(&mut self) -> Result<(), SaveError> {
        Ok(())
    }

    /// Called once after the last batch. Defaults to doing nothing.
    fn finish(&mut self) -> Result<(), SaveError> {
        Ok(())
    }

    /// Called once, before any `save`, when a job resumes from a checkpoint:
    /// everything for chunks `>= point.next_chunk` that this saver may have
    /// written before the crash must be forgotten (it was not checkpointed)
    /// and will be saved again. Defaults to doing nothing.
    ///
    /// A saver that implements it says so with
    /// [`can_resume`](Saver::can_resume).
    fn resume(&mut self, point: &ResumePoint) -> Result<(), SaveError> {
        let _ = point;
        Ok(())
    }

    /// Whether this saver knows how to resume: its
    /// [`resume`](Saver::resume) forgets what it wrote past the resume
    /// point. Defaults to `false`, and a checkpointed job refuses to start
    /// with a saver that cannot resume: a saver that appends (to a CSV
    /// file, say) would otherwise write the rows past the last checkpoint a
    /// second time after a crash, without a word.
    fn can_resume(&self) -> bool {
        false
    }

    /// Called once, before any `save`, when a checkpointed job starts with
    /// no checkpoint: fail if the destination already holds results (those
    /// of another job, or of a run whose checkpoint was deleted), so that
    /// they are never replaced silently. Defaults to doing nothing.
    fn check_empty(&mut self) -> Result<(), SaveError> {
        Ok(())
    }

    /// Told, in input order, about each chunk skipped under a skip failure
    /// policy, before the batch that covers it is submitted: that batch has
    /// no results for the chunk's items. A saver that records each result's
    /// input position (the Parquet saver's `_index` column) needs this to
    /// place the results of the other chunks. Defaults to doing nothing.
    fn skipped(&mut self, chunk: &FailedChunk) {
        let _ = chunk;
    }

    /// A short description recorded in checkpoints (format and location), so
    /// a resume with a different output is refused. Defaults to empty.
    fn describe(&self) -> String {
        String::new()
    }
}

/// A boxed saver (`Box<dyn Saver<T>>`, chosen at run time) is a saver: every
/// method goes to the box's content, so nothing falls back to a default.
/// A method added to [`Saver`] must be forwarded here too.
impl<T, S: Saver<T> + ?Sized> Saver<T> for Box<S> {
    fn save(&mut self, batch: &Batch<'_, T>) -> Result<(), SaveError> {
        (**self).save(batch)
    }
    fn submit(&mut self, batch: &Batch<'_, T>) -> Result<u64, SaveError> {
        (**self).submit(batch)
    }
    fn flush(&mut self) -> Result<(), SaveError> {
        (**self).flush()
    }
    fn finish(&mut self) -> Result<(), SaveError> {
        (**self).finish()
    }
    fn resume(&mut self, point: &ResumePoint) -> Result<(), SaveError> {
        (**self).resume(point)
    }
    fn can_resume(&self) -> bool {
        (**self).can_resume()
    }
    fn check_empty(&mut self) -> Result<(), SaveError> {
        (**self).check_empty()
    }
    fn skipped(&mut self, chunk: &FailedChunk) {
        (**self).skipped(chunk)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// One batch as [`MemorySaver`] recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedBatch<T> {
    /// The chunks the batch covered.
    pub chunks: Range<u64>,
    /// The items the batch covered.
    pub items: Range<u64>,
    /// The results.
    pub results: Vec<T>,
}

/// A saver that keeps batches in memory, for tests and small jobs.
///
/// Clones share the same storage, so a test can keep one clone and hand the
/// other to the job.
///
/// ```
/// use raygent_core::{Batch, MemorySaver, Saver};
/// let saver = MemorySaver::new();
/// let mut s = saver.clone();
/// s.save(&Batch { chunks: 0..1, items: 0..2, results: &[4, 9] }).unwrap();
/// assert_eq!(saver.results(), vec![4, 9]);
/// ```
#[derive(Debug)]
pub struct MemorySaver<T> {
    batches: Arc<Mutex<Vec<SavedBatch<T>>>>,
    fail_after: Option<usize>,
}

impl<T> Clone for MemorySaver<T> {
    fn clone(&self) -> Self {
        MemorySaver {
            batches: Arc::clone(&self.batches),
            fail_after: self.fail_after,
        }
    }
}

impl<T> Default for MemorySaver<T> {
    fn default() -> Self {
        MemorySaver {
            batches: Arc::new(Mutex::new(Vec::new())),
            fail_after: None,
        }
    }
}

impl<T: Clone> MemorySaver<T> {
    /// An empty saver.
    pub fn new() -> Self {
        Self::default()
    }

    /// A saver whose saves fail once `n` batches were saved (for tests).
    pub fn failing_after(n: usize) -> Self {
        MemorySaver {
            fail_after: Some(n),
            ..Self::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SavedBatch<T>>> {
        // A poisoned lock only means a test thread panicked mid-push; the
        // data is still a list of whole batches.
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every batch saved so far.
    pub fn batches(&self) -> Vec<SavedBatch<T>> {
        self.lock().clone()
    }

    /// Every result saved so far, concatenated.
    pub fn results(&self) -> Vec<T> {
        self.lock()
            .iter()
            .flat_map(|b| b.results.iter().cloned())
            .collect()
    }
}

impl<T: Clone + Send + 'static> Saver<T> for MemorySaver<T> {
    fn save(&mut self, batch: &Batch<'_, T>) -> Result<(), SaveError> {
        let mut batches = self.lock();
        if self.fail_after.is_some_and(|n| batches.len() >= n) {
            return Err(SaveError::write(
                format!("memory saver, batch of chunks {:?}", batch.chunks),
                "injected failure",
            ));
        }
        batches.push(SavedBatch {
            chunks: batch.chunks.clone(),
            items: batch.items.clone(),
            results: batch.results.to_vec(),
        });
        Ok(())
    }

    fn resume(&mut self, point: &ResumePoint) -> Result<(), SaveError> {
        self.lock().retain(|b| b.chunks.end <= point.next_chunk);
        Ok(())
    }

    fn can_resume(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A boxed saver behaves as its content: no method falls back to the
    /// trait's default.
    #[test]
    fn a_boxed_saver_forwards_every_method() {
        let inner = MemorySaver::<u32>::new();
        let mut boxed: Box<dyn Saver<u32>> = Box::new(inner.clone());
        assert!(
            boxed.can_resume(),
            "MemorySaver resumes; the default says no"
        );
        assert_eq!(boxed.describe(), "memory");
        let results = [1, 2, 3];
        let batch = Batch {
            chunks: 0..1,
            items: 0..3,
            results: &results,
        };
        assert_eq!(boxed.submit(&batch).unwrap(), 1);
        boxed.flush().unwrap();
        boxed.finish().unwrap();
        assert_eq!(inner.results(), [1, 2, 3]);
    }
}
