//! Exact resume: the checkpoint stage, and what a job does when it starts
//! on top of an earlier run's checkpoint.
//!
//! After each committed save the saver stage hands a [`Commit`] to the
//! checkpoint actor (a thread of its own, so checkpoint writes never slow
//! the task or saver threads). The actor writes a [`JobState`] as step
//! `next_chunk`; when several commits queue up it writes only the newest,
//! which covers the others. On start, the newest committed step says how
//! many chunks are done; the job checks that configuration and input are
//! the same, skips those chunks without running them, and tells the saver
//! to drop anything it wrote past that point.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use raygent_core::{
    Chunk, Chunks, Error, FailedChunk, Fingerprint, ResumePoint, SaveError, Saver, Task,
};
use serde::{Deserialize, Serialize};

use crate::SubmitOptions;
use crate::sink::{Commit, CommitObserver, FirstWriteGate};

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

/// What identifies a job: a resume is accepted only if all of it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobConfig {
    /// Items per chunk.
    pub chunk_size: u64,
    /// Results per save.
    pub save_interval: u64,
    /// Whether chunks were processed at once.
    pub at_once: bool,
    /// The task's name.
    pub task_name: String,
    /// The task's version.
    pub task_version: String,
    /// The saver's description (format and location).
    pub saver: String,
    /// Extra identity given by the caller (e.g. the worker command line).
    pub extra: String,
}

/// A job's progress as recorded in one checkpoint step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    /// The job's identity.
    pub config: JobConfig,
    /// Every chunk below this is committed (saved or skipped as failed).
    pub next_chunk: u64,
    /// Every input item below this is committed.
    pub next_item: u64,
    /// Results committed.
    pub results: u64,
    /// Fingerprint of input items `[0, next_item)`.
    pub input_fingerprint: String,
    /// Parts (saves) committed so far.
    pub parts: u64,
    /// The last committed batch: chunks.
    pub last_chunks: std::ops::Range<u64>,
    /// Chunks that failed on every attempt and were skipped.
    pub failed: Vec<FailedChunk>,
    /// When this step was written (seconds since the Unix epoch).
    pub written_at: u64,
    /// Whether the job had finished when this step was written.
    pub complete: bool,
}

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

/// The largest job state kept inside a step's commit object
/// ([`StepProgressStore`]): 64 KiB, far above a usual state, below which one
/// object per step costs less than two.
pub const INLINE_JOB_STATE_MAX: usize = 64 * 1024;

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

/// Where a run starts.
#[derive(Debug, Clone, Default)]
pub(crate) struct StartPoint {
    pub(crate) next_chunk: u64,
    pub(crate) next_item: u64,
    pub(crate) results: u64,
    pub(crate) parts: u64,
    pub(crate) failed: Vec<FailedChunk>,
}

/// Fingerprints of the input at chunk boundaries, from the feeder (which
/// runs ahead) to the checkpoint stage (which needs the fingerprint of
/// exactly what was committed).
///
/// The feeder pushes one entry per chunk, so an entry is the fingerprint's
/// raw state (two words, no allocation); the hex string a [`JobState`]
/// records is formatted only at commit time.
#[derive(Default)]
struct Boundaries {
    /// (chunk end index, fingerprint of items before it)
    queue: VecDeque<(u64, Fingerprint)>,
}

/// What the checkpoint thread has to do, shared with the job's threads.
/// A commit only replaces `newest` under the lock: the thread is woken only
/// when it waits for work, never once per commit while it sleeps out the
/// interval.
#[derive(Default)]
struct Pending {
    /// Step 0: written at once (never coalesced, not rate-limited), then
    /// the gate opens.
    first: Option<(Box<JobState>, GateGuard)>,
    /// The newest commit not written yet; it covers any before it.
    newest: Option<Box<Unwritten>>,
    /// The job is over: write what is pending at once, then exit.
    stop: bool,
    /// The thread waits for work (a commit must wake it).
    idle: bool,
}

/// A job state as a commit leaves it: its `failed` list is empty and
/// filled in (from the job's shared list of failed chunks, the first
/// `failed` of them) only when the state is written, at most once per
/// interval, so a commit does not copy every failure so far.
#[derive(Clone)]
struct Unwritten {
    state: JobState,
    failed: usize,
}

