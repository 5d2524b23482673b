//! Cutting the input into the shards' shares, as Hadoop's input splits do.
//!
//! The input files, in order, are seen as one run of bytes; shard `i` of
//! `n` owns the bytes `[i × total / n, (i + 1) × total / n)`. A file that
//! can be split (uncompressed lines or JSON Lines) is read by every shard
//! whose bytes it overlaps, and a record belongs to the shard that owns its
//! first byte: a shard starting mid-file reads the byte before its start
//! and, unless it is a newline, skips to the next line; it reads on past
//! its end to finish its last record. A file that cannot be split (a `.gz`
//! or `.zst` file, any CSV file: a quoted field may hold a newline, so a
//! record boundary cannot be found from the middle of the file) goes whole
//! to the shard that owns its first byte. Streams (stdin, a FIFO, a process
//! substitution) cannot be shared out at all.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::Range;

use raygent_actors::Shard;

use super::files::{InputFile, Inputs, Origin};
use super::{Compression, InputFormat, Lines, RecordError, csv_items};

thread_local! {
    /// Input bytes read so far on this thread (the job's feeder reads the
    /// input on the thread that started the job), before decompression.
    static BYTES_READ: Cell<u64> = const { Cell::new(0) };
}

/// How many input bytes this thread has read (compressed bytes for a
/// compressed file), for `-v`'s summary and the benchmarks.
pub fn bytes_read() -> u64 {
    BYTES_READ.with(Cell::get)
}

/// A part of the input a shard reads: a whole file, or the records that
/// start in a byte range of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The file's index in [`Inputs::files`].
    pub file: usize,
    /// `None`: the whole file; else the records whose first byte lies in
    /// this range.
    pub range: Option<Range<u64>>,
}

/// Whether a file of `format` compressed as `compression` can be split by
/// byte range.
pub fn splittable(format: InputFormat, compression: Compression) -> bool {
    compression == Compression::None && format != InputFormat::Csv
}

/// The pieces `shard` reads (every file whole when `shard` is `None`).
pub fn plan(
    inputs: &Inputs,
    format: InputFormat,
    shard: Option<Shard>,
) -> Result<Vec<Piece>, String> {
    let Some(shard) = shard else {
        return Ok((0..inputs.files.len())
            .map(|file| Piece { file, range: None })
            .collect());
    };
    if let Some(f) = inputs.files.iter().find(|f| f.size.is_none()) {
        return Err(format!(
            "{} is a stream (stdin, a pipe, a FIFO or a process substitution), which cannot be \
             shared out among shards: give a file or an S3 object (every shard reads its own \
             part of it)",
            f.name
        ));
    }
    let total: u64 = inputs.files.iter().filter_map(|f| f.size).sum();
    let mine = shard.share(total);
    let owner = |byte: u64| -> u32 {
        // The last shard whose share starts at or before `byte`: the one
        // holding it (shards with empty shares start there too, but before it).
        let (mut lo, mut hi) = (0u32, shard.count());
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            let start = Shard::new(mid, shard.count()).map_or(0, |s| s.share(total).start);
            if start <= byte {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let mut pieces = Vec::new();
    let mut offset = 0u64;
    for (file, f) in inputs.files.iter().enumerate() {
        let size = f.size.unwrap_or(0);
        let span = offset..offset + size;
        if splittable(format, f.compression) {
            let (a, b) = (span.start.max(mine.start), span.end.min(mine.end));
            if a < b {
                pieces.push(Piece {
                    file,
                    range: Some(a - offset..b - offset),
                });
            }
        } else if owner(offset.min(total.saturating_sub(1))) == shard.index() {
            pieces.push(Piece { file, range: None });
        }
        offset = span.end;
    }
    Ok(pieces)
}

/// A short description of what `pieces` cover, for messages and status.
pub fn describe(inputs: &Inputs, pieces: &[Piece]) -> String {
    if pieces.is_empty() {
        return "nothing (the other shards hold all of the input)".into();
    }
    let one = |p: &Piece| {
        let f = &inputs.files[p.file];
        match &p.range {
            Some(r) if Some(r.end - r.start) != f.size => {
                format!("{} bytes {}..{}", f.name, r.start, r.end)
            }
            _ => f.name.clone(),
        }
    };
    let shown: Vec<String> = pieces.iter().take(3).map(one).collect();
    match pieces.len() {
        n if n > 3 => format!("{} and {} more files", shown.join(", "), n - 3),
        _ => shown.join(", "),
    }
}

/// A digest of the input as the shards share it out: every file's name,
/// size and compression, and the format. Two runs with the same digest and
/// shard count cut the input the same way.
pub fn digest(inputs: &Inputs, format: InputFormat) -> String {
    let mut fp = raygent_core::Fingerprint::new();
    let _ = fp.update_item(&format!("{format:?}"));
    for f in &inputs.files {
        let _ = fp.update_item(&(f.name.as_str(), f.size, format!("{:?}", f.compression)));
    }
    fp.value()
}

/// Counts bytes into [`BYTES_READ`].
struct Counted<R>(R);

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        BYTES_READ.with(|c| c.set(c.get() + n as u64));
        Ok(n)
    }
}

