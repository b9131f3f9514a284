//! This PC's installation: a configuration file and the state folder that
//! belongs to it alone.
//!
//! The configuration is `config.toml` in the OS configuration folder
//! (`~/.config/coffre/config.toml` on Linux, see [`default_config_path`]),
//! or any file `--config PATH` or `COFFRE_CONFIG` names. Everything coffre
//! keeps for that installation lives in the state folder named after the
//! config file (`layout.rs`): `DIR/NAME.toml` keeps it in `DIR/NAME.state/`,
//! so two config files in one folder (a technician's laptop serving two
//! structures: `asso-a.toml`, `asso-b.toml`) share nothing. Every path comes
//! from an accessor of [`Installation`]:
//!
//! ```text
//! DIR/NAME.toml                    server, subscriber, device, paths, excludes (written by `enrol`, edited by hand)
//! DIR/NAME.state/                  0700, never backed up (its CACHEDIR.TAG, and the walker's own exclusion)
//!   CACHEDIR.TAG                   the cache-directory standard's marker
//!   credentials                    whom they are for, the device secret (rolled at every run), the master key (0600; Windows: user and SYSTEM only)
//!   credentials.lock               held while a command connects and rolls the secret
//!   cache/files                    the files cache (size, mtime, ctime, inode -> chunk ids)
//!   cache/uploaded                 ids the server confirmed during an unfinished backup
//!   cache/lock                     held by a running backup
//!   last-run.json                  the outcome of the last backup, shown by `coffre status`
//!   backup.log                     what scheduled backups printed
//! ```
//!
//! The credentials are checked against the config each time they are read,
//! before anything connects ([`Installation::credentials`]). An installation
//! of the old layout (state beside the config file) moves into its state
//! folder when it is loaded (`migration.rs`).

mod backup;
mod credentials_file;
mod layout;
mod migration;
mod network;

pub use crate::places::default_config_path;
pub use backup::{BackupConfig, Every};
pub use credentials_file::Credentials;
pub use network::Network;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::hooks::HooksConfig;
use crate::limits::LimitsConfig;

/// Excludes written into a new configuration: caches, trash and temporary
/// files that nobody wants back (gitignore syntax: a pattern with a `/`
/// inside is anchored, hence the `**/` of those; on Windows matched
/// whatever the case, as Windows names are). The Windows ones: a user
/// profile's temporary files and browser caches, and its registry hive
/// (`NTUSER.DAT`), which Windows holds open while the user is logged on
/// and which restoring would not bring back anyway.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    ".cache/",
    "**/.local/share/Trash/",
    "$RECYCLE.BIN/",
    "System Volume Information/",
    "node_modules/",
    "*.tmp",
    "*.swp",
    "~$*",
    "Thumbs.db",
    ".DS_Store",
    "**/AppData/Local/Temp/",
    "**/AppData/Local/Microsoft/Windows/INetCache/",
    "**/AppData/Local/Microsoft/Windows/WebCache/",
    "**/AppData/Local/Google/Chrome/User Data/*/Cache/",
    "**/AppData/Local/Microsoft/Edge/User Data/*/Cache/",
    "**/AppData/Local/Mozilla/Firefox/Profiles/*/cache2/",
    "NTUSER.DAT*",
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
    /// Outages: how long to reconnect, until when to try again at night
    /// (`[network]`: see `config/network.rs`).
    #[serde(default, skip_serializing_if = "Network::is_default")]
    pub network: Network,
    /// Bandwidth limits (`[limits]`, optional `[limits.daytime]`: see `limits/`).
    #[serde(default, skip_serializing_if = "LimitsConfig::is_empty")]
    pub limits: LimitsConfig,
    /// The backup's checkpoints (`[backup]`: see `backup/checkpoint.rs`).
    #[serde(default, skip_serializing_if = "BackupConfig::is_empty")]
    pub backup: BackupConfig,
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

