//! The error type of `raygent-ckpt`.

/// A boxed error from user code (a stage's compute function).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while saving or loading a checkpoint.
///
/// Every variant that touches the store names the location (the object
/// store and the path) it was working on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A committed checkpoint already exists at this step and the save did
    /// not ask to overwrite it.
    #[error(
        "checkpoint step {step} already exists at {location}; \
         pass SaveOptions::with_overwrite(true) to replace it"
    )]
    StepExists {
        /// The step that was being saved.
        step: u64,
        /// Where the existing step lives.
        location: String,
    },

    /// No committed checkpoint exists at this step.
    #[error("no committed checkpoint step {step} at {location}")]
    StepNotFound {
        /// The step that was asked for.
        step: u64,
        /// Where it was looked for.
        location: String,
    },

    /// A stage checkpoint was loaded before it was finished (it has no DONE
    /// marker), or it does not exist at all.
    #[error("stage checkpoint {name:?} at {location} is not finished (no DONE marker)")]
    NotDone {
        /// The checkpoint's name.
        name: String,
        /// Where it was looked for.
        location: String,
    },

    /// A checkpoint name (or prefix) is not usable as one path segment.
    #[error("invalid checkpoint name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The stage checkpoint named in `halt_after` is written: the pipeline
    /// stops here as requested. Not a failure: command-line tools map this
    /// to a distinct exit code.
    #[error("halted after stage checkpoint {name:?} as requested (halt_after)")]
    Halted {
        /// The checkpoint after which the pipeline stopped.
        name: String,
    },

    /// The object store refused or failed a request.
    #[error("object store request for {location} failed")]
    Store {
        /// The store and path the request was for.
        location: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },

    /// A checkpoint object could not be encoded or decoded.
    #[error("cannot {action} {location}")]
    Codec {
        /// `encode` or `decode`.
        action: &'static str,
        /// The object (or step) concerned.
        location: String,
        /// The codec's error.
        #[source]
        source: BoxError,
    },

    /// A checkpoint's objects are inconsistent (a committed step whose state
    /// is missing or has the wrong size, an unreadable marker).
    #[error(
        "checkpoint at {location} is damaged: {message}; delete that step to fall back to \
         the one before it, or start over"
    )]
    Corrupt {
        /// The step directory or object concerned.
        location: String,
        /// What is wrong.
        message: String,
    },

    /// A [`Checkpointable`](crate::Checkpointable) rejected the state it was
    /// given (see [`Error::invalid_state`]).
    #[error("invalid state: {0}")]
    InvalidState(String),

    /// Restoring a step into a [`Checkpointable`](crate::Checkpointable)
    /// failed.
    #[error("restoring checkpoint step {step} from {location} failed")]
    Restore {
        /// The step restored.
        step: u64,
        /// Where the step lives.
        location: String,
        /// Why `set_state` refused it.
        #[source]
        source: Box<Error>,
    },

    /// A stage's compute function failed on one partition.
    #[error("computing partition {partition} of stage checkpoint {name:?} failed")]
    Compute {
        /// The checkpoint's name.
        name: String,
        /// The partition's index.
        partition: usize,
        /// The compute function's error.
        #[source]
        source: BoxError,
    },

    /// A finished stage checkpoint holds a different number of partitions
    /// than requested.
    #[error(
        "stage checkpoint {name:?} at {location} holds {stored} partition(s) but {requested} \
         were requested; clear it to recompute"
    )]
    PartitionMismatch {
        /// The checkpoint's name.
        name: String,
        /// Where it lives.
        location: String,
        /// Partitions in the finished checkpoint.
        stored: usize,
        /// Partitions requested by the caller.
        requested: usize,
    },

    /// A glob pattern given to `list` does not parse.
    #[error("invalid glob pattern {pattern:?}: {message}")]
    InvalidGlob {
        /// The pattern.
        pattern: String,
        /// The parser's message.
        message: String,
    },

    /// An argument is out of range (an interval of 0, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// An asynchronous save started by an earlier call failed; reported by
    /// the first call after the failure (and then cleared).
    #[error("an asynchronous checkpoint save failed")]
    Background(#[source] Box<Error>),

    /// The blocking API was called from inside an async runtime.
    #[error(
        "raygent-ckpt's blocking API was called from inside an async runtime; \
         call it from a plain thread (for example through tokio::task::spawn_blocking)"
    )]
    InsideAsyncRuntime,

    /// The internal I/O runtime could not be started.
    #[error("cannot start the checkpoint I/O runtime")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    /// The error a [`Checkpointable::set_state`](crate::Checkpointable::set_state)
    /// returns for a state it cannot take.
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Error::InvalidState(message.into())
    }

    pub(crate) fn store(location: impl std::fmt::Display, source: object_store::Error) -> Self {
        Error::Store {
            location: location.to_string(),
            source,
        }
    }

    /// Whether this is [`Error::Halted`]: a requested stop, not a failure.
    pub fn is_halted(&self) -> bool {
        matches!(self, Error::Halted { .. })
    }
}

impl From<Error> for raygent_core::Error {
    fn from(e: Error) -> Self {
        raygent_core::Error::Checkpoint(Box::new(e))
    }
}

/// The result type of `raygent-ckpt`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
