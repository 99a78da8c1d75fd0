//! Progress on stderr for commands that take more than a second.
//!
//! Every command runs under one [`Progress`]: a spinner with the elapsed
//! time, or a bar with a count once the command knows its total (the
//! goroutine listing sets `allglen` and advances per batch). It stays
//! invisible unless stderr is a terminal, and appears only after
//! [`SHOW_AFTER`], so quick commands and scripts never see it.
//!
//! `RDLV_PROGRESS_AFTER_MS` changes the delay (0 shows progress at once; the
//! end-to-end test uses it, and so can someone who wants it sooner).
//!
//! Invariant: progress never interleaves with the command's output on one
//! terminal. When stdout is that terminal too, [`ProgressWriter`] removes the
//! bar before the first byte of output is written and it does not come
//! back; when stdout is a file or a pipe the bar stays until the end.

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A command that finishes within this time shows no progress at all.
pub const SHOW_AFTER: Duration = Duration::from_secs(1);
/// Longest delay `RDLV_PROGRESS_AFTER_MS` may ask for (one hour).
const MAX_DELAY_MS: u64 = 3_600_000;

/// The delay before progress shows: [`SHOW_AFTER`] unless
/// `RDLV_PROGRESS_AFTER_MS` says otherwise.
fn show_after() -> Duration {
    std::env::var("RDLV_PROGRESS_AFTER_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms.min(MAX_DELAY_MS)))
        .unwrap_or(SHOW_AFTER)
}

/// Redraw interval of the spinner.
const TICK: Duration = Duration::from_millis(100);

/// Shared state: the bar, and whether it is finished (so the timer thread
/// never shows a bar that is already done).
struct Shared {
    bar: ProgressBar,
    done: Mutex<bool>,
}

/// Progress of one command (cheap to clone; clones drive the same bar).
#[derive(Clone)]
pub struct Progress {
    shared: Arc<Shared>,
    /// Dropping the last sender wakes the timer thread early.
    _wake: Option<Arc<Sender<()>>>,
}

impl Progress {
    /// Progress that never shows (scripts, tests, nested commands).
    pub fn hidden() -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        Progress {
            shared: Arc::new(Shared {
                bar,
                done: Mutex::new(false),
            }),
            _wake: None,
        }
    }

    /// Starts progress for `message`; it shows on stderr after
    /// [`SHOW_AFTER`] if stderr is a terminal and the command still runs.
    pub fn start(message: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let progress = Progress::hidden();
        progress.shared.bar.set_style(spinner_style());
        progress.shared.bar.set_message(message.to_string());
        let (tx, rx) = channel::<()>();
        let shared = progress.shared.clone();
        let delay = show_after();
        let spawned = std::thread::Builder::new()
            .name("rdlv-progress".into())
            .spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(delay) {
                    // Held while showing, so `finish` cannot slip in between.
                    if let Ok(done) = shared.done.lock() {
                        if !*done {
                            shared.bar.set_draw_target(ProgressDrawTarget::stderr());
                            shared.bar.enable_steady_tick(TICK);
                        }
                    }
                }
            });
        Progress {
            _wake: spawned.ok().map(|_| Arc::new(tx)),
            ..progress
        }
    }

    /// Replaces the message (the phase: "opening", "listing goroutines").
    pub fn set_message(&self, message: &str) {
        self.shared.bar.set_message(message.to_string());
    }

    /// Turns the spinner into a bar of `total` steps at position 0.
    pub fn set_total(&self, total: u64) {
        let bar = &self.shared.bar;
        bar.set_style(bar_style());
        bar.set_length(total);
        bar.set_position(0);
    }

    /// Advances the bar by `n` steps.
    pub fn inc(&self, n: u64) {
        self.shared.bar.inc(n);
    }

    /// Removes the progress for good.
    pub fn finish(&self) {
        let done = self.shared.done.lock();
        if let Ok(mut done) = done {
            *done = true;
            self.shared.bar.finish_and_clear();
        } else {
            self.shared.bar.finish_and_clear();
        }
    }

    /// Whether it has been finished.
    #[cfg(test)]
    pub fn is_finished(&self) -> bool {
        self.shared.done.lock().map(|d| *d).unwrap_or(true)
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:20}] {human_pos}/{human_len} ({elapsed}, {eta} left)")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The command's output: removes the progress before the first write when
/// stdout is the terminal the progress is drawn on.
pub struct ProgressWriter<'a> {
    inner: &'a mut dyn Write,
    progress: Progress,
    hide_on_write: bool,
}

impl<'a> ProgressWriter<'a> {
    /// Wraps `inner` (stdout); `stdout_is_terminal` decides whether the
    /// progress must leave before output appears.
    pub fn new(inner: &'a mut dyn Write, progress: Progress, stdout_is_terminal: bool) -> Self {
        ProgressWriter {
            inner,
            progress,
            hide_on_write: stdout_is_terminal,
        }
    }
}

impl Write for ProgressWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.hide_on_write && !buf.is_empty() {
            self.hide_on_write = false;
            self.progress.finish();
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_finishes_progress_on_a_terminal_only() {
        let mut sink = Vec::new();
        let progress = Progress::hidden();
        let mut w = ProgressWriter::new(&mut sink, progress.clone(), false);
        w.write_all(b"x").unwrap();
        assert!(!progress.is_finished());
        let mut w = ProgressWriter::new(&mut sink, progress.clone(), true);
        w.write_all(b"").unwrap();
        assert!(!progress.is_finished());
        w.write_all(b"y").unwrap();
        assert!(progress.is_finished());
        assert_eq!(sink, b"xy");
    }
}
