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

use crate::blob::{Blob, Encoding, Source};
use crate::value::{Data, Item, Out, Reply};

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
static EACH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

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

enum How {
    /// `run(items, at_once=..., **kwargs)`; the dict holds the keywords.
    Run(Py<PyAny>, Py<PyDict>),
    /// `process_items(items, **kwargs)`.
    AtOnce(Py<PyAny>),
    /// `process_item(item, **kwargs)` on each item, called from Python
    /// (`raygent.task._each`: a call per item from C is cheaper than one
    /// from Rust through the stable ABI).
    Each(Py<PyAny>),
}

/// How one task instance is called on a chunk: decided once per instance
/// (its bound method looked up once), not once per chunk.
pub struct TaskCall {
    how: How,
    /// `kwargs_task`, or None when empty.
    kwargs: Option<Py<PyDict>>,
}

impl TaskCall {
    /// The call of `instance`: its own `run(items, at_once=..., **kwargs)`
    /// if it has one, else `process_items(items, **kwargs)` (at once) or
    /// `process_item(item, **kwargs)` on each item.
    pub fn new(
        instance: &Bound<'_, PyAny>,
        at_once: bool,
        kwargs: &Bound<'_, PyDict>,
    ) -> PyResult<Self> {
        let py = instance.py();
        let kw = (!kwargs.is_empty()).then(|| kwargs.clone().unbind());
        let how = if has_own_run(instance)? {
            let d = kwargs.copy()?;
            d.set_item("at_once", at_once)?;
            How::Run(instance.getattr("run")?.unbind(), d.unbind())
        } else if at_once {
            How::AtOnce(instance.getattr("process_items")?.unbind())
        } else {
            EACH.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
                Ok(py.import("raygent.task")?.getattr("_each")?.unbind())
            })?;
            How::Each(instance.getattr("process_item")?.unbind())
        };
        Ok(TaskCall { how, kwargs: kw })
    }

    /// The task's results for one chunk, one per item, in a list.
    pub fn call<'py>(&self, items: Bound<'py, PyList>) -> PyResult<Bound<'py, PyList>> {
        let py = items.py();
        let n = items.len();
        let kwargs = self.kwargs.as_ref().map(|k| k.bind(py));
        let r = match &self.how {
            How::Run(f, kw) => f.bind(py).call((items,), Some(&kw.bind(py).copy()?))?,
            How::AtOnce(f) => f.bind(py).call((items,), kwargs)?,
            How::Each(f) => {
                let each = EACH.get(py).ok_or_else(|| {
                    pyo3::exceptions::PyRuntimeError::new_err("raygent.task._each is not loaded")
                })?;
                each.bind(py).call1((f.bind(py), items, kwargs))?
            }
        };
        let out = match r.cast_exact::<PyList>() {
            Ok(l) => l.clone(),
            Err(_) => PyList::new(py, r.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
        };
        if out.len() != n {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "the task returned {} result(s) for {n} item(s)",
                out.len()
            )));
        }
        Ok(out)
    }
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
    instance: Option<TaskCall>,
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
                let call = match &self.instance {
                    Some(c) => c,
                    None => {
                        let i = shared.task_class.bind(py).call0()?;
                        let c = TaskCall::new(&i, shared.at_once, shared.kwargs.bind(py))?;
                        self.instance.insert(c)
                    }
                };
                let list = crate::blob::to_py_list(py, items.iter().map(|i| &i.data))?;
                let out = call.call(list)?;
                Ok(out.iter().map(|o| Out(Data::Object(o.unbind()))).collect())
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
    type Output = Reply;

    fn process_item(&mut self, _item: &Item) -> Result<Reply, TaskError> {
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
        let result = if crate::blob::is_whole(items.iter().map(|i| &i.data)) {
            self.inner.process_items(items)
        } else {
            // Not the chunks the input was encoded in: encode these items
            // as one chunk (never the case when the runtime chunks the
            // input as `PyInput` does).
            reencode(items).and_then(|items| self.inner.process_items(&items))
        };
        let result = result.and_then(unpack);
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

/// `items` as one chunk, encoded afresh.
fn reencode(items: &[Item]) -> Result<Vec<Item>, TaskError> {
    Python::attach(|py| -> Result<Vec<Item>, TaskError> {
        let objs = crate::blob::to_py_vec(py, items.iter().map(|i| &i.data))
            .map_err(|e| describe_error(py, &e))?;
        let wire =
            crate::blob::encode(py, &Source::Slice(&objs), Encoding::Auto).map_err(|(i, e)| {
                format!(
                    "item {i} of the chunk cannot be sent to a worker process: {}",
                    describe_error(py, &e)
                )
            })?;
        let blob = Arc::new(Blob::from_wire(wire).map_err(|e| e.to_string())?);
        Ok(items
            .iter()
            .enumerate()
            .map(|(k, it)| Item {
                index: it.index,
                data: Data::Part(Arc::clone(&blob), k as u32),
            })
            .collect())
    })
}

/// A worker's reply as results: each blob's wire (in the place of its
/// first result) and the places after it become elements of one shared blob.
fn unpack(replies: Vec<Reply>) -> Result<Vec<Out>, TaskError> {
    let broken = |what: String| -> TaskError {
        format!("the worker's reply does not hold whole chunks of results: {what}").into()
    };
    let total = replies.len();
    let mut outs = Vec::with_capacity(total);
    let mut replies = replies.into_iter();
    while let Some(first) = replies.next() {
        let i = outs.len();
        let Reply::Wire(wire) = first else {
            return Err(broken(format!("result {i} is not the start of a chunk")));
        };
        let blob = Arc::new(Blob::from_wire(wire).map_err(|e| broken(e.to_string()))?);
        let n = blob.len();
        if n == 0 || i + n > total {
            return Err(broken(format!(
                "a chunk of {n} results at result {i} of {total}"
            )));
        }
        for k in 1..n {
            if !matches!(replies.next(), Some(Reply::Rest)) {
                return Err(broken(format!("result {} is not element {k}", i + k)));
            }
        }
        outs.extend((0..n).map(|k| Out(Data::Part(Arc::clone(&blob), k as u32))));
    }
    Ok(outs)
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
