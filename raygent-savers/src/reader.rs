//! `DatasetReader`: every committed result, in input order, part by part.

use std::ops::Range;

use bytes::Bytes;
use object_store::ObjectStoreExt;
use serde::de::DeserializeOwned;

use crate::format::{DecodeIter, Format, PartFormat};
use crate::manifest::{self, COMPLETE_RECORD, CompleteRecord, PartInfo};
use crate::saver::io_runtime;
use crate::{Error, Location, S3Options};

/// Reads a dataset written by [`DatasetSaver`](crate::DatasetSaver).
///
/// Only parts with a commit record that belongs to the contiguous run of
/// chunks from 0 are visible; parts are fetched one at a time and checked
/// against their record (size, CRC-32, result count) before their results
/// are yielded.
///
/// Like the saver, the reader owns a small runtime for its I/O: use it from
/// a plain thread, not from inside an async runtime.
pub struct DatasetReader {
    location: Location,
    rt: tokio::runtime::Runtime,
    parts: Vec<PartInfo>,
    format: Option<Format>,
    complete: bool,
}

impl std::fmt::Debug for DatasetReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetReader")
            .field("url", &self.location.url())
            .field("format", &self.format)
            .field("parts", &self.parts.len())
            .field("complete", &self.complete)
            .finish()
    }
}

impl DatasetReader {
    /// Opens the dataset at `url` (S3 settings from the environment).
    pub fn open(url: &str) -> Result<DatasetReader, Error> {
        DatasetReader::open_location(Location::parse_existing(url)?)
    }

    /// Opens the dataset at `url` with explicit S3 settings.
    pub fn open_with(url: &str, s3: &S3Options) -> Result<DatasetReader, Error> {
        DatasetReader::open_location(Location::parse_existing_with(url, s3)?)
    }

    /// Opens the dataset at `location`: lists its commit records and keeps
    /// the contiguous run from chunk 0. Fails with [`Error::NotFound`] when
    /// there is no dataset there.
    pub fn open_location(location: Location) -> Result<DatasetReader, Error> {
        let rt = io_runtime(1)?;
        let url = location.url().to_owned();
        let (parts, complete) = rt.block_on(async {
            let listing = manifest::list(&location).await?;
            if listing.records.is_empty() && !listing.complete {
                return Err(Error::NotFound { url: url.clone() });
            }
            let (run, gap) = manifest::contiguous_run(&url, &listing.records)?;
            if let Some(g) = gap {
                tracing::warn!(
                    url,
                    record = g.name,
                    "ignoring commit records after a gap in the chunks"
                );
            }
            // A finished dataset lists every part in one record; use it when
            // it matches the commit records found.
            if listing.complete {
                let c: CompleteRecord = manifest::get_json(&location, COMPLETE_RECORD).await?;
                let same = c.parts.len() == run.len()
                    && c.parts.iter().zip(run).all(|(p, n)| p.chunks() == n.chunks);
                if same {
                    for (p, n) in c.parts.iter().zip(run) {
                        manifest::check_record(&url, n, p)?;
                    }
                    return Ok((c.parts, true));
                }
                tracing::warn!(
                    url,
                    "the completion record does not match the commit records"
                );
            }
            Ok((manifest::load_records(&location, run).await?, false))
        })?;
        let format = match parts.first() {
            None => None,
            Some(first) => Some(
                Format::from_record(&first.format, first.format_version).ok_or_else(|| {
                    Error::UnsupportedFormat {
                        url: url.clone(),
                        part: first.part.clone(),
                        format: first.format.clone(),
                        version: first.format_version,
                    }
                })?,
            ),
        };
        if let Some(p) = parts
            .iter()
            .find(|p| p.format != parts[0].format || p.format_version != parts[0].format_version)
        {
            return Err(Error::manifest(
                &url,
                format!(
                    "part {} is {} version {}, unlike the parts before it ({} version {})",
                    p.part, p.format, p.format_version, parts[0].format, parts[0].format_version
                ),
            ));
        }
        Ok(DatasetReader {
            location,
            rt,
            parts,
            format,
            complete,
        })
    }

    /// The dataset's URL.
    pub fn url(&self) -> &str {
        self.location.url()
    }

    /// The dataset's location.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The committed parts, in chunk order.
    pub fn parts(&self) -> &[PartInfo] {
        &self.parts
    }

    /// The parts' format (`None` for a dataset with no parts).
    pub fn format(&self) -> Option<Format> {
        self.format
    }

    /// The committed chunks, `0..n`.
    pub fn chunks(&self) -> Range<u64> {
        0..self.parts.last().map_or(0, |p| p.chunk_end)
    }

    /// How many results the committed parts hold.
    pub fn result_count(&self) -> u64 {
        self.parts.iter().map(|p| p.results).sum()
    }

