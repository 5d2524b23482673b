//! `raygent status` and `raygent cat` of a sharded job: a few small
//! objects per shard, never every part.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::{Context, anyhow};
use serde::Serialize;

use crate::shard::{ClaimRecord, DoneRecord, JobRecord, Layout, SUCCESS_MARKER, attempt_dir};
use crate::{Failure, exit, store};

/// How far one shard got.
#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    /// The shard index.
    pub shard: u32,
    /// `done`, `stopped` (it has a checkpoint; its process may still be
    /// running) or `never_started`.
    pub state: &'static str,
    /// The attempt whose results count (the newest with a checkpoint).
    pub attempt: Option<u32>,
    /// Where that attempt's results are: an ordinary dataset (for a
    /// Parquet job, the `*.parquet` files a reader outside raygent globs,
    /// one shard after another in shard order).
    pub results: Option<String>,
    /// Who ran (or runs) the newest attempt.
    pub runner: Option<String>,
    /// Chunks committed.
    pub chunks_committed: u64,
    /// Input records committed.
    pub items_committed: u64,
    /// Results committed.
    pub results_committed: u64,
    /// Chunks that failed on every attempt and were skipped.
    pub failed_chunks: Vec<raygent_core::FailedChunk>,
    /// The last checkpoint (done: when it was marked done).
    pub last_checkpoint_unix: Option<u64>,
    /// The same, as RFC 3339.
    pub last_checkpoint: Option<String>,
}

