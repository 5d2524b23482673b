//! Destinations: a URL turned into an object store and a prefix inside it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::Error;

/// S3 settings that override the standard AWS environment variables.
///
/// Every field left `None` comes from the environment (`AWS_ENDPOINT_URL` or
/// `AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`), or from
/// object_store's defaults.
///
/// Requests that fail with a connection error, a 5xx or a 429 are retried
/// with exponential backoff for at most [`retry_timeout`](Self::with_retry_timeout)
/// (20 s by default): a short outage is ridden through, a long one fails.
///
/// ```
/// use raygent_savers::S3Options;
/// let opts = S3Options::default()
///     .with_endpoint("http://127.0.0.1:9000")
///     .with_allow_http(true)
///     .with_region("us-east-1");
/// assert_eq!(opts.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Options {
    /// The endpoint URL (for MinIO, moto, s3s, ...).
    pub endpoint: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
    /// A session token for temporary credentials.
    pub session_token: Option<String>,
    /// Whether a plain `http://` endpoint is allowed.
    pub allow_http: Option<bool>,
    /// How long a failing request is retried before the error is returned
    /// (default 20 s).
    pub retry_timeout: Option<Duration>,
    /// How many times a failing request is retried at most (default 10).
    pub max_retries: Option<usize>,
    /// The timeout of one request (default: `AWS_TIMEOUT` or object_store's
    /// 30 s; an upload of one multipart piece is one request).
    pub request_timeout: Option<Duration>,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redact(&self.secret_access_key))
            .field("session_token", &redact(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field("retry_timeout", &self.retry_timeout)
            .field("max_retries", &self.max_retries)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl S3Options {
    /// Sets the endpoint URL.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }
    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }
    /// Sets the access key id.
    pub fn with_access_key_id(mut self, key: impl Into<String>) -> Self {
        self.access_key_id = Some(key.into());
        self
    }
    /// Sets the secret access key.
    pub fn with_secret_access_key(mut self, secret: impl Into<String>) -> Self {
        self.secret_access_key = Some(secret.into());
        self
    }
    /// Sets the session token.
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }
    /// Allows (or forbids) a plain `http://` endpoint.
    pub fn with_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = Some(allow);
        self
    }
    /// Sets how long a failing request is retried.
    pub fn with_retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = Some(timeout);
        self
    }
    /// Sets how many times a failing request is retried at most.
    pub fn with_max_retries(mut self, retries: usize) -> Self {
        self.max_retries = Some(retries);
        self
    }
    /// Sets the timeout of a single request.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }
}

/// The default for [`S3Options::retry_timeout`].
#[cfg(feature = "s3")]
const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(20);
#[cfg(feature = "s3")]
const DEFAULT_MAX_RETRIES: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Local,
    S3,
    Memory,
}

/// Where a dataset (or a checkpoint directory) lives: an object store, a
/// prefix inside it, and the URL it was opened from.
///
/// ```
/// use raygent_savers::Location;
/// let loc = Location::parse("memory://docs-example/run-1").unwrap();
/// assert_eq!(loc.url(), "memory://docs-example/run-1");
/// assert_eq!(loc.prefix().as_ref(), "run-1");
/// let ckpt = loc.child("_checkpoints");
/// assert_eq!(ckpt.url(), "memory://docs-example/run-1/_checkpoints");
/// assert!(Location::parse("ftp://host/x").is_err());
/// ```
#[derive(Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
    kind: Kind,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Location")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("store", &self.store.to_string())
            .finish()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

fn memory_stores() -> &'static Mutex<HashMap<String, Arc<InMemory>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

impl Location {
    /// Opens `url` with S3 settings from the environment only.
    ///
    /// Accepted: a local path (relative or absolute) or `file:///path` (the
    /// directory is created; writes are fsynced), `s3://bucket/prefix`, and
    /// `memory://name/prefix` (an in-process store: the same name returns the
    /// same store for the life of the process).
    pub fn parse(url: &str) -> Result<Location, Error> {
        Location::parse_with(url, &S3Options::default())
    }

    /// Opens `url` for reading: like [`parse`](Self::parse), but a local
    /// directory that does not exist is [`Error::Missing`] instead of
    /// being created (reading a mistyped path must not leave a directory).
    pub fn parse_existing(url: &str) -> Result<Location, Error> {
        Location::parse_existing_with(url, &S3Options::default())
    }

