//! The error type of `raygent-savers`.

use std::path::PathBuf;

use raygent_core::SaveError;

/// Everything that can go wrong while opening a location, saving or reading
/// a dataset. Every variant names the URL, and the part where one is involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL could not be parsed.
    #[error("invalid location {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The URL's scheme is not one this crate can write to.
    #[error(
        "unsupported scheme {scheme:?} in {url:?}: use a local path, file:///path, \
         s3://bucket/prefix or memory://name"
    )]
    UnknownScheme {
        /// The URL as given.
        url: String,
        /// The scheme found in it.
        scheme: String,
    },

    /// The URL needs a part of this crate that was not compiled in.
    #[error("{url} needs raygent-savers' `{feature}` feature, which this build does not have")]
    FeatureDisabled {
        /// The URL as given.
        url: String,
        /// The Cargo feature that would support it.
        feature: &'static str,
    },

    /// A local output directory could not be created or used.
    #[error(
        "cannot use local directory {} (check that the path is a directory you may write to, not a file, or choose another)",
        path.display()
    )]
    LocalDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The object store client could not be configured.
    #[error("cannot configure the object store for {url}")]
    Config {
        /// The location's URL.
        url: String,
        /// The builder's error.
        #[source]
        source: Box<object_store::Error>,
    },

    /// A test write at the location failed: the bucket is missing, the
    /// credentials are wrong, the endpoint is unreachable or the directory is
    /// read-only.
    #[error("{url} is not writable ({hint})")]
    NotWritable {
        /// The location's URL.
        url: String,
        /// What to check.
        hint: String,
        /// The store's error.
        #[source]
        source: Box<object_store::Error>,
    },

    /// A request to the object store failed (after its retries).
    #[error("{op} {object} at {url} failed")]
    Store {
        /// The location's URL.
        url: String,
        /// The object (a part, a commit record), relative to the location.
        object: String,
        /// What was being done: "writing", "reading", "deleting", "listing".
        op: &'static str,
        /// The store's error.
        #[source]
        source: Box<object_store::Error>,
    },

    /// A result could not be encoded in the dataset's format.
    #[error("encoding part {part} of {url} as {format} failed")]
    Encode {
        /// The location's URL.
        url: String,
        /// The part being written.
        part: String,
        /// The format's name.
        format: &'static str,
        /// The encoder's error (it names the result that failed).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// A result does not fit the dataset's Parquet schema (feature
    /// `parquet`): the schema is fixed by the first part with results, and
    /// only an integer into a float column, or a null into any column, is
    /// widened.
    #[error("{0}")]
    Schema(Box<SchemaMismatch>),

    /// A committed part does not match its commit record, or cannot be decoded.
    #[error("part {part} of {url} is corrupt: {reason}")]
    Corrupt {
        /// The location's URL.
        url: String,
        /// The part's object name.
        part: String,
        /// What did not match.
        reason: String,
    },

    /// The commit records contradict each other or the caller.
    #[error("the manifest of {url} is inconsistent: {reason}")]
    Manifest {
        /// The location's URL.
        url: String,
        /// What is wrong.
        reason: String,
    },

    /// A fresh job was about to write into a location that already holds a
    /// dataset.
    #[error(
        "{url} already holds a dataset ({found}); resume the job that wrote it, \
         choose another location, or allow overwriting it"
    )]
    NotEmpty {
        /// The location's URL.
        url: String,
        /// What was found there.
        found: String,
    },

    /// A local location to read from does not exist.
    #[error("nothing at {url}: the directory does not exist (check the path)")]
    Missing {
        /// The location's URL.
        url: String,
    },

    /// There is no dataset at the location.
    #[error("no dataset at {url}: it holds no commit records (_manifest/part-*.json)")]
    NotFound {
        /// The location's URL.
        url: String,
    },

    /// A format name that is not known.
    #[error("unknown format {0:?}: expected cbor, jsonl, csv or parquet")]
    UnknownFormat(String),

    /// A part was written by a format version this crate cannot read.
    #[error("part {part} of {url} is {format} version {version}, which this version cannot read")]
    UnsupportedFormat {
        /// The location's URL.
        url: String,
        /// The part.
        part: String,
        /// The format's name in the commit record.
        format: String,
        /// The format's version in the commit record.
        version: u32,
    },

    /// A batch out of order, or an option out of range.
    #[error("invalid use of the saver for {url}: {reason}")]
    Usage {
        /// The location's URL.
        url: String,
        /// What was wrong.
        reason: String,
    },

    /// An HDF5 call failed (feature `hdf5`): opening or creating the file,
    /// creating, resizing, writing or reading the dataset.
    #[error("{op} dataset {dataset:?} in HDF5 file {} failed", path.display())]
    Hdf5 {
        /// The HDF5 file.
        path: PathBuf,
        /// The dataset's name in the file.
        dataset: String,
        /// What was being done, e.g. "opening", "appending to", "reading".
        op: &'static str,
        /// The HDF5 library's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// An HDF5 dataset does not fit the saver (feature `hdf5`): another type
    /// or shape, records that contradict a resume point, a batch whose results
    /// cannot be placed at their item indices.
    #[error("dataset {dataset:?} in HDF5 file {}: {reason}", path.display())]
    Hdf5Dataset {
        /// The HDF5 file.
        path: PathBuf,
        /// The dataset's name in the file.
        dataset: String,
        /// What is wrong.
        reason: String,
    },

    /// A part was written but not committed because an earlier part, still
    /// in flight with it, failed (that earlier error is the one reported).
    #[error("part {part} of {url} was not committed: an earlier part failed")]
    NotCommitted {
        /// The location's URL.
        url: String,
        /// The part.
        part: String,
    },

    /// The internal async runtime could not be started.
    #[error("cannot start the saver's I/O runtime")]
    Runtime(#[source] std::io::Error),
}

/// What [`Error::Schema`] reports: the result, where it is, and the two
/// types.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemaMismatch {
    /// The location's URL.
    pub url: String,
    /// The part that was being written.
    pub part: String,
    /// The input position of the result.
    pub item: u64,
    /// The chunk holding it: `chunk 12`, or `one of chunks 0..3` where the
    /// batch does not say.
    pub chunk: String,
    /// The field's path (`a.b`, `tags[]`), empty for the result itself.
    pub field: String,
    /// What the type was checked against: `the job's schema (fixed by its
    /// first part) has`, or, in the first part, `the results before it in
    /// the job's first part have`.
    pub against: &'static str,
    /// The schema's type (`int64`, `struct<x: float64>`, `no such column`).
    pub expected: String,
    /// The result's type (`string`, `float64`, ...).
    pub found: String,
}

