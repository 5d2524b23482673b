//! What a checkpoint records: the job's identity and its progress.

use raygent_core::FailedChunk;
use serde::{Deserialize, Serialize};

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

/// Where a run starts: what the checkpoint it resumes from says is
/// committed (all zero for a new job).
#[derive(Debug, Clone, Default)]
pub(crate) struct StartPoint {
    pub(crate) next_chunk: u64,
    pub(crate) next_item: u64,
    pub(crate) results: u64,
    pub(crate) parts: u64,
    pub(crate) failed: Vec<FailedChunk>,
}

impl StartPoint {
    pub(crate) fn of(state: &JobState) -> Self {
        StartPoint {
            next_chunk: state.next_chunk,
            next_item: state.next_item,
            results: state.results,
            parts: state.parts,
            failed: state.failed.clone(),
        }
    }
}

/// What differs between two job configurations, for the refusal's message.
///
/// Field by field through serde, so that a field added to [`JobConfig`] is
/// compared without being listed here; the labels only make the known ones
/// read well. Whether two jobs differ is decided by comparing whole values
/// (`!=`), never by this list, which falls back to a generic line if it
/// finds nothing.
pub(crate) fn differences(old: &JobConfig, new: &JobConfig) -> Vec<String> {
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
