//! Helpers shared by the benchmark examples (`#[path]`-included by each).

use std::hint::black_box;
use std::time::{Duration, Instant};

/// CPU work on `x`: `iters` rounds of a multiply-xorshift.
pub fn burn(x: u64, iters: u64) -> u64 {
    let mut a = x;
    for i in 0..iters {
        a = a.wrapping_mul(6364136223846793005).wrapping_add(i) ^ (a >> 17);
    }
    a
}

/// Iterations of [`burn`] that take about `target`.
pub fn calibrate(target: Duration) -> u64 {
    let mut iters = 1_000u64;
    loop {
        let t = Instant::now();
        for x in 0..10 {
            black_box(burn(black_box(x), iters));
        }
        let per = t.elapsed() / 10;
        if per > Duration::from_micros(20) {
            return (iters as f64 * target.as_secs_f64() / per.as_secs_f64()) as u64;
        }
        iters *= 2;
    }
}

/// The median of some timings.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
