//! The Parquet format (feature `parquet`): each part is one Parquet file,
//! zstd-compressed, with column statistics, whose columns come from the
//! results' serde shape.
//!
//! - A result that serializes as a struct or a map (a Rust struct, a JSON
//!   object) gives one column per field; nested structs become struct
//!   columns, sequences list columns, `Option`s nullable values. Any other
//!   result (a number, a string, a list) is one column named `value`.
//! - The schema is fixed by the first part that holds results, recorded in
//!   that part's commit record (`params.schema`), and every later part is
//!   written with it, so a reader of `*.parquet` sees one schema. A later
//!   result that does not fit stops the job with [`Error::Schema`](crate::Error::Schema),
//!   naming the item, the chunk, the field and both types. One widening is
//!   allowed: an integer goes into a float column, and a null (or a missing
//!   field) into any column. A column that is null in every result of the
//!   first part has type `null` and stays so, unless the schema is given
//!   up front ([`ParquetSchema::of_type`] traces it from the Rust type).
//! - `_index` (int64), the first column unless switched off
//!   ([`SaverOptions::with_index_column`](crate::SaverOptions::with_index_column)),
//!   holds each result's position in the input.
//!
//! ```
//! use raygent_core::Batch;
//! use raygent_savers::{DatasetReader, DatasetSaver, Format, SaverOptions};
//!
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Hit { id: u64, score: f64, tags: Vec<String>, note: Option<String> }
//!
//! let dir = std::env::temp_dir().join(format!("raygent-parquet-doc-{}", std::process::id()));
//! let url = dir.to_str().unwrap();
//! let opts = SaverOptions::default().with_format(Format::Parquet).with_overwrite(true);
//! let mut saver = DatasetSaver::create(url, opts).unwrap();
//! let hits: Vec<Hit> = (0..4)
//!     .map(|id| Hit { id, score: id as f64 / 2.0, tags: vec!["a".into()], note: None })
//!     .collect();
//! saver.save_batch(&Batch { chunks: 0..2, items: 0..4, results: &hits }).unwrap();
//! saver.finish_dataset().unwrap();
//! assert!(dir.join("part-00000000000000000000-00000000000000000002.parquet").is_file());
//!
//! // Read back as the type, or as generic values (with the `_index` column
//! // left out: it is the result's position, not part of the result).
//! let reader = DatasetReader::open(url).unwrap();
//! let back: Vec<Hit> = reader.iter().collect::<Result<_, _>>().unwrap();
//! assert_eq!(back, hits);
//! let schema = raygent_savers::ParquetSchema::of_dataset(&reader).unwrap().unwrap();
//! assert_eq!(schema.to_string(), "_index: int64, id: uint64, score: float64, tags: list<string>, note: null");
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::fmt;
use std::sync::Arc;

use arrow_array::types::{Float64Type, Int64Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, ListArray, NullArray, PrimitiveArray, RecordBatch,
    RecordBatchOptions, StringArray, StructArray,
};
use arrow_buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Fields, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::format::{DecodeIter, PartParams};
use crate::value::{Key, Value, to_value};

/// The column holding each result's position in the input.
pub const INDEX_COLUMN: &str = "_index";
/// The column holding results that are not structs or maps.
pub const VALUE_COLUMN: &str = "value";
/// The zstd level of parts (1: fast; numbers and text still shrink a lot).
const ZSTD_LEVEL: i32 = 1;

/// The type of a Parquet column, as recorded in a job's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ColumnType {
    /// Only nulls were seen (Arrow `Null`).
    Null,
    /// Arrow `Boolean`.
    Bool,
    /// Arrow `Int64` (Rust `i8`..`i64`, JSON integers).
    Int64,
    /// Arrow `UInt64` (Rust `u8`..`u64`).
    UInt64,
    /// Arrow `Float64` (Rust `f32`, `f64`, JSON numbers with a fraction).
    Float64,
    /// Arrow `Utf8` (strings, `char`s, unit enum variants).
    String,
    /// Arrow `Binary`.
    Binary,
    /// Arrow `List` of nullable items.
    List(Box<ColumnType>),
    /// Arrow `Struct` of nullable fields.
    Struct(Vec<Column>),
}

/// A named column of a [`ParquetSchema`] (or a field of a struct column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Its type (every column is nullable).
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

impl Column {
    /// A column.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Column {
        Column {
            name: name.into(),
            ty,
        }
    }
}

/// The columns of a Parquet dataset: fixed by its first part with results,
/// recorded in that part's commit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ParquetSchema {
    /// Whether the first column is `_index`.
    pub index: bool,
    /// Whether the results are plain values, in one column named `value`
    /// (rather than structs, one column per field).
    pub value: bool,
    /// The columns after `_index`.
    pub columns: Vec<Column>,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Null => f.write_str("null"),
            ColumnType::Bool => f.write_str("bool"),
            ColumnType::Int64 => f.write_str("int64"),
            ColumnType::UInt64 => f.write_str("uint64"),
            ColumnType::Float64 => f.write_str("float64"),
            ColumnType::String => f.write_str("string"),
            ColumnType::Binary => f.write_str("binary"),
            ColumnType::List(t) => write!(f, "list<{t}>"),
            ColumnType::Struct(cols) => {
                f.write_str("struct<")?;
                write_columns(f, cols)?;
                f.write_str(">")
            }
        }
    }
}

fn write_columns(f: &mut fmt::Formatter<'_>, cols: &[Column]) -> fmt::Result {
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{}: {}", c.name, c.ty)?;
    }
    Ok(())
}

impl fmt::Display for ParquetSchema {
    /// `_index: int64, id: uint64, tags: list<string>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index {
            write!(f, "{INDEX_COLUMN}: int64")?;
            if !self.columns.is_empty() {
                f.write_str(", ")?;
            }
        }
        write_columns(f, &self.columns)
    }
}

