//! Behaviour of the TaskManager runtime: order, retries, panics, the
//! dispatch window, failure policies and saving.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use raygent_actors::{SubmitOptions, TaskManager, max_concurrent_tasks};
use raygent_core::{
    Error, FailurePolicy, MemorySaver, RetryPolicy, StopHandle, Task, TaskError, task_fn,
};

fn fast_retry(n: u32) -> RetryPolicy {
    RetryPolicy::new(n)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
}

fn squares(n: u64) -> Vec<u64> {
    (0..n).map(|x| x * x).collect()
}

#[test]
fn results_are_in_input_order_for_every_chunk_size() {
    for sequential in [false, true] {
        for size in [1usize, 2, 3, 7, 64, 100, 999, 1000, 5000] {
            let mut m = TaskManager::new(|| task_fn("sq", |x: &u64| Ok(x * x)))
                .with_n_cores(2)
                .with_sequential(sequential);
            let report = m
                .submit_tasks(0..1000u64, SubmitOptions::new().with_chunk_size(size))
                .unwrap();
            assert_eq!(
                m.get_results(),
                squares(1000),
                "size {size} seq {sequential}"
            );
            assert_eq!(report.items, 1000);
            assert_eq!(report.chunks, 1000u64.div_ceil(size as u64));
            assert_eq!(report.results, 1000);
        }
    }
}

#[test]
fn work_is_spread_unevenly_yet_ordered() {
    // Chunks take very different times, so they finish out of order.
    let mut m = TaskManager::new(|| {
        task_fn("uneven", |x: &u64| {
            if x.is_multiple_of(7) {
                let mut a = *x;
                for i in 0..20_000u64 {
                    a = a.wrapping_mul(31).wrapping_add(i);
                }
                std::hint::black_box(a);
            }
            Ok(*x + 1)
        })
    })
    .with_n_cores(2);
    m.submit_tasks(0..3000u64, SubmitOptions::new().with_chunk_size(3))
        .unwrap();
    assert_eq!(m.get_results(), (1..=3000u64).collect::<Vec<_>>());
}

#[test]
fn empty_input_gives_empty_results() {
    for sequential in [false, true] {
        let mut m =
            TaskManager::new(|| task_fn("sq", |x: &u64| Ok(x * x))).with_sequential(sequential);
        let saver = MemorySaver::new();
        let report = m
            .submit_tasks(
                Vec::<u64>::new(),
                SubmitOptions::new().with_saver(saver.clone()),
            )
            .unwrap();
        assert_eq!(report.items, 0);
        assert_eq!(report.chunks, 0);
        assert!(m.get_results().is_empty());
        assert!(saver.batches().is_empty());
    }
}

#[test]
fn zero_chunk_size_is_a_clear_error() {
    let mut m = TaskManager::new(|| task_fn("sq", |x: &u64| Ok(x * x)));
    let err = m
        .submit_tasks(0..3u64, SubmitOptions::new().with_chunk_size(0))
        .unwrap_err();
    assert!(err.to_string().contains("chunk size"), "{err}");
}

/// Fails (error or panic) the first time it sees each item in `flaky`.
struct Flaky {
    seen: Arc<Mutex<HashSet<u64>>>,
    panic: bool,
    poisoned: bool,
}

impl Task for Flaky {
    type Input = u64;
    type Output = u64;
    fn process_item(&mut self, x: &u64) -> Result<u64, TaskError> {
        if self.poisoned {
            return Err("retry ran on the instance that panicked".into());
        }
        if x % 10 == 3 && self.seen.lock().unwrap().insert(*x) {
            if self.panic {
                self.poisoned = true;
                panic!("flaky panic on {x}");
            }
            return Err(format!("flaky error on {x}").into());
        }
        Ok(x * x)
    }
}

