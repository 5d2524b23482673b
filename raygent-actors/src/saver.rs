//! The saver actor: a thread of its own that owns the reorder stage and the
//! sink.
//!
//! Task actors report finished chunks straight into its mailbox; it puts
//! them back in input order, batches and saves them, hands them to the
//! result handler and gives the feeder its window credits back. Saves never
//! block task threads: while it uploads a part, they keep computing.
//!
//! It is a plain thread rather than an actix actor because savers block
//! (they may drive a runtime of their own, which cannot be started from
//! inside actix's), and because the reorder and save steps of one chunk
//! then cost no hop between them.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use raygent_core::{Error, ResultHandler};

use crate::exec::panic_message;
use crate::flow::Finished;
use crate::reorder::Reorder;
use crate::sink::Sink;
use crate::window::Window;

/// The saver actor's mail.
#[derive(Debug)]
pub(crate) enum SaverMsg<O> {
    /// Chunks that finished, in any order (one task actor's group).
    Finished(Vec<Finished<O>>),
    /// The feeder queued its last chunk: `end` is one past its index.
    InputEnd { end: u64 },
}

/// What the saver actor hands back when the job is over.
pub(crate) struct SaverReport<O, H> {
    pub(crate) sink: Sink<O, H>,
    /// The error of the chunk that aborted the job, if one did.
    pub(crate) abort: Option<Error>,
}

pub(crate) struct SaverActor<O, H> {
    inbox: mpsc::Receiver<SaverMsg<O>>,
    reorder: Reorder<O>,
    sink: Sink<O, H>,
    window: Arc<Window>,
    first_chunk: u64,
    /// Chunks finished so far (however they ended).
    received: u64,
    end: Option<u64>,
    abort: Option<Error>,
    /// A chunk whose items could not be fingerprinted: the job stops once
    /// every chunk before it is handed on.
    bad_input: Option<u64>,
}

/// The saver actor's thread: its report, or why it panicked.
pub(crate) type SaverThread<O, H> = JoinHandle<Result<SaverReport<O, H>, String>>;

impl<O: Send + 'static, H: ResultHandler<O>> SaverActor<O, H> {
    pub(crate) fn new(
        inbox: mpsc::Receiver<SaverMsg<O>>,
        sink: Sink<O, H>,
        window: Arc<Window>,
        first_chunk: u64,
    ) -> Self {
        SaverActor {
            inbox,
            reorder: Reorder::new(first_chunk),
            sink,
            window,
            first_chunk,
            received: 0,
            end: None,
            abort: None,
            bad_input: None,
        }
    }

    /// Starts the actor's thread; if it cannot start, the actor (and its
    /// sink) comes back with the error.
    #[allow(clippy::result_large_err)]
    pub(crate) fn spawn(self) -> Result<SaverThread<O, H>, (Error, Box<Self>)> {
        // The actor goes over once the thread runs, so that a thread that
        // cannot start leaves it (and the result handler) with the caller.
        let (give, take) = mpsc::sync_channel::<SaverActor<O, H>>(1);
        let spawned = std::thread::Builder::new()
            .name("raygent-saver".into())
            .spawn(move || match take.recv() {
                Ok(actor) => actor.run_guarded(),
                Err(_) => Err("the saver actor never arrived".into()),
            });
        match spawned {
            Ok(thread) => match give.send(self) {
                Ok(()) => Ok(thread),
                Err(mpsc::SendError(actor)) => Err((
                    Error::Runtime("the saver thread ended before it started".into()),
                    Box::new(actor),
                )),
            },
            Err(e) => Err((
                Error::Spawn {
                    thread: "saver",
                    source: e,
                },
                Box::new(self),
            )),
        }
    }

    /// Gives the sink back, for a job that could not start.
    pub(crate) fn into_sink(self) -> Sink<O, H> {
        self.sink
    }

    fn run_guarded(self) -> Result<SaverReport<O, H>, String> {
        let window = Arc::clone(&self.window);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run())).map_err(|p| {
            // Nothing more can be saved: stop the job.
            window.halt();
            panic_message(p)
        })
    }

    fn run(mut self) -> SaverReport<O, H> {
        while self
            .end
            .is_none_or(|end| self.received < end - self.first_chunk)
        {
            match self.inbox.recv() {
                Ok(SaverMsg::Finished(group)) => self.take(group),
                Ok(SaverMsg::InputEnd { end }) => self.end = Some(end),
                Err(_) => {
                    // Every sender is gone and chunks are missing.
                    self.window.halt();
                    self.abort.get_or_insert(Error::Runtime(
                        "the task actors stopped before every chunk finished".into(),
                    ));
                    break;
                }
            }
        }
        self.sink.finish();
        SaverReport {
            sink: self.sink,
            abort: self.abort,
        }
    }

    fn take(&mut self, group: Vec<Finished<O>>) {
        for f in group {
            self.received += 1;
            match f {
                Finished::Ready(r) => self.reorder.insert(r),
                Finished::Dropped { index } => self.reorder.end_at(index),
                Finished::Aborted { index, error } => {
                    self.reorder.end_at(index);
                    self.abort.get_or_insert(error);
                }
                Finished::BadInput { index, error } => {
                    self.reorder.end_at(index);
                    self.abort.get_or_insert(error);
                    self.bad_input = Some(self.bad_input.map_or(index, |b| b.min(index)));
                }
            }
        }
        while let Some(r) = self.reorder.pop() {
            self.sink.consume(r);
        }
        if self.sink.error.is_some() || self.bad_input.is_some_and(|b| self.sink.next_chunk() >= b)
        {
            self.window.halt();
        }
        self.window.release(self.sink.next_chunk());
    }
}
