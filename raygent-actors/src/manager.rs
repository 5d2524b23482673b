//! `TaskManager`: the entry point of a job. It sets the job up (resuming
//! from a checkpoint if asked), runs it on the pool or in the caller's
//! thread, and assembles the report.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use actix::prelude::*;
use raygent_core::{Chunks, Collect, Error, JobReport, ResultHandler, StopHandle, TaskFactory};

use crate::feed::{Fed, Feeder};
use crate::flow::Finished;
use crate::options::SubmitOptions;
use crate::pool::RunQueue;
use crate::resume::Resumer;
use crate::saver::{SaverActor, SaverMsg};
use crate::sink::{CheckpointLink, Sink};
use crate::state::StartPoint;
use crate::supervisor::{PoolConfig, Shutdown, Supervisor};
use crate::task::{AttemptStats, In, Out, Rules, Step, TaskActor};
use crate::window::Window;

/// Runs a task over many items on a bounded pool of workers.
///
/// ```
/// use raygent_actors::{SubmitOptions, TaskManager};
/// use raygent_core::task_fn;
///
/// let mut manager = TaskManager::new(|| task_fn("square", |x: &u64| Ok(x * x)));
/// let report = manager
///     .submit_tasks(0..1000u64, SubmitOptions::new().with_chunk_size(7))
///     .unwrap();
/// assert_eq!(report.items, 1000);
/// assert_eq!(manager.get_results()[999], 999 * 999);
/// ```
pub struct TaskManager<F: TaskFactory, H = Collect<Out<F>>> {
    factory: Arc<F>,
    handler: Option<H>,
    n_cores: i64,
    n_cores_worker: usize,
    sequential: bool,
}

impl<F: TaskFactory> TaskManager<F, Collect<Out<F>>> {
    /// A manager whose results are collected in input order
    /// ([`get_results`](TaskManager::get_results)).
    pub fn new(factory: F) -> Self {
        TaskManager::with_handler(factory, Collect::new())
    }

    /// The results collected so far, in input order.
    pub fn get_results(&self) -> &[Out<F>] {
        self.handler.as_ref().map(Collect::results).unwrap_or(&[])
    }

    /// Takes the collected results out of the manager.
    pub fn take_results(&mut self) -> Vec<Out<F>> {
        self.handler.as_mut().map(Collect::take).unwrap_or_default()
    }
}

/// `max(1, n_cores / n_cores_worker)`, with `n_cores <= 0` meaning every
/// core of the machine and `n_cores_worker` 0 counting as 1.
///
/// ```
/// use raygent_actors::max_concurrent_tasks;
/// assert_eq!(max_concurrent_tasks(8, 2), 4);
/// assert_eq!(max_concurrent_tasks(2, 4), 1);
/// assert!(max_concurrent_tasks(-1, 1) >= 1);
/// ```
pub fn max_concurrent_tasks(n_cores: i64, n_cores_worker: usize) -> usize {
    let cores = if n_cores <= 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        usize::try_from(n_cores).unwrap_or(usize::MAX)
    };
    (cores / n_cores_worker.max(1)).max(1)
}

impl<F: TaskFactory, H: ResultHandler<Out<F>>> TaskManager<F, H> {
    /// A manager that hands results, in input order, to `handler`.
    pub fn with_handler(factory: F, handler: H) -> Self {
        TaskManager {
            factory: Arc::new(factory),
            handler: Some(handler),
            n_cores: -1,
            n_cores_worker: 1,
            sequential: false,
        }
    }

    /// Total cores to use; `<= 0` (the default) means all of them.
    pub fn with_n_cores(mut self, n: i64) -> Self {
        self.n_cores = n;
        self
    }

    /// Cores each task instance uses (default 1).
    pub fn with_n_cores_worker(mut self, n: usize) -> Self {
        self.n_cores_worker = n;
        self
    }

