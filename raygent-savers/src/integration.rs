//! The conformance suite every destination must pass (feature `integration`).
//!
//! Each function takes a factory returning a fresh, empty [`Location`] and
//! panics on failure, like object_store's own `integration` module. Run them
//! from a `#[test]` (a plain thread: the savers own their runtimes):
//!
//! ```
//! use raygent_savers::{integration, Location};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! static N: AtomicU32 = AtomicU32::new(0);
//! let new = || {
//!     let n = N.fetch_add(1, Ordering::SeqCst);
//!     Location::parse(&format!("memory://conformance-doc/{n}")).unwrap()
//! };
//! integration::round_trip_every_format(&new);
//! ```
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use raygent_core::{Batch, ResumePoint};
use serde::{Deserialize, Serialize};

use crate::{
    DatasetReader, DatasetSaver, Error, Format, Location, MIN_MULTIPART_PIECE, PartFormat,
    SaverOptions,
};

/// A factory of fresh, empty locations.
pub type NewLocation<'a> = &'a dyn Fn() -> Location;

/// A result type with a bit of everything CSV can hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// An input index.
    pub id: u64,
    /// Text with separators, quotes and a newline.
    pub name: String,
    /// A float.
    pub score: f64,
    /// A flag.
    pub ok: bool,
}

/// `n` rows starting at `start`.
pub fn rows(start: u64, n: u64) -> Vec<Row> {
    (start..start + n)
        .map(|id| Row {
            id,
            name: format!("row {id}, \"quoted\"\nnext line"),
            score: id as f64 / 3.0,
            ok: id % 2 == 0,
        })
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every object under `loc`, relative to it, sorted.
pub fn objects(loc: &Location) -> Vec<String> {
    let prefix = loc.prefix();
    let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
    let metas: Vec<_> = rt()
        .block_on(loc.store().list(prefix).try_collect::<Vec<_>>())
        .unwrap();
    let mut names: Vec<String> = metas
        .iter()
        .filter_map(|m| loc.relative(&m.location))
        .collect();
    names.sort();
    names
}

/// Overwrites (or creates) the object `name` under `loc`.
pub fn put_object(loc: &Location, name: &str, bytes: Vec<u8>) {
    rt().block_on(loc.store().put(&loc.path(name), Bytes::from(bytes).into()))
        .unwrap();
}

/// The bytes of the object `name` under `loc`.
pub fn get_object(loc: &Location, name: &str) -> Vec<u8> {
    let r = rt();
    r.block_on(async {
        loc.store()
            .get(&loc.path(name))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    })
    .to_vec()
}

fn opts(format: Format) -> SaverOptions {
    SaverOptions::default().with_format(format)
}

/// Saves `batches` (each: chunks, rows) with a fresh saver and finishes.
fn save_all(loc: &Location, options: SaverOptions, batches: &[(std::ops::Range<u64>, Vec<Row>)]) {
    let mut saver = DatasetSaver::new(loc.clone(), options).unwrap();
    let mut item = 0;
    for (chunks, results) in batches {
        let items = item..item + results.len() as u64;
        item = items.end;
        saver
            .save_batch(&Batch {
                chunks: chunks.clone(),
                items,
                results,
            })
            .unwrap();
    }
    saver.finish_dataset().unwrap();
}

fn read_all<T: serde::de::DeserializeOwned + 'static>(loc: &Location) -> Vec<T> {
    let reader = DatasetReader::open_location(loc.clone()).unwrap();
    reader.iter().collect::<Result<Vec<T>, _>>().unwrap()
}

