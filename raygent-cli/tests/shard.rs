//! Sharded jobs with the built `raygent`, on local disk and on the S3 test
//! server: shards give the unsharded output byte for byte, a killed shard
//! resumes alone, a second process at the same shard is fenced, a changed
//! job is refused, and the Kubernetes manifest runs as the kubelet runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;

use raygent_tests::S3Server;
use serde_json::Value;
use support::*;

/// Echoes each record's first word; slowly when `SLOW` is set (the
/// environment is not part of the job, so a slow run and a fast rerun are
/// the same job).
const FIRST_WORD: &str = "while read x rest; do [ -n \"$SLOW\" ] && sleep 0.02; echo \"$x\"; done";

/// `raygent run` arguments of the test job.
fn job_args(inputs: &[String], out: &str, worker: &str) -> Vec<String> {
    let mut v = vec!["run"];
    for i in inputs {
        v.extend(["-i", i.as_str()]);
    }
    v.extend([
        "-o",
        out,
        "-c",
        "7",
        "--save-interval",
        "20",
        "-j",
        "2",
        "--checkpoint-interval",
        "100ms",
        "--",
        "sh",
        "-c",
        worker,
    ]);
    v.into_iter().map(String::from).collect()
}

/// `args` with `extra` inserted after the subcommand.
fn with(mut args: Vec<String>, extra: &[&str]) -> Vec<String> {
    args.splice(1..1, extra.iter().map(|s| (*s).to_owned()));
    args
}

fn run_shard(args: &[String], n: u32, i: u32, env: &[(&str, String)]) -> Output {
    let mut a = args.to_vec();
    a.insert(1, format!("--shards={n}"));
    a.insert(2, format!("--shard={i}"));
    run_env(&a, env)
}

/// The whole job with one `raygent run`, then with `n` shards: `cat`
/// prints the same bytes; status says complete and `_SUCCESS` is there.
fn sharded_equals_unsharded(inputs: &[String], out: &str, n: u32, env: &[(&str, String)]) {
    let plain = format!("{out}-plain");
    run_env(&job_args(inputs, &plain, FIRST_WORD), env).expect_code(0);
    let expected = cat(&plain, env);
    assert!(!expected.is_empty());
    let sharded = format!("{out}-sharded");
    for i in 0..n {
        run_shard(&job_args(inputs, &sharded, FIRST_WORD), n, i, env).expect_code(0);
    }
    assert_eq!(cat(&sharded, env), expected, "{n} shards of {inputs:?}");
    let st = status_json(&sharded, env);
    assert_eq!(st["state"], "complete", "{st}");
    assert_eq!(st["shards_done"], n);
    assert_eq!(st["rerun"], Value::Array(vec![]));
    assert_eq!(st["success_marker"], true);
    assert_eq!(
        st["items_committed"],
        expected.lines().count() as u64,
        "{st}"
    );
}

#[test]
fn eight_shards_give_the_unsharded_output_for_lines_jsonl_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lines = write(d, "in.txt", &uneven_lines(700));
    let out = d.join("lines");
    sharded_equals_unsharded(&[path_str(&lines).into()], path_str(&out), 8, &[]);

    // JSON Lines: compact values, blank lines skipped; the worker gets `{"n":i,...}`.
    let jsonl: String = (1..=300)
        .map(|i| {
            if i % 17 == 0 {
                "\n".to_owned()
            } else {
                format!("{{\"n\": {i}, \"pad\": \"{}\"}}\n", "y".repeat(i % 11))
            }
        })
        .collect();
    let jsonl = write(d, "in.jsonl", &jsonl);
    let out = d.join("jsonl");
    let inputs = [path_str(&jsonl).to_owned()];
    let with_format = |o: &str| {
        with(
            job_args(&inputs, o, FIRST_WORD),
            &["--input-format", "jsonl"],
        )
    };
    let plain = format!("{}-plain", path_str(&out));
    run(&with_format(&plain)).expect_code(0);
    let sharded = format!("{}-sharded", path_str(&out));
    for i in 0..8 {
        run_shard(&with_format(&sharded), 8, i, &[]).expect_code(0);
    }
    assert_eq!(cat(&sharded, &[]), cat(&plain, &[]));

    // CSV is split by file only (a quoted field may hold a newline): a glob
    // of files, one of them with quoted newlines.
    for f in 0..5 {
        let body: String = std::iter::once("k,v\n".to_owned())
            .chain((0..40).map(|i| format!("{f}-{i},\"line\nbreak {i}\"\n")))
            .collect();
        write(d, &format!("csv/t{f}.csv"), &body);
    }
    let glob = format!("{}/csv/*.csv", path_str(d));
    let csv_args = |o: &str| {
        let mut a = with(
            job_args(std::slice::from_ref(&glob), o, "cat"),
            &["--input-format", "csv"],
        );
        a.truncate(a.len() - 3);
        a.push("cat".into());
        a
    };
    let plain = format!("{}/csv-plain", path_str(d));
    run(&csv_args(&plain)).expect_code(0);
    let expected = cat(&plain, &[]);
    assert_eq!(expected.lines().count(), 200, "{expected}");
    let sharded = format!("{}/csv-sharded", path_str(d));
    for i in 0..8 {
        run_shard(&csv_args(&sharded), 8, i, &[]).expect_code(0);
    }
    assert_eq!(cat(&sharded, &[]), expected);
}