impl ParquetSchema {
    /// A schema for results that are structs: one column per field.
    ///
    /// Set it up front with
    /// [`SaverOptions::with_parquet_schema`](crate::SaverOptions::with_parquet_schema)
    /// where the first part cannot tell a column's type (an `Option` field
    /// that is `None` in all of its results would otherwise be a `null`
    /// column for good):
    ///
    /// ```
    /// use raygent_savers::{Column, ColumnType, ParquetSchema};
    /// let s = ParquetSchema::columns(vec![
    ///     Column::new("id", ColumnType::UInt64),
    ///     Column::new("error", ColumnType::String),
    ///     Column::new("tags", ColumnType::List(Box::new(ColumnType::String))),
    /// ]);
    /// assert_eq!(s.to_string(), "_index: int64, id: uint64, error: string, tags: list<string>");
    /// ```
    pub fn columns(columns: Vec<Column>) -> ParquetSchema {
        ParquetSchema {
            index: true,
            value: false,
            columns,
        }
    }

    /// A schema for results that are plain values of type `ty`, in one
    /// column named `value`.
    pub fn value(ty: ColumnType) -> ParquetSchema {
        ParquetSchema {
            index: true,
            value: true,
            columns: vec![Column::new(VALUE_COLUMN, ty)],
        }
    }

    /// The schema recorded with the dataset `reader` opened: `None` if it
    /// is not a Parquet dataset or no part holds results yet.
    pub fn of_dataset(
        reader: &crate::DatasetReader,
    ) -> Result<Option<ParquetSchema>, crate::Error> {
        for p in reader.parts() {
            if let Some(s) = ParquetSchema::from_params(&p.params).map_err(|reason| {
                crate::Error::manifest(reader.url(), format!("part {}: {reason}", p.part))
            })? {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// The schema in a part's parameters, if the part recorded one.
    pub(crate) fn from_params(params: &PartParams) -> Result<Option<ParquetSchema>, String> {
        params
            .schema
            .as_ref()
            .map(|v| {
                ParquetSchema::deserialize(v)
                    .map_err(|e| format!("the recorded Parquet schema is unreadable: {e}"))
            })
            .transpose()
    }

    fn to_params(&self) -> Result<serde_json::Value, String> {
        serde_json::to_value(self).map_err(|e| e.to_string())
    }

    /// The Arrow schema of the parts.
    pub fn arrow_schema(&self) -> Schema {
        let mut fields = Vec::with_capacity(self.columns.len() + 1);
        if self.index {
            fields.push(Field::new(INDEX_COLUMN, DataType::Int64, false));
        }
        fields.extend(self.columns.iter().map(|c| c.field()));
        Schema::new(fields)
    }

    /// Infers the schema from the first part's results.
    fn infer(values: &[Value], index: bool) -> Result<ParquetSchema, Mismatch> {
        let mut top = ColumnType::Null;
        for (row, v) in values.iter().enumerate() {
            widen(&mut top, v).map_err(|m| m.at_row(row))?;
        }
        ParquetSchema::from_top(top, index)
    }

    /// The schema of results of type `top` (as inferred).
    pub(crate) fn from_top(top: ColumnType, index: bool) -> Result<ParquetSchema, Mismatch> {
        let schema = match top {
            ColumnType::Struct(columns) => ParquetSchema {
                index,
                value: false,
                columns,
            },
            other => ParquetSchema {
                index,
                value: true,
                columns: vec![Column::new(VALUE_COLUMN, other)],
            },
        };
        if index && let Some(c) = schema.columns.iter().find(|c| c.name == INDEX_COLUMN) {
            return Err(Mismatch {
                row: 0,
                path: c.name.clone(),
                expected: "the index column `_index` there (turn it off, or rename the field)"
                    .into(),
                found: c.ty.to_string(),
            });
        }
        Ok(schema)
    }
}

impl Column {
    pub(crate) fn field(&self) -> Field {
        Field::new(&self.name, self.ty.data_type(), true)
    }
}

impl ColumnType {
    /// The Arrow type of the column.
    pub fn data_type(&self) -> DataType {
        match self {
            ColumnType::Null => DataType::Null,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::UInt64 => DataType::UInt64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::String => DataType::Utf8,
            ColumnType::Binary => DataType::Binary,
            ColumnType::List(t) => {
                DataType::List(Arc::new(Field::new("item", t.data_type(), true)))
            }
            ColumnType::Struct(cols) => {
                DataType::Struct(cols.iter().map(Column::field).collect::<Fields>())
            }
        }
    }

    /// The type of one value (lists and maps: their contents merged).
    fn of(v: &Value) -> Result<ColumnType, Mismatch> {
        let mut t = ColumnType::Null;
        widen(&mut t, v)?;
        Ok(t)
    }
}

/// A result that does not fit a column: where (the result's index in the
/// part, the field's path) and both types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    pub row: usize,
    /// `a.b`, `tags[]`; empty: the result itself.
    pub path: String,
    pub expected: String,
    pub found: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = if self.path.is_empty() {
            "the result itself".to_owned()
        } else {
            format!("field `{}`", self.path)
        };
        write!(
            f,
            "result {}: {field}: the schema has {}, this result has {}",
            self.row, self.expected, self.found
        )
    }
}

impl Mismatch {
    fn new(expected: &ColumnType, found: &Value) -> Mismatch {
        Mismatch {
            row: 0,
            path: String::new(),
            expected: expected.to_string(),
            found: found.type_name().to_owned(),
        }
    }

    fn at_row(mut self, row: usize) -> Mismatch {
        self.row = row;
        self
    }

    fn in_field(mut self, name: &str) -> Mismatch {
        self.path = if self.path.is_empty() {
            name.to_owned()
        } else if self.path.starts_with('[') {
            format!("{name}{}", self.path)
        } else {
            format!("{name}.{}", self.path)
        };
        self
    }

