//! Shards: one job split over many processes (a Slurm job array, a
//! Kubernetes Indexed Job), each running a contiguous share of the input.
//!
//! A [`Shard`] is an index and a count. [`Shard::from_env`] reads it from
//! the cluster engine's environment; [`SubmitOptions::with_shard`]
//! (crate::SubmitOptions::with_shard) makes a job run only its share of the
//! items it is given and records the shard in its checkpoint identity, so a
//! resume of another shard (or of another shard count) is refused.

use std::fmt;
use std::ops::Range;

use raygent_core::Error;

/// Environment variable holding a Kubernetes Indexed Job's index.
pub const K8S_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Environment variable holding a Slurm array task's index.
pub const SLURM_TASK_ID_ENV: &str = "SLURM_ARRAY_TASK_ID";
/// Environment variable holding the number of tasks in a Slurm array.
pub const SLURM_TASK_COUNT_ENV: &str = "SLURM_ARRAY_TASK_COUNT";
/// Environment variable holding the lowest index of a Slurm array.
pub const SLURM_TASK_MIN_ENV: &str = "SLURM_ARRAY_TASK_MIN";
/// Environment variable holding the highest index of a Slurm array.
pub const SLURM_TASK_MAX_ENV: &str = "SLURM_ARRAY_TASK_MAX";
/// Environment variable added to a Slurm array task's index to give the
/// shard index: set by `raygent slurm submit` when a job has more shards
/// than one array may hold (Slurm's `MaxArraySize`).
pub const SHARD_OFFSET_ENV: &str = "RAYGENT_SHARD_OFFSET";

/// Shard `index` of `count` shards of one job (`index` from 0).
///
/// ```
/// use raygent_actors::Shard;
/// let s = Shard::new(2, 4).unwrap();
/// assert_eq!(s.to_string(), "shard 2 of 4");
/// // Its share of 10 items: items 5..7 (shares differ by at most one).
/// assert_eq!(s.share(10), 5..7);
/// assert!(Shard::new(4, 4).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {} of {}", self.index, self.count)
    }
}

