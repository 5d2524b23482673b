//! The pool's run queue, and the loop of a task actor's thread.
//!
//! Task actors pull chunks from one shared queue: an idle actor takes the
//! next chunk, so the load balances itself, and a chunk crosses one thread
//! boundary on its way in (feeder → task actor) and one on its way out
//! (task actor → saver stage). Quick chunks are taken a few at a time and
//! reported in groups of up to 64, so that threads wake up once per group
//! rather than once per chunk; slow ones are taken one at a time, so that
//! no actor sits on queued work while another is idle.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use actix::Recipient;
use raygent_core::TaskFactory;

use crate::flow::{Finished, Run};
use crate::saver::SaverMsg;
use crate::supervisor::{Retired, RetryLater};
use crate::task::{In, Out, Step, TaskActor};

/// The most quick chunks a task actor takes at once: few, so that the
/// actors run chunks close to input order (the reorder stage holds less,
/// and a stop finds little run ahead of it).
const TAKE: usize = 8;
/// More chunks than this queued beyond what an actor takes: it wakes
/// another.
const WAKE_ANOTHER: usize = 16;
/// The most finished chunks a task actor reports at once.
const REPORT_AT_MOST: usize = 64;
/// Chunks of a task that takes chunks ahead (a process worker) that take
/// less than this on average are taken in groups too (of two when they
/// take more than half of [`HOLD`]), each sent ahead while the one before
/// runs. Slower ones gain nothing from it.
const AHEAD_BELOW: Duration = Duration::from_millis(20);
/// Chunks that take less than this on average are taken in groups.
const QUICK: Duration = Duration::from_micros(20);
/// A task actor that has spent this long on a group gives back the chunks
/// of the group it has not started, for idle actors to take.
const HOLD: Duration = Duration::from_micros(200);
/// A task actor reports finished chunks at least this often (and always
/// before it waits for work), so the reorder stage is never held up long;
/// its supervisor reports those held longer than [`STALE`] (the actor is on
/// a slow chunk).
const REPORT_AFTER: Duration = Duration::from_micros(100);

#[derive(Debug)]
struct QueueState<T> {
    jobs: VecDeque<T>,
    /// Task actors waiting for work...
    waiting: usize,
    /// ... of which this many were woken and have not yet run.
    woken: usize,
    /// Awake task actors that take quick chunks in groups: each comes back
    /// for more within about [`HOLD`].
    quick: usize,
    /// Takes so far, and at the supervisor's last look.
    takes: u64,
    takes_seen: u64,
    closed: bool,
}

/// Chunks waiting for a task actor: the feeder queues them at the back, the
/// supervisor queues retries at the front.
#[derive(Debug)]
pub(crate) struct RunQueue<T> {
    state: Mutex<QueueState<T>>,
    cv: Condvar,
    /// The task actors that take from it.
    workers: usize,
}

impl<T> RunQueue<T> {
    pub(crate) fn new(workers: usize) -> Self {
        RunQueue {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                waiting: 0,
                woken: 0,
                quick: 0,
                takes: 0,
                takes_seen: 0,
                closed: false,
            }),
            cv: Condvar::new(),
            workers: workers.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_one(&self, s: &mut QueueState<T>) {
        if s.waiting > s.woken {
            s.woken += 1;
            self.cv.notify_one();
        }
    }

    /// Task actors that are running (not waiting, nor woken and not yet up).
    fn awake(&self, s: &QueueState<T>) -> usize {
        self.workers.saturating_sub(s.waiting - s.woken)
    }

    /// Queues a chunk. It wakes a waiting task actor unless one that is
    /// awake takes quick chunks in groups: that one comes back for more
    /// within about [`HOLD`], and wakes another if it finds more than it
    /// takes. So quick chunks cost a wake-up per group, not per chunk.
    pub(crate) fn push(&self, job: T) {
        let mut s = self.lock();
        s.jobs.push_back(job);
        if self.awake(&s) == 0 || s.quick == 0 {
            self.wake_one(&mut s);
        }
    }

    /// The supervisor's periodic look: chunks queued that no task actor
    /// took since the last look while one waits (an actor in quick mode hit
    /// a slow chunk): wake one.
    pub(crate) fn nudge(&self) {
        let mut s = self.lock();
        if !s.jobs.is_empty() && s.takes == s.takes_seen {
            self.wake_one(&mut s);
        }
        s.takes_seen = s.takes;
    }

    /// Queues chunks ahead of all others (retries, and chunks given back),
    /// in the order given.
    pub(crate) fn push_front(&self, jobs: impl DoubleEndedIterator<Item = T>) {
        let mut s = self.lock();
        for job in jobs.rev() {
            s.jobs.push_front(job);
        }
        self.wake_one(&mut s);
    }

