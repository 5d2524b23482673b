//! Sharded jobs: what `status` costs over 10,000 shards, what sharding
//! costs on one machine, and how much of the input each shard reads.
//! Prints figures; asserts nothing.
//!
//! ```text
//! cargo bench -p raygent-cli --bench shard [-- status|shards|bytes]...
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use raygent_tests::S3Server;

const RAYGENT: &str = env!("CARGO_BIN_EXE_raygent");
const SQUARE: &str = "while read x; do echo $((x*x)); done";

fn raygent(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let out = Command::new(RAYGENT)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "raygent {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// CPU seconds (user + system) of every child process waited for so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage with a valid pointer to a zeroed struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// A store for writing the synthetic records.
enum Store {
    Local(std::path::PathBuf),
    S3(Box<dyn object_store::ObjectStore>, tokio::runtime::Runtime),
}

impl Store {
    fn put_all(&self, objects: Vec<(String, Vec<u8>)>) {
        match self {
            Store::Local(root) => {
                for (name, body) in objects {
                    let p = root.join(name);
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(p, body).unwrap();
                }
            }
            Store::S3(s, rt) => {
                use futures::StreamExt;
                rt.block_on(
                    futures::stream::iter(objects.into_iter().map(|(name, body)| async move {
                        s.put(&object_store::path::Path::from(name), body.into())
                            .await
                            .unwrap();
                    }))
                    .buffer_unordered(32)
                    .collect::<Vec<()>>(),
                );
            }
        }
    }
}

/// A job of 10,000 shards: 10 real ones (5 done, 5 stopped by a failing
/// worker), 9,985 more marked done from copies of the real records, 5
/// never started. Returns how long `status` took and how many requests it
/// made, twice (text, then JSON).
fn status_over_10000(label: &str, url: &str, store: Store, input: &str, env: &[(&str, String)]) {
    const SHARDS: u32 = 10_000;
    let n = SHARDS.to_string();
    let common = |i: u32, worker: &str| -> Vec<String> {
        [
            "run",
            "-q",
            "-i",
            input,
            "-o",
            url,
            "--shards",
            &n,
            "--shard",
            &i.to_string(),
            "-c",
            "1",
            "-j",
            "1",
            "--",
            "sh",
            "-c",
            worker,
        ]
        .map(String::from)
        .to_vec()
    };
    // One worker for every shard (the command is part of the job); with
    // FAIL set it fails at its second record.
    let worker = "n=0; while read x; do n=$((n+1)); [ -n \"$FAIL\" ] && [ $n -ge 2 ] && exit 7; echo $x; done";
    for i in 0..5 {
        let a = common(i, worker);
        raygent(&a.iter().map(String::as_str).collect::<Vec<_>>(), env);
    }
    // Shards 5-9 stop at their second record (a checkpoint of one chunk).
    let mut failing_env = env.to_vec();
    failing_env.push(("FAIL", "1".to_owned()));
    for i in 5..10 {
        let mut a = common(i, worker);
        let dashes = a.iter().position(|x| x == "--").unwrap();
        a.insert(dashes, "--retries=0".into());
        raygent(
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
            &failing_env,
        );
    }
    // Copies of shard 0's done record for shards 10..9995.
    let done0 = match &store {
        Store::Local(root) => std::fs::read(root.join("_shards/_done/00000.json")).unwrap(),
        Store::S3(s, rt) => rt
            .block_on(async {
                s.get(&object_store::path::Path::from(
                    "out/_shards/_done/00000.json",
                ))
                .await
                .unwrap()
                .bytes()
                .await
            })
            .unwrap()
            .to_vec(),
    };
    let template: serde_json::Value = serde_json::from_slice(&done0).unwrap();
    let prefix = match &store {
        Store::Local(_) => "",
        Store::S3(..) => "out/",
    };
    let objects: Vec<(String, Vec<u8>)> = (10..SHARDS - 5)
        .map(|i| {
            let mut v = template.clone();
            v["shard"] = i.into();
            (
                format!("{prefix}_shards/_done/{i:05}.json"),
                serde_json::to_vec_pretty(&v).unwrap(),
            )
        })
        .collect();
    store.put_all(objects);
    for args in [
        &["-v", "status", url][..],
        &["-v", "status", "--json", url][..],
    ] {
        let t = Instant::now();
        let out = raygent(args, env);
        let wall = t.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let requests: u64 = stderr
            .lines()
            .find_map(|l| l.split("shards: ").nth(1)?.split(' ').next()?.parse().ok())
            .unwrap_or(0);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let rerun = if args.contains(&"--json") {
            let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            format!("{} shards to rerun", v["rerun"].as_array().unwrap().len())
        } else {
            stdout
                .lines()
                .find(|l| l.starts_with("rerun:"))
                .unwrap_or("")
                .to_owned()
        };
        println!(
            "  {label:<6} {:<14} {:>7.2} s  {requests:>6} requests ({:.2} per shard)  [{}]",
            args[1..args.len() - 1].join(" "),
            wall.as_secs_f64(),
            requests as f64 / f64::from(SHARDS),
            rerun.trim()
        );
    }
}

fn bench_status() {
    println!("status over a 10,000-shard job (9,990 done, 5 stopped, 5 never started):");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(
        &input,
        (0..20_000).map(|i| format!("{i}\n")).collect::<String>(),
    )
    .unwrap();
    let input = input.to_str().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    status_over_10000(
        "local",
        out.to_str().unwrap(),
        Store::Local(out.clone()),
        input,
        &[],
    );
    let s3 = S3Server::shared();
    let bucket = s3.new_bucket("bench-status");
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(s3.endpoint())
        .with_bucket_name(&bucket)
        .with_access_key_id(raygent_tests::ACCESS_KEY)
        .with_secret_access_key(raygent_tests::SECRET_KEY)
        .with_region(raygent_tests::REGION)
        .with_allow_http(true)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    status_over_10000(
        "moto",
        &format!("s3://{bucket}/out"),
        Store::S3(Box::new(store), rt),
        input,
        &s3.env(),
    );
}

/// Runs `n` shards of the job at once (or the unsharded job for `n = 0`);
/// wall time and CPU of every process.
fn one_round(dir: &Path, input: &str, n: u32, round: u32) -> (Duration, f64) {
    let out = dir.join(format!("out-{n}-{round}"));
    let out = out.to_str().unwrap();
    let workers = (2 / n.max(1)).max(1).to_string();
    let cpu = children_cpu();
    let t = Instant::now();
    let base = [
        "run", "-q", "-i", input, "-o", out, "-c", "1000", "-j", &workers,
    ];
    let mut children = Vec::new();
    for i in 0..n.max(1) {
        let mut a: Vec<String> = base.map(String::from).to_vec();
        if n > 0 {
            a.extend([
                "--shards".into(),
                n.to_string(),
                "--shard".into(),
                i.to_string(),
            ]);
        }
        a.extend(["--", "sh", "-c", SQUARE].map(String::from));
        children.push(
            Command::new(RAYGENT)
                .args(&a)
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    (t.elapsed(), children_cpu() - cpu)
}

fn bench_shards() {
    println!(
        "\n1, 2 and 4 shards of one job, all at once on this machine, against one unsharded run"
    );
    println!("(1,000,000 records, shell worker, 2 workers in all, chunk 1000; medians of 3):");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(
        &input,
        (0..1_000_000).map(|i| format!("{i}\n")).collect::<String>(),
    )
    .unwrap();
    let input = input.to_str().unwrap();
    let mut base = (0.0, 0.0);
    for n in [0u32, 1, 2, 4] {
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        for round in 0..3 {
            let (w, c) = one_round(dir.path(), input, n, round);
            walls.push(w.as_secs_f64());
            cpus.push(c);
        }
        walls.sort_by(f64::total_cmp);
        cpus.sort_by(f64::total_cmp);
        let (w, c) = (walls[1], cpus[1]);
        if n == 0 {
            base = (w, c);
        }
        let name = match n {
            0 => "unsharded".to_owned(),
            1 => "1 shard".to_owned(),
            n => format!("{n} shards"),
        };
        println!(
            "  {name:<10} wall {w:>6.2} s ({:>5.2}x)   CPU {c:>6.2} s ({:>5.2}x)",
            w / base.0,
            c / base.1
        );
    }
}

fn bench_bytes() {
    println!("\nbytes each shard reads of a 1 GiB input split 8 ways (local file, `cat` worker):");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.txt");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        let mut written = 0u64;
        let mut i = 0u64;
        while written < 1 << 30 {
            let line = format!("{i:012} {}\n", "x".repeat((i % 150) as usize));
            f.write_all(line.as_bytes()).unwrap();
            written += line.len() as u64;
            i += 1;
        }
    }
    let size = std::fs::metadata(&input).unwrap().len();
    let input = input.to_str().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let mut total = 0;
    for i in 0..8 {
        let t = Instant::now();
        let o = raygent(
            &[
                "-v",
                "run",
                "-i",
                input,
                "-o",
                out,
                "--shards",
                "8",
                "--shard",
                &i.to_string(),
                "-c",
                "20000",
                "--save-interval",
                "200000",
                "--format",
                "jsonl",
                "--",
                "cat",
            ],
            &[],
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        let read: u64 = stderr
            .lines()
            .find_map(|l| l.split("read ").nth(1)?.split(' ').next()?.parse().ok())
            .unwrap_or(0);
        total += read;
        println!(
            "  shard {i}: {read:>11} bytes = {:.4} of the input ({:.4} of an eighth), {:.1} s",
            read as f64 / size as f64,
            read as f64 / (size as f64 / 8.0),
            t.elapsed().as_secs_f64()
        );
    }
    println!(
        "  all 8:   {total:>11} bytes = {:.6} of the input ({size} bytes)",
        total as f64 / size as f64
    );
    let _ = std::fs::remove_dir_all(dir.path());
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    println!(
        "raygent shard benchmark: {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if want("status") {
        bench_status();
    }
    if want("shards") {
        bench_shards();
    }
    if want("bytes") {
        bench_bytes();
    }
}