fn s3_put(server: &S3Server, bucket: &str, key: &str, body: Vec<u8>) {
    use object_store::ObjectStoreExt;
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(server.endpoint())
        .with_bucket_name(bucket)
        .with_access_key_id(raygent_tests::ACCESS_KEY)
        .with_secret_access_key(raygent_tests::SECRET_KEY)
        .with_region(raygent_tests::REGION)
        .with_allow_http(true)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(store.put(&object_store::path::Path::from(key), body.into()))
        .unwrap();
}

/// The number in `-v`'s "read N bytes of input".
fn bytes_read(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            let rest = l.split("read ").nth(1)?;
            rest.strip_suffix(" bytes of input")
                .or_else(|| rest.split(" bytes of input").next())?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no byte count in:\n{stderr}"))
}

#[test]
fn on_s3_eight_shards_each_read_their_share_of_one_object() {
    let s3 = S3Server::shared();
    let env = s3.env();
    let bucket = s3.new_bucket("shards");
    let body = uneven_lines(3000);
    s3_put(s3, &bucket, "data/in.txt", body.clone().into_bytes());
    let input = format!("s3://{bucket}/data/in.txt");
    let out = format!("s3://{bucket}/out");
    sharded_equals_unsharded(std::slice::from_ref(&input), &out, 8, &env);
    // How much each shard read: its eighth, plus a read-ahead buffer.
    let again = format!("s3://{bucket}/again");
    let mut most = 0;
    for i in 0..8 {
        let mut a = vec!["-v".to_owned()];
        a.extend(job_args(std::slice::from_ref(&input), &again, FIRST_WORD));
        a.insert(2, "--shards=8".into());
        a.insert(3, format!("--shard={i}"));
        let o = run_env(&a, &env);
        o.expect_code(0);
        most = most.max(bytes_read(&o.stderr));
    }
    assert!(
        most < body.len() as u64 / 8 + (1 << 16) + 100,
        "a shard read {most} of {} bytes",
        body.len()
    );
}

#[test]
fn s3_globs_several_inputs_and_gz_are_read_in_order_and_errors_name_the_object() {
    use std::io::Write as _;
    let s3 = S3Server::shared();
    let env = s3.env();
    let bucket = s3.new_bucket("inputs");
    s3_put(s3, &bucket, "p/b.txt", b"3\n4\n".to_vec());
    s3_put(s3, &bucket, "p/a.txt", b"1\n2\n".to_vec());
    s3_put(s3, &bucket, "p/skip.csv", b"x\n".to_vec());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"5\n6\n").unwrap();
    s3_put(s3, &bucket, "p/sub/c.txt.gz", gz.finish().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let local = write(dir.path(), "local.txt", "7\n");
    let out = dir.path().join("out");
    let o = run_env(
        &[
            "run",
            "-i",
            &format!("s3://{bucket}/p/*.txt"),
            "-i",
            &format!("s3://{bucket}/p/sub/"),
            "-i",
            path_str(&local),
            "-o",
            path_str(&out),
            "--",
            "sh",
            "-c",
            SQUARE,
        ],
        &env,
    );
    o.expect_code(0);
    assert_eq!(cat(path_str(&out), &[]), "1\n4\n9\n16\n25\n36\n49\n");

    s3_put(
        s3,
        &bucket,
        "bad/x.jsonl",
        b"{\"a\":1}\n{\"a\":2}\n{oops\n".to_vec(),
    );
    let o = run_env(
        &[
            "run",
            "-i",
            &format!("s3://{bucket}/bad/x.jsonl"),
            "--input-format",
            "jsonl",
            "-o",
            path_str(&dir.path().join("bad")),
            "--",
            "cat",
        ],
        &env,
    );
    o.expect_code(2)
        .stderr_has(&[&format!("s3://{bucket}/bad/x.jsonl:3: malformed JSON")]);
    let o = run_env(
        &[
            "run",
            "-i",
            &format!("s3://{bucket}/nothing/*.txt"),
            "-o",
            path_str(&dir.path().join("none")),
            "--",
            "cat",
        ],
        &env,
    );
    o.expect_code(2).stderr_has(&["no objects match"]);
}