/// The chunks skipped so far, in order, shared by the commit observer
/// (which appends) and the checkpoint thread (which copies a prefix into
/// the state it writes).
type FailedList = Arc<Mutex<Vec<FailedChunk>>>;

/// Whether step 0 (written on the checkpoint thread while the job starts)
/// is committed: the saver waits for it before writing anything, so no
/// part is ever written to an output the job does not own yet.
#[derive(Default)]
struct Gate {
    /// `None` while step 0 is being written; then whether it was committed.
    state: Mutex<Option<bool>>,
    opened: Condvar,
}

impl Gate {
    fn set(&self, committed: bool) {
        let mut s = lock(&self.state);
        if s.is_none() {
            *s = Some(committed);
            self.opened.notify_all();
        }
    }

    /// Waits until step 0 is written; whether it was committed.
    fn wait(&self) -> bool {
        let mut s = lock(&self.state);
        loop {
            match *s {
                Some(committed) => return committed,
                None => s = self.opened.wait(s).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }

    fn failed(&self) -> bool {
        *lock(&self.state) == Some(false)
    }
}

/// Opens the gate as failed if dropped before step 0 was written (the
/// checkpoint thread stopped or panicked), so the saver never waits forever.
struct GateGuard(Arc<Gate>);

impl GateGuard {
    fn set(self, committed: bool) {
        self.0.set(committed);
    }
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// The checkpoint actor: a thread that writes job states, newest first
/// wins, at most one per interval, and reports the first error.
struct CheckpointActor {
    pending: Arc<(Mutex<Pending>, Condvar)>,
    handle: Option<JoinHandle<()>>,
    error: Arc<Mutex<Option<Error>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CheckpointActor {
    fn start(
        store: Arc<dyn ProgressStore>,
        min_interval: Duration,
        failed: FailedList,
    ) -> Result<Self, Error> {
        let pending = Arc::new((Mutex::new(Pending::default()), Condvar::new()));
        let error = Arc::new(Mutex::new(None));
        let (shared, err) = (Arc::clone(&pending), Arc::clone(&error));
        let handle = std::thread::Builder::new()
            .name("raygent-ckpt".into())
            .spawn(move || Self::run(&store, min_interval, &shared, &err, &failed))
            .map_err(|source| Error::Spawn {
                thread: "checkpoint",
                source,
            })?;
        Ok(CheckpointActor {
            pending,
            handle: Some(handle),
            error,
        })
    }

    /// The thread: step 0 first, then the newest commit at most once per
    /// `min_interval` (a stop is written at once), until stopped.
    fn run(
        store: &Arc<dyn ProgressStore>,
        min_interval: Duration,
        shared: &(Mutex<Pending>, Condvar),
        err: &Mutex<Option<Error>>,
        failed: &FailedList,
    ) {
        let (slot, cv) = shared;
        let mut last_write: Option<Instant> = None;
        let fail = |e: Error| {
            tracing::error!(error = %e, "checkpoint write failed");
            lock(err).get_or_insert(e);
        };
        loop {
            let mut p = lock(slot);
            while p.first.is_none() && p.newest.is_none() && !p.stop {
                p.idle = true;
                p = cv.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            p.idle = false;
            if let Some((state, gate)) = p.first.take() {
                drop(p);
                // Step 0 never waits for the rate limit, and starts it: a
                // job shorter than the interval writes step 0 and its last
                // step, nothing in between.
                let _g = tracing::debug_span!("checkpoint", step = 0).entered();
                if let Err(e) = store.save(0, &state) {
                    // Stored before the gate opens as failed, so whoever
                    // sees the failed gate finds the error.
                    fail(e);
                    gate.set(false);
                    return;
                }
                gate.set(true);
                last_write = Some(Instant::now());
                continue;
            }
            // Rate limit: sleep out the interval (commits meanwhile only
            // replace `newest`); a stop cuts it short.
            if let Some(deadline) = last_write.map(|t| t + min_interval) {
                while !p.stop && p.first.is_none() {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    p = cv
                        .wait_timeout(p, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                if p.first.is_some() {
                    continue;
                }
            }
            let (newest, stop) = (p.newest.take(), p.stop);
            drop(p);
            if let Some(u) = newest {
                let Unwritten {
                    mut state,
                    failed: n,
                } = *u;
                state.failed = lock(failed).iter().take(n).cloned().collect();
                let _g = tracing::debug_span!("checkpoint", step = state.next_chunk).entered();
                if let Err(e) = store.save(state.next_chunk, &state) {
                    fail(e);
                    return;
                }
                last_write = Some(Instant::now());
            }
            if stop && lock(slot).newest.is_none() {
                return;
            }
        }
    }

    fn take_error(&self) -> Option<Error> {
        lock(&self.error).take()
    }

    fn stopped(&self) -> Result<(), Error> {
        match &self.handle {
            Some(h) if !h.is_finished() => Ok(()),
            _ => Err(Error::Runtime("the checkpoint thread stopped".into())),
        }
    }

    /// Hands the newest commit to the thread.
    fn send(&self, state: Unwritten) -> Result<(), Error> {
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        self.stopped()?;
        let (slot, cv) = &*self.pending;
        let mut p = lock(slot);
        p.newest = Some(Box::new(state));
        if p.idle {
            cv.notify_one();
        }
        Ok(())
    }

    /// Queues step 0; `gate` opens when it is written.
    fn send_first(&self, state: JobState, gate: Arc<Gate>) -> Result<(), Error> {
        self.stopped()?;
        let (slot, cv) = &*self.pending;
        lock(slot).first = Some((Box::new(state), GateGuard(gate)));
        cv.notify_one();
        Ok(())
    }

    /// Writes what is pending at once and waits for the thread; returns
    /// the first error.
    fn finish(&mut self) -> Result<(), Error> {
        let (slot, cv) = &*self.pending;
        lock(slot).stop = true;
        cv.notify_one();
        if let Some(h) = self.handle.take()
            && h.join().is_err()
        {
            return Err(Error::Runtime("the checkpoint thread panicked".into()));
        }
        match self.take_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for CheckpointActor {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

pub(crate) struct Resumer {
    store: Arc<dyn ProgressStore>,
    config: JobConfig,
    start: StartPoint,
    /// Whether an earlier run's checkpoint was found.
    found_state: bool,
    /// Whether the caller asked for a fresh start.
    fresh: bool,
    expected_fingerprint: Option<String>,
    fingerprint: Fingerprint,
    boundaries: Arc<Mutex<Boundaries>>,
    actor: Arc<Mutex<CheckpointActor>>,
    /// The newest commit's state (step 0's before any).
    last: Arc<Mutex<Option<Unwritten>>>,
    failed: FailedList,
    /// The gate of step 0, when this run writes one.
    gate: Option<Arc<Gate>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What differs between two job configurations, for the refusal's message.
///
/// Field by field through serde, so that a field added to [`JobConfig`] is
/// compared without being listed here; the labels only make the known ones
/// read well. Whether two jobs differ is decided by comparing whole values
/// (`!=`), never by this list, which falls back to a generic line if it
/// finds nothing.
fn differences(old: &JobConfig, new: &JobConfig) -> Vec<String> {
    fn label(field: &str) -> &str {
        match field {
            "chunk_size" => "chunk size",
            "save_interval" => "save interval",
            "task_name" => "task name",
            "task_version" => "task version",
            "saver" => "output",
            "extra" => "job identity",
            other => other,
        }
    }
    fn text(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => format!("{s:?}"),
            other => format!("\"{other}\""),
        }
    }
    let (a, b) = match (serde_json::to_value(old), serde_json::to_value(new)) {
        (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) => (a, b),
        _ => return vec!["the job's configuration differs".into()],
    };
    let null = serde_json::Value::Null;
    let mut d: Vec<String> = a
        .keys()
        .chain(b.keys().filter(|k| !a.contains_key(*k)))
        .filter_map(|k| {
            let (x, y) = (a.get(k).unwrap_or(&null), b.get(k).unwrap_or(&null));
            (x != y).then(|| format!("{} was {}, now {}", label(k), text(x), text(y)))
        })
        .collect();
    if d.is_empty() && old != new {
        d.push("the job's configuration differs".into());
    }
    d
}

impl Resumer {
    /// Opens the checkpoint of the job `options` describes; `task` is an
    /// instance of its task, for its name and version.
    pub(crate) fn open<T: Task, O: Send + 'static>(
        cfg: ResumeConfig,
        task: &T,
        options: &SubmitOptions<O>,
    ) -> Result<Self, Error> {
        let Some(saver) = options.saver_ref() else {
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
        let probe = task;
        let config = JobConfig {
            chunk_size: options.chunk_size() as u64,
            save_interval: options.save_interval() as u64,
            at_once: options.at_once(),
            task_name: probe.name().into_owned(),
            task_version: probe.version().into_owned(),
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
            start = StartPoint {
                next_chunk: state.next_chunk,
                next_item: state.next_item,
                results: state.results,
                parts: state.parts,
                failed: state.failed.clone(),
            };
            expected_fingerprint = Some(state.input_fingerprint.clone());
            found_state = true;
        }
        let failed: FailedList = Arc::new(Mutex::new(start.failed.clone()));
        let actor =
            CheckpointActor::start(Arc::clone(&store), cfg.min_interval, Arc::clone(&failed))?;
        Ok(Resumer {
            store,
            config,
            start,
            found_state,
            fresh: cfg.fresh,
            expected_fingerprint,
            fingerprint: Fingerprint::new(),
            boundaries: Arc::default(),
            actor: Arc::new(Mutex::new(actor)),
            last: Arc::default(),
            failed,
            gate: None,
        })
    }

    pub(crate) fn start(&self) -> StartPoint {
        self.start.clone()
    }

    /// Drops whatever the saver wrote past the checkpoint (it was never
    /// committed, so it will be written again, under the same names).
    ///
    /// A job with no checkpoint first checks that the output is empty (so
    /// it never replaces results no checkpoint accounts for), then records
    /// step 0 before anything is saved: from then on, whatever is in the
    /// output belongs to this job and a rerun may clean it up. Step 0 is
    /// written on the checkpoint thread while the job starts; the sink
    /// waits for it before the saver's first write
    /// ([`first_write_gate`](Self::first_write_gate)). If it fails, the
    /// saver writes nothing and [`start_failed`](Self::start_failed) is true.
    pub(crate) fn prepare_saver<O: 'static>(
        &mut self,
        saver: &mut dyn Saver<O>,
    ) -> Result<(), Error> {
        if self.found_state || self.fresh {
            saver.resume(&ResumePoint {
                next_chunk: self.start.next_chunk,
                next_item: self.start.next_item,
            })?;
        } else {
            saver.check_empty()?;
        }
        if !self.found_state {
            let state = JobState {
                config: self.config.clone(),
                next_chunk: 0,
                next_item: 0,
                results: 0,
                input_fingerprint: Fingerprint::new().value(),
                parts: 0,
                last_chunks: 0..0,
                failed: Vec::new(),
                written_at: now_secs(),
                complete: false,
            };
            let gate = Arc::new(Gate::default());
            lock(&self.actor).send_first(state.clone(), Arc::clone(&gate))?;
            *lock(&self.last) = Some(Unwritten { state, failed: 0 });
            self.gate = Some(gate);
        }
        Ok(())
    }

    /// What the sink calls before the saver's first write when this run
    /// writes step 0: waits until step 0 is committed, and refuses if it
    /// failed (the job then reports the checkpoint's error).
    pub(crate) fn first_write_gate(&self) -> Option<FirstWriteGate> {
        let gate = Arc::clone(self.gate.as_ref()?);
        Some(Box::new(move || {
            if gate.wait() {
                Ok(())
            } else {
                Err(SaveError::Other(
                    "not saved: the job's first checkpoint (step 0) could not be written".into(),
                ))
            }
        }))
    }

    /// Whether step 0 could not be written: the job then fails with that
    /// error (from [`finish`](Self::finish)), whatever else went wrong.
    pub(crate) fn start_failed(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| g.failed())
    }

    /// The commit observer for the sink: sends a job state per commit.
    pub(crate) fn observer(&mut self) -> CommitObserver {
        let boundaries = Arc::clone(&self.boundaries);
        let actor = Arc::clone(&self.actor);
        let last = Arc::clone(&self.last);
        let failed = Arc::clone(&self.failed);
        let config = self.config.clone();
        let mut parts = self.start.parts;
        Box::new(move |c: &Commit| {
            parts += 1;
            let input_fingerprint = {
                let mut b = lock(&boundaries);
                // Boundaries before this commit are not needed any more;
                // its own stays, since a later commit may end there too.
                while b.queue.front().is_some_and(|(end, _)| *end < c.next_chunk) {
                    b.queue.pop_front();
                }
                match b.queue.front() {
                    Some((end, fp)) if *end == c.next_chunk => fp.value(),
                    _ => {
                        return Err(Error::Runtime(format!(
                            "no input fingerprint recorded for chunk boundary {}",
                            c.next_chunk
                        )));
                    }
                }
            };
            let state = JobState {
                config: config.clone(),
                next_chunk: c.next_chunk,
                next_item: c.next_item,
                results: c.results,
                input_fingerprint,
                parts,
                last_chunks: c.chunks.clone(),
                failed: Vec::new(),
                written_at: now_secs(),
                complete: false,
            };
            let n = {
                let mut f = lock(&failed);
                f.extend(c.newly_failed.iter().cloned());
                f.len()
            };
            let state = Unwritten { state, failed: n };
            *lock(&last) = Some(state.clone());
            lock(&actor).send(state)
        })
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
        while chunks.next_index() < target {
            match chunks.next() {
                Some(Ok(chunk)) => {
                    for item in &chunk.items {
                        self.fingerprint.update_item(item)?;
                    }
                }
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
        lock(&self.boundaries)
            .queue
            .push_back((target, self.fingerprint.clone()));
        Ok(())
    }

    /// Fingerprints a chunk about to be dispatched.
    pub(crate) fn observe_chunk<T: serde::Serialize>(
        &mut self,
        chunk: &Chunk<T>,
    ) -> Result<(), Error> {
        for item in &chunk.items {
            self.fingerprint.update_item(item)?;
        }
        lock(&self.boundaries)
            .queue
            .push_back((chunk.index + 1, self.fingerprint.clone()));
        Ok(())
    }

    /// Waits for the checkpoint writes; marks the job complete if `done`.
    pub(crate) fn finish(&mut self, done: bool) -> Result<(), Error> {
        let mut actor = lock(&self.actor);
        if done && let Some(mut last) = lock(&self.last).take() {
            last.state.complete = true;
            last.state.written_at = now_secs();
            actor.send(last)?;
        }
        actor.finish()
    }

    pub(crate) fn committed_chunks(&self) -> u64 {
        lock(&self.last)
            .as_ref()
            .map_or(self.start.next_chunk, |s| s.state.next_chunk)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> JobConfig {
        JobConfig {
            chunk_size: 10,
            save_interval: 100,
            at_once: false,
            task_name: "square".into(),
            task_version: "1".into(),
            saver: "cbor at /out".into(),
            extra: "command [\"sh\"]".into(),
        }
    }

    /// Every field of `JobConfig`, changed one at a time through serde
    /// (so a field added later is covered without being named here), makes
    /// the configurations differ and is named in the message.
    #[test]
    fn every_field_counts_and_is_named() {
        let base = config();
        let serde_json::Value::Object(fields) = serde_json::to_value(&base).unwrap() else {
            panic!("a JobConfig serializes to an object")
        };
        assert_eq!(
            fields.len(),
            7,
            "a new field: check its label in differences()"
        );
        for (key, value) in &fields {
            let changed = match value {
                serde_json::Value::Bool(b) => serde_json::Value::Bool(!b),
                serde_json::Value::Number(n) => (n.as_u64().unwrap() + 1).into(),
                serde_json::Value::String(s) => format!("{s}-changed").into(),
                other => panic!("{key}: no way to change {other}"),
            };
            let mut obj = fields.clone();
            obj.insert(key.clone(), changed);
            let other: JobConfig = serde_json::from_value(obj.into()).unwrap();
            assert_ne!(other, base, "{key} takes part in the comparison");
            let d = differences(&base, &other);
            assert_eq!(d.len(), 1, "{key}: {d:?}");
            assert!(d[0].contains(" was "), "{key}: {d:?}");
        }
        let mut other = base.clone();
        other.chunk_size = 20;
        assert_eq!(
            differences(&base, &other),
            vec!["chunk size was \"10\", now \"20\"".to_owned()]
        );
        assert!(differences(&base, &base.clone()).is_empty());
    }
}
