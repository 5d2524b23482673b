//! `--format parquet` read by the tools people use (DuckDB, pyarrow and
//! polars, in `python3`; `.ci/parquet.sh` installs them), `--result-format
//! json`, the schema check and its resume, `_SUCCESS` for every format, and
//! `raygent cat --format`.
//!
//! Every child process is waited for with a deadline, so a hung one fails
//! its test instead of stalling the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use raygent_tests::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};

use support::DEADLINE;

/// A Python worker printing one JSON object per number: every type.
const TYPED: &str = r#"
import sys, json
for line in sys.stdin:
    i = int(line)
    print(json.dumps({
        "i": i, "f": i / 4, "s": "s%d" % i, "b": i % 2 == 0,
        "n": None if i % 3 else i, "l": list(range(i % 4)),
        "o": {"x": i * 1.5, "tag": "t%d" % (i % 2), "deep": {"k": [i, i + 1]}},
    }), flush=True)
"#;

/// The Python that checks what DuckDB, pyarrow and polars read from a
/// finished job made with `TYPED` over 1..=N: every result once, in order
/// by `_index`, with the expected types; raygent's own objects unread.
const CHECK_TYPED: &str = r#"
import sys, duckdb, pyarrow as pa, pyarrow.dataset as ds, polars as pl
out, n = sys.argv[1], int(sys.argv[2])
def expected(i):
    return {"_index": i - 1, "i": i, "f": i / 4, "s": "s%d" % i, "b": i % 2 == 0,
            "n": None if i % 3 else i, "l": list(range(i % 4)),
            "o": {"x": i * 1.5, "tag": "t%d" % (i % 2), "deep": {"k": [i, i + 1]}}}
want = [expected(i) for i in range(1, n + 1)]

con = duckdb.connect()
rel = con.sql(f"SELECT * FROM read_parquet('{out}/*.parquet') ORDER BY _index")
types = dict(zip(rel.columns, [str(t) for t in rel.types]))
assert types == {"_index": "BIGINT", "i": "BIGINT", "f": "DOUBLE", "s": "VARCHAR", "b": "BOOLEAN",
                 "n": "BIGINT", "l": "BIGINT[]",
                 "o": "STRUCT(x DOUBLE, tag VARCHAR, deep STRUCT(k BIGINT[]))"}, types
rows = [dict(zip(rel.columns, r)) for r in rel.fetchall()]
assert rows == want, (rows[:3], want[:3])
count = con.sql(f"SELECT count(*), count(DISTINCT _index) FROM read_parquet('{out}/*.parquet')").fetchall()[0]
assert count == (n, n), count

# pyarrow over the whole directory: _manifest/, _checkpoints/, _SUCCESS skipped.
table = ds.dataset(out, format="parquet").to_table().sort_by("_index")
s = table.schema
assert s.field("_index").type == pa.int64() and s.field("i").type == pa.int64(), s
assert s.field("f").type == pa.float64() and s.field("s").type == pa.string(), s
assert s.field("b").type == pa.bool_() and s.field("l").type == pa.list_(pa.int64()), s
assert s.field("o").type.field("deep").type.field("k").type == pa.list_(pa.int64()), s
assert table.to_pylist() == want

df = pl.read_parquet(f"{out}/*.parquet").sort("_index")
assert df.schema["i"] == pl.Int64 and df.schema["f"] == pl.Float64, df.schema
assert df.schema["s"] == pl.String and df.schema["b"] == pl.Boolean, df.schema
assert df.schema["l"] == pl.List(pl.Int64), df.schema
assert df.to_dicts() == want
print("OK", n)
"#;

/// Waits for `child` (its output piped), killing it after
/// [`DEADLINE`]; (exit code or -1, stdout, stderr).
fn wait(child: Child) -> (i32, String, String) {
    let out = support::wait_output(child);
    (out.code, out.stdout, out.stderr)
}

