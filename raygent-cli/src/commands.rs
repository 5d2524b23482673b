//! The subcommands.

use std::io::{BufWriter, Write};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use raygent_actors::{
    Progress, ProgressStore, ResumeConfig, SubmitOptions, TaskManager, WorkerCommand,
};
use raygent_core::{
    Discard, Error, FailurePolicy, JobReport, RetryPolicy, StopHandle, Task, TaskFactory,
};
use raygent_savers::{DatasetReader, DatasetSaver, Format, Location, SaverOptions, Value};
use serde::Serialize;

use crate::cli::{
    CatArgs, CatFormat, CkptAction, CkptArgs, OnFailure, OutputFormat, ResultFormat, RunArgs,
    StatusArgs,
};
use crate::input::files::Inputs;
use crate::input::{self, InputFormat, split};
use crate::json_results::JsonResults;
use crate::per_item::PerItemTask;
use crate::progress::Reporter;
use crate::shard::Layout;
use crate::{Failure, exit, store};

/// Finds `program` like the shell would, so a typo is reported before the
/// job starts rather than as a failing chunk.
fn check_program(program: &str) -> Result<(), Failure> {
    if which::which(program).is_ok() {
        Ok(())
    } else {
        Err(Failure::usage(anyhow!(
            "command not found: {program:?} (check the spelling and your PATH, or use --shell for a shell script)"
        )))
    }
}

fn validate(args: &RunArgs) -> Result<(), Failure> {
    if args.chunk_size == 0 {
        return Err(Failure::usage(anyhow!("--chunk-size must be at least 1")));
    }
    if args.save_interval == 0 {
        return Err(Failure::usage(anyhow!(
            "--save-interval must be at least 1"
        )));
    }
    if args.cores_per_worker == 0 {
        return Err(Failure::usage(anyhow!(
            "--cores-per-worker must be at least 1"
        )));
    }
    if args.workers == Some(0) {
        return Err(Failure::usage(anyhow!("--workers must be at least 1")));
    }
    Ok(())
}

/// `raygent run`.
pub fn run(args: RunArgs, quiet: bool) -> Result<u8, Failure> {
    validate(&args)?;
    let inputs = Inputs::resolve(&args.input).map_err(Failure::usage)?;
    if !args.shell {
        check_program(&args.command[0])?;
    }
    let shard = crate::shard_run::shard_of(&args)?;
    let pieces =
        split::plan(&inputs, args.input_format, shard).map_err(|e| Failure::usage(anyhow!(e)))?;
    let mut identity = format!(
        "command {:?}; input {} ({:?}); per-item {}; shell {}",
        args.command,
        inputs.identity(),
        args.input_format,
        args.per_item,
        args.shell
    );
    // Only when not the default, so the jobs from before the option resume.
    if args.result_format == ResultFormat::Json {
        identity.push_str("; results json");
    }
    if let Some(shard) = shard {
        return crate::shard_run::run(&args, shard, &inputs, pieces, identity, quiet);
    }
    crate::shard_run::refuse_sharded_output(&args.output)?;
    let out = store::location(&args.output)?;
    let progress_store: Arc<dyn ProgressStore> = store::progress_store(&out)?;
    let stop = StopHandle::new();
    let result = run_job(
        &args,
        &inputs,
        pieces,
        out.clone(),
        progress_store,
        identity,
        stop,
        quiet,
    )?;
    // Complete: the last checkpoint says so; the marker goes last. (A
    // sharded job writes its own, once its last shard is done.)
    if let Ok(report) = &result {
        raygent_savers::write_success(&out, report.failed_chunks.len() as u64).map_err(|e| {
            Failure::failed(anyhow::Error::new(e).context(format!(
                "the job is complete, but its {} marker could not be written; run the same \
                 command again to write it",
                raygent_savers::SUCCESS_MARKER
            )))
        })?;
    }
    finish(result, &args.output, quiet, stream_note(&inputs).as_deref())
}

/// What a resume of a stream needs, for a refusal's message.
pub(crate) fn stream_note(inputs: &Inputs) -> Option<String> {
    (!inputs.all_seekable()).then(|| {
        format!(
            "{} is a stream, which a resume reads again from its start: it must give the same records in the same order",
            inputs.name()
        )
    })
}