#[test]
fn failed_chunks_are_retried_after_errors_and_panics() {
    for panic in [false, true] {
        for sequential in [false, true] {
            let seen = Arc::new(Mutex::new(HashSet::new()));
            let s = Arc::clone(&seen);
            let mut m = TaskManager::new(move || Flaky {
                seen: Arc::clone(&s),
                panic,
                poisoned: false,
            })
            .with_n_cores(2)
            .with_sequential(sequential);
            let report = m
                .submit_tasks(
                    0..200u64,
                    SubmitOptions::new()
                        .with_chunk_size(10)
                        .with_retry(fast_retry(2)),
                )
                .unwrap();
            assert_eq!(m.get_results(), squares(200));
            assert_eq!(report.retries, 20, "panic={panic} seq={sequential}");
            let class = if panic { "panic" } else { "error" };
            assert_eq!(report.failures.get(class), Some(&20));
        }
    }
}

/// Panics on the first attempt of every chunk; two chunks must run at
/// once (a rendezvous) at the end, which needs both workers alive.
#[test]
fn the_pool_keeps_its_size_after_many_panics() {
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let rendezvous = Arc::new((Mutex::new(0u32), Condvar::new()));
    let (s, r) = (Arc::clone(&seen), Arc::clone(&rendezvous));
    let mut m = TaskManager::new(move || {
        let seen = Arc::clone(&s);
        let r = Arc::clone(&r);
        task_fn("panicky", move |x: &u64| {
            if *x < 100 && seen.lock().unwrap().insert(*x) {
                panic!("first attempt of {x}");
            }
            if *x >= 100 {
                // Both of the last two chunks wait for each other.
                let (lock, cv) = &*r;
                let mut n = lock.lock().unwrap();
                *n += 1;
                cv.notify_all();
                let (n, timeout) = cv
                    .wait_timeout_while(n, Duration::from_secs(60), |n| *n < 2)
                    .unwrap();
                if timeout.timed_out() {
                    return Err(format!("only {} worker(s) alive", *n).into());
                }
            }
            Ok(*x)
        })
    })
    .with_n_cores(2);
    let report = m
        .submit_tasks(
            0..102u64,
            SubmitOptions::new()
                .with_chunk_size(1)
                .with_retry(fast_retry(1)),
        )
        .unwrap();
    assert_eq!(report.failures.get("panic"), Some(&100));
    assert_eq!(m.get_results(), (0..102).collect::<Vec<_>>());
}

