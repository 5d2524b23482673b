//! Running one chunk on one task instance, with panics caught.

use std::panic::{AssertUnwindSafe, catch_unwind};

use raygent_core::{Task, TaskError, TaskFactory};

/// Why one attempt at a chunk failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The task returned an error.
    Error(TaskError),
    /// The task (or the factory making it) panicked.
    Panic(String),
    /// The task broke its contract (wrong number of results).
    Contract(String),
}

impl Failure {
    /// A short, stable label counted in the job report.
    pub(crate) fn class(&self) -> &'static str {
        match self {
            Failure::Error(e) => {
                crate::worker::WorkerError::class_of(e.as_ref()).unwrap_or("error")
            }
            Failure::Panic(_) => "panic",
            Failure::Contract(_) => "contract",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Error(e) => write!(f, "{e}"),
            Failure::Panic(m) => write!(f, "task panicked: {m}"),
            Failure::Contract(m) => write!(f, "{m}"),
        }
    }
}

pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Runs `items` through the task in `slot`, making the task first if there is
/// none. After a panic the slot is emptied, so the retry gets a fresh
/// instance (a panicking task may have broken its own invariants).
pub(crate) fn run_chunk<F: TaskFactory>(
    factory: &F,
    slot: &mut Option<Box<F::Task>>,
    items: &[<F::Task as Task>::Input],
    at_once: bool,
) -> Result<Vec<<F::Task as Task>::Output>, Failure> {
    if slot.is_none() {
        match catch_unwind(AssertUnwindSafe(|| factory.make())) {
            Ok(t) => *slot = Some(Box::new(t)),
            Err(p) => {
                return Err(Failure::Panic(format!(
                    "task factory: {}",
                    panic_message(p)
                )));
            }
        }
    }
    let Some(task) = slot.as_mut() else {
        return Err(Failure::Contract("no task instance".into()));
    };
    let out = catch_unwind(AssertUnwindSafe(|| {
        if at_once {
            task.process_items(items)
        } else {
            // Sized up front: collecting into a `Result` cannot know the
            // length, and growing the vector was a tenth of a trivial
            // task's time at chunk size 100.
            let mut results = Vec::with_capacity(items.len());
            for item in items {
                results.push(task.process_item(item)?);
            }
            Ok(results)
        }
    }));
    match out {
        Ok(Ok(results)) if results.len() == items.len() => Ok(results),
        Ok(Ok(results)) => Err(Failure::Contract(format!(
            "task returned {} results for {} items",
            results.len(),
            items.len()
        ))),
        Ok(Err(e)) => Err(Failure::Error(e)),
        Err(p) => {
            // The broken instance goes; its own drop may panic too, which
            // must not end the task actor's thread.
            let broken = slot.take();
            let _ = catch_unwind(AssertUnwindSafe(move || drop(broken)));
            Err(Failure::Panic(panic_message(p)))
        }
    }
}
