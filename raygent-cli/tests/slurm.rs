//! Sharded jobs on a real single-node Slurm cluster (`.ci/slurm.sh` starts
//! it): submitted with `raygent slurm submit`, watched with `squeue`
//! (accounting is off), one shard cancelled and one killed, resubmitted
//! with `raygent slurm resubmit`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use raygent_tests::S3Server;
use serde_json::Value;
use support::*;

/// Echoes each record's first word; slowly when `SLOW` is set.
const WORKER: &str = "while read x rest; do [ -n \"$SLOW\" ] && sleep 0.02; echo \"$x\"; done";
/// How long a Slurm job may take on a loaded machine.
const JOB_DEADLINE: Duration = Duration::from_secs(300);

fn run_args(input: &str, out: &str) -> Vec<String> {
    [
        "-i",
        input,
        "-o",
        out,
        "-c",
        "5",
        "--save-interval",
        "10",
        "-j",
        "1",
        "--checkpoint-interval",
        "100ms",
        "--",
        "sh",
        "-c",
        WORKER,
    ]
    .map(String::from)
    .to_vec()
}

/// `raygent slurm submit --shards N EXTRA... -- RUN-ARGS` in `cwd`; the
/// Slurm job ids it printed.
fn submit(
    cwd: &Path,
    n: u32,
    extra: &[&str],
    run: &[String],
    env: &[(&str, String)],
) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "slurm".into(),
        "submit".into(),
        "--shards".into(),
        n.to_string(),
    ];
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a.push("--".into());
    a.extend_from_slice(run);
    let mut c = raygent(&a);
    c.current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let o = finish(c);
    o.expect_code(0);
    let ids: Vec<String> = o.stdout.lines().map(str::to_owned).collect();
    assert!(!ids.is_empty(), "no job id printed: {}", o.stderr);
    ids
}

/// The array tasks of `job` still in the queue, as (task, state).
fn queued(job: &str) -> Vec<(String, String)> {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-j", job, "-o", "%i|%T"])
        .output()
        .expect("squeue (is Slurm installed? .ci/slurm.sh starts it)");
    if !out.status.success() {
        // A job that ended long ago is forgotten: "Invalid job id".
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (id, state) = l.split_once('|')?;
            Some((id.trim().to_owned(), state.trim().to_owned()))
        })
        .collect()
}

/// Waits until every task of `jobs` has left the queue.
fn wait_gone(jobs: &[String]) {
    for job in jobs {
        wait_until(&format!("Slurm job {job} to end"), JOB_DEADLINE, || {
            queued(job).is_empty()
        });
    }
}

fn plain_output(input: &str, dir: &Path) -> String {
    let out = dir.join("plain");
    let mut a = vec!["run".to_owned()];
    a.extend(run_args(input, path_str(&out)));
    run(&a).expect_code(0);
    cat(path_str(&out), &[])
}

