//! Step checkpoints: the state of a [`Checkpointable`] saved at numbered
//! steps, committed atomically, the newest N kept.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use object_store::ObjectStore;
use object_store::path::Path;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::checkpointable::Checkpointable;
use crate::error::{Error, Result};
use crate::io::{self, Io, loc};

/// The object that commits a step, written last: the size of the state and
/// the step's [`Metadata`] (JSON).
pub const COMMIT_FILE: &str = "COMMIT";
/// The serialized state of a step (CBOR).
pub const STATE_FILE: &str = "state.cbor";
const DEFAULT_MAX_IN_FLIGHT: usize = 2;

/// The name of a step's directory: `step-` and the step zero-padded to 20
/// digits, so names sort like numbers.
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step:020}")
}

fn parse_step_dir(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?;
    if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// One user metadata value: a string, an integer, a float or a boolean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetaValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
}

impl From<bool> for MetaValue {
    fn from(v: bool) -> Self {
        MetaValue::Bool(v)
    }
}
impl From<i64> for MetaValue {
    fn from(v: i64) -> Self {
        MetaValue::Int(v)
    }
}
impl From<i32> for MetaValue {
    fn from(v: i32) -> Self {
        MetaValue::Int(v.into())
    }
}
impl From<u32> for MetaValue {
    fn from(v: u32) -> Self {
        MetaValue::Int(v.into())
    }
}
impl From<f64> for MetaValue {
    fn from(v: f64) -> Self {
        MetaValue::Float(v)
    }
}
impl From<&str> for MetaValue {
    fn from(v: &str) -> Self {
        MetaValue::Str(v.to_owned())
    }
}
impl From<String> for MetaValue {
    fn from(v: String) -> Self {
        MetaValue::Str(v)
    }
}

/// A step's metadata (kept in its `COMMIT` object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// The step.
    pub step: u64,
    /// When the step was saved, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The metadata given in [`SaveOptions::metadata`].
    #[serde(default)]
    pub user: BTreeMap<String, MetaValue>,
}

impl Metadata {
    /// One user metadata value.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.user.get(key)
    }

    /// When the step was saved.
    pub fn created(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.created_at_ms)
    }
}

/// Options of one save.
///
/// ```
/// use raygent_ckpt::SaveOptions;
/// let opts = SaveOptions::new().with_overwrite(true).with_meta("epoch", 3).with_meta("tag", "a");
/// assert!(opts.overwrite);
/// assert_eq!(opts.metadata.len(), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    /// Replace a committed step with the same number (otherwise the save
    /// fails with [`Error::StepExists`]).
    pub overwrite: bool,
    /// User metadata stored in the step's `COMMIT` object.
    pub metadata: BTreeMap<String, MetaValue>,
}

