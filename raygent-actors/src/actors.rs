//! The actors of one job: a supervisor over a pool of task actors, a reorder
//! actor and a saver actor.
//!
//! ```text
//! feeder (caller's thread) ──Dispatch──► Supervisor ──RunChunk──► TaskActor × n  (SyncArbiter threads)
//!                                           ▲   │ ◄──ChunkDone───────┘
//!                                           │   └──Completed──► Reorder ──Released──► SaverActor (own thread)
//!        ◄──────────── window credits ──────┼──────────────────────────────────────────┘
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, mpsc};

use actix::prelude::*;
use raygent_core::{
    Chunk, Error, FailedChunk, FailurePolicy, JobReport, ResultHandler, RetryPolicy, StopHandle,
    Task, TaskFactory,
};

use crate::exec::{Failure, run_chunk};
use crate::sink::{Released, Sink};
use crate::window::Window;

type In<F> = <<F as TaskFactory>::Task as Task>::Input;
type Out<F> = <<F as TaskFactory>::Task as Task>::Output;

// ---------------------------------------------------------------- messages

/// Feeder → supervisor: a new chunk to run.
pub(crate) struct Dispatch<I>(pub(crate) Chunk<I>);
impl<I: Send + 'static> Message for Dispatch<I> {
    type Result = ();
}

/// Feeder → supervisor: no more chunks; `end` is one past the last index.
pub(crate) struct InputEnd {
    pub(crate) end: u64,
}
impl Message for InputEnd {
    type Result = ();
}

/// Supervisor → task actor: one attempt at a chunk.
struct RunChunk<I> {
    chunk: Chunk<I>,
    attempt: u32,
}
impl<I: Send + 'static> Message for RunChunk<I> {
    type Result = ();
}

/// Task actor → supervisor: how an attempt went. On failure the chunk comes
/// back for the retry.
struct ChunkDone<I, O> {
    index: u64,
    start: u64,
    attempt: u32,
    outcome: Result<Vec<O>, (Chunk<I>, Failure)>,
}
impl<I: Send + 'static, O: Send + 'static> Message for ChunkDone<I, O> {
    type Result = ();
}

/// Supervisor → reorder: a chunk is finished (in any order).
struct Completed<O>(Released<O>);
impl<O: Send + 'static> Message for Completed<O> {
    type Result = ();
}

/// Supervisor → reorder → saver: every chunk is finished; wrap up.
struct Flush<O, H> {
    stats: RunStats,
    reply: mpsc::Sender<Finished<O, H>>,
}
impl<O: Send + 'static, H: Send + 'static> Message for Flush<O, H> {
    type Result = ();
}

struct Deliver<O>(Released<O>);
impl<O: Send + 'static> Message for Deliver<O> {
    type Result = ();
}

/// Where the end of the job is reported (boxed: actors must be `Unpin`).
type ReplyTo<O, H> = Box<mpsc::Sender<Finished<O, H>>>;

/// Counters kept by the supervisor.
#[derive(Debug, Default)]
pub(crate) struct RunStats {
    pub(crate) retries: u64,
    pub(crate) failures: BTreeMap<String, u64>,
    pub(crate) error: Option<Error>,
}

/// What the saver actor hands back to the caller when the job is over.
pub(crate) struct Finished<O, H> {
    pub(crate) sink: Sink<O, H>,
    pub(crate) stats: RunStats,
}

// ---------------------------------------------------------------- task actor

/// One worker: holds one task instance and runs chunks on its own thread.
struct TaskActor<F: TaskFactory> {
    factory: Arc<F>,
    task: Option<Box<F::Task>>,
    at_once: bool,
    /// Set when the job is interrupted: queued chunks are then handed back
    /// unrun, so a stop does not wait for the whole dispatch window.
    stop: Option<StopHandle>,
    /// Halted when the job aborts (a chunk failed for good, a save failed):
    /// queued chunks are then handed back unrun too.
    window: Arc<Window>,
    /// The attempt after which a failure is final.
    max_attempts: u32,
    /// Whether a final failure aborts the job.
    abort_on_failure: bool,
    supervisor: Recipient<ChunkDone<In<F>, Out<F>>>,
    /// Dropped with the actor: lets the caller wait until every task
    /// instance (and any worker process it owns) is gone.
    _alive: mpsc::Sender<()>,
}

