//! Test support shared by raygent's test suites: a real S3-compatible server
//! (moto) on 127.0.0.1, started once per test process.
//!
//! Tests never mock S3. If `RAYGENT_TEST_S3_ENDPOINT` is set (for example by
//! `.ci/run`), that server is used; otherwise `moto_server` is started on a
//! free port. Each caller gets a fresh bucket so tests do not see each
//! other's objects.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};

/// The access key the test server accepts (moto accepts any).
pub const ACCESS_KEY: &str = "testing";
/// The secret key the test server accepts (moto accepts any).
pub const SECRET_KEY: &str = "testing";
/// The region used against the test server.
pub const REGION: &str = "us-east-1";

/// A running S3-compatible server on loopback.
#[derive(Debug)]
pub struct S3Server {
    endpoint: String,
    child: Mutex<Option<Child>>,
}

static SERVER: OnceLock<Result<S3Server, String>> = OnceLock::new();
static BUCKETS: AtomicU64 = AtomicU64::new(0);

impl S3Server {
    /// The shared server of this test process, started on first use.
    ///
    /// # Panics
    /// When no server can be started: S3 tests must run, not be skipped.
    pub fn shared() -> &'static S3Server {
        match SERVER.get_or_init(Self::start) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn start() -> Result<S3Server, String> {
        if let Ok(endpoint) = std::env::var("RAYGENT_TEST_S3_ENDPOINT") {
            return Ok(S3Server {
                endpoint,
                child: Mutex::new(None),
            });
        }
        let port = free_port()?;
        let (tx, rx) = mpsc::channel();
        // The child is spawned from a thread that lives as long as the test
        // process, so PR_SET_PDEATHSIG (which fires when the spawning
        // *thread* exits) kills moto exactly when the test process ends.
        std::thread::Builder::new()
            .name("moto-owner".into())
            .spawn(move || {
                let spawned = spawn_moto(port);
                let ok = spawned.is_ok();
                let _ = tx.send(spawned);
                if ok {
                    loop {
                        std::thread::park();
                    }
                }
            })
            .map_err(|e| format!("cannot start the moto owner thread: {e}"))?;
        let child = rx
            .recv()
            .map_err(|e| format!("moto owner thread died: {e}"))??;
        Ok(S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Mutex::new(Some(child)),
        })
    }

    /// The server's URL, like `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Creates a new, empty bucket with a unique name and returns its name.
    pub fn new_bucket(&self, prefix: &str) -> String {
        let n = BUCKETS.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}-{}-{n}", std::process::id()).to_lowercase();
        self.create_bucket(&name);
        name
    }

    /// Creates `bucket` with a plain HTTP PUT (moto needs no signature).
    ///
    /// # Panics
    /// If the server refuses.
    pub fn create_bucket(&self, bucket: &str) {
        let status = http_request(&self.endpoint, "PUT", &format!("/{bucket}"))
            .unwrap_or_else(|e| panic!("creating bucket {bucket} at {}: {e}", self.endpoint));
        assert!(
            (200..300).contains(&status),
            "creating bucket {bucket} at {}: HTTP {status}",
            self.endpoint
        );
    }

    /// Environment variables that point an AWS client at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// Kills the server (for outage tests on a private server); the shared
    /// one must not be stopped.
    pub fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts a private moto server that the caller owns and may kill.
///
/// # Panics
/// If moto cannot start.
pub fn private_s3_server() -> S3Server {
    private_s3_server_with_env(&[])
}

/// Starts a private moto server with extra environment variables, e.g.
/// `INITIAL_NO_AUTH_ACTION_COUNT=0`, which makes moto check credentials.
///
/// # Panics
/// If moto cannot start.
pub fn private_s3_server_with_env(env: &[(&str, &str)]) -> S3Server {
    let port = free_port().unwrap_or_else(|e| panic!("{e}"));
    let child = spawn_moto_with(port, env).unwrap_or_else(|e| panic!("{e}"));
    S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        child: Mutex::new(Some(child)),
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("reading the free port: {e}"))
}

fn spawn_moto(port: u16) -> Result<Child, String> {
    spawn_moto_with(port, &[])
}

fn spawn_moto_with(port: u16, env: &[(&str, &str)]) -> Result<Child, String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("moto_server");
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc_prctl_pdeathsig();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "cannot start moto_server ({e}); install it with `pip install 'moto[server]'` \
             or set RAYGENT_TEST_S3_ENDPOINT"
        )
    })?;
    let stderr = child.stderr.take().ok_or("moto stderr not captured")?;
    let (tx, rx) = mpsc::channel();
    // Wait for the "Running on" line, then keep draining stderr (moto logs
    // every request there; a full pipe would stall it).
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let mut tx = Some(tx);
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(t) = tx.as_ref() {
                seen.push(line.clone());
                if line.contains("Running on") {
                    let _ = t.send(Ok(()));
                    tx = None;
                }
            }
        }
        if let Some(t) = tx {
            let _ = t.send(Err(seen.join("\n")));
        }
    });
    match rx.recv() {
        Ok(Ok(())) => Ok(child),
        Ok(Err(out)) => Err(format!("moto_server exited before serving:\n{out}")),
        Err(_) => Err("moto_server's stderr reader died".into()),
    }
}

fn libc_prctl_pdeathsig() {
    const PR_SET_PDEATHSIG: i32 = 1;
    const SIGKILL: u64 = 9;
    unsafe extern "C" {
        fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
    }
    // SAFETY: plain syscall wrapper with integer arguments.
    unsafe {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    }
}

/// Sends a bodyless HTTP/1.1 request and returns the status code.
pub fn http_request(endpoint: &str, method: &str, path: &str) -> Result<u16, String> {
    http_exchange(endpoint, method, path).map(|(code, _)| code)
}

/// Sends a bodyless HTTP/1.1 request and returns the status code and the
/// whole response (headers and body) as text.
pub fn http_exchange(endpoint: &str, method: &str, path: &str) -> Result<(u16, String), String> {
    let hostport = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| format!("endpoint {endpoint} is not http://"))?
        .trim_end_matches('/');
    let mut s =
        TcpStream::connect(hostport).map_err(|e| format!("connecting to {hostport}: {e}"))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("unreadable HTTP response: {resp:.200}"))?;
    Ok((code, resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_server_creates_buckets() {
        let s = S3Server::shared();
        let b = s.new_bucket("fixture");
        assert_eq!(
            http_request(s.endpoint(), "GET", &format!("/{b}")).unwrap(),
            200
        );
    }
}
