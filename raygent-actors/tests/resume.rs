//! Resume from a checkpoint inside one process (the crash tests with real
//! processes and real stores live in the workspace's tests/ crate).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use raygent_actors::{MemoryProgressStore, ResumeConfig, SubmitOptions, TaskManager};
use raygent_core::{Discard, Error, MemorySaver, StopHandle, task_fn};

/// Runs squares over `input`, stopping once `stop_at` items were processed.
fn run(
    input: Vec<u64>,
    chunk: usize,
    store: &MemoryProgressStore,
    saver: &MemorySaver<u64>,
    stop_at: Option<u64>,
    fresh: bool,
    sequential: bool,
) -> (Result<raygent_core::JobReport, Error>, Vec<u64>) {
    let stop = StopHandle::new();
    let processed = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicU64::new(0));
    let (s, p, c) = (stop.clone(), Arc::clone(&processed), Arc::clone(&count));
    let mut m = TaskManager::with_handler(
        move || {
            let (s, p, c) = (s.clone(), Arc::clone(&p), Arc::clone(&c));
            task_fn("square", move |x: &u64| {
                p.lock().unwrap().push(*x);
                if stop_at.is_some_and(|n| c.fetch_add(1, Ordering::SeqCst) + 1 == n) {
                    s.stop();
                }
                Ok(x * x)
            })
        },
        Discard,
    )
    .with_n_cores(2)
    .with_sequential(sequential);
    let r = m.submit_tasks(
        input,
        SubmitOptions::new()
            .with_chunk_size(chunk)
            .with_save_interval(25)
            .with_saver(saver.clone())
            .with_stop_handle(stop)
            .with_checkpoint(ResumeConfig::new(Arc::new(store.clone())).with_fresh(fresh)),
    );
    let mut seen = processed.lock().unwrap().clone();
    seen.sort();
    (r, seen)
}

#[test]
fn an_interrupted_job_resumes_without_redoing_committed_chunks() {
    for sequential in [false, true] {
        let input: Vec<u64> = (0..2000).collect();
        let store = MemoryProgressStore::new();
        let saver = MemorySaver::new();
        let (r, _) = run(
            input.clone(),
            10,
            &store,
            &saver,
            Some(500),
            false,
            sequential,
        );
        let Err(Error::Interrupted { committed_chunks }) = r else {
            panic!("expected an interruption, got {r:?}")
        };
        assert!(committed_chunks >= 10, "{committed_chunks}");
        let steps = store.steps();
        assert_eq!(*steps.last().unwrap(), committed_chunks);

        let (r, seen) = run(input.clone(), 10, &store, &saver, None, false, sequential);
        let report = r.unwrap();
        assert_eq!(report.resumed_chunks, committed_chunks);
        // Nothing committed was run again.
        assert_eq!(seen.first().copied(), Some(committed_chunks * 10));
        assert_eq!(
            saver.results(),
            input.iter().map(|x| x * x).collect::<Vec<_>>()
        );

        // A third run finds the job complete and runs nothing.
        let (r, seen) = run(input.clone(), 10, &store, &saver, None, false, sequential);
        assert!(r.is_ok());
        assert!(seen.is_empty());
        assert_eq!(saver.results().len(), 2000);
    }
}

#[test]
fn resume_is_refused_when_the_chunk_size_changed_and_fresh_starts_over() {
    let input: Vec<u64> = (0..1000).collect();
    let store = MemoryProgressStore::new();
    let saver = MemorySaver::new();
    let (r, _) = run(input.clone(), 10, &store, &saver, Some(300), false, false);
    assert!(matches!(r, Err(Error::Interrupted { .. })));
    let (r, seen) = run(input.clone(), 20, &store, &saver, None, false, false);
    let err = r.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::JobMismatch { .. }), "{msg}");
    assert!(msg.contains("chunk size was \"10\", now \"20\""), "{msg}");
    assert!(msg.contains("start fresh"), "{msg}");
    assert!(seen.is_empty(), "nothing runs when resume is refused");

    let (r, seen) = run(input.clone(), 20, &store, &saver, None, true, false);
    r.unwrap();
    assert_eq!(seen.len(), 1000);
    assert_eq!(
        saver.results(),
        input.iter().map(|x| x * x).collect::<Vec<_>>()
    );
}

