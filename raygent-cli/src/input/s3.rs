//! Input from object storage: one object, or every object matching a glob,
//! streamed (never downloaded whole), from any byte offset.

use std::io::{self, Read};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use raygent_savers::Location;

/// How often a read that fails half-way through an object is restarted
/// (from where it stopped) before the error is reported.
const READ_RETRIES: u32 = 5;

/// The runtime every input request runs on: an S3 client's connections
/// belong to the runtime that opened them, so listing, sizing and reading
/// all use this one.
pub fn runtime() -> io::Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("raygent-input")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| io::Error::other(format!("cannot start the input runtime: {e}")))
}

/// One object: its store, its path in the store and its URL.
#[derive(Clone)]
pub struct Object {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// `s3://bucket/key`, for messages.
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object")
            .field("url", &self.url)
            .field("size", &self.size)
            .finish()
    }
}

fn store_error(url: &str, what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what} {url}: {e}"))
}

/// `s3://bucket/rest` split into the bucket and the rest.
fn split_url(url: &str) -> io::Result<(String, String)> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other(format!("{url} is not an s3:// URL")))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(io::Error::other(format!(
            "{url} has no bucket: expected s3://bucket/key"
        )));
    }
    Ok((bucket.to_owned(), key.to_owned()))
}

fn bucket_store(bucket: &str) -> io::Result<Arc<dyn ObjectStore>> {
    let loc = Location::parse(&format!("s3://{bucket}")).map_err(io::Error::other)?;
    Ok(Arc::clone(loc.store()))
}

/// Whether `s` holds glob characters.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// The objects `url` names: one object (`s3://bucket/key`), every object
/// under a prefix (`s3://bucket/prefix/`), or every object whose key
/// matches a glob (`s3://bucket/prefix/*.jsonl`; `*` stays inside one
/// `/`-separated level, `**` crosses levels), in key order.
pub fn resolve(url: &str) -> io::Result<Vec<Object>> {
    let rt = runtime()?;
    let (bucket, key) = split_url(url)?;
    let store = bucket_store(&bucket)?;
    let object = |location: Path, size: u64| Object {
        store: Arc::clone(&store),
        url: format!("s3://{bucket}/{location}"),
        path: location,
        size,
    };
    if !is_glob(&key) && !key.is_empty() && !key.ends_with('/') {
        let path = Path::from(key.as_str());
        let meta = rt
            .block_on(store.head(&path))
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no object {url} (check the bucket and the key; a prefix needs a trailing / or a glob like {url}/*)"),
                ),
                e => store_error(url, "cannot read", e),
            })?;
        return Ok(vec![object(path, meta.size)]);
    }
    let (listed_prefix, matcher) = if is_glob(&key) {
        let literal = &key[..key.find(['*', '?', '[', '{']).unwrap_or(key.len())];
        let dir = literal.rfind('/').map_or("", |i| &literal[..i]);
        let glob = globset::GlobBuilder::new(&key)
            .literal_separator(true)
            .build()
            .map_err(|e| io::Error::other(format!("bad glob in {url}: {e}")))?
            .compile_matcher();
        (dir.to_owned(), Some(glob))
    } else {
        (key.trim_end_matches('/').to_owned(), None)
    };
    let prefix = (!listed_prefix.is_empty()).then(|| Path::from(listed_prefix.as_str()));
    let listed: Vec<object_store::ObjectMeta> = rt
        .block_on(async {
            let mut out = Vec::new();
            let mut stream = store.list(prefix.as_ref());
            while let Some(meta) = stream.next().await {
                out.push(meta?);
            }
            Ok::<_, object_store::Error>(out)
        })
        .map_err(|e| store_error(url, "cannot list", e))?;
    let mut found: Vec<Object> = listed
        .into_iter()
        .filter(|m| {
            matcher
                .as_ref()
                .is_none_or(|g| g.is_match(m.location.as_ref()))
        })
        .map(|m| object(m.location, m.size))
        .collect();
    found.sort_by(|a, b| a.path.as_ref().cmp(b.path.as_ref()));
    if found.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no objects match {url}"),
        ));
    }
    Ok(found)
}

impl Object {
    /// A reader of the object's bytes from `offset` on, streamed.
    pub fn open_at(&self, offset: u64) -> io::Result<ObjectReader> {
        let mut r = ObjectReader {
            object: self.clone(),
            pos: offset,
            stream: None,
            buf: Bytes::new(),
            failures: 0,
        };
        if offset < self.size {
            r.connect()?;
        }
        Ok(r)
    }

    /// How many `\n` the object holds before byte `end` (to name the line
    /// of a bad record found by a shard that started reading mid-object).
    pub fn count_newlines(&self, end: u64) -> io::Result<u64> {
        let mut r = self.open_at(0)?.take(end);
        super::count_newlines(&mut r)
    }
}

/// Streams an object's bytes; a read that breaks off is restarted from
/// where it stopped, a few times.
pub struct ObjectReader {
    object: Object,
    pos: u64,
    stream: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    buf: Bytes,
    failures: u32,
}

impl ObjectReader {
    fn connect(&mut self) -> io::Result<()> {
        let rt = runtime()?;
        let opts = GetOptions {
            range: Some(GetRange::Offset(self.pos)),
            ..GetOptions::default()
        };
        let got = rt
            .block_on(self.object.store.get_opts(&self.object.path, opts))
            .map_err(|e| store_error(&self.object.url, "cannot read", e))?;
        self.stream = Some(got.into_stream());
        Ok(())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.buf.is_empty() {
                let n = self.buf.len().min(out.len());
                out[..n].copy_from_slice(&self.buf[..n]);
                self.buf = self.buf.slice(n..);
                self.pos += n as u64;
                return Ok(n);
            }
            if self.pos >= self.object.size {
                return Ok(0);
            }
            if self.stream.is_none() {
                self.connect()?;
            }
            let rt = runtime()?;
            let Some(stream) = self.stream.as_mut() else {
                return Ok(0);
            };
            match rt.block_on(stream.next()) {
                Some(Ok(bytes)) => {
                    self.failures = 0;
                    self.buf = bytes;
                }
                Some(Err(e)) => {
                    self.stream = None;
                    self.failures += 1;
                    if self.failures > READ_RETRIES {
                        return Err(store_error(
                            &self.object.url,
                            &format!("reading at byte {} of", self.pos),
                            e,
                        ));
                    }
                    tracing::warn!(url = self.object.url, pos = self.pos, %e, "input read broke off; reading on from there");
                }
                None => {
                    // The object ended early (replaced while being read?).
                    return Err(io::Error::other(format!(
                        "{} ended at byte {}, but it had {} bytes when the job started (was it replaced?)",
                        self.object.url, self.pos, self.object.size
                    )));
                }
            }
        }
    }
}
