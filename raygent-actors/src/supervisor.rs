//! The supervisor: an actix actor that owns the pool of task actors.
//!
//! It starts `max_concurrent_tasks` task actors, each on a thread of its
//! own with one task instance, and waits out the backoff of failed
//! attempts with actix timers (no thread blocks for it) before queueing
//! the chunk again, ahead of the others. Chunks themselves never pass
//! through it: task actors take them from the run queue and report them to
//! the saver actor. At the end it closes the queue and gathers the task
//! actors' counters.

use std::collections::HashMap;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use actix::prelude::*;
use raygent_core::{Error, StopHandle, TaskFactory};

use crate::flow::{Finished, Run};
use crate::pool::{Outbox, RunQueue, STALE, Worker, spawn};
use crate::progress::Progress;
use crate::saver::SaverMsg;
use crate::task::{AttemptStats, In, Out, Rules, TaskActor};
use crate::window::Window;

/// A task actor → supervisor: an attempt failed and the chunk has attempts
/// left; queue it again (as `run.attempt`) after `delay`.
pub(crate) struct RetryLater<I> {
    pub(crate) run: Run<I>,
    pub(crate) delay: Duration,
}
impl<I: Send + 'static> Message for RetryLater<I> {
    type Result = ();
}

/// A task actor → supervisor: it has ended, with its counters.
pub(crate) struct Retired {
    pub(crate) stats: AttemptStats,
}
impl Message for Retired {
    type Result = ();
}

/// Job → supervisor: every chunk has finished; end the task actors and
/// reply with their counters.
pub(crate) struct Shutdown {
    pub(crate) reply: mpsc::Sender<AttemptStats>,
}
impl Message for Shutdown {
    type Result = ();
}

/// What the pool is made of.
pub(crate) struct PoolConfig<F: TaskFactory> {
    pub(crate) factory: Arc<F>,
    pub(crate) workers: usize,
    pub(crate) at_once: bool,
    pub(crate) rules: Rules,
    pub(crate) stop: Option<StopHandle>,
    pub(crate) progress: Progress,
    /// A task instance already made (to read its identity for a resume):
    /// the first task actor takes it instead of making one.
    pub(crate) first_task: Option<Box<F::Task>>,
    /// Whether the task actors hash each chunk for the input fingerprint.
    pub(crate) fingerprint: bool,
    pub(crate) queue: Arc<RunQueue<Run<In<F>>>>,
    pub(crate) window: Arc<Window>,
    /// The saver actor's mailbox.
    pub(crate) finished: mpsc::Sender<SaverMsg<Out<F>>>,
    /// Held by every task actor until its task instance is gone.
    pub(crate) alive: mpsc::Sender<()>,
}

pub(crate) struct Supervisor<F: TaskFactory> {
    queue: Arc<RunQueue<Run<In<F>>>>,
    window: Arc<Window>,
    stop: Option<StopHandle>,
    finished: mpsc::Sender<SaverMsg<Out<F>>>,
    /// Task actors started, and ended so far.
    started: usize,
    retired: usize,
    stats: AttemptStats,
    shutdown: Option<mpsc::Sender<AttemptStats>>,
    /// The task actors' outboxes, reported when they hold chunks too long.
    outboxes: Vec<Arc<Outbox<Out<F>>>>,
    /// Chunks waiting out the backoff before their retry, and their timers
    /// (boxed: an actor must be `Unpin` whatever the items are).
    #[allow(clippy::box_collection)]
    waiting: Box<Waiting<In<F>>>,
    /// The timer that drops them if the job stops meanwhile.
    watch: Option<SpawnHandle>,
}

/// Chunks waiting for their retry, by index, with their timers.
type Waiting<I> = HashMap<u64, (Run<I>, SpawnHandle)>;

/// How often the supervisor looks for chunks left in the queue while a task
/// actor waits (see [`RunQueue::nudge`]), and for finished chunks an actor
/// has held too long (see [`Outbox`]).
const NUDGE: Duration = Duration::from_millis(10);

/// How often the supervisor checks for a stop while chunks wait for a retry.
const STOP_POLL: Duration = Duration::from_millis(50);

