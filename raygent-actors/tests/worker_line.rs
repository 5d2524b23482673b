//! Line-protocol workers with real processes and real signals.

mod worker_support;

use std::path::Path;
use std::time::{Duration, Instant};

use raygent_actors::worker::{WorkerCommand, WorkerErrorKind};
use raygent_core::Task;
use worker_support::{
    assert_errors, assert_no_workers_left, assert_permanent_failure, chunks_of, run_chunks,
};

/// A Python worker that squares numbers, and on item `FAULT_ITEM` does
/// `FAULT` (once if `FAULT_MARKER` names a file that does not exist yet,
/// creating it; on every attempt if unset).
const PY_WORKER: &str = r#"
import os, signal, sys
fault = os.environ.get("FAULT", "")
item = os.environ.get("FAULT_ITEM", "")
marker = os.environ.get("FAULT_MARKER")
sys.stderr.write("worker %s started\n" % os.environ["RAYGENT_WORKER_ID"])
for line in sys.stdin:
    x = line.rstrip("\n")
    if x == item and (not marker or not os.path.exists(marker)):
        if marker:
            open(marker, "w").close()
        sys.stderr.write("fault %s on item %s\n" % (fault, x))
        sys.stderr.flush()
        if fault == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif fault == "abort":
            os.abort()
        elif fault == "exit3":
            sys.stdout.flush()
            os._exit(3)
        elif fault == "hang":
            while True:
                pass
        elif fault == "oom":
            hog = bytearray(4 * 1024 * 1024 * 1024)
        elif fault == "garbage":
            sys.stdout.buffer.write(b"\xff\xfe\x00garbage\n")
            sys.stdout.flush()
            continue
        elif fault == "few":
            sys.stdout.flush()
            os._exit(0)
        elif fault == "extra":
            # The extra line and the answer in one write.
            sys.stdout.write("extra\n%d\n" % (int(x) * int(x)))
            sys.stdout.flush()
            continue
    print(int(x) * int(x))
"#;

fn py(fault: &str, marker: Option<&Path>) -> WorkerCommand {
    let mut cmd = WorkerCommand::new("python3")
        .arg("-c")
        .arg(PY_WORKER)
        .env("FAULT", fault)
        .env("FAULT_ITEM", "7")
        .timeout(Duration::from_secs(20));
    if let Some(m) = marker {
        cmd = cmd.env("FAULT_MARKER", m);
    }
    cmd
}

fn string_chunks(n: u64, size: usize) -> Vec<Vec<String>> {
    chunks_of(n, size)
        .into_iter()
        .map(|c| c.into_iter().map(|x| x.to_string()).collect())
        .collect()
}

fn squares(n: u64) -> Vec<String> {
    (0..n).map(|x| (x * x).to_string()).collect()
}

/// The fault happens once (on item 7); the retry succeeds and every result
/// is there, in order; the failed attempt has the expected kind.
fn fault_once(
    fault: &str,
    adjust: impl Fn(WorkerCommand) -> WorkerCommand,
    kind: impl Fn(&WorkerErrorKind) -> bool,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("fault-done");
    let cmd = adjust(py(fault, Some(&marker)));
    let mut task = cmd.task();
    let run = run_chunks(&mut task, &string_chunks(20, 4), 3);
    drop(task);
    let out = run
        .result
        .unwrap_or_else(|(i, e)| panic!("chunk {i} failed: {e}"));
    assert_eq!(out, squares(20), "{fault}");
    assert!(marker.exists(), "{fault}: the fault did not happen");
    assert_eq!(run.errors.len(), 1, "{fault}: one failed attempt");
    assert_errors(&run.errors, fault, kind);
    assert!(
        run.pids.len() >= 2,
        "{fault}: a fresh worker after the failure"
    );
    assert_no_workers_left(&run.pids);
}

/// The fault happens on every attempt: a permanent failure of chunk 1
/// (items 4..8) whose error has the expected kind, says `needle` and holds
/// the worker's last stderr lines.
fn fault_always(
    fault: &str,
    adjust: impl Fn(WorkerCommand) -> WorkerCommand,
    kind: impl Fn(&WorkerErrorKind) -> bool,
    needle: &str,
) {
    let cmd = adjust(py(fault, None));
    let mut task = cmd.task();
    let run = run_chunks(&mut task, &string_chunks(20, 4), 3);
    drop(task);
    assert_permanent_failure(run, fault, kind, needle, &["fault ", "on item 7"]);
}

fn no_change(c: WorkerCommand) -> WorkerCommand {
    c
}

