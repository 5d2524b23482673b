//! `raygent slurm submit|resubmit`: a job's shards as Slurm job arrays.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow};
use clap::Parser;
use object_store::{ObjectStoreExt, PutPayload};
use raygent_actors::{SHARD_OFFSET_ENV, Shard};
use serde::{Deserialize, Serialize};

use crate::cli::{Cli, ResubmitArgs, RunArgs, SlurmAction, SlurmArgs, SubmitArgs};
use crate::input::files::Inputs;
use crate::input::split;
use crate::shard::{Layout, now_unix};
use crate::shard_view::ranges;
use crate::{Failure, exit, shard_run, store};

/// Where a job's Slurm records live, relative to its output.
pub const SLURM_DIR: &str = "_slurm";
const SUBMIT_RECORD: &str = "_slurm/submit.json";
/// Slurm's default `MaxArraySize`: array indices go up to 1000.
const DEFAULT_MAX_ARRAY_SIZE: u32 = 1001;
/// Overrides the `MaxArraySize` read from `scontrol show config` (to try
/// the offset arrays of very large jobs on a small cluster).
pub const MAX_ARRAY_SIZE_ENV: &str = "RAYGENT_SLURM_MAX_ARRAY_SIZE";

/// What `raygent slurm submit` was given: `resubmit` submits the same.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitRecord {
    /// How many shards.
    pub shards: u32,
    /// `--max-running`.
    pub max_running: Option<u32>,
    /// `--sbatch-arg`s.
    pub sbatch_args: Vec<String>,
    /// The `raygent run` options and command.
    pub run_args: Vec<String>,
    /// The raygent binary (absolute).
    pub raygent: String,
    /// The directory the job runs in (relative paths in the run args are
    /// relative to it).
    pub cwd: String,
    /// The Slurm job name.
    pub job_name: String,
    /// Where the array tasks' logs go.
    pub log_dir: String,
    /// Where the scripts are written.
    pub script_dir: String,
}

/// One submitted array.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArrayRecord {
    /// The Slurm job id.
    pub slurm_job: String,
    /// Added to an array index to give the shard.
    pub offset: u32,
    /// The shards it runs, as ranges (`0-7`, `3,5`).
    pub shards: String,
    /// The script.
    pub script: String,
    /// When (seconds since the Unix epoch).
    pub submitted_unix: u64,
}

/// `raygent slurm`.
pub fn slurm(args: SlurmArgs, quiet: bool) -> Result<u8, Failure> {
    match args.action {
        SlurmAction::Submit(a) => submit(a, quiet),
        SlurmAction::Resubmit(a) => resubmit(a, quiet),
    }
}

/// The `raygent run` arguments after `--`, checked as every shard will run
/// them.
pub fn parse_run_args(run_args: &[String]) -> Result<RunArgs, Failure> {
    let argv = ["raygent", "run"]
        .into_iter()
        .map(String::from)
        .chain(run_args.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| {
        Failure::usage(anyhow!(
            "the raygent run arguments after -- are not valid: {}",
            e.render().to_string().trim()
        ))
    })?;
    let crate::cli::Command::Run(run) = cli.command else {
        return Err(Failure::usage(anyhow!(
            "the arguments after -- must be raygent run's"
        )));
    };
    if run.shards.is_some() || run.shard.is_some() {
        return Err(Failure::usage(anyhow!(
            "leave --shards and --shard out of the run arguments: every task gets them from the engine"
        )));
    }
    if run.fresh {
        return Err(Failure::usage(anyhow!(
            "--fresh cannot be used with shards: delete the output to start over"
        )));
    }
    Ok(run)
}

/// Checks that the job can be sharded `shards` ways and records it at its
/// output (or checks it is the job already there), so that a changed job
/// is refused now rather than by every task.
pub fn prepare(run: &RunArgs, shards: u32) -> Result<Layout, Failure> {
    let first = Shard::new(0, shards).map_err(Failure::usage)?;
    let inputs = Inputs::resolve(&run.input).map_err(Failure::usage)?;
    split::plan(&inputs, run.input_format, Some(first)).map_err(|e| Failure::usage(anyhow!(e)))?;
    let layout = Layout::new(store::location(&run.output)?).map_err(Failure::failed)?;
    let (job, entries) = shard_run::job_record(run, &inputs, shards);
    shard_run::check_job(&layout, &run.output, &job, &entries)?;
    Ok(layout)
}

/// A job name from the output's last path component: lowercase letters,
/// digits and dashes (also valid as a Kubernetes name).
pub fn default_name(output: &str) -> String {
    let last = output
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("job");
    let mut name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(32);
    let name = name.trim_matches('-');
    if name.is_empty() {
        "raygent-job".into()
    } else {
        format!("raygent-{name}")
    }
}