impl<F: TaskFactory> Actor for TaskActor<F> {
    type Context = SyncContext<Self>;
}

impl<F: TaskFactory> Handler<RunChunk<In<F>>> for TaskActor<F> {
    type Result = ();
    fn handle(&mut self, msg: RunChunk<In<F>>, _: &mut SyncContext<Self>) {
        let RunChunk { chunk, attempt } = msg;
        let span = tracing::trace_span!("chunk", index = chunk.index, attempt);
        let _g = span.enter();
        let outcome =
            if self.stop.as_ref().is_some_and(StopHandle::is_stopped) || self.window.is_halted() {
                Err(Failure::Cancelled)
            } else {
                run_chunk(&*self.factory, &mut self.task, &chunk.items, self.at_once)
            };
        // A final failure that aborts the job halts the window here, on the
        // task thread, before this thread takes its next chunk: waiting for
        // the supervisor to do it would let queued chunks start meanwhile.
        if matches!(&outcome, Err(f) if !matches!(f, Failure::Cancelled))
            && attempt >= self.max_attempts
            && self.abort_on_failure
        {
            self.window.halt();
        }
        let (index, start) = (chunk.index, chunk.start);
        let outcome = match outcome {
            Ok(results) => Ok(results),
            Err(f) => Err((chunk, f)),
        };
        self.supervisor.do_send(ChunkDone {
            index,
            start,
            attempt,
            outcome,
        });
    }
}

// ---------------------------------------------------------------- supervisor

pub(crate) struct SupervisorConfig<T> {
    pub(crate) stop: Option<StopHandle>,
    pub(crate) progress: crate::progress::Progress,
    pub(crate) workers: usize,
    pub(crate) at_once: bool,
    pub(crate) retry: RetryPolicy,
    pub(crate) failure_policy: FailurePolicy,
    /// A task instance already made (to read its identity for a resume):
    /// the first task actor takes it instead of making one.
    pub(crate) first_task: Option<Box<T>>,
}

/// Owns the pool, retries failed attempts, and tells the reorder actor
/// when each chunk is finished.
pub(crate) struct Supervisor<F: TaskFactory, H: ResultHandler<Out<F>>> {
    factory: Arc<F>,
    cfg: SupervisorConfig<F::Task>,
    pool: Option<Addr<TaskActor<F>>>,
    reorder: Addr<Reorder<Out<F>, H>>,
    window: Arc<Window>,
    alive: Option<mpsc::Sender<()>>,
    /// Chunks dispatched and not yet finished (incl. waiting for a retry).
    outstanding: u64,
    input_end: Option<u64>,
    stats: RunStats,
    reply: Option<ReplyTo<Out<F>, H>>,
    /// Attempts so far, for chunks that failed at least once.
    attempts: HashMap<u64, u32>,
}

impl<F: TaskFactory, H: ResultHandler<Out<F>>> Supervisor<F, H> {
    pub(crate) fn new(
        factory: Arc<F>,
        cfg: SupervisorConfig<F::Task>,
        reorder: Addr<Reorder<Out<F>, H>>,
        window: Arc<Window>,
        alive: mpsc::Sender<()>,
        reply: mpsc::Sender<Finished<Out<F>, H>>,
    ) -> Self {
        Supervisor {
            factory,
            cfg,
            pool: None,
            reorder,
            window,
            alive: Some(alive),
            outstanding: 0,
            input_end: None,
            stats: RunStats::default(),
            reply: Some(Box::new(reply)),
            attempts: HashMap::new(),
        }
    }

    fn run(&self, chunk: Chunk<In<F>>, attempt: u32) {
        if let Some(pool) = &self.pool {
            pool.do_send(RunChunk { chunk, attempt });
        }
    }

    fn finish_one(&mut self, ctx: &mut Context<Self>, released: Option<Released<Out<F>>>) {
        self.outstanding -= 1;
        if let Some(r) = released {
            self.reorder.do_send(Completed(r));
        }
        self.maybe_flush(ctx);
    }

    fn maybe_flush(&mut self, _ctx: &mut Context<Self>) {
        if self.outstanding == 0
            && self.input_end.is_some()
            && let Some(reply) = self.reply.take()
        {
            let stats = std::mem::take(&mut self.stats);
            self.reorder.do_send(Flush {
                stats,
                reply: *reply,
            });
            // Dropping the pool's address ends the task threads once their
            // queues are empty.
            self.pool = None;
        }
    }
}

