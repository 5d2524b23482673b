//! [`Hdf5Saver`]: numeric results in one 1-D dataset of a local HDF5 file
//! (cargo feature `hdf5`).
//!
//! Unlike [`DatasetSaver`](crate::DatasetSaver), which writes immutable parts
//! through `object_store`, this saver updates one dataset in place, as the
//! seed's `HDF5Saver` does: it is a separate, local-only destination, not a
//! [`PartFormat`](crate::PartFormat). To resume exactly, every save also
//! appends one row to a second dataset, `<name>_chunk_ends`, of shape
//! `(n, 4)` and type `u64`: `[chunk_start, chunk_end, start, end]`, the
//! batch's chunk range and the positions of the dataset it wrote.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use hdf5_metno as h5;
use raygent_core::{Batch, ResumePoint, SaveError, Saver};

use crate::Error;

pub use hdf5_metno::H5Type;

/// Suffix of the dataset that records each save's chunk range and positions.
pub const CHUNK_ENDS_SUFFIX: &str = "_chunk_ends";

/// How [`Hdf5Saver`] writes each batch (the seed's approaches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hdf5Mode {
    /// Append the batch's results after the dataset's current end (the
    /// default): the dataset holds every result in input order.
    #[default]
    Append,
    /// Replace the dataset's contents with each batch: it holds the last
    /// batch only, which is mostly useful for a single final save.
    Overwrite,
    /// Write each result at its input item index (`batch.items`), growing the
    /// dataset to fit; positions never written keep the fill value (0).
    ///
    /// A [`Batch`] does not say which of its chunks were skipped, so a batch
    /// with fewer results than items is refused in this mode; use
    /// [`Hdf5Saver::save_at`] to write at explicit indices.
    UpdateAtIndices,
}

/// Options of an [`Hdf5Saver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hdf5Options {
    mode: Hdf5Mode,
    chunk_len: usize,
    overwrite: bool,
}

impl Default for Hdf5Options {
    fn default() -> Self {
        Hdf5Options {
            mode: Hdf5Mode::Append,
            chunk_len: 4096,
            overwrite: false,
        }
    }
}

impl Hdf5Options {
    /// How batches are written; see [`Hdf5Mode`].
    pub fn with_mode(mut self, mode: Hdf5Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The HDF5 storage chunk length (elements) of a new dataset (default
    /// 4096; 0 is taken as 1).
    pub fn with_chunk_len(mut self, chunk_len: usize) -> Self {
        self.chunk_len = chunk_len.max(1);
        self
    }

    /// Delete the dataset (and its records) when the saver is created, if
    /// it exists (default: keep it, and append to it).
    pub fn with_overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// The mode.
    pub fn mode(&self) -> Hdf5Mode {
        self.mode
    }
}

/// Saves numeric results into one resizable 1-D dataset of a local HDF5 file.
///
/// `save` writes the batch (see [`Hdf5Mode`]), records it in
/// `<dataset>_chunk_ends`, then flushes the file and fsyncs it, so a batch is
/// durable when `save` returns. `resume(point)` shrinks the dataset back to
/// what the batches before `point.next_chunk` wrote.
///
/// HDF5 is not crash-safe: a process killed in the middle of a write can
/// leave the file unreadable. Between saves the file is consistent.
///
/// ```
/// use raygent_core::{Batch, ResumePoint, Saver};
/// use raygent_savers::{Hdf5Options, Hdf5Saver, read_hdf5};
///
/// let path = std::env::temp_dir().join(format!("raygent-doc-{}.h5", std::process::id()));
/// let opts = Hdf5Options::default().with_overwrite(true);
/// let mut saver = Hdf5Saver::<f64>::create(&path, "results", opts).unwrap();
/// saver.save(&Batch { chunks: 0..1, items: 0..2, results: &[0.5, 1.5] }).unwrap();
/// saver.save(&Batch { chunks: 1..2, items: 2..3, results: &[2.5] }).unwrap();
/// assert_eq!(read_hdf5::<f64>(&path, "results").unwrap(), [0.5, 1.5, 2.5]);
///
/// // A job resumed at chunk 1 forgets what chunk 1 wrote, then saves it again.
/// let mut again = Hdf5Saver::<f64>::create(&path, "results", Default::default()).unwrap();
/// again.resume(&ResumePoint { next_chunk: 1, next_item: 2 }).unwrap();
/// assert_eq!(read_hdf5::<f64>(&path, "results").unwrap(), [0.5, 1.5]);
/// again.save(&Batch { chunks: 1..2, items: 2..3, results: &[2.5] }).unwrap();
/// assert_eq!(read_hdf5::<f64>(&path, "results").unwrap(), [0.5, 1.5, 2.5]);
/// std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Debug)]
pub struct Hdf5Saver<T> {
    path: PathBuf,
    dataset: String,
    opts: Hdf5Options,
    file: h5::File,
    _results: PhantomData<fn(T)>,
}

/// One row of `<dataset>_chunk_ends`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    chunk_start: u64,
    chunk_end: u64,
    start: u64,
    end: u64,
}

impl<T: H5Type + Copy> Hdf5Saver<T> {
    /// Opens `path` for writing (creating the file if needed) and checks
    /// that an existing `dataset` holds 1-D results of type `T`.
    ///
    /// With [`Hdf5Options::with_overwrite`], an existing dataset and its
    /// records are deleted. The dataset itself is created by the first save.
    pub fn create(path: impl AsRef<Path>, dataset: &str, opts: Hdf5Options) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let file = h5::File::append(&path).map_err(|e| hdf5_error(&path, dataset, "opening", e))?;
        let saver = Hdf5Saver {
            path,
            dataset: dataset.to_owned(),
            opts,
            file,
            _results: PhantomData,
        };
        if saver.opts.overwrite {
            for name in [saver.dataset.clone(), saver.records_name()] {
                if saver.file.link_exists(&name) {
                    saver
                        .file
                        .unlink(&name)
                        .map_err(|e| saver.err("deleting", e))?;
                }
            }
            saver.sync()?;
        } else if let Some(ds) = saver.open_dataset()? {
            saver.check_dataset(&ds)?;
        }
        Ok(saver)
    }

