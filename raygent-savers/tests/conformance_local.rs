//! The conformance suite against a local directory and the in-memory store.

// Test helpers may panic: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use raygent_savers::{Location, integration};

static N: AtomicU64 = AtomicU64::new(0);

fn new_memory() -> Location {
    let n = N.fetch_add(1, Ordering::SeqCst);
    Location::parse(&format!("memory://conformance/run-{n}")).unwrap()
}

/// Each location gets its own new directory under cargo's scratch space
/// for integration tests (a plain path, not a URL).
fn new_local() -> Location {
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "raygent-savers-conformance-{}-{n}",
        std::process::id()
    ));
    Location::parse(dir.to_str().unwrap()).unwrap()
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[test] fn $name() { raygent_savers::integration::$name(&super::new_local); })*
        }
        mod memory {
            $(#[test] fn $name() { raygent_savers::integration::$name(&super::new_memory); })*
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
fn file_url_and_nested_prefix_work() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/nested/out", dir.path().display());
    let loc = Location::parse(&url).unwrap();
    assert!(dir.path().join("nested/out").is_dir());
    integration::round_trip_every_format(&|| {
        let n = N.fetch_add(1, Ordering::SeqCst);
        loc.child(&format!("sub-{n}"))
    });
}

/// A part that fails while later ones are in flight: the error names it,
/// the later parts get no commit record, and what was committed before
/// reads back.
#[test]
fn a_failed_part_in_flight_commits_nothing_after_it() {
    use raygent_core::Batch;
    use raygent_savers::{DatasetReader, DatasetSaver, SaverOptions};
    let dir = tempfile::tempdir().unwrap();
    let loc = Location::parse(dir.path().to_str().unwrap()).unwrap();
    let mut saver =
        DatasetSaver::new(loc.clone(), SaverOptions::default().with_saves_in_flight(4)).unwrap();
    let batch = |c: u64, results: &[u64]| {
        let results = results.to_vec();
        (c..c + 1, c * 10..c * 10 + results.len() as u64, results)
    };
    let (chunks, items, results) = batch(0, &[1, 2, 3]);
    saver
        .save_batch(&Batch {
            chunks,
            items,
            results: &results,
        })
        .unwrap();
    // A directory where part 1 goes: its upload (a rename) fails.
    let bad = "part-00000000000000000001-00000000000000000002.cbor";
    std::fs::create_dir(dir.path().join(bad)).unwrap();
    // Part 1's failure surfaces at a later submit (if it is over by then)
    // or at the flush.
    let mut failure = None;
    for c in 1..4 {
        let (chunks, items, results) = batch(c, &[c, c + 1]);
        if let Err(e) = saver.submit_batch(&Batch {
            chunks,
            items,
            results: &results,
        }) {
            failure = Some(e);
            break;
        }
    }
    let err = match failure {
        Some(e) => e,
        None => saver.flush_saves().unwrap_err(),
    }
    .to_string();
    assert!(err.contains(bad), "{err}");
    assert!(err.contains(loc.url()), "{err}");
    assert_eq!(saver.committed_until(), 1);
    assert_eq!(saver.stats().parts, 1);
    // Parts 2 and 3 were uploaded but never committed: no record, and a
    // reader sees only part 0.
    let records: Vec<String> = std::fs::read_dir(dir.path().join("_manifest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        records,
        ["part-00000000000000000000-00000000000000000001.json"]
    );
    let back: Vec<u64> = DatasetReader::open_location(loc)
        .unwrap()
        .iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back, [1, 2, 3]);
    // The saver takes no more batches, and cannot be finished.
    assert!(saver.flush_saves().is_err());
    assert!(saver.finish_dataset().is_err());
    assert!(
        saver
            .submit_batch(&Batch {
                chunks: 4..5,
                items: 40..41,
                results: &[0u64],
            })
            .is_err()
    );
}
