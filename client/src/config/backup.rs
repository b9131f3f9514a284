//! The `[backup]` section of config.toml: when a long backup commits a
//! checkpoint (`backup/checkpoint.rs` makes them).

use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

/// Minutes between checkpoints unless `[backup] checkpoint_every` says
/// otherwise: at 2 Mbit/s, 30 minutes is 450 MB that a reboot cannot lose.
pub const DEFAULT_EVERY: &str = "30m";

/// Bytes sent between checkpoints unless `[backup] checkpoint_bytes` says
/// otherwise: on a fast line, 1 GiB comes before 30 minutes.
pub const DEFAULT_BYTES: &str = "1GiB";

/// The `[backup]` section of config.toml.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Time between checkpoints ("30m", "2h"; "0": none by time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<String>,
    /// Bytes sent between checkpoints ("1GiB", "500MB"; "0": none by
    /// bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_bytes: Option<String>,
}

impl BackupConfig {
    /// Nothing set (the section is not written).
    pub fn is_empty(&self) -> bool {
        self.checkpoint_every.is_none() && self.checkpoint_bytes.is_none()
    }

    /// When to commit a checkpoint, from this section and the defaults.
    pub(crate) fn every(&self) -> Result<Every> {
        let secs = coffre_core::units::parse_duration(
            self.checkpoint_every.as_deref().unwrap_or(DEFAULT_EVERY),
        )
        .map_err(|e| anyhow::anyhow!("config.toml, [backup] checkpoint_every: {e}"))?;
        let bytes = coffre_core::units::parse_size(
            self.checkpoint_bytes.as_deref().unwrap_or(DEFAULT_BYTES),
        )
        .map_err(|e| anyhow::anyhow!("config.toml, [backup] checkpoint_bytes: {e}"))?;
        Ok(Every {
            time: (secs > 0).then(|| Duration::from_secs(secs)),
            bytes: (bytes > 0).then_some(bytes),
        })
    }
}

/// When a checkpoint is due: after `time`, or after `bytes` sent, since the
/// run started or the last checkpoint (whichever comes first; neither: no
/// checkpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    /// Wall time between checkpoints.
    pub time: Option<Duration>,
    /// Bytes sent between checkpoints.
    pub bytes: Option<u64>,
}

impl Every {
    /// No checkpoints.
    pub const NEVER: Every = Every {
        time: None,
        bytes: None,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_reads_times_and_sizes_and_zero_turns_a_trigger_off() {
        let every = BackupConfig::default().every().unwrap();
        assert_eq!(every.time, Some(Duration::from_secs(30 * 60)));
        assert_eq!(every.bytes, Some(1 << 30));
        let c = BackupConfig {
            checkpoint_every: Some("0".into()),
            checkpoint_bytes: Some("0".into()),
        };
        assert_eq!(c.every().unwrap(), Every::NEVER);
        let c = BackupConfig {
            checkpoint_every: Some("soon".into()),
            checkpoint_bytes: None,
        };
        let e = c.every().unwrap_err().to_string();
        assert!(e.contains("checkpoint_every") && e.contains("30m"), "{e}");
    }
}