    /// Moves up to `max` chunks into `out` (fewer when other actors are
    /// awake to share them). If the queue is empty, waits for one when
    /// `wait`, else returns with `out` empty. False once the queue is
    /// closed and empty. `quick` is the caller's: whether it is counted as
    /// an awake actor in quick mode (`max > 1`).
    pub(crate) fn take(&self, out: &mut Vec<T>, max: usize, wait: bool, quick: &mut bool) -> bool {
        let mut s = self.lock();
        if *quick != (max > 1) {
            *quick = max > 1;
            if *quick {
                s.quick += 1;
            } else {
                s.quick -= 1;
            }
        }
        loop {
            if !s.jobs.is_empty() {
                s.takes += 1;
                let share = s.jobs.len().div_ceil(self.awake(&s).max(1));
                let n = share.min(max).max(1);
                out.extend(s.jobs.drain(..n));
                // More left than this actor will soon take: wake another.
                if !s.jobs.is_empty() && (max == 1 || s.jobs.len() >= WAKE_ANOTHER) {
                    self.wake_one(&mut s);
                }
                return true;
            }
            if s.closed {
                if *quick {
                    *quick = false;
                    s.quick -= 1;
                }
                return false;
            }
            if !wait {
                return true;
            }
            // A waiting actor is not awake, in quick mode or not.
            if *quick {
                *quick = false;
                s.quick -= 1;
            }
            s.waiting += 1;
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
            s.waiting -= 1;
            s.woken = s.woken.saturating_sub(1);
        }
    }

    /// No more chunks: actors waiting for work end.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }
}

/// The finished chunks a task actor holds to report them in one message.
///
/// Its supervisor flushes it too, every [`STALE`] or so: a finished chunk is
/// never held back for long, whatever its actor runs next.
pub(crate) struct Outbox<O> {
    held: Mutex<Held<O>>,
    /// The saver actor's mailbox.
    saver: mpsc::Sender<SaverMsg<O>>,
}

struct Held<O> {
    done: Vec<Finished<O>>,
    /// When the oldest chunk held was taken.
    since: Option<Instant>,
}

/// How long the supervisor lets an outbox hold a finished chunk.
pub(crate) const STALE: Duration = Duration::from_millis(10);