/// An installation: its configuration file, what it says, and its state folder.
#[derive(Debug, Clone)]
pub struct Installation {
    /// The configuration file (absolute).
    pub config_path: PathBuf,
    /// The parsed configuration.
    pub config: Config,
    /// This installation's own state folder (`layout.rs`).
    state: PathBuf,
}

impl Installation {
    /// The installation of the config file at `config_path` (made absolute:
    /// relative paths are taken from the current directory).
    fn at(config_path: &Path, config: Config) -> Result<Installation> {
        let config_path = std::path::absolute(config_path)
            .with_context(|| format!("cannot resolve {}", config_path.display()))?;
        Ok(Installation {
            state: layout::state_dir_of(&config_path),
            config_path,
            config,
        })
    }

    /// Loads the installation whose configuration is at `config_path`, makes
    /// sure its state folder exists (private, tagged), and moves an old
    /// layout's state into it (`migration.rs`).
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
        config.network.check()?;
        let inst = Installation::at(config_path, config)?;
        layout::ensure_state_dir(&inst.state)?;
        if migration::migrate(&inst)? {
            errln!(
                "coffre: moved this installation's credentials and caches from {} into its own \
                 state folder {}",
                inst.config_dir().display(),
                inst.state.display()
            );
        }
        Ok(inst)
    }

    /// Writes a new installation (refuses to replace an existing one unless
    /// `force`). Only this installation's own state is replaced: its state
    /// folder's credentials, caches and last run, never another config's.
    pub fn create(
        config_path: &Path,
        config: Config,
        credentials: &Credentials,
        force: bool,
    ) -> Result<Installation> {
        refuse_existing(config_path, force)?;
        let inst = Installation::at(config_path, config)?;
        layout::ensure_state_dir(&inst.state)?;
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
             # Folders holding a CACHEDIR.TAG or a .nobackup file are always skipped.\n\
             # This installation's state (credentials, caches, log) is in {}.\n{}",
            self.state.display(),
            toml::to_string(&self.config)?
        );
        atomic_write(&self.config_path, text.as_bytes(), false)
    }

    /// Reads the device credentials, after checking that they are this
    /// installation's: they must name the config's subscriber, device and
    /// server fingerprint (`credentials_file.rs`). Every command reads them
    /// through here before it connects, so credentials copied from another
    /// installation are never sent to any server.
    pub fn credentials(&self) -> Result<Credentials> {
        let path = self.credentials_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.no_credentials(&path))
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let owner = credentials_file::Owner::of(&text)
            .map_err(|e| anyhow::anyhow!("{} is damaged: {e}", path.display()))?;
        if let Some(why) = owner.mismatch(&self.config, &self.config_path) {
            bail!(
                "{why} ({}): nothing was sent to any server. {}",
                path.display(),
                self.enrol_again()
            );
        }
        credentials_file::parse(&text, &path)
    }

    /// Why there are no credentials: lost, or (old layout) beside the config
    /// file but another installation's.
    fn no_credentials(&self, path: &Path) -> anyhow::Error {
        let old = self.config_dir().join(migration::OLD_CREDENTIALS);
        let why = fs::read_to_string(&old)
            .ok()
            .and_then(|t| credentials_file::Owner::of(&t).ok())
            .and_then(|o| o.mismatch(&self.config, &self.config_path));
        match why {
            Some(why) => anyhow::anyhow!(
                "{why} ({}, left by an older coffre where every config file of that folder \
                 shared it; they stay for the installation they belong to): nothing was sent to \
                 any server. {}",
                old.display(),
                self.enrol_again()
            ),
            None => anyhow::anyhow!(
                "this installation has no credentials: {} is missing. {}",
                path.display(),
                self.enrol_again()
            ),
        }
    }

    /// What to do when this installation's credentials are not its own.
    fn enrol_again(&self) -> String {
        format!(
            "Enrol this installation again with `coffre --config {} enrol TOKEN --force` (a new \
             token from the operator: `coffre-server device reissue {} {}`)",
            self.config_path.display(),
            self.config.subscriber,
            self.config.device
        )
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
    /// `credentials.lock` file of its state folder) until the returned file
    /// is dropped: one command at a time connects and rolls the device secret.
    pub fn lock_credentials(&self) -> Result<fs::File> {
        layout::ensure_state_dir(&self.state)?;
        migration::lock_file(&self.credentials_lock_path())
    }

    /// The folder holding the config file (and, in the old layout, its state).
    pub fn config_dir(&self) -> &Path {
        self.config_path.parent().unwrap_or(Path::new("/"))
    }
    /// This installation's own state folder: everything below is its alone.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }
    /// The credentials file.
    pub fn credentials_path(&self) -> PathBuf {
        self.state.join("credentials")
    }
    /// The lock held while a command connects and rolls the secret.
    pub fn credentials_lock_path(&self) -> PathBuf {
        self.state.join("credentials.lock")
    }
    /// The cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.state.join("cache")
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
        self.state.join("last-run.json")
    }
    /// The log of scheduled backups.
    pub fn log_path(&self) -> PathBuf {
        self.state.join("backup.log")
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
        restrict(tmp.path(), tmp.as_file())?;
    }
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes the credentials file of `inst`, private (0600; an access list on
/// Windows: `fsmeta::private`) and atomically,
/// recording whom they are for.
fn write_credentials(inst: &Installation, credentials: &Credentials) -> Result<()> {
    let text = credentials_file::render(&inst.config, credentials)?;
    write_private(&inst.credentials_path(), text.as_bytes())
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    atomic_write(path, data, true)
}

/// Makes the file being written readable by its owner only
/// (`fsmeta::private`). On Unix a failure stops the write. On Windows it is
/// a warning and the credentials are still written: a FAT or exFAT drive, or
/// a network share, has no access lists, and losing the credentials would be
/// worse; `coffre status` then says they are not private.
fn restrict(path: &Path, f: &fs::File) -> Result<()> {
    match crate::fsmeta::private::restrict_file(path, f) {
        Ok(()) => Ok(()),
        Err(e) if cfg!(windows) => {
            errln!(
                "coffre: WARNING: the credentials in {} could not be made readable by you only ({e}); \
                 they are saved, but other accounts of this PC may read them: keep coffre's folder \
                 on an NTFS drive of this PC",
                path.parent().unwrap_or(path).display()
            );
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("making {} private", path.display())),
    }
}

fn hex_decode(text: &str, out: &mut [u8]) -> Result<()> {
    hex::decode_to_slice(text.trim(), out)
        .map_err(|_| anyhow::anyhow!("expected {} hex digits", out.len() * 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_core::MasterKey;

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
            network: Default::default(),
            limits: LimitsConfig::default(),
            backup: Default::default(),
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
                fs::File::open(inst.credentials_lock_path())
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

    /// The old layout of `dir`: a config file and, beside it, credentials
    /// of `(subscriber, device)` with only their first line to say so, a
    /// cache and a last run.
    fn old_layout(dir: &Path, name: &str, owner: (&str, &str)) -> PathBuf {
        fs::create_dir_all(dir.join("cache")).unwrap();
        let path = dir.join(name);
        fs::write(&path, toml::to_string(&sample()).unwrap()).unwrap();
        fs::write(
            dir.join("credentials"),
            format!(
                "# coffre credentials of device {:?} of {:?}.\nsecret = \"{}\"\nmaster_key = \"{}\"\n",
                owner.1,
                owner.0,
                "07".repeat(32),
                "09".repeat(32)
            ),
        )
        .unwrap();
        fs::write(dir.join("cache/files"), b"cache").unwrap();
        fs::write(dir.join("last-run.json"), b"{}").unwrap();
        path
    }

    #[test]
    fn the_old_layout_moves_into_the_config_it_belongs_to() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = old_layout(dir, "asso.toml", ("asso", "pc"));
        let inst = Installation::load(&path).unwrap();
        assert_eq!(inst.state_dir(), dir.join("asso.state"));
        assert!(!dir.join("credentials").exists() && !dir.join("cache").exists());
        assert_eq!(fs::read(inst.files_cache_path()).unwrap(), b"cache");
        assert!(inst.last_run_path().exists());
        let c = inst.credentials().unwrap();
        assert_eq!((c.secret, c.master.as_bytes()), ([7; 32], &[9; 32]));
        // The moved file now records whom it is for.
        let text = fs::read_to_string(inst.credentials_path()).unwrap();
        assert!(text.contains("subscriber = \"asso\""), "{text}");
        assert!(
            text.contains(&format!("fingerprint = \"{}\"", "ab".repeat(32))),
            "{text}"
        );
    }

    #[test]
    fn the_old_layout_of_another_config_stays_and_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // asso-a.toml beside the credentials that enrolling asso-b.toml left.
        let path = old_layout(dir, "asso-a.toml", ("asso-b", "pc2"));
        let inst = Installation::load(&path).unwrap();
        assert!(
            dir.join("credentials").exists(),
            "another's credentials stay"
        );
        assert!(dir.join("cache/files").exists());
        let e = inst.credentials().unwrap_err().to_string();
        assert!(
            e.contains(r#"these credentials are for subscriber "asso-b" device "pc2""#)
                && e.contains(r#"asso-a.toml names subscriber "asso" device "pc""#)
                && e.contains("nothing was sent to any server")
                && e.contains("enrol TOKEN --force"),
            "{e}"
        );
        // Without a first line, only config.toml takes them.
        fs::write(
            dir.join("credentials"),
            format!(
                "secret = \"{}\"\nmaster_key = \"{}\"\n",
                "07".repeat(32),
                "09".repeat(32)
            ),
        )
        .unwrap();
        let inst = Installation::load(&path).unwrap();
        let e = inst.credentials().unwrap_err().to_string();
        assert!(e.contains("only the default config.toml"), "{e}");
        let def = dir.join("config.toml");
        fs::copy(&path, &def).unwrap();
        let inst = Installation::load(&def).unwrap();
        assert_eq!(inst.credentials().unwrap().secret, [7; 32]);
        assert!(!dir.join("credentials").exists());
    }

    #[test]
    fn an_interrupted_migration_is_finished_by_the_next_load() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = old_layout(dir, "config.toml", ("asso", "pc"));
        let state = dir.join("config.state");
        // Killed after step 1 moved the cache, before the credentials.
        fs::create_dir_all(&state).unwrap();
        fs::rename(dir.join("cache"), state.join("cache")).unwrap();
        let inst = Installation::load(&path).unwrap();
        assert_eq!(inst.credentials().unwrap().secret, [7; 32]);
        assert!(!dir.join("credentials").exists() && !dir.join("last-run.json").exists());
        assert_eq!(fs::read(inst.files_cache_path()).unwrap(), b"cache");
        // Killed after step 2 (and the secret rolled since): the old file is
        // only removed, the state folder's kept.
        inst.save_secret(&[8; 32]).unwrap();
        old_layout(dir, "config.toml", ("asso", "pc"));
        let inst = Installation::load(&path).unwrap();
        assert_eq!(inst.credentials().unwrap().secret, [8; 32]);
        assert!(!dir.join("credentials").exists());
    }

    #[test]
    fn copied_credentials_of_another_installation_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let creds = Credentials {
            secret: [7; 32],
            master: MasterKey::from_bytes([9; 32]),
        };
        let a = Installation::create(&tmp.path().join("a.toml"), sample(), &creds, false).unwrap();
        let mut other = sample();
        other.subscriber = "asso-b".into();
        let b = Installation::create(&tmp.path().join("b.toml"), other, &creds, false).unwrap();
        assert_ne!(a.state_dir(), b.state_dir());
        fs::copy(b.credentials_path(), a.credentials_path()).unwrap();
        let e = a.credentials().unwrap_err().to_string();
        assert!(e.contains(r#"for subscriber "asso-b""#), "{e}");
        assert!(a.save_secret(&[1; 32]).is_err(), "nor rolled");
    }
}