impl SaveOptions {
    /// No overwrite, no metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`SaveOptions::overwrite`].
    pub fn with_overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Adds one metadata entry.
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<MetaValue>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// What the COMMIT object holds.
#[derive(Debug, Serialize, Deserialize)]
struct Commit {
    step: u64,
    state_bytes: u64,
    /// The state itself (CBOR, base64), when it is small enough to go
    /// inside the commit ([`StepCheckpointer::with_inline_state`]): the
    /// step is then one object, and [`STATE_FILE`] is not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inline_state: Option<String>,
    created_at_ms: u64,
    #[serde(default)]
    user: BTreeMap<String, MetaValue>,
}

/// What this process knows about the steps under the prefix. It is the
/// single writer there, so after one listing it needs no more.
#[derive(Debug, Default)]
struct Cache {
    scanned: bool,
    committed: BTreeSet<u64>,
    in_flight: BTreeSet<u64>,
    /// Step directories without COMMIT (left by a crash or a failed save),
    /// removed once a newer step is committed.
    dirty: BTreeSet<u64>,
}

/// What a listing of the prefix found.
#[derive(Debug, Default)]
struct Scan {
    committed: BTreeSet<u64>,
    uncommitted: BTreeSet<u64>,
    /// The step directories on the local disk (with `with_local_dir`).
    local: BTreeSet<u64>,
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// Committed steps to keep; 0: all.
    keep: AtomicUsize,
    /// The largest state (bytes) stored inside the commit; 0: none.
    inline_max: AtomicUsize,
    cache: Mutex<Cache>,
    failure: Mutex<Option<Error>>,
    /// The local directory `prefix` maps to, if the store is a local disk:
    /// emptied step directories are removed there.
    local_dir: std::sync::OnceLock<std::path::PathBuf>,
}

struct StepWrite {
    step: u64,
    /// The state for [`STATE_FILE`]; `None` when it is inside the commit.
    state: Option<Bytes>,
    /// The encoded [`Commit`].
    commit: Bytes,
    replace: bool,
    /// Whether the save may replace a committed step: COMMIT is then a plain
    /// overwrite, otherwise a conditional create.
    overwrite: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn keep(&self) -> Option<usize> {
        match self.keep.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    fn dir(&self, step: u64) -> Path {
        self.prefix.clone().join(step_dir_name(step))
    }

    fn loc(&self, step: u64) -> String {
        loc(&*self.store, &self.dir(step))
    }

    fn record_failure(&self, e: Error) {
        let mut f = lock(&self.failure);
        if f.is_none() {
            *f = Some(e);
        } else {
            tracing::error!(error = %e, "another asynchronous checkpoint save failed");
        }
    }

    fn take_failure(&self) -> Result<()> {
        match lock(&self.failure).take() {
            Some(e) => Err(Error::Background(Box::new(e))),
            None => Ok(()),
        }
    }

    /// Committed steps, and step directories without a commit.
    async fn scan(&self) -> Result<Scan> {
        let mut scan = Scan::default();
        let mut seen = BTreeSet::new();
        for path in io::list(&*self.store, &self.prefix).await? {
            let Some(step) = io::first_segment_below(&path, &self.prefix)
                .as_deref()
                .and_then(parse_step_dir)
            else {
                continue;
            };
            seen.insert(step);
            if path.parts().count() != self.prefix.parts().count() + 2 {
                continue;
            }
            if path.filename() == Some(COMMIT_FILE) {
                scan.committed.insert(step);
            }
        }
        // On a local disk, a step directory may hold only a staging file
        // (`COMMIT#1`: a process killed in the middle of a put), which the
        // store does not list: it is uncommitted too.
        scan.local = self.local_step_dirs();
        seen.extend(scan.local.iter().copied());
        scan.uncommitted = seen.difference(&scan.committed).copied().collect();
        Ok(scan)
    }

    /// The data objects of step `step` (everything but COMMIT).
    fn data_paths(&self, step: u64) -> Vec<Path> {
        vec![self.dir(step).join(STATE_FILE)]
    }

    async fn write(&self, job: StepWrite) -> Result<()> {
        let res = self.write_and_commit(&job).await;
        {
            let mut c = lock(&self.cache);
            c.in_flight.remove(&job.step);
            match &res {
                Ok(()) => {
                    c.committed.insert(job.step);
                }
                Err(_) => {
                    c.dirty.insert(job.step);
                }
            }
        }
        res?;
        // Crash tests freeze the process here: the step is committed, the
        // steps it makes obsolete are not deleted yet.
        raygent_core::failpoint("checkpoint-before-prune");
        self.remove_old(job.step).await;
        Ok(())
    }

    async fn write_and_commit(&self, job: &StepWrite) -> Result<()> {
        let store = &*self.store;
        let dir = self.dir(job.step);
        let commit = dir.clone().join(COMMIT_FILE);
        if job.replace {
            // Uncommit first: a reader never sees the old commit over new data.
            io::delete(store, vec![commit.clone()]).await?;
            lock(&self.cache).committed.remove(&job.step);
        }
        if let Some(state) = &job.state {
            io::put_or_err(store, &dir.clone().join(STATE_FILE), state.clone()).await?;
        }
        // Crash tests freeze the process here: data written, no commit yet.
        raygent_core::failpoint("checkpoint-before-commit");
        let marker = job.commit.clone();
        if job.overwrite {
            // Replacing a committed step is allowed: a plain put (on a local
            // directory it saves the hard link and unlink of a create).
            return io::put_or_err(store, &commit, marker).await;
        }
        match io::put(store, &commit, marker.clone(), true).await {
            Ok(()) => Ok(()),
            // A store without conditional puts (S3 with conditional put
            // disabled): the single-writer rule already excludes a commit
            // by someone else.
            Err(object_store::Error::NotImplemented { .. }) => {
                io::put_or_err(store, &commit, marker).await
            }
            Err(object_store::Error::AlreadyExists { .. }) => Err(Error::StepExists {
                step: job.step,
                location: loc(store, &dir),
            }),
            Err(e) => Err(Error::store(loc(store, &commit), e)),
        }
    }

    /// After `step` is committed: removes the committed steps beyond `keep`
    /// and the uncommitted directories older than the newest committed step.
    /// Failures here do not fail the save (it is committed); they are logged
    /// and retried after the next commit.
    async fn remove_old(&self, step: u64) {
        let (old, dirty) = {
            let mut guard = lock(&self.cache);
            let c = &mut *guard;
            let mut old = Vec::new();
            if let Some(keep) = self.keep() {
                while c.committed.len() > keep {
                    match c.committed.pop_first() {
                        Some(s) => old.push(s),
                        None => break,
                    }
                }
            }
            let newest = c.committed.last().copied().unwrap_or(step);
            let dirty: Vec<u64> = c
                .dirty
                .iter()
                .copied()
                .filter(|d| *d < newest && !c.in_flight.contains(d) && !c.committed.contains(d))
                .collect();
            for d in &dirty {
                c.dirty.remove(d);
            }
            (old, dirty)
        };
        let store = &*self.store;
        for s in old {
            let dir = self.dir(s);
            if let Err(e) = io::delete(store, vec![dir.clone().join(COMMIT_FILE)]).await {
                tracing::warn!(step = s, error = %e, "cannot remove an old checkpoint step");
                lock(&self.cache).committed.insert(s);
                continue;
            }
            if let Err(e) = io::delete(store, self.data_paths(s)).await {
                tracing::warn!(step = s, error = %e, "cannot remove an old checkpoint step's data");
                self.keep_for_retry(s);
                continue;
            }
            self.remove_local_step_dir(s);
        }
        for d in dirty {
            if let Err(e) = io::delete(store, self.data_paths(d)).await {
                tracing::warn!(step = d, error = %e, "cannot remove an uncommitted checkpoint step");
                self.keep_for_retry(d);
                continue;
            }
            self.remove_local_step_dir(d);
        }
    }

    /// On a local disk, removes the directory of a step whose objects are
    /// gone (object stores have no directories to remove; a local store
    /// would otherwise keep one empty directory per checkpoint ever
    /// written). Only an empty directory is removed; anything else is left.
    fn remove_local_step_dir(&self, step: u64) {
        if let Some(root) = self.local_dir.get() {
            // Under the lock, and not while a save of the same step runs
            // (its put would lose its staging file).
            let cache = lock(&self.cache);
            if cache.in_flight.contains(&step) {
                return;
            }
            self.remove_local_staging(step);
            let dir = root.join(step_dir_name(step));
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "step directory kept"),
            }
        }
    }