/// Every format round-trips structs over several parts; part names carry
/// the chunk range and the format's extension.
pub fn round_trip_every_format(new: NewLocation<'_>) {
    for format in Format::ALL {
        let loc = new();
        let batches = vec![(0..2, rows(0, 5)), (2..3, rows(5, 1)), (3..7, rows(6, 20))];
        save_all(&loc, opts(format), &batches);
        let reader = DatasetReader::open_location(loc.clone()).unwrap();
        assert_eq!(reader.format(), Some(format));
        assert!(reader.is_complete());
        assert_eq!(reader.chunks(), 0..7);
        assert_eq!(reader.result_count(), 26);
        let names: Vec<&str> = reader.parts().iter().map(|p| p.part.as_str()).collect();
        assert_eq!(
            names,
            [
                format!("part-{:020}-{:020}.{}", 0, 2, format.extension()),
                format!("part-{:020}-{:020}.{}", 2, 3, format.extension()),
                format!("part-{:020}-{:020}.{}", 3, 7, format.extension()),
            ]
        );
        let back: Vec<Row> = reader.iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(back, rows(0, 26), "{format} at {}", loc.url());
        // Generic values work for every format (what `raygent cat` uses).
        let any: Vec<serde_json::Value> = reader.iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(any.len(), 26);
    }
}

/// Many parts (one with no results) come back in input order, and the
/// object names sort in chunk order.
pub fn ordering_across_many_parts(new: NewLocation<'_>) {
    let loc = new();
    let mut saver = DatasetSaver::new(loc.clone(), opts(Format::Cbor)).unwrap();
    let mut next = 0u64;
    let mut expected = Vec::new();
    for chunk in 0..40u64 {
        // 0..=6 results per part; chunk 13 was skipped entirely (no results).
        let n = if chunk == 13 { 0 } else { (chunk * 7) % 6 + 1 };
        let results: Vec<u64> = (next..next + n).collect();
        saver
            .save_batch(&Batch {
                chunks: chunk..chunk + 1,
                items: next..next + n,
                results: &results,
            })
            .unwrap();
        expected.extend_from_slice(&results);
        next += n;
    }
    assert_eq!(saver.stats().parts, 40);
    let back: Vec<u64> = read_all(&loc);
    assert_eq!(back, expected);
    let reader = DatasetReader::open_location(loc.clone()).unwrap();
    assert!(!reader.is_complete(), "finish was not called");
    assert_eq!(reader.parts().len(), 40);
    let names = objects(&loc);
    let parts: Vec<&String> = names.iter().filter(|n| n.starts_with("part-")).collect();
    let mut sorted = parts.clone();
    sorted.sort();
    assert_eq!(parts, sorted);
    assert_eq!(parts.len(), 40);
}

/// A part above the multipart threshold goes through a multipart upload and
/// reads back intact; a small one after it does not.
pub fn multipart_part(new: NewLocation<'_>) {
    let loc = new();
    let options = opts(Format::Cbor)
        .with_multipart_threshold(MIN_MULTIPART_PIECE + 1)
        .with_multipart_piece(MIN_MULTIPART_PIECE);
    let mut saver = DatasetSaver::new(loc.clone(), options).unwrap();
    // Six 1 MiB strings: about 6 MiB of CBOR, so two pieces.
    let big: Vec<String> = (0..6u8)
        .map(|i| char::from(b'a' + i).to_string().repeat(1 << 20))
        .collect();
    let info = saver
        .save_batch(&Batch {
            chunks: 0..1,
            items: 0..6,
            results: &big,
        })
        .unwrap();
    assert!(info.bytes > MIN_MULTIPART_PIECE as u64 + 1);
    let small = vec!["tail".to_string()];
    saver
        .save_batch(&Batch {
            chunks: 1..2,
            items: 6..7,
            results: &small,
        })
        .unwrap();
    assert_eq!(saver.stats().multipart_parts, 1);
    assert_eq!(saver.stats().parts, 2);
    let back: Vec<String> = read_all(&loc);
    assert_eq!(back.len(), 7);
    assert!(
        back[..6] == big[..],
        "the multipart part came back different"
    );
    assert_eq!(back[6], "tail");
}