    /// Runs everything in the caller's thread, one chunk after another (for
    /// debugging; the seed's `use_ray=False`).
    pub fn with_sequential(mut self, sequential: bool) -> Self {
        self.sequential = sequential;
        self
    }

    /// How many task instances run at once: `max(1, n_cores / n_cores_worker)`.
    pub fn max_concurrent_tasks(&self) -> usize {
        max_concurrent_tasks(self.n_cores, self.n_cores_worker)
    }

    /// The cores each worker uses.
    pub fn n_cores_worker(&self) -> usize {
        self.n_cores_worker.max(1)
    }

    /// The result handler.
    pub fn result_handler(&self) -> Option<&H> {
        self.handler.as_ref()
    }

    /// Takes the result handler out (e.g. a [`Fold`](raygent_core::Fold)'s value).
    pub fn into_result_handler(self) -> Option<H> {
        self.handler
    }

    /// Runs the task over `items` and waits for the end of the job.
    ///
    /// Results reach the result handler (and the saver, if any) in input
    /// order. Returns the job's report, or the error that stopped it: a chunk
    /// that failed on every attempt under [`FailurePolicy::Abort`](raygent_core::FailurePolicy::Abort),
    /// a save error, or an interruption. Everything completed before the
    /// error was handed on and saved.
    pub fn submit_tasks<I>(
        &mut self,
        items: I,
        options: SubmitOptions<Out<F>>,
    ) -> Result<JobReport, Error>
    where
        I: IntoIterator<Item = In<F>>,
    {
        self.try_submit_tasks(
            items.into_iter().map(Ok::<_, std::convert::Infallible>),
            options,
        )
    }

