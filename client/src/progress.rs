//! Progress on a terminal: a bar on stderr while a backup or a restore runs,
//! nothing when stderr is not a terminal (a scheduled run prints one summary
//! line instead).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-counting progress bar, or nothing.
#[derive(Debug, Clone)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar over `total` bytes, shown only if `wanted` and stderr is a terminal.
    pub fn bytes(total: u64, verb: &str, wanted: bool) -> Progress {
        if !wanted || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{verb} {{bar:30}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} ETA {{eta}}  {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress(Some(bar))
    }

    /// Adds `n` bytes done.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    /// Sets the text after the bar.
    pub fn message(&self, text: impl FnOnce() -> String) {
        if let Some(b) = &self.0 {
            b.set_message(text());
        }
    }

    /// Prints a line above the bar (or on stderr without one).
    pub fn println(&self, line: &str) {
        match &self.0 {
            Some(b) => b.suspend(|| errln!("{line}")),
            None => errln!("{line}"),
        }
    }

    /// Runs `f` with the bar hidden, so that what it prints lands above it.
    pub fn suspend(&self, f: &dyn Fn()) {
        match &self.0 {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
