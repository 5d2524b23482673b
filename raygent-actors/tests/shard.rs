//! `SubmitOptions::with_shard`: a job's contiguous share of its items, with
//! the shard in the checkpoint's identity.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use raygent_actors::{MemoryProgressStore, ResumeConfig, Shard, SubmitOptions, TaskManager};
use raygent_core::{Error, task_fn};
use raygent_savers::{DatasetReader, DatasetSaver, SaverOptions};

fn square() -> TaskManager<
    impl raygent_core::TaskFactory<Task = impl raygent_core::Task<Input = u64, Output = u64>>,
> {
    TaskManager::new(|| task_fn("square", |x: &u64| Ok(x * x))).with_n_cores(2)
}

#[test]
fn the_shards_together_give_the_whole_job_in_order() {
    let whole: Vec<u64> = (0..1000u64).map(|x| x * x).collect();
    for n in [1u32, 3, 8] {
        let mut joined = Vec::new();
        for i in 0..n {
            let mut m = square();
            let report = m
                .submit_tasks(
                    (0..1000u64).collect::<Vec<_>>(),
                    SubmitOptions::new().with_chunk_size(7).with_shard(i, n),
                )
                .unwrap();
            let share = Shard::new(i, n).unwrap().share(1000);
            assert_eq!(report.items, share.end - share.start);
            joined.extend_from_slice(m.get_results());
        }
        assert_eq!(joined, whole, "{n} shards");
    }
}

#[test]
fn a_checkpoint_of_another_shard_is_refused_and_the_same_shard_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap().to_owned();
    let store = Arc::new(MemoryProgressStore::new());
    let run = |index: u32, count: u32| {
        let saver = DatasetSaver::create(&out, SaverOptions::default()).unwrap();
        square().submit_tasks(
            0..100u64,
            SubmitOptions::new()
                .with_chunk_size(5)
                .with_save_interval(10)
                .with_saver(saver)
                .with_shard(index, count)
                .with_checkpoint(ResumeConfig::new(store.clone()).with_identity("squares")),
        )
    };
    let first = run(1, 4).unwrap();
    assert_eq!(first.items, 25);
    assert!(!store.steps().is_empty(), "the shard checkpointed");
    let saved: Vec<u64> = DatasetReader::open(&out)
        .unwrap()
        .iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(saved, (25..50u64).map(|x| x * x).collect::<Vec<_>>());
    // The same shard again: complete, nothing rerun.
    assert_eq!(run(1, 4).unwrap().resumed_chunks, 5);
    for (i, n) in [(2, 4), (1, 5)] {
        match run(i, n) {
            Err(Error::JobMismatch { differences, .. }) => {
                let text = differences.join("; ");
                assert!(text.contains("shard 1 of 4"), "{text}");
                assert!(text.contains(&format!("shard {i} of {n}")), "{text}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn bad_shards_and_unknown_lengths_are_refused() {
    let mut m = square();
    let e = m
        .submit_tasks(0..10u64, SubmitOptions::new().with_shard(3, 3))
        .unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
    let e = m
        .submit_tasks(
            (0..10u64).filter(|x| x % 2 == 0),
            SubmitOptions::new().with_shard(0, 2),
        )
        .unwrap_err();
    assert!(e.to_string().contains("length is known"), "{e}");
}
