//! End-to-end tests of the `raygent` command, run as a user would run it:
//! the built binary, in temporary directories, with shell and Python
//! workers, against local disk and the S3 test server.
//!
//! Every child process is waited for with a deadline (and killed past it),
//! so a hung `raygent` fails its test instead of stalling the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use raygent_tests::S3Server;
use serde_json::Value;
use support::{
    DEADLINE, Output, SQUARE, cat, path_str, raygent, run, run_env, signal, status_json,
    wait_output,
};

/// Spawns `cmd` with captured output, feeds it `stdin` if given, and waits
/// for it to exit (killing it after `support::DEADLINE`).
fn finish(mut cmd: Command, stdin: Option<String>) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("starting raygent");
    if let Some(text) = stdin {
        let mut w = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(text.as_bytes());
        });
    }
    wait_output(child)
}

/// Writes `1\n2\n...n\n` to `dir/name` and returns its path.
fn numbers(dir: &Path, name: &str, n: u64) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, (1..=n).map(|x| format!("{x}\n")).collect::<String>()).unwrap();
    p
}

fn squares(n: u64) -> String {
    (1..=n).map(|x| format!("{}\n", x * x)).collect()
}

/// The number `N` in the summary's "N retries".
fn retries_in_summary(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("raygent: done:"))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    let before = line.split(" retries").next().unwrap();
    before
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no retry count in {line:?}"))
}

/// Files directly under `dir` whose name ends with `ext`.
fn parts(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("part-") && name.ends_with(ext)
        })
        .count()
}

#[test]
fn output_is_in_input_order_for_odd_chunk_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let input = numbers(dir.path(), "in.txt", 250);
    // Item 1 is slow, so the chunks after the first one finish before it
    // and have to wait for it in the reorder stage.
    let worker = "while read x; do [ \"$x\" = 1 ] && sleep 0.2; echo $((x*x)); done";
    for cs in [1usize, 3, 7, 100, 1000] {
        let out = dir.path().join(format!("out-{cs}"));
        let o = run(&[
            "run",
            "-i",
            path_str(&input),
            "-c",
            &cs.to_string(),
            "-j",
            "3",
            "--save-interval",
            "17",
            "-o",
            path_str(&out),
            "--",
            "sh",
            "-c",
            worker,
        ]);
        o.expect_code(0);
        assert_eq!(o.stdout, "", "run prints nothing on stdout");
        assert_eq!(cat(path_str(&out), &[]), squares(250), "chunk size {cs}");
        let st = status_json(path_str(&out), &[]);
        assert_eq!(st["state"], "complete");
        assert_eq!(st["items_committed"], 250);
        assert_eq!(st["results_committed"], 250);
        assert_eq!(st["chunks_committed"], 250usize.div_ceil(cs) as u64);
        assert_eq!(st["chunk_size"], cs as u64);
        assert_eq!(st["parts"], parts(&out, ".cbor") as u64);
    }
}

#[test]
fn stdin_is_the_default_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input: String = (1..=40).map(|x| format!("{x}\n")).collect();
    for args in [&["-i", "-"][..], &[][..]] {
        let mut c = raygent(&["run", "-c", "3", "-o", path_str(&out), "--fresh"]);
        c.args(args).args(["--", "sh", "-c", SQUARE]);
        let o = finish(c, Some(input.clone()));
        o.expect_code(0);
        assert_eq!(cat(path_str(&out), &[]), squares(40));
    }
}

#[test]
fn jsonl_and_csv_records_reach_the_worker_as_compact_json() {
    let dir = tempfile::tempdir().unwrap();
    // JSON Lines: any JSON value, compacted; blank lines are no records.
    let jsonl = dir.path().join("in.jsonl");
    std::fs::write(
        &jsonl,
        "{\"a\": 1, \"b\": [1, 2]}\n\n  \"text\"  \n3.5\r\n{\"z\":null}\n",
    )
    .unwrap();
    let out = dir.path().join("out-jsonl");
    let o = run(&[
        "run",
        "-i",
        path_str(&jsonl),
        "--input-format",
        "jsonl",
        "-c",
        "3",
        "-o",
        path_str(&out),
        "--",
        "cat",
    ]);
    o.expect_code(0);
    assert_eq!(
        cat(path_str(&out), &[]),
        "{\"a\":1,\"b\":[1,2]}\n\"text\"\n3.5\n{\"z\":null}\n"
    );
    assert_eq!(status_json(path_str(&out), &[])["items_committed"], 4);

    // CSV: the header names the fields, in its order; values are strings.
    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, "name,n\n\"x, y\",1\n\"say \"\"hi\"\"\",2\nz,3\n").unwrap();
    let out = dir.path().join("out-csv");
    let o = run(&[
        "run",
        "-i",
        path_str(&csv),
        "--input-format",
        "csv",
        "-c",
        "2",
        "-o",
        path_str(&out),
        "--",
        "cat",
    ]);
    o.expect_code(0);
    assert_eq!(
        cat(path_str(&out), &[]),
        "{\"name\":\"x, y\",\"n\":\"1\"}\n{\"name\":\"say \\\"hi\\\"\",\"n\":\"2\"}\n{\"name\":\"z\",\"n\":\"3\"}\n"
    );

    // A Python worker reads them with json.loads.
    let out = dir.path().join("out-py");
    let py = "import json, sys\nfor line in sys.stdin:\n    r = json.loads(line)\n    print(r['name'].upper(), int(r['n']) * 10)\n";
    let o = run(&[
        "run",
        "-i",
        path_str(&csv),
        "--input-format",
        "csv",
        "-o",
        path_str(&out),
        "--",
        "python3",
        "-c",
        py,
    ]);
    o.expect_code(0);
    assert_eq!(cat(path_str(&out), &[]), "X, Y 10\nSAY \"HI\" 20\nZ 30\n");
}

