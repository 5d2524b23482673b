//! `DatasetSaver`: one immutable part per batch, then its commit record.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures::channel::oneshot;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use raygent_core::{Batch, FailedChunk, ResumePoint, SaveError, Saver};
use serde::Serialize;

use crate::format::{Format, PartFormat, PartParams};
use crate::manifest::{
    self, COMPLETE_RECORD, CompleteRecord, MANIFEST_VERSION, PartInfo, SUCCESS_MARKER, part_stem,
    record_name,
};
use crate::{Error, Location, S3Options};

/// The smallest piece of a multipart upload S3 accepts (except the last).
pub const MIN_MULTIPART_PIECE: usize = 5 * 1024 * 1024;

/// On S3 (and other object stores), parts up to this size go as one PUT by
/// default; larger ones stream as multipart uploads. (A PUT is one request
/// where a multipart upload takes at least three, and some servers copy
/// every piece again to assemble the object; rclone's default cutoff is
/// 200 MiB for the same reason.)
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 64 * 1024 * 1024;

/// On a local directory, parts above this size are written in pieces by
/// default: there a "multipart upload" is one staging file written while
/// the rest of the part is encoded, then renamed, so it costs nothing extra
/// and overlaps encoding with writing.
pub const LOCAL_MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;

/// Settings of a [`DatasetSaver`].
///
/// ```
/// use raygent_savers::{Format, SaverOptions};
/// let opts = SaverOptions::default()
///     .with_format(Format::JsonLines)
///     .with_multipart_threshold(64 << 20);
/// assert_eq!(opts.format(), Format::JsonLines);
/// ```
#[derive(Debug, Clone)]
pub struct SaverOptions {
    format: Format,
    /// `None`: [`DEFAULT_MULTIPART_THRESHOLD`] on object stores,
    /// [`LOCAL_MULTIPART_THRESHOLD`] on a local directory.
    multipart_threshold: Option<usize>,
    multipart_piece: usize,
    upload_concurrency: usize,
    saves_in_flight: usize,
    overwrite: bool,
    check_writable: bool,
    index_column: bool,
    #[cfg(feature = "parquet")]
    parquet_schema: Option<crate::parquet::ParquetSchema>,
    s3: S3Options,
}

impl Default for SaverOptions {
    fn default() -> Self {
        SaverOptions {
            format: Format::Cbor,
            multipart_threshold: None,
            multipart_piece: 8 * 1024 * 1024,
            upload_concurrency: 8,
            saves_in_flight: 2,
            overwrite: false,
            check_writable: true,
            index_column: true,
            #[cfg(feature = "parquet")]
            parquet_schema: None,
            s3: S3Options::default(),
        }
    }
}

impl SaverOptions {
    /// The format of the parts (default CBOR).
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }
    /// Parts larger than this many bytes are uploaded in pieces (default:
    /// [`DEFAULT_MULTIPART_THRESHOLD`], 64 MiB, on object stores;
    /// [`LOCAL_MULTIPART_THRESHOLD`], 8 MiB, on a local directory).
    pub fn with_multipart_threshold(mut self, bytes: usize) -> Self {
        self.multipart_threshold = Some(bytes);
        self
    }
    /// The size of one multipart piece (default 8 MiB; at least 5 MiB, S3's minimum).
    pub fn with_multipart_piece(mut self, bytes: usize) -> Self {
        self.multipart_piece = bytes.max(MIN_MULTIPART_PIECE);
        self
    }
    /// How many pieces of one multipart upload are in flight at once (default 8).
    pub fn with_upload_concurrency(mut self, n: usize) -> Self {
        self.upload_concurrency = n.max(1);
        self
    }
    /// How many parts may be uploading at once (default 2): while one part
    /// uploads, the next is encoded. (A Parquet part's file is written in
    /// flight too, so this many Parquet parts may be encoding on other
    /// cores while the next part's columns are built.) Parts are still
    /// committed in order: a part's commit record is written only after the
    /// record of the part before it. At least 1 (one part at a time,
    /// nothing overlaps).
    pub fn with_saves_in_flight(mut self, n: usize) -> Self {
        self.saves_in_flight = n.max(1);
        self
    }
    /// Whether a fresh (not resumed) job may delete a dataset already at
    /// the location (default `false`: the first save fails with
    /// [`Error::NotEmpty`]).
    pub fn with_overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
    /// Whether the saver writes and deletes a probe object when it is
    /// created, to report a bad location before any work (default `true`).
    pub fn with_check_writable(mut self, check: bool) -> Self {
        self.check_writable = check;
        self
    }
    /// Parquet: whether each part's first column is `_index`, each result's
    /// position in the input (default `true`), so that results can be
    /// joined back to the input whatever order a reader returns them in.
    /// Other formats keep results in input order and have no such column.
    pub fn with_index_column(mut self, on: bool) -> Self {
        self.index_column = on;
        self
    }
    /// Parquet (feature `parquet`): the dataset's schema, given up front
    /// instead of inferred from its first part (its `_index` setting is
    /// [`with_index_column`](Self::with_index_column)'s). A resumed job
    /// must give the schema it started with.
    #[cfg(feature = "parquet")]
    pub fn with_parquet_schema(mut self, schema: crate::parquet::ParquetSchema) -> Self {
        self.parquet_schema = Some(schema);
        self
    }
    /// Whether Parquet parts have the `_index` column.
    pub fn index_column(&self) -> bool {
        self.index_column
    }
    /// S3 settings used by [`DatasetSaver::create`] for `s3://` URLs.
    pub fn with_s3(mut self, s3: S3Options) -> Self {
        self.s3 = s3;
        self
    }
    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }
    /// The multipart threshold in bytes, if one was set (else it depends on
    /// the location, see [`with_multipart_threshold`](Self::with_multipart_threshold)).
    pub fn multipart_threshold(&self) -> Option<usize> {
        self.multipart_threshold
    }
    /// The S3 settings for `s3://` URLs.
    pub fn s3(&self) -> &S3Options {
        &self.s3
    }
}

