//! A progress bar on a terminal, periodic log lines otherwise.

use std::io::IsTerminal;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raygent_actors::Progress;

/// Draws progress until dropped.
pub struct Reporter {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Starts drawing (nothing at all when `quiet`).
    pub fn start(progress: Progress, total: Option<u64>, quiet: bool) -> Reporter {
        if quiet {
            return Reporter {
                stop: None,
                handle: None,
            };
        }
        let (tx, rx) = mpsc::channel::<()>();
        let tty = std::io::stderr().is_terminal();
        let handle = std::thread::Builder::new()
            .name("raygent-progress".into())
            .spawn(move || {
                if tty {
                    draw_bar(&progress, total, &rx);
                } else {
                    log_lines(&progress, total, &rx);
                }
            })
            .ok();
        Reporter {
            stop: Some(tx),
            handle,
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn draw_bar(p: &Progress, total: Option<u64>, rx: &mpsc::Receiver<()>) {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = match total {
        Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = if total.is_some() {
        "{bar:30} {pos}/{len} items ({per_sec}, ETA {eta}) {msg}"
    } else {
        "{spinner} {pos} items ({per_sec}) {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    loop {
        bar.set_position(p.items());
        bar.set_message(format!(
            "retries {}, failed chunks {}",
            p.retries(),
            p.failed_chunks()
        ));
        match rx.recv_timeout(Duration::from_millis(200)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => break,
        }
    }
    bar.set_position(p.items());
    bar.finish_and_clear();
}

fn log_lines(p: &Progress, total: Option<u64>, rx: &mpsc::Receiver<()>) {
    let started = Instant::now();
    let start_items = p.items();
    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(10)) {
        let items = p.items();
        let rate = (items - start_items) as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let of = total.map_or(String::new(), |t| {
            format!("/{t} ({:.0}%)", items as f64 * 100.0 / t.max(1) as f64)
        });
        eprintln!(
            "raygent: {items}{of} items, {rate:.0} items/s, retries {}, failed chunks {}",
            p.retries(),
            p.failed_chunks()
        );
    }
}