impl std::fmt::Display for SchemaMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = if self.field.is_empty() {
            "the result itself".to_owned()
        } else {
            format!("field `{}`", self.field)
        };
        write!(
            f,
            "result of item {} ({}) does not fit the Parquet schema of {}: {field}: {} {}, this \
             result has {}; part {} was not written",
            self.item, self.chunk, self.url, self.against, self.expected, self.found, self.part
        )
    }
}

impl Error {
    pub(crate) fn store(
        url: &str,
        object: impl Into<String>,
        op: &'static str,
        source: object_store::Error,
    ) -> Self {
        Error::Store {
            url: url.to_owned(),
            object: object.into(),
            op,
            source: Box::new(source),
        }
    }

    pub(crate) fn corrupt(url: &str, part: &str, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            url: url.to_owned(),
            part: part.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn manifest(url: &str, reason: impl Into<String>) -> Self {
        Error::Manifest {
            url: url.to_owned(),
            reason: reason.into(),
        }
    }
}

impl From<Error> for SaveError {
    fn from(e: Error) -> Self {
        match e {
            Error::Store {
                url,
                object,
                op,
                source,
            } => SaveError::Write {
                location: match op {
                    "writing" => format!("{}/{object}", url.trim_end_matches('/')),
                    op => format!("{}/{object} ({op})", url.trim_end_matches('/')),
                },
                source,
            },
            Error::Encode {
                ref url, ref part, ..
            } => SaveError::Encode {
                location: format!("{}/{part}", url.trim_end_matches('/')),
                source: Box::new(e),
            },
            Error::Schema(ref m) => SaveError::Encode {
                location: format!("{}/{}", m.url.trim_end_matches('/'), m.part),
                source: Box::new(e),
            },
            Error::Hdf5 {
                ref path,
                ref dataset,
                ..
            } => SaveError::Write {
                location: format!("{}#{dataset}", path.display()),
                source: Box::new(e),
            },
            e @ (Error::InvalidUrl { .. }
            | Error::UnknownScheme { .. }
            | Error::LocalDir { .. }
            | Error::Config { .. }
            | Error::NotWritable { .. }
            | Error::NotEmpty { .. }
            | Error::UnknownFormat(_)
            | Error::FeatureDisabled { .. }) => SaveError::Config(Box::new(e)),
            e => SaveError::Other(Box::new(e)),
        }
    }
}

impl From<Error> for raygent_core::Error {
    fn from(e: Error) -> Self {
        raygent_core::Error::Save(e.into())
    }
}
