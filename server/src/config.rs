//! The data directory and its `config.toml`.
//!
//! ```text
//! DATA/config.toml       this file: listen address, the address put in tokens, limits,
//!                        the board's web page (address, token)
//! DATA/tls/cert.der      the server's self-signed certificate (pinned by clients)
//! DATA/tls/key.der       its private key
//! DATA/daemon.lock       held by the running daemon (coffre_store::DaemonLock)
//! DATA/catalog.sqlite    the catalogue (coffre-store; see docs/store.md)
//! DATA/subscribers/      packs and manifests, one folder per subscriber
//! DATA/alerts.json       what the alerts told whom ([`crate::alerts`])
//! ```
//!
//! The directory is 0700 and every file in it 0600, from creation.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use coffre_store::{PackStorage, S3Config};
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
    /// Connections of one device at once (absent: the daemon's default, 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_device: Option<usize>,
    /// Connections of one subscriber's devices at once (absent: 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_subscriber: Option<usize>,
    /// Connections still in their handshake at once (absent: 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_handshakes: Option<usize>,
    /// MiB of requests being received, all devices together (absent: 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_memory_mib: Option<usize>,
    /// MiB of requests being received per device (absent: 160).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_request_memory_mib: Option<usize>,
    /// Seconds without traffic after which a connection is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// When the daemon applies the retention policies each night, "HH:MM" in
    /// this server's local time, or "off".
    #[serde(default = "default_nightly_at")]
    pub nightly_at: String,
    /// A device without a backup for this many days is "stale" (the board's
    /// page, and `usage` without `--stale-days`).
    #[serde(default = "default_stale_days")]
    pub stale_days: u32,
    /// TCP address of the board's web page and `/metrics`, served by `run`
    /// (`run --dashboard` overrides it); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<SocketAddr>,
    /// The password of the board's web page and the bearer token of
    /// `/metrics`. `init` writes a random one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_token: Option<String>,
    /// Where the packs are kept: absent for the data directory, or an
    /// S3-compatible bucket (`[storage]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageConfig>,
    /// Who is told what, by mail and webhooks (`[alerts]`); absent: nobody
    /// (docs/operator-guide.md, "Alerts: mail and webhooks").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsConfig>,
}

/// `[alerts]` in config.toml: who is told what, and how.
///
/// ```toml
/// [alerts]
/// operator = ["tech@asso.example", "https://ntfy.sh/asso-coffre"]
/// lang = "fr"
/// languages = { "board@asso.example" = "en" }
/// board_url = "https://coffre.asso.example/"
/// [alerts.mail]
/// host = "mail.asso.example"
/// port = 587
/// security = "starttls"
/// username = "coffre@asso.example"
/// password = "..."
/// from = "coffre <coffre@asso.example>"
/// ```
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// The operator's addresses: mail addresses and webhook URLs
    /// (`http://`, `https://`). The operator is told everything.
    #[serde(default)]
    pub operator: Vec<String>,
    /// The language of the messages: "fr" (default) or "en".
    #[serde(default = "default_alerts_lang")]
    pub lang: String,
    /// Another language for some addresses: `{ "board@asso.example" = "en" }`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub languages: std::collections::BTreeMap<String, String>,
    /// The board's web page, linked from every message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_url: Option<String>,
    /// Seconds between two looks for what cannot wait (default 300).
    #[serde(default = "default_check_every")]
    pub check_every: u64,
    /// Tell an unchanged fact again in the nightly digest after this many
    /// days (absent: never; it stays in the digest's short "still" part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_days: Option<u32>,
    /// How mail leaves (needed when an address is a mail address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<MailConfig>,
    /// Options of the webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
}

impl std::fmt::Debug for AlertsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsConfig")
            .field("operator", &self.operator)
            .field("lang", &self.lang)
            .field("languages", &self.languages)
            .field("board_url", &self.board_url)
            .field("check_every", &self.check_every)
            .field("repeat_days", &self.repeat_days)
            .field("mail", &self.mail)
            .field("webhook", &self.webhook)
            .finish()
    }
}

/// `[alerts.mail]`: the association's mail server (submission).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The mail server's host name (also the name its certificate must bear).
    pub host: String,
    /// Its port [default: 587 for starttls, 465 for tls, 25 for plain].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// "starttls" (default), "tls" (implicit TLS, port 465) or "plain" (a
    /// relay on this machine or network only: nothing is encrypted).
    #[serde(default)]
    pub security: MailSecurity,
    /// The login, if the server asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Its password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The sender, e.g. "coffre <coffre@asso.example>".
    pub from: String,
    /// A PEM file of certificate authorities to trust besides the system's
    /// (a private CA, or the server's own self-signed certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailSecurity {
    /// Plain first, then STARTTLS, required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on this machine or a trusted network.
    Plain,
}

