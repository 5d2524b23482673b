//! Where a job's checkpoints are kept.

use std::sync::{Arc, Mutex};

use raygent_core::Error;

use crate::state::JobState;

/// Where a job's progress checkpoints are kept: a store of step-indexed
/// [`JobState`]s. Implemented for `raygent_ckpt::StepCheckpointer`.
pub trait ProgressStore: Send + Sync + 'static {
    /// The newest committed step and its state, if any.
    fn load_latest(&self) -> Result<Option<JobState>, Error>;
    /// Writes `state` as step `step` (overwriting that step if it exists);
    /// the step must be visible only once completely written.
    fn save(&self, step: u64, state: &JobState) -> Result<(), Error>;
    /// Removes every checkpoint (a fresh start).
    fn clear(&self) -> Result<(), Error>;
    /// Where the checkpoints live, for messages.
    fn location(&self) -> String;
}

/// The largest job state kept inside a step's commit object
/// ([`StepProgressStore`]): 64 KiB, far above a usual state, below which one
/// object per step costs less than two.
pub const INLINE_JOB_STATE_MAX: usize = 64 * 1024;

/// A [`ProgressStore`] in memory, for tests: clones share the same steps.
#[derive(Debug, Clone, Default)]
pub struct MemoryProgressStore {
    steps: Arc<Mutex<std::collections::BTreeMap<u64, JobState>>>,
}

impl MemoryProgressStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// The steps written so far.
    pub fn steps(&self) -> Vec<u64> {
        lock(&self.steps).keys().copied().collect()
    }
}

impl ProgressStore for MemoryProgressStore {
    fn load_latest(&self) -> Result<Option<JobState>, Error> {
        let steps = lock(&self.steps);
        Ok(steps.values().next_back().cloned())
    }
    fn save(&self, step: u64, state: &JobState) -> Result<(), Error> {
        lock(&self.steps).insert(step, state.clone());
        Ok(())
    }
    fn clear(&self) -> Result<(), Error> {
        lock(&self.steps).clear();
        Ok(())
    }
    fn location(&self) -> String {
        "memory".into()
    }
}

/// The [`ProgressStore`] of a job on a [`raygent_ckpt::StepCheckpointer`]
/// (local directory, memory or S3): one step per committed save, step
/// number = chunks committed.
///
/// ```
/// use std::sync::Arc;
/// use object_store::{memory::InMemory, path::Path};
/// use raygent_actors::{INLINE_JOB_STATE_MAX, ResumeConfig, StepProgressStore};
/// use raygent_ckpt::StepCheckpointer;
///
/// let steps = StepCheckpointer::new(Arc::new(InMemory::new()), Path::from("job/_checkpoints"))
///     .unwrap()
///     .with_keep(3)
///     .with_inline_state(INLINE_JOB_STATE_MAX);
/// let resume = ResumeConfig::new(Arc::new(StepProgressStore::new(steps)));
/// # let _ = resume;
/// ```
///
/// A job state is a few hundred bytes (more when many chunks were skipped),
/// so the checkpointer should keep it inside each step's commit object
/// ([`StepCheckpointer::with_inline_state`](raygent_ckpt::StepCheckpointer::with_inline_state)
/// with [`INLINE_JOB_STATE_MAX`]): one write per checkpoint instead of two.
#[derive(Debug)]
pub struct StepProgressStore {
    steps: raygent_ckpt::StepCheckpointer,
    display: Option<String>,
}

impl StepProgressStore {
    /// Keeps job states in `steps`.
    pub fn new(steps: raygent_ckpt::StepCheckpointer) -> Self {
        StepProgressStore {
            steps,
            display: None,
        }
    }
    /// How the location is named in messages (e.g. the URL the user gave).
    pub fn with_display(mut self, location: impl Into<String>) -> Self {
        self.display = Some(location.into());
        self
    }
    /// The underlying checkpointer.
    pub fn steps(&self) -> &raygent_ckpt::StepCheckpointer {
        &self.steps
    }
}

impl ProgressStore for StepProgressStore {
    fn load_latest(&self) -> Result<Option<JobState>, Error> {
        Ok(self
            .steps
            .load_latest::<JobState>()?
            .map(|(_, state, _)| state))
    }
    fn save(&self, step: u64, state: &JobState) -> Result<(), Error> {
        self.steps.save_state(
            step,
            state,
            raygent_ckpt::SaveOptions::new().with_overwrite(true),
        )?;
        Ok(())
    }
    fn clear(&self) -> Result<(), Error> {
        Ok(self.steps.clear()?)
    }
    fn location(&self) -> String {
        self.display
            .clone()
            .unwrap_or_else(|| self.steps.location())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
