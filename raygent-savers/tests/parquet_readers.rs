//! Rust structs saved as Parquet (options, vectors, nested structs) read by
//! DuckDB, pyarrow and polars in `python3` (`.ci/parquet.sh` installs
//! them): every result once, in order by `_index`, with the types the Rust
//! fields have.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use raygent_core::{Batch, FailedChunk, Saver};
use raygent_savers::{DatasetReader, DatasetSaver, Format, ParquetSchema, SaverOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    x: f64,
    label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Hit {
    id: u64,
    delta: i32,
    score: f64,
    ok: bool,
    name: String,
    maybe: Option<f64>,
    counts: Vec<u32>,
    words: Vec<String>,
    at: Point,
    trail: Vec<Point>,
    extra: Option<Vec<i64>>,
}

fn hit(id: u64) -> Hit {
    Hit {
        id,
        delta: 5 - id as i32,
        score: id as f64 * 0.5,
        ok: id.is_multiple_of(3),
        name: format!("hit {id}"),
        maybe: id.is_multiple_of(2).then_some(id as f64 + 0.25),
        counts: (0..(id % 4) as u32).collect(),
        words: vec!["w".repeat((id % 3) as usize + 1); (id % 2) as usize + 1],
        at: Point {
            x: -(id as f64),
            label: id.is_multiple_of(5).then(|| format!("p{id}")),
        },
        trail: (0..id % 3)
            .map(|k| Point {
                x: k as f64,
                label: (k == 1).then(|| "second".into()),
            })
            .collect(),
        extra: (id % 4 == 1).then(|| vec![id as i64, -(id as i64)]),
    }
}

const CHECK: &str = r#"
import sys, duckdb, pyarrow as pa, pyarrow.parquet as pq, polars as pl
out, n, skipped = sys.argv[1], int(sys.argv[2]), set(int(s) for s in sys.argv[3].split(","))
def hit(i):
    return {"_index": i, "id": i, "delta": 5 - i, "score": i * 0.5, "ok": i % 3 == 0,
            "name": "hit %d" % i, "maybe": i + 0.25 if i % 2 == 0 else None,
            "counts": list(range(i % 4)), "words": ["w" * (i % 3 + 1)] * (i % 2 + 1),
            "at": {"x": -float(i), "label": "p%d" % i if i % 5 == 0 else None},
            "trail": [{"x": float(k), "label": "second" if k == 1 else None} for k in range(i % 3)],
            "extra": [i, -i] if i % 4 == 1 else None}
want = [hit(i) for i in range(n) if i not in skipped]

rel = duckdb.sql(f"SELECT * FROM read_parquet('{out}/*.parquet') ORDER BY _index")
# DuckDB quotes some field names (`"label"`): compare without quotes.
types = dict(zip(rel.columns, [str(t).replace('"', '') for t in rel.types]))
assert types == {"_index": "BIGINT", "id": "UBIGINT", "delta": "BIGINT", "score": "DOUBLE",
                 "ok": "BOOLEAN", "name": "VARCHAR", "maybe": "DOUBLE", "counts": "UBIGINT[]",
                 "words": "VARCHAR[]", "at": "STRUCT(x DOUBLE, label VARCHAR)",
                 "trail": "STRUCT(x DOUBLE, label VARCHAR)[]", "extra": "BIGINT[]"}, types
got = [dict(zip(rel.columns, r)) for r in rel.fetchall()]
assert got == want, (got[:2], want[:2])

t = pq.read_table(out).sort_by("_index")  # the directory: _manifest/ and the rest skipped
assert t.schema.field("id").type == pa.uint64() and t.schema.field("maybe").type == pa.float64()
assert t.schema.field("at").type == pa.struct([("x", pa.float64()), ("label", pa.string())])
assert t.to_pylist() == want
meta = pq.ParquetFile(sorted(__import__("glob").glob(f"{out}/*.parquet"))[0]).metadata
col = meta.row_group(0).column(1)
assert col.compression == "ZSTD", col.compression
assert col.statistics is not None and col.statistics.has_min_max, col.statistics

df = pl.read_parquet(f"{out}/*.parquet").sort("_index")
assert df.schema["id"] == pl.UInt64 and df.schema["counts"] == pl.List(pl.UInt64), df.schema
assert df.to_dicts() == want
print("OK", len(want))
"#;

#[test]
fn rust_structs_with_options_and_vectors_survive_in_duckdb_pyarrow_and_polars() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hits");
    let url = out.to_str().unwrap();
    let mut saver =
        DatasetSaver::create(url, SaverOptions::default().with_format(Format::Parquet)).unwrap();
    // Chunks of 10 items, parts of 3 chunks; chunk 4 (items 40..50) skipped.
    let n = 95u64;
    let mut expected = Vec::new();
    for part in 0..n.div_ceil(30) {
        let chunks = part * 3..((part + 1) * 3).min(n.div_ceil(10));
        let items = chunks.start * 10..(chunks.end * 10).min(n);
        if chunks.contains(&4) {
            Saver::<Hit>::skipped(
                &mut saver,
                &FailedChunk {
                    index: 4,
                    items: 40..50,
                    attempts: 3,
                    error: "boom".into(),
                },
            );
        }
        let results: Vec<Hit> = items
            .clone()
            .filter(|i| !(40..50).contains(i))
            .map(hit)
            .collect();
        expected.extend(results.clone());
        saver
            .submit_batch(&Batch {
                chunks,
                items,
                results: &results,
            })
            .unwrap();
    }
    saver.finish_dataset().unwrap();
    let reader = DatasetReader::open(url).unwrap();
    let back: Vec<Hit> = reader.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(back, expected);
    let schema = ParquetSchema::of_dataset(&reader).unwrap().unwrap();
    assert!(
        schema
            .to_string()
            .starts_with("_index: int64, id: uint64, delta: int64"),
        "{schema}"
    );

    let skipped: Vec<String> = (40..50).map(|i: u64| i.to_string()).collect();
    let child = Command::new("python3")
        .args(["-c", CHECK, url, &n.to_string(), &skipped.join(",")])
        .stdin(Stdio::null())
        .output()
        .expect("python3 with duckdb, pyarrow and polars (see .ci/parquet.sh)");
    assert!(
        child.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&child.stdout).trim(), "OK 85");
}

