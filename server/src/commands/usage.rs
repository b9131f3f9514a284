//! `coffre-server usage`: who uses how much, and whose backups have gone
//! stale, in words a board member reads.
//!
//! The report itself (rows, statuses, the board's order) is
//! [`crate::usage`], which the board's web page renders too; this command
//! only prints it as a table, JSON or CSV. A device's last backup is when
//! the server received it; a device whose clock was wrong at its last
//! commit is said in the status, beside the device, in JSON
//! (`clock_skew_seconds`, `clock_wrong`) and in CSV (`clock_wrong`); refused
//! copies of its credential in JSON (`clone_refusals`, `last_clone_refusal`)
//! and in the status words.

use std::path::Path;

use anyhow::Result;
use coffre_core::units::{format_size, format_size_like};
use serde_json::json;

use super::{open_store, when};
use crate::usage::{clock_wrong, percent_text, rows, whole_percent, words, Skew};

/// Prints usage per subscriber as a table, JSON or CSV. Without
/// `--stale-days`, `stale_days` from config.toml.
pub fn run(data: &Path, json: bool, csv: bool, stale_days: Option<u32>) -> Result<()> {
    let stale_days = match stale_days {
        Some(d) => d,
        None => crate::config::DataDir::new(data).config()?.stale_days,
    };
    let store = open_store(data)?;
    let rows = rows(&store, store.now(), stale_days)?;
    if json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| {
                let u = &r.usage;
                json!({
                    "name": u.name,
                    // The frontend serving it (issue 22); null on a server
                    // on its own.
                    "frontend": r.frontend,
                    "quota_bytes": u.quota_bytes,
                    "used_bytes": u.used_bytes,
                    // Rounded down below the quota, as the page and the
                    // table: never 99.0 where they say 98 %; null for a
                    // quota of 0 with data.
                    "percent": tenths(r.percent),
                    "percent_shown": whole_percent(r.percent),
                    "protected_bytes": u.protected_bytes,
                    "saving_ratio": r.saving_ratio,
                    "snapshots": u.snapshots,
                    "logical_bytes": u.logical_bytes,
                    "last_backup": u.last_backup,
                    "status": words(&r.status),
                    "devices": u.device_backups.iter().map(|d| json!({
                        "name": d.name,
                        "revoked": d.revoked,
                        "last_backup": d.last_backup,
                        "snapshots": d.snapshots,
                        "latest_bytes": d.latest_bytes,
                        "clock_skew_seconds": d.clock_skew,
                        "clock_wrong": clock_wrong(d),
                        "clone_refusals": d.clone_refusals,
                        "last_clone_refusal": d.last_clone_refusal,
                        "latest_problems": d.latest_problems,
                        "checkpoint": d.checkpoint,
                        "role": d.role,
                        "quota_refusals": d.quota_refusals,
                        "last_quota_refusal": d.last_quota_refusal,
                        "quota_missing_bytes": d.quota_missing,
                        "leftover_bytes": d.leftover_bytes,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "subscribers": rows }))?
        );
    } else if csv {
        outln!("name,quota_bytes,used_bytes,percent,protected_bytes,saving_ratio,snapshots,devices,last_backup,status,clock_wrong");
        for r in &rows {
            let u = &r.usage;
            outln!(
                "{},{},{},{},{},{},{},{},{},\"{}\",\"{}\"",
                u.name,
                u.quota_bytes,
                u.used_bytes,
                tenths(r.percent)
                    .map(|p| format!("{p:.1}"))
                    .unwrap_or_default(),
                u.protected_bytes,
                r.saving_ratio
                    .map(|r| format!("{r:.2}"))
                    .unwrap_or_default(),
                u.snapshots,
                u.devices,
                u.last_backup.map(|t| t.to_string()).unwrap_or_default(),
                words(&r.status).join("; ").replace('"', "'"),
                u.device_backups
                    .iter()
                    .filter(|d| clock_wrong(d))
                    .map(|d| d.name.replace('"', "'"))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
    } else {
        outln!(
            "{:<20} {:>10} {:>10} {:>6} {:>10} {:>6} {:>5}  status",
            "subscriber",
            "quota",
            "stored",
            "used",
            "data",
            "saving",
            "snaps"
        );
        for r in &rows {
            let u = &r.usage;
            // On a service, which frontend serves it (issue 22).
            let name = match &r.frontend {
                Some(f) => format!("{} @{f}", u.name),
                None => u.name.clone(),
            };
            outln!(
                "{:<20} {:>10} {:>10} {:>6} {:>10} {:>6} {:>5}  {}",
                name,
                format_size_like(u.quota_bytes, u.quota_bytes),
                format_size_like(u.used_bytes, u.quota_bytes),
                percent_text(r.percent),
                format_size_like(u.protected_bytes, u.quota_bytes),
                r.saving_ratio
                    .map(|r| format!("{r:.1}×"))
                    .unwrap_or_else(|| "-".into()),
                u.snapshots,
                words(&r.status).join("; ")
            );
            for d in &u.device_backups {
                let clock = match d.clock_skew {
                    Some(skew) if clock_wrong(d) => {
                        format!(" (this PC's clock is wrong: {} the server's)", Skew(skew))
                    }
                    _ => String::new(),
                };
                let copies = match d.clone_refusals {
                    0 => String::new(),
                    n => format!(
                        " (refused copies: {n}, last {})",
                        when(d.last_clone_refusal)
                    ),
                };
                let problems = match d.latest_problems {
                    0 => String::new(),
                    n => format!(" (incomplete: {})", coffre_core::units::count(n, "problem")),
                };
                // A long backup on its way (issue 19).
                let checkpoint = match d.checkpoint {
                    Some(c) => format!(
                        " (in progress: {} sent, last checkpoint {})",
                        format_size(c.bytes),
                        when(Some(c.received))
                    ),
                    None => String::new(),
                };
                // A refused backup that never finished (issue 20).
                let refused = match (d.refused_unfinished(), d.last_quota_refusal) {
                    (true, Some(at)) => format!(
                        " (backup refused {}: quota full, at least {} more needed{})",
                        when(Some(at)),
                        format_size_like(d.quota_missing, u.quota_bytes),
                        if d.leftover_bytes > 0 {
                            format!(
                                "; {} it sent is kept for its next run",
                                format_size_like(d.leftover_bytes, u.quota_bytes)
                            )
                        } else {
                            String::new()
                        }
                    ),
                    _ => String::new(),
                };
                let last = match (d.last_backup, d.role) {
                    (None, coffre_store::Role::Admin) => {
                        "-- (technician's admin device: does not back up)".to_string()
                    }
                    (t, _) => format!("last backup {}", when(t)),
                };
                outln!(
                    "    {:<24} {last}{}{refused}{checkpoint}{problems}{clock}{copies}",
                    d.name,
                    if d.revoked { " (revoked)" } else { "" }
                );
            }
        }
        outln!(
            "stored = what each structure costs on disk (after dedup, compression, encryption); \
             data = its PCs' latest snapshots; saving = data / stored; \
             last backup = when this server received it"
        );
    }
    Ok(())
}

/// A percentage to one decimal, rounded down below the quota as the page
/// rounds it ([`whole_percent`]); `None` for a quota of 0 with data.
fn tenths(p: f64) -> Option<f64> {
    if !p.is_finite() {
        None
    } else if p < 100.0 {
        Some((p * 10.0).floor() / 10.0)
    } else {
        Some((p * 10.0).round() / 10.0)
    }
}