/// Several parts in flight at once (small ones and multipart ones): each is
/// counted committed only once its commit record is written, records go in
/// chunk order, and everything reads back in input order.
pub fn parts_in_flight_commit_in_order(new: NewLocation<'_>) {
    let loc = new();
    let options = opts(Format::Cbor)
        .with_multipart_threshold(MIN_MULTIPART_PIECE + 1)
        .with_multipart_piece(MIN_MULTIPART_PIECE)
        .with_saves_in_flight(3);
    let mut saver = DatasetSaver::new(loc.clone(), options).unwrap();
    let mut expected = Vec::new();
    let mut item = 0u64;
    for chunk in 0..8u64 {
        // Every third part is about 6 MiB (a multipart upload).
        let results: Vec<String> = if chunk % 3 == 1 {
            (0..6u8)
                .map(|i| char::from(b'a' + i).to_string().repeat(1 << 20))
                .collect()
        } else {
            (0..5)
                .map(|i| format!("chunk {chunk} result {i}"))
                .collect()
        };
        let n = results.len() as u64;
        let committed = saver
            .submit_batch(&Batch {
                chunks: chunk..chunk + 1,
                items: item..item + n,
                results: &results,
            })
            .unwrap();
        assert!(
            committed <= chunk,
            "part {chunk} reported committed on submit"
        );
        assert_eq!(saver.committed_until(), committed);
        assert_eq!(saver.stats().parts, committed);
        expected.extend(results);
        item += n;
    }
    saver.flush_saves().unwrap();
    assert_eq!(saver.committed_until(), 8);
    assert_eq!(saver.stats().parts, 8);
    assert_eq!(saver.stats().multipart_parts, 3);
    let chunk_ranges: Vec<_> = saver
        .committed()
        .iter()
        .map(|p| p.chunk_start..p.chunk_end)
        .collect();
    assert_eq!(
        chunk_ranges,
        (0..8u64).map(|c| c..c + 1).collect::<Vec<_>>()
    );
    saver.finish_dataset().unwrap();
    let back: Vec<String> = read_all(&loc);
    assert_eq!(back.len(), expected.len());
    assert!(
        back == expected,
        "results came back different or out of order"
    );
}

/// A resumed job rewrites the parts after the checkpoint under the same
/// names (never a second copy), and a retried save overwrites a part left
/// by a failed attempt.
pub fn resumed_save_rewrites_same_part(new: NewLocation<'_>) {
    let loc = new();
    let batches = vec![(0..1, rows(0, 3)), (1..2, rows(3, 3)), (2..4, rows(6, 4))];
    save_all(&loc, opts(Format::JsonLines), &batches);
    let before = objects(&loc);

    let mut saver = DatasetSaver::new(loc.clone(), opts(Format::JsonLines)).unwrap();
    saver
        .resume_at(&ResumePoint {
            next_chunk: 1,
            next_item: 3,
        })
        .unwrap();
    assert_eq!(saver.committed().len(), 1);
    let reader = DatasetReader::open_location(loc.clone()).unwrap();
    assert_eq!(reader.chunks(), 0..1, "resume must forget chunks >= 1");
    assert!(!reader.is_complete());

    // A failed earlier attempt left garbage under the next part's name.
    let next_part = format!("part-{:020}-{:020}.jsonl", 1, 2);
    put_object(&loc, &next_part, b"garbage from a failed attempt".to_vec());
    for (chunks, results) in &batches[1..] {
        let items = results[0].id..results[0].id + results.len() as u64;
        saver
            .save_batch(&Batch {
                chunks: chunks.clone(),
                items,
                results,
            })
            .unwrap();
    }
    saver.finish_dataset().unwrap();
    assert_eq!(objects(&loc), before, "the same objects, no second copy");
    let back: Vec<Row> = read_all(&loc);
    assert_eq!(back, rows(0, 10));
}