#[test]
fn a_permanently_failing_chunk_aborts_with_its_range() {
    for sequential in [false, true] {
        let saver = MemorySaver::new();
        let mut m = TaskManager::new(|| {
            task_fn("bad", |x: &u64| {
                if *x == 57 {
                    Err("57 is cursed".into())
                } else {
                    Ok(*x)
                }
            })
        })
        .with_n_cores(2)
        .with_sequential(sequential);
        let err = m
            .submit_tasks(
                0..100u64,
                SubmitOptions::new()
                    .with_chunk_size(10)
                    .with_save_interval(10)
                    .with_saver(saver.clone())
                    .with_retry(fast_retry(2)),
            )
            .unwrap_err();
        match &err {
            Error::ChunkFailed {
                index,
                items,
                attempts,
                last_error,
            } => {
                assert_eq!(*index, 5);
                assert_eq!(*items, 50..60);
                assert_eq!(*attempts, 3);
                assert!(last_error.contains("57 is cursed"));
            }
            other => panic!("unexpected error {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("chunk 5") && msg.contains("50..60"), "{msg}");
        // Everything before the failed chunk was saved; nothing after it.
        assert_eq!(saver.results(), (0..50).collect::<Vec<_>>());
    }
}

#[test]
fn skip_policy_finishes_and_lists_failed_chunks() {
    for sequential in [false, true] {
        let saver = MemorySaver::new();
        let mut m = TaskManager::new(|| {
            task_fn("bad", |x: &u64| {
                if *x == 57 || *x == 83 {
                    Err(format!("{x} is cursed").into())
                } else {
                    Ok(*x)
                }
            })
        })
        .with_n_cores(2)
        .with_sequential(sequential);
        let report = m
            .submit_tasks(
                0..100u64,
                SubmitOptions::new()
                    .with_chunk_size(10)
                    .with_saver(saver.clone())
                    .with_save_interval(25)
                    .with_failure_policy(FailurePolicy::Skip)
                    .with_retry(fast_retry(1)),
            )
            .unwrap();
        let expected: Vec<u64> = (0..100)
            .filter(|x| !(50..60).contains(x) && !(80..90).contains(x))
            .collect();
        assert_eq!(m.get_results(), expected);
        assert_eq!(saver.results(), expected);
        let failed: Vec<_> = report
            .failed_chunks
            .iter()
            .map(|f| (f.index, f.items.clone(), f.attempts))
            .collect();
        assert_eq!(failed, vec![(5, 50..60, 2), (8, 80..90, 2)]);
        assert!(report.failed_chunks[0].error.contains("57 is cursed"));
        // Batches still cover every chunk, in order, with no gap.
        let batches = saver.batches();
        assert_eq!(batches.first().unwrap().chunks.start, 0);
        assert_eq!(batches.last().unwrap().chunks.end, 10);
        for w in batches.windows(2) {
            assert_eq!(w[0].chunks.end, w[1].chunks.start);
        }
    }
}

#[test]
fn backoff_is_honoured() {
    for sequential in [false, true] {
        let attempts = Arc::new(AtomicUsize::new(0));
        let a = Arc::clone(&attempts);
        let mut m = TaskManager::new(move || {
            let a = Arc::clone(&a);
            task_fn("slow-to-succeed", move |x: &u64| {
                if a.fetch_add(1, Ordering::SeqCst) < 3 {
                    Err("not yet".into())
                } else {
                    Ok(*x)
                }
            })
        })
        .with_n_cores(2)
        .with_sequential(sequential);
        let policy = RetryPolicy::new(3)
            .with_initial_backoff(Duration::from_millis(40))
            .with_jitter(false);
        let t = Instant::now();
        let report = m
            .submit_tasks(0..1u64, SubmitOptions::new().with_retry(policy))
            .unwrap();
        // 40 + 80 + 160 ms of backoff at the very least.
        assert!(
            t.elapsed() >= Duration::from_millis(280),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(report.retries, 3);
    }
}

#[test]
fn the_window_bounds_how_far_dispatch_runs_ahead() {
    const WINDOW: u64 = 8;
    let state = Arc::new((
        Mutex::new((false, false, None::<u64>)), // (release chunk 0, chunk 0 done, first violation)
        Condvar::new(),
    ));
    let finished_last = Arc::new((Mutex::new(false), Condvar::new()));
    let (st, fl) = (Arc::clone(&state), Arc::clone(&finished_last));
    let mut m = TaskManager::new(move || {
        let st = Arc::clone(&st);
        let fl = Arc::clone(&fl);
        task_fn("held", move |x: &u64| {
            let (lock, cv) = &*st;
            if *x == 0 {
                let g = lock.lock().unwrap();
                let mut g = cv.wait_while(g, |s| !s.0).unwrap();
                g.1 = true;
                return Ok(0);
            }
            {
                let mut g = lock.lock().unwrap();
                if !g.1 && *x >= WINDOW && g.2.is_none() {
                    g.2 = Some(*x);
                }
            }
            if *x == WINDOW - 1 {
                *fl.0.lock().unwrap() = true;
                fl.1.notify_all();
            }
            Ok(*x)
        })
    })
    .with_n_cores(2);
    let releaser = {
        let (state, fl) = (Arc::clone(&state), Arc::clone(&finished_last));
        std::thread::spawn(move || {
            let g = fl.0.lock().unwrap();
            drop(fl.1.wait_while(g, |done| !*done).unwrap());
            let (lock, cv) = &*state;
            lock.lock().unwrap().0 = true;
            cv.notify_all();
        })
    };
    m.submit_tasks(
        0..200u64,
        SubmitOptions::new()
            .with_chunk_size(1)
            .with_window(WINDOW as usize),
    )
    .unwrap();
    releaser.join().unwrap();
    assert_eq!(m.get_results(), (0..200).collect::<Vec<_>>());
    let violation = state.0.lock().unwrap().2;
    assert_eq!(
        violation, None,
        "a chunk beyond the window started while chunk 0 was held"
    );
}

#[test]
fn max_concurrent_tasks_edge_cases() {
    let all = std::thread::available_parallelism().unwrap().get();
    assert_eq!(max_concurrent_tasks(-1, 1), all);
    assert_eq!(max_concurrent_tasks(0, 1), all);
    assert_eq!(max_concurrent_tasks(2, 4), 1);
    assert_eq!(max_concurrent_tasks(8, 2), 4);
    assert_eq!(max_concurrent_tasks(16, 4), 4);
    assert_eq!(max_concurrent_tasks(24, 1), 24);
    assert_eq!(max_concurrent_tasks(3, 0), 3);
    let m = TaskManager::new(|| task_fn("sq", |x: &u64| Ok(x * x)))
        .with_n_cores(2)
        .with_n_cores_worker(4);
    assert_eq!(m.max_concurrent_tasks(), 1);
}

#[test]
fn one_task_instance_per_worker() {
    let made = Arc::new(AtomicU64::new(0));
    let md = Arc::clone(&made);
    let mut m = TaskManager::new(move || {
        md.fetch_add(1, Ordering::SeqCst);
        task_fn("sq", |x: &u64| Ok(x * x))
    })
    .with_n_cores(4);
    m.submit_tasks(0..10_000u64, SubmitOptions::new().with_chunk_size(10))
        .unwrap();
    assert!(
        made.load(Ordering::SeqCst) <= 4,
        "{}",
        made.load(Ordering::SeqCst)
    );
}

#[test]
fn the_saver_gets_batches_of_at_least_the_interval_in_order() {
    for sequential in [false, true] {
        for (chunk, interval) in [(7usize, 20usize), (10, 10), (1, 1), (100, 30), (3, 1000)] {
            let saver = MemorySaver::new();
            let mut m = TaskManager::new(|| task_fn("sq", |x: &u64| Ok(x * x)))
                .with_n_cores(2)
                .with_sequential(sequential);
            let report = m
                .submit_tasks(
                    0..500u64,
                    SubmitOptions::new()
                        .with_chunk_size(chunk)
                        .with_save_interval(interval)
                        .with_saver(saver.clone()),
                )
                .unwrap();
            let batches = saver.batches();
            assert_eq!(report.saves, batches.len() as u64);
            for b in &batches[..batches.len() - 1] {
                assert!(b.results.len() >= interval);
                assert_eq!(
                    b.items.start % chunk as u64,
                    0,
                    "batches end at chunk boundaries"
                );
            }
            assert_eq!(saver.results(), squares(500));
            assert_eq!(
                m.get_results(),
                squares(500),
                "collect still works with a saver"
            );
        }
    }
}

#[test]
fn a_failing_saver_fails_the_job() {
    for sequential in [false, true] {
        let saver = MemorySaver::failing_after(2);
        let mut m = TaskManager::new(|| task_fn("sq", |x: &u64| Ok(x * x)))
            .with_n_cores(2)
            .with_sequential(sequential);
        let err = m
            .submit_tasks(
                0..1000u64,
                SubmitOptions::new()
                    .with_chunk_size(10)
                    .with_save_interval(10)
                    .with_saver(saver.clone()),
            )
            .unwrap_err();
        assert!(matches!(err, Error::Save(_)), "{err}");
        let chain = raygent_core::ErrorChain(&err).to_string();
        assert!(chain.contains("injected failure"), "{chain}");
        assert_eq!(saver.results(), squares(20));
    }
}

#[test]
fn a_bad_input_record_stops_after_saving_what_came_before() {
    for sequential in [false, true] {
        let saver = MemorySaver::new();
        let mut m = TaskManager::new(|| task_fn("sq", |x: &u64| Ok(x * x)))
            .with_n_cores(2)
            .with_sequential(sequential);
        let input = (0..100u64).map(|i| {
            if i == 42 {
                Err("line 43 of input.txt: not a number".to_string())
            } else {
                Ok(i)
            }
        });
        let err = m
            .try_submit_tasks(
                input,
                SubmitOptions::new()
                    .with_chunk_size(10)
                    .with_saver(saver.clone()),
            )
            .unwrap_err();
        match err {
            Error::Input { item, source } => {
                assert_eq!(item, 42);
                assert!(source.to_string().contains("line 43"));
            }
            other => panic!("unexpected {other}"),
        }
        assert_eq!(saver.results(), squares(40));
    }
}

#[test]
fn a_stop_handle_interrupts_after_committing() {
    for sequential in [false, true] {
        let stop = StopHandle::new();
        let s = stop.clone();
        let saver = MemorySaver::new();
        let mut m = TaskManager::new(move || {
            let s = s.clone();
            task_fn("stopper", move |x: &u64| {
                if *x == 30 {
                    s.stop();
                }
                Ok(*x)
            })
        })
        .with_n_cores(2)
        .with_sequential(sequential);
        let err = m
            .submit_tasks(
                0..100_000u64,
                SubmitOptions::new()
                    .with_chunk_size(10)
                    .with_save_interval(10)
                    .with_saver(saver.clone())
                    .with_stop_handle(stop.clone()),
            )
            .unwrap_err();
        assert!(matches!(err, Error::Interrupted { .. }), "{err}");
        let saved = saver.results();
        assert!(saved.len() >= 40 && saved.len() < 100_000);
        assert_eq!(saved, (0..saved.len() as u64).collect::<Vec<_>>());
    }
}

#[test]
fn fold_handler_sums_in_order() {
    let mut m = TaskManager::with_handler(
        || task_fn("id", |x: &u64| Ok(*x)),
        raygent_core::Fold::new(Vec::new(), |acc: &mut Vec<u64>, x: u64| acc.push(x)),
    )
    .with_n_cores(2);
    m.submit_tasks(0..1000u64, SubmitOptions::new().with_chunk_size(3))
        .unwrap();
    let v = m.into_result_handler().unwrap().into_value();
    assert_eq!(v, (0..1000).collect::<Vec<_>>());
}

#[test]
fn a_stop_does_not_wait_for_the_queued_window() {
    let stop = StopHandle::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let (s, r) = (stop.clone(), Arc::clone(&runs));
    let mut m = TaskManager::new(move || {
        let (s, r) = (s.clone(), Arc::clone(&r));
        task_fn("stop-early", move |x: &u64| {
            r.fetch_add(1, Ordering::SeqCst);
            if *x == 5 {
                s.stop();
            }
            Ok(*x)
        })
    })
    .with_n_cores(2);
    let err = m
        .submit_tasks(
            0..1000u64,
            SubmitOptions::new()
                .with_chunk_size(1)
                .with_window(1000)
                .with_stop_handle(stop),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Interrupted { .. }), "{err}");
    // Only chunks already running when the stop came may finish after it.
    let n = runs.load(Ordering::SeqCst);
    assert!(n <= 10, "{n} chunks ran");
}

#[test]
fn after_an_abort_no_new_chunk_starts() {
    // One worker and a window far larger than the input: every chunk is
    // queued when chunk 0 fails for good. Not one of them may start after.
    for sequential in [false, true] {
        let started = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&started);
        let mut m = TaskManager::new(move || {
            let s = Arc::clone(&s);
            task_fn("first fails", move |x: &u64| {
                s.lock().unwrap().push(*x);
                if *x == 0 {
                    return Err("item 0 is bad".into());
                }
                Ok(*x)
            })
        })
        .with_n_cores(1)
        .with_sequential(sequential);
        let r = m.submit_tasks(
            0..200u64,
            SubmitOptions::new()
                .with_chunk_size(1)
                .with_window(1000)
                .with_retry(RetryPolicy::none())
                .with_failure_policy(FailurePolicy::Abort),
        );
        assert!(
            matches!(
                r,
                Err(Error::ChunkFailed {
                    index: 0,
                    attempts: 1,
                    ..
                })
            ),
            "{r:?}"
        );
        assert_eq!(
            *started.lock().unwrap(),
            vec![0],
            "seq {sequential}: only chunk 0 ran"
        );
    }
}

/// Runs `job` on a thread of its own and returns its result, failing the
/// test if it has not finished within a (generous) deadline: a job that
/// hangs fails instead of blocking the suite.
fn within_deadline<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(job());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the job did not finish within 120 s")
}

