//! The internal I/O runtime and thin, error-mapping wrappers over the
//! object store.

use std::future::Future;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};

/// A private tokio runtime that runs every store request.
///
/// One worker thread: checkpoint I/O is small and mostly waiting, and the
/// worker lets background saves progress while the caller's thread works.
#[derive(Debug)]
pub(crate) struct Io {
    rt: Option<tokio::runtime::Runtime>,
}

impl Io {
    pub(crate) fn new() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("raygent-ckpt-io")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        Ok(Io { rt: Some(rt) })
    }

    fn rt(&self) -> Result<&tokio::runtime::Runtime> {
        self.rt
            .as_ref()
            .ok_or_else(|| Error::Runtime(std::io::Error::other("the I/O runtime is shut down")))
    }

    /// Runs `f` to completion on the runtime, from a plain thread.
    pub(crate) fn block_on<F: Future>(&self, f: F) -> Result<F::Output> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InsideAsyncRuntime);
        }
        Ok(self.rt()?.block_on(f))
    }

    /// Runs `f` in the background.
    pub(crate) fn spawn<F>(&self, f: F) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.rt()?.spawn(f);
        Ok(())
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // Never blocks, so dropping a checkpointer is safe anywhere (even
        // inside another runtime, where dropping a runtime would panic).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// `store/path`, for error messages.
pub(crate) fn loc(store: &dyn ObjectStore, path: &Path) -> String {
    format!("{store}/{path}")
}

/// Writes `bytes` at `path`; `create` makes it a conditional create that
/// fails with `AlreadyExists` when the object exists.
pub(crate) async fn put(
    store: &dyn ObjectStore,
    path: &Path,
    bytes: Bytes,
    create: bool,
) -> Result<(), object_store::Error> {
    let opts = PutOptions {
        mode: if create {
            PutMode::Create
        } else {
            PutMode::Overwrite
        },
        ..PutOptions::default()
    };
    store
        .put_opts(path, PutPayload::from_bytes(bytes), opts)
        .await
        .map(|_| ())
}

/// [`put`] with the error mapped to [`Error::Store`].
pub(crate) async fn put_or_err(store: &dyn ObjectStore, path: &Path, bytes: Bytes) -> Result<()> {
    put(store, path, bytes, false)
        .await
        .map_err(|e| Error::store(loc(store, path), e))
}

/// The object's content, or `None` when it does not exist.
pub(crate) async fn get(store: &dyn ObjectStore, path: &Path) -> Result<Option<Bytes>> {
    let res = match store.get_opts(path, GetOptions::default()).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::store(loc(store, path), e)),
    };
    res.bytes()
        .await
        .map(Some)
        .map_err(|e| Error::store(loc(store, path), e))
}

/// Whether the object exists.
pub(crate) async fn exists(store: &dyn ObjectStore, path: &Path) -> Result<bool> {
    match store
        .get_opts(path, GetOptions::default().with_head(true))
        .await
    {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(Error::store(loc(store, path), e)),
    }
}

/// Deletes the objects, a few at a time, in no particular order (callers
/// delete a commit marker first, alone); a missing object is not an error.
pub(crate) async fn delete(store: &dyn ObjectStore, paths: Vec<Path>) -> Result<()> {
    futures::stream::iter(paths)
        .map(|path| async move {
            let one = futures::stream::iter([Ok(path.clone())]).boxed();
            let res: Result<Vec<Path>, _> = store.delete_stream(one).try_collect().await;
            match res {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(Error::store(loc(store, &path), e)),
            }
        })
        .buffer_unordered(8)
        .try_collect()
        .await
}

/// Every object under `prefix` (recursively).
pub(crate) async fn list(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<Path>> {
    let res: Result<Vec<_>, _> = store
        .list(Some(prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await;
    match res {
        Ok(v) => Ok(v),
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(Error::store(loc(store, prefix), e)),
    }
}

/// The first path segment of `path` below `prefix`, if `path` is below it.
pub(crate) fn first_segment_below(path: &Path, prefix: &Path) -> Option<String> {
    let mut parts = path.prefix_match(prefix)?;
    parts.next().map(|p| p.as_ref().to_owned())
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