/// A whole sharded job's status.
#[derive(Debug, Serialize)]
pub struct JobStatus {
    /// The URL given.
    pub url: String,
    /// `complete` or `incomplete`.
    pub state: &'static str,
    /// How many shards.
    pub shards: u32,
    /// What every shard runs.
    pub task: String,
    /// Records per chunk.
    pub chunk_size: u64,
    /// Shards done.
    pub shards_done: u64,
    /// Shards stopped (or still running).
    pub shards_stopped: u64,
    /// Shards never started.
    pub shards_never_started: u64,
    /// Shards with chunks that failed on every attempt.
    pub shards_with_failed_chunks: Vec<u32>,
    /// Totals over every shard.
    pub chunks_committed: u64,
    /// Input records committed.
    pub items_committed: u64,
    /// Results committed.
    pub results_committed: u64,
    /// Whether `_SUCCESS` is there.
    pub success_marker: bool,
    /// The shards to run again (not done).
    pub rerun: Vec<u32>,
    /// Each shard.
    pub shard_status: Vec<ShardStatus>,
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

/// `1,2,3,5,7,8` as `1-3,5,7-8`.
pub fn ranges(indices: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

fn done_status(layout: &Layout, d: &DoneRecord) -> ShardStatus {
    ShardStatus {
        shard: d.shard,
        state: "done",
        attempt: Some(d.attempt),
        results: Some(layout.url_of(&attempt_dir(d.shard, d.attempt))),
        runner: None,
        chunks_committed: d.chunks,
        items_committed: d.items,
        results_committed: d.results,
        failed_chunks: d.failed_chunks.clone(),
        last_checkpoint_unix: Some(d.finished_unix),
        last_checkpoint: Some(rfc3339(d.finished_unix)),
    }
}

/// The newest attempt at `shard` (counting down from `latest`) that has a
/// checkpoint, and its state, read through the layout's own store (so that
/// `status` counts these requests too).
fn newest_state(
    layout: &Layout,
    shard: u32,
    latest: u32,
) -> Result<Option<(u32, raygent_actors::JobState)>, Failure> {
    use raygent_actors::ProgressStore;
    for attempt in (1..=latest).rev() {
        let dir = format!(
            "{}/{}",
            attempt_dir(shard, attempt),
            raygent::CHECKPOINT_DIR
        );
        let steps = raygent_ckpt::StepCheckpointer::new(
            std::sync::Arc::clone(layout.root().store()),
            layout.root().path(&dir),
        )
        .map(|c| c.with_inline_state(raygent_actors::INLINE_JOB_STATE_MAX))
        .with_context(|| format!("opening the checkpoints under {}", layout.url_of(&dir)))
        .map_err(Failure::failed)?;
        let state = raygent_actors::StepProgressStore::new(steps)
            .load_latest()
            .with_context(|| format!("reading the checkpoint under {}", layout.url_of(&dir)))
            .map_err(Failure::failed)?;
        if let Some(state) = state {
            return Ok(Some((attempt, state)));
        }
    }
    Ok(None)
}

/// The status of a shard that is not done, from its newest claim and the
/// newest attempt with a checkpoint.
fn open_status(layout: &Layout, shard: u32) -> Result<ShardStatus, Failure> {
    let claim: Option<ClaimRecord> = layout.latest_claim(shard).map_err(Failure::failed)?;
    let Some(claim) = claim else {
        return Ok(ShardStatus {
            shard,
            state: "never_started",
            attempt: None,
            results: None,
            runner: None,
            chunks_committed: 0,
            items_committed: 0,
            results_committed: 0,
            failed_chunks: Vec::new(),
            last_checkpoint_unix: None,
            last_checkpoint: None,
        });
    };
    let state = newest_state(layout, shard, claim.attempt)?;
    Ok(ShardStatus {
        shard,
        state: "stopped",
        attempt: state.as_ref().map(|(a, _)| *a),
        results: state
            .as_ref()
            .map(|(a, _)| layout.url_of(&attempt_dir(shard, *a))),
        runner: Some(claim.runner.to_string()),
        chunks_committed: state.as_ref().map_or(0, |(_, s)| s.next_chunk),
        items_committed: state.as_ref().map_or(0, |(_, s)| s.next_item),
        results_committed: state.as_ref().map_or(0, |(_, s)| s.results),
        failed_chunks: state
            .as_ref()
            .map(|(_, s)| s.failed.clone())
            .unwrap_or_default(),
        last_checkpoint_unix: state.as_ref().map(|(_, s)| s.written_at),
        last_checkpoint: state.as_ref().map(|(_, s)| rfc3339(s.written_at)),
    })
}

/// The status of every shard of `job`.
pub fn job_status(layout: &Layout, url: &str, job: &JobRecord) -> Result<JobStatus, Failure> {
    let done: BTreeSet<u32> = layout.done_shards(job.shards).map_err(Failure::failed)?;
    let done_list: Vec<u32> = done.iter().copied().collect();
    let mut all: Vec<ShardStatus> = layout
        .done_records(&done_list)
        .map_err(Failure::failed)?
        .iter()
        .map(|d| done_status(layout, d))
        .collect();
    let open: Vec<u32> = (0..job.shards).filter(|s| !done.contains(s)).collect();
    // A handful of threads: each open shard costs a few sequential requests.
    let threads = open.len().clamp(1, 8);
    let per = open.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<ShardStatus>, Failure>> = std::thread::scope(|scope| {
        let handles: Vec<_> = open
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(|&s| open_status(layout, s)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Failure::failed(anyhow!("a status thread panicked"))))
            })
            .collect()
    });
    for r in results {
        all.extend(r?);
    }
    all.sort_by_key(|s| s.shard);
    let count = |state: &str| all.iter().filter(|s| s.state == state).count() as u64;
    let rerun: Vec<u32> = all
        .iter()
        .filter(|s| s.state != "done")
        .map(|s| s.shard)
        .collect();
    Ok(JobStatus {
        url: url.to_owned(),
        state: if rerun.is_empty() {
            "complete"
        } else {
            "incomplete"
        },
        shards: job.shards,
        task: format!(
            "command {:?}; input {} ({}); per-item {}; shell {}",
            job.identity.command,
            job.identity.input,
            job.identity.input_format,
            job.identity.per_item,
            job.identity.shell
        ),
        chunk_size: job.identity.chunk_size,
        shards_done: count("done"),
        shards_stopped: count("stopped"),
        shards_never_started: count("never_started"),
        shards_with_failed_chunks: all
            .iter()
            .filter(|s| !s.failed_chunks.is_empty())
            .map(|s| s.shard)
            .collect(),
        chunks_committed: all.iter().map(|s| s.chunks_committed).sum(),
        items_committed: all.iter().map(|s| s.items_committed).sum(),
        results_committed: all.iter().map(|s| s.results_committed).sum(),
        success_marker: layout.exists(SUCCESS_MARKER).map_err(Failure::failed)?,
        rerun,
        shard_status: all,
    })
}

fn write_status(w: &mut impl Write, st: &JobStatus) -> std::io::Result<()> {
    let of = |state: &str| -> Vec<u32> {
        st.shard_status
            .iter()
            .filter(|s| s.state == state)
            .map(|s| s.shard)
            .collect()
    };
    writeln!(w, "job:              {} ({} shards)", st.url, st.shards)?;
    if st.state == "complete" {
        writeln!(w, "state:            complete")?;
    } else {
        writeln!(
            w,
            "state:            incomplete: {} of {} shards done",
            st.shards_done, st.shards
        )?;
    }
    writeln!(w, "task:             {}", st.task)?;
    writeln!(w, "chunk size:       {}", st.chunk_size)?;
    writeln!(
        w,
        "done:             {}{}",
        st.shards_done,
        match of("done") {
            v if v.is_empty() => String::new(),
            v => format!(" ({})", ranges(&v)),
        }
    )?;
    writeln!(w, "stopped:          {}", st.shards_stopped)?;
    for s in st.shard_status.iter().filter(|s| s.state == "stopped") {
        writeln!(
            w,
            "  shard {}: attempt {}, {} chunks, {} items committed, last checkpoint {}; {}",
            s.shard,
            s.attempt.map_or("-".into(), |a| a.to_string()),
            s.chunks_committed,
            s.items_committed,
            s.last_checkpoint.as_deref().unwrap_or("none"),
            s.runner.as_deref().unwrap_or("")
        )?;
    }
    writeln!(
        w,
        "never started:    {}{}",
        st.shards_never_started,
        match of("never_started") {
            v if v.is_empty() => String::new(),
            v => format!(" ({})", ranges(&v)),
        }
    )?;
    writeln!(w, "chunks committed: {}", st.chunks_committed)?;
    writeln!(w, "items committed:  {}", st.items_committed)?;
    writeln!(w, "results:          {}", st.results_committed)?;
    let failed: usize = st.shard_status.iter().map(|s| s.failed_chunks.len()).sum();
    writeln!(w, "failed chunks:    {failed}")?;
    for s in &st.shard_status {
        for f in &s.failed_chunks {
            writeln!(
                w,
                "  shard {} chunk {} (items {}..{}), {} attempts: {}",
                s.shard, f.index, f.items.start, f.items.end, f.attempts, f.error
            )?;
        }
    }
    if st.rerun.is_empty() {
        writeln!(w, "rerun:            none")?;
    } else {
        writeln!(w, "rerun:            {}", ranges(&st.rerun))?;
    }
    Ok(())
}

