//! The options of one job.

use raygent_core::{FailurePolicy, RetryPolicy, Saver, StopHandle};

use crate::progress::Progress;
use crate::resume::ResumeConfig;

/// The default number of items per chunk.
pub const DEFAULT_CHUNK_SIZE: usize = 100;
/// The default number of results per save.
pub const DEFAULT_SAVE_INTERVAL: usize = 100;

/// Options of one [`TaskManager::submit_tasks`](crate::TaskManager::submit_tasks) call.
///
/// ```
/// use raygent_actors::SubmitOptions;
/// use raygent_core::{FailurePolicy, RetryPolicy};
/// let opts: SubmitOptions<u64> = SubmitOptions::new()
///     .with_chunk_size(10)
///     .with_retry(RetryPolicy::new(5))
///     .with_failure_policy(FailurePolicy::Skip);
/// # let _ = opts;
/// ```
pub struct SubmitOptions<O> {
    pub(crate) chunk_size: usize,
    pub(crate) at_once: bool,
    pub(crate) saver: Option<Box<dyn Saver<O>>>,
    pub(crate) save_interval: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) failure_policy: FailurePolicy,
    pub(crate) window: Option<usize>,
    pub(crate) stop: Option<StopHandle>,
    pub(crate) progress: Option<Progress>,
    pub(crate) resume: Option<ResumeConfig>,
    pub(crate) shard: Option<(u32, u32)>,
}

impl<O> Default for SubmitOptions<O> {
    fn default() -> Self {
        SubmitOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            at_once: false,
            saver: None,
            save_interval: DEFAULT_SAVE_INTERVAL,
            retry: RetryPolicy::default(),
            failure_policy: FailurePolicy::default(),
            window: None,
            stop: None,
            progress: None,
            resume: None,
            shard: None,
        }
    }
}

impl<O: Send + 'static> SubmitOptions<O> {
    /// Defaults: chunks of 100, per-item processing, no saver, saves every
    /// 100 results, 3 retries, abort on a permanently failing chunk.
    pub fn new() -> Self {
        Self::default()
    }
    /// Items per chunk (at least 1).
    pub fn with_chunk_size(mut self, n: usize) -> Self {
        self.chunk_size = n;
        self
    }
    /// Calls [`Task::process_items`](raygent_core::Task::process_items) on
    /// whole chunks instead of [`Task::process_item`](raygent_core::Task::process_item)
    /// on each item.
    pub fn with_at_once(mut self, at_once: bool) -> Self {
        self.at_once = at_once;
        self
    }
    /// Saves results with `saver`.
    pub fn with_saver(mut self, saver: impl Saver<O>) -> Self {
        self.saver = Some(Box::new(saver));
        self
    }
    /// Results per save (batches are cut at chunk boundaries, so a batch
    /// holds at least this many results, except the last).
    pub fn with_save_interval(mut self, n: usize) -> Self {
        self.save_interval = n;
        self
    }
    /// How failed chunks are retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// What happens to a chunk that fails on every attempt.
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }
    /// How many chunks may be in flight (dispatched but not yet consumed by
    /// the saver stage) at once; bounds memory when one chunk is slow.
    /// Defaults to `max(64, 8 × workers)`.
    pub fn with_window(mut self, chunks: usize) -> Self {
        self.window = Some(chunks);
        self
    }
    /// A handle that stops the job: it stops dispatching, commits what is
    /// complete and returns [`Error::Interrupted`](raygent_core::Error::Interrupted).
    pub fn with_stop_handle(mut self, stop: StopHandle) -> Self {
        self.stop = Some(stop);
        self
    }
    /// Live counters the job updates (for a progress bar).
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }
    /// Checkpoints progress and resumes an earlier run of the same job.
    /// Needs a saver.
    pub fn with_checkpoint(mut self, resume: ResumeConfig) -> Self {
        self.resume = Some(resume);
        self
    }
    /// Runs only shard `index` of `count` (from 0) of the items given: the
    /// contiguous share `[index × len / count, (index + 1) × len / count)`
    /// of their `len` items, whose number must be known ahead (an exact
    /// `size_hint`, as a `Vec`, a slice or a range have). Chunks are
    /// numbered from 0 within the share; the shards' results, taken in
    /// shard order, are the results of the whole input in input order. The
    /// shard is part of the checkpoint's identity, so a checkpoint of
    /// another shard (or shard count) is never resumed. See
    /// [`Shard::from_env`](crate::Shard::from_env) for the shard of a Slurm
    /// array task or a Kubernetes Indexed Job.
    ///
    /// ```
    /// use raygent_actors::{SubmitOptions, TaskManager};
    /// use raygent_core::task_fn;
    /// let mut m = TaskManager::new(|| task_fn("double", |x: &u64| Ok(x * 2)));
    /// m.submit_tasks(0..10u64, SubmitOptions::new().with_shard(1, 3)).unwrap();
    /// assert_eq!(m.get_results(), &[6, 8, 10]);
    /// ```
    pub fn with_shard(mut self, index: u32, count: u32) -> Self {
        self.shard = Some((index, count));
        self
    }
    /// The shard set by [`with_shard`](Self::with_shard): `(index, count)`.
    pub fn shard(&self) -> Option<(u32, u32)> {
        self.shard
    }
}
