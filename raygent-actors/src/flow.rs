//! The life of one chunk, and the messages named for each step of it.
//!
//! ```text
//! feeder ──Run──► run queue ──► TaskActor ──Finished──► Reorder ──Released──► Sink ──Commit──► CheckpointActor
//!                   ▲                │ failed, attempts left
//!                   └── after the ───┘
//!                       backoff: RetryLater (Supervisor)
//! ```
//!
//! Data flows one way: each stage owns what it holds and hands it on.
//! Nothing a chunk needs later (its items' hash, for the checkpoint's
//! input fingerprint) is kept aside in a shared table: it travels with the
//! chunk.

use raygent_core::{Chunk, ChunkHash, Error, FailedChunk};

/// A chunk to run, and which attempt this is (from 1).
///
/// The feeder queues it for the task actors; the supervisor queues it again
/// after a failed attempt's backoff.
#[derive(Debug)]
pub(crate) struct Run<I> {
    pub(crate) chunk: Chunk<I>,
    pub(crate) attempt: u32,
}

/// How one chunk ended, reported by a task actor (or by the supervisor for a
/// chunk waiting for its retry), in any order. Every chunk queued ends in
/// exactly one of these.
#[derive(Debug)]
pub(crate) enum Finished<O> {
    /// It goes on in input order: its results, or its skip record.
    Ready(Released<O>),
    /// It was not run (or not retried): the job is stopping.
    Dropped { index: u64 },
    /// It failed on every attempt under `FailurePolicy::Abort`: the job
    /// stops with `error`.
    Aborted { index: u64, error: Error },
    /// Its items could not be hashed for the input fingerprint: the job
    /// stops with `error` (an [`Error::Input`]) once every chunk before it
    /// is handed on, as it would at a bad input record.
    BadInput { index: u64, error: Error },
}

/// A chunk leaving the reorder stage, in input order, for the sink.
#[derive(Debug)]
pub(crate) struct Released<O> {
    pub(crate) index: u64,
    pub(crate) outcome: Outcome<O>,
    /// The hash of its items, when the job checkpoints: the sink chains
    /// it into the input's fingerprint.
    pub(crate) fingerprint: Option<ChunkHash>,
}

/// What a released chunk holds.
#[derive(Debug)]
pub(crate) enum Outcome<O> {
    /// Its results; `start` is the input index of the first.
    Done { start: u64, results: Vec<O> },
    /// It failed on every attempt and is skipped (`FailurePolicy::Skip`).
    Skipped(FailedChunk),
}

impl<O> Released<O> {
    /// One past the chunk's last input item.
    pub(crate) fn item_end(&self) -> u64 {
        match &self.outcome {
            Outcome::Done { start, results } => start + results.len() as u64,
            Outcome::Skipped(f) => f.items.end,
        }
    }
}
