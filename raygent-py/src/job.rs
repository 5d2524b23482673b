//! One `submit_tasks` call: a job on the Rust runtime, driven from Python.
//!
//! The job runs on a thread of its own (`raygent-job`); the caller's thread
//! waits for it, updates the progress bar and checks for signals, so that
//! Ctrl-C stops the job the way it stops `raygent run`: no new chunk is
//! started, what is complete is saved and checkpointed in input order, and
//! `KeyboardInterrupt` is raised once that is done (a second Ctrl-C raises
//! at once). The input iterator, Python savers and result handlers are
//! called from the job's threads with the interpreter attached.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyList};
use raygent_actors::worker::RustWorker;
use raygent_actors::{
    INLINE_JOB_STATE_MAX, Progress, ResumeConfig, StepProgressStore, SubmitOptions, TaskManager,
};
use raygent_core::{FailurePolicy, JobReport, ResultHandler, RetryPolicy, Saver, StopHandle};
use raygent_savers::Location;

use crate::blob::{self, Blob, Encoding, PlainWire, Source};
use crate::errors;
use crate::saver::{NativeSaver, PySaver, s3_options};
use crate::task::{LocalTask, ProcTask, PyTask, PyWorkerTask, Shared, describe_error};
use crate::value::{Data, Item, Out};

/// How many input items are taken from the Python iterator at a time (at
/// least one chunk).
const INPUT_BATCH: usize = 256;

/// The Python input, read in batches with the interpreter attached, and
/// grouped into blobs of `chunk_size` items (see `crate::blob`) as the
/// runtime groups it into chunks: chunk `i` holds items `[i*n, (i+1)*n)`.
///
/// Items are read and encoded in one pass, and queued as whole blobs; an
/// [`Item`] is made only when the runtime takes it. A chunk's first item
/// holds its blob, the others are [`Data::Sibling`]s that hold nothing.
struct PyInput {
    iter: Py<PyIterator>,
    /// Blobs read ahead, and the number of items of the blob being handed
    /// out and the next to hand out: its element 0 took the blob
    /// itself, the others are [`Data::Sibling`]s.
    ready: VecDeque<Arc<Blob>>,
    current_len: u32,
    cursor: u32,
    /// What stops the input, handed out after every blob before it.
    failure: Option<String>,
    next_index: u64,
    chunk_size: usize,
    /// Encode each chunk (parallel mode: for the workers; sequential mode:
    /// for the input fingerprint of a checkpointed job).
    encode: bool,
    /// Keep the items as Python objects (sequential mode).
    keep_objects: bool,
    done: bool,
    /// The exception the iterator raised, if any.
    error: Arc<Mutex<Option<PyErr>>>,
}

impl PyInput {
    fn new(iter: Py<PyIterator>, chunk_size: usize, sequential: bool, checkpointed: bool) -> Self {
        PyInput {
            iter,
            ready: VecDeque::new(),
            current_len: 0,
            cursor: 0,
            failure: None,
            next_index: 0,
            chunk_size: chunk_size.max(1),
            encode: !sequential || checkpointed,
            keep_objects: sequential,
            done: false,
            error: Arc::new(Mutex::new(None)),
        }
    }

    fn refill(&mut self) {
        Python::attach(|py| {
            let mut it = self.iter.bind(py).clone();
            let mut taken = 0;
            while taken < INPUT_BATCH && !self.done {
                let mut objs = Vec::with_capacity(self.chunk_size.min(4096));
                // The chunk's encoding, made as its items are read, for
                // as long as they are plain data (the usual case).
                let mut plain = self
                    .encode
                    .then(|| PlainWire::new(self.chunk_size))
                    .flatten();
                let mut raised = None;
                while objs.len() < self.chunk_size {
                    match it.next() {
                        None => {
                            self.done = true;
                            break;
                        }
                        Some(Err(e)) => {
                            raised = Some(e);
                            self.done = true;
                            break;
                        }
                        Some(Ok(obj)) => {
                            if let Some(w) = &mut plain
                                && !w.push(&obj)
                            {
                                plain = None;
                            }
                            objs.push(obj);
                        }
                    }
                }
                taken += objs.len();
                if !objs.is_empty() {
                    let wire = plain.and_then(PlainWire::finish);
                    self.push_chunk(py, objs, wire);
                }
                if let Some(e) = raised {
                    let text = describe_error(py, &e);
                    *lock(&self.error) = Some(e);
                    self.failure
                        .get_or_insert_with(|| format!("the input iterator raised: {text}"));
                }
            }
        });
    }

