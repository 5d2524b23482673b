//! Exact resume: what a job does when it starts on top of an earlier
//! run's checkpoint.
//!
//! The newest committed step says how many chunks are done. The job checks
//! that its configuration and its input are the same as then, tells the
//! saver to drop anything written past that point, skips those chunks
//! without running them (fingerprinting their items), and starts the
//! [checkpoint actor](crate::checkpoint), which records the progress from
//! there. A job that finds no checkpoint first makes sure its output is
//! empty, and has step 0 written before the saver writes anything.

use std::sync::Arc;
use std::time::Duration;

use raygent_core::{ChunkHasher, Chunks, Error, Fingerprint, ResumePoint, Task};

use crate::checkpoint::{CheckpointActor, CommitSender, Step0Gate};
use crate::options::SubmitOptions;
use crate::state::{JobConfig, StartPoint, differences};
use crate::store::ProgressStore;

/// How a job checkpoints and resumes.
///
/// ```no_run
/// # fn store() -> std::sync::Arc<dyn raygent_actors::ProgressStore> { unimplemented!() }
/// use raygent_actors::ResumeConfig;
/// let cfg = ResumeConfig::new(store()).with_fresh(false).with_identity("my-job v2");
/// ```
#[derive(Clone)]
pub struct ResumeConfig {
    store: Arc<dyn ProgressStore>,
    fresh: bool,
    extra: String,
    min_interval: Duration,
}

/// The default shortest time between two checkpoint writes.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for ResumeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeConfig")
            .field("store", &self.store.location())
            .field("fresh", &self.fresh)
            .finish()
    }
}

impl ResumeConfig {
    /// Checkpoints go to `store`; an existing checkpoint of the same job is
    /// resumed.
    pub fn new(store: Arc<dyn ProgressStore>) -> Self {
        ResumeConfig {
            store,
            fresh: false,
            extra: String::new(),
            min_interval: DEFAULT_CHECKPOINT_INTERVAL,
        }
    }
    /// The shortest time between two checkpoint writes (default 1 s):
    /// commits that come faster are coalesced into the next write. Any
    /// value is safe (parts past the checkpoint are redone on resume); a
    /// longer one costs less I/O and redoes more work after a crash. The
    /// last commit of a job, or of an interrupted job, is written at once.
    pub fn with_min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }
    /// Discards any existing checkpoint and output and starts from chunk 0.
    pub fn with_fresh(mut self, fresh: bool) -> Self {
        self.fresh = fresh;
        self
    }
    /// Extra identity that must match on resume (e.g. a command line).
    pub fn with_identity(mut self, extra: impl Into<String>) -> Self {
        self.extra = extra.into();
        self
    }
    /// The extra identity set by [`with_identity`](Self::with_identity).
    pub fn identity(&self) -> &str {
        &self.extra
    }
}

/// A job opening its checkpoint.
pub(crate) struct Resumer {
    store: Arc<dyn ProgressStore>,
    start: StartPoint,
    /// The fingerprint the checkpoint recorded for the committed items.
    expected_fingerprint: Option<String>,
    /// The input's fingerprint, over the items skipped so far.
    fingerprint: Fingerprint,
    actor: CheckpointActor,
    /// The gate of step 0, when this run writes one.
    gate: Option<Step0Gate>,
}

/// What a checkpointed job runs with, once its checkpoint is open.
pub(crate) struct Checkpointing {
    pub(crate) start: StartPoint,
    /// The input's fingerprint over the committed items: the feeder goes on
    /// from it.
    pub(crate) fingerprint: Fingerprint,
    /// For the sink: where commits go, and the gate before its first write.
    pub(crate) commits: CommitSender,
    pub(crate) gate: Option<Step0Gate>,
    /// For the job: the actor to finish at the end.
    pub(crate) actor: CheckpointActor,
}

