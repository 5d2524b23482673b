//! The vocabulary of raygent: tasks, chunks, result handlers, savers and
//! retry policies.
//!
//! This crate has no runtime: no actix, no tokio, no object store. Depend on
//! it alone to write a [`Task`] or a [`Saver`]; run tasks with
//! `raygent-actors`' `TaskManager`, save to disk or S3 with `raygent-savers`.
//!
//! ```
//! use raygent_core::{Chunks, Collect, ResultHandler, Task, task_fn};
//!
//! // A task, its input cut into chunks of 3, results kept in order:
//! let mut square = task_fn("square", |x: &u64| Ok(x * x));
//! let mut results = Collect::new();
//! for chunk in Chunks::new(1..=7u64, 3).unwrap() {
//!     let chunk = chunk.unwrap();
//!     let out = square.process_items(&chunk.items).unwrap();
//!     results.add(chunk.start, out);
//! }
//! assert_eq!(results.results(), &[1, 4, 9, 16, 25, 36, 49]);
//! ```

mod chunk;
mod codec;
mod error;
mod failpoint;
mod fingerprint;
mod handler;
mod report;
mod retry;
mod saver;
mod staging;
mod stop;
mod task;

pub use crate::chunk::{Chunk, Chunks, InputError};
pub use crate::codec::{CborSeqReader, MAX_FRAME_LEN, from_cbor, read_frame, to_cbor, write_frame};
pub use crate::error::{BoxError, Error, ErrorChain, Result, SaveError, TaskError};
pub use crate::failpoint::failpoint;
pub use crate::fingerprint::{ChunkHash, ChunkHasher, Fingerprint};
pub use crate::handler::{Collect, Discard, Fold, OnlineMean, ResultHandler};
pub use crate::report::{FailedChunk, JobReport};
pub use crate::retry::{FailurePolicy, RetryPolicy};
pub use crate::saver::{Batch, MemorySaver, ResumePoint, SavedBatch, Saver};
pub use crate::staging::remove_staging_files;
pub use crate::stop::StopHandle;
pub use crate::task::{FnTask, Task, TaskFactory, task_fn};