#[test]
fn resume_is_refused_when_the_input_changed() {
    let input: Vec<u64> = (0..1000).collect();
    let store = MemoryProgressStore::new();
    let saver = MemorySaver::new();
    let (r, _) = run(input.clone(), 10, &store, &saver, Some(300), false, false);
    assert!(matches!(r, Err(Error::Interrupted { .. })));
    let mut changed = input.clone();
    changed[5] = 12345;
    let (r, _) = run(changed, 10, &store, &saver, None, false, false);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("the input changed"), "{msg}");
    let (r, _) = run(input[..20].to_vec(), 10, &store, &saver, None, false, false);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("shorter"), "{msg}");
}

#[test]
fn a_job_without_checkpoint_never_replaces_an_existing_dataset() {
    use raygent_savers::{DatasetSaver, SaverOptions};
    let url = format!("memory://resume-protect-{}/out", std::process::id());
    let job = |store: &MemoryProgressStore, fresh: bool| {
        let saver = DatasetSaver::create(&url, SaverOptions::default()).unwrap();
        let mut m = TaskManager::with_handler(|| task_fn("sq", |x: &u64| Ok(x * x)), Discard)
            .with_n_cores(2);
        m.submit_tasks(
            0..100u64,
            SubmitOptions::new()
                .with_chunk_size(10)
                .with_saver(saver)
                .with_checkpoint(ResumeConfig::new(Arc::new(store.clone())).with_fresh(fresh)),
        )
    };
    job(&MemoryProgressStore::new(), false).unwrap();
    // Another job (no checkpoint of its own) aimed at the same output.
    let err = job(&MemoryProgressStore::new(), false).unwrap_err();
    let chain = raygent_core::ErrorChain(&err).to_string();
    assert!(chain.contains("already holds"), "{chain}");
    // Asked explicitly, it starts over.
    job(&MemoryProgressStore::new(), true).unwrap();
    let reader = raygent_savers::DatasetReader::open(&url).unwrap();
    let back: Vec<u64> = reader.iter::<u64>().map(Result::unwrap).collect();
    assert_eq!(back, (0..100u64).map(|x| x * x).collect::<Vec<_>>());
}

#[test]
fn checkpoint_writes_are_coalesced_to_the_minimum_interval() {
    let store = MemoryProgressStore::new();
    let saver = MemorySaver::new();
    let mut m =
        TaskManager::with_handler(|| task_fn("sq", |x: &u64| Ok(x * x)), Discard).with_n_cores(2);
    m.submit_tasks(
        0..10_000u64,
        SubmitOptions::new()
            .with_chunk_size(10)
            .with_save_interval(10)
            .with_saver(saver.clone())
            .with_checkpoint(
                ResumeConfig::new(Arc::new(store.clone()))
                    .with_min_interval(std::time::Duration::from_secs(3600)),
            ),
    )
    .unwrap();
    assert_eq!(saver.batches().len(), 1000);
    // Step 0, the first commit, then nothing until the end of the job.
    let steps = store.steps();
    assert!(steps.len() <= 3, "{steps:?}");
    assert_eq!(steps.last(), Some(&1000));
}

/// Batches as a test saver committed them: chunks and results.
type CommittedBatches = Arc<Mutex<Vec<(std::ops::Range<u64>, Vec<u64>)>>>;

/// A saver that keeps up to three batches in flight and commits them, in
/// order, only when a fourth arrives or on `flush`.
struct LaggingSaver {
    in_flight: std::collections::VecDeque<(std::ops::Range<u64>, Vec<u64>)>,
    committed: CommittedBatches,
    frontier: Arc<AtomicU64>,
}

impl LaggingSaver {
    fn commit_oldest(&mut self) {
        if let Some((chunks, results)) = self.in_flight.pop_front() {
            self.frontier.store(chunks.end, Ordering::SeqCst);
            self.committed.lock().unwrap().push((chunks, results));
        }
    }
}

