//! The checkpoint actor: a thread of its own that records the job's
//! progress as checkpoint steps, so checkpoint writes never slow the task
//! or saver threads.
//!
//! It owns the store, the job's identity, the list of skipped chunks and
//! the last state written. Its mailbox holds one slot: the newest commit not
//! written yet, which covers the ones before it (their newly skipped chunks
//! are merged into it). A commit replaces the slot under a lock and wakes
//! the actor only if it waits for mail, so while the actor sleeps out the
//! interval between two writes, or writes behind a slow store, commits cost
//! no wake-up and pile up nothing. Step 0 is written at once; the newest
//! commit at most once per interval; the last one of a job at once.

use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use raygent_core::{Error, FailedChunk, Fingerprint, SaveError};

use crate::state::{JobConfig, JobState, StartPoint};
use crate::store::ProgressStore;

/// What the saver stage tells the checkpoint actor after each committed
/// batch.
#[derive(Debug, Clone)]
pub(crate) struct Commit {
    /// Every chunk below this index is committed.
    pub(crate) next_chunk: u64,
    /// Every input item below this index is committed.
    pub(crate) next_item: u64,
    /// Results committed so far, by this run and earlier ones.
    pub(crate) results: u64,
    /// Parts committed so far, by this run and earlier ones.
    pub(crate) parts: u64,
    /// The batch just committed.
    pub(crate) chunks: Range<u64>,
    /// Chunks skipped after failing on every attempt that this commit is
    /// the first to cover: a commit costs what it adds, not every failure
    /// so far.
    pub(crate) newly_failed: Vec<FailedChunk>,
    /// The input's fingerprint over items `[0, next_item)`.
    pub(crate) fingerprint: Fingerprint,
}

#[derive(Default)]
struct Inbox {
    /// Write step 0 at once, then say on this channel whether it was
    /// committed.
    step0: Option<mpsc::SyncSender<bool>>,
    /// The newest commit not written yet.
    newest: Option<Commit>,
    /// The job is over: write what is pending at once (as complete if
    /// true), then end.
    finish: Option<bool>,
    /// The actor waits for mail: a letter must wake it.
    idle: bool,
    /// The first failed write, until a commit or the end of the job
    /// reports it.
    error: Option<Error>,
    /// The actor has ended: nothing more is written.
    ended: bool,
}

#[derive(Default)]
struct Mailbox {
    inbox: Mutex<Inbox>,
    cv: Condvar,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hands commits to the checkpoint actor; the sink holds one.
#[derive(Clone)]
pub(crate) struct CommitSender(Arc<Mailbox>);

impl CommitSender {
    /// Hands over a commit; fails with the checkpoint's error if a write
    /// has failed (the job then stops).
    pub(crate) fn send(&self, mut commit: Commit) -> Result<(), Error> {
        let mut inbox = self.0.lock();
        if let Some(e) = inbox.error.take() {
            return Err(e);
        }
        if inbox.ended {
            return Err(Error::Runtime("the checkpoint thread stopped".into()));
        }
        if let Some(mut older) = inbox.newest.take() {
            older.newly_failed.append(&mut commit.newly_failed);
            commit.newly_failed = older.newly_failed;
        }
        inbox.newest = Some(commit);
        if inbox.idle {
            self.0.cv.notify_one();
        }
        Ok(())
    }
}

/// Opens once step 0 is written: the saver waits here before its first
/// write, so no part is ever written to an output the job does not own yet.
pub(crate) struct Step0Gate(mpsc::Receiver<bool>);

impl Step0Gate {
    /// Waits for step 0; an error if it could not be written.
    pub(crate) fn wait(self) -> Result<(), SaveError> {
        match self.0.recv() {
            Ok(true) => Ok(()),
            _ => Err(SaveError::Other(
                "not saved: the job's first checkpoint (step 0) could not be written".into(),
            )),
        }
    }
}

/// How the checkpoint actor ended.
#[derive(Debug)]
pub(crate) struct Ended {
    /// The first failed write that no commit reported.
    pub(crate) result: Result<(), Error>,
    /// The chunks the last state recorded as committed, if it wrote any.
    pub(crate) committed_chunks: Option<u64>,
    /// Whether step 0 could not be written.
    pub(crate) step0_failed: bool,
}

/// The checkpoint actor, as the job holds it.
pub(crate) struct CheckpointActor {
    mailbox: Arc<Mailbox>,
    thread: Option<JoinHandle<Ended>>,
}

impl CheckpointActor {
    /// Starts the actor for a job that starts at `start`.
    pub(crate) fn start(
        store: Arc<dyn ProgressStore>,
        config: JobConfig,
        start: &StartPoint,
        min_interval: Duration,
    ) -> Result<Self, Error> {
        let mailbox = Arc::new(Mailbox::default());
        let writer = Writer {
            store,
            config,
            min_interval,
            failed: start.failed.clone(),
            last: None,
            last_write: None,
            step0_failed: false,
        };
        let mb = Arc::clone(&mailbox);
        let thread = std::thread::Builder::new()
            .name("raygent-ckpt".into())
            .spawn(move || writer.run(&mb))
            .map_err(|source| Error::Spawn {
                thread: "checkpoint",
                source,
            })?;
        Ok(CheckpointActor {
            mailbox,
            thread: Some(thread),
        })
    }

    /// Where the sink hands its commits.
    pub(crate) fn commits(&self) -> CommitSender {
        CommitSender(Arc::clone(&self.mailbox))
    }

