//! API behaviour beyond the store conformance suite: threads, runtimes,
//! dropping, error conversion.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use raygent_ckpt::{Error, SaveOptions, StageCheckpoints, StepCheckpointer};

fn memory() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

#[test]
fn dropping_an_async_checkpointer_finishes_its_saves() {
    let store = memory();
    let ckpt = StepCheckpointer::new(Arc::clone(&store), Path::from("p"))
        .unwrap()
        .with_async(true);
    for step in 0..10u64 {
        ckpt.save_state(step, &vec![step; 100], SaveOptions::new())
            .unwrap();
    }
    drop(ckpt);
    let reader = StepCheckpointer::new(store, Path::from("p")).unwrap();
    assert_eq!(reader.list_steps().unwrap(), (0..10).collect::<Vec<_>>());
    assert_eq!(reader.load_state::<Vec<u64>>(9).unwrap(), vec![9; 100]);
}

#[test]
fn saves_from_many_threads() {
    let ckpt = Arc::new(
        StepCheckpointer::new(memory(), Path::from("p"))
            .unwrap()
            .with_keep(5)
            .with_async(true),
    );
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let ckpt = Arc::clone(&ckpt);
            std::thread::spawn(move || {
                for i in 0..10u64 {
                    ckpt.save_state(t * 100 + i, &(t, i), SaveOptions::new())
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    ckpt.wait_until_finished().unwrap();
    assert_eq!(ckpt.list_steps().unwrap(), vec![305, 306, 307, 308, 309]);
    assert_eq!(ckpt.load_state::<(u64, u64)>(309).unwrap(), (3, 9));
}

#[test]
fn inside_an_async_runtime_is_an_error_not_a_panic() {
    let ckpt = StepCheckpointer::new(memory(), Path::from("p")).unwrap();
    let stages = StageCheckpoints::new(memory(), Path::from("s")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(matches!(
            ckpt.save_state(1, &1u8, SaveOptions::new()),
            Err(Error::InsideAsyncRuntime)
        ));
        assert!(matches!(ckpt.list_steps(), Err(Error::InsideAsyncRuntime)));
        assert!(matches!(
            stages.is_done("x"),
            Err(Error::InsideAsyncRuntime)
        ));
    });
    // From a plain thread it works, and the refused save left nothing.
    assert_eq!(ckpt.list_steps().unwrap(), Vec::<u64>::new());
    ckpt.save_state(1, &1u8, SaveOptions::new()).unwrap();
    // Dropping inside a runtime does not panic either.
    rt.block_on(async move { drop(ckpt) });
}

#[test]
fn errors_convert_to_raygent_core() {
    let ckpt = StepCheckpointer::new(memory(), Path::from("p")).unwrap();
    let err = ckpt.load_state::<u8>(3).unwrap_err();
    let core: raygent_core::Error = err.into();
    assert!(
        matches!(&core, raygent_core::Error::Checkpoint(source)
            if source.downcast_ref::<raygent_ckpt::Error>().is_some()
                && source.to_string().contains("step 3")),
        "{core}"
    );
}

#[test]
fn clear_removes_every_step_and_saving_starts_over() {
    let store = memory();
    let ckpt = StepCheckpointer::new(Arc::clone(&store), Path::from("p")).unwrap();
    for step in [1u64, 2, 3] {
        ckpt.save_state(step, &step, SaveOptions::new()).unwrap();
    }
    ckpt.clear().unwrap();
    assert!(ckpt.list_steps().unwrap().is_empty());
    assert_eq!(ckpt.load_latest::<u64>().unwrap(), None);
    // The same step numbers can be written again without `overwrite`.
    ckpt.save_state(1, &10u64, SaveOptions::new()).unwrap();
    let other = StepCheckpointer::new(store, Path::from("p")).unwrap();
    assert_eq!(other.list_steps().unwrap(), vec![1]);
    assert_eq!(other.load_state::<u64>(1).unwrap(), 10);
}

#[test]
fn on_a_local_disk_deleted_steps_leave_no_directories() {
    use raygent_ckpt::step_dir_name;
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(tmp.path()).unwrap());
    let ckpt = StepCheckpointer::new(store, Path::from("steps"))
        .unwrap()
        .with_keep(2)
        .with_local_dir(tmp.path().join("steps"));
    let dirs = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(tmp.path().join("steps"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    ckpt.save_state(0, &0u64, SaveOptions::new()).unwrap();
    // Something else put a file in step 0's directory: that one is kept.
    let note = tmp.path().join("steps").join(step_dir_name(0)).join("note");
    std::fs::write(&note, b"x").unwrap();
    for step in 1..6u64 {
        ckpt.save_state(step, &step, SaveOptions::new()).unwrap();
    }
    assert_eq!(ckpt.list_steps().unwrap(), [4, 5]);
    assert_eq!(
        dirs(),
        [step_dir_name(0), step_dir_name(4), step_dir_name(5)]
    );
    assert!(note.exists());
    // `clear` removes every object under the prefix, then the directories.
    ckpt.clear().unwrap();
    assert_eq!(ckpt.list_steps().unwrap(), [] as [u64; 0]);
    assert_eq!(dirs(), [] as [String; 0]);
}

/// A process killed in the middle of a put on a local disk leaves a staging
/// file (`COMMIT#1`) that the store does not list: the next checkpointer
/// removes such files from every step directory before its first save
/// (never when it only reads: the writer may be another process); a
/// directory left with no commit is uncommitted and removed once a newer
/// step is committed (or by `clear`).
#[test]
fn on_a_local_disk_staging_files_of_a_killed_save_are_removed() {
    use raygent_ckpt::step_dir_name;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("steps");
    let open = || {
        let store: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(tmp.path()).unwrap());
        StepCheckpointer::new(store, Path::from("steps"))
            .unwrap()
            .with_keep(2)
            .with_local_dir(&root)
    };
    let ckpt = open();
    ckpt.save_state(1, &1u64, SaveOptions::new()).unwrap();
    // What a kill inside the puts of steps 2 and 3 leaves, and one inside
    // an overwrite of step 1.
    for (step, file) in [(2, "COMMIT#1"), (3, "state.cbor#7"), (1, "COMMIT#3")] {
        let dir = root.join(step_dir_name(step));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), b"half").unwrap();
    }
    drop(ckpt);

    let rerun = open();
    let step1 = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join(step_dir_name(1)))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    // Reading touches nothing (the writer may be another process, mid-put).
    assert_eq!(rerun.list_steps().unwrap(), [1]);
    assert_eq!(step1(), ["COMMIT", "COMMIT#3", "state.cbor"]);
    // The first save cleans up.
    rerun.save_state(4, &4u64, SaveOptions::new()).unwrap();
    assert_eq!(step1(), ["COMMIT", "state.cbor"]);
    let dirs = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(dirs(), [step_dir_name(1), step_dir_name(4)]);

    // `clear` finds such a directory too.
    let dir = root.join(step_dir_name(9));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("COMMIT#2"), b"half").unwrap();
    rerun.clear().unwrap();
    assert_eq!(dirs(), [] as [String; 0]);
}

/// Partitions computed elsewhere (in parallel, in any order) are written
/// one by one; the checkpoint is finished only once all are there.
#[test]
fn partitions_written_one_by_one_then_finished() {
    let stages = StageCheckpoints::new(memory(), Path::from("p")).unwrap();
    stages.write_partition("s", 2, &[20u32]).unwrap();
    stages.write_partition("s", 0, &[0u32]).unwrap();
    assert_eq!(stages.written_partitions("s", 3).unwrap(), vec![0, 2]);
    assert_eq!(stages.written_partitions("s", 2).unwrap(), vec![0]);
    let err = stages.finish("s", 3).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("partition 1 of 3 was never written"),
        "{err}"
    );
    assert!(!stages.is_done("s").unwrap());
    stages.write_partition("s", 1, &[10u32]).unwrap();
    stages.finish("s", 3).unwrap();
    assert!(stages.is_done("s").unwrap());
    assert_eq!(
        stages.load::<u32>("s").unwrap(),
        vec![vec![0], vec![10], vec![20]]
    );
}
