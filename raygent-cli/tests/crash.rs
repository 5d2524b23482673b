//! Crash-resume with real processes and real signals: `raygent run` is
//! killed with SIGKILL at random instants and at chosen points (inside a
//! multipart upload, between a part and its commit record, inside a
//! checkpoint save just before its commit object is written (the CLI keeps
//! the job state inside `COMMIT`, so the step is then not there at all)
//! and just after it, before the steps beyond keep-3 are deleted),
//! rerun to completion, and its output
//! must equal an uninterrupted run's, item for item, with no stray part.
//!
//! `RAYGENT_CRASH_TRIALS` raises the number of random-kill trials for a
//! longer run (default 20 on local disk, 6 on S3).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use raygent_tests::S3Server;

const SQUARE: &[&str] = &["sh", "-c", "while read x; do echo $((x*x)); done"];
/// Each result is 512 times its input: parts big enough for multipart uploads.
const WIDE: &[&str] = &[
    "python3",
    "-c",
    "import sys\nfor l in sys.stdin: print(l.strip() * 512)",
];
/// Chunks of 10, a part every 100 results, two workers.
const ARGS: &[&str] = &["-c", "10", "--save-interval", "100", "-j", "2"];
/// The same, with a checkpoint after every part (to reach the N-th one).
const EVERY_PART: &[&str] = &[
    "-c",
    "10",
    "--save-interval",
    "100",
    "-j",
    "2",
    "--checkpoint-interval",
    "0s",
];
/// Chunks of 100; the first part holds 5000 wide results (~10 MB), above
/// an 8 MiB threshold: multipart.
const WIDE_ARGS: &[&str] = &[
    "-c",
    "100",
    "--save-interval",
    "5000",
    "-j",
    "2",
    "--checkpoint-interval",
    "0s",
    "--multipart-threshold",
    "8M",
];

