//! The line protocol: any executable as a task.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use raygent_core::{Task, TaskError};

use super::error::{WorkerError, WorkerErrorKind};
use super::process::{Cause, Framing, Msg, Options, Spec, WorkerProcess};

/// How to start a line-protocol worker; makes [`LineTask`]s.
///
/// The program is started directly (no shell) unless [`shell(true)`](Self::shell)
/// is set, in which case the program string is a script run with `sh -c`
/// and the arguments become `$1`, `$2`, ...
///
/// ```no_run
/// use std::time::Duration;
/// use raygent_actors::worker::WorkerCommand;
/// use raygent_core::Task;
///
/// let cmd = WorkerCommand::new("while read x; do echo $((x*x)); done")
///     .shell(true)
///     .timeout(Duration::from_secs(10));
/// let mut task = cmd.task();
/// let out = task.process_items(&["3".to_string(), "4".to_string()]).unwrap();
/// assert_eq!(out, ["9", "16"]);
/// ```
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    program: OsString,
    args: Vec<OsString>,
    shell: bool,
    options: Options,
    next_id: Arc<AtomicU64>,
}

impl WorkerCommand {
    /// A worker running `program` (looked up in `PATH` when it has no `/`).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        WorkerCommand {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            shell: false,
            options: Options::default(),
            next_id: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Runs the program string as a `sh -c` script (off by default).
    pub fn shell(mut self, yes: bool) -> Self {
        self.shell = yes;
        self
    }

    super::option_setters!();

    /// A new task: one worker process, started on the first chunk. Each
    /// task gets the next `RAYGENT_WORKER_ID` (0, 1, 2, ...).
    pub fn task(&self) -> LineTask {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        LineTask {
            cmd: Arc::new(self.clone()),
            worker_id: id,
            label: self.label(),
            process: None,
        }
    }

    /// A task factory for `TaskManager::new`: each call makes a [`LineTask`].
    pub fn factory(self) -> impl Fn() -> LineTask + Send + Sync + Clone + 'static {
        move || self.task()
    }

    fn label(&self) -> String {
        let mut s = String::new();
        if self.shell {
            s.push_str("sh -c '");
            s.push_str(&self.program.to_string_lossy());
            s.push('\'');
        } else {
            s.push_str(&self.program.to_string_lossy());
        }
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        if s.chars().count() > 80 {
            s = s.chars().take(77).collect::<String>() + "...";
        }
        format!("`{s}`")
    }
}

/// A [`Task`] that sends each item as one line to a long-lived child
/// process and reads one line per item back; see [`WorkerCommand`].
///
/// The worker is started lazily on the first chunk and reused for the
/// following ones. On any failure (death, timeout, protocol error) the
/// worker is killed and reaped, the chunk fails with a [`WorkerError`], and
/// the next chunk starts a fresh worker. Dropping the task closes the
/// worker's stdin, waits up to the shutdown grace, then kills it.
pub struct LineTask {
    cmd: Arc<WorkerCommand>,
    worker_id: u64,
    label: String,
    process: Option<WorkerProcess>,
}

impl std::fmt::Debug for LineTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineTask")
            .field("command", &self.label)
            .field("worker_id", &self.worker_id)
            .field("pid", &self.pid())
            .finish()
    }
}

