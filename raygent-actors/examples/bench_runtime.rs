//! Runtime overhead benchmark: prints figures, asserts nothing.
//!
//! ```text
//! cargo run --release -p raygent-actors --example bench_runtime [-- ITEMS]
//! ```
//!
//! 1. A trivial task (square a u64) over ITEMS items (default 1,000,000)
//!    with chunk sizes 1 and 100: items/s and overhead per chunk, against a
//!    plain sequential loop.
//! 2. A CPU-bound task (~100 µs per item): raygent on all cores against
//!    rayon's `par_iter` and against a sequential loop.
#![allow(clippy::unwrap_used)]

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bench_support::{burn, calibrate, median};
use raygent_actors::{SubmitOptions, TaskManager};
use raygent_core::{Discard, Fold, task_fn};
use rayon::prelude::*;

fn time<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!("raygent runtime benchmark: {cores} cores, {n} items");

    // 1. Trivial task.
    let seq = time(5, || {
        let s: u64 = (0..n)
            .map(|x| black_box(x).wrapping_mul(x))
            .fold(0, u64::wrapping_add);
        black_box(s);
    });
    println!("\n1. square a u64 ({n} items)");
    println!(
        "{:<34} {:>10} {:>14} {:>18}",
        "run", "wall ms", "items/s", "overhead/chunk µs"
    );
    println!(
        "{:<34} {:>10.1} {:>14.0} {:>18}",
        "sequential loop",
        seq.as_secs_f64() * 1e3,
        n as f64 / seq.as_secs_f64(),
        "-"
    );
    for chunk in [1usize, 100] {
        for (label, sequential) in [
            ("raygent sequential mode", true),
            ("raygent all cores", false),
        ] {
            let wall = time(3, || {
                let mut m = TaskManager::with_handler(
                    || task_fn("square", |x: &u64| Ok(x.wrapping_mul(*x))),
                    Fold::new(0u64, |a: &mut u64, x: u64| *a = a.wrapping_add(x)),
                )
                .with_sequential(sequential);
                m.submit_tasks(0..n, SubmitOptions::new().with_chunk_size(chunk))
                    .unwrap();
                black_box(m.into_result_handler().unwrap().into_value());
            });
            let chunks = n.div_ceil(chunk as u64) as f64;
            let overhead = (wall.as_secs_f64() - seq.as_secs_f64()) / chunks * 1e6;
            println!(
                "{:<34} {:>10.1} {:>14.0} {:>18.3}",
                format!("{label}, chunk {chunk}"),
                wall.as_secs_f64() * 1e3,
                n as f64 / wall.as_secs_f64(),
                overhead
            );
        }
    }

    // 2. CPU-bound task, ~100 µs per item, a few seconds of work.
    let iters = calibrate(Duration::from_micros(100));
    let m_items: u64 = (3.0 * cores as f64 / 100e-6) as u64 / 2;
    println!("\n2. CPU-bound task (~100 µs/item, {m_items} items, chunk 10)");
    let seq = time(1, || {
        let s: u64 = (0..m_items)
            .map(|x| burn(x, iters))
            .fold(0, u64::wrapping_add);
        black_box(s);
    });
    let ray = time(3, || {
        let s: u64 = (0..m_items)
            .into_par_iter()
            .map(|x| burn(x, iters))
            .reduce(|| 0, u64::wrapping_add);
        black_box(s);
    });
    let rg = time(3, || {
        let mut m = TaskManager::with_handler(
            move || task_fn("burn", move |x: &u64| Ok(burn(*x, iters))),
            Discard,
        );
        m.submit_tasks(0..m_items, SubmitOptions::new().with_chunk_size(10))
            .unwrap();
    });
    println!("{:<34} {:>10} {:>14}", "run", "wall ms", "items/s");
    for (label, d) in [
        ("sequential", seq),
        ("rayon par_iter", ray),
        ("raygent all cores", rg),
    ] {
        println!(
            "{:<34} {:>10.1} {:>14.0}",
            label,
            d.as_secs_f64() * 1e3,
            m_items as f64 / d.as_secs_f64()
        );
    }
    println!(
        "\nraygent/rayon throughput: {:.3}   raygent/sequential: {:.2}x",
        ray.as_secs_f64() / rg.as_secs_f64(),
        seq.as_secs_f64() / rg.as_secs_f64()
    );
}