#[test]
fn shell_worker_squares_and_is_reused_with_its_environment() {
    let cmd = WorkerCommand::new(r#"while read x; do echo "$RAYGENT_WORKER_ID $OMP_NUM_THREADS $RAYON_NUM_THREADS $PYTHONUNBUFFERED $((x*x))"; done"#)
        .shell(true)
        .n_cores_worker(3);
    let _first = cmd.task(); // takes worker id 0
    let mut task = cmd.task();
    assert_eq!(task.worker_id(), 1);
    assert_eq!(task.pid(), None, "started lazily");
    let run = run_chunks(&mut task, &string_chunks(25, 7), 1);
    let out = run.result.unwrap_or_else(|(i, e)| panic!("chunk {i}: {e}"));
    let want: Vec<String> = (0..25u64).map(|x| format!("1 3 3 1 {}", x * x)).collect();
    assert_eq!(out, want);
    assert_eq!(run.pids.len(), 1, "one worker serves every chunk");
    assert_eq!(
        task.process_item(&"12".to_owned()).expect("one item"),
        "1 3 3 1 144"
    );
    assert_eq!(
        task.process_items(&[]).expect("empty chunk"),
        Vec::<String>::new()
    );
    drop(task);
    assert_no_workers_left(&run.pids);
}

#[test]
fn shell_arguments_are_positional_parameters() {
    let cmd = WorkerCommand::new(r#"while read x; do echo "$1-$x-$2"; done"#)
        .shell(true)
        .args(["a b", "c"]);
    let mut task = cmd.task();
    assert_eq!(
        task.process_items(&["x".to_owned()]).expect("runs"),
        ["a b-x-c"]
    );
}

#[test]
fn program_without_shell_gets_arguments_verbatim() {
    let mut task = WorkerCommand::new("cat").task();
    let items: Vec<String> = ["$HOME", "'quoted' \"x\"", "", "  spaces  "]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(task.process_items(&items).expect("cat echoes"), items);
}

#[test]
fn large_chunk_with_a_worker_that_answers_before_reading_everything() {
    // `cat` writes each line back as soon as it reads it: 4 MB each way
    // through 64 KiB pipes deadlocks unless stdin is written concurrently.
    let mut task = WorkerCommand::new("cat")
        .timeout(Duration::from_secs(60))
        .task();
    let items: Vec<String> = (0..40_000).map(|i| format!("{i:0>100}")).collect();
    let out = task.process_items(&items).expect("no deadlock");
    assert_eq!(out, items);
}

#[test]
fn segfault_once_is_retried() {
    fault_once("segv", no_change, |k| {
        matches!(
            k,
            WorkerErrorKind::Signaled {
                name: "SIGSEGV",
                ..
            }
        )
    });
}

#[test]
fn abort_once_is_retried() {
    fault_once("abort", no_change, |k| {
        matches!(
            k,
            WorkerErrorKind::Signaled {
                name: "SIGABRT",
                ..
            }
        )
    });
}

#[test]
fn exit_once_is_retried() {
    fault_once("exit3", no_change, |k| *k == WorkerErrorKind::Exited(3));
}

#[test]
fn hang_once_is_killed_at_the_timeout_and_retried() {
    let started = Instant::now();
    fault_once(
        "hang",
        |c| c.timeout(Duration::from_secs(3)),
        |k| *k == WorkerErrorKind::Timeout,
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn memory_limit_once_kills_only_that_worker() {
    fault_once(
        "oom",
        |c| c.memory_limit(512 << 20),
        |k| *k == WorkerErrorKind::MemoryLimit,
    );
}

#[test]
fn garbage_once_is_a_protocol_error() {
    fault_once("garbage", no_change, |k| *k == WorkerErrorKind::Protocol);
}

#[test]
fn too_few_lines_once_is_a_protocol_error() {
    fault_once("few", no_change, |k| *k == WorkerErrorKind::Protocol);
}

#[test]
fn extra_lines_once_are_a_protocol_error() {
    // The extra line is seen either right after the chunk or before the
    // next one: in both cases some attempt fails and every result is right.
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("fault-done");
    let mut task = py("extra", Some(&marker)).task();
    // One chunk per item: the extra line cannot be mistaken for a result.
    let run = run_chunks(&mut task, &string_chunks(12, 1), 3);
    drop(task);
    assert!(marker.exists());
    let out = run.result.unwrap_or_else(|(i, e)| panic!("chunk {i}: {e}"));
    assert_eq!(out, squares(12));
    assert_errors(&run.errors, "extra", |k| *k == WorkerErrorKind::Protocol);
    assert!(
        run.errors[0].to_string().contains("extra"),
        "{}",
        run.errors[0]
    );
    assert_no_workers_left(&run.pids);
}

#[test]
fn segfault_every_time_names_the_signal_and_stderr() {
    fault_always(
        "segv",
        no_change,
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

#[test]
fn abort_every_time_names_the_signal() {
    fault_always(
        "abort",
        no_change,
        |k| {
            matches!(
                k,
                WorkerErrorKind::Signaled {
                    name: "SIGABRT",
                    ..
                }
            )
        },
        "SIGABRT",
    );
}

#[test]
fn exit_every_time_names_the_code() {
    fault_always(
        "exit3",
        no_change,
        |k| *k == WorkerErrorKind::Exited(3),
        "exited with code 3",
    );
}

#[test]
fn hang_every_time_is_a_timeout() {
    // Long enough for a fresh Python worker to start and reach item 7 (and
    // say so on stderr) on a loaded machine before the timeout kills it.
    fault_always(
        "hang",
        |c| c.timeout(Duration::from_secs(6)),
        |k| *k == WorkerErrorKind::Timeout,
        "timeout",
    );
}

#[test]
fn memory_limit_every_time() {
    fault_always(
        "oom",
        |c| c.memory_limit(512 << 20),
        |k| *k == WorkerErrorKind::MemoryLimit,
        "memory limit of 536870912 bytes exceeded",
    );
}

#[test]
fn garbage_every_time() {
    fault_always(
        "garbage",
        no_change,
        |k| *k == WorkerErrorKind::Protocol,
        "not UTF-8",
    );
}

#[test]
fn too_few_lines_every_time() {
    fault_always(
        "few",
        no_change,
        |k| *k == WorkerErrorKind::Protocol,
        "exited with code 0 after",
    );
}

#[test]
fn shell_segfault_with_failure_classes() {
    let cmd = WorkerCommand::new(
        r#"while read x; do if [ "$x" = 3 ]; then echo "dying on $x" >&2; kill -SEGV $$; fi; echo $((x*x)); done"#,
    )
    .shell(true);
    let mut task = cmd.task();
    let run = run_chunks(&mut task, &string_chunks(6, 2), 2);
    drop(task);
    let (index, err) = run.result.expect_err("fails every time");
    assert_eq!(index, 1);
    let we = &run.errors[1];
    assert_eq!(we.failure_class(), "worker killed by signal");
    assert_eq!(we.stderr_tail(), ["dying on 3"]);
    assert!(err.to_string().contains("SIGSEGV") && err.to_string().contains("dying on 3"));
    assert_no_workers_left(&run.pids);
}

#[test]
fn timeout_kills_the_workers_children_too() {
    // The shell's `sleep` is a grandchild: killing only the shell would
    // leave it behind.
    let cmd = WorkerCommand::new(
        r#"while read x; do if [ "$x" = 2 ]; then sleep 1000 & echo "sleeper $!" >&2; wait; fi; echo $x; done"#,
    )
    .shell(true)
    .timeout(Duration::from_secs(2));
    let mut task = cmd.task();
    let run = run_chunks(&mut task, &string_chunks(4, 4), 1);
    drop(task);
    assert!(run.result.is_err());
    assert_eq!(run.errors[0].failure_class(), "timeout");
    assert!(
        run.errors[0].to_string().contains("2 of 4 result(s)"),
        "{}",
        run.errors[0]
    );
    let sleeper: u32 = run.errors[0].stderr_tail()[0]
        .strip_prefix("sleeper ")
        .and_then(|p| p.parse().ok())
        .expect("the shell reported its child");
    assert!(
        worker_support::wait_exited(sleeper, Duration::from_secs(10)),
        "grandchild left"
    );
    assert_no_workers_left(&run.pids);
}

#[test]
fn missing_program_is_a_spawn_error_that_says_check_path() {
    let mut task = WorkerCommand::new("raygent-no-such-program-xyz").task();
    let err = task
        .process_items(&["1".to_owned()])
        .expect_err("cannot start");
    let text = err.to_string();
    let we = err
        .downcast_ref::<raygent_actors::worker::WorkerError>()
        .expect("a WorkerError");
    assert_eq!(we.failure_class(), "spawn");
    assert!(
        text.contains("raygent-no-such-program-xyz") && text.contains("check PATH"),
        "{text}"
    );
}

#[test]
fn item_with_a_newline_is_refused_without_killing_the_worker() {
    let mut task = WorkerCommand::new("cat").task();
    assert_eq!(task.process_items(&["a".to_owned()]).expect("ok"), ["a"]);
    let pid = task.pid();
    let err = task
        .process_items(&["b".to_owned(), "c\nd".to_owned()])
        .expect_err("newline");
    assert!(
        err.to_string()
            .contains("item 1 of the chunk contains a newline"),
        "{err}"
    );
    assert_eq!(task.pid(), pid, "worker kept");
    assert_eq!(task.process_items(&["e".to_owned()]).expect("ok"), ["e"]);
}

#[test]
fn drop_kills_a_worker_that_ignores_the_end_of_its_input() {
    let cmd = WorkerCommand::new(r#"while read x; do echo $x; done; exec sleep 1000"#)
        .shell(true)
        .shutdown_grace(Duration::from_millis(100));
    let mut task = cmd.task();
    assert_eq!(task.process_items(&["1".to_owned()]).expect("ok"), ["1"]);
    let pid = task.pid().expect("running");
    let started = Instant::now();
    drop(task);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_no_workers_left(&[pid]);
}

#[test]
fn a_worker_that_exits_between_chunks_is_replaced() {
    // Answers one line, then exits: every chunk of one item gets a fresh worker.
    let cmd = WorkerCommand::new(r#"read x; echo $((x+1))"#).shell(true);
    let mut task = cmd.task();
    // A chunk sent before the exit is noticed fails once and is retried.
    let run = run_chunks(&mut task, &string_chunks(3, 1), 2);
    drop(task);
    assert_eq!(run.result.expect("ok"), ["1", "2", "3"]);
    assert!(run.pids.len() >= 3);
    assert_no_workers_left(&run.pids);
}
