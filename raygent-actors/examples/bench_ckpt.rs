//! Checkpoint benchmark: prints figures, asserts nothing.
//!
//! ```text
//! cargo run --release -p raygent-actors --example bench_ckpt
//! RAYGENT_BENCH_ITEMS=200000 RAYGENT_BENCH_RESUME_CHUNKS=100000 \
//!     cargo run --release -p raygent-actors --example bench_ckpt
//! ```
//!
//! 1. Checkpoint overhead: jobs whose results are saved as CBOR parts by a
//!    `DatasetSaver` to a local temporary directory (fsynced), with and
//!    without step checkpoints (`StepProgressStore`, keep 3) next to the
//!    output; same chunk size and save interval; runs alternate between the
//!    two variants; medians. Three jobs: the runtime benchmark's trivial
//!    task (square a u64) saving every `SAVE_INTERVAL` results and every
//!    10 × `SAVE_INTERVAL` results, and its CPU-bound task (~100 µs per
//!    item, chunk 10) saving every `SAVE_INTERVAL / 10` results. Also the
//!    time of one checkpoint write alone.
//! 2. Resume: a job of `RAYGENT_BENCH_RESUME_CHUNKS` chunks of one u64
//!    (default 1,000,000) with a saver and checkpoints is stopped (a
//!    `StopHandle` the task sets when it sees the item at 90%); the job
//!    commits what is complete and returns `Error::Interrupted`. The rerun's
//!    time from calling `submit_tasks` to the first new chunk being run, the
//!    rerun's total time, and a from-scratch run's total time and time to
//!    reach the same chunk. 2b: the same job run in a child process (this
//!    program again) and killed with SIGKILL when its task sees the item at
//!    90%, then resumed here: the time to the first new chunk, which now
//!    includes deleting the parts the kill left uncommitted.
//!
//! Settings (environment): `RAYGENT_BENCH_ITEMS` items of part 1 (default
//! 5,000,000), `RAYGENT_BENCH_CHUNK` its chunk size (default 100),
//! `RAYGENT_BENCH_SAVE_INTERVAL` results per part (`SAVE_INTERVAL`, default
//! 10,000), `RAYGENT_BENCH_CPU_ITEMS` items of the CPU-bound job (default
//! 30,000), `RAYGENT_BENCH_RUNS` runs of each variant in part 1 (default 11),
//! `RAYGENT_BENCH_RESUME_CHUNKS` chunks of part 2 (default 1,000,000),
//! `RAYGENT_BENCH_DIR` where the temporary directories go (default: the
//! system's), `RAYGENT_BENCH_JOBS` which jobs of part 1 to run (default
//! `1,2,3`), `RAYGENT_BENCH_ONLY_OVERHEAD=1` to skip the breakdown and
//! part 2 (for many runs of one job).
#![allow(clippy::unwrap_used)]

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bench_support::{burn, calibrate, median};
use raygent_actors::{
    INLINE_JOB_STATE_MAX, JobConfig, JobState, MemoryProgressStore, ProgressStore, ResumeConfig,
    StepProgressStore, SubmitOptions, TaskManager,
};
use raygent_ckpt::StepCheckpointer;
use raygent_core::{ChunkHasher, Discard, Error, Fingerprint, StopHandle, task_fn};
use raygent_savers::{DatasetSaver, Location};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Every temporary directory of the program, kept until it exits.
///
/// Deleting a run's directory (thousands of parts and checkpoint files)
/// between runs biases the later runs: on ext4, creating a file soon after
/// many deletions is CPU-expensive (`ext4_create` -> `recently_deleted`
/// scans the inode table's buffers; up to a quarter of all samples), so the
/// runs of the same job drifted from 0.8 s to 2.2 s as the deletions piled
/// up. Keeping every directory until the end makes the runs independent of
/// their order (the benchmark writes a few GB in all). Statics are never
/// dropped: `main` deletes them at its end, a panic too, and a long run
/// deletes them between two pairs of runs when more than
/// `RAYGENT_BENCH_KEEP_DIRS` (default 100, about 4.5 GB of the trivial
/// jobs' parts) have piled up ([`trim_tempdirs`]).
static TEMPDIRS: Mutex<Vec<tempfile::TempDir>> = Mutex::new(Vec::new());