/// `s` as one word of a POSIX shell.
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,/:@%+=".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Slurm's `MaxArraySize` (array indices are below it).
fn max_array_size() -> u32 {
    if let Some(n) = std::env::var(MAX_ARRAY_SIZE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &u32| n > 0)
    {
        return n;
    }
    let out = Command::new("scontrol").args(["show", "config"]).output();
    let Ok(out) = out else {
        return DEFAULT_MAX_ARRAY_SIZE;
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(DEFAULT_MAX_ARRAY_SIZE)
}

/// The shards grouped into arrays whose indices stay below `max`: offset →
/// array indices.
pub fn arrays(shards: &[u32], max: u32) -> BTreeMap<u32, Vec<u32>> {
    let mut out: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &s in shards {
        let offset = s / max * max;
        out.entry(offset).or_default().push(s - offset);
    }
    out
}

/// The sbatch script of one array.
pub fn script(rec: &SubmitRecord, offset: u32, indices: &[u32], output: &str) -> String {
    let mut s = String::from("#!/bin/sh\n");
    let shards: Vec<u32> = indices.iter().map(|i| i + offset).collect();
    s.push_str(&format!(
        "# Written by `raygent slurm submit` for the job at {output}:\n# shards {} of {} (array index + {offset}).\n",
        ranges(&shards),
        rec.shards
    ));
    let array = match rec.max_running {
        Some(k) => format!("{}%{k}", ranges(indices)),
        None => ranges(indices),
    };
    let log = Path::new(&rec.log_dir).join("%A_%a.log");
    for line in [
        format!("--job-name={}", rec.job_name),
        format!("--array={array}"),
        "--requeue".into(),
        format!("--output={}", log.display()),
        "--open-mode=append".into(),
        // SIGUSR1 two minutes before a time limit: the shard checkpoints
        // and stops cleanly (so does SIGTERM, on preemption or scancel).
        "--signal=B:USR1@120".into(),
        format!("--chdir={}", rec.cwd),
    ]
    .into_iter()
    .chain(rec.sbatch_args.iter().cloned())
    {
        s.push_str(&format!("#SBATCH {line}\n"));
    }
    s.push_str(&format!("export {SHARD_OFFSET_ENV}={offset}\n"));
    let mut argv = vec![
        shell_word(&rec.raygent),
        "run".into(),
        "--shards".into(),
        rec.shards.to_string(),
    ];
    argv.extend(rec.run_args.iter().map(|a| shell_word(a)));
    s.push_str(&format!("exec {}\n", argv.join(" ")));
    s
}

fn put(layout: &Layout, name: &str, body: Vec<u8>) -> Result<(), Failure> {
    let root = layout.root();
    layout
        .block_on(root.store().put(&root.path(name), PutPayload::from(body)))
        .with_context(|| format!("writing {}", layout.url_of(name)))
        .map_err(Failure::failed)?;
    Ok(())
}

fn get<T: serde::de::DeserializeOwned>(layout: &Layout, name: &str) -> Result<Option<T>, Failure> {
    let root = layout.root();
    let got = layout.block_on(async {
        match root.store().get(&root.path(name)).await {
            Ok(g) => g.bytes().await.map(Some),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    });
    match got {
        Ok(Some(b)) => serde_json::from_slice(&b)
            .map(Some)
            .with_context(|| format!("{} is not a raygent record", layout.url_of(name)))
            .map_err(Failure::failed),
        Ok(None) => Ok(None),
        Err(e) => Err(Failure::failed(
            anyhow::Error::new(e).context(format!("reading {}", layout.url_of(name))),
        )),
    }
}

/// Submits arrays running `shards`; returns the Slurm job ids.
fn submit_arrays(
    layout: &Layout,
    rec: &SubmitRecord,
    shards: &[u32],
    output: &str,
    quiet: bool,
) -> Result<Vec<String>, Failure> {
    let dir = PathBuf::from(&rec.script_dir);
    std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::create_dir_all(&rec.log_dir))
        .with_context(|| format!("creating {} and {}", dir.display(), rec.log_dir))
        .map_err(Failure::failed)?;
    let mut ids = Vec::new();
    for (offset, indices) in arrays(shards, max_array_size()) {
        let text = script(rec, offset, &indices, output);
        let name = format!("array-{}-{offset}.sh", now_unix());
        let path = dir.join(&name);
        std::fs::write(&path, &text)
            .with_context(|| format!("writing {}", path.display()))
            .map_err(Failure::failed)?;
        if layout.root().local_dir().is_none() {
            // Next to the job's records too, when those are in S3.
            put(
                layout,
                &format!("{SLURM_DIR}/{name}"),
                text.clone().into_bytes(),
            )?;
        }
        let out = Command::new("sbatch")
            .arg("--parsable")
            .arg(&path)
            .output()
            .map_err(|e| {
                Failure::usage(anyhow!(
                    "cannot run sbatch ({e}): is Slurm installed and sbatch in PATH?"
                ))
            })?;
        if !out.status.success() {
            return Err(Failure::failed(anyhow!(
                "sbatch {} failed ({}): {}",
                path.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let id = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Failure::failed(anyhow!(
                "sbatch printed no job id: {:?}",
                String::from_utf8_lossy(&out.stdout)
            )));
        }
        let covered: Vec<u32> = indices.iter().map(|i| i + offset).collect();
        let array = ArrayRecord {
            slurm_job: id.clone(),
            offset,
            shards: ranges(&covered),
            script: path.display().to_string(),
            submitted_unix: now_unix(),
        };
        let body = serde_json::to_vec_pretty(&array)
            .context("encoding a record")
            .map_err(Failure::failed)?;
        put(layout, &format!("{SLURM_DIR}/jobs/{id}.json"), body)?;
        if !quiet {
            say!(
                "raygent: submitted shards {} of {output} as Slurm job {id} (script {}, logs in {})",
                array.shards,
                path.display(),
                rec.log_dir
            );
        }
        ids.push(id);
    }
    Ok(ids)
}

fn print_ids(ids: &[String]) -> Result<(), Failure> {
    use std::io::Write;
    let mut w = std::io::stdout().lock();
    for id in ids {
        writeln!(w, "{id}")
            .context("writing to stdout")
            .map_err(Failure::failed)?;
    }
    Ok(())
}

fn submit(a: SubmitArgs, quiet: bool) -> Result<u8, Failure> {
    let run = parse_run_args(&a.run_args)?;
    if a.max_running == Some(0) {
        return Err(Failure::usage(anyhow!("--max-running must be at least 1")));
    }
    if let Some(bad) = a.sbatch_args.iter().find(|s| !s.starts_with('-')) {
        return Err(Failure::usage(anyhow!(
            "--sbatch-arg {bad:?} is not an sbatch option (like --time=1:00:00)"
        )));
    }
    let layout = prepare(&run, a.shards)?;
    let cwd = std::env::current_dir()
        .context("reading the current directory")
        .map_err(Failure::failed)?;
    let script_dir = match layout.root().local_dir() {
        Some(d) => d.join(SLURM_DIR),
        None => cwd.join("raygent-slurm"),
    };
    let log_dir = match &a.log_dir {
        Some(d) => std::path::absolute(d).unwrap_or_else(|_| d.clone()),
        None => script_dir.join("logs"),
    };
    let raygent = std::env::current_exe()
        .context("finding the raygent binary")
        .map_err(Failure::failed)?;
    let rec = SubmitRecord {
        shards: a.shards,
        max_running: a.max_running,
        sbatch_args: a.sbatch_args,
        run_args: a.run_args,
        raygent: raygent.display().to_string(),
        cwd: cwd.display().to_string(),
        job_name: a.job_name.unwrap_or_else(|| default_name(&run.output)),
        log_dir: log_dir.display().to_string(),
        script_dir: script_dir.display().to_string(),
    };
    let body = serde_json::to_vec_pretty(&rec)
        .context("encoding a record")
        .map_err(Failure::failed)?;
    put(&layout, SUBMIT_RECORD, body)?;
    let all: Vec<u32> = (0..a.shards).collect();
    let ids = submit_arrays(&layout, &rec, &all, &run.output, quiet)?;
    print_ids(&ids)?;
    Ok(exit::DONE)
}

/// The shards whose array task is still queued or running, per `squeue`.
fn live_shards(layout: &Layout, rec: &SubmitRecord) -> Result<BTreeSet<u32>, Failure> {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-o", "%i|%T", "--name", &rec.job_name])
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            tracing::warn!(stderr = %String::from_utf8_lossy(&o.stderr), "squeue failed: not skipping any queued shard");
            return Ok(BTreeSet::new());
        }
        Err(e) => {
            tracing::warn!(%e, "cannot run squeue: not skipping any queued shard");
            return Ok(BTreeSet::new());
        }
    };
    let mut offsets: HashMap<String, Option<u32>> = HashMap::new();
    let mut live = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let id = line.split('|').next().unwrap_or_default().trim();
        let Some((job, task)) = id.split_once('_') else {
            continue;
        };
        let Ok(task) = task.parse::<u32>() else {
            continue;
        };
        if !offsets.contains_key(job) {
            let rec: Option<ArrayRecord> = get(layout, &format!("{SLURM_DIR}/jobs/{job}.json"))?;
            offsets.insert(job.to_owned(), rec.map(|r| r.offset));
        }
        if let Some(Some(offset)) = offsets.get(job) {
            live.insert(task + offset);
        }
    }
    Ok(live)
}

