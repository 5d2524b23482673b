//! A whole chunk of items or results as one encoding (a "blob"), made and
//! read in one call per chunk instead of one per item.
//!
//! In parallel mode a chunk crosses to a worker process, and its results
//! come back, as one blob; every item or result on the Rust side is an
//! element of one ([`Data::Part`](crate::value::Data::Part)), sharing it
//! through an `Arc`. A blob's bytes (its *wire*) are
//!
//! ```text
//! kind (1 byte) | element count (u32, little-endian) | payload
//! ```
//!
//! - kind `C`: the payload is a CBOR array of the elements, each encoded
//!   by `crate::codec` (plain data as CBOR, tuples tagged, anything else
//!   pickled inside a tag): what savers store, element by element;
//! - kind `P`: the payload is one pickle (protocol 5, cloudpickle) of the
//!   list of elements: for chunks that hold anything but plain data, one
//!   C-pickler pass for the whole chunk instead of a pickle per value.
//!
//! [`Encoding::Auto`] writes `C` when the whole chunk is plain data and
//! `P` otherwise (or `C` with pickled values inside, should pickling the
//! list fail); [`Encoding::Cbor`] always writes `C` (results bound for a
//! `DatasetSaver`, which stores each result on its own).
//!
//! The wire of a chunk of items is also what the input fingerprint covers:
//! the same values give the same bytes in every run and in both modes.

use std::sync::{Arc, OnceLock};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::codec::{self, Reader};
use crate::value::{ChunkWire, Data, Value, decode, dumps_chunk, unpickle};

/// The kind byte of a CBOR blob.
pub const KIND_CBOR: u8 = b'C';
/// The kind byte of a pickled blob.
pub const KIND_PICKLE: u8 = b'P';
/// Kind and count.
const HEADER: usize = 5;

/// How a chunk is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// CBOR when every element is plain data, else one pickle of the list.
    Auto,
    /// CBOR, with any value that is not plain data pickled inside a tag.
    Cbor,
}

/// Where the elements of a chunk to encode come from.
pub enum Source<'a, 'py> {
    /// A Python list (a task's results).
    List(&'a Bound<'py, PyList>),
    /// Objects taken from the input.
    Slice(&'a [Bound<'py, PyAny>]),
}

impl<'py> Source<'_, 'py> {
    fn len(&self) -> usize {
        match self {
            Source::List(l) => l.len(),
            Source::Slice(s) => s.len(),
        }
    }

    fn get(&self, i: usize) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Source::List(l) => l.get_item(i),
            Source::Slice(s) => Ok(s[i].clone()),
        }
    }

    fn list(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        match self {
            Source::List(l) => Ok((*l).clone()),
            Source::Slice(s) => PyList::new(py, s.iter()),
        }
    }
}

fn header(kind: u8, n: usize) -> PyResult<Vec<u8>> {
    let count = u32::try_from(n).map_err(|_| {
        PyValueError::new_err(format!("a chunk of {n} items is too large to encode"))
    })?;
    let mut out = Vec::with_capacity(HEADER + 9 * n + 16);
    out.push(kind);
    out.extend_from_slice(&count.to_le_bytes());
    Ok(out)
}

/// The start of a CBOR blob of `n` elements: its header, then the head of
/// the CBOR array that holds them.
fn cbor_header(n: usize) -> PyResult<Vec<u8>> {
    let mut out = header(KIND_CBOR, n)?;
    codec::head(&mut out, 4, n as u64);
    Ok(out)
}

/// Encodes the elements of `src` as a blob's wire. On failure, the index
/// of the first element that cannot be encoded (not picklable) and why.
pub fn encode(
    py: Python<'_>,
    src: &Source<'_, '_>,
    encoding: Encoding,
) -> Result<Vec<u8>, (usize, PyErr)> {
    let n = src.len();
    let whole = |e: PyErr| (0usize, e);
    if encoding == Encoding::Auto {
        let mut out = cbor_header(n).map_err(whole)?;
        let mut plain = true;
        for i in 0..n {
            let x = src.get(i).map_err(|e| (i, e))?;
            if !codec::encode_plain(&x, &mut out).map_err(|e| (i, e))? {
                plain = false;
                break;
            }
        }
        if plain {
            return Ok(out);
        }
        // One pickle of the whole list; if that fails, the per-value
        // encoding below says which element is to blame.
        let list = src.list(py).map_err(whole)?;
        if let Ok(p) = dumps_chunk(py, &list) {
            let p = p.as_bytes();
            let mut out = header(KIND_PICKLE, n).map_err(whole)?;
            out.reserve(p.len());
            out.extend_from_slice(p);
            return Ok(out);
        }
    }
    let mut out = cbor_header(n).map_err(whole)?;
    for i in 0..n {
        let x = src.get(i).map_err(|e| (i, e))?;
        codec::encode_py(&x, &mut out).map_err(|e| (i, e))?;
    }
    Ok(out)
}