/// Deletes the kept temporary directories once there are more than
/// `RAYGENT_BENCH_KEEP_DIRS`, so many runs do not fill the disk. Called
/// between pairs: both runs of a pair then see the same aftermath.
fn trim_tempdirs() {
    let keep = env_u64("RAYGENT_BENCH_KEEP_DIRS", 100) as usize;
    let mut dirs = TEMPDIRS.lock().unwrap();
    if dirs.len() > keep {
        dirs.clear();
    }
}

/// A new temporary directory, deleted only when the program exits.
fn tempdir() -> PathBuf {
    let tmp = match std::env::var("RAYGENT_BENCH_DIR") {
        Ok(dir) => tempfile::tempdir_in(dir).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    };
    let path = tmp.path().to_path_buf();
    TEMPDIRS.lock().unwrap().push(tmp);
    path
}

fn saver(dir: &Path) -> DatasetSaver {
    output(dir).saver().unwrap()
}

/// The job's output with its checkpoints, set up as the CLI and the docs
/// set them up.
fn output(dir: &Path) -> raygent::JobOutput {
    raygent::JobOutput::new(dir.to_str().unwrap()).unwrap()
}

/// Step checkpoints under `<dir>/_checkpoints`, keep 3, states of at most
/// `inline_max` bytes inside COMMIT.
fn steps(dir: &Path, inline_max: usize) -> StepCheckpointer {
    let loc = Location::parse(dir.to_str().unwrap()).unwrap();
    StepCheckpointer::new(Arc::clone(loc.store()), loc.path("_checkpoints"))
        .unwrap()
        .with_keep(3)
        .with_inline_state(inline_max)
}

/// The job's checkpoints next to its output, as the CLI sets them up.
fn checkpoint(dir: &Path) -> ResumeConfig {
    output(dir).resume_config().unwrap()
}

/// One configuration of part 1.
struct Overhead {
    label: String,
    items: u64,
    chunk: usize,
    interval: usize,
    /// Iterations of `burn` per item; 0 squares the item.
    iters: u64,
    /// CPU time (user + system, all threads) of the last run.
    last_cpu: std::cell::Cell<Duration>,
}

/// CPU time used by this process so far (every thread).
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Where a run of part 1 keeps its checkpoints.
#[derive(Clone, Copy, PartialEq)]
enum Ckpt {
    /// No checkpoints.
    Off,
    /// Step checkpoints next to the output (the CLI's set-up).
    Disk,
    /// In memory: the runtime's bookkeeping (fingerprints, job states,
    /// the checkpoint thread) without the writes.
    Memory,
}

impl Overhead {
    /// One run; returns its wall time.
    fn run(&self, ckpt: Ckpt) -> Duration {
        let out = tempdir().join("out");
        let iters = self.iters;
        let mut m = TaskManager::with_handler(
            move || {
                task_fn("work", move |x: &u64| {
                    Ok(if iters == 0 {
                        x.wrapping_mul(*x)
                    } else {
                        burn(*x, iters)
                    })
                })
            },
            Discard,
        );
        let mut opts = SubmitOptions::new()
            .with_chunk_size(self.chunk)
            .with_save_interval(self.interval)
            .with_saver(saver(&out));
        match ckpt {
            Ckpt::Off => {}
            Ckpt::Disk => opts = opts.with_checkpoint(checkpoint(&out)),
            Ckpt::Memory => {
                opts = opts.with_checkpoint(ResumeConfig::new(Arc::new(MemoryProgressStore::new())))
            }
        }
        let (t, cpu) = (Instant::now(), cpu_time());
        m.submit_tasks(0..self.items, opts).unwrap();
        let wall = t.elapsed();
        self.last_cpu.set(cpu_time().saturating_sub(cpu));
        wall
    }
}