impl Shard {
    /// Shard `index` of `count`; `count` must be at least 1 and `index`
    /// below it.
    pub fn new(index: u32, count: u32) -> Result<Shard, Error> {
        if count == 0 {
            return Err(Error::InvalidConfig(
                "the shard count must be at least 1".into(),
            ));
        }
        if index >= count {
            return Err(Error::InvalidConfig(format!(
                "shard index {index} is out of range: with {count} shards the index is 0 to {}",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// The shard index, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards the job has.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// This shard's share of `len` things (items, bytes): the contiguous
    /// range `[index × len / count, (index + 1) × len / count)`. The shares
    /// of all shards cover `0..len` in order, without overlap, and differ in
    /// size by at most one.
    pub fn share(&self, len: u64) -> Range<u64> {
        let at = |i: u32| (u128::from(len) * u128::from(i) / u128::from(self.count)) as u64;
        at(self.index)..at(self.index + 1)
    }

    /// The shard of this process, from the cluster engine's environment:
    ///
    /// - a Kubernetes Indexed Job: `JOB_COMPLETION_INDEX` is the index;
    ///   the count must be given (`count`, the Job's `completions`);
    /// - a Slurm job array: `SLURM_ARRAY_TASK_ID` plus `RAYGENT_SHARD_OFFSET`
    ///   (0 if unset) is the index when `count` is given; without `count`,
    ///   the array's tasks are the shards: the count is
    ///   `SLURM_ARRAY_TASK_COUNT` and the index `SLURM_ARRAY_TASK_ID -
    ///   SLURM_ARRAY_TASK_MIN` (so `--array=1-8` works), which needs an
    ///   array of consecutive indices.
    ///
    /// `None` when neither engine's variables are set.
    pub fn from_env(count: Option<u32>) -> Result<Option<Shard>, Error> {
        Shard::from_vars(count, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables looked up by `var`
    /// (for tests, or a launcher that passes them some other way).
    ///
    /// ```
    /// use raygent_actors::Shard;
    /// let env = |name: &str| match name {
    ///     "SLURM_ARRAY_TASK_ID" => Some("5".to_owned()),
    ///     "SLURM_ARRAY_TASK_COUNT" => Some("8".to_owned()),
    ///     "SLURM_ARRAY_TASK_MIN" => Some("1".to_owned()),
    ///     "SLURM_ARRAY_TASK_MAX" => Some("8".to_owned()),
    ///     _ => None,
    /// };
    /// assert_eq!(Shard::from_vars(None, env).unwrap(), Some(Shard::new(4, 8).unwrap()));
    /// ```
    pub fn from_vars(
        count: Option<u32>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Shard>, Error> {
        let number = |name: &str| -> Result<Option<u32>, Error> {
            match var(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v.trim().parse::<u32>().map(Some).map_err(|_| {
                    Error::InvalidConfig(format!("{name}={v:?} is not a shard index or count"))
                }),
            }
        };
        if let Some(index) = number(K8S_INDEX_ENV)? {
            let Some(count) = count else {
                return Err(Error::InvalidConfig(format!(
                    "{K8S_INDEX_ENV}={index} is set (a Kubernetes Indexed Job), but not the \
                     shard count: pass --shards N, N being the Job's completions"
                )));
            };
            return Shard::new(index, count).map(Some).map_err(|e| {
                Error::InvalidConfig(format!("{K8S_INDEX_ENV}={index} with {count} shards: {e}"))
            });
        }
        let Some(id) = number(SLURM_TASK_ID_ENV)? else {
            return Ok(None);
        };
        let offset = number(SHARD_OFFSET_ENV)?;
        if let Some(count) = count {
            let index = id.checked_add(offset.unwrap_or(0)).ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "{SHARD_OFFSET_ENV} + {SLURM_TASK_ID_ENV} overflows"
                ))
            })?;
            return Shard::new(index, count).map(Some).map_err(|e| {
                Error::InvalidConfig(format!(
                    "{SLURM_TASK_ID_ENV}={id}{} with {count} shards: {e}",
                    offset.map_or(String::new(), |o| format!(" and {SHARD_OFFSET_ENV}={o}"))
                ))
            });
        }
        if offset.is_some() {
            return Err(Error::InvalidConfig(format!(
                "{SHARD_OFFSET_ENV} is set, so this array holds only some of the shards: \
                 pass --shards N"
            )));
        }
        let total = number(SLURM_TASK_COUNT_ENV)?.ok_or_else(|| {
            Error::InvalidConfig(format!(
                "{SLURM_TASK_ID_ENV}={id} is set but not {SLURM_TASK_COUNT_ENV}: pass --shards N"
            ))
        })?;
        let min = number(SLURM_TASK_MIN_ENV)?.unwrap_or(0);
        let max = number(SLURM_TASK_MAX_ENV)?.unwrap_or(min + total.saturating_sub(1));
        if max.checked_sub(min).and_then(|d| d.checked_add(1)) != Some(total) || id < min {
            return Err(Error::InvalidConfig(format!(
                "the Slurm array ({SLURM_TASK_MIN_ENV}={min}, {SLURM_TASK_MAX_ENV}={max}, \
                 {SLURM_TASK_COUNT_ENV}={total}) is not a run of consecutive indices, so its \
                 tasks cannot be numbered as shards: pass --shards N (the task id is then the \
                 shard index)"
            )));
        }
        Shard::new(id - min, total).map(Some)
    }
}

/// The items of `shard`'s share of `items`, whose length must be known
/// (an exact `size_hint`, as a `Vec`, a slice or a range have).
pub(crate) fn select<I: Iterator>(
    items: I,
    shard: Option<Shard>,
) -> Result<std::iter::Take<std::iter::Skip<I>>, Error> {
    let (skip, take) = match shard {
        None => (0, usize::MAX),
        Some(shard) => {
            let len = match items.size_hint() {
                (low, Some(high)) if low == high => low as u64,
                _ => {
                    return Err(Error::InvalidConfig(format!(
                        "{shard} needs an input whose length is known ahead (an iterator with \
                         an exact size_hint, such as a Vec, a slice or a range), to cut it into \
                         contiguous shares"
                    )));
                }
            };
            let share = shard.share(len);
            (share.start as usize, (share.end - share.start) as usize)
        }
    };
    Ok(items.skip(skip).take(take))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn shares_cover_everything_in_order() {
        for count in 1..12u32 {
            for len in [0u64, 1, 5, 11, 1000, 1001] {
                let mut next = 0;
                for i in 0..count {
                    let s = Shard::new(i, count).unwrap().share(len);
                    assert_eq!(s.start, next);
                    assert!(s.end - s.start <= len / u64::from(count) + 1);
                    next = s.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn kubernetes_needs_the_count() {
        let env = [("JOB_COMPLETION_INDEX", "3")];
        assert_eq!(
            Shard::from_vars(Some(8), vars(&env)).unwrap(),
            Some(Shard::new(3, 8).unwrap())
        );
        let e = Shard::from_vars(None, vars(&env)).unwrap_err().to_string();
        assert!(e.contains("--shards"), "{e}");
        let e = Shard::from_vars(Some(3), vars(&env))
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range"), "{e}");
    }

    #[test]
    fn slurm_arrays_mind_the_minimum_and_the_offset() {
        let env = [
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
        ];
        assert_eq!(
            Shard::from_vars(None, vars(&env)).unwrap(),
            Some(Shard::new(2, 4).unwrap())
        );
        // With the count given, the task id is the index (a resubmitted
        // array of some shards keeps their indices).
        assert_eq!(
            Shard::from_vars(Some(10), vars(&env)).unwrap(),
            Some(Shard::new(7, 10).unwrap())
        );
        let env = [
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("RAYGENT_SHARD_OFFSET", "1000"),
        ];
        assert_eq!(
            Shard::from_vars(Some(2000), vars(&env)).unwrap(),
            Some(Shard::new(1007, 2000).unwrap())
        );
        assert!(Shard::from_vars(None, vars(&env)).is_err());
        // `--array=1,3,5`: not consecutive.
        let env = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "5"),
        ];
        let e = Shard::from_vars(None, vars(&env)).unwrap_err().to_string();
        assert!(e.contains("consecutive"), "{e}");
        assert_eq!(Shard::from_vars(None, vars(&[])).unwrap(), None);
        let e = Shard::from_vars(None, vars(&[("SLURM_ARRAY_TASK_ID", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_ID"), "{e}");
    }

    #[test]
    fn select_takes_the_share_or_refuses_unknown_lengths() {
        let s = Some(Shard::new(1, 3).unwrap());
        let got: Vec<u32> = select(0..10u32, s).unwrap().collect();
        assert_eq!(got, vec![3, 4, 5]);
        let all: Vec<u32> = select(0..4u32, None).unwrap().collect();
        assert_eq!(all, vec![0, 1, 2, 3]);
        assert!(select((0..10u32).filter(|x| x % 2 == 0), s).is_err());
    }
}
