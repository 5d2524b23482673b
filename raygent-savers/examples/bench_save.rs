//! Saving results as CBOR through `DatasetSaver`, against writing the same
//! bytes without it: plain `std::fs` + fsync to a local directory, and raw
//! object_store puts to the S3 test server (moto on loopback, or
//! `RAYGENT_TEST_S3_ENDPOINT`).
//!
//! ```text
//! cargo run --release -p raygent-savers --example bench_save
//! RAYGENT_BENCH_MIB=64 cargo run --release -p raygent-savers --example bench_save
//! ```
//!
//! Settings (environment): `RAYGENT_BENCH_MIB` total size (default 1024),
//! `RAYGENT_BENCH_PART_MIB` size of one part (default 64),
//! `RAYGENT_BENCH_REPS` runs of each variant, best taken (default 1),
//! `RAYGENT_BENCH_DIR` the local directory (default: a temporary one),
//! `RAYGENT_BENCH_SKIP_S3=1` to bench local disk only.
//!
//! Then Parquet (feature `parquet`, which the workspace enables): the same
//! results saved as Parquet and as CBOR through `DatasetSaver`, against raw
//! writes of their CBOR bytes, to the same store, and the bytes on disk of
//! Parquet against JSON Lines, for numeric results (an id and four numbers)
//! and for the line records above. `RAYGENT_BENCH_PQ_ROWS` numeric results
//! (default 4,000,000) in `RAYGENT_BENCH_PQ_PARTS` parts (default 16); the
//! line records are `RAYGENT_BENCH_PQ_MIB` MiB of CBOR (default 256).
//!
//! ```text
//! cargo run --release -p raygent-savers --features parquet --example bench_save
//! ```
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use raygent_core::Batch;
use raygent_savers::{DatasetSaver, Format, Location, S3Options, SaverOptions};
use serde::Serialize;

/// One result: what a line-protocol worker returns (an id and a ~1 KiB line).
#[derive(Serialize)]
struct Record {
    id: u64,
    line: String,
}

/// A numeric result: what a simulation or a scoring task returns.
#[derive(Serialize)]
struct Numbers {
    id: u64,
    step: i64,
    value: f64,
    error: f64,
    ok: bool,
}

