//! The two ways of running a job: on the pool (the supervisor and its
//! task actors, the saver actor, and the feeder on the caller's thread), or
//! sequentially in the caller's thread. Both run the same feeder, task
//! actor and sink.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use actix::prelude::*;
use raygent_core::{Error, ResultHandler, StopHandle, TaskFactory};

use crate::feed::{Fed, Feeder};
use crate::flow::Finished;
use crate::options::SubmitOptions;
use crate::pool::RunQueue;
use crate::saver::{SaverActor, SaverMsg};
use crate::sink::Sink;
use crate::supervisor::{PoolConfig, Shutdown, Supervisor};
use crate::task::{AttemptStats, In, Out, Rules, Step, TaskActor};
use crate::window::Window;

/// Runs the job in the caller's thread, one chunk after another.
pub(crate) fn run_sequential<F, H, C, E>(
    factory: &Arc<F>,
    mut feeder: Feeder<C>,
    mut sink: Sink<Out<F>, H>,
    options: &SubmitOptions<Out<F>>,
    first_task: Option<Box<F::Task>>,
) -> Ran<Out<F>, H>
where
    F: TaskFactory,
    H: ResultHandler<Out<F>>,
    C: Iterator<Item = Result<In<F>, E>>,
    E: Into<raygent_core::BoxError>,
{
    // Never waited on here: only its halt switch serves (an abort).
    let window = Arc::new(Window::new(u64::MAX, 0));
    let mut actor = TaskActor::new(
        Arc::clone(factory),
        first_task,
        options.at_once,
        rules(options),
        options.stop.clone(),
        window,
        options.progress.clone().unwrap_or_default(),
    )
    .hashing_chunks(sink.fingerprints());
    let mut abort = None;
    while let Some(chunk) = feeder.next_chunk() {
        let mut run = feeder.admit(chunk);
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
            Finished::Aborted { error, .. } | Finished::BadInput { error, .. } => {
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
pub(crate) fn run_actors<F, H, C, E>(
    factory: &Arc<F>,
    mut feeder: Feeder<C>,
    sink: Sink<Out<F>, H>,
    options: &SubmitOptions<Out<F>>,
    workers: usize,
    first_task: Option<Box<F::Task>>,
) -> Ran<Out<F>, H>
where
    F: TaskFactory,
    H: ResultHandler<Out<F>>,
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
        factory: Arc::clone(factory),
        workers,
        at_once: options.at_once,
        rules: rules(options),
        stop: options.stop.clone(),
        progress: options.progress.clone().unwrap_or_default(),
        fingerprint: sink.fingerprints(),
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
                let _ = addr_tx.send((Supervisor::start(cfg), System::current()));
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
        Ok((Ok(supervisor), system)) => (supervisor, system),
        Ok((Err(e), system)) => {
            system.stop();
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
    let saver = match SaverActor::new(finished_rx, sink, Arc::clone(&window), first_chunk).spawn() {
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
        queue.push(feeder.admit(chunk));
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
pub(crate) struct Ran<O, H> {
    /// The sink, unless the saver thread panicked with it.
    pub(crate) sink: Option<Sink<O, H>>,
    pub(crate) fed: Fed,
    pub(crate) stats: AttemptStats,
    /// The error of the chunk that aborted the job.
    pub(crate) abort: Option<Error>,
    /// The runtime itself failed (a thread could not start, or panicked).
    pub(crate) broken: Option<Error>,
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