/// A task that panics on the first attempt of its first 50 chunks (whole
/// chunks at once), whose broken instances panic again when dropped, and
/// whose factory panics twice: none of it may cost the
/// pool a thread. The last two chunks wait for each other, which needs
/// both task actors alive.
struct Fragile {
    seen: Arc<Mutex<HashSet<u64>>>,
    rendezvous: Arc<(Mutex<u32>, Condvar)>,
    broken: bool,
}

impl Task for Fragile {
    type Input = u64;
    type Output = u64;
    fn process_item(&mut self, x: &u64) -> Result<u64, TaskError> {
        Ok(*x)
    }
    fn process_items(&mut self, items: &[u64]) -> Result<Vec<u64>, TaskError> {
        let first = items[0];
        if first < 50 && self.seen.lock().unwrap().insert(first) {
            self.broken = true;
            panic!("first attempt of chunk {first}");
        }
        if first >= 50 {
            let (lock, cv) = &*self.rendezvous;
            let mut n = lock.lock().unwrap();
            *n += 1;
            cv.notify_all();
            let (n, timeout) = cv
                .wait_timeout_while(n, Duration::from_secs(60), |n| *n < 2)
                .unwrap();
            if timeout.timed_out() {
                return Err(format!("only {} task actor(s) alive", *n).into());
            }
        }
        Ok(items.to_vec())
    }
}