impl Resumer {
    /// Opens the checkpoint of the job `options` describes (`task` is an
    /// instance of its task, for its name and version), checks it is the
    /// same job, prepares the saver, and starts the checkpoint actor.
    ///
    /// A job with no checkpoint first checks that the output is empty (so
    /// it never replaces results no checkpoint accounts for), then has step
    /// 0 recorded before anything is saved: from then on, whatever is in
    /// the output belongs to this job and a rerun may clean it up. Step 0 is
    /// written on the checkpoint thread while the job starts; the sink
    /// waits for it before the saver's first write.
    pub(crate) fn open<T: Task, O: Send + 'static>(
        cfg: ResumeConfig,
        task: &T,
        options: &mut SubmitOptions<O>,
    ) -> Result<Self, Error> {
        let Some(saver) = options.saver.as_deref_mut() else {
            return Err(Error::InvalidConfig(
                "checkpointing needs a saver: results that are not saved cannot be resumed".into(),
            ));
        };
        if !saver.can_resume() {
            let name = match saver.describe() {
                d if d.is_empty() => "the saver".to_owned(),
                d => format!("the saver {d:?}"),
            };
            return Err(Error::InvalidConfig(format!(
                "{name} cannot be checkpointed: it does not say how it resumes \
                 (Saver::can_resume is false), so after a crash the results saved past the \
                 last checkpoint would be saved a second time; implement Saver::resume and \
                 Saver::can_resume for it, or run without a checkpoint"
            )));
        }
        let config = JobConfig {
            chunk_size: options.chunk_size as u64,
            save_interval: options.save_interval as u64,
            at_once: options.at_once,
            task_name: task.name().into_owned(),
            task_version: task.version().into_owned(),
            saver: saver.describe(),
            extra: cfg.extra.clone(),
        };
        let store = Arc::clone(&cfg.store);
        let mut start = StartPoint::default();
        let mut expected_fingerprint = None;
        let mut found_state = false;
        if cfg.fresh {
            store.clear()?;
        } else if let Some(state) = store.load_latest()? {
            if state.config != config {
                return Err(Error::JobMismatch {
                    location: store.location(),
                    differences: differences(&state.config, &config),
                });
            }
            tracing::info!(
                next_chunk = state.next_chunk,
                next_item = state.next_item,
                "resuming from checkpoint"
            );
            start = StartPoint::of(&state);
            expected_fingerprint = Some(state.input_fingerprint);
            found_state = true;
        }
        // Whatever the saver wrote past the checkpoint was never committed:
        // it goes, and will be written again under the same names.
        if found_state || cfg.fresh {
            saver.resume(&ResumePoint {
                next_chunk: start.next_chunk,
                next_item: start.next_item,
            })?;
        } else {
            saver.check_empty()?;
        }
        let actor = CheckpointActor::start(Arc::clone(&store), config, &start, cfg.min_interval)?;
        let gate = (!found_state).then(|| actor.write_step0());
        Ok(Resumer {
            store,
            start,
            expected_fingerprint,
            fingerprint: Fingerprint::new(),
            actor,
            gate,
        })
    }

    /// Where the job starts.
    pub(crate) fn start(&self) -> &StartPoint {
        &self.start
    }

    /// Consumes the chunks the checkpoint says are committed, checking the
    /// input is the same as before.
    pub(crate) fn skip_committed<C, T: serde::Serialize, E: Into<raygent_core::BoxError>>(
        &mut self,
        chunks: &mut Chunks<C>,
    ) -> Result<(), Error>
    where
        C: Iterator<Item = Result<T, E>>,
    {
        let target = self.start.next_chunk;
        let mut hasher = ChunkHasher::new();
        while chunks.next_index() < target {
            match chunks.next() {
                Some(Ok(chunk)) => self.fingerprint.add(hasher.hash_chunk(&chunk)?),
                Some(Err(e)) => {
                    return Err(Error::Input {
                        item: e.item,
                        source: e.error.into(),
                    });
                }
                None => break,
            }
        }
        let location = self.store.location();
        if chunks.next_index() < target {
            return Err(Error::JobMismatch {
                location,
                differences: vec![format!(
                    "the input is shorter than before: the checkpoint covers {} items in {} chunks, \
                     the input ends after {} items",
                    self.start.next_item,
                    target,
                    chunks.next_start()
                )],
            });
        }
        if chunks.next_start() != self.start.next_item {
            return Err(Error::JobMismatch {
                location,
                differences: vec![format!(
                    "the input changed: its first {} chunks now hold {} items, the checkpoint recorded {}",
                    target,
                    chunks.next_start(),
                    self.start.next_item
                )],
            });
        }
        if let Some(expected) = &self.expected_fingerprint
            && *expected != self.fingerprint.value()
        {
            return Err(Error::JobMismatch {
                location,
                differences: vec![format!(
                    "the input changed: its first {} items have fingerprint {}, the checkpoint recorded {}",
                    self.start.next_item,
                    self.fingerprint.value(),
                    expected
                )],
            });
        }
        Ok(())
    }

    /// What the job runs with from here.
    pub(crate) fn into_parts(self) -> Checkpointing {
        Checkpointing {
            commits: self.actor.commits(),
            start: self.start,
            fingerprint: self.fingerprint,
            gate: self.gate,
            actor: self.actor,
        }
    }
}