/// A 95 % confidence interval of the median of `sorted` (ascending), from
/// order statistics: it holds whatever the distribution (normal
/// approximation of the binomial; for fewer than 6 values, the range).
fn median_interval(sorted: &[f64]) -> (f64, f64) {
    let n = sorted.len();
    if n < 6 {
        return (sorted[0], sorted[n - 1]);
    }
    let k = ((n as f64 - 1.96 * (n as f64).sqrt()) / 2.0).floor() as usize;
    (sorted[k], sorted[n - 1 - k])
}

/// Median time of one checkpoint write alone (a job state as the runtime
/// writes it, keep 3), over `n` consecutive steps; the state inside the
/// commit when `inline_max` allows (the CLI's set-up), else in its own file.
fn checkpoint_write_time(n: u64, inline_max: usize) -> Duration {
    let store = StepProgressStore::new(steps(&tempdir(), inline_max));
    let state = |step: u64| JobState {
        config: JobConfig {
            chunk_size: 100,
            save_interval: 10_000,
            at_once: false,
            task_name: "square".into(),
            task_version: "0".into(),
            saver: "cbor parts at file:///tmp/out".into(),
            extra: String::new(),
        },
        next_chunk: step,
        next_item: step * 100,
        results: step * 100,
        input_fingerprint: "0123456789abcdef".into(),
        parts: step / 100,
        last_chunks: step.saturating_sub(100)..step,
        failed: Vec::new(),
        written_at: 0,
        complete: false,
    };
    median(
        (1..=n)
            .map(|i| {
                let s = state(i * 100);
                let t = Instant::now();
                store.save(i * 100, &s).unwrap();
                t.elapsed()
            })
            .collect(),
    )
}

/// A job of part 2: every chunk is one u64; the task squares it, notes when
/// it first ran and when it saw `mark`, and stops the job at `stop_at`.
struct Probe {
    first: Arc<OnceLock<Instant>>,
    mark_seen: Arc<OnceLock<Instant>>,
    /// When `submit_tasks` was called.
    start: Instant,
}

fn resume_run(
    out: &Path,
    n: u64,
    interval: usize,
    mark: u64,
    stop_at: Option<u64>,
) -> (Result<raygent_core::JobReport, Error>, Probe, Duration) {
    let first = Arc::new(OnceLock::new());
    let mark_seen = Arc::new(OnceLock::new());
    let stop = StopHandle::new();
    let (f, s, st) = (Arc::clone(&first), Arc::clone(&mark_seen), stop.clone());
    let mut m = TaskManager::with_handler(
        move || {
            let (f, s, st) = (Arc::clone(&f), Arc::clone(&s), st.clone());
            task_fn("square", move |x: &u64| {
                f.get_or_init(Instant::now);
                if *x == mark {
                    s.get_or_init(Instant::now);
                }
                if Some(*x) == stop_at {
                    st.stop();
                }
                Ok(x.wrapping_mul(*x))
            })
        },
        Discard,
    );
    let opts = resume_job_options(out, interval).with_stop_handle(stop);
    let t = Instant::now();
    let r = m.submit_tasks(0..n, opts);
    let wall = t.elapsed();
    (
        r,
        Probe {
            first,
            mark_seen,
            start: t,
        },
        wall,
    )
}

/// Part 2b's child: runs the resume job on `out` from scratch and prints
/// `MARK` when the task sees `mark`, for the parent to SIGKILL it there.
fn killed_child(out: &Path, n: u64, interval: usize, mark: u64) {
    use std::io::Write as _;
    let mut m = TaskManager::with_handler(
        move || {
            task_fn("square", move |x: &u64| {
                if *x == mark {
                    let mut o = std::io::stdout().lock();
                    let _ = writeln!(o, "MARK");
                    let _ = o.flush();
                }
                Ok(x.wrapping_mul(*x))
            })
        },
        Discard,
    );
    m.submit_tasks(0..n, resume_job_options(out, interval))
        .unwrap();
}

/// Part 2's job: chunks of one item, saved and checkpointed under `out`.
fn resume_job_options(out: &Path, interval: usize) -> SubmitOptions<u64> {
    SubmitOptions::new()
        .with_chunk_size(1)
        .with_save_interval(interval)
        .with_saver(saver(out))
        .with_checkpoint(checkpoint(out))
}

