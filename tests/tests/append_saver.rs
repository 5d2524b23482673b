//! A saver that appends (the seed's CSV saver does) survives a SIGKILL:
//! killed after writing rows past the last checkpoint, the rerun cuts
//! them off through `Saver::resume` and the file ends with every row
//! exactly once, in order.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raygent_actors::{ProgressStore, StepProgressStore};

const DEADLINE: Duration = Duration::from_secs(60);

fn job(out: &Path, n: u64, hold_at: u64) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_append_job"));
    c.arg(out).arg(n.to_string()).arg(hold_at.to_string());
    c
}

fn committed_items(out: &Path) -> u64 {
    let ckpt = out.join("_checkpoints");
    let Ok(store) = object_store::local::LocalFileSystem::new_with_prefix(&ckpt) else {
        return 0;
    };
    let steps = raygent_ckpt::StepCheckpointer::new(Arc::new(store), "".into()).unwrap();
    StepProgressStore::new(steps)
        .load_latest()
        .ok()
        .flatten()
        .map_or(0, |s| s.next_item)
}

/// Waits (by condition, with a deadline) for `done`, failing if `child` exits.
fn wait_for(child: &mut Child, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the job exited ({status}) before {what}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no {what} within {DEADLINE:?}");
        }
        std::thread::yield_now();
    }
}

#[test]
fn an_appending_saver_has_no_duplicated_rows_after_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let n = 1000;
    // Batches of 50 results: the one holding item 520 is items 500..550.
    let mut child = job(&out, n, 520).spawn().unwrap();
    wait_for(&mut child, "the held save", || out.join("held").exists());
    // Every batch before the held one is checkpointed (the held one cannot
    // be: its save has not returned).
    wait_for(&mut child, "the checkpoint of item 500", || {
        committed_items(&out) == 500
    });
    // SAFETY: kill(2) of a child this test started and has not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    child.wait().unwrap();
    let rows = std::fs::read_to_string(out.join("rows.csv")).unwrap();
    assert_eq!(
        rows.lines().count(),
        550,
        "rows past the checkpoint were written"
    );

    std::fs::write(out.join("release"), "").unwrap();
    let status = job(&out, n, 520).status().unwrap();
    assert!(status.success(), "{status}");
    let rows = std::fs::read_to_string(out.join("rows.csv")).unwrap();
    let expected: String = (0..n).map(|i| format!("{i},{}\n", i * i)).collect();
    assert_eq!(rows, expected, "every row once, in order");
    assert_eq!(committed_items(&out), n);
}