#[test]
fn a_killed_shard_resumes_alone_and_the_others_are_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "in.txt", &uneven_lines(1600));
    let inputs = [path_str(&input).to_owned()];
    let plain = d.join("plain");
    run(&job_args(&inputs, path_str(&plain), FIRST_WORD)).expect_code(0);
    let expected = cat(path_str(&plain), &[]);
    let out = d.join("out");
    let out_s = path_str(&out);
    let slow = job_args(&inputs, out_s, FIRST_WORD);
    // Shard 2 starts, commits some chunks, and is killed.
    let a = with(slow, &["--shards=4", "--shard=2"]);
    let mut child = raygent(&a)
        .env("SLOW", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("shard 2 to commit a chunk", DEADLINE, || {
        committed(out_s, 2) > 0
    });
    signal(child.id(), libc::SIGKILL);
    child.wait().unwrap();
    for i in [0, 1, 3] {
        run_shard(&job_args(&inputs, out_s, FIRST_WORD), 4, i, &[]).expect_code(0);
    }
    let st = status_json(out_s, &[]);
    assert_eq!(st["state"], "incomplete");
    assert_eq!(st["rerun"], serde_json::json!([2]), "{st}");
    let two = shard_entry(&st, 2);
    assert_eq!(two["state"], "stopped", "{st}");
    assert!(two["chunks_committed"].as_u64().unwrap() > 0, "{st}");
    assert!(two["last_checkpoint"].is_string(), "{st}");
    let text = run(&["status", out_s]);
    text.expect_code(0);
    assert!(
        text.stdout.contains("rerun:            2"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("  shard 2: attempt 1"),
        "{}",
        text.stdout
    );

    // cat refuses, naming the shard; --partial prints what is committed.
    let o = run(&["cat", out_s]);
    o.expect_code(4)
        .stderr_has(&["shard 2", "1 of 4 shards are not done"]);
    assert_eq!(o.stdout, "");
    let o = run(&["cat", "--partial", out_s]);
    o.expect_code(0).stderr_has(&["shard 2: stopped after"]);
    let partial = o.stdout.lines().count();
    assert!(partial < expected.lines().count(), "{partial}");

    let others: Vec<_> = [0, 1, 3]
        .iter()
        .map(|i| snapshot(&out.join(format!("_shards/{i:05}"))))
        .collect();
    assert!(!out.join("_SUCCESS").exists());
    run_shard(&job_args(&inputs, out_s, FIRST_WORD), 4, 2, &[])
        .expect_code(0)
        .stderr_has(&["continuing attempt 1"]);
    for (i, before) in [0, 1, 3].iter().zip(&others) {
        assert_eq!(
            &snapshot(&out.join(format!("_shards/{i:05}"))),
            before,
            "shard {i} was touched"
        );
    }
    assert_eq!(cat(out_s, &[]), expected);
    assert!(out.join("_SUCCESS").exists());
    // The killed attempt's directory is gone; the rerun's holds the results.
    assert!(!out.join("_shards/00002/a000001").exists());
    // A rerun of a complete shard does nothing.
    run_shard(&job_args(&inputs, out_s, FIRST_WORD), 4, 2, &[])
        .expect_code(0)
        .stderr_has(&["already complete"]);
}

#[test]
fn the_same_shard_twice_at_once_one_commits_the_other_stops() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "in.txt", &uneven_lines(400));
    let inputs = [path_str(&input).to_owned()];
    let plain = d.join("plain");
    run(&job_args(&inputs, path_str(&plain), FIRST_WORD)).expect_code(0);
    let expected = cat(path_str(&plain), &[]);
    for round in 0..2 {
        let out = d.join(format!("out-{round}"));
        let out_s = path_str(&out);
        let a = with(
            job_args(&inputs, out_s, FIRST_WORD),
            &["--shards=1", "--shard=0"],
        );
        let spawn = || {
            raygent(&a)
                .env("SLOW", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let first = spawn();
        if round == 1 {
            // The second starts once the first has committed something, so
            // it continues the first's work and fences it.
            wait_until("the first to commit", DEADLINE, || committed(out_s, 0) > 0);
        }
        let second = spawn();
        let (x, y) = (wait_output(first), wait_output(second));
        let mut codes = [x.code, y.code];
        codes.sort();
        assert_eq!(
            codes,
            [0, 5],
            "round {round}:\n--- first:\n{}\n--- second:\n{}",
            x.stderr,
            y.stderr
        );
        let loser = if x.code == 5 { &x } else { &y };
        assert!(loser.stderr.contains("another process"), "{}", loser.stderr);
        assert_eq!(cat(out_s, &[]), expected, "round {round}");
    }
}

#[test]
fn a_changed_job_is_refused_naming_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "in.txt", &uneven_lines(50));
    let inputs = [path_str(&input).to_owned()];
    let out = d.join("out");
    let out_s = path_str(&out);
    run_shard(&job_args(&inputs, out_s, FIRST_WORD), 4, 0, &[]).expect_code(0);
    run_shard(&job_args(&inputs, out_s, FIRST_WORD), 3, 0, &[])
        .expect_code(2)
        .stderr_has(&["different sharded job", "shard count was 4, now 3"]);
    run_shard(&job_args(&inputs, out_s, "cat"), 4, 1, &[])
        .expect_code(2)
        .stderr_has(&["command was"]);
    // A plain run on a sharded output, and a sharded run on a plain one.
    run(&job_args(&inputs, out_s, FIRST_WORD))
        .expect_code(2)
        .stderr_has(&["holds a sharded job (4 shards"]);
    let plain = d.join("plain");
    run(&job_args(&inputs, path_str(&plain), FIRST_WORD)).expect_code(0);
    run_shard(&job_args(&inputs, path_str(&plain), FIRST_WORD), 2, 0, &[])
        .expect_code(2)
        .stderr_has(&["unsharded job"]);
    // The input changed under a sharded job: its shares would differ.
    write(d, "in.txt", &uneven_lines(60));
    run_shard(&job_args(&inputs, out_s, FIRST_WORD), 4, 1, &[])
        .expect_code(2)
        .stderr_has(&["the input changed", "in.txt had"]);
    // Streams cannot be shared out; --fresh does not go with shards.
    let s_out = d.join("s").display().to_string();
    let a = with(
        job_args(&[], &s_out, FIRST_WORD),
        &["--shards", "2", "--shard", "0"],
    );
    run(&a).expect_code(2).stderr_has(&["stream"]);
    let f_out = d.join("f").display().to_string();
    let a = with(
        job_args(&inputs, &f_out, FIRST_WORD),
        &["--shards", "2", "--shard", "0", "--fresh"],
    );
    run(&a).expect_code(2).stderr_has(&["--fresh"]);
    let a = with(job_args(&inputs, &f_out, FIRST_WORD), &["--shards", "2"]);
    run(&a).expect_code(2).stderr_has(&["--shard I"]);
}