/// `raygent status` of a sharded job.
pub fn status(layout: &Layout, url: &str, job: &JobRecord, json: bool) -> Result<u8, Failure> {
    let st = job_status(layout, url, job)?;
    tracing::info!(
        requests = layout.requests(),
        "status of {} shards: {} requests",
        st.shards,
        layout.requests()
    );
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let res = if json {
        serde_json::to_writer_pretty(&mut w, &st)
            .map_err(std::io::Error::other)
            .and_then(|_| writeln!(w))
    } else {
        write_status(&mut w, &st)
    };
    res.context("writing to stdout").map_err(Failure::failed)?;
    Ok(exit::DONE)
}

/// `raygent cat` of a sharded job: every shard's results in shard order,
/// which is input order.
pub fn cat(
    layout: &Layout,
    url: &str,
    job: &JobRecord,
    partial: bool,
    printer: &mut crate::commands::Printer,
) -> Result<u8, Failure> {
    let done = layout.done_shards(job.shards).map_err(Failure::failed)?;
    let missing: Vec<u32> = (0..job.shards).filter(|s| !done.contains(s)).collect();
    let mut open = std::collections::BTreeMap::new();
    if !missing.is_empty() {
        let mut lines = Vec::new();
        for &s in &missing {
            let st = open_status(layout, s)?;
            lines.push(match st.state {
                "never_started" => format!("shard {s}: never started, none of its records"),
                _ => format!(
                    "shard {s}: stopped after {} of its records (last checkpoint {}), the rest missing",
                    st.items_committed,
                    st.last_checkpoint.as_deref().unwrap_or("none")
                ),
            });
            open.insert(s, st);
        }
        let head = format!(
            "{url} is incomplete: {} of {} shards are not done ({}):\n  {}",
            missing.len(),
            job.shards,
            ranges(&missing),
            lines.join("\n  ")
        );
        if !partial {
            return Err(Failure::with_code(
                exit::INCOMPLETE,
                anyhow!(
                    "{head}\nnothing was printed: run those shards again (`raygent slurm resubmit {url}`, \
                     or `raygent run --shards {} --shard I ...`), or add --partial to print what is committed",
                    job.shards
                ),
            ));
        }
        say!("raygent: warning: {head}\nraygent: printing what is committed (--partial)");
    }
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    for s in 0..job.shards {
        let attempt = if done.contains(&s) {
            let d = layout
                .done(s)
                .map_err(Failure::failed)?
                .ok_or_else(|| Failure::failed(anyhow!("the done record of shard {s} vanished")))?;
            if d.results == 0 {
                continue;
            }
            d.attempt
        } else {
            match open.get(&s).and_then(|st| st.attempt) {
                Some(a) if open.get(&s).is_some_and(|st| st.results_committed > 0) => a,
                _ => continue,
            }
        };
        let dir = layout.url_of(&attempt_dir(s, attempt));
        let loc = store::existing(&dir)?;
        let reader = match raygent_savers::DatasetReader::open_location(loc) {
            Ok(r) => r,
            Err(raygent_savers::Error::NotFound { .. }) if !done.contains(&s) => continue,
            Err(e) => {
                return Err(Failure::failed(
                    anyhow::Error::new(e).context(format!("opening shard {s}'s results at {dir}")),
                ));
            }
        };
        if printer.print(&reader, &dir, &mut w)? {
            return Ok(exit::DONE);
        }
    }
    match w.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::failed(
            anyhow::Error::new(e).context("writing to stdout"),
        )),
        _ => Ok(exit::DONE),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges_are_compact() {
        assert_eq!(super::ranges(&[0, 1, 2, 4, 6, 7]), "0-2,4,6-7");
        assert_eq!(super::ranges(&[]), "");
        assert_eq!(super::ranges(&[5]), "5");
    }
}
