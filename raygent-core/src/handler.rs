//! Result handlers: what happens to results once they are in input order.

/// Receives results in input order, chunk after chunk.
///
/// The runtime calls [`add`](ResultHandler::add) on one thread, in input
/// order, after the results were handed to the saver (if any).
pub trait ResultHandler<T>: Send + 'static {
    /// Takes the results of one chunk; `first_item` is the input index of
    /// the chunk's first item.
    fn add(&mut self, first_item: u64, results: Vec<T>);
}

/// Keeps every result in input order (the default handler).
///
/// ```
/// use raygent_core::{Collect, ResultHandler};
/// let mut c = Collect::new();
/// c.add(0, vec![1, 2]);
/// c.add(2, vec![3]);
/// assert_eq!(c.results(), &[1, 2, 3]);
/// ```
#[derive(Debug, Clone)]
pub struct Collect<T> {
    results: Vec<T>,
}

impl<T> Default for Collect<T> {
    fn default() -> Self {
        Collect {
            results: Vec::new(),
        }
    }
}

impl<T> Collect<T> {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }
    /// The results so far.
    pub fn results(&self) -> &[T] {
        &self.results
    }
    /// Takes the results out, leaving the collector empty.
    pub fn take(&mut self) -> Vec<T> {
        std::mem::take(&mut self.results)
    }
}

impl<T: Send + 'static> ResultHandler<T> for Collect<T> {
    fn add(&mut self, _first_item: u64, results: Vec<T>) {
        if self.results.is_empty() {
            self.results = results;
        } else {
            self.results.extend(results);
        }
    }
}

/// Drops every result: for jobs whose output goes only to a saver.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl<T: Send + 'static> ResultHandler<T> for Discard {
    fn add(&mut self, _first_item: u64, _results: Vec<T>) {}
}

/// Folds every result into one value, in input order.
///
/// ```
/// use raygent_core::{Fold, ResultHandler};
/// let mut sum = Fold::new(0u64, |acc: &mut u64, x: u64| *acc += x);
/// sum.add(0, vec![1, 2, 3]);
/// assert_eq!(*sum.value(), 6);
/// ```
pub struct Fold<A, F> {
    acc: A,
    f: F,
}

impl<A, F> Fold<A, F> {
    /// A fold starting at `init` that applies `f` to every result.
    pub fn new(init: A, f: F) -> Self {
        Fold { acc: init, f }
    }
    /// The value folded so far.
    pub fn value(&self) -> &A {
        &self.acc
    }
    /// The folded value.
    pub fn into_value(self) -> A {
        self.acc
    }
}

impl<T, A, F> ResultHandler<T> for Fold<A, F>
where
    A: Send + 'static,
    F: FnMut(&mut A, T) + Send + 'static,
{
    fn add(&mut self, _first_item: u64, results: Vec<T>) {
        for r in results {
            (self.f)(&mut self.acc, r);
        }
    }
}

/// A numerically stable running mean and variance (Welford's algorithm).
///
/// ```
/// use raygent_core::{OnlineMean, ResultHandler};
/// let mut m = OnlineMean::default();
/// m.add(0, vec![1.0, 2.0, 3.0, 4.0]);
/// assert_eq!(m.count(), 4);
/// assert!((m.mean() - 2.5).abs() < 1e-12);
/// assert!((m.variance() - 1.25).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct OnlineMean {
    count: u64,
    mean: f64,
    m2: f64,
}

impl OnlineMean {
    /// Adds one value.
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }
    /// How many values were added.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// The mean (0 when empty).
    pub fn mean(&self) -> f64 {
        self.mean
    }
    /// The population variance (0 when fewer than two values).
    pub fn variance(&self) -> f64 {
        if self.count < 2 {
            0.0
        } else {
            self.m2 / self.count as f64
        }
    }
}

impl<T: Into<f64>> ResultHandler<T> for OnlineMean {
    fn add(&mut self, _first_item: u64, results: Vec<T>) {
        for r in results {
            self.push(r.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_mean_is_stable_for_large_offsets() {
        let mut m = OnlineMean::default();
        let values: Vec<f64> = (0..1000).map(|i| 1e9 + (i % 10) as f64).collect();
        ResultHandler::add(&mut m, 0, values);
        assert!((m.mean() - (1e9 + 4.5)).abs() < 1e-6);
        assert!((m.variance() - 8.25).abs() < 1e-6);
    }
}
