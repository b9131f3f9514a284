//! `coffre restore SNAPSHOT [--path SUBPATH] [--include GLOB] [--exclude GLOB] --target DIR`.

use std::path::Path;

use anyhow::Result;
use coffre_core::units::format_size;
use coffre_core::ChunkId;

use crate::cli::RestoreArgs;
use crate::display::local_time;
use crate::restore::{self, Options};
use crate::session::Session;

/// Runs `coffre restore`; exit status 1 if some files could not be
/// restored, 130 if interrupted (Ctrl-C, SIGTERM).
pub fn run(config: &Path, args: &RestoreArgs) -> Result<u8> {
    let session = Session::open_waiting(config, crate::session::stderr_notice())?;
    let snap = session.resolve(&args.snapshot, args.device.as_deref())?;
    let id = ChunkId::from_bytes(snap.id);
    if !args.json {
        outln!(
            "restoring snapshot {} of {} ({}){}",
            id.short(),
            local_time(snap.time),
            snap.device,
            args.path
                .as_deref()
                .map(|p| format!(", {p}"))
                .unwrap_or_default()
        );
    }
    let report = restore::run(
        &session,
        &id,
        &Options {
            target: args.target.clone(),
            path: args.path.clone(),
            include: args.include.clone(),
            exclude: args.exclude.clone(),
            overwrite: args.overwrite,
            progress: !(args.quiet || args.json),
        },
    )?;
    session.close();
    if report.interrupted {
        errln!(
            "interrupted: {} restored, run the same command again to finish",
            crate::display::count(report.files, "file")
        );
        return Ok(restore::interrupt::EXIT_STATUS);
    }
    for (path, why) in &report.failed {
        errln!("coffre: could not restore {}: {why}", path.display());
    }
    if !report.renamed.is_empty() && !args.json {
        // A few examples; the rule is one, and reversible.
        const SHOWN: usize = 5;
        let examples: Vec<String> = report
            .renamed
            .iter()
            .take(SHOWN)
            .map(|(path, original)| {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let was: String = original
                    .chars()
                    .map(|c| {
                        if c.is_control() {
                            c.escape_debug().to_string()
                        } else {
                            c.to_string()
                        }
                    })
                    .collect();
                format!("{name} (was \"{was}\")")
            })
            .collect();
        let more = report.renamed.len().saturating_sub(SHOWN);
        errln!(
            "coffre: note: {} restored under an escaped name, as this system cannot hold \
             {} as {} (or another name of the folder differs only by case): {}{}; each %XX \
             is one byte of the name in the snapshot (docs/format.md, \"Tree entry names on Windows\")",
            crate::display::count_with(report.renamed.len() as u64, "name was", "names were"),
            if report.renamed.len() == 1 { "it" } else { "them" },
            if report.renamed.len() == 1 { "it is" } else { "they are" },
            examples.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        );
    }
    if args.json {
        let v = serde_json::json!({
            "snapshot": id.to_hex(),
            "root": report.root.display().to_string(),
            "files": report.files,
            "bytes": report.bytes,
            "dirs": report.dirs,
            "symlinks": report.symlinks,
            "already_there": report.already,
            "stale_temporary_files_removed": report.stale_removed,
            "failed": report.failed.iter().map(|(p, e)| serde_json::json!({"path": p.display().to_string(), "error": e})).collect::<Vec<_>>(),
            "renamed": report.renamed.iter().map(|(p, n)| serde_json::json!({"path": p.display().to_string(), "name_in_snapshot": n})).collect::<Vec<_>>(),
            "seconds": report.duration.as_secs_f64(),
            "chunks_downloaded": report.chunks_downloaded,
            "chunk_bytes_downloaded": report.chunk_bytes_downloaded,
            "chunks_copied": report.chunks_copied,
            "received_bytes": report.received_bytes,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        use crate::display::count;
        let mut line = format!(
            "restored {} ({}), {}, {} into {} in {:.1} s",
            count(report.files, "file"),
            format_size(report.bytes),
            count(report.dirs, "folder"),
            count(report.symlinks, "link"),
            report.root.display(),
            report.duration.as_secs_f64()
        );
        if report.already > 0 {
            line.push_str(&format!(
                "; {} already there",
                crate::display::count_with(report.already, "file was", "files were")
            ));
        }
        if !report.failed.is_empty() {
            line.push_str(&format!(
                "; {} NOT be restored (listed above): run `coffre check --read-data` and tell your technician",
                crate::display::count_with(report.failed.len() as u64, "file could", "files could")
            ));
        }
        outln!("{line}");
    }
    Ok(if report.failed.is_empty() { 0 } else { 1 })
}