/// Records in `pieces`, counted ahead for the progress bar when that is
/// cheap: whole, regular, uncompressed local files.
fn count_records(inputs: &Inputs, pieces: &[split::Piece], format: InputFormat) -> Option<u64> {
    let mut total = 0;
    for p in pieces {
        if p.range.is_some() {
            return None;
        }
        total += inputs.files[p.file].source()?.count_records(format)?;
    }
    Some(total)
}

/// Runs the job of `args` over `pieces` of `inputs`, saving to `out` with
/// checkpoints in `progress_store`. `Err` if it could not start; else the
/// job's result.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_job(
    args: &RunArgs,
    inputs: &Inputs,
    pieces: Vec<split::Piece>,
    out: Location,
    progress_store: Arc<dyn ProgressStore>,
    identity: String,
    stop: StopHandle,
    quiet: bool,
) -> Result<Result<JobReport, Error>, Failure> {
    let format = match args.format {
        OutputFormat::Cbor => Format::Cbor,
        OutputFormat::Jsonl => Format::JsonLines,
        OutputFormat::Csv => Format::Csv,
        OutputFormat::Parquet => Format::Parquet,
    };
    let mut saver_options = SaverOptions::default()
        .with_format(format)
        .with_index_column(!args.no_index_column);
    if let Some(bytes) = args.multipart_threshold {
        saver_options =
            saver_options.with_multipart_threshold(usize::try_from(bytes).unwrap_or(usize::MAX));
    }
    // The library's one set-up of a checkpointed output: the saver, and the
    // checkpoints next to the results (in `progress_store`, which a shard
    // wraps to fence it).
    let output = raygent::JobOutput::from_location(out.clone()).with_saver_options(saver_options);
    let saver = output.saver().map_err(|e| {
        Failure::usage(anyhow::Error::new(e).context(format!("cannot write to {}", out.url())))
    })?;
    // SIGHUP (the terminal closed, the ssh session dropped) stops the job
    // as SIGTERM does: with a final checkpoint; so does SIGUSR1, which
    // Slurm sends ahead of a time limit or a preemption (`--signal`).
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGUSR1,
    ] {
        // A second signal while stopping exits at once.
        signal_hook::flag::register_conditional_shutdown(
            sig,
            i32::from(exit::INTERRUPTED),
            stop.flag(),
        )
        .and_then(|_| signal_hook::flag::register(sig, stop.flag()))
        .context("installing the signal handlers")
        .map_err(Failure::failed)?;
    }
    let progress = Progress::new();
    let job = JobSettings {
        args,
        saver,
        stop,
        progress: progress.clone(),
        resume: ResumeConfig::new(progress_store)
            .with_fresh(args.fresh)
            .with_min_interval(args.checkpoint_interval)
            .with_identity(identity),
    };
    let n_cores = match (args.workers, args.cores) {
        (Some(w), _) => i64::try_from(w.saturating_mul(args.cores_per_worker)).unwrap_or(i64::MAX),
        (None, Some(c)) => c,
        (None, None) => -1,
    };
    let total = count_records(inputs, &pieces, args.input_format);
    let items = split::items(inputs, pieces, args.input_format);
    let reporter = Reporter::start(progress, total, quiet);
    let json = args.result_format == ResultFormat::Json;
    let result = if args.per_item {
        let task = PerItemTask {
            command: args.command.clone(),
            shell: args.shell,
            timeout: args.timeout,
        };
        if json {
            execute(
                move || JsonResults(task.clone()),
                n_cores,
                args.cores_per_worker,
                items,
                job.options(),
            )
        } else {
            execute(
                move || task.clone(),
                n_cores,
                args.cores_per_worker,
                items,
                job.options(),
            )
        }
    } else {
        let (program, rest) = args
            .command
            .split_first()
            .unwrap_or((&args.command[0], &[]));
        let mut cmd = WorkerCommand::new(program)
            .args(rest)
            .shell(args.shell)
            .n_cores_worker(args.cores_per_worker);
        if let Some(t) = args.timeout {
            cmd = cmd.timeout(t);
        }
        if let Some(m) = args.memory_limit {
            cmd = cmd.memory_limit(m);
        }
        if json {
            let factory = cmd.factory();
            execute(
                move || JsonResults(factory()),
                n_cores,
                args.cores_per_worker,
                items,
                job.options(),
            )
        } else {
            execute(
                cmd.factory(),
                n_cores,
                args.cores_per_worker,
                items,
                job.options(),
            )
        }
    };
    drop(reporter);
    tracing::info!(
        bytes = split::bytes_read(),
        "read {} bytes of input",
        split::bytes_read()
    );
    Ok(result)
}