impl<F: TaskFactory, H: ResultHandler<Out<F>>> Actor for Supervisor<F, H> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.address().recipient();
        let factory = Arc::clone(&self.factory);
        let at_once = self.cfg.at_once;
        let stop = self.cfg.stop.clone();
        let alive = self.alive.take();
        let alive = Mutex::new(alive);
        let first_task = Mutex::new(self.cfg.first_task.take());
        let window = Arc::clone(&self.window);
        let max_attempts = self.cfg.retry.max_attempts();
        let abort_on_failure = self.cfg.failure_policy != FailurePolicy::Skip;
        self.pool = Some(SyncArbiter::start_with_thread_builder(
            self.cfg.workers,
            || std::thread::Builder::new().name("raygent-task".into()),
            move || {
                let alive = alive
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .unwrap_or_else(|| mpsc::channel().0);
                TaskActor {
                    factory: Arc::clone(&factory),
                    task: first_task.lock().unwrap_or_else(|e| e.into_inner()).take(),
                    at_once,
                    stop: stop.clone(),
                    window: Arc::clone(&window),
                    max_attempts,
                    abort_on_failure,
                    supervisor: me.clone(),
                    _alive: alive,
                }
            },
        ));
    }
}

impl<F: TaskFactory, H: ResultHandler<Out<F>>> Handler<Dispatch<In<F>>> for Supervisor<F, H> {
    type Result = ();
    fn handle(&mut self, msg: Dispatch<In<F>>, _: &mut Context<Self>) {
        self.outstanding += 1;
        tracing::trace!(chunk = msg.0.index, "dispatch");
        self.run(msg.0, 1);
    }
}

impl<F: TaskFactory, H: ResultHandler<Out<F>>> Handler<InputEnd> for Supervisor<F, H> {
    type Result = ();
    fn handle(&mut self, msg: InputEnd, ctx: &mut Context<Self>) {
        self.input_end = Some(msg.end);
        self.maybe_flush(ctx);
    }
}

