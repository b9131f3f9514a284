//! `coffre backup`: the before hooks, one backup, the after hooks, its
//! record and, when scheduled, its log.
//!
//! The exit status (`backup --help`): 0 done; 1 failed, nothing saved; 3
//! ([`PARTIAL`]) saved with problems (a path missing, files unreadable or
//! held by another program, a before hook failed: all recorded in the
//! snapshot) or an after hook failed.
//! A failed before hook never stops the backup: the night's data is saved
//! all the same (issue 18).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use coffre_core::Timestamp;
use coffre_proto::ErrorCode;

use crate::backup::{self, Options, Report};
use crate::cli::BackupArgs;
use crate::config::Installation;
use crate::hooks::{self, Failure, Sink, Stage};
use crate::remote::{LinkEvent, Notice, RemoteError};
use crate::run_record::{self, RunRecord};
use crate::schedule::retry;
use crate::session::Session;

/// Exit status when the snapshot was saved with problems, or an after hook
/// failed.
pub const PARTIAL: u8 = 3;

/// Runs `coffre backup`.
pub fn run(config: &Path, args: &BackupArgs) -> Result<u8> {
    let inst = Installation::load(config)?;
    let started = Timestamp::now().secs;
    if args.scheduled {
        run_record::log(&inst.log_path(), "scheduled backup starting");
    }
    let sink = sink(&inst, args.scheduled);
    let mut after_failed = Vec::new();
    let mut before_failed = Vec::new();
    let outcome = locked(&inst, || {
        before_failed = hooks::run_all(&inst.config.hooks, Stage::Before, &[], &sink);
        let log = args.scheduled.then(|| inst.log_path());
        let once = || backup_with_retry(config, args, before_failed.clone(), log.clone());
        // A scheduled run that fails on the link tries again later in the night.
        let outcome = if args.scheduled {
            let until = inst.config.network.retry_until()?;
            retry::tonight(&jiff::ZonedDateTime::now(), until, &*sink, once)
        } else {
            once()
        };
        let (status, snapshot) = match &outcome {
            Ok(r) if r.problems() > 0 => ("problems", r.snapshot.to_hex()),
            Ok(r) => ("ok", r.snapshot.to_hex()),
            Err(_) => ("failed", String::new()),
        };
        let env = [
            ("COFFRE_BACKUP_STATUS", status.to_string()),
            ("COFFRE_SNAPSHOT", snapshot),
        ];
        after_failed = hooks::run_all(&inst.config.hooks, Stage::After, &env, &sink);
        outcome
    });
    let finished = Timestamp::now().secs;
    let (record, status) = record(
        &outcome,
        &before_failed,
        &after_failed,
        started,
        finished,
        args.scheduled,
    );
    if let Err(e) = record.save(&inst) {
        errln!("coffre: warning: cannot record the outcome: {e:#}");
    }
    if args.scheduled {
        for line in &record.problems {
            run_record::log(&inst.log_path(), line);
        }
        run_record::log(
            &inst.log_path(),
            &format!("{}: {}", record.result, record.message),
        );
    }
    let report = outcome?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json(&report, &after_failed))?
        );
    } else {
        outln!("{}", report.summary());
        for f in &after_failed {
            outln!("after hook {} failed: {}", f.name, f.why);
        }
    }
    Ok(status)
}

/// Where hook output goes: the log of a scheduled run, else standard error.
fn sink(inst: &Installation, scheduled: bool) -> Sink {
    if scheduled {
        let log = inst.log_path();
        Arc::new(move |line: &str| run_record::log(&log, line))
    } else {
        Arc::new(|line: &str| errln!("coffre: {line}"))
    }
}

