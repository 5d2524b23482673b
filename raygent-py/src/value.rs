//! Python values on the Rust side: items and results as they cross the
//! runtime, the worker pipes and the savers.
//!
//! Plain data (None, bool, int, float, str, bytes, list, tuple, dict, of
//! these exact types) becomes a [`Value`] tree that any format can store
//! (CBOR, JSON Lines, CSV) and `raygent cat` can print; anything else is
//! pickled (cloudpickle when it is installed, so classes and functions
//! defined in `__main__` travel too) and kept as [`Value::Pickle`]. In
//! CBOR, tuples and pickles carry tags of their own, so a result read back
//! is the object that was saved; in JSON a tuple is an array and a pickle
//! cannot be stored (the saver says which result).
//!
//! On the way to and from worker processes, items and results are CBOR
//! bytes ([`Data::Encoded`], written and read by `crate::codec` without a
//! `Value` tree); in sequential mode they stay Python objects
//! ([`Data::Object`]), converted only if they are saved or fingerprinted.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::de::{self, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::{self, SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::blob::Blob;

/// The CBOR tag of a Python tuple (an array inside).
pub const TUPLE_TAG: u64 = 0x5247_5401;
/// The CBOR tag of a pickled Python object (a byte string inside).
pub const PICKLE_TAG: u64 = 0x5247_5001;

/// How deep plain data is converted before the rest is pickled whole.
pub const MAX_DEPTH: usize = 64;

/// One Python item or result.
pub enum Value {
    /// `None`.
    None,
    /// A `bool`.
    Bool(bool),
    /// An `int` that fits in 64 signed bits.
    Int(i64),
    /// An `int` above `i64::MAX` that fits in 64 unsigned bits.
    UInt(u64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes`.
    Bytes(Vec<u8>),
    /// A `list`.
    List(Vec<Value>),
    /// A `tuple`.
    Tuple(Vec<Value>),
    /// A `dict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// Anything else, pickled.
    Pickle(Vec<u8>),
}

impl Clone for Value {
    fn clone(&self) -> Self {
        match self {
            Value::None => Value::None,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::UInt(u) => Value::UInt(*u),
            Value::Float(f) => Value::Float(*f),
            Value::Str(s) => Value::Str(s.clone()),
            Value::Bytes(b) => Value::Bytes(b.clone()),
            Value::List(v) => Value::List(v.clone()),
            Value::Tuple(v) => Value::Tuple(v.clone()),
            Value::Dict(v) => Value::Dict(v.clone()),
            Value::Pickle(b) => Value::Pickle(b.clone()),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => write!(f, "None"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::List(v) => f.debug_list().entries(v).finish(),
            Value::Tuple(v) => {
                let mut t = f.debug_tuple("");
                for x in v {
                    t.field(x);
                }
                t.finish()
            }
            Value::Dict(v) => f
                .debug_map()
                .entries(v.iter().map(|(k, v)| (k, v)))
                .finish(),
            Value::Pickle(b) => write!(f, "<pickle, {} bytes>", b.len()),
        }
    }
}

static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `cloudpickle.dumps` when cloudpickle is installed, else `pickle.dumps`.
fn dumps(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    let f = DUMPS.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        let f = match py.import("cloudpickle") {
            Ok(m) => m.getattr("dumps")?,
            Err(_) => py.import("pickle")?.getattr("dumps")?,
        };
        Ok(f.unbind())
    })?;
    Ok(f.bind(py))
}

fn loads(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    let f = LOADS.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("pickle")?.getattr("loads")?.unbind())
    })?;
    Ok(f.bind(py))
}

/// One pickle (protocol 5, cloudpickle when installed) of a whole chunk.
pub fn dumps_chunk<'py>(
    py: Python<'py>,
    list: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyBytes>> {
    Ok(dumps(py)?.call1((list, 5))?.cast_into::<PyBytes>()?)
}

/// Pickles `obj` (protocol 5).
pub fn pickle(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let py = obj.py();
    let b = dumps(py)?.call1((obj, 5))?;
    Ok(b.cast::<PyBytes>()?.as_bytes().to_vec())
}

/// Unpickles `bytes`.
pub fn unpickle<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    loads(py)?.call1((PyBytes::new(py, bytes),))
}

