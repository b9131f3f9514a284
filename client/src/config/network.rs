//! `[network]` of config.toml: how a run lives through the link's outages
//! (issue 19).
//!
//! ```toml
//! [network]
//! reconnect_for = "10m"   # a lost connection is dialled again for this long ("0": never)
//! retry_until = "07:00"   # a scheduled run that failed on the link tries again until then
//! ```

use std::time::Duration;

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};

/// How long a run keeps dialling a lost connection by default: a router
/// that reboots is back in two or three minutes, a line that resyncs in
/// one; ten minutes cover both with room, and a link down longer than
/// that is better retried later in the night (`schedule/retry.rs`).
pub const RECONNECT_FOR: Duration = Duration::from_secs(10 * 60);

/// Until when (local time) a scheduled run that failed on the link tries
/// again: people start work at 07:00 or later.
pub const RETRY_UNTIL: (u8, u8) = (7, 0);

/// The `[network]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// How long a backup or restore keeps dialling a lost connection
    /// ("10m", "90s"; "0": never); [`RECONNECT_FOR`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_for: Option<String>,
    /// Until when (local time, "HH:MM") a scheduled run that failed on the
    /// link tries again; [`RETRY_UNTIL`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_until: Option<String>,
}

impl Network {
    /// Nothing set: the section is not written.
    pub fn is_default(&self) -> bool {
        *self == Network::default()
    }

    /// Checks both values (at load, so a typo is found before the night).
    pub fn check(&self) -> Result<()> {
        self.reconnect_for()?;
        self.retry_until()?;
        Ok(())
    }

    /// How long to keep dialling a lost connection. `COFFRE_RECONNECT_FOR`
    /// (same syntax) overrides config.toml, for tests and for one run.
    pub fn reconnect_for(&self) -> Result<Duration> {
        let from_env = std::env::var("COFFRE_RECONNECT_FOR").ok();
        let (text, whence) = match (&from_env, &self.reconnect_for) {
            (Some(t), _) => (t, "COFFRE_RECONNECT_FOR"),
            (None, Some(t)) => (t, "config.toml: [network] reconnect_for"),
            (None, None) => return Ok(RECONNECT_FOR),
        };
        coffre_core::units::parse_duration(text)
            .map(Duration::from_secs)
            .map_err(|e| anyhow!("{whence}: {e}"))
    }

    /// Until when a scheduled run tries again, `(hour, minute)` local time.
    pub fn retry_until(&self) -> Result<(u8, u8)> {
        match &self.retry_until {
            None => Ok(RETRY_UNTIL),
            Some(t) => crate::schedule::parse_time(t)
                .map_err(|e| anyhow!("config.toml: [network] retry_until: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_values_are_the_defaults_and_written_ones_are_checked() {
        let n = Network::default();
        assert!(n.is_default());
        assert_eq!(n.retry_until().unwrap(), (7, 0));
        let n: Network = toml::from_str("reconnect_for = \"90s\"\nretry_until = \"6:30\"").unwrap();
        assert!(!n.is_default());
        assert_eq!(n.retry_until().unwrap(), (6, 30));
        if std::env::var_os("COFFRE_RECONNECT_FOR").is_none() {
            assert_eq!(n.reconnect_for().unwrap(), Duration::from_secs(90));
            assert_eq!(
                Network::default().reconnect_for().unwrap(),
                Duration::from_secs(600)
            );
        }
        let bad: Network = toml::from_str("reconnect_for = \"10 minutes\"").unwrap();
        if std::env::var_os("COFFRE_RECONNECT_FOR").is_none() {
            let e = bad.check().unwrap_err().to_string();
            assert!(e.contains("reconnect_for") && e.contains("30m"), "{e}");
        }
        let bad: Network = toml::from_str("retry_until = \"25:00\"").unwrap();
        assert!(bad.check().unwrap_err().to_string().contains("retry_until"));
        assert!(toml::from_str::<Network>("reconnect = \"1m\"").is_err());
    }
}