/// What every job's options are built from, whatever its result type.
struct JobSettings<'a> {
    args: &'a RunArgs,
    saver: DatasetSaver,
    stop: StopHandle,
    progress: Progress,
    resume: ResumeConfig,
}

impl JobSettings<'_> {
    fn options<O: Serialize + Send + 'static>(self) -> SubmitOptions<O> {
        let args = self.args;
        SubmitOptions::new()
            .with_chunk_size(args.chunk_size)
            .with_at_once(true)
            .with_saver(self.saver)
            .with_save_interval(args.save_interval)
            .with_retry(RetryPolicy::new(args.retries))
            .with_failure_policy(match args.on_failure {
                OnFailure::Abort => FailurePolicy::Abort,
                OnFailure::Skip => FailurePolicy::Skip,
            })
            .with_stop_handle(self.stop)
            .with_progress(self.progress)
            .with_checkpoint(self.resume)
    }
}

fn execute<F, O>(
    factory: F,
    n_cores: i64,
    cores_per_worker: usize,
    items: impl Iterator<Item = Result<String, input::RecordError>>,
    options: SubmitOptions<O>,
) -> Result<JobReport, Error>
where
    F: TaskFactory,
    F::Task: Task<Input = String, Output = O>,
    O: Send + 'static,
{
    let mut manager = TaskManager::with_handler(factory, Discard)
        .with_n_cores(n_cores)
        .with_n_cores_worker(cores_per_worker);
    manager.try_submit_tasks(items, options)
}

pub(crate) fn finish(
    result: Result<JobReport, Error>,
    output: &str,
    quiet: bool,
    mismatch_note: Option<&str>,
) -> Result<u8, Failure> {
    match result {
        Ok(report) => {
            if !quiet {
                say!(
                    "raygent: done: {} items in {} chunks ({} resumed), {} retries, {} failed chunks, {:.1?}; results in {output}",
                    report.items,
                    report.chunks,
                    report.resumed_chunks,
                    report.retries,
                    report.failed_chunks.len(),
                    report.wall_time
                );
            }
            if report.failed_chunks.is_empty() {
                Ok(exit::DONE)
            } else {
                for f in &report.failed_chunks {
                    say!(
                        "raygent: skipped chunk {} (items {}..{}) after {} attempts: {}",
                        f.index,
                        f.items.start,
                        f.items.end,
                        f.attempts,
                        f.error
                    );
                }
                Ok(exit::SKIPPED)
            }
        }
        Err(Error::Interrupted { committed_chunks }) => Err(Failure::with_code(
            exit::INTERRUPTED,
            anyhow!(
                "interrupted after committing {committed_chunks} chunk(s) to {output}; run the same command again to resume"
            ),
        )),
        Err(Error::JobMismatch {
            location,
            differences,
        }) => Err(Failure::usage(anyhow!(
            "{output} holds a different job (checkpoint at {location}): {}{}; run the same command as before to resume it, or add --fresh to discard {output} and start over",
            differences.join("; "),
            mismatch_note.map_or(String::new(), |n| format!(" ({n})"))
        ))),
        Err(e @ (Error::Input { .. } | Error::InvalidConfig(_))) => Err(Failure::usage(anyhow!(
            "{}; everything before it was saved to {output}: fix the input and run the same command again to resume",
            crate::chain(&e)
        ))),
        Err(e @ Error::Save(raygent_core::SaveError::Config(_))) => Err(Failure::usage(anyhow!(
            "{}; add --fresh to discard what is in {output} and start over, or choose another --output",
            crate::chain(&e)
        ))),
        Err(e) => Err(Failure::failed(anyhow!(
            "{}; what was committed is kept in {output}: run the same command again to resume",
            crate::chain(&e)
        ))),
    }
}

/// Prints results one per line in the format `raygent cat --format` asks
/// for, across one or several datasets (the shards of a job, in order): a
/// CSV header is written once, before the first result.
pub(crate) struct Printer {
    format: CatFormat,
    csv: Option<crate::cat::CsvOut>,
    index: usize,
}

impl Printer {
    pub(crate) fn new(format: CatFormat) -> Self {
        Printer {
            format,
            csv: (format == CatFormat::Csv).then(crate::cat::CsvOut::default),
            index: 0,
        }
    }

