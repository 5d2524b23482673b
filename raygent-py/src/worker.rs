//! The worker side of the frame protocol, run by `python -m raygent._worker`.
//!
//! A request is one length-delimited CBOR frame holding a chunk (an array
//! of items); the reply is one frame holding `{"Ok": [results]}` or
//! `{"Err": "traceback"}`: the protocol of the runtime's Rust workers, so
//! the runtime's `ProcessTask` drives a Python worker as it drives those
//! (timeouts, memory limit, process group, death of the parent).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use raygent_core::{read_frame, write_frame};

use crate::codec;
use crate::task::{call_task, describe_error};

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

/// Runs one chunk: the request is a CBOR array of byte strings, each the
/// encoding of one item; the reply is what the runtime's `ProcessTask`
/// reads as `Result<Vec<Out>, String>`: `{"Ok": [byte strings]}` or
/// `{"Err": "the traceback"}`.
fn run_chunk(
    py: Python<'_>,
    instance: &Bound<'_, PyAny>,
    frame: &[u8],
    at_once: bool,
    kwargs: &Bound<'_, PyDict>,
    reply: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) {
    let go = |reply: &mut Vec<u8>, scratch: &mut Vec<u8>| -> PyResult<()> {
        let mut r = codec::Reader::new(frame);
        let n = r.array()?;
        let mut objs = Vec::with_capacity(n);
        for _ in 0..n {
            let item = r.byte_string()?;
            objs.push(codec::decode_py(py, item)?);
        }
        let out = call_task(instance, PyList::new(py, objs)?, at_once, kwargs)?;
        reply.clear();
        codec::head(reply, 5, 1);
        codec::text(reply, "Ok");
        codec::head(reply, 4, out.len() as u64);
        for o in &out {
            scratch.clear();
            codec::encode_py(o, scratch)?;
            codec::bytes(reply, scratch);
        }
        Ok(())
    };
    if let Err(e) = go(reply, scratch) {
        reply.clear();
        codec::head(reply, 5, 1);
        codec::text(reply, "Err");
        codec::text(reply, &describe_error(py, &e));
    }
}

/// Serves chunks on stdin/stdout with `instance` until stdin closes.
#[pyfunction]
#[pyo3(signature = (instance, kwargs, at_once))]
pub fn serve(
    py: Python<'_>,
    instance: Bound<'_, PyAny>,
    kwargs: Bound<'_, PyDict>,
    at_once: bool,
) -> PyResult<()> {
    let (input, output) = take_protocol_fds()?;
    let mut r = BufReader::with_capacity(64 * 1024, input);
    let mut w = BufWriter::with_capacity(64 * 1024, output);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    loop {
        // Blocking reads and writes release the interpreter, so the task's
        // own threads run meanwhile.
        let more = py.detach(|| read_frame(&mut r, &mut buf))?;
        if !more {
            return Ok(());
        }
        run_chunk(
            py,
            &instance,
            &buf,
            at_once,
            &kwargs,
            &mut out,
            &mut scratch,
        );
        py.detach(|| -> io::Result<()> {
            write_frame(&mut w, &out)?;
            w.flush()
        })?;
    }
}
