//! Reading the job's input: plain lines, JSON Lines or CSV, from a file,
//! stdin or object storage, one item per record, with errors that name the
//! file and line. [`files`] resolves `-i` (globs, prefixes, several files),
//! [`split`] cuts the input into shards' shares.

pub mod files;
pub mod s3;
pub mod split;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// How the input is split into items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// One item per line (the trailing newline is not part of the item).
    Lines,
    /// One JSON value per line; the worker receives it in compact form.
    Jsonl,
    /// CSV with a header; the worker receives each record as a JSON object
    /// keyed by the header's column names.
    Csv,
}

/// A record that could not be read: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The input's name (a path or `<stdin>`).
    pub file: String,
    /// The line, from 1.
    pub line: u64,
    /// What was wrong.
    pub message: String,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for RecordError {}

/// Where items come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Standard input.
    Stdin,
    /// A path: a regular file, or a stream with a name (a FIFO, a character
    /// device, `/dev/stdin`, `/dev/fd/N` from a process substitution).
    File(PathBuf),
}

/// How a source's bytes are compressed, known from its name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// `.gz`.
    Gzip,
    /// `.zst`.
    Zstd,
}

impl Compression {
    /// The compression a file or object name's extension says.
    pub fn of(name: &str) -> Compression {
        match Path::new(name).extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("zst") => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// `raw` decompressed as it is read.
    pub fn decode(self, raw: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Compression::None => raw,
            // Multi-member: `cat a.gz b.gz` is a valid gzip stream.
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                BufReader::with_capacity(1 << 16, raw),
            )),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
        })
    }
}

/// How many `\n` bytes `r` holds.
pub fn count_newlines(r: &mut impl Read) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => n += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl Source {
    /// A name for messages.
    pub fn name(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".into(),
            Source::File(p) => p.display().to_string(),
        }
    }

    fn compression(&self) -> Compression {
        let Source::File(p) = self else {
            return Compression::None;
        };
        Compression::of(&p.to_string_lossy())
    }

    /// Whether the source is a regular file, which can be read twice. Anything
    /// else (stdin, a pipe, a FIFO, a character device, a process
    /// substitution's `/dev/fd/N`) can be read only once.
    pub fn is_regular_file(&self) -> bool {
        match self {
            Source::Stdin => false,
            // `metadata` follows links, so `/dev/stdin` and `/dev/fd/N` are
            // judged by what they point at.
            Source::File(p) => std::fs::metadata(p).is_ok_and(|m| m.is_file()),
        }
    }

    /// An identity for checkpoints: the absolute path of a regular file. A
    /// stream has no lasting name (a process substitution is `/dev/fd/63`
    /// one day and `/dev/fd/62` the next, a pipe has none), so every stream
    /// is the same input here and a resume tells them apart by the
    /// fingerprint of the records already done.
    pub fn identity(&self) -> String {
        match self {
            Source::File(p) if self.is_regular_file() => std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
            _ => "<stream>".into(),
        }
    }

    /// Checks that the source can be read, without reading it: a stream
    /// is only looked up (opening a FIFO would wait for its writer, and
    /// closing it again would end the writer's stream).
    pub fn check(&self) -> io::Result<()> {
        match self {
            Source::Stdin => Ok(()),
            Source::File(p) if self.is_regular_file() => File::open(p).map(drop),
            Source::File(p) => std::fs::metadata(p).map(drop),
        }
    }

    /// Opens the source for reading, decompressing `.gz` and `.zst` as it
    /// is read.
    #[cfg(test)]
    pub fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        let raw: Box<dyn Read + Send> = match self {
            Source::Stdin => Box::new(io::stdin()),
            Source::File(p) => Box::new(File::open(p)?),
        };
        self.compression().decode(raw)
    }

    /// How many records the source holds (newline count, minus a CSV
    /// header), counted ahead for the progress bar. Only an uncompressed
    /// regular file is counted: reading anything else ahead would either
    /// consume it (a stream is read once, and the job would then see no
    /// records) or cost a second decompression. `None` otherwise.
    pub fn count_records(&self, format: InputFormat) -> Option<u64> {
        let Source::File(p) = self else { return None };
        if !self.is_regular_file() || self.compression() != Compression::None {
            return None;
        }
        let mut r = BufReader::with_capacity(1 << 20, File::open(p).ok()?);
        let (mut lines, mut last) = (0u64, b'\n');
        loop {
            let buf = r.fill_buf().ok()?;
            if buf.is_empty() {
                break;
            }
            lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
            last = buf[buf.len() - 1];
            let n = buf.len();
            r.consume(n);
        }
        if last != b'\n' {
            lines += 1;
        }
        Some(match format {
            InputFormat::Csv => lines.saturating_sub(1),
            _ => lines,
        })
    }
}