#[test]
fn every_output_format_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // Lines that a naive CSV or JSON writer would mangle.
    let text = "a,b\n\"q\"\n42\n\nünï\n{\"k\":1}\ntrue\n sp \nnull\n";
    let input = dir.path().join("in.txt");
    std::fs::write(&input, text).unwrap();
    for (format, ext) in [("cbor", ".cbor"), ("jsonl", ".jsonl"), ("csv", ".csv")] {
        let out = dir.path().join(format!("out-{format}"));
        let o = run(&[
            "run",
            "-q",
            "-i",
            path_str(&input),
            "-c",
            "2",
            "--save-interval",
            "3",
            "--format",
            format,
            "-o",
            path_str(&out),
            "--",
            "cat",
        ]);
        o.expect_code(0);
        assert_eq!(cat(path_str(&out), &[]), text, "format {format}");
        // 9 results, chunks of 2, a part once it holds 3 or more: 3 parts.
        assert_eq!(parts(&out, ext), 3, "format {format}");
        assert!(out.join("_manifest").is_dir());
        // Each checkpoint step is one object, the job state inside COMMIT
        // (with_inline_state), and only the newest steps are kept.
        let mut steps: Vec<Vec<String>> = std::fs::read_dir(out.join("_checkpoints"))
            .unwrap()
            .map(|e| {
                let mut files: Vec<String> = std::fs::read_dir(e.unwrap().path())
                    .unwrap()
                    .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                files.sort();
                files
            })
            .collect();
        steps.dedup();
        assert_eq!(steps, vec![vec!["COMMIT".to_owned()]], "format {format}");
    }
}

#[test]
fn s3_output_with_cat_and_status() {
    let s3 = S3Server::shared();
    let bucket = s3.new_bucket("cli");
    let env = s3.env();
    let dir = tempfile::tempdir().unwrap();
    let input = numbers(dir.path(), "in.txt", 100);
    let url = format!("s3://{bucket}/some/prefix");
    let args = [
        "run",
        "-i",
        path_str(&input),
        "-c",
        "7",
        "--save-interval",
        "20",
        "-o",
        &url,
        "--",
        "sh",
        "-c",
        SQUARE,
    ];
    let o = run_env(&args, &env);
    o.expect_code(0)
        .stderr_has(&["100 items in 15 chunks", &url]);
    assert_eq!(cat(&url, &env), squares(100));
    let st = status_json(&url, &env);
    assert_eq!(st["state"], "complete");
    assert_eq!(st["items_committed"], 100);
    assert_eq!(st["chunks_committed"], 15);
    // Chunks of 7, a part once it holds 20 or more results: 21, 21, 21,
    // 21 and the last 16.
    assert_eq!(st["parts"], 5);
    let human = run_env(&["status", &url], &env);
    human.expect_code(0);
    assert!(
        human.stdout.contains("state:            complete"),
        "{}",
        human.stdout
    );
    let list = run_env(&["ckpt", "list", &url], &env);
    list.expect_code(0);
    assert!(
        list.stdout
            .contains(&format!("s3://{bucket}/some/prefix/_checkpoints"))
            && list.stdout.contains("step 15"),
        "{}",
        list.stdout
    );
    // A rerun resumes everything and runs nothing.
    run_env(&args, &env)
        .expect_code(0)
        .stderr_has(&["(15 resumed)", "0 retries"]);
    assert_eq!(cat(&url, &env), squares(100));
}

#[test]
fn a_changed_chunk_size_is_refused_and_fresh_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let input = numbers(dir.path(), "in.txt", 30);
    let out = dir.path().join("out");
    let job = |cs: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "-i",
            path_str(&input),
            "-c",
            cs,
            "-o",
            path_str(&out),
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", SQUARE]);
        run(&args)
    };
    job("3", &[]).expect_code(0);
    job("4", &[])
        .expect_code(2)
        .stderr_has(&["chunk size", "\"3\"", "\"4\"", "--fresh"]);
    // The refused run left the old job alone.
    assert_eq!(cat(path_str(&out), &[]), squares(30));
    assert_eq!(status_json(path_str(&out), &[])["chunk_size"], 3);
    // --fresh discards it and runs with the new chunk size.
    job("4", &["--fresh"])
        .expect_code(0)
        .stderr_has(&["30 items in 8 chunks (0 resumed)"]);
    let st = status_json(path_str(&out), &[]);
    assert_eq!(st["chunk_size"], 4);
    assert_eq!(st["chunks_committed"], 8);
    assert_eq!(cat(path_str(&out), &[]), squares(30));
    // Other options that shape the output are part of the job too.
    run(&[
        "run",
        "-i",
        path_str(&input),
        "-c",
        "4",
        "--format",
        "jsonl",
        "-o",
        path_str(&out),
        "--",
        "sh",
        "-c",
        SQUARE,
    ])
    .expect_code(2)
    .stderr_has(&["--fresh"]);
}