    /// Like [`submit_tasks`](TaskManager::submit_tasks) over a fallible
    /// input: the first `Err` item stops dispatching; every chunk before it
    /// is completed and saved, and [`Error::Input`] names the bad item.
    pub fn try_submit_tasks<I, E>(
        &mut self,
        items: I,
        mut options: SubmitOptions<Out<F>>,
    ) -> Result<JobReport, Error>
    where
        I: IntoIterator<Item = Result<In<F>, E>>,
        E: Into<raygent_core::BoxError>,
    {
        let started = Instant::now();
        let shard = match options.shard {
            Some((index, count)) => Some(crate::Shard::new(index, count)?),
            None => None,
        };
        if let Some(shard) = shard
            && let Some(cfg) = options.resume.take()
        {
            let identity = match cfg.identity() {
                "" => shard.to_string(),
                id => format!("{id}; {shard}"),
            };
            options.resume = Some(cfg.with_identity(identity));
        }
        let items = crate::shard::select(items.into_iter(), shard)?;
        if options.chunk_size == 0 {
            return Err(Error::InvalidConfig("chunk size must be at least 1".into()));
        }
        if options.save_interval == 0 {
            return Err(Error::InvalidConfig(
                "save interval must be at least 1".into(),
            ));
        }
        if self.handler.is_none() {
            return Err(lost_handler());
        }
        let workers = self.max_concurrent_tasks();
        let span = tracing::info_span!(
            "job",
            workers,
            chunk_size = options.chunk_size,
            sequential = self.sequential
        );
        let _g = span.enter();

        // Resume: find where an earlier run stopped, check it is the same
        // job, and prepare the saver. The task instance made to learn the
        // task's name and version becomes the first worker's, so a resume
        // calls the factory no more often than a plain run does.
        let mut first_task = None;
        let mut resumer = match options.resume.take() {
            Some(cfg) => {
                let probe = make_task(&*self.factory)?;
                let r = Resumer::open(cfg, &probe, &mut options)?;
                first_task = Some(Box::new(probe));
                Some(r)
            }
            None => None,
        };
        let mut report = JobReport::default();
        let mut chunks = Chunks::try_new(items, options.chunk_size)?;
        // Skip (and fingerprint) what an earlier run committed.
        if let Some(r) = resumer.as_mut() {
            r.skip_committed(&mut chunks)?;
            report.resumed_chunks = r.start().next_chunk;
        }
        let (start, fingerprint, link, checkpoints) = match resumer.map(Resumer::into_parts) {
            Some(c) => (
                c.start,
                Some(c.fingerprint),
                Some(CheckpointLink {
                    commits: c.commits,
                    gate: c.gate,
                }),
                Some(c.actor),
            ),
            None => (StartPoint::default(), None, None, None),
        };

        // Everything that can refuse the job has run: only now does the
        // result handler leave the manager (it comes back with the sink),
        // so a refused job leaves the manager and its results as they were.
        let Some(handler) = self.handler.take() else {
            return Err(lost_handler());
        };
        let sink = Sink::new(
            handler,
            options.saver.take(),
            options.save_interval,
            link,
            &start,
            options.progress.clone().unwrap_or_default(),
        );
        let feeder = Feeder::new(chunks, options.stop.clone(), fingerprint);
        let ran = if self.sequential {
            self.run_sequential(feeder, sink, &options, first_task)
        } else {
            self.run_actors(feeder, sink, &options, workers, first_task)
        };
        let Ran {
            sink,
            mut fed,
            stats,
            abort,
            broken,
        } = ran;
        // Chunks cancelled by a stop after the whole input was fed: the job
        // did not complete even though the feeder saw no interruption.
        if sink
            .as_ref()
            .is_some_and(|s| s.next_chunk() < fed.end_chunk)
            && options.stop.as_ref().is_some_and(StopHandle::is_stopped)
        {
            fed.interrupted = true;
        }
        let clean = broken.is_none()
            && sink.as_ref().is_some_and(|s| s.error.is_none())
            && abort.is_none()
            && fed.input_error.is_none()
            && !fed.interrupted;
        let ended = checkpoints.map(|c| c.finish(clean));
        let ended_step0_failed = ended.as_ref().is_some_and(|e| e.step0_failed);
        report.retries = stats.retries;
        report.failures = stats.failures;
        report.items = fed.items;
        report.chunks = fed.chunks;
        let save_error = match sink {
            Some(sink) => {
                report.results = sink.results;
                report.saves = sink.saves;
                report.failed_chunks = sink.failed;
                self.handler = Some(sink.handler);
                sink.error
            }
            None => None,
        };
        report.wall_time = started.elapsed();
        tracing::info!(items = report.items, chunks = report.chunks, retries = report.retries, failed = report.failed_chunks.len(), wall = ?report.wall_time, "job finished");
        let (ckpt_result, committed_chunks) = match ended {
            Some(e) => (e.result, e.committed_chunks.unwrap_or(start.next_chunk)),
            None => (Ok(()), fed.chunks),
        };
        // Step 0 could not be written (the saver then refused to write):
        // that is the cause, whatever else failed.
        let ckpt_result = match ckpt_result {
            Err(e) if ended_step0_failed => return Err(e),
            other => other,
        };
        if let Some(e) = [broken, save_error, abort, fed.input_error]
            .into_iter()
            .flatten()
            .next()
        {
            return Err(e);
        }
        ckpt_result?;
        if fed.interrupted {
            return Err(Error::Interrupted { committed_chunks });
        }
        Ok(report)
    }