    /// The HDF5 file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dataset's name.
    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    /// The number of elements in the dataset (0 before the first save).
    pub fn len(&self) -> Result<u64, Error> {
        Ok(self.open_dataset()?.map_or(0, |ds| ds.size() as u64))
    }

    /// Whether the dataset is missing or empty.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Writes `results[i]` at position `indices[i]`, growing the dataset to
    /// fit (the seed's `indices` argument), then flushes and fsyncs the file.
    /// Positions never written keep the fill value (0). Not recorded in
    /// `<dataset>_chunk_ends`, so not undone by `resume`.
    pub fn save_at(&mut self, indices: &[u64], results: &[T]) -> Result<(), Error> {
        if indices.len() != results.len() {
            return Err(self.dataset_error(format!(
                "{} indices for {} results",
                indices.len(),
                results.len()
            )));
        }
        let ds = self.dataset_for_write()?;
        let needed = indices.iter().map(|&i| i + 1).max().unwrap_or(0);
        if needed > ds.size() as u64 {
            ds.resize(to_usize(needed))
                .map_err(|e| self.err("resizing", e))?;
        }
        for (&i, &v) in indices.iter().zip(results) {
            let i = to_usize(i);
            ds.write_slice(&[v][..], i..i + 1)
                .map_err(|e| self.err("writing to", e))?;
        }
        self.sync()
    }

    /// Saves one batch (see [`Saver::save`]); the typed-error version.
    pub fn save_batch(&mut self, batch: &Batch<'_, T>) -> Result<(), Error> {
        let ds = self.dataset_for_write()?;
        let n = batch.results.len() as u64;
        let (start, end) = match self.opts.mode {
            Hdf5Mode::Append => {
                let start = ds.size() as u64;
                (start, start + n)
            }
            Hdf5Mode::Overwrite => (0, n),
            Hdf5Mode::UpdateAtIndices => {
                let items = batch.items.end.saturating_sub(batch.items.start);
                if items != n {
                    return Err(self.dataset_error(format!(
                        "update-at-indices needs one result per item, but the batch of chunks \
                         {:?} has {n} results for items {:?} (a failed chunk was skipped?)",
                        batch.chunks, batch.items
                    )));
                }
                (batch.items.start, batch.items.end)
            }
        };
        let new_len = match self.opts.mode {
            Hdf5Mode::Overwrite => end,
            _ => end.max(ds.size() as u64),
        };
        if new_len != ds.size() as u64 {
            ds.resize(to_usize(new_len))
                .map_err(|e| self.err("resizing", e))?;
        }
        if n > 0 {
            ds.write_slice(batch.results, to_usize(start)..to_usize(end))
                .map_err(|e| self.err("writing to", e))?;
        }
        self.push_record(Record {
            chunk_start: batch.chunks.start,
            chunk_end: batch.chunks.end,
            start,
            end,
        })?;
        self.sync()
    }

