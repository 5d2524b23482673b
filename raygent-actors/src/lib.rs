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
//! Inside, one job is a handful of actors, each the owner of its state: a
//! supervisor (an actix actor) owning a pool of task actors (one task
//! instance each, on their own threads, panics caught) that take chunks
//! from a shared queue, a saver actor that puts finished chunks back in
//! input order, saves them and feeds the result handler off the task
//! threads, and a checkpoint actor that records progress. See
//! `docs/architecture.md`.

mod checkpoint;
mod exec;
mod feed;
mod flow;
mod manager;
mod modes;
mod options;
mod pool;
mod progress;
mod reorder;
mod resume;
mod saver;
mod shard;
mod sink;
mod state;
mod store;
mod supervisor;
mod task;
mod window;
pub mod worker;

pub use crate::manager::{TaskManager, max_concurrent_tasks};
pub use crate::options::{DEFAULT_CHUNK_SIZE, DEFAULT_SAVE_INTERVAL, SubmitOptions};
pub use crate::progress::Progress;
pub use crate::resume::{DEFAULT_CHECKPOINT_INTERVAL, ResumeConfig};
pub use crate::shard::{
    K8S_INDEX_ENV, SHARD_OFFSET_ENV, SLURM_TASK_COUNT_ENV, SLURM_TASK_ID_ENV, SLURM_TASK_MAX_ENV,
    SLURM_TASK_MIN_ENV, Shard,
};
pub use crate::state::{JobConfig, JobState};
pub use crate::store::{
    INLINE_JOB_STATE_MAX, MemoryProgressStore, ProgressStore, StepProgressStore,
};
pub use crate::worker::{
    LineTask, ProcessTask, RustWorker, WORKER_ID_ENV, WORKER_TASK_ENV, WorkerCommand, WorkerError,
    WorkerErrorKind, serve_worker_if_requested,
};