fn resubmit(a: ResubmitArgs, quiet: bool) -> Result<u8, Failure> {
    let out = store::existing(&a.url)?;
    let layout = Layout::new(out).map_err(Failure::failed)?;
    let Some(job) = layout.job().map_err(Failure::failed)? else {
        return Err(Failure::usage(anyhow!(
            "{} holds no sharded job (no {})",
            a.url,
            crate::shard::JOB_RECORD
        )));
    };
    let Some(mut rec) = get::<SubmitRecord>(&layout, SUBMIT_RECORD)? else {
        return Err(Failure::usage(anyhow!(
            "{} was not submitted with `raygent slurm submit` (no {}): submit it that way first",
            a.url,
            layout.url_of(SUBMIT_RECORD)
        )));
    };
    if rec.shards != job.shards {
        return Err(Failure::usage(anyhow!(
            "{} says {} shards but the job has {}",
            layout.url_of(SUBMIT_RECORD),
            rec.shards,
            job.shards
        )));
    }
    if let Some(k) = a.max_running {
        rec.max_running = Some(k.max(1));
    }
    rec.sbatch_args.extend(a.sbatch_args);
    let done = layout.done_shards(job.shards).map_err(Failure::failed)?;
    let live = live_shards(&layout, &rec)?;
    let todo: Vec<u32> = (0..job.shards)
        .filter(|s| !done.contains(s) && !live.contains(s))
        .collect();
    let waiting: Vec<u32> = live.iter().copied().filter(|s| !done.contains(s)).collect();
    if todo.is_empty() {
        if !quiet {
            say!(
                "raygent: nothing to resubmit: {} of {} shards are done{}",
                done.len(),
                job.shards,
                if waiting.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", and shards {} are still queued or running",
                        ranges(&waiting)
                    )
                }
            );
        }
        return Ok(exit::DONE);
    }
    if !quiet && !waiting.is_empty() {
        say!(
            "raygent: shards {} are still queued or running: not resubmitted",
            ranges(&waiting)
        );
    }
    let ids = submit_arrays(&layout, &rec, &todo, &a.url, quiet)?;
    print_ids(&ids)?;
    Ok(exit::DONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_jobs_are_cut_into_arrays_with_offsets() {
        let all: Vec<u32> = (0..2500).collect();
        let a = arrays(&all, 1001);
        assert_eq!(a.keys().copied().collect::<Vec<_>>(), vec![0, 1001, 2002]);
        assert_eq!(a[&0].len(), 1001);
        assert_eq!(a[&2002], (0..498).collect::<Vec<_>>());
        let some = arrays(&[3, 5, 1500], 1001);
        assert_eq!(some[&0], vec![3, 5]);
        assert_eq!(some[&1001], vec![499]);
    }

    #[test]
    fn the_script_runs_every_shard_the_same_way() {
        let rec = SubmitRecord {
            shards: 8,
            max_running: Some(2),
            sbatch_args: vec!["--time=1:00:00".into()],
            run_args: vec![
                "-i".into(),
                "in put.txt".into(),
                "--".into(),
                "./w.sh".into(),
            ],
            raygent: "/opt/raygent".into(),
            cwd: "/work".into(),
            job_name: "raygent-out".into(),
            log_dir: "/work/out/_slurm/logs".into(),
            script_dir: "/work/out/_slurm".into(),
        };
        let s = script(&rec, 0, &[0, 1, 2, 3, 4, 5, 6, 7], "out");
        assert!(s.contains("#SBATCH --array=0-7%2\n"), "{s}");
        assert!(s.contains("#SBATCH --requeue\n"), "{s}");
        assert!(
            s.contains("#SBATCH --output=/work/out/_slurm/logs/%A_%a.log\n"),
            "{s}"
        );
        assert!(s.contains("#SBATCH --time=1:00:00\n"), "{s}");
        assert!(s.contains("export RAYGENT_SHARD_OFFSET=0\n"), "{s}");
        assert!(
            s.contains("exec /opt/raygent run --shards 8 -i 'in put.txt' -- ./w.sh\n"),
            "{s}"
        );
        assert_eq!(default_name("s3://b/jobs/Run_1/"), "raygent-run-1");
    }
}
