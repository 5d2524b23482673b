//! `Hdf5Saver` (feature `hdf5`): append, resume, the three modes, errors.
#![cfg(feature = "hdf5")]
// Test helpers may panic: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

use raygent_core::{Batch, ResumePoint, SaveError, Saver};
use raygent_savers::{Error, Hdf5Mode, Hdf5Options, Hdf5Saver, read_hdf5};

fn batch<T>(
    chunks: std::ops::Range<u64>,
    items: std::ops::Range<u64>,
    results: &[T],
) -> Batch<'_, T> {
    Batch {
        chunks,
        items,
        results,
    }
}

/// Saves chunk `c` (items `3c..3c+3`, results `10*item`) one batch per chunk.
fn save_chunks(saver: &mut Hdf5Saver<i64>, chunks: std::ops::Range<u64>) {
    for c in chunks {
        let results: Vec<i64> = (3 * c..3 * c + 3).map(|i| 10 * i as i64).collect();
        saver
            .save(&batch(c..c + 1, 3 * c..3 * c + 3, &results))
            .unwrap();
    }
}

fn expected(chunks: u64) -> Vec<i64> {
    (0..3 * chunks).map(|i| 10 * i as i64).collect()
}

#[test]
fn append_across_many_saves_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.h5");
    // A small storage chunk so the dataset spans many HDF5 chunks.
    let opts = Hdf5Options::default().with_chunk_len(7);
    let mut saver = Hdf5Saver::<i64>::create(&path, "results", opts).unwrap();
    assert!(saver.is_empty().unwrap());
    save_chunks(&mut saver, 0..50);
    // An empty batch (a skipped chunk) appends nothing.
    saver.save(&batch(50..51, 150..153, &[])).unwrap();
    assert_eq!(saver.len().unwrap(), 150);
    assert_eq!(saver.describe(), format!("hdf5 {}#results", path.display()));
    drop(saver);

    // Reopened by the reader: every value, in order.
    assert_eq!(read_hdf5::<i64>(&path, "results").unwrap(), expected(50));

    // Reopened by another saver: it appends after what is there.
    let mut again = Hdf5Saver::<i64>::create(&path, "results", Hdf5Options::default()).unwrap();
    assert_eq!(again.len().unwrap(), 150);
    again.save(&batch(51..52, 153..155, &[-1, -2])).unwrap();
    drop(again);
    let all = read_hdf5::<i64>(&path, "results").unwrap();
    assert_eq!(all.len(), 152);
    assert_eq!(&all[..150], &expected(50)[..]);
    assert_eq!(&all[150..], &[-1, -2]);
}

#[test]
fn other_numeric_types_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("types.h5");
    let mut f = Hdf5Saver::<f64>::create(&path, "f64", Hdf5Options::default()).unwrap();
    f.save(&batch(0..1, 0..3, &[0.5, f64::NAN, -1e300]))
        .unwrap();
    let mut u = Hdf5Saver::<u64>::create(&path, "u64", Hdf5Options::default()).unwrap();
    u.save(&batch(0..1, 0..2, &[u64::MAX, 7])).unwrap();
    let mut s = Hdf5Saver::<f32>::create(&path, "group/f32", Hdf5Options::default()).unwrap();
    s.save(&batch(0..1, 0..1, &[1.25f32])).unwrap();
    drop((f, u, s));

    let f = read_hdf5::<f64>(&path, "f64").unwrap();
    assert_eq!(f[0], 0.5);
    assert!(f[1].is_nan());
    assert_eq!(f[2], -1e300);
    assert_eq!(read_hdf5::<u64>(&path, "u64").unwrap(), [u64::MAX, 7]);
    assert_eq!(read_hdf5::<f32>(&path, "group/f32").unwrap(), [1.25]);

    // A saver of another type on an existing dataset is refused, naming it.
    let err = Hdf5Saver::<i32>::create(&path, "f64", Hdf5Options::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Hdf5Dataset { .. }), "{err:?}");
    assert!(msg.contains("\"f64\"") && msg.contains("types.h5"), "{msg}");
}