    /// Removes from `step`'s local directory the staging files that a
    /// process killed mid-put left behind
    /// ([`raygent_core::remove_staging_files`]).
    fn remove_local_staging(&self, step: u64) {
        let Some(root) = self.local_dir.get() else {
            return;
        };
        let dir = root.join(step_dir_name(step));
        if let Err((file, err)) = raygent_core::remove_staging_files(&dir, |_| true) {
            tracing::debug!(file = %file.display(), error = %err, "staging file kept");
        }
    }

    /// The steps that have a directory under the local directory (if
    /// [`StepCheckpointer::with_local_dir`] gave one).
    fn local_step_dirs(&self) -> BTreeSet<u64> {
        let Some(root) = self.local_dir.get() else {
            return BTreeSet::new();
        };
        let Ok(entries) = std::fs::read_dir(root) else {
            return BTreeSet::new();
        };
        entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| parse_step_dir(&e.file_name().to_string_lossy()))
            .collect()
    }

    /// After a failed deletion of `data`: the step is retried as dirty.
    fn keep_for_retry(&self, step: u64) {
        lock(&self.cache).dirty.insert(step);
    }

    async fn committed_steps(&self) -> Result<Vec<u64>> {
        Ok(self.scan().await?.committed.into_iter().collect())
    }

    /// The decoded COMMIT object of `step`, `None` when it is not committed.
    async fn read_commit(&self, step: u64) -> Result<Option<Commit>> {
        let store = &*self.store;
        let path = self.dir(step).join(COMMIT_FILE);
        let Some(bytes) = io::get(store, &path).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                location: loc(store, &path),
                message: format!("unreadable commit marker: {e}"),
            })
    }

    /// The raw state bytes of a committed step.
    async fn read_state(&self, step: u64) -> Result<Bytes> {
        Ok(self.read_step(step).await?.0)
    }

    /// The raw state bytes of a committed step and its COMMIT object.
    async fn read_step(&self, step: u64) -> Result<(Bytes, Commit)> {
        let store = &*self.store;
        let dir = self.dir(step);
        let state_path = dir.clone().join(STATE_FILE);
        // Both requests at once (one round trip on S3); the state file is
        // absent when the state is inside the commit.
        let (commit, file) =
            futures::try_join!(self.read_commit(step), io::get(store, &state_path))?;
        let Some(mut commit) = commit else {
            return Err(Error::StepNotFound {
                step,
                location: self.loc(step),
            });
        };
        let (state, what) = match commit.inline_state.take() {
            Some(text) => {
                let bytes = BASE64.decode(text.as_bytes()).map_err(|e| Error::Corrupt {
                    location: loc(store, &dir.clone().join(COMMIT_FILE)),
                    message: format!("the state inside the commit marker is not base64: {e}"),
                })?;
                (Bytes::from(bytes), "the state inside COMMIT")
            }
            None => match file {
                Some(state) => (state, STATE_FILE),
                None => {
                    return Err(Error::Corrupt {
                        location: self.loc(step),
                        message: format!("the step is committed but {STATE_FILE} is missing"),
                    });
                }
            },
        };
        if commit.state_bytes != state.len() as u64 {
            return Err(Error::Corrupt {
                location: self.loc(step),
                message: format!(
                    "{what} has {} byte(s), the commit recorded {}",
                    state.len(),
                    commit.state_bytes
                ),
            });
        }
        Ok((state, commit))
    }

    async fn read_metadata(&self, step: u64) -> Result<Metadata> {
        let Some(commit) = self.read_commit(step).await? else {
            return Err(Error::StepNotFound {
                step,
                location: self.loc(step),
            });
        };
        Ok(Self::metadata_of(step, commit))
    }

    /// The metadata recorded in `commit`, the COMMIT object of `step`.
    fn metadata_of(step: u64, commit: Commit) -> Metadata {
        Metadata {
            step,
            created_at_ms: commit.created_at_ms,
            user: commit.user,
        }
    }

    fn decode<S: DeserializeOwned>(&self, step: u64, bytes: &[u8]) -> Result<S> {
        ciborium::from_reader(bytes).map_err(|e| Error::Codec {
            action: "decode",
            location: format!("the state of step {step} at {}", self.loc(step)),
            source: e.into(),
        })
    }
}