/// Counters of what a [`DatasetSaver`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaverStats {
    /// Parts committed.
    pub parts: u64,
    /// Of those, parts uploaded as multipart uploads.
    pub multipart_parts: u64,
    /// Bytes of committed parts.
    pub bytes: u64,
    /// Results in committed parts.
    pub results: u64,
}

/// A [`Saver`] that writes each batch as one immutable part of a dataset at
/// a [`Location`], in a [`Format`], then a commit record for it.
///
/// `save` returns once the part and its commit record are durable (fsynced
/// on local disk, acknowledged by S3). The part's name is derived from the
/// batch's chunk range, so a retried or resumed save overwrites the same
/// object: there is never a second copy. See the crate docs for the layout.
///
/// The saver owns a small tokio runtime for its I/O: call it from a plain
/// thread, never from inside an async runtime.
pub struct DatasetSaver {
    location: Location,
    options: SaverOptions,
    /// The options' threshold, or the default for this kind of location.
    multipart_threshold: usize,
    rt: tokio::runtime::Runtime,
    /// The chunk the next submitted batch must start at.
    next_chunk: u64,
    next_item: u64,
    started: bool,
    committed: Vec<PartInfo>,
    /// Every chunk below this index is committed.
    committed_until: u64,
    /// Parts submitted and not yet known to be committed, oldest first.
    in_flight: VecDeque<InFlightPart>,
    /// Completes when the newest part in flight is committed (`true`), or
    /// is dropped when it fails; the next part waits on it before its
    /// commit record, so records are written in chunk order.
    last_commit: Option<oneshot::Receiver<bool>>,
    /// The first failure of a part in flight: the saver refuses further work.
    failed: bool,
    /// Uploads of the parts after a failed one: nothing waits for them,
    /// but they are let end before the saver goes (see `Drop`).
    abandoned: Vec<tokio::task::JoinHandle<Result<Written, Error>>>,
    /// The size of the last part, to size the next part's buffer.
    size_hint: usize,
    stats: SaverStats,
    /// The item ranges of skipped chunks not yet in a submitted batch.
    skipped: Vec<std::ops::Range<u64>>,
    /// Parquet: the schema fixed by the dataset's first part.
    #[cfg(feature = "parquet")]
    parquet: crate::parquet::ParquetEncoder,
}

/// A part whose upload and commit record (and, for Parquet, the encoding
/// of its file) run in the background.
struct InFlightPart {
    /// Its commit record, but for its size and CRC where the part is
    /// encoded in the background (the task's [`Written`] tells them).
    info: PartInfo,
    task: tokio::task::JoinHandle<Result<Written, Error>>,
}

/// A part's file as uploaded.
#[derive(Debug, Clone, Copy)]
struct Written {
    bytes: u64,
    crc32: u32,
    multipart: bool,
}

/// What the saver encoded before the part's upload: besides the formats
/// that encode while streaming into the [`PartSink`].
enum Prepared {
    /// No bytes at all: a Parquet part without results before any result
    /// fixed the schema.
    #[cfg_attr(not(feature = "parquet"), allow(dead_code))]
    Empty,
    /// A Parquet part's columns, its file yet to write.
    #[cfg(feature = "parquet")]
    Columns(Box<crate::parquet::PartColumns>),
}

/// A part as handed to its background task.
enum Body {
    /// Encoded: its size and CRC, and what is left to upload.
    Encoded(Written, Upload),
    /// A Parquet part's columns: the task writes the file (on a blocking
    /// thread, so parts in flight encode on other cores than the one
    /// building the next part's columns), then uploads it.
    #[cfg(feature = "parquet")]
    Columns(Box<crate::parquet::PartColumns>),
}

impl std::fmt::Debug for DatasetSaver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetSaver")
            .field("url", &self.location.url())
            .field("format", &self.options.format)
            .field("next_chunk", &self.next_chunk)
            .field("stats", &self.stats)
            .finish()
    }
}

pub(crate) fn io_runtime(threads: usize) -> Result<tokio::runtime::Runtime, Error> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads).thread_name("raygent-io");
        b
    }
    .enable_all()
    .build()
    .map_err(Error::Runtime)
}

impl DatasetSaver {
    /// A saver for the dataset at `url` (see [`Location::parse_with`]; S3
    /// settings come from `options`).
    pub fn create(url: &str, options: SaverOptions) -> Result<DatasetSaver, Error> {
        let location = Location::parse_with(url, &options.s3)?;
        DatasetSaver::new(location, options)
    }