/// Part 2b: a child process runs the job and is killed with SIGKILL when
/// its task sees item `mark`; returns when it is dead.
fn run_and_kill(out: &Path, n: u64, interval: usize, mark: u64) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("RAYGENT_BENCH_KILL_CHILD", out)
        .env("RAYGENT_BENCH_KILL_MARK", mark.to_string())
        .env("RAYGENT_BENCH_RESUME_CHUNKS", n.to_string())
        .env("RAYGENT_BENCH_SAVE_INTERVAL", interval.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(stdout).lines() {
        if line.unwrap() == "MARK" {
            break;
        }
    }
    // SAFETY: kill only sends a signal to the child we spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert!(
        status.code().is_none(),
        "the child was not killed: {status}"
    );
}

fn main() {
    if let Ok(out) = std::env::var("RAYGENT_BENCH_KILL_CHILD") {
        let n = env_u64("RAYGENT_BENCH_RESUME_CHUNKS", 1_000_000);
        let interval = env_u64("RAYGENT_BENCH_SAVE_INTERVAL", 10_000) as usize;
        let mark = env_u64("RAYGENT_BENCH_KILL_MARK", n * 9 / 10);
        killed_child(Path::new(&out), n, interval, mark);
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let n = env_u64("RAYGENT_BENCH_ITEMS", 5_000_000);
    let chunk = env_u64("RAYGENT_BENCH_CHUNK", 100) as usize;
    let interval = env_u64("RAYGENT_BENCH_SAVE_INTERVAL", 10_000) as usize;
    let runs = env_u64("RAYGENT_BENCH_RUNS", 11).max(1) as usize;
    let cpu_items = env_u64("RAYGENT_BENCH_CPU_ITEMS", 30_000);
    let resume_chunks = env_u64("RAYGENT_BENCH_RESUME_CHUNKS", 1_000_000);
    let jobs: Vec<usize> = std::env::var("RAYGENT_BENCH_JOBS")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .filter_map(|j| j.trim().parse().ok())
        .collect();
    let only_overhead = env_u64("RAYGENT_BENCH_ONLY_OVERHEAD", 0) == 1;
    println!("raygent checkpoint benchmark: {cores} cores");
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        if let Ok(mut dirs) = TEMPDIRS.try_lock() {
            dirs.clear();
        }
    }));

    // 1. Overhead.
    let cpu_iters = calibrate(Duration::from_micros(100));
    let configs = [
        Overhead {
            label: format!("square a u64, chunk {chunk}"),
            items: n,
            chunk,
            interval,
            iters: 0,
            last_cpu: Default::default(),
        },
        Overhead {
            label: format!("square a u64, chunk {chunk}"),
            items: n,
            chunk,
            interval: interval * 10,
            iters: 0,
            last_cpu: Default::default(),
        },
        Overhead {
            label: "~100 µs/item, chunk 10".into(),
            items: cpu_items,
            chunk: 10,
            interval: interval / 10,
            iters: cpu_iters,
            last_cpu: Default::default(),
        },
    ];
    println!(
        "\n1. checkpoint overhead: CBOR parts to a local directory (fsynced), with and without \
         step checkpoints (keep 3) next to them; runs alternate (each pair in turn order); \
         medians of {runs}; `pairs`: median of the {runs} ratios with/without of adjacent runs, \
         and its 95 % confidence interval (order statistics: distribution-free) (runs in ms, \
         listed up to 41 runs)"
    );
    println!(
        "{:<26} {:>9} {:>9} {:>6} {:>10} {:>10} {:>8} {:>6} {:>13}   {:<24} {:<24}",
        "task",
        "items",
        "interval",
        "parts",
        "without ms",
        "with ms",
        "with/w.o",
        "pairs",
        "pairs 95% CI",
        "runs without",
        "runs with"
    );
    let list = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let chosen = configs
        .iter()
        .enumerate()
        .filter(|(i, _)| jobs.contains(&(i + 1)))
        .map(|(_, c)| c);
    for c in chosen {
        c.run(Ckpt::Disk); // warm up (page cache, allocator)
        let mut without = Vec::new();
        let mut with = Vec::new();
        let (mut cpu_without, mut cpu_with) = (Vec::new(), Vec::new());
        for i in 0..runs {
            trim_tempdirs();
            // Alternate which goes first, so a drift of the machine does
            // not favour one variant.
            for ckpt in if i % 2 == 0 {
                [Ckpt::Off, Ckpt::Disk]
            } else {
                [Ckpt::Disk, Ckpt::Off]
            } {
                let wall = c.run(ckpt);
                if ckpt == Ckpt::Disk {
                    with.push(wall);
                    cpu_with.push(c.last_cpu.get());
                } else {
                    without.push(wall);
                    cpu_without.push(c.last_cpu.get());
                }
            }
        }
        let mut ratios: Vec<f64> = with
            .iter()
            .zip(&without)
            .map(|(w, o)| w.as_secs_f64() / o.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let pairs = ratios[ratios.len() / 2];
        let (lo, hi) = median_interval(&ratios);
        let (a, b) = (median(without.clone()), median(with.clone()));
        let shown = |v: &[Duration]| {
            if v.len() <= 41 {
                list(v)
            } else {
                String::new()
            }
        };
        println!(
            "{:<26} {:>9} {:>9} {:>6} {:>10.1} {:>10.1} {:>8.3} {:>6.3} {:>13}   {:<24} {:<24}",
            c.label,
            c.items,
            c.interval,
            c.items.div_ceil(c.interval as u64),
            ms(a),
            ms(b),
            b.as_secs_f64() / a.as_secs_f64(),
            pairs,
            format!("{lo:.3}-{hi:.3}"),
            shown(&without),
            shown(&with)
        );
        let (ca, cb) = (median(cpu_without), median(cpu_with));
        println!(
            "{:<26} CPU time of the job (all threads, medians): without {:.1} ms, with {:.1} ms, \
             with/w.o {:.3}",
            "",
            ms(ca),
            ms(cb),
            cb.as_secs_f64() / ca.as_secs_f64()
        );
    }
    if only_overhead {
        return;
    }
    // Where the difference goes.
    let small = Overhead {
        label: String::new(),
        items: 1000,
        chunk,
        interval,
        iters: 0,
        last_cpu: Default::default(),
    };
    small.run(Ckpt::Disk);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(11) {
        a.push(small.run(Ckpt::Off));
        b.push(small.run(Ckpt::Disk));
    }
    println!("breakdown:");
    // The first job again, checkpoints in memory against none.
    let c = &configs[0];
    let (mut off, mut mem) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        off.push(c.run(Ckpt::Off));
        mem.push(c.run(Ckpt::Memory));
    }
    let (a0, m0) = (median(off), median(mem));
    println!(
        "  first job with checkpoints kept in memory (bookkeeping, no writes): {:.1} ms against {:.1} ms without, ratio {:.3}",
        ms(m0),
        ms(a0),
        m0.as_secs_f64() / a0.as_secs_f64()
    );
    println!(
        "  fixed cost per job (1000 items, 1 part: with minus without, medians): {:.2} ms",
        ms(median(b)) - ms(median(a))
    );
    println!(
        "  one checkpoint write alone (StepProgressStore::save, keep 3), median of 50: {:.2} ms \
         (one object, state inside COMMIT); {:.2} ms (state.cbor + COMMIT)",
        ms(checkpoint_write_time(50, INLINE_JOB_STATE_MAX)),
        ms(checkpoint_write_time(50, 0))
    );
    // Hashing each chunk (on the task threads) and chaining the hashes (in
    // the sink), here on one thread.
    let chunk_size = env_u64("RAYGENT_BENCH_CHUNK", 100).max(1);
    let mut fp = Fingerprint::new();
    let mut hasher = ChunkHasher::new();
    let mut chunk = Vec::with_capacity(chunk_size as usize);
    let t = Instant::now();
    for x in 0..n {
        chunk.push(x);
        if chunk.len() as u64 == chunk_size || x + 1 == n {
            fp.add(hasher.hash(&chunk).unwrap());
            chunk.clear();
        }
    }
    let fp_time = t.elapsed();
    black_box(fp.value());
    println!(
        "  input fingerprint (chunks of {chunk_size}, hashed on the task threads): {:.1} ns per u64 \
         item, {:.1} ms of CPU for {n} items",
        fp_time.as_secs_f64() * 1e9 / n as f64,
        ms(fp_time)
    );

    // 2. Resume.
    let stop_at = resume_chunks * 9 / 10;
    println!(
        "\n2. resume: {resume_chunks} chunks of 1 u64, save interval {interval}, CBOR + checkpoints \
         to a local directory, stopped at item {stop_at}"
    );
    let out = tempdir().join("out");
    let (r, _, first_wall) = resume_run(&out, resume_chunks, interval, u64::MAX, Some(stop_at));
    let committed = match r {
        Err(Error::Interrupted { committed_chunks }) => committed_chunks,
        other => panic!("expected an interruption, got {other:?}"),
    };
    println!(
        "interrupted run: {:.1} ms, {committed} chunks committed",
        ms(first_wall)
    );
    let (r, probe, resumed_wall) = resume_run(&out, resume_chunks, interval, u64::MAX, None);
    let report = r.unwrap();
    let to_first = probe.first.get().unwrap().duration_since(probe.start);
    println!(
        "resumed run: skipped {} chunks, ran {}",
        report.resumed_chunks,
        report.chunks - report.resumed_chunks
    );

    let out2 = tempdir().join("out");
    let (r, probe, scratch_wall) = resume_run(&out2, resume_chunks, interval, committed, None);
    r.unwrap();
    let scratch_to_mark = probe.mark_seen.get().unwrap().duration_since(probe.start);

    println!("{:<52} {:>10}", "measure", "ms");
    for (label, d) in [
        ("resume: submit_tasks to first new chunk run", to_first),
        ("resume: whole resumed run", resumed_wall),
        (
            "from scratch: submit_tasks to the same chunk run",
            scratch_to_mark,
        ),
        ("from scratch: whole run", scratch_wall),
    ] {
        println!("{:<52} {:>10.1}", label, ms(d));
    }
    println!(
        "resume reaches the first new chunk {:.1}x sooner than a rerun from scratch",
        scratch_to_mark.as_secs_f64() / to_first.as_secs_f64()
    );

    // 2b. The same job killed with SIGKILL in a child process.
    println!(
        "\n2b. the same job in a child process, killed with SIGKILL when its task sees item \
         {stop_at}, then resumed here (the rerun also deletes the parts the kill left \
         uncommitted)"
    );
    let out3 = tempdir().join("out");
    let t = Instant::now();
    run_and_kill(&out3, resume_chunks, interval, stop_at);
    println!("killed run: {:.1} ms", ms(t.elapsed()));
    let (r, probe, resumed_wall) = resume_run(&out3, resume_chunks, interval, u64::MAX, None);
    let report = r.unwrap();
    assert_eq!(report.chunks, resume_chunks);
    let to_first = probe.first.get().unwrap().duration_since(probe.start);
    println!(
        "resumed run: skipped {} chunks ({:.1} %), ran {}",
        report.resumed_chunks,
        report.resumed_chunks as f64 * 100.0 / resume_chunks as f64,
        report.chunks - report.resumed_chunks
    );
    println!("{:<52} {:>10}", "measure", "ms");
    for (label, d) in [
        (
            "resume after SIGKILL: submit_tasks to first new chunk",
            to_first,
        ),
        ("resume after SIGKILL: whole resumed run", resumed_wall),
    ] {
        println!("{:<52} {:>10.1}", label, ms(d));
    }
    println!(
        "resume after SIGKILL reaches its first new chunk {:.1}x sooner than a rerun from \
         scratch reaches item {stop_at}",
        scratch_to_mark.as_secs_f64() / to_first.as_secs_f64()
    );
    TEMPDIRS.lock().unwrap().clear();
}