/// The file's raw bytes from `offset` on.
fn open_raw(f: &InputFile, offset: u64) -> io::Result<Box<dyn Read + Send>> {
    Ok(match &f.origin {
        Origin::Stdin => Box::new(Counted(io::stdin())),
        Origin::Local(p) => {
            let mut file = std::fs::File::open(p)?;
            if offset > 0 {
                file.seek(SeekFrom::Start(offset))?;
            }
            Box::new(Counted(file))
        }
        Origin::Object(o) => Box::new(Counted(o.open_at(offset)?)),
    })
}

/// Counts the lines of `f` before byte `end` (only for an error message).
fn lines_before(f: &InputFile, end: u64) -> io::Result<u64> {
    match &f.origin {
        Origin::Object(o) => o.count_newlines(end),
        Origin::Local(p) => super::count_newlines(&mut std::fs::File::open(p)?.take(end)),
        Origin::Stdin => Err(io::Error::other("stdin cannot be read again")),
    }
}

type Items = Box<dyn Iterator<Item = Result<String, RecordError>> + Send>;

fn open_piece(f: &InputFile, range: Option<Range<u64>>, format: InputFormat) -> io::Result<Items> {
    let json = format == InputFormat::Jsonl;
    let Some(range) = range else {
        let reader = f.compression.decode(open_raw(f, 0)?)?;
        return Ok(match format {
            InputFormat::Csv => Box::new(csv_items(reader, f.name.clone())),
            _ => Box::new(Lines::new(reader, f.name.clone(), json)),
        });
    };
    let from = range.start.saturating_sub(1);
    let mut reader = BufReader::with_capacity(1 << 16, open_raw(f, from)?);
    let mut pos = from;
    if range.start > 0 {
        // The record at `range.start` is ours only if a line ends just
        // before it; else it belongs to the shard before us.
        let mut skipped = Vec::new();
        let mut first = [0u8; 1];
        let n = reader.read(&mut first)?;
        pos += n as u64;
        if n == 1 && first[0] != b'\n' {
            pos += reader.read_until(b'\n', &mut skipped)? as u64;
        }
    }
    let before: Result<u64, Option<super::LinesBefore>> = if pos == 0 {
        Ok(0)
    } else {
        let f = f.clone();
        Err(Some(Box::new(move || lines_before(&f, pos))))
    };
    Ok(Box::new(Lines::ranged(
        reader,
        f.name.clone(),
        json,
        pos,
        range.end,
        before,
    )))
}