    /// Forgets what the batches of chunks `>= point.next_chunk` wrote (see
    /// [`Saver::resume`]); the typed-error version.
    ///
    /// The records must cover exactly chunks `0..point.next_chunk` up to that
    /// point, else the file was changed since the checkpoint and the resume
    /// is refused.
    pub fn resume_at(&mut self, point: &ResumePoint) -> Result<(), Error> {
        let records = self.read_records()?;
        let next = point.next_chunk;
        let kept = records.iter().take_while(|r| r.chunk_end <= next).count();
        if let Some(r) = records.get(kept)
            && r.chunk_start < next
        {
            return Err(self.dataset_error(format!(
                "cannot resume at chunk {next}: a save covered chunks {}..{}",
                r.chunk_start, r.chunk_end
            )));
        }
        let covered = records[..kept].last().map_or(0, |r| r.chunk_end);
        if covered != next {
            return Err(self.dataset_error(format!(
                "cannot resume at chunk {next}: the records in {}{CHUNK_ENDS_SUFFIX} cover \
                 chunks up to {covered}; the file was changed since the checkpoint",
                self.dataset
            )));
        }
        let Some(ds) = self.open_dataset()? else {
            if next == 0 {
                return Ok(());
            }
            return Err(self.dataset_error(format!(
                "cannot resume at chunk {next}: the dataset does not exist"
            )));
        };
        let len = match self.opts.mode {
            Hdf5Mode::Overwrite if kept < records.len() => Some(0),
            Hdf5Mode::Overwrite => None,
            _ => Some(match records[..kept].last() {
                Some(r) => r.end,
                None => records.first().map_or(ds.size() as u64, |r| r.start),
            }),
        };
        if let Some(len) = len
            && len < ds.size() as u64
        {
            ds.resize(to_usize(len))
                .map_err(|e| self.err("truncating", e))?;
        }
        if kept < records.len() {
            let rec = self.records_dataset()?;
            rec.resize((kept, 4))
                .map_err(|e| self.err("truncating the records of", e))?;
        }
        self.sync()
    }

    fn records_name(&self) -> String {
        format!("{}{CHUNK_ENDS_SUFFIX}", self.dataset)
    }

    fn err(&self, op: &'static str, e: h5::Error) -> Error {
        hdf5_error(&self.path, &self.dataset, op, e)
    }

    fn dataset_error(&self, reason: String) -> Error {
        Error::Hdf5Dataset {
            path: self.path.clone(),
            dataset: self.dataset.clone(),
            reason,
        }
    }

    fn open_dataset(&self) -> Result<Option<h5::Dataset>, Error> {
        if !self.file.link_exists(&self.dataset) {
            return Ok(None);
        }
        self.file
            .dataset(&self.dataset)
            .map(Some)
            .map_err(|e| self.err("opening", e))
    }

    fn check_dataset(&self, ds: &h5::Dataset) -> Result<(), Error> {
        let found = ds
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(|e| self.err("reading the type of", e))?;
        let expected = T::type_descriptor();
        if found != expected {
            return Err(
                self.dataset_error(format!("it holds {found}, but the saver writes {expected}"))
            );
        }
        if ds.ndim() != 1 || !ds.is_resizable() {
            return Err(self.dataset_error(format!(
                "it has shape {:?}{}; the saver needs a resizable 1-D dataset",
                ds.shape(),
                if ds.is_resizable() { "" } else { ", fixed" }
            )));
        }
        Ok(())
    }

