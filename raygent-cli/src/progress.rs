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
        "{bar:30} {pos}/{len} items ({rate}, ETA {eta}) {msg}"
    } else {
        "{spinner} {pos} items ({rate}) {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        // indicatif's own `{per_sec}` prints rates like `1,390.4063/s`.
        bar.set_style(style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&format_rate(state.per_sec()));
            },
        ));
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
        let rate =
            format_rate((items - start_items) as f64 / started.elapsed().as_secs_f64().max(1e-9));
        let of = total.map_or(String::new(), |t| {
            format!("/{t} ({:.0}%)", items as f64 * 100.0 / t.max(1) as f64)
        });
        say!(
            "raygent: {items}{of} items, {rate}, retries {}, failed chunks {}",
            p.retries(),
            p.failed_chunks()
        );
    }
}

/// A rate of items per second, rounded for a reader: whole numbers with
/// thousands separators from 10/s up (`1,390/s`), one decimal below
/// (`2.5/s`).
fn format_rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec < 0.0 {
        return "-/s".into();
    }
    if per_sec < 10.0 {
        return format!("{per_sec:.1}/s");
    }
    let digits = format!("{per_sec:.0}");
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 2);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out.push_str("/s");
    out
}

#[cfg(test)]
mod tests {
    use super::format_rate;

    #[test]
    fn rates_are_rounded() {
        assert_eq!(format_rate(1390.4063), "1,390/s");
        assert_eq!(format_rate(1_234_567.8), "1,234,568/s");
        assert_eq!(format_rate(999.5), "1,000/s");
        assert_eq!(format_rate(12.34), "12/s");
        assert_eq!(format_rate(2.46), "2.5/s");
        assert_eq!(format_rate(0.0), "0.0/s");
        assert_eq!(format_rate(f64::INFINITY), "-/s");
    }
}