impl Value {
    /// Converts a Python object: plain data into a tree, the rest pickled.
    pub fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
        Self::convert(obj, 0)
    }

    fn convert(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
        if obj.is_none() {
            return Ok(Value::None);
        }
        if depth < MAX_DEPTH {
            if obj.is_exact_instance_of::<PyBool>() {
                return Ok(Value::Bool(obj.is_truthy()?));
            }
            if obj.is_exact_instance_of::<PyInt>() {
                if let Ok(i) = obj.extract::<i64>() {
                    return Ok(Value::Int(i));
                }
                if let Ok(u) = obj.extract::<u64>() {
                    return Ok(Value::UInt(u));
                }
                return Ok(Value::Pickle(pickle(obj)?));
            }
            if obj.is_exact_instance_of::<PyFloat>() {
                return Ok(Value::Float(obj.extract::<f64>()?));
            }
            if obj.is_exact_instance_of::<PyString>() {
                // A str holding lone surrogates is not valid UTF-8: pickle it.
                if let Ok(s) = obj.cast::<PyString>()?.to_str() {
                    return Ok(Value::Str(s.to_owned()));
                }
                return Ok(Value::Pickle(pickle(obj)?));
            }
            if obj.is_exact_instance_of::<PyBytes>() {
                return Ok(Value::Bytes(obj.cast::<PyBytes>()?.as_bytes().to_vec()));
            }
            if obj.is_exact_instance_of::<PyList>() {
                let list = obj.cast::<PyList>()?;
                let mut out = Vec::with_capacity(list.len());
                for x in list.iter() {
                    out.push(Self::convert(&x, depth + 1)?);
                }
                return Ok(Value::List(out));
            }
            if obj.is_exact_instance_of::<PyTuple>() {
                let t = obj.cast::<PyTuple>()?;
                let mut out = Vec::with_capacity(t.len());
                for x in t.iter() {
                    out.push(Self::convert(&x, depth + 1)?);
                }
                return Ok(Value::Tuple(out));
            }
            if obj.is_exact_instance_of::<PyDict>() {
                let d = obj.cast::<PyDict>()?;
                let mut out = Vec::with_capacity(d.len());
                for (k, v) in d.iter() {
                    out.push((Self::convert(&k, depth + 1)?, Self::convert(&v, depth + 1)?));
                }
                return Ok(Value::Dict(out));
            }
        }
        Ok(Value::Pickle(pickle(obj)?))
    }

    /// The Python object this value stands for.
    pub fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            Value::None => py.None().into_bound(py),
            Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
            Value::Int(i) => i.into_pyobject(py)?.into_any(),
            Value::UInt(u) => u.into_pyobject(py)?.into_any(),
            Value::Float(f) => PyFloat::new(py, *f).into_any(),
            Value::Str(s) => PyString::new(py, s).into_any(),
            Value::Bytes(b) => PyBytes::new(py, b).into_any(),
            Value::List(v) => {
                let items = v
                    .iter()
                    .map(|x| x.to_py(py))
                    .collect::<PyResult<Vec<_>>>()?;
                PyList::new(py, items)?.into_any()
            }
            Value::Tuple(v) => {
                let items = v
                    .iter()
                    .map(|x| x.to_py(py))
                    .collect::<PyResult<Vec<_>>>()?;
                PyTuple::new(py, items)?.into_any()
            }
            Value::Dict(v) => {
                let d = PyDict::new(py);
                for (k, x) in v {
                    d.set_item(k.to_py(py)?, x.to_py(py)?)?;
                }
                d.into_any()
            }
            Value::Pickle(b) => unpickle(py, b)?,
        })
    }
}

/// How values are serialized on this thread (set by the saver around its
/// encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// Anything: pickles and tuples as CBOR tags.
    Any,
    /// Plain data only (JSON Lines): a pickle is an error, not a byte array.
    Plain,
    /// Plain data, and a dict is a CSV row keyed by its (str) keys.
    Csv,
}

thread_local! {
    static MODE: Cell<SaveMode> = const { Cell::new(SaveMode::Any) };
}

/// Runs `f` with values serialized in `mode` on this thread.
pub fn with_mode<R>(mode: SaveMode, f: impl FnOnce() -> R) -> R {
    let before = MODE.with(|m| m.replace(mode));
    let r = f();
    MODE.with(|m| m.set(before));
    r
}

/// A CSV header name: the csv crate writes rows of structs only, whose
/// field names are `&'static str`. Each distinct name is leaked once.
fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

struct Tagged<'a>(&'a Value);

impl Serialize for Tagged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Tuple(v) => ciborium::tag::Required::<_, TUPLE_TAG>(SeqRef(v)).serialize(s),
            Value::Pickle(b) => ciborium::tag::Required::<_, PICKLE_TAG>(BytesRef(b)).serialize(s),
            _ => self.0.serialize(s),
        }
    }
}

struct SeqRef<'a>(&'a [Value]);
impl Serialize for SeqRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for x in self.0 {
            seq.serialize_element(x)?;
        }
        seq.end()
    }
}

