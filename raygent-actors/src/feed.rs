//! The feeder: reads the input on the caller's thread (it may block on
//! I/O and need not be `Send`, and it is never collected) and cuts it into
//! chunks to run.

use raygent_core::{Chunk, Chunks, Error, StopHandle};

use crate::flow::Run;

/// What the feeder handed to the runtime.
#[derive(Debug, Default)]
pub(crate) struct Fed {
    /// Items and chunks seen by this run (including committed ones skipped).
    pub(crate) items: u64,
    pub(crate) chunks: u64,
    /// One past the index of the last chunk fed.
    pub(crate) end_chunk: u64,
    pub(crate) interrupted: bool,
    pub(crate) input_error: Option<Error>,
}

pub(crate) struct Feeder<C> {
    chunks: Chunks<C>,
    stop: Option<StopHandle>,
    pub(crate) fed: Fed,
}

impl<C, T, E> Feeder<C>
where
    C: Iterator<Item = Result<T, E>>,
    E: Into<raygent_core::BoxError>,
{
    pub(crate) fn new(chunks: Chunks<C>, stop: Option<StopHandle>) -> Self {
        let fed = Fed {
            items: chunks.next_start(),
            chunks: chunks.next_index(),
            end_chunk: chunks.next_index(),
            ..Fed::default()
        };
        Feeder { chunks, stop, fed }
    }

    /// The index of the next chunk.
    pub(crate) fn next_index(&self) -> u64 {
        self.chunks.next_index()
    }

    /// The next chunk, or `None` when feeding ends: the input ended, the job
    /// was stopped, or the input yielded a bad record (kept as the error).
    #[inline(always)]
    pub(crate) fn next_chunk(&mut self) -> Option<Chunk<T>> {
        if self.stop.as_ref().is_some_and(StopHandle::is_stopped) {
            self.fed.interrupted = true;
            return None;
        }
        match self.chunks.next()? {
            Ok(chunk) => Some(chunk),
            Err(e) => {
                self.fed.input_error = Some(Error::Input {
                    item: e.item,
                    source: e.error.into(),
                });
                None
            }
        }
    }

    /// Counts `chunk` as fed and makes it a run.
    #[inline(always)]
    pub(crate) fn admit(&mut self, chunk: Chunk<T>) -> Run<T> {
        self.fed.items += chunk.items.len() as u64;
        self.fed.chunks += 1;
        self.fed.end_chunk = chunk.index + 1;
        Run { chunk, attempt: 1 }
    }
}
