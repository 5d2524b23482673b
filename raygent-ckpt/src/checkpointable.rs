//! The [`Checkpointable`] trait and a ready-made checkpointable iterator.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Something whose progress can be saved and restored: an iterator over the
/// input, a pipeline, a model.
///
/// `get_state` returns a small serializable snapshot; `set_state` puts the
/// object back where the snapshot was taken, or refuses with
/// [`Error::invalid_state`] when the snapshot does not fit (for example a
/// position past the end of a shorter input).
pub trait Checkpointable {
    /// The snapshot type (stored as CBOR).
    type State: Serialize + DeserializeOwned;

    /// A snapshot of the current progress.
    fn get_state(&self) -> Self::State;

    /// Restores the progress recorded in `state`.
    fn set_state(&mut self, state: Self::State) -> Result<(), Error>;
}

/// The state of a [`CheckpointableIter`]: how many items were yielded, and
/// how many there are (to refuse restoring into a different input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IterState {
    /// Items yielded so far.
    pub position: u64,
    /// Items in the whole input.
    pub len: u64,
}

/// An iterator over a vector that records its position, so it can be
/// checkpointed and resumed exactly where it stopped.
///
/// ```
/// use raygent_ckpt::{Checkpointable, CheckpointableIter};
/// let mut it = CheckpointableIter::new(vec!["a", "b", "c"]);
/// assert_eq!(it.next(), Some("a"));
/// let state = it.get_state();
///
/// let mut resumed = CheckpointableIter::new(vec!["a", "b", "c"]);
/// resumed.set_state(state).unwrap();
/// assert_eq!(resumed.collect::<Vec<_>>(), vec!["b", "c"]);
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointableIter<T> {
    items: Vec<T>,
    position: usize,
}

impl<T> CheckpointableIter<T> {
    /// An iterator over `items`, at the start.
    pub fn new(items: Vec<T>) -> Self {
        CheckpointableIter { items, position: 0 }
    }

    /// Items yielded so far.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Items in the whole input.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the input is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<T> FromIterator<T> for CheckpointableIter<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        CheckpointableIter::new(iter.into_iter().collect())
    }
}

impl<T: Clone> Iterator for CheckpointableIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        let item = self.items.get(self.position)?.clone();
        self.position += 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.items.len() - self.position;
        (left, Some(left))
    }
}

impl<T> Checkpointable for CheckpointableIter<T> {
    type State = IterState;

    fn get_state(&self) -> IterState {
        IterState {
            position: self.position as u64,
            len: self.items.len() as u64,
        }
    }

    fn set_state(&mut self, state: IterState) -> Result<(), Error> {
        if state.len != self.items.len() as u64 {
            return Err(Error::invalid_state(format!(
                "the checkpoint was taken over {} item(s), this input has {}",
                state.len,
                self.items.len()
            )));
        }
        // position <= len, and len fits in usize.
        if state.position > state.len {
            return Err(Error::invalid_state(format!(
                "position {} is past the end ({} item(s))",
                state.position, state.len
            )));
        }
        self.position = state.position as usize;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_other_input_and_bad_position() {
        let mut it = CheckpointableIter::new(vec![1, 2, 3]);
        let err = it
            .set_state(IterState {
                position: 1,
                len: 4,
            })
            .unwrap_err();
        assert!(err.to_string().contains("4 item(s)"), "{err}");
        let err = it
            .set_state(IterState {
                position: 5,
                len: 3,
            })
            .unwrap_err();
        assert!(matches!(err, Error::InvalidState(_)), "{err}");
        it.set_state(IterState {
            position: 3,
            len: 3,
        })
        .unwrap();
        assert_eq!(it.next(), None);
    }
}