#[test]
fn a_rerun_of_a_complete_job_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = numbers(dir.path(), "in.txt", 50);
    let out = dir.path().join("out");
    let log = dir.path().join("starts.log");
    // Each worker process appends a line to the log when it starts.
    let worker = format!("echo started >> '{}'; {SQUARE}", path_str(&log));
    let args = [
        "run",
        "-i",
        path_str(&input),
        "-c",
        "5",
        "-j",
        "2",
        "-o",
        path_str(&out),
        "--",
        "sh",
        "-c",
        &worker,
    ];
    run(&args).expect_code(0);
    let starts = std::fs::read_to_string(&log).unwrap();
    assert!(!starts.is_empty());
    let before = run(&["ckpt", "list", path_str(&out)]);
    before.expect_code(0);

    run(&args)
        .expect_code(0)
        .stderr_has(&["50 items in 10 chunks (10 resumed)", "0 retries"]);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        starts,
        "no worker was started"
    );
    let after = run(&["ckpt", "list", path_str(&out)]);
    assert_eq!(after.stdout, before.stdout, "no checkpoint was written");
    assert_eq!(cat(path_str(&out), &[]), squares(50));
}

#[test]
fn a_changed_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = numbers(dir.path(), "in.txt", 30);
    let out = dir.path().join("out");
    let args = [
        "run",
        "-i",
        path_str(&input),
        "-c",
        "4",
        "-o",
        path_str(&out),
        "--",
        "sh",
        "-c",
        SQUARE,
    ];
    run(&args).expect_code(0);
    // One line changed.
    let changed: String = (1..=30)
        .map(|x| {
            if x == 5 {
                "55\n".into()
            } else {
                format!("{x}\n")
            }
        })
        .collect();
    std::fs::write(&input, changed).unwrap();
    run(&args)
        .expect_code(2)
        .stderr_has(&["input changed", "--fresh", path_str(&out)]);
    // Lines removed.
    numbers(dir.path(), "in.txt", 20);
    run(&args)
        .expect_code(2)
        .stderr_has(&["input is shorter", "--fresh"]);
    assert_eq!(
        cat(path_str(&out), &[]),
        squares(30),
        "the old output stays"
    );
}

#[test]
fn per_item_runs_the_command_once_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let input = numbers(dir.path(), "in.txt", 12);
    let out = path_str(dir.path()).to_owned() + "/out";
    let per_item = |extra: &[&str], command: &[&str]| {
        let mut args = vec![
            "run",
            "--per-item",
            "--fresh",
            "-i",
            path_str(&input),
            "-c",
            "5",
        ];
        args.extend_from_slice(&["-o", &out]);
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(command);
        run(&args)
    };
    let expect = |f: &dyn Fn(u64) -> String| (1..=12).map(|x| f(x) + "\n").collect::<String>();

    // `{}` anywhere in an argument.
    per_item(&[], &["echo", "pre-{}-post", "{}"]).expect_code(0);
    assert_eq!(cat(&out, &[]), expect(&|x| format!("pre-{x}-post {x}")));
    // No `{}`: the record is appended.
    per_item(&[], &["echo", "item"]).expect_code(0);
    assert_eq!(cat(&out, &[]), expect(&|x| format!("item {x}")));
    // --shell: `{}` in the script is the record, shell-quoted (also "$1").
    per_item(&["--shell"], &["echo $(({} * 3))"]).expect_code(0);
    assert_eq!(cat(&out, &[]), expect(&|x| (x * 3).to_string()));

    // A non-zero exit fails the record's chunk: the job stops (exit 1)...
    let failing = [
        "sh",
        "-c",
        "[ \"$1\" != 7 ] || { echo no sevens >&2; exit 4; }; echo ok $1",
        "sh",
        "{}",
    ];
    per_item(&["--retries", "1"], &failing)
        .expect_code(1)
        .stderr_has(&["item \"7\"", "exited with code 4", "no sevens", "chunk 1"]);
    // ...or, with --on-failure skip, is skipped (exit 3).
    per_item(&["--retries", "0", "--on-failure", "skip"], &failing)
        .expect_code(3)
        .stderr_has(&["skipped chunk 1 (items 5..10)"]);
    let kept: String = [1, 2, 3, 4, 5, 11, 12]
        .iter()
        .map(|x| format!("ok {x}\n"))
        .collect();
    assert_eq!(cat(&out, &[]), kept);
}

