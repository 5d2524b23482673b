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
use crate::value::{ChunkWire, Data, Item, Out};

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
    /// Results are read a whole chunk at a time, in order: a worker's
    /// results after the first of a chunk are then [`Data::Sibling`]s.
    pub results_by_chunk: bool,
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
    /// A whole chunk of items; the reply is its results, as one chunk.
    type Input = ChunkWire;
    type Output = ChunkWire;

    fn process_item(&mut self, _chunk: &ChunkWire) -> Result<ChunkWire, TaskError> {
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
        let chunks = match crate::blob::whole(items.iter().map(|i| &i.data)) {
            Some(chunks) => Ok(chunks),
            // Not the chunks the input was encoded in: encode these items
            // as one chunk (never the case when the runtime chunks the
            // input as `PyInput` does).
            None => reencode(items).map(|c| vec![c]),
        };
        let result = chunks.and_then(|chunks| {
            let replies = self.inner.process_items(&chunks)?;
            unpack(&chunks, replies, self.shared.results_by_chunk)
        });
        self.shared.record(items, &result);
        result
    }

    fn prefetches(&self) -> bool {
        true
    }

    /// The chunk goes to the worker now (see [`Task::prefetch`]), if it is
    /// whole (as the runtime chunks the input, it always is).
    fn prefetch(&mut self, items: &[Item]) {
        if let Some(chunks) = crate::blob::whole(items.iter().map(|i| &i.data)) {
            self.inner.prefetch(&chunks);
        }
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.shared.name.clone())
    }

    fn version(&self) -> Cow<'static, str> {
        Cow::Owned(self.shared.version.clone())
    }
}

/// `items` as one chunk, encoded afresh.
fn reencode(items: &[Item]) -> Result<ChunkWire, TaskError> {
    Python::attach(|py| -> Result<ChunkWire, TaskError> {
        let objs = crate::blob::to_py_vec(py, items.iter().map(|i| &i.data))
            .map_err(|e| describe_error(py, &e))?;
        let wire =
            crate::blob::encode(py, &Source::Slice(&objs), Encoding::Auto).map_err(|(i, e)| {
                format!(
                    "item {i} of the chunk cannot be sent to a worker process: {}",
                    describe_error(py, &e)
                )
            })?;
        Ok(ChunkWire(Arc::new(
            Blob::from_wire(wire).map_err(|e| e.to_string())?,
        )))
    })
}

/// A worker's reply, one blob of results per chunk sent, as results
/// sharing their chunk's blob: each holding a reference to it, or (when
/// they are read only a chunk at a time, `by_chunk`) the first alone.
fn unpack(
    chunks: &[ChunkWire],
    replies: Vec<ChunkWire>,
    by_chunk: bool,
) -> Result<Vec<Out>, TaskError> {
    let mut outs = Vec::with_capacity(chunks.iter().map(|c| c.0.len()).sum());
    for (i, (chunk, reply)) in chunks.iter().zip(replies).enumerate() {
        let (n, got) = (chunk.0.len(), reply.0.len());
        if n != got {
            return Err(format!(
                "the worker's reply holds {got} result(s) for the {n} item(s) of chunk {i} it was sent"
            )
            .into());
        }
        if by_chunk && n > 0 {
            outs.push(Out(Data::Part(reply.0, 0)));
            outs.extend((1..n).map(|k| Out(Data::Sibling(k as u32))));
        } else {
            outs.extend((0..n).map(|k| Out(Data::Part(Arc::clone(&reply.0), k as u32))));
        }
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

    fn prefetches(&self) -> bool {
        matches!(self, PyTask::Proc(_))
    }

    fn prefetch(&mut self, items: &[Item]) {
        if let PyTask::Proc(t) = self {
            t.prefetch(items);
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