    /// [`parse_existing`](Self::parse_existing) with explicit S3 settings.
    pub fn parse_existing_with(url: &str, s3: &S3Options) -> Result<Location, Error> {
        let local = match url.split_once("://") {
            None => Some(std::path::PathBuf::from(url)),
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("file") => url::Url::parse(url)
                .ok()
                .and_then(|u| u.to_file_path().ok()),
            Some(_) => None,
        };
        if let Some(dir) = local
            && !url.trim().is_empty()
            && !dir.is_dir()
        {
            return Err(Error::Missing {
                url: url.to_owned(),
            });
        }
        Location::parse_with(url, s3)
    }

    /// Opens `url`, with `s3` overriding the AWS environment variables for
    /// `s3://` URLs.
    pub fn parse_with(url: &str, s3: &S3Options) -> Result<Location, Error> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        if url.trim().is_empty() {
            return Err(invalid("the location is empty".into()));
        }
        let Some((scheme, _)) = url.split_once("://") else {
            return Location::local(std::path::Path::new(url));
        };
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "file" | "s3" | "s3a" | "memory" => {}
            _ => {
                return Err(Error::UnknownScheme {
                    url: url.to_owned(),
                    scheme,
                });
            }
        }
        let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        let path = parsed.path().trim_matches('/');
        let prefix = Path::from_url_path(path).map_err(|e| invalid(e.to_string()))?;
        match scheme.as_str() {
            "file" => {
                let p = parsed
                    .to_file_path()
                    .map_err(|()| invalid("not a local file path".into()))?;
                Location::local(&p)
            }
            "memory" => {
                let name = parsed.host_str().unwrap_or_default().to_owned();
                let store = {
                    let mut stores = memory_stores().lock().unwrap_or_else(|e| e.into_inner());
                    Arc::clone(stores.entry(name.clone()).or_default())
                };
                Ok(Location {
                    store,
                    url: join_url(&format!("memory://{name}"), prefix.as_ref()),
                    prefix,
                    kind: Kind::Memory,
                })
            }
            _ => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| invalid("no bucket: expected s3://bucket/prefix".into()))?
                    .to_owned();
                let store = s3_store(url, &bucket, s3)?;
                Ok(Location {
                    store,
                    url: join_url(&format!("s3://{bucket}"), prefix.as_ref()),
                    prefix,
                    kind: Kind::S3,
                })
            }
        }
    }

    fn local(dir: &std::path::Path) -> Result<Location, Error> {
        let local_err = |source| Error::LocalDir {
            path: dir.to_owned(),
            source,
        };
        let dir = std::path::absolute(dir).map_err(local_err)?;
        std::fs::create_dir_all(&dir).map_err(local_err)?;
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| Error::LocalDir {
                path: dir.clone(),
                source: std::io::Error::other(e),
            })?
            .with_fsync(true);
        let url = format!("file://{}", dir.display());
        Ok(Location {
            store: Arc::new(store),
            prefix: Path::default(),
            url,
            kind: Kind::Local,
        })
    }

    /// A location over an existing store (for stores this crate does not
    /// open by URL). `url` is only used in messages and `describe()`.
    pub fn from_store(store: Arc<dyn ObjectStore>, prefix: Path, url: impl Into<String>) -> Self {
        Location {
            store,
            prefix,
            url: url.into(),
            kind: Kind::Memory,
        }
    }

    /// The directory on local disk, for a local location.
    pub fn local_dir(&self) -> Option<std::path::PathBuf> {
        match self.kind {
            Kind::Local => self
                .url
                .strip_prefix("file://")
                .map(std::path::PathBuf::from),
            _ => None,
        }
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The prefix of every object of this location inside [`store`](Self::store).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The URL, normalised (`file:///abs/path`, `s3://bucket/prefix`,
    /// `memory://name/prefix`), without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The location `name` inside this one (`name` may hold `/`).
    pub fn child(&self, name: &str) -> Location {
        Location {
            store: Arc::clone(&self.store),
            prefix: self.path(name),
            url: join_url(&self.url, name.trim_matches('/')),
            kind: self.kind,
        }
    }

    /// The full path in the store of the object `name` (relative to this
    /// location; `name` may hold `/`).
    pub fn path(&self, name: &str) -> Path {
        name.split('/')
            .filter(|s| !s.is_empty())
            .fold(self.prefix.clone(), |p, part| p.join(part))
    }

    /// The name of `path` relative to this location, if it lies inside it.
    pub fn relative(&self, path: &Path) -> Option<String> {
        let parts = path.prefix_match(&self.prefix)?;
        let names: Vec<String> = parts.map(|p| p.as_ref().to_owned()).collect();
        Some(names.join("/"))
    }

    /// Writes and deletes a small probe object, so that a missing bucket,
    /// wrong credentials, an unreachable endpoint or a read-only directory is
    /// reported before any work is done.
    pub async fn check_writable(&self) -> Result<(), Error> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let probe = self.path(&format!("_raygent_probe-{}-{nanos}", std::process::id()));
        let fail = |source: object_store::Error| Error::NotWritable {
            url: self.url.clone(),
            hint: self.hint(&source),
            source: Box::new(source),
        };
        self.store
            .put(&probe, bytes::Bytes::from_static(b"raygent").into())
            .await
            .map_err(fail)?;
        self.store.delete(&probe).await.map_err(fail)?;
        Ok(())
    }

    fn hint(&self, e: &object_store::Error) -> String {
        use object_store::Error as E;
        let generic = match self.kind {
            Kind::S3 => {
                "check the bucket name, the credentials (AWS_ACCESS_KEY_ID, \
                 AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the endpoint and region \
                 (AWS_ENDPOINT_URL, AWS_REGION; AWS_ALLOW_HTTP=true for an http:// endpoint)"
            }
            Kind::Local => {
                "check that the directory exists and is writable, and the disk is not full"
            }
            Kind::Memory => "the in-memory store refused a write",
        };
        let text = e.to_string();
        match (self.kind, e) {
            (Kind::S3, E::NotFound { .. }) => {
                "the bucket does not exist: create it first, or check the bucket name, \
                 endpoint and region (AWS_ENDPOINT_URL, AWS_REGION)"
                    .into()
            }
            (Kind::S3, E::PermissionDenied { .. } | E::Unauthenticated { .. }) => {
                "the credentials were refused: check AWS_ACCESS_KEY_ID, \
                 AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, and the bucket's policy"
                    .into()
            }
            (Kind::S3, _) if text.contains("builder error") => {
                "the endpoint uses plain http://: allow it with AWS_ALLOW_HTTP=true \
                 (or S3Options::with_allow_http)"
                    .into()
            }
            (Kind::S3, _) if text.contains("error sending request") => {
                format!("the endpoint could not be reached; {generic}")
            }
            _ => generic.into(),
        }
    }
}

