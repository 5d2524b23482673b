//! Rust tasks in a child process: the program re-executes itself as a worker.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use raygent_core::{Task, TaskError, from_cbor, read_frame, to_cbor, write_frame};

use super::error::{WorkerError, WorkerErrorKind};
use super::process::{Cause, Framing, Msg, Options, Spec, WorkerProcess};

/// Serves chunks of task `name` and exits, if this process was started as a
/// worker for it; otherwise returns at once.
///
/// Put it at the top of `main`, one line per task that may run in a worker
/// process, before anything else (argument parsing, logging setup):
///
/// ```no_run
/// use raygent_core::{Task, TaskError};
///
/// struct Square;
/// impl Task for Square {
///     type Input = u64;
///     type Output = u64;
///     fn process_item(&mut self, x: &u64) -> Result<u64, TaskError> {
///         Ok(x * x)
///     }
/// }
///
/// fn main() {
///     raygent_actors::worker::serve_worker_if_requested("square", || Square);
///     // ... the driver: TaskManager::new(RustWorker::<Square>::new("square").factory()) ...
/// }
/// ```
///
/// The worker reads chunks from stdin and writes results to stdout as
/// length-delimited CBOR frames (a `Vec<Input>` in, a
/// `Result<Vec<Output>, String>` out). While it serves, the process's
/// stdout is redirected to stderr, so stray `println!`s cannot corrupt the
/// protocol; stdin reads `/dev/null`. A task error or a panic is reported
/// for its chunk and the worker goes on (a fresh instance after a panic);
/// anything that kills the process (abort, segfault, `exit`) is seen by the
/// parent as a worker death. `make` builds the task instance.
pub fn serve_worker_if_requested<T, F>(name: &str, make: F)
where
    T: Task,
    F: Fn() -> T,
{
    match std::env::var_os(super::WORKER_TASK_ENV) {
        Some(v) if v == *name => {}
        _ => return,
    }
    let code = match serve(&make) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("raygent worker for task `{name}`: {e}");
            2
        }
    };
    std::process::exit(code);
}

/// Moves the protocol off fds 0 and 1: returns (input, output) on new
/// close-on-exec descriptors, points fd 1 at stderr and fd 0 at /dev/null.
fn take_protocol_fds() -> io::Result<(File, File)> {
    let devnull = File::open("/dev/null")?;
    let input = File::from(rustix::io::fcntl_dupfd_cloexec(io::stdin(), 3)?);
    let output = File::from(rustix::io::fcntl_dupfd_cloexec(io::stdout(), 3)?);
    rustix::stdio::dup2_stdout(io::stderr())?;
    rustix::stdio::dup2_stdin(&devnull)?;
    Ok((input, output))
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn serve<T: Task, F: Fn() -> T>(make: &F) -> io::Result<()> {
    let (input, output) = take_protocol_fds()?;
    let mut r = BufReader::with_capacity(64 * 1024, input);
    let mut w = BufWriter::with_capacity(64 * 1024, output);
    let mut task = make();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while read_frame(&mut r, &mut buf)? {
        let reply: Result<Vec<T::Output>, String> = match from_cbor::<Vec<T::Input>>(&buf) {
            Err(e) => Err(format!("the worker cannot decode the chunk: {e}")),
            Ok(items) => match catch_unwind(AssertUnwindSafe(|| task.process_items(&items))) {
                Ok(Ok(v)) if v.len() == items.len() => Ok(v),
                Ok(Ok(v)) => Err(format!(
                    "the task returned {} result(s) for {} item(s)",
                    v.len(),
                    items.len()
                )),
                Ok(Err(e)) => Err(error_chain(&*e)),
                Err(p) => {
                    let msg = format!("the task panicked: {}", panic_message(&*p));
                    task = make();
                    Err(msg)
                }
            },
        };
        out.clear();
        if let Err(e) = to_cbor(&reply, &mut out) {
            out.clear();
            let fallback: Result<Vec<T::Output>, String> =
                Err(format!("the worker cannot encode the results: {e}"));
            to_cbor(&fallback, &mut out).map_err(io::Error::other)?;
        }
        write_frame(&mut w, &out)?;
        w.flush()?;
    }
    Ok(())
}

/// How to start a Rust task in a child process; makes [`ProcessTask`]s.
///
/// The child is this program itself (`std::env::current_exe()`, or
/// [`program`](Self::program)) started with `RAYGENT_WORKER_TASK=<name>`,
/// so its `main` must begin with
/// [`serve_worker_if_requested(name, ...)`](serve_worker_if_requested).
///
/// ```no_run
/// # use raygent_core::{Task, TaskError};
/// # struct Square;
/// # impl Task for Square {
/// #     type Input = u64;
/// #     type Output = u64;
/// #     fn process_item(&mut self, x: &u64) -> Result<u64, TaskError> { Ok(x * x) }
/// # }
/// use std::time::Duration;
/// use raygent_actors::worker::RustWorker;
///
/// let worker = RustWorker::<Square>::new("square").timeout(Duration::from_secs(60));
/// let mut task = worker.task();
/// assert_eq!(task.process_items(&[2, 3]).unwrap(), vec![4, 9]);
/// ```
pub struct RustWorker<T: Task> {
    name: String,
    version: String,
    program: Option<OsString>,
    args: Vec<OsString>,
    options: Options,
    next_id: Arc<AtomicU64>,
    _task: PhantomData<fn() -> T>,
}

impl<T: Task> Clone for RustWorker<T> {
    fn clone(&self) -> Self {
        RustWorker {
            name: self.name.clone(),
            version: self.version.clone(),
            program: self.program.clone(),
            args: self.args.clone(),
            options: self.options.clone(),
            next_id: Arc::clone(&self.next_id),
            _task: PhantomData,
        }
    }
}

impl<T: Task> std::fmt::Debug for RustWorker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustWorker")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("options", &self.options)
            .finish()
    }
}