    /// A saver for the dataset at `location`. Unless disabled in `options`,
    /// checks that the location is writable.
    pub fn new(location: Location, options: SaverOptions) -> Result<DatasetSaver, Error> {
        let rt = io_runtime(2)?;
        if options.check_writable {
            rt.block_on(location.check_writable())?;
        }
        let multipart_threshold =
            options
                .multipart_threshold
                .unwrap_or(if location.local_dir().is_some() {
                    LOCAL_MULTIPART_THRESHOLD
                } else {
                    DEFAULT_MULTIPART_THRESHOLD
                });
        Ok(DatasetSaver {
            location,
            multipart_threshold,
            rt,
            next_chunk: 0,
            next_item: 0,
            started: false,
            committed: Vec::new(),
            committed_until: 0,
            in_flight: VecDeque::new(),
            last_commit: None,
            failed: false,
            abandoned: Vec::new(),
            size_hint: 0,
            stats: SaverStats::default(),
            skipped: Vec::new(),
            #[cfg(feature = "parquet")]
            parquet: preset_schema(&options),
            options,
        })
    }

    /// The dataset's location.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The format of the parts.
    pub fn format(&self) -> Format {
        self.options.format
    }

    /// What this saver committed so far.
    pub fn stats(&self) -> SaverStats {
        self.stats
    }

    /// The chunk the next batch must start at.
    pub fn next_chunk(&self) -> u64 {
        self.next_chunk
    }

    /// Every chunk below this index is committed (parts still in flight
    /// are not).
    pub fn committed_until(&self) -> u64 {
        self.committed_until
    }

    /// The parts committed so far (not those still in flight), including
    /// (after a resume) those of the earlier run.
    pub fn committed(&self) -> &[PartInfo] {
        &self.committed
    }

    /// [`Saver::save`] with this crate's error type: saves one batch and
    /// returns once it (and every part before it) is committed; returns its
    /// commit record.
    pub fn save_batch<T: Serialize>(&mut self, batch: &Batch<'_, T>) -> Result<PartInfo, Error> {
        self.submit_batch(batch)?;
        self.flush_saves()?;
        self.committed.last().cloned().ok_or_else(|| Error::Usage {
            url: self.location.url().to_owned(),
            reason: "no part was committed".into(),
        })
    }