    fn in_list(mut self) -> Mismatch {
        self.path = if self.path.is_empty() {
            "[]".to_owned()
        } else if self.path.starts_with('[') {
            format!("[]{}", self.path)
        } else {
            format!("[].{}", self.path)
        };
        self
    }
}

/// Widens `ty` to hold `v` as well (inference over the first part): null
/// takes any type, an integer column becomes float on a float, structs
/// gain the fields they lacked.
fn widen(ty: &mut ColumnType, v: &Value) -> Result<(), Mismatch> {
    match (&mut *ty, v) {
        (_, Value::Null) => Ok(()),
        (ColumnType::Null, v) => {
            *ty = match v {
                Value::Bool(_) => ColumnType::Bool,
                Value::Int(_) => ColumnType::Int64,
                Value::UInt(_) => ColumnType::UInt64,
                Value::Float(_) => ColumnType::Float64,
                Value::String(_) => ColumnType::String,
                Value::Bytes(_) => ColumnType::Binary,
                Value::List(items) => {
                    let mut item = ColumnType::Null;
                    for x in items {
                        widen(&mut item, x).map_err(Mismatch::in_list)?;
                    }
                    ColumnType::List(Box::new(item))
                }
                Value::Map(entries) => {
                    let mut cols: Vec<Column> = Vec::with_capacity(entries.len());
                    for (k, x) in entries {
                        match cols.iter_mut().find(|c| c.name == *k) {
                            Some(c) => widen(&mut c.ty, x).map_err(|m| m.in_field(k))?,
                            None => cols.push(Column::new(
                                k.as_ref(),
                                ColumnType::of(x).map_err(|m| m.in_field(k))?,
                            )),
                        }
                    }
                    ColumnType::Struct(cols)
                }
                Value::Null => ColumnType::Null,
            };
            Ok(())
        }
        (ColumnType::Bool, Value::Bool(_))
        | (ColumnType::Int64, Value::Int(_))
        | (ColumnType::UInt64, Value::UInt(_))
        | (ColumnType::Float64, Value::Int(_) | Value::UInt(_) | Value::Float(_))
        | (ColumnType::String, Value::String(_))
        | (ColumnType::Binary, Value::Bytes(_)) => Ok(()),
        (ColumnType::Int64, Value::UInt(u)) if i64::try_from(*u).is_ok() => Ok(()),
        (ColumnType::UInt64, Value::Int(i)) if *i >= 0 => Ok(()),
        (ColumnType::Int64 | ColumnType::UInt64, Value::Float(_)) => {
            *ty = ColumnType::Float64;
            Ok(())
        }
        (ColumnType::List(item), Value::List(items)) => {
            for x in items {
                widen(item, x).map_err(Mismatch::in_list)?;
            }
            Ok(())
        }
        (ColumnType::Struct(cols), Value::Map(entries)) => {
            for (k, x) in entries {
                match cols.iter_mut().find(|c| c.name == *k) {
                    Some(c) => widen(&mut c.ty, x).map_err(|m| m.in_field(k))?,
                    None => cols.push(Column::new(
                        k.as_ref(),
                        ColumnType::of(x).map_err(|m| m.in_field(k))?,
                    )),
                }
            }
            Ok(())
        }
        (ty, v) => Err(Mismatch::new(ty, v)),
    }
}

static NULL: Value = Value::Null;

fn nulls_of(valid: Vec<bool>, any_null: bool) -> Option<NullBuffer> {
    any_null.then(|| NullBuffer::from(valid))
}

/// Builds the column of type `ty` from `vals`, checking each value against
/// it: the error's row is the index in `vals`.
fn build(ty: &ColumnType, vals: &[&Value]) -> Result<ArrayRef, Mismatch> {
    let n = vals.len();
    let mut valid = Vec::with_capacity(n);
    let mut any_null = false;
    macro_rules! primitive {
        ($arrow:ty, $native:ty, |$v:ident| $conv:expr) => {{
            let mut out: Vec<$native> = Vec::with_capacity(n);
            for (row, v) in vals.iter().enumerate() {
                let x: Option<$native> = match *v {
                    Value::Null => None,
                    $v => Some($conv.ok_or_else(|| Mismatch::new(ty, $v).at_row(row))?),
                };
                any_null |= x.is_none();
                valid.push(x.is_some());
                out.push(x.unwrap_or_default());
            }
            Arc::new(PrimitiveArray::<$arrow>::new(
                ScalarBuffer::from(out),
                nulls_of(valid, any_null),
            )) as ArrayRef
        }};
    }
    Ok(match ty {
        ColumnType::Null => {
            if let Some(row) = vals.iter().position(|v| **v != Value::Null) {
                return Err(Mismatch::new(ty, vals[row]).at_row(row));
            }
            Arc::new(NullArray::new(n))
        }
        ColumnType::Bool => {
            let mut out = Vec::with_capacity(n);
            for (row, v) in vals.iter().enumerate() {
                match v {
                    Value::Null => {
                        any_null = true;
                        valid.push(false);
                        out.push(false);
                    }
                    Value::Bool(b) => {
                        valid.push(true);
                        out.push(*b);
                    }
                    other => return Err(Mismatch::new(ty, other).at_row(row)),
                }
            }
            Arc::new(BooleanArray::new(
                BooleanBuffer::from(out),
                nulls_of(valid, any_null),
            ))
        }
        ColumnType::Int64 => primitive!(Int64Type, i64, |v| match v {
            Value::Int(i) => Some(*i),
            Value::UInt(u) => i64::try_from(*u).ok(),
            _ => None,
        }),
        ColumnType::UInt64 => primitive!(UInt64Type, u64, |v| match v {
            Value::UInt(u) => Some(*u),
            Value::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }),
        ColumnType::Float64 => primitive!(Float64Type, f64, |v| match v {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            _ => None,
        }),
        ColumnType::String => {
            let mut out: Vec<Option<&str>> = Vec::with_capacity(n);
            for (row, v) in vals.iter().enumerate() {
                match v {
                    Value::Null => out.push(None),
                    Value::String(s) => out.push(Some(s)),
                    other => return Err(Mismatch::new(ty, other).at_row(row)),
                }
            }
            Arc::new(StringArray::from(out))
        }
        ColumnType::Binary => {
            let mut out: Vec<Option<&[u8]>> = Vec::with_capacity(n);
            for (row, v) in vals.iter().enumerate() {
                match v {
                    Value::Null => out.push(None),
                    Value::Bytes(b) => out.push(Some(b)),
                    other => return Err(Mismatch::new(ty, other).at_row(row)),
                }
            }
            Arc::new(BinaryArray::from(out))
        }
        ColumnType::List(item) => {
            let mut offsets: Vec<i32> = Vec::with_capacity(n + 1);
            offsets.push(0);
            let mut children: Vec<&Value> = Vec::new();
            for (row, v) in vals.iter().enumerate() {
                match v {
                    Value::Null => {
                        any_null = true;
                        valid.push(false);
                    }
                    Value::List(items) => {
                        valid.push(true);
                        children.extend(items.iter());
                    }
                    other => return Err(Mismatch::new(ty, other).at_row(row)),
                }
                let end = i32::try_from(children.len()).map_err(|_| Mismatch {
                    row,
                    path: String::new(),
                    expected: "at most 2^31 list items in one part".into(),
                    found: "more".into(),
                })?;
                offsets.push(end);
            }
            let child = build(item, &children).map_err(|m| {
                // The child's row back to the result's.
                let row = offsets.partition_point(|&o| o as usize <= m.row) - 1;
                m.in_list().at_row(row)
            })?;
            Arc::new(ListArray::new(
                Arc::new(Field::new("item", item.data_type(), true)),
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                child,
                nulls_of(valid, any_null),
            ))
        }
        ColumnType::Struct(cols) => {
            let (arrays, nulls) = build_struct(cols, vals, true)?;
            let fields: Fields = cols.iter().map(Column::field).collect();
            Arc::new(
                StructArray::try_new_with_length(fields, arrays, nulls, n).map_err(|e| {
                    Mismatch {
                        row: 0,
                        path: String::new(),
                        expected: ty.to_string(),
                        found: format!("an invalid struct column ({e})"),
                    }
                })?,
            )
        }
    })
}

/// The fields' columns of struct values (or nulls), and their validity.
/// Every key of a value must be a field of `cols`.
fn build_struct(
    cols: &[Column],
    vals: &[&Value],
    nested: bool,
) -> Result<(Vec<ArrayRef>, Option<NullBuffer>), Mismatch> {
    let n = vals.len();
    let mut children: Vec<Vec<&Value>> = cols.iter().map(|_| vec![&NULL; n]).collect();
    let mut valid = Vec::with_capacity(n);
    let mut any_null = false;
    for (row, v) in vals.iter().enumerate() {
        match v {
            Value::Null => {
                any_null = true;
                valid.push(false);
            }
            Value::Map(entries) => {
                valid.push(true);
                for (i, (k, x)) in entries.iter().enumerate() {
                    // Fields usually come in the schema's order.
                    let at = match cols.get(i) {
                        Some(c) if c.name == *k => Some(i),
                        _ => cols.iter().position(|c| c.name == *k),
                    };
                    match at {
                        Some(j) => children[j][row] = x,
                        None => {
                            return Err(Mismatch {
                                row,
                                path: k.to_string(),
                                expected: "no such column".into(),
                                found: match ColumnType::of(x) {
                                    Ok(t) => t.to_string(),
                                    Err(_) => x.type_name().to_owned(),
                                },
                            });
                        }
                    }
                }
            }
            other => {
                let expected = if nested {
                    ColumnType::Struct(cols.to_vec()).to_string()
                } else {
                    "a struct (one column per field)".to_owned()
                };
                return Err(Mismatch {
                    row,
                    path: String::new(),
                    expected,
                    found: other.type_name().to_owned(),
                });
            }
        }
    }
    let mut arrays = Vec::with_capacity(cols.len());
    for (c, vals) in cols.iter().zip(&children) {
        arrays.push(build(&c.ty, vals).map_err(|m| m.in_field(&c.name))?);
    }
    Ok((arrays, nulls_of(valid, any_null)))
}

/// The properties every part is written with: zstd level 1 and page
/// statistics for every column. Dictionary encoding (the writer's default)
/// stays on where values may repeat (strings, bools, nested columns), and
/// is off for `_index` and the top-level number columns, where it would
/// mostly hash every value until the dictionary overflows; their integers
/// are delta-encoded instead (`DELTA_BINARY_PACKED`: positions, counters
/// and ids shrink to a few bits before zstd sees them).
fn writer_properties(schema: &ParquetSchema) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default(),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("raygent {}", env!("CARGO_PKG_VERSION")));
    if schema.index {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(INDEX_COLUMN), false)
            .set_column_encoding(
                ColumnPath::from(INDEX_COLUMN),
                Encoding::DELTA_BINARY_PACKED,
            );
    }
    for c in &schema.columns {
        let path = || ColumnPath::from(c.name.as_str());
        match c.ty {
            ColumnType::Float64 => b = b.set_column_dictionary_enabled(path(), false),
            ColumnType::Int64 | ColumnType::UInt64 => {
                b = b
                    .set_column_dictionary_enabled(path(), false)
                    .set_column_encoding(path(), Encoding::DELTA_BINARY_PACKED);
            }
            _ => {}
        }
    }
    b.build()
}

