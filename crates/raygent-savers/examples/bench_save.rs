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
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use raygent_core::Batch;
use raygent_savers::{DatasetSaver, Location, S3Options, SaverOptions};
use serde::Serialize;

/// One result: what a line-protocol worker returns (an id and a ~1 KiB line).
#[derive(Serialize)]
struct Record {
    id: u64,
    line: String,
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
    let mut out = Vec::new();
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

/// Times `DatasetSaver` over `parts` batches (building the results is not timed).
fn time_saver(s: &Setup, new_location: &dyn Fn(u64) -> Location) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut bytes = 0;
    for rep in 0..s.reps {
        let mut options = SaverOptions::default();
        if let Ok(mib) = std::env::var("RAYGENT_BENCH_THRESHOLD_MIB") {
            options = options.with_multipart_threshold(mib.parse::<usize>().unwrap() << 20);
        }
        let mut saver = DatasetSaver::new(new_location(rep), options).unwrap();
        let mut elapsed = Duration::ZERO;
        let mut item = 0;
        for p in 0..s.parts {
            let results = batch(p, s.part_bytes);
            let n = results.len() as u64;
            let start = Instant::now();
            saver
                .save_batch(&Batch {
                    chunks: p..p + 1,
                    items: item..item + n,
                    results: &results,
                })
                .unwrap();
            elapsed += start.elapsed();
            item += n;
        }
        let start = Instant::now();
        saver.finish_dataset().unwrap();
        elapsed += start.elapsed();
        bytes = saver.stats().bytes;
        best = best.min(elapsed);
    }
    (best, bytes)
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
    let t = Instant::now();
    let encoded = cbor(&probe);
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
    let raw_dir = base.join("raw");
    std::fs::create_dir_all(&raw_dir).unwrap();
    let mut raw_best = Duration::MAX;
    let mut raw_bytes = 0;
    for _ in 0..s.reps {
        let mut elapsed = Duration::ZERO;
        raw_bytes = 0;
        for p in 0..s.parts {
            let bytes = cbor(&batch(p, s.part_bytes));
            let start = Instant::now();
            let mut f = std::fs::File::create(raw_dir.join(format!("part-{p}.cbor"))).unwrap();
            f.write_all(&bytes).unwrap();
            f.sync_all().unwrap();
            elapsed += start.elapsed();
            raw_bytes += bytes.len() as u64;
        }
        raw_best = raw_best.min(elapsed);
    }
    let (saver_best, saver_bytes) = time_saver(&s, &|rep| {
        Location::parse(base.join(format!("saver-{rep}")).to_str().unwrap()).unwrap()
    });
    assert_eq!(raw_bytes, saver_bytes, "both write the same bytes");
    println!(
        "local  std::fs+fsync {:>8.1} MiB/s   DatasetSaver {:>8.1} MiB/s   ratio {:.2}",
        mib_s(raw_bytes, raw_best),
        mib_s(saver_bytes, saver_best),
        raw_best.as_secs_f64() / saver_best.as_secs_f64()
    );

    if std::env::var("RAYGENT_BENCH_SKIP_S3").is_ok_and(|v| v == "1") {
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
    let raw = Location::parse_with(&format!("s3://{bucket}/raw"), &s3).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut raw_best = Duration::MAX;
    for _ in 0..s.reps {
        let mut elapsed = Duration::ZERO;
        for p in 0..s.parts {
            let bytes = bytes::Bytes::from(cbor(&batch(p, s.part_bytes)));
            let path = raw.path(&format!("part-{p}.cbor"));
            let start = Instant::now();
            rt.block_on(raw.store().put(&path, bytes.into())).unwrap();
            elapsed += start.elapsed();
        }
        raw_best = raw_best.min(elapsed);
    }
    let (saver_best, saver_bytes) = time_saver(&s, &|rep| {
        Location::parse_with(&format!("s3://{bucket}/saver-{rep}"), &s3).unwrap()
    });
    println!(
        "S3     raw puts      {:>8.1} MiB/s   DatasetSaver {:>8.1} MiB/s   ratio {:.2}   ({})",
        mib_s(raw_bytes, raw_best),
        mib_s(saver_bytes, saver_best),
        raw_best.as_secs_f64() / saver_best.as_secs_f64(),
        server.endpoint()
    );
}
