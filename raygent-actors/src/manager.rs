//! `TaskManager`: the entry point of a job.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use actix::prelude::*;
use raygent_core::{
    Chunks, Collect, Error, FailurePolicy, JobReport, ResultHandler, RetryPolicy, Saver,
    StopHandle, Task, TaskFactory,
};

use crate::actors::{
    Dispatch, Finished, InputEnd, Reorder, RunStats, SaverActor, Supervisor, SupervisorConfig,
    fill_report,
};
use crate::exec::run_chunk;
use crate::progress::Progress;
use crate::sink::{CommitObserver, Released, Sink};
use crate::window::Window;

type In<F> = <<F as TaskFactory>::Task as Task>::Input;
type Out<F> = <<F as TaskFactory>::Task as Task>::Output;

/// The default number of items per chunk.
pub const DEFAULT_CHUNK_SIZE: usize = 100;
/// The default number of results per save.
pub const DEFAULT_SAVE_INTERVAL: usize = 100;

/// Options of one [`TaskManager::submit_tasks`] call.
///
/// ```
/// use raygent_actors::SubmitOptions;
/// use raygent_core::{FailurePolicy, RetryPolicy};
/// let opts: SubmitOptions<u64> = SubmitOptions::new()
///     .with_chunk_size(10)
///     .with_retry(RetryPolicy::new(5))
///     .with_failure_policy(FailurePolicy::Skip);
/// assert_eq!(opts.chunk_size(), 10);
/// ```
pub struct SubmitOptions<O> {
    chunk_size: usize,
    at_once: bool,
    saver: Option<Box<dyn Saver<O>>>,
    save_interval: usize,
    retry: RetryPolicy,
    failure_policy: FailurePolicy,
    window: Option<usize>,
    stop: Option<StopHandle>,
    progress: Option<Progress>,
    pub(crate) resume: Option<crate::resume::ResumeConfig>,
    shard: Option<(u32, u32)>,
}

impl<O> Default for SubmitOptions<O> {
    fn default() -> Self {
        SubmitOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            at_once: false,
            saver: None,
            save_interval: DEFAULT_SAVE_INTERVAL,
            retry: RetryPolicy::default(),
            failure_policy: FailurePolicy::default(),
            window: None,
            stop: None,
            progress: None,
            resume: None,
            shard: None,
        }
    }
}

