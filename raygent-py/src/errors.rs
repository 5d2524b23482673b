//! Rust errors as the Python exceptions of `raygent.errors`.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The message of `e` followed by its sources (Display never repeats them).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// An instance of `raygent.errors.<class>` with message `msg` and the
/// given attributes.
pub fn raise(
    py: Python<'_>,
    class: &str,
    msg: String,
    attrs: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>,
) -> PyErr {
    let made = (|| -> PyResult<PyErr> {
        let cls = py.import("raygent.errors")?.getattr(class)?;
        let e = cls.call1((msg.clone(),))?;
        let d = PyDict::new(py);
        attrs(&d)?;
        for (k, v) in d.iter() {
            e.setattr(k.cast::<pyo3::types::PyString>()?, v)?;
        }
        Ok(PyErr::from_value(e))
    })();
    made.unwrap_or_else(|err| PyRuntimeError::new_err(format!("{msg} ({err})")))
}

/// A saver or reader error.
pub fn save_error(e: &raygent_savers::Error) -> PyErr {
    let msg = chain(e);
    Python::attach(|py| match e {
        raygent_savers::Error::Missing { url } | raygent_savers::Error::NotFound { url } => {
            let url = url.clone();
            raise(py, "DatasetNotFoundError", msg, |d| d.set_item("url", url))
        }
        raygent_savers::Error::InvalidUrl { .. }
        | raygent_savers::Error::UnknownScheme { .. }
        | raygent_savers::Error::UnknownFormat(_)
        | raygent_savers::Error::Usage { .. } => PyValueError::new_err(msg),
        _ => raise(py, "SaveError", msg, |_| Ok(())),
    })
}

/// A checkpoint error.
pub fn ckpt_error(e: &raygent_ckpt::Error) -> PyErr {
    let msg = chain(e);
    Python::attach(|py| match e {
        raygent_ckpt::Error::InvalidName { .. }
        | raygent_ckpt::Error::InvalidArgument(_)
        | raygent_ckpt::Error::InvalidGlob { .. } => PyValueError::new_err(msg),
        raygent_ckpt::Error::NotDone { name, .. } => {
            let name = name.clone();
            raise(py, "CheckpointNotFoundError", msg, |d| {
                d.set_item("name", name)
            })
        }
        raygent_ckpt::Error::StepExists { step, location } => {
            let step = *step;
            let msg = format!(
                "checkpoint step {step} already exists at {location}; pass overwrite=True to replace it"
            );
            raise(py, "StepExistsError", msg, |d| d.set_item("step", step))
        }
        raygent_ckpt::Error::StepNotFound { .. } => {
            raise(py, "CheckpointNotFoundError", msg, |_| Ok(()))
        }
        _ => raise(py, "CheckpointError", msg, |_| Ok(())),
    })
}

/// A job error. `failed_items` gives the items of a chunk that failed for
/// good, by its first item's index.
pub fn job_error<'py>(
    py: Python<'py>,
    e: &raygent_core::Error,
    failed_items: impl FnOnce(u64) -> Option<Bound<'py, PyAny>>,
) -> PyErr {
    use raygent_core::Error as E;
    let msg = chain(e);
    match e {
        E::InvalidConfig(_) => PyValueError::new_err(msg),
        E::ChunkFailed {
            index,
            items,
            attempts,
            last_error,
        } => {
            let list = failed_items(items.start);
            raise(py, "ChunkFailedError", msg, |d| {
                d.set_item("chunk", index)?;
                d.set_item("start", items.start)?;
                d.set_item("end", items.end)?;
                d.set_item("items", list)?;
                d.set_item("attempts", attempts)?;
                d.set_item("last_error", last_error)
            })
        }
        E::Input { item, .. } => raise(py, "InputError", msg, |d| d.set_item("item", item)),
        E::Save(_) => raise(py, "SaveError", msg, |_| Ok(())),
        E::JobMismatch {
            location,
            differences,
        } => raise(py, "JobMismatchError", msg, |d| {
            d.set_item("location", location)?;
            d.set_item("differences", differences.clone())
        }),
        E::Checkpoint(_) => raise(py, "CheckpointError", msg, |_| Ok(())),
        E::Interrupted { committed_chunks } => raise(py, "JobInterruptedError", msg, |d| {
            d.set_item("committed_chunks", committed_chunks)
        }),
        _ => raise(py, "RaygentError", msg, |_| Ok(())),
    }
}