/// Saves and restores the state of a [`Checkpointable`] at numbered steps,
/// on any object store (datarax's `IteratorCheckpoint` and
/// `PipelineCheckpoint`, Orbax-style).
///
/// Layout under the prefix, one directory per step:
///
/// ```text
/// <prefix>/step-00000000000000000042/state.cbor  the state (CBOR)
/// <prefix>/step-00000000000000000042/COMMIT      written last: the step exists;
///                                                state size, time, user metadata (JSON)
/// ```
///
/// A step is visible (listed, restorable) only once its `COMMIT` object
/// exists; `COMMIT` is written after the state (with a conditional create,
/// unless the save allows overwriting), so a save killed at any instant
/// leaves either the previous steps only, or the new step complete. Old
/// steps are deleted (commit first) only after a newer one is committed.
/// With
/// [`with_inline_state`](Self::with_inline_state), a small state goes
/// inside `COMMIT` and the step is that one object.
///
/// One checkpointer should be the only writer under its prefix (readers in
/// other processes are fine): it lists the prefix once, at its first save,
/// and then tracks the steps itself, so a save costs two small writes (one
/// with the state inline).
///
/// The API is blocking: the checkpointer runs its requests on a private
/// runtime. Call it from plain threads, never from inside an async runtime
/// (it then returns [`Error::InsideAsyncRuntime`]).
///
/// With [`with_async(true)`](Self::with_async) a save serializes the state
/// on the caller's thread and writes it in the background, at most
/// [`with_max_in_flight`](Self::with_max_in_flight) saves at a time (a save
/// waits for a free slot). [`wait_until_finished`](Self::wait_until_finished)
/// waits for them. A background failure is never lost: the next call (a
/// save, a read or the wait) returns it as [`Error::Background`]. Reads wait
/// for pending saves first, so they see every earlier save.
///
/// ```
/// use std::sync::Arc;
/// use object_store::{memory::InMemory, path::Path};
/// use raygent_ckpt::{Checkpointable, CheckpointableIter, SaveOptions, StepCheckpointer};
///
/// let ckpt = StepCheckpointer::new(Arc::new(InMemory::new()), Path::from("job/steps"))?
///     .with_keep(2);
/// let mut input = CheckpointableIter::new((0..10).collect::<Vec<u32>>());
/// for step in 1..=4u64 {
///     input.next();
///     ckpt.save(step, &input, SaveOptions::new().with_meta("items", step as i64))?;
/// }
/// assert_eq!(ckpt.list_steps()?, vec![3, 4]);
///
/// let mut resumed = CheckpointableIter::new((0..10).collect::<Vec<u32>>());
/// assert_eq!(ckpt.restore_latest(&mut resumed)?, Some(4));
/// assert_eq!(resumed.next(), Some(4));
/// # Ok::<(), raygent_ckpt::Error>(())
/// ```
#[derive(Debug)]
pub struct StepCheckpointer {
    shared: Arc<Shared>,
    async_mode: bool,
    max_in_flight: usize,
    permits: Arc<Semaphore>,
    io: Io,
}