struct Job {
    input: PathBuf,
    output: String,
    env: Vec<(&'static str, String)>,
    args: Vec<String>,
    worker: Vec<String>,
}

impl Job {
    fn local(dir: &Path, input: &Path, worker: &[&str], args: &[&str]) -> Job {
        Job {
            input: input.to_path_buf(),
            output: dir.to_str().unwrap().to_owned(),
            env: Vec::new(),
            args: args.iter().map(|s| s.to_string()).collect(),
            worker: worker.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn s3(s3: &S3Server, bucket: &str, input: &Path, worker: &[&str], args: &[&str]) -> Job {
        Job {
            input: input.to_path_buf(),
            output: format!("s3://{bucket}/job"),
            env: s3.env(),
            args: args.iter().map(|s| s.to_string()).collect(),
            worker: worker.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_raygent"));
        c.arg("run")
            .arg("-q")
            .arg("-i")
            .arg(&self.input)
            .arg("-o")
            .arg(&self.output)
            .args(&self.args)
            .arg("--")
            .args(&self.worker)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("RAYGENT_FAILPOINT")
            .stdin(Stdio::null());
        c
    }

    /// Runs to completion; panics unless it succeeds.
    fn run(&self) -> Duration {
        let t = Instant::now();
        let out = self.command().output().unwrap();
        assert!(
            out.status.success(),
            "raygent run failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    }

    /// Starts the job: its pid, a channel with its exit status and one with
    /// its stderr lines.
    fn spawn(
        &self,
        failpoint: Option<&str>,
    ) -> (i32, mpsc::Receiver<ExitStatus>, mpsc::Receiver<String>) {
        let mut cmd = self.command();
        if let Some(fp) = failpoint {
            cmd.env("RAYGENT_FAILPOINT", fp);
        }
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let stderr = child.stderr.take().unwrap();
        let (ltx, lrx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = ltx.send(line);
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait().unwrap());
        });
        (pid, rx, lrx)
    }

    fn cat(&self) -> Vec<u8> {
        let out = Command::new(env!("CARGO_BIN_EXE_raygent"))
            .arg("cat")
            .arg(&self.output)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cat: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

fn kill9(pid: i32) {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

fn write_input(dir: &Path, name: &str, n: u64) -> PathBuf {
    let p = dir.join(name);
    let text: String = (1..=n).map(|i| format!("{i}\n")).collect();
    std::fs::write(&p, text).unwrap();
    p
}

fn lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// On a local output: every part file has a commit record, and no other
/// file (temporary, staging) is left beside them.
fn assert_no_stray_parts(dir: &Path) {
    let mut parts = Vec::new();
    let mut others = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.starts_with("part-") {
            parts.push(name);
        } else if !name.starts_with('_') {
            others.push(name);
        }
    }
    let records: Vec<String> = std::fs::read_dir(dir.join("_manifest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("part-"))
        .collect();
    assert!(
        others.is_empty(),
        "unexpected files in the output: {others:?}"
    );
    assert_eq!(
        parts.len(),
        records.len(),
        "parts {parts:?} vs records {records:?}"
    );
    for p in &parts {
        let stem = p.rsplit_once('.').unwrap().0;
        assert!(
            records.iter().any(|r| r.starts_with(stem)),
            "part {p} has no commit record"
        );
    }
    // Checkpoints: the CLI keeps 3 steps, each one object (`COMMIT`), and
    // a rerun cleans up what a kill left (a step not committed yet, or
    // committed before the older ones were deleted).
    let mut steps: Vec<(String, Vec<String>)> = std::fs::read_dir(dir.join("_checkpoints"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let files = std::fs::read_dir(e.path())
                .unwrap()
                .map(|f| f.unwrap().file_name().into_string().unwrap())
                .collect();
            (e.file_name().into_string().unwrap(), files)
        })
        .collect();
    steps.sort();
    assert!((1..=3).contains(&steps.len()), "{steps:?}");
    for (step, files) in &steps {
        assert_eq!(files, &["COMMIT"], "{step}");
    }
}

fn trials(default: usize) -> usize {
    std::env::var("RAYGENT_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Trial `i`'s kill instant, as a fraction of a reference run: a
/// golden-ratio sequence offset by the process id, so the instants cover
/// the whole run and differ from one test run to the next.
fn kill_fraction(trial: usize) -> f64 {
    let seed = f64::from(std::process::id() % 1000) / 1000.0;
    (seed + trial as f64 * 0.618_033_988_75).fract() * 0.95 + 0.02
}

/// Kills jobs at `n` instants spread over a reference run's duration,
/// resumes each to completion and compares with the reference output.
fn random_kills(
    make: &dyn Fn(usize) -> (Job, Option<PathBuf>),
    reference: &[u8],
    span: Duration,
    n: usize,
) {
    let mut killed = 0;
    let mut span = span;
    for trial in 0..n {
        let (job, local_dir) = make(trial);
        let delay = span.mul_f64(kill_fraction(trial));
        let (pid, exited, _lines) = job.spawn(None);
        // The instant is the test's input: the kill waits for nothing to happen.
        match exited.recv_timeout(delay) {
            Ok(status) => {
                assert!(status.success(), "trial {trial}: {status}");
                // The job was faster than the reference run: aim earlier.
                span = span.mul_f64(0.7);
            }
            Err(_) => {
                kill9(pid);
                if exited.recv().unwrap().code().is_none() {
                    killed += 1;
                }
            }
        }
        job.run();
        assert!(
            job.cat() == reference,
            "trial {trial} (killed after {delay:?}): the output differs from an uninterrupted run's"
        );
        if let Some(d) = local_dir {
            assert_no_stray_parts(&d);
        }
    }
    assert!(
        killed * 2 >= n,
        "only {killed} of {n} trials were killed before the job ended"
    );
}

/// Kills the job when it reaches `failpoint` (`name:N`: the N-th time),
/// resumes it and compares with the reference output.
fn kill_at(job: &Job, failpoint: &str, reference: &[u8]) {
    let (pid, exited, lines) = job.spawn(Some(failpoint));
    let marker = format!("RAYGENT_FAILPOINT {}", failpoint.split(':').next().unwrap());
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line == marker => break,
            Ok(_) => {}
            Err(_) => {
                kill9(pid);
                panic!(
                    "the job never reached {failpoint}: {:?}",
                    exited.recv_timeout(Duration::from_secs(10))
                );
            }
        }
    }
    kill9(pid);
    assert_eq!(exited.recv().unwrap().code(), None, "killed by a signal");
    job.run();
    assert!(
        job.cat() == reference,
        "the output differs from an uninterrupted run's after a kill at {failpoint}"
    );
}

#[test]
fn sigkill_at_random_instants_on_local_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), "input.txt", 5000);
    let reference = Job::local(&tmp.path().join("ref"), &input, SQUARE, ARGS);
    let span = reference.run();
    let expected = reference.cat();
    assert_eq!(lines(&expected), 5000);
    let root = tmp.path().to_path_buf();
    random_kills(
        &|trial| {
            let dir = root.join(format!("t{trial}"));
            (Job::local(&dir, &input, SQUARE, ARGS), Some(dir))
        },
        &expected,
        span,
        trials(20),
    );
}

/// The same with `--format parquet` (and JSON results, so the parts have
/// typed columns): exact output, no stray part, and `_SUCCESS` never
/// present for an incomplete job (a kill may land after it was written,
/// when the job was already complete).
#[test]
fn sigkill_at_random_instants_with_parquet() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), "input.txt", 5000);
    let json: &[&str] = &[
        "sh",
        "-c",
        "while read x; do echo \"{\\\"x\\\": $x, \\\"sq\\\": $((x*x)), \\\"s\\\": \\\"n$x\\\"}\"; done",
    ];
    let args: Vec<&str> = ARGS
        .iter()
        .copied()
        .chain(["--format", "parquet", "--result-format", "json"])
        .collect();
    let reference = Job::local(&tmp.path().join("ref"), &input, json, &args);
    let span = reference.run();
    let expected = reference.cat();
    assert_eq!(lines(&expected), 5000);
    assert!(expected.starts_with(b"{\"x\":1,\"sq\":1,\"s\":\"n1\"}\n"));
    let root = tmp.path().to_path_buf();
    let mut killed = 0;
    let mut span = span;
    let n = trials(12);
    for trial in 0..n {
        let dir = root.join(format!("t{trial}"));
        let job = Job::local(&dir, &input, json, &args);
        let delay = span.mul_f64(kill_fraction(trial));
        let (pid, exited, _lines) = job.spawn(None);
        match exited.recv_timeout(delay) {
            Ok(status) => {
                assert!(status.success(), "trial {trial}: {status}");
                span = span.mul_f64(0.7);
            }
            Err(_) => {
                kill9(pid);
                if exited.recv().unwrap().code().is_none() {
                    killed += 1;
                }
            }
        }
        if dir.join("_SUCCESS").exists() {
            // Only a complete job has it: then its output is all there.
            assert!(
                job.cat() == expected,
                "trial {trial}: _SUCCESS on an incomplete job"
            );
        }
        job.run();
        assert!(dir.join("_SUCCESS").is_file(), "trial {trial}");
        assert!(
            job.cat() == expected,
            "trial {trial} (killed after {delay:?}): the output differs from an uninterrupted run's"
        );
        assert_no_stray_parts(&dir);
    }
    assert!(
        killed * 2 >= n,
        "only {killed} of {n} trials were killed before the job ended"
    );
}

#[test]
fn sigkill_at_random_instants_on_s3() {
    let s3 = S3Server::shared();
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), "input.txt", 3000);
    let reference = Job::s3(s3, &s3.new_bucket("crash-ref"), &input, SQUARE, ARGS);
    let span = reference.run();
    let expected = reference.cat();
    assert_eq!(lines(&expected), 3000);
    random_kills(
        &|_| {
            (
                Job::s3(s3, &s3.new_bucket("crash"), &input, SQUARE, ARGS),
                None,
            )
        },
        &expected,
        span,
        trials(6),
    );
}