#[test]
fn a_crashing_worker_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let input = numbers(dir.path(), "in.txt", 30);
    let out = dir.path().join("out");
    let marks = dir.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    // Dies by SIGKILL the first time it sees 7 and by abort() the first
    // time it sees 13; a marker file remembers that it did.
    let worker = dir.path().join("worker.py");
    std::fs::write(
        &worker,
        r#"import os, sys
marks = sys.argv[1]
for line in sys.stdin:
    x = int(line)
    mark = os.path.join(marks, str(x))
    if x in (7, 13) and not os.path.exists(mark):
        open(mark, "w").close()
        if x == 7:
            os.kill(os.getpid(), 9)
        os.abort()
    print(x * 2, flush=True)
"#,
    )
    .unwrap();
    let o = run(&[
        "run",
        "-i",
        path_str(&input),
        "-c",
        "5",
        "-j",
        "2",
        "--retries",
        "2",
        "-o",
        path_str(&out),
        "--",
        "python3",
        path_str(&worker),
        path_str(&marks),
    ]);
    o.expect_code(0);
    assert_eq!(retries_in_summary(&o.stderr), 2, "{}", o.stderr);
    assert!(marks.join("7").exists() && marks.join("13").exists());
    let doubles: String = (1..=30).map(|x| format!("{}\n", x * 2)).collect();
    assert_eq!(cat(path_str(&out), &[]), doubles);
    let st = status_json(path_str(&out), &[]);
    assert_eq!(st["failed_chunks"], Value::Array(vec![]));
}

#[test]
fn on_failure_skip_exits_3_and_status_lists_the_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let input = numbers(dir.path(), "in.txt", 10);
    let out = dir.path().join("out");
    let worker = "while read x; do [ $x -eq 5 ] && { echo boom on $x >&2; exit 3; }; echo $x; done";
    let o = run(&[
        "run",
        "-i",
        path_str(&input),
        "-c",
        "2",
        "--retries",
        "1",
        "--on-failure",
        "skip",
        "-o",
        path_str(&out),
        "--",
        "sh",
        "-c",
        worker,
    ]);
    o.expect_code(3).stderr_has(&[
        "1 failed chunks",
        "skipped chunk 2 (items 4..6) after 2 attempts",
        "boom on 5",
    ]);
    assert!(
        !o.stderr.contains('\x1b'),
        "no colours in a pipe: {}",
        o.stderr
    );
    assert_eq!(cat(path_str(&out), &[]), "1\n2\n3\n4\n7\n8\n9\n10\n");

    let human = run(&["status", path_str(&out)]);
    human.expect_code(0);
    for line in [
        "state:            complete",
        "items committed:  10",
        "results:          8",
        "failed chunks:    1",
        "  chunk 2 (items 4..6), 2 attempts: ",
    ] {
        assert!(human.stdout.contains(line), "{line:?} in\n{}", human.stdout);
    }
    assert!(human.stdout.contains("boom on 5"), "{}", human.stdout);

    let st = status_json(path_str(&out), &[]);
    let failed = st["failed_chunks"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{st}");
    assert_eq!(failed[0]["index"], 2);
    assert_eq!(failed[0]["items"]["start"], 4);
    assert_eq!(failed[0]["items"]["end"], 6);
    assert_eq!(failed[0]["attempts"], 2);
    let error = failed[0]["error"].as_str().unwrap();
    assert!(
        error.contains("exited with code 3") && error.contains("boom on 5"),
        "{error}"
    );
}

#[test]
fn bad_usage_and_bad_input_exit_2_naming_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let input = numbers(dir.path(), "in.txt", 5);
    let out = dir.path().join("out");
    let missing = dir.path().join("missing.txt");
    let base = |extra: &[&str], command: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["run".into()];
        if !extra.contains(&"-i") {
            v.extend(["-i".into(), path_str(&input).into()]);
        }
        v.extend(extra.iter().map(|s| s.to_string()));
        if !extra.contains(&"-o") {
            v.extend(["-o".into(), path_str(&out).into()]);
        }
        v.push("--".into());
        v.extend(command.iter().map(|s| s.to_string()));
        v
    };
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            base(&["-o", "ftp://x/y"], &["cat"]),
            vec!["ftp://x/y", "unsupported scheme", "s3://bucket/prefix"],
        ),
        (
            base(&["-i", path_str(&missing)], &["cat"]),
            vec!["missing.txt", "No such file"],
        ),
        (
            base(&["-c", "0"], &["cat"]),
            vec!["--chunk-size", "at least 1"],
        ),
        (
            base(&[], &["no-such-program-xyz", "--flag"]),
            vec!["no-such-program-xyz", "not found", "PATH"],
        ),
        (base(&["--timeout", "soon"], &["cat"]), vec!["soon"]),
        (base(&["--bogus"], &["cat"]), vec!["--bogus"]),
        (base(&["--on-failure", "ignore"], &["cat"]), vec!["ignore"]),
        (
            vec!["run".into(), "-i".into(), path_str(&input).into()],
            vec!["COMMAND"],
        ),
    ];
    for (args, needles) in cases {
        let o = run(&args);
        o.expect_code(2).stderr_has(&needles);
        assert!(!out.exists(), "{args:?} created the output");
    }

    // A bucket that does not exist, on the S3 test server: a usage error
    // that names the bucket, stated once (not once per error level).
    let s3 = S3Server::shared();
    let o = run_env(
        &base(&["-o", "s3://no-such-bucket-xyz/p"], &["cat"]),
        &s3.env(),
    );
    o.expect_code(2)
        .stderr_has(&["s3://no-such-bucket-xyz/p", "bucket does not exist"]);
    assert!(
        o.stderr.matches("<Error>").count() <= 2,
        "the server's reply is repeated:\n{}",
        o.stderr
    );

    // Wrong credentials: a private moto that checks them.
    let strict =
        raygent_tests::private_s3_server_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let mut env = strict.env();
    for (k, v) in env.iter_mut() {
        if *k == "AWS_ACCESS_KEY_ID" || *k == "AWS_SECRET_ACCESS_KEY" {
            *v = "not-a-real-key".into();
        }
    }
    run_env(&base(&["-o", "s3://some-bucket/p"], &["cat"]), &env)
        .expect_code(2)
        .stderr_has(&[
            "s3://some-bucket/p",
            "credentials were refused",
            "AWS_ACCESS_KEY_ID",
        ]);
    drop(strict);

    // Reading a job that is not there creates nothing.
    let typo = dir.path().join("no-such-job");
    run(&["cat", path_str(&typo)])
        .expect_code(2)
        .stderr_has(&["no-such-job", "does not exist"]);
    assert!(!typo.exists(), "cat created {}", typo.display());

    // Inspecting something that is not a job.
    let empty = tempfile::tempdir().unwrap();
    run(&["status", path_str(empty.path())])
        .expect_code(2)
        .stderr_has(&["no raygent job", path_str(empty.path())]);
    run(&["cat", "ftp://x/y"])
        .expect_code(2)
        .stderr_has(&["ftp://x/y"]);
}

