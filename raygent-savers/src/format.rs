//! Part formats: how a batch of results becomes the bytes of one part.
//!
//! A format knows nothing of where parts go (see [`Location`](crate::Location))
//! and a destination knows nothing of formats; a new format (Parquet, Zarr)
//! is a new [`PartFormat`] plus a [`Format`] variant.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use bytes::{Buf, Bytes};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Per-part settings a format records in the part's commit record, so that a
/// reader can decode the part (for CSV: whether it starts with a header).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PartParams {
    /// CSV: the part's first row is a header (results serialize as records
    /// with field names, i.e. structs or maps).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub header: bool,
    /// Parquet: the part's first column is `_index`, each result's position
    /// in the input.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub index_column: bool,
    /// Parquet: the results are plain values in one column named `value`
    /// (not structs, one column per field).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub value_column: bool,
    /// Parquet: the dataset's schema (a `ParquetSchema`), recorded by the
    /// first part that holds results, which fixed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
}

/// The iterator a format's decoder returns: results, or a message saying
/// why the next one could not be decoded.
pub type DecodeIter<T> = Box<dyn Iterator<Item = Result<T, String>>>;

/// A serialization format for parts.
///
/// Implementations must be deterministic (the same results encode to the same
/// bytes) so that a retried save writes the same part.
pub trait PartFormat {
    /// The name recorded in commit records (`"cbor"`).
    fn name(&self) -> &'static str;
    /// The version of the encoding, recorded in commit records; readers
    /// refuse versions they do not know.
    fn version(&self) -> u32;
    /// The file extension of parts, without the dot.
    fn extension(&self) -> &'static str;
    /// Encodes `results` as one part, writing to `out` (which the caller
    /// buffers and may stream to the store while encoding goes on); sets any
    /// per-part settings in `params`.
    fn encode<T: Serialize, W: Write>(
        &self,
        results: &[T],
        out: W,
        params: &mut PartParams,
    ) -> Result<(), String>;
    /// Decodes a part, one result at a time.
    fn decode<T: DeserializeOwned + 'static>(
        &self,
        part: Bytes,
        params: &PartParams,
    ) -> DecodeIter<T>;
}

/// A CBOR sequence: each result is one CBOR value, back to back (RFC 8742).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cbor;

/// JSON Lines: each result is one line of JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonLines;

/// CSV, via serde: structs and maps get a header row (once per part),
/// scalars and tuples do not. Nested values are not supported by CSV.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Csv;

/// Parquet (feature `parquet`): one Parquet file per part, zstd-compressed,
/// with column statistics; see the [`parquet`](crate::parquet) module.
///
/// Used on its own, each part's schema comes from its results, with no
/// `_index` column; a [`DatasetSaver`](crate::DatasetSaver) fixes the schema
/// by the dataset's first part and adds `_index`.
#[cfg(feature = "parquet")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parquet;

#[cfg(feature = "parquet")]
impl PartFormat for Parquet {
    fn name(&self) -> &'static str {
        "parquet"
    }
    fn version(&self) -> u32 {
        1
    }
    fn extension(&self) -> &'static str {
        "parquet"
    }
    fn encode<T: Serialize, W: Write>(
        &self,
        results: &[T],
        mut out: W,
        params: &mut PartParams,
    ) -> Result<(), String> {
        let bytes = crate::parquet::ParquetEncoder::default()
            .encode(results, None, params)
            .map_err(|e| match e {
                crate::parquet::EncodeFailure::Mismatch(m) => m.to_string(),
                crate::parquet::EncodeFailure::Other(m) => m,
            })?;
        out.write_all(&bytes).map_err(|e| e.to_string())
    }
    fn decode<T: DeserializeOwned + 'static>(
        &self,
        part: Bytes,
        params: &PartParams,
    ) -> DecodeIter<T> {
        crate::parquet::decode(part, params)
    }
}

impl PartFormat for Cbor {
    fn name(&self) -> &'static str {
        "cbor"
    }
    fn version(&self) -> u32 {
        1
    }
    fn extension(&self) -> &'static str {
        "cbor"
    }
    fn encode<T: Serialize, W: Write>(
        &self,
        results: &[T],
        mut out: W,
        _: &mut PartParams,
    ) -> Result<(), String> {
        for (i, r) in results.iter().enumerate() {
            ciborium::into_writer(r, &mut out).map_err(|e| format!("result {i}: {e}"))?;
        }
        Ok(())
    }
    fn decode<T: DeserializeOwned + 'static>(&self, part: Bytes, _: &PartParams) -> DecodeIter<T> {
        Box::new(
            raygent_core::CborSeqReader::new(part.reader()).map(|r| r.map_err(|e| e.to_string())),
        )
    }
}