    fn dataset_for_write(&self) -> Result<h5::Dataset, Error> {
        if let Some(ds) = self.open_dataset()? {
            return Ok(ds);
        }
        self.file
            .new_dataset::<T>()
            .chunk(self.opts.chunk_len)
            .shape(h5::Extent::resizable(0))
            .create(self.dataset.as_str())
            .map_err(|e| self.err("creating", e))
    }

    fn records_dataset(&self) -> Result<h5::Dataset, Error> {
        let name = self.records_name();
        if self.file.link_exists(&name) {
            return self
                .file
                .dataset(&name)
                .map_err(|e| self.err("opening the records of", e));
        }
        self.file
            .new_dataset::<u64>()
            .chunk((64, 4))
            .shape((0.., 4))
            .create(name.as_str())
            .map_err(|e| self.err("creating the records of", e))
    }

    fn read_records(&self) -> Result<Vec<Record>, Error> {
        if !self.file.link_exists(&self.records_name()) {
            return Ok(Vec::new());
        }
        let rec = self.records_dataset()?;
        let shape = rec.shape();
        if shape.len() != 2 || shape[1] != 4 {
            return Err(self.dataset_error(format!(
                "its records {} have shape {shape:?}, expected (n, 4)",
                self.records_name()
            )));
        }
        let raw: Vec<u64> = rec
            .read_raw()
            .map_err(|e| self.err("reading the records of", e))?;
        Ok(raw
            .chunks_exact(4)
            .map(|r| Record {
                chunk_start: r[0],
                chunk_end: r[1],
                start: r[2],
                end: r[3],
            })
            .collect())
    }

    fn push_record(&self, r: Record) -> Result<(), Error> {
        let rec = self.records_dataset()?;
        let n = rec.shape().first().copied().unwrap_or(0);
        rec.resize((n + 1, 4))
            .map_err(|e| self.err("resizing the records of", e))?;
        let row = [r.chunk_start, r.chunk_end, r.start, r.end];
        rec.write_slice(&row[..], (n, ..))
            .map_err(|e| self.err("writing the records of", e))
    }

    /// Flushes HDF5's buffers to the OS, then fsyncs the file.
    fn sync(&self) -> Result<(), Error> {
        self.file.flush().map_err(|e| self.err("flushing", e))?;
        std::fs::File::open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::Hdf5 {
                path: self.path.clone(),
                dataset: self.dataset.clone(),
                op: "fsyncing the file of",
                source: Box::new(e),
            })
    }
}

impl<T: H5Type + Copy + Send + 'static> Saver<T> for Hdf5Saver<T> {
    fn save(&mut self, batch: &Batch<'_, T>) -> Result<(), SaveError> {
        Ok(self.save_batch(batch)?)
    }

    fn resume(&mut self, point: &ResumePoint) -> Result<(), SaveError> {
        Ok(self.resume_at(point)?)
    }

    /// The dataset is truncated to the rows before the resume point.
    fn can_resume(&self) -> bool {
        true
    }

    fn check_empty(&mut self) -> Result<(), SaveError> {
        let len = self.len()?;
        if len > 0 {
            return Err(SaveError::Config(
                self.dataset_error(format!(
                    "it already holds {len} results; resume the job that wrote it, \
                     choose another dataset, or allow overwriting it"
                ))
                .into(),
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let path = std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone());
        format!("hdf5 {}#{}", path.display(), self.dataset)
    }
}

/// Reads every element of the 1-D `dataset` in the HDF5 file at `path`.
pub fn read_hdf5<T: H5Type>(path: impl AsRef<Path>, dataset: &str) -> Result<Vec<T>, Error> {
    let path = path.as_ref();
    let file = h5::File::open(path).map_err(|e| hdf5_error(path, dataset, "opening", e))?;
    let ds = file
        .dataset(dataset)
        .map_err(|e| hdf5_error(path, dataset, "opening", e))?;
    ds.read_raw()
        .map_err(|e| hdf5_error(path, dataset, "reading", e))
}

fn hdf5_error(path: &Path, dataset: &str, op: &'static str, e: h5::Error) -> Error {
    Error::Hdf5 {
        path: path.to_path_buf(),
        dataset: dataset.to_owned(),
        op,
        source: Box::new(e),
    }
}

/// Dataset positions are `usize` in hdf5's API; on 64-bit targets this never
/// saturates.
fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
