//! `TaskManager`: the entry point of a job. It sets the job up (resuming
//! from a checkpoint if asked), runs it on the pool or in the caller's
//! thread, and assembles the report.

use std::sync::Arc;
use std::time::Instant;

use raygent_core::{Chunks, Collect, Error, JobReport, ResultHandler, StopHandle, TaskFactory};

use crate::feed::Feeder;
use crate::modes::{Ran, run_actors, run_sequential};
use crate::options::SubmitOptions;
use crate::resume::Resumer;
use crate::sink::{CheckpointLink, Sink};
use crate::state::StartPoint;
use crate::task::{In, Out};

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
        let (start, link, checkpoints) = match resumer.map(Resumer::into_parts) {
            Some(c) => (
                c.start,
                Some(CheckpointLink {
                    commits: c.commits,
                    gate: c.gate,
                    fingerprint: c.fingerprint,
                }),
                Some(c.actor),
            ),
            None => (StartPoint::default(), None, None),
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
        let feeder = Feeder::new(chunks, options.stop.clone());
        let ran = if self.sequential {
            run_sequential(&self.factory, feeder, sink, &options, first_task)
        } else {
            run_actors(&self.factory, feeder, sink, &options, workers, first_task)
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
