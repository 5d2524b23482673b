//! Cost per item of squaring a number through raygent process workers,
//! for `bench/peers.sh` (which adds GNU parallel and Ray). Prints one
//! tab-separated line per measurement: name, items, chunk size, median wall
//! seconds of `RUNS` runs, µs per item.
//!
//! ```text
//! cargo run --release -p raygent-actors --example worker_bench [-- RUNS]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use raygent_actors::worker::{RustWorker, WorkerCommand, serve_worker_if_requested};
use raygent_actors::{SubmitOptions, TaskManager};
use raygent_core::{Task, TaskError, TaskFactory, task_fn};

/// Squares a number (the Rust-worker variant).
struct Square;
impl Task for Square {
    type Input = u64;
    type Output = u64;
    fn process_item(&mut self, x: &u64) -> Result<u64, TaskError> {
        Ok(x * x)
    }
}

/// The line-protocol worker: a POSIX shell loop.
const SHELL_SQUARE: &str = "while read x; do echo $((x*x)); done";

fn run<F>(
    name: &str,
    factory: F,
    items: Vec<<F::Task as Task>::Input>,
    chunk: usize,
    runs: usize,
    check: impl Fn(&[<F::Task as Task>::Output]),
) where
    F: TaskFactory + Clone,
    <F::Task as Task>::Input: Clone,
{
    let n = items.len();
    let mut times = Vec::new();
    for _ in 0..runs {
        // A fresh manager per run: worker start-up is part of the cost.
        let mut manager = TaskManager::new(factory.clone())
            .with_n_cores(2)
            .with_n_cores_worker(1);
        let opts = SubmitOptions::new()
            .with_chunk_size(chunk)
            .with_at_once(true);
        let t = Instant::now();
        manager.submit_tasks(items.clone(), opts).expect("job");
        let dt = t.elapsed().as_secs_f64();
        check(manager.get_results());
        times.push(dt);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{name}\t{n}\t{chunk}\t{median:.4}\t{:.2}",
        median / n as f64 * 1e6
    );
}

fn main() {
    serve_worker_if_requested("square", || Square);
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(3, |s| s.parse().expect("RUNS"));

    let strings = |n: u64| (0..n).map(|x| x.to_string()).collect::<Vec<_>>();
    let check_str = |out: &[String]| {
        assert!(
            out.iter()
                .enumerate()
                .all(|(i, s)| s.parse::<u64>().unwrap() == (i * i) as u64)
        );
    };
    let check_u64 =
        |out: &[u64]| assert!(out.iter().enumerate().all(|(i, y)| *y == (i * i) as u64));

    let line = WorkerCommand::new(SHELL_SQUARE).shell(true).factory();
    run(
        "raygent line workers (sh)",
        line.clone(),
        strings(100_000),
        100,
        runs,
        check_str,
    );
    run(
        "raygent line workers (sh)",
        line,
        strings(20_000),
        1,
        runs,
        check_str,
    );

    let rust = RustWorker::<Square>::new("square").factory();
    run(
        "raygent Rust workers (CBOR)",
        rust.clone(),
        (0..100_000u64).collect(),
        100,
        runs,
        check_u64,
    );
    run(
        "raygent Rust workers (CBOR)",
        rust,
        (0..20_000u64).collect(),
        1,
        runs,
        check_u64,
    );

    let inproc = || task_fn("square", |x: &u64| Ok(x * x));
    run(
        "raygent in-process",
        inproc,
        (0..1_000_000u64).collect(),
        100,
        runs,
        check_u64,
    );
    run(
        "raygent in-process",
        inproc,
        (0..100_000u64).collect(),
        1,
        runs,
        check_u64,
    );
}