impl<T: Task> RustWorker<T> {
    /// Workers for the task registered under `name` with
    /// [`serve_worker_if_requested`].
    pub fn new(name: impl Into<String>) -> Self {
        RustWorker {
            name: name.into(),
            version: "1".to_owned(),
            program: None,
            args: Vec::new(),
            options: Options::default(),
            next_id: Arc::new(AtomicU64::new(0)),
            _task: PhantomData,
        }
    }

    /// Runs this program instead of the current executable (it must call
    /// [`serve_worker_if_requested`] with the same name).
    pub fn program(mut self, program: impl Into<OsString>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// The task's version, recorded in checkpoints like
    /// [`Task::version`] (the parent cannot ask the task in the child):
    /// bump it when the task's results change (default `"1"`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Adds an argument to the worker's command line.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    super::option_setters!();

    /// A new task: one worker process, started on the first chunk. Each
    /// task gets the next `RAYGENT_WORKER_ID` (0, 1, 2, ...).
    pub fn task(&self) -> ProcessTask<T> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let program = self
            .program
            .clone()
            .map_or_else(|| std::env::current_exe().map(OsString::from), Ok);
        let shown = match &program {
            Ok(p) => std::path::Path::new(p)
                .file_name()
                .map_or_else(|| p.to_string_lossy(), |n| n.to_string_lossy())
                .into_owned(),
            Err(_) => "<current executable>".to_owned(),
        };
        ProcessTask {
            config: Arc::new(self.clone()),
            program,
            label: format!("`{shown}` worker for task `{}`", self.name),
            worker_id: id,
            process: None,
            ahead: VecDeque::new(),
        }
    }

    /// A task factory for `TaskManager::new`: each call makes a [`ProcessTask`].
    pub fn factory(self) -> impl Fn() -> ProcessTask<T> + Send + Sync + Clone + 'static {
        move || self.task()
    }
}

/// The most chunks sent to a worker whose replies are not read yet: the
/// one it runs and the one it runs next.
const MAX_AHEAD: usize = 2;

/// A chunk told ahead (see [`Task::prefetch`]): its frame, and whether the
/// running worker has it. Those sent are always the first ones.
struct Told {
    frame: Vec<u8>,
    sent: bool,
}