/// Why a part could not be encoded.
#[derive(Debug)]
pub(crate) enum EncodeFailure {
    /// A result does not fit the schema.
    Mismatch(Mismatch),
    /// Anything else (a result that cannot be serialized, Parquet's error).
    Other(String),
}

/// Encodes parts of one dataset: holds the schema fixed by its first part.
#[derive(Debug, Clone, Default)]
pub(crate) struct ParquetEncoder {
    pub schema: Option<ParquetSchema>,
    /// A schema given up front, not yet recorded in a part's parameters.
    pub unrecorded: bool,
}

/// A part's columns, built and checked against the schema: what is left
/// to do ([`write`](PartColumns::write): Parquet's encoding, statistics and
/// zstd) needs no results, so it may run on another thread.
#[derive(Debug)]
pub(crate) struct PartColumns {
    batch: RecordBatch,
    properties: WriterProperties,
}

impl PartColumns {
    /// The part's Parquet file.
    pub fn write(self) -> Result<Vec<u8>, String> {
        let mut w = ArrowWriter::try_new(
            Vec::with_capacity(1 << 16),
            self.batch.schema(),
            Some(self.properties),
        )
        .map_err(|e| e.to_string())?;
        if self.batch.num_rows() > 0 {
            w.write(&self.batch).map_err(|e| e.to_string())?;
        }
        w.into_inner().map_err(|e| e.to_string())
    }
}