impl StepCheckpointer {
    /// A checkpointer writing under `prefix` in `store`; synchronous, keeps
    /// every step.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Result<Self> {
        Ok(StepCheckpointer {
            shared: Arc::new(Shared {
                store,
                prefix,
                keep: AtomicUsize::new(0),
                inline_max: AtomicUsize::new(0),
                cache: Mutex::new(Cache::default()),
                failure: Mutex::new(None),
                local_dir: std::sync::OnceLock::new(),
            }),
            async_mode: false,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            permits: Arc::new(Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
            io: Io::new()?,
        })
    }

    /// Declares that the store is a local disk and `prefix` is the
    /// directory `dir` on it: the directories of deleted steps (keep-N,
    /// [`clear`](Self::clear)) are then removed as well, so a long job does
    /// not leave one empty directory per checkpoint behind.
    pub fn with_local_dir(self, dir: impl Into<std::path::PathBuf>) -> Self {
        // Set once, before the checkpointer is shared.
        let _ = self.shared.local_dir.set(dir.into());
        self
    }

    /// Keeps only the `n` newest committed steps (at least 1); older ones
    /// are deleted after a newer step is committed.
    pub fn with_keep(self, n: usize) -> Self {
        self.shared.keep.store(n.max(1), Ordering::Relaxed);
        self
    }

