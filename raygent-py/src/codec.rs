//! A direct CBOR codec between Python objects and bytes, for the hot path:
//! items on their way to a worker, results on their way back. It writes
//! what [`Value`](crate::value::Value)'s serde encoding writes (the same
//! tags for tuples and pickles), without building a `Value` tree, and
//! reads the same.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::value::{MAX_DEPTH, PICKLE_TAG, TUPLE_TAG, pickle, unpickle};

const UINT: u8 = 0;
const NINT: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;

/// Appends a CBOR head (major type and argument), in its shortest form.
#[inline]
pub fn head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
        return;
    }
    // One append of the whole head: this runs once per value.
    let be = arg.to_be_bytes();
    let (info, len) = if arg <= 0xff {
        (24, 1)
    } else if arg <= 0xffff {
        (25, 2)
    } else if arg <= 0xffff_ffff {
        (26, 4)
    } else {
        (27, 8)
    };
    let mut buf = [0u8; 9];
    buf[0] = m | info;
    buf[1..=len].copy_from_slice(&be[8 - len..]);
    out.extend_from_slice(&buf[..=len]);
}

/// Appends a byte string.
pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    head(out, BYTES, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends a text string.
pub fn text(out: &mut Vec<u8>, s: &str) {
    head(out, TEXT, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends the CBOR encoding of `obj`: plain data as CBOR, tuples tagged,
/// anything else pickled inside a tag.
pub fn encode_py(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    encode_at(obj, out, 0, false).map(|_| ())
}

/// Appends the CBOR encoding of `obj` if it is plain data all the way down
/// (None, bool, int of 64 bits, float, str, bytes, list, tuple, dict, of
/// these exact types): what [`encode_py`] writes, with no pickle inside.
/// `Ok(false)` at the first value that would need pickling (`out` then
/// holds a partial encoding).
pub fn encode_plain(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<bool> {
    encode_at(obj, out, 0, true)
}

fn encode_pickled(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, strict: bool) -> PyResult<bool> {
    if strict {
        return Ok(false);
    }
    head(out, TAG, PICKLE_TAG);
    bytes(out, &pickle(obj)?);
    Ok(true)
}

fn encode_at(
    obj: &Bound<'_, PyAny>,
    out: &mut Vec<u8>,
    depth: usize,
    strict: bool,
) -> PyResult<bool> {
    if obj.is_none() {
        out.push(0xf6);
        return Ok(true);
    }
    if depth >= MAX_DEPTH {
        return encode_pickled(obj, out, strict);
    }
    if obj.is_exact_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            match u64::try_from(i) {
                Ok(u) => head(out, UINT, u),
                Err(_) => head(out, NINT, !(i as u64)),
            }
            return Ok(true);
        }
        if let Ok(u) = obj.extract::<u64>() {
            head(out, UINT, u);
            return Ok(true);
        }
        return encode_pickled(obj, out, strict);
    }
    if obj.is_exact_instance_of::<PyString>() {
        if let Ok(s) = obj.cast::<PyString>()?.to_str() {
            text(out, s);
            return Ok(true);
        }
        // A str holding lone surrogates is not valid UTF-8.
        return encode_pickled(obj, out, strict);
    }
    if obj.is_exact_instance_of::<PyFloat>() {
        out.push(0xfb);
        out.extend_from_slice(&obj.extract::<f64>()?.to_be_bytes());
        return Ok(true);
    }
    if obj.is_exact_instance_of::<PyBool>() {
        out.push(if obj.is_truthy()? { 0xf5 } else { 0xf4 });
        return Ok(true);
    }
    if obj.is_exact_instance_of::<PyList>() {
        let list = obj.cast::<PyList>()?;
        head(out, ARRAY, list.len() as u64);
        for x in list.iter() {
            if !encode_at(&x, out, depth + 1, strict)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if obj.is_exact_instance_of::<PyTuple>() {
        let t = obj.cast::<PyTuple>()?;
        head(out, TAG, TUPLE_TAG);
        head(out, ARRAY, t.len() as u64);
        for x in t.iter() {
            if !encode_at(&x, out, depth + 1, strict)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if obj.is_exact_instance_of::<PyDict>() {
        let d = obj.cast::<PyDict>()?;
        head(out, MAP, d.len() as u64);
        for (k, v) in d.iter() {
            if !encode_at(&k, out, depth + 1, strict)? || !encode_at(&v, out, depth + 1, strict)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if obj.is_exact_instance_of::<PyBytes>() {
        bytes(out, obj.cast::<PyBytes>()?.as_bytes());
        return Ok(true);
    }
    encode_pickled(obj, out, strict)
}

/// The CBOR encoding of `obj`, in a vector of its own.
pub fn to_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let mut out = Vec::new();
    encode_py(obj, &mut out)?;
    Ok(out)
}

fn bad(what: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("malformed CBOR: {what}"))
}

/// A cursor over CBOR bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Whether everything was read.
    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    #[inline]
    fn take(&mut self, n: usize) -> PyResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| bad("it ends early"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    #[inline]
    fn uint(&mut self, n: usize) -> PyResult<u64> {
        let b = self.take(n)?;
        let mut be = [0u8; 8];
        be[8 - b.len()..].copy_from_slice(b);
        Ok(u64::from_be_bytes(be))
    }

    /// The next head: (major type, additional info, argument).
    #[inline]
    pub fn head(&mut self) -> PyResult<(u8, u8, u64)> {
        let Some(&b) = self.buf.get(self.pos) else {
            return Err(bad("it ends early"));
        };
        self.pos += 1;
        let (major, info) = (b >> 5, b & 0x1f);
        if info < 24 {
            return Ok((major, info, u64::from(info)));
        }
        let arg = match info {
            0..=23 => u64::from(info),
            24 => self.uint(1)?,
            25 => self.uint(2)?,
            26 => self.uint(4)?,
            27 => self.uint(8)?,
            31 if major == 7 => 0,
            31 => return Err(bad("indefinite lengths are not supported")),
            _ => return Err(bad(format!("reserved additional info {info}"))),
        };
        Ok((major, info, arg))
    }

    fn len(&mut self, arg: u64) -> PyResult<usize> {
        let n = usize::try_from(arg).map_err(|_| bad("a length too large"))?;
        // Every element takes at least one byte.
        if n > self.buf.len() - self.pos {
            return Err(bad("a length past the end"));
        }
        Ok(n)
    }

    /// The next byte string.
    pub fn byte_string(&mut self) -> PyResult<&'a [u8]> {
        match self.head()? {
            (BYTES, _, arg) => {
                let n = self.len(arg)?;
                self.take(n)
            }
            (major, ..) => Err(bad(format!(
                "expected a byte string, found major type {major}"
            ))),
        }
    }

    /// The length of the next array.
    pub fn array(&mut self) -> PyResult<usize> {
        match self.head()? {
            (ARRAY, _, arg) => self.len(arg),
            (major, ..) => Err(bad(format!("expected an array, found major type {major}"))),
        }
    }

    /// The next item as a Python object.
    pub fn py_item<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.item_at(py, 0)
    }

    /// The position of the next byte.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether the next item is a byte string (without reading it).
    pub fn at_byte_string(&self) -> bool {
        self.buf.get(self.pos).is_some_and(|b| b >> 5 == BYTES)
    }

    /// Skips the next item, checking its structure but building nothing.
    pub fn skip(&mut self) -> PyResult<()> {
        self.skip_at(0)
    }

    fn skip_at(&mut self, depth: usize) -> PyResult<()> {
        if depth > 2 * MAX_DEPTH + 8 {
            return Err(bad("nested too deeply"));
        }
        let (major, _, arg) = self.head()?;
        match major {
            BYTES | TEXT => {
                let n = self.len(arg)?;
                self.take(n)?;
            }
            ARRAY => {
                let n = self.len(arg)?;
                for _ in 0..n {
                    self.skip_at(depth + 1)?;
                }
            }
            MAP => {
                let n = self.len(arg)?;
                for _ in 0..2 * n {
                    self.skip_at(depth + 1)?;
                }
            }
            TAG => self.skip_at(depth + 1)?,
            _ => {}
        }
        Ok(())
    }

    fn item_at<'py>(&mut self, py: Python<'py>, depth: usize) -> PyResult<Bound<'py, PyAny>> {
        if depth > 2 * MAX_DEPTH + 8 {
            return Err(bad("nested too deeply"));
        }
        let (major, info, arg) = self.head()?;
        Ok(match major {
            UINT => arg.into_pyobject(py)?.into_any(),
            NINT => match i64::try_from(arg) {
                Ok(a) => (-1 - a).into_pyobject(py)?.into_any(),
                Err(_) => (-1 - i128::from(arg)).into_pyobject(py)?.into_any(),
            },
            BYTES => {
                let n = self.len(arg)?;
                PyBytes::new(py, self.take(n)?).into_any()
            }
            TEXT => {
                let n = self.len(arg)?;
                let s = std::str::from_utf8(self.take(n)?).map_err(bad)?;
                PyString::new(py, s).into_any()
            }
            ARRAY => {
                let n = self.len(arg)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.item_at(py, depth + 1)?);
                }
                PyList::new(py, items)?.into_any()
            }
            MAP => {
                let n = self.len(arg)?;
                let d = PyDict::new(py);
                for _ in 0..n {
                    let k = self.item_at(py, depth + 1)?;
                    let v = self.item_at(py, depth + 1)?;
                    d.set_item(k, v)?;
                }
                d.into_any()
            }
            TAG => match arg {
                TUPLE_TAG => {
                    let n = self.array()?;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.item_at(py, depth + 1)?);
                    }
                    PyTuple::new(py, items)?.into_any()
                }
                PICKLE_TAG => {
                    let b = self.byte_string()?;
                    unpickle(py, b)?
                }
                // Other tags (dates, ...): the value they hold.
                _ => self.item_at(py, depth + 1)?,
            },
            _ => match info {
                20 => PyBool::new(py, false).to_owned().into_any(),
                21 => PyBool::new(py, true).to_owned().into_any(),
                22 | 23 => py.None().into_bound(py),
                25 => PyFloat::new(py, f16_to_f64(arg as u16)).into_any(),
                26 => PyFloat::new(py, f64::from(f32::from_bits(arg as u32))).into_any(),
                27 => PyFloat::new(py, f64::from_bits(arg)).into_any(),
                _ => return Err(bad(format!("unknown simple value {info}"))),
            },
        })
    }
}

fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// The Python object encoded in `buf` (exactly one item).
pub fn decode_py<'py>(py: Python<'py>, buf: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let mut r = Reader::new(buf);
    let obj = r.py_item(py)?;
    if !r.at_end() {
        return Err(bad("bytes after the item"));
    }
    Ok(obj)
}