impl<F: TaskFactory, H: ResultHandler<Out<F>>> Handler<ChunkDone<In<F>, Out<F>>>
    for Supervisor<F, H>
{
    type Result = ();
    fn handle(&mut self, msg: ChunkDone<In<F>, Out<F>>, ctx: &mut Context<Self>) {
        let ChunkDone {
            index,
            start,
            attempt,
            outcome,
        } = msg;
        match outcome {
            Ok(results) => {
                self.attempts.remove(&index);
                self.finish_one(
                    ctx,
                    Some(Released::Done {
                        index,
                        start,
                        results,
                    }),
                );
            }
            Err((_, Failure::Cancelled)) => {
                self.attempts.remove(&index);
                self.finish_one(ctx, None);
            }
            Err((chunk, failure)) => {
                self.stats
                    .failures
                    .entry(failure.class().to_owned())
                    .and_modify(|n| *n += 1)
                    .or_insert(1);
                let last_attempt = attempt >= self.cfg.retry.max_attempts();
                if !last_attempt && self.window.is_halted() {
                    // The job is stopping because of another failure: do not retry.
                    self.finish_one(ctx, None);
                    return;
                }
                if !last_attempt {
                    self.stats.retries += 1;
                    self.cfg.progress.add_retry();
                    self.attempts.insert(index, attempt);
                    let delay = self.cfg.retry.backoff(attempt);
                    tracing::warn!(chunk = index, attempt, ?delay, error = %failure, "chunk failed; retrying");
                    ctx.run_later(delay, move |act, ctx| {
                        if act.window.is_halted() {
                            act.finish_one(ctx, None);
                        } else {
                            act.run(chunk, attempt + 1);
                        }
                    });
                    return;
                }
                self.attempts.remove(&index);
                let failed = FailedChunk {
                    index,
                    items: chunk.range(),
                    attempts: attempt,
                    error: failure.to_string(),
                };
                tracing::error!(chunk = index, attempts = attempt, error = %failure, "chunk failed permanently");
                match self.cfg.failure_policy {
                    FailurePolicy::Skip => self.finish_one(ctx, Some(Released::Failed(failed))),
                    _ => {
                        if self.stats.error.is_none() {
                            self.stats.error = Some(Error::ChunkFailed {
                                index,
                                items: failed.items,
                                attempts: failed.attempts,
                                last_error: failed.error,
                            });
                        }
                        self.window.halt();
                        self.finish_one(ctx, None);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- reorder

/// Releases finished chunks strictly in input order.
pub(crate) struct Reorder<O: Send + 'static, H: ResultHandler<O>> {
    next: u64,
    // Boxed so the actor is `Unpin` whatever `O` is (actix requires it).
    #[allow(clippy::box_collection)]
    pending: Box<BTreeMap<u64, Released<O>>>,
    saver: Addr<SaverActor<O, H>>,
}

impl<O: Send + 'static, H: ResultHandler<O>> Reorder<O, H> {
    pub(crate) fn new(first_chunk: u64, saver: Addr<SaverActor<O, H>>) -> Self {
        Reorder {
            next: first_chunk,
            pending: Box::default(),
            saver,
        }
    }
}

impl<O: Send + 'static, H: ResultHandler<O>> Actor for Reorder<O, H> {
    type Context = Context<Self>;
}

impl<O: Send + 'static, H: ResultHandler<O>> Handler<Completed<O>> for Reorder<O, H> {
    type Result = ();
    fn handle(&mut self, msg: Completed<O>, _: &mut Context<Self>) {
        let r = msg.0;
        if r.index() == self.next {
            self.saver.do_send(Deliver(r));
            self.next += 1;
            while let Some(r) = self.pending.remove(&self.next) {
                self.saver.do_send(Deliver(r));
                self.next += 1;
            }
        } else {
            self.pending.insert(r.index(), r);
        }
    }
}

impl<O: Send + 'static, H: ResultHandler<O>> Handler<Flush<O, H>> for Reorder<O, H> {
    type Result = ();
    fn handle(&mut self, msg: Flush<O, H>, _: &mut Context<Self>) {
        // Whatever is still pending sits behind a chunk that never finished
        // (the job is aborting): it is not committed.
        if !self.pending.is_empty() {
            tracing::debug!(
                dropped = self.pending.len(),
                "dropping chunks behind a failed one"
            );
            self.pending.clear();
        }
        self.saver.do_send(msg);
    }
}

// ---------------------------------------------------------------- saver actor

/// Saves and hands results to the result handler, off the task threads.
pub(crate) struct SaverActor<O: Send + 'static, H: ResultHandler<O>> {
    sink: Option<Box<Sink<O, H>>>,
    window: Arc<Window>,
}

impl<O: Send + 'static, H: ResultHandler<O>> Actor for SaverActor<O, H> {
    type Context = SyncContext<Self>;
}

impl<O: Send + 'static, H: ResultHandler<O>> Handler<Deliver<O>> for SaverActor<O, H> {
    type Result = ();
    fn handle(&mut self, msg: Deliver<O>, _: &mut SyncContext<Self>) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        let next = msg.0.index() + 1;
        sink.consume(msg.0);
        if sink.error.is_some() {
            self.window.halt();
        }
        self.window.release(next);
    }
}

impl<O: Send + 'static, H: ResultHandler<O>> Handler<Flush<O, H>> for SaverActor<O, H> {
    type Result = ();
    fn handle(&mut self, msg: Flush<O, H>, _: &mut SyncContext<Self>) {
        if let Some(mut sink) = self.sink.take() {
            sink.finish();
            let _ = msg.reply.send(Finished {
                sink: *sink,
                stats: msg.stats,
            });
        }
    }
}

/// Builds the report's counters from the run.
pub(crate) fn fill_report<O, H>(report: &mut JobReport, f: &Finished<O, H>) {
    report.retries = f.stats.retries;
    report.failures = f.stats.failures.clone();
    report.results = f.sink.results;
    report.saves = f.sink.saves;
    report.failed_chunks = f.sink.failed.clone();
}

impl<O: Send + 'static, H: ResultHandler<O>> SaverActor<O, H> {
    /// The actor made by the SyncArbiter factory (which is `Fn`, so the
    /// sink comes out of a cell; it is `None` if actix ever restarted it).
    pub(crate) fn from_parts(sink: Option<Sink<O, H>>, window: Arc<Window>) -> Self {
        SaverActor {
            sink: sink.map(Box::new),
            window,
        }
    }
}
