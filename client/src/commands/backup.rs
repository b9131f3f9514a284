//! `coffre backup`: one backup, its record and, when scheduled, its log.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use coffre_core::Timestamp;
use coffre_proto::ErrorCode;

use crate::backup::{self, Options, Report};
use crate::cli::BackupArgs;
use crate::config::Installation;
use crate::remote::RemoteError;
use crate::run_record::{self, RunRecord};
use crate::session::Session;

/// Exit status when the snapshot was saved but some files could not be read.
pub const PARTIAL: u8 = 3;

/// Runs `coffre backup`.
pub fn run(config: &Path, args: &BackupArgs) -> Result<u8> {
    let inst = Installation::load(config)?;
    let started = Timestamp::now().secs;
    if args.scheduled {
        run_record::log(&inst.log_path(), "scheduled backup starting");
    }
    let outcome = locked(&inst, || backup_with_retry(config, args));
    let finished = Timestamp::now().secs;
    let (record, status) = match &outcome {
        Ok(report) => {
            let partial = !report.errors.is_empty();
            (
                RunRecord {
                    started,
                    finished,
                    result: if partial { "partial" } else { "ok" }.into(),
                    scheduled: args.scheduled,
                    snapshot: Some(report.snapshot.to_hex()),
                    message: report.summary(),
                },
                if partial { PARTIAL } else { 0 },
            )
        }
        Err(e) => (
            RunRecord {
                started,
                finished,
                result: "failed".into(),
                scheduled: args.scheduled,
                snapshot: None,
                message: format!("{e:#}"),
            },
            1,
        ),
    };
    if let Err(e) = record.save(&inst) {
        eprintln!("coffre: warning: cannot record the outcome: {e:#}");
    }
    if args.scheduled {
        if let Ok(report) = &outcome {
            for (path, why) in &report.errors {
                run_record::log(
                    &inst.log_path(),
                    &format!("cannot read {}: {why}", path.display()),
                );
            }
        }
        run_record::log(
            &inst.log_path(),
            &format!("{}: {}", record.result, record.message),
        );
    }
    let report = outcome?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json(&report))?);
    } else {
        println!("{}", report.summary());
    }
    Ok(status)
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

fn backup_with_retry(config: &Path, args: &BackupArgs) -> Result<Report> {
    let session = Session::open(config)?;
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
    };
    let report = match backup::run(&session, &opts) {
        Err(e)
            if opts.use_caches
                && e.downcast_ref::<RemoteError>().and_then(RemoteError::code)
                    == Some(ErrorCode::MissingChunks) =>
        {
            eprintln!(
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

fn json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "snapshot": r.snapshot.to_hex(),
        "files": r.files,
        "files_new": r.stats.files_new,
        "files_changed": r.stats.files_changed,
        "files_unchanged": r.stats.files_unchanged,
        "dirs": r.stats.dirs,
        "bytes": r.logical_bytes,
        "bytes_read": r.stats.bytes_read,
        "bytes_sent": r.stats.bytes_sent,
        "blobs_sent": r.blobs_sent,
        "blobs_duplicate": r.blobs_duplicate,
        "chunks_verified": r.chunks_verified,
        "bytes_verified": r.bytes_verified,
        "excluded": r.excluded,
        "special_skipped": r.special.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "errors": r.errors.iter().map(|(p, e)| serde_json::json!({"path": p.display().to_string(), "error": e})).collect::<Vec<_>>(),
        "seconds": r.duration.as_secs_f64(),
    })
}