/// `raygent ARGS` (as the other CLI tests start it), its output piped.
fn raygent(args: &[&str]) -> Command {
    let mut c = support::raygent(args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// Runs `raygent ARGS`, expecting exit code `code`; returns stdout, stderr.
#[track_caller]
fn run_expect(cmd: Command, code: i32) -> (String, String) {
    let mut cmd = cmd;
    let (got, out, err) = wait(cmd.spawn().unwrap());
    assert_eq!(
        got, code,
        "exit code\n--- stdout:\n{out}\n--- stderr:\n{err}"
    );
    (out, err)
}

/// Runs a Python script (`python3 -c`) with `args`; panics with its output
/// unless it succeeds. Returns its stdout.
#[track_caller]
fn python(script: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with duckdb, pyarrow and polars: see .ci/parquet.sh)");
    let (code, out, err) = wait(child);
    assert_eq!(
        code, 0,
        "python failed\n--- stdout:\n{out}\n--- stderr:\n{err}"
    );
    out
}

fn numbers(dir: &Path, n: u64) -> String {
    let p = dir.join(format!("numbers-{n}.txt"));
    let text: String = (1..=n).map(|i| format!("{i}\n")).collect();
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

fn script(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

fn cat(out: &str, format: &str) -> String {
    run_expect(raygent(&["cat", "--format", format, out]), 0).0
}

#[test]
fn duckdb_pyarrow_and_polars_read_a_finished_job_by_glob() {
    let tmp = tempfile::tempdir().unwrap();
    let input = numbers(tmp.path(), 250);
    let worker = script(tmp.path(), "typed.py", TYPED);
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    let args = [
        "run",
        "-q",
        "-i",
        &input,
        "-o",
        out,
        "-c",
        "10",
        "--save-interval",
        "40",
        "-j",
        "2",
        "--format",
        "parquet",
        "--result-format",
        "json",
        "--",
        "python3",
        &worker,
    ];
    run_expect(raygent(&args), 0);
    let parts: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    assert_eq!(parts.len(), 7, "{parts:?}");
    assert!(Path::new(out).join("_SUCCESS").is_file());
    assert_eq!(python(CHECK_TYPED, &[out, "250"], &[]).trim(), "OK 250");
    // raygent reads it too, as JSON Lines and CSV.
    let jsonl = cat(out, "jsonl");
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(
        first,
        serde_json::json!({"i": 1, "f": 0.25, "s": "s1", "b": false, "n": null, "l": [0],
                           "o": {"x": 1.5, "tag": "t1", "deep": {"k": [1, 2]}}})
    );
    assert_eq!(jsonl.lines().count(), 250);
    let csv = cat(out, "csv");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("i,f,s,b,n,l,o"));
    assert_eq!(
        lines.next(),
        Some(r#"1,0.25,s1,false,,[0],"{""x"":1.5,""tag"":""t1"",""deep"":{""k"":[1,2]}}""#)
    );
}

#[test]
fn plain_lines_are_one_value_string_column_and_the_index_can_be_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let input = numbers(tmp.path(), 120);
    let square = "while read x; do echo $((x*x)); done";
    for (name, extra) in [("with", None), ("without", Some("--no-index-column"))] {
        let out = tmp.path().join(name);
        let out = out.to_str().unwrap();
        let mut args = vec![
            "run",
            "-q",
            "-i",
            &input,
            "-o",
            out,
            "-c",
            "7",
            "--save-interval",
            "30",
            "--format",
            "parquet",
        ];
        args.extend(extra);
        args.extend(["--", "sh", "-c", square]);
        run_expect(raygent(&args), 0);
        let got = python(
            r#"
import sys, duckdb
rel = duckdb.sql(f"SELECT * FROM read_parquet('{sys.argv[1]}/*.parquet')")
print(list(zip(rel.columns, [str(t) for t in rel.types])))
print(",".join(r[-1] for r in rel.fetchall()))
"#,
            &[out],
            &[],
        );
        let mut lines = got.lines();
        let columns = lines.next().unwrap();
        if extra.is_none() {
            assert_eq!(columns, "[('_index', 'BIGINT'), ('value', 'VARCHAR')]");
        } else {
            assert_eq!(columns, "[('value', 'VARCHAR')]");
        }
        let values: Vec<String> = (1..=120u64).map(|i| (i * i).to_string()).collect();
        assert_eq!(lines.next().unwrap(), values.join(","));
        // `cat` prints the lines the worker wrote, as for every format.
        assert_eq!(
            cat(out, "lines"),
            values.iter().map(|v| format!("{v}\n")).collect::<String>()
        );
    }
    // The index setting is part of the job: a rerun without it is refused.
    let out = tmp.path().join("with");
    let (_, err) = run_expect(
        raygent(&[
            "run",
            "-q",
            "-i",
            &input,
            "-o",
            out.to_str().unwrap(),
            "-c",
            "7",
            "--save-interval",
            "30",
            "--format",
            "parquet",
            "--no-index-column",
            "--",
            "sh",
            "-c",
            square,
        ]),
        2,
    );
    assert!(err.contains("no _index"), "{err}");
}

#[test]
fn pyarrow_and_polars_read_the_job_from_s3() {
    let s3 = S3Server::shared();
    let bucket = s3.new_bucket("parquet");
    let tmp = tempfile::tempdir().unwrap();
    let input = numbers(tmp.path(), 90);
    let worker = script(tmp.path(), "typed.py", TYPED);
    let url = format!("s3://{bucket}/jobs/typed");
    let mut cmd = raygent(&[
        "run",
        "-q",
        "-i",
        &input,
        "-o",
        &url,
        "-c",
        "10",
        "--save-interval",
        "20",
        "--format",
        "parquet",
        "--result-format",
        "json",
        "--",
        "python3",
        &worker,
    ]);
    cmd.envs(s3.env());
    run_expect(cmd, 0);
    let got = python(
        r#"
import sys, pyarrow.dataset as ds, pyarrow.fs as fs, polars as pl
endpoint, bucket, key, secret, region = sys.argv[1:6]
s3 = fs.S3FileSystem(endpoint_override=endpoint, scheme="http", access_key=key,
                     secret_key=secret, region=region)
t = ds.dataset(f"{bucket}/jobs/typed", filesystem=s3, format="parquet").to_table().sort_by("_index")
assert t.column("_index").to_pylist() == list(range(90))
assert t.column("i").to_pylist() == list(range(1, 91))
assert t.column("o").to_pylist()[4] == {"x": 7.5, "tag": "t1", "deep": {"k": [5, 6]}}
opts = {"aws_endpoint_url": endpoint, "aws_access_key_id": key, "aws_secret_access_key": secret,
        "aws_region": region, "aws_allow_http": "true"}
df = pl.read_parquet(f"s3://{bucket}/jobs/typed/*.parquet", storage_options=opts).sort("_index")
assert df["s"].to_list() == ["s%d" % i for i in range(1, 91)]
assert df["l"].to_list()[3] == [0, 1, 2, 3][:4 % 4]
assert df["n"].to_list()[:6] == [None, None, 3, None, None, 6], df["n"].to_list()[:6]
print("OK", t.num_rows, df.height)
"#,
        &[s3.endpoint(), &bucket, ACCESS_KEY, SECRET_KEY, REGION],
        &[],
    );
    assert_eq!(got.trim(), "OK 90 90");
}

#[test]
fn a_result_that_does_not_fit_stops_the_job_and_the_fixed_worker_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = numbers(tmp.path(), 60);
    let fixed = tmp.path().join("fixed");
    // Item 37 (input line 37) prints a string where the schema has int64,
    // until the worker is "fixed" (the file exists).
    let worker = script(
        tmp.path(),
        "w.sh",
        &format!(
            "while read x; do if [ \"$x\" = 37 ] && [ ! -f {} ]; then echo '{{\"x\": \"x37\"}}'; \
             else echo \"{{\\\"x\\\": $x, \\\"half\\\": $x.5}}\"; fi; done\n",
            fixed.display()
        ),
    );
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    let args = [
        "run",
        "-i",
        &input,
        "-o",
        out,
        "-c",
        "5",
        "--save-interval",
        "10",
        "--format",
        "parquet",
        "--result-format",
        "json",
        "--",
        "sh",
        &worker,
    ];
    let (_, err) = run_expect(raygent(&args), 1);
    for needle in [
        "item 36",
        "chunk 7",
        "field `x`",
        "has int64",
        "this result has string",
        "run the same command again to resume",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    assert!(!Path::new(out).join("_SUCCESS").exists());
    std::fs::write(&fixed, "").unwrap();
    let (_, err) = run_expect(raygent(&args), 0);
    // The parts committed before the bad one are kept, not redone.
    assert!(err.contains("(6 resumed)"), "{err}");
    assert!(Path::new(out).join("_SUCCESS").is_file());
    let got = python(
        r#"
import sys, duckdb
print(duckdb.sql(f"SELECT count(*), sum(x), min(_index), max(_index), max(half) FROM read_parquet('{sys.argv[1]}/*.parquet')").fetchall()[0])
"#,
        &[out],
        &[],
    );
    assert_eq!(got.trim(), "(60, 1830, 0, 59, 60.5)");
}

#[test]
fn success_marker_only_after_a_complete_run_for_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let input = numbers(tmp.path(), 200);
    let gate = tmp.path().join("gate");
    // Items past 60 wait for the gate file: the test stops the job there.
    let worker = format!(
        "while read x; do if [ $x -gt 60 ]; then while [ ! -f {} ]; do sleep 0.02; done; fi; \
         echo $x; done",
        gate.display()
    );
    for format in ["cbor", "jsonl", "csv", "parquet"] {
        let _ = std::fs::remove_file(&gate);
        let out = tmp.path().join(format);
        let out_s = out.to_str().unwrap().to_owned();
        let args = [
            "run",
            "-q",
            "-i",
            &input,
            "-o",
            &out_s,
            "-c",
            "10",
            "--save-interval",
            "10",
            "-j",
            "2",
            "--checkpoint-interval",
            "0s",
            "--format",
            format,
            "--",
            "sh",
            "-c",
            &worker,
        ];
        let child = raygent(&args).spawn().unwrap();
        // Stop it once a part is committed (chunks past 60 are stuck).
        support::wait_until(&format!("{format}: a committed part"), DEADLINE, || {
            std::fs::read_dir(out.join("_manifest")).is_ok_and(|d| d.count() >= 2)
        });
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        // The chunks in flight may finish now.
        std::fs::write(&gate, "").unwrap();
        let (code, _, err) = wait(child);
        assert_eq!(code, 130, "{format}: {err}");
        assert!(
            !out.join("_SUCCESS").exists(),
            "{format}: marker after an interrupted run"
        );
        // The rerun completes the job, and the marker comes last.
        run_expect(raygent(&args), 0);
        let marker: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("_SUCCESS")).unwrap()).unwrap();
        assert_eq!(marker["results"], 200, "{format}: {marker}");
        assert_eq!(marker["format"], format);
        assert_eq!(marker["failed_chunks"], 0);
        let lines: Vec<String> = (1..=200).map(|i| i.to_string()).collect();
        assert_eq!(
            cat(&out_s, "lines").lines().collect::<Vec<_>>(),
            lines,
            "{format}"
        );
        // A rerun of the finished job keeps it.
        run_expect(raygent(&args), 0);
        assert!(out.join("_SUCCESS").is_file(), "{format}");
        // --fresh removes it before anything else; a run that fails then
        // leaves none.
        let mut fresh: Vec<&str> = args[..args.len() - 4].to_vec();
        fresh.extend(["--fresh", "--retries", "0", "--", "sh", "-c", "exit 3"]);
        run_expect(raygent(&fresh), 1);
        assert!(
            !out.join("_SUCCESS").exists(),
            "{format}: marker after --fresh"
        );
    }
}

