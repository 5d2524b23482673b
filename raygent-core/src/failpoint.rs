//! A test hook that freezes the process at a named point, so crash tests
//! can kill it exactly there (in the middle of a multipart upload, between
//! a checkpoint's data and its commit, ...).

#[cfg(feature = "failpoints")]
use std::sync::OnceLock;
#[cfg(feature = "failpoints")]
use std::sync::atomic::{AtomicU64, Ordering};

/// The armed point's name and the hit at which it fires.
#[cfg(feature = "failpoints")]
static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
#[cfg(feature = "failpoints")]
static HITS: AtomicU64 = AtomicU64::new(0);

/// A named point where a crash test can freeze the process (feature
/// `failpoints`, compiled in only for tests; without it this is an empty
/// function the compiler removes).
///
/// If the environment variable `RAYGENT_FAILPOINT` is `name` (or `name:N`,
/// meaning the N-th time this point is reached, from 1), writes
/// `RAYGENT_FAILPOINT <name>` on stderr and blocks this thread forever (the
/// test then kills the process). Otherwise does nothing; after the first
/// call the check is one comparison.
#[cfg(feature = "failpoints")]
pub fn failpoint(name: &str) {
    let armed = ARMED.get_or_init(|| {
        let v = std::env::var("RAYGENT_FAILPOINT").ok()?;
        match v.split_once(':') {
            Some((n, k)) => Some((n.to_owned(), k.parse().unwrap_or(1))),
            None => Some((v, 1)),
        }
    });
    if let Some((point, nth)) = armed
        && point == name
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth
    {
        eprintln!("RAYGENT_FAILPOINT {name}");
        loop {
            std::thread::park();
        }
    }
}

/// A named point where a crash test can freeze the process: a no-op, as
/// this build does not have the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn failpoint(name: &str) {
    let _ = name;
}
