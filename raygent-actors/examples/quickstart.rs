//! Writing raygent tasks in Rust: every example of `docs/rust-tasks.md`, as
//! one program that runs and checks its own results.
//!
//! ```text
//! cargo run -p raygent-actors --example quickstart
//! ```
//!
//! 1. a task, run on a pool of threads, results collected in input order;
//! 2. a task whose parameters are captured by its factory;
//! 3. a task that handles a whole chunk at once (`with_at_once`);
//! 4. a panicking task, retried with a fresh instance;
//! 5. a failing chunk skipped under `FailurePolicy::Skip`;
//! 6. results saved to a directory, checkpointed, interrupted and resumed;
//! 7. a Rust task in worker processes, which survive an `abort()`;
//! 8. sequential mode, for debugging;
//! 9. S3 settings in code (`docs/s3.md`), run only when `RAYGENT_S3_ENDPOINT`
//!    (an `http://` endpoint such as moto's) and `RAYGENT_S3_BUCKET` are set.

use std::borrow::Cow;
use std::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use raygent_actors::worker::{RustWorker, serve_worker_if_requested};
use raygent_actors::{
    INLINE_JOB_STATE_MAX, ResumeConfig, StepProgressStore, SubmitOptions, TaskManager,
};
use raygent_ckpt::StepCheckpointer;
use raygent_core::{FailurePolicy, Fold, RetryPolicy, StopHandle, Task, TaskError, task_fn};
use raygent_savers::{DatasetReader, DatasetSaver, Location, S3Options, SaverOptions};

// ---- 1. A task -------------------------------------------------------------

/// Squares a number; an overflow is an error, not a panic.
struct Square;

impl Task for Square {
    type Input = u64;
    type Output = u64;

    fn process_item(&mut self, x: &u64) -> Result<u64, TaskError> {
        x.checked_mul(*x)
            .ok_or_else(|| format!("{x} squared overflows u64").into())
    }

    // Recorded in checkpoints: a resume with another name is refused.
    fn name(&self) -> Cow<'static, str> {
        "square".into()
    }

    // Bump it when the results change, so an old checkpoint is not resumed.
    fn version(&self) -> Cow<'static, str> {
        "1".into()
    }
}

fn a_task() -> Result<(), Box<dyn Error>> {
    let mut manager = TaskManager::new(|| Square).with_n_cores(4); // 4 threads
    let report = manager.submit_tasks(0..10_000u64, SubmitOptions::new().with_chunk_size(100))?;
    assert_eq!(report.chunks, 100);
    assert_eq!(manager.get_results()[9_999], 9_999 * 9_999); // in input order
    println!("1. squared {} numbers", report.items);
    Ok(())
}

// ---- 2. Parameters go into the factory -------------------------------------

/// Keeps the words of a line longer than `min_len`.
struct LongWords {
    min_len: usize,
}

impl Task for LongWords {
    type Input = String;
    type Output = Vec<String>;

    fn process_item(&mut self, line: &String) -> Result<Vec<String>, TaskError> {
        Ok(line
            .split_whitespace()
            .filter(|w| w.len() > self.min_len)
            .map(str::to_owned)
            .collect())
    }

    fn name(&self) -> Cow<'static, str> {
        "long-words".into()
    }
}

fn parameters() -> Result<(), Box<dyn Error>> {
    let min_len = 5;
    // The factory makes one instance per worker thread, each with min_len.
    let mut manager = TaskManager::new(move || LongWords { min_len });
    let lines = ["raygent keeps results in order", "a tiny line"].map(String::from);
    manager.submit_tasks(lines, SubmitOptions::new())?;
    assert_eq!(manager.get_results(), [vec!["raygent", "results"], vec![]]);
    println!("2. {:?}", manager.get_results());
    Ok(())
}

// ---- 3. A whole chunk at once ----------------------------------------------

/// Normalises vectors; `process_items` gets a whole chunk (think: one
/// batched model call, one SQL query per chunk).
struct Normalise {
    calls: usize,
}

impl Task for Normalise {
    type Input = Vec<f64>;
    type Output = Vec<f64>;

    fn process_item(&mut self, v: &Vec<f64>) -> Result<Vec<f64>, TaskError> {
        let mut out = self.process_items(std::slice::from_ref(v))?;
        out.pop().ok_or_else(|| "no result".into())
    }