struct BytesRef<'a>(&'a [u8]);
impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::None => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) => s.serialize_u64(*u),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(x) => s.serialize_str(x),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::List(v) => SeqRef(v).serialize(s),
            Value::Tuple(v) => {
                if s.is_human_readable() {
                    SeqRef(v).serialize(s)
                } else {
                    Tagged(self).serialize(s)
                }
            }
            Value::Dict(v) if MODE.with(Cell::get) == SaveMode::Csv => {
                use serde::ser::SerializeStruct;
                let mut row = s.serialize_struct("row", v.len())?;
                for (k, x) in v {
                    let Value::Str(key) = k else {
                        return Err(ser::Error::custom(format!(
                            "a CSV row needs str keys, this dict has the key {k:?}"
                        )));
                    };
                    row.serialize_field(intern(key), x)?;
                }
                row.end()
            }
            Value::Dict(v) => {
                let mut m = s.serialize_map(Some(v.len()))?;
                for (k, x) in v {
                    m.serialize_entry(k, x)?;
                }
                m.end()
            }
            Value::Pickle(b) => {
                if MODE.with(Cell::get) != SaveMode::Any {
                    Err(ser::Error::custom(
                        "the result holds an object that is not plain data (None, bool, int, \
                         float, str, bytes, list, tuple, dict), which this format cannot store; \
                         save with format=\"cbor\" or return plain data",
                    ))
                } else if s.is_human_readable() {
                    s.serialize_bytes(b)
                } else {
                    Tagged(self).serialize(s)
                }
            }
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CBOR or JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::UInt(v), Value::Int))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .or_else(|_| u64::try_from(v).map(Value::UInt))
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        u64::try_from(v)
            .map(self_int)
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(x) = seq.next_element::<Value>()? {
            out.push(x);
        }
        Ok(Value::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((k, v)) = map.next_entry::<Value, Value>()? {
            out.push((k, v));
        }
        Ok(Value::Dict(out))
    }
    /// A CBOR tag (ciborium presents it as the enum variant `@@TAGGED@@`
    /// holding the tag and the value).
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (_name, variant): (String, _) = data.variant()?;
        variant.tuple_variant(2, TagVisitor)
    }
}

fn self_int(u: u64) -> Value {
    i64::try_from(u).map_or(Value::UInt(u), Value::Int)
}

struct TagVisitor;

impl<'de> Visitor<'de> for TagVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tagged CBOR value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let tag: u64 = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("a CBOR tag without its number"))?;
        let inner: Value = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("a CBOR tag without its value"))?;
        match (tag, inner) {
            (TUPLE_TAG, Value::List(v)) => Ok(Value::Tuple(v)),
            (PICKLE_TAG, Value::Bytes(b)) => Ok(Value::Pickle(b)),
            (TUPLE_TAG | PICKLE_TAG, other) => Err(de::Error::custom(format!(
                "CBOR tag {tag:#x} holds an unexpected value: {other:?}"
            ))),
            // Other tags (dates, ...) are read as the value they hold.
            (_, other) => Ok(other),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// A CSV row with a header, read as a dict of its fields.
pub struct CsvRow(pub Value);

impl<'de> Deserialize<'de> for CsvRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The csv crate hands header names over as bytes.
        Ok(CsvRow(match d.deserialize_map(ValueVisitor)? {
            Value::Dict(fields) => Value::Dict(
                fields
                    .into_iter()
                    .map(|(k, v)| match k {
                        Value::Bytes(b) => match String::from_utf8(b) {
                            Ok(s) => (Value::Str(s), v),
                            Err(e) => (Value::Bytes(e.into_bytes()), v),
                        },
                        k => (k, v),
                    })
                    .collect(),
            ),
            other => other,
        }))
    }
}

/// A CSV row without a header: its fields as a list, or the field alone.
pub struct CsvRecord(pub Value);

impl<'de> Deserialize<'de> for CsvRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_seq(ValueVisitor)? {
            Value::List(mut v) if v.len() == 1 => Ok(CsvRecord(v.remove(0))),
            v => Ok(CsvRecord(v)),
        }
    }
}

/// An item or a result on the hot path: an element of a chunk's blob
/// (see `crate::blob`), or a Python object (sequential mode's results).
pub enum Data {
    /// Element `k` of a chunk (its items in both modes, its results in
    /// parallel mode).
    Part(Arc<Blob>, u32),
    /// Element `k` (at least 1) of the chunk whose element 0, a
    /// [`Data::Part`], came last before it in the same sequence: the
    /// input's items after the first of each chunk, and a worker's results
    /// likewise unless a `DatasetSaver` reads them one by one. The runtime
    /// keeps a chunk's values together, so they need no reference to the
    /// blob of their own, and a value costs no atomic reference count on
    /// the threads it crosses. Read only in its sequence
    /// (`crate::blob::whole`, `to_py_vec`); read alone it is an error.
    Sibling(u32),
    /// The object itself.
    Object(Py<PyAny>),
}

