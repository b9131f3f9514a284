//! A program run as a person runs it, and what it must print: `ok` (it
//! succeeded: its standard output) and `one_line_error` (it failed with one
//! line, `PROGRAM: error: ...`, the rule of every coffre binary).
//!
//! The program is an argument: Cargo gives `CARGO_BIN_EXE_coffre` and
//! `CARGO_BIN_EXE_coffre-server` only to their own package's tests, which
//! pass `env!(...)` in.

use std::path::Path;
use std::process::{Command, Output};

/// `PROGRAM ARGS --data DATA`, as an operator types an admin command, kept
/// hermetic: periods shown in UTC (`TZ`), no `COFFRE_DATA` inherited from
/// the test's environment, and run in DATA's parent folder so that nothing
/// lands in the working directory.
pub fn admin_command(program: &Path, data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .arg("--data")
        .arg(data)
        .env("TZ", "UTC")
        .env_remove("COFFRE_DATA");
    if let Some(parent) = data.parent().filter(|p| p.is_dir()) {
        c.current_dir(parent);
    }
    c
}

/// The standard output of a command that must have succeeded (its standard
/// error in the failure).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The one line `program` printed on failing: the command failed, its
/// standard error is one line, and that line starts `PROGRAM: error: `.
pub fn one_line_error(out: &Output, program: &str) -> String {
    assert!(!out.status.success(), "the command should have failed");
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "a failure is one line on stderr, got:\n{err}"
    );
    assert!(err.starts_with(&format!("{program}: error: ")), "{err}");
    err
}
