//! The worker side of the frame protocol, run by `python -m raygent._worker`.
//!
//! A request is one length-delimited CBOR frame holding an array of
//! chunks, each its blob's wire (a byte string; one chunk, as a rule); the
//! reply is one frame holding `{"Ok": [results]}` (a blob of results per
//! chunk) or `{"Err": "traceback"}`: the protocol of the runtime's Rust
//! workers, with a whole chunk as its unit, so
//! the runtime's `ProcessTask` drives a Python worker as it drives those
//! (timeouts, memory limit, process group, death of the parent).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use raygent_core::{read_frame, write_frame};

use crate::blob::{self, Encoding, Source};
use crate::codec;
use crate::task::{TaskCall, describe_error};

/// Moves the protocol off fds 0 and 1: returns (input, output) on new
/// close-on-exec descriptors and points fd 1 at stderr (a stray `print`
/// goes to the worker's stderr, which raygent keeps for error messages)
/// and fd 0 at /dev/null.
fn take_protocol_fds() -> io::Result<(File, File)> {
    let devnull = File::open("/dev/null")?;
    let input = File::from(rustix::io::fcntl_dupfd_cloexec(io::stdin(), 3)?);
    let output = File::from(rustix::io::fcntl_dupfd_cloexec(io::stdout(), 3)?);
    rustix::stdio::dup2_stdout(io::stderr())?;
    rustix::stdio::dup2_stdin(&devnull)?;
    Ok((input, output))
}

/// The items of a request (an array of chunks, each its blob's wire, see
/// `crate::blob`) as one list, and how many items each chunk holds.
fn read_items<'py>(py: Python<'py>, frame: &[u8]) -> PyResult<(Bound<'py, PyList>, Vec<usize>)> {
    let bad = |what: String| PyValueError::new_err(format!("malformed chunk request: {what}"));
    let mut r = codec::Reader::new(frame);
    let n = r.array()?;
    let mut sizes = Vec::with_capacity(n);
    let mut objs: Vec<Bound<'py, PyAny>> = Vec::new();
    let mut single: Option<Bound<'py, PyList>> = None;
    for i in 0..n {
        if !r.at_byte_string() {
            return Err(bad(format!("element {i} is not a chunk")));
        }
        let wire = r.byte_string()?;
        if n == 1 {
            // The usual case: the request is one chunk.
            let l = blob::decode_list(py, wire)?;
            sizes.push(l.len());
            single = Some(l);
        } else {
            sizes.push(blob::decode_into(py, wire, &mut objs)?);
        }
    }
    if !r.at_end() {
        return Err(bad("bytes after the last chunk".into()));
    }
    match single {
        Some(l) => Ok((l, sizes)),
        None => Ok((PyList::new(py, objs)?, sizes)),
    }
}

/// Runs one request and writes the reply: what the runtime's
/// `ProcessTask` reads as `Result<Vec<Out>, String>`: `{"Ok": [blob, ...]}`
/// (each chunk's results as one blob) or `{"Err": "the traceback"}`.
fn run_chunk(
    py: Python<'_>,
    call: &TaskCall,
    frame: &[u8],
    results: Encoding,
    reply: &mut Vec<u8>,
) {
    let go = |reply: &mut Vec<u8>| -> PyResult<()> {
        let (items, sizes) = read_items(py, frame)?;
        let out = call.call(items)?;
        let bad_result = |at: usize, (i, e): (usize, PyErr)| {
            let what = format!(
                "result {} cannot be sent back to raygent (it must be picklable)",
                at + i
            );
            let err = PyValueError::new_err(what);
            err.set_cause(py, Some(e));
            err
        };
        reply.clear();
        codec::head(reply, 5, 1);
        codec::text(reply, "Ok");
        codec::head(reply, 4, sizes.len() as u64);
        if let [_] = sizes[..] {
            let wire =
                blob::encode(py, &Source::List(&out), results).map_err(|e| bad_result(0, e))?;
            codec::bytes(reply, &wire);
            return Ok(());
        }
        let mut at = 0;
        for m in sizes {
            let part = out.get_slice(at, at + m);
            let wire =
                blob::encode(py, &Source::List(&part), results).map_err(|e| bad_result(at, e))?;
            codec::bytes(reply, &wire);
            at += m;
        }
        Ok(())
    };
    if let Err(e) = go(reply) {
        reply.clear();
        codec::head(reply, 5, 1);
        codec::text(reply, "Err");
        codec::text(reply, &describe_error(py, &e));
    }
}

/// Serves chunks on stdin/stdout with `instance` until stdin closes.
/// `results` is `"cbor"` when every result must be stored on its own (a
/// `DatasetSaver`), else `"auto"`.
#[pyfunction]
#[pyo3(signature = (instance, kwargs, at_once, results="auto"))]
pub fn serve(
    py: Python<'_>,
    instance: Bound<'_, PyAny>,
    kwargs: Bound<'_, PyDict>,
    at_once: bool,
    results: &str,
) -> PyResult<()> {
    let results = match results {
        "auto" => Encoding::Auto,
        "cbor" => Encoding::Cbor,
        other => {
            return Err(PyValueError::new_err(format!(
                "results must be \"auto\" or \"cbor\", not {other:?}"
            )));
        }
    };
    let call = TaskCall::new(&instance, at_once, &kwargs)?;
    let (input, output) = take_protocol_fds()?;
    let mut r = BufReader::with_capacity(64 * 1024, input);
    let mut w = BufWriter::with_capacity(64 * 1024, output);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        // Blocking reads and writes release the interpreter, so the task's
        // own threads run meanwhile.
        let more = py.detach(|| read_frame(&mut r, &mut buf))?;
        if !more {
            return Ok(());
        }
        run_chunk(py, &call, &buf, results, &mut out);
        py.detach(|| -> io::Result<()> {
            write_frame(&mut w, &out)?;
            w.flush()
        })?;
    }
}