impl PartFormat for JsonLines {
    fn name(&self) -> &'static str {
        "jsonl"
    }
    fn version(&self) -> u32 {
        1
    }
    fn extension(&self) -> &'static str {
        "jsonl"
    }
    fn encode<T: Serialize, W: Write>(
        &self,
        results: &[T],
        mut out: W,
        _: &mut PartParams,
    ) -> Result<(), String> {
        for (i, r) in results.iter().enumerate() {
            serde_json::to_writer(&mut out, r).map_err(|e| format!("result {i}: {e}"))?;
            out.write_all(b"\n")
                .map_err(|e| format!("result {i}: {e}"))?;
        }
        Ok(())
    }
    fn decode<T: DeserializeOwned + 'static>(&self, part: Bytes, _: &PartParams) -> DecodeIter<T> {
        let mut index = 0u64;
        Box::new(
            serde_json::Deserializer::from_reader(part.reader())
                .into_iter::<T>()
                .map(move |r| {
                    let i = index;
                    index += 1;
                    r.map_err(|e| format!("result {i}: {e}"))
                }),
        )
    }
}

impl PartFormat for Csv {
    fn name(&self) -> &'static str {
        "csv"
    }
    fn version(&self) -> u32 {
        1
    }
    fn extension(&self) -> &'static str {
        "csv"
    }
    fn encode<T: Serialize, W: Write>(
        &self,
        results: &[T],
        out: W,
        params: &mut PartParams,
    ) -> Result<(), String> {
        // The csv crate writes a header before the first record only for
        // structs and maps; find out which by encoding the first result alone.
        params.header = match results.first() {
            Some(first) => csv_rows(first)? == 2,
            None => false,
        };
        let mut w = csv::WriterBuilder::new().has_headers(true).from_writer(out);
        for (i, r) in results.iter().enumerate() {
            w.serialize(r).map_err(|e| format!("result {i}: {e}"))?;
        }
        w.flush().map_err(|e| e.to_string())?;
        Ok(())
    }
    fn decode<T: DeserializeOwned + 'static>(
        &self,
        part: Bytes,
        params: &PartParams,
    ) -> DecodeIter<T> {
        let r = csv::ReaderBuilder::new()
            .has_headers(params.header)
            .from_reader(part.reader());
        let mut index = 0u64;
        Box::new(r.into_deserialize::<T>().map(move |r| {
            let i = index;
            index += 1;
            r.map_err(|e| format!("result {i}: {e}"))
        }))
    }
}

fn csv_rows<T: Serialize>(value: &T) -> Result<usize, String> {
    let mut buf = Vec::new();
    {
        let mut w = csv::WriterBuilder::new()
            .has_headers(true)
            .from_writer(&mut buf);
        w.serialize(value).map_err(|e| format!("result 0: {e}"))?;
        w.flush().map_err(|e| e.to_string())?;
    }
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&buf[..]);
    Ok(r.records().count())
}

/// The formats this crate writes and reads.
///
/// ```
/// use raygent_savers::Format;
/// let f: Format = "jsonl".parse().unwrap();
/// assert_eq!(f, Format::JsonLines);
/// assert_eq!(f.to_string(), "jsonl");
/// assert_eq!(Format::default(), Format::Cbor);
/// assert!("xml".parse::<Format>().is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// [`Cbor`], the default: compact, typed, self-delimiting.
    #[default]
    Cbor,
    /// [`JsonLines`].
    JsonLines,
    /// [`Csv`].
    Csv,
    /// [`Parquet`] (feature `parquet`).
    #[cfg(feature = "parquet")]
    Parquet,
}

impl Format {
    /// Every format, for tests and help texts.
    #[cfg(not(feature = "parquet"))]
    pub const ALL: [Format; 3] = [Format::Cbor, Format::JsonLines, Format::Csv];
    /// Every format, for tests and help texts.
    #[cfg(feature = "parquet")]
    pub const ALL: [Format; 4] = [
        Format::Cbor,
        Format::JsonLines,
        Format::Csv,
        Format::Parquet,
    ];

    /// The format named `name` at `version`, as found in a commit record.
    pub fn from_record(name: &str, version: u32) -> Option<Format> {
        let f = name.parse::<Format>().ok()?;
        (f.version() == version).then_some(f)
    }
}