    /// Whether the job that wrote the dataset finished (called `finish`).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The bytes of one part, checked against its commit record.
    pub fn read_part(&self, part: &PartInfo) -> Result<Bytes, Error> {
        let url = self.location.url();
        let path = self.location.path(&part.part);
        let bytes = self.rt.block_on(async {
            let got = self.location.store().get(&path).await;
            match got {
                Ok(g) => g.bytes().await,
                Err(e) => Err(e),
            }
        });
        let bytes = match bytes {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::corrupt(url, &part.part, "the part is missing"));
            }
            Err(e) => return Err(Error::store(url, &part.part, "reading", e)),
        };
        if bytes.len() as u64 != part.bytes {
            return Err(Error::corrupt(
                url,
                &part.part,
                format!(
                    "it has {} bytes, its commit record says {} (truncated or replaced)",
                    bytes.len(),
                    part.bytes
                ),
            ));
        }
        let crc = crc32fast::hash(&bytes);
        if crc != part.crc32 {
            return Err(Error::corrupt(
                url,
                &part.part,
                format!(
                    "checksum mismatch: CRC-32 {crc:08x}, commit record says {:08x}",
                    part.crc32
                ),
            ));
        }
        Ok(bytes)
    }

    /// The results of one part, after checking its bytes.
    pub fn part_results<T: DeserializeOwned + 'static>(
        &self,
        part: &PartInfo,
    ) -> Result<PartResults<T>, Error> {
        let bytes = self.read_part(part)?;
        let format = Format::from_record(&part.format, part.format_version).ok_or_else(|| {
            Error::UnsupportedFormat {
                url: self.url().to_owned(),
                part: part.part.clone(),
                format: part.format.clone(),
                version: part.format_version,
            }
        })?;
        Ok(PartResults {
            url: self.url().to_owned(),
            part: part.part.clone(),
            expected: part.results,
            seen: 0,
            inner: Some(format.decode(bytes, &part.params)),
        })
    }

    /// A Parquet part's rows as Arrow record batches, `_index` included
    /// (feature `parquet`), after checking its bytes. An empty part (all its
    /// chunks skipped) has none.
    #[cfg(feature = "parquet")]
    pub fn record_batches(&self, part: &PartInfo) -> Result<Vec<arrow_array::RecordBatch>, Error> {
        let bytes = self.read_part(part)?;
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        let corrupt = |e: parquet::errors::ParquetError| {
            Error::corrupt(
                self.url(),
                &part.part,
                format!("not a readable Parquet file: {e}"),
            )
        };
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(corrupt)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::corrupt(
                    self.url(),
                    &part.part,
                    format!("not a readable Parquet file: {e}"),
                )
            })
    }

    /// Every committed result, in input order, streaming part by part.
    ///
    /// Any type the results deserialize into works: the type they were saved
    /// as, or a generic value (`serde_json::Value`, `ciborium::Value`).
    /// After an error the iterator ends.
    pub fn iter<T: DeserializeOwned + 'static>(&self) -> Results<'_, T> {
        Results {
            reader: self,
            next_part: 0,
            current: None,
            failed: false,
        }
    }
}

/// The results of one part; see [`DatasetReader::part_results`].
pub struct PartResults<T> {
    url: String,
    part: String,
    expected: u64,
    seen: u64,
    inner: Option<DecodeIter<T>>,
}

impl<T> Iterator for PartResults<T> {
    type Item = Result<T, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        let inner = self.inner.as_mut()?;
        let item = match inner.next() {
            Some(Ok(v)) => {
                self.seen += 1;
                if self.seen <= self.expected {
                    return Some(Ok(v));
                }
                Err(format!(
                    "it holds more results than the {} its commit record lists",
                    self.expected
                ))
            }
            Some(Err(m)) => Err(format!("cannot decode: {m}")),
            None if self.seen == self.expected => {
                self.inner = None;
                return None;
            }
            None => Err(format!(
                "it holds {} results, its commit record lists {}",
                self.seen, self.expected
            )),
        };
        self.inner = None;
        Some(item.map_err(|m| Error::corrupt(&self.url, &self.part, m)))
    }
}

/// Every committed result of a dataset; see [`DatasetReader::iter`].
pub struct Results<'r, T> {
    reader: &'r DatasetReader,
    next_part: usize,
    current: Option<PartResults<T>>,
    failed: bool,
}

impl<T: DeserializeOwned + 'static> Iterator for Results<'_, T> {
    type Item = Result<T, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(cur) = self.current.as_mut() {
                match cur.next() {
                    Some(Ok(v)) => return Some(Ok(v)),
                    Some(Err(e)) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                    None => self.current = None,
                }
            }
            let part = self.reader.parts.get(self.next_part)?;
            self.next_part += 1;
            match self.reader.part_results(part) {
                Ok(p) => self.current = Some(p),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