    /// Writes every result of `reader` to `w`; `Ok(true)` when the reader
    /// of stdout went away (`raygent cat out | head`).
    pub(crate) fn print(
        &mut self,
        reader: &DatasetReader,
        url: &str,
        w: &mut impl Write,
    ) -> Result<bool, Failure> {
        for r in reader.iter::<Value>() {
            let v = r
                .with_context(|| format!("reading {url}"))
                .map_err(Failure::failed)?;
            let i = self.index;
            self.index += 1;
            let written = match (&mut self.csv, self.format, v) {
                (Some(csv), _, v) => csv.write(w, i, v),
                (None, CatFormat::Lines, Value::String(s)) => writeln!(w, "{s}"),
                (None, _, other) => serde_json::to_writer(&mut *w, &other)
                    .map_err(std::io::Error::other)
                    .and_then(|()| writeln!(w)),
            };
            if let Err(e) = written {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(true);
                }
                if e.kind() == std::io::ErrorKind::InvalidData {
                    return Err(Failure::usage(
                        anyhow::Error::new(e).context(format!("printing {url} as CSV")),
                    ));
                }
                return Err(Failure::failed(
                    anyhow::Error::new(e).context("writing to stdout"),
                ));
            }
        }
        Ok(false)
    }
}

/// `raygent cat`.
pub fn cat(args: CatArgs) -> Result<u8, Failure> {
    let out = store::existing(&args.url)?;
    // A job record that cannot be read is left to the plain reader, whose
    // error names the cause (a missing bucket, refused credentials).
    let layout = Layout::new(out.clone()).map_err(Failure::failed)?;
    let mut printer = Printer::new(args.format);
    if let Ok(Some(job)) = layout.job() {
        return crate::shard_view::cat(&layout, &args.url, &job, args.partial, &mut printer);
    }
    let reader = DatasetReader::open_location(out)
        .with_context(|| format!("cannot open the results at {}", args.url))
        .map_err(Failure::usage)?;
    let stdout = std::io::stdout();
    let mut w = BufWriter::with_capacity(1 << 16, stdout.lock());
    if printer.print(&reader, &args.url, &mut w)? {
        return Ok(exit::DONE);
    }
    match w.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::failed(
            anyhow::Error::new(e).context("writing to stdout"),
        )),
        _ => Ok(exit::DONE),
    }
}

#[derive(Debug, Serialize)]
struct Status {
    url: String,
    state: &'static str,
    chunks_committed: u64,
    items_committed: u64,
    results_committed: u64,
    parts: u64,
    chunk_size: Option<u64>,
    task: Option<String>,
    failed_chunks: Vec<raygent_core::FailedChunk>,
    last_checkpoint_unix: Option<u64>,
    last_checkpoint: Option<String>,
}

/// `raygent status`.
pub fn status(args: StatusArgs) -> Result<u8, Failure> {
    let out = store::existing(&args.url)?;
    let layout = Layout::counting(out.clone()).map_err(Failure::failed)?;
    if let Ok(Some(job)) = layout.job() {
        return crate::shard_view::status(&layout, &args.url, &job, args.json);
    }
    let state = store::job_state(&out)?;
    let reader = DatasetReader::open_location(out.clone()).ok();
    if state.is_none() && reader.as_ref().is_none_or(|r| r.parts().is_empty()) {
        return Err(Failure::usage(anyhow!(
            "no raygent job at {}: no checkpoint and no committed results there",
            args.url
        )));
    }
    let st = Status {
        url: args.url.clone(),
        state: match &state {
            Some(s) if s.complete => "complete",
            Some(_) => "in progress (rerun the same command to resume)",
            None => "not checkpointed",
        },
        chunks_committed: state.as_ref().map_or(0, |s| s.next_chunk),
        items_committed: state.as_ref().map_or(0, |s| s.next_item),
        results_committed: state.as_ref().map_or_else(
            || reader.as_ref().map_or(0, |r| r.result_count()),
            |s| s.results,
        ),
        parts: state.as_ref().map_or_else(
            || reader.as_ref().map_or(0, |r| r.parts().len() as u64),
            |s| s.parts,
        ),
        chunk_size: state.as_ref().map(|s| s.config.chunk_size),
        task: state.as_ref().map(|s| s.config.extra.clone()),
        failed_chunks: state.as_ref().map(|s| s.failed.clone()).unwrap_or_default(),
        last_checkpoint_unix: state.as_ref().map(|s| s.written_at),
        last_checkpoint: state.as_ref().map(|s| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(s.written_at),
            )
            .to_string()
        }),
    };
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let res = if args.json {
        serde_json::to_writer_pretty(&mut w, &st)
            .map_err(std::io::Error::other)
            .and_then(|_| writeln!(w))
    } else {
        write_status(&mut w, &st)
    };
    res.context("writing to stdout").map_err(Failure::failed)?;
    Ok(exit::DONE)
}

