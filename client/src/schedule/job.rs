//! The job to schedule, with its paths checked and made absolute, and the
//! name of its scheduler entry.

use std::path::{Path, PathBuf};

use super::host::Host;
use super::{time, Plan, ScheduleError, Scope};

/// The base name of every entry: unit `coffre-backup.timer`, task
/// `coffre-backup`, crontab marker `coffre-backup`.
pub(super) const BASE: &str = "coffre-backup";

/// Which configuration, for whom: enough to find an entry (remove, status).
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// Absolute path of the configuration.
    pub config: PathBuf,
    /// The same, as text (entries are text; non-UTF-8 paths are refused).
    pub config_str: String,
    /// 8 hex digits of BLAKE3(absolute path): stable across versions and machines.
    pub id: String,
    /// Whether this is the default configuration (entry without suffix).
    pub is_default: bool,
    pub scope: Scope,
}

impl Target {
    pub fn new(host: &Host, config: &Path, scope: Scope) -> Result<Target, ScheduleError> {
        let (config, config_str) = absolute_text(config, "configuration")?;
        let is_default = host
            .default_config
            .as_deref()
            .and_then(|d| std::path::absolute(d).ok())
            .is_some_and(|d| d == config);
        Ok(Target {
            id: config_id(&config_str),
            config,
            config_str,
            is_default,
            scope,
        })
    }

    /// `coffre-backup` for the default configuration, `coffre-backup-<id>` otherwise.
    pub fn name(&self) -> String {
        entry_name(self.is_default, &self.id)
    }
}

/// A job to install.
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub target: Target,
    pub at: (u8, u8),
    /// The absolute path of the program, as text.
    pub exe_str: String,
    /// Whether it also runs on battery ([`Plan::on_battery`]).
    pub on_battery: bool,
}

impl Job {
    pub fn new(host: &Host, plan: &Plan) -> Result<Job, ScheduleError> {
        time::check((plan.hour, plan.minute))?;
        let target = Target::new(host, &plan.config, plan.scope)?;
        if !target.config.is_file() {
            return Err(ScheduleError::BadPath {
                path: target.config,
                reason: "no configuration file there: enrol this PC first (coffre enrol TOKEN), or pass --config with the right file".into(),
            });
        }
        let (exe, exe_str) = absolute_text(&plan.exe, "program")?;
        if !exe.is_file() {
            return Err(ScheduleError::BadPath {
                path: exe,
                reason: "the coffre program is not there: run `coffre schedule install` with the installed coffre".into(),
            });
        }
        Ok(Job {
            target,
            at: (plan.hour, plan.minute),
            exe_str,
            on_battery: plan.on_battery,
        })
    }

    /// The arguments after the program: `backup --config <config> --scheduled`.
    pub fn args(&self) -> [&str; 4] {
        ["backup", "--config", &self.target.config_str, "--scheduled"]
    }
}

pub(super) fn entry_name(is_default: bool, id: &str) -> String {
    if is_default {
        BASE.to_string()
    } else {
        format!("{BASE}-{id}")
    }
}

/// 8 hex digits of BLAKE3 of the absolute configuration path.
pub(super) fn config_id(config: &str) -> String {
    blake3::hash(config.as_bytes()).to_hex()[..8].to_string()
}

/// The path made absolute (without resolving links: the same spelling gives
/// the same entry) and as text. Scheduler entries are text files read line
/// by line: a path that is not UTF-8 or holds a line break cannot go in.
fn absolute_text(path: &Path, what: &str) -> Result<(PathBuf, String), ScheduleError> {
    let abs = std::path::absolute(path).map_err(|e| ScheduleError::BadPath {
        path: path.to_path_buf(),
        reason: format!("cannot make the {what} path absolute ({e}); give a full path"),
    })?;
    let text = abs.to_str().ok_or_else(|| ScheduleError::BadPath {
        path: abs.clone(),
        reason: format!("the {what} path is not valid UTF-8 and cannot be written into a scheduler entry; rename it"),
    })?;
    if text.chars().any(char::is_control) {
        return Err(ScheduleError::BadPath {
            path: abs.clone(),
            reason: format!("the {what} path holds a line break or control character; rename it"),
        });
    }
    let text = text.to_string();
    Ok((abs, text))
}

#[cfg(test)]
mod tests {
    use super::super::host::{testing, Family};
    use super::*;

    #[test]
    fn config_id_is_frozen() {
        // BLAKE3 is stable: an entry installed by one version is found by the next.
        assert_eq!(
            config_id("/etc/coffre/config.toml"),
            config_id("/etc/coffre/config.toml")
        );
        assert_eq!(config_id("/etc/coffre/config.toml").len(), 8);
        assert_ne!(
            config_id("/etc/coffre/config.toml"),
            config_id("/etc/coffre/other.toml")
        );
        assert_eq!(config_id("/etc/coffre/config.toml"), KNOWN_ID);
    }
    const KNOWN_ID: &str = "5b2eb332";

    #[test]
    fn default_config_gets_the_plain_name_others_a_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let host = testing::host(dir.path(), Family::Systemd);
        let default = host.default_config.clone().unwrap();
        let t = Target::new(&host, &default, Scope::User).unwrap();
        assert!(t.is_default);
        assert_eq!(t.name(), "coffre-backup");
        let other = dir.path().join("home/.config/coffre/work.toml");
        let t = Target::new(&host, &other, Scope::User).unwrap();
        assert!(!t.is_default);
        assert_eq!(
            t.name(),
            format!("coffre-backup-{}", config_id(&t.config_str))
        );
    }

    #[test]
    fn relative_paths_become_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let host = testing::host(dir.path(), Family::Cron);
        let t = Target::new(&host, Path::new("conf/config.toml"), Scope::User).unwrap();
        assert!(t.config.is_absolute());
        assert!(t.config.starts_with(std::env::current_dir().unwrap()));
        assert!(t.config.ends_with("conf/config.toml"));
    }

    #[test]
    fn refuses_line_breaks_missing_config_and_missing_program() {
        let dir = tempfile::tempdir().unwrap();
        let host = testing::host(dir.path(), Family::Cron);
        let e = Target::new(&host, Path::new("/tmp/a\nb.toml"), Scope::User).unwrap_err();
        assert!(e.to_string().contains("line break"), "{e}");

        let mut plan = testing::plan(dir.path(), "config.toml", (2, 0), Scope::User);
        let good = plan.clone();
        plan.config = dir.path().join("nowhere.toml");
        let e = Job::new(&host, &plan).unwrap_err().to_string();
        assert!(e.contains("enrol this PC first"), "{e}");

        let mut plan = good.clone();
        plan.exe = dir.path().join("no-coffre");
        let e = Job::new(&host, &plan).unwrap_err().to_string();
        assert!(e.contains("coffre program is not there"), "{e}");

        let mut plan = good.clone();
        plan.hour = 24;
        assert!(matches!(
            Job::new(&host, &plan),
            Err(ScheduleError::BadTime { .. })
        ));

        let job = Job::new(&host, &good).unwrap();
        assert_eq!(
            job.args(),
            [
                "backup",
                "--config",
                job.target.config_str.as_str(),
                "--scheduled"
            ]
        );
        assert!(Path::new(&job.exe_str).ends_with("bin dir/coffre"));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_non_utf8_paths() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let host = testing::host(dir.path(), Family::Cron);
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/caf\xe9.toml"));
        let e = Target::new(&host, p, Scope::User).unwrap_err();
        assert!(e.to_string().contains("not valid UTF-8"), "{e}");
    }
}
