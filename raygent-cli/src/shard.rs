//! The layout of a sharded job's output, and the conditional creates that
//! let shards share it with no coordinator.
//!
//! ```text
//! OUT/_job.json                           the job: shard count, command, options, input digest
//! OUT/_shards/_input.json                 the input files as the shards shared them out
//! OUT/_shards/00003/claims/000002.json    attempt 2 at shard 3 (who, where, resumed from what)
//! OUT/_shards/00003/a000002/              attempt 2's results: a dataset with its checkpoints
//! OUT/_shards/_done/00003.json            shard 3 is complete: which attempt, totals
//! OUT/_SUCCESS                            every shard is complete
//! ```
//!
//! Every one of `_job.json`, `_input.json`, a claim, a done record and
//! `_SUCCESS` is written once, with `PutMode::Create`: of two processes that
//! write the same name, one gets `AlreadyExists`. A process running a shard
//! first claims the next attempt number; it writes only into its own
//! attempt directory, and copies into it the committed prefix of the
//! newest earlier attempt that has a checkpoint. So no process ever deletes
//! or overwrites what another may still be writing: an older process that
//! still runs (a requeued Slurm task whose first incarnation lives on) is
//! fenced by the newer claim, which it checks before each checkpoint and
//! before marking the shard done, and whatever it writes after that stays
//! in its own directory, which nothing reads.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use raygent_savers::{Location, MANIFEST_DIR};
use serde::{Deserialize, Serialize};

/// The job record, relative to the output.
pub const JOB_RECORD: &str = "_job.json";
/// The directory of the shards.
pub const SHARDS_DIR: &str = "_shards";
/// The input files as the shards shared them out.
pub const INPUT_RECORD: &str = "_shards/_input.json";
/// The directory of the shards' completion records.
pub const DONE_DIR: &str = "_shards/_done";
/// The marker written once every shard is complete.
pub const SUCCESS_MARKER: &str = "_SUCCESS";
/// The version of this layout.
pub const LAYOUT_VERSION: u32 = 1;

/// What identifies a sharded job: every shard must run the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobIdentity {
    /// The worker command and its arguments.
    pub command: Vec<String>,
    /// `--per-item`.
    pub per_item: bool,
    /// `--shell`.
    pub shell: bool,
    /// The `-i` values (globs made absolute).
    pub input: String,
    /// `--input-format`.
    pub input_format: String,
    /// `--chunk-size`.
    pub chunk_size: u64,
    /// `--save-interval`.
    pub save_interval: u64,
    /// `--format`.
    pub format: String,
}

/// The input as the shards share it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSummary {
    /// How many files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// A digest of every file's name, size and compression.
    pub digest: String,
}

/// `_job.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// [`LAYOUT_VERSION`].
    pub layout_version: u32,
    /// How many shards.
    pub shards: u32,
    /// What every shard runs.
    pub identity: JobIdentity,
    /// The input.
    pub input: InputSummary,
    /// When the first shard started (seconds since the Unix epoch).
    pub created_unix: u64,
}

/// One input file, in `_input.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputEntry {
    /// Its name.
    pub name: String,
    /// Its size.
    pub bytes: u64,
}

/// Who runs an attempt, for messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Runner {
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// The Slurm job and array task, or the Kubernetes pod, if any.
    #[serde(default)]
    pub engine: Option<String>,
}

impl Runner {
    /// This process.
    pub fn this() -> Runner {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown host".into());
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let engine = match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
            (Some(j), Some(t)) => Some(format!("Slurm job {j}_{t}")),
            _ => var("SLURM_JOB_ID")
                .map(|j| format!("Slurm job {j}"))
                .or_else(|| {
                    var("JOB_COMPLETION_INDEX")
                        .map(|_| format!("pod {}", var("HOSTNAME").unwrap_or(host.clone())))
                }),
        };
        Runner {
            host,
            pid: std::process::id(),
            engine,
        }
    }
}

impl std::fmt::Display for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)?;
        if let Some(e) = &self.engine {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

/// Where an attempt continued from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Base {
    /// The earlier attempt.
    pub attempt: u32,
    /// The chunks copied from it.
    pub next_chunk: u64,
}

/// A claim: `_shards/SHARD/claims/ATTEMPT.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// The shard.
    pub shard: u32,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// Who runs it.
    pub runner: Runner,
    /// When it started (seconds since the Unix epoch).
    pub started_unix: u64,
    /// The attempt it continued from.
    pub base: Option<Base>,
}