#[test]
fn a_malformed_record_stops_the_job_after_committing_what_came_before() {
    let dir = tempfile::tempdir().unwrap();

    // CSV: line 5 has a field too many.
    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, "a,b\n1,2\n3,4\n5,6\n7,8,9\n10,11\n").unwrap();
    let out = dir.path().join("out-csv");
    let args = [
        "run",
        "-i",
        path_str(&csv),
        "--input-format",
        "csv",
        "-c",
        "1",
        "--save-interval",
        "1",
        "-o",
        path_str(&out),
        "--",
        "cat",
    ];
    run(&args).expect_code(2).stderr_has(&[
        "in.csv:5",
        "malformed CSV",
        "run the same command again",
    ]);
    let first3 =
        "{\"a\":\"1\",\"b\":\"2\"}\n{\"a\":\"3\",\"b\":\"4\"}\n{\"a\":\"5\",\"b\":\"6\"}\n";
    assert_eq!(cat(path_str(&out), &[]), first3);
    let st = status_json(path_str(&out), &[]);
    assert_eq!(st["items_committed"], 3);
    assert_ne!(st["state"], "complete");
    // Fixed, the same command resumes after the committed records.
    std::fs::write(&csv, "a,b\n1,2\n3,4\n5,6\n7,8\n10,11\n").unwrap();
    run(&args)
        .expect_code(0)
        .stderr_has(&["5 items in 5 chunks (3 resumed)"]);
    assert_eq!(
        cat(path_str(&out), &[]),
        first3.to_owned() + "{\"a\":\"7\",\"b\":\"8\"}\n{\"a\":\"10\",\"b\":\"11\"}\n"
    );

    // JSON Lines: line 4 is not JSON; with chunks of 2, the chunk holding
    // line 3 is incomplete and is not run.
    let jsonl = dir.path().join("in.jsonl");
    std::fs::write(&jsonl, "1\n2\n3\n{oops\n5\n").unwrap();
    let out = dir.path().join("out-jsonl");
    run(&[
        "run",
        "-i",
        path_str(&jsonl),
        "--input-format",
        "jsonl",
        "-c",
        "2",
        "--save-interval",
        "1",
        "-o",
        path_str(&out),
        "--",
        "cat",
    ])
    .expect_code(2)
    .stderr_has(&["in.jsonl:4", "malformed JSON"]);
    assert_eq!(cat(path_str(&out), &[]), "1\n2\n");
    assert_eq!(status_json(path_str(&out), &[])["items_committed"], 2);
}

/// A Python worker that squares its items, but holds every item above 50
/// until the file `release` exists; it records its pid in `pids`.
fn held_worker(dir: &Path) -> PathBuf {
    let worker = dir.join("held.py");
    std::fs::write(
        &worker,
        r#"import os, sys, time
release, pids = sys.argv[1], sys.argv[2]
with open(os.path.join(pids, str(os.getpid())), "w"):
    pass
for line in sys.stdin:
    x = int(line)
    if x > 50:
        give_up = time.time() + 60
        while not os.path.exists(release) and time.time() < give_up:
            time.sleep(0.01)
    print(x * x, flush=True)
"#,
    )
    .unwrap();
    worker
}

/// Starts `raygent run` of the held worker over 1..=1000 in chunks of 5 (so
/// more chunks than the runtime dispatches ahead), and waits until it has
/// committed at least 10 items.
fn start_held_job(dir: &Path, out: &Path) -> (Child, Vec<String>) {
    let input = numbers(dir, "in.txt", 1000);
    start_held_job_on(dir, out, &input)
}