fn join_url(base: &str, rest: &str) -> String {
    if rest.is_empty() {
        base.trim_end_matches('/').to_owned()
    } else {
        format!("{}/{rest}", base.trim_end_matches('/'))
    }
}

#[cfg(not(feature = "s3"))]
fn s3_store(url: &str, _: &str, _: &S3Options) -> Result<Arc<dyn ObjectStore>, Error> {
    Err(Error::FeatureDisabled {
        url: url.to_owned(),
        feature: "s3",
    })
}

#[cfg(feature = "s3")]
fn s3_store(url: &str, bucket: &str, o: &S3Options) -> Result<Arc<dyn ObjectStore>, Error> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::{BackoffConfig, ClientConfigKey, RetryConfig};
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(v) = &o.endpoint {
        b = b.with_endpoint(v);
    }
    if let Some(v) = &o.region {
        b = b.with_region(v);
    }
    if let Some(v) = &o.access_key_id {
        b = b.with_access_key_id(v);
    }
    if let Some(v) = &o.secret_access_key {
        b = b.with_secret_access_key(v);
    }
    if let Some(v) = &o.session_token {
        b = b.with_token(v);
    }
    if let Some(v) = o.allow_http {
        b = b.with_allow_http(v);
    }
    let retry_timeout = o.retry_timeout.unwrap_or(DEFAULT_RETRY_TIMEOUT);
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: (retry_timeout / 4)
                .clamp(Duration::from_millis(100), Duration::from_secs(5)),
            base: 2.0,
        },
        max_retries: o.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
        retry_timeout,
    };
    b = b.with_retry(retry);
    // Set through a config key, not `with_client_options`, which would drop
    // the client settings `from_env` read.
    if let Some(t) = o.request_timeout {
        b = b.with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            format!("{}ms", t.as_millis()),
        );
    }
    match b.build() {
        Ok(store) => Ok(Arc::new(store)),
        Err(source) => Err(Error::Config {
            url: url.to_owned(),
            source: Box::new(source),
        }),
    }
}
