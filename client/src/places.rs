//! Where coffre's configuration lives when no `--config` is given: below
//! `config` (which loads it) and `schedule` (which names its entry after
//! it), so that neither imports the other for it.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// The configuration `coffre` uses without `--config`:
/// `$XDG_CONFIG_HOME/coffre/config.toml` (default `~/.config/coffre/config.toml`)
/// on Linux and BSD, `~/Library/Application Support/coffre/config.toml` on
/// macOS, `%APPDATA%\coffre\config.toml` on Windows (the OS configuration
/// directory, as `dirs::config_dir` finds it). The scheduler names its entry
/// after it (`schedule`: plain `coffre-backup` for this one).
pub fn default_config_path() -> Result<PathBuf> {
    let base = dirs::config_dir().context(
        "cannot find this user's configuration directory (no HOME?): pass --config PATH",
    )?;
    Ok(base.join("coffre").join("config.toml"))
}