    /// Stores a state of at most `max_bytes` (encoded) inside the step's
    /// `COMMIT` object instead of a separate [`STATE_FILE`] (default 0:
    /// never). Such a step is one object, so a save is one write instead
    /// of two, and it is still all or nothing: the commit object appears
    /// complete or not at all. Meant for small, frequent states such as a
    /// job's progress; the state grows by a third (base64) in the JSON
    /// commit.
    pub fn with_inline_state(self, max_bytes: usize) -> Self {
        self.shared.inline_max.store(max_bytes, Ordering::Relaxed);
        self
    }

    /// Saves in the background (see the type's documentation).
    pub fn with_async(mut self, async_mode: bool) -> Self {
        self.async_mode = async_mode;
        self
    }

    /// At most `n` background saves at a time (at least 1; default 2).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self.permits = Arc::new(Semaphore::new(self.max_in_flight));
        self
    }

    /// The prefix the steps live under.
    pub fn prefix(&self) -> &Path {
        &self.shared.prefix
    }

    /// The store and prefix, for messages.
    pub fn location(&self) -> String {
        loc(&*self.shared.store, &self.shared.prefix)
    }

    /// The directory of `step`.
    pub fn step_path(&self, step: u64) -> Path {
        self.shared.dir(step)
    }

    /// How many committed steps are kept (`None`: all).
    pub fn keep(&self) -> Option<usize> {
        self.shared.keep()
    }

    /// Whether saves run in the background.
    pub fn is_async(&self) -> bool {
        self.async_mode
    }

    /// Saves `object`'s state at `step` and returns the step's directory.
    ///
    /// Fails with [`Error::StepExists`] when `step` is already committed and
    /// `opts.overwrite` is false. In async mode the step is committed when
    /// [`wait_until_finished`](Self::wait_until_finished) returns.
    pub fn save<C: Checkpointable + ?Sized>(
        &self,
        step: u64,
        object: &C,
        opts: SaveOptions,
    ) -> Result<Path> {
        self.save_state(step, &object.get_state(), opts)
    }

    /// Saves `object` only when `step % interval == 0`; returns the step's
    /// directory when it saved.
    pub fn save_at_interval<C: Checkpointable + ?Sized>(
        &self,
        step: u64,
        interval: u64,
        object: &C,
        opts: SaveOptions,
    ) -> Result<Option<Path>> {
        if interval == 0 {
            return Err(Error::InvalidArgument(
                "the checkpoint interval must be at least 1".into(),
            ));
        }
        if !step.is_multiple_of(interval) {
            return Ok(None);
        }
        self.save(step, object, opts).map(Some)
    }

    /// Saves any serializable value as the state of `step`.
    pub fn save_state<S: Serialize + ?Sized>(
        &self,
        step: u64,
        state: &S,
        opts: SaveOptions,
    ) -> Result<Path> {
        let sh = &self.shared;
        sh.take_failure()?;
        let dir = sh.dir(step);
        let mut buf = Vec::new();
        ciborium::into_writer(state, &mut buf).map_err(|e| Error::Codec {
            action: "encode",
            location: format!("the state of step {step} for {}", sh.loc(step)),
            source: e.into(),
        })?;
        let inline_max = sh.inline_max.load(Ordering::Relaxed);
        let inline = inline_max > 0 && buf.len() <= inline_max;
        let commit = Commit {
            step,
            state_bytes: buf.len() as u64,
            inline_state: inline.then(|| BASE64.encode(&buf)),
            created_at_ms: io::now_ms(),
            user: opts.metadata,
        };
        let commit = serde_json::to_vec(&commit).map_err(|e| Error::Codec {
            action: "encode",
            location: format!("the commit marker of step {step} for {}", sh.loc(step)),
            source: e.into(),
        })?;

        self.ensure_scanned()?;
        if self.async_mode && lock(&sh.cache).in_flight.contains(&step) {
            self.wait_until_finished()?;
        }
        let permit = if self.async_mode {
            let permit = self
                .io
                .block_on(Arc::clone(&self.permits).acquire_owned())?
                .map_err(|_| Error::Runtime(std::io::Error::other("the save queue is closed")))?;
            // The save we waited for may have failed: report it now.
            sh.take_failure()?;
            Some(permit)
        } else {
            None
        };
        let replace = {
            let mut c = lock(&sh.cache);
            let exists = c.committed.contains(&step) || c.in_flight.contains(&step);
            if exists && !opts.overwrite {
                return Err(Error::StepExists {
                    step,
                    location: sh.loc(step),
                });
            }
            c.in_flight.insert(step);
            exists
        };
        let job = StepWrite {
            step,
            state: (!inline).then(|| buf.into()),
            commit: commit.into(),
            replace,
            overwrite: opts.overwrite,
        };
        match permit {
            Some(permit) => {
                let shared = Arc::clone(sh);
                let spawned = self.io.spawn(async move {
                    if let Err(e) = shared.write(job).await {
                        tracing::error!(step, error = %e, "asynchronous checkpoint save failed");
                        shared.record_failure(e);
                    }
                    // Released after the failure is recorded, so a save
                    // waiting for this slot sees it.
                    drop(permit);
                });
                if let Err(e) = spawned {
                    lock(&sh.cache).in_flight.remove(&step);
                    return Err(e);
                }
            }
            None => {
                let res = self.io.block_on(sh.write(job));
                match res {
                    Ok(r) => r?,
                    Err(e) => {
                        lock(&sh.cache).in_flight.remove(&step);
                        return Err(e);
                    }
                }
            }
        }
        Ok(dir)
    }

    fn ensure_scanned(&self) -> Result<()> {
        let sh = &self.shared;
        if lock(&sh.cache).scanned {
            return Ok(());
        }
        let scan = self.io.block_on(sh.scan())??;
        let mut guard = lock(&sh.cache);
        let c = &mut *guard;
        if !c.scanned {
            // Before this process's first save, and only in the writer (a
            // reader in another process must not touch a running job's
            // puts): the staging files that a process killed mid-put left
            // in step directories go. Under the lock, so no save registers
            // (and starts a put) meanwhile.
            for step in &scan.local {
                if !c.in_flight.contains(step) {
                    sh.remove_local_staging(*step);
                }
            }
            c.committed.extend(scan.committed);
            let in_flight = &c.in_flight;
            c.dirty.extend(
                scan.uncommitted
                    .into_iter()
                    .filter(|s| !in_flight.contains(s)),
            );
            c.scanned = true;
        }
        Ok(())
    }

    /// Waits until every background save has finished; returns the first
    /// failure since the last call that reported one.
    pub fn wait_until_finished(&self) -> Result<()> {
        let n = u32::try_from(self.max_in_flight).unwrap_or(u32::MAX);
        let all = self
            .io
            .block_on(self.permits.acquire_many(n))?
            .map_err(|_| Error::Runtime(std::io::Error::other("the save queue is closed")))?;
        drop(all);
        self.shared.take_failure()
    }

    /// Deletes every step under the prefix, committed or not (a fresh
    /// start). Commit markers go first, so a step is never visible without
    /// its data, even if this is interrupted.
    pub fn clear(&self) -> Result<()> {
        self.wait_until_finished()?;
        let sh = &self.shared;
        let store = &*sh.store;
        let paths = self.io.block_on(io::list(store, &sh.prefix))??;
        let (commits, data): (Vec<Path>, Vec<Path>) = paths
            .into_iter()
            .partition(|p| p.filename() == Some(COMMIT_FILE));
        let mut steps: BTreeSet<u64> = commits
            .iter()
            .chain(&data)
            .filter_map(|p| io::first_segment_below(p, &sh.prefix))
            .filter_map(|name| parse_step_dir(&name))
            .collect();
        steps.extend(sh.local_step_dirs());
        self.io.block_on(io::delete(store, commits))??;
        self.io.block_on(io::delete(store, data))??;
        for step in steps {
            sh.remove_local_step_dir(step);
        }
        *lock(&sh.cache) = Cache {
            scanned: true,
            ..Cache::default()
        };
        Ok(())
    }

    /// The committed steps, oldest first.
    pub fn list_steps(&self) -> Result<Vec<u64>> {
        self.wait_until_finished()?;
        self.io.block_on(self.shared.committed_steps())?
    }

    /// The newest committed step.
    pub fn latest_step(&self) -> Result<Option<u64>> {
        Ok(self.list_steps()?.last().copied())
    }

    /// The metadata of a committed step.
    pub fn metadata(&self, step: u64) -> Result<Metadata> {
        self.wait_until_finished()?;
        self.io.block_on(self.shared.read_metadata(step))?
    }

    /// The state saved at `step`, decoded as `S`.
    pub fn load_state<S: DeserializeOwned>(&self, step: u64) -> Result<S> {
        self.wait_until_finished()?;
        let bytes = self.io.block_on(self.shared.read_state(step))??;
        self.shared.decode(step, &bytes)
    }

    /// The newest committed step, its state and metadata; `None` when there
    /// is no committed step.
    pub fn load_latest<S: DeserializeOwned>(&self) -> Result<Option<(u64, S, Metadata)>> {
        let Some(step) = self.latest_step()? else {
            return Ok(None);
        };
        let sh = &self.shared;
        let (bytes, meta) = self.io.block_on(async {
            let (bytes, commit) = sh.read_step(step).await?;
            Ok::<_, Error>((bytes, Shared::metadata_of(step, commit)))
        })??;
        Ok(Some((step, sh.decode(step, &bytes)?, meta)))
    }

    /// Restores `object` to the state saved at `step`.
    pub fn restore<C: Checkpointable + ?Sized>(&self, step: u64, object: &mut C) -> Result<()> {
        let state = self.load_state::<C::State>(step)?;
        object.set_state(state).map_err(|e| Error::Restore {
            step,
            location: self.shared.loc(step),
            source: Box::new(e),
        })
    }

    /// Restores `object` to the newest committed step and returns the step;
    /// `None` (and `object` untouched) when there is none.
    pub fn restore_latest<C: Checkpointable + ?Sized>(
        &self,
        object: &mut C,
    ) -> Result<Option<u64>> {
        let Some(step) = self.latest_step()? else {
            return Ok(None);
        };
        self.restore(step, object)?;
        Ok(Some(step))
    }
}

impl Drop for StepCheckpointer {
    fn drop(&mut self) {
        if !self.async_mode || tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        if let Err(e) = self.wait_until_finished() {
            tracing::error!(
                location = %self.location(),
                error = %e,
                "a checkpoint save failed and was never reported (dropped before wait_until_finished)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_sort_and_parse() {
        assert_eq!(step_dir_name(42), "step-00000000000000000042");
        assert_eq!(parse_step_dir(&step_dir_name(u64::MAX)), Some(u64::MAX));
        assert!(step_dir_name(9) < step_dir_name(10));
        for bad in [
            "step-42",
            "step-0000000000000000004x",
            "x-00000000000000000042",
        ] {
            assert_eq!(parse_step_dir(bad), None, "{bad}");
        }
    }

    #[test]
    fn meta_values_roundtrip_json() {
        let m = Metadata {
            step: 3,
            created_at_ms: 5,
            user: [
                ("b".to_owned(), MetaValue::from(true)),
                ("i".to_owned(), MetaValue::from(-7)),
                ("f".to_owned(), MetaValue::from(1.5)),
                ("s".to_owned(), MetaValue::from("x")),
            ]
            .into_iter()
            .collect(),
        };
        let back: Metadata = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
