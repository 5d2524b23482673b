//! Runs every check of `raygent_ckpt::integration` against a local
//! directory, memory and S3 (the moto server of `raygent-tests`).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use raygent_ckpt::integration::{self, Factory};

fn local(check: fn(Factory<'_>)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let factory = move || -> Arc<dyn ObjectStore> {
        Arc::new(
            LocalFileSystem::new_with_prefix(&path)
                .unwrap()
                .with_fsync(true),
        )
    };
    check(&factory);
}

fn memory(check: fn(Factory<'_>)) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let factory = move || Arc::clone(&store);
    check(&factory);
}

fn s3(check: fn(Factory<'_>)) {
    let server = raygent_tests::S3Server::shared();
    let bucket = server.new_bucket("ckpt");
    let endpoint = server.endpoint().to_owned();
    // A new client per call: each checkpointer runs its own runtime.
    let factory = move || -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&endpoint)
                .with_bucket_name(&bucket)
                .with_access_key_id(raygent_tests::ACCESS_KEY)
                .with_secret_access_key(raygent_tests::SECRET_KEY)
                .with_region(raygent_tests::REGION)
                .with_allow_http(true)
                .build()
                .unwrap(),
        )
    };
    check(&factory);
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod local {
            $( #[test] fn $check() { super::local(raygent_ckpt::integration::$check) } )*
        }
        mod memory {
            $( #[test] fn $check() { super::memory(raygent_ckpt::integration::$check) } )*
        }
        mod s3 {
            $( #[test] fn $check() { super::s3(raygent_ckpt::integration::$check) } )*
        }
        /// No check of the suite is left out here.
        #[test]
        fn every_check_runs() {
            let here = [$(stringify!($check)),*];
            let all: Vec<&str> = integration::CHECKS.iter().map(|(n, _)| *n).collect();
            assert_eq!(here.to_vec(), all);
        }
    };
}

conformance!(
    step_keep_n,
    step_overwrite,
    step_restore,
    step_interval,
    step_async,
    step_async_failure,
    step_half_written_invisible,
    step_inline_state,
    stage_write_load,
    stage_checkpoint,
    stage_allow_partial,
    stage_halt_after,
    stage_list_clear,
    stage_rejected_names,
    stage_disabled,
    stage_prefix,
);
