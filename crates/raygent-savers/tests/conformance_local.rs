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
    resumed_save_rewrites_same_part,
    orphan_part_ignored_and_removed,
    corrupted_part_reported_by_name,
    existing_dataset_is_protected,
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
