//! Command-line arguments (clap derive).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::input::InputFormat;

/// raygent: run a program over millions of records on all cores, keep the
/// results in input order, save them to a directory or S3, and resume
/// exactly where a killed job stopped.
#[derive(Debug, Parser)]
#[command(name = "raygent", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG
    /// overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// No progress bar or summary; only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// raygent's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run COMMAND over the input's records; a rerun of the same command
    /// resumes.
    Run(RunArgs),
    /// Print every committed result of a job, in input order.
    Cat(CatArgs),
    /// Show a job's progress.
    Status(StatusArgs),
    /// Manage checkpoints (list, show, clear).
    Ckpt(CkptArgs),
    /// Run a job's shards as a Slurm job array (submit, resubmit).
    Slurm(SlurmArgs),
    /// Run a job's shards as a Kubernetes Indexed Job (manifest).
    K8s(K8sArgs),
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// CBOR sequence (compact, the default).
    Cbor,
    /// JSON Lines.
    Jsonl,
    /// CSV.
    Csv,
    /// Parquet: one zstd-compressed file per part, with columns (see
    /// --result-format), read directly by DuckDB, polars, pandas, Spark.
    Parquet,
}

/// How a worker's result lines are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResultFormat {
    /// Each line is a result as it is, a string (Parquet: one `value` column).
    Lines,
    /// Each line is one JSON value (Parquet: an object's keys become columns,
    /// any other value one `value` column); a line that is not JSON fails its
    /// chunk.
    Json,
}

/// What `raygent cat` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CatFormat {
    /// One result per line: a string as it is, anything else as JSON.
    Lines,
    /// JSON Lines: each result as one JSON value (strings quoted).
    Jsonl,
    /// CSV with a header row: an object's fields as columns (nested values
    /// as JSON), any other result one column named `value`.
    Csv,
}

/// What to do with a chunk that fails on every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnFailure {
    /// Stop the job (exit 1).
    Abort,
    /// Record it, go on, and exit 3 at the end.
    Skip,
}

/// `raygent run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Input: a file, a glob ('data/*.csv'), s3://bucket/key, an S3 prefix
    /// (s3://bucket/prefix/) or glob (s3://bucket/prefix/*.jsonl); may be
    /// given several times; `-` or absent reads stdin.
    #[arg(short, long, value_name = "PATH|URL", action = clap::ArgAction::Append)]
    pub input: Vec<String>,
    /// How the input is split into records.
    #[arg(long, value_enum, default_value = "lines")]
    pub input_format: InputFormat,
    /// Records per chunk (a chunk is one unit of work and of retry).
    #[arg(short = 'c', long, default_value_t = 100, value_name = "N")]
    pub chunk_size: usize,
    /// Worker processes (default: cores / cores-per-worker).
    #[arg(short = 'j', long, value_name = "N")]
    pub workers: Option<usize>,
    /// Cores to use; 0 or less means all.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cores: Option<i64>,
    /// Cores each worker uses (sets OMP_NUM_THREADS and friends).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub cores_per_worker: usize,
    /// Retries of a failed chunk.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub retries: u32,
    /// Time limit per chunk, like `30s` or `2m`; a worker past it is killed
    /// and the chunk retried.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Memory limit per worker (address space), like `2G` or `512M`.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub memory_limit: Option<u64>,
    /// What to do with a chunk that fails on every attempt.
    #[arg(long, value_enum, default_value = "abort")]
    pub on_failure: OnFailure,
    /// Where results go: a directory or s3://bucket/prefix.
    #[arg(short, long, default_value = "./raygent-out", value_name = "URL")]
    pub output: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "cbor")]
    pub format: OutputFormat,
    /// How the workers' result lines are read: as strings, or each as one
    /// JSON value (typed columns in Parquet).
    #[arg(long, value_enum, default_value = "lines")]
    pub result_format: ResultFormat,
    /// Parquet: leave out the `_index` column (each result's position in
    /// the input).
    #[arg(long)]
    pub no_index_column: bool,
    /// Results per saved part.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub save_interval: usize,
    /// Parts larger than this are uploaded in 8M pieces (multipart), like
    /// `16M` or `1G`; smaller ones go in one request. Default: 64M on S3,
    /// 8M on a local directory.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub multipart_threshold: Option<u64>,
    /// Shortest time between two checkpoint writes, like `200ms` or `5s`
    /// (commits in between are coalesced; a crash redoes at most that much
    /// saved work).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub checkpoint_interval: Duration,
    /// Discard an earlier run's checkpoint and output and start over.
    #[arg(long)]
    pub fresh: bool,
    /// Run COMMAND once per record, with `{}` in its arguments replaced by
    /// the record (appended if there is no `{}`); its stdout is the result.
    #[arg(long)]
    pub per_item: bool,
    /// Run COMMAND through `sh -c` (COMMAND is then a shell script).
    #[arg(long)]
    pub shell: bool,
    /// Split the job into N shards, each run by its own `raygent run`
    /// (on any machine sharing the output); with --shard, or in a Slurm
    /// array task or a Kubernetes Indexed Job, which gives the index.
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,
    /// Run shard I (from 0) of the --shards N.
    #[arg(long, value_name = "I", requires = "shards")]
    pub shard: Option<u32>,
    /// The worker program and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `raygent cat`.
