//! `raygent run` of one shard: claim an attempt, continue from the newest
//! earlier attempt, run, and mark the shard done (see [`crate::shard`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::anyhow;
use raygent_actors::{JobState, ProgressStore, Shard};
use raygent_core::{Error, StopHandle};

use crate::cli::RunArgs;
use crate::input::files::{Inputs, Origin};
use crate::input::split::{self, Piece};
use crate::shard::{
    Base, ClaimRecord, Created, DoneRecord, InputEntry, InputSummary, JOB_RECORD, JobIdentity,
    JobRecord, LAYOUT_VERSION, Layout, Runner, attempt_dir, now_unix,
};
use crate::{Failure, exit, store};

/// The shard this `raygent run` runs, from `--shards`/`--shard` or the
/// cluster engine's environment; `None` for a plain, unsharded run.
pub fn shard_of(args: &RunArgs) -> Result<Option<Shard>, Failure> {
    let shard = match (args.shard, args.shards) {
        (Some(i), Some(n)) => Some(Shard::new(i, n).map_err(Failure::usage)?),
        (Some(_), None) => return Err(Failure::usage(anyhow!("--shard I needs --shards N"))),
        (None, n) => match Shard::from_env(n).map_err(Failure::usage)? {
            Some(s) => Some(s),
            None if n.is_some() => {
                return Err(Failure::usage(anyhow!(
                    "--shards N needs --shard I, or the index of a Slurm array task \
                     (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)"
                )));
            }
            None => None,
        },
    };
    if shard.is_some() && args.fresh {
        return Err(Failure::usage(anyhow!(
            "--fresh cannot be used with shards: every shard would discard the others' work; \
             to start a sharded job over, delete its output (or choose another --output)"
        )));
    }
    Ok(shard)
}

/// A plain run refuses an output that holds a sharded job. (An output that
/// cannot be read is left to the saver, whose check names the cause.)
pub fn refuse_sharded_output(output: &str) -> Result<(), Failure> {
    let layout = Layout::new(store::location(output)?).map_err(Failure::failed)?;
    let job = layout.job().unwrap_or_else(|e| {
        tracing::debug!(%e, "cannot read the job record");
        None
    });
    if let Some(job) = job {
        return Err(Failure::usage(anyhow!(
            "{output} holds a sharded job ({} shards, see {}): run it with --shards {} and \
             --shard I (or as a Slurm array or Kubernetes Indexed Job), or choose another --output",
            job.shards,
            layout.url_of(JOB_RECORD),
            job.shards
        )));
    }
    Ok(())
}

/// The identity every shard of the job shares.
pub fn job_record(args: &RunArgs, inputs: &Inputs, shards: u32) -> (JobRecord, Vec<InputEntry>) {
    let entries: Vec<InputEntry> = inputs
        .files
        .iter()
        .map(|f| InputEntry {
            name: f.name.clone(),
            bytes: f.size.unwrap_or(0),
        })
        .collect();
    let record = JobRecord {
        layout_version: LAYOUT_VERSION,
        shards,
        identity: JobIdentity {
            command: args.command.clone(),
            per_item: args.per_item,
            shell: args.shell,
            input: inputs.identity().to_owned(),
            input_format: format!("{:?}", args.input_format).to_lowercase(),
            chunk_size: args.chunk_size as u64,
            save_interval: args.save_interval as u64,
            format: format!("{:?}", args.format).to_lowercase(),
        },
        input: InputSummary {
            files: inputs.files.len() as u64,
            bytes: entries.iter().map(|e| e.bytes).sum(),
            digest: split::digest(inputs, args.input_format),
        },
        created_unix: now_unix(),
    };
    (record, entries)
}

/// Records the job at `layout` or checks it is the same; a different job
/// is a usage error naming what differs.
pub fn check_job(
    layout: &Layout,
    output: &str,
    job: &JobRecord,
    input: &[InputEntry],
) -> Result<(), Failure> {
    // A missing bucket, wrong credentials, a read-only directory: said
    // before anything else.
    layout
        .block_on(layout.root().check_writable())
        .map_err(|e| {
            Failure::usage(anyhow::Error::new(e).context(format!("cannot write to {output}")))
        })?;
    if layout.job().map_err(Failure::failed)?.is_none() {
        // The first shard: the output must not hold an unsharded job.
        let root = layout.root().clone();
        let plain = store::job_state(&root)?.is_some()
            || raygent_savers::DatasetReader::open_location(root).is_ok();
        if plain {
            return Err(Failure::usage(anyhow!(
                "{output} holds an unsharded job's results: run it without --shards to resume \
                 it, or choose another --output for the sharded job"
            )));
        }
    }
    match layout
        .create_or_check_job(job, input)
        .map_err(Failure::failed)?
    {
        Ok(()) => Ok(()),
        Err(differences) => Err(Failure::usage(anyhow!(
            "{output} holds a different sharded job ({}): {}; run the same command as before \
             (every shard runs the same command line), or choose another --output",
            layout.url_of(JOB_RECORD),
            differences.join("; ")
        ))),
    }
}

