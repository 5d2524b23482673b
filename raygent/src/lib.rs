//! raygent: long, parallel batch jobs that must not lose work.
//!
//! A job runs a [`Task`] over many items: the items are cut into chunks, the
//! chunks run on a bounded pool of workers (threads, or child processes that
//! survive a crash), failed chunks are retried, results come back in input
//! order and are saved as immutable parts to a directory or S3, and progress
//! is checkpointed so that a job killed at any instant resumes where it
//! stopped, every item saved once.
//!
//! A checkpointed job that saves to a directory (or `s3://bucket/prefix`):
//!
//! ```
//! use raygent::{JobOutput, TaskManager, task_fn};
//!
//! fn main() -> raygent::Result<()> {
//! #   let dir = tempfile::tempdir().unwrap();
//! #   let out = dir.path().join("squares");
//! #   let out = out.to_str().unwrap();
//!     let output = JobOutput::new(out)?; // or "s3://bucket/squares"
//!     let mut manager = TaskManager::new(|| task_fn("square", |x: &u64| Ok(x * x)));
//!     manager.submit_tasks(0..10_000u64, output.submit_options()?.with_chunk_size(100))?;
//!
//!     let saved: Vec<u64> = output.reader()?.iter().collect::<Result<_, _>>()?;
//!     assert_eq!(saved, manager.get_results());
//!     Ok(())
//! }
//! ```
//!
//! Run it again and it finds the job complete; kill it halfway and the same
//! call resumes after the last checkpoint.
//!
//! This crate is a facade over small crates, for those who want only a part:
//! `raygent-core` (the vocabulary: tasks, chunks, savers, policies; no
//! runtime), `raygent-actors` (the runtime), `raygent-savers` (parts on disk
//! and S3, re-exported as [`savers`]) and `raygent-ckpt` (step and stage
//! checkpoints, re-exported as [`ckpt`]).
//!
//! Features: `s3` (default) for `s3://` outputs; `hdf5` for
//! [`savers::Hdf5Saver`] (needs libhdf5); `parquet` for
//! `savers::Format::Parquet` (typed Parquet parts that DuckDB, polars and
//! pandas read directly).

mod error;
mod output;

pub use crate::error::{Error, Result};
pub use crate::output::{CHECKPOINT_DIR, CHECKPOINT_KEEP, JobOutput};
pub use raygent_actors::{
    DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_CHUNK_SIZE, DEFAULT_SAVE_INTERVAL, JobConfig, JobState,
    LineTask, MemoryProgressStore, ProcessTask, Progress, ProgressStore, ResumeConfig, RustWorker,
    Shard, StepProgressStore, SubmitOptions, TaskManager, WORKER_ID_ENV, WORKER_TASK_ENV,
    WorkerCommand, WorkerError, WorkerErrorKind, max_concurrent_tasks, serve_worker_if_requested,
};
pub use raygent_core::{
    Batch, BoxError, Chunk, Chunks, Collect, Discard, Error as JobError, ErrorChain, FailedChunk,
    FailurePolicy, FnTask, Fold, InputError, JobReport, MemorySaver, OnlineMean, ResultHandler,
    ResumePoint, RetryPolicy, SaveError, Saver, StopHandle, Task, TaskError, TaskFactory, task_fn,
};
pub use raygent_savers::{DatasetReader, DatasetSaver, Format, Location, S3Options, SaverOptions};

/// Savers and readers: formats, locations, part layout (`raygent-savers`).
pub use raygent_savers as savers;

/// Step-indexed progress checkpoints and named stage checkpoints
/// (`raygent-ckpt`).
pub use raygent_ckpt as ckpt;

/// The items most jobs use: `use raygent::prelude::*;`.
pub mod prelude {
    pub use crate::{
        FailurePolicy, JobOutput, RetryPolicy, Saver, SubmitOptions, Task, TaskError, TaskManager,
        task_fn,
    };
}

/// Every Rust example of the README and of the book (`docs/`), compiled and
/// run as doc tests.
#[cfg(doctest)]
mod book {
    #[doc = include_str!("../../README.md")]
    struct Readme;
    #[doc = include_str!("../../docs/guide.md")]
    struct Guide;
    #[doc = include_str!("../../docs/rust-tasks.md")]
    struct RustTasks;
    #[doc = include_str!("../../docs/workers.md")]
    struct Workers;
    #[doc = include_str!("../../docs/savers.md")]
    struct Savers;
    #[doc = include_str!("../../docs/s3.md")]
    struct S3;
    #[doc = include_str!("../../docs/checkpoints.md")]
    struct Checkpoints;
    #[doc = include_str!("../../docs/cluster.md")]
    struct Cluster;
}