fn numbers(p: u64, per: u64) -> Vec<Numbers> {
    (p * per..(p + 1) * per)
        .map(|id| Numbers {
            id,
            step: (id % 1000) as i64 - 500,
            value: (id as f64).sqrt(),
            error: 1.0 / (id as f64 + 1.0),
            ok: id % 7 != 0,
        })
        .collect()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The results of part `p`, about `part_bytes` of CBOR.
fn batch(p: u64, part_bytes: u64) -> Vec<Record> {
    let per = part_bytes / 1040;
    (p * per..(p + 1) * per)
        .map(|id| Record {
            id,
            line: format!("{id:>20} {}", "x".repeat(1000)),
        })
        .collect()
}

fn cbor(results: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(results.len() * 1040 + (1 << 20));
    for r in results {
        ciborium::into_writer(r, &mut out).unwrap();
    }
    out
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

struct Setup {
    parts: u64,
    part_bytes: u64,
    reps: u64,
}

fn saver_options() -> SaverOptions {
    let mut options = SaverOptions::default();
    if let Ok(mib) = std::env::var("RAYGENT_BENCH_THRESHOLD_MIB") {
        options = options.with_multipart_threshold(mib.parse::<usize>().unwrap() << 20);
    }
    if let Ok(n) = std::env::var("RAYGENT_BENCH_IN_FLIGHT") {
        options = options.with_saves_in_flight(n.parse().unwrap());
    }
    options
}

/// Times `DatasetSaver` as the runtime drives it (`submit_batch` per part,
/// then `finish_dataset`, encoding included) against a raw write of the
/// same bytes, encoded in advance, one part after the other. Every batch
/// and its encoding are built before any timing starts, so nothing untimed
/// overlaps the saver's uploads. The two variants alternate which goes
/// first at every repetition. Returns the raw and the saver's times (best
/// repetition of each) and the bytes written.
fn time_pair(
    s: &Setup,
    new_location: &dyn Fn(&str) -> Location,
    raw_write: &mut dyn FnMut(&Location, u64, Vec<u8>),
) -> (Duration, Duration, u64) {
    let batches: Vec<Vec<Record>> = (0..s.parts).map(|p| batch(p, s.part_bytes)).collect();
    let (mut raw_best, mut saver_best) = (Duration::MAX, Duration::MAX);
    let (mut raw_bytes, mut bytes) = (0, 0);
    for rep in 0..s.reps {
        for turn in 0..2 {
            if (turn + rep) % 2 == 0 {
                let encoded: Vec<Vec<u8>> = batches.iter().map(|b| cbor(b)).collect();
                raw_bytes = encoded.iter().map(|e| e.len() as u64).sum();
                let raw = new_location(&format!("raw-{rep}"));
                let start = Instant::now();
                for (p, bytes) in encoded.into_iter().enumerate() {
                    raw_write(&raw, p as u64, bytes);
                }
                raw_best = raw_best.min(start.elapsed());
            } else {
                let location = new_location(&format!("saver-{rep}"));
                let start = Instant::now();
                let mut saver = DatasetSaver::new(location, saver_options()).unwrap();
                let mut item = 0;
                for (p, results) in batches.iter().enumerate() {
                    let p = p as u64;
                    let n = results.len() as u64;
                    saver
                        .submit_batch(&Batch {
                            chunks: p..p + 1,
                            items: item..item + n,
                            results,
                        })
                        .unwrap();
                    item += n;
                }
                saver.finish_dataset().unwrap();
                saver_best = saver_best.min(start.elapsed());
                bytes = saver.stats().bytes;
            }
        }
    }
    assert_eq!(raw_bytes, bytes, "both write the same bytes");
    (raw_best, saver_best, bytes)
}

/// What one comparison measured: best times and bytes written.
struct Compared {
    raw: Duration,
    cbor: Duration,
    parquet: Duration,
    cbor_bytes: u64,
    parquet_bytes: u64,
    jsonl_bytes: u64,
    results: u64,
}

fn save_with<T: Serialize>(
    location: Location,
    format: Format,
    batches: &[Vec<T>],
) -> (Duration, u64) {
    let start = Instant::now();
    let mut saver = DatasetSaver::new(location, saver_options().with_format(format)).unwrap();
    let mut item = 0;
    for (p, results) in batches.iter().enumerate() {
        let p = p as u64;
        let n = results.len() as u64;
        saver
            .submit_batch(&Batch {
                chunks: p..p + 1,
                items: item..item + n,
                results,
            })
            .unwrap();
        item += n;
    }
    saver.finish_dataset().unwrap();
    (start.elapsed(), saver.stats().bytes)
}

/// The same results as Parquet and as CBOR through `DatasetSaver`, and as
/// raw writes of their CBOR bytes (encoded in advance), to the same store;
/// the three take turns going first. JSON Lines once, for its size.
fn compare<T: Serialize>(
    batches: &[Vec<T>],
    reps: u64,
    new_location: &dyn Fn(&str) -> Location,
    raw_write: &mut dyn FnMut(&Location, u64, Vec<u8>),
) -> Compared {
    let (mut raw, mut cbor, mut parquet) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let (mut cbor_bytes, mut parquet_bytes) = (0, 0);
    for rep in 0..reps {
        for turn in 0..3 {
            match (turn + rep) % 3 {
                0 => {
                    let encoded: Vec<Vec<u8>> = batches
                        .iter()
                        .map(|b| {
                            let mut out = Vec::new();
                            for r in b {
                                ciborium::into_writer(r, &mut out).unwrap();
                            }
                            out
                        })
                        .collect();
                    let loc = new_location(&format!("pq-raw-{rep}"));
                    let start = Instant::now();
                    for (p, bytes) in encoded.into_iter().enumerate() {
                        raw_write(&loc, p as u64, bytes);
                    }
                    raw = raw.min(start.elapsed());
                }
                1 => {
                    let (t, b) = save_with(
                        new_location(&format!("pq-cbor-{rep}")),
                        Format::Cbor,
                        batches,
                    );
                    cbor = cbor.min(t);
                    cbor_bytes = b;
                }
                _ => {
                    let (t, b) = save_with(
                        new_location(&format!("pq-parquet-{rep}")),
                        Format::Parquet,
                        batches,
                    );
                    parquet = parquet.min(t);
                    parquet_bytes = b;
                }
            }
        }
    }
    let (_, jsonl_bytes) = save_with(new_location("pq-jsonl"), Format::JsonLines, batches);
    Compared {
        raw,
        cbor,
        parquet,
        cbor_bytes,
        parquet_bytes,
        jsonl_bytes,
        results: batches.iter().map(|b| b.len() as u64).sum(),
    }
}

fn print_compared(store: &str, what: &str, c: &Compared) {
    let mrs = |d: Duration| c.results as f64 / 1e6 / d.as_secs_f64();
    println!(
        "{store:<6} {what:<8} raw CBOR writes {:>7.2} M results/s   CBOR saver {:>7.2} ({:.2} of raw)   \
         Parquet saver {:>7.2} ({:.2} of raw)",
        mrs(c.raw),
        mrs(c.cbor),
        c.raw.as_secs_f64() / c.cbor.as_secs_f64(),
        mrs(c.parquet),
        c.raw.as_secs_f64() / c.parquet.as_secs_f64(),
    );
    println!(
        "{store:<6} {what:<8} bytes: Parquet {:.1} MiB, JSON Lines {:.1} MiB ({:.2} of JSON Lines), CBOR {:.1} MiB",
        c.parquet_bytes as f64 / (1 << 20) as f64,
        c.jsonl_bytes as f64 / (1 << 20) as f64,
        c.parquet_bytes as f64 / c.jsonl_bytes as f64,
        c.cbor_bytes as f64 / (1 << 20) as f64,
    );
}

/// The Parquet comparisons on local disk and (unless skipped) S3.
fn bench_parquet(reps: u64, base: &std::path::Path, s3: Option<(&str, &S3Options)>) {
    let rows = env_u64("RAYGENT_BENCH_PQ_ROWS", 4_000_000);
    let parts = env_u64("RAYGENT_BENCH_PQ_PARTS", 16).max(1);
    let per = rows.div_ceil(parts);
    let nums: Vec<Vec<Numbers>> = (0..parts).map(|p| numbers(p, per)).collect();
    let line_mib = env_u64("RAYGENT_BENCH_PQ_MIB", 256) << 20;
    let line_parts = line_mib.div_ceil(64 << 20).max(1);
    let lines: Vec<Vec<Record>> = (0..line_parts)
        .map(|p| batch(p, line_mib / line_parts))
        .collect();
    println!(
        "Parquet: {} numeric results in {parts} parts; {} line records ({} MiB of CBOR) in {line_parts} parts; best of {reps}",
        per * parts,
        lines.iter().map(Vec::len).sum::<usize>(),
        line_mib >> 20
    );
    let local = |name: &str| Location::parse(base.join(name).to_str().unwrap()).unwrap();
    let mut fs_write = |loc: &Location, p: u64, bytes: Vec<u8>| {
        let dir = loc.local_dir().unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = std::fs::File::create(dir.join(format!("part-{p}.cbor"))).unwrap();
        f.write_all(&bytes).unwrap();
        f.sync_all().unwrap();
    };
    print_compared(
        "local",
        "numeric",
        &compare(&nums, reps, &|n| local(&format!("num-{n}")), &mut fs_write),
    );
    print_compared(
        "local",
        "lines",
        &compare(
            &lines,
            reps,
            &|n| local(&format!("line-{n}")),
            &mut fs_write,
        ),
    );
    let Some((bucket, s3)) = s3 else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let remote = |name: &str| Location::parse_with(&format!("s3://{bucket}/{name}"), s3).unwrap();
    let mut put = |loc: &Location, p: u64, bytes: Vec<u8>| {
        let path = loc.path(&format!("part-{p}.cbor"));
        rt.block_on(loc.store().put(&path, bytes::Bytes::from(bytes).into()))
            .unwrap();
    };
    print_compared(
        "S3",
        "numeric",
        &compare(&nums, reps, &|n| remote(&format!("num-{n}")), &mut put),
    );
    print_compared(
        "S3",
        "lines",
        &compare(&lines, reps, &|n| remote(&format!("line-{n}")), &mut put),
    );
}

fn main() {
    let total = env_u64("RAYGENT_BENCH_MIB", 1024) << 20;
    let part_bytes = env_u64("RAYGENT_BENCH_PART_MIB", 64) << 20;
    let s = Setup {
        parts: total.div_ceil(part_bytes).max(1),
        part_bytes,
        reps: env_u64("RAYGENT_BENCH_REPS", 1).max(1),
    };
    let probe = batch(0, s.part_bytes);
    let mut encoded = Vec::with_capacity(s.part_bytes as usize + (1 << 20));
    let t = Instant::now();
    for r in &probe {
        ciborium::into_writer(r, &mut encoded).unwrap();
    }
    println!(
        "encoding one part: {:.1} MiB/s",
        mib_s(encoded.len() as u64, t.elapsed())
    );
    drop((probe, encoded));
    println!(
        "saving {} MiB of CBOR results in {} parts of {} MiB, best of {}",
        total >> 20,
        s.parts,
        part_bytes >> 20,
        s.reps
    );

    // Local directory.
    let tmp = tempfile::tempdir().unwrap();
    let base = std::env::var("RAYGENT_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tmp.path().to_owned());
    let (raw, saver, bytes) = time_pair(
        &s,
        &|name| Location::parse(base.join(name).to_str().unwrap()).unwrap(),
        &mut |loc, p, bytes| {
            let dir = loc.local_dir().unwrap();
            std::fs::create_dir_all(&dir).unwrap();
            let mut f = std::fs::File::create(dir.join(format!("part-{p}.cbor"))).unwrap();
            f.write_all(&bytes).unwrap();
            f.sync_all().unwrap();
        },
    );
    println!(
        "local  std::fs+fsync {:>8.1} MiB/s   DatasetSaver {:>8.1} MiB/s   ratio {:.2}",
        mib_s(bytes, raw),
        mib_s(bytes, saver),
        raw.as_secs_f64() / saver.as_secs_f64()
    );

    if std::env::var("RAYGENT_BENCH_SKIP_S3").is_ok_and(|v| v == "1") {
        bench_parquet(s.reps, &base, None);
        return;
    }
    let server = raygent_tests::S3Server::shared();
    let s3 = S3Options::default()
        .with_endpoint(server.endpoint())
        .with_region(raygent_tests::REGION)
        .with_access_key_id(raygent_tests::ACCESS_KEY)
        .with_secret_access_key(raygent_tests::SECRET_KEY)
        .with_allow_http(true);
    let bucket = server.new_bucket("bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (raw, saver, bytes) = time_pair(
        &s,
        &|name| Location::parse_with(&format!("s3://{bucket}/{name}"), &s3).unwrap(),
        &mut |loc, p, bytes| {
            let path = loc.path(&format!("part-{p}.cbor"));
            rt.block_on(loc.store().put(&path, bytes::Bytes::from(bytes).into()))
                .unwrap();
        },
    );
    println!(
        "S3     raw puts      {:>8.1} MiB/s   DatasetSaver {:>8.1} MiB/s   ratio {:.2}   ({})",
        mib_s(bytes, raw),
        mib_s(bytes, saver),
        raw.as_secs_f64() / saver.as_secs_f64(),
        server.endpoint()
    );
    bench_parquet(s.reps, &base, Some((&bucket, &s3)));
}
