//! Bad configuration and misuse give clear errors; the `Saver` trait glue.

// Test helpers may panic: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

use raygent_core::{Batch, ResumePoint, SaveError, Saver};
use raygent_savers::{DatasetReader, DatasetSaver, Error, Format, Location, SaverOptions};

fn scratch(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "raygent-savers-config-{}-{name}",
        std::process::id()
    ))
}

#[test]
fn an_unknown_scheme_is_named() {
    for url in ["ftp://host/x", "gs://bucket/x", "hdfs:///data"] {
        let err = Location::parse(url).unwrap_err();
        assert!(matches!(err, Error::UnknownScheme { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(url) && msg.contains("s3://"), "{msg}");
        // Through the Saver API it is a configuration error.
        let save_err: SaveError = DatasetSaver::create(url, SaverOptions::default())
            .unwrap_err()
            .into();
        assert!(matches!(save_err, SaveError::Config(_)), "{save_err:?}");
    }
    assert!(matches!(
        Location::parse("  ").unwrap_err(),
        Error::InvalidUrl { .. }
    ));
}

#[test]
fn a_directory_that_cannot_be_created_is_named() {
    let file = scratch("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let below = file.join("out");
    let err = Location::parse(below.to_str().unwrap()).unwrap_err();
    assert!(matches!(err, Error::LocalDir { .. }), "{err:?}");
    assert!(err.to_string().contains(below.to_str().unwrap()), "{err}");
}

#[test]
fn an_unwritable_directory_is_reported_before_any_work() {
    // /proc exists but accepts no new files, even for root (tests may run as
    // root, where a chmod'ed directory would still be writable).
    let loc = Location::parse("/proc").unwrap();
    let err = DatasetSaver::new(loc, SaverOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NotWritable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("file:///proc") && msg.contains("writable"),
        "{msg}"
    );
}

#[test]
fn reading_where_there_is_no_dataset_says_so() {
    let dir = scratch("empty");
    // A directory that does not exist is reported as such, and not created.
    let err = DatasetReader::open(dir.to_str().unwrap()).unwrap_err();
    assert!(matches!(err, Error::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains(dir.to_str().unwrap()), "{err}");
    assert!(!dir.exists());
    // An existing directory without a dataset.
    std::fs::create_dir_all(&dir).unwrap();
    let err = DatasetReader::open(dir.to_str().unwrap()).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(dir.to_str().unwrap()), "{err}");
}

#[test]
fn batches_out_of_order_are_refused() {
    let mut saver = DatasetSaver::create("memory://config/order", SaverOptions::default()).unwrap();
    let err = saver
        .save_batch(&Batch {
            chunks: 1..2,
            items: 5..6,
            results: &[1u8],
        })
        .unwrap_err();
    assert!(matches!(err, Error::Usage { .. }), "{err:?}");
    let err = saver
        .save_batch(&Batch {
            chunks: 0..0,
            items: 0..0,
            results: &[] as &[u8],
        })
        .unwrap_err();
    assert!(matches!(err, Error::Usage { .. }), "{err:?}");
}

/// A map inside a record, which CSV cannot hold.
fn nested() -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, u8>> {
    [("a".to_string(), [("b".to_string(), 1u8)].into())].into()
}

#[test]
fn an_unencodable_result_names_the_part() {
    let mut saver = DatasetSaver::create(
        "memory://config/encode",
        SaverOptions::default().with_format(Format::Csv),
    )
    .unwrap();
    let err = Saver::save(
        &mut saver,
        &Batch {
            chunks: 0..1,
            items: 0..1,
            results: &[nested()],
        },
    )
    .unwrap_err();
    assert!(matches!(err, SaveError::Encode { .. }), "{err:?}");
    let msg = raygent_core::ErrorChain(&err).to_string();
    assert!(
        msg.contains("memory://config/encode/part-00000000000000000000-00000000000000000001.csv"),
        "{msg}"
    );
    assert!(msg.contains("result 0"), "{msg}");
}

#[test]
fn the_saver_trait_object_describes_resumes_and_finishes() {
    let url = "memory://config/trait";
    let mut boxed: Box<dyn Saver<String>> = Box::new(
        DatasetSaver::create(url, SaverOptions::default().with_format(Format::JsonLines)).unwrap(),
    );
    assert_eq!(boxed.describe(), format!("jsonl {url}"));
    boxed
        .resume(&ResumePoint {
            next_chunk: 0,
            next_item: 0,
        })
        .unwrap();
    let lines: Vec<String> = vec!["first line".into(), "second".into()];
    boxed
        .save(&Batch {
            chunks: 0..1,
            items: 0..2,
            results: &lines,
        })
        .unwrap();
    boxed.finish().unwrap();
    let reader = DatasetReader::open(url).unwrap();
    assert!(reader.is_complete());
    assert_eq!(reader.format(), Some(Format::JsonLines));
    let back: Vec<String> = reader.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(back, lines);
    // The part is plain JSON Lines, readable by other tools.
    let raw = reader.read_part(&reader.parts()[0]).unwrap();
    assert_eq!(&raw[..], b"\"first line\"\n\"second\"\n");
}

#[test]
fn an_empty_finished_job_is_an_empty_dataset() {
    let url = "memory://config/empty-job";
    let mut saver = DatasetSaver::create(url, SaverOptions::default()).unwrap();
    Saver::<u8>::finish(&mut saver).unwrap();
    let reader = DatasetReader::open(url).unwrap();
    assert!(reader.is_complete());
    assert_eq!(reader.result_count(), 0);
    assert_eq!(reader.iter::<u8>().count(), 0);
}

#[test]
fn memory_locations_with_the_same_name_share_a_store() {
    let a = Location::parse("memory://config-shared/x").unwrap();
    raygent_savers::integration::put_object(&a, "obj", b"hi".to_vec());
    let b = Location::parse("memory://config-shared")
        .unwrap()
        .child("x");
    assert_eq!(raygent_savers::integration::get_object(&b, "obj"), b"hi");
    assert_eq!(b.url(), "memory://config-shared/x");
}
