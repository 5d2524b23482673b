//! Opening a job's output and its checkpoints.

use std::sync::Arc;

use anyhow::Context;
use raygent_actors::{INLINE_JOB_STATE_MAX, JobState, ProgressStore, StepProgressStore};
use raygent_ckpt::StepCheckpointer;
use raygent_savers::Location;

use crate::Failure;

/// Where a job's checkpoints live, relative to its output.
pub const CHECKPOINT_DIR: &str = "_checkpoints";

/// Parses an output URL; a bad one is a usage error.
pub fn location(url: &str) -> Result<Location, Failure> {
    Location::parse(url).map_err(|e| {
        Failure::usage(anyhow::Error::new(e).context(format!("bad output URL {url:?}")))
    })
}

/// Parses the URL of an existing job (for `cat`, `status`, `ckpt`): a local
/// directory that does not exist is reported, not created.
pub fn existing(url: &str) -> Result<Location, Failure> {
    Location::parse_existing(url).map_err(|e| {
        Failure::usage(anyhow::Error::new(e).context(format!("no raygent job at {url:?}")))
    })
}

/// The URL of the job's checkpoints, for messages.
pub fn checkpoint_url(out: &Location) -> String {
    format!("{}/{CHECKPOINT_DIR}", out.url().trim_end_matches('/'))
}

/// The step checkpoints of the job whose output is `out`.
pub fn checkpoints(out: &Location) -> Result<StepCheckpointer, Failure> {
    // A client of its own: an S3 client's connection pool belongs to the
    // runtime that opened it, and the saver has its own runtime.
    let own = location(out.url())?;
    let local_dir = own.local_dir().map(|d| d.join(CHECKPOINT_DIR));
    StepCheckpointer::new(Arc::clone(own.store()), own.path(CHECKPOINT_DIR))
        .map(|c| {
            let c = c.with_keep(3).with_inline_state(INLINE_JOB_STATE_MAX);
            match local_dir {
                Some(dir) => c.with_local_dir(dir),
                None => c,
            }
        })
        .with_context(|| format!("opening the checkpoints under {}", out.url()))
        .map_err(Failure::failed)
}

/// The job's progress store.
pub fn progress_store(out: &Location) -> Result<Arc<StepProgressStore>, Failure> {
    Ok(Arc::new(
        StepProgressStore::new(checkpoints(out)?).with_display(checkpoint_url(out)),
    ))
}

/// The newest job state under `out`, if any.
pub fn job_state(out: &Location) -> Result<Option<JobState>, Failure> {
    progress_store(out)?
        .load_latest()
        .with_context(|| format!("reading the checkpoint of {}", out.url()))
        .map_err(Failure::failed)
}
