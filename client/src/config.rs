//! This PC's installation: the configuration (`config.toml`), the device's
//! credentials, and the local state kept beside them.
//!
//! Everything lives in one directory, the one holding `config.toml` (by
//! default `coffre/` in the OS configuration directory, e.g.
//! `~/.config/coffre/` on Linux; `--config PATH` or `COFFRE_CONFIG` choose
//! another), so that two installations never share a cache:
//!
//! ```text
//! config.toml      server, subscriber, device, paths, excludes (written by `enrol`, edited by hand)
//! credentials      the device secret (rolled at every run) and the subscriber's master key (mode 0600)
//! credentials.lock held while a command connects and rolls the secret
//! cache/files      the files cache (size, mtime, ctime, inode -> chunk ids)
//! cache/uploaded   ids the server confirmed during an unfinished backup
//! last-run.json    the outcome of the last backup, shown by `coffre status`
//! backup.log       what scheduled backups printed
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use coffre_core::MasterKey;
use serde::{Deserialize, Serialize};

use crate::hooks::HooksConfig;

/// Excludes written into a new configuration: caches, trash and temporary
/// files that nobody wants back (gitignore syntax).
pub const DEFAULT_EXCLUDES: &[&str] = &[
    ".cache/",
    ".local/share/Trash/",
    "$RECYCLE.BIN/",
    "System Volume Information/",
    "node_modules/",
    "*.tmp",
    "*.swp",
    "~$*",
    "Thumbs.db",
    ".DS_Store",
];

/// The contents of `config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server's address, "host:port".
    pub server: String,
    /// BLAKE3 fingerprint of the server's certificate, hex (pinned).
    pub fingerprint: String,
    /// The subscriber (member structure) this PC belongs to.
    pub subscriber: String,
    /// This PC's device name.
    pub device: String,
    /// What `coffre backup` backs up when no path is given.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Gitignore-style patterns of what not to back up.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Worker threads for chunking and encryption (0: one per core).
    #[serde(default)]
    pub threads: usize,
    /// Uploads in flight at once.
    #[serde(default = "default_uploads")]
    pub uploads: usize,
    /// Commands run before and after a backup (`[hooks]`: see `hooks.rs`).
    #[serde(default, skip_serializing_if = "HooksConfig::is_empty")]
    pub hooks: HooksConfig,
}

fn default_uploads() -> usize {
    8
}

impl Config {
    /// The pinned fingerprint as bytes.
    pub fn fingerprint_bytes(&self) -> Result<[u8; 32]> {
        let mut out = [0u8; 32];
        hex_decode(&self.fingerprint, &mut out)
            .context("config.toml: `fingerprint` is not 64 hex digits")?;
        Ok(out)
    }
}

/// What the device keeps secret: the credential the server checks, and the
/// key that encrypts everything.
pub struct Credentials {
    /// The device secret from the enrolment token.
    pub secret: [u8; 32],
    /// The subscriber's master key (unwrapped at enrolment).
    pub master: MasterKey,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    secret: String,
    master_key: String,
}

/// An installation: where its files are, and its configuration.
#[derive(Debug, Clone)]
pub struct Installation {
    /// The `config.toml` path.
    pub config_path: PathBuf,
    /// The directory holding it and the state.
    pub dir: PathBuf,
    /// The parsed configuration.
    pub config: Config,
}

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

/// The directory of a config path (relative paths are taken from the current directory).
fn dir_of(config_path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(config_path)
        .with_context(|| format!("cannot resolve {}", config_path.display()))?;
    Ok(abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/")))
}

impl Installation {
    /// Loads the installation whose configuration is at `config_path`.
    pub fn load(config_path: &Path) -> Result<Installation> {
        let text = match fs::read_to_string(config_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "this PC is not enrolled: there is no {} (run `coffre enrol TOKEN` first, or pass --config PATH)",
                config_path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", config_path.display())),
        };
        let config: Config = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid coffre configuration: {}",
                config_path.display(),
                e.message()
            )
        })?;
        config.fingerprint_bytes()?;
        Ok(Installation {
            config_path: std::path::absolute(config_path)?,
            dir: dir_of(config_path)?,
            config,
        })
    }

    /// Writes a new installation (refuses to replace an existing one unless `force`).
    pub fn create(
        config_path: &Path,
        config: Config,
        credentials: &Credentials,
        force: bool,
    ) -> Result<Installation> {
        refuse_existing(config_path, force)?;
        let dir = dir_of(config_path)?;
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let inst = Installation {
            config_path: std::path::absolute(config_path)?,
            dir,
            config,
        };
        // Credentials first: a config without them would be unusable.
        write_credentials(&inst, credentials)?;
        inst.save()?;
        // Old caches belong to another key or server.
        let _ = fs::remove_dir_all(inst.cache_dir());
        let _ = fs::remove_file(inst.last_run_path());
        Ok(inst)
    }

    /// Writes `config.toml` back.
    pub fn save(&self) -> Result<()> {
        let text = format!(
            "# coffre client configuration, written by `coffre enrol`; edit `paths` and `exclude` freely.\n\
             # `exclude` uses .gitignore syntax: \"*.iso\" anywhere, \"/home/me/Videos\" one folder, \"tmp/\" any folder named tmp.\n\
             # Folders holding a CACHEDIR.TAG or a .nobackup file are always skipped.\n{}",
            toml::to_string(&self.config)?
        );
        atomic_write(&self.config_path, text.as_bytes(), false)
    }

    /// Reads the device credentials.
    pub fn credentials(&self) -> Result<Credentials> {
        let path = self.credentials_path();
        let text = fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (enrol again with `coffre enrol TOKEN --force` if it was lost)",
                path.display()
            )
        })?;
        let file: CredentialsFile = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is damaged: {}", path.display(), e.message()))?;
        let mut secret = [0u8; 32];
        let mut master = [0u8; 32];
        hex_decode(&file.secret, &mut secret)
            .and_then(|()| hex_decode(&file.master_key, &mut master))
            .with_context(|| format!("{} is damaged", path.display()))?;
        Ok(Credentials {
            secret,
            master: MasterKey::from_bytes(master),
        })
    }

    /// Replaces the device secret in the credentials file (the master key
    /// stays), atomically: a crash leaves the old file or the new one.
    pub fn save_secret(&self, secret: &[u8; 32]) -> Result<()> {
        let creds = self.credentials()?;
        write_credentials(
            self,
            &Credentials {
                secret: *secret,
                master: creds.master,
            },
        )
        .with_context(|| {
            format!(
                "saving the new credential into {}",
                self.credentials_path().display()
            )
        })
    }

    /// Waits for, then holds, this installation's credentials lock (the
    /// `credentials.lock` file) until the returned file is dropped: one
    /// command at a time connects and rolls the device secret.
    pub fn lock_credentials(&self) -> Result<fs::File> {
        let path = self.dir.join("credentials.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(file)
    }

    /// The credentials file.
    pub fn credentials_path(&self) -> PathBuf {
        self.dir.join("credentials")
    }
    /// The cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.join("cache")
    }
    /// The files cache.
    pub fn files_cache_path(&self) -> PathBuf {
        self.cache_dir().join("files")
    }
    /// Ids uploaded by a backup that has not committed yet.
    pub fn uploaded_path(&self) -> PathBuf {
        self.cache_dir().join("uploaded")
    }
    /// The outcome of the last backup.
    pub fn last_run_path(&self) -> PathBuf {
        self.dir.join("last-run.json")
    }
    /// The log of scheduled backups.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("backup.log")
    }
}