/// A chunk's CBOR wire made element by element as the elements are read,
/// for as long as each is plain data: the bytes [`encode`] writes, without
/// a second pass over the elements.
pub struct PlainWire {
    out: Vec<u8>,
    /// Where the elements start (after the header).
    body: usize,
    /// Elements pushed, and the count the header was written for.
    n: usize,
    full: usize,
}

impl PlainWire {
    /// A wire for a chunk of (as a rule) `full` elements; `None` if that is
    /// more than a chunk's header can count.
    pub fn new(full: usize) -> Option<Self> {
        let out = cbor_header(full).ok()?;
        let body = out.len();
        Some(PlainWire {
            out,
            body,
            n: 0,
            full,
        })
    }

    /// Appends `x`; false if it is not plain data (or fails to encode), and
    /// the wire is then of no use: the chunk is encoded by [`encode`].
    pub fn push(&mut self, x: &Bound<'_, PyAny>) -> bool {
        self.n += 1;
        self.n <= self.full && matches!(codec::encode_plain(x, &mut self.out), Ok(true))
    }

    /// The wire; for a chunk shorter than `full` (the input's last), its
    /// header is written again for the count it holds.
    pub fn finish(self) -> Option<Vec<u8>> {
        if self.n == self.full {
            return Some(self.out);
        }
        let mut wire = cbor_header(self.n).ok()?;
        wire.extend_from_slice(&self.out[self.body..]);
        Some(wire)
    }
}

fn bad(what: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("malformed chunk encoding: {what}"))
}

/// The kind and element count of a wire.
pub fn parse_header(wire: &[u8]) -> PyResult<(u8, usize)> {
    let Some((&kind, rest)) = wire.split_first() else {
        return Err(bad("it is empty"));
    };
    if kind != KIND_CBOR && kind != KIND_PICKLE {
        return Err(bad(format!("unknown kind {kind:#x}")));
    }
    let count = rest
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .ok_or_else(|| bad("it ends inside its header"))?;
    Ok((kind, u32::from_le_bytes(count) as usize))
}

/// Appends the elements of `wire` to `out` as Python objects.
pub fn decode_into<'py>(
    py: Python<'py>,
    wire: &[u8],
    out: &mut Vec<Bound<'py, PyAny>>,
) -> PyResult<usize> {
    let (kind, n) = parse_header(wire)?;
    let payload = &wire[HEADER..];
    if kind == KIND_PICKLE {
        let list = unpickle(py, payload)?;
        let list = list
            .cast_exact::<PyList>()
            .map_err(|_| bad("the pickle does not hold a list"))?;
        if list.len() != n {
            return Err(bad(format!(
                "the pickle holds {} elements, its header says {n}",
                list.len()
            )));
        }
        out.extend(list.iter());
        return Ok(n);
    }
    let mut r = Reader::new(payload);
    if r.array()? != n {
        return Err(bad("the CBOR array's length differs from the header's"));
    }
    out.reserve(n);
    for _ in 0..n {
        out.push(r.py_item(py)?);
    }
    if !r.at_end() {
        return Err(bad("bytes after the last element"));
    }
    Ok(n)
}

/// The elements of `wire` as a Python list.
pub fn decode_list<'py>(py: Python<'py>, wire: &[u8]) -> PyResult<Bound<'py, PyList>> {
    if wire.first() == Some(&KIND_PICKLE) {
        let (_, n) = parse_header(wire)?;
        let list = unpickle(py, &wire[HEADER..])?;
        if let Ok(l) = list.cast_exact::<PyList>()
            && l.len() == n
        {
            return Ok(l.clone());
        }
        return Err(bad(
            "the pickle does not hold a list of its header's length",
        ));
    }
    let mut v = Vec::new();
    decode_into(py, wire, &mut v)?;
    PyList::new(py, v)
}