/// A part without a commit record (an upload the job never committed), and
/// a record after a gap, are ignored by readers and removed on resume.
pub fn orphan_part_ignored_and_removed(new: NewLocation<'_>) {
    let loc = new();
    save_all(
        &loc,
        opts(Format::Cbor),
        &[(0..1, rows(0, 2)), (1..2, rows(2, 2))],
    );
    let orphan = format!("part-{:020}-{:020}.cbor", 2, 3);
    put_object(&loc, &orphan, b"\xff\xff not cbor".to_vec());
    // A committed-looking part after a gap (chunks 3..4 missing).
    let stray = format!("part-{:020}-{:020}.cbor", 4, 5);
    let stray_record = format!("_manifest/part-{:020}-{:020}.json", 4, 5);
    put_object(
        &loc,
        &stray,
        get_object(&loc, &format!("part-{:020}-{:020}.cbor", 1, 2)),
    );
    let mut record: serde_json::Value = serde_json::from_slice(&get_object(
        &loc,
        &format!("_manifest/part-{:020}-{:020}.json", 1, 2),
    ))
    .unwrap();
    record["part"] = stray.clone().into();
    record["chunk_start"] = 4.into();
    record["chunk_end"] = 5.into();
    put_object(&loc, &stray_record, serde_json::to_vec(&record).unwrap());
    // The completion record no longer matches; readers fall back to the
    // commit records.
    let reader = DatasetReader::open_location(loc.clone()).unwrap();
    assert_eq!(reader.parts().len(), 2);
    assert_eq!(reader.chunks(), 0..2);
    let back: Vec<Row> = reader.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(back, rows(0, 4));

    let mut saver = DatasetSaver::new(loc.clone(), opts(Format::Cbor)).unwrap();
    saver
        .resume_at(&ResumePoint {
            next_chunk: 2,
            next_item: 4,
        })
        .unwrap();
    let left = objects(&loc);
    for gone in [&orphan, &stray, &stray_record] {
        assert!(!left.contains(gone), "{gone} survived the resume: {left:?}");
    }
    assert!(left.contains(&format!("part-{:020}-{:020}.cbor", 1, 2)));
    assert_eq!(read_all::<Row>(&loc), rows(0, 4));
}

/// A corrupted, truncated or missing part is reported with its name, after
/// the results of the intact parts before it.
pub fn corrupted_part_reported_by_name(new: NewLocation<'_>) {
    let loc = new();
    save_all(
        &loc,
        opts(Format::Cbor),
        &[(0..1, rows(0, 4)), (1..2, rows(4, 4))],
    );
    let second = format!("part-{:020}-{:020}.cbor", 1, 2);
    let good = get_object(&loc, &second);

    let check = |what: &str, needle: &str| {
        let reader = DatasetReader::open_location(loc.clone()).unwrap();
        let got: Vec<Result<Row, Error>> = reader.iter().collect();
        assert_eq!(got.len(), 5, "{what}: four good results, then one error");
        assert!(got[..4].iter().all(Result::is_ok), "{what}");
        let err = got[4].as_ref().unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&second), "{what}: {msg}");
        assert!(msg.contains(loc.url()), "{what}: {msg}");
        assert!(msg.contains(needle), "{what}: {msg}");
    };

    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x55;
    put_object(&loc, &second, flipped);
    check("a flipped byte", "checksum");

    put_object(&loc, &second, good[..good.len() - 3].to_vec());
    check("a truncated part", "bytes");

    rt().block_on(loc.store().delete(&loc.path(&second)))
        .unwrap();
    check("a missing part", "missing");
}