#[test]
fn slurm_array_variables_choose_the_shard_without_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "in.txt", &uneven_lines(120));
    let inputs = [path_str(&input).to_owned()];
    let plain = d.join("plain");
    run(&job_args(&inputs, path_str(&plain), FIRST_WORD)).expect_code(0);
    let out = d.join("out");
    // `sbatch --array=1-3`: tasks 1, 2, 3 are shards 0, 1, 2.
    for task in 1..=3 {
        let env = [
            ("SLURM_ARRAY_TASK_ID", task.to_string()),
            ("SLURM_ARRAY_TASK_COUNT", "3".to_owned()),
            ("SLURM_ARRAY_TASK_MIN", "1".to_owned()),
            ("SLURM_ARRAY_TASK_MAX", "3".to_owned()),
            ("SLURM_ARRAY_JOB_ID", "77".to_owned()),
        ];
        run_env(&job_args(&inputs, path_str(&out), FIRST_WORD), &env)
            .expect_code(0)
            .stderr_has(&[&format!("shard {} of 3", task - 1)]);
    }
    assert_eq!(cat(path_str(&out), &[]), cat(path_str(&plain), &[]));
    let claim: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("_shards/00001/claims/000001.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(claim["runner"]["engine"], "Slurm job 77_2");
}

#[test]
fn sigusr1_stops_a_shard_with_a_checkpoint_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "in.txt", &uneven_lines(800));
    let inputs = [path_str(&input).to_owned()];
    let out = d.join("out");
    let out_s = path_str(&out);
    let a = with(
        job_args(&inputs, out_s, FIRST_WORD),
        &["--shards=2", "--shard=0"],
    );
    let child = raygent(&a)
        .env("SLOW", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the shard to commit", DEADLINE, || committed(out_s, 0) > 0);
    signal(child.id(), libc::SIGUSR1);
    let o = wait_output(child);
    o.expect_code(130).stderr_has(&["interrupted"]);
    let st = status_json(out_s, &[]);
    assert_eq!(shard_entry(&st, 0)["state"], "stopped");
    run_shard(&job_args(&inputs, out_s, FIRST_WORD), 2, 0, &[])
        .expect_code(0)
        .stderr_has(&["continuing attempt 1"]);
}