/// The items of `source`, each a line to hand to a worker (the job reads
/// through [`split::items`]).
#[cfg(test)]
pub fn items(
    source: &Source,
    format: InputFormat,
) -> io::Result<Box<dyn Iterator<Item = Result<String, RecordError>> + Send>> {
    let name = source.name();
    let reader = source.open()?;
    Ok(match format {
        InputFormat::Lines => Box::new(Lines::new(reader, name, false)),
        InputFormat::Jsonl => Box::new(Lines::new(reader, name, true)),
        InputFormat::Csv => Box::new(csv_items(reader, name)),
    })
}

/// Counts the lines of a file before the byte where a shard's share of it
/// starts, to name the line of a bad record (only then is it called).
type LinesBefore = Box<dyn FnOnce() -> io::Result<u64> + Send>;

struct Lines {
    reader: BufReader<Box<dyn Read + Send>>,
    name: String,
    /// Lines read so far.
    line: u64,
    json: bool,
    done: bool,
    buf: Vec<u8>,
    /// The byte offset of the next line in the file.
    pos: u64,
    /// No line starting at or past this offset is read.
    limit: u64,
    /// Lines in the file before the first one read: known, or counted when
    /// an error needs it.
    lines_before: Result<u64, Option<LinesBefore>>,
}

impl Lines {
    fn new(reader: Box<dyn Read + Send>, name: String, json: bool) -> Self {
        Lines::ranged(reader, name, json, 0, u64::MAX, Ok(0))
    }

    /// Lines of `reader`, which starts at line start `pos` of the file,
    /// up to (not including) the first line that starts at `limit` or later.
    fn ranged(
        reader: impl Read + Send + 'static,
        name: String,
        json: bool,
        pos: u64,
        limit: u64,
        lines_before: Result<u64, Option<LinesBefore>>,
    ) -> Self {
        Lines {
            reader: BufReader::with_capacity(1 << 16, Box::new(reader)),
            name,
            line: 0,
            json,
            done: false,
            buf: Vec::new(),
            pos,
            limit,
            lines_before,
        }
    }

    fn error(&mut self, message: String) -> Option<Result<String, RecordError>> {
        self.done = true;
        let before = match std::mem::replace(&mut self.lines_before, Err(None)) {
            Ok(n) => Ok(n),
            Err(Some(count)) => count(),
            Err(None) => Err(io::Error::other("not counted")),
        };
        Some(Err(match before {
            Ok(n) => RecordError {
                file: self.name.clone(),
                line: n + self.line,
                message,
            },
            Err(e) => RecordError {
                file: self.name.clone(),
                line: 0,
                message: format!(
                    "{message} (in the line that starts at byte {}; counting the lines before it failed: {e})",
                    self.pos.saturating_sub(self.buf.len() as u64)
                ),
            },
        }))
    }
}

impl Iterator for Lines {
    type Item = Result<String, RecordError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done || self.pos >= self.limit {
                return None;
            }
            self.buf.clear();
            self.line += 1;
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(n) => self.pos += n as u64,
                Err(e) => return self.error(format!("cannot read: {e}")),
            }
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
            }
            let text = match std::str::from_utf8(&self.buf) {
                Ok(t) => t.to_owned(),
                Err(e) => return self.error(format!("not valid UTF-8 ({e})")),
            };
            if !self.json {
                return Some(Ok(text));
            }
            if text.trim().is_empty() {
                // Blank lines in JSON Lines carry no record.
                continue;
            }
            return match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(v) => Some(Ok(v.to_string())),
                Err(e) => self.error(format!("malformed JSON: {e}")),
            };
        }
    }
}