/// The elements of one chunk, shared by its items (or results).
pub struct Blob {
    len: usize,
    /// The encoding (parallel mode; sequential mode once fingerprinted).
    wire: OnceLock<Vec<u8>>,
    /// The objects (sequential mode's items; a pickled blob once decoded).
    objects: OnceLock<Vec<Py<PyAny>>>,
    /// Where each element of a CBOR blob starts, and where the last ends.
    offsets: OnceLock<Vec<usize>>,
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob")
            .field("len", &self.len)
            .field("wire_bytes", &self.wire.get().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl Blob {
    /// A blob of encoded elements (checked by its header).
    pub fn from_wire(wire: Vec<u8>) -> PyResult<Blob> {
        let (_, len) = parse_header(&wire)?;
        Ok(Blob {
            len,
            wire: OnceLock::from(wire),
            objects: OnceLock::new(),
            offsets: OnceLock::new(),
        })
    }

    /// A blob of Python objects, encoded (with [`Encoding::Auto`]) only if
    /// its wire is asked for; `wire`, if given, is their encoding.
    pub fn from_objects(objects: Vec<Py<PyAny>>, wire: Option<Vec<u8>>) -> Blob {
        Blob {
            len: objects.len(),
            wire: wire.map_or_else(OnceLock::new, OnceLock::from),
            objects: OnceLock::from(objects),
            offsets: OnceLock::new(),
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The encoding (made from the objects, with the interpreter, the
    /// first time it is needed).
    pub fn wire(&self) -> Result<&[u8], String> {
        if let Some(w) = self.wire.get() {
            return Ok(w);
        }
        let Some(objects) = self.objects.get() else {
            return Err("a chunk with neither its encoding nor its objects".into());
        };
        let wire = Python::attach(|py| {
            let objs: Vec<Bound<'_, PyAny>> = objects.iter().map(|o| o.bind(py).clone()).collect();
            encode(py, &Source::Slice(&objs), Encoding::Auto).map_err(|(i, e)| {
                format!(
                    "element {i} of the chunk cannot be encoded (it must be picklable): {}",
                    crate::task::describe_error(py, &e)
                )
            })
        })?;
        Ok(self.wire.get_or_init(|| wire))
    }

    /// Appends every element to `out` as a Python object.
    pub fn extend_py<'py>(
        &self,
        py: Python<'py>,
        out: &mut Vec<Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        if let Some(objs) = self.objects.get() {
            out.extend(objs.iter().map(|o| o.bind(py).clone()));
            return Ok(());
        }
        let wire = self.wire.get().ok_or_else(|| bad("an empty chunk"))?;
        decode_into(py, wire, out)?;
        Ok(())
    }

    fn pickled_objects(&self, py: Python<'_>) -> PyResult<&[Py<PyAny>]> {
        if let Some(o) = self.objects.get() {
            return Ok(o);
        }
        let wire = self.wire.get().ok_or_else(|| bad("an empty chunk"))?;
        let mut v = Vec::with_capacity(self.len);
        decode_into(py, wire, &mut v)?;
        let objs = v.into_iter().map(Bound::unbind).collect();
        Ok(self.objects.get_or_init(|| objs))
    }

    /// The CBOR encoding of element `k` of a CBOR blob.
    fn cbor_element(&self, k: usize) -> Result<&[u8], String> {
        let wire = self.wire.get().ok_or("an empty chunk")?;
        let payload = &wire[HEADER..];
        let offsets = match self.offsets.get() {
            Some(o) => o,
            None => {
                let mut r = Reader::new(payload);
                let n = r.array().map_err(|e| e.to_string())?;
                let mut o = Vec::with_capacity(n + 1);
                for _ in 0..n {
                    o.push(r.position());
                    r.skip().map_err(|e| e.to_string())?;
                }
                o.push(r.position());
                self.offsets.get_or_init(|| o)
            }
        };
        match (offsets.get(k), offsets.get(k + 1)) {
            (Some(&a), Some(&b)) => Ok(&payload[a..b]),
            _ => Err(format!("element {k} of a chunk of {}", self.len)),
        }
    }

    fn is_cbor(&self) -> bool {
        self.wire
            .get()
            .is_some_and(|w| w.first() == Some(&KIND_CBOR))
    }

    /// Element `k` as a Python object.
    pub fn element<'py>(&self, py: Python<'py>, k: usize) -> PyResult<Bound<'py, PyAny>> {
        if self.objects.get().is_none() && self.is_cbor() {
            let b = self.cbor_element(k).map_err(bad)?;
            return codec::decode_py(py, b);
        }
        let objs = self.pickled_objects(py)?;
        objs.get(k)
            .map(|o| o.bind(py).clone())
            .ok_or_else(|| bad(format!("no element {k} in a chunk of {}", self.len)))
    }

    /// Element `k` as a value tree (for the savers).
    pub fn value(&self, k: usize) -> Result<Value, String> {
        if self.objects.get().is_none() && self.is_cbor() {
            return decode(self.cbor_element(k)?);
        }
        Python::attach(|py| Value::from_py(&self.element(py, k)?))
            .map_err(|e| format!("cannot convert the object: {e}"))
    }
}

/// The blobs of `data` if it is a sequence of whole blobs, each element
/// in its place (what a worker expects), else `None`.
pub fn whole<'a>(mut data: impl Iterator<Item = &'a Data>) -> Option<Vec<ChunkWire>> {
    let mut chunks = Vec::with_capacity(1);
    loop {
        let blob = match data.next() {
            None => return Some(chunks),
            Some(Data::Part(b, 0)) => b,
            Some(_) => return None,
        };
        for k in 1..blob.len() {
            match data.next() {
                Some(Data::Part(b, i)) if *i as usize == k && Arc::ptr_eq(b, blob) => {}
                Some(Data::Sibling(i)) if *i as usize == k => {}
                _ => return None,
            }
        }
        chunks.push(ChunkWire(Arc::clone(blob)));
    }
}

/// The Python objects of `data`, in order, each blob decoded once.
pub fn to_py_vec<'a, 'py>(
    py: Python<'py>,
    data: impl Iterator<Item = &'a Data> + Clone,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let n = data.size_hint().0;
    to_py_vec_sized(py, data, n)
}

/// [`to_py_vec`] of `data` that holds about `n` values.
fn to_py_vec_sized<'a, 'py>(
    py: Python<'py>,
    data: impl Iterator<Item = &'a Data> + Clone,
    n: usize,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    match in_order(py, data.clone(), n)? {
        Some(out) => Ok(out),
        None => any_order(py, data, n),
    }
}

/// `data` decoded a chunk at a time straight into the output, if it goes
/// through each chunk whole and in order (as the runtime hands chunks on);
/// `None` at the first value out of that order.
fn in_order<'a, 'py>(
    py: Python<'py>,
    data: impl Iterator<Item = &'a Data>,
    n: usize,
) -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
    let mut out = Vec::with_capacity(n);
    // The chunk being gone through, and its element expected next.
    let mut open: Option<(&'a Arc<Blob>, usize)> = None;
    for d in data {
        if let Some((blob, next)) = &mut open
            && *next < blob.len()
        {
            let expected = match d {
                Data::Part(b, k) => Arc::ptr_eq(b, blob) && *k as usize == *next,
                Data::Sibling(k) => *k as usize == *next,
                Data::Object(_) => false,
            };
            if !expected {
                return Ok(None);
            }
            // In the output already.
            *next += 1;
            continue;
        }
        match d {
            Data::Part(b, 0) => {
                b.extend_py(py, &mut out)?;
                open = Some((b, 1));
            }
            Data::Object(o) => {
                out.push(o.bind(py).clone());
                open = None;
            }
            _ => return Ok(None),
        }
    }
    match open {
        Some((blob, next)) if next < blob.len() => Ok(None),
        _ => Ok(Some(out)),
    }
}

/// [`to_py_vec`] of data in any order: each element looked up, the blob
/// met last decoded once.
fn any_order<'a, 'py>(
    py: Python<'py>,
    data: impl Iterator<Item = &'a Data>,
    n: usize,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let mut out = Vec::with_capacity(n);
    // The blob met last and its objects (decoded if it has several).
    let mut current: Option<(&'a Arc<Blob>, Vec<Bound<'py, PyAny>>)> = None;
    // The blob whose element 0 came last: the one a sibling belongs to.
    let mut siblings_of: Option<&'a Arc<Blob>> = None;
    for d in data {
        match d {
            Data::Part(b, k) => {
                let k = *k as usize;
                if k == 0 {
                    siblings_of = Some(b);
                }
                if let Some((cb, objs)) = &current
                    && Arc::ptr_eq(cb, b)
                    && let Some(o) = objs.get(k)
                {
                    out.push(o.clone());
                    continue;
                }
                if b.len() > 1 {
                    let mut objs = Vec::with_capacity(b.len());
                    b.extend_py(py, &mut objs)?;
                    let o = objs
                        .get(k)
                        .cloned()
                        .ok_or_else(|| bad(format!("no element {k} in a chunk of {}", b.len())))?;
                    out.push(o);
                    current = Some((b, objs));
                } else {
                    out.push(b.element(py, k)?);
                }
            }
            Data::Sibling(k) => {
                let o = match (&current, siblings_of) {
                    (Some((cb, objs)), Some(first)) if Arc::ptr_eq(cb, first) => {
                        objs.get(*k as usize)
                    }
                    _ => None,
                };
                let o = o.ok_or_else(|| {
                    pyo3::exceptions::PyRuntimeError::new_err(Data::lone_sibling(*k))
                })?;
                out.push(o.clone());
            }
            other => out.push(other.to_py(py)?),
        }
    }
    Ok(out)
}

/// The Python objects of the results in `parts`, in order, as a list.
pub fn results_to_py_list<'py>(
    py: Python<'py>,
    parts: &[Vec<crate::value::Out>],
) -> PyResult<Bound<'py, PyList>> {
    let n = parts.iter().map(Vec::len).sum();
    let data = parts.iter().flatten().map(|v| &v.0);
    PyList::new(py, to_py_vec_sized(py, data, n)?)
}

/// The Python objects of `data` as a list (see [`to_py_vec`]).
pub fn to_py_list<'a, 'py>(
    py: Python<'py>,
    data: impl Iterator<Item = &'a Data> + Clone,
) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, to_py_vec(py, data)?)
}
