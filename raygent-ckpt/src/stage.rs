//! Stage checkpoints: named, partitioned intermediate results of a
//! pipeline (agatha's `checkpoint`), on any object store.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{BoxError, Error, Result};
use crate::io::{self, Io, loc};
use crate::name::{validate_name, validate_prefix};

/// The marker of a finished stage checkpoint, written after every partition.
pub const DONE_FILE: &str = "DONE";

/// How many partitions are read at the same time when loading.
const READ_CONCURRENCY: usize = 8;

/// The object name of partition `index`: `part-` and 6 digits (more when
/// the index needs them), then `.cbor`.
pub fn part_file_name(index: usize) -> String {
    format!("part-{index:06}.cbor")
}

fn parse_part(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("part-")?.strip_suffix(".cbor")?;
    if digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// What the DONE marker holds.
#[derive(Debug, Serialize, Deserialize)]
struct Done {
    partitions: usize,
    created_at_ms: u64,
}

/// Named checkpoints of partitioned data under a root (agatha's
/// `checkpoint`): compute a pipeline stage once, and load it on later runs.
///
/// Layout:
///
/// ```text
/// <root>/[<prefix>/]<name>/part-000000.cbor   partition 0 (a CBOR array)
/// <root>/[<prefix>/]<name>/part-000001.cbor   partition 1, ...
/// <root>/[<prefix>/]<name>/DONE               written last: {"partitions": n, ...}
/// ```
///
/// A checkpoint is finished only when its `DONE` marker exists; every
/// partition is one atomic write, so a partition object that exists is
/// complete (which makes [`with_allow_partial`](Self::with_allow_partial)
/// safe).
///
/// Names are one path segment: not empty, not absolute, no `..`, `/`, `\`,
/// control characters or characters an object key would escape
/// ([`Error::InvalidName`]).
///
/// The API is blocking (see [`StepCheckpointer`](crate::StepCheckpointer)):
/// call it from plain threads. Cloning is cheap; clones share the runtime.
///
/// ```
/// use std::sync::Arc;
/// use object_store::{memory::InMemory, path::Path};
/// use raygent_ckpt::StageCheckpoints;
///
/// let stages = StageCheckpoints::new(Arc::new(InMemory::new()), Path::from("pipeline"))?;
/// let mut calls = 0;
/// let mut compute = |i: usize| -> Result<Vec<u32>, std::convert::Infallible> {
///     calls += 1;
///     Ok(vec![i as u32; 2])
/// };
/// let first = stages.checkpoint("sentences", 3, &mut compute)?;
/// let again = stages.checkpoint("sentences", 3, &mut compute)?; // loaded, not computed
/// assert_eq!(first, again);
/// assert_eq!(calls, 3);
/// assert_eq!(stages.list("sent*")?, vec!["sentences".to_string()]);
/// # Ok::<(), raygent_ckpt::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct StageCheckpoints {
    store: Arc<dyn ObjectStore>,
    root: Path,
    prefix: Option<String>,
    base: Path,
    verbose: bool,
    allow_partial: bool,
    halt_after: Option<String>,
    enabled: bool,
    io: Arc<Io>,
}

impl StageCheckpoints {
    /// Checkpoints under `root` in `store`: no prefix, quiet, enabled,
    /// unfinished checkpoints recomputed in full, no halt point.
    pub fn new(store: Arc<dyn ObjectStore>, root: Path) -> Result<Self> {
        Ok(StageCheckpoints {
            store,
            base: root.clone(),
            root,
            prefix: None,
            verbose: false,
            allow_partial: false,
            halt_after: None,
            enabled: true,
            io: Arc::new(Io::new()?),
        })
    }