/// A fresh job refuses to mix its parts into an existing dataset, unless
/// told to overwrite it; a resume must match what the dataset holds.
pub fn existing_dataset_is_protected(new: NewLocation<'_>) {
    let loc = new();
    save_all(&loc, opts(Format::Cbor), &[(0..3, rows(0, 3))]);
    let mut fresh = DatasetSaver::new(loc.clone(), opts(Format::Cbor)).unwrap();
    let err = fresh
        .save_batch(&Batch {
            chunks: 0..1,
            items: 0..1,
            results: &rows(0, 1),
        })
        .unwrap_err();
    assert!(matches!(err, Error::NotEmpty { .. }), "{err:?}");
    assert!(err.to_string().contains(loc.url()), "{err}");

    // A checkpoint claiming more than the dataset holds is refused.
    let mut resumed = DatasetSaver::new(loc.clone(), opts(Format::Cbor)).unwrap();
    let err = resumed
        .resume_at(&ResumePoint {
            next_chunk: 5,
            next_item: 5,
        })
        .unwrap_err();
    assert!(matches!(err, Error::Manifest { .. }), "{err:?}");
    // So is a resume in another format.
    let mut other = DatasetSaver::new(loc.clone(), opts(Format::Csv)).unwrap();
    let err = other
        .resume_at(&ResumePoint {
            next_chunk: 3,
            next_item: 3,
        })
        .unwrap_err();
    assert!(err.to_string().contains("cbor"), "{err}");

    let mut over = DatasetSaver::new(loc.clone(), opts(Format::Cbor).with_overwrite(true)).unwrap();
    over.save_batch(&Batch {
        chunks: 0..1,
        items: 0..2,
        results: &rows(10, 2),
    })
    .unwrap();
    assert_eq!(read_all::<Row>(&loc), rows(10, 2));
    assert_eq!(
        objects(&loc)
            .iter()
            .filter(|n| n.starts_with("part-"))
            .count(),
        1
    );
}

/// Every test of the suite.
pub fn run_all(new: NewLocation<'_>) {
    round_trip_every_format(new);
    ordering_across_many_parts(new);
    multipart_part(new);
    parts_in_flight_commit_in_order(new);
    resumed_save_rewrites_same_part(new);
    orphan_part_ignored_and_removed(new);
    corrupted_part_reported_by_name(new);
    existing_dataset_is_protected(new);
    success_marker_lifecycle(new);
    #[cfg(feature = "parquet")]
    parquet_index_schema_and_resume(new);
    #[cfg(feature = "parquet")]
    parquet_parts_in_flight_commit_in_order(new);
}

/// The `_SUCCESS` marker, for every format: refused before the dataset is
/// finished, written after; a resume and a fresh job's first write delete it.
pub fn success_marker_lifecycle(new: NewLocation<'_>) {
    use crate::{SUCCESS_MARKER, read_success, write_success};
    for format in Format::ALL {
        let loc = new();
        let mut saver = DatasetSaver::new(loc.clone(), opts(format)).unwrap();
        saver
            .save_batch(&Batch {
                chunks: 0..1,
                items: 0..3,
                results: &rows(0, 3),
            })
            .unwrap();
        assert!(write_success(&loc, 0).is_err(), "{format}: not finished");
        assert!(!objects(&loc).contains(&SUCCESS_MARKER.to_owned()));
        saver.finish_dataset().unwrap();
        let record = write_success(&loc, 1).unwrap();
        assert_eq!((record.results, record.parts, record.chunks), (3, 1, 1));
        assert_eq!(record.failed_chunks, 1);
        assert_eq!(record.format, format.name());
        assert_eq!(read_success(&loc).unwrap(), Some(record));
        // A resume (of a finished job too) deletes it: the job runs again.
        let mut again = DatasetSaver::new(loc.clone(), opts(format)).unwrap();
        again
            .resume_at(&ResumePoint {
                next_chunk: 1,
                next_item: 3,
            })
            .unwrap();
        assert_eq!(read_success(&loc).unwrap(), None, "{format}");
        again.finish_dataset().unwrap();
        write_success(&loc, 0).unwrap();
        // A fresh job told to overwrite deletes it before anything else.
        let mut fresh = DatasetSaver::new(loc.clone(), opts(format).with_overwrite(true)).unwrap();
        fresh
            .save_batch(&Batch {
                chunks: 0..1,
                items: 0..1,
                results: &rows(0, 1),
            })
            .unwrap();
        assert_eq!(read_success(&loc).unwrap(), None, "{format}");
        // Without overwrite, a marker alone makes the location not empty.
        let only_marker = new();
        put_object(&only_marker, SUCCESS_MARKER, Vec::new());
        let mut refused = DatasetSaver::new(only_marker.clone(), opts(format)).unwrap();
        let err = refused
            .save_batch(&Batch {
                chunks: 0..1,
                items: 0..1,
                results: &rows(0, 1),
            })
            .unwrap_err();
        assert!(matches!(err, Error::NotEmpty { .. }), "{err:?}");
    }
}