impl LineTask {
    /// The process id of the current worker, if one is running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(WorkerProcess::pid)
    }

    /// This task's `RAYGENT_WORKER_ID`.
    pub fn worker_id(&self) -> u64 {
        self.worker_id
    }

    fn ensure_started(&mut self) -> Result<&mut WorkerProcess, WorkerError> {
        // A worker that died (or wrote stray output) between two chunks.
        if let Some(p) = &mut self.process {
            match p.peek_ready() {
                None => {}
                Some(Msg::Unit(line)) => {
                    let line = String::from_utf8_lossy(line).trim_end().to_owned();
                    let p = self.process.take().map(|p| {
                        p.fail(Cause::Garbage(format!(
                            "worker wrote an extra line between chunks: {line:?}"
                        )))
                    });
                    if let Some(e) = p {
                        return Err(e);
                    }
                }
                Some(_) => {
                    tracing::warn!(worker = %p.label(), "worker ended between chunks; starting a new one");
                    self.process = None;
                }
            }
        }
        if self.process.is_none() {
            let cmd = &self.cmd;
            let sh_args;
            let sh: OsString;
            let (program, args): (&OsString, &[OsString]) = if cmd.shell {
                sh = OsString::from("sh");
                let mut a = vec![
                    OsString::from("-c"),
                    cmd.program.clone(),
                    OsString::from("sh"),
                ];
                a.extend(cmd.args.iter().cloned());
                sh_args = a;
                (&sh, &sh_args)
            } else {
                (&cmd.program, &cmd.args)
            };
            let spec = Spec {
                program,
                args,
                extra_env: &[],
                options: &cmd.options,
                worker_id: self.worker_id,
                framing: Framing::Lines,
                label: &self.label,
            };
            self.process = Some(WorkerProcess::spawn(&spec)?);
        }
        self.process.as_mut().ok_or_else(|| {
            WorkerError::new(
                WorkerErrorKind::Spawn,
                self.label.clone(),
                None,
                "worker vanished",
                Vec::new(),
            )
        })
    }

    fn run_chunk(&mut self, items: &[String]) -> Result<Vec<String>, WorkerError> {
        if let Some(i) = items.iter().position(|s| s.contains('\n')) {
            return Err(WorkerError::new(
                WorkerErrorKind::InvalidInput,
                self.label.clone(),
                self.pid(),
                format!(
                    "item {i} of the chunk contains a newline; the line protocol sends each item as one line"
                ),
                Vec::new(),
            ));
        }
        let timeout = self.cmd.options.timeout;
        let p = self.ensure_started()?;
        let len = items.iter().map(|s| s.len() + 1).sum();
        let mut buf = Vec::with_capacity(len);
        for item in items {
            buf.extend_from_slice(item.as_bytes());
            buf.push(b'\n');
        }
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        p.send(buf);
        let expected = items.len();
        let mut out = Vec::with_capacity(expected);
        let cause = loop {
            if out.len() == expected {
                break None;
            }
            let got = out.len();
            match p.recv(deadline) {
                None => {
                    break Some(Cause::Timeout {
                        got,
                        expected,
                        after: timeout.unwrap_or_default(),
                    });
                }
                Some(Msg::Unit(mut line)) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    match String::from_utf8(line) {
                        Ok(s) => out.push(s),
                        Err(e) => {
                            let bytes = e.into_bytes();
                            let preview =
                                String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
                            break Some(Cause::Garbage(format!(
                                "result line {got} of {expected} is not UTF-8: {preview:?}"
                            )));
                        }
                    }
                }
                Some(Msg::Eof) => break Some(Cause::Eof { got, expected }),
                Some(Msg::Failed(e)) => break Some(Cause::Read(e)),
            }
        };
        // Extra output that is already there is a protocol error (output
        // that arrives later is caught before the next chunk).
        let cause = cause.or_else(|| match p.peek_ready() {
            Some(Msg::Unit(line)) => Some(Cause::Garbage(format!(
                "worker wrote more lines than items ({expected}); first extra line: {:?}",
                String::from_utf8_lossy(line).trim_end()
            ))),
            _ => None,
        });
        match cause {
            None => Ok(out),
            Some(cause) => match self.process.take() {
                Some(p) => Err(p.fail(cause)),
                None => Err(WorkerError::new(
                    WorkerErrorKind::Protocol,
                    self.label.clone(),
                    None,
                    "worker vanished",
                    Vec::new(),
                )),
            },
        }
    }
}

impl Task for LineTask {
    type Input = String;
    type Output = String;

    fn process_item(&mut self, item: &String) -> Result<String, TaskError> {
        let mut out = self.run_chunk(std::slice::from_ref(item))?;
        out.pop()
            .ok_or_else(|| "the worker returned no result".into())
    }

    fn process_items(&mut self, items: &[String]) -> Result<Vec<String>, TaskError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.run_chunk(items)?)
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("process:{}", self.label))
    }
}
