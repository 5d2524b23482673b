//! The raygent runtime: [`TaskManager`] runs a [`Task`](raygent_core::Task)
//! over many items on a bounded pool of workers, retries what fails, hands
//! results on in input order, saves them and checkpoints its progress.
//!
//! ```
//! use raygent_actors::{SubmitOptions, TaskManager};
//! use raygent_core::{task_fn, RetryPolicy};
//!
//! let mut manager = TaskManager::new(|| task_fn("square", |x: &u64| Ok(x * x)))
//!     .with_n_cores(2);
//! let report = manager
//!     .submit_tasks(1..=10u64, SubmitOptions::new().with_chunk_size(3).with_retry(RetryPolicy::new(2)))
//!     .unwrap();
//! assert_eq!(report.chunks, 4);
//! assert_eq!(manager.get_results(), &[1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
//! ```
//!
//! Inside, one job is a handful of actix actors: a supervisor owning a pool
//! of task actors (one task instance each, on their own threads, panics
//! caught), a reorder actor that releases chunks in input order, and a saver
//! actor that batches, saves and feeds the result handler off the task
//! threads. See `docs/architecture.md`.

mod actors;
mod exec;
mod manager;
mod progress;
mod resume;
mod shard;
mod sink;
mod window;
pub mod worker;

pub use crate::manager::{
    DEFAULT_CHUNK_SIZE, DEFAULT_SAVE_INTERVAL, SubmitOptions, TaskManager, max_concurrent_tasks,
};
pub use crate::progress::Progress;
pub use crate::resume::{
    DEFAULT_CHECKPOINT_INTERVAL, INLINE_JOB_STATE_MAX, JobConfig, JobState, MemoryProgressStore,
    ProgressStore, ResumeConfig, StepProgressStore,
};
pub use crate::shard::{
    K8S_INDEX_ENV, SHARD_OFFSET_ENV, SLURM_TASK_COUNT_ENV, SLURM_TASK_ID_ENV, SLURM_TASK_MAX_ENV,
    SLURM_TASK_MIN_ENV, Shard,
};
pub use crate::sink::Commit;
pub use crate::worker::{
    LineTask, ProcessTask, RustWorker, WORKER_ID_ENV, WORKER_TASK_ENV, WorkerCommand, WorkerError,
    WorkerErrorKind, serve_worker_if_requested,
};
