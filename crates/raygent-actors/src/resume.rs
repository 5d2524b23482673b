//! Resuming a job from its checkpoint (filled in with raygent-ckpt).

use raygent_core::{Chunk, Chunks, Error, FailedChunk, Saver, TaskFactory};

use crate::SubmitOptions;
use crate::sink::CommitObserver;

/// Where and how a job checkpoints its progress.
#[derive(Debug, Clone)]
pub struct ResumeConfig {}

/// Where a run starts.
#[derive(Debug, Clone, Default)]
pub(crate) struct StartPoint {
    pub(crate) next_chunk: u64,
    pub(crate) next_item: u64,
    pub(crate) results: u64,
    pub(crate) failed: Vec<FailedChunk>,
}

pub(crate) struct Resumer {
    start: StartPoint,
}

impl Resumer {
    pub(crate) fn open<F: TaskFactory, O>(
        _cfg: ResumeConfig,
        _factory: &F,
        _options: &SubmitOptions<O>,
        _workers: usize,
    ) -> Result<Self, Error> {
        Ok(Resumer {
            start: StartPoint::default(),
        })
    }
    pub(crate) fn start(&self) -> StartPoint {
        self.start.clone()
    }
    pub(crate) fn prepare_saver<O>(&mut self, _saver: &mut dyn Saver<O>) -> Result<(), Error> {
        Ok(())
    }
    pub(crate) fn observer(&mut self) -> CommitObserver {
        Box::new(|_| Ok(()))
    }
    pub(crate) fn skip_committed<C>(&mut self, _chunks: &mut Chunks<C>) -> Result<(), Error> {
        Ok(())
    }
    pub(crate) fn observe_chunk<T>(&mut self, _chunk: &Chunk<T>) -> Result<(), Error> {
        Ok(())
    }
    pub(crate) fn finish(&mut self) -> Result<(), Error> {
        Ok(())
    }
    pub(crate) fn committed_chunks(&self) -> u64 {
        self.start.next_chunk
    }
}