    // Must return exactly one output per input, in order.
    fn process_items(&mut self, chunk: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, TaskError> {
        self.calls += 1;
        chunk
            .iter()
            .map(|v| {
                let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                if norm == 0.0 {
                    return Err(TaskError::from("cannot normalise a zero vector"));
                }
                Ok(v.iter().map(|x| x / norm).collect())
            })
            .collect()
    }
}

fn at_once() -> Result<(), Box<dyn Error>> {
    let mut manager = TaskManager::new(|| Normalise { calls: 0 });
    let vectors = (1..=1000).map(|i| vec![f64::from(i), 0.0]);
    let options = SubmitOptions::new().with_chunk_size(50).with_at_once(true);
    manager.submit_tasks(vectors, options)?;
    assert!(manager.get_results().iter().all(|v| v == &[1.0, 0.0]));
    println!(
        "3. normalised {} vectors, 50 per call",
        manager.get_results().len()
    );
    Ok(())
}

// ---- 4. A panic costs one attempt of one chunk ----------------------------

static PANICKED: AtomicBool = AtomicBool::new(false);

fn panics() -> Result<(), Box<dyn Error>> {
    // The panic is caught and retried; keep its message to one line.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| eprintln!("(expected) {info}")));
    let mut manager = TaskManager::new(|| {
        task_fn("flaky", |x: &u64| {
            if *x == 13 && !PANICKED.swap(true, Ordering::SeqCst) {
                panic!("unlucky {x}"); // the first time only
            }
            Ok(x + 1)
        })
    });
    let report = manager.submit_tasks(0..100u64, SubmitOptions::new().with_chunk_size(10));
    std::panic::set_hook(default_hook);
    let report = report?;
    assert_eq!(report.failures.get("panic"), Some(&1));
    assert_eq!(report.retries, 1);
    assert_eq!(manager.get_results()[13], 14);
    println!("4. a panic was retried: failures {:?}", report.failures);
    Ok(())
}

// ---- 5. Skip what keeps failing --------------------------------------------

fn skip() -> Result<(), Box<dyn Error>> {
    let mut manager = TaskManager::new(|| {
        task_fn("picky", |x: &u64| {
            if *x == 42 {
                return Err(format!("cannot handle {x}").into());
            }
            Ok(*x)
        })
    });
    let options = SubmitOptions::new()
        .with_chunk_size(10)
        .with_retry(RetryPolicy::new(2)) // 3 attempts per chunk
        .with_failure_policy(FailurePolicy::Skip);
    let report = manager.submit_tasks(0..100u64, options)?;
    let failed = &report.failed_chunks[0];
    assert_eq!(
        (failed.index, failed.items.clone(), failed.attempts),
        (4, 40..50, 3)
    );
    assert_eq!(manager.get_results().len(), 90); // chunk 4 has no results
    println!("5. skipped chunk {}: {}", failed.index, failed.error);
    Ok(())
}

// ---- 6. Save, checkpoint, resume -------------------------------------------

/// Runs the job of `square` over `0..10_000` saving to `out`; stops (as a
/// Ctrl-C would) when item `stop_at` is processed.
fn checkpointed_run(out: &str, stop_at: Option<u64>) -> Result<u64, raygent_core::Error> {
    let stop = StopHandle::new();
    let trigger = stop.clone();
    let factory = move || {
        let trigger = trigger.clone();
        task_fn("square", move |x: &u64| {
            if Some(*x) == stop_at {
                trigger.stop();
            }
            Ok(x * x)
        })
    };
    let to_core = raygent_core::Error::from;
    let saver = DatasetSaver::create(out, SaverOptions::default()).map_err(to_core)?;
    // Checkpoints next to the results; a store client of their own.
    let ckpt_dir = Location::parse(out).map_err(to_core)?;
    let steps = StepCheckpointer::new(Arc::clone(ckpt_dir.store()), ckpt_dir.path("_checkpoints"))?
        .with_keep(3)
        .with_inline_state(INLINE_JOB_STATE_MAX);
    let options = SubmitOptions::new()
        .with_chunk_size(100)
        .with_save_interval(1000)
        .with_saver(saver)
        .with_stop_handle(stop)
        .with_checkpoint(ResumeConfig::new(Arc::new(StepProgressStore::new(steps))));
    // Results go to the saver only: fold them into a count instead of
    // keeping them in memory.
    let count = Fold::new(0u64, |n: &mut u64, _: u64| *n += 1);
    let mut manager = TaskManager::with_handler(factory, count);
    let report = manager.submit_tasks(0..10_000u64, options)?;
    Ok(report.resumed_chunks)
}

fn save_and_resume(dir: &Path) -> Result<(), Box<dyn Error>> {
    let out = dir.join("squares");
    let out = out.to_str().ok_or("the temporary directory is not UTF-8")?;

    // The first run is interrupted after item 5000 ...
    match checkpointed_run(out, Some(5_000)) {
        Err(raygent_core::Error::Interrupted { committed_chunks }) => {
            println!("6. interrupted after committing {committed_chunks} chunks");
        }
        other => return Err(format!("expected an interruption, got {other:?}").into()),
    }
    // ... the same job run again skips what was committed.
    let resumed = checkpointed_run(out, None)?;
    assert!(resumed > 0);

    let saved: Vec<u64> = DatasetReader::open(out)?.iter().collect::<Result<_, _>>()?;
    assert_eq!(saved, (0..10_000u64).map(|x| x * x).collect::<Vec<_>>());
    println!(
        "   resumed at chunk {resumed}; {} results saved, once each, in order",
        saved.len()
    );
    Ok(())
}

// ---- 7. Rust tasks in worker processes -------------------------------------

/// Scales numbers by a factor read from the environment (a worker process
/// does not see the driver's variables: parameters travel as environment
/// variables or arguments). Aborts the whole process on item 13 the first
/// time, to show that a crash costs one attempt of one chunk.
struct Scale {
    factor: u64,
    crash_marker: Option<String>,
}

impl Scale {
    fn from_env() -> Scale {
        Scale {
            factor: std::env::var("SCALE_FACTOR")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1),
            crash_marker: std::env::var("CRASH_MARKER").ok(),
        }
    }
}