impl ParquetEncoder {
    /// Encodes `results` as one Parquet file, with `index(i)` the input
    /// position of result `i` when the index column is on; fixes the schema
    /// on the first part with results (and records it in `params`). An
    /// empty part with no schema yet is no bytes at all.
    pub fn encode<T: Serialize>(
        &mut self,
        results: &[T],
        index: Option<&dyn Fn(usize) -> u64>,
        params: &mut PartParams,
    ) -> Result<Vec<u8>, EncodeFailure> {
        match self.build(results, index, params)? {
            Some(columns) => columns.write().map_err(EncodeFailure::Other),
            None => Ok(Vec::new()),
        }
    }

    /// [`encode`](Self::encode) but for the writing: the part's columns,
    /// or `None` for an empty part with no schema yet (no bytes at all).
    ///
    /// Results are serialized straight into the columns
    /// (`parquet_build`); where that path gives up (a result that does not
    /// fit, a shape it does not handle), the part is built again through
    /// [`Value`]s, which reports the error.
    pub fn build<T: Serialize>(
        &mut self,
        results: &[T],
        index: Option<&dyn Fn(usize) -> u64>,
        params: &mut PartParams,
    ) -> Result<Option<PartColumns>, EncodeFailure> {
        if self.schema.is_none() && results.is_empty() {
            return Ok(None);
        }
        let (schema, columns) = match self.build_fast(results, index.is_some()) {
            Some(built) => built,
            None => self.build_values(results, index.is_some())?,
        };
        if self.unrecorded || self.schema.is_none() {
            params.schema = Some(schema.to_params().map_err(EncodeFailure::Other)?);
        }
        params.index_column = schema.index;
        params.value_column = schema.value;
        let batch = record_batch(&schema, columns, results.len(), index)?;
        let properties = writer_properties(&schema);
        self.schema = Some(schema);
        self.unrecorded = false;
        Ok(Some(PartColumns { batch, properties }))
    }

    /// The schema and the columns after `_index`, by the fast path.
    pub(crate) fn build_fast<T: Serialize>(
        &self,
        results: &[T],
        index: bool,
    ) -> Option<(ParquetSchema, Vec<ArrayRef>)> {
        let schema = match &self.schema {
            Some(s) => s.clone(),
            None => {
                ParquetSchema::from_top(crate::parquet_build::infer(results).ok()?, index).ok()?
            }
        };
        let columns = crate::parquet_build::build(&schema, results).ok()?;
        Some((schema, columns))
    }

    /// The schema and the columns after `_index`, through [`Value`]s.
    pub(crate) fn build_values<T: Serialize>(
        &self,
        results: &[T],
        index: bool,
    ) -> Result<(ParquetSchema, Vec<ArrayRef>), EncodeFailure> {
        let values = results
            .iter()
            .enumerate()
            .map(|(i, r)| to_value(r).map_err(|e| EncodeFailure::Other(format!("result {i}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let schema = match &self.schema {
            Some(s) => s.clone(),
            None => ParquetSchema::infer(&values, index).map_err(EncodeFailure::Mismatch)?,
        };
        let columns = value_columns(&schema, &values).map_err(EncodeFailure::Mismatch)?;
        Ok((schema, columns))
    }
}

/// The columns after `_index` of results given as [`Value`]s, checked
/// against the schema.
fn value_columns(schema: &ParquetSchema, values: &[Value]) -> Result<Vec<ArrayRef>, Mismatch> {
    let refs: Vec<&Value> = values.iter().collect();
    if schema.value {
        let col = schema
            .columns
            .first()
            .map_or(ColumnType::Null, |c| c.ty.clone());
        Ok(vec![
            build(&col, &refs).map_err(|m| m.in_field(VALUE_COLUMN))?,
        ])
    } else {
        Ok(build_struct(&schema.columns, &refs, false)?.0)
    }
}

/// The Parquet file of a part's columns (after `_index`), for tests.
#[cfg(test)]
pub(crate) fn part_file(
    schema: &ParquetSchema,
    columns: Vec<ArrayRef>,
    rows: usize,
    index: Option<&dyn Fn(usize) -> u64>,
) -> Result<Vec<u8>, String> {
    let batch = record_batch(schema, columns, rows, index).map_err(|e| format!("{e:?}"))?;
    PartColumns {
        batch,
        properties: writer_properties(schema),
    }
    .write()
}

/// The part's record batch: `_index` (if on), then `columns`.
fn record_batch(
    schema: &ParquetSchema,
    columns: Vec<ArrayRef>,
    rows: usize,
    index: Option<&dyn Fn(usize) -> u64>,
) -> Result<RecordBatch, EncodeFailure> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len() + 1);
    if schema.index {
        let Some(index) = index else {
            return Err(EncodeFailure::Other(
                "the dataset's schema has an index column, but no positions were given".into(),
            ));
        };
        let positions: Vec<i64> = (0..rows)
            .map(|i| i64::try_from(index(i)).unwrap_or(i64::MAX))
            .collect();
        arrays.push(Arc::new(PrimitiveArray::<Int64Type>::new(
            ScalarBuffer::from(positions),
            None,
        )));
    }
    arrays.extend(columns);
    RecordBatch::try_new_with_options(
        Arc::new(schema.arrow_schema()),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| EncodeFailure::Other(e.to_string()))
}

/// Decodes a part into results, batch by batch.
pub(crate) fn decode<T: DeserializeOwned + 'static>(
    part: Bytes,
    params: &PartParams,
) -> DecodeIter<T> {
    if part.is_empty() {
        return Box::new(std::iter::empty());
    }
    let reader = ParquetRecordBatchReaderBuilder::try_new(part)
        .and_then(|b| b.with_batch_size(8192).build());
    match reader {
        Err(e) => Box::new(std::iter::once(Err(format!(
            "not a readable Parquet file: {e}"
        )))),
        Ok(reader) => Box::new(Rows {
            reader,
            rows: Vec::new().into_iter(),
            index_column: params.index_column,
            value_column: params.value_column,
            row: 0,
            failed: false,
            _t: std::marker::PhantomData,
        }),
    }
}