fn write_status(w: &mut impl Write, st: &Status) -> std::io::Result<()> {
    writeln!(w, "job:              {}", st.url)?;
    writeln!(w, "state:            {}", st.state)?;
    if let Some(t) = &st.task {
        writeln!(w, "task:             {t}")?;
    }
    if let Some(c) = st.chunk_size {
        writeln!(w, "chunk size:       {c}")?;
    }
    writeln!(w, "chunks committed: {}", st.chunks_committed)?;
    writeln!(w, "items committed:  {}", st.items_committed)?;
    writeln!(w, "results:          {}", st.results_committed)?;
    writeln!(w, "parts:            {}", st.parts)?;
    if let Some(t) = &st.last_checkpoint {
        writeln!(w, "last checkpoint:  {t}")?;
    }
    writeln!(w, "failed chunks:    {}", st.failed_chunks.len())?;
    for f in &st.failed_chunks {
        writeln!(
            w,
            "  chunk {} (items {}..{}), {} attempts: {}",
            f.index, f.items.start, f.items.end, f.attempts, f.error
        )?;
    }
    Ok(())
}

/// `raygent ckpt`.
pub fn ckpt(args: CkptArgs) -> Result<u8, Failure> {
    match args.action {
        CkptAction::List { url } => {
            let out = store::existing(&url)?;
            let steps = store::checkpoints(&out)?;
            let list = steps
                .list_steps()
                .context("listing steps")
                .map_err(Failure::failed)?;
            let mut w = std::io::stdout().lock();
            let _ = writeln!(w, "step checkpoints under {}:", store::checkpoint_url(&out));
            for s in &list {
                let when = steps
                    .metadata(*s)
                    .map(|m| humantime::format_rfc3339_seconds(m.created()).to_string())
                    .unwrap_or_default();
                let _ = writeln!(w, "  step {s}  {when}");
            }
            if list.is_empty() {
                let _ = writeln!(w, "  (none)");
            }
            let stages =
                raygent_ckpt::StageCheckpoints::new(Arc::clone(out.store()), out.prefix().clone())
                    .and_then(|s| s.list("*"))
                    .unwrap_or_default()
                    .into_iter()
                    // raygent's own directories (parts' manifest, checkpoints).
                    .filter(|name| !name.starts_with('_'))
                    .collect::<Vec<_>>();
            if !stages.is_empty() {
                let _ = writeln!(w, "stage checkpoints under {}:", out.url());
                for s in stages {
                    let _ = writeln!(w, "  {s}");
                }
            }
            Ok(exit::DONE)
        }
        CkptAction::Show { url, step } => {
            let out = store::existing(&url)?;
            let steps = store::checkpoints(&out)?;
            let step = match step {
                Some(s) => s,
                None => steps
                    .latest_step()
                    .context("listing steps")
                    .map_err(Failure::failed)?
                    .ok_or_else(|| {
                        Failure::usage(anyhow!(
                            "no checkpoint under {}",
                            store::checkpoint_url(&out)
                        ))
                    })?,
            };
            let state: raygent_actors::JobState = steps
                .load_state(step)
                .with_context(|| {
                    format!("reading step {step} under {}", store::checkpoint_url(&out))
                })
                .map_err(Failure::usage)?;
            let text = serde_json::to_string_pretty(&state)
                .context("encoding the state")
                .map_err(Failure::failed)?;
            println!("{text}");
            Ok(exit::DONE)
        }
        CkptAction::Clear { url } => {
            let out = store::existing(&url)?;
            let steps = store::checkpoints(&out)?;
            steps
                .clear()
                .with_context(|| format!("clearing {}", store::checkpoint_url(&out)))
                .map_err(Failure::failed)?;
            println!(
                "cleared the checkpoints under {}",
                store::checkpoint_url(&out)
            );
            Ok(exit::DONE)
        }
    }
}