macro_rules! dispatch {
    ($self:ident, $f:ident => $e:expr) => {
        match $self {
            Format::Cbor => {
                let $f = Cbor;
                $e
            }
            Format::JsonLines => {
                let $f = JsonLines;
                $e
            }
            Format::Csv => {
                let $f = Csv;
                $e
            }
            #[cfg(feature = "parquet")]
            Format::Parquet => {
                let $f = Parquet;
                $e
            }
        }
    };
}

impl PartFormat for Format {
    fn name(&self) -> &'static str {
        dispatch!(self, f => f.name())
    }
    fn version(&self) -> u32 {
        dispatch!(self, f => f.version())
    }
    fn extension(&self) -> &'static str {
        dispatch!(self, f => f.extension())
    }
    fn encode<T: Serialize, W: Write>(
        &self,
        results: &[T],
        out: W,
        params: &mut PartParams,
    ) -> Result<(), String> {
        dispatch!(self, f => f.encode(results, out, params))
    }
    fn decode<T: DeserializeOwned + 'static>(
        &self,
        part: Bytes,
        params: &PartParams,
    ) -> DecodeIter<T> {
        dispatch!(self, f => f.decode(part, params))
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "cbor" => Ok(Format::Cbor),
            "jsonl" | "jsonlines" | "json-lines" | "ndjson" => Ok(Format::JsonLines),
            "csv" => Ok(Format::Csv),
            #[cfg(feature = "parquet")]
            "parquet" | "pq" => Ok(Format::Parquet),
            _ => Err(Error::UnknownFormat(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Row {
        id: u32,
        name: String,
        score: f64,
    }

    fn round_trip<T>(f: Format, values: &[T]) -> (Vec<T>, PartParams)
    where
        T: Serialize + DeserializeOwned + 'static,
    {
        let mut out = Vec::new();
        let mut params = PartParams::default();
        f.encode(values, &mut out, &mut params).unwrap();
        let back = f
            .decode::<T>(Bytes::from(out), &params)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        (back, params)
    }

    #[test]
    fn every_format_round_trips_structs_and_scalars() {
        let rows = vec![
            Row {
                id: 1,
                name: "a, \"quoted\"\nline".into(),
                score: 0.5,
            },
            Row {
                id: 2,
                name: String::new(),
                score: -1e300,
            },
        ];
        let lines = vec!["x".to_string(), "y z".into(), "".into()];
        for f in Format::ALL {
            assert_eq!(round_trip(f, &rows).0, rows, "{f}");
            assert_eq!(round_trip(f, &[7u64, 8, 9]).0, vec![7, 8, 9], "{f}");
            if f != Format::Csv {
                // A CSV row of one empty field is an empty line, which CSV
                // readers skip: CSV cannot hold an empty string alone.
                assert_eq!(round_trip(f, &lines).0, lines, "{f}");
            }
        }
    }

    #[test]
    fn csv_writes_one_header_for_structs_and_none_for_scalars() {
        let rows = vec![
            Row {
                id: 1,
                name: "a".into(),
                score: 1.0
            };
            3
        ];
        let mut out = Vec::new();
        let mut params = PartParams::default();
        Format::Csv.encode(&rows, &mut out, &mut params).unwrap();
        assert!(params.header);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("id,name,score").count(), 1);
        assert_eq!(text.lines().count(), 4);
        let (back, params) = round_trip(Format::Csv, &[1u8, 2]);
        assert!(!params.header);
        assert_eq!(back, vec![1, 2]);
    }

    #[test]
    fn encoding_errors_name_the_result() {
        // CSV cannot hold a map inside a record.
        let inner: std::collections::BTreeMap<String, u8> = [("b".to_string(), 1)].into();
        let nested = vec![std::collections::BTreeMap::from([("a".to_string(), inner)])];
        let err = Format::Csv
            .encode(&nested, &mut Vec::new(), &mut PartParams::default())
            .unwrap_err();
        assert!(err.contains("result 0"), "{err}");
    }

    #[test]
    fn decode_errors_are_reported() {
        for f in Format::ALL {
            let mut out = Vec::new();
            f.encode(&["hello".to_string()], &mut out, &mut PartParams::default())
                .unwrap();
            let got: Vec<Result<u32, String>> =
                f.decode(Bytes::from(out), &PartParams::default()).collect();
            assert!(got.iter().any(|r| r.is_err()), "{f}: {got:?}");
        }
    }
}