    /// Asks for step 0 (a new job's first checkpoint); the gate opens once
    /// it is written.
    pub(crate) fn write_step0(&self) -> Step0Gate {
        let (tx, rx) = mpsc::sync_channel(1);
        self.mailbox.lock().step0 = Some(tx);
        self.mailbox.cv.notify_one();
        Step0Gate(rx)
    }

    /// Writes what is pending at once (the job's last state marked complete
    /// if `complete`), and waits for the actor to end.
    pub(crate) fn finish(mut self, complete: bool) -> Ended {
        self.end(complete)
    }

    fn end(&mut self, complete: bool) -> Ended {
        self.mailbox.lock().finish = Some(complete);
        self.mailbox.cv.notify_one();
        let mut ended = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(ended)) => ended,
            Some(Err(_)) | None => Ended {
                result: Err(Error::Runtime("the checkpoint thread panicked".into())),
                committed_chunks: None,
                step0_failed: false,
            },
        };
        // A failed write that no commit reported.
        if let Some(e) = self.mailbox.lock().error.take() {
            ended.result = Err(e);
        }
        ended
    }
}

impl Drop for CheckpointActor {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.end(false);
        }
    }
}

/// Marks the mailbox ended when the actor's thread ends, even by a panic:
/// senders then fail instead of waiting, and a pending step 0's gate opens
/// as failed.
struct EndGuard<'a>(&'a Mailbox);

impl Drop for EndGuard<'_> {
    fn drop(&mut self) {
        let mut inbox = self.0.lock();
        inbox.ended = true;
        inbox.step0 = None;
    }
}

/// The actor's own state, on its thread.
struct Writer {
    store: Arc<dyn ProgressStore>,
    config: JobConfig,
    min_interval: Duration,
    /// Every chunk skipped so far, in order (the resumed ones first).
    failed: Vec<FailedChunk>,
    /// The last state handed to the store.
    last: Option<JobState>,
    last_write: Option<Instant>,
    step0_failed: bool,
}

impl Writer {
    fn run(mut self, mailbox: &Mailbox) -> Ended {
        let _guard = EndGuard(mailbox);
        loop {
            let mut inbox = mailbox.lock();
            while inbox.step0.is_none() && inbox.newest.is_none() && inbox.finish.is_none() {
                inbox.idle = true;
                inbox = mailbox.cv.wait(inbox).unwrap_or_else(|e| e.into_inner());
            }
            inbox.idle = false;
            if let Some(gate) = inbox.step0.take() {
                drop(inbox);
                // Step 0 never waits for the interval, and starts it: a job
                // shorter than the interval writes step 0 and its last
                // step, nothing in between.
                let state = self.state_at_start();
                if let Err(e) = self.write(&state) {
                    self.step0_failed = true;
                    // Posted before the gate opens as failed, so whoever
                    // sees the failed gate finds the error.
                    return self.fail(mailbox, e);
                }
                let _ = gate.send(true);
                self.last = Some(state);
                continue;
            }
            // Sleep out the interval (commits meanwhile only replace the
            // newest); the end of the job cuts it short.
            if let Some(deadline) = self.last_write.map(|t| t + self.min_interval) {
                while inbox.finish.is_none() && inbox.step0.is_none() {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    inbox = mailbox
                        .cv
                        .wait_timeout(inbox, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                if inbox.step0.is_some() {
                    continue;
                }
            }
            let (newest, finish) = (inbox.newest.take(), inbox.finish);
            drop(inbox);
            let complete = finish == Some(true);
            let state = match newest {
                Some(commit) => Some(self.state_of(commit)),
                None if complete => self.last.take(),
                None => None,
            };
            if let Some(mut state) = state {
                if complete {
                    state.complete = true;
                    state.written_at = now_secs();
                }
                if let Err(e) = self.write(&state) {
                    return self.fail(mailbox, e);
                }
                self.last = Some(state);
            }
            if finish.is_some() {
                return self.ended(Ok(()));
            }
        }
    }

    fn write(&mut self, state: &JobState) -> Result<(), Error> {
        let _g = tracing::debug_span!("checkpoint", step = state.next_chunk).entered();
        self.store.save(state.next_chunk, state)?;
        self.last_write = Some(Instant::now());
        Ok(())
    }

    /// Posts a failed write for the next commit (or the end of the job) to
    /// report, and ends: nothing is written after a failure.
    fn fail(self, mailbox: &Mailbox, e: Error) -> Ended {
        tracing::error!(error = %e, "checkpoint write failed");
        mailbox.lock().error.get_or_insert(e);
        self.ended(Ok(()))
    }

    fn ended(self, result: Result<(), Error>) -> Ended {
        Ended {
            result,
            committed_chunks: self.last.as_ref().map(|s| s.next_chunk),
            step0_failed: self.step0_failed,
        }
    }

    fn state_at_start(&self) -> JobState {
        JobState {
            config: self.config.clone(),
            next_chunk: 0,
            next_item: 0,
            results: 0,
            input_fingerprint: Fingerprint::new().value(),
            parts: 0,
            last_chunks: 0..0,
            failed: Vec::new(),
            written_at: now_secs(),
            complete: false,
        }
    }

    fn state_of(&mut self, c: Commit) -> JobState {
        self.failed.extend(c.newly_failed);
        JobState {
            config: self.config.clone(),
            next_chunk: c.next_chunk,
            next_item: c.next_item,
            results: c.results,
            input_fingerprint: c.fingerprint.value(),
            parts: c.parts,
            last_chunks: c.chunks,
            failed: self.failed.clone(),
            written_at: now_secs(),
            complete: false,
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
