//! One long-lived worker child process: spawning, pipes, stderr capture,
//! timeouts, killing and reaping, and turning a death into a [`WorkerError`].

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::error::{WorkerError, WorkerErrorKind, signal_name};

/// Environment variables set to `n_cores_worker` in every worker.
pub(crate) const THREAD_ENV_VARS: [&str; 5] = [
    "OMP_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
];

/// The options every kind of process worker shares.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub env: Vec<(OsString, OsString)>,
    pub current_dir: Option<PathBuf>,
    pub timeout: Option<Duration>,
    pub memory_limit: Option<u64>,
    pub n_cores_worker: usize,
    pub stderr_lines: usize,
    pub shutdown_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            env: Vec::new(),
            current_dir: None,
            timeout: None,
            memory_limit: None,
            n_cores_worker: 1,
            stderr_lines: 20,
            shutdown_grace: Duration::from_millis(500),
        }
    }
}

/// How the worker's stdout is cut into units.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Framing {
    /// One unit per line (the trailing newline is kept).
    Lines,
    /// One unit per length-delimited frame.
    Frames,
}

/// What to start.
pub(crate) struct Spec<'a> {
    pub program: &'a OsString,
    pub args: &'a [OsString],
    pub extra_env: &'a [(&'a str, String)],
    pub options: &'a Options,
    pub worker_id: u64,
    pub framing: Framing,
    /// How the worker is named in messages.
    pub label: &'a str,
}

/// A message from the stdout reader thread.
pub(crate) enum Msg {
    Unit(Vec<u8>),
    Eof,
    Failed(io::Error),
}

/// The last lines a worker wrote to stderr.
struct StderrTail {
    lines: Mutex<VecDeque<String>>,
    capacity: usize,
    /// The first line that reads like an allocation failure, if any (kept
    /// even after it leaves the tail, e.g. pushed out by a backtrace).
    oom_line: Mutex<Option<String>>,
}

/// Phrases with which runtimes report a failed allocation.
const OOM_PHRASES: [&str; 6] = [
    "memory allocation of",
    "memoryerror",
    "cannot allocate memory",
    "out of memory",
    "bad_alloc",
    "failed to allocate",
];