#[test]
fn cat_prints_every_stored_format_as_jsonl_and_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let input = numbers(tmp.path(), 30);
    let worker = "while read x; do echo \"{\\\"n\\\": $x, \\\"sq\\\": $((x*x)), \\\"tag\\\": \\\"t, $x\\\"}\"; done";
    let mut outputs = Vec::new();
    for format in ["cbor", "jsonl", "csv", "parquet"] {
        let out = tmp.path().join(format);
        let out = out.to_str().unwrap().to_owned();
        let mut args = vec![
            "run", "-q", "-i", &input, "-o", &out, "-c", "4", "--format", format,
        ];
        // CSV stores the lines (strings); the others the JSON values.
        if format != "csv" {
            args.extend(["--result-format", "json"]);
        }
        args.extend(["--", "sh", "-c", worker]);
        run_expect(raygent(&args), 0);
        outputs.push((format, cat(&out, "jsonl"), cat(&out, "csv"), out));
    }
    let jsonl: String = (1..=30)
        .map(|x| format!("{{\"n\":{x},\"sq\":{},\"tag\":\"t, {x}\"}}\n", x * x))
        .collect();
    let csv: String = std::iter::once("n,sq,tag\n".to_owned())
        .chain((1..=30).map(|x| format!("{x},{},\"t, {x}\"\n", x * x)))
        .collect();
    for (format, got_jsonl, got_csv, out) in &outputs {
        if *format == "csv" {
            // Lines stored as strings: JSON strings, one `value` column.
            let first: serde_json::Value =
                serde_json::from_str(got_jsonl.lines().next().unwrap()).unwrap();
            assert_eq!(
                first,
                serde_json::json!("{\"n\": 1, \"sq\": 1, \"tag\": \"t, 1\"}")
            );
            assert!(got_csv.starts_with("value\n"), "{got_csv}");
            continue;
        }
        assert_eq!(got_jsonl, &jsonl, "{format}");
        assert_eq!(got_csv, &csv, "{format}");
        // The default prints objects as JSON too, strings as they are.
        assert_eq!(cat(out, "lines"), jsonl, "{format}");
    }
}