/// A [`Task`] that runs task `T` in a child process (see [`RustWorker`]).
///
/// Failures are handled like [`LineTask`](super::LineTask)'s: a worker that
/// dies, hangs past the timeout or breaks the protocol is killed and reaped
/// and the next chunk starts a fresh one; an error the task itself returns
/// (or a panic it unwinds from) fails only the chunk, with kind
/// [`WorkerErrorKind::Task`], and keeps the worker.
pub struct ProcessTask<T: Task> {
    config: Arc<RustWorker<T>>,
    program: io::Result<OsString>,
    label: String,
    worker_id: u64,
    process: Option<WorkerProcess>,
    /// The chunks told ahead (see [`Task::prefetch`]) that have not run
    /// yet, in the order told: each is run next, in that order, so each is
    /// kept until then, and sent again to a fresh worker if the one that
    /// had it dies.
    ahead: VecDeque<Told>,
}

impl<T: Task> std::fmt::Debug for ProcessTask<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessTask")
            .field("worker", &self.label)
            .field("worker_id", &self.worker_id)
            .field("pid", &self.pid())
            .finish()
    }
}

impl<T: Task> ProcessTask<T> {
    /// The process id of the current worker, if one is running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(WorkerProcess::pid)
    }

    /// This task's `RAYGENT_WORKER_ID`.
    pub fn worker_id(&self) -> u64 {
        self.worker_id
    }

    fn err(&self, kind: WorkerErrorKind, message: impl Into<String>) -> WorkerError {
        WorkerError::new(kind, self.label.clone(), self.pid(), message, Vec::new())
    }

    fn ensure_started(&mut self) -> Result<&mut WorkerProcess, WorkerError> {
        if let Some(p) = &mut self.process {
            match p.peek_ready() {
                None => {}
                Some(Msg::Unit(_)) => {
                    if let Some(p) = self.process.take() {
                        return Err(p.fail(Cause::Garbage(
                            "worker wrote an unexpected frame between chunks".to_owned(),
                        )));
                    }
                }
                Some(_) => {
                    tracing::warn!(worker = %p.label(), "worker ended between chunks; starting a new one");
                    self.process = None;
                }
            }
        }
        if self.process.is_none() {
            let program = match &self.program {
                Ok(p) => p,
                Err(e) => {
                    return Err(self.err(
                        WorkerErrorKind::Spawn,
                        format!("cannot find the current executable to start a worker: {e}"),
                    ));
                }
            };
            let extra_env = [(super::WORKER_TASK_ENV, self.config.name.clone())];
            let spec = Spec {
                program,
                args: &self.config.args,
                extra_env: &extra_env,
                options: &self.config.options,
                worker_id: self.worker_id,
                framing: Framing::Frames,
                label: &self.label,
            };
            self.process = Some(WorkerProcess::spawn(&spec)?);
        }
        match self.process.as_mut() {
            Some(p) => Ok(p),
            None => Err(WorkerError::new(
                WorkerErrorKind::Spawn,
                self.label.clone(),
                None,
                "worker vanished",
                Vec::new(),
            )),
        }
    }

    /// Sends the chunks told ahead and not sent yet, in order, while a
    /// worker runs and fewer than [`MAX_AHEAD`] are in flight (`running`
    /// of them being run, not told).
    fn send_ahead(&mut self, running: usize) {
        let Some(p) = self.process.as_mut() else {
            return;
        };
        let in_flight = running + self.ahead.iter().filter(|t| t.sent).count();
        let room = MAX_AHEAD.saturating_sub(in_flight);
        for told in self.ahead.iter_mut().filter(|t| !t.sent).take(room) {
            p.send(told.frame.clone());
            told.sent = true;
        }
    }

    /// A chunk as the frame the worker reads.
    fn frame(&self, items: &[T::Input]) -> Result<Vec<u8>, WorkerError> {
        let mut payload = Vec::new();
        to_cbor(items, &mut payload).map_err(|e| {
            self.err(
                WorkerErrorKind::InvalidInput,
                format!("cannot encode the chunk: {e}"),
            )
        })?;
        let mut frame = Vec::with_capacity(payload.len() + 4);
        write_frame(&mut frame, &payload).map_err(|e| {
            self.err(
                WorkerErrorKind::InvalidInput,
                format!("cannot frame the chunk: {e}"),
            )
        })?;
        Ok(frame)
    }

    fn run_chunk(&mut self, items: &[T::Input]) -> Result<Vec<T::Output>, WorkerError> {
        let frame = self.frame(items)?;
        let timeout = self.config.options.timeout;
        let expected = items.len();
        // Told ahead already: sent, its reply is the next one (or is on
        // its way); or not sent yet (no worker ran then, or it died since).
        let sent = match self.ahead.front() {
            Some(told) if told.frame == frame => {
                let sent = told.sent && self.process.is_some();
                self.ahead.pop_front();
                sent
            }
            Some(_) => {
                // Another chunk was told ahead: its reply would come first.
                // A fresh worker is the simple way to never read it.
                tracing::debug!(worker = %self.label, "a chunk sent ahead was not the next one; restarting the worker");
                self.ahead.clear();
                self.process = None;
                false
            }
            None => false,
        };
        if !sent {
            self.ensure_started()?.send(frame);
        }
        // The chunks told after this one go to a fresh worker now too.
        self.send_ahead(1);
        let Some(p) = self.process.as_mut() else {
            return Err(self.err(WorkerErrorKind::Protocol, "worker vanished"));
        };
        let deadline = timeout.map(|t| Instant::now() + t);
        let reply = match p.recv(deadline) {
            None => Err(Cause::Timeout {
                got: 0,
                expected,
                after: timeout.unwrap_or_default(),
            }),
            Some(Msg::Unit(bytes)) => match from_cbor::<Result<Vec<T::Output>, String>>(&bytes) {
                Ok(Ok(v)) if v.len() == expected => Ok(Ok(v)),
                Ok(Ok(v)) => Err(Cause::Garbage(format!(
                    "worker returned {} result(s) for {expected} item(s)",
                    v.len()
                ))),
                Ok(Err(msg)) => Ok(Err(msg)),
                Err(e) => Err(Cause::Garbage(format!(
                    "worker sent a reply frame that does not decode: {e}"
                ))),
            },
            Some(Msg::Eof) => Err(Cause::Eof { got: 0, expected }),
            Some(Msg::Failed(e)) if e.kind() == io::ErrorKind::InvalidData => {
                Err(Cause::Garbage(format!("worker sent a garbage frame: {e}")))
            }
            Some(Msg::Failed(e)) => Err(Cause::Read(e)),
        };
        match reply {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(msg)) => Err(self.err(WorkerErrorKind::Task, msg)),
            Err(cause) => {
                // What was sent ahead dies with the worker: sent again to
                // the next one, with no attempt charged.
                for told in &mut self.ahead {
                    told.sent = false;
                }
                match self.process.take() {
                    Some(p) => Err(p.fail(cause)),
                    None => Err(self.err(WorkerErrorKind::Protocol, "worker vanished")),
                }
            }
        }
    }
}

