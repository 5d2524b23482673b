//! Conformance checks of the checkpoint API, run against any object store
//! (like `object_store`'s own `integration` module).
//!
//! Each check takes a factory that returns a handle on *the same* storage at
//! every call (a fresh client is fine: an S3 client per call avoids sharing
//! connections between runtimes), which is empty at the start of the check.
//! A check panics when the store or the library misbehaves. Test support,
//! not a stable API.
// Test code: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use crate::{
    COMMIT_FILE, Checkpointable, CheckpointableIter, DONE_FILE, Error, IterState, MetaValue,
    STATE_FILE, SaveOptions, StageCheckpoints, StepCheckpointer, part_file_name, step_dir_name,
};

/// Returns a handle on the storage under test.
pub type Factory<'a> = &'a dyn Fn() -> Arc<dyn ObjectStore>;

/// One conformance check.
pub type Check = fn(Factory<'_>);

/// Every check, by name, for test generators. Each needs its own, empty
/// storage.
pub const CHECKS: &[(&str, Check)] = &[
    ("step_keep_n", step_keep_n),
    ("step_overwrite", step_overwrite),
    ("step_restore", step_restore),
    ("step_interval", step_interval),
    ("step_async", step_async),
    ("step_async_failure", step_async_failure),
    ("step_half_written_invisible", step_half_written_invisible),
    ("step_inline_state", step_inline_state),
    ("stage_write_load", stage_write_load),
    ("stage_checkpoint", stage_checkpoint),
    ("stage_allow_partial", stage_allow_partial),
    ("stage_halt_after", stage_halt_after),
    ("stage_list_clear", stage_list_clear),
    ("stage_rejected_names", stage_rejected_names),
    ("stage_disabled", stage_disabled),
    ("stage_prefix", stage_prefix),
];

fn steps_prefix() -> Path {
    Path::from("ckpt/steps")
}

fn stages_root() -> Path {
    Path::from("ckpt/stages")
}

/// Runs `f` on a throwaway runtime (for direct store access in checks).
fn raw<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Every object under `prefix`, as sorted strings relative to it.
pub fn raw_list(store: &Arc<dyn ObjectStore>, prefix: &Path) -> Vec<String> {
    let mut v: Vec<String> = raw(crate::io::list(&**store, prefix))
        .unwrap()
        .into_iter()
        .map(|p| {
            p.prefix_match(prefix)
                .unwrap()
                .map(|s| s.as_ref().to_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    v.sort();
    v
}

fn raw_put(store: &Arc<dyn ObjectStore>, path: &Path, bytes: &[u8]) {
    raw(crate::io::put(
        &**store,
        path,
        Bytes::copy_from_slice(bytes),
        false,
    ))
    .unwrap();
}

fn step_files(step: u64) -> Vec<String> {
    let d = step_dir_name(step);
    let mut v = vec![format!("{d}/{COMMIT_FILE}"), format!("{d}/{STATE_FILE}")];
    v.sort();
    v
}

fn step_dirs_in(listing: &[String]) -> BTreeSet<String> {
    listing
        .iter()
        .filter_map(|p| p.split('/').next().map(str::to_owned))
        .collect()
}

fn input() -> CheckpointableIter<u32> {
    CheckpointableIter::new((0..100).collect())
}

/// Keep-N: only the N newest committed steps remain, on the store too; a
/// new checkpointer continues the rotation; nothing is deleted when the
/// newer save fails.
pub fn step_keep_n(factory: Factory<'_>) {
    let ckpt = StepCheckpointer::new(factory(), steps_prefix())
        .unwrap()
        .with_keep(2);
    assert_eq!(ckpt.keep(), Some(2));
    let mut it = input();
    for step in 1..=5 {
        it.next();
        ckpt.save(step, &it, SaveOptions::new()).unwrap();
    }
    assert_eq!(ckpt.list_steps().unwrap(), vec![4, 5]);
    let mut expected = step_files(4);
    expected.extend(step_files(5));
    assert_eq!(raw_list(&factory(), &steps_prefix()), expected);
    drop(ckpt);

    // A second checkpointer (a rerun) continues with what is there.
    let failing = FailingStore::new(factory());
    let store: Arc<dyn ObjectStore> = failing.clone();
    let again = StepCheckpointer::new(store, steps_prefix())
        .unwrap()
        .with_keep(1);
    it.next();
    again.save(6, &it, SaveOptions::new()).unwrap();
    assert_eq!(again.list_steps().unwrap(), vec![6]);
    assert_eq!(raw_list(&factory(), &steps_prefix()), step_files(6));

    // A failed (synchronous) save reports its error and deletes nothing.
    failing.fail_puts_named(Some(COMMIT_FILE));
    it.next();
    let err = again.save(7, &it, SaveOptions::new()).unwrap_err();
    assert!(
        matches!(&err, Error::Store { location, .. } if location.contains(&step_dir_name(7))),
        "{err}"
    );
    assert_eq!(again.list_steps().unwrap(), vec![6]);
    // The commit is written only after the data: no COMMIT when the state
    // write fails.
    failing.fail_puts_named(Some(STATE_FILE));
    assert!(again.save(7, &it, SaveOptions::new()).is_err());
    let listing = raw_list(&factory(), &steps_prefix());
    assert!(
        !listing.contains(&format!("{}/{COMMIT_FILE}", step_dir_name(7))),
        "{listing:?}"
    );
    assert_eq!(again.list_steps().unwrap(), vec![6]);
    failing.fail_puts_named(None);
    again.save(8, &it, SaveOptions::new()).unwrap();
    assert_eq!(again.list_steps().unwrap(), vec![8]);
    // Step 7's uncommitted data went with the commit of step 8.
    assert_eq!(raw_list(&factory(), &steps_prefix()), step_files(8));
}

/// A committed step is not overwritten unless asked; the error names the
/// step and where it is.
pub fn step_overwrite(factory: Factory<'_>) {
    let ckpt = StepCheckpointer::new(factory(), steps_prefix()).unwrap();
    ckpt.save_state(3, "first", SaveOptions::new()).unwrap();
    let err = ckpt
        .save_state(3, "second", SaveOptions::new())
        .unwrap_err();
    match &err {
        Error::StepExists { step, location } => {
            assert_eq!(*step, 3);
            assert!(location.contains(&step_dir_name(3)), "{location}");
        }
        other => panic!("expected StepExists, got {other}"),
    }
    assert!(err.to_string().contains("with_overwrite(true)"), "{err}");
    assert_eq!(ckpt.load_state::<String>(3).unwrap(), "first");

    ckpt.save_state(
        3,
        "second",
        SaveOptions::new().with_overwrite(true).with_meta("v", 2),
    )
    .unwrap();
    assert_eq!(ckpt.load_state::<String>(3).unwrap(), "second");
    assert_eq!(ckpt.metadata(3).unwrap().get("v"), Some(&MetaValue::Int(2)));
    assert_eq!(ckpt.list_steps().unwrap(), vec![3]);

    // A fresh checkpointer (another process) refuses as well.
    let other = StepCheckpointer::new(factory(), steps_prefix()).unwrap();
    assert!(matches!(
        other.save_state(3, "third", SaveOptions::new()),
        Err(Error::StepExists { step: 3, .. })
    ));
    assert_eq!(other.load_state::<String>(3).unwrap(), "second");
}

/// Restore a given step and the latest; typed loads; metadata; errors for
/// a missing step and a state the object refuses.
pub fn step_restore(factory: Factory<'_>) {
    let ckpt = StepCheckpointer::new(factory(), steps_prefix()).unwrap();
    assert_eq!(ckpt.latest_step().unwrap(), None);
    assert_eq!(ckpt.list_steps().unwrap(), Vec::<u64>::new());
    assert!(ckpt.load_latest::<IterState>().unwrap().is_none());
    let mut fresh = input();
    assert_eq!(ckpt.restore_latest(&mut fresh).unwrap(), None);
    assert_eq!(fresh.position(), 0);

    let mut it = CheckpointableIter::new((0..10u32).collect());
    it.by_ref().take(3).for_each(drop);
    ckpt.save(3, &it, SaveOptions::new().with_meta("epoch", 1))
        .unwrap();
    it.by_ref().take(4).for_each(drop);
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    ckpt.save(
        7,
        &it,
        SaveOptions::new()
            .with_meta("epoch", 2)
            .with_meta("name", "x")
            .with_meta("ok", true)
            .with_meta("loss", 0.25),
    )
    .unwrap();

    let mut r = CheckpointableIter::new((0..10u32).collect());
    ckpt.restore(3, &mut r).unwrap();
    assert_eq!(r.position(), 3);
    assert_eq!(r.next(), Some(3));
    assert_eq!(ckpt.restore_latest(&mut r).unwrap(), Some(7));
    assert_eq!(r.next(), Some(7));
    assert_eq!(ckpt.latest_step().unwrap(), Some(7));

    let meta = ckpt.metadata(7).unwrap();
    assert_eq!(meta.step, 7);
    assert_eq!(meta.get("epoch"), Some(&MetaValue::Int(2)));
    assert_eq!(meta.get("name"), Some(&MetaValue::Str("x".into())));
    assert_eq!(meta.get("ok"), Some(&MetaValue::Bool(true)));
    assert_eq!(meta.get("loss"), Some(&MetaValue::Float(0.25)));
    assert!(meta.created() > before);

    let (step, state, meta2) = ckpt.load_latest::<IterState>().unwrap().unwrap();
    assert_eq!((step, state), (7, it.get_state()));
    assert_eq!(meta2, meta);

    assert!(matches!(
        ckpt.restore(5, &mut r),
        Err(Error::StepNotFound { step: 5, .. })
    ));
    assert!(matches!(
        ckpt.metadata(5),
        Err(Error::StepNotFound { step: 5, .. })
    ));
    let mut shorter = CheckpointableIter::new(vec![1u32, 2]);
    let err = ckpt.restore(7, &mut shorter).unwrap_err();
    match &err {
        Error::Restore {
            step: 7, source, ..
        } => {
            assert!(matches!(**source, Error::InvalidState(_)), "{source}")
        }
        other => panic!("expected Restore, got {other}"),
    }
    assert_eq!(shorter.position(), 0);
    // A state of another type does not decode.
    assert!(matches!(
        ckpt.load_state::<String>(7),
        Err(Error::Codec {
            action: "decode",
            ..
        })
    ));
}

/// `save_at_interval` saves exactly the multiples of the interval.
pub fn step_interval(factory: Factory<'_>) {
    let ckpt = StepCheckpointer::new(factory(), steps_prefix()).unwrap();
    let mut it = input();
    for step in 0..=25u64 {
        it.next();
        let saved = ckpt
            .save_at_interval(step, 10, &it, SaveOptions::new())
            .unwrap();
        assert_eq!(saved.is_some(), step % 10 == 0, "step {step}");
        if let Some(path) = saved {
            assert_eq!(path, ckpt.step_path(step));
        }
    }
    assert_eq!(ckpt.list_steps().unwrap(), vec![0, 10, 20]);
    assert!(matches!(
        ckpt.save_at_interval(30, 0, &it, SaveOptions::new()),
        Err(Error::InvalidArgument(_))
    ));
    let mut r = input();
    ckpt.restore(20, &mut r).unwrap();
    assert_eq!(r.position(), 21);
}

/// Asynchronous saves: all committed after the wait, keep-N applied, reads
/// see every earlier save.
pub fn step_async(factory: Factory<'_>) {
    let ckpt = StepCheckpointer::new(factory(), steps_prefix())
        .unwrap()
        .with_keep(3)
        .with_async(true)
        .with_max_in_flight(2);
    assert!(ckpt.is_async());
    let mut it = input();
    for step in 1..=20 {
        it.next();
        ckpt.save(step, &it, SaveOptions::new()).unwrap();
    }
    ckpt.wait_until_finished().unwrap();
    assert_eq!(ckpt.list_steps().unwrap(), vec![18, 19, 20]);
    assert_eq!(
        step_dirs_in(&raw_list(&factory(), &steps_prefix())),
        [18, 19, 20].into_iter().map(step_dir_name).collect()
    );
    // Read-your-writes without an explicit wait.
    it.next();
    ckpt.save(21, &it, SaveOptions::new()).unwrap();
    let mut r = input();
    assert_eq!(ckpt.restore_latest(&mut r).unwrap(), Some(21));
    assert_eq!(r.position(), 21);
    // Overwrite refusal holds in async mode too, at the call.
    assert!(matches!(
        ckpt.save(21, &it, SaveOptions::new()),
        Err(Error::StepExists { step: 21, .. })
    ));
}

/// A background save that fails is reported by the next call (the wait, a
/// save, a read), once; its step stays invisible and is cleaned up later.
pub fn step_async_failure(factory: Factory<'_>) {
    let failing = FailingStore::new(factory());
    let store: Arc<dyn ObjectStore> = failing.clone();
    let ckpt = StepCheckpointer::new(store, steps_prefix())
        .unwrap()
        .with_async(true)
        .with_max_in_flight(1);
    let mut it = input();
    it.next();
    ckpt.save(1, &it, SaveOptions::new()).unwrap();
    ckpt.wait_until_finished().unwrap();

    failing.fail_puts_named(Some(COMMIT_FILE));
    it.next();
    ckpt.save(2, &it, SaveOptions::new()).unwrap(); // accepted: runs in the background
    let err = ckpt.wait_until_finished().unwrap_err();
    assert!(is_injected_background(&err), "{err}");
    ckpt.wait_until_finished().unwrap(); // reported once

    // The next save reports it: it waits for the one slot, then sees the failure.
    ckpt.save(3, &it, SaveOptions::new()).unwrap();
    let err = ckpt.save(4, &it, SaveOptions::new()).unwrap_err();
    assert!(is_injected_background(&err), "{err}");

    // A read reports it too.
    ckpt.save(5, &it, SaveOptions::new()).unwrap();
    let err = ckpt.list_steps().unwrap_err();
    assert!(is_injected_background(&err), "{err}");
    assert!(failing.failed_puts() >= 3);

    failing.fail_puts_named(None);
    assert_eq!(ckpt.list_steps().unwrap(), vec![1]);
    let listed = step_dirs_in(&raw_list(&factory(), &steps_prefix()));
    assert!(listed.contains(&step_dir_name(3)), "{listed:?}"); // data, no commit
    ckpt.save(6, &it, SaveOptions::new()).unwrap();
    ckpt.wait_until_finished().unwrap();
    assert_eq!(ckpt.list_steps().unwrap(), vec![1, 6]);
    assert_eq!(
        step_dirs_in(&raw_list(&factory(), &steps_prefix())),
        [1, 6].into_iter().map(step_dir_name).collect()
    );
}

fn is_injected_background(err: &Error) -> bool {
    matches!(err, Error::Background(inner) if matches!(**inner, Error::Store { .. }))
        && raygent_core::ErrorChain(err).to_string().contains(INJECTED)
}

/// A step with data but no COMMIT is invisible, to a new checkpointer too,
/// and is removed once a newer step is committed.
pub fn step_half_written_invisible(factory: Factory<'_>) {
    let ckpt = StepCheckpointer::new(factory(), steps_prefix()).unwrap();
    ckpt.save_state(4, "four", SaveOptions::new()).unwrap();
    // What a process killed between the data and the commit leaves.
    let dir = steps_prefix().join(step_dir_name(9).as_str());
    let store = factory();
    let mut state = Vec::new();
    ciborium::into_writer("nine", &mut state).unwrap();
    raw_put(&store, &dir.clone().join(STATE_FILE), &state);

    let reader = StepCheckpointer::new(factory(), steps_prefix()).unwrap();
    assert_eq!(reader.list_steps().unwrap(), vec![4]);
    assert_eq!(reader.latest_step().unwrap(), Some(4));
    assert!(matches!(
        reader.load_state::<String>(9),
        Err(Error::StepNotFound { step: 9, .. })
    ));
    let (step, state, _) = reader.load_latest::<String>().unwrap().unwrap();
    assert_eq!((step, state.as_str()), (4, "four"));

    // A rerun saves a newer step: the leftover goes.
    reader.save_state(10, "ten", SaveOptions::new()).unwrap();
    assert_eq!(reader.list_steps().unwrap(), vec![4, 10]);
    let mut expected = step_files(4);
    expected.extend(step_files(10));
    assert_eq!(raw_list(&factory(), &steps_prefix()), expected);
}

/// With `with_inline_state`, a small state lives inside COMMIT (one object
/// per step) and a larger one still gets its own file; both restore, with
/// their metadata; a step can change from one form to the other when it is
/// overwritten; keep-N deletes both forms; and an inline state that does
/// not match its recorded size is reported as corrupt.
pub fn step_inline_state(factory: Factory<'_>) {
    let ckpt = StepCheckpointer::new(factory(), steps_prefix())
        .unwrap()
        .with_keep(2)
        .with_inline_state(64);
    let small = "a small state".to_owned();
    let large = "x".repeat(200);
    ckpt.save_state(1, &small, SaveOptions::new().with_meta("k", 1))
        .unwrap();
    ckpt.save_state(2, &large, SaveOptions::new()).unwrap();
    let commit_only = |step| vec![format!("{}/{COMMIT_FILE}", step_dir_name(step))];
    let mut expected = commit_only(1);
    expected.extend(step_files(2));
    assert_eq!(raw_list(&factory(), &steps_prefix()), expected);

    // Read back by a new checkpointer (a rerun), which need not know the
    // limit: the commit says where the state is.
    let reader = StepCheckpointer::new(factory(), steps_prefix()).unwrap();
    assert_eq!(reader.list_steps().unwrap(), vec![1, 2]);
    assert_eq!(reader.load_state::<String>(1).unwrap(), small);
    assert_eq!(reader.load_state::<String>(2).unwrap(), large);
    assert_eq!(
        reader.metadata(1).unwrap().get("k"),
        Some(&MetaValue::Int(1))
    );
    let mut it = input();
    it.next();
    ckpt.save(3, &it, SaveOptions::new()).unwrap();
    let mut back = input();
    assert_eq!(reader.restore_latest(&mut back).unwrap(), Some(3));
    assert_eq!(back.next(), Some(1));

    // Overwriting step 3 (inline) with a large state, then step 2 (a
    // file) with a small one: each reads as its newest save.
    let over = SaveOptions::new().with_overwrite(true);
    ckpt.save_state(3, &large, over.clone()).unwrap();
    assert_eq!(reader.load_state::<String>(3).unwrap(), large);
    ckpt.save_state(2, &small, over).unwrap();
    assert_eq!(reader.load_state::<String>(2).unwrap(), small);

    // Keep 2: step 1 (one object) went when step 3 was committed; step 2
    // goes whole, state file included, when step 4 is.
    ckpt.save_state(4, &small, SaveOptions::new()).unwrap();
    assert_eq!(ckpt.list_steps().unwrap(), vec![3, 4]);
    let mut expected = step_files(3);
    expected.extend(commit_only(4));
    assert_eq!(raw_list(&factory(), &steps_prefix()), expected);

    // A commit whose inline state does not match its recorded size.
    let store = factory();
    let dir = steps_prefix().join(step_dir_name(9).as_str());
    raw_put(
        &store,
        &dir.clone().join(COMMIT_FILE),
        br#"{"step":9,"state_bytes":40,"inline_state":"YWJj","created_at_ms":1}"#,
    );
    let reader = StepCheckpointer::new(factory(), steps_prefix()).unwrap();
    let err = reader.load_state::<String>(9).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { location, .. } if location.contains(&step_dir_name(9))),
        "{err}"
    );
    assert!(err.to_string().contains("the commit recorded 40"), "{err}");
}

fn stages(factory: Factory<'_>) -> StageCheckpoints {
    StageCheckpoints::new(factory(), stages_root()).unwrap()
}

fn parts(n: usize) -> Vec<Vec<String>> {
    (0..n)
        .map(|i| (0..=i).map(|j| format!("p{i}-{j}")).collect())
        .collect()
}

/// write, is_done, partitions, load, load_partition; a rewrite replaces
/// everything.
pub fn stage_write_load(factory: Factory<'_>) {
    let s = stages(factory);
    assert!(!s.is_done("tokens").unwrap());
    assert!(matches!(
        s.load::<String>("tokens"),
        Err(Error::NotDone { name, .. }) if name == "tokens"
    ));
    assert_eq!(s.write("tokens", parts(3)).unwrap(), 3);
    assert!(s.is_done("tokens").unwrap());
    assert_eq!(s.partitions("tokens").unwrap(), 3);
    assert_eq!(s.load::<String>("tokens").unwrap(), parts(3));
    assert_eq!(
        s.load_partition::<String>("tokens", 1).unwrap(),
        parts(3)[1]
    );
    assert!(s.load_partition::<String>("tokens", 3).is_err());
    let listing = raw_list(&factory(), &stages_root());
    assert_eq!(
        listing,
        vec![
            format!("tokens/{DONE_FILE}"),
            format!("tokens/{}", part_file_name(0)),
            format!("tokens/{}", part_file_name(1)),
            format!("tokens/{}", part_file_name(2)),
        ]
    );
    // Rewrite with fewer partitions: nothing stale remains.
    assert_eq!(s.write("tokens", parts(1)).unwrap(), 1);
    assert_eq!(s.load::<String>("tokens").unwrap(), parts(1));
    assert_eq!(raw_list(&factory(), &stages_root()).len(), 2);
    // Empty checkpoints are checkpoints too.
    assert_eq!(s.write("empty", Vec::<Vec<u8>>::new()).unwrap(), 0);
    assert!(s.is_done("empty").unwrap());
    assert_eq!(s.load::<u8>("empty").unwrap(), Vec::<Vec<u8>>::new());
}

/// `checkpoint` computes once and loads afterwards; a different partition
/// count is refused; a compute error names the partition.
pub fn stage_checkpoint(factory: Factory<'_>) {
    let s = stages(factory).with_verbose(true);
    let calls = Mutex::new(Vec::new());
    let compute = |i: usize| -> Result<Vec<String>, Error> {
        calls.lock().unwrap().push(i);
        Ok(parts(4)[i].clone())
    };
    assert_eq!(s.checkpoint("graph", 4, compute).unwrap(), parts(4));
    assert_eq!(*calls.lock().unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(s.checkpoint("graph", 4, compute).unwrap(), parts(4));
    assert_eq!(calls.lock().unwrap().len(), 4, "loaded, not recomputed");
    let err = s.checkpoint("graph", 5, compute).unwrap_err();
    assert!(
        matches!(
            err,
            Error::PartitionMismatch {
                stored: 4,
                requested: 5,
                ..
            }
        ),
        "{err}"
    );
    let err = s
        .checkpoint("broken", 3, |i| {
            if i == 1 {
                Err("bad record")
            } else {
                Ok(vec![i])
            }
        })
        .unwrap_err();
    match &err {
        Error::Compute {
            name, partition, ..
        } => assert_eq!((name.as_str(), *partition), ("broken", 1)),
        other => panic!("expected Compute, got {other}"),
    }
    let chain = raygent_core::ErrorChain(&err).to_string();
    assert!(chain.contains("bad record"), "{chain}");
    assert!(!s.is_done("broken").unwrap());
}

/// allow_partial keeps the partitions of an unfinished checkpoint and
/// computes only the missing ones; without it everything is recomputed.
pub fn stage_allow_partial(factory: Factory<'_>) {
    let data = parts(5);
    let fail_from = AtomicUsize::new(2);
    let calls = Mutex::new(Vec::new());
    let compute = |i: usize| -> Result<Vec<String>, String> {
        calls.lock().unwrap().push(i);
        if i >= fail_from.load(Ordering::SeqCst) {
            return Err(format!("worker lost at partition {i}"));
        }
        Ok(data[i].clone())
    };

    let partial = stages(factory).with_allow_partial(true);
    // A first run dies at partition 2.
    assert!(matches!(
        partial.checkpoint("sentences", 5, compute),
        Err(Error::Compute { partition: 2, .. })
    ));
    assert!(!partial.is_done("sentences").unwrap());
    // The rerun computes only 2, 3 and 4.
    fail_from.store(usize::MAX, Ordering::SeqCst);
    calls.lock().unwrap().clear();
    assert_eq!(partial.checkpoint("sentences", 5, compute).unwrap(), data);
    assert_eq!(*calls.lock().unwrap(), vec![2, 3, 4]);
    assert_eq!(partial.load::<String>("sentences").unwrap(), data);

    // Without allow_partial an unfinished checkpoint is recomputed in full.
    let full = stages(factory);
    fail_from.store(3, Ordering::SeqCst);
    assert!(full.checkpoint("lemmas", 5, compute).is_err());
    fail_from.store(usize::MAX, Ordering::SeqCst);
    calls.lock().unwrap().clear();
    assert_eq!(full.checkpoint("lemmas", 5, compute).unwrap(), data);
    assert_eq!(*calls.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

/// halt_after stops with `Error::Halted` right after the named checkpoint
/// is finished (written now or earlier), and only there.
pub fn stage_halt_after(factory: Factory<'_>) {
    let s = stages(factory).halt_after("training_data").unwrap();
    let calls = AtomicUsize::new(0);
    let compute = |i: usize| -> Result<Vec<usize>, Error> {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(vec![i])
    };
    assert_eq!(s.checkpoint("sentences", 2, compute).unwrap().len(), 2);
    let err = s.checkpoint("training_data", 2, compute).unwrap_err();
    assert!(matches!(&err, Error::Halted { name } if name == "training_data"));
    assert!(err.is_halted());
    assert!(
        s.is_done("training_data").unwrap(),
        "written before halting"
    );
    assert_eq!(
        s.load::<usize>("training_data").unwrap(),
        vec![vec![0], vec![1]]
    );
    // A rerun halts at the same place without recomputing.
    let before = calls.load(Ordering::SeqCst);
    assert!(
        s.checkpoint("training_data", 2, compute)
            .unwrap_err()
            .is_halted()
    );
    assert_eq!(calls.load(Ordering::SeqCst), before);
    // write halts too; clearing the halt point lets the pipeline go on.
    assert!(
        s.write("training_data", vec![vec![7usize]])
            .unwrap_err()
            .is_halted()
    );
    let s = s.clear_halt_point();
    assert_eq!(
        s.checkpoint("training_data", 1, compute).unwrap(),
        vec![vec![7]]
    );
    assert_eq!(calls.load(Ordering::SeqCst), before);
    assert!(matches!(
        stages(factory).halt_after("../x"),
        Err(Error::InvalidName { .. })
    ));
}

/// list by glob, clear one, clear all.
pub fn stage_list_clear(factory: Factory<'_>) {
    let s = stages(factory);
    assert_eq!(s.list("*").unwrap(), Vec::<String>::new());
    for name in ["sentences", "sentence_graph", "tokens"] {
        s.write(name, parts(2)).unwrap();
    }
    assert_eq!(
        s.list("sentence*").unwrap(),
        vec!["sentence_graph".to_string(), "sentences".to_string()]
    );
    assert_eq!(s.list("*").unwrap().len(), 3);
    assert_eq!(s.list("{tok,xyz}ens").unwrap(), vec!["tokens".to_string()]);
    assert_eq!(s.list("nothing*").unwrap(), Vec::<String>::new());
    assert!(matches!(s.list("[a"), Err(Error::InvalidGlob { .. })));

    s.clear("tokens").unwrap();
    assert!(!s.is_done("tokens").unwrap());
    assert_eq!(s.list("*").unwrap().len(), 2);
    assert!(
        raw_list(&factory(), &stages_root())
            .iter()
            .all(|p| !p.starts_with("tokens/"))
    );
    s.clear("never-written").unwrap();
    s.clear_all().unwrap();
    assert_eq!(s.list("*").unwrap(), Vec::<String>::new());
    assert!(raw_list(&factory(), &stages_root()).is_empty());
}

/// Bad names are refused by every operation, naming the name.
pub fn stage_rejected_names(factory: Factory<'_>) {
    let s = stages(factory);
    for bad in [
        "", "/abs", "..", "../up", "a/../b", "a\\b", "a\nb", "a\u{7}", "a/b", ".",
    ] {
        let is_bad = |r: Result<(), Error>| matches!(&r, Err(Error::InvalidName { name, .. }) if name == bad);
        assert!(is_bad(s.write(bad, parts(1)).map(drop)), "write {bad:?}");
        assert!(
            is_bad(
                s.checkpoint(bad, 1, |_| Ok::<_, Error>(vec![1u8]))
                    .map(drop)
            ),
            "checkpoint {bad:?}"
        );
        assert!(is_bad(s.is_done(bad).map(drop)), "is_done {bad:?}");
        assert!(is_bad(s.load::<u8>(bad).map(drop)), "load {bad:?}");
        assert!(is_bad(s.clear(bad)), "clear {bad:?}");
    }
    assert!(matches!(
        stages(factory).with_prefix("../other"),
        Err(Error::InvalidName { .. })
    ));
    assert!(raw_list(&factory(), &Path::default()).is_empty());
}

/// disable: pass-through, nothing read or written.
pub fn stage_disabled(factory: Factory<'_>) {
    let s = stages(factory).halt_after("graph").unwrap().disable();
    assert!(!s.is_enabled());
    let calls = AtomicUsize::new(0);
    let compute = |i: usize| -> Result<Vec<usize>, Error> {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(vec![i, i])
    };
    for _ in 0..2 {
        assert_eq!(
            s.checkpoint("graph", 3, compute).unwrap(),
            vec![vec![0, 0], vec![1, 1], vec![2, 2]]
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 6, "computed every time");
    assert_eq!(s.write("graph", parts(2)).unwrap(), 2);
    assert!(raw_list(&factory(), &stages_root()).is_empty());
    // Enabled again, the same object checkpoints (and halts) as usual.
    let s = s.enable();
    assert!(s.checkpoint("graph", 3, compute).unwrap_err().is_halted());
    assert!(s.is_done("graph").unwrap());
}

/// A prefix separates checkpoints of the same name per dataset.
pub fn stage_prefix(factory: Factory<'_>) {
    let a = stages(factory).with_prefix("corpus-a").unwrap();
    let b = stages(factory).with_prefix("corpus-b/v2").unwrap();
    assert_eq!(a.prefix(), Some("corpus-a"));
    a.write("sentences", parts(1)).unwrap();
    b.write("sentences", parts(2)).unwrap();
    assert_eq!(a.load::<String>("sentences").unwrap(), parts(1));
    assert_eq!(b.load::<String>("sentences").unwrap(), parts(2));
    assert_eq!(a.list("*").unwrap(), vec!["sentences".to_string()]);
    assert!(!stages(factory).is_done("sentences").unwrap());
    let listing = raw_list(&factory(), &stages_root());
    assert!(
        listing.contains(&format!("corpus-a/sentences/{DONE_FILE}")),
        "{listing:?}"
    );
    assert!(
        listing.contains(&format!("corpus-b/v2/sentences/{DONE_FILE}")),
        "{listing:?}"
    );
    a.clear_all().unwrap();
    assert!(!a.is_done("sentences").unwrap());
    assert!(
        b.is_done("sentences").unwrap(),
        "clear_all stays inside the prefix"
    );
}

const INJECTED: &str = "injected put failure";

/// A store that fails puts on request (all of them, or those of one file
/// name) and passes everything else to the store it wraps.
#[derive(Debug)]
pub struct FailingStore {
    inner: Arc<dyn ObjectStore>,
    /// `None`: no failure; `Some("")`: every put; `Some(name)`: puts of
    /// objects with that file name.
    fail: Mutex<Option<String>>,
    failed: AtomicUsize,
}

impl FailingStore {
    /// A store that passes every request to `inner` until told to fail.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(FailingStore {
            inner,
            fail: Mutex::new(None),
            failed: AtomicUsize::new(0),
        })
    }

    /// Fails the puts of objects named `name` (`Some("")`: every put);
    /// `None` heals the store.
    pub fn fail_puts_named(&self, name: Option<&str>) {
        *self.fail.lock().unwrap() = name.map(str::to_owned);
    }

    /// Puts failed so far.
    pub fn failed_puts(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    fn check(&self, location: &Path) -> object_store::Result<()> {
        let fail = self.fail.lock().unwrap();
        match fail.as_deref() {
            Some(name) if name.is_empty() || location.filename() == Some(name) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                Err(object_store::Error::Generic {
                    store: "FailingStore",
                    source: format!("{INJECTED} at {location}").into(),
                })
            }
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for FailingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FailingStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for FailingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check(location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
