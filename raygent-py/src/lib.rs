//! The native module of the `raygent` Python package (`raygent._native`):
//! the seed's `TaskManager`, savers and checkpoints on the Rust runtime.
//!
//! The Python package (`raygent-py/python/raygent`) holds the public API
//! and checks its arguments; this module runs jobs on `raygent-actors`
//! (tasks in the caller's process or in `python -m raygent._worker`
//! processes driven by the runtime's process workers), saves with
//! `raygent-savers` and checkpoints with `raygent-ckpt`. See
//! `docs/python.md`.

mod blob;
mod ckpt;
mod codec;
mod errors;
mod job;
mod saver;
mod task;
mod value;
mod worker;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The CBOR encoding of a Python value, as items and results cross the
/// worker pipes and are saved (plain data as CBOR, the rest pickled).
#[pyfunction]
fn encode<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &codec::to_bytes(obj)?))
}

/// The Python value of CBOR bytes made by [`encode`] (or by any CBOR writer).
#[pyfunction]
fn decode<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    codec::decode_py(py, data)
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(job::run_job, m)?)?;
    m.add_function(wrap_pyfunction!(worker::serve, m)?)?;
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_class::<saver::NativeReader>()?;
    m.add_class::<saver::ReaderIter>()?;
    m.add_class::<ckpt::StepStore>()?;
    m.add_class::<ckpt::StageStore>()?;
    Ok(())
}
