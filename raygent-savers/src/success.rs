//! `_SUCCESS`: the marker a complete job writes last, that downstream tools
//! (Airflow sensors, Spark- and Hadoop-style readers, scripts) wait on.
//!
//! - It is written once the whole job is done: every part committed, the
//!   dataset's completion record (`_manifest/_complete.json`) written and,
//!   in a checkpointed job, the checkpoint marked complete. `raygent run`
//!   writes it then, for every format; a library job calls
//!   [`write_success`] after `submit_tasks` returned `Ok`.
//! - A job that starts, resumes or starts over (`--fresh`) deletes it before
//!   it changes anything ([`DatasetSaver`](crate::DatasetSaver) does so in
//!   `resume` and before a fresh job's first write), so it is absent while
//!   the job is incomplete, and never left behind by an interrupted run.
//! - Its body is one JSON object ([`SuccessRecord`]): counts of results,
//!   parts, chunks and skipped chunks, the format and the time.
//!
//! ```
//! use raygent_core::Batch;
//! use raygent_savers::{DatasetSaver, Location, SaverOptions, read_success, write_success};
//!
//! let loc = Location::parse("memory://success-doc/job").unwrap();
//! let mut saver = DatasetSaver::new(loc.clone(), SaverOptions::default()).unwrap();
//! saver.save_batch(&Batch { chunks: 0..1, items: 0..2, results: &[1u8, 2] }).unwrap();
//! // Not finished: refused, and nothing is written.
//! assert!(write_success(&loc, 0).is_err());
//! saver.finish_dataset().unwrap();
//! let record = write_success(&loc, 0).unwrap();
//! assert_eq!(record.results, 2);
//! assert_eq!(read_success(&loc).unwrap(), Some(record));
//! ```
//!
//! **Shards.** A job split into shards that share one output is complete
//! when its last shard is. The marker is meant to be written there without
//! a race as follows: each shard, when it completes, first records its own
//! completion (its checkpoint marked complete, or a small per-shard marker
//! holding the shard in its name), and only then reads the N shards'
//! records; if all N are complete it writes `_SUCCESS`. Whichever of the
//! last two shards finishes second sees both complete, so at least one
//! writes it; two writing it at once write the same thing. Starting any
//! shard over must delete `_SUCCESS` first.

use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::manifest::{self, SUCCESS_MARKER};
use crate::saver::io_runtime;
use crate::{DatasetReader, Error, Location};

/// The body of `_SUCCESS`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SuccessRecord {
    /// Results saved.
    pub results: u64,
    /// Parts committed.
    pub parts: u64,
    /// Chunks covered (saved or skipped).
    pub chunks: u64,
    /// Chunks that failed on every attempt and were skipped (their results
    /// are absent).
    pub failed_chunks: u64,
    /// The parts' format (`cbor`, `jsonl`, `csv`, `parquet`); empty for a
    /// job with no parts.
    pub format: String,
    /// When the marker was written, in seconds since the Unix epoch.
    pub written_at: u64,
}

/// Writes `_SUCCESS` at `location`, last: refused unless the dataset there
/// is finished (its completion record is written and matches its commit
/// records). `failed_chunks` is how many chunks the job skipped. Returns
/// what it wrote.
pub fn write_success(location: &Location, failed_chunks: u64) -> Result<SuccessRecord, Error> {
    let reader = DatasetReader::open_location(location.clone())?;
    if !reader.is_complete() {
        return Err(Error::Usage {
            url: location.url().to_owned(),
            reason: "the dataset is not finished (no completion record matching its commit \
                     records), so it gets no _SUCCESS marker"
                .into(),
        });
    }
    let record = SuccessRecord {
        results: reader.result_count(),
        parts: reader.parts().len() as u64,
        chunks: reader.chunks().end,
        failed_chunks,
        format: reader.format().map(|f| f.to_string()).unwrap_or_default(),
        written_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let body = serde_json::to_vec_pretty(&record).map_err(|e| Error::Encode {
        url: location.url().to_owned(),
        part: SUCCESS_MARKER.into(),
        format: "json",
        source: Box::new(e),
    })?;
    io_runtime(1)?.block_on(async {
        location
            .store()
            .put(&location.path(SUCCESS_MARKER), body.into())
            .await
            .map_err(|e| Error::store(location.url(), SUCCESS_MARKER, "writing", e))
    })?;
    Ok(record)
}

/// The `_SUCCESS` marker at `location`, if there is one. A marker another
/// tool wrote (empty, as Spark's are) reads as a default record.
pub fn read_success(location: &Location) -> Result<Option<SuccessRecord>, Error> {
    let got = io_runtime(1)?.block_on(async {
        match location.store().get(&location.path(SUCCESS_MARKER)).await {
            Ok(g) => g.bytes().await.map(Some),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    });
    match got.map_err(|e| Error::store(location.url(), SUCCESS_MARKER, "reading", e))? {
        None => Ok(None),
        Some(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Some(SuccessRecord::default())),
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::manifest(
                location.url(),
                format!("{SUCCESS_MARKER} is not a raygent marker: {e}"),
            )
        }),
    }
}

/// Deletes the `_SUCCESS` marker at `location` (nothing there is not an
/// error).
pub fn remove_success(location: &Location) -> Result<(), Error> {
    io_runtime(1)?.block_on(manifest::delete(location, SUCCESS_MARKER))
}
