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
    #[error("bad input at item {item}")]
    Input {
        /// Index of the first item that could not be read.
        item: u64,
        /// What was wrong, including the file and line where known.
        #[source]
        source: BoxError,
    },

    /// A saver failed; nothing after the last committed part counts as saved.
    #[error(transparent)]
    Save(#[from] SaveError),

    /// Encoding or decoding CBOR failed.
    #[error("{context} failed")]
    Codec {
        /// What was being encoded or decoded, e.g. "decoding CBOR value 3".
        context: String,
        /// The codec's error.
        #[source]
        source: BoxError,
    },

    /// A checkpoint could not be read or written. The source is the
    /// checkpoint store's error (a `raygent_ckpt::Error` for the built-in
    /// store), which names the location.
    #[error("checkpoint failed")]
    Checkpoint(#[source] BoxError),

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

    /// A thread of the runtime could not be started.
    #[error("cannot start the {thread} thread")]
    Spawn {
        /// Which thread (e.g. "actor system", "checkpoint").
        thread: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The runtime itself broke (a thread died, a channel closed early).
    #[error("raygent runtime error: {0}")]
    Runtime(String),
}

impl Error {
    /// A codec error: `context` says what was being encoded or decoded.
    pub fn codec(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Codec {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// The error of a [`Saver`](crate::Saver).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// Writing to `location` (a URL, a file, a part name) failed.
    #[error("saving to {location} failed")]
    Write {
        /// Where the write went: a URL or path, and the part name.
        location: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// A result could not be encoded in the saver's format.
    #[error("encoding a result for {location} failed")]
    Encode {
        /// The dataset or part being written.
        location: String,
        /// The encoder's error.
        #[source]
        source: BoxError,
    },
    /// The saver cannot be used as configured: a bad URL, an unknown
    /// format, a destination that is not writable or already holds another
    /// job's results. The source says which.
    #[error("the saver cannot be used as configured")]
    Config(#[source] BoxError),
    /// Any other failure.
    #[error(transparent)]
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

/// Shows an error with all its causes, joined by `: `, as command-line
/// tools print them.
///
/// raygent's errors never repeat their source in their own message (the
/// source is reached through [`std::error::Error::source`]), so printing an
/// error alone shows only its top level; this shows the whole chain.
///
/// ```
/// use raygent_core::{ErrorChain, SaveError};
/// let e = SaveError::write("out/part-1", std::io::Error::other("disk full"));
/// assert_eq!(e.to_string(), "saving to out/part-1 failed");
/// assert_eq!(ErrorChain(&e).to_string(), "saving to out/part-1 failed: disk full");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}