/// `_shards/_done/SHARD.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoneRecord {
    /// The shard.
    pub shard: u32,
    /// The attempt whose directory holds the shard's results.
    pub attempt: u32,
    /// Chunks.
    pub chunks: u64,
    /// Input records.
    pub items: u64,
    /// Results saved.
    pub results: u64,
    /// Parts.
    pub parts: u64,
    /// Chunks that failed on every attempt and were skipped.
    pub failed_chunks: Vec<raygent_core::FailedChunk>,
    /// The shard's share of the input.
    pub share: String,
    /// When it was marked done (seconds since the Unix epoch).
    pub finished_unix: u64,
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The name of shard `i`'s directory.
pub fn shard_dir(shard: u32) -> String {
    format!("{SHARDS_DIR}/{shard:05}")
}

/// The name of an attempt's directory.
pub fn attempt_dir(shard: u32, attempt: u32) -> String {
    format!("{}/a{attempt:06}", shard_dir(shard))
}

fn claim_name(shard: u32, attempt: u32) -> String {
    format!("{}/claims/{attempt:06}.json", shard_dir(shard))
}

fn done_name(shard: u32) -> String {
    format!("{DONE_DIR}/{shard:05}.json")
}

/// The number in a name like `000012.json` or `00003.json`.
fn number(name: &str) -> Option<u32> {
    let stem = name.rsplit('/').next()?.strip_suffix(".json")?;
    (!stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// Counts the requests made to a store (for `-v` and the benchmarks).
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    count: Arc<AtomicU64>,
}

impl std::fmt::Display for CountingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

impl CountingStore {
    fn tick(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.tick();
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.tick();
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.tick();
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.tick();
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.tick();
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.tick();
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.tick();
        self.inner.copy_opts(from, to, options).await
    }
}

/// A sharded job's output.
pub struct Layout {
    root: Location,
    rt: tokio::runtime::Runtime,
    requests: Option<Arc<AtomicU64>>,
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layout")
            .field("url", &self.root.url())
            .finish()
    }
}

/// What a conditional create found.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// The object was written.
    Written,
    /// Another process had written it first.
    Exists,
}

