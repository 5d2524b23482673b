//! The dispatch window: how far ahead of the oldest unconsumed chunk the
//! feeder may run, and the job's halt switch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use raygent_core::StopHandle;

/// No feeder is waiting.
const NOBODY: u64 = u64::MAX;

/// Credits for dispatching chunks: chunk `i` may start only once
/// `i < released + size`. The saver stage releases chunks as it consumes
/// them, so results buffered anywhere in the pipeline stay bounded.
///
/// Taking a credit while the window has room, and releasing while nobody
/// waits, touch two atomics and no lock.
#[derive(Debug)]
pub(crate) struct Window {
    size: u64,
    /// Chunks below this index have been consumed by the saver stage.
    released: AtomicU64,
    /// The feeder sleeps until `released` reaches this ([`NOBODY`] if it
    /// does not sleep): half the window, so that a full window does not
    /// cost one wake-up per chunk.
    wake_at: AtomicU64,
    halted: AtomicBool,
    /// Held by the feeder while it decides to sleep, so that a release or a
    /// halt cannot slip between its check and its wait.
    lock: Mutex<()>,
    cv: Condvar,
}

impl Window {
    pub(crate) fn new(size: u64, first_chunk: u64) -> Self {
        Window {
            size: size.max(1),
            released: AtomicU64::new(first_chunk),
            wake_at: AtomicU64::new(NOBODY),
            halted: AtomicBool::new(false),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    fn fits(&self, index: u64) -> bool {
        index
            < self
                .released
                .load(Ordering::SeqCst)
                .saturating_add(self.size)
    }

    /// Waits until chunk `index` may be dispatched. Returns false if the job
    /// was halted (or `stop` was set) while waiting.
    pub(crate) fn acquire(&self, index: u64, stop: Option<&StopHandle>) -> bool {
        let stopped = || self.is_halted() || stop.is_some_and(StopHandle::is_stopped);
        if stopped() {
            return false;
        }
        if self.fits(index) {
            return true;
        }
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            // Sleep until half the window has drained: `index` fits once
            // released > index - size; wait for size/2 more than that.
            let wake_at = (index + 1 + self.size / 2).saturating_sub(self.size);
            self.wake_at.store(wake_at, Ordering::SeqCst);
            if stopped() || self.fits(index) {
                self.wake_at.store(NOBODY, Ordering::SeqCst);
                return !stopped();
            }
            guard = match stop {
                // A stop handle is a plain flag (set from a signal handler),
                // so poll it while waiting.
                Some(_) => {
                    self.cv
                        .wait_timeout(guard, Duration::from_millis(50))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.cv.wait(guard).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Records that every chunk below `next` was consumed.
    pub(crate) fn release(&self, next: u64) {
        let released = self.released.fetch_max(next, Ordering::SeqCst).max(next);
        if released >= self.wake_at.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    fn wake(&self) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake_at.store(NOBODY, Ordering::SeqCst);
        self.cv.notify_all();
    }

    /// Stops all dispatching and wakes the feeder.
    pub(crate) fn halt(&self) {
        self.halted.store(true, Ordering::SeqCst);
        self.wake();
    }

    pub(crate) fn is_halted(&self) -> bool {
        self.halted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_feeder_waiting_for_the_window_goes_on_once_it_drains() {
        let w = Arc::new(Window::new(8, 0));
        for i in 0..8 {
            assert!(w.acquire(i, None));
        }
        let w2 = Arc::clone(&w);
        let feeder = std::thread::spawn(move || w2.acquire(8, None));
        // Whether or not the feeder is asleep yet, half the window wakes it.
        w.release(5);
        assert!(feeder.join().unwrap());
        assert!(w.acquire(12, None));
    }

    #[test]
    fn a_halt_wakes_a_waiting_feeder() {
        let w = Arc::new(Window::new(2, 0));
        assert!(w.acquire(1, None));
        let w2 = Arc::clone(&w);
        let feeder = std::thread::spawn(move || w2.acquire(2, None));
        w.halt();
        assert!(!feeder.join().unwrap());
        assert!(!w.acquire(0, None), "nothing is dispatched once halted");
    }

    #[test]
    fn a_stop_ends_the_wait() {
        let w = Window::new(1, 0);
        let stop = StopHandle::new();
        let s = stop.clone();
        let stopper = std::thread::spawn(move || s.stop());
        assert!(!w.acquire(5, Some(&stop)));
        stopper.join().unwrap();
    }
}