    /// [`Saver::submit`] with this crate's error type: encodes the batch as
    /// a part and starts uploading it, waiting only while
    /// [`SaverOptions::with_saves_in_flight`] parts are already in flight.
    /// Returns the chunk index below which every part is committed.
    pub fn submit_batch<T: Serialize>(&mut self, batch: &Batch<'_, T>) -> Result<u64, Error> {
        let url = self.location.url().to_owned();
        let chunks = batch.chunks.clone();
        if chunks.start != self.next_chunk || chunks.end <= chunks.start {
            return Err(Error::Usage {
                url,
                reason: format!(
                    "batch of chunks {chunks:?} does not start at chunk {} or is empty; \
                     batches must be contiguous and in order",
                    self.next_chunk
                ),
            });
        }
        self.refuse_after_failure()?;
        self.start()?;
        self.reap(false)?;
        while self.in_flight.len() >= self.options.saves_in_flight {
            self.reap_oldest()?;
        }
        let format = self.options.format;
        let stem = part_stem(&chunks);
        let mut params = PartParams::default();
        let skipped = self.take_skipped(&batch.items);
        // Parquet parts are built whole in memory (the writer needs the
        // whole row group): their columns here, from the results, and the
        // Parquet file (encoding, statistics, zstd) in the background.
        let prepared = self.encode_parquet(batch, &skipped, &stem, &mut params)?;
        let part = match &prepared {
            // No result has fixed the schema yet and this part has none:
            // no Parquet file (it would have another schema), an empty object.
            Some(Prepared::Empty) => format!("{stem}.empty"),
            _ => format!("{stem}.{}", format.extension()),
        };
        let store = Arc::clone(self.location.store());
        let part_path = self.location.path(&part);
        let threshold = self.multipart_threshold;
        let piece = self.options.multipart_piece;
        let concurrency = self.options.upload_concurrency;
        let body = match prepared {
            #[cfg(feature = "parquet")]
            Some(Prepared::Columns(columns)) => Body::Columns(columns),
            prepared => {
                let mut sink = PartSink {
                    rt: &self.rt,
                    store: store.as_ref(),
                    path: &part_path,
                    threshold: threshold as u64,
                    piece,
                    concurrency,
                    buf: Vec::with_capacity(self.size_hint.min(threshold).max(piece.min(1 << 20))),
                    total: 0,
                    crc: crc32fast::Hasher::new(),
                    upload: None,
                    error: None,
                };
                // Encoding streams into the sink, which starts a multipart
                // upload once the part outgrows the threshold and uploads
                // pieces in the background while encoding goes on.
                let encoded = match prepared {
                    Some(_) => Ok(()),
                    None => format.encode(batch.results, &mut sink, &mut params),
                };
                if let Err(message) = encoded {
                    let store_error = sink.error.take();
                    sink.abort();
                    return Err(match store_error {
                        Some(e) => Error::store(&url, &part, "writing", e),
                        None => Error::Encode {
                            url: url.clone(),
                            part: part.clone(),
                            format: format.name(),
                            source: message.into(),
                        },
                    });
                }
                let (bytes, crc32, upload) = sink.finish();
                self.size_hint = bytes as usize;
                Body::Encoded(
                    Written {
                        bytes,
                        crc32,
                        multipart: matches!(upload, Upload::Multipart(..)),
                    },
                    upload,
                )
            }
        };
        let mut info = PartInfo {
            manifest_version: MANIFEST_VERSION,
            part: part.clone(),
            format: format.name().to_owned(),
            format_version: format.version(),
            chunk_start: chunks.start,
            chunk_end: chunks.end,
            item_start: batch.items.start,
            item_end: batch.items.end,
            results: batch.results.len() as u64,
            // Known once the part is encoded (see `Written`).
            bytes: 0,
            crc32: 0,
            params,
        };
        match &body {
            Body::Encoded(w, _) => (info.bytes, info.crc32) = (w.bytes, w.crc32),
            #[cfg(feature = "parquet")]
            Body::Columns(_) => {}
        }
        let record_path = self.location.path(&record_name(&stem));
        let previous = self.last_commit.take();
        let (committed_tx, committed_rx) = oneshot::channel();
        self.last_commit = Some(committed_rx);
        let mut record_info = info.clone();
        let task = self.rt.spawn(async move {
            let written = match body {
                Body::Encoded(written, upload) => {
                    let uploaded = match upload {
                        Upload::Single(bytes) => {
                            store.put(&part_path, bytes.into()).await.map(drop)
                        }
                        // `finish` aborts the upload itself when a piece or
                        // the completion fails.
                        Upload::Multipart(mut w, rest) => {
                            w.put(rest);
                            w.finish().await.map(drop)
                        }
                    };
                    uploaded.map_err(|e| Error::store(&url, &part, "writing", e))?;
                    written
                }
                #[cfg(feature = "parquet")]
                Body::Columns(columns) => {
                    let file = tokio::task::spawn_blocking(move || {
                        columns.write().map(|file| {
                            let crc32 = crc32fast::hash(&file);
                            (Bytes::from(file), crc32)
                        })
                    })
                    .await
                    .map_err(|e| {
                        Error::Runtime(std::io::Error::other(format!(
                            "the encoding of part {part} did not finish: {e}"
                        )))
                    })?;
                    let (file, crc32) = file.map_err(|message| Error::Encode {
                        url: url.clone(),
                        part: part.clone(),
                        format: format.name(),
                        source: message.into(),
                    })?;
                    let written = Written {
                        bytes: file.len() as u64,
                        crc32,
                        multipart: file.len() > threshold,
                    };
                    upload_whole(
                        store.as_ref(),
                        &part_path,
                        file,
                        written.multipart,
                        piece,
                        concurrency,
                    )
                    .await
                    .map_err(|e| Error::store(&url, &part, "writing", e))?;
                    written
                }
            };
            (record_info.bytes, record_info.crc32) = (written.bytes, written.crc32);
            let record = serde_json::to_vec_pretty(&record_info).map_err(|e| Error::Encode {
                url: url.clone(),
                part: record_name(&stem),
                format: "json",
                source: Box::new(e),
            })?;
            // Commit records go in chunk order: wait for the part before.
            if let Some(previous) = previous
                && previous.await != Ok(true)
            {
                return Err(Error::NotCommitted { url, part });
            }
            // Crash tests freeze the process here: part written, not committed.
            raygent_core::failpoint("part-before-record");
            // The commit record goes last: until it exists the part is an
            // orphan that readers ignore and a resume deletes.
            store
                .put(&record_path, record.into())
                .await
                .map_err(|e| Error::store(&url, record_name(&stem), "writing", e))?;
            tracing::debug!(url, part, bytes = written.bytes, "part committed");
            // The next part may be dropped already (its job failed).
            let _ = committed_tx.send(true);
            Ok(written)
        });
        self.in_flight.push_back(InFlightPart { info, task });
        self.next_chunk = chunks.end;
        self.next_item = batch.items.end;
        Ok(self.committed_until)
    }

    /// The item ranges of the skipped chunks inside `items` (told by
    /// [`Saver::skipped`]), removed from the pending list.
    fn take_skipped(&mut self, items: &std::ops::Range<u64>) -> Vec<std::ops::Range<u64>> {
        let (inside, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.skipped)
            .into_iter()
            .filter(|r| r.end > items.start)
            .partition(|r| r.start < items.end);
        self.skipped = later;
        inside
    }

