//! Savers and readers for raygent: results saved as immutable parts in CBOR,
//! JSON Lines, CSV or (feature `parquet`) Parquet, on local disk, S3 or in
//! memory, committed exactly once.
//!
//! A [`DatasetSaver`] implements [`raygent_core::Saver`]: each batch becomes
//! one part named after its chunk range, then a commit record in
//! `_manifest/`. A [`DatasetReader`] yields every committed result in input
//! order, streaming part by part, and reports a truncated or corrupted part
//! by name. Destinations are chosen by URL ([`Location`]): a local path or
//! `file:///path`, `s3://bucket/prefix` (settings from the standard AWS
//! environment variables, overridable with [`S3Options`]), `memory://name`.
//!
//! ```
//! use raygent_core::{Batch, ResumePoint, Saver};
//! use raygent_savers::{DatasetReader, DatasetSaver, Format, SaverOptions};
//!
//! let dir = std::env::temp_dir().join(format!("raygent-doc-{}", std::process::id()));
//! let url = dir.to_str().unwrap();
//! let opts = SaverOptions::default().with_format(Format::Cbor).with_overwrite(true);
//! let mut saver = DatasetSaver::create(url, opts.clone()).unwrap();
//! saver.save(&Batch { chunks: 0..2, items: 0..4, results: &[1u32, 2, 3, 4] }).unwrap();
//! saver.save(&Batch { chunks: 2..3, items: 4..6, results: &[5u32, 6] }).unwrap();
//! assert!(Saver::<u32>::describe(&saver).starts_with("cbor file://"));
//!
//! // A job resumed from a checkpoint at chunk 2 rewrites the second part.
//! let mut again = DatasetSaver::create(url, opts).unwrap();
//! Saver::<u32>::resume(&mut again, &ResumePoint { next_chunk: 2, next_item: 4 }).unwrap();
//! again.save(&Batch { chunks: 2..3, items: 4..6, results: &[5u32, 6] }).unwrap();
//! Saver::<u32>::finish(&mut again).unwrap();
//!
//! let reader = DatasetReader::open(url).unwrap();
//! assert_eq!(reader.parts().len(), 2);
//! assert!(reader.is_complete());
//! let all: Vec<u32> = reader.iter().collect::<Result<_, _>>().unwrap();
//! assert_eq!(all, [1, 2, 3, 4, 5, 6]);
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```
//!
//! See `docs/savers.md` for the layout and the guarantees.

mod destination;
mod error;
mod format;
#[cfg(feature = "hdf5")]
mod hdf5;
#[cfg(feature = "integration")]
pub mod integration;
mod manifest;
#[cfg(feature = "parquet")]
pub mod parquet;
#[cfg(feature = "parquet")]
mod parquet_build;
#[cfg(feature = "parquet")]
mod parquet_trace;
mod reader;
mod saver;
mod success;
mod value;

pub use crate::destination::{Location, S3Options};
pub use crate::error::{Error, SchemaMismatch};
#[cfg(feature = "parquet")]
pub use crate::format::Parquet;
pub use crate::format::{Cbor, Csv, DecodeIter, Format, JsonLines, PartFormat, PartParams};
#[cfg(feature = "hdf5")]
pub use crate::hdf5::{CHUNK_ENDS_SUFFIX, H5Type, Hdf5Mode, Hdf5Options, Hdf5Saver, read_hdf5};
pub use crate::manifest::{
    COMPLETE_RECORD, MANIFEST_DIR, MANIFEST_VERSION, PartInfo, SUCCESS_MARKER,
};
#[cfg(feature = "parquet")]
pub use crate::parquet::{Column, ColumnType, INDEX_COLUMN, ParquetSchema, VALUE_COLUMN};
pub use crate::reader::{DatasetReader, PartResults, Results};
pub use crate::saver::{
    DEFAULT_MULTIPART_THRESHOLD, DatasetSaver, LOCAL_MULTIPART_THRESHOLD, MIN_MULTIPART_PIECE,
    SaverOptions, SaverStats,
};
pub use crate::success::{SuccessRecord, read_success, remove_success, write_success};
pub use crate::value::{Key, Value, ValueError, to_value};