fn python_yaml_to_json(yaml: &str) -> Value {
    use std::io::Write as _;
    let mut p = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with PyYAML) parses the manifest");
    p.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the manifest is not YAML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_kubernetes_manifest_is_an_indexed_job_and_each_index_gives_the_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "in.txt", &uneven_lines(90));
    let inputs = [path_str(&input).to_owned()];
    let plain = d.join("plain");
    run(&job_args(&inputs, path_str(&plain), FIRST_WORD)).expect_code(0);
    let out = d.join("out");
    let all = job_args(&inputs, path_str(&out), FIRST_WORD);
    let run_args = &all[1..];
    let mut a: Vec<String> = [
        "k8s",
        "manifest",
        "--shards",
        "4",
        "--image",
        "registry.example/raygent:1",
        "--parallelism",
        "2",
        "--",
    ]
    .map(String::from)
    .to_vec();
    a.extend_from_slice(run_args);
    let o = run(&a);
    o.expect_code(0);
    let m = python_yaml_to_json(&o.stdout);
    assert_eq!(m["apiVersion"], "batch/v1");
    assert_eq!(m["kind"], "Job");
    let spec = &m["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], 4);
    assert_eq!(spec["parallelism"], 2);
    assert_eq!(spec["backoffLimitPerIndex"], 3);
    let rules = spec["podFailurePolicy"]["rules"].as_array().unwrap();
    assert_eq!(rules[0]["action"], "FailIndex");
    assert_eq!(rules[0]["onExitCodes"]["operator"], "In");
    assert_eq!(rules[0]["onExitCodes"]["values"], serde_json::json!([2]));
    assert_eq!(rules[0]["onExitCodes"]["containerName"], "raygent");
    assert_eq!(rules[1]["action"], "Ignore");
    assert_eq!(rules[1]["onPodConditions"][0]["type"], "DisruptionTarget");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    assert_eq!(c["name"], "raygent");
    assert_eq!(c["image"], "registry.example/raygent:1");
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "raygent-aws");
    let command: Vec<String> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(command[..4], ["raygent", "run", "--shards", "4"]);
    // Each index as the kubelet runs it: the same command, JOB_COMPLETION_INDEX set.
    for index in 0..4 {
        let mut cmd = raygent(&command[1..]);
        cmd.env("JOB_COMPLETION_INDEX", index.to_string());
        finish(cmd).expect_code(0);
    }
    assert_eq!(cat(path_str(&out), &[]), cat(path_str(&plain), &[]));
    // An index without the count is refused (exit 2: the Job fails the index).
    let mut cmd = raygent(&job_args(&inputs, path_str(&out), FIRST_WORD));
    cmd.env("JOB_COMPLETION_INDEX", "1");
    finish(cmd)
        .expect_code(2)
        .stderr_has(&["JOB_COMPLETION_INDEX", "--shards"]);
}

#[test]
fn status_reads_a_few_objects_per_shard() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "in.txt", &uneven_lines(200));
    let inputs = [path_str(&input).to_owned()];
    let out = d.join("out");
    for i in 0..6 {
        run_shard(&job_args(&inputs, path_str(&out), FIRST_WORD), 8, i, &[]).expect_code(0);
    }
    let o = run(&["-v", "status", path_str(&out)]);
    o.expect_code(0);
    let line = o
        .stderr
        .lines()
        .find(|l| l.contains("status of 8 shards"))
        .unwrap_or_else(|| panic!("{}", o.stderr));
    let requests: u64 = line
        .split(": ")
        .last()
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    // The job record, one listing of the done records, one record per done
    // shard, a listing for each of the two shards never started, the marker.
    assert!(requests <= 12, "{requests} requests: {line}");
    assert!(
        o.stdout.contains("never started:    2 (6-7)"),
        "{}",
        o.stdout
    );
}
