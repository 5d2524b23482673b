//! A job's output and, next to it, its checkpoints: the one place that
//! knows how a checkpointed job is laid out on its store.

use std::sync::Arc;
use std::time::Duration;

use raygent_actors::{
    DEFAULT_CHECKPOINT_INTERVAL, INLINE_JOB_STATE_MAX, JobState, ProgressStore, ResumeConfig,
    StepProgressStore, SubmitOptions,
};
use raygent_ckpt::StepCheckpointer;
use raygent_savers::{DatasetReader, DatasetSaver, Format, Location, SaverOptions};
use serde::Serialize;

use crate::Result;

/// Where a job's checkpoints live, relative to its output.
pub const CHECKPOINT_DIR: &str = "_checkpoints";

/// How many checkpoint steps a job keeps (the newest ones).
pub const CHECKPOINT_KEEP: usize = 3;

/// A job's output (a directory, `file://`, `s3://bucket/prefix` or
/// `memory://name`) with its checkpoints beside the results, in
/// `_checkpoints/`.
///
/// [`submit_options`](JobOutput::submit_options) gives a job the saver and
/// the checkpoint set-up together: a killed job run again with the same
/// output resumes where its last checkpoint stopped. The same output opened
/// later reads the results ([`reader`](JobOutput::reader)) and the progress
/// ([`job_state`](JobOutput::job_state)).
///
/// ```
/// use raygent::{JobOutput, TaskManager, task_fn};
///
/// # fn main() -> raygent::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let url = dir.path().join("squares");
/// # let url = url.to_str().unwrap();
/// let output = JobOutput::new(url)?; // or "s3://bucket/squares"
/// let mut manager = TaskManager::new(|| task_fn("square", |x: &u64| Ok(x * x)));
/// manager.submit_tasks(0..1000u64, output.submit_options()?.with_chunk_size(100))?;
///
/// let saved: Vec<u64> = output.reader()?.iter().collect::<Result<_, _>>()?;
/// assert_eq!(saved[999], 999 * 999);
/// assert!(output.job_state()?.is_some_and(|s| s.complete));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct JobOutput {
    url: String,
    location: Location,
    saver: SaverOptions,
    fresh: bool,
    identity: String,
    checkpoint_interval: Duration,
}

impl JobOutput {
    /// The output at `url`, with default saver options (CBOR parts). A
    /// local directory is created.
    pub fn new(url: &str) -> Result<Self> {
        Self::with_options(url, SaverOptions::default())
    }

    /// The output at `url`, saved with `options` (format, S3 settings, ...).
    pub fn with_options(url: &str, options: SaverOptions) -> Result<Self> {
        let location = Location::parse_with(url, options.s3())?;
        Ok(Self::at(url, location, options))
    }

    /// An output that must exist already, to read it: a local directory that
    /// does not exist is an error, not created.
    pub fn existing(url: &str) -> Result<Self> {
        let options = SaverOptions::default();
        let location = Location::parse_existing_with(url, options.s3())?;
        Ok(Self::at(url, location, options))
    }

    /// The output at an already opened `location`, with default saver
    /// options.
    pub fn from_location(location: Location) -> Self {
        let url = location.url().to_owned();
        Self::at(&url, location, SaverOptions::default())
    }

    /// Saves with `options` instead (format, S3 settings, multipart
    /// threshold, ...).
    pub fn with_saver_options(mut self, options: SaverOptions) -> Self {
        self.saver = options;
        self
    }

    fn at(url: &str, location: Location, saver: SaverOptions) -> Self {
        JobOutput {
            url: url.to_owned(),
            location,
            saver,
            fresh: false,
            identity: String::new(),
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
        }
    }

    /// Saves parts in `format` (default CBOR).
    pub fn with_format(mut self, format: Format) -> Self {
        self.saver = self.saver.with_format(format);
        self
    }

    /// Discards any checkpoint and results at the output and starts over
    /// (default: resume).
    pub fn with_fresh(mut self, fresh: bool) -> Self {
        self.fresh = fresh;
        self
    }

    /// Extra identity that a resume must match, such as a command line
    /// (default empty).
    pub fn with_identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = identity.into();
        self
    }

    /// The shortest time between two checkpoint writes (default 1 s); see
    /// [`ResumeConfig::with_min_interval`].
    pub fn with_checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// The output's location.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The output's absolute URL (`file:///...`, `s3://...`).
    pub fn url(&self) -> &str {
        self.location.url()
    }

    /// The URL of the checkpoints, for messages.
    pub fn checkpoint_url(&self) -> String {
        format!("{}/{CHECKPOINT_DIR}", self.url().trim_end_matches('/'))
    }

    /// Options for [`TaskManager::submit_tasks`](crate::TaskManager::submit_tasks)
    /// with this output's saver and checkpoints; set the rest (chunk size,
    /// retries, ...) on what it returns.
    pub fn submit_options<O: Serialize + Send + 'static>(&self) -> Result<SubmitOptions<O>> {
        Ok(SubmitOptions::new()
            .with_saver(self.saver()?)
            .with_checkpoint(self.resume_config()?))
    }

    /// The saver of the results.
    pub fn saver(&self) -> Result<DatasetSaver> {
        Ok(DatasetSaver::new(
            self.location.clone(),
            self.saver.clone(),
        )?)
    }

    /// How the job checkpoints and resumes.
    pub fn resume_config(&self) -> Result<ResumeConfig> {
        Ok(ResumeConfig::new(self.progress_store()?)
            .with_fresh(self.fresh)
            .with_min_interval(self.checkpoint_interval)
            .with_identity(self.identity.clone()))
    }

    /// The job's step checkpoints: `_checkpoints/` under the output, the
    /// [`CHECKPOINT_KEEP`] newest steps kept, the job state inside each
    /// step's commit object (one write per checkpoint), and on a local disk
    /// the directory named so that files a killed write left behind are
    /// cleaned up.
    pub fn checkpoints(&self) -> Result<StepCheckpointer> {
        // A store client of its own: an S3 client's connection pool belongs
        // to the runtime that opened it, and the saver has its own runtime.
        let own = Location::parse_with(self.location.url(), self.saver.s3())?;
        let steps = StepCheckpointer::new(Arc::clone(own.store()), own.path(CHECKPOINT_DIR))?
            .with_keep(CHECKPOINT_KEEP)
            .with_inline_state(INLINE_JOB_STATE_MAX);
        Ok(match own.local_dir() {
            Some(dir) => steps.with_local_dir(dir.join(CHECKPOINT_DIR)),
            None => steps,
        })
    }

    /// The job's progress store (its step checkpoints, named by the URL the
    /// output was opened with).
    pub fn progress_store(&self) -> Result<Arc<StepProgressStore>> {
        Ok(Arc::new(
            StepProgressStore::new(self.checkpoints()?).with_display(self.checkpoint_url()),
        ))
    }

    /// The newest checkpointed state of the job, if it has one.
    pub fn job_state(&self) -> Result<Option<JobState>> {
        Ok(self.progress_store()?.load_latest()?)
    }

    /// Reads the committed results, in input order.
    pub fn reader(&self) -> Result<DatasetReader> {
        Ok(DatasetReader::open_location(self.location.clone())?)
    }

    /// The URL as it was given (for messages that echo the user's words).
    pub fn given_url(&self) -> &str {
        &self.url
    }
}