/// Parquet parts in flight at once, small ones and multipart ones, their
/// files encoded in the background: each is counted committed only once
/// its commit record is written, records go in chunk order with the size
/// and CRC of the file uploaded (the reader checks both), and everything
/// reads back in input order with the schema of the first part.
#[cfg(feature = "parquet")]
pub fn parquet_parts_in_flight_commit_in_order(new: NewLocation<'_>) {
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Out {
        id: u64,
        text: String,
        score: Option<f64>,
    }
    let loc = new();
    let options = opts(Format::Parquet)
        .with_multipart_threshold(MIN_MULTIPART_PIECE + 1)
        .with_multipart_piece(MIN_MULTIPART_PIECE)
        .with_saves_in_flight(3);
    let mut saver = DatasetSaver::new(loc.clone(), options).unwrap();
    // Text zstd cannot shrink much (xorshift bytes as hex).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = |len: usize| {
        let mut s = String::with_capacity(len + 16);
        while s.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            s.push_str(&format!("{state:016x}"));
        }
        s
    };
    let mut expected = Vec::new();
    let mut item = 0u64;
    for chunk in 0..8u64 {
        // Every third part is over 10 MiB of text (a multipart upload).
        let (n, len) = if chunk % 3 == 1 {
            (12, 1 << 20)
        } else {
            (5, 20)
        };
        let results: Vec<Out> = (0..n)
            .map(|i| Out {
                id: item + i,
                text: noise(len),
                score: (i % 2 == 0).then_some(i as f64 / 4.0),
            })
            .collect();
        let committed = saver
            .submit_batch(&Batch {
                chunks: chunk..chunk + 1,
                items: item..item + n,
                results: &results,
            })
            .unwrap();
        assert!(
            committed <= chunk,
            "part {chunk} reported committed on submit"
        );
        assert_eq!(saver.stats().parts, committed);
        expected.extend(results);
        item += n;
    }
    saver.flush_saves().unwrap();
    assert_eq!(saver.committed_until(), 8);
    assert_eq!(saver.stats().parts, 8);
    assert_eq!(saver.stats().multipart_parts, 3);
    let committed = saver.committed().to_vec();
    assert_eq!(
        committed
            .iter()
            .map(|p| p.chunk_start..p.chunk_end)
            .collect::<Vec<_>>(),
        (0..8u64).map(|c| c..c + 1).collect::<Vec<_>>()
    );
    assert!(
        committed[0].params.schema.is_some(),
        "the first part records the schema"
    );
    assert!(committed[1..].iter().all(|p| p.params.schema.is_none()));
    saver.finish_dataset().unwrap();
    for p in &committed {
        let file = get_object(&loc, &p.part);
        assert_eq!(file.len() as u64, p.bytes, "{}", p.part);
        assert_eq!(crc32fast::hash(&file), p.crc32, "{}", p.part);
    }
    let back: Vec<Out> = read_all(&loc);
    assert!(
        back == expected,
        "results came back different or out of order"
    );
}