    /// Parquet: the part's columns, or [`Prepared::Empty`] (`Some`), else
    /// `None` for the other formats, which encode while streaming.
    #[cfg(feature = "parquet")]
    fn encode_parquet<T: Serialize>(
        &mut self,
        batch: &Batch<'_, T>,
        skipped: &[std::ops::Range<u64>],
        stem: &str,
        params: &mut PartParams,
    ) -> Result<Option<Prepared>, Error> {
        use crate::parquet::EncodeFailure;
        if self.options.format != Format::Parquet {
            return Ok(None);
        }
        let url = self.location.url();
        let part = format!("{stem}.parquet");
        let positions =
            positions(&batch.items, skipped, batch.results.len()).map_err(|reason| {
                Error::Usage {
                    url: url.to_owned(),
                    reason: format!("batch of chunks {:?}: {reason}", batch.chunks),
                }
            })?;
        let index = |i: usize| positions.get(i).copied().unwrap_or_default();
        let first_part = self.parquet.schema.is_none();
        let with_index: Option<&dyn Fn(usize) -> u64> = self
            .options
            .index_column
            .then_some(&index as &dyn Fn(usize) -> u64);
        match self.parquet.build(batch.results, with_index, params) {
            Ok(Some(columns)) => Ok(Some(Prepared::Columns(Box::new(columns)))),
            Ok(None) => Ok(Some(Prepared::Empty)),
            Err(EncodeFailure::Other(message)) => Err(Error::Encode {
                url: url.to_owned(),
                part,
                format: "parquet",
                source: message.into(),
            }),
            Err(EncodeFailure::Mismatch(m)) => {
                let item = index(m.row);
                Err(Error::Schema(Box::new(crate::SchemaMismatch {
                    url: url.to_owned(),
                    part,
                    item,
                    chunk: chunk_of(&batch.chunks, &batch.items, item),
                    field: m.path,
                    against: if first_part {
                        "the results before it in the job's first part have"
                    } else {
                        "the job's schema (fixed by its first part) has"
                    },
                    expected: m.expected,
                    found: m.found,
                })))
            }
        }
    }

    #[cfg(not(feature = "parquet"))]
    fn encode_parquet<T: Serialize>(
        &mut self,
        _: &Batch<'_, T>,
        _: &[std::ops::Range<u64>],
        _: &str,
        _: &mut PartParams,
    ) -> Result<Option<Prepared>, Error> {
        Ok(None)
    }

    /// [`Saver::flush`] with this crate's error type: waits until every
    /// submitted part is committed; returns the first failure.
    pub fn flush_saves(&mut self) -> Result<(), Error> {
        self.refuse_after_failure()?;
        self.reap(true)
    }

    /// After a part in flight failed (that error was returned once), the
    /// saver takes no more work: the parts after it cannot be committed.
    fn refuse_after_failure(&self) -> Result<(), Error> {
        if self.failed {
            return Err(Error::Usage {
                url: self.location.url().to_owned(),
                reason: "an earlier part failed, so nothing after it can be committed; \
                         rerun the job to resume after the last committed part"
                    .into(),
            });
        }
        Ok(())
    }