/// [`start_held_job`] reading `input` (a file, or a FIFO that something
/// writes 1..=1000 to).
fn start_held_job_on(dir: &Path, out: &Path, input: &Path) -> (Child, Vec<String>) {
    let input = input.to_path_buf();
    let worker = held_worker(dir);
    let pids = dir.join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    let args: Vec<String> = [
        "run",
        "-i",
        path_str(&input),
        "-c",
        "5",
        "-j",
        "2",
        "--save-interval",
        "10",
        "-o",
        path_str(out),
        "--",
        "python3",
        path_str(&worker),
        path_str(&dir.join("release")),
        path_str(&pids),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut child = raygent(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (by condition, with a deadline) until the first parts are
    // committed; the job cannot finish before the release file exists.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let st = run(&["status", "--json", path_str(out)]);
        if st.code == 0 {
            let v: Value = serde_json::from_str(&st.stdout).unwrap();
            if v["items_committed"].as_u64().unwrap() >= 10 {
                break;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("raygent exited early: {status}");
        }
        if Instant::now() > deadline {
            signal(child.id(), libc::SIGKILL);
            let _ = child.wait();
            panic!("nothing was committed within {DEADLINE:?}");
        }
    }
    (child, args)
}

#[test]
fn sigint_commits_exits_130_and_the_same_command_resumes() {
    a_signal_commits_exits_130_and_the_same_command_resumes(libc::SIGINT);
}

/// The terminal closing (or the ssh session dropping) stops a job as
/// SIGINT and SIGTERM do: with a final checkpoint.
#[test]
fn sighup_commits_exits_130_and_the_same_command_resumes() {
    a_signal_commits_exits_130_and_the_same_command_resumes(libc::SIGHUP);
}

fn a_signal_commits_exits_130_and_the_same_command_resumes(sig: libc::c_int) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (child, args) = start_held_job(dir.path(), &out);
    signal(child.id(), sig);
    // Let the chunks in flight finish.
    std::fs::write(dir.path().join("release"), "").unwrap();
    let o = wait_output(child);
    o.expect_code(130)
        .stderr_has(&["interrupted", "run the same command again to resume"]);
    assert_eq!(o.stdout, "");
    let st = status_json(path_str(&out), &[]);
    let committed = st["items_committed"].as_u64().unwrap();
    assert!((10..1000).contains(&committed), "{st}");
    assert_eq!(
        cat(path_str(&out), &[]),
        squares(committed),
        "what was committed is the input's prefix"
    );

    let o = run(&args);
    o.expect_code(0).stderr_has(&["1000 items in 200 chunks"]);
    assert!(
        o.stderr.contains(&format!("({} resumed)", committed / 5)),
        "{}",
        o.stderr
    );
    assert_eq!(cat(path_str(&out), &[]), squares(1000));
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (child, args) = start_held_job(dir.path(), &out);
    // The workers stay held: only the second signal can end the job.
    signal(child.id(), libc::SIGINT);
    signal(child.id(), libc::SIGTERM);
    let o = wait_output(child);
    o.expect_code(130);
    // The workers died with raygent (no orphans left holding items).
    let deadline = Instant::now() + DEADLINE;
    for pid in std::fs::read_dir(dir.path().join("pids")).unwrap() {
        let pid = pid.unwrap().file_name().to_string_lossy().into_owned();
        let stat = format!("/proc/{pid}/stat");
        loop {
            match std::fs::read_to_string(&stat) {
                // Gone, or a zombie waiting for init to reap it.
                Err(_) => break,
                Ok(s) if s.rsplit(") ").next().is_some_and(|r| r.starts_with('Z')) => break,
                Ok(_) => {}
            }
            assert!(Instant::now() < deadline, "worker {pid} outlived raygent");
            std::thread::yield_now();
        }
    }
    // What was committed before the signals is intact; a rerun completes.
    std::fs::write(dir.path().join("release"), "").unwrap();
    run(&args).expect_code(0);
    assert_eq!(cat(path_str(&out), &[]), squares(1000));
}

#[test]
fn status_and_ckpt_on_a_complete_job() {
    let dir = tempfile::tempdir().unwrap();
    let input = numbers(dir.path(), "in.txt", 40);
    let out = dir.path().join("out");
    let log = dir.path().join("starts.log");
    let worker = format!("echo started >> '{}'; {SQUARE}", path_str(&log));
    let args = [
        "run",
        "-i",
        path_str(&input),
        "-c",
        "4",
        "-j",
        "1",
        "--save-interval",
        "8",
        "-o",
        path_str(&out),
        "--",
        "sh",
        "-c",
        &worker,
    ];
    run(&args).expect_code(0);
    let o = path_str(&out);

    let human = run(&["status", o]);
    human.expect_code(0);
    for line in [
        &format!("job:              {o}") as &str,
        "state:            complete",
        "chunk size:       4",
        "chunks committed: 10",
        "items committed:  40",
        "results:          40",
        "parts:            5",
        "last checkpoint:  ",
        "failed chunks:    0",
    ] {
        assert!(human.stdout.contains(line), "{line:?} in\n{}", human.stdout);
    }
    let st = status_json(o, &[]);
    assert_eq!(st["parts"], 5);
    assert_eq!(parts(&out, ".cbor"), 5);
    assert!(st["task"].as_str().unwrap().contains("started >>"), "{st}");
    assert!(st["last_checkpoint_unix"].as_u64().unwrap() > 0);

    let list = run(&["ckpt", "list", o]);
    list.expect_code(0);
    assert!(list.stdout.contains("_checkpoints"), "{}", list.stdout);
    assert!(list.stdout.contains("  step 10  "), "{}", list.stdout);

    let show = run(&["ckpt", "show", o]);
    show.expect_code(0);
    let state: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(state["complete"], true);
    assert_eq!(state["next_chunk"], 10);
    assert_eq!(state["next_item"], 40);
    assert_eq!(state["config"]["chunk_size"], 4);
    run(&["ckpt", "show", o, "--step", "999"])
        .expect_code(2)
        .stderr_has(&["step 999"]);

    let clear = run(&["ckpt", "clear", o]);
    clear.expect_code(0);
    assert!(clear.stdout.contains("cleared"), "{}", clear.stdout);
    let list = run(&["ckpt", "list", o]);
    assert!(list.stdout.contains("(none)"), "{}", list.stdout);
    run(&["ckpt", "show", o])
        .expect_code(2)
        .stderr_has(&["no checkpoint"]);
    // The parts stay readable...
    let st = status_json(o, &[]);
    assert_eq!(st["state"], "not checkpointed");
    assert_eq!(st["results_committed"], 40);
    assert_eq!(cat(o, &[]), squares(40));
    // ...a rerun refuses to replace results no checkpoint accounts for...
    run(&args)
        .expect_code(2)
        .stderr_has(&["already holds", "--fresh"]);
    assert_eq!(cat(o, &[]), squares(40));
    // ...and with --fresh it starts over, rewriting them.
    let starts = std::fs::read_to_string(&log).unwrap().lines().count();
    let mut fresh = args.to_vec();
    fresh.insert(1, "--fresh");
    run(&fresh)
        .expect_code(0)
        .stderr_has(&["40 items in 10 chunks (0 resumed)"]);
    assert!(std::fs::read_to_string(&log).unwrap().lines().count() > starts);
    assert_eq!(status_json(o, &[])["state"], "complete");
    assert_eq!(cat(o, &[]), squares(40));
    assert_eq!(parts(&out, ".cbor"), 5);
}

#[test]
fn quiet_prints_nothing_and_run_never_prints_results() {
    let dir = tempfile::tempdir().unwrap();
    let input = numbers(dir.path(), "in.txt", 30);
    let out = dir.path().join("out");
    let o = run(&[
        "run",
        "-q",
        "-i",
        path_str(&input),
        "-c",
        "4",
        "-o",
        path_str(&out),
        "--",
        "sh",
        "-c",
        SQUARE,
    ]);
    o.expect_code(0);
    assert_eq!(o.stderr, "", "-q is quiet");
    assert_eq!(o.stdout, "", "results go to the output only");
    assert_eq!(cat(path_str(&out), &[]), squares(30));

    let o = run(&[
        "run",
        "--fresh",
        "-i",
        path_str(&input),
        "-c",
        "4",
        "-o",
        path_str(&out),
        "--",
        "sh",
        "-c",
        SQUARE,
    ]);
    o.expect_code(0)
        .stderr_has(&["raygent: done: 30 items in 8 chunks", path_str(&out)]);
    assert_eq!(o.stdout, "");
    // Not a terminal: no progress bar drawing (carriage returns, escapes).
    assert!(
        !o.stderr.contains('\r') && !o.stderr.contains('\x1b'),
        "{:?}",
        o.stderr
    );
}

/// Writes `text` to `path` with `gzip` or `zstd`, whichever `ext` names.
fn compressed(path: &Path, text: &str, ext: &str) -> PathBuf {
    use std::io::Write as _;
    let target = PathBuf::from(format!("{}.{ext}", path.display()));
    let bytes = match ext {
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap()
        }
        "zst" => zstd::encode_all(text.as_bytes(), 3).unwrap(),
        other => panic!("no compressor for {other}"),
    };
    std::fs::write(&target, bytes).unwrap();
    target
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success(), "mkfifo {}", path.display());
}

