//! Progress on a terminal: a bar on stderr while a backup or a restore runs,
//! nothing when stderr is not a terminal (a scheduled run prints one summary
//! line instead).
//!
//! The bar shows the bytes done (read by a backup, written by a restore),
//! their rate and indicatif's estimate of the time left (from that rate:
//! a backup's total is known once its plan is, which is when its bar
//! starts), and the link's rate each way over the last seconds, with the
//! limit in force ([`LinkRate`]).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffre_core::units::format_rate;
use indicatif::style::ProgressTracker;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::limits::Limiter;

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
                "{verb} {{bar:30}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} ETA {{eta}}  {{link}}{{msg}}"
            ))
            .map(|style| style.with_key("link", LinkRate::new(crate::limits::current())))
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

/// The `{link}` of the bar: "↑ 3.9 Mbit/s (limit 4 Mbit/s)  ", each
/// direction that moved over the last [`LinkRate::SPAN`] (stream bytes:
/// QUIC's packets carry about 3% more), nothing if neither did.
#[derive(Debug, Clone)]
struct LinkRate {
    limiter: Arc<Limiter>,
    /// (when, bytes sent, bytes received) over the last span.
    samples: VecDeque<(Instant, u64, u64)>,
}

impl LinkRate {
    /// The span the rates are measured over.
    const SPAN: Duration = Duration::from_secs(3);

    fn new(limiter: Arc<Limiter>) -> LinkRate {
        LinkRate {
            limiter,
            samples: VecDeque::new(),
        }
    }

    /// Upload and download rates (bytes per second) over the samples.
    fn rates(&self) -> Option<(u64, u64)> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let secs = last.0.duration_since(first.0).as_secs_f64();
        (secs >= 0.5).then(|| {
            (
                ((last.1 - first.1) as f64 / secs) as u64,
                ((last.2 - first.2) as f64 / secs) as u64,
            )
        })
    }
}

impl ProgressTracker for LinkRate {
    fn clone_box(&self) -> Box<dyn ProgressTracker> {
        Box::new(self.clone())
    }

    fn tick(&mut self, _: &ProgressState, now: Instant) {
        let sent = self.limiter.sent().bytes();
        let received = self.limiter.received_meter().bytes();
        self.samples.push_back((now, sent, received));
        while self
            .samples
            .front()
            .is_some_and(|s| now.duration_since(s.0) > Self::SPAN)
        {
            self.samples.pop_front();
        }
    }

    fn reset(&mut self, _: &ProgressState, _: Instant) {
        self.samples.clear();
    }

    fn write(&self, _: &ProgressState, w: &mut dyn std::fmt::Write) {
        let _ = w.write_str(&self.text());
    }
}

impl LinkRate {
    /// What `{link}` shows.
    fn text(&self) -> String {
        let mut out = String::new();
        let Some((up, down)) = self.rates() else {
            return out;
        };
        let mut way = |arrow: &str, rate: u64, limit: Option<u64>| {
            if rate == 0 {
                return;
            }
            let _ = write!(out, "{arrow} {}", format_rate(rate));
            if let Some(limit) = limit {
                let _ = write!(out, " (limit {})", format_rate(limit));
            }
            out.push_str("  ");
        };
        way("↑", up, self.limiter.upload_limit());
        way("↓", down, self.limiter.download_limit());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_rate_shows_each_direction_that_moved() {
        let mut link = LinkRate::new(Arc::new(Limiter::off()));
        let t = Instant::now();
        link.samples.push_back((t, 0, 5_000));
        assert_eq!(link.rates(), None);
        link.samples
            .push_back((t + Duration::from_secs(2), 1_000_000, 5_000));
        assert_eq!(link.rates(), Some((500_000, 0)));
        assert_eq!(link.text(), "↑ 4 Mbit/s  ");
        let limited = Limiter::new(
            &Default::default(),
            crate::limits::Options {
                upload: Some("5 Mbit/s".parse().unwrap()),
                download: None,
            },
        );
        link.limiter = Arc::new(limited);
        assert_eq!(link.text(), "↑ 4 Mbit/s (limit 5 Mbit/s)  ");
    }
}