impl<O: Send + 'static> SubmitOptions<O> {
    /// Defaults: chunks of 100, per-item processing, no saver, saves every
    /// 100 results, 3 retries, abort on a permanently failing chunk.
    pub fn new() -> Self {
        Self::default()
    }
    /// Items per chunk (at least 1).
    pub fn with_chunk_size(mut self, n: usize) -> Self {
        self.chunk_size = n;
        self
    }
    /// Calls [`Task::process_items`] on whole chunks instead of
    /// [`Task::process_item`] on each item.
    pub fn with_at_once(mut self, at_once: bool) -> Self {
        self.at_once = at_once;
        self
    }
    /// Saves results with `saver`.
    pub fn with_saver(mut self, saver: impl Saver<O>) -> Self {
        self.saver = Some(Box::new(saver));
        self
    }
    /// Saves results with a boxed saver.
    pub fn with_boxed_saver(mut self, saver: Box<dyn Saver<O>>) -> Self {
        self.saver = Some(saver);
        self
    }
    /// Results per save (batches are cut at chunk boundaries, so a batch
    /// holds at least this many results, except the last).
    pub fn with_save_interval(mut self, n: usize) -> Self {
        self.save_interval = n;
        self
    }
    /// How failed chunks are retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// What happens to a chunk that fails on every attempt.
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }
    /// How many chunks may be in flight (dispatched but not yet consumed by
    /// the saver stage) at once; bounds memory when one chunk is slow.
    /// Defaults to `max(64, 8 × workers)`.
    pub fn with_window(mut self, chunks: usize) -> Self {
        self.window = Some(chunks);
        self
    }
    /// A handle that stops the job: it stops dispatching, commits what is
    /// complete and returns [`Error::Interrupted`].
    pub fn with_stop_handle(mut self, stop: StopHandle) -> Self {
        self.stop = Some(stop);
        self
    }
    /// Live counters the job updates (for a progress bar).
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }
    /// Checkpoints progress and resumes an earlier run of the same job.
    /// Needs a saver.
    pub fn with_checkpoint(mut self, resume: crate::ResumeConfig) -> Self {
        self.resume = Some(resume);
        self
    }
    /// Runs only shard `index` of `count` (from 0) of the items given: the
    /// contiguous share `[index × len / count, (index + 1) × len / count)`
    /// of their `len` items, whose number must be known ahead (an exact
    /// `size_hint`, as a `Vec`, a slice or a range have). Chunks are
    /// numbered from 0 within the share; the shards' results, taken in
    /// shard order, are the results of the whole input in input order. The
    /// shard is part of the checkpoint's identity, so a checkpoint of
    /// another shard (or shard count) is never resumed. See
    /// [`Shard::from_env`](crate::Shard::from_env) for the shard of a Slurm
    /// array task or a Kubernetes Indexed Job.
    ///
    /// ```
    /// use raygent_actors::{SubmitOptions, TaskManager};
    /// use raygent_core::task_fn;
    /// let mut m = TaskManager::new(|| task_fn("double", |x: &u64| Ok(x * 2)));
    /// m.submit_tasks(0..10u64, SubmitOptions::new().with_shard(1, 3)).unwrap();
    /// assert_eq!(m.get_results(), &[6, 8, 10]);
    /// ```
    pub fn with_shard(mut self, index: u32, count: u32) -> Self {
        self.shard = Some((index, count));
        self
    }
    /// The shard set by [`with_shard`](Self::with_shard): `(index, count)`.
    pub fn shard(&self) -> Option<(u32, u32)> {
        self.shard
    }
    /// The saver, if any.
    pub fn saver_ref(&self) -> Option<&dyn Saver<O>> {
        self.saver.as_deref()
    }
    /// Whether chunks are processed at once.
    pub fn at_once(&self) -> bool {
        self.at_once
    }
    /// The failure policy.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.failure_policy
    }
    /// The chunk size.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }
    /// The save interval.
    pub fn save_interval(&self) -> usize {
        self.save_interval
    }
    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }
}

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
    /// that failed on every attempt under [`FailurePolicy::Abort`], a save
    /// error, or an interruption. Everything completed before the error was
    /// handed on and saved.
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
            return Err(Error::Runtime(
                "result handler lost by an earlier failed job".into(),
            ));
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
        let mut resume = match options.resume.take() {
            Some(cfg) => {
                let probe = make_task(&*self.factory)?;
                let r = crate::resume::Resumer::open(cfg, &probe, &options)?;
                first_task = Some(Box::new(probe));
                Some(r)
            }
            None => None,
        };
        let start = resume.as_ref().map(|r| r.start()).unwrap_or_default();
        if let Some(r) = resume.as_mut()
            && let Some(saver) = options.saver.as_mut()
        {
            r.prepare_saver(saver.as_mut())?;
        }
        let mut report = JobReport::default();
        let mut chunks = Chunks::try_new(items, options.chunk_size)?;
        // Skip (and fingerprint) what an earlier run committed.
        if let Some(r) = resume.as_mut() {
            r.skip_committed(&mut chunks)?;
            report.resumed_chunks = start.next_chunk;
        }
        let observer: Option<CommitObserver> = resume.as_mut().map(|r| r.observer());
        let gate = resume.as_ref().and_then(|r| r.first_write_gate());

        // Everything that can refuse the job has run: only now does the
        // result handler leave the manager (it comes back with the sink),
        // so a refused job leaves the manager and its results as they were.
        let Some(handler) = self.handler.take() else {
            return Err(Error::Runtime(
                "result handler lost by an earlier failed job".into(),
            ));
        };
        let mut sink = Sink::new(
            handler,
            options.saver.take(),
            options.save_interval,
            observer,
            gate,
            &start,
        );
        if let Some(p) = &options.progress {
            p.set_position(start.next_chunk, start.next_item);
            sink.progress = p.clone();
        }
        let outcome = if self.sequential {
            self.run_sequential(chunks, sink, &options, first_task, resume.as_mut())
        } else {
            self.run_actors(chunks, sink, &options, workers, first_task, resume.as_mut())
        };
        let (finished, fed) = match outcome {
            Ok(x) => x,
            Err(e) => {
                if let Some(r) = resume.as_mut() {
                    let _ = r.finish(false);
                }
                return Err(e);
            }
        };
        let mut fed = fed;
        // Chunks cancelled by a stop after the whole input was fed: the job
        // did not complete even though the feeder saw no interruption.
        if finished.sink.next_chunk() < fed.end_chunk
            && options.stop.as_ref().is_some_and(StopHandle::is_stopped)
        {
            fed.interrupted = true;
        }
        let clean = finished.sink.error.is_none()
            && finished.stats.error.is_none()
            && fed.input_error.is_none()
            && !fed.interrupted;
        let ckpt_result = match resume.as_mut() {
            Some(r) => r.finish(clean),
            None => Ok(()),
        };
        fill_report(&mut report, &finished);
        report.items = fed.items;
        report.chunks = fed.chunks;
        report.wall_time = started.elapsed();
        let Finished { sink, stats } = finished;
        let Sink { handler, error, .. } = sink;
        self.handler = Some(handler);
        tracing::info!(items = report.items, chunks = report.chunks, retries = report.retries, failed = report.failed_chunks.len(), wall = ?report.wall_time, "job finished");
        // Step 0 could not be written (the saver then refused to write):
        // that is the cause, whatever else failed.
        let start_failed = resume.as_ref().is_some_and(|r| r.start_failed());
        let ckpt_result = match ckpt_result {
            Err(e) if start_failed => return Err(e),
            other => other,
        };
        if let Some(e) = error {
            return Err(e);
        }
        if let Some(e) = stats.error {
            return Err(e);
        }
        if let Some(e) = fed.input_error {
            return Err(e);
        }
        ckpt_result?;
        if fed.interrupted {
            return Err(Error::Interrupted {
                committed_chunks: resume.map_or(fed.chunks, |r| r.committed_chunks()),
            });
        }
        Ok(report)
    }

    fn run_sequential<C, E>(
        &mut self,
        chunks: Chunks<C>,
        mut sink: Sink<Out<F>, H>,
        options: &SubmitOptions<Out<F>>,
        first_task: Option<Box<F::Task>>,
        mut resume: Option<&mut crate::resume::Resumer>,
    ) -> Result<(Finished<Out<F>, H>, Fed), Error>
    where
        C: Iterator<Item = Result<In<F>, E>>,
        E: Into<raygent_core::BoxError>,
    {
        let mut fed = Fed::starting_at(&chunks);
        let mut stats = RunStats::default();
        let mut task = first_task;
        let max_attempts = options.retry.max_attempts();
        for next in chunks {
            let Some(chunk) = fed.accept(next, options.stop.as_ref()) else {
                break;
            };
            if let Some(r) = resume.as_deref_mut()
                && let Err(e) = r.observe_chunk(&chunk)
            {
                fed.input_error = Some(e);
                break;
            }
            fed.push(&chunk);
            let mut attempt = 1;
            let released = loop {
                match run_chunk(&*self.factory, &mut task, &chunk.items, options.at_once) {
                    Ok(results) => {
                        break Released::Done {
                            index: chunk.index,
                            start: chunk.start,
                            results,
                        };
                    }
                    Err(f) => {
                        *stats.failures.entry(f.class().to_owned()).or_default() += 1;
                        if attempt < max_attempts {
                            stats.retries += 1;
                            if let Some(p) = &options.progress {
                                p.add_retry();
                            }
                            tracing::warn!(chunk = chunk.index, attempt, error = %f, "chunk failed; retrying");
                            std::thread::sleep(options.retry.backoff(attempt));
                            attempt += 1;
                            continue;
                        }
                        break Released::Failed(raygent_core::FailedChunk {
                            index: chunk.index,
                            items: chunk.range(),
                            attempts: attempt,
                            error: f.to_string(),
                        });
                    }
                }
            };
            if let Released::Failed(f) = &released
                && options.failure_policy != FailurePolicy::Skip
            {
                stats.error = Some(Error::ChunkFailed {
                    index: f.index,
                    items: f.items.clone(),
                    attempts: f.attempts,
                    last_error: f.error.clone(),
                });
                break;
            }
            sink.consume(released);
            if sink.error.is_some() {
                break;
            }
        }
        sink.finish();
        Ok((Finished { sink, stats }, fed))
    }

    fn run_actors<C, E>(
        &mut self,
        chunks: Chunks<C>,
        sink: Sink<Out<F>, H>,
        options: &SubmitOptions<Out<F>>,
        workers: usize,
        first_task: Option<Box<F::Task>>,
        mut resume: Option<&mut crate::resume::Resumer>,
    ) -> Result<(Finished<Out<F>, H>, Fed), Error>
    where
        C: Iterator<Item = Result<In<F>, E>>,
        E: Into<raygent_core::BoxError>,
    {
        let mut fed = Fed::starting_at(&chunks);
        let first_chunk = chunks.next_index();
        let window_size = options.window.unwrap_or_else(|| (8 * workers).max(64));
        let window = Arc::new(Window::new(window_size as u64, first_chunk));
        let (done_tx, done_rx) = mpsc::channel();
        let (alive_tx, alive_rx) = mpsc::channel::<()>();
        let (addr_tx, addr_rx) = mpsc::channel();
        let cfg = SupervisorConfig {
            stop: options.stop.clone(),
            progress: options.progress.clone().unwrap_or_default(),
            workers,
            at_once: options.at_once,
            retry: options.retry.clone(),
            failure_policy: options.failure_policy,
            first_task,
        };
        let factory = Arc::clone(&self.factory);
        let w = Arc::clone(&window);
        // actix wants its own System; it lives on a dedicated thread so the
        // caller may itself be inside any runtime.
        let system_thread = std::thread::Builder::new()
            .name("raygent-system".into())
            .spawn(move || {
                let system = System::new();
                system.block_on(async move {
                    let saver = SyncArbiter::start_with_thread_builder(
                        1,
                        || std::thread::Builder::new().name("raygent-saver".into()),
                        {
                            let cell = std::sync::Mutex::new(Some(sink));
                            let w = Arc::clone(&w);
                            move || {
                                let sink = cell.lock().unwrap_or_else(|e| e.into_inner()).take();
                                SaverActor::from_parts(sink, Arc::clone(&w))
                            }
                        },
                    );
                    let reorder = Reorder::new(first_chunk, saver).start();
                    let supervisor =
                        Supervisor::new(factory, cfg, reorder, w, alive_tx, done_tx).start();
                    let _ = addr_tx.send((supervisor, System::current()));
                });
                system.run()
            })
            .map_err(|source| Error::Spawn {
                thread: "actor system",
                source,
            })?;
        let (supervisor, system) = addr_rx
            .recv()
            .map_err(|_| Error::Runtime("the actor system failed to start".into()))?;

        // Feed chunks from the caller's thread: the input iterator may block
        // on I/O and need not be Send.
        for next in chunks {
            let Some(chunk) = fed.accept(next, options.stop.as_ref()) else {
                break;
            };
            if !window.acquire(chunk.index, options.stop.as_ref()) {
                fed.interrupted = !window.is_halted();
                break;
            }
            if let Some(r) = resume.as_deref_mut()
                && let Err(e) = r.observe_chunk(&chunk)
            {
                fed.input_error = Some(e);
                window.halt();
                break;
            }
            fed.push(&chunk);
            supervisor.do_send(Dispatch(chunk));
        }
        supervisor.do_send(InputEnd { end: fed.end_chunk });
        drop(supervisor);
        let finished = done_rx.recv();
        system.stop();
        let joined = system_thread.join();
        // Wait until every task instance (and any worker process it owns)
        // is dropped: the channel disconnects when the last one goes.
        let _ = alive_rx.recv_timeout(Duration::from_secs(60));
        let finished = finished.map_err(|_| {
            Error::Runtime(match joined {
                Err(_) => "the actor system thread panicked".into(),
                Ok(_) => "the actor system stopped before the job finished".into(),
            })
        })?;
        Ok((finished, fed))
    }
}