#[test]
fn sigkill_inside_writes_on_local_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), "input.txt", 2000);
    let reference = Job::local(&tmp.path().join("ref"), &input, SQUARE, ARGS);
    reference.run();
    let expected = reference.cat();
    for (i, fp) in [
        "part-before-record:5",
        "checkpoint-before-commit:5",
        "checkpoint-before-prune:5",
    ]
    .iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("fp{i}"));
        kill_at(&Job::local(&dir, &input, SQUARE, EVERY_PART), fp, &expected);
        assert_no_stray_parts(&dir);
    }
    let input = write_input(tmp.path(), "wide.txt", 6000);
    let reference = Job::local(&tmp.path().join("wide-ref"), &input, WIDE, WIDE_ARGS);
    reference.run();
    let expected = reference.cat();
    let dir = tmp.path().join("wide");
    kill_at(
        &Job::local(&dir, &input, WIDE, WIDE_ARGS),
        "multipart-piece",
        &expected,
    );
    assert_no_stray_parts(&dir);
}

#[test]
fn sigkill_inside_writes_on_s3() {
    let s3 = S3Server::shared();
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), "input.txt", 2000);
    let reference = Job::s3(s3, &s3.new_bucket("fp-ref"), &input, SQUARE, ARGS);
    reference.run();
    let expected = reference.cat();
    for fp in [
        "part-before-record:3",
        "checkpoint-before-commit:3",
        "checkpoint-before-prune:5",
    ] {
        let job = Job::s3(s3, &s3.new_bucket("fp"), &input, SQUARE, EVERY_PART);
        kill_at(&job, fp, &expected);
    }
    let input = write_input(tmp.path(), "wide.txt", 6000);
    let reference = Job::s3(s3, &s3.new_bucket("wide-ref"), &input, WIDE, WIDE_ARGS);
    reference.run();
    let expected = reference.cat();
    let job = Job::s3(s3, &s3.new_bucket("wide"), &input, WIDE, WIDE_ARGS);
    kill_at(&job, "multipart-piece", &expected);
}
