//! `coffre-server usage`: who uses how much.

use std::path::Path;

use anyhow::Result;
use coffre_core::units::format_size;

use super::subscriber::percent;
use super::{open_store, when};

/// Prints usage per subscriber as a table, JSON or CSV.
pub fn run(data: &Path, json: bool, csv: bool) -> Result<()> {
    let usage = open_store(data)?.usage()?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "subscribers": usage }))?
        );
    } else if csv {
        println!("name,quota_bytes,used_bytes,percent,snapshots,devices,last_backup");
        for u in &usage {
            println!(
                "{},{},{},{:.1},{},{},{}",
                u.name,
                u.quota_bytes,
                u.used_bytes,
                percent(u.used_bytes, u.quota_bytes),
                u.snapshots,
                u.devices,
                u.last_backup.map(|t| t.to_string()).unwrap_or_default()
            );
        }
    } else {
        println!(
            "{:<24} {:>12} {:>12} {:>7} {:>10}  last backup",
            "subscriber", "quota", "used", "used %", "snapshots"
        );
        for u in &usage {
            println!(
                "{:<24} {:>12} {:>12} {:>6.1}% {:>10}  {}",
                u.name,
                format_size(u.quota_bytes),
                format_size(u.used_bytes),
                percent(u.used_bytes, u.quota_bytes),
                u.snapshots,
                when(u.last_backup)
            );
        }
    }
    Ok(())
}