    /// Runs the job in the caller's thread, one chunk after another.
    fn run_sequential<C, E>(
        &mut self,
        mut feeder: Feeder<C>,
        mut sink: Sink<Out<F>, H>,
        options: &SubmitOptions<Out<F>>,
        first_task: Option<Box<F::Task>>,
    ) -> Ran<Out<F>, H>
    where
        C: Iterator<Item = Result<In<F>, E>>,
        E: Into<raygent_core::BoxError>,
    {
        // Never waited on here: only its halt switch serves (an abort).
        let window = Arc::new(Window::new(u64::MAX, 0));
        let mut actor = TaskActor::new(
            Arc::clone(&self.factory),
            first_task,
            options.at_once,
            rules(options),
            options.stop.clone(),
            window,
            options.progress.clone().unwrap_or_default(),
        );
        let mut abort = None;
        while let Some(chunk) = feeder.next_chunk() {
            let Some(mut run) = feeder.admit(chunk) else {
                break;
            };
            let finished = loop {
                match actor.attempt(run) {
                    Step::Finished(f) => break f,
                    Step::RetryLater { run: again, delay } => {
                        sleep_unless_stopped(delay, options.stop.as_ref());
                        run = again;
                    }
                }
            };
            match finished {
                Finished::Ready(r) => sink.consume(r),
                Finished::Dropped { .. } => break,
                Finished::Aborted { error, .. } => {
                    abort = Some(error);
                    break;
                }
            }
            if sink.error.is_some() {
                break;
            }
        }
        sink.finish();
        Ran {
            sink: Some(sink),
            fed: feeder.fed,
            stats: std::mem::take(&mut actor.stats),
            abort,
            broken: None,
        }
    }

    /// Runs the job on the pool: the supervisor and its task actors, the
    /// saver actor, and the feeder on the caller's thread.
    fn run_actors<C, E>(
        &mut self,
        mut feeder: Feeder<C>,
        sink: Sink<Out<F>, H>,
        options: &SubmitOptions<Out<F>>,
        workers: usize,
        first_task: Option<Box<F::Task>>,
    ) -> Ran<Out<F>, H>
    where
        C: Iterator<Item = Result<In<F>, E>>,
        E: Into<raygent_core::BoxError>,
    {
        let first_chunk = feeder.next_index();
        let window_size = options.window.unwrap_or((8 * workers).max(64));
        let window = Arc::new(Window::new(window_size as u64, first_chunk));
        let queue = Arc::new(RunQueue::new(workers));
        let (finished_tx, finished_rx) = mpsc::channel();
        let (alive_tx, alive_rx) = mpsc::channel::<()>();
        let cfg = PoolConfig {
            factory: Arc::clone(&self.factory),
            workers,
            at_once: options.at_once,
            rules: rules(options),
            stop: options.stop.clone(),
            progress: options.progress.clone().unwrap_or_default(),
            first_task,
            queue: Arc::clone(&queue),
            window: Arc::clone(&window),
            finished: finished_tx.clone(),
            alive: alive_tx,
        };
        let not_started = |sink, e| Ran {
            sink: Some(sink),
            fed: Fed::default(),
            stats: AttemptStats::default(),
            abort: None,
            broken: Some(e),
        };
        // actix wants its own System; it lives on a dedicated thread so the
        // caller may itself be inside any runtime.
        let (addr_tx, addr_rx) = mpsc::channel();
        let system_thread = std::thread::Builder::new()
            .name("raygent-system".into())
            .spawn(move || {
                let system = System::new();
                system.block_on(async move {
                    let started = Supervisor::start(cfg).map(|addr| (addr, System::current()));
                    let _ = addr_tx.send(started);
                });
                system.run()
            });
        let system_thread = match system_thread {
            Ok(t) => t,
            Err(e) => {
                let e = Error::Spawn {
                    thread: "actor system",
                    source: e,
                };
                return not_started(sink, e);
            }
        };
        let (supervisor, system) = match addr_rx.recv() {
            Ok(Ok(started)) => started,
            Ok(Err(e)) => {
                let _ = system_thread.join();
                return not_started(sink, e);
            }
            Err(_) => {
                let _ = system_thread.join();
                let e = Error::Runtime("the actor system failed to start".into());
                return not_started(sink, e);
            }
        };
        let pool = Pool {
            supervisor,
            system,
            system_thread,
            queue: Arc::clone(&queue),
            alive: alive_rx,
        };
        let saver =
            match SaverActor::new(finished_rx, sink, Arc::clone(&window), first_chunk).spawn() {
                Ok(thread) => thread,
                Err((e, actor)) => {
                    let _ = pool.shut_down();
                    return not_started(actor.into_sink(), e);
                }
            };

        // Feed chunks from the caller's thread: the input iterator may block
        // on I/O and need not be Send.
        let stop = options.stop.as_ref();
        while let Some(chunk) = feeder.next_chunk() {
            if !window.acquire(chunk.index, stop) {
                feeder.fed.interrupted = !window.is_halted();
                break;
            }
            let Some(run) = feeder.admit(chunk) else {
                window.halt();
                break;
            };
            queue.push(run);
        }
        let _ = finished_tx.send(SaverMsg::InputEnd {
            end: feeder.fed.end_chunk,
        });
        drop(finished_tx);
        let saved = saver.join();
        let stats = pool.shut_down();
        let (sink, abort, broken) = match saved {
            Ok(Ok(r)) => (Some(r.sink), r.abort, None),
            Ok(Err(panic)) => (
                None,
                None,
                Some(Error::Runtime(format!(
                    "the saver thread panicked: {panic}"
                ))),
            ),
            Err(_) => (
                None,
                None,
                Some(Error::Runtime("the saver thread panicked".into())),
            ),
        };
        let (stats, broken) = match stats {
            Ok(stats) => (stats, broken),
            Err(e) => (AttemptStats::default(), broken.or(Some(e))),
        };
        Ran {
            sink,
            fed: feeder.fed,
            stats,
            abort,
            broken,
        }
    }
}