impl<O> Outbox<O> {
    pub(crate) fn new(saver: mpsc::Sender<SaverMsg<O>>) -> Self {
        Outbox {
            held: Mutex::new(Held {
                done: Vec::new(),
                since: None,
            }),
            saver,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Held<O>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds a finished chunk, taken at `taken`.
    fn push(&self, f: Finished<O>, taken: Instant) {
        let mut h = self.lock();
        h.since.get_or_insert(taken);
        h.done.push(f);
    }

    /// Reports what is held once it holds `at_most` chunks, or has held one
    /// for `after`.
    pub(crate) fn report_if(&self, at_most: usize, after: Duration) {
        let done = {
            let mut h = self.lock();
            match h.since {
                Some(t) if h.done.len() >= at_most || t.elapsed() >= after => {
                    h.since = None;
                    std::mem::take(&mut h.done)
                }
                _ => return,
            }
        };
        // The saver actor is gone only if it failed; the job then ends with
        // its error.
        let _ = self.saver.send(SaverMsg::Finished(done));
    }

    fn report(&self) {
        self.report_if(0, Duration::ZERO);
    }
}

/// A task actor on its own thread, with where it takes chunks from and
/// where it reports them.
pub(crate) struct Worker<F: TaskFactory> {
    pub(crate) actor: TaskActor<F>,
    pub(crate) queue: Arc<RunQueue<Run<In<F>>>>,
    /// Finished chunks go from here straight to the saver actor.
    pub(crate) outbox: Arc<Outbox<Out<F>>>,
    /// The supervisor, which waits out retries' backoff.
    pub(crate) retry: Recipient<RetryLater<In<F>>>,
}

impl<F: TaskFactory> Worker<F> {
    /// Takes and runs chunks until the queue is closed.
    fn run(&mut self) {
        let mut group: Vec<Run<In<F>>> = Vec::new();
        // Chunks taken while the last of a group ran, the first of them
        // sent ahead: the next group.
        let mut carried: Vec<Run<In<F>>> = Vec::new();
        // Until chunks prove quick, take them one at a time.
        let mut max = 1;
        let mut quick = false;
        loop {
            let first_told = !carried.is_empty();
            if first_told {
                group.append(&mut carried);
            } else {
                if !self.queue.take(&mut group, max, false, &mut quick) {
                    break;
                }
                if group.is_empty() {
                    self.outbox.report();
                    if !self.queue.take(&mut group, max, true, &mut quick) {
                        break;
                    }
                    if group.is_empty() {
                        continue;
                    }
                }
            }
            let began = Instant::now();
            let n = group.len();
            let mut ran = 0u32;
            // A task that takes chunks ahead (of chunks quick enough for it
            // to matter) is told of each chunk before it runs, and of the
            // one after it: that one is then run next, whatever else
            // happens. The one after the last of the group is taken from
            // the queue then, so that the worker never waits between groups.
            let ahead = max > 1 && self.actor.prefetches();
            let mut next_told = first_told;
            let mut jobs = group.drain(..).peekable();
            while let Some(run) = jobs.next() {
                let told = std::mem::take(&mut next_told);
                if ahead {
                    if !told {
                        self.actor.prefetch(&run);
                    }
                    match jobs.peek() {
                        // Past HOLD, the rest of the group is given back.
                        Some(next) if began.elapsed() < HOLD => {
                            self.actor.prefetch(next);
                            next_told = true;
                        }
                        Some(_) => {}
                        None => {
                            // A closed queue leaves nothing to carry.
                            let _ = self.queue.take(&mut carried, max, false, &mut quick);
                            if let Some(next) = carried.first() {
                                self.actor.prefetch(next);
                            }
                        }
                    }
                }
                match self.actor.attempt(run) {
                    Step::Finished(f) => self.outbox.push(f, began),
                    Step::RetryLater { run, delay } => {
                        self.retry.do_send(RetryLater { run, delay })
                    }
                }
                ran += 1;
                if (ran as usize) < n && !next_told && began.elapsed() >= HOLD {
                    break;
                }
            }
            let rest: Vec<_> = jobs.collect();
            if !rest.is_empty() {
                self.queue.push_front(rest.into_iter());
            }
            let per_chunk = began.elapsed() / ran.max(1);
            max = if per_chunk < QUICK || (ahead && per_chunk < HOLD / 2) {
                TAKE
            } else if self.actor.prefetches() && per_chunk < AHEAD_BELOW {
                // One to run, the next sent ahead.
                2
            } else {
                1
            };
            self.outbox.report_if(REPORT_AT_MOST, REPORT_AFTER);
        }
        self.outbox.report();
    }
}

/// Tells the supervisor that a task actor has ended, with its counters,
/// even if its thread unwinds.
struct RetireOnDrop {
    supervisor: Recipient<Retired>,
    stats: crate::task::AttemptStats,
}

impl Drop for RetireOnDrop {
    fn drop(&mut self) {
        self.supervisor.do_send(Retired {
            stats: std::mem::take(&mut self.stats),
        });
    }
}

/// Starts a task actor's thread. `alive` is dropped once its task instance
/// (and any worker process it owns) is gone.
pub(crate) fn spawn<F: TaskFactory>(
    mut worker: Worker<F>,
    supervisor: Recipient<Retired>,
    alive: mpsc::Sender<()>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("raygent-task".into())
        .spawn(move || {
            let mut retire = RetireOnDrop {
                supervisor,
                stats: Default::default(),
            };
            worker.run();
            retire.stats = std::mem::take(&mut worker.actor.stats);
            drop(retire);
            drop(worker);
            drop(alive);
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_takes_its_share_and_wakes_another_for_the_rest() {
        let q = RunQueue::new(2);
        for i in 0..10 {
            q.push(i);
        }
        let mut out = Vec::new();
        let mut quick = false;
        // Both actors count as awake: each takes half.
        assert!(q.take(&mut out, 64, false, &mut quick));
        assert_eq!(out, [0, 1, 2, 3, 4]);
        out.clear();
        assert!(q.take(&mut out, 1, false, &mut quick));
        assert_eq!(out, [5], "one at a time when chunks are slow");
        q.push_front([100, 101].into_iter());
        out.clear();
        assert!(q.take(&mut out, 2, false, &mut quick));
        assert_eq!(out, [100, 101], "given-back chunks come first, in order");
        q.close();
        out.clear();
        while q.take(&mut out, 64, true, &mut quick) {}
        assert_eq!(
            out,
            [6, 7, 8, 9],
            "what is queued is still taken once closed"
        );
    }

    #[test]
    fn a_waiting_actor_is_woken_by_a_push_and_by_close() {
        let q = Arc::new(RunQueue::<u32>::new(1));
        let q2 = Arc::clone(&q);
        let actor = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut quick = false;
            while q2.take(&mut got, 8, true, &mut quick) {}
            got
        });
        q.push(7);
        q.close();
        assert_eq!(actor.join().unwrap(), [7]);
    }
}
