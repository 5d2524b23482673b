//! What the CLI's end-to-end tests share: running the built `raygent`
//! with deadlines, inputs, polling.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The squaring worker.
pub const SQUARE: &str = "while read x; do echo $((x*x)); done";
/// How long one command may take before the test kills it and fails.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// What a finished command left behind.
#[derive(Debug)]
pub struct Output {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Output {
    /// Panics, showing everything, unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Panics unless stderr contains every one of `needles`.
    #[track_caller]
    pub fn stderr_has(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr does not mention {n:?}:\n{}",
                self.stderr
            );
        }
        self
    }
}

/// The built binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_raygent")
}

/// `raygent ARGS...` with a clean environment for what raygent reads.
pub fn raygent<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env_remove("RUST_LOG")
        .env_remove("RAYGENT_FAILPOINT")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .env_remove("SLURM_ARRAY_TASK_MIN")
        .env_remove("SLURM_ARRAY_TASK_MAX")
        .env_remove("SLURM_ARRAY_JOB_ID")
        .env_remove("SLURM_JOB_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("RAYGENT_SHARD_OFFSET")
        .stdin(Stdio::null());
    c
}

/// Spawns `cmd` with captured output and waits for it (killing it after
/// [`DEADLINE`]).
pub fn finish(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    wait_output(cmd.spawn().expect("starting raygent"))
}

/// Waits for `child` (stdout and stderr piped), killing it after [`DEADLINE`].
pub fn wait_output(child: Child) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            signal(pid, libc::SIGKILL);
            let out = rx.recv().unwrap().unwrap();
            panic!(
                "raygent did not finish within {DEADLINE:?}; killed it\n--- stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// kill(2).
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) of a process this test started or found by its pid.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Runs `raygent ARGS...` with extra environment variables.
pub fn run_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, String)]) -> Output {
    let mut c = raygent(args);
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    finish(c)
}

/// Runs `raygent ARGS...`.
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    run_env(args, &[])
}

/// `raygent cat URL`, which must succeed.
pub fn cat(url: &str, env: &[(&str, String)]) -> String {
    let o = run_env(&["cat", url], env);
    o.expect_code(0);
    o.stdout
}

/// `raygent status --json URL`, which must succeed.
pub fn status_json(url: &str, env: &[(&str, String)]) -> Value {
    let o = run_env(&["status", "--json", url], env);
    o.expect_code(0);
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
}

/// The path as text.
pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Lines of uneven length (so that shard boundaries fall mid-line):
/// `i` followed by `i % 13` letters, for `i` in `1..=n`.
pub fn uneven_lines(n: u64) -> String {
    (1..=n)
        .map(|i| format!("{i} {}\n", "x".repeat((i % 13) as usize)))
        .collect()
}

/// Writes `body` to `dir/name` and returns its path.
pub fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(body.as_bytes()).unwrap();
    p
}

/// Polls `cond` every 50 ms until it holds, failing after `limit`.
#[track_caller]
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The committed chunks of `shard` in `raygent status --json OUT`, 0 while
/// there is no status yet (before the first checkpoint).
pub fn committed(out: &str, shard: u64) -> u64 {
    let o = run(&["status", "--json", out]);
    if o.code != 0 {
        return 0;
    }
    let st: Value = serde_json::from_str(&o.stdout).unwrap();
    shard_entry(&st, shard)["chunks_committed"]
        .as_u64()
        .unwrap_or(0)
}

/// The shard status entry of `shard` in `status --json` output.
pub fn shard_entry(st: &Value, shard: u64) -> &Value {
    st["shard_status"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["shard"] == shard)
        .unwrap_or_else(|| panic!("no shard {shard} in {st}"))
}

/// Every file under `dir` with its size and modification time, sorted.
pub fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((
                    e.path().display().to_string(),
                    m.len(),
                    m.modified().unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}