impl Drop for Fragile {
    fn drop(&mut self) {
        if self.broken {
            panic!("dropping a broken instance");
        }
    }
}

#[test]
fn the_pool_keeps_its_size_after_panics_in_the_task_its_drop_and_its_factory() {
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let rendezvous = Arc::new((Mutex::new(0u32), Condvar::new()));
    let made = Arc::new(AtomicU64::new(0));
    let (s, r, md) = (
        Arc::clone(&seen),
        Arc::clone(&rendezvous),
        Arc::clone(&made),
    );
    let mut m = TaskManager::new(move || {
        // The 2nd and 4th instances fail to be made: with the task's own
        // panic, a chunk fails at most 3 of its 4 attempts.
        if [1, 3].contains(&md.fetch_add(1, Ordering::SeqCst)) {
            panic!("the factory fails now and then");
        }
        Fragile {
            seen: Arc::clone(&s),
            rendezvous: Arc::clone(&r),
            broken: false,
        }
    })
    .with_n_cores(2);
    let report = m
        .submit_tasks(
            0..52u64,
            SubmitOptions::new()
                .with_chunk_size(1)
                .with_at_once(true)
                .with_retry(fast_retry(3)),
        )
        .unwrap();
    assert_eq!(m.get_results(), (0..52).collect::<Vec<_>>());
    assert!(report.failures.get("panic").copied().unwrap_or(0) >= 50);
}