    /// Collects the parts in flight that are done (all of them if `wait`),
    /// oldest first; stops at the first failure and returns it.
    fn reap(&mut self, wait: bool) -> Result<(), Error> {
        while let Some(p) = self.in_flight.front() {
            if !wait && !p.task.is_finished() {
                break;
            }
            self.reap_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest part in flight and records it as committed.
    fn reap_oldest(&mut self) -> Result<(), Error> {
        let Some(p) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let done = self.rt.block_on(p.task).unwrap_or_else(|e| {
            Err(Error::Runtime(std::io::Error::other(format!(
                "the upload of part {} did not finish: {e}",
                p.info.part
            ))))
        });
        let written = match done {
            Ok(w) => w,
            Err(e) => {
                self.failed = true;
                // What follows cannot commit; let it finish in the background.
                let rest = self.in_flight.drain(..).map(|p| p.task);
                self.abandoned.extend(rest);
                return Err(e);
            }
        };
        let mut info = p.info;
        (info.bytes, info.crc32) = (written.bytes, written.crc32);
        self.committed_until = info.chunk_end;
        self.stats.parts += 1;
        self.stats.multipart_parts += u64::from(written.multipart);
        self.stats.bytes += info.bytes;
        self.stats.results += info.results;
        self.committed.push(info);
        Ok(())
    }

    /// On the first write of a fresh job: refuse (or, with `overwrite`,
    /// delete) a dataset already at the location.
    fn start(&mut self) -> Result<(), Error> {
        if self.started {
            return Ok(());
        }
        let loc = &self.location;
        let overwrite = self.options.overwrite;
        self.rt.block_on(async {
            let listing = manifest::list(loc).await?;
            if listing.is_empty() {
                return Ok(());
            }
            if !overwrite {
                return Err(Error::NotEmpty {
                    url: loc.url().to_owned(),
                    found: format!(
                        "{} commit record(s), {} part(s)",
                        listing.records.len(),
                        listing.parts.len()
                    ),
                });
            }
            manifest::delete(loc, SUCCESS_MARKER).await?;
            manifest::delete(loc, COMPLETE_RECORD).await?;
            for r in listing.records.iter().rev() {
                manifest::delete(loc, &r.name).await?;
            }
            for p in &listing.parts {
                manifest::delete(loc, &p.name).await?;
            }
            Ok(())
        })?;
        self.started = true;
        Ok(())
    }

    /// [`Saver::resume`] with this crate's error type.
    ///
    /// Checks that the dataset holds exactly chunks `0..point.next_chunk`
    /// (as the checkpoint says), then deletes the `_SUCCESS` marker (first:
    /// the job is running again), the completion record, the commit records
    /// and parts of chunks from `point.next_chunk` on, and orphan parts.
    pub fn resume_at(&mut self, point: &ResumePoint) -> Result<(), Error> {
        let loc = &self.location;
        let url = loc.url();
        let next = point.next_chunk;
        let format = self.options.format;
        let kept = self.rt.block_on(async {
            manifest::delete(loc, SUCCESS_MARKER).await?;
            let listing = manifest::list(loc).await?;
            let mut keep = Vec::new();
            let mut drop = Vec::new();
            for r in &listing.records {
                if r.chunks.start >= next {
                    drop.push(r);
                } else if r.chunks.end > next {
                    return Err(Error::manifest(
                        url,
                        format!(
                            "commit record {} straddles the resume point (chunk {next})",
                            r.name
                        ),
                    ));
                } else {
                    keep.push(r.clone());
                }
            }
            let (run, gap) = manifest::contiguous_run(url, &keep)?;
            let reached = run.last().map_or(0, |r| r.chunks.end);
            if gap.is_some() || reached != next {
                return Err(Error::manifest(
                    url,
                    format!(
                        "the checkpoint says chunks 0..{next} are saved, but the dataset's \
                         commit records cover chunks 0..{reached} contiguously; was the output \
                         location changed or edited?"
                    ),
                ));
            }
            let kept = manifest::load_records(loc, &keep).await?;
            if let Some(bad) = kept
                .iter()
                .find(|i| i.format != format.name() || i.format_version != format.version())
            {
                return Err(Error::manifest(
                    url,
                    format!(
                        "part {} is {} version {}, but this saver writes {} version {}",
                        bad.part,
                        bad.format,
                        bad.format_version,
                        format.name(),
                        format.version()
                    ),
                ));
            }
            // Records first (newest first, so what is left is always a
            // contiguous run), then the parts they named, then orphans.
            manifest::delete(loc, COMPLETE_RECORD).await?;
            for r in drop.iter().rev() {
                manifest::delete(loc, &r.name).await?;
            }
            for p in &listing.parts {
                if !kept.iter().any(|k| k.part == p.name) {
                    manifest::delete(loc, &p.name).await?;
                }
            }
            Ok(kept)
        })?;
        if let Some(dir) = loc.local_dir() {
            remove_local_staging(&dir)?;
        }
        self.next_item = kept.last().map_or(0, |k| k.item_end);
        if next > 0 && self.next_item != point.next_item {
            tracing::warn!(
                url,
                expected = point.next_item,
                found = self.next_item,
                "the dataset's last committed item differs from the checkpoint's"
            );
        }
        self.restore_schema(&kept)?;
        self.skipped.clear();
        self.stats = SaverStats::default();
        self.committed = kept;
        self.next_chunk = next;
        self.committed_until = next;
        self.started = true;
        Ok(())
    }

    /// Parquet, on resume: the schema the kept parts recorded.
    #[cfg(feature = "parquet")]
    fn restore_schema(&mut self, kept: &[PartInfo]) -> Result<(), Error> {
        use crate::parquet::ParquetSchema;
        let preset = preset_schema(&self.options);
        self.parquet = preset.clone();
        if self.options.format != Format::Parquet {
            return Ok(());
        }
        let url = self.location.url();
        for p in kept {
            let schema = ParquetSchema::from_params(&p.params)
                .map_err(|reason| Error::manifest(url, format!("part {}: {reason}", p.part)))?;
            if let Some(schema) = schema {
                if schema.index != self.options.index_column {
                    return Err(Error::manifest(
                        url,
                        format!(
                            "the dataset's parts {} the `_index` column, but this saver was \
                             told {}",
                            if schema.index { "have" } else { "do not have" },
                            if schema.index {
                                "not to write it"
                            } else {
                                "to write it"
                            }
                        ),
                    ));
                }
                if let Some(given) = preset.schema.as_ref().filter(|g| **g != schema) {
                    return Err(Error::manifest(
                        url,
                        format!(
                            "the dataset's Parquet schema is {schema}, but this saver was \
                             given {given}"
                        ),
                    ));
                }
                self.parquet.schema = Some(schema);
                self.parquet.unrecorded = false;
                return Ok(());
            }
            if p.results > 0 {
                return Err(Error::manifest(
                    url,
                    format!(
                        "part {} holds results but no schema was recorded before it",
                        p.part
                    ),
                ));
            }
        }
        Ok(())
    }

    #[cfg(not(feature = "parquet"))]
    fn restore_schema(&mut self, _: &[PartInfo]) -> Result<(), Error> {
        Ok(())
    }

    /// [`Saver::finish`] with this crate's error type: writes
    /// `_manifest/_complete.json`, which lists every part (so readers of a
    /// finished dataset fetch one record instead of one per part).
    pub fn finish_dataset(&mut self) -> Result<(), Error> {
        self.flush_saves()?;
        self.start()?;
        let complete = CompleteRecord {
            manifest_version: MANIFEST_VERSION,
            chunks: self.next_chunk,
            results: self.committed.iter().map(|p| p.results).sum(),
            parts: self.committed.clone(),
        };
        let body = serde_json::to_vec(&complete).map_err(|e| Error::Encode {
            url: self.location.url().to_owned(),
            part: COMPLETE_RECORD.into(),
            format: "json",
            source: Box::new(e),
        })?;
        let loc = &self.location;
        self.rt.block_on(async {
            loc.store()
                .put(&loc.path(COMPLETE_RECORD), body.into())
                .await
                .map_err(|e| Error::store(loc.url(), COMPLETE_RECORD, "writing", e))
        })?;
        Ok(())
    }

    /// `"<format> <url>"`, as recorded in checkpoints (Parquet without the
    /// index column: `"parquet (no _index) <url>"`).
    pub fn description(&self) -> String {
        #[cfg(feature = "parquet")]
        if self.options.format == Format::Parquet && !self.options.index_column {
            return format!("parquet (no _index) {}", self.location.url());
        }
        format!("{} {}", self.options.format, self.location.url())
    }
}

/// The encoder for `options`: with the schema they give, if any.
#[cfg(feature = "parquet")]
fn preset_schema(options: &SaverOptions) -> crate::parquet::ParquetEncoder {
    let schema = options.parquet_schema.clone().map(|mut s| {
        s.index = options.index_column;
        s
    });
    crate::parquet::ParquetEncoder {
        unrecorded: schema.is_some(),
        schema,
    }
}

/// The input positions of a batch's results: its items without those of
/// the skipped chunks.
#[cfg(feature = "parquet")]
fn positions(
    items: &std::ops::Range<u64>,
    skipped: &[std::ops::Range<u64>],
    results: usize,
) -> Result<Vec<u64>, String> {
    let mut out = Vec::with_capacity(results);
    let mut at = items.start;
    for s in skipped
        .iter()
        .chain(std::iter::once(&(items.end..items.end)))
    {
        out.extend(at..s.start.max(at).min(items.end));
        at = at.max(s.end);
    }
    if out.len() != results {
        return Err(format!(
            "{results} results for items {items:?} less the skipped chunks' {skipped:?} ({} \
             positions)",
            out.len()
        ));
    }
    Ok(out)
}

/// The chunk holding `item`, for messages: exact where the batch tells the
/// chunk size (it starts past chunk 0, or its sizes allow only one).
#[cfg(feature = "parquet")]
fn chunk_of(chunks: &std::ops::Range<u64>, items: &std::ops::Range<u64>, item: u64) -> String {
    let k = chunks.end - chunks.start;
    let size = if k == 1 {
        return format!("chunk {}", chunks.start);
    } else if let Some(size) = items.start.checked_div(chunks.start) {
        Some(size)
    } else {
        // n = (k - 1) * size + last, with 1 <= last <= size.
        let n = items.end - items.start;
        let (lo, hi) = (n.div_ceil(k), n.saturating_sub(1) / (k - 1));
        (lo == hi).then_some(lo)
    };
    match size {
        Some(c) if c > 0 => format!("chunk {}", item / c),
        _ => format!("one of chunks {}..{}", chunks.start, chunks.end),
    }
}

/// Removes the staging files of parts and records that a process killed
/// mid-write left behind ([`raygent_core::remove_staging_files`]).
fn remove_local_staging(dir: &std::path::Path) -> Result<(), Error> {
    for d in [dir.to_path_buf(), dir.join(crate::manifest::MANIFEST_DIR)] {
        raygent_core::remove_staging_files(&d, |name| {
            name.starts_with("part-") || name.starts_with('_')
        })
        .map_err(|(path, source)| Error::LocalDir { path, source })?;
    }
    Ok(())
}

/// A part's bytes, encoded, ready to go: the whole part for one PUT, or a
/// multipart upload already under way and its last piece.
enum Upload {
    Single(Bytes),
    Multipart(WriteMultipart, Bytes),
}

/// Uploads a part encoded whole: one PUT, or (`multipart`) the pieces of a
/// multipart upload, `concurrency` at a time, aborted if one fails.
#[cfg(feature = "parquet")]
async fn upload_whole(
    store: &dyn ObjectStore,
    path: &Path,
    file: Bytes,
    multipart: bool,
    piece: usize,
    concurrency: usize,
) -> object_store::Result<()> {
    if !multipart {
        return store.put(path, file.into()).await.map(drop);
    }
    let mut w = WriteMultipart::new_with_chunk_size(store.put_multipart(path).await?, piece);
    let mut at = 0;
    while at < file.len() {
        let end = file.len().min(at + piece);
        w.put(file.slice(at..end));
        at = end;
        if let Err(e) = w.wait_for_capacity(concurrency).await {
            if let Err(abort) = w.abort().await {
                tracing::warn!(%path, %abort, "aborting a failed multipart upload failed");
            }
            return Err(e);
        }
        // Crash tests freeze the process here, in the middle of a multipart upload.
        raygent_core::failpoint("multipart-piece");
    }
    w.finish().await.map(drop)
}

/// Receives a part's bytes as they are encoded: kept for a single PUT while
/// the part stays under the threshold, else sent as the pieces of a
/// multipart upload, which upload on the runtime's workers while encoding
/// continues.
struct PartSink<'a> {
    rt: &'a tokio::runtime::Runtime,
    store: &'a dyn ObjectStore,
    path: &'a Path,
    threshold: u64,
    piece: usize,
    concurrency: usize,
    buf: Vec<u8>,
    total: u64,
    crc: crc32fast::Hasher,
    upload: Option<WriteMultipart>,
    /// The store's error behind an I/O error returned to the encoder.
    error: Option<object_store::Error>,
}

impl PartSink<'_> {
    fn send_piece(&mut self) -> object_store::Result<()> {
        let next = Vec::with_capacity(self.piece + (1 << 16));
        let bytes = Bytes::from(std::mem::replace(&mut self.buf, next));
        self.crc.update(&bytes);
        let (store, path, piece, concurrency) =
            (self.store, self.path, self.piece, self.concurrency);
        let upload = &mut self.upload;
        self.rt.block_on(async move {
            if upload.is_none() {
                let u = store.put_multipart(path).await?;
                *upload = Some(WriteMultipart::new_with_chunk_size(u, piece));
            }
            if let Some(w) = upload.as_mut() {
                // Spawns the piece's upload; waits while too many are in flight.
                w.put(bytes);
                w.wait_for_capacity(concurrency).await?;
            }
            Ok::<_, object_store::Error>(())
        })?;
        // Crash tests freeze the process here, in the middle of a multipart upload.
        raygent_core::failpoint("multipart-piece");
        Ok(())
    }