impl Task for Scale {
    type Input = u64;
    type Output = u64;

    fn process_item(&mut self, x: &u64) -> Result<u64, TaskError> {
        if *x == 13
            && let Some(marker) = &self.crash_marker
            && std::fs::create_dir(marker).is_ok()
        {
            std::process::abort(); // like a segfault in a C library
        }
        Ok(x * self.factor)
    }

    fn name(&self) -> Cow<'static, str> {
        "scale".into()
    }
}

fn process_workers(dir: &Path) -> Result<(), Box<dyn Error>> {
    let marker = dir.join("crashed-once");
    let worker = RustWorker::<Scale>::new("scale")
        .env("SCALE_FACTOR", "3")
        .env("CRASH_MARKER", &marker)
        .timeout(std::time::Duration::from_secs(60)); // per chunk: a hang is killed
    let mut manager = TaskManager::new(worker.factory()).with_n_cores(2);
    let options = SubmitOptions::new().with_chunk_size(10).with_at_once(true);
    let report = manager.submit_tasks(0..100u64, options)?;
    assert_eq!(manager.get_results()[13], 39);
    assert_eq!(report.failures.get("worker killed by signal"), Some(&1));
    println!(
        "7. a worker died (SIGABRT); its chunk was retried: {:?}",
        report.failures
    );
    Ok(())
}

// ---- 8. Sequential mode ----------------------------------------------------

fn sequential() -> Result<(), Box<dyn Error>> {
    // Everything in this thread, one chunk after another: breakpoints and
    // dbg! work, panics show a plain backtrace.
    let mut manager = TaskManager::new(|| Square).with_sequential(true);
    manager.submit_tasks(0..10u64, SubmitOptions::new().with_chunk_size(3))?;
    assert_eq!(manager.get_results(), [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
    println!("8. sequential: {:?}", manager.get_results());
    Ok(())
}

// ---- 9. S3 settings in code -----------------------------------------------

fn s3_in_code(endpoint: &str, bucket: &str) -> Result<(), Box<dyn Error>> {
    // Overrides the AWS_* environment variables (unset fields keep them).
    let s3 = S3Options::default()
        .with_endpoint(endpoint)
        .with_allow_http(true) // only for a plain http:// endpoint
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_retry_timeout(std::time::Duration::from_secs(10));
    let url = format!("s3://{bucket}/quickstart-{}", std::process::id());

    let saver = DatasetSaver::create(&url, SaverOptions::default().with_s3(s3.clone()))?;
    // Checkpoints next to the results, on a store client of their own.
    let ckpt_dir = Location::parse_with(&url, &s3)?;
    let steps = StepCheckpointer::new(Arc::clone(ckpt_dir.store()), ckpt_dir.path("_checkpoints"))?
        .with_inline_state(INLINE_JOB_STATE_MAX);
    let options = SubmitOptions::new()
        .with_saver(saver)
        .with_checkpoint(ResumeConfig::new(Arc::new(StepProgressStore::new(steps))));
    let mut manager = TaskManager::new(|| Square);
    manager.submit_tasks(0..1_000u64, options)?;

    let reader = DatasetReader::open_with(&url, &s3)?;
    let saved: Vec<u64> = reader.iter().collect::<Result<_, _>>()?;
    assert_eq!(saved, manager.get_results());
    println!(
        "9. {} results in {url}, {} parts",
        saved.len(),
        reader.parts().len()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    // First: a worker process started by RustWorker::<Scale>::new("scale")
    // serves chunks here and exits; in the driver this returns at once.
    serve_worker_if_requested("scale", Scale::from_env);

    let tmp = std::env::temp_dir().join(format!("raygent-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = (|| {
        a_task()?;
        parameters()?;
        at_once()?;
        panics()?;
        skip()?;
        save_and_resume(&tmp)?;
        process_workers(&tmp)?;
        sequential()?;
        match (
            std::env::var("RAYGENT_S3_ENDPOINT"),
            std::env::var("RAYGENT_S3_BUCKET"),
        ) {
            (Ok(endpoint), Ok(bucket)) => s3_in_code(&endpoint, &bucket),
            _ => Ok(()),
        }
    })();
    std::fs::remove_dir_all(&tmp)?;
    result
}