impl raygent_core::Saver<u64> for LaggingSaver {
    fn save(&mut self, _: &raygent_core::Batch<'_, u64>) -> Result<(), raygent_core::SaveError> {
        panic!("the runtime must use submit with a saver that implements it")
    }
    fn submit(
        &mut self,
        batch: &raygent_core::Batch<'_, u64>,
    ) -> Result<u64, raygent_core::SaveError> {
        self.in_flight
            .push_back((batch.chunks.clone(), batch.results.to_vec()));
        if self.in_flight.len() > 3 {
            self.commit_oldest();
        }
        Ok(self.frontier.load(Ordering::SeqCst))
    }
    fn flush(&mut self) -> Result<(), raygent_core::SaveError> {
        while !self.in_flight.is_empty() {
            self.commit_oldest();
        }
        Ok(())
    } // Nothing survives the test process, so there is nothing to forget.
    fn can_resume(&self) -> bool {
        true
    }
}

/// Checks every checkpoint against what the saver has committed.
struct CheckingStore {
    inner: MemoryProgressStore,
    frontier: Arc<AtomicU64>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl raygent_actors::ProgressStore for CheckingStore {
    fn load_latest(&self) -> Result<Option<raygent_actors::JobState>, Error> {
        self.inner.load_latest()
    }
    fn save(&self, step: u64, state: &raygent_actors::JobState) -> Result<(), Error> {
        let committed = self.frontier.load(Ordering::SeqCst);
        if state.next_chunk > committed {
            self.violations.lock().unwrap().push(format!(
                "step {step} records chunks below {} while the saver committed below {committed}",
                state.next_chunk
            ));
        }
        self.inner.save(step, state)
    }
    fn clear(&self) -> Result<(), Error> {
        self.inner.clear()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

#[test]
fn with_saves_in_flight_checkpoints_record_only_committed_batches() {
    for sequential in [false, true] {
        let frontier = Arc::new(AtomicU64::new(0));
        let committed = Arc::new(Mutex::new(Vec::new()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let inner = MemoryProgressStore::new();
        let store = CheckingStore {
            inner: inner.clone(),
            frontier: Arc::clone(&frontier),
            violations: Arc::clone(&violations),
        };
        let saver = LaggingSaver {
            in_flight: Default::default(),
            committed: Arc::clone(&committed),
            frontier: Arc::clone(&frontier),
        };
        let mut m = TaskManager::with_handler(|| task_fn("sq", |x: &u64| Ok(x * x)), Discard)
            .with_n_cores(2)
            .with_sequential(sequential);
        let report = m
            .submit_tasks(
                0..1000u64,
                SubmitOptions::new()
                    .with_chunk_size(10)
                    .with_save_interval(50)
                    .with_saver(saver)
                    .with_checkpoint(
                        ResumeConfig::new(Arc::new(store))
                            .with_min_interval(std::time::Duration::ZERO),
                    ),
            )
            .unwrap();
        assert_eq!(violations.lock().unwrap().as_slice(), &[] as &[String]);
        // Every batch committed, in order, with every result once.
        let committed = committed.lock().unwrap();
        assert_eq!(report.saves, committed.len() as u64);
        assert_eq!(committed.len(), 20);
        let mut next = 0;
        let mut all = Vec::new();
        for (chunks, results) in committed.iter() {
            assert_eq!(chunks.start, next);
            next = chunks.end;
            all.extend_from_slice(results);
        }
        assert_eq!(all, (0..1000u64).map(|x| x * x).collect::<Vec<_>>());
        // The last checkpoint covers the whole job.
        assert_eq!(inner.steps().last(), Some(&100));
    }
}

/// A progress store that logs its writes in `log` and can hold or fail
/// step 0.
struct LoggingStore {
    inner: MemoryProgressStore,
    log: Arc<Mutex<Vec<String>>>,
    /// Step 0 waits for a message on this channel before it is written.
    hold_step0: Option<Mutex<std::sync::mpsc::Receiver<()>>>,
    fail_step0: bool,
}

/// Chunks of 10, a part every 100 results to a [`LoggingSaver`] on `log`,
/// and checkpoints in `store` (which logs to the same place).
fn logged_job(log: &Arc<Mutex<Vec<String>>>, store: LoggingStore) -> SubmitOptions<u64> {
    SubmitOptions::new()
        .with_chunk_size(10)
        .with_save_interval(100)
        .with_saver(LoggingSaver {
            log: Arc::clone(log),
        })
        .with_checkpoint(ResumeConfig::new(Arc::new(store)))
}

impl raygent_actors::ProgressStore for LoggingStore {
    fn load_latest(&self) -> Result<Option<raygent_actors::JobState>, Error> {
        self.inner.load_latest()
    }
    fn save(&self, step: u64, state: &raygent_actors::JobState) -> Result<(), Error> {
        if step == 0
            && let Some(rx) = &self.hold_step0
        {
            rx.lock()
                .unwrap()
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap();
        }
        if step == 0 && self.fail_step0 {
            return Err(Error::Runtime("injected: step 0 cannot be written".into()));
        }
        self.inner.save(step, state)?;
        self.log.lock().unwrap().push(format!("step {step}"));
        Ok(())
    }
    fn clear(&self) -> Result<(), Error> {
        self.inner.clear()
    }
    fn location(&self) -> String {
        "logging".into()
    }
}

/// A saver that logs its saves in `log`.
struct LoggingSaver {
    log: Arc<Mutex<Vec<String>>>,
}

impl raygent_core::Saver<u64> for LoggingSaver {
    fn save(
        &mut self,
        batch: &raygent_core::Batch<'_, u64>,
    ) -> Result<(), raygent_core::SaveError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("save {:?}", batch.chunks));
        Ok(())
    }
    fn finish(&mut self) -> Result<(), raygent_core::SaveError> {
        self.log.lock().unwrap().push("finish".into());
        Ok(())
    }
    fn can_resume(&self) -> bool {
        true
    }
}

#[test]
fn step_0_is_committed_before_anything_is_saved_while_tasks_already_run() {
    for sequential in [false, true] {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let store = LoggingStore {
            inner: MemoryProgressStore::new(),
            log: Arc::clone(&log),
            hold_step0: Some(Mutex::new(rx)),
            fail_step0: false,
        };
        // The first task releases step 0: the job computes before step 0
        // is written (it no longer waits for it), and saves only after.
        let tx = Mutex::new(tx);
        let mut m = TaskManager::with_handler(
            move || {
                let tx = tx.lock().unwrap().clone();
                task_fn("sq", move |x: &u64| {
                    let _ = tx.send(());
                    Ok(x * x)
                })
            },
            Discard,
        )
        .with_n_cores(2)
        .with_sequential(sequential);
        m.submit_tasks(0..1000u64, logged_job(&log, store)).unwrap();
        let log = log.lock().unwrap().clone();
        assert_eq!(log.first().map(String::as_str), Some("step 0"), "{log:?}");
        assert_eq!(log.iter().filter(|e| e.starts_with("save")).count(), 10);
        assert_eq!(log.last().map(String::as_str), Some("step 100"), "{log:?}");
    }
}

#[test]
fn a_job_whose_step_0_fails_saves_nothing_and_reports_the_checkpoint_error() {
    for (sequential, items) in [(false, 1000u64), (true, 1000), (false, 0)] {
        let log = Arc::new(Mutex::new(Vec::new()));
        let store = LoggingStore {
            inner: MemoryProgressStore::new(),
            log: Arc::clone(&log),
            hold_step0: None,
            fail_step0: true,
        };
        let mut m = TaskManager::with_handler(|| task_fn("sq", |x: &u64| Ok(x * x)), Discard)
            .with_n_cores(2)
            .with_sequential(sequential);
        let err = m
            .submit_tasks(0..items, logged_job(&log, store))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Runtime(m) if m.contains("injected: step 0")),
            "{err:?}"
        );
        let log = log.lock().unwrap().clone();
        assert!(log.is_empty(), "nothing saved, no step written: {log:?}");
    }
}

#[test]
fn a_job_without_checkpoint_keeps_its_saver() {
    let saver = MemorySaver::new();
    let mut m =
        TaskManager::with_handler(|| task_fn("sq", |x: &u64| Ok(x * x)), Discard).with_n_cores(2);
    m.submit_tasks(
        0..100u64,
        SubmitOptions::new()
            .with_chunk_size(10)
            .with_save_interval(25)
            .with_saver(saver.clone()),
    )
    .unwrap();
    assert_eq!(
        saver.results(),
        (0..100u64).map(|x| x * x).collect::<Vec<_>>()
    );
}

/// Chunks skipped before an interruption and after the resume all end up
/// in the final checkpoint, in order, once each: each commit passes on only
/// the failures it adds, and the checkpoint writes the whole list.
#[test]
fn skipped_chunks_before_and_after_a_resume_are_all_in_the_checkpoint() {
    use raygent_actors::ProgressStore;
    use raygent_core::{FailurePolicy, RetryPolicy};
    for sequential in [false, true] {
        let store = MemoryProgressStore::new();
        let saver = MemorySaver::new();
        let job = |stop_at: Option<u64>| {
            let stop = StopHandle::new();
            let s = stop.clone();
            let mut m = TaskManager::with_handler(
                move || {
                    let s = s.clone();
                    task_fn("odd", move |x: &u64| {
                        if Some(*x) == stop_at {
                            s.stop();
                        }
                        // Chunks 3, 11 and 40 (of 10 items) always fail.
                        if [3, 11, 40].contains(&(x / 10)) {
                            return Err(format!("item {x} is bad").into());
                        }
                        Ok(x * x)
                    })
                },
                Discard,
            )
            .with_n_cores(2)
            .with_sequential(sequential);
            m.submit_tasks(
                0..500u64,
                SubmitOptions::new()
                    .with_chunk_size(10)
                    .with_save_interval(20)
                    .with_retry(RetryPolicy::none())
                    .with_failure_policy(FailurePolicy::Skip)
                    .with_saver(saver.clone())
                    .with_stop_handle(stop)
                    .with_checkpoint(ResumeConfig::new(Arc::new(store.clone()))),
            )
        };
        let first = job(Some(250));
        assert!(matches!(first, Err(Error::Interrupted { .. })), "{first:?}");
        let state = store.load_latest().unwrap().unwrap();
        let before: Vec<u64> = state.failed.iter().map(|f| f.index).collect();
        assert!(
            before.starts_with(&[3]) && before.iter().all(|i| [3, 11].contains(i)),
            "{before:?}"
        );
        let report = job(None).unwrap();
        let state = store.load_latest().unwrap().unwrap();
        assert!(state.complete);
        let failed: Vec<(u64, std::ops::Range<u64>)> = state
            .failed
            .iter()
            .map(|f| (f.index, f.items.clone()))
            .collect();
        assert_eq!(failed, [(3, 30..40), (11, 110..120), (40, 400..410)]);
        assert!(
            state.failed[2].error.contains("item 400 is bad"),
            "{state:?}"
        );
        assert_eq!(report.failed_chunks.len(), 3, "sequential: {sequential}");
    }
}

#[test]
fn a_manager_reused_after_a_refused_resume_runs_a_job_and_keeps_its_results() {
    for sequential in [false, true] {
        let store = MemoryProgressStore::new();
        let saver = MemorySaver::new();
        let mut m = TaskManager::new(|| task_fn("square", |x: &u64| Ok(x * x)))
            .with_n_cores(2)
            .with_sequential(sequential);
        let options = |chunk: usize, identity: &str| {
            SubmitOptions::new()
                .with_chunk_size(chunk)
                .with_saver(saver.clone())
                .with_checkpoint(
                    ResumeConfig::new(Arc::new(store.clone())).with_identity(identity.to_owned()),
                )
        };
        m.submit_tasks(0..100u64, options(10, "a")).unwrap();
        let first: Vec<u64> = (0..100).map(|x| x * x).collect();
        assert_eq!(m.get_results(), first);

        // The same output, another job: refused before anything runs.
        let r = m.submit_tasks(0..100u64, options(10, "b"));
        assert!(
            matches!(r, Err(Error::JobMismatch { .. })),
            "seq {sequential}: {r:?}"
        );
        assert_eq!(m.get_results(), first, "the refusal kept the results");

        // The manager still runs jobs, and keeps collecting.
        m.submit_tasks(100..150u64, SubmitOptions::new().with_chunk_size(10))
            .unwrap();
        let all: Vec<u64> = (0..150).map(|x| x * x).collect();
        assert_eq!(m.get_results(), all, "seq {sequential}");
    }
}

#[test]
fn a_resume_makes_no_task_instance_of_its_own() {
    for sequential in [false, true] {
        let made = Arc::new(AtomicU64::new(0));
        let m2 = Arc::clone(&made);
        let mut m = TaskManager::new(move || {
            m2.fetch_add(1, Ordering::SeqCst);
            task_fn("square", |x: &u64| Ok(x * x))
        })
        .with_n_cores(1)
        .with_sequential(sequential);
        m.submit_tasks(
            0..100u64,
            SubmitOptions::new()
                .with_chunk_size(10)
                .with_saver(MemorySaver::new())
                .with_checkpoint(ResumeConfig::new(Arc::new(MemoryProgressStore::new()))),
        )
        .unwrap();
        // One worker, one instance: the one read for the checkpoint's task
        // name and version is the one that ran the chunks.
        assert_eq!(made.load(Ordering::SeqCst), 1, "seq {sequential}");
    }
}

/// A saver that says nothing of how it resumes.
struct AppendOnly;

impl raygent_core::Saver<u64> for AppendOnly {
    fn save(&mut self, _: &raygent_core::Batch<'_, u64>) -> Result<(), raygent_core::SaveError> {
        Ok(())
    }
    fn describe(&self) -> String {
        "rows.csv".into()
    }
}

#[test]
fn a_saver_that_cannot_resume_is_refused_for_checkpoints() {
    let store = MemoryProgressStore::new();
    let mut m = TaskManager::new(|| task_fn("square", |x: &u64| Ok(x * x)));
    let r = m.submit_tasks(
        0..10u64,
        SubmitOptions::new()
            .with_saver(AppendOnly)
            .with_checkpoint(ResumeConfig::new(Arc::new(store.clone()))),
    );
    let Err(Error::InvalidConfig(msg)) = r else {
        panic!("expected a refusal, got {r:?}")
    };
    assert!(
        msg.contains("\"rows.csv\" cannot be checkpointed") && msg.contains("Saver::resume"),
        "{msg}"
    );
    assert!(store.steps().is_empty(), "nothing was checkpointed");
    // Without a checkpoint the same saver is fine.
    m.submit_tasks(0..10u64, SubmitOptions::new().with_saver(AppendOnly))
        .unwrap();
}

/// An item whose `Serialize` fails for one value (as a user's type may).
#[derive(Debug, Clone, serde::Deserialize)]
struct Picky(u64);

impl serde::Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 777 {
            return Err(serde::ser::Error::custom("777 has no encoding"));
        }
        s.serialize_u64(self.0)
    }
}

