//! Process workers driven end to end by `TaskManager`.

mod worker_support;

use std::path::Path;
use std::time::Duration;

use raygent_actors::worker::WorkerCommand;
use raygent_actors::{SubmitOptions, TaskManager};
use raygent_core::{Error, FailurePolicy, RetryPolicy};
use worker_support::assert_no_workers_left;

/// Squares; records its pid in `PID_DIR`; on item `FAULT_ITEM` does
/// `FAULT`, once if `FAULT_MARKER` is set, else every time.
const PY_WORKER: &str = r#"
import os, signal, sys
open(os.path.join(os.environ["PID_DIR"], str(os.getpid())), "w").close()
fault = os.environ.get("FAULT", "")
item = os.environ.get("FAULT_ITEM", "")
marker = os.environ.get("FAULT_MARKER")
for line in sys.stdin:
    x = line.rstrip("\n")
    if x == item and (not marker or not os.path.exists(marker)):
        if marker:
            open(marker, "w").close()
        sys.stderr.write("fault %s on item %s\n" % (fault, x))
        sys.stderr.flush()
        if fault == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif fault == "hang":
            while True:
                pass
        elif fault == "exit3":
            os._exit(3)
    print(int(x) * int(x))
"#;

fn command(dir: &Path, fault: &str, once: bool) -> WorkerCommand {
    let pids = dir.join("pids");
    std::fs::create_dir_all(&pids).expect("pid dir");
    let mut cmd = WorkerCommand::new("python3")
        .arg("-c")
        .arg(PY_WORKER)
        .env("PID_DIR", &pids)
        .env("FAULT", fault)
        .env("FAULT_ITEM", "37")
        .timeout(Duration::from_secs(5))
        .shutdown_grace(Duration::from_millis(200));
    if once {
        cmd = cmd.env("FAULT_MARKER", dir.join("fault-done"));
    }
    cmd
}

fn worker_pids(dir: &Path) -> Vec<u32> {
    std::fs::read_dir(dir.join("pids"))
        .expect("pid dir")
        .map(|e| {
            e.expect("entry")
                .file_name()
                .to_string_lossy()
                .parse()
                .expect("pid")
        })
        .collect()
}

fn items(n: u64) -> Vec<String> {
    (0..n).map(|x| x.to_string()).collect()
}

fn options() -> SubmitOptions<String> {
    SubmitOptions::new()
        .with_chunk_size(10)
        .with_at_once(true)
        .with_retry(
            RetryPolicy::new(2)
                .with_initial_backoff(Duration::from_millis(1))
                .with_jitter(false),
        )
}

fn once(fault: &str, class: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut manager = TaskManager::new(command(dir.path(), fault, true).factory())
        .with_n_cores(2)
        .with_n_cores_worker(1);
    let report = manager
        .submit_tasks(items(100), options())
        .expect("job succeeds");
    let want: Vec<String> = (0..100u64).map(|x| (x * x).to_string()).collect();
    assert_eq!(manager.get_results(), want.as_slice());
    assert!(dir.path().join("fault-done").exists(), "the fault happened");
    assert_eq!(report.retries, 1, "{report:?}");
    assert_eq!(report.failures.get(class), Some(&1), "{report:?}");
    drop(manager);
    let pids = worker_pids(dir.path());
    assert!(pids.len() >= 2, "two workers: {pids:?}");
    assert_no_workers_left(&pids);
}

#[test]
fn segfault_once_through_the_manager() {
    once("segv", "worker killed by signal");
}

#[test]
fn hang_once_through_the_manager() {
    once("hang", "timeout");
}

#[test]
fn permanent_failure_names_chunk_items_signal_and_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut manager =
        TaskManager::new(command(dir.path(), "segv", false).factory()).with_n_cores(2);
    let err = manager
        .submit_tasks(items(100), options())
        .expect_err("chunk 3 always fails");
    match &err {
        Error::ChunkFailed {
            index,
            items,
            attempts,
            last_error,
        } => {
            assert_eq!(*index, 3);
            assert_eq!(*items, 30..40);
            assert_eq!(*attempts, 3);
            assert!(last_error.contains("SIGSEGV"), "{last_error}");
            assert!(last_error.contains("fault segv on item 37"), "{last_error}");
        }
        other => panic!("unexpected error {other}"),
    }
    let text = err.to_string();
    assert!(text.contains("chunk 3 (items 30..40)"), "{text}");
    drop(manager);
    assert_no_workers_left(&worker_pids(dir.path()));
}

#[test]
fn skip_policy_keeps_the_other_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut manager =
        TaskManager::new(command(dir.path(), "exit3", false).factory()).with_n_cores(2);
    let report = manager
        .submit_tasks(
            items(50),
            options().with_failure_policy(FailurePolicy::Skip),
        )
        .expect("skip policy");
    assert_eq!(report.failed_chunks.len(), 1, "{report:?}");
    let failed = &report.failed_chunks[0];
    assert_eq!((failed.index, failed.items.clone()), (3, 30..40));
    assert!(
        failed.error.contains("exited with code 3"),
        "{}",
        failed.error
    );
    assert_eq!(report.failures.get("worker exited"), Some(&3), "{report:?}");
    let want: Vec<String> = (0..50u64)
        .filter(|x| !(30..40).contains(x))
        .map(|x| (x * x).to_string())
        .collect();
    assert_eq!(manager.get_results(), want.as_slice());
    drop(manager);
    assert_no_workers_left(&worker_pids(dir.path()));
}
