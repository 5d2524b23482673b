//! The task actor: one task instance, and the one retry path of both modes.
//!
//! A [`TaskActor`] runs one attempt at a chunk and judges how it went with
//! the job's [`Rules`]: the chunk is finished (done, skipped or aborting
//! the job), or it is to be retried after a backoff. In the pool the
//! supervisor waits out the backoff (a timer, no blocked thread); in
//! sequential mode the caller's thread sleeps it out. Everything else is
//! the same code.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use raygent_core::{
    Chunk, ChunkHash, ChunkHasher, Error, FailedChunk, FailurePolicy, RetryPolicy, StopHandle,
    Task, TaskFactory,
};

use crate::exec::{panic_message, run_chunk};
use crate::flow::{Finished, Outcome, Released, Run};
use crate::progress::Progress;
use crate::window::Window;

pub(crate) type In<F> = <<F as TaskFactory>::Task as Task>::Input;
pub(crate) type Out<F> = <<F as TaskFactory>::Task as Task>::Output;

/// How failed attempts are retried, and what a chunk that fails on every
/// attempt does to the job.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) retry: RetryPolicy,
    pub(crate) failure_policy: FailurePolicy,
}

/// Attempt counters a task actor keeps for the job report.
#[derive(Debug, Default)]
pub(crate) struct AttemptStats {
    pub(crate) retries: u64,
    /// Failed attempts by class ("error", "panic", ...).
    pub(crate) failures: BTreeMap<String, u64>,
}

impl AttemptStats {
    pub(crate) fn merge(&mut self, other: AttemptStats) {
        self.retries += other.retries;
        for (class, n) in other.failures {
            *self.failures.entry(class).or_default() += n;
        }
    }
}

/// What comes of one attempt.
#[derive(Debug)]
pub(crate) enum Step<I, O> {
    /// The chunk is finished, one way or another.
    Finished(Finished<O>),
    /// Run it again (`run.attempt` is the next attempt) after `delay`.
    RetryLater { run: Run<I>, delay: Duration },
}

/// One worker: owns one task instance (made by the factory on first use,
/// and again after a panic) and its attempt counters.
pub(crate) struct TaskActor<F: TaskFactory> {
    factory: Arc<F>,
    task: Option<Box<F::Task>>,
    at_once: bool,
    rules: Rules,
    /// A stop: queued chunks are then dropped unrun.
    stop: Option<StopHandle>,
    /// Halted when the job aborts: queued chunks are then dropped unrun too.
    window: Arc<Window>,
    progress: Progress,
    /// When the job checkpoints: hashes a finished chunk's items for the
    /// input fingerprint, here on the task's thread rather than on the
    /// feeder that every chunk passes.
    hasher: Option<ChunkHasher>,
    pub(crate) stats: AttemptStats,
}

impl<F: TaskFactory> TaskActor<F> {
    pub(crate) fn new(
        factory: Arc<F>,
        task: Option<Box<F::Task>>,
        at_once: bool,
        rules: Rules,
        stop: Option<StopHandle>,
        window: Arc<Window>,
        progress: Progress,
    ) -> Self {
        TaskActor {
            factory,
            task,
            at_once,
            rules,
            stop,
            window,
            progress,
            hasher: None,
            stats: AttemptStats::default(),
        }
    }

    /// Hashes each finished chunk's items, for the input fingerprint of a
    /// checkpointed job (`yes`).
    pub(crate) fn hashing_chunks(mut self, yes: bool) -> Self {
        self.hasher = yes.then(ChunkHasher::new);
        self
    }

    /// Whether the job is stopping (a stop, or an abort): nothing new starts.
    pub(crate) fn stopping(&self) -> bool {
        self.window.is_halted() || self.stop.as_ref().is_some_and(StopHandle::is_stopped)
    }

    /// Whether the task takes chunks ahead (see [`Task::prefetch`]); only
    /// whole chunks are (at once), the way they are then run.
    pub(crate) fn prefetches(&self) -> bool {
        self.at_once && self.task.as_ref().is_some_and(|t| t.prefetches())
    }

    /// Tells the task that `run` is next (see [`Task::prefetch`]). A panic
    /// in it drops the task instance (a fresh one runs the chunk).
    pub(crate) fn prefetch(&mut self, run: &Run<In<F>>) {
        if !self.prefetches() {
            return;
        }
        let items = &run.chunk.items;
        let ok = match self.task.as_mut() {
            Some(t) => catch_unwind(AssertUnwindSafe(|| t.prefetch(items))).is_ok(),
            None => true,
        };
        if !ok {
            let broken = self.task.take();
            let _ = catch_unwind(AssertUnwindSafe(move || drop(broken)));
        }
    }

