//! The dispatch window: how far ahead of the oldest unconsumed chunk the
//! feeder may run.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use raygent_core::StopHandle;

#[derive(Debug)]
struct State {
    /// Chunks below this index have been consumed by the saver stage.
    released: u64,
    /// The feeder sleeps until `released` reaches this (hysteresis, so a
    /// full window does not cost one wake-up per chunk).
    wake_at: Option<u64>,
    halted: bool,
}

/// Credits for dispatching chunks: chunk `i` may start only once
/// `i < released + size`. The saver stage releases chunks as it consumes
/// them, so results buffered anywhere in the pipeline stay bounded.
#[derive(Debug)]
pub(crate) struct Window {
    size: u64,
    state: Mutex<State>,
    cv: Condvar,
}

impl Window {
    pub(crate) fn new(size: u64, first_chunk: u64) -> Self {
        Window {
            size: size.max(1),
            state: Mutex::new(State {
                released: first_chunk,
                wake_at: None,
                halted: false,
            }),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until chunk `index` may be dispatched. Returns false if the job
    /// was halted (or `stop` was set) while waiting.
    pub(crate) fn acquire(&self, index: u64, stop: Option<&StopHandle>) -> bool {
        let mut st = self.lock();
        loop {
            if st.halted || stop.is_some_and(StopHandle::is_stopped) {
                return false;
            }
            if index < st.released + self.size {
                return true;
            }
            // Sleep until half the window has drained: `index` fits once
            // released > index - size; wait for size/2 more than that.
            st.wake_at = Some((index + 1 + self.size / 2).saturating_sub(self.size));
            st = match stop {
                // A stop handle is a plain flag (set from a signal handler),
                // so poll it while waiting.
                Some(_) => {
                    self.cv
                        .wait_timeout(st, Duration::from_millis(50))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Records that every chunk below `next` was consumed.
    pub(crate) fn release(&self, next: u64) {
        let mut st = self.lock();
        if next > st.released {
            st.released = next;
        }
        if st.wake_at.is_some_and(|w| st.released >= w) {
            st.wake_at = None;
            self.cv.notify_all();
        }
    }

    /// Stops all dispatching and wakes the feeder.
    pub(crate) fn halt(&self) {
        let mut st = self.lock();
        st.halted = true;
        self.cv.notify_all();
    }

    pub(crate) fn is_halted(&self) -> bool {
        self.lock().halted
    }
}