#[test]
fn eight_shards_through_slurm_on_a_shared_dir_and_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "in.txt", &uneven_lines(400));
    let input = path_str(&input).to_owned();
    let expected = plain_output(&input, d);

    let out = d.join("out");
    let out_s = path_str(&out).to_owned();
    let ids = submit(
        d,
        8,
        &["--max-running", "4"],
        &run_args(&input, &out_s),
        &[],
    );
    assert_eq!(ids.len(), 1);
    wait_gone(&ids);
    assert_eq!(cat(&out_s, &[]), expected);
    let st = status_json(&out_s, &[]);
    assert_eq!(st["state"], "complete", "{st}");
    // One log per array task, next to the job's records; the script too.
    for task in 0..8 {
        let log = out.join(format!("_slurm/logs/{}_{task}.log", ids[0]));
        let text =
            std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        assert!(text.contains(&format!("shard {task} of 8")), "{text}");
    }
    let script = std::fs::read_dir(out.join("_slurm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "sh"))
        .unwrap();
    let script = std::fs::read_to_string(script).unwrap();
    assert!(script.contains("#SBATCH --array=0-7%4"), "{script}");
    assert!(script.contains("#SBATCH --requeue"), "{script}");
    // A changed shard count is refused at once, before anything is queued.
    let mut a: Vec<String> = ["slurm", "submit", "--shards", "3", "--"]
        .map(String::from)
        .to_vec();
    a.extend(run_args(&input, &out_s));
    let mut c = raygent(&a);
    c.current_dir(d);
    finish(c)
        .expect_code(2)
        .stderr_has(&["shard count was 8, now 3"]);
    // Resubmitting a complete job submits nothing.
    let o = run(&["slurm", "resubmit", &out_s]);
    o.expect_code(0).stderr_has(&["nothing to resubmit"]);
    assert_eq!(o.stdout, "");

    // The same on S3: the tasks get the AWS settings from sbatch's
    // environment.
    let s3 = S3Server::shared();
    let env = s3.env();
    let bucket = s3.new_bucket("slurm");
    let s3_out = format!("s3://{bucket}/out");
    let ids = submit(d, 8, &[], &run_args(&input, &s3_out), &env);
    wait_gone(&ids);
    assert_eq!(cat(&s3_out, &env), expected);
    assert!(
        d.join(format!("raygent-slurm/logs/{}_7.log", ids[0]))
            .exists(),
        "logs of an S3 job go to ./raygent-slurm/logs"
    );
}

#[test]
fn a_shard_cancelled_and_a_shard_killed_are_resubmitted_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "in.txt", &uneven_lines(1200));
    let input = path_str(&input).to_owned();
    let expected = plain_output(&input, d);
    let out = d.join("out");
    let out_s = path_str(&out).to_owned();
    let slow = [("SLOW", "1".to_owned())];
    let ids = submit(d, 4, &[], &run_args(&input, &out_s), &slow);
    let job = &ids[0];
    wait_until("shards 1 and 2 to commit", JOB_DEADLINE, || {
        committed(&out_s, 1) > 0 && committed(&out_s, 2) > 0
    });
    // Shard 1: scancel of its array task (SIGTERM: it stops cleanly).
    let cancelled = Command::new("scancel")
        .arg(format!("{job}_1"))
        .status()
        .unwrap();
    assert!(cancelled.success());
    // Shard 2: SIGKILL of its process, found through its claim.
    let claim: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("_shards/00002/claims/000001.json")).unwrap(),
    )
    .unwrap();
    let pid = claim["runner"]["pid"].as_u64().unwrap() as u32;
    assert_eq!(
        claim["runner"]["engine"],
        format!("Slurm job {job}_2"),
        "{claim}"
    );
    signal(pid, libc::SIGKILL);
    wait_gone(&ids);

    let st = status_json(&out_s, &[]);
    assert_eq!(st["rerun"], serde_json::json!([1, 2]), "{st}");
    for s in [1, 2] {
        let e = shard_entry(&st, s);
        assert_eq!(e["state"], "stopped", "{st}");
        assert!(e["chunks_committed"].as_u64().unwrap() > 0, "{st}");
    }
    for s in [0, 3] {
        assert_eq!(shard_entry(&st, s)["state"], "done", "{st}");
    }
    let text = run(&["status", &out_s]);
    assert!(
        text.stdout.contains("rerun:            1-2"),
        "{}",
        text.stdout
    );
    run(&["cat", &out_s])
        .expect_code(4)
        .stderr_has(&["shard 1:", "shard 2:"]);

    let o = run(&["slurm", "resubmit", &out_s]);
    o.expect_code(0).stderr_has(&["submitted shards 1-2"]);
    let again: Vec<String> = o.stdout.lines().map(str::to_owned).collect();
    assert_eq!(again.len(), 1, "{}", o.stdout);
    wait_gone(&again);
    assert_eq!(cat(&out_s, &[]), expected);
    let st = status_json(&out_s, &[]);
    assert_eq!(st["state"], "complete", "{st}");
    // Only the two were rerun: the others have their first attempt only.
    for (s, attempt) in [(0, 1), (1, 2), (2, 2), (3, 1)] {
        assert_eq!(shard_entry(&st, s)["attempt"], attempt, "{st}");
    }
}

#[test]
fn more_shards_than_one_array_holds_go_in_arrays_with_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "in.txt", &uneven_lines(150));
    let input = path_str(&input).to_owned();
    let expected = plain_output(&input, d);
    let out = d.join("out");
    let out_s = path_str(&out).to_owned();
    // As if MaxArraySize were 3: shards 0-2, 3-5 and 6 go in three arrays.
    let env = [("RAYGENT_SLURM_MAX_ARRAY_SIZE", "3".to_owned())];
    let ids = submit(d, 7, &[], &run_args(&input, &out_s), &env);
    assert_eq!(ids.len(), 3, "{ids:?}");
    wait_gone(&ids);
    assert_eq!(cat(&out_s, &[]), expected);
    let log = std::fs::read_to_string(out.join(format!("_slurm/logs/{}_0.log", ids[2]))).unwrap();
    assert!(log.contains("shard 6 of 7"), "{log}");
}
