//! The error a process worker reports, and its failure class.

/// How a process worker failed; see [`WorkerError::kind`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerErrorKind {
    /// The worker exited by itself with this exit code.
    Exited(i32),
    /// The worker was killed by a signal it did not get from raygent.
    Signaled {
        /// The signal number.
        number: i32,
        /// The signal's name, e.g. `"SIGSEGV"`.
        name: &'static str,
    },
    /// The chunk took longer than the per-chunk timeout; raygent killed the worker.
    Timeout,
    /// The worker ran out of memory under its memory limit (or was killed by
    /// the kernel's OOM killer while a limit was set).
    MemoryLimit,
    /// The worker broke the protocol: too few or extra lines, a garbage frame,
    /// output that is not UTF-8, or it closed its stdout.
    Protocol,
    /// The worker could not be started (program not found, not executable).
    Spawn,
    /// The worker reported an error (or a caught panic) for the chunk; the
    /// worker itself is healthy and is kept.
    Task,
    /// An input item cannot be sent to a worker (e.g. a line-protocol item
    /// holding a newline); retrying does not help.
    InvalidInput,
}

impl WorkerErrorKind {
    /// A short, stable label for counting failures in a job report.
    pub fn failure_class(&self) -> &'static str {
        match self {
            WorkerErrorKind::Exited(_) => "worker exited",
            WorkerErrorKind::Signaled { .. } => "worker killed by signal",
            WorkerErrorKind::Timeout => "timeout",
            WorkerErrorKind::MemoryLimit => "memory limit",
            WorkerErrorKind::Protocol => "protocol",
            WorkerErrorKind::Spawn => "spawn",
            WorkerErrorKind::Task => "task error",
            WorkerErrorKind::InvalidInput => "invalid input",
        }
    }
}

/// A chunk failed in a process worker.
///
/// The message says which worker (command, worker id, pid), what happened
/// (exit code, signal name, timeout, protocol violation) and ends with the
/// last lines the worker wrote to stderr. It converts into a
/// [`TaskError`](raygent_core::TaskError) with `?`; the runtime recovers it with
/// `err.downcast_ref::<WorkerError>()` to count failures by
/// [`failure_class`](WorkerError::failure_class).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{worker}: {message}{}", render_tail(.stderr_tail))]
pub struct WorkerError {
    kind: WorkerErrorKind,
    worker: String,
    pid: Option<u32>,
    message: String,
    stderr_tail: Vec<String>,
}

fn render_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut s = String::from("; last stderr lines:");
    for line in lines {
        s.push_str("\n    ");
        s.push_str(line);
    }
    s
}

impl WorkerError {
    pub(crate) fn new(
        kind: WorkerErrorKind,
        worker: impl Into<String>,
        pid: Option<u32>,
        message: impl Into<String>,
        stderr_tail: Vec<String>,
    ) -> Self {
        WorkerError {
            kind,
            worker: worker.into(),
            pid,
            message: message.into(),
            stderr_tail,
        }
    }

    /// How the worker failed.
    pub fn kind(&self) -> &WorkerErrorKind {
        &self.kind
    }

    /// A short, stable label for counting failures in a job report:
    /// `"worker exited"`, `"worker killed by signal"`, `"timeout"`,
    /// `"memory limit"`, `"protocol"`, `"spawn"`, `"task error"` or
    /// `"invalid input"`.
    pub fn failure_class(&self) -> &'static str {
        self.kind.failure_class()
    }

    /// The process id of the worker that failed, when it had been started.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The last lines the worker wrote to stderr (oldest first).
    pub fn stderr_tail(&self) -> &[String] {
        &self.stderr_tail
    }

    /// What happened, without the worker's name and stderr lines.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The failure class of any task error: a [`WorkerError`]'s class, or
    /// `None` for other errors.
    pub fn class_of(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
        err.downcast_ref::<WorkerError>()
            .map(WorkerError::failure_class)
    }
}

/// The name of a signal number (`"SIGSEGV"`), or `"unknown signal"`.
pub fn signal_name(signal: i32) -> &'static str {
    signal_hook::low_level::signal_name(signal).unwrap_or("unknown signal")
}
