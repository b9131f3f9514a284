//! What both programs print for people and scripts, and what happens when
//! nobody reads it any more.
//!
//! `coffre ls latest -R | head` closes the pipe after ten lines. Rust's
//! `println!` then panics ("failed printing to stdout: Broken pipe", exit
//! 101). Every line the programs print goes through [`outln!`] / [`out!`]
//! instead, which never panic. When the reader has gone:
//! - a command that only lists (`snapshots`, `ls`, `find`, `diff`,
//!   `coffre-server usage`...) calls [`stop_when_unread`] first: it then ends
//!   at once, quietly, with status 0, as `head`'s caller expects (ripgrep does
//!   the same; git and coreutils die of SIGPIPE, which a shell with `pipefail`
//!   reports as a failure);
//! - any other command (a backup, a restore, a prune) goes on to the end and
//!   keeps its exit status: its work matters more than its report, and it
//!   prints nothing more.
//!
//! A closed standard error is ignored by [`errln!`]: a message that cannot be
//! shown is not a reason to stop a backup.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a reader that has gone ends the process ([`stop_when_unread`]).
static STOP: AtomicBool = AtomicBool::new(false);
/// Whether standard output's reader has gone: nothing more is written.
static GONE: AtomicBool = AtomicBool::new(false);

/// Declares this command a listing: when the reader of its output has gone,
/// the process ends quietly with status 0 instead of computing lines nobody
/// reads.
pub fn stop_when_unread() {
    STOP.store(true, Ordering::Relaxed);
}

/// Writes `args` to standard output (see the module doc for a reader that
/// has gone). Use [`outln!`] and [`out!`].
pub fn out(args: fmt::Arguments<'_>) {
    if GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        gone_or(e);
    }
}

/// Flushes standard output (a `print!` without a newline before a prompt).
pub fn flush() {
    if GONE.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = io::stdout().flush() {
        gone_or(e);
    }
}

/// Writes `args` to standard error, ignoring a closed one.
pub fn err(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// True if `e` says the reader of a pipe has gone.
pub fn reader_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// A failed write to standard output: a reader that has gone ends a listing
/// quietly, and silences any other command; another failure (a full disk
/// behind a redirect) is said once on standard error, and silences it too.
fn gone_or(e: io::Error) {
    let first = !GONE.swap(true, Ordering::Relaxed);
    if reader_gone(&e) {
        if STOP.load(Ordering::Relaxed) {
            std::process::exit(0);
        }
    } else if first {
        err(format_args!(
            "warning: cannot write to standard output: {e}\n"
        ));
    }
}

/// `println!` that ends the process quietly when standard output's reader has gone.
#[macro_export]
macro_rules! outln {
    () => { $crate::console::out(format_args!("\n")) };
    ($($arg:tt)*) => {{
        $crate::console::out(format_args!("{}\n", format_args!($($arg)*)))
    }};
}

/// `print!` that ends the process quietly when standard output's reader has gone.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::console::out(format_args!($($arg)*)) };
}

/// `eprintln!` that ignores a closed standard error.
#[macro_export]
macro_rules! errln {
    () => { $crate::console::err(format_args!("\n")) };
    ($($arg:tt)*) => {{
        $crate::console::err(format_args!("{}\n", format_args!($($arg)*)))
    }};
}