/// Makes a task instance on the caller's thread, a panic in the factory
/// becoming an error.
fn make_task<F: TaskFactory>(factory: &F) -> Result<F::Task, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| factory.make())).map_err(|_| {
        Error::Runtime("the task factory panicked while making the first task instance".into())
    })
}

/// What the feeder handed to the runtime.
#[derive(Debug, Default)]
pub(crate) struct Fed {
    pub(crate) items: u64,
    pub(crate) chunks: u64,
    pub(crate) end_chunk: u64,
    pub(crate) interrupted: bool,
    pub(crate) input_error: Option<Error>,
}

impl Fed {
    fn starting_at<C>(chunks: &Chunks<C>) -> Self {
        Fed {
            items: chunks.next_start(),
            chunks: chunks.next_index(),
            end_chunk: chunks.next_index(),
            ..Fed::default()
        }
    }
    /// The next chunk to run, or `None` when feeding must stop: the job was
    /// interrupted, or the input yielded a bad record (kept as the error).
    fn accept<T, E: Into<raygent_core::BoxError>>(
        &mut self,
        next: Result<raygent_core::Chunk<T>, raygent_core::InputError<E>>,
        stop: Option<&StopHandle>,
    ) -> Option<raygent_core::Chunk<T>> {
        if stop.is_some_and(StopHandle::is_stopped) {
            self.interrupted = true;
            return None;
        }
        match next {
            Ok(chunk) => Some(chunk),
            Err(e) => {
                self.input_error = Some(Error::Input {
                    item: e.item,
                    source: e.error.into(),
                });
                None
            }
        }
    }

    fn push<T>(&mut self, chunk: &raygent_core::Chunk<T>) {
        self.items += chunk.items.len() as u64;
        self.chunks += 1;
        self.end_chunk = chunk.index + 1;
    }
}
