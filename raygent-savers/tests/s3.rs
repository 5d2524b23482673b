//! Against a real S3 server (moto on 127.0.0.1): the conformance suite,
//! an outage in the middle of a job, and bad configuration.

// Test helpers may panic: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use raygent_core::{Batch, Saver};
use raygent_savers::{
    DatasetReader, DatasetSaver, Error, Location, S3Options, SaverOptions, integration,
};
use raygent_tests::{ACCESS_KEY, REGION, S3Server, SECRET_KEY, private_s3_server};

fn s3_options(endpoint: &str) -> S3Options {
    S3Options::default()
        .with_endpoint(endpoint)
        .with_region(REGION)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .with_allow_http(true)
}

static N: AtomicU64 = AtomicU64::new(0);

/// A fresh bucket, with a two-level prefix inside it.
fn new_s3() -> Location {
    let server = S3Server::shared();
    let bucket = server.new_bucket("savers");
    let n = N.fetch_add(1, Ordering::SeqCst);
    Location::parse_with(
        &format!("s3://{bucket}/jobs/run-{n}"),
        &s3_options(server.endpoint()),
    )
    .unwrap()
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod conformance {
            $(#[test] fn $name() { raygent_savers::integration::$name(&super::new_s3); })*
        }
    };
}

conformance!(
    round_trip_every_format,
    ordering_across_many_parts,
    multipart_part,
    parts_in_flight_commit_in_order,
    resumed_save_rewrites_same_part,
    orphan_part_ignored_and_removed,
    corrupted_part_reported_by_name,
    existing_dataset_is_protected,
    success_marker_lifecycle,
    parquet_index_schema_and_resume,
    parquet_parts_in_flight_commit_in_order,
);

#[test]
fn the_server_stopping_mid_job_fails_the_next_save_with_url_and_part() {
    let server = private_s3_server();
    let bucket = server.new_bucket("outage");
    let s3 = s3_options(server.endpoint())
        .with_retry_timeout(Duration::from_secs(2))
        .with_max_retries(4);
    let url = format!("s3://{bucket}/job");
    let mut saver =
        DatasetSaver::create(&url, SaverOptions::default().with_s3(s3.clone())).unwrap();
    let results: Vec<u64> = (0..30).collect();
    for c in 0..3u64 {
        let r = &results[(c * 10) as usize..((c + 1) * 10) as usize];
        Saver::save(
            &mut saver,
            &Batch {
                chunks: c..c + 1,
                items: c * 10..(c + 1) * 10,
                results: r,
            },
        )
        .unwrap();
    }
    // What was committed reads back intact (read before the server goes:
    // a killed moto keeps no data).
    let reader = DatasetReader::open_with(&url, &s3).unwrap();
    let back: Vec<u64> = reader.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(back, results);

    server.kill();
    let started = Instant::now();
    let err = Saver::save(
        &mut saver,
        &Batch {
            chunks: 3..4,
            items: 30..31,
            results: &[30u64],
        },
    )
    .unwrap_err();
    let took = started.elapsed();
    let msg = err.to_string();
    assert!(msg.contains(&url), "{msg}");
    assert!(
        msg.contains("part-00000000000000000003-00000000000000000004.cbor"),
        "{msg}"
    );
    assert!(
        took < Duration::from_secs(15),
        "the error took {took:?}; the retry timeout is 2 s"
    );
    // Nothing uncommitted is reported as saved.
    assert_eq!(saver.committed_until(), 3);
    assert_eq!(saver.stats().parts, 3);
}

#[test]
fn a_missing_bucket_is_reported_up_front() {
    let server = S3Server::shared();
    let url = "s3://raygent-no-such-bucket/out";
    let err = DatasetSaver::create(
        url,
        SaverOptions::default().with_s3(s3_options(server.endpoint())),
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotWritable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(url), "{msg}");
    assert!(msg.contains("bucket does not exist"), "{msg}");
}

#[test]
fn an_unreachable_endpoint_fails_within_the_retry_timeout() {
    // A port nothing listens on: the connection is refused, retried, then
    // reported.
    let port = raygent_tests::free_port().unwrap();
    let s3 = s3_options(&format!("http://127.0.0.1:{port}"))
        .with_retry_timeout(Duration::from_secs(1))
        .with_max_retries(2);
    let started = Instant::now();
    let err =
        DatasetSaver::create("s3://bucket/x", SaverOptions::default().with_s3(s3)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(matches!(err, Error::NotWritable { .. }), "{err:?}");
    assert!(err.to_string().contains("s3://bucket/x"), "{err}");
}

#[test]
fn an_http_endpoint_without_allow_http_names_the_setting() {
    let server = S3Server::shared();
    let bucket = server.new_bucket("nohttp");
    let s3 = s3_options(server.endpoint()).with_allow_http(false);
    let url = format!("s3://{bucket}/x");
    let err = DatasetSaver::create(&url, SaverOptions::default().with_s3(s3)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.contains("AWS_ALLOW_HTTP"), "{msg}");
}

#[test]
fn s3_urls_keep_bucket_and_prefix_apart() {
    let server = S3Server::shared();
    let loc = Location::parse_with("s3://b/one/two/", &s3_options(server.endpoint())).unwrap();
    assert_eq!(loc.url(), "s3://b/one/two");
    assert_eq!(loc.prefix().as_ref(), "one/two");
    assert_eq!(loc.child("_ckpt").prefix().as_ref(), "one/two/_ckpt");
    let err = Location::parse("s3:///nobucket").unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    // The same bucket read through a second Location sees the same data.
    let first = new_s3();
    integration::put_object(&first, "x", b"1".to_vec());
    let again = Location::parse_with(first.url(), &s3_options(server.endpoint())).unwrap();
    assert_eq!(integration::get_object(&again, "x"), b"1");
}

/// A saver dropped with a multipart upload in flight (a job that failed
/// elsewhere) lets it end: no incomplete multipart upload stays in the
/// bucket, where S3 would keep (and bill) its pieces.
#[test]
fn a_saver_dropped_mid_upload_leaves_no_incomplete_multipart_upload() {
    let server = S3Server::shared();
    let bucket = server.new_bucket("dropped");
    let options = SaverOptions::default()
        .with_s3(s3_options(server.endpoint()))
        .with_multipart_threshold(5 << 20)
        .with_multipart_piece(5 << 20);
    let mut saver = DatasetSaver::create(&format!("s3://{bucket}/job"), options).unwrap();
    // 1.5 million u64 that each take 9 bytes in CBOR: about 13.5 MB, so
    // three pieces, the last two still uploading when `submit` returns.
    let results: Vec<u64> = (0..1_500_000u64).map(|i| u64::MAX - i).collect();
    let batch = Batch {
        chunks: 0..1,
        items: 0..results.len() as u64,
        results: &results,
    };
    let until = <DatasetSaver as Saver<u64>>::submit(&mut saver, &batch).unwrap();
    assert_eq!(until, 0); // not committed yet
    drop(saver);
    let (code, listing) =
        raygent_tests::http_exchange(server.endpoint(), "GET", &format!("/{bucket}?uploads"))
            .unwrap();
    assert_eq!(code, 200, "{listing}");
    assert!(listing.contains("ListMultipartUploadsResult"), "{listing}");
    assert!(!listing.contains("<Upload>"), "{listing}");
}