    /// Queues one chunk's items (or those before an item that cannot be
    /// encoded, then the error: the runtime drops that partial chunk).
    /// `wire` is their encoding, if it was made as they were read.
    fn push_chunk(&mut self, py: Python<'_>, objs: Vec<Bound<'_, PyAny>>, wire: Option<Vec<u8>>) {
        let unbind = |objs: Vec<Bound<'_, PyAny>>| objs.into_iter().map(Bound::unbind).collect();
        let encoded = match wire {
            _ if !self.encode => Ok(None),
            Some(w) => Ok(Some(w)),
            None => blob::encode(py, &Source::Slice(&objs), Encoding::Auto).map(Some),
        };
        let (blob, error) = match encoded {
            Ok(Some(wire)) if !self.keep_objects => match Blob::from_wire(wire) {
                Ok(b) => (b, None),
                Err(e) => (Blob::from_objects(Vec::new(), None), Some(e)),
            },
            Ok(wire) => (Blob::from_objects(unbind(objs), wire), None),
            Err((i, e)) => {
                let before = objs[..i].iter().map(|o| o.clone().unbind()).collect();
                (Blob::from_objects(before, None), Some(e))
            }
        };
        if blob.len() > 0 {
            self.ready.push_back(Arc::new(blob));
        }
        if let Some(e) = error {
            let what = if self.keep_objects {
                "the item cannot be encoded for the checkpoint's input fingerprint (it must be \
                 picklable)"
            } else {
                "the item cannot be sent to a worker process (it must be picklable)"
            };
            self.failure = Some(format!("{what}: {}", describe_error(py, &e)));
            self.done = true;
        }
    }
}

impl Iterator for PyInput {
    type Item = Result<Item, String>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let data = if self.cursor < self.current_len {
                Data::Sibling(self.cursor)
            } else if let Some(blob) = self.ready.pop_front() {
                // `push_chunk` queues no empty blob, and a blob's count fits in a u32.
                self.current_len = u32::try_from(blob.len()).unwrap_or(u32::MAX);
                self.cursor = 0;
                Data::Part(blob, 0)
            } else if let Some(failure) = self.failure.take() {
                return Some(Err(failure));
            } else if self.done {
                return None;
            } else {
                self.refill();
                continue;
            };
            let item = Item {
                index: self.next_index,
                data,
            };
            self.cursor += 1;
            self.next_index += 1;
            return Some(Ok(item));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands each chunk's results, in input order, to a Python callable
/// `handler(results, chunk_index)`. An exception it raises stops the job.
struct CallHandler {
    f: Py<PyAny>,
    chunk_size: u64,
    error: Arc<Mutex<Option<PyErr>>>,
    stop: StopHandle,
}

impl ResultHandler<Out> for CallHandler {
    fn add(&mut self, first_item: u64, results: Vec<Out>) {
        if lock(&self.error).is_some() {
            return;
        }
        let outcome = Python::attach(|py| -> PyResult<()> {
            let list = blob::to_py_list(py, results.iter().map(|v| &v.0))?;
            self.f
                .bind(py)
                .call1((list, first_item / self.chunk_size))?;
            Ok(())
        });
        if let Err(e) = outcome {
            *lock(&self.error) = Some(e);
            self.stop.stop();
        }
    }
}

/// The job's result handler (the manager's list, or a Python callable),
/// and when it got its first results.
struct Handler {
    kind: HandlerKind,
    first: Option<Instant>,
    last: Option<Instant>,
}

enum HandlerKind {
    /// The results, as the vectors they come in (a chunk's, or a saved
    /// batch's): kept as they are, they are never copied into one.
    Collect(Vec<Vec<Out>>),
    Call(CallHandler),
}

impl ResultHandler<Out> for Handler {
    fn add(&mut self, first_item: u64, results: Vec<Out>) {
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
        match &mut self.kind {
            HandlerKind::Collect(c) => c.push(results),
            HandlerKind::Call(h) => h.add(first_item, results),
        }
    }
}

fn report_dict<'py>(py: Python<'py>, r: &JobReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("items", r.items)?;
    d.set_item("chunks", r.chunks)?;
    d.set_item("resumed_chunks", r.resumed_chunks)?;
    d.set_item("results", r.results)?;
    d.set_item("retries", r.retries)?;
    d.set_item("saves", r.saves)?;
    d.set_item("wall_time", r.wall_time.as_secs_f64())?;
    let failures = PyDict::new(py);
    for (k, v) in &r.failures {
        failures.set_item(k, v)?;
    }
    d.set_item("failures", failures)?;
    let failed = PyList::empty(py);
    for f in &r.failed_chunks {
        let c = PyDict::new(py);
        c.set_item("chunk", f.index)?;
        c.set_item("start", f.items.start)?;
        c.set_item("end", f.items.end)?;
        c.set_item("attempts", f.attempts)?;
        c.set_item("error", &f.error)?;
        failed.append(c)?;
    }
    d.set_item("failed_chunks", failed)?;
    Ok(d)
}

