//! Helpers shared by the process-worker tests: a retry loop like the
//! runtime's, and checks that no worker process is left behind.
#![allow(dead_code)]

use raygent_actors::worker::{LineTask, ProcessTask, WorkerError, WorkerErrorKind};
use raygent_core::{Task, TaskError};

/// A task whose current worker pid can be read.
pub trait HasPid {
    /// The running worker's pid.
    fn pid(&self) -> Option<u32>;
}
impl HasPid for LineTask {
    fn pid(&self) -> Option<u32> {
        LineTask::pid(self)
    }
}
impl<T: Task> HasPid for ProcessTask<T> {
    fn pid(&self) -> Option<u32> {
        ProcessTask::pid(self)
    }
}

/// What a run of several chunks did.
pub struct Run<O> {
    /// All outputs in order, or the chunk that failed on every attempt and its last error.
    pub result: Result<Vec<O>, (usize, TaskError)>,
    /// Every failed attempt's error, in order.
    pub errors: Vec<WorkerError>,
    /// Every worker pid seen.
    pub pids: Vec<u32>,
}

/// Runs `chunks` through `task`, retrying each up to `attempts` times in all,
/// like the runtime does (same instance: it restarts its worker itself).
pub fn run_chunks<T: Task + HasPid>(
    task: &mut T,
    chunks: &[Vec<T::Input>],
    attempts: u32,
) -> Run<T::Output> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut pids = Vec::new();
    for (index, chunk) in chunks.iter().enumerate() {
        let mut last = None;
        for _ in 0..attempts {
            match task.process_items(chunk) {
                Ok(v) => {
                    assert_eq!(v.len(), chunk.len(), "one output per input");
                    if let Some(pid) = task.pid()
                        && !pids.contains(&pid)
                    {
                        pids.push(pid);
                    }
                    out.extend(v);
                    last = None;
                    break;
                }
                Err(e) => {
                    let we = e
                        .downcast_ref::<WorkerError>()
                        .unwrap_or_else(|| panic!("not a WorkerError: {e}"))
                        .clone();
                    if let Some(pid) = we.pid()
                        && !pids.contains(&pid)
                    {
                        pids.push(pid);
                    }
                    errors.push(we);
                    last = Some(e);
                }
            }
        }
        if let Some(e) = last {
            return Run {
                result: Err((index, e)),
                errors,
                pids,
            };
        }
    }
    Run {
        result: Ok(out),
        errors,
        pids,
    }
}

/// True if a process (running or zombie) with this pid exists.
pub fn process_exists(pid: u32) -> bool {
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The processes (possibly zombies) in process group `pgid`: (pid, parent pid).
pub fn group_members(pgid: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue; // gone meanwhile
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces, cut at the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[2].parse::<u32>().ok() == Some(pgid) {
            out.push((pid, f[1].parse().unwrap_or(0)));
        }
    }
    out
}

/// Waits (up to `limit`) for a process that is not our child to exit;
/// true once it has (or is already gone).
pub fn wait_exited(pid: u32, limit: std::time::Duration) -> bool {
    // SAFETY: pidfd_open takes a pid and flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return !process_exists(pid);
    }
    let mut pfd = libc::pollfd {
        fd: fd as i32,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd; fd is ours and closed right after.
    let r = unsafe {
        let r = libc::poll(&mut pfd, 1, ms);
        libc::close(fd as i32);
        r
    };
    r > 0
}

/// Asserts that none of the workers is still there (not even as a zombie),
/// and that whatever they started (their process group) has died too:
/// killed grandchildren are reaped by init, so wait for their exit.
pub fn assert_no_workers_left(pids: &[u32]) {
    assert!(!pids.is_empty(), "the test saw no worker at all");
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() } as u32;
    for &pid in pids {
        assert!(!process_exists(pid), "worker {pid} is still there");
        for (member, parent) in group_members(pid) {
            assert_ne!(
                parent, me,
                "process {member} of worker group {pid} is our child"
            );
            assert!(
                wait_exited(member, std::time::Duration::from_secs(10)),
                "process {member} of worker group {pid} is still running"
            );
        }
    }
}

/// Asserts the kinds of the failed attempts all satisfy `pred`, and there was at least one.
pub fn assert_errors(errors: &[WorkerError], what: &str, pred: impl Fn(&WorkerErrorKind) -> bool) {
    assert!(!errors.is_empty(), "{what}: expected a failed attempt");
    for e in errors {
        assert!(
            pred(e.kind()),
            "{what}: unexpected error kind {:?}: {e}",
            e.kind()
        );
    }
}

/// `n` numbers in chunks of `size`.
pub fn chunks_of(n: u64, size: usize) -> Vec<Vec<u64>> {
    (0..n)
        .collect::<Vec<_>>()
        .chunks(size)
        .map(<[u64]>::to_vec)
        .collect()
}

/// Checks a run whose fault happened on every attempt: a permanent failure
/// of chunk 1 (the chunk holding item 7) after three attempts, every error of
/// the expected kind, the final error saying `needle` and carrying the
/// worker's last stderr lines (which must contain each of `stderr`), and no
/// worker left behind.
pub fn assert_permanent_failure<O>(
    run: Run<O>,
    fault: &str,
    kind: impl Fn(&WorkerErrorKind) -> bool,
    needle: &str,
    stderr: &[&str],
) {
    let (index, err) = match run.result {
        Ok(_) => panic!("{fault}: expected a permanent failure"),
        Err(e) => e,
    };
    assert_eq!(index, 1, "{fault}: the chunk holding item 7");
    assert_eq!(run.errors.len(), 3, "{fault}: three attempts");
    assert_errors(&run.errors, fault, &kind);
    let text = err.to_string();
    assert!(text.contains(needle), "{fault}: {needle:?} not in {text}");
    assert!(
        text.contains("last stderr lines") && stderr.iter().all(|s| text.contains(s)),
        "{fault}: stderr tail missing in {text}"
    );
    assert_no_workers_left(&run.pids);
}