#[test]
fn the_window_counts_chunks_waiting_for_a_slow_saver() {
    const WINDOW: u64 = 8;
    // (saver may go on, a chunk at or past the window started while the
    // saver held chunk 0)
    let state = Arc::new((Mutex::new((false, None::<u64>)), Condvar::new()));
    let st = Arc::clone(&state);
    let mut m = TaskManager::new(move || {
        let st = Arc::clone(&st);
        task_fn("watched", move |x: &u64| {
            let (lock, cv) = &*st;
            let mut g = lock.lock().unwrap();
            if !g.0 && *x >= WINDOW && g.1.is_none() {
                g.1 = Some(*x);
            }
            if *x == WINDOW - 1 {
                g.0 = true;
                cv.notify_all();
            }
            Ok(*x)
        })
    })
    .with_n_cores(2);
    /// Holds the first save until the last chunk of the window has run.
    type Shared = Arc<(Mutex<(bool, Option<u64>)>, Condvar)>;
    struct HeldSaver(Shared, MemorySaver<u64>);
    impl raygent_core::Saver<u64> for HeldSaver {
        fn save(
            &mut self,
            batch: &raygent_core::Batch<'_, u64>,
        ) -> Result<(), raygent_core::SaveError> {
            let (lock, cv) = &*self.0;
            let g = lock.lock().unwrap();
            let (g, timeout) = cv
                .wait_timeout_while(g, Duration::from_secs(60), |s| !s.0)
                .unwrap();
            assert!(!timeout.timed_out(), "the window's chunks never all ran");
            drop(g);
            self.1.save(batch)
        }
    }
    let saved = MemorySaver::new();
    m.submit_tasks(
        0..100u64,
        SubmitOptions::new()
            .with_chunk_size(1)
            .with_save_interval(1)
            .with_window(WINDOW as usize)
            .with_saver(HeldSaver(Arc::clone(&state), saved.clone())),
    )
    .unwrap();
    assert_eq!(saved.results(), (0..100).collect::<Vec<_>>());
    let violation = state.0.lock().unwrap().1;
    assert_eq!(
        violation, None,
        "a chunk beyond the window started while the saver held chunk 0"
    );
}

