//! Rust tasks in re-executed worker processes, with real signals.
//!
//! A `harness = false` test: this binary's `main` is also the worker (it
//! starts with `serve_worker_if_requested`), exactly as in a user program.

mod worker_support;

use std::io::{BufRead, BufReader};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use raygent_actors::worker::{RustWorker, WorkerErrorKind, serve_worker_if_requested};
use raygent_core::{Task, TaskError};
use worker_support::{
    assert_errors, assert_no_workers_left, assert_permanent_failure, chunks_of, run_chunks,
    wait_exited,
};

struct Square;
impl Task for Square {
    type Input = u64;
    type Output = u64;
    fn process_item(&mut self, x: &u64) -> Result<u64, TaskError> {
        Ok(x * x)
    }
}

/// Reads environment variables of the worker.
struct Env;
impl Task for Env {
    type Input = String;
    type Output = Option<String>;
    fn process_item(&mut self, name: &String) -> Result<Option<String>, TaskError> {
        Ok(std::env::var(name).ok())
    }
}

/// Squares, and on item `FAULT_ITEM` does `FAULT` (once if `FAULT_MARKER`
/// names a file that does not exist yet, on every attempt if unset).
struct Faulty {
    fault: String,
    item: u64,
    marker: Option<PathBuf>,
}

impl Faulty {
    fn from_env() -> Self {
        Faulty {
            fault: std::env::var("FAULT").unwrap_or_default(),
            item: std::env::var("FAULT_ITEM")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX),
            marker: std::env::var_os("FAULT_MARKER").map(PathBuf::from),
        }
    }

    fn triggers(&self, items: &[u64]) -> bool {
        if !items.contains(&self.item) {
            return false;
        }
        match &self.marker {
            None => true,
            Some(m) if m.exists() => false,
            Some(m) => {
                std::fs::write(m, b"").expect("marker");
                true
            }
        }
    }
}

impl Task for Faulty {
    type Input = u64;
    type Output = u64;
    fn process_item(&mut self, x: &u64) -> Result<u64, TaskError> {
        Ok(x * x)
    }
    fn process_items(&mut self, items: &[u64]) -> Result<Vec<u64>, TaskError> {
        if self.triggers(items) {
            eprintln!("fault {} on item {}", self.fault, self.item);
            match self.fault.as_str() {
                "segv" => {
                    // SAFETY: restoring the default action and raising a signal.
                    unsafe {
                        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                        libc::raise(libc::SIGSEGV);
                    }
                }
                "abort" => std::process::abort(),
                "exit3" => std::process::exit(3),
                "panic" => panic!("boom on item {}", self.item),
                "hang" => loop {
                    std::thread::park();
                },
                "oom" => {
                    let hog: Vec<u8> = Vec::with_capacity(4 << 30);
                    std::hint::black_box(&hog);
                }
                "err" => return Err(format!("bad item {}", self.item).into()),
                "few" => return Ok(items[1..].iter().map(|x| x * x).collect()),
                "print" => println!("stray output on stdout"),
                other => panic!("unknown fault {other}"),
            }
        }
        items.iter().map(|x| self.process_item(x)).collect()
    }
}

fn faulty(fault: &str, marker: Option<&std::path::Path>) -> RustWorker<Faulty> {
    let mut w = RustWorker::<Faulty>::new("faulty")
        .env("FAULT", fault)
        .env("FAULT_ITEM", "7")
        // Keep panic and allocation-failure backtraces out of the stderr tail.
        .env("RUST_BACKTRACE", "0")
        .timeout(Duration::from_secs(20));
    if let Some(m) = marker {
        w = w.env("FAULT_MARKER", m);
    }
    w
}

fn squares(n: u64) -> Vec<u64> {
    (0..n).map(|x| x * x).collect()
}

fn fault_once(
    fault: &str,
    adjust: impl Fn(RustWorker<Faulty>) -> RustWorker<Faulty>,
    kind: impl Fn(&WorkerErrorKind) -> bool,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("fault-done");
    let mut task = adjust(faulty(fault, Some(&marker))).task();
    let run = run_chunks(&mut task, &chunks_of(20, 4), 3);
    drop(task);
    let out = run
        .result
        .unwrap_or_else(|(i, e)| panic!("chunk {i} failed: {e}"));
    assert_eq!(out, squares(20), "{fault}");
    assert!(marker.exists(), "{fault}: the fault did not happen");
    assert_eq!(run.errors.len(), 1, "{fault}: one failed attempt");
    assert_errors(&run.errors, fault, kind);
    assert_no_workers_left(&run.pids);
}