/// Parquet: `_index` holds each result's input position (skipped chunks
/// leave gaps), the schema is recorded with the first part and restored on
/// resume, a result that does not fit is refused naming the item, chunk,
/// field and both types, and a part with no results is empty.
#[cfg(feature = "parquet")]
pub fn parquet_index_schema_and_resume(new: NewLocation<'_>) {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use raygent_core::{FailedChunk, Saver};

    use crate::{INDEX_COLUMN, ParquetSchema, Value};

    let loc = new();
    let options = opts(Format::Parquet);
    let skip = |saver: &mut DatasetSaver, index: u64, items: std::ops::Range<u64>| {
        Saver::<Row>::skipped(
            saver,
            &FailedChunk {
                index,
                items,
                attempts: 1,
                error: "boom".into(),
            },
        );
    };
    let mut saver = DatasetSaver::new(loc.clone(), options.clone()).unwrap();
    // Chunks of 2 items: chunk 0 and 1 skipped in the first part (no
    // results: an empty object), chunk 3 skipped inside the second.
    skip(&mut saver, 0, 0..2);
    skip(&mut saver, 1, 2..4);
    let empty = saver
        .save_batch(&Batch {
            chunks: 0..2,
            items: 0..4,
            results: &Vec::<Row>::new(),
        })
        .unwrap();
    assert_eq!(empty.part, format!("part-{:020}-{:020}.empty", 0, 2));
    assert_eq!(empty.bytes, 0);
    skip(&mut saver, 3, 6..8);
    let second = [rows(4, 2), rows(8, 2)].concat();
    saver
        .save_batch(&Batch {
            chunks: 2..5,
            items: 4..10,
            results: &second,
        })
        .unwrap();
    // With the schema known, an empty part is a Parquet file of no rows.
    skip(&mut saver, 5, 10..12);
    let third = saver
        .save_batch(&Batch {
            chunks: 5..6,
            items: 10..12,
            results: &Vec::<Row>::new(),
        })
        .unwrap();
    assert_eq!(third.part, format!("part-{:020}-{:020}.parquet", 5, 6));
    let reader = DatasetReader::open_location(loc.clone()).unwrap();
    let schema = ParquetSchema::of_dataset(&reader).unwrap().unwrap();
    assert_eq!(
        schema.to_string(),
        "_index: int64, id: uint64, name: string, score: float64, ok: bool"
    );
    let batches = reader.record_batches(&reader.parts()[1]).unwrap();
    let index: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let col = b.column_by_name(INDEX_COLUMN).unwrap();
            col.as_primitive::<Int64Type>().values().to_vec()
        })
        .collect();
    assert_eq!(index, [4, 5, 8, 9]);
    assert!(
        reader
            .record_batches(&reader.parts()[0])
            .unwrap()
            .is_empty()
    );
    let back: Vec<Row> = reader.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(back, second);

    // Resume after the second part: the schema comes back from the records.
    drop(saver);
    let mut saver = DatasetSaver::new(loc.clone(), options.clone()).unwrap();
    saver
        .resume_at(&ResumePoint {
            next_chunk: 5,
            next_item: 10,
        })
        .unwrap();
    let mut bad: Vec<Value> = rows(10, 3)
        .iter()
        .map(|r| crate::to_value(r).unwrap())
        .collect();
    let Value::Map(fields) = &mut bad[2] else {
        panic!()
    };
    fields[2].1 = Value::String("high".into());
    let err = saver
        .save_batch(&Batch {
            chunks: 5..7,
            items: 10..13,
            results: &bad,
        })
        .unwrap_err();
    assert!(matches!(err, Error::Schema(_)), "{err:?}");
    let msg = err.to_string();
    for needle in [
        "item 12",
        "chunk 6",
        "field `score`",
        "float64",
        "this result has string",
        "part-00000000000000000005-00000000000000000007.parquet",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in: {msg}");
    }
    // Fixed: the same part saves, ints into the float column.
    let Value::Map(fields) = &mut bad[2] else {
        panic!()
    };
    fields[2].1 = Value::Int(3);
    let mut fixed = DatasetSaver::new(loc.clone(), options).unwrap();
    fixed
        .resume_at(&ResumePoint {
            next_chunk: 5,
            next_item: 10,
        })
        .unwrap();
    fixed
        .save_batch(&Batch {
            chunks: 5..7,
            items: 10..13,
            results: &bad,
        })
        .unwrap();
    fixed.finish_dataset().unwrap();
    let back: Vec<Row> = read_all(&loc);
    assert_eq!(back.len(), 7);
    assert_eq!(back[6].score, 3.0);
    // Resuming with the index column switched off is refused.
    let mut other =
        DatasetSaver::new(loc.clone(), opts(Format::Parquet).with_index_column(false)).unwrap();
    let err = other
        .resume_at(&ResumePoint {
            next_chunk: 7,
            next_item: 13,
        })
        .unwrap_err();
    assert!(err.to_string().contains("_index"), "{err}");
}