    /// One attempt at `run`, judged by the job's rules.
    ///
    /// The task's own code runs under `catch_unwind` in
    /// [`run_chunk`]; so does the rest here, which still calls user code
    /// (an error's `Display`, an item's `Drop`): a panic there ends the job
    /// with an error, and never the task actor's thread, nor the chunk
    /// unreported.
    #[inline(always)]
    pub(crate) fn attempt(&mut self, run: Run<In<F>>) -> Step<In<F>, Out<F>> {
        let index = run.chunk.index;
        match catch_unwind(AssertUnwindSafe(|| self.judged_attempt(run))) {
            Ok(step) => step,
            Err(p) => {
                let broken = self.task.take();
                let _ = catch_unwind(AssertUnwindSafe(move || drop(broken)));
                self.window.halt();
                Step::Finished(Finished::Aborted {
                    index,
                    error: Error::Runtime(format!(
                        "chunk {index}: panic outside the task's processing: {}",
                        panic_message(p)
                    )),
                })
            }
        }
    }

    #[inline(always)]
    fn judged_attempt(&mut self, run: Run<In<F>>) -> Step<In<F>, Out<F>> {
        let Run { chunk, attempt } = run;
        let index = chunk.index;
        if self.stopping() {
            return Step::Finished(Finished::Dropped { index });
        }
        // No tracing span per chunk: entering one costs 20-40 ns even with
        // no subscriber, a third of sequential mode's whole cost per chunk
        // at chunk size 1. The events below name the chunk instead.
        let failure = match run_chunk(&*self.factory, &mut self.task, &chunk.items, self.at_once) {
            Ok(results) => {
                let fingerprint = match self.hash(&chunk) {
                    Ok(h) => h,
                    Err(error) => return Step::Finished(Finished::BadInput { index, error }),
                };
                return Step::Finished(Finished::Ready(Released {
                    index,
                    outcome: Outcome::Done {
                        start: chunk.start,
                        results,
                    },
                    fingerprint,
                }));
            }
            Err(f) => f,
        };
        *self
            .stats
            .failures
            .entry(failure.class().to_owned())
            .or_default() += 1;
        if attempt < self.rules.retry.max_attempts() {
            // The job is stopping because of something else: no retry.
            if self.stopping() {
                return Step::Finished(Finished::Dropped { index });
            }
            self.stats.retries += 1;
            self.progress.add_retry();
            let delay = self.rules.retry.backoff(attempt);
            tracing::warn!(chunk = index, attempt, ?delay, error = %failure, "chunk failed; retrying");
            return Step::RetryLater {
                run: Run {
                    chunk,
                    attempt: attempt + 1,
                },
                delay,
            };
        }
        tracing::error!(chunk = index, attempts = attempt, error = %failure, "chunk failed permanently");
        let failed = FailedChunk {
            index,
            items: chunk.range(),
            attempts: attempt,
            error: failure.to_string(),
        };
        match self.rules.failure_policy {
            FailurePolicy::Skip => match self.hash(&chunk) {
                Ok(fingerprint) => Step::Finished(Finished::Ready(Released {
                    index,
                    outcome: Outcome::Skipped(failed),
                    fingerprint,
                })),
                Err(error) => Step::Finished(Finished::BadInput { index, error }),
            },
            _ => self.abort(index, aborted(failed)),
        }
    }

    /// The hash of a finished chunk's items, when the job checkpoints.
    #[inline(always)]
    fn hash(&mut self, chunk: &Chunk<In<F>>) -> Result<Option<ChunkHash>, Error> {
        match self.hasher.as_mut() {
            Some(hasher) => hasher.hash_chunk(chunk).map(Some),
            None => Ok(None),
        }
    }

    /// Ends the job with `error` at chunk `index`.
    fn abort(&self, index: u64, error: Error) -> Step<In<F>, Out<F>> {
        // Halted here, on the task actor's thread, before it takes its next
        // chunk: no queued chunk starts after an abort.
        self.window.halt();
        Step::Finished(Finished::Aborted { index, error })
    }
}

fn aborted(f: FailedChunk) -> Error {
    Error::ChunkFailed {
        index: f.index,
        items: f.items,
        attempts: f.attempts,
        last_error: f.error,
    }
}