/// Refuses to enrol over an existing installation unless `force`.
pub fn refuse_existing(config_path: &Path, force: bool) -> Result<()> {
    if config_path.exists() && !force {
        bail!(
            "{} already exists: this PC is already enrolled (pass --force to replace it, or --config PATH for a second installation)",
            config_path.display()
        );
    }
    Ok(())
}

/// Writes `data` to `path` through a temporary file and a rename, so that a
/// crash leaves the old or the new contents, never a mix.
pub fn atomic_write(path: &Path, data: &[u8], private: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    if private {
        restrict(tmp.as_file())?;
    }
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes the credentials file of `inst`, private (0600) and atomically.
fn write_credentials(inst: &Installation, credentials: &Credentials) -> Result<()> {
    let creds = CredentialsFile {
        secret: hex_encode(&credentials.secret),
        master_key: hex_encode(credentials.master.as_bytes()),
    };
    let text = format!(
        "# coffre credentials of device {:?} of {:?}.\n# Anyone with this file can read this subscriber's backups: keep it private.\n# The device secret changes at every run (the server then refuses the older ones): a copy of this file stops working.\n{}",
        inst.config.device,
        inst.config.subscriber,
        toml::to_string(&creds)?
    );
    write_private(&inst.credentials_path(), text.as_bytes())
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    atomic_write(path, data, true)
}

#[cfg(unix)]
fn restrict(f: &fs::File) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_f: &fs::File) -> Result<()> {
    // The per-user configuration directory is private to the user on Windows.
    Ok(())
}

fn hex_encode(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn hex_decode(text: &str, out: &mut [u8]) -> Result<()> {
    hex::decode_to_slice(text.trim(), out)
        .map_err(|_| anyhow::anyhow!("expected {} hex digits", out.len() * 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Config {
        Config {
            server: "backup.example.org:7443".into(),
            fingerprint: "ab".repeat(32),
            subscriber: "asso".into(),
            device: "pc".into(),
            paths: vec!["/home/alice".into()],
            exclude: DEFAULT_EXCLUDES.iter().map(|s| s.to_string()).collect(),
            threads: 0,
            uploads: 8,
            hooks: HooksConfig::default(),
        }
    }

    #[test]
    fn an_installation_round_trips_and_keeps_its_credentials_private() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("sub/config.toml");
        let creds = Credentials {
            secret: [7; 32],
            master: MasterKey::from_bytes([9; 32]),
        };
        let inst = Installation::create(&path, sample(), &creds, false).unwrap();
        let again = Installation::load(&path).unwrap();
        assert_eq!(again.config, sample());
        let c = again.credentials().unwrap();
        assert_eq!(c.secret, [7; 32]);
        assert_eq!(c.master.as_bytes(), &[9; 32]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(inst.credentials_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = Installation::create(&path, sample(), &creds, false).unwrap_err();
        assert!(err.to_string().contains("already enrolled"), "{err}");

        // A rolled secret replaces the old one; the master key stays.
        again.save_secret(&[8; 32]).unwrap();
        let c = again.credentials().unwrap();
        assert_eq!((c.secret, c.master.as_bytes()), ([8; 32], &[9; 32]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(inst.credentials_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "still private after a roll");
        }
        let held = again.lock_credentials().unwrap();
        assert!(
            matches!(
                fs::File::open(inst.dir.join("credentials.lock"))
                    .unwrap()
                    .try_lock(),
                Err(fs::TryLockError::WouldBlock)
            ),
            "one process at a time rolls the secret"
        );
        drop(held);
    }

    #[test]
    fn a_missing_or_broken_config_says_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.toml");
        let err = Installation::load(&path).unwrap_err().to_string();
        assert!(err.contains("coffre enrol TOKEN"), "{err}");
        fs::write(&path, "server = 3\n").unwrap();
        let err = Installation::load(&path).unwrap_err().to_string();
        assert!(err.contains("not a valid coffre configuration"), "{err}");
    }
}