    /// Puts every checkpoint under `<root>/<prefix>/`, so the same stage
    /// name can exist once per dataset. `prefix` may hold several segments
    /// (`"corpus-a/v2"`), each a valid name.
    pub fn with_prefix(mut self, prefix: &str) -> Result<Self> {
        let rel = validate_prefix(prefix)?;
        let mut base = self.root.clone();
        for part in rel.parts() {
            base = base.join(part);
        }
        self.base = base;
        self.prefix = Some(prefix.to_owned());
        Ok(self)
    }

    /// Logs each checkpoint's progress at `info` level (otherwise `debug`).
    pub fn with_verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// Keeps the partitions already written by an unfinished checkpoint and
    /// computes only the missing ones (otherwise an unfinished checkpoint
    /// is cleared and recomputed in full).
    pub fn with_allow_partial(mut self, allow_partial: bool) -> Self {
        self.allow_partial = allow_partial;
        self
    }

    /// Stops the pipeline right after checkpoint `name` is written (or found
    /// finished): [`write`](Self::write) and [`checkpoint`](Self::checkpoint)
    /// of that name return [`Error::Halted`], which command-line tools map
    /// to a distinct exit code. For partial pipeline runs.
    pub fn halt_after(mut self, name: &str) -> Result<Self> {
        validate_name(name)?;
        self.halt_after = Some(name.to_owned());
        Ok(self)
    }

    /// Removes the halt point.
    pub fn clear_halt_point(mut self) -> Self {
        self.halt_after = None;
        self
    }

    /// Pass-through mode: [`checkpoint`](Self::checkpoint) computes every
    /// partition and returns it without reading or writing anything, and
    /// [`write`](Self::write) writes nothing (no halt either). The explicit
    /// reads and management calls (`load`, `is_done`, `clear`, `list`)
    /// still work on the store.
    pub fn disable(mut self) -> Self {
        self.enabled = false;
        self
    }

    /// Leaves pass-through mode.
    pub fn enable(mut self) -> Self {
        self.enabled = true;
        self
    }

    /// Whether checkpoints are read and written (not [`disable`](Self::disable)d).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The prefix, if any.
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// The directory of checkpoint `name`.
    pub fn dir(&self, name: &str) -> Result<Path> {
        validate_name(name)?;
        Ok(self.base.clone().join(name))
    }

    /// Where checkpoint `name` lives (store and path), for messages.
    pub fn location(&self, name: &str) -> Result<String> {
        Ok(loc(&*self.store, &self.dir(name)?))
    }

    fn log(&self, name: &str, what: &str) {
        if self.verbose {
            tracing::info!(checkpoint = name, location = %self.base, "{what}");
        } else {
            tracing::debug!(checkpoint = name, location = %self.base, "{what}");
        }
    }