/// The records of `pieces`, in order, each opened when it is reached. A
/// piece that cannot be opened ends the records with an error naming it.
pub fn items(inputs: &Inputs, pieces: Vec<Piece>, format: InputFormat) -> Items {
    let files = inputs.files.clone();
    let mut pieces = pieces.into_iter();
    let mut current: Option<Items> = None;
    let mut failed = false;
    Box::new(std::iter::from_fn(move || {
        loop {
            if failed {
                return None;
            }
            if let Some(cur) = current.as_mut() {
                match cur.next() {
                    Some(Err(e)) => {
                        failed = true;
                        return Some(Err(e));
                    }
                    Some(ok) => return Some(ok),
                    None => current = None,
                }
            }
            let piece = pieces.next()?;
            let f = &files[piece.file];
            match open_piece(f, piece.range, format) {
                Ok(it) => current = Some(it),
                Err(e) => {
                    failed = true;
                    return Some(Err(RecordError {
                        file: f.name.clone(),
                        line: 0,
                        message: format!("cannot open: {e}"),
                    }));
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(dir: &std::path::Path, files: &[(&str, &[u8])]) -> Inputs {
        let specs: Vec<String> = files
            .iter()
            .map(|(name, body)| {
                let p = dir.join(name);
                std::fs::write(&p, body).unwrap();
                p.display().to_string()
            })
            .collect();
        Inputs::resolve(&specs).unwrap()
    }

    fn records(inputs: &Inputs, format: InputFormat, shard: Option<Shard>) -> Vec<String> {
        let pieces = plan(inputs, format, shard).unwrap();
        items(inputs, pieces, format).map(|r| r.unwrap()).collect()
    }

    /// Every shard count, on awkward inputs: each record exactly once, in order.
    #[test]
    fn shares_never_cut_or_repeat_a_record() {
        let dir = tempfile::tempdir().unwrap();
        type Files<'a> = Vec<(&'a str, &'a [u8])>;
        let cases: Vec<(InputFormat, Files<'_>)> = vec![
            (
                InputFormat::Lines,
                vec![
                    ("a.txt", &b"one\ntwo\n\nthree\r\nfour"[..]),
                    ("b.txt", &b""[..]),
                    ("c.txt", &b"\n\nlong line with words in it\nx\n"[..]),
                ],
            ),
            (
                InputFormat::Jsonl,
                vec![
                    ("a.jsonl", &b"{\"a\": 1}\n\n[1, 2]\n\"s\\nt\"\n"[..]),
                    ("b.jsonl", &b"3\n4\n5\n{\"k\":\"v\"}"[..]),
                ],
            ),
            (
                InputFormat::Csv,
                vec![
                    ("a.csv", &b"x,y\n1,\"two\nlines\"\n3,4\n"[..]),
                    ("b.csv", &b"x,y\n5,6\n\"7\n\",8\n"[..]),
                    ("c.csv", &b"x,y\n9,10\n"[..]),
                ],
            ),
        ];
        for (format, files) in cases {
            let inputs = inputs(dir.path(), &files);
            let whole = records(&inputs, format, None);
            assert!(!whole.is_empty());
            for n in 1..=12u32 {
                let mut joined = Vec::new();
                for i in 0..n {
                    joined.extend(records(&inputs, format, Some(Shard::new(i, n).unwrap())));
                }
                assert_eq!(joined, whole, "{format:?} in {n} shards");
            }
        }
    }

    #[test]
    fn compressed_and_csv_files_go_whole_to_one_shard() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"a\nb\nc\n").unwrap();
        let gz = e.finish().unwrap();
        let inputs = inputs(
            dir.path(),
            &[("x.txt", &b"1\n2\n3\n4\n"[..]), ("y.txt.gz", &gz[..])],
        );
        let pieces: Vec<Vec<Piece>> = (0..4)
            .map(|i| plan(&inputs, InputFormat::Lines, Some(Shard::new(i, 4).unwrap())).unwrap())
            .collect();
        let whole_owners: Vec<usize> = (0..4)
            .filter(|&i| pieces[i].iter().any(|p| p.file == 1))
            .collect();
        assert_eq!(whole_owners.len(), 1, "{pieces:?}");
        assert!(
            pieces[whole_owners[0]]
                .iter()
                .any(|p| p.file == 1 && p.range.is_none())
        );
    }

    #[test]
    fn streams_cannot_be_shared_out() {
        let stdin = Inputs::resolve(&[]).unwrap();
        let e = plan(&stdin, InputFormat::Lines, Some(Shard::new(0, 2).unwrap())).unwrap_err();
        assert!(e.contains("stream"), "{e}");
        assert_eq!(plan(&stdin, InputFormat::Lines, None).unwrap().len(), 1);
    }

    #[test]
    fn a_bad_record_mid_file_is_named_by_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = String::new();
        for i in 0..100 {
            body.push_str(&format!("{{\"i\":{i}}}\n"));
        }
        body.push_str("{oops\n");
        let inputs = inputs(dir.path(), &[("bad.jsonl", body.as_bytes())]);
        let last = Shard::new(3, 4).unwrap();
        let pieces = plan(&inputs, InputFormat::Jsonl, Some(last)).unwrap();
        let err = items(&inputs, pieces, InputFormat::Jsonl)
            .find_map(Result::err)
            .unwrap();
        assert_eq!(err.line, 101, "{err}");
        assert!(
            err.to_string().contains("bad.jsonl:101: malformed JSON"),
            "{err}"
        );
    }

    #[test]
    fn a_shard_reads_about_its_share() {
        let dir = tempfile::tempdir().unwrap();
        let line = "x".repeat(99) + "\n";
        let body = line.repeat(10_000);
        let inputs = inputs(dir.path(), &[("big.txt", body.as_bytes())]);
        let before = bytes_read();
        let n = records(&inputs, InputFormat::Lines, Some(Shard::new(2, 8).unwrap())).len();
        let read = bytes_read() - before;
        assert_eq!(n, 1250);
        // Its eighth, plus at most the buffer it read ahead past its end.
        assert!(
            read < body.len() as u64 / 8 + (1 << 16) + 200,
            "read {read}"
        );
    }
}
