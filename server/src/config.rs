//! The data directory and its `config.toml`.
//!
//! ```text
//! DATA/config.toml       this file: listen address, the address put in tokens, limits
//! DATA/tls/cert.der      the server's self-signed certificate (pinned by clients)
//! DATA/tls/key.der       its private key (mode 0600)
//! DATA/catalog.sqlite    the catalogue (coffre-store; see docs/store.md)
//! DATA/subscribers/      packs and manifests, one folder per subscriber
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// `config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address and UDP port the daemon listens on.
    pub listen: SocketAddr,
    /// `host:port` that clients dial: written into enrolment tokens.
    pub public_address: String,
    /// Connections served at once; more are refused until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds without traffic after which a connection is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// When the daemon applies the retention policies each night, "HH:MM" in
    /// this server's local time, or "off".
    #[serde(default = "default_nightly_at")]
    pub nightly_at: String,
}

fn default_nightly_at() -> String {
    "03:30".into()
}

fn default_max_connections() -> usize {
    1024
}

fn default_idle_timeout() -> u64 {
    60
}

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The directory itself.
    pub root: PathBuf,
}

impl DataDir {
    /// The data directory at `root`.
    pub fn new(root: &Path) -> Self {
        DataDir {
            root: root.to_path_buf(),
        }
    }
    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// The TLS folder.
    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// Reads `config.toml`, with an error that says how to create one.
    pub fn config(&self) -> Result<Config> {
        let path = self.config_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no coffre data directory at {}: create one with `coffre-server init --data {}`",
                self.root.display(),
                self.root.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        toml::from_str(&text)
            .with_context(|| format!("{} is not a valid configuration", path.display()))
    }

    /// Writes `config.toml` durably.
    pub fn write_config(&self, config: &Config) -> Result<()> {
        let text = format!(
            "# coffre-server configuration (see docs/operator-guide.md)\n{}",
            toml::to_string_pretty(config).context("encoding the configuration")?
        );
        coffre_store::write_atomic(&self.config_path(), text.as_bytes())?;
        Ok(())
    }
}