/// What DuckDB reads of a sharded Parquet job, through the result
/// directories `raygent status --json` names: every result once, in global
/// input order by (file name, `_index`), equal to one unsharded run.
const CHECK_SHARDED: &str = r#"
import sys, json, duckdb
status, plain = json.loads(sys.argv[1]), sys.argv[2]
dirs = [s["results"] for s in status["shard_status"]]
assert len(dirs) == status["shards"] and all(d for d in dirs), dirs
globs = [d.removeprefix("file://") + "/*.parquet" for d in dirs]
con = duckdb.connect()
got = con.sql(f"SELECT i FROM read_parquet({globs!r}, filename=true) ORDER BY filename, _index").fetchall()
want = con.sql(f"SELECT i FROM read_parquet('{plain}/*.parquet') ORDER BY _index").fetchall()
assert got == want and len(got) == int(sys.argv[3]), (got[:5], want[:5], len(got))
print("OK", len(got))
"#;

#[test]
fn a_sharded_parquet_job_reads_as_one_dataset_through_its_status() {
    let tmp = tempfile::tempdir().unwrap();
    let input = numbers(tmp.path(), 300);
    let worker = script(tmp.path(), "typed.py", TYPED);
    let run_args = |out: &str| -> Vec<String> {
        [
            "run",
            "-q",
            "-i",
            &input,
            "-o",
            out,
            "-c",
            "10",
            "--save-interval",
            "30",
            "-j",
            "2",
            "--format",
            "parquet",
            "--result-format",
            "json",
            "--",
            "python3",
            &worker,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let plain = tmp.path().join("plain");
    let plain = plain.to_str().unwrap();
    let args = run_args(plain);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_expect(raygent(&args), 0);
    let sharded = tmp.path().join("sharded");
    let sharded = sharded.to_str().unwrap();
    for i in 0..3 {
        let mut a = run_args(sharded);
        a.insert(1, "--shards=3".into());
        a.insert(2, format!("--shard={i}"));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run_expect(raygent(&a), 0);
    }
    assert!(Path::new(sharded).join("_SUCCESS").is_file());
    let status = run_expect(raygent(&["status", "--json", sharded]), 0).0;
    assert_eq!(
        python(CHECK_SHARDED, &[&status, plain, "300"], &[]).trim(),
        "OK 300"
    );
}
