//! The `raygent` command: run a program over many input records on all
//! cores, save the results to a directory or S3, and resume after a crash.
//!
//! See `docs/cli.md` for the reference and the exit codes.

/// `eprintln!` that ignores a failed write: after SIGHUP the terminal may
/// be gone, and `eprintln!` would then panic on the way to the final
/// checkpoint's message.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod cat;
mod cli;
mod commands;
mod input;
mod json_results;
mod k8s;
mod per_item;
mod progress;
mod shard;
mod shard_run;
mod shard_view;
mod slurm;
mod store;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Exit codes, documented in docs/cli.md.
pub mod exit {
    /// The job finished.
    pub const DONE: u8 = 0;
    /// The job failed.
    pub const FAILED: u8 = 1;
    /// Bad usage or bad input.
    pub const USAGE: u8 = 2;
    /// The job finished, but some chunks failed and were skipped.
    pub const SKIPPED: u8 = 3;
    /// `cat` of a sharded job some of whose shards are not done.
    pub const INCOMPLETE: u8 = 4;
    /// Another process runs (or completed) this shard: this one stopped.
    pub const FENCED: u8 = 5;
    /// Interrupted by SIGINT, SIGTERM, SIGHUP or SIGUSR1; rerun the same
    /// command to resume.
    pub const INTERRUPTED: u8 = 130;
}

/// An error carrying the exit code it should produce.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    /// Bad usage or bad input (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: exit::USAGE,
            error: error.into(),
        }
    }
    /// The job failed (exit 1).
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: exit::FAILED,
            error: error.into(),
        }
    }
    /// Any exit code.
    pub fn with_code(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code,
            error: error.into(),
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// An error and its causes, joined by `: `.
///
/// raygent's own errors never repeat their source in their message, so each
/// level is printed once. object_store's errors do print their sources
/// themselves (server reply and all), so the walk stops at the first one.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut cause = error;
    while cause.downcast_ref::<object_store::Error>().is_none()
        && cause.downcast_ref::<Box<object_store::Error>>().is_none()
        && let Some(next) = cause.source()
    {
        message.push_str(": ");
        message.push_str(&next.to_string());
        cause = next;
    }
    message
}

fn render(error: &anyhow::Error) -> String {
    chain(error.as_ref())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::DONE
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Run(args) => commands::run(args, cli.quiet),
        Command::Cat(args) => commands::cat(args),
        Command::Status(args) => commands::status(args),
        Command::Ckpt(args) => commands::ckpt(args),
        Command::Slurm(args) => slurm::slurm(args, cli.quiet),
        Command::K8s(args) => k8s::k8s(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            say!("raygent: error: {}", render(&f.error));
            ExitCode::from(f.code)
        }
    }
}