fn fault_always(
    fault: &str,
    adjust: impl Fn(RustWorker<Faulty>) -> RustWorker<Faulty>,
    kind: impl Fn(&WorkerErrorKind) -> bool,
    needle: &str,
) {
    let mut task = adjust(faulty(fault, None)).task();
    let run = run_chunks(&mut task, &chunks_of(20, 4), 3);
    drop(task);
    assert_permanent_failure(
        run,
        fault,
        kind,
        needle,
        &[&format!("fault {fault} on item 7")],
    );
}

fn same(w: RustWorker<Faulty>) -> RustWorker<Faulty> {
    w
}

fn squares_in_one_reused_worker() {
    let mut task = RustWorker::<Square>::new("square").task();
    let run = run_chunks(&mut task, &chunks_of(1000, 64), 1);
    assert_eq!(run.result.expect("ok"), squares(1000));
    assert_eq!(run.pids.len(), 1);
    assert_eq!(task.process_item(&9).expect("one"), 81);
    assert_eq!(task.name(), "square");
    drop(task);
    assert_no_workers_left(&run.pids);
}

fn worker_environment() {
    let w = RustWorker::<Env>::new("env")
        .n_cores_worker(2)
        .env("MY_VAR", "x");
    let _t0 = w.task();
    let mut task = w.task();
    let names: Vec<String> = [
        "RAYGENT_WORKER_ID",
        "RAYON_NUM_THREADS",
        "OMP_NUM_THREADS",
        "PYTHONUNBUFFERED",
        "MY_VAR",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let got = task.process_items(&names).expect("env");
    let want: Vec<Option<String>> = ["1", "2", "2", "1", "x"]
        .iter()
        .map(|s| Some((*s).to_owned()))
        .collect();
    assert_eq!(got, want);
}

fn task_error_keeps_the_worker() {
    let mut task = faulty("err", None).task();
    assert_eq!(task.process_items(&[1, 2]).expect("ok"), [1, 4]);
    let pid = task.pid();
    let err = task.process_items(&[6, 7]).expect_err("task error");
    let we = err
        .downcast_ref::<raygent_actors::worker::WorkerError>()
        .expect("WorkerError");
    assert_eq!(we.failure_class(), "task error");
    assert!(err.to_string().contains("bad item 7"), "{err}");
    assert_eq!(task.pid(), pid, "worker kept after a task error");
    assert_eq!(task.process_items(&[3]).expect("ok"), [9]);
}

fn unwinding_panic_is_a_task_error() {
    let mut task = faulty("panic", None).task();
    assert_eq!(task.process_items(&[1]).expect("ok"), [1]);
    let pid = task.pid();
    let err = task.process_items(&[7]).expect_err("panic");
    assert!(
        err.to_string().contains("panicked: boom on item 7"),
        "{err}"
    );
    assert_eq!(task.pid(), pid);
    assert_eq!(task.process_items(&[5]).expect("ok"), [25]);
}

fn stray_stdout_does_not_break_the_protocol() {
    let mut task = faulty("print", None).task();
    assert_eq!(task.process_items(&[6, 7, 8]).expect("ok"), [36, 49, 64]);
}

fn segv_once() {
    fault_once("segv", same, |k| {
        matches!(
            k,
            WorkerErrorKind::Signaled {
                name: "SIGSEGV",
                ..
            }
        )
    });
}
fn abort_once() {
    fault_once("abort", same, |k| {
        matches!(
            k,
            WorkerErrorKind::Signaled {
                name: "SIGABRT",
                ..
            }
        )
    });
}
fn exit_once() {
    fault_once("exit3", same, |k| *k == WorkerErrorKind::Exited(3));
}
fn hang_once() {
    fault_once(
        "hang",
        |w| w.timeout(Duration::from_secs(3)),
        |k| *k == WorkerErrorKind::Timeout,
    );
}
fn oom_once() {
    fault_once(
        "oom",
        |w| w.memory_limit(1 << 30),
        |k| *k == WorkerErrorKind::MemoryLimit,
    );
}
fn panic_once() {
    fault_once("panic", same, |k| *k == WorkerErrorKind::Task);
}
fn too_few_results_once() {
    fault_once("few", same, |k| *k == WorkerErrorKind::Task);
}

fn segv_always() {
    fault_always(
        "segv",
        same,
        |k| {
            matches!(
                k,
                WorkerErrorKind::Signaled {
                    name: "SIGSEGV",
                    ..
                }
            )
        },
        "killed by signal SIGSEGV",
    );
}
fn abort_always() {
    fault_always(
        "abort",
        same,
        |k| {
            matches!(
                k,
                WorkerErrorKind::Signaled {
                    name: "SIGABRT",
                    ..
                }
            )
        },
        "killed by signal SIGABRT",
    );
}
fn exit_always() {
    fault_always(
        "exit3",
        same,
        |k| *k == WorkerErrorKind::Exited(3),
        "exited with code 3",
    );
}
fn hang_always() {
    fault_always(
        "hang",
        |w| w.timeout(Duration::from_secs(3)),
        |k| *k == WorkerErrorKind::Timeout,
        "chunk timeout",
    );
}
fn oom_always() {
    fault_always(
        "oom",
        |w| w.memory_limit(1 << 30),
        |k| *k == WorkerErrorKind::MemoryLimit,
        "memory allocation of 4294967296 bytes failed",
    );
}

/// A worker program that misbehaves once (per marker) and then runs the
/// real worker: `sh -c SCRIPT` whose second run execs this binary.
fn shell_wrapped(script: &str, marker: Option<&std::path::Path>) -> RustWorker<Faulty> {
    let me = std::env::current_exe().expect("current exe");
    let mut w = RustWorker::<Faulty>::new("faulty")
        .program("sh")
        .arg("-c")
        .arg(format!(
            r#"if [ -n "$MARKER" ] && [ -e "$MARKER" ]; then exec "$SELF"; fi; [ -n "$MARKER" ] && touch "$MARKER"; {script}"#
        ))
        .env("SELF", me)
        .timeout(Duration::from_secs(20))
        .shutdown_grace(Duration::from_millis(100));
    if let Some(m) = marker {
        w = w.env("MARKER", m);
    }
    w
}

const GARBAGE: &str =
    r#"echo "writing garbage" >&2; printf '\377\377\377\177garbage'; exec cat >/dev/null"#;
const UNDECODABLE: &str = r#"echo "writing an undecodable frame" >&2; printf '\005\000\000\000hello'; exec cat >/dev/null"#;
const CLOSES_STDOUT: &str = r#"echo "closing stdout" >&2; exec 1>&-; exec sleep 1000"#;

fn wrapped_once(script: &str, needle: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("fault-done");
    let mut task = shell_wrapped(script, Some(&marker)).task();
    let run = run_chunks(&mut task, &chunks_of(10, 5), 3);
    drop(task);
    assert_eq!(run.result.expect("retried"), squares(10));
    assert_eq!(run.errors.len(), 1);
    assert_errors(&run.errors, needle, |k| *k == WorkerErrorKind::Protocol);
    assert!(
        run.errors[0].to_string().contains(needle),
        "{}",
        run.errors[0]
    );
    assert_no_workers_left(&run.pids);
}

fn garbage_frame_once() {
    wrapped_once(GARBAGE, "garbage frame");
}
fn undecodable_frame_once() {
    wrapped_once(UNDECODABLE, "does not decode");
}
fn closed_stdout_once() {
    wrapped_once(CLOSES_STDOUT, "closed its stdout");
}

fn garbage_frame_always() {
    let mut task = shell_wrapped(GARBAGE, None).task();
    let run = run_chunks(&mut task, &chunks_of(10, 5), 2);
    drop(task);
    let (index, err) = run.result.expect_err("permanent");
    assert_eq!(index, 0);
    assert_eq!(run.errors[0].failure_class(), "protocol");
    assert!(err.to_string().contains("writing garbage"), "{err}");
    assert_no_workers_left(&run.pids);
}

fn missing_program_is_a_spawn_error() {
    let mut task = RustWorker::<Square>::new("square")
        .program("/nonexistent/raygent-worker")
        .task();
    let err = task.process_items(&[1]).expect_err("spawn");
    let we = err
        .downcast_ref::<raygent_actors::worker::WorkerError>()
        .expect("WorkerError");
    assert_eq!(*we.kind(), WorkerErrorKind::Spawn);
    assert!(
        err.to_string().contains("/nonexistent/raygent-worker"),
        "{err}"
    );
}

/// A Rust worker that segfaults once, driven by `TaskManager`: every result,
/// in order, and the failure counted by class.
fn segv_once_through_the_manager() {
    use raygent_actors::{SubmitOptions, TaskManager};
    use raygent_core::RetryPolicy;
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("fault-done");
    let mut manager = TaskManager::new(faulty("segv", Some(&marker)).factory()).with_n_cores(2);
    let opts = SubmitOptions::new()
        .with_chunk_size(5)
        .with_at_once(true)
        .with_retry(RetryPolicy::new(2).with_initial_backoff(Duration::from_millis(1)));
    let report = manager.submit_tasks(0..40u64, opts).expect("job succeeds");
    assert_eq!(manager.get_results(), squares(40).as_slice());
    assert!(marker.exists());
    assert_eq!(
        report.failures.get("worker killed by signal"),
        Some(&1),
        "{report:?}"
    );
}

/// Chunks sent ahead (`Task::prefetch`) run in the same worker, in order;
/// a chunk sent ahead that is not the next one run is never mistaken for it.
fn chunks_sent_ahead() {
    let mut task = RustWorker::<Square>::new("square").task();
    assert!(task.prefetches());
    // No worker yet: nothing is sent.
    task.prefetch(&[1]);
    assert_eq!(task.process_items(&[2]).expect("ok"), [4]);
    let pid = task.pid();
    task.prefetch(&[3, 4]);
    task.prefetch(&[5]);
    assert_eq!(task.process_items(&[3, 4]).expect("ok"), [9, 16]);
    task.prefetch(&[6]);
    assert_eq!(task.process_items(&[5]).expect("ok"), [25]);
    assert_eq!(task.process_items(&[6]).expect("ok"), [36]);
    assert_eq!(task.pid(), pid, "one worker for all of them");
    // Sent ahead, then another chunk is run instead.
    task.prefetch(&[7]);
    assert_eq!(task.process_items(&[8, 9]).expect("ok"), [64, 81]);
    assert_eq!(task.process_items(&[7]).expect("ok"), [49]);
    let pids: Vec<u32> = [pid, task.pid()].into_iter().flatten().collect();
    drop(task);
    assert_no_workers_left(&pids);
}

/// The worker dies on a chunk while the next was sent ahead, and the one
/// after is told while no worker runs: both run next, in order, on one
/// fresh worker, which is never restarted for them (a restart could lose
/// a crash of the chunk it held, and its attempt with it).
fn told_chunks_outlive_a_worker_death() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("fault-done");
    let mut task = faulty("segv", Some(&marker)).task();
    assert_eq!(task.process_items(&[1]).expect("ok"), [1]);
    let first = task.pid();
    // Item 7 kills the worker; [2] was sent ahead to it and dies with it.
    task.prefetch(&[7]);
    task.prefetch(&[2]);
    let err = task.process_items(&[7]).expect_err("the worker dies");
    assert!(marker.exists());
    assert!(err.to_string().contains("signal"), "{err}");
    // Told while no worker runs.
    task.prefetch(&[3]);
    assert_eq!(task.process_items(&[2]).expect("ok"), [4]);
    let second = task.pid();
    assert_ne!(second, first, "a fresh worker");
    task.prefetch(&[4]);
    assert_eq!(task.process_items(&[3]).expect("ok"), [9]);
    assert_eq!(task.process_items(&[4]).expect("ok"), [16]);
    assert_eq!(task.pid(), second, "no restart for the chunks told ahead");
    let pids: Vec<u32> = [first, second].into_iter().flatten().collect();
    drop(task);
    assert_no_workers_left(&pids);
}