/// The running pool, as the job holds it.
struct Pool<F: TaskFactory> {
    supervisor: Addr<Supervisor<F>>,
    system: System,
    system_thread: std::thread::JoinHandle<std::io::Result<()>>,
    queue: Arc<RunQueue<crate::flow::Run<In<F>>>>,
    alive: mpsc::Receiver<()>,
}

impl<F: TaskFactory> Pool<F> {
    /// Ends the task actors and the actor system; the task actors'
    /// counters.
    fn shut_down(self) -> Result<AttemptStats, Error> {
        let (reply, stats) = mpsc::channel();
        self.supervisor.do_send(Shutdown { reply });
        let stats = stats.recv();
        // Closed by the supervisor already, unless the system died.
        self.queue.close();
        self.system.stop();
        let joined = self.system_thread.join();
        // Wait until every task instance (and any worker process it owns)
        // is dropped: the channel disconnects when the last one goes.
        let _ = self.alive.recv_timeout(Duration::from_secs(60));
        stats.map_err(|_| {
            Error::Runtime(match joined {
                Err(_) => "the actor system thread panicked".into(),
                Ok(_) => "the actor system stopped before the job finished".into(),
            })
        })
    }
}

/// How a job's run ended, in either mode.
struct Ran<O, H> {
    /// The sink, unless the saver thread panicked with it.
    sink: Option<Sink<O, H>>,
    fed: Fed,
    stats: AttemptStats,
    /// The error of the chunk that aborted the job.
    abort: Option<Error>,
    /// The runtime itself failed (a thread could not start, or panicked).
    broken: Option<Error>,
}

fn rules<O>(options: &SubmitOptions<O>) -> Rules {
    Rules {
        retry: options.retry.clone(),
        failure_policy: options.failure_policy,
    }
}

/// Sleeps out a retry's backoff in sequential mode, cut short by a stop
/// (the retry then finds the job stopping and drops the chunk).
fn sleep_unless_stopped(delay: Duration, stop: Option<&StopHandle>) {
    let until = Instant::now() + delay;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stop.is_some_and(StopHandle::is_stopped) {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

fn lost_handler() -> Error {
    Error::Runtime("result handler lost by an earlier failed job".into())
}

/// Makes a task instance on the caller's thread, a panic in the factory
/// becoming an error.
fn make_task<F: TaskFactory>(factory: &F) -> Result<F::Task, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| factory.make())).map_err(|_| {
        Error::Runtime("the task factory panicked while making the first task instance".into())
    })
}