/// The progress store of a job whose checkpoints live at `url`.
fn progress_store(url: &str, s3: &raygent_savers::S3Options) -> PyResult<Arc<StepProgressStore>> {
    let loc = Location::parse_with(url, s3).map_err(|e| errors::save_error(&e))?;
    let steps = raygent_ckpt::StepCheckpointer::new(Arc::clone(loc.store()), loc.prefix().clone())
        .map_err(|e| errors::ckpt_error(&e))?
        .with_keep(3)
        .with_inline_state(INLINE_JOB_STATE_MAX);
    let steps = match loc.local_dir() {
        Some(dir) => steps.with_local_dir(dir),
        None => steps,
    };
    Ok(Arc::new(
        StepProgressStore::new(steps).with_display(loc.url().to_owned()),
    ))
}

/// Runs one job; see `raygent.manager.TaskManager.submit_tasks`.
///
/// Returns a dict: `results` (the collected results, or None), `report`
/// (the job report, or None when the job was refused) and `error` (the
/// exception to raise, or None). Results completed before an error are
/// returned with it, so the caller keeps them.
#[pyfunction]
#[pyo3(signature = (
    *, task_class, task_name, task_version, items, chunk_size, save_interval, at_once,
    kwargs_task, sequential, n_cores, n_cores_worker, python, spec_path=None, worker_env=None,
    dataset=None, saver=None, save_kwargs=None, result_handler=None, retries=3, timeout=None,
    memory_limit=None, skip_failed=false, checkpoint=None, fresh=false, checkpoint_interval=1.0,
    identity=String::new(), progress=None, s3=None
))]
#[allow(clippy::too_many_arguments)]
pub fn run_job<'py>(
    py: Python<'py>,
    task_class: Bound<'py, PyAny>,
    task_name: String,
    task_version: String,
    items: Bound<'py, PyAny>,
    chunk_size: usize,
    save_interval: usize,
    at_once: bool,
    kwargs_task: Bound<'py, PyDict>,
    sequential: bool,
    n_cores: i64,
    n_cores_worker: usize,
    python: String,
    spec_path: Option<String>,
    worker_env: Option<Bound<'py, PyDict>>,
    dataset: Option<(String, String, bool)>,
    saver: Option<Bound<'py, PyAny>>,
    save_kwargs: Option<Bound<'py, PyDict>>,
    result_handler: Option<Bound<'py, PyAny>>,
    retries: u32,
    timeout: Option<f64>,
    memory_limit: Option<u64>,
    skip_failed: bool,
    checkpoint: Option<String>,
    fresh: bool,
    checkpoint_interval: f64,
    identity: String,
    progress: Option<Bound<'py, PyAny>>,
    s3: Option<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let shared = Arc::new(Shared {
        task_class: task_class.unbind(),
        kwargs: kwargs_task.unbind(),
        at_once,
        name: task_name.clone(),
        version: task_version.clone(),
        failed: Mutex::new(Default::default()),
        // A `DatasetSaver` serializes results one by one; everything else
        // (the results list, a handler, a Python saver) reads whole chunks.
        results_by_chunk: dataset.is_none(),
    });
    let s3_opts = s3_options(s3.as_ref())?;

    // The saver.
    let boxed: Option<Box<dyn Saver<Out>>> = match (dataset, saver) {
        (Some((url, format, overwrite)), _) => Some(Box::new(NativeSaver::open(
            &url,
            &format,
            overwrite,
            s3.as_ref(),
        )?)),
        (None, Some(s)) => {
            let kwargs = save_kwargs.unwrap_or_else(|| PyDict::new(py));
            Some(Box::new(PySaver::new(&s, kwargs)?))
        }
        (None, None) => None,
    };

    // The workers.
    let worker = if sequential {
        None
    } else {
        let spec = spec_path.ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err("parallel mode needs the task's spec file")
        })?;
        let mut w = RustWorker::<PyWorkerTask>::new(task_name)
            .version(task_version)
            .program(python)
            .arg("-m")
            .arg("raygent._worker")
            .env("RAYGENT_PY_SPEC", spec)
            .n_cores_worker(n_cores_worker.max(1));
        if let Some(env) = worker_env {
            for (k, v) in env.iter() {
                w = w.env(k.extract::<String>()?, v.extract::<String>()?);
            }
        }
        if let Some(t) = timeout {
            w = w.timeout(Duration::from_secs_f64(t));
        }
        if let Some(m) = memory_limit {
            w = w.memory_limit(m);
        }
        Some(w)
    };
    let factory = {
        let shared = Arc::clone(&shared);
        move || match &worker {
            Some(w) => PyTask::Proc(Box::new(ProcTask::new(Arc::clone(&shared), w))),
            None => PyTask::Local(LocalTask::new(Arc::clone(&shared))),
        }
    };

    let stop = StopHandle::new();
    let handler_error = Arc::new(Mutex::new(None::<PyErr>));
    let collect = result_handler.is_none();
    let started = Instant::now();
    let kind = match result_handler {
        None => HandlerKind::Collect(Vec::new()),
        Some(f) => HandlerKind::Call(CallHandler {
            f: f.unbind(),
            chunk_size: chunk_size.max(1) as u64,
            error: Arc::clone(&handler_error),
            stop: stop.clone(),
        }),
    };
    let handler = Handler {
        kind,
        first: None,
        last: None,
    };
    let mut manager = TaskManager::with_handler(factory, handler)
        .with_n_cores(n_cores)
        .with_n_cores_worker(n_cores_worker)
        .with_sequential(sequential);

    let counters = Progress::new();
    let mut options: SubmitOptions<Out> = SubmitOptions::new()
        .with_chunk_size(chunk_size)
        // Whole chunks cross to the task (one call, one round trip); the
        // task itself calls process_item per item unless at_once.
        .with_at_once(true)
        .with_save_interval(save_interval)
        .with_retry(RetryPolicy::new(retries))
        .with_failure_policy(if skip_failed {
            FailurePolicy::Skip
        } else {
            FailurePolicy::Abort
        })
        .with_stop_handle(stop.clone())
        .with_progress(counters.clone());
    if let Some(s) = boxed {
        options = options.with_saver(s);
    }
    let checkpointed = checkpoint.is_some();
    if let Some(url) = checkpoint {
        let store = progress_store(&url, &s3_opts)?;
        options = options.with_checkpoint(
            ResumeConfig::new(store)
                .with_fresh(fresh)
                .with_min_interval(Duration::from_secs_f64(checkpoint_interval.max(0.0)))
                .with_identity(identity),
        );
    }

    let input = PyInput::new(
        items.try_iter()?.unbind(),
        chunk_size,
        sequential,
        checkpointed,
    );
    let input_error = Arc::clone(&input.error);

    let (done_tx, mut done_rx) = mpsc::channel::<()>();
    let job = std::thread::Builder::new()
        .name("raygent-job".into())
        .spawn(move || {
            let result = manager.try_submit_tasks(input, options);
            let _ = done_tx.send(());
            (manager, result)
        })
        .map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!("cannot start the job thread: {e}"))
        })?;

    // A failing progress bar must not fail the job.
    let tick = || {
        if let Some(p) = &progress {
            let _ = p.call1((
                counters.items(),
                counters.retries(),
                counters.failed_chunks(),
            ));
        }
    };
    let mut interrupt: Option<PyErr> = None;
    loop {
        let rx = &mut done_rx;
        let finished = py.detach(move || match rx.recv_timeout(Duration::from_millis(100)) {
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => true,
        });
        if finished {
            break;
        }
        tick();
        if let Err(e) = py.check_signals() {
            if interrupt.is_some() {
                // A second signal: give up waiting.
                return Err(e);
            }
            stop.stop();
            interrupt = Some(e);
        }
    }
    tick();
    let (manager, result) = py.detach(|| job.join()).map_err(|_| {
        pyo3::exceptions::PyRuntimeError::new_err("the raygent job thread panicked")
    })?;

    let out = PyDict::new(py);
    let handler = manager.into_result_handler();
    let since = |t: Option<Instant>| t.map(|t| t.duration_since(started).as_secs_f64());
    let first_result = since(handler.as_ref().and_then(|h| h.first));
    let last_result = since(handler.as_ref().and_then(|h| h.last));
    let results = match handler.map(|h| h.kind) {
        Some(HandlerKind::Collect(c)) if collect => Some(blob::results_to_py_list(py, &c)?),
        _ => None,
    };
    out.set_item("results", results)?;
    let error: Option<PyErr> = match result {
        Ok(report) => {
            let d = report_dict(py, &report)?;
            d.set_item("first_result_s", first_result)?;
            d.set_item("last_result_s", last_result)?;
            out.set_item("report", d)?;
            None
        }
        Err(e) => {
            out.set_item("report", py.None())?;
            Some(errors::job_error(py, &e, |first| {
                let values = shared.failed_items(first)?;
                blob::to_py_list(py, values.iter())
                    .ok()
                    .map(|l| l.into_any())
            }))
        }
    };
    // An exception the input iterator raised is the cause of the input error.
    if let (Some(e), Some(cause)) = (&error, lock(&input_error).take()) {
        let _ = e.value(py).setattr("__cause__", cause.value(py));
    }
    // What stopped the job first: a signal, the result handler, the job.
    let error = interrupt.or_else(|| lock(&handler_error).take()).or(error);
    out.set_item("error", error.map(|e| e.value(py).clone().unbind()))?;
    Ok(out)
}
