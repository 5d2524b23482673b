//! The end of the pipeline: results in input order go to the saver (in
//! batches of at least `save_interval`) and then to the result handler.

use std::collections::VecDeque;
use std::ops::Range;

use raygent_core::{Batch, Error, FailedChunk, ResultHandler, SaveError, Saver};

use crate::progress::Progress;
use crate::resume::StartPoint;

/// A chunk leaving the reorder stage, in input order.
#[derive(Debug)]
pub(crate) enum Released<O> {
    /// The chunk's results.
    Done {
        index: u64,
        start: u64,
        results: Vec<O>,
    },
    /// The chunk failed on every attempt and is skipped.
    Failed(FailedChunk),
}

impl<O> Released<O> {
    pub(crate) fn index(&self) -> u64 {
        match self {
            Released::Done { index, .. } => *index,
            Released::Failed(f) => f.index,
        }
    }
}

/// What the sink tells the checkpoint stage after each committed batch.
#[derive(Debug, Clone)]
pub struct Commit {
    /// Every chunk below this index is committed.
    pub next_chunk: u64,
    /// Every input item below this index is committed.
    pub next_item: u64,
    /// Results committed so far, by this run and earlier ones.
    pub results: u64,
    /// The batch just committed: chunks and items.
    pub chunks: Range<u64>,
    /// Its items.
    pub items: Range<u64>,
    /// Chunks skipped after failing on every attempt that this commit is
    /// the first to cover (those before were in earlier commits, or in the
    /// checkpoint the job resumed from): a commit costs what it adds, not
    /// every failure so far.
    pub newly_failed: Vec<FailedChunk>,
}

/// A batch handed to the saver and not yet committed.
#[derive(Debug)]
struct InFlight {
    chunks: Range<u64>,
    items: Range<u64>,
    results: u64,
}

/// Called once before the saver's first write (its first `submit`, or its
/// `finish` if nothing was submitted): a job that writes step 0 waits there
/// until the output is its own.
pub(crate) type FirstWriteGate = Box<dyn FnOnce() -> Result<(), SaveError> + Send>;

/// Receives [`Commit`]s (the checkpoint stage).
pub(crate) type CommitObserver = Box<dyn FnMut(&Commit) -> Result<(), Error> + Send>;

/// Batching, saving and result handling, shared by the saver actor and the
/// sequential mode.
pub(crate) struct Sink<O, H> {
    pub(crate) handler: H,
    pub(crate) saver: Option<Box<dyn Saver<O>>>,
    save_interval: usize,
    observer: Option<CommitObserver>,
    first_write_gate: Option<FirstWriteGate>,
    /// Batches submitted to the saver and not yet committed, in order.
    in_flight: VecDeque<InFlight>,
    buf: Vec<O>,
    batch_chunks: Range<u64>,
    batch_items: Range<u64>,
    pub(crate) results: u64,
    committed_results: u64,
    pub(crate) saves: u64,
    pub(crate) failed: Vec<FailedChunk>,
    /// How many of `failed` earlier commits (or the checkpoint resumed
    /// from) already covered.
    failed_committed: usize,
    pub(crate) error: Option<Error>,
    /// Index of the next chunk expected (for sanity checks).
    next_chunk: u64,
    pub(crate) progress: Progress,
}