/// A schema given up front: an `Option` field that is `None` in the whole
/// first part is still a string column, so a later `Some` fits; a resume
/// with another schema is refused.
#[test]
fn a_schema_given_up_front_types_columns_the_first_part_leaves_null() {
    use raygent_core::ResumePoint;
    use raygent_savers::{Column, ColumnType, Error};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Out {
        id: u64,
        error: Option<String>,
    }
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().to_str().unwrap();
    let schema = ParquetSchema::columns(vec![
        Column::new("id", ColumnType::UInt64),
        Column::new("error", ColumnType::String),
    ]);
    // The same, from the type.
    assert_eq!(ParquetSchema::of_type::<Out>().unwrap(), schema);
    let options = SaverOptions::default()
        .with_format(Format::Parquet)
        .with_parquet_schema(schema.clone());
    let first = [Out { id: 0, error: None }];
    let later = [Out {
        id: 1,
        error: Some("bad input".into()),
    }];
    let mut saver = DatasetSaver::create(url, options.clone()).unwrap();
    saver
        .save_batch(&Batch {
            chunks: 0..1,
            items: 0..1,
            results: &first,
        })
        .unwrap();
    drop(saver);
    // Resumed: the schema comes from the record and matches.
    let mut saver = DatasetSaver::create(url, options).unwrap();
    saver
        .resume_at(&ResumePoint {
            next_chunk: 1,
            next_item: 1,
        })
        .unwrap();
    saver
        .save_batch(&Batch {
            chunks: 1..2,
            items: 1..2,
            results: &later,
        })
        .unwrap();
    let reader = DatasetReader::open(url).unwrap();
    assert_eq!(ParquetSchema::of_dataset(&reader).unwrap(), Some(schema));
    let back: Vec<Out> = reader.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(back, [first[0].clone(), later[0].clone()]);
    // Without the schema, the first part makes `error` a null column.
    let other = dir.path().join("inferred");
    let mut saver = DatasetSaver::create(
        other.to_str().unwrap(),
        SaverOptions::default().with_format(Format::Parquet),
    )
    .unwrap();
    saver
        .save_batch(&Batch {
            chunks: 0..1,
            items: 0..1,
            results: &first,
        })
        .unwrap();
    let err = saver
        .save_batch(&Batch {
            chunks: 1..2,
            items: 1..2,
            results: &later,
        })
        .unwrap_err();
    assert!(matches!(err, Error::Schema(_)), "{err}");
    assert!(
        err.to_string().contains("has null, this result has string"),
        "{err}"
    );
    // A resume given another schema is refused.
    let mut wrong = DatasetSaver::create(
        url,
        SaverOptions::default()
            .with_format(Format::Parquet)
            .with_parquet_schema(ParquetSchema::columns(vec![Column::new(
                "id",
                ColumnType::Int64,
            )])),
    )
    .unwrap();
    let err = wrong
        .resume_at(&ResumePoint {
            next_chunk: 2,
            next_item: 2,
        })
        .unwrap_err();
    assert!(err.to_string().contains("schema"), "{err}");
}