#[derive(Debug, Args)]
pub struct CatArgs {
    /// The job's output: a directory or s3://bucket/prefix.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Of a sharded job that is not complete, print what is committed
    /// (naming the missing shards on stderr) instead of refusing.
    #[arg(long)]
    pub partial: bool,
    /// How to print the results (whatever format stored them).
    #[arg(long, value_enum, default_value = "lines")]
    pub format: CatFormat,
}

/// `raygent slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: SlurmAction,
}

/// `raygent slurm` actions.
#[derive(Debug, Subcommand)]
pub enum SlurmAction {
    /// Write an sbatch array script for the job's shards next to its
    /// records and submit it; prints the Slurm job id.
    Submit(SubmitArgs),
    /// Submit an array of only the shards that are not complete.
    Resubmit(ResubmitArgs),
}

/// `raygent slurm submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// How many shards.
    #[arg(long, value_name = "N")]
    pub shards: u32,
    /// At most K array tasks running at once (`--array=...%K`).
    #[arg(long, value_name = "K")]
    pub max_running: Option<u32>,
    /// An sbatch option for every task, like `--time=2:00:00` or
    /// `--partition=long` (repeat for several).
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// The Slurm job name (default: raygent- and the output's name).
    #[arg(long, value_name = "NAME")]
    pub job_name: Option<String>,
    /// Where the array tasks' logs go (one per task); default: `_slurm/logs`
    /// in a local output, `./raygent-slurm/logs` for an S3 output.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// The options and command of `raygent run` (after `--`), as every
    /// shard runs them.
    #[arg(required = true, last = true, value_name = "RUN-ARGS")]
    pub run_args: Vec<String>,
}

/// `raygent slurm resubmit`.
#[derive(Debug, Args)]
pub struct ResubmitArgs {
    /// The job's output.
    #[arg(value_name = "URL")]
    pub url: String,
    /// At most K array tasks running at once (default: as submitted).
    #[arg(long, value_name = "K")]
    pub max_running: Option<u32>,
    /// More sbatch options (added to those given at submit).
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
}

/// `raygent k8s`.
#[derive(Debug, Args)]
pub struct K8sArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: K8sAction,
}

/// `raygent k8s` actions.
#[derive(Debug, Subcommand)]
pub enum K8sAction {
    /// Print an Indexed Job running the job's shards (for `kubectl apply -f -`).
    Manifest(ManifestArgs),
}

/// `raygent k8s manifest`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// How many shards (the Job's completions).
    #[arg(long, value_name = "N")]
    pub shards: u32,
    /// The container image, which holds `raygent` and the worker.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// Pods running at once (default: N).
    #[arg(long, value_name = "P")]
    pub parallelism: Option<u32>,
    /// Retries of one index before it counts as failed.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub backoff_limit_per_index: u32,
    /// The Job's name (default: raygent- and the output's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The Secret whose keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, ...) become the pods' environment.
    #[arg(long, default_value = "raygent-aws", value_name = "SECRET")]
    pub aws_secret: String,
    /// The raygent binary inside the image.
    #[arg(long, default_value = "raygent", value_name = "PATH")]
    pub raygent: String,
    /// The options and command of `raygent run` (after `--`), as every
    /// shard runs them.
    #[arg(required = true, last = true, value_name = "RUN-ARGS")]
    pub run_args: Vec<String>,
}

/// `raygent status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The job's output: a directory or s3://bucket/prefix.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Print JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `raygent ckpt`.
#[derive(Debug, Args)]
pub struct CkptArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: CkptAction,
}

/// `raygent ckpt` actions.
#[derive(Debug, Subcommand)]
pub enum CkptAction {
    /// List step checkpoints and stage checkpoints.
    List {
        /// A job's output or a checkpoint root.
        #[arg(value_name = "URL")]
        url: String,
    },
    /// Show one step checkpoint (the newest by default).
    Show {
        /// A job's output or a checkpoint root.
        #[arg(value_name = "URL")]
        url: String,
        /// The step to show.
        #[arg(long)]
        step: Option<u64>,
    },
    /// Delete every checkpoint (the output's parts stay readable; a rerun
    /// then needs --fresh, which discards them and starts over).
    Clear {
        /// A job's output or a checkpoint root.
        #[arg(value_name = "URL")]
        url: String,
    },
}

/// Parses `123`, `10K`, `512M`, `2G` (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix {c:?} (use K, M, G or T)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 512M or 2G"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("123"), Ok(123));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("512m"), Ok(512 << 20));
        assert!(parse_bytes("12Q").is_err());
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn the_command_follows_the_double_dash() {
        let cli = Cli::try_parse_from([
            "raygent", "run", "-c", "7", "--", "python3", "-u", "w.py", "--flag",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.chunk_size, 7);
        assert_eq!(args.command, vec!["python3", "-u", "w.py", "--flag"]);
    }
}