    /// The part's size, CRC-32 and what is left to upload.
    fn finish(mut self) -> (u64, u32, Upload) {
        let bytes = Bytes::from(std::mem::take(&mut self.buf));
        self.crc.update(&bytes);
        let (total, crc) = (self.total, self.crc.clone().finalize());
        match self.upload.take() {
            None => (total, crc, Upload::Single(bytes)),
            Some(w) => (total, crc, Upload::Multipart(w, bytes)),
        }
    }

    fn abort(mut self) {
        if let Some(w) = self.upload.take()
            && let Err(e) = self.rt.block_on(w.abort())
        {
            tracing::warn!(path = %self.path, %e, "aborting a failed multipart upload failed");
        }
    }
}

impl std::io::Write for PartSink<'_> {
    #[inline]
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.total += data.len() as u64;
        if self.buf.len() >= self.piece
            && (self.upload.is_some() || self.total > self.threshold)
            && let Err(e) = self.send_piece()
        {
            let msg = e.to_string();
            self.error = Some(e);
            return Err(std::io::Error::other(msg));
        }
        Ok(data.len())
    }

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.write(data).map(drop)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How long a dropped [`DatasetSaver`] waits for its uploads in flight.
const DROP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Drop for DatasetSaver {
    /// Lets the uploads still in flight end instead of cancelling them with
    /// the runtime: a multipart upload cancelled half-way stays incomplete
    /// on S3 (its pieces stored, and billed) until a lifecycle rule removes
    /// it, whereas an upload that ends either completes (a part without its
    /// commit record, which readers ignore and a resume deletes, or a
    /// committed part: the committed parts stay a prefix of the results) or
    /// fails and aborts itself. It waits 30 s at the most (an
    /// upload stuck on an unreachable store gives up later than that), and
    /// inside an async runtime, where waiting would panic, not at all: the
    /// uploads left are then cancelled and a warning names the location.
    fn drop(&mut self) {
        let tasks: Vec<_> = self
            .in_flight
            .drain(..)
            .map(|p| p.task)
            .chain(self.abandoned.drain(..))
            .collect();
        if tasks.is_empty() {
            return;
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            tracing::warn!(
                url = self.location.url(),
                parts = tasks.len(),
                "saver dropped inside an async runtime with uploads in flight: they are \
                 cancelled, and an S3 multipart upload among them stays incomplete"
            );
            return;
        }
        tracing::debug!(
            url = self.location.url(),
            parts = tasks.len(),
            "saver dropped: waiting for the uploads in flight"
        );
        let deadline = tokio::time::Instant::now() + DROP_WAIT;
        for t in tasks {
            let waited = self
                .rt
                .block_on(async { tokio::time::timeout_at(deadline, t).await });
            if waited.is_err() {
                tracing::warn!(
                    url = self.location.url(),
                    "saver dropped: uploads still in flight after {DROP_WAIT:?} are cancelled; \
                     an S3 multipart upload among them stays incomplete"
                );
                break;
            }
        }
    }
}

impl<T: Serialize + Send + 'static> Saver<T> for DatasetSaver {
    fn check_empty(&mut self) -> Result<(), SaveError> {
        self.start().map_err(SaveError::from)
    }

    fn save(&mut self, batch: &Batch<'_, T>) -> Result<(), SaveError> {
        self.save_batch(batch).map(|_| ()).map_err(SaveError::from)
    }

    fn submit(&mut self, batch: &Batch<'_, T>) -> Result<u64, SaveError> {
        self.submit_batch(batch).map_err(SaveError::from)
    }

    fn flush(&mut self) -> Result<(), SaveError> {
        self.flush_saves().map_err(SaveError::from)
    }

    fn finish(&mut self) -> Result<(), SaveError> {
        self.finish_dataset().map_err(SaveError::from)
    }

    fn resume(&mut self, point: &ResumePoint) -> Result<(), SaveError> {
        self.resume_at(point).map_err(SaveError::from)
    }

    fn skipped(&mut self, chunk: &FailedChunk) {
        self.skipped.push(chunk.items.clone());
    }

    /// Parts past the resume point are deleted: a part is written again
    /// under the same name, never as a second copy.
    fn can_resume(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        self.description()
    }
}