impl Layout {
    /// The layout at `root`.
    pub fn new(root: Location) -> anyhow::Result<Layout> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the I/O runtime")?;
        Ok(Layout {
            root,
            rt,
            requests: None,
        })
    }

    /// The layout at `root`, counting the requests it makes.
    pub fn counting(root: Location) -> anyhow::Result<Layout> {
        let count = Arc::new(AtomicU64::new(0));
        let store = Arc::new(CountingStore {
            inner: Arc::clone(root.store()),
            count: Arc::clone(&count),
        });
        let root = Location::from_store(store, root.prefix().clone(), root.url());
        let mut l = Layout::new(root)?;
        l.requests = Some(count);
        Ok(l)
    }

    /// Requests made so far (with [`counting`](Self::counting)).
    pub fn requests(&self) -> u64 {
        self.requests
            .as_ref()
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The output's location.
    pub fn root(&self) -> &Location {
        &self.root
    }

    /// The URL of the object or directory `name`.
    pub fn url_of(&self, name: &str) -> String {
        format!("{}/{name}", self.root.url().trim_end_matches('/'))
    }

    /// Runs `f` on this layout's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> anyhow::Result<Option<T>> {
        let got = match self.root.store().get(&self.root.path(name)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("reading {}", self.url_of(name))));
            }
        };
        let bytes = got
            .bytes()
            .await
            .with_context(|| format!("reading {}", self.url_of(name)))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not a raygent record", self.url_of(name)))
    }

    async fn create_json<T: Serialize>(&self, name: &str, value: &T) -> anyhow::Result<Created> {
        let body = serde_json::to_vec_pretty(value).context("encoding a record")?;
        let opts = PutOptions::from(PutMode::Create);
        match self
            .root
            .store()
            .put_opts(&self.root.path(name), Bytes::from(body).into(), opts)
            .await
        {
            Ok(_) => Ok(Created::Written),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::Exists),
            Err(e) => Err(anyhow::Error::new(e).context(format!("writing {}", self.url_of(name)))),
        }
    }

    async fn names_in(&self, dir: &str) -> anyhow::Result<Vec<String>> {
        let prefix = self.root.path(dir);
        let listed = self
            .root
            .store()
            .list_with_delimiter(Some(&prefix))
            .await
            .with_context(|| format!("listing {}", self.url_of(dir)))?;
        Ok(listed
            .objects
            .iter()
            .filter_map(|m| self.root.relative(&m.location))
            .collect())
    }

    /// Whether `name` exists.
    pub fn exists(&self, name: &str) -> anyhow::Result<bool> {
        self.block_on(async {
            match self.root.store().head(&self.root.path(name)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => {
                    Err(anyhow::Error::new(e).context(format!("reading {}", self.url_of(name))))
                }
            }
        })
    }

    /// `_job.json`, if there is one.
    pub fn job(&self) -> anyhow::Result<Option<JobRecord>> {
        self.block_on(self.get_json(JOB_RECORD))
    }

    /// Records `job` as the job at this output, or checks that the job
    /// already recorded there is the same; `Err(differences)` if not.
    pub fn create_or_check_job(
        &self,
        job: &JobRecord,
        input: &[InputEntry],
    ) -> anyhow::Result<Result<(), Vec<String>>> {
        self.block_on(async {
            if self.get_json::<JobRecord>(JOB_RECORD).await?.is_none() {
                // The input list first: whoever finds the job record can
                // rely on it.
                self.create_json(INPUT_RECORD, &input).await?;
                self.create_json(JOB_RECORD, job).await?;
            }
            let Some(found) = self.get_json::<JobRecord>(JOB_RECORD).await? else {
                return Err(anyhow!("{} vanished", self.url_of(JOB_RECORD)));
            };
            let mut d = job_differences(&found, job);
            if found.input.digest != job.input.digest {
                let old: Vec<InputEntry> = self.get_json(INPUT_RECORD).await?.unwrap_or_default();
                d.push(input_difference(&old, input, &found.input, &job.input));
            }
            Ok(if d.is_empty() { Ok(()) } else { Err(d) })
        })
    }

    /// The newest claim at `shard`: its number and record.
    pub fn latest_claim(&self, shard: u32) -> anyhow::Result<Option<ClaimRecord>> {
        self.block_on(async {
            let names = self
                .names_in(&format!("{}/claims", shard_dir(shard)))
                .await?;
            let Some(latest) = names.iter().filter_map(|n| number(n)).max() else {
                return Ok(None);
            };
            self.get_json(&claim_name(shard, latest)).await
        })
    }

    /// Claims `claim.attempt` at `claim.shard`; `Exists` if another process
    /// did first.
    pub fn claim(&self, claim: &ClaimRecord) -> anyhow::Result<Created> {
        self.block_on(self.create_json(&claim_name(claim.shard, claim.attempt), claim))
    }

    /// The claim `attempt` at `shard`, if it exists.
    pub fn claim_at(&self, shard: u32, attempt: u32) -> anyhow::Result<Option<ClaimRecord>> {
        self.block_on(self.get_json(&claim_name(shard, attempt)))
    }

    /// The done record of `shard`, if it is done.
    pub fn done(&self, shard: u32) -> anyhow::Result<Option<DoneRecord>> {
        self.block_on(self.get_json(&done_name(shard)))
    }

    /// Marks a shard done; `Exists` if another process did first.
    pub fn create_done(&self, done: &DoneRecord) -> anyhow::Result<Created> {
        self.block_on(self.create_json(&done_name(done.shard), done))
    }

    /// The shards marked done (one listing, paged by the store).
    pub fn done_shards(&self, shards: u32) -> anyhow::Result<BTreeSet<u32>> {
        self.block_on(async {
            let names = self.names_in(DONE_DIR).await?;
            Ok(names
                .iter()
                .filter_map(|n| number(n))
                .filter(|&s| s < shards)
                .collect())
        })
    }

    /// The done records of `shards`, fetched a few at a time.
    pub fn done_records(&self, shards: &[u32]) -> anyhow::Result<Vec<DoneRecord>> {
        self.block_on(async {
            futures::stream::iter(shards.iter().map(|&s| async move {
                self.get_json::<DoneRecord>(&done_name(s))
                    .await?
                    .ok_or_else(|| anyhow!("{} vanished", self.url_of(&done_name(s))))
            }))
            .buffered(64)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
        })
    }

    /// Writes `_SUCCESS` if every one of `shards` shards is done (and it
    /// is not there yet). Returns whether the job is complete.
    pub fn mark_success_if_complete(&self, shards: u32) -> anyhow::Result<bool> {
        if self.done_shards(shards)?.len() as u64 != u64::from(shards) {
            return Ok(false);
        }
        self.block_on(async {
            let opts = PutOptions::from(PutMode::Create);
            match self
                .root
                .store()
                .put_opts(&self.root.path(SUCCESS_MARKER), Bytes::new().into(), opts)
                .await
            {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(true),
                Err(e) => Err(anyhow::Error::new(e)
                    .context(format!("writing {}", self.url_of(SUCCESS_MARKER)))),
            }
        })
    }

    /// Deletes every object under `dir` (best effort for garbage: errors
    /// are only logged).
    pub fn remove_dir(&self, dir: &str) {
        let prefix = self.root.path(dir);
        let store = Arc::clone(self.root.store());
        let result: Result<(), object_store::Error> = self.block_on(async move {
            let paths = store
                .list(Some(&prefix))
                .map(|m| m.map(|m| m.location))
                .boxed();
            let mut deleted = store.delete_stream(paths);
            while let Some(d) = deleted.next().await {
                match d {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(dir = self.url_of(dir), %e, "could not remove an old attempt's directory");
        }
        if let Some(local) = self.root.local_dir() {
            // Empty directories stay behind on a local disk.
            let _ = std::fs::remove_dir_all(local.join(dir));
        }
    }

    /// Copies the committed parts of chunks `[0, next_chunk)` (and their
    /// commit records) of the dataset at `from` to `to`, both inside this
    /// layout. Returns how many parts were copied.
    pub fn copy_prefix(&self, from: &str, to: &str, next_chunk: u64) -> anyhow::Result<u64> {
        if next_chunk == 0 {
            return Ok(0);
        }
        let from_loc = self.root.child(from);
        let reader = raygent_savers::DatasetReader::open_location(from_loc)
            .with_context(|| format!("reading the results of {}", self.url_of(from)))?;
        let parts: Vec<_> = reader
            .parts()
            .iter()
            .filter(|p| p.chunk_end <= next_chunk)
            .cloned()
            .collect();
        let reached = parts.last().map_or(0, |p| p.chunk_end);
        if reached != next_chunk {
            return Err(anyhow!(
                "{} holds committed parts up to chunk {reached}, but its checkpoint says {next_chunk}",
                self.url_of(from)
            ));
        }
        let store = Arc::clone(self.root.store());
        let copies: Vec<(Path, Path)> = parts
            .iter()
            .flat_map(|p| {
                let stem = p.part.split('.').next().unwrap_or(&p.part).to_owned();
                let record = format!("{MANIFEST_DIR}/{stem}.json");
                [
                    (
                        self.root.path(&format!("{from}/{}", p.part)),
                        self.root.path(&format!("{to}/{}", p.part)),
                    ),
                    (
                        self.root.path(&format!("{from}/{record}")),
                        self.root.path(&format!("{to}/{record}")),
                    ),
                ]
            })
            .collect();
        self.block_on(async {
            // Parts before records, so a record never names a missing part.
            let (parts, records): (Vec<_>, Vec<_>) =
                copies.iter().enumerate().partition(|(i, _)| i % 2 == 0);
            for batch in [parts, records] {
                futures::stream::iter(batch.into_iter().map(|(_, (a, b))| {
                    let store = Arc::clone(&store);
                    async move {
                        store
                            .copy(a, b)
                            .await
                            .with_context(|| format!("copying {a} to {b}"))
                    }
                }))
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<anyhow::Result<Vec<()>>>()?;
            }
            Ok::<_, anyhow::Error>(())
        })?;
        Ok(parts.len() as u64)
    }
}

/// What differs between two job records, for the refusal's message.
fn job_differences(old: &JobRecord, new: &JobRecord) -> Vec<String> {
    let mut d = Vec::new();
    if old.shards != new.shards {
        d.push(format!(
            "shard count was {}, now {}",
            old.shards, new.shards
        ));
    }
    let (a, b) = (
        serde_json::to_value(&old.identity).unwrap_or_default(),
        serde_json::to_value(&new.identity).unwrap_or_default(),
    );
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (k, x) in a {
            let y = b.get(k).unwrap_or(&serde_json::Value::Null);
            if x != y {
                let label = k.replace('_', " ");
                d.push(format!("{label} was {x}, now {y}"));
            }
        }
    }
    if d.is_empty() && old.identity != new.identity {
        d.push("the job's configuration differs".into());
    }
    d
}

fn input_difference(
    old: &[InputEntry],
    new: &[InputEntry],
    old_sum: &InputSummary,
    new_sum: &InputSummary,
) -> String {
    let first = old
        .iter()
        .zip(new)
        .find(|(a, b)| a != b)
        .map(|(a, b)| {
            if a.name == b.name {
                format!("{} had {} bytes, now {}", a.name, a.bytes, b.bytes)
            } else {
                format!("{} is now {}", a.name, b.name)
            }
        })
        .or_else(|| {
            (old.len() != new.len()).then(|| format!("{} files, now {}", old.len(), new.len()))
        })
        .unwrap_or_else(|| "its files differ".into());
    format!(
        "the input changed ({} files of {} bytes, now {} files of {} bytes: {first}), so the \
         shards would cut it differently",
        old_sum.files, old_sum.bytes, new_sum.files, new_sum.bytes
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::parse(dir.path().to_str().unwrap()).unwrap();
        (dir, Layout::new(loc).unwrap())
    }

    fn job(shards: u32) -> JobRecord {
        JobRecord {
            layout_version: LAYOUT_VERSION,
            shards,
            identity: JobIdentity {
                command: vec!["cat".into()],
                per_item: false,
                shell: false,
                input: "in.txt".into(),
                input_format: "lines".into(),
                chunk_size: 10,
                save_interval: 100,
                format: "cbor".into(),
            },
            input: InputSummary {
                files: 1,
                bytes: 4,
                digest: "d".into(),
            },
            created_unix: 0,
        }
    }

    #[test]
    fn the_first_job_record_wins_and_differences_are_named() {
        let (_d, l) = layout();
        let input = vec![InputEntry {
            name: "in.txt".into(),
            bytes: 4,
        }];
        assert_eq!(l.create_or_check_job(&job(8), &input).unwrap(), Ok(()));
        assert_eq!(l.create_or_check_job(&job(8), &input).unwrap(), Ok(()));
        let mut other = job(4);
        other.identity.chunk_size = 20;
        other.input.digest = "e".into();
        other.input.bytes = 5;
        let d = l
            .create_or_check_job(
                &other,
                &[InputEntry {
                    name: "in.txt".into(),
                    bytes: 5,
                }],
            )
            .unwrap()
            .unwrap_err();
        assert_eq!(d[0], "shard count was 8, now 4");
        assert_eq!(d[1], "chunk size was 10, now 20");
        assert!(d[2].contains("in.txt had 4 bytes, now 5"), "{d:?}");
    }

    #[test]
    fn claims_and_done_records_are_created_once() {
        let (_d, l) = layout();
        let claim = |attempt| ClaimRecord {
            shard: 3,
            attempt,
            runner: Runner::this(),
            started_unix: 0,
            base: None,
        };
        assert!(l.latest_claim(3).unwrap().is_none());
        assert_eq!(l.claim(&claim(1)).unwrap(), Created::Written);
        assert_eq!(l.claim(&claim(1)).unwrap(), Created::Exists);
        assert_eq!(l.claim(&claim(2)).unwrap(), Created::Written);
        assert_eq!(l.latest_claim(3).unwrap().unwrap().attempt, 2);
        let done = |shard| DoneRecord {
            shard,
            attempt: 2,
            chunks: 1,
            items: 1,
            results: 1,
            parts: 1,
            failed_chunks: vec![],
            share: String::new(),
            finished_unix: 0,
        };
        assert!(!l.mark_success_if_complete(2).unwrap());
        assert_eq!(l.create_done(&done(1)).unwrap(), Created::Written);
        assert_eq!(l.create_done(&done(1)).unwrap(), Created::Exists);
        assert!(!l.mark_success_if_complete(2).unwrap());
        assert!(!l.exists(SUCCESS_MARKER).unwrap());
        l.create_done(&done(0)).unwrap();
        assert!(l.mark_success_if_complete(2).unwrap());
        assert!(l.exists(SUCCESS_MARKER).unwrap());
        assert!(l.mark_success_if_complete(2).unwrap());
        assert_eq!(l.done_shards(2).unwrap().len(), 2);
    }
}