/// A task error on a chunk while the next is sent ahead: that one fails
/// alone, once, and every result comes back in order.
fn task_error_once_through_the_manager() {
    use raygent_actors::{SubmitOptions, TaskManager};
    use raygent_core::RetryPolicy;
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("fault-done");
    let mut manager = TaskManager::new(faulty("err", Some(&marker)).factory()).with_n_cores(1);
    let opts = SubmitOptions::new()
        .with_chunk_size(2)
        .with_at_once(true)
        .with_retry(RetryPolicy::new(2).with_initial_backoff(Duration::from_millis(1)));
    let report = manager.submit_tasks(0..200u64, opts).expect("job succeeds");
    assert_eq!(manager.get_results(), squares(200).as_slice());
    assert!(marker.exists());
    assert_eq!(report.failures.values().sum::<u64>(), 1, "{report:?}");
}

/// The worker dies when the process that started it is SIGKILLed (no orphan).
fn worker_dies_with_its_parent() {
    let me = std::env::current_exe().expect("current exe");
    let mut parent = Command::new(me)
        .env("RAYGENT_TEST_ROLE", "orphan-parent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn parent");
    let mut line = String::new();
    BufReader::new(parent.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read pid");
    let worker: u32 = line.trim().parse().expect("worker pid");
    assert!(worker_support::process_exists(worker));
    parent.kill().expect("SIGKILL the parent");
    parent.wait().expect("reap parent");
    assert!(
        wait_exited(worker, Duration::from_secs(10)),
        "worker {worker} outlived its parent"
    );
}

/// Role of the process killed by `worker_dies_with_its_parent`.
fn orphan_parent() {
    let mut task = RustWorker::<Square>::new("square").task();
    assert_eq!(task.process_items(&[3]).expect("ok"), [9]);
    println!("{}", task.pid().expect("pid"));
    // Wait to be killed: our stdin stays open until then.
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
}

fn main() {
    serve_worker_if_requested("square", || Square);
    serve_worker_if_requested("env", || Env);
    serve_worker_if_requested("faulty", Faulty::from_env);
    if std::env::var_os("RAYGENT_TEST_ROLE").is_some_and(|r| r == "orphan-parent") {
        orphan_parent();
        return;
    }

    let tests: &[(&str, fn())] = &[
        ("squares_in_one_reused_worker", squares_in_one_reused_worker),
        ("worker_environment", worker_environment),
        ("task_error_keeps_the_worker", task_error_keeps_the_worker),
        (
            "unwinding_panic_is_a_task_error",
            unwinding_panic_is_a_task_error,
        ),
        (
            "stray_stdout_does_not_break_the_protocol",
            stray_stdout_does_not_break_the_protocol,
        ),
        ("segv_once", segv_once),
        ("abort_once", abort_once),
        ("exit_once", exit_once),
        ("hang_once", hang_once),
        ("oom_once", oom_once),
        ("panic_once", panic_once),
        ("too_few_results_once", too_few_results_once),
        ("segv_always", segv_always),
        ("abort_always", abort_always),
        ("exit_always", exit_always),
        ("hang_always", hang_always),
        ("oom_always", oom_always),
        ("garbage_frame_once", garbage_frame_once),
        ("undecodable_frame_once", undecodable_frame_once),
        ("closed_stdout_once", closed_stdout_once),
        ("garbage_frame_always", garbage_frame_always),
        (
            "missing_program_is_a_spawn_error",
            missing_program_is_a_spawn_error,
        ),
        ("worker_dies_with_its_parent", worker_dies_with_its_parent),
        (
            "segv_once_through_the_manager",
            segv_once_through_the_manager,
        ),
        ("chunks_sent_ahead", chunks_sent_ahead),
        (
            "told_chunks_outlive_a_worker_death",
            told_chunks_outlive_a_worker_death,
        ),
        (
            "task_error_once_through_the_manager",
            task_error_once_through_the_manager,
        ),
    ];
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let list = std::env::args().any(|a| a == "--list");
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in tests {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        if list {
            println!("{name}: test");
            continue;
        }
        ran += 1;
        let ok = catch_unwind(AssertUnwindSafe(test)).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    if list {
        return;
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; finished in {:.2}s",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        println!("failures: {failed:?}");
        std::process::exit(1);
    }
}
