//! A test hook that freezes the process at a named point, so crash tests
//! can kill it exactly there (in the middle of a multipart upload, between
//! a checkpoint's data and its commit, ...).

use std::sync::OnceLock;

static ARMED: OnceLock<Option<String>> = OnceLock::new();

/// If the environment variable `RAYGENT_FAILPOINT` equals `name`, writes
/// `RAYGENT_FAILPOINT <name>` on stderr and blocks this thread forever
/// (the test then kills the process). Otherwise does nothing; the check is
/// one atomic load after the first call.
#[doc(hidden)]
pub fn failpoint(name: &str) {
    let armed = ARMED.get_or_init(|| std::env::var("RAYGENT_FAILPOINT").ok());
    if armed.as_deref() == Some(name) {
        eprintln!("RAYGENT_FAILPOINT {name}");
        loop {
            std::thread::park();
        }
    }
}
