//! The task a job runs: a Python task in the caller's process (sequential
//! mode) or in a Python worker process speaking raygent's frame protocol
//! (parallel mode, through the runtime's [`ProcessTask`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList};
use raygent_actors::worker::{ProcessTask, RustWorker};
use raygent_core::{Task, TaskError};

use crate::value::{Data, Item, Out};

/// What every task instance of one job shares.
pub struct Shared {
    /// The task class (or any callable returning a task instance).
    pub task_class: Py<PyAny>,
    /// Keyword arguments for every call of the task.
    pub kwargs: Py<PyDict>,
    /// `process_items` on whole chunks, not `process_item` on each item.
    pub at_once: bool,
    /// Recorded in checkpoints.
    pub name: String,
    /// Recorded in checkpoints.
    pub version: String,
    /// The items of chunks whose last attempt failed, by first item index,
    /// so that a chunk that fails for good can be reported with its items.
    pub failed: Mutex<HashMap<u64, Vec<Data>>>,
}

impl Shared {
    fn lock_failed(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<Data>>> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record<T>(&self, items: &[Item], result: &Result<T, TaskError>) {
        let Some(first) = items.first() else { return };
        match result {
            Ok(_) => {
                let mut failed = self.lock_failed();
                if !failed.is_empty() {
                    failed.remove(&first.index);
                }
            }
            Err(_) => {
                let values = items.iter().map(|i| i.data.clone()).collect();
                self.lock_failed().insert(first.index, values);
            }
        }
    }

    /// The items of the failed chunk starting at input index `first`.
    pub fn failed_items(&self, first: u64) -> Option<Vec<Data>> {
        self.lock_failed().remove(&first)
    }
}

static BASE_RUN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Whether `instance` has a `run` method of its own (not `raygent.Task`'s,
/// which does what the caller does anyway, minus a Python frame per chunk).
fn has_own_run(instance: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = instance.py();
    let Some(run) = instance.get_type().getattr_opt("run")? else {
        return Ok(false);
    };
    let base = BASE_RUN.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py
            .import("raygent.task")?
            .getattr("Task")?
            .getattr("run")?
            .unbind())
    })?;
    Ok(!run.is(base.bind(py)))
}

/// The task's `process_*` call on one chunk of Python objects: its own
/// `run(items, at_once=..., **kwargs)` if it has one, else
/// `process_items(items, **kwargs)` (at once) or `process_item(item,
/// **kwargs)` on each item.
pub fn call_task<'py>(
    instance: &Bound<'py, PyAny>,
    items: Bound<'py, PyList>,
    at_once: bool,
    kwargs: &Bound<'py, PyDict>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let n = items.len();
    let kwargs = (!kwargs.is_empty()).then_some(kwargs);
    let out: Vec<Bound<'py, PyAny>> = if has_own_run(instance)? {
        let kw = match kwargs {
            Some(k) => k.copy()?,
            None => PyDict::new(instance.py()),
        };
        kw.set_item("at_once", at_once)?;
        let r = instance.call_method("run", (items,), Some(&kw))?;
        r.try_iter()?.collect::<PyResult<_>>()?
    } else if at_once {
        let r = instance.call_method("process_items", (items,), kwargs)?;
        r.try_iter()?.collect::<PyResult<_>>()?
    } else {
        let f = instance.getattr("process_item")?;
        let mut out = Vec::with_capacity(n);
        for x in items.iter() {
            out.push(match kwargs {
                Some(k) => f.call((x,), Some(k))?,
                None => f.call1((x,))?,
            });
        }
        out
    };
    if out.len() != n {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "the task returned {} result(s) for {n} item(s)",
            out.len()
        )));
    }
    Ok(out)
}

/// The text of a Python exception with its traceback.
pub fn describe_error(py: Python<'_>, err: &PyErr) -> String {
    let formatted = (|| -> PyResult<String> {
        let tb = py.import("traceback")?;
        let lines = tb.call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )?;
        let text: Vec<String> = lines.extract()?;
        Ok(text.concat())
    })();
    match formatted {
        Ok(s) => s.trim_end().to_owned(),
        Err(_) => err.to_string(),
    }
}

/// A Python task run in the caller's process (the seed's `use_ray=False`).
pub struct LocalTask {
    shared: Arc<Shared>,
    instance: Option<Py<PyAny>>,
}