/// `[alerts.webhook]`: options of every webhook.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Sent as "Authorization: Bearer TOKEN" (ntfy and Gotify access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A PEM file of certificate authorities to trust besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

fn default_alerts_lang() -> String {
    "fr".into()
}

fn default_check_every() -> u64 {
    300
}

/// `[storage]` in config.toml: an S3-compatible bucket for the packs.
/// Credentials may be left out here and given in the environment
/// (`COFFRE_S3_ACCESS_KEY_ID` and `COFFRE_S3_SECRET_ACCESS_KEY`, or
/// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`). `Debug` hides the secret.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION`.
    pub url: String,
    /// The access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// How much the packs may take in all, e.g. "20TB" (a bucket's size or
    /// the share of the cluster bought for it): a bucket has no free space
    /// to read, so without it the board shows no "full by" for the server.
    /// On the local disk, it replaces the file system's size and free space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("url", &self.url)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// The environment variables read for the object store's credentials, in
/// order of preference (after config.toml).
pub const CREDENTIAL_VARIABLES: [(&str, &str); 2] = [
    ("COFFRE_S3_ACCESS_KEY_ID", "COFFRE_S3_SECRET_ACCESS_KEY"),
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
];

impl StorageConfig {
    /// The storage this section describes, with its credentials resolved:
    /// config.toml first, then the environment.
    pub fn pack_storage(&self) -> Result<PackStorage> {
        if self.url == "local" {
            return Ok(PackStorage::Local);
        }
        let (mut id, mut secret) = (
            self.access_key_id.clone().unwrap_or_default(),
            self.secret_access_key.clone().unwrap_or_default(),
        );
        for (id_var, secret_var) in CREDENTIAL_VARIABLES {
            if id.is_empty() {
                id = std::env::var(id_var).unwrap_or_default();
            }
            if secret.is_empty() {
                secret = std::env::var(secret_var).unwrap_or_default();
            }
        }
        Ok(PackStorage::S3(S3Config::parse(&self.url, &id, &secret)?))
    }
}

impl Config {
    /// The configuration `init` writes: defaults, and a fresh dashboard token.
    pub fn new(listen: SocketAddr, public_address: String) -> Config {
        Config::with_storage(listen, public_address, None)
    }

    /// [`Config::new`] with packs kept on `storage`.
    pub fn with_storage(
        listen: SocketAddr,
        public_address: String,
        storage: Option<StorageConfig>,
    ) -> Config {
        Config {
            listen,
            public_address,
            max_connections: default_max_connections(),
            max_connections_per_device: None,
            max_connections_per_subscriber: None,
            max_handshakes: None,
            request_memory_mib: None,
            device_request_memory_mib: None,
            idle_timeout_secs: default_idle_timeout(),
            nightly_at: default_nightly_at(),
            stale_days: default_stale_days(),
            dashboard: None,
            dashboard_token: Some(new_dashboard_token()),
            storage,
            alerts: None,
        }
    }
}

/// A random dashboard token: 128 bits, 32 hex digits.
pub fn new_dashboard_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random generator");
    hex::encode(bytes)
}

fn default_stale_days() -> u32 {
    crate::usage::DEFAULT_STALE_DAYS
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

    /// `capacity` of `[storage]` in bytes, if set: how much the packs may
    /// take (see [`StorageConfig::capacity`]).
    pub fn capacity(&self) -> Result<Option<u64>> {
        let Some(text) = self.config()?.storage.and_then(|s| s.capacity) else {
            return Ok(None);
        };
        coffre_core::units::parse_size(&text)
            .map(Some)
            .map_err(|e| {
                anyhow::anyhow!(
                "{}: capacity = {text:?} in [storage]: {e} (write it like \"20TB\" or \"500GiB\")",
                self.config_path().display()
            )
            })
    }

    /// Where the packs are kept, as config.toml says (credentials resolved).
    pub fn pack_storage(&self) -> Result<PackStorage> {
        match self.config()?.storage {
            None => Ok(PackStorage::Local),
            Some(s) => s.pack_storage(),
        }
    }

    /// Writes `config.toml` durably, readable by its owner only (mode 0600
    /// from creation: it holds the dashboard's password, maybe the object
    /// store's key).
    pub fn write_config(&self, config: &Config) -> Result<()> {
        let text = format!(
            "# coffre-server configuration (see docs/operator-guide.md)\n{}",
            toml::to_string_pretty(config).context("encoding the configuration")?
        );
        coffre_store::write_atomic(&self.config_path(), text.as_bytes())?;
        Ok(())
    }
}
