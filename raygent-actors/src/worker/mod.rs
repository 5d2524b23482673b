//! Process workers: run each task instance in a long-lived child process,
//! so that a segfault, an abort, an out-of-memory kill or a hang in task
//! code costs one chunk attempt instead of the whole job.
//!
//! Two kinds, both ordinary [`Task`](raygent_core::Task)s that any
//! `TaskManager` runs (one worker process per task instance):
//!
//! - [`LineTask`], made by [`WorkerCommand`]: any executable speaking the
//!   *line protocol*: each item is written as one line on the worker's stdin,
//!   and the worker answers with exactly one line per item on stdout, in
//!   order. `while read x; do echo $((x*x)); done` is a complete worker.
//! - [`ProcessTask`], made by [`RustWorker`]: a Rust [`Task`](raygent_core::Task)
//!   run in a copy of the current program, which re-executes itself as a
//!   worker thanks to one line at the top of `main`:
//!   [`serve_worker_if_requested`]. Chunks and results cross the pipe as
//!   length-delimited CBOR frames.
//!
//! Every worker gets `RAYGENT_WORKER_ID`, `PYTHONUNBUFFERED=1` and
//! `OMP_NUM_THREADS`, `RAYON_NUM_THREADS`, `MKL_NUM_THREADS`,
//! `OPENBLAS_NUM_THREADS`, `NUMEXPR_NUM_THREADS` set to `n_cores_worker`
//! (default 1). It runs in its own process group with `PR_SET_PDEATHSIG`
//! set to SIGKILL, so it dies with the thread that started it; dropping
//! the task closes its stdin, waits up to the shutdown grace and kills the
//! whole group, then reaps the worker: no zombies, no orphans.
//!
//! A chunk that fails returns a [`WorkerError`] saying how the worker died
//! (exit code, signal name, timeout, memory limit, protocol violation) with
//! its last stderr lines; its [`failure_class`](WorkerError::failure_class)
//! is what a job report counts.

mod error;
mod line;
mod process;
mod rust;

pub use error::{WorkerError, WorkerErrorKind, signal_name};
pub use line::{LineTask, WorkerCommand};
pub use rust::{ProcessTask, RustWorker, serve_worker_if_requested};

/// The environment variable that tells a re-executed program which task to
/// serve (see [`serve_worker_if_requested`]).
pub const WORKER_TASK_ENV: &str = "RAYGENT_WORKER_TASK";

/// The environment variable that holds a worker's id (0, 1, 2, ... per
/// [`WorkerCommand`] or [`RustWorker`]; stable across restarts of one task
/// instance's worker).
pub const WORKER_ID_ENV: &str = "RAYGENT_WORKER_ID";

/// The option setters shared by [`WorkerCommand`] and [`RustWorker`].
macro_rules! option_setters {
    () => {
        /// Sets an environment variable for the worker (on top of the
        /// inherited environment and raygent's own variables, which it can
        /// override).
        pub fn env(
            mut self,
            key: impl AsRef<std::ffi::OsStr>,
            value: impl AsRef<std::ffi::OsStr>,
        ) -> Self {
            self.options
                .env
                .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
            self
        }

        /// Runs the worker in this directory.
        pub fn current_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
            self.options.current_dir = Some(dir.into());
            self
        }

        /// Kills the worker and fails the chunk when a chunk takes longer
        /// than this (no timeout by default).
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.options.timeout = Some(timeout);
            self
        }

        /// Limits the worker's address space to `bytes` (`RLIMIT_AS`); an
        /// allocation past it fails in the worker only.
        pub fn memory_limit(mut self, bytes: u64) -> Self {
            self.options.memory_limit = Some(bytes);
            self
        }

        /// The number of cores one worker may use: sets `OMP_NUM_THREADS`,
        /// `RAYON_NUM_THREADS` and similar in its environment (default 1).
        pub fn n_cores_worker(mut self, n: usize) -> Self {
            self.options.n_cores_worker = n.max(1);
            self
        }

        /// How many of the worker's last stderr lines an error carries (default 20).
        pub fn stderr_lines(mut self, n: usize) -> Self {
            self.options.stderr_lines = n;
            self
        }

        /// How long a worker may take to exit after its stdin is closed
        /// when the task is dropped, before it is killed (default 500 ms).
        pub fn shutdown_grace(mut self, grace: std::time::Duration) -> Self {
            self.options.shutdown_grace = grace;
            self
        }
    };
}
pub(crate) use option_setters;
