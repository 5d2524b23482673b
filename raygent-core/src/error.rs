//! The error types of `raygent-core`.

use std::ops::Range;

/// The error a task returns for one item or one chunk.
///
/// Any error type converts into it with `?` or `.into()`, and so does a plain
/// message: `return Err("negative input".into())`.
pub type TaskError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed error from a saver's backend (I/O, object store, encoder).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can stop a raygent job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range or two settings contradict each other.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// A chunk failed on every attempt and the failure policy is `Abort`.
    #[error(
        "chunk {index} (items {start}..{end}) failed after {attempts} attempt(s): {last_error}",
        start = items.start,
        end = items.end
    )]
    ChunkFailed {
        /// The chunk's index in the input.
        index: u64,
        /// The input items the chunk holds, as a half-open range of indices.
        items: Range<u64>,
        /// How many times the chunk was tried.
        attempts: u32,
        /// The error of the last attempt.
        last_error: String,
    },

    /// The input could not be read (a malformed record, an I/O error).
    ///
    /// Every chunk before the bad record was completed and saved.
    #[error("bad input at item {item}: {message}")]
    Input {
        /// Index of the first item that could not be read.
        item: u64,
        /// What was wrong, including the file and line where known.
        message: String,
    },

    /// A saver failed; nothing after the last committed part counts as saved.
    #[error(transparent)]
    Save(#[from] SaveError),

    /// Encoding or decoding CBOR failed.
    #[error("CBOR codec error: {0}")]
    Codec(String),

    /// A checkpoint could not be read, written or does not match this job.
    #[error("checkpoint error: {0}")]
    Checkpoint(String),

    /// A checkpoint exists, but for a different job: resuming would mix the
    /// outputs of two jobs, so the run is refused.
    #[error(
        "the checkpoint at {location} belongs to a different job: {}; \
         start fresh to discard the old checkpoint and output",
        differences.join("; ")
    )]
    JobMismatch {
        /// Where the checkpoint lives.
        location: String,
        /// What differs, e.g. "chunk size was 10, now 20".
        differences: Vec<String>,
    },

    /// The job was interrupted (SIGINT, SIGTERM or [`StopHandle`](crate::StopHandle));
    /// completed chunks were committed and a rerun resumes.
    #[error("interrupted after committing {committed_chunks} chunk(s); rerun to resume")]
    Interrupted {
        /// Chunks committed (saved and checkpointed) when the job stopped.
        committed_chunks: u64,
    },

    /// The runtime itself broke (a thread died, a channel closed early).
    #[error("raygent runtime error: {0}")]
    Runtime(String),
}

/// The error of a [`Saver`](crate::Saver).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// Writing to `location` (a URL, a file, a part name) failed.
    #[error("saving to {location} failed: {source}")]
    Write {
        /// Where the write went: a URL or path, and the part name.
        location: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// A result could not be encoded in the saver's format.
    #[error("encoding a result for {location} failed: {source}")]
    Encode {
        /// The dataset or part being written.
        location: String,
        /// The encoder's error.
        #[source]
        source: BoxError,
    },
    /// The saver is configured wrongly (bad URL, unknown format, ...).
    #[error("invalid saver configuration: {0}")]
    Config(String),
    /// Any other failure.
    #[error("{0}")]
    Other(BoxError),
}

impl SaveError {
    /// A write error at `location`.
    pub fn write(location: impl Into<String>, source: impl Into<BoxError>) -> Self {
        SaveError::Write {
            location: location.into(),
            source: source.into(),
        }
    }
}

/// The result type of raygent's core operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