#[test]
fn resume_truncates_to_the_resume_point() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resume.h5");
    let mut saver = Hdf5Saver::<i64>::create(&path, "r", Hdf5Options::default()).unwrap();
    // Batches of several chunks: 0..2, 2..5, 5..6, 6..9.
    for (c0, c1) in [(0u64, 2u64), (2, 5), (5, 6), (6, 9)] {
        let results: Vec<i64> = (3 * c0..3 * c1).map(|i| 10 * i as i64).collect();
        saver
            .save(&batch(c0..c1, 3 * c0..3 * c1, &results))
            .unwrap();
    }
    assert_eq!(read_hdf5::<i64>(&path, "r").unwrap(), expected(9));
    drop(saver);

    // The checkpoint said chunks 0..5 were committed: a crash lost the rest.
    let mut again = Hdf5Saver::<i64>::create(&path, "r", Hdf5Options::default()).unwrap();
    again
        .resume(&ResumePoint {
            next_chunk: 5,
            next_item: 15,
        })
        .unwrap();
    assert_eq!(read_hdf5::<i64>(&path, "r").unwrap(), expected(5));
    // Saving again gives exactly the data, no duplicates.
    save_chunks(&mut again, 5..9);
    assert_eq!(read_hdf5::<i64>(&path, "r").unwrap(), expected(9));
    drop(again);

    // A resume point inside a batch, or beyond the records, is refused.
    let mut bad = Hdf5Saver::<i64>::create(&path, "r", Hdf5Options::default()).unwrap();
    let err = bad
        .resume_at(&ResumePoint {
            next_chunk: 1,
            next_item: 3,
        })
        .unwrap_err();
    assert!(err.to_string().contains("covered chunks 0..2"), "{err}");
    let err = bad
        .resume(&ResumePoint {
            next_chunk: 20,
            next_item: 60,
        })
        .unwrap_err();
    assert!(err.to_string().contains("cover chunks up to 9"), "{err}");
    // Nothing was changed by the refused resumes.
    assert_eq!(read_hdf5::<i64>(&path, "r").unwrap(), expected(9));

    // Resuming at chunk 0 forgets everything.
    bad.resume(&ResumePoint {
        next_chunk: 0,
        next_item: 0,
    })
    .unwrap();
    assert!(read_hdf5::<i64>(&path, "r").unwrap().is_empty());
    save_chunks(&mut bad, 0..3);
    assert_eq!(read_hdf5::<i64>(&path, "r").unwrap(), expected(3));
}

#[test]
fn check_empty_and_overwrite_option() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.h5");
    let mut saver = Hdf5Saver::<i64>::create(&path, "d", Hdf5Options::default()).unwrap();
    saver.check_empty().unwrap();
    save_chunks(&mut saver, 0..2);
    drop(saver);

    let mut fresh = Hdf5Saver::<i64>::create(&path, "d", Hdf5Options::default()).unwrap();
    let err = fresh.check_empty().unwrap_err();
    assert!(matches!(err, SaveError::Config(_)), "{err:?}");
    let chain = raygent_core::ErrorChain(&err).to_string();
    assert!(chain.contains("already holds 6 results"), "{chain}");

    let opts = Hdf5Options::default().with_overwrite(true);
    let mut over = Hdf5Saver::<i64>::create(&path, "d", opts).unwrap();
    over.check_empty().unwrap();
    save_chunks(&mut over, 0..1);
    assert_eq!(read_hdf5::<i64>(&path, "d").unwrap(), expected(1));
}

#[test]
fn overwrite_mode_keeps_the_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("over.h5");
    let opts = Hdf5Options::default().with_mode(Hdf5Mode::Overwrite);
    let mut saver = Hdf5Saver::<f64>::create(&path, "o", opts.clone()).unwrap();
    saver.save(&batch(0..1, 0..3, &[1.0, 2.0, 3.0])).unwrap();
    assert_eq!(read_hdf5::<f64>(&path, "o").unwrap(), [1.0, 2.0, 3.0]);
    saver.save(&batch(1..2, 3..5, &[4.0, 5.0])).unwrap();
    assert_eq!(read_hdf5::<f64>(&path, "o").unwrap(), [4.0, 5.0]);
    saver.save(&batch(2..3, 5..10, &[9.0; 5])).unwrap();
    assert_eq!(read_hdf5::<f64>(&path, "o").unwrap(), [9.0; 5]);
    drop(saver);

    // Resuming after the last save keeps it.
    let mut again = Hdf5Saver::<f64>::create(&path, "o", opts.clone()).unwrap();
    again
        .resume(&ResumePoint {
            next_chunk: 3,
            next_item: 10,
        })
        .unwrap();
    assert_eq!(read_hdf5::<f64>(&path, "o").unwrap(), [9.0; 5]);
    // Resuming before it clears the uncommitted contents.
    again
        .resume(&ResumePoint {
            next_chunk: 2,
            next_item: 5,
        })
        .unwrap();
    assert!(read_hdf5::<f64>(&path, "o").unwrap().is_empty());
    again.save(&batch(2..3, 5..10, &[8.0; 5])).unwrap();
    assert_eq!(read_hdf5::<f64>(&path, "o").unwrap(), [8.0; 5]);
}

