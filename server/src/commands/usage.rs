//! `coffre-server usage`: who uses how much, and whose backups have gone
//! stale, in words a board member reads.

use std::path::Path;

use anyhow::Result;
use coffre_core::units::format_size;
use coffre_store::Usage;
use serde_json::json;

use super::subscriber::percent;
use super::{open_store, when};

/// Quota use from which a subscriber is "near quota".
pub const NEAR_QUOTA_PERCENT: f64 = 90.0;

/// The status of a subscriber in plain words, worst first: "over quota",
/// "near quota", "stale: pc-compta has no backup for 5 days", "never backed
/// up: pc-2", or "ok".
pub fn status(u: &Usage, now: i64, stale_days: u32) -> Vec<String> {
    let mut out = Vec::new();
    let pct = percent(u.used_bytes, u.quota_bytes);
    if u.used_bytes >= u.quota_bytes && u.quota_bytes > 0 {
        out.push("over quota".to_string());
    } else if pct >= NEAR_QUOTA_PERCENT {
        out.push("near quota".to_string());
    }
    for d in u.device_backups.iter().filter(|d| !d.revoked) {
        match d.last_backup {
            Some(t) if now - t > i64::from(stale_days) * 86_400 => out.push(format!(
                "stale: {} has no backup for {} days",
                d.name,
                (now - t) / 86_400
            )),
            Some(_) => {}
            None => out.push(format!("never backed up: {}", d.name)),
        }
    }
    if out.is_empty() {
        out.push("ok".to_string());
    }
    out
}

/// The saving of dedup and compression: what the data weighs over what it costs.
fn ratio(u: &Usage) -> Option<f64> {
    (u.used_bytes > 0 && u.protected_bytes > 0)
        .then(|| u.protected_bytes as f64 / u.used_bytes as f64)
}

/// Prints usage per subscriber as a table, JSON or CSV.
pub fn run(data: &Path, json: bool, csv: bool, stale_days: u32) -> Result<()> {
    let usage = open_store(data)?.usage()?;
    let now = coffre_core::Timestamp::now().secs;
    if json {
        let rows: Vec<_> = usage
            .iter()
            .map(|u| {
                json!({
                    "name": u.name,
                    "quota_bytes": u.quota_bytes,
                    "used_bytes": u.used_bytes,
                    "percent": (percent(u.used_bytes, u.quota_bytes) * 10.0).round() / 10.0,
                    "protected_bytes": u.protected_bytes,
                    "saving_ratio": ratio(u),
                    "snapshots": u.snapshots,
                    "logical_bytes": u.logical_bytes,
                    "last_backup": u.last_backup,
                    "status": status(u, now, stale_days),
                    "devices": u.device_backups,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "subscribers": rows }))?
        );
    } else if csv {
        println!("name,quota_bytes,used_bytes,percent,protected_bytes,saving_ratio,snapshots,devices,last_backup,status");
        for u in &usage {
            println!(
                "{},{},{},{:.1},{},{},{},{},{},\"{}\"",
                u.name,
                u.quota_bytes,
                u.used_bytes,
                percent(u.used_bytes, u.quota_bytes),
                u.protected_bytes,
                ratio(u).map(|r| format!("{r:.2}")).unwrap_or_default(),
                u.snapshots,
                u.devices,
                u.last_backup.map(|t| t.to_string()).unwrap_or_default(),
                status(u, now, stale_days).join("; ").replace('"', "'")
            );
        }
    } else {
        println!(
            "{:<20} {:>10} {:>10} {:>6} {:>10} {:>6} {:>5}  status",
            "subscriber", "quota", "stored", "used", "data", "saving", "snaps"
        );
        for u in &usage {
            println!(
                "{:<20} {:>10} {:>10} {:>5.0}% {:>10} {:>6} {:>5}  {}",
                u.name,
                format_size(u.quota_bytes),
                format_size(u.used_bytes),
                percent(u.used_bytes, u.quota_bytes),
                format_size(u.protected_bytes),
                ratio(u)
                    .map(|r| format!("{r:.1}×"))
                    .unwrap_or_else(|| "-".into()),
                u.snapshots,
                status(u, now, stale_days).join("; ")
            );
            for d in &u.device_backups {
                println!(
                    "    {:<24} last backup {}{}",
                    d.name,
                    when(d.last_backup),
                    if d.revoked { " (revoked)" } else { "" }
                );
            }
        }
        println!(
            "stored = what each structure costs on disk (after dedup, compression, encryption); \
             data = its PCs' latest snapshots; saving = data / stored"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_store::DeviceUsage;

    fn usage(used: u64, devices: Vec<(&str, Option<i64>, bool)>) -> Usage {
        Usage {
            name: "asso".into(),
            quota_bytes: 1000,
            used_bytes: used,
            snapshots: 0,
            logical_bytes: 0,
            last_backup: None,
            devices: devices.len() as u64,
            protected_bytes: 0,
            device_backups: devices
                .into_iter()
                .map(|(n, t, revoked)| DeviceUsage {
                    name: n.into(),
                    revoked,
                    last_backup: t,
                    snapshots: 0,
                    latest_bytes: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn the_status_reads_in_plain_words() {
        let now = 100 * 86_400;
        assert_eq!(
            status(&usage(10, vec![("pc", Some(now - 3600), false)]), now, 3),
            ["ok"]
        );
        assert_eq!(status(&usage(950, vec![]), now, 3), ["near quota"]);
        assert_eq!(status(&usage(1000, vec![]), now, 3), ["over quota"]);
        assert_eq!(
            status(
                &usage(
                    10,
                    vec![
                        ("pc", Some(now - 5 * 86_400), false),
                        ("old", Some(0), true),
                        ("new", None, false)
                    ]
                ),
                now,
                3
            ),
            ["stale: pc has no backup for 5 days", "never backed up: new"]
        );
    }
}