#[test]
fn an_item_that_cannot_be_fingerprinted_stops_the_job_after_every_chunk_before_it() {
    for sequential in [false, true] {
        let store = MemoryProgressStore::new();
        let saver = MemorySaver::new();
        let mut m =
            TaskManager::with_handler(|| task_fn("square", |x: &Picky| Ok(x.0 * x.0)), Discard)
                .with_n_cores(2)
                .with_sequential(sequential);
        let r = m.submit_tasks(
            (0..2000).map(Picky),
            SubmitOptions::new()
                .with_chunk_size(10)
                .with_save_interval(25)
                .with_saver(saver.clone())
                .with_checkpoint(ResumeConfig::new(Arc::new(store.clone()))),
        );
        let Err(Error::Input { item, source }) = &r else {
            panic!("expected an input error, got {r:?}")
        };
        assert_eq!(*item, 777, "sequential: {sequential}");
        let chain = raygent_core::ErrorChain(source.as_ref()).to_string();
        assert!(chain.contains("777 has no encoding"), "{chain}");
        // Every chunk before the one holding item 777 was run and saved, in
        // order, and nothing after it.
        let saved: Vec<u64> = saver.results();
        assert_eq!(saved, (0..770).map(|x| x * x).collect::<Vec<_>>());
        assert_eq!(*store.steps().last().unwrap(), 77);
    }
}