impl<T: Task> Task for ProcessTask<T> {
    type Input = T::Input;
    type Output = T::Output;

    fn process_item(&mut self, item: &T::Input) -> Result<T::Output, TaskError> {
        let mut out = self.run_chunk(std::slice::from_ref(item))?;
        out.pop()
            .ok_or_else(|| "the worker returned no result".into())
    }

    fn process_items(&mut self, items: &[T::Input]) -> Result<Vec<T::Output>, TaskError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.run_chunk(items)?)
    }

    fn prefetches(&self) -> bool {
        true
    }

    /// Keeps the chunk, to be run next after those told before it, and
    /// sends it to the worker now if one is running and fewer than two
    /// chunks are in flight: the worker starts on it as soon as it is done
    /// with the one before, instead of waiting for a round trip. What goes
    /// wrong with it is reported when it is run.
    fn prefetch(&mut self, items: &[T::Input]) {
        // Every chunk told is kept (the runtime tells at most two ahead): one
        // dropped here would later look like a chunk out of order.
        if items.is_empty() {
            return;
        }
        let Ok(frame) = self.frame(items) else { return };
        self.ahead.push_back(Told { frame, sent: false });
        self.send_ahead(0);
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.config.name.clone())
    }

    fn version(&self) -> Cow<'static, str> {
        Cow::Owned(self.config.version.clone())
    }
}
