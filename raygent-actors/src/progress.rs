//! Live counters of a running job, for progress bars and logs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
struct Counters {
    items: AtomicU64,
    chunks: AtomicU64,
    retries: AtomicU64,
    failed_chunks: AtomicU64,
    saves: AtomicU64,
}

/// Counters a running job updates as chunks are handed on in order; clones
/// share them, so another thread can read them while the job runs.
///
/// ```
/// use raygent_actors::{Progress, SubmitOptions, TaskManager};
/// use raygent_core::task_fn;
/// let progress = Progress::new();
/// let mut m = TaskManager::new(|| task_fn("id", |x: &u32| Ok(*x)));
/// m.submit_tasks(0..10u32, SubmitOptions::new().with_progress(progress.clone())).unwrap();
/// assert_eq!(progress.items(), 10);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Counters>);

impl Progress {
    /// Counters at zero.
    pub fn new() -> Self {
        Self::default()
    }
    /// Items whose chunk was handed on (done or skipped), including chunks
    /// an earlier run committed.
    pub fn items(&self) -> u64 {
        self.0.items.load(Ordering::Relaxed)
    }
    /// Chunks handed on, including those an earlier run committed.
    pub fn chunks(&self) -> u64 {
        self.0.chunks.load(Ordering::Relaxed)
    }
    /// Retries so far.
    pub fn retries(&self) -> u64 {
        self.0.retries.load(Ordering::Relaxed)
    }
    /// Chunks that failed on every attempt so far.
    pub fn failed_chunks(&self) -> u64 {
        self.0.failed_chunks.load(Ordering::Relaxed)
    }
    /// Batches saved so far.
    pub fn saves(&self) -> u64 {
        self.0.saves.load(Ordering::Relaxed)
    }
    pub(crate) fn set_position(&self, next_chunk: u64, next_item: u64) {
        self.0.chunks.store(next_chunk, Ordering::Relaxed);
        self.0.items.store(next_item, Ordering::Relaxed);
    }
    pub(crate) fn add_retry(&self) {
        self.0.retries.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_failed(&self) {
        self.0.failed_chunks.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_save(&self) {
        self.0.saves.fetch_add(1, Ordering::Relaxed);
    }
}