impl LocalTask {
    /// A task whose instance is made on its first chunk.
    pub fn new(shared: Arc<Shared>) -> Self {
        LocalTask {
            shared,
            instance: None,
        }
    }

    fn run(&mut self, items: &[Item]) -> Result<Vec<Out>, TaskError> {
        let shared = Arc::clone(&self.shared);
        let result = Python::attach(|py| -> Result<Vec<Out>, TaskError> {
            let mut go = || -> PyResult<Vec<Out>> {
                let instance = match &self.instance {
                    Some(i) => i.bind(py).clone(),
                    None => {
                        let i = shared.task_class.bind(py).call0()?;
                        self.instance = Some(i.clone().unbind());
                        i
                    }
                };
                let objs = items
                    .iter()
                    .map(|i| i.data.to_py(py))
                    .collect::<PyResult<Vec<_>>>()?;
                let list = PyList::new(py, objs)?;
                let out = call_task(&instance, list, shared.at_once, shared.kwargs.bind(py))?;
                Ok(out
                    .into_iter()
                    .map(|o| Out(Data::Object(o.unbind())))
                    .collect())
            };
            go().map_err(|e| describe_error(py, &e).into())
        });
        shared.record(items, &result);
        result
    }
}

impl Task for LocalTask {
    type Input = Item;
    type Output = Out;

    fn process_item(&mut self, item: &Item) -> Result<Out, TaskError> {
        let mut out = self.run(std::slice::from_ref(item))?;
        out.pop()
            .ok_or_else(|| "the task returned no result".into())
    }

    fn process_items(&mut self, items: &[Item]) -> Result<Vec<Out>, TaskError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.run(items)
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.shared.name.clone())
    }

    fn version(&self) -> Cow<'static, str> {
        Cow::Owned(self.shared.version.clone())
    }
}

/// The type of a Python task run by `python -m raygent._worker`: the
/// runtime's [`RustWorker`] drives it; it never runs in this process.
pub struct PyWorkerTask;

impl Task for PyWorkerTask {
    type Input = Item;
    type Output = Out;

    fn process_item(&mut self, _item: &Item) -> Result<Out, TaskError> {
        Err("a Python worker task runs in a worker process only".into())
    }
}

/// A Python task in a worker process.
pub struct ProcTask {
    shared: Arc<Shared>,
    inner: ProcessTask<PyWorkerTask>,
}

impl ProcTask {
    /// The next worker of `worker` (started on its first chunk).
    pub fn new(shared: Arc<Shared>, worker: &RustWorker<PyWorkerTask>) -> Self {
        ProcTask {
            shared,
            inner: worker.task(),
        }
    }
}

impl Task for ProcTask {
    type Input = Item;
    type Output = Out;

    fn process_item(&mut self, item: &Item) -> Result<Out, TaskError> {
        let mut out = self.process_items(std::slice::from_ref(item))?;
        out.pop()
            .ok_or_else(|| "the worker returned no result".into())
    }

    fn process_items(&mut self, items: &[Item]) -> Result<Vec<Out>, TaskError> {
        let result = self.inner.process_items(items);
        self.shared.record(items, &result);
        result
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.shared.name.clone())
    }

    fn version(&self) -> Cow<'static, str> {
        Cow::Owned(self.shared.version.clone())
    }
}

/// Either kind, so one `TaskManager` type runs both.
pub enum PyTask {
    /// In the caller's process.
    Local(LocalTask),
    /// In a worker process.
    Proc(Box<ProcTask>),
}

impl Task for PyTask {
    type Input = Item;
    type Output = Out;

    fn process_item(&mut self, item: &Item) -> Result<Out, TaskError> {
        match self {
            PyTask::Local(t) => t.process_item(item),
            PyTask::Proc(t) => t.process_item(item),
        }
    }

    fn process_items(&mut self, items: &[Item]) -> Result<Vec<Out>, TaskError> {
        match self {
            PyTask::Local(t) => t.process_items(items),
            PyTask::Proc(t) => t.process_items(items),
        }
    }

    fn name(&self) -> Cow<'static, str> {
        match self {
            PyTask::Local(t) => t.name(),
            PyTask::Proc(t) => t.name(),
        }
    }

    fn version(&self) -> Cow<'static, str> {
        match self {
            PyTask::Local(t) => t.version(),
            PyTask::Proc(t) => t.version(),
        }
    }
}