impl<F: TaskFactory> Supervisor<F> {
    /// Starts the supervisor and its task actors on the current actix
    /// System. Fails if not one task actor could start; with fewer than
    /// asked for, the job runs on those.
    pub(crate) fn start(cfg: PoolConfig<F>) -> Result<Addr<Self>, Error> {
        let mut failed = None;
        let mut started = 0;
        let addr = Supervisor::create(|ctx| {
            let me = ctx.address();
            let mut first_task = cfg.first_task;
            let mut outboxes = Vec::new();
            for _ in 0..cfg.workers.max(1) {
                let actor = TaskActor::new(
                    Arc::clone(&cfg.factory),
                    first_task.take(),
                    cfg.at_once,
                    cfg.rules.clone(),
                    cfg.stop.clone(),
                    Arc::clone(&cfg.window),
                    cfg.progress.clone(),
                )
                .hashing_chunks(cfg.fingerprint);
                let outbox = Arc::new(Outbox::new(cfg.finished.clone()));
                outboxes.push(Arc::clone(&outbox));
                let worker = Worker {
                    actor,
                    queue: Arc::clone(&cfg.queue),
                    outbox,
                    retry: me.clone().recipient(),
                };
                match spawn(worker, me.clone().recipient(), cfg.alive.clone()) {
                    Ok(()) => started += 1,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            Supervisor {
                queue: cfg.queue,
                window: cfg.window,
                stop: cfg.stop,
                finished: cfg.finished,
                started,
                retired: 0,
                stats: AttemptStats::default(),
                shutdown: None,
                outboxes,
                waiting: Box::default(),
                watch: None,
            }
        });
        match failed {
            Some(e) if started == 0 => {
                addr.do_send(Shutdown {
                    reply: mpsc::channel().0,
                });
                Err(Error::Spawn {
                    thread: "task",
                    source: e,
                })
            }
            Some(e) => {
                tracing::warn!(started, error = %e, "fewer task threads than asked for");
                Ok(addr)
            }
            None => Ok(addr),
        }
    }

    fn maybe_reply(&mut self) {
        if self.retired >= self.started
            && let Some(reply) = self.shutdown.take()
        {
            let _ = reply.send(std::mem::take(&mut self.stats));
        }
    }
}

impl<F: TaskFactory> Actor for Supervisor<F> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(NUDGE, |act, _| {
            act.queue.nudge();
            for outbox in &act.outboxes {
                outbox.report_if(usize::MAX, STALE);
            }
        });
    }
}

impl<F: TaskFactory> Supervisor<F> {
    fn job_stopping(&self) -> bool {
        self.window.is_halted() || self.stop.as_ref().is_some_and(StopHandle::is_stopped)
    }

    /// The backoff of chunk `index` is over: queue it again, ahead of the
    /// others, unless the job is stopping.
    fn retry_now(&mut self, index: u64) {
        let Some((run, _)) = self.waiting.remove(&index) else {
            return;
        };
        if self.job_stopping() {
            self.drop_runs(vec![run]);
        } else {
            self.queue.push_front(std::iter::once(run));
        }
    }

    /// While chunks wait for their retry, checks now and then whether the
    /// job is stopping: they are then dropped at once, rather than when
    /// their backoff ends.
    fn watch(&mut self, ctx: &mut Context<Self>) {
        if self.watch.is_some() {
            return;
        }
        self.watch = Some(ctx.run_interval(STOP_POLL, |act, ctx| {
            if act.job_stopping() {
                let waiting = std::mem::take(&mut *act.waiting);
                let runs = waiting
                    .into_values()
                    .map(|(run, timer)| {
                        ctx.cancel_future(timer);
                        run
                    })
                    .collect();
                act.drop_runs(runs);
            }
            if act.waiting.is_empty()
                && let Some(watch) = act.watch.take()
            {
                ctx.cancel_future(watch);
            }
        }));
    }

    fn drop_runs(&self, runs: Vec<Run<In<F>>>) {
        let dropped = runs
            .into_iter()
            .map(|run| Finished::Dropped {
                index: run.chunk.index,
            })
            .collect();
        let _ = self.finished.send(SaverMsg::Finished(dropped));
    }
}

impl<F: TaskFactory> Handler<RetryLater<In<F>>> for Supervisor<F> {
    type Result = ();
    fn handle(&mut self, msg: RetryLater<In<F>>, ctx: &mut Context<Self>) {
        let RetryLater { run, delay } = msg;
        let index = run.chunk.index;
        let timer = ctx.run_later(delay, move |act, _| act.retry_now(index));
        self.waiting.insert(index, (run, timer));
        self.watch(ctx);
    }
}

impl<F: TaskFactory> Handler<Retired> for Supervisor<F> {
    type Result = ();
    fn handle(&mut self, msg: Retired, _: &mut Context<Self>) {
        self.retired += 1;
        self.stats.merge(msg.stats);
        self.maybe_reply();
    }
}

impl<F: TaskFactory> Handler<Shutdown> for Supervisor<F> {
    type Result = ();
    fn handle(&mut self, msg: Shutdown, _: &mut Context<Self>) {
        self.queue.close();
        self.shutdown = Some(msg.reply);
        self.maybe_reply();
    }
}