impl Clone for Data {
    fn clone(&self) -> Self {
        match self {
            Data::Part(b, k) => Data::Part(Arc::clone(b), *k),
            Data::Sibling(k) => Data::Sibling(*k),
            Data::Object(o) => Python::attach(|py| Data::Object(o.clone_ref(py))),
        }
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Data::Part(b, k) => write!(f, "<element {k} of a chunk of {}>", b.len()),
            Data::Sibling(k) => write!(f, "<element {k} of the chunk before>"),
            Data::Object(_) => write!(f, "<python object>"),
        }
    }
}

impl Data {
    /// The Python object.
    pub fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Data::Part(b, k) => b.element(py, *k as usize),
            Data::Sibling(k) => Err(pyo3::exceptions::PyRuntimeError::new_err(
                Data::lone_sibling(*k),
            )),
            Data::Object(o) => Ok(o.bind(py).clone()),
        }
    }

    /// The value as a tree (for the savers' formats).
    pub fn value(&self) -> Result<Value, String> {
        match self {
            Data::Part(b, k) => b.value(*k as usize),
            Data::Sibling(k) => Err(Data::lone_sibling(*k)),
            Data::Object(o) => Python::attach(|py| Value::from_py(o.bind(py)))
                .map_err(|e| format!("cannot convert the object: {e}")),
        }
    }
}

impl Data {
    /// Why a [`Data::Sibling`] read on its own has no value.
    pub fn lone_sibling(k: u32) -> String {
        format!(
            "internal error: element {k} of a chunk was read without the chunk's first element \
             (please report it)"
        )
    }
}

/// Serializes a chunk the way workers read it and the input fingerprint
/// covers it: the first element of each blob as the blob's wire (a byte
/// string), every other element as its place in the blob (`null`).
fn serialize_part<S: Serializer>(data: &Data, s: S) -> Result<S::Ok, S::Error> {
    match data {
        Data::Part(b, 0) => s.serialize_bytes(b.wire().map_err(ser::Error::custom)?),
        Data::Part(..) | Data::Sibling(_) => s.serialize_unit(),
        Data::Object(o) => {
            // Not part of a chunk's blob: a blob of its own.
            let blob = Python::attach(|py| Blob::from_objects(vec![o.clone_ref(py)], None));
            s.serialize_bytes(blob.wire().map_err(ser::Error::custom)?)
        }
    }
}

/// A blob of one element, read back.
struct SingleVisitor;

impl<'de> Visitor<'de> for SingleVisitor {
    type Value = Data;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the encoding of a chunk of one element (a byte string)")
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Data, E> {
        self.visit_byte_buf(v.to_vec())
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Data, E> {
        let ChunkWire(blob) = ChunkVisitor.visit_byte_buf(v)?;
        if blob.len() != 1 {
            return Err(E::custom(format!(
                "a chunk of {} elements where one was expected",
                blob.len()
            )));
        }
        Ok(Data::Part(blob, 0))
    }
}

/// One input item: its index in the input and the item. A chunk of items
/// serializes as its blob (see `serialize_part`): what a worker receives,
/// and what the input's fingerprint covers, the same in both modes. The
/// index lets a failed chunk's items be given back to the caller.
#[derive(Debug, Clone)]
pub struct Item {
    /// The item's index in the input.
    pub index: u64,
    /// The item.
    pub data: Data,
}

impl Serialize for Item {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_part(&self.data, s)
    }
}

impl<'de> Deserialize<'de> for Item {
    /// An item serialized on its own (a chunk of one).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Item {
            index: 0,
            data: d.deserialize_byte_buf(SingleVisitor)?,
        })
    }
}

/// One result; a saver serializes it as the value it holds.
#[derive(Debug, Clone)]
pub struct Out(pub Data);

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.value().map_err(ser::Error::custom)?.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Out {
    /// A result encoded on its own (a chunk of one).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Out(d.deserialize_byte_buf(SingleVisitor)?))
    }
}

/// A whole chunk of items (or of results) on its way to (or back from) a
/// worker process: its blob's wire as one CBOR byte string, so that a
/// chunk costs one value in a frame, not one per item (see
/// `crate::worker`); `ProcTask` turns the results into [`Out`]s sharing
/// the blob.
#[derive(Debug, Clone)]
pub struct ChunkWire(pub Arc<Blob>);

impl Serialize for ChunkWire {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0.wire().map_err(ser::Error::custom)?)
    }
}

struct ChunkVisitor;

impl<'de> Visitor<'de> for ChunkVisitor {
    type Value = ChunkWire;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chunk's encoding (a byte string)")
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ChunkWire, E> {
        self.visit_byte_buf(v.to_vec())
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ChunkWire, E> {
        Ok(ChunkWire(Arc::new(Blob::from_wire(v).map_err(E::custom)?)))
    }
}

impl<'de> Deserialize<'de> for ChunkWire {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_byte_buf(ChunkVisitor)
    }
}

/// The value in CBOR `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    ciborium::from_reader(bytes).map_err(|e| e.to_string())
}