/// The newest job state of an attempt, if it has a checkpoint.
fn attempt_state(layout: &Layout, shard: u32, attempt: u32) -> Result<Option<JobState>, Failure> {
    let loc = store::location(&layout.url_of(&attempt_dir(shard, attempt)))?;
    store::job_state(&loc)
}

/// The newest attempt at `shard` (counting down from `latest`) that has a
/// checkpoint, and its state.
pub fn newest_state(
    layout: &Layout,
    shard: u32,
    latest: u32,
) -> Result<Option<(u32, JobState)>, Failure> {
    for attempt in (1..=latest).rev() {
        if let Some(state) = attempt_state(layout, shard, attempt)? {
            return Ok(Some((attempt, state)));
        }
    }
    Ok(None)
}

/// A progress store that refuses to write once a newer attempt has claimed
/// the shard, and then stops the job.
struct Fenced {
    inner: Arc<dyn ProgressStore>,
    layout: Arc<Layout>,
    shard: u32,
    next_attempt: u32,
    stop: StopHandle,
    fenced: Arc<AtomicBool>,
}

impl ProgressStore for Fenced {
    fn load_latest(&self) -> Result<Option<JobState>, Error> {
        self.inner.load_latest()
    }
    fn save(&self, step: u64, state: &JobState) -> Result<(), Error> {
        let newer = self
            .layout
            .claim_at(self.shard, self.next_attempt)
            .map_err(|e| Error::Checkpoint(format!("{e:#}").into()))?;
        if let Some(c) = newer {
            self.fenced.store(true, Ordering::SeqCst);
            self.stop.stop();
            return Err(Error::Checkpoint(
                format!(
                    "shard {} was taken over by attempt {} ({})",
                    self.shard, c.attempt, c.runner
                )
                .into(),
            ));
        }
        self.inner.save(step, state)
    }
    fn clear(&self) -> Result<(), Error> {
        self.inner.clear()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

fn fenced_failure(output: &str, shard: Shard, mine: u32, newer: &ClaimRecord) -> Failure {
    Failure::with_code(
        exit::FENCED,
        anyhow!(
            "{shard} of {output} was taken over by another process (attempt {}, {}, started {}), \
             which runs it now; this process (attempt {mine}) stopped, and what it saved is left \
             unread in {}",
            newer.attempt,
            newer.runner,
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(newer.started_unix)
            ),
            attempt_dir(shard.index(), mine)
        ),
    )
}

/// Marks `shard` done with attempt `attempt`'s final state, then writes
/// `_SUCCESS` if it was the last. `Ok(false)` if another attempt marked it
/// done first.
fn mark_done(
    layout: &Layout,
    shard: Shard,
    attempt: u32,
    state: &JobState,
    share: &str,
) -> Result<bool, Failure> {
    let done = DoneRecord {
        shard: shard.index(),
        attempt,
        chunks: state.next_chunk,
        items: state.next_item,
        results: state.results,
        parts: state.parts,
        failed_chunks: state.failed.clone(),
        share: share.to_owned(),
        finished_unix: now_unix(),
    };
    let created = layout.create_done(&done).map_err(Failure::failed)?;
    // Also when another process marked it: the last shard to finish may
    // have died before writing the marker.
    layout
        .mark_success_if_complete(shard.count())
        .map_err(Failure::failed)?;
    Ok(created == Created::Written)
}

fn say_done_already(quiet: bool, output: &str, shard: Shard, done: &DoneRecord) -> u8 {
    if !quiet {
        say!(
            "raygent: {shard} of {output} is already complete (attempt {}: {} items, {} results); nothing to do",
            done.attempt,
            done.items,
            done.results
        );
    }
    exit::DONE
}

/// Runs `shard` of the job described by `args`.
pub fn run(
    args: &RunArgs,
    shard: Shard,
    inputs: &Inputs,
    pieces: Vec<Piece>,
    identity: String,
    quiet: bool,
) -> Result<u8, Failure> {
    let output = args.output.as_str();
    if inputs
        .files
        .iter()
        .any(|f| matches!(f.origin, Origin::Stdin))
    {
        return Err(Failure::usage(anyhow!(
            "stdin cannot be shared out among shards: give a file or an S3 object"
        )));
    }
    let layout = Arc::new(Layout::new(store::location(output)?).map_err(Failure::failed)?);
    let (job, entries) = job_record(args, inputs, shard.count());
    check_job(&layout, output, &job, &entries)?;
    let share = split::describe(inputs, &pieces);
    let index = shard.index();
    if let Some(done) = layout.done(index).map_err(Failure::failed)? {
        layout
            .mark_success_if_complete(shard.count())
            .map_err(Failure::failed)?;
        return Ok(say_done_already(quiet, output, shard, &done));
    }
    let latest = layout.latest_claim(index).map_err(Failure::failed)?;
    let latest_attempt = latest.as_ref().map_or(0, |c| c.attempt);
    let base = newest_state(&layout, index, latest_attempt)?;
    if let Some((attempt, state)) = &base
        && state.complete
    {
        // It finished but died before marking the shard done.
        mark_done(&layout, shard, *attempt, state, &share)?;
        let done = layout
            .done(index)
            .map_err(Failure::failed)?
            .ok_or_else(|| Failure::failed(anyhow!("the done record of {shard} vanished")))?;
        return Ok(say_done_already(quiet, output, shard, &done));
    }
    let mine = latest_attempt + 1;
    let claim = ClaimRecord {
        shard: index,
        attempt: mine,
        runner: Runner::this(),
        started_unix: now_unix(),
        base: base.as_ref().and_then(|(attempt, state)| {
            (state.next_chunk > 0).then_some(Base {
                attempt: *attempt,
                next_chunk: state.next_chunk,
            })
        }),
    };
    if layout.claim(&claim).map_err(Failure::failed)? == Created::Exists {
        let other = layout.claim_at(index, mine).ok().flatten();
        return Err(Failure::with_code(
            exit::FENCED,
            anyhow!(
                "{shard} of {output} is being started by another process at the same moment \
                 ({}): only one process may run a shard, so this one stops",
                other.map_or_else(
                    || format!("it claimed attempt {mine}"),
                    |c| format!("attempt {mine}, {}", c.runner)
                )
            ),
        ));
    }
    if let Some(done) = layout.done(index).map_err(Failure::failed)? {
        return Ok(say_done_already(quiet, output, shard, &done));
    }
    if !quiet {
        say!(
            "raygent: {shard} of {output}, attempt {mine}: {share}{}",
            claim.base.as_ref().map_or(String::new(), |b| format!(
                " (continuing attempt {} after {} chunks)",
                b.attempt, b.next_chunk
            ))
        );
    }
    let dir = attempt_dir(index, mine);
    let out = store::location(&layout.url_of(&dir))?;
    let inner: Arc<dyn ProgressStore> = store::progress_store(&out)?;
    if let (Some(b), Some((_, state))) = (&claim.base, &base) {
        let from = attempt_dir(index, b.attempt);
        if let Err(e) = layout.copy_prefix(&from, &dir, b.next_chunk) {
            // The attempt copied from may have finished the shard meanwhile
            // (and removed the older directories).
            if let Some(done) = layout.done(index).map_err(Failure::failed)? {
                layout.remove_dir(&dir);
                return Ok(say_done_already(quiet, output, shard, &done));
            }
            return Err(Failure::failed(e.context(format!(
                "continuing {shard} from {}",
                layout.url_of(&from)
            ))));
        }
        let from_url = store::location(&layout.url_of(&from))?.url().to_owned();
        let mut state = state.clone();
        state.config.saver = match state.config.saver.strip_suffix(from_url.as_str()) {
            Some(format) => format!("{format}{}", out.url()),
            None => {
                return Err(Failure::failed(anyhow!(
                    "cannot continue {shard} from {}: its checkpoint names the output {:?}",
                    layout.url_of(&from),
                    state.config.saver
                )));
            }
        };
        inner
            .save(state.next_chunk, &state)
            .map_err(|e| Failure::failed(anyhow!("continuing {shard}: {e}")))?;
    }
    let stop = StopHandle::new();
    let fenced = Arc::new(AtomicBool::new(false));
    let store: Arc<dyn ProgressStore> = Arc::new(Fenced {
        inner: Arc::clone(&inner),
        layout: Arc::clone(&layout),
        shard: index,
        next_attempt: mine + 1,
        stop: stop.clone(),
        fenced: Arc::clone(&fenced),
    });
    let identity = format!("{identity}; {shard}");
    let result = crate::commands::run_job(args, inputs, pieces, out, store, identity, stop, quiet)?;
    let newer = layout.claim_at(index, mine + 1).map_err(Failure::failed)?;
    if let Some(newer) = &newer {
        return Err(fenced_failure(output, shard, mine, newer));
    }
    if fenced.load(Ordering::SeqCst) {
        return Err(Failure::with_code(
            exit::FENCED,
            anyhow!("{shard} of {output} was taken over by another process; this one stopped"),
        ));
    }
    let label = format!("{output} ({shard})");
    let Ok(report) = result else {
        return crate::commands::finish(result, &label, quiet, None);
    };
    let state = inner
        .load_latest()
        .map_err(|e| Failure::failed(anyhow!("reading the final checkpoint of {shard}: {e}")))?
        .filter(|s| s.complete)
        .ok_or_else(|| {
            Failure::failed(anyhow!(
                "{shard} finished, but its final checkpoint is missing in {}",
                layout.url_of(&dir)
            ))
        })?;
    if !mark_done(&layout, shard, mine, &state, &share)? {
        let winner = layout.done(index).ok().flatten();
        layout.remove_dir(&dir);
        return Err(Failure::with_code(
            exit::FENCED,
            anyhow!(
                "{shard} of {output} was completed by another process first (attempt {}); this \
                 run's results were discarded",
                winner.map_or_else(|| "?".to_owned(), |w| w.attempt.to_string())
            ),
        ));
    }
    // The earlier attempts' directories are garbage now (a process still
    // writing to one cannot commit anything).
    for old in 1..mine {
        layout.remove_dir(&attempt_dir(index, old));
    }
    crate::commands::finish(Ok(report), &label, quiet, None)
}