fn csv_items(
    reader: Box<dyn Read + Send>,
    name: String,
) -> impl Iterator<Item = Result<String, RecordError>> + Send {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(reader);
    let (headers, mut header_error) = match rdr.headers().cloned() {
        Ok(h) => (Some(h), None),
        Err(e) => (None, Some(e)),
    };
    let mut records = rdr.into_records();
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        if let Some(e) = header_error.take() {
            failed = true;
            return Some(Err(RecordError {
                file: name.clone(),
                line: 1,
                message: format!("cannot read the CSV header: {e}"),
            }));
        }
        let headers = headers.as_ref()?;
        let rec = records.next()?;
        Some(match rec {
            Ok(rec) => {
                // Written by hand to keep the header's column order
                // (serde_json's map would sort the keys).
                let mut obj = String::from("{");
                for (i, (k, v)) in headers.iter().zip(rec.iter()).enumerate() {
                    if i > 0 {
                        obj.push(',');
                    }
                    obj.push_str(&serde_json::Value::from(k).to_string());
                    obj.push(':');
                    obj.push_str(&serde_json::Value::from(v).to_string());
                }
                obj.push('}');
                Ok(obj)
            }
            Err(e) => {
                failed = true;
                let line = e.position().map_or(0, |p| p.line());
                Err(RecordError {
                    file: name.clone(),
                    line,
                    message: format!("malformed CSV record: {e}"),
                })
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, format: InputFormat) -> Vec<Result<String, RecordError>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.txt");
        std::fs::write(&p, text).unwrap();
        items(&Source::File(p), format).unwrap().collect()
    }

    #[test]
    fn lines_keep_their_text_without_newlines() {
        let out = read("a\r\nb b\n\nc", InputFormat::Lines);
        let out: Vec<_> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(out, vec!["a", "b b", "", "c"]);
    }

    #[test]
    fn malformed_json_names_the_line() {
        let out = read("{\"a\":1}\n\n[1, 2]\n{oops\n3\n", InputFormat::Jsonl);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].as_ref().unwrap(), "{\"a\":1}");
        assert_eq!(out[1].as_ref().unwrap(), "[1,2]");
        let e = out[2].as_ref().unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.to_string().contains("in.txt:4: malformed JSON"), "{e}");
    }

    #[test]
    fn csv_records_become_json_objects_and_bad_rows_are_named() {
        let out = read("y,x\n1,\"2, \"\"3\"\"\"\n3,4,5\n6,7\n", InputFormat::Csv);
        assert_eq!(out.len(), 2);
        // The header's column order, values as JSON strings.
        assert_eq!(out[0].as_ref().unwrap(), r#"{"y":"1","x":"2, \"3\""}"#);
        let e = out[1].as_ref().unwrap_err();
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin");
        std::fs::write(&p, b"ok\n\xff\xfe\n").unwrap();
        let out: Vec<_> = items(&Source::File(p), InputFormat::Lines)
            .unwrap()
            .collect();
        assert_eq!(out[0].as_ref().unwrap(), "ok");
        assert_eq!(out[1].as_ref().unwrap_err().line, 2);
    }

    #[test]
    fn records_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n");
        std::fs::write(&p, "a\nb\nc").unwrap();
        assert_eq!(
            Source::File(p.clone()).count_records(InputFormat::Lines),
            Some(3)
        );
        assert_eq!(Source::File(p).count_records(InputFormat::Csv), Some(2));
        assert_eq!(Source::Stdin.count_records(InputFormat::Lines), None);
    }

    #[test]
    fn compressed_files_are_decompressed_and_not_counted_ahead() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let text = "a\nb\nc\n";
        let gz = dir.path().join("in.txt.gz");
        // Two gzip members: `cat a.gz b.gz` is one valid stream.
        let mut bytes = Vec::new();
        for part in ["a\nb\n", "c\n"] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part.as_bytes()).unwrap();
            bytes.extend(e.finish().unwrap());
        }
        std::fs::write(&gz, bytes).unwrap();
        let zst = dir.path().join("in.txt.zst");
        std::fs::write(&zst, zstd::encode_all(text.as_bytes(), 1).unwrap()).unwrap();
        for p in [gz, zst] {
            let src = Source::File(p);
            assert_eq!(src.count_records(InputFormat::Lines), None);
            let out: Vec<_> = items(&src, InputFormat::Lines)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(out, vec!["a", "b", "c"]);
        }
    }

    #[test]
    fn a_fifo_is_not_read_ahead_and_has_a_stream_identity() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let src = Source::File(fifo.clone());
        // Counting would block on (and then consume) the FIFO.
        assert_eq!(src.count_records(InputFormat::Lines), None);
        assert_eq!(src.identity(), "<stream>");
        let writer = std::thread::spawn(move || std::fs::write(fifo, "x\ny\n").unwrap());
        let out: Vec<_> = items(&src, InputFormat::Lines)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        writer.join().unwrap();
        assert_eq!(out, vec!["x", "y"]);
    }
}
