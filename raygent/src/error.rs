//! One error for everything a job built through this crate can raise.

/// An error of any of raygent's crates, so that `?` works on all of them in
/// a function returning [`raygent::Result`](crate::Result).
///
/// Each variant is the crate's own error, unchanged: match on it to act on a
/// specific failure, or print it with [`ErrorChain`](crate::ErrorChain) to
/// see every cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A job failed or was refused (`raygent-core`, `raygent-actors`).
    #[error(transparent)]
    Job(#[from] raygent_core::Error),
    /// Opening, writing or reading an output failed (`raygent-savers`).
    #[error(transparent)]
    Output(#[from] raygent_savers::Error),
    /// A checkpoint could not be written or read (`raygent-ckpt`).
    #[error(transparent)]
    Checkpoint(#[from] raygent_ckpt::Error),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