#[test]
fn update_at_indices_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upd.h5");
    let opts = Hdf5Options::default().with_mode(Hdf5Mode::UpdateAtIndices);
    let mut saver = Hdf5Saver::<i64>::create(&path, "u", opts.clone()).unwrap();
    // Items 4..6 first: positions 0..4 keep the fill value 0.
    saver.save(&batch(2..3, 4..6, &[40, 50])).unwrap();
    assert_eq!(read_hdf5::<i64>(&path, "u").unwrap(), [0, 0, 0, 0, 40, 50]);
    // Items 0..2 then: the dataset does not grow.
    saver.save(&batch(0..1, 0..2, &[1, 2])).unwrap();
    assert_eq!(read_hdf5::<i64>(&path, "u").unwrap(), [1, 2, 0, 0, 40, 50]);
    // Rewriting the same items replaces them.
    saver.save(&batch(2..3, 4..6, &[41, 51])).unwrap();
    assert_eq!(read_hdf5::<i64>(&path, "u").unwrap(), [1, 2, 0, 0, 41, 51]);

    // A batch with fewer results than items cannot be placed: refused.
    let err = saver.save(&batch(3..5, 6..10, &[1, 2])).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("one result per item") && msg.contains("upd.h5"),
        "{msg}"
    );
    assert_eq!(read_hdf5::<i64>(&path, "u").unwrap().len(), 6);

    // Explicit indices (the seed's `indices` argument).
    saver.save_at(&[9, 2], &[99, 22]).unwrap();
    assert_eq!(
        read_hdf5::<i64>(&path, "u").unwrap(),
        [1, 2, 22, 0, 41, 51, 0, 0, 0, 99]
    );
    assert!(saver.save_at(&[1], &[]).is_err());
    drop(saver);

    // Resume in this mode truncates to the items of the kept saves.
    let fresh_path = dir.path().join("upd2.h5");
    let mut s = Hdf5Saver::<i64>::create(&fresh_path, "u", opts.clone()).unwrap();
    for c in 0..4u64 {
        s.save(&batch(c..c + 1, 2 * c..2 * c + 2, &[c as i64; 2]))
            .unwrap();
    }
    drop(s);
    let mut s = Hdf5Saver::<i64>::create(&fresh_path, "u", opts).unwrap();
    s.resume(&ResumePoint {
        next_chunk: 2,
        next_item: 4,
    })
    .unwrap();
    assert_eq!(read_hdf5::<i64>(&fresh_path, "u").unwrap(), [0, 0, 1, 1]);
    s.save(&batch(2..4, 4..8, &[7; 4])).unwrap();
    assert_eq!(
        read_hdf5::<i64>(&fresh_path, "u").unwrap(),
        [0, 0, 1, 1, 7, 7, 7, 7]
    );
}

#[test]
fn unwritable_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/out.h5");
    let err = Hdf5Saver::<f64>::create(&missing, "results", Hdf5Options::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Hdf5 { .. }), "{err:?}");
    assert!(
        msg.contains("no/such/dir/out.h5")
            && msg.contains("\"results\"")
            && msg.contains("opening"),
        "{msg}"
    );

    // /proc is read-only even for root.
    let err = Hdf5Saver::<f64>::create("/proc/raygent.h5", "results", Hdf5Options::default())
        .unwrap_err();
    assert!(err.to_string().contains("/proc/raygent.h5"), "{err}");

    // Through the Saver trait the error converts to a write error naming the file.
    let save_err: SaveError = err.into();
    assert!(matches!(save_err, SaveError::Write { .. }), "{save_err:?}");
    assert!(
        save_err.to_string().contains("/proc/raygent.h5#results"),
        "{save_err}"
    );

    // Reading a missing dataset names the file and the dataset.
    let path = dir.path().join("r.h5");
    let mut s = Hdf5Saver::<f64>::create(&path, "a", Hdf5Options::default()).unwrap();
    s.save(&batch(0..1, 0..1, &[1.0])).unwrap();
    let err = read_hdf5::<f64>(&path, "b").unwrap_err();
    assert!(
        err.to_string().contains("\"b\"") && err.to_string().contains("r.h5"),
        "{err}"
    );
}
