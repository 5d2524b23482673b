//! What a job reports when it ends.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A chunk that failed on every attempt (kept in the report under a skip policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedChunk {
    /// The chunk's index.
    pub index: u64,
    /// The input items it held.
    pub items: Range<u64>,
    /// How many attempts were made.
    pub attempts: u32,
    /// The error of the last attempt.
    pub error: String,
}

/// A summary of a finished job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobReport {
    /// Input items seen by this run (including skipped, already committed ones).
    pub items: u64,
    /// Chunks seen by this run (including skipped, already committed ones).
    pub chunks: u64,
    /// Chunks that were already committed by an earlier run and were skipped.
    pub resumed_chunks: u64,
    /// Results handed to the result handler and saver by this run.
    pub results: u64,
    /// Retries (attempts after the first) across all chunks.
    pub retries: u64,
    /// Failures by class ("error", "panic", "timeout", "worker exited", ...).
    pub failures: BTreeMap<String, u64>,
    /// Chunks that failed on every attempt (skip policy).
    pub failed_chunks: Vec<FailedChunk>,
    /// Batches handed to the saver.
    pub saves: u64,
    /// Wall-clock time of the run.
    pub wall_time: Duration,
}
