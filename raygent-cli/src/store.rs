//! Opening a job's output and its checkpoints, through the library's one
//! set-up of a checkpointed output ([`raygent::JobOutput`]).

use anyhow::Context;
use raygent::{JobOutput, JobState};
use raygent_ckpt::StepCheckpointer;
use raygent_savers::Location;

use crate::Failure;

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
    JobOutput::from_location(out.clone()).checkpoint_url()
}

/// The step checkpoints of the job whose output is `out`.
pub fn checkpoints(out: &Location) -> Result<StepCheckpointer, Failure> {
    JobOutput::from_location(out.clone())
        .checkpoints()
        .with_context(|| format!("opening the checkpoints under {}", out.url()))
        .map_err(Failure::failed)
}

/// The job's progress store (its step checkpoints).
pub fn progress_store(
    out: &Location,
) -> Result<std::sync::Arc<raygent::StepProgressStore>, Failure> {
    JobOutput::from_location(out.clone())
        .progress_store()
        .with_context(|| format!("opening the checkpoints under {}", out.url()))
        .map_err(Failure::failed)
}

/// The newest job state under `out`, if any.
pub fn job_state(out: &Location) -> Result<Option<JobState>, Failure> {
    JobOutput::from_location(out.clone())
        .job_state()
        .with_context(|| format!("reading the checkpoint of {}", out.url()))
        .map_err(Failure::failed)
}