struct Rows<T> {
    reader: ParquetRecordBatchReader,
    rows: std::vec::IntoIter<Value>,
    index_column: bool,
    value_column: bool,
    row: u64,
    failed: bool,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Iterator for Rows<T> {
    type Item = Result<T, String>;
    fn next(&mut self) -> Option<Result<T, String>> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(v) = self.rows.next() {
                let i = self.row;
                self.row += 1;
                return Some(T::deserialize(v).map_err(|e| {
                    self.failed = true;
                    format!("result {i}: {e}")
                }));
            }
            let batch = match self.reader.next()? {
                Ok(b) => b,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(format!("result {}: {e}", self.row)));
                }
            };
            match batch_rows(&batch, self.index_column, self.value_column) {
                Ok(rows) => self.rows = rows.into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(format!("result {}: {e}", self.row)));
                }
            }
        }
    }
}

/// The results in a record batch (without the index column).
pub(crate) fn batch_rows(
    batch: &RecordBatch,
    index_column: bool,
    value_column: bool,
) -> Result<Vec<Value>, String> {
    let schema = batch.schema();
    let skip = usize::from(
        index_column
            && schema
                .fields()
                .first()
                .is_some_and(|f| f.name() == INDEX_COLUMN),
    );
    if value_column {
        let col = batch
            .columns()
            .get(skip)
            .ok_or_else(|| format!("the part has no `{VALUE_COLUMN}` column"))?;
        return values_of(col.as_ref());
    }
    let names: Vec<Key> = schema.fields()[skip..]
        .iter()
        .map(|f| Key::Owned(f.name().clone()))
        .collect();
    let cols = batch.columns()[skip..]
        .iter()
        .map(|c| values_of(c.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(zip_rows(&names, cols, batch.num_rows(), None))
}

fn zip_rows(
    names: &[Key],
    cols: Vec<Vec<Value>>,
    n: usize,
    nulls: Option<&NullBuffer>,
) -> Vec<Value> {
    let mut iters: Vec<_> = cols.into_iter().map(Vec::into_iter).collect();
    (0..n)
        .map(|row| {
            let entries: Vec<(Key, Value)> = names
                .iter()
                .zip(iters.iter_mut())
                .map(|(k, it)| (k.clone(), it.next().unwrap_or_default()))
                .collect();
            if nulls.is_some_and(|b| b.is_null(row)) {
                Value::Null
            } else {
                Value::Map(entries)
            }
        })
        .collect()
}

/// The values of one column.
fn values_of(array: &dyn Array) -> Result<Vec<Value>, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    let n = array.len();
    // Row i's value, `Null` where the array has a null.
    let rows = |value: &dyn Fn(usize) -> Value| -> Vec<Value> {
        (0..n)
            .map(|i| {
                if array.is_null(i) {
                    Value::Null
                } else {
                    value(i)
                }
            })
            .collect()
    };
    macro_rules! prim {
        ($t:ty, $variant:ident, $conv:ty) => {{
            let a = array.as_primitive::<$t>();
            rows(&|i| Value::$variant(<$conv>::from(a.value(i))))
        }};
    }
    Ok(match array.data_type() {
        DataType::Null => vec![Value::Null; n],
        DataType::Boolean => {
            let a = array.as_boolean();
            rows(&|i| Value::Bool(a.value(i)))
        }
        DataType::Int8 => prim!(Int8Type, Int, i64),
        DataType::Int16 => prim!(Int16Type, Int, i64),
        DataType::Int32 => prim!(Int32Type, Int, i64),
        DataType::Int64 => prim!(Int64Type, Int, i64),
        DataType::UInt8 => prim!(UInt8Type, UInt, u64),
        DataType::UInt16 => prim!(UInt16Type, UInt, u64),
        DataType::UInt32 => prim!(UInt32Type, UInt, u64),
        DataType::UInt64 => prim!(UInt64Type, UInt, u64),
        DataType::Float32 => prim!(Float32Type, Float, f64),
        DataType::Float64 => prim!(Float64Type, Float, f64),
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            rows(&|i| Value::String(a.value(i).to_owned()))
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            rows(&|i| Value::String(a.value(i).to_owned()))
        }
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            rows(&|i| Value::Bytes(a.value(i).to_vec()))
        }
        DataType::List(_) => {
            let a = array.as_list::<i32>();
            let mut child = values_of(a.values().as_ref())?.into_iter();
            let offsets = a.value_offsets();
            let mut at = offsets.first().copied().unwrap_or(0);
            // The child values before the first offset are not ours.
            for _ in 0..at {
                child.next();
            }
            (0..n)
                .map(|i| {
                    let end = offsets[i + 1];
                    let items: Vec<Value> = child.by_ref().take((end - at) as usize).collect();
                    at = end;
                    if a.is_null(i) {
                        Value::Null
                    } else {
                        Value::List(items)
                    }
                })
                .collect()
        }
        DataType::Struct(fields) => {
            let a = array.as_struct();
            let names: Vec<Key> = fields
                .iter()
                .map(|f| Key::Owned(f.name().clone()))
                .collect();
            let cols = a
                .columns()
                .iter()
                .map(|c| values_of(c.as_ref()))
                .collect::<Result<Vec<_>, _>>()?;
            zip_rows(&names, cols, n, a.nulls())
        }
        other => return Err(format!("columns of type {other} are not supported")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Inner {
        x: f64,
        label: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Row {
        id: u64,
        delta: i32,
        ok: bool,
        name: String,
        maybe: Option<u32>,
        tags: Vec<String>,
        inner: Inner,
        points: Vec<Inner>,
        grid: Vec<Vec<i64>>,
    }

    fn row(i: u64) -> Row {
        Row {
            id: i,
            delta: -(i as i32),
            ok: i.is_multiple_of(2),
            name: format!("row {i}"),
            maybe: i.is_multiple_of(3).then_some(i as u32),
            tags: (0..i % 3).map(|t| format!("t{t}")).collect(),
            inner: Inner {
                x: i as f64 / 4.0,
                label: (i % 2 == 1).then(|| "odd".into()),
            },
            points: vec![
                Inner {
                    x: 1.0,
                    label: None
                };
                (i % 2) as usize
            ],
            grid: vec![vec![i as i64; 2]; (i % 2) as usize],
        }
    }

    fn encode<T: Serialize>(
        enc: &mut ParquetEncoder,
        results: &[T],
        first: u64,
    ) -> (Vec<u8>, PartParams) {
        let mut params = PartParams::default();
        let at = move |i: usize| first + i as u64;
        let bytes = enc.encode(results, Some(&at), &mut params).unwrap();
        (bytes, params)
    }

    fn decode_all<T: DeserializeOwned + 'static>(bytes: Vec<u8>, params: &PartParams) -> Vec<T> {
        decode(Bytes::from(bytes), params)
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn structs_round_trip_with_nested_columns() {
        let rows: Vec<Row> = (0..10).map(row).collect();
        let mut enc = ParquetEncoder::default();
        let (bytes, params) = encode(&mut enc, &rows, 100);
        assert_eq!(&bytes[..4], b"PAR1");
        assert!(params.index_column && !params.value_column);
        let schema = enc.schema.clone().unwrap();
        assert_eq!(
            schema.to_string(),
            "_index: int64, id: uint64, delta: int64, ok: bool, name: string, maybe: uint64, \
             tags: list<string>, inner: struct<x: float64, label: string>, \
             points: list<struct<x: float64, label: null>>, grid: list<list<int64>>"
        );
        assert_eq!(ParquetSchema::from_params(&params).unwrap(), Some(schema));
        assert_eq!(decode_all::<Row>(bytes.clone(), &params), rows);
        // Generic values keep the columns' order, without `_index`.
        let any: Vec<Value> = decode_all(bytes, &params);
        let Value::Map(entries) = &any[3] else {
            panic!()
        };
        assert_eq!(entries[0].0, "id");
        assert_eq!(any[3].get("maybe"), Some(&Value::UInt(3)));
        // A later part with the same schema records none of its own.
        let (bytes, params) = encode(&mut enc, &[row(11)], 200);
        assert!(params.schema.is_none());
        assert_eq!(decode_all::<Row>(bytes, &params), vec![row(11)]);
    }

    /// `_index` and integer columns are delta-encoded: their extremes, with
    /// nulls and jumps between them, come back exactly.
    #[test]
    fn delta_encoded_integers_round_trip_at_their_extremes() {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        struct Ints {
            u: u64,
            i: i64,
            maybe: Option<i64>,
            f: f64,
        }
        let us = [0, u64::MAX, 1, i64::MAX as u64 + 1, u64::MAX - 1, 7];
        let is = [i64::MIN, i64::MAX, 0, -1, i64::MIN + 1, 3];
        let rows: Vec<Ints> = (0..3000)
            .map(|k| Ints {
                u: us[k % us.len()],
                i: is[k % is.len()],
                maybe: (k % 4 != 1).then_some(is[(k + 1) % is.len()]),
                f: k as f64,
            })
            .collect();
        let mut enc = ParquetEncoder::default();
        let mut params = PartParams::default();
        let at = |k: usize| {
            if k.is_multiple_of(2) {
                k as u64
            } else {
                u64::MAX / 4 + k as u64
            }
        };
        let bytes = enc.encode(&rows, Some(&at), &mut params).unwrap();
        assert_eq!(decode_all::<Ints>(bytes.clone(), &params), rows);
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
        let meta = reader.metadata().row_group(0);
        let encodings = |c: usize| meta.column(c).encodings().collect::<Vec<_>>();
        for c in [0, 1, 2, 3] {
            assert!(
                encodings(c).contains(&Encoding::DELTA_BINARY_PACKED),
                "column {c}"
            );
        }
        assert!(!encodings(4).contains(&Encoding::DELTA_BINARY_PACKED));
        let batch = reader.build().unwrap().next().unwrap().unwrap();
        let index = batch
            .column(0)
            .as_any()
            .downcast_ref::<PrimitiveArray<Int64Type>>();
        let index: Vec<i64> = index.unwrap().values().to_vec();
        assert_eq!(
            index[..4],
            [0, (u64::MAX / 4 + 1) as i64, 2, (u64::MAX / 4 + 3) as i64]
        );
    }

    #[test]
    fn plain_values_go_in_one_value_column() {
        let mut enc = ParquetEncoder::default();
        let lines = vec!["a".to_string(), "b c".into(), String::new()];
        let (bytes, params) = encode(&mut enc, &lines, 0);
        assert!(params.value_column);
        assert_eq!(
            enc.schema.as_ref().unwrap().to_string(),
            "_index: int64, value: string"
        );
        assert_eq!(decode_all::<String>(bytes, &params), lines);
        let mut enc = ParquetEncoder::default();
        let (bytes, params) = encode(&mut enc, &[1u8, 2, 3], 0);
        assert_eq!(decode_all::<u8>(bytes, &params), vec![1, 2, 3]);
    }

    #[test]
    fn json_objects_widen_in_the_first_part_and_are_checked_after() {
        let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        let first = vec![
            parse(r#"{"a": 1, "b": "x"}"#),
            parse(r#"{"a": 2.5, "c": [1, 2]}"#),
            parse(r#"{"a": null, "b": null, "c": null}"#),
        ];
        let mut enc = ParquetEncoder::default();
        let (bytes, params) = encode(&mut enc, &first, 0);
        assert_eq!(
            enc.schema.as_ref().unwrap().to_string(),
            "_index: int64, a: float64, b: string, c: list<uint64>"
        );
        let back: Vec<serde_json::Value> = decode_all(bytes, &params);
        assert_eq!(back[0], serde_json::json!({"a": 1.0, "b": "x", "c": null}));
        // Later: ints into the float column, nulls and missing fields fit.
        let ok = vec![parse(r#"{"a": 3}"#), parse(r#"{"c": [7], "b": "y"}"#)];
        encode(&mut enc, &ok, 3);
        // A string where the schema has float64.
        let mut params = PartParams::default();
        let at = |i: usize| i as u64;
        let bad = vec![parse(r#"{"a": 1}"#), parse(r#"{"a": "high"}"#)];
        let Err(EncodeFailure::Mismatch(m)) = enc.encode(&bad, Some(&at), &mut params) else {
            panic!()
        };
        assert_eq!(
            (
                m.row,
                m.path.as_str(),
                m.expected.as_str(),
                m.found.as_str()
            ),
            (1, "a", "float64", "string")
        );
        // A field the schema does not have.
        let bad = vec![parse(r#"{"a": 1, "d": true}"#)];
        let Err(EncodeFailure::Mismatch(m)) = enc.encode(&bad, Some(&at), &mut params) else {
            panic!()
        };
        assert_eq!((m.path.as_str(), m.found.as_str()), ("d", "bool"));
        // Deep in a list.
        let bad = vec![parse(r#"{"c": [1]}"#), parse(r#"{"c": [1, "two"]}"#)];
        let Err(EncodeFailure::Mismatch(m)) = enc.encode(&bad, Some(&at), &mut params) else {
            panic!()
        };
        assert_eq!(
            (m.row, m.path.as_str(), m.expected.as_str()),
            (1, "c[]", "uint64")
        );
        // A float where the first part had only ints.
        let mut enc = ParquetEncoder::default();
        encode(&mut enc, &[parse(r#"{"n": 1}"#)], 0);
        let Err(EncodeFailure::Mismatch(m)) =
            enc.encode(&[parse(r#"{"n": 1.5}"#)], Some(&at), &mut params)
        else {
            panic!()
        };
        assert_eq!(
            (m.expected.as_str(), m.found.as_str()),
            ("uint64", "float64")
        );
    }

    #[test]
    fn conflicts_inside_the_first_part_are_reported() {
        let mut enc = ParquetEncoder::default();
        let mut params = PartParams::default();
        let at = |i: usize| i as u64;
        let rows = vec![
            BTreeMap::from([("k", serde_json::json!(1))]),
            BTreeMap::from([("k", serde_json::json!({"deep": 1}))]),
        ];
        let Err(EncodeFailure::Mismatch(m)) = enc.encode(&rows, Some(&at), &mut params) else {
            panic!()
        };
        assert_eq!(
            (
                m.row,
                m.path.as_str(),
                m.expected.as_str(),
                m.found.as_str()
            ),
            (1, "k", "uint64", "struct")
        );
        // A field named like the index column.
        let rows = vec![BTreeMap::from([("_index", 1u8)])];
        assert!(matches!(
            enc.encode(&rows, Some(&at), &mut params),
            Err(EncodeFailure::Mismatch(_))
        ));
        // Without the index column it is a plain column.
        let (bytes, params) = {
            let mut p = PartParams::default();
            (enc.encode(&rows, None, &mut p).unwrap(), p)
        };
        assert!(!params.index_column);
        assert_eq!(
            decode_all::<BTreeMap<String, u8>>(bytes, &params),
            rows.iter()
                .map(|r| r.iter().map(|(k, v)| (k.to_string(), *v)).collect())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn parts_are_deterministic_and_empty_parts_are_empty() {
        let rows: Vec<Row> = (0..50).map(row).collect();
        let a = encode(&mut ParquetEncoder::default(), &rows, 0).0;
        let b = encode(&mut ParquetEncoder::default(), &rows, 0).0;
        assert_eq!(a, b);
        let mut enc = ParquetEncoder::default();
        let (bytes, params) = encode::<Row>(&mut enc, &[], 0);
        assert!(bytes.is_empty() && enc.schema.is_none());
        assert!(decode_all::<Row>(bytes, &params).is_empty());
        // With a schema, an empty part is a Parquet file with no rows.
        encode(&mut enc, &rows, 0);
        let (bytes, params) = encode::<Row>(&mut enc, &[], 50);
        assert_eq!(&bytes[..4], b"PAR1");
        assert!(decode_all::<Row>(bytes, &params).is_empty());
    }
}