/// The run's record and exit status.
fn record(
    outcome: &Result<Report>,
    before_failed: &[Failure],
    after_failed: &[Failure],
    started: i64,
    finished: i64,
    scheduled: bool,
) -> (RunRecord, u8) {
    let after_lines = after_failed
        .iter()
        .map(|f| format!("after hook {} failed: {}", f.name, f.why));
    match outcome {
        Ok(report) => {
            let partial = report.problems() > 0 || !after_failed.is_empty();
            let mut message = report.summary();
            if !after_failed.is_empty() {
                message.push_str(&format!(
                    "; {} after the backup: {}",
                    crate::display::count_with(
                        after_failed.len() as u64,
                        "hook failed",
                        "hooks failed"
                    ),
                    after_failed
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            (
                RunRecord {
                    started,
                    finished,
                    result: if partial { "partial" } else { "ok" }.into(),
                    scheduled,
                    snapshot: Some(report.snapshot.to_hex()),
                    message,
                    problems: report
                        .problem_lines()
                        .into_iter()
                        .chain(after_lines)
                        .collect(),
                },
                if partial { PARTIAL } else { 0 },
            )
        }
        Err(e) => (
            RunRecord {
                started,
                finished,
                result: "failed".into(),
                scheduled,
                snapshot: None,
                message: format!("{e:#}"),
                // The snapshot that would have recorded them was not made.
                problems: before_failed
                    .iter()
                    .map(|f| format!("before hook {} failed: {}", f.name, f.why))
                    .chain(after_lines)
                    .collect(),
            },
            1,
        ),
    }
}

/// Runs `f` holding the installation's lock, so two backups (a scheduled one
/// and a manual one) never share the caches at once.
fn locked<T>(inst: &Installation, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::fs::create_dir_all(inst.cache_dir())?;
    let path = inst.cache_dir().join("lock");
    let lock = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match lock.try_lock() {
        Ok(()) => f(),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another backup of this PC is running (it holds {}): wait for it to finish",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).context("locking the cache"),
    }
}

/// One backup; `log`: the scheduled run's log, which hears of the link too.
fn backup_with_retry(
    config: &Path,
    args: &BackupArgs,
    hooks_failed: Vec<Failure>,
    log: Option<PathBuf>,
) -> Result<Report> {
    let notice: Notice = match log {
        // "link down", "link lost, retrying" and "link back" in the log too.
        Some(log) => Arc::new(move |e: &LinkEvent| {
            errln!("coffre: {e}");
            run_record::log(&log, &e.to_string());
        }),
        None => crate::session::stderr_notice(),
    };
    // A link down at the start is waited for as a lost one is.
    let session = Session::open_waiting(config, notice)?;
    let c = &session.inst.config;
    let mut excludes = c.exclude.clone();
    excludes.extend(args.exclude.iter().cloned());
    let mut opts = Options {
        paths: if args.paths.is_empty() {
            c.paths.clone()
        } else {
            args.paths.clone()
        },
        excludes,
        threads: c.threads,
        uploads: c.uploads,
        progress: !(args.quiet || args.scheduled || args.json),
        use_caches: !args.no_cache,
        tags: args.tag.clone(),
        hooks_failed,
        checkpoints: c.backup.every()?,
    };
    let report = match backup::run(&session, &opts) {
        Err(e)
            if opts.use_caches
                && e.downcast_ref::<RemoteError>().and_then(RemoteError::code)
                    == Some(ErrorCode::MissingChunks) =>
        {
            errln!(
                "coffre: the server no longer has some data this PC's cache listed (snapshots were deleted): \
                 backing up again without the cache"
            );
            opts.use_caches = false;
            backup::run(&session, &opts)?
        }
        other => other?,
    };
    session.close();
    Ok(report)
}

fn json(r: &Report, after_failed: &[Failure]) -> serde_json::Value {
    serde_json::json!({
        "snapshot": r.snapshot.to_hex(),
        "files": r.files,
        "files_new": r.stats.files_new,
        "files_changed": r.stats.files_changed,
        "files_unchanged": r.stats.files_unchanged,
        "files_deleted": r.stats.files_deleted,
        "dirs": r.stats.dirs,
        "bytes": r.logical_bytes,
        "bytes_read": r.stats.bytes_read,
        "bytes_sent": r.stats.bytes_sent,
        "blobs_sent": r.blobs_sent,
        "checkpoints": r.checkpoints,
        "blobs_duplicate": r.blobs_duplicate,
        "chunks_verified": r.chunks_verified,
        "bytes_verified": r.bytes_verified,
        "excluded": r.excluded,
        "special_skipped": r.special.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "errors": r.errors.iter().map(|(p, e)| serde_json::json!({"path": p.display().to_string(), "error": e})).collect::<Vec<_>>(),
        "held_open": r.held.iter().map(|(p, e)| serde_json::json!({"path": p.display().to_string(), "error": e})).collect::<Vec<_>>(),
        "missing": r.missing.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "problems": r.problems(),
        "hooks_failed": r.hooks_failed.iter().map(|f| serde_json::json!({"hook": f.name, "stage": "before", "error": f.why}))
            .chain(after_failed.iter().map(|f| serde_json::json!({"hook": f.name, "stage": "after", "error": f.why})))
            .collect::<Vec<_>>(),
        "seconds": r.duration.as_secs_f64(),
        "outages": r.outages,
        "upload_bytes_per_second": r.upload_rate,
    })
}
