//! The end of the pipeline: results in input order go to the saver (in
//! batches of at least `save_interval`) and then to the result handler;
//! committed batches go on to the checkpoint actor.
//!
//! The saver actor runs a sink on its thread; sequential mode runs one in
//! the caller's thread.

use std::collections::VecDeque;
use std::ops::Range;

use raygent_core::{Batch, Error, FailedChunk, Fingerprint, ResultHandler, SaveError, Saver};

use crate::checkpoint::{Commit, CommitSender, Step0Gate};
use crate::flow::{Outcome, Released};
use crate::progress::Progress;
use crate::state::StartPoint;

/// A batch handed to the saver and not yet committed.
#[derive(Debug)]
struct InFlight {
    chunks: Range<u64>,
    items: Range<u64>,
    results: u64,
    /// The input's fingerprint after the batch's last chunk (unused when
    /// the job does not checkpoint).
    fingerprint: Fingerprint,
}

/// Where a checkpointed job's commits go.
pub(crate) struct CheckpointLink {
    pub(crate) commits: CommitSender,
    /// Waited at before the saver's first write (its first `submit`, or its
    /// `finish` if nothing was submitted), when this run writes step 0.
    pub(crate) gate: Option<Step0Gate>,
    /// The input's fingerprint after the last chunk consumed: the chain of
    /// the chunks' hashes, in input order, from where the job starts.
    pub(crate) fingerprint: Fingerprint,
}

/// Batching, saving and result handling.
pub(crate) struct Sink<O, H> {
    pub(crate) handler: H,
    saver: Option<Box<dyn Saver<O>>>,
    save_interval: usize,
    checkpoint: Option<CheckpointLink>,
    /// Batches submitted to the saver and not yet committed, in order.
    in_flight: VecDeque<InFlight>,
    buf: Vec<O>,
    batch_chunks: Range<u64>,
    batch_items: Range<u64>,
    /// Results handed on by this run.
    pub(crate) results: u64,
    /// Results committed, by this run and earlier ones.
    committed_results: u64,
    /// Batches committed by this run...
    pub(crate) saves: u64,
    /// ... and by earlier ones.
    earlier_parts: u64,
    /// Every chunk skipped so far (the resumed ones first).
    pub(crate) failed: Vec<FailedChunk>,
    /// How many of `failed` earlier commits (or the checkpoint resumed
    /// from) already covered.
    failed_committed: usize,
    pub(crate) error: Option<Error>,
    /// Index of the next chunk expected.
    next_chunk: u64,
    progress: Progress,
}

impl<O: Send + 'static, H: ResultHandler<O>> Sink<O, H> {
    pub(crate) fn new(
        handler: H,
        saver: Option<Box<dyn Saver<O>>>,
        save_interval: usize,
        checkpoint: Option<CheckpointLink>,
        start: &StartPoint,
        progress: Progress,
    ) -> Self {
        let (first_chunk, first_item) = (start.next_chunk, start.next_item);
        progress.set_position(first_chunk, first_item);
        Sink {
            handler,
            saver,
            save_interval: save_interval.max(1),
            checkpoint,
            in_flight: VecDeque::new(),
            buf: Vec::new(),
            batch_chunks: first_chunk..first_chunk,
            batch_items: first_item..first_item,
            results: 0,
            committed_results: start.results,
            saves: 0,
            earlier_parts: start.parts,
            failed: start.failed.clone(),
            failed_committed: start.failed.len(),
            error: None,
            next_chunk: first_chunk,
            progress,
        }
    }

    /// Whether chunks must come with their items' hash, for the input
    /// fingerprint.
    pub(crate) fn fingerprints(&self) -> bool {
        self.checkpoint.is_some()
    }

    /// Takes the next chunk in input order.
    #[inline(always)]
    pub(crate) fn consume(&mut self, released: Released<O>) {
        if self.error.is_some() {
            return;
        }
        debug_assert_eq!(released.index, self.next_chunk);
        let index = released.index;
        let item_end = released.item_end();
        self.next_chunk = index + 1;
        match released.outcome {
            Outcome::Done { start, results } => {
                self.results += results.len() as u64;
                if self.saver.is_none() {
                    self.handler.add(start, results);
                } else if self.buf.is_empty() {
                    self.buf = results;
                } else {
                    self.buf.extend(results);
                }
            }
            Outcome::Skipped(f) => {
                self.progress.add_failed();
                if let Some(saver) = self.saver.as_mut() {
                    saver.skipped(&f);
                }
                self.failed.push(f);
            }
        }
        self.batch_chunks.end = index + 1;
        self.batch_items.end = item_end;
        if let Some(link) = self.checkpoint.as_mut() {
            let Some(hash) = released.fingerprint else {
                self.error = Some(Error::Runtime(format!(
                    "chunk {index} came without the hash of its items"
                )));
                return;
            };
            link.fingerprint.add(hash);
        }
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
    fn flush(&mut self) {
        if self.error.is_some() || self.batch_chunks.is_empty() {
            return;
        }
        if !self.pass_first_write_gate() {
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
                fingerprint: self
                    .checkpoint
                    .as_ref()
                    .map(|c| c.fingerprint)
                    .unwrap_or_default(),
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
        if self.saver.is_some()
            && let Some(gate) = self.checkpoint.as_mut().and_then(|c| c.gate.take())
            && let Err(e) = gate.wait()
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
            let new = &self.failed[self.failed_committed..];
            let n = new.iter().take_while(|f| f.index < b.chunks.end).count();
            let newly_failed = new[..n].to_vec();
            self.failed_committed += n;
            if let Some(link) = &self.checkpoint {
                let sent = link.commits.send(Commit {
                    next_chunk: b.chunks.end,
                    next_item: b.items.end,
                    results: self.committed_results,
                    parts: self.earlier_parts + self.saves,
                    chunks: b.chunks,
                    newly_failed,
                    fingerprint: b.fingerprint,
                });
                if let Err(e) = sent {
                    self.error = Some(e);
                }
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
            && self.pass_first_write_gate()
            && let Some(saver) = self.saver.as_mut()
            && let Err(e) = saver.finish()
        {
            self.fail_save(e);
        }
    }
}
