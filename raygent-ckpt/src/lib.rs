//! Checkpoints for raygent, on any [`object_store`] (local directory,
//! memory, S3):
//!
//! - [`StepCheckpointer`]: the state of a [`Checkpointable`] saved at
//!   numbered steps (datarax's `IteratorCheckpoint` / `PipelineCheckpoint`,
//!   Orbax-style): a step becomes visible only when its `COMMIT` object is
//!   written, last, with a conditional create; the N newest steps are kept;
//!   saves can run in the background, bounded, and a background failure is
//!   reported by the next call.
//! - [`StageCheckpoints`]: named checkpoints of partitioned data (agatha's
//!   `checkpoint`): compute a pipeline stage once, load it afterwards;
//!   resume an unfinished one, halt after one, list them by glob.
//!
//! Both take an `Arc<dyn ObjectStore>` and a prefix inside it. Their API is
//! blocking: each owns a small private tokio runtime, so call them from
//! plain threads, never from inside an async runtime (they return
//! [`Error::InsideAsyncRuntime`] there). See `docs/checkpoints.md` for the
//! layout on the store and the guarantees.
//!
//! ```
//! use std::sync::Arc;
//! use object_store::{memory::InMemory, path::Path, ObjectStore};
//! use raygent_ckpt::{
//!     Checkpointable, CheckpointableIter, SaveOptions, StageCheckpoints, StepCheckpointer,
//! };
//!
//! let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
//!
//! // Step checkpoints: save progress every 2 steps, keep the 2 newest.
//! let ckpt = StepCheckpointer::new(Arc::clone(&store), Path::from("job/steps"))?.with_keep(2);
//! let mut input = CheckpointableIter::new(vec!["a", "b", "c", "d", "e", "f"]);
//! for step in 1..=5u64 {
//!     input.next();
//!     ckpt.save_at_interval(step, 2, &input, SaveOptions::new())?;
//! }
//! assert_eq!(ckpt.list_steps()?, vec![2, 4]);
//!
//! // A rerun resumes after the 4th item.
//! let mut rerun = CheckpointableIter::new(vec!["a", "b", "c", "d", "e", "f"]);
//! assert_eq!(ckpt.restore_latest(&mut rerun)?, Some(4));
//! assert_eq!(rerun.next(), Some("e"));
//!
//! // Stage checkpoints: computed once, loaded afterwards.
//! let stages = StageCheckpoints::new(store, Path::from("job/stages"))?;
//! let parts = stages.checkpoint("squares", 2, |i| {
//!     Ok::<_, std::convert::Infallible>(vec![i * i, i * i + 1])
//! })?;
//! assert_eq!(parts, vec![vec![0, 1], vec![1, 2]]);
//! assert!(stages.is_done("squares")?);
//! assert_eq!(stages.load::<usize>("squares")?, parts);
//! # Ok::<(), raygent_ckpt::Error>(())
//! ```

mod checkpointable;
mod error;
mod io;
mod name;
mod stage;
mod step;

#[cfg(feature = "integration")]
pub mod integration;

pub use crate::checkpointable::{Checkpointable, CheckpointableIter, IterState};
pub use crate::error::{BoxError, Error, Result};
pub use crate::stage::{DONE_FILE, StageCheckpoints, part_file_name};
pub use crate::step::{
    COMMIT_FILE, MetaValue, Metadata, STATE_FILE, SaveOptions, StepCheckpointer, step_dir_name,
};
