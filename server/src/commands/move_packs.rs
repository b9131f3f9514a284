//! `coffre-server move-packs --to URL`: the packs to another storage, then
//! config.toml pointed at it (docs/operator-guide.md, "Packs on object
//! storage"). Holds the daemon lock (`coffre_store::DaemonLock`): refused
//! while the daemon runs.

use std::path::Path;

use anyhow::{bail, Result};
use coffre_core::units::format_size;

use crate::config::{DataDir, StorageConfig};

/// Runs `coffre-server move-packs`.
pub fn run(data: &Path, to: &str, json: bool) -> Result<()> {
    let dir = DataDir::new(data);
    let mut config = dir.config()?;
    // Never beside the daemon: packs it sealed meanwhile would stay on the
    // old storage, unknown to the new one.
    let _lock = super::exclusive(data, "move-packs")?;
    super::tighten(data)?;
    let from = dir.pack_storage()?;
    let section = StorageConfig {
        url: to.to_string(),
        access_key_id: None,
        secret_access_key: None,
        capacity: None,
    };
    let target = section.pack_storage()?;
    if target == from {
        bail!("the packs are already at {}: nothing to move", to);
    }
    let report = coffre_store::copy_packs(data, &from, &target)?;
    // Credentials written in config.toml for the old storage do not carry
    // over: the new one takes its own (or the environment's).
    config.storage = (to != "local").then_some(section);
    dir.write_config(&config)?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "copied": report.copied,
                "already_there": report.already_there,
                "bytes": report.bytes,
                "storage": target.describe(),
            }))?
        );
    } else {
        outln!(
            "{} copied ({}), {} already there; config.toml now keeps the packs at {}",
            coffre_core::units::count(report.copied, "pack"),
            format_size(report.bytes),
            report.already_there,
            target.describe()
        );
        outln!(
            "next: coffre-server verify --data {}; then start the daemon; the old packs stay \
             where they were until you remove them",
            data.display()
        );
    }
    Ok(())
}