    fn check_halt(&self, name: &str) -> Result<()> {
        if self.halt_after.as_deref() == Some(name) {
            self.log(name, "halting after this checkpoint as requested");
            return Err(Error::Halted {
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    fn encode<T: Serialize>(&self, dir: &Path, index: usize, part: &[T]) -> Result<Bytes> {
        let mut buf = Vec::new();
        ciborium::into_writer(part, &mut buf).map_err(|e| Error::Codec {
            action: "encode",
            location: loc(&*self.store, &dir.clone().join(part_file_name(index))),
            source: e.into(),
        })?;
        Ok(buf.into())
    }

    /// Writes `partitions` as checkpoint `name`, replacing any previous
    /// content, then the DONE marker; returns the number of partitions.
    /// Returns [`Error::Halted`] afterwards when `name` is the halt point.
    pub fn write<T, I>(&self, name: &str, partitions: I) -> Result<usize>
    where
        T: Serialize,
        I: IntoIterator<Item = Vec<T>>,
    {
        let dir = self.dir(name)?;
        if !self.enabled {
            return Ok(partitions.into_iter().count());
        }
        self.log(name, "writing checkpoint");
        let store = &*self.store;
        self.io.block_on(clear_dir(store, &dir))??;
        let mut n = 0;
        for (i, part) in partitions.into_iter().enumerate() {
            let bytes = self.encode(&dir, i, &part)?;
            self.io.block_on(io::put_or_err(
                store,
                &dir.clone().join(part_file_name(i)),
                bytes,
            ))??;
            n = i + 1;
        }
        self.io.block_on(write_done(store, &dir, n))??;
        self.log(name, "checkpoint done");
        self.check_halt(name)?;
        Ok(n)
    }

    /// Whether checkpoint `name` is finished (its DONE marker exists).
    pub fn is_done(&self, name: &str) -> Result<bool> {
        let dir = self.dir(name)?;
        self.io
            .block_on(io::exists(&*self.store, &dir.clone().join(DONE_FILE)))?
    }

    /// The number of partitions of finished checkpoint `name`.
    pub fn partitions(&self, name: &str) -> Result<usize> {
        let dir = self.dir(name)?;
        match self.io.block_on(read_done(&*self.store, &dir))?? {
            Some(done) => Ok(done.partitions),
            None => Err(self.not_done(name, &dir)),
        }
    }

    fn not_done(&self, name: &str, dir: &Path) -> Error {
        Error::NotDone {
            name: name.to_owned(),
            location: loc(&*self.store, dir),
        }
    }

    /// Partition `index` of finished checkpoint `name`.
    pub fn load_partition<T: DeserializeOwned>(&self, name: &str, index: usize) -> Result<Vec<T>> {
        let n = self.partitions(name)?;
        let dir = self.dir(name)?;
        if index >= n {
            return Err(Error::InvalidArgument(format!(
                "partition {index} of stage checkpoint {name:?} at {} does not exist ({n} partition(s))",
                loc(&*self.store, &dir)
            )));
        }
        let mut parts = self
            .io
            .block_on(read_parts(&*self.store, &dir, vec![index]))??;
        parts
            .pop()
            .ok_or_else(|| Error::InvalidArgument(format!("partition {index} was not read")))
    }

    /// Every partition of finished checkpoint `name`, in order; fails with
    /// [`Error::NotDone`] when it is not finished.
    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<Vec<T>>> {
        let n = self.partitions(name)?;
        let dir = self.dir(name)?;
        self.log(name, "loading checkpoint");
        self.io
            .block_on(read_parts(&*self.store, &dir, (0..n).collect()))?
    }

    /// Computes and stores checkpoint `name` of `n_partitions` partitions,
    /// or loads it when it is finished, and returns its partitions in
    /// order.
    ///
    /// `compute(i)` makes partition `i`; each partition is written as soon
    /// as it is computed, the DONE marker after the last. When the
    /// checkpoint is unfinished (a previous run stopped midway), it is
    /// recomputed in full, or, with
    /// [`with_allow_partial`](Self::with_allow_partial), only its missing
    /// partitions are computed. A finished checkpoint with a different
    /// number of partitions is an error ([`Error::PartitionMismatch`]):
    /// [`clear`](Self::clear) it to recompute. When `name` is the
    /// [`halt_after`](Self::halt_after) point, returns [`Error::Halted`]
    /// once the checkpoint is finished.
    pub fn checkpoint<T, E, F>(
        &self,
        name: &str,
        n_partitions: usize,
        mut compute: F,
    ) -> Result<Vec<Vec<T>>>
    where
        T: Serialize + DeserializeOwned,
        E: Into<BoxError>,
        F: FnMut(usize) -> Result<Vec<T>, E>,
    {
        let dir = self.dir(name)?;
        let mut run = |i: usize| {
            compute(i).map_err(|e| Error::Compute {
                name: name.to_owned(),
                partition: i,
                source: e.into(),
            })
        };
        if !self.enabled {
            return (0..n_partitions).map(&mut run).collect();
        }
        let store = &*self.store;
        let data = match self.io.block_on(read_done(store, &dir))?? {
            Some(done) => {
                if done.partitions != n_partitions {
                    return Err(Error::PartitionMismatch {
                        name: name.to_owned(),
                        location: loc(store, &dir),
                        stored: done.partitions,
                        requested: n_partitions,
                    });
                }
                self.log(name, "loading finished checkpoint");
                self.io
                    .block_on(read_parts(store, &dir, (0..n_partitions).collect()))??
            }
            None => {
                let existing = if self.allow_partial {
                    self.io
                        .block_on(existing_parts(store, &dir, n_partitions))??
                } else {
                    self.io.block_on(clear_dir(store, &dir))??;
                    BTreeSet::new()
                };
                if existing.is_empty() {
                    self.log(name, "computing checkpoint");
                } else {
                    self.log(
                        name,
                        &format!(
                            "resuming unfinished checkpoint: {} of {n_partitions} partition(s) kept",
                            existing.len()
                        ),
                    );
                }
                let mut out: Vec<Option<Vec<T>>> = (0..n_partitions).map(|_| None).collect();
                for (i, slot) in out.iter_mut().enumerate() {
                    if existing.contains(&i) {
                        continue;
                    }
                    let part = run(i)?;
                    let bytes = self.encode(&dir, i, &part)?;
                    self.io.block_on(io::put_or_err(
                        store,
                        &dir.clone().join(part_file_name(i)),
                        bytes,
                    ))??;
                    *slot = Some(part);
                }
                let kept: Vec<usize> = existing.into_iter().collect();
                let loaded = self.io.block_on(read_parts(store, &dir, kept.clone()))??;
                for (i, part) in kept.into_iter().zip(loaded) {
                    out[i] = Some(part);
                }
                self.io.block_on(write_done(store, &dir, n_partitions))??;
                self.log(name, "checkpoint done");
                out.into_iter().flatten().collect()
            }
        };
        self.check_halt(name)?;
        Ok(data)
    }

    /// The partitions below `n` that unfinished checkpoint `name` already
    /// holds, in order (for a caller that computes the missing ones itself,
    /// in parallel, with [`write_partition`](Self::write_partition) and
    /// [`finish`](Self::finish)).
    pub fn written_partitions(&self, name: &str, n: usize) -> Result<Vec<usize>> {
        let dir = self.dir(name)?;
        Ok(self
            .io
            .block_on(existing_parts(&*self.store, &dir, n))??
            .into_iter()
            .collect())
    }

    /// Writes partition `index` of checkpoint `name` (one atomic write, so
    /// it exists complete or not at all), in any order. The checkpoint is
    /// finished only by [`finish`](Self::finish).
    pub fn write_partition<T: Serialize>(
        &self,
        name: &str,
        index: usize,
        part: &[T],
    ) -> Result<()> {
        let dir = self.dir(name)?;
        let bytes = self.encode(&dir, index, part)?;
        self.io.block_on(io::put_or_err(
            &*self.store,
            &dir.clone().join(part_file_name(index)),
            bytes,
        ))?
    }

    /// Marks checkpoint `name` finished with `n` partitions (writes its DONE
    /// marker) once every partition below `n` is written; fails with
    /// [`Error::Corrupt`] naming the first one missing.
    pub fn finish(&self, name: &str, n: usize) -> Result<()> {
        let dir = self.dir(name)?;
        let store = &*self.store;
        let have = self.io.block_on(existing_parts(store, &dir, n))??;
        if let Some(missing) = (0..n).find(|i| !have.contains(i)) {
            return Err(Error::Corrupt {
                location: loc(store, &dir.clone().join(part_file_name(missing))),
                message: format!("partition {missing} of {n} was never written"),
            });
        }
        self.io.block_on(write_done(store, &dir, n))??;
        self.log(name, "checkpoint done");
        Ok(())
    }

    /// Deletes checkpoint `name` (its DONE marker first).
    pub fn clear(&self, name: &str) -> Result<()> {
        let dir = self.dir(name)?;
        self.log(name, "clearing checkpoint");
        self.io.block_on(clear_dir(&*self.store, &dir))?
    }

    /// Deletes every checkpoint under the root (and prefix): every object
    /// there, DONE markers first.
    pub fn clear_all(&self) -> Result<()> {
        self.io.block_on(clear_dir(&*self.store, &self.base))?
    }

    /// The names of the checkpoints (finished or not) directly under the
    /// root (and prefix) that match `glob` (`*`, `?`, `[ab]`, `{a,b}`),
    /// sorted.
    pub fn list(&self, glob: &str) -> Result<Vec<String>> {
        let matcher = globset::Glob::new(glob)
            .map_err(|e| Error::InvalidGlob {
                pattern: glob.to_owned(),
                message: e.kind().to_string(),
            })?
            .compile_matcher();
        // A full listing rather than a delimited one: a local directory
        // left empty by `clear` must not count as a checkpoint.
        let objects = self.io.block_on(io::list(&*self.store, &self.base))??;
        let names: BTreeSet<String> = objects
            .iter()
            .filter(|p| p.parts().count() > self.base.parts().count() + 1)
            .filter_map(|p| io::first_segment_below(p, &self.base))
            .filter(|n| matcher.is_match(n))
            .collect();
        Ok(names.into_iter().collect())
    }
}

async fn read_done(store: &dyn ObjectStore, dir: &Path) -> Result<Option<Done>> {
    let path = dir.clone().join(DONE_FILE);
    match io::get(store, &path).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                location: loc(store, &path),
                message: format!("unreadable DONE marker: {e}"),
            }),
    }
}

async fn write_done(store: &dyn ObjectStore, dir: &Path, partitions: usize) -> Result<()> {
    let path = dir.clone().join(DONE_FILE);
    let done = serde_json::to_vec(&Done {
        partitions,
        created_at_ms: io::now_ms(),
    })
    .map_err(|e| Error::Codec {
        action: "encode",
        location: loc(store, &path),
        source: e.into(),
    })?;
    io::put_or_err(store, &path, done.into()).await
}

/// Deletes everything under `dir`, DONE markers first.
async fn clear_dir(store: &dyn ObjectStore, dir: &Path) -> Result<()> {
    let (done, rest): (Vec<Path>, Vec<Path>) = io::list(store, dir)
        .await?
        .into_iter()
        .partition(|p| p.filename() == Some(DONE_FILE));
    io::delete(store, done).await?;
    io::delete(store, rest).await
}

/// The partitions below `n` already written under `dir`.
async fn existing_parts(store: &dyn ObjectStore, dir: &Path, n: usize) -> Result<BTreeSet<usize>> {
    Ok(io::list(store, dir)
        .await?
        .iter()
        .filter(|p| p.parts().count() == dir.parts().count() + 1)
        .filter_map(|p| p.filename().and_then(parse_part))
        .filter(|i| *i < n)
        .collect())
}

/// Reads and decodes the given partitions, in the given order.
async fn read_parts<T: DeserializeOwned>(
    store: &dyn ObjectStore,
    dir: &Path,
    indices: Vec<usize>,
) -> Result<Vec<Vec<T>>> {
    futures::stream::iter(indices)
        .map(|i| async move {
            let path = dir.clone().join(part_file_name(i));
            let bytes = io::get(store, &path).await?.ok_or_else(|| Error::Corrupt {
                location: loc(store, &path),
                message: "the partition is missing".into(),
            })?;
            ciborium::from_reader::<Vec<T>, _>(&bytes[..]).map_err(|e| Error::Codec {
                action: "decode",
                location: loc(store, &path),
                source: e.into(),
            })
        })
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names() {
        assert_eq!(part_file_name(7), "part-000007.cbor");
        assert_eq!(parse_part(&part_file_name(1_234_567)), Some(1_234_567));
        assert_eq!(parse_part("part-7.cbor"), None);
        assert_eq!(parse_part("part-000007.cbor#1"), None);
    }
}