/// Chunk 1 fails once and would be retried after an hour; then the job
/// halts (chunk 0's save fails, which stops the job as an abort does) or a
/// stop comes. The job ends at once, without the retry.
#[test]
fn a_halt_or_a_stop_drops_chunks_waiting_for_their_retry_at_once() {
    for (sequential, halt) in [(false, true), (false, false), (true, false)] {
        let (r, ran_1) = within_deadline(move || {
            let stop = StopHandle::new();
            let attempts = Arc::new(Mutex::new(Vec::new()));
            let (s, a) = (stop.clone(), Arc::clone(&attempts));
            let mut m = TaskManager::new(move || {
                let (s, a) = (s.clone(), Arc::clone(&a));
                task_fn("late", move |x: &u64| {
                    a.lock().unwrap().push(*x);
                    match *x {
                        1 => {
                            if !halt {
                                s.stop();
                            }
                            Err("chunk 1 fails once".into())
                        }
                        0 if halt => {
                            // Done (and saved, which fails) once chunk 1
                            // waits for its retry.
                            while a.lock().unwrap().iter().all(|y| *y != 1) {
                                std::thread::yield_now();
                            }
                            Ok(0)
                        }
                        _ => Ok(*x),
                    }
                })
            })
            .with_n_cores(2)
            .with_sequential(sequential);
            let policy = RetryPolicy::new(1)
                .with_initial_backoff(Duration::from_secs(3600))
                .with_max_backoff(Duration::from_secs(3600))
                .with_jitter(false);
            let mut options = SubmitOptions::new()
                .with_chunk_size(1)
                .with_save_interval(1)
                .with_window(2)
                .with_retry(policy)
                .with_stop_handle(stop);
            if halt {
                options = options.with_saver(MemorySaver::failing_after(0));
            }
            let r = m.submit_tasks(if sequential { 1..10u64 } else { 0..10u64 }, options);
            let ran_1 = attempts.lock().unwrap().iter().filter(|x| **x == 1).count();
            (r.map(|_| ()), ran_1)
        });
        if halt {
            assert!(matches!(r, Err(Error::Save(_))), "{r:?}");
        } else {
            assert!(
                matches!(r, Err(Error::Interrupted { .. })),
                "seq {sequential}: {r:?}"
            );
        }
        assert_eq!(ran_1, 1, "chunk 1 was not retried");
    }
}