impl StderrTail {
    fn push(&self, line: String) {
        let lower = line.to_ascii_lowercase();
        if OOM_PHRASES.iter().any(|p| lower.contains(p)) {
            let mut oom = self.oom_line.lock().unwrap_or_else(|p| p.into_inner());
            if oom.is_none() {
                *oom = Some(line.clone());
            }
        }
        if self.capacity == 0 {
            return;
        }
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn oom_line(&self) -> Option<String> {
        self.oom_line
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn snapshot(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect()
    }
}

/// Why a chunk failed, as seen by the parent before it looks at the process.
pub(crate) enum Cause {
    /// No (complete) reply before the deadline.
    Timeout {
        got: usize,
        expected: usize,
        after: Duration,
    },
    /// The worker's stdout ended early.
    Eof { got: usize, expected: usize },
    /// Reading the worker's stdout failed (e.g. a frame cut short).
    Read(io::Error),
    /// The worker wrote something that breaks the protocol.
    Garbage(String),
}

/// How the worker's stdin and stdout are driven.
enum Io {
    /// A writer thread and a reader thread (the line protocol, whose
    /// workers may answer before they have read everything).
    Threads {
        writer: Option<Sender<Vec<u8>>>,
        /// Batches of units: all complete lines that were read together.
        out: Mutex<Receiver<Vec<Msg>>>,
    },
    /// The caller's thread itself, on non-blocking pipes (frames): a round
    /// trip wakes no thread but the worker and the caller.
    Direct(Direct),
}

/// Frames written to and read from the worker's pipes by the caller's
/// thread, both at once (a worker that answers before reading a whole
/// large frame cannot deadlock it).
struct Direct {
    /// None once closed.
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    /// Bytes queued for stdin, from `written` on.
    wbuf: Vec<u8>,
    written: usize,
    /// Bytes read from stdout that do not yet make a whole frame.
    rbuf: Vec<u8>,
    /// Stdout ended or failed: no more reads.
    done: bool,
}

/// A running worker child process with its three pipes.
pub(crate) struct WorkerProcess {
    child: Child,
    pid: u32,
    label: String,
    memory_limit: Option<u64>,
    grace: Duration,
    io: Io,
    pending: VecDeque<Msg>,
    stderr: Arc<StderrTail>,
    stderr_done: Mutex<Receiver<()>>,
    pidfd: Option<OwnedFd>,
    reaped: bool,
}

fn spawn_error(label: &str, program: &OsString, e: &io::Error) -> WorkerError {
    let program = program.to_string_lossy();
    let message = match e.kind() {
        io::ErrorKind::NotFound => format!(
            "cannot start worker: program `{program}` not found ({e}); check PATH or give a full path"
        ),
        io::ErrorKind::PermissionDenied => {
            format!("cannot start worker: program `{program}` is not executable ({e})")
        }
        _ => format!("cannot start worker `{program}`: {e}"),
    };
    WorkerError::new(WorkerErrorKind::Spawn, label, None, message, Vec::new())
}

impl WorkerProcess {
    /// Starts the worker and its stdin writer, stdout reader and stderr reader threads.
    pub(crate) fn spawn(spec: &Spec<'_>) -> Result<WorkerProcess, WorkerError> {
        let opts = spec.options;
        let mut cmd = Command::new(spec.program);
        cmd.args(spec.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("PYTHONUNBUFFERED", "1")
            .env(super::WORKER_ID_ENV, spec.worker_id.to_string());
        let threads = opts.n_cores_worker.max(1).to_string();
        for var in THREAD_ENV_VARS {
            cmd.env(var, &threads);
        }
        for (k, v) in spec.extra_env {
            cmd.env(k, v);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &opts.current_dir {
            cmd.current_dir(dir);
        }
        // Its own process group, so that killing the group also kills what
        // the worker started (a shell's children).
        cmd.process_group(0);
        let parent = rustix::process::getpid();
        let limit = opts.memory_limit;
        // SAFETY: the closure runs in the forked child before exec; rustix
        // makes these calls (prctl, getppid, setrlimit) as raw system calls,
        // which are async-signal-safe, and nothing here allocates.
        unsafe {
            cmd.pre_exec(move || {
                use rustix::process::{Resource, Rlimit, Signal};
                rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
                if rustix::process::getppid() != Some(parent) {
                    // The parent died before prctl took effect.
                    return Err(io::Error::from(rustix::io::Errno::SRCH));
                }
                if let Some(bytes) = limit {
                    let rl = Rlimit {
                        current: Some(bytes),
                        maximum: Some(bytes),
                    };
                    rustix::process::setrlimit(Resource::As, rl)?;
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| spawn_error(spec.label, spec.program, &e))?;
        let pid = child.id();
        let label = format!("{} (worker {}, pid {pid})", spec.label, spec.worker_id);
        match Self::start_threads(&mut child, spec, &label, opts.stderr_lines) {
            Ok((io, stderr, stderr_done)) => {
                // Linux 5.3 and later; without it, exits are polled.
                let pidfd = i32::try_from(pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                    .and_then(|p| {
                        rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
                    });
                tracing::debug!(worker = %label, "worker started");
                Ok(WorkerProcess {
                    child,
                    pid,
                    label,
                    memory_limit: opts.memory_limit,
                    grace: opts.shutdown_grace,
                    io,
                    pending: VecDeque::new(),
                    stderr,
                    stderr_done: Mutex::new(stderr_done),
                    pidfd,
                    reaped: false,
                })
            }
            Err(e) => {
                kill_group(pid);
                let _ = child.wait();
                Err(WorkerError::new(
                    WorkerErrorKind::Spawn,
                    label,
                    Some(pid),
                    format!("cannot start the worker's I/O threads: {e}"),
                    Vec::new(),
                ))
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn start_threads(
        child: &mut Child,
        spec: &Spec<'_>,
        label: &str,
        stderr_lines: usize,
    ) -> io::Result<(Io, Arc<StderrTail>, Receiver<()>)> {
        let missing = || io::Error::other("a pipe of the child is missing");
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let stderr = child.stderr.take().ok_or_else(missing)?;
        let id = spec.worker_id;

        let io = match spec.framing {
            Framing::Frames => {
                // Our ends only: the worker's ends stay blocking.
                rustix::io::ioctl_fionbio(&stdin, true)?;
                rustix::io::ioctl_fionbio(&stdout, true)?;
                Io::Direct(Direct {
                    stdin: Some(stdin),
                    stdout,
                    wbuf: Vec::new(),
                    written: 0,
                    rbuf: Vec::new(),
                    done: false,
                })
            }
            Framing::Lines => {
                let (wtx, wrx) = mpsc::channel::<Vec<u8>>();
                thread::Builder::new()
                    .name(format!("raygent-w{id}-in"))
                    .spawn(move || write_loop(stdin, wrx))?;
                let (otx, orx) = mpsc::channel::<Vec<Msg>>();
                thread::Builder::new()
                    .name(format!("raygent-w{id}-out"))
                    .spawn(move || read_loop(stdout, Framing::Lines, otx))?;
                Io::Threads {
                    writer: Some(wtx),
                    out: Mutex::new(orx),
                }
            }
        };

        let tail = Arc::new(StderrTail {
            lines: Mutex::new(VecDeque::with_capacity(stderr_lines)),
            capacity: stderr_lines,
            oom_line: Mutex::new(None),
        });
        let (dtx, drx) = mpsc::channel::<()>();
        let tail2 = Arc::clone(&tail);
        let label = label.to_owned();
        thread::Builder::new()
            .name(format!("raygent-w{id}-err"))
            .spawn(move || stderr_loop(stderr, &tail2, &label, dtx))?;
        Ok((io, tail, drx))
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// How the worker is named in messages.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Queues bytes for the worker's stdin (written by the writer thread, or
    /// by `recv` while it reads, so a worker that answers before reading
    /// everything cannot deadlock us).
    pub(crate) fn send(&mut self, bytes: Vec<u8>) {
        match &mut self.io {
            Io::Threads { writer, .. } => {
                if let Some(w) = writer {
                    // A closed channel means stdin broke: the reader sees why.
                    let _ = w.send(bytes);
                }
            }
            Io::Direct(d) => {
                if d.written == d.wbuf.len() {
                    d.wbuf = bytes;
                    d.written = 0;
                } else {
                    d.wbuf.extend_from_slice(&bytes);
                }
                // Most frames fit in the pipe: written now, in one call.
                d.write_some();
            }
        }
    }

    /// Closes the worker's stdin (once what is queued for it is written,
    /// in the threaded mode).
    fn close_stdin(&mut self) {
        match &mut self.io {
            Io::Threads { writer, .. } => *writer = None,
            Io::Direct(d) => d.stdin = None,
        }
    }

    /// Waits for the next unit from stdout until `deadline`; `None` on timeout.
    pub(crate) fn recv(&mut self, deadline: Option<Instant>) -> Option<Msg> {
        if let Some(m) = self.pending.pop_front() {
            return Some(m);
        }
        let out = match &mut self.io {
            Io::Threads { out, .. } => out.get_mut().unwrap_or_else(|p| p.into_inner()),
            Io::Direct(d) => return d.recv(deadline),
        };
        let batch = match deadline {
            None => out.recv().unwrap_or_else(|_| vec![Msg::Eof]),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                match out.recv_timeout(left) {
                    Ok(b) => b,
                    Err(RecvTimeoutError::Timeout) => return None,
                    Err(RecvTimeoutError::Disconnected) => vec![Msg::Eof],
                }
            }
        };
        self.pending.extend(batch);
        Some(self.pending.pop_front().unwrap_or(Msg::Eof))
    }

    /// A unit already available without waiting, if any (kept for the next `recv`).
    pub(crate) fn peek_ready(&mut self) -> Option<&Msg> {
        if self.pending.is_empty() {
            match &mut self.io {
                Io::Threads { out, .. } => {
                    let out = out.get_mut().unwrap_or_else(|p| p.into_inner());
                    match out.try_recv() {
                        Ok(batch) => self.pending.extend(batch),
                        Err(TryRecvError::Empty) => {}
                        Err(TryRecvError::Disconnected) => self.pending.push_back(Msg::Eof),
                    }
                }
                Io::Direct(d) => {
                    if let Some(m) = d.recv(Some(Instant::now())) {
                        self.pending.push_back(m);
                    }
                }
            }
        }
        self.pending.front()
    }

    /// Waits up to `grace` for the child to exit by itself; true if it has.
    fn wait_exit(&mut self, grace: Duration) -> bool {
        if let Some(fd) = &self.pidfd {
            use rustix::event::{PollFd, PollFlags};
            let deadline = Instant::now() + grace;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let timeout = rustix::time::Timespec::try_from(left).ok();
                let mut fds = [PollFd::new(fd, PollFlags::IN)];
                match rustix::event::poll(&mut fds, timeout.as_ref()) {
                    Ok(n) => return n > 0,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => break,
                }
            }
        }
        // No pidfd: poll the status.
        let deadline = Instant::now() + grace;
        loop {
            // WNOWAIT only inspects the child, it does not reap it.
            use rustix::process::{Pid, WaitId, WaitIdOptions};
            let exited = i32::try_from(self.pid)
                .ok()
                .and_then(Pid::from_raw)
                .is_some_and(|pid| {
                    matches!(
                        rustix::process::waitid(
                            WaitId::Pid(pid),
                            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
                        ),
                        Ok(Some(_))
                    )
                });
            if exited {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the whole process group (unless it already exited: then only
    /// what is left of the group) and reaps the child.
    /// Returns its status and whether our SIGKILL is what ended it.
    fn kill_and_reap(&mut self) -> (Option<ExitStatus>, bool) {
        if self.reaped {
            return (None, false);
        }
        let exited_before = self.wait_exit(Duration::ZERO);
        // The leader is not reaped yet, so its pid (the group id) cannot
        // have been reused.
        kill_group(self.pid);
        self.close_stdin();
        let status = self.child.wait().ok();
        self.reaped = true;
        let by_us = !exited_before
            && status.is_some_and(|s| s.signal() == Some(rustix::process::Signal::KILL.as_raw()));
        (status, by_us)
    }

    /// Waits (briefly) until the stderr thread has read everything, then
    /// returns the last stderr lines.
    fn stderr_tail(&self) -> Vec<String> {
        let done = self.stderr_done.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: a grandchild that escaped the process group may hold the pipe.
        let _ = done.recv_timeout(Duration::from_millis(500));
        self.stderr.snapshot()
    }

    /// Ends the worker after `cause` and describes what happened.
    pub(crate) fn fail(mut self, cause: Cause) -> WorkerError {
        let (kind, message) = match cause {
            Cause::Timeout {
                got,
                expected,
                after,
            } => {
                let (status, by_us) = self.kill_and_reap();
                if by_us || status.is_none() {
                    (
                        WorkerErrorKind::Timeout,
                        format!(
                            "no complete reply within the {after:?} chunk timeout ({got} of {expected} result(s) received); worker killed"
                        ),
                    )
                } else {
                    // It died on its own just as the timeout expired.
                    self.classify_death(status, got, expected, "the chunk timed out")
                }
            }
            Cause::Eof { got, expected } => {
                let exited = self.wait_exit(self.grace.max(Duration::from_millis(200)));
                let (status, by_us) = self.kill_and_reap();
                if !exited || by_us {
                    (
                        WorkerErrorKind::Protocol,
                        format!(
                            "worker closed its stdout after {got} of {expected} result(s) but kept running; killed"
                        ),
                    )
                } else {
                    self.classify_death(status, got, expected, "its stdout ended")
                }
            }
            Cause::Read(e) => {
                let exited = self.wait_exit(self.grace.max(Duration::from_millis(200)));
                let (status, by_us) = self.kill_and_reap();
                if !exited || by_us {
                    (
                        WorkerErrorKind::Protocol,
                        format!("reading the worker's reply failed: {e}; worker killed"),
                    )
                } else {
                    self.classify_death(status, 0, 0, &format!("reading its reply failed: {e}"))
                }
            }
            Cause::Garbage(what) => {
                let (status, by_us) = self.kill_and_reap();
                let how = match status {
                    Some(s) if !by_us => format!(" (it then {})", describe_status(s)),
                    _ => "; worker killed".to_owned(),
                };
                (WorkerErrorKind::Protocol, format!("{what}{how}"))
            }
        };
        let tail = self.stderr_tail();
        let oom_line = self.stderr.oom_line();
        let kind = self.refine_memory(kind, oom_line.is_some());
        let message = if kind == WorkerErrorKind::MemoryLimit {
            let limit = self.memory_limit.unwrap_or(0);
            match oom_line {
                Some(line) => {
                    format!("{message} (memory limit of {limit} bytes exceeded: {line})")
                }
                None => format!("{message} (memory limit of {limit} bytes exceeded)"),
            }
        } else {
            message
        };
        WorkerError::new(kind, self.label.clone(), Some(self.pid), message, tail)
    }

    fn classify_death(
        &self,
        status: Option<ExitStatus>,
        got: usize,
        expected: usize,
        context: &str,
    ) -> (WorkerErrorKind, String) {
        let progress = if expected > 0 {
            format!(" after {got} of {expected} result(s)")
        } else {
            String::new()
        };
        match status {
            Some(s) => {
                let how = describe_status(s);
                let kind = match (s.code(), s.signal()) {
                    (Some(0), _) => WorkerErrorKind::Protocol,
                    (Some(code), _) => WorkerErrorKind::Exited(code),
                    (None, Some(sig)) => WorkerErrorKind::Signaled {
                        number: sig,
                        name: signal_name(sig),
                    },
                    (None, None) => WorkerErrorKind::Protocol,
                };
                (kind, format!("worker {how}{progress} ({context})"))
            }
            None => (
                WorkerErrorKind::Protocol,
                format!("worker ended{progress} ({context}); its exit status is unknown"),
            ),
        }
    }

    /// A death while a memory limit is set that looks like running out of
    /// memory is reported as [`WorkerErrorKind::MemoryLimit`].
    fn refine_memory(&self, kind: WorkerErrorKind, oom_text: bool) -> WorkerErrorKind {
        if self.memory_limit.is_none() {
            return kind;
        }
        match kind {
            WorkerErrorKind::Signaled { number, .. }
                if number == rustix::process::Signal::KILL.as_raw() =>
            {
                WorkerErrorKind::MemoryLimit
            }
            WorkerErrorKind::Signaled { .. } | WorkerErrorKind::Exited(_) if oom_text => {
                WorkerErrorKind::MemoryLimit
            }
            k => k,
        }
    }

    /// Shuts the worker down: closes its stdin, gives it `grace` to exit,
    /// then kills its process group and reaps it.
    fn shutdown(&mut self) {
        if self.reaped {
            return;
        }
        self.close_stdin(); // the writer thread closes stdin once its queue is written
        if !self.wait_exit(self.grace) {
            tracing::debug!(worker = %self.label, "worker did not exit after stdin closed; killing it");
        }
        let _ = self.kill_and_reap();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// SIGKILL to the process group led by `pid`.
fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        // Fails only if the group is gone already.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// "exited with code 3", "was killed by signal SIGSEGV (11, core dumped)".
pub(crate) fn describe_status(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!(
            "was killed by signal {} ({sig}{})",
            signal_name(sig),
            if s.core_dumped() { ", core dumped" } else { "" }
        ),
        _ => format!("ended ({s})"),
    }
}

impl Direct {
    /// Writes what is queued until done or the pipe is full. A broken pipe
    /// closes stdin: the worker is gone, which reading its stdout reports.
    fn write_some(&mut self) {
        while self.written < self.wbuf.len() {
            let Some(stdin) = &mut self.stdin else {
                self.wbuf.clear();
                self.written = 0;
                return;
            };
            match stdin.write(&self.wbuf[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => self.stdin = None,
            }
        }
        self.wbuf.clear();
        self.written = 0;
    }

    fn wants_write(&self) -> bool {
        self.stdin.is_some() && self.written < self.wbuf.len()
    }

    /// A whole frame at the start of `rbuf`, taken out of it, or an error
    /// if its length is impossible.
    fn take_frame(&mut self) -> Option<Msg> {
        let head = <[u8; 4]>::try_from(self.rbuf.get(..4)?).ok()?;
        let len = u32::from_le_bytes(head) as usize;
        if len > raygent_core::MAX_FRAME_LEN {
            self.done = true;
            return Some(Msg::Failed(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "frame of {len} bytes exceeds the {}-byte limit",
                    raygent_core::MAX_FRAME_LEN
                ),
            )));
        }
        if self.rbuf.len() < 4 + len {
            return None;
        }
        let frame = if self.rbuf.len() == 4 + len {
            let mut all = std::mem::take(&mut self.rbuf);
            all.drain(..4);
            all
        } else {
            let frame = self.rbuf[4..4 + len].to_vec();
            self.rbuf.drain(..4 + len);
            frame
        };
        Some(Msg::Unit(frame))
    }

    /// Reads what stdout has now. `Some` once a frame is whole or stdout
    /// ended or failed; `None` when it would block.
    fn read_some(&mut self) -> Option<Msg> {
        loop {
            if let Some(m) = self.take_frame() {
                return Some(m);
            }
            if self.done {
                return Some(Msg::Eof);
            }
            let filled = self.rbuf.len();
            let need = match self.rbuf.get(..4) {
                Some(h) => 4 + u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize,
                None => 4,
            };
            self.rbuf.resize(need.max(filled + 4096), 0);
            let got = self.stdout.read(&mut self.rbuf[filled..]);
            self.rbuf.truncate(filled + *got.as_ref().unwrap_or(&0));
            match got {
                Ok(0) => {
                    self.done = true;
                    if filled == 0 {
                        return Some(Msg::Eof);
                    }
                    let what = if filled < 4 { "header" } else { "payload" };
                    return Some(Msg::Failed(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("stream ended inside a frame {what}"),
                    )));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => {
                    self.done = true;
                    return Some(Msg::Failed(e));
                }
            }
        }
    }

    /// The next frame (or the end of stdout) by `deadline`, writing what is
    /// queued for stdin meanwhile; `None` on timeout.
    fn recv(&mut self, deadline: Option<Instant>) -> Option<Msg> {
        use rustix::event::{PollFd, PollFlags};
        // A frame already read, or the end.
        if let Some(m) = self.take_frame() {
            return Some(m);
        }
        if self.done {
            return Some(Msg::Eof);
        }
        // Then poll before reading: a reply is rarely there yet.
        let mut polled_once = false;
        loop {
            if polled_once && let Some(m) = self.read_some() {
                return Some(m);
            }
            polled_once = true;
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        // Past the deadline: only what is there already.
                        return self.read_some();
                    }
                    Some(
                        rustix::time::Timespec::try_from(left).unwrap_or(rustix::time::Timespec {
                            tv_sec: i64::MAX,
                            tv_nsec: 0,
                        }),
                    )
                }
            };
            let write = self.wants_write();
            let polled = match (&self.stdin, write) {
                (Some(stdin), true) => {
                    let mut fds = [
                        PollFd::new(&self.stdout, PollFlags::IN),
                        PollFd::new(stdin, PollFlags::OUT),
                    ];
                    rustix::event::poll(&mut fds, timeout.as_ref())
                        .map(|_| !fds[1].revents().is_empty())
                }
                _ => {
                    let mut fds = [PollFd::new(&self.stdout, PollFlags::IN)];
                    rustix::event::poll(&mut fds, timeout.as_ref()).map(|_| false)
                }
            };
            match polled {
                Ok(true) => self.write_some(),
                Ok(false) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Msg::Failed(e.into()));
                }
            }
        }
    }
}

fn write_loop(mut stdin: ChildStdin, rx: Receiver<Vec<u8>>) {
    while let Ok(buf) = rx.recv() {
        if stdin.write_all(&buf).and_then(|()| stdin.flush()).is_err() {
            // The worker closed stdin or died; the stdout side reports it.
            return;
        }
    }
}

/// Reads the worker's stdout and sends it on in batches: for lines, every
/// complete line that is already buffered goes in one batch, so extra lines
/// written together with the last expected one are seen at once.
fn read_loop(stdout: impl Read, framing: Framing, tx: Sender<Vec<Msg>>) {
    let mut r = BufReader::with_capacity(64 * 1024, stdout);
    loop {
        let mut batch = Vec::new();
        let mut last = false;
        match framing {
            Framing::Lines => loop {
                let mut line = Vec::new();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) => {
                        batch.push(Msg::Eof);
                        last = true;
                        break;
                    }
                    Ok(_) => {
                        batch.push(Msg::Unit(line));
                        if !r.buffer().contains(&b'\n') {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        batch.push(Msg::Failed(e));
                        last = true;
                        break;
                    }
                }
            },
            Framing::Frames => {
                let mut buf = Vec::new();
                match raygent_core::read_frame(&mut r, &mut buf) {
                    Ok(true) => batch.push(Msg::Unit(buf)),
                    Ok(false) => {
                        batch.push(Msg::Eof);
                        last = true;
                    }
                    Err(e) => {
                        batch.push(Msg::Failed(e));
                        last = true;
                    }
                }
            }
        }
        if tx.send(batch).is_err() || last {
            return;
        }
    }
}

fn stderr_loop(stderr: impl Read, tail: &StderrTail, label: &str, done: Sender<()>) {
    const MAX_LINE: usize = 1000;
    let mut r = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                let mut text = String::from_utf8_lossy(&line).into_owned();
                if text.len() > MAX_LINE {
                    let mut cut = MAX_LINE;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                    text.push_str(" [...]");
                }
                tracing::debug!(target: "raygent::worker", worker = %label, "stderr: {text}");
                tail.push(text);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = done.send(());
}