/// Writes `text` to the FIFO at `path` from a thread (the write blocks
/// until raygent opens the FIFO; it fails, harmlessly, if raygent goes).
fn produce(path: &Path, text: String) -> std::thread::JoinHandle<()> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = std::fs::write(path, text);
    })
}

#[test]
fn every_input_form_gives_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let texts = [
        ("lines", "a\n\nb b\n  c\n".repeat(40)),
        (
            "jsonl",
            "{\"a\": 1, \"b\": [1, 2]}\n\"s\"\n\n3.5\nnull\n".repeat(40),
        ),
        (
            "csv",
            format!(
                "x,y\n{}",
                "1,\"two, three\"\n\"multi\nline\",\"q\"\"q\"\n".repeat(40)
            ),
        ),
    ];
    for (format, text) in texts {
        let file = dir.path().join(format!("in.{format}"));
        std::fs::write(&file, &text).unwrap();
        let gz = compressed(&file, &text, "gz");
        let zst = compressed(&file, &text, "zst");
        let run_args = |out: &Path, input: Option<&str>| -> Vec<String> {
            let mut a: Vec<String> = [
                "run",
                "-c",
                "7",
                "-o",
                path_str(out),
                "--input-format",
                format,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if let Some(i) = input {
                a.extend(["-i".to_owned(), i.to_owned()]);
            }
            a.extend(["--".to_owned(), "cat".to_owned()]);
            a
        };
        let out = |name: &str| dir.path().join(format!("out-{format}-{name}"));

        run(&run_args(&out("file"), Some(path_str(&file)))).expect_code(0);
        let expected = cat(path_str(&out("file")), &[]);
        let records = if format == "csv" { 80 } else { 160 };
        assert_eq!(expected.lines().count(), records, "{format}: {expected}");

        let mut forms: Vec<(&str, Output)> = Vec::new();
        forms.push((
            "-i -",
            finish(
                raygent(&run_args(&out("dash"), Some("-"))),
                Some(text.clone()),
            ),
        ));
        forms.push((
            "stdin",
            finish(raygent(&run_args(&out("stdin"), None)), Some(text.clone())),
        ));
        forms.push((
            "-i /dev/stdin",
            finish(
                raygent(&run_args(&out("devstdin"), Some("/dev/stdin"))),
                Some(text.clone()),
            ),
        ));
        let fifo = dir.path().join(format!("fifo-{format}"));
        mkfifo(&fifo);
        let producer = produce(&fifo, text.clone());
        forms.push((
            "a FIFO",
            run(&run_args(&out("fifo"), Some(path_str(&fifo)))),
        ));
        producer.join().unwrap();
        // A process substitution, as a shell user writes it.
        let line = run_args(&out("procsub"), Some("PROCSUB"))
            .iter()
            .map(|a| {
                if a == "PROCSUB" {
                    format!("<(cat '{}')", path_str(&file))
                } else {
                    format!("'{a}'")
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let mut bash = Command::new("bash");
        bash.arg("-c")
            .arg(format!("exec '{}' {line}", env!("CARGO_BIN_EXE_raygent")))
            .env_remove("RAYGENT_FAILPOINT")
            .stdin(Stdio::null());
        forms.push(("-i <(...)", finish(bash, None)));
        forms.push((".gz", run(&run_args(&out("gz"), Some(path_str(&gz))))));
        forms.push((".zst", run(&run_args(&out("zst"), Some(path_str(&zst))))));

        for ((form, o), name) in forms
            .iter()
            .zip(["dash", "stdin", "devstdin", "fifo", "procsub", "gz", "zst"])
        {
            o.expect_code(0);
            assert!(
                !o.stderr.contains("done: 0 items"),
                "{format} from {form}: {}",
                o.stderr
            );
            assert_eq!(
                cat(path_str(&out(name)), &[]),
                expected,
                "{format} from {form} gives the records of the regular file"
            );
        }
    }
}

#[test]
fn a_killed_job_on_a_fifo_resumes_with_the_same_producer_and_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let records: String = (1..=1000).map(|x| format!("{x}\n")).collect();
    let producer = produce(&fifo, records.clone());
    let (child, args) = start_held_job_on(dir.path(), &out, &fifo);
    signal(child.id(), libc::SIGKILL);
    let o = wait_output(child);
    assert_eq!(o.code, -1, "killed by the signal");
    producer.join().unwrap();
    let committed = status_json(path_str(&out), &[])["items_committed"]
        .as_u64()
        .unwrap();
    assert!(committed >= 10, "{committed}");

    // Another producer: other records. The resume reads them, sees that the
    // part already done differs, and refuses.
    std::fs::write(dir.path().join("release"), "").unwrap();
    let other: String = (1..=1000).map(|x| format!("{}\n", x + 7)).collect();
    let producer = produce(&fifo, other);
    run(&args)
        .expect_code(2)
        .stderr_has(&["input changed", "stream", "--fresh"]);
    producer.join().unwrap();
    assert_eq!(cat(path_str(&out), &[]), squares(committed), "nothing lost");

    // The same producer again: the job resumes and the output is exact.
    let producer = produce(&fifo, records);
    let o = run(&args);
    o.expect_code(0)
        .stderr_has(&["1000 items in 200 chunks", "resumed"]);
    producer.join().unwrap();
    assert_eq!(cat(path_str(&out), &[]), squares(1000));
}

#[test]
fn after_an_abort_no_new_chunk_starts() {
    let dir = tempfile::tempdir().unwrap();
    let input = numbers(dir.path(), "in.txt", 100);
    let log = dir.path().join("started");
    let out = dir.path().join("out");
    // Records each chunk (one item each) as it starts; item 1 crashes.
    let worker = format!(
        "while read x; do echo $x >> '{}'; [ $x = 1 ] && exit 1; echo $x; done",
        path_str(&log)
    );
    run(&[
        "run",
        "-i",
        path_str(&input),
        "-c",
        "1",
        "-j",
        "1",
        "--retries",
        "0",
        "-o",
        path_str(&out),
        "--",
        "sh",
        "-c",
        &worker,
    ])
    .expect_code(1)
    .stderr_has(&["chunk 0"]);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "1\n",
        "no chunk started after chunk 0 failed for good"
    );
}
