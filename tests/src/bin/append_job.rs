//! A checkpointed job whose saver appends rows to one CSV file, as the
//! seed's CSV saver does: the crash tests kill it with SIGKILL and rerun it.
//!
//! `append_job OUT N HOLD_AT` squares `0..N` in chunks of 10 and appends
//! `index,square` rows to `OUT/rows.csv`, checkpointing after every save
//! under `OUT/_checkpoints`. The save of the batch holding item `HOLD_AT`
//! writes its rows, then writes `OUT/held` and waits, uncommitted, until
//! `OUT/release` exists: a kill there leaves rows past the checkpoint.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use raygent_actors::{ResumeConfig, StepProgressStore, SubmitOptions, TaskManager};
use raygent_core::{Batch, Discard, ResumePoint, SaveError, Saver, task_fn};

/// Appends `index,value` rows; resumes by cutting the file after the last
/// row before the resume point.
struct AppendCsv {
    dir: PathBuf,
    hold_at: u64,
}

impl AppendCsv {
    fn rows(&self) -> PathBuf {
        self.dir.join("rows.csv")
    }
}

impl Saver<u64> for AppendCsv {
    fn save(&mut self, batch: &Batch<'_, u64>) -> Result<(), SaveError> {
        let err = |e: std::io::Error| SaveError::write(self.rows().display().to_string(), e);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.rows())
            .map_err(err)?;
        let mut text = String::new();
        for (i, v) in (batch.items.start..).zip(batch.results) {
            text.push_str(&format!("{i},{v}\n"));
        }
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        if batch.items.contains(&self.hold_at) {
            File::create(self.dir.join("held")).map_err(err)?;
            while !self.dir.join("release").exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    fn resume(&mut self, point: &ResumePoint) -> Result<(), SaveError> {
        let err = |e: std::io::Error| SaveError::write(self.rows().display().to_string(), e);
        let Ok(f) = File::open(self.rows()) else {
            return Ok(());
        };
        let mut keep = 0u64;
        for line in BufReader::new(f).lines() {
            let line = line.map_err(err)?;
            let index: u64 = line
                .split(',')
                .next()
                .and_then(|i| i.parse().ok())
                .ok_or_else(|| SaveError::Other(format!("bad row {line:?}").into()))?;
            if index >= point.next_item {
                break;
            }
            keep += line.len() as u64 + 1;
        }
        let f = OpenOptions::new()
            .write(true)
            .open(self.rows())
            .map_err(err)?;
        f.set_len(keep).map_err(err)?;
        f.sync_all().map_err(err)
    }

    fn can_resume(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("appended rows in {}", self.rows().display())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, out, n, hold_at] = &args[..] else {
        return Err("usage: append_job OUT N HOLD_AT".into());
    };
    let (out, n, hold_at) = (Path::new(out), n.parse::<u64>()?, hold_at.parse()?);
    std::fs::create_dir_all(out)?;
    let ckpt = out.join("_checkpoints");
    std::fs::create_dir_all(&ckpt)?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(&ckpt)?.with_fsync(true);
    let steps = raygent_ckpt::StepCheckpointer::new(Arc::new(store), "".into())?
        .with_keep(3)
        .with_local_dir(&ckpt);
    let mut manager = TaskManager::with_handler(|| task_fn("square", |x: &u64| Ok(x * x)), Discard)
        .with_n_cores(2);
    manager.submit_tasks(
        0..n,
        SubmitOptions::new()
            .with_chunk_size(10)
            .with_save_interval(50)
            .with_saver(AppendCsv {
                dir: out.to_path_buf(),
                hold_at,
            })
            .with_checkpoint(
                ResumeConfig::new(Arc::new(StepProgressStore::new(steps)))
                    .with_min_interval(Duration::ZERO),
            ),
    )?;
    Ok(())
}