/// A task error whose `Display` panics: the panic happens outside the
/// task's processing, yet the job ends with an error, without hanging.
#[test]
fn a_panic_outside_the_task_ends_the_job_with_an_error() {
    #[derive(Debug)]
    struct Unprintable;
    impl std::fmt::Display for Unprintable {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("this error cannot be printed")
        }
    }
    impl std::error::Error for Unprintable {}
    for sequential in [false, true] {
        let r = within_deadline(move || {
            let mut m = TaskManager::new(|| {
                task_fn("unprintable", |x: &u64| {
                    if *x == 3 {
                        return Err(Box::new(Unprintable) as TaskError);
                    }
                    Ok(*x)
                })
            })
            .with_n_cores(2)
            .with_sequential(sequential);
            m.submit_tasks(
                0..100u64,
                SubmitOptions::new()
                    .with_chunk_size(1)
                    .with_retry(RetryPolicy::none())
                    .with_failure_policy(FailurePolicy::Skip),
            )
            .map(|_| ())
        });
        let err = r.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("chunk 3") && msg.contains("cannot be printed"),
            "seq {sequential}: {msg}"
        );
    }
}

/// A saver that panics: the job fails with an error naming the panic, and
/// does not hang.
#[test]
fn a_panicking_saver_fails_the_job_without_hanging() {
    struct Panicky;
    impl raygent_core::Saver<u64> for Panicky {
        fn save(
            &mut self,
            _: &raygent_core::Batch<'_, u64>,
        ) -> Result<(), raygent_core::SaveError> {
            panic!("the saver broke")
        }
    }
    let r = within_deadline(|| {
        let mut m = TaskManager::new(|| task_fn("sq", |x: &u64| Ok(x * x))).with_n_cores(2);
        m.submit_tasks(
            0..10_000u64,
            SubmitOptions::new()
                .with_chunk_size(1)
                .with_window(16)
                .with_saver(Panicky),
        )
        .map(|_| ())
    });
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("the saver broke"), "{msg}");
}

/// Quick chunks, then chunks that wait until chunk 0 is saved: a task actor
/// that holds finished chunks to report them together must not hold them
/// back while it runs a slow one.
#[test]
fn finished_chunks_are_reported_while_their_actor_runs_a_slow_one() {
    type Saved = Arc<(Mutex<bool>, Condvar)>;
    struct Signalling(Saved, MemorySaver<u64>);
    impl raygent_core::Saver<u64> for Signalling {
        fn save(
            &mut self,
            batch: &raygent_core::Batch<'_, u64>,
        ) -> Result<(), raygent_core::SaveError> {
            self.1.save(batch)?;
            *self.0.0.lock().unwrap() = true;
            self.0.1.notify_all();
            Ok(())
        }
    }
    for workers in [1, 2] {
        let saved: Saved = Arc::new((Mutex::new(false), Condvar::new()));
        let s = Arc::clone(&saved);
        let mut m = TaskManager::new(move || {
            let s = Arc::clone(&s);
            task_fn("waits for the saver", move |x: &u64| {
                if *x >= 20 {
                    let (lock, cv) = &*s;
                    let g = lock.lock().unwrap();
                    let (g, timeout) = cv
                        .wait_timeout_while(g, Duration::from_secs(60), |saved| !*saved)
                        .unwrap();
                    drop(g);
                    if timeout.timed_out() {
                        return Err("chunk 0 was never saved".into());
                    }
                }
                Ok(*x)
            })
        })
        .with_n_cores(workers);
        let out = MemorySaver::new();
        m.submit_tasks(
            0..40u64,
            SubmitOptions::new()
                .with_chunk_size(1)
                .with_save_interval(1)
                .with_retry(RetryPolicy::none())
                .with_saver(Signalling(Arc::clone(&saved), out.clone())),
        )
        .unwrap_or_else(|e| panic!("{workers} worker(s): {e}"));
        assert_eq!(out.results(), (0..40).collect::<Vec<_>>());
    }
}