impl<O: Send + 'static, H: ResultHandler<O>> Sink<O, H> {
    pub(crate) fn new(
        handler: H,
        saver: Option<Box<dyn Saver<O>>>,
        save_interval: usize,
        observer: Option<CommitObserver>,
        first_write_gate: Option<FirstWriteGate>,
        start: &StartPoint,
    ) -> Self {
        let (first_chunk, first_item) = (start.next_chunk, start.next_item);
        Sink {
            handler,
            saver,
            save_interval: save_interval.max(1),
            observer,
            first_write_gate,
            in_flight: VecDeque::new(),
            buf: Vec::new(),
            batch_chunks: first_chunk..first_chunk,
            batch_items: first_item..first_item,
            results: 0,
            committed_results: start.results,
            saves: 0,
            failed: start.failed.clone(),
            failed_committed: start.failed.len(),
            error: None,
            next_chunk: first_chunk,
            progress: Progress::new(),
        }
    }

    /// Takes the next chunk in input order.
    pub(crate) fn consume(&mut self, released: Released<O>) {
        if self.error.is_some() {
            return;
        }
        debug_assert_eq!(released.index(), self.next_chunk);
        self.next_chunk = released.index() + 1;
        let index = released.index();
        let item_end = match released {
            Released::Done {
                start,
                results,
                index,
            } => {
                tracing::trace!(chunk = index, results = results.len(), "chunk released");
                let end = start + results.len() as u64;
                self.results += results.len() as u64;
                if self.saver.is_none() {
                    self.handler.add(start, results);
                } else if self.buf.is_empty() {
                    self.buf = results;
                } else {
                    self.buf.extend(results);
                }
                end
            }
            Released::Failed(f) => {
                self.progress.add_failed();
                if let Some(saver) = self.saver.as_mut() {
                    saver.skipped(&f);
                }
                let end = f.items.end;
                self.failed.push(f);
                end
            }
        };
        self.batch_chunks.end = index + 1;
        self.batch_items.end = item_end;
        self.progress.set_position(index + 1, item_end);
        if self.saver.is_none() {
            self.batch_chunks.start = self.batch_chunks.end;
            self.batch_items.start = self.batch_items.end;
        } else if self.buf.len() >= self.save_interval {
            self.flush();
        }
    }

    /// Submits what is buffered to the saver (at the end of the job, or
    /// when a batch is full), then reports what the saver has committed.
    pub(crate) fn flush(&mut self) {
        if self.error.is_some() || self.batch_chunks.is_empty() {
            return;
        }
        if self.saver.is_some() && !self.pass_first_write_gate() {
            return;
        }
        if let Some(saver) = self.saver.as_mut() {
            let batch = Batch {
                chunks: self.batch_chunks.clone(),
                items: self.batch_items.clone(),
                results: &self.buf,
            };
            let span =
                tracing::debug_span!("save", chunks = ?batch.chunks, results = batch.results.len());
            let _g = span.enter();
            let committed_until = match saver.submit(&batch) {
                Ok(until) => until,
                Err(e) => {
                    // The batches in flight before this one may still
                    // commit (this one failed alone, e.g. a result its
                    // format refused): record them, so a rerun resumes
                    // after them instead of redoing them.
                    let flushed = saver.flush().is_ok();
                    if flushed {
                        self.commit_until(u64::MAX);
                    }
                    return self.fail_save(e);
                }
            };
            self.in_flight.push_back(InFlight {
                chunks: self.batch_chunks.clone(),
                items: self.batch_items.clone(),
                results: self.buf.len() as u64,
            });
            // The saver holds what it needs (encoded) once `submit` returns.
            let results = std::mem::take(&mut self.buf);
            self.handler.add(self.batch_items.start, results);
            self.commit_until(committed_until);
        }
        self.batch_chunks.start = self.batch_chunks.end;
        self.batch_items.start = self.batch_items.end;
    }

    /// Waits at the gate before the saver's first write; false (with the
    /// error recorded) if the saver must not write.
    fn pass_first_write_gate(&mut self) -> bool {
        if let Some(gate) = self.first_write_gate.take()
            && let Err(e) = gate()
        {
            self.fail_save(e);
            return false;
        }
        true
    }

    /// Records a save error: it stops the job, and nothing more is saved.
    fn fail_save(&mut self, e: SaveError) {
        tracing::error!(error = %e, "save failed");
        self.error = Some(Error::Save(e));
    }

    /// Reports, in order, the batches in flight that end at or before
    /// `until`: they are committed.
    fn commit_until(&mut self, until: u64) {
        while self.error.is_none()
            && let Some(b) = self.in_flight.front()
            && b.chunks.end <= until
        {
            let Some(b) = self.in_flight.pop_front() else {
                break;
            };
            self.saves += 1;
            self.progress.add_save();
            self.committed_results += b.results;
            let commit = Commit {
                next_chunk: b.chunks.end,
                next_item: b.items.end,
                results: self.committed_results,
                newly_failed: {
                    let new = &self.failed[self.failed_committed..];
                    let n = new.iter().take_while(|f| f.index < b.chunks.end).count();
                    self.failed_committed += n;
                    new[..n].to_vec()
                },
                chunks: b.chunks,
                items: b.items,
            };
            if let Some(obs) = self.observer.as_mut()
                && let Err(e) = obs(&commit)
            {
                self.error = Some(e);
            }
        }
    }

    /// Waits for the saves in flight and reports them committed.
    fn drain(&mut self) {
        if self.error.is_some() || self.in_flight.is_empty() {
            return;
        }
        if let Some(saver) = self.saver.as_mut() {
            match saver.flush() {
                Ok(()) => self.commit_until(u64::MAX),
                Err(e) => self.fail_save(e),
            }
        }
    }

    /// The index of the next chunk the sink expects: every chunk below it
    /// was handed on.
    pub(crate) fn next_chunk(&self) -> u64 {
        self.next_chunk
    }

    /// Saves the rest and finishes the saver.
    pub(crate) fn finish(&mut self) {
        self.flush();
        self.drain();
        if self.error.is_none()
            && self.saver.is_some()
            && self.pass_first_write_gate()
            && let Some(saver) = self.saver.as_mut()
            && let Err(e) = saver.finish()
        {
            self.fail_save(e);
        }
    }
}
