//! The `Task` trait: what users implement.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::TaskError;

/// A unit of user work: turns input items into output items.
///
/// raygent creates one instance per worker with a factory (any
/// `Fn() -> impl Task`), so per-task parameters are simply captured by the
/// factory closure. An instance is reused for many chunks; after it panics,
/// raygent throws it away and makes a fresh one.
///
/// Implement [`process_item`](Task::process_item); override
/// [`process_items`](Task::process_items) when a whole chunk is cheaper at
/// once (a batched model call, one SQL query). It is called instead of the
/// per-item method when the job runs with `at_once`.
///
/// ```
/// use raygent_core::{Task, TaskError};
///
/// struct Square;
/// impl Task for Square {
///     type Input = u64;
///     type Output = u64;
///     fn process_item(&mut self, x: &u64) -> Result<u64, TaskError> {
///         x.checked_mul(*x).ok_or_else(|| format!("{x} squared overflows").into())
///     }
/// }
///
/// let mut t = Square;
/// assert_eq!(t.process_items(&[1, 2, 3]).unwrap(), vec![1, 4, 9]);
/// assert!(t.process_item(&u64::MAX).is_err());
/// ```
pub trait Task: Send + 'static {
    /// One input item.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The result for one input item.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Processes one item.
    fn process_item(&mut self, item: &Self::Input) -> Result<Self::Output, TaskError>;

    /// Processes a whole chunk; must return exactly one output per input, in
    /// order. Defaults to calling [`process_item`](Task::process_item) on each.
    fn process_items(&mut self, items: &[Self::Input]) -> Result<Vec<Self::Output>, TaskError> {
        items.iter().map(|item| self.process_item(item)).collect()
    }

    /// Whether [`prefetch`](Task::prefetch) does anything: the runtime then
    /// hands a task the chunk after the one it runs, when it has one.
    /// Defaults to `false`.
    fn prefetches(&self) -> bool {
        false
    }

    /// A hint that `items` are the next chunk this task will be given (to
    /// [`process_items`](Task::process_items)): a task whose work happens
    /// elsewhere (a worker process) may start it now, so that no time is
    /// lost between chunks. The results still come from `process_items`,
    /// which must work whatever was prefetched (the next chunk may differ,
    /// e.g. when the job stops). Defaults to doing nothing.
    fn prefetch(&mut self, items: &[Self::Input]) {
        let _ = items;
    }

    /// A stable name, recorded in checkpoints so a resume can tell jobs apart.
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }

    /// A version, recorded in checkpoints: bump it when the task's results change.
    fn version(&self) -> Cow<'static, str> {
        Cow::Borrowed("1")
    }
}

/// Makes task instances: one per worker, and a fresh one after a panic.
///
/// Implemented for every `Fn() -> T` closure that is `Send + Sync`.
pub trait TaskFactory: Send + Sync + 'static {
    /// The task this factory makes.
    type Task: Task;
    /// Makes a new task instance.
    fn make(&self) -> Self::Task;
}

impl<T: Task, F: Fn() -> T + Send + Sync + 'static> TaskFactory for F {
    type Task = T;
    fn make(&self) -> T {
        self()
    }
}

/// A [`Task`] made from a function of one item; see [`task_fn`].
pub struct FnTask<F, I, O> {
    f: F,
    name: Cow<'static, str>,
    _types: PhantomData<fn(I) -> O>,
}

/// Wraps a function of one item as a [`Task`].
///
/// ```
/// use raygent_core::{task_fn, Task};
/// let mut t = task_fn("square", |x: &u64| Ok(x * x));
/// assert_eq!(t.process_item(&7).unwrap(), 49);
/// assert_eq!(t.name(), "square");
/// ```
pub fn task_fn<F, I, O>(name: impl Into<Cow<'static, str>>, f: F) -> FnTask<F, I, O>
where
    F: FnMut(&I) -> Result<O, TaskError> + Send + 'static,
{
    FnTask {
        f,
        name: name.into(),
        _types: PhantomData,
    }
}

impl<F, I, O> Task for FnTask<F, I, O>
where
    F: FnMut(&I) -> Result<O, TaskError> + Send + 'static,
    I: Serialize + DeserializeOwned + Send + 'static,
    O: Serialize + DeserializeOwned + Send + 'static,
{
    type Input = I;
    type Output = O;
    fn process_item(&mut self, item: &I) -> Result<O, TaskError> {
        (self.f)(item)
    }
    fn name(&self) -> Cow<'static, str> {
        self.name.clone()
    }
}
