//! `coffre schedule`: the nightly backup through the operating system's
//! scheduler, so that it runs with nobody watching and catches up a missed
//! night where the scheduler can.
//!
//! The scheduled job runs exactly
//! `<coffre exe> backup --config <config> --scheduled`, with absolute paths.
//!
//! | machine | backend | where it lives | a night missed (PC off) |
//! | --- | --- | --- | --- |
//! | Linux with systemd, a normal user | [`Backend::SystemdUser`] | `$XDG_CONFIG_HOME/systemd/user/coffre-backup.{service,timer}` | caught up at next boot (`Persistent=true`) |
//! | Linux with systemd, root | [`Backend::SystemdSystem`] | `/etc/systemd/system/coffre-backup.{service,timer}` | caught up at next boot |
//! | Linux without systemd | [`Backend::Cron`] | one marked line in the user's crontab | **not** caught up |
//! | macOS | [`Backend::LaunchdAgent`] / [`Backend::LaunchdDaemon`] | `~/Library/LaunchAgents/` or `/Library/LaunchDaemons/` | run at wake if asleep; not caught up if off |
//! | Windows | [`Backend::TaskScheduler`] | the task `coffre-backup` | caught up (`StartWhenAvailable`) |
//!
//! The backup runs on battery too unless installed with `--ac-only`
//! ([`Plan::on_battery`]): Task Scheduler's `DisallowStartIfOnBatteries` and
//! `StopIfGoingOnBatteries`, systemd's `ConditionACPower=true`; cron and
//! launchd cannot tell and refuse it. `status` reads it back from the entry.
//!
//! Each configuration gets its own entry: the default configuration's is
//! named `coffre-backup`; any other's carries a short hash of its absolute
//! path (`coffre-backup-1a2b3c4d`), so two configurations coexist, and
//! `remove`/`status` find an entry by that name or by the configuration path
//! written inside it. Nothing else in the scheduler is ever touched: in a
//! crontab, only the line ending with our marker is replaced or removed.
//!
//! The backend is chosen at run time, not at compile time: every backend
//! compiles on every OS (they only write files and run the scheduler's own
//! command), so the crate builds and the text generators are tested
//! everywhere. `COFFRE_SCHEDULER=systemd|cron|launchd|schtasks` overrides the
//! choice; systemd user units follow `XDG_CONFIG_HOME`. Tests drive the
//! backends through a `Host` that names the directories and
//! programs explicitly, so no test touches the real user's scheduler.
//!
//! Every failure is a [`ScheduleError`] whose one-line message says what to
//! do. `docs/scheduling.md` is the technician's page.

mod cron;
mod host;
mod job;
mod launchd;
pub(crate) mod retry;
mod systemd;
mod time;
mod windows;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use time::{format_time, parse_time, DEFAULT_TIME};

use host::{Family, Host};
use job::{Job, Target};

/// What to install: a daily backup at `hour:minute` (local time) of the
/// configuration `config`, run by the program `exe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Hour, 0 to 23, local time.
    pub hour: u8,
    /// Minute, 0 to 59.
    pub minute: u8,
    /// The `coffre` program to run (made absolute; must exist).
    pub exe: PathBuf,
    /// The configuration to back up with (made absolute; must exist).
    pub config: PathBuf,
    /// For whom the job runs.
    pub scope: Scope,
    /// Whether it also starts (and goes on) on battery. `false` (`coffre
    /// schedule install --ac-only`) runs it on mains power only: Task
    /// Scheduler's `DisallowStartIfOnBatteries` and `StopIfGoingOnBatteries`,
    /// systemd's `ConditionACPower=true`; cron and launchd cannot tell, and
    /// refuse it ([`ScheduleError::Unsupported`]).
    pub on_battery: bool,
}

/// For whom the scheduled backup runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The user running `coffre schedule`: a systemd user unit, the user's
    /// crontab, a launchd agent, a task that runs while the user is logged on.
    User,
    /// The whole machine, as root / SYSTEM: a systemd system unit, root's
    /// crontab, a launchd daemon, a task run by SYSTEM whether anyone is
    /// logged on or not. Needs root or an administrator prompt.
    System,
}

impl Scope {
    /// The natural scope for whoever runs this: [`Scope::System`] for root
    /// (uid 0), [`Scope::User`] for anyone else and on Windows (where
    /// `--system` is asked for explicitly, from an administrator prompt).
    pub fn for_current_user() -> Scope {
        if crate::fsmeta::is_root() {
            Scope::System
        } else {
            Scope::User
        }
    }
}

impl ScheduleError {
    /// Adds what was done about the files (put back, or to remove by hand) to
    /// the advice of a failed scheduler command.
    pub(crate) fn with_note(self, note: &str) -> ScheduleError {
        match self {
            ScheduleError::CommandFailed {
                command,
                detail,
                hint,
            } => ScheduleError::CommandFailed {
                command,
                detail,
                hint: format!("{hint} ({note})"),
            },
            ScheduleError::ToolMissing { tool, hint } => ScheduleError::ToolMissing {
                tool,
                hint: format!("{hint} ({note})"),
            },
            other => other,
        }
    }
}

/// The scheduler that holds (or would hold) the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// A systemd timer in the user's own service manager.
    SystemdUser,
    /// A systemd timer in the system service manager (root).
    SystemdSystem,
    /// A line in the user's crontab.
    Cron,
    /// A launchd agent (macOS, runs while the user is logged in).
    LaunchdAgent,
    /// A launchd daemon (macOS, runs as root).
    LaunchdDaemon,
    /// Windows Task Scheduler.
    TaskScheduler,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::SystemdUser => "systemd timer (your user)",
            Backend::SystemdSystem => "systemd timer (system)",
            Backend::Cron => "cron (crontab)",
            Backend::LaunchdAgent => "launchd agent (your user)",
            Backend::LaunchdDaemon => "launchd daemon (system)",
            Backend::TaskScheduler => "Windows Task Scheduler",
        })
    }
}

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    /// Where the job lives.
    pub backend: Backend,
    /// The entry's name: unit, launchd label, task name, or crontab marker.
    pub name: String,
    /// Files written (empty for cron and Task Scheduler).
    pub files: Vec<PathBuf>,
    /// The scheduled time, local.
    pub at: (u8, u8),
    /// The next run as the scheduler reports it, when it does.
    pub next_run: Option<String>,
    /// Whether an earlier entry for the same configuration was replaced.
    pub replaced: bool,
    /// What the user should know (missed nights, linger, permissions), one
    /// sentence per line.
    pub detail: String,
}

/// What `remove` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// The scheduler looked at (`None`: none found on this machine).
    pub backend: Option<Backend>,
    /// Whether there was something to remove.
    pub removed: bool,
    /// Names of the entries removed.
    pub names: Vec<String>,
    /// Files deleted.
    pub files: Vec<PathBuf>,
    /// What happened, in words.
    pub detail: String,
}

impl fmt::Display for Removed {
    /// One line saying what was removed (or that nothing was), then the detail.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.removed {
            let from = self
                .backend
                .map(|b| format!(" from {b}"))
                .unwrap_or_default();
            writeln!(
                f,
                "removed the nightly backup{from}: {}",
                self.names.join(", ")
            )?;
        }
        f.write_str(&self.detail)
    }
}

/// What `status` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The scheduler looked at (`None`: none found on this machine).
    pub backend: Option<Backend>,
    /// Whether a nightly backup of this configuration is scheduled.
    pub installed: bool,
    /// The entry's name, when installed.
    pub name: Option<String>,
    /// The scheduled time, local.
    pub at: Option<(u8, u8)>,
    /// The next run as the scheduler reports it, when it does.
    pub next_run: Option<String>,
    /// The last run as the scheduler reports it, when it does.
    pub last_run: Option<String>,
    /// Whether it also runs on battery, as the entry says (`None`: not
    /// installed, or a scheduler that has no such setting).
    pub on_battery: Option<bool>,
    /// Files that hold the entry.
    pub files: Vec<PathBuf>,
    /// What the user should know, one sentence per line.
    pub detail: String,
}

/// Why scheduling failed. Every message is one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// `--at` is not a 24-hour `HH:MM`.
    #[error(
        "invalid time {input:?}: {reason} (write HH:MM on a 24-hour clock, e.g. 02:30 or 21:00)"
    )]
    BadTime {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A path that cannot go into a scheduler entry, or does not exist.
    #[error("{}: {reason}", .path.display())]
    BadPath {
        /// The path.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// `COFFRE_SCHEDULER` names no known scheduler.
    #[error("COFFRE_SCHEDULER={0:?} is not a scheduler coffre knows: use systemd, cron, launchd or schtasks, or unset it")]
    UnknownScheduler(String),
    /// The scheduler's command is not installed.
    #[error("{tool} not found: {hint}")]
    ToolMissing {
        /// The program looked for.
        tool: String,
        /// What to install or do.
        hint: String,
    },
    /// The scheduler's command ran and failed.
    #[error("{command} failed: {detail}; {hint}")]
    CommandFailed {
        /// The command line, shortened.
        command: String,
        /// The first line of its error output.
        detail: String,
        /// What to do.
        hint: String,
    },
    /// The scheduler's command did not answer in time, and was stopped.
    #[error("{command} did not answer within {seconds} s and was stopped: the scheduler may be stuck; try again, or restart the PC")]
    TimedOut {
        /// The command line, shortened.
        command: String,
        /// How long it was given.
        seconds: u64,
    },
    /// The scheduler cannot do what was asked (`--ac-only` with cron or launchd).
    #[error("{0}")]
    Unsupported(String),
    /// Reading or writing a scheduler file failed.
    #[error("cannot {action} {}: {source}{hint}", .path.display())]
    Io {
        /// "write", "remove", ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
        /// What to do (starts with "; " when present).
        hint: String,
    },
}

/// Installs (or replaces) the nightly backup of `plan.config`.
///
/// Idempotent: installing again for the same configuration replaces the
/// entry (new time, new program path) and leaves nothing behind. On failure,
/// files written by this call are removed again (or the previous ones put
/// back), and the error says so.
pub fn install(plan: &Plan) -> Result<Installed, ScheduleError> {
    install_on(&Host::from_env()?, plan)
}

/// Removes the nightly backup of `config`, if there is one. Removing what is
/// not there is not an error: [`Removed::removed`] is then `false`.
pub fn remove(config: &Path, scope: Scope) -> Result<Removed, ScheduleError> {
    remove_on(&Host::from_env()?, config, scope)
}

/// Tells whether a nightly backup of `config` is scheduled, when, and when
/// it runs next. A machine with no scheduler is a status, not an error.
pub fn status(config: &Path, scope: Scope) -> Result<Status, ScheduleError> {
    status_on(&Host::from_env()?, config, scope)
}

fn install_on(host: &Host, plan: &Plan) -> Result<Installed, ScheduleError> {
    let job = Job::new(host, plan)?;
    if !job.on_battery && matches!(host.family, Family::Cron | Family::Launchd) {
        return Err(ScheduleError::Unsupported(format!(
            "--ac-only needs Windows Task Scheduler or systemd: {} cannot tell mains power from battery; install without --ac-only",
            if host.family == Family::Cron { "cron" } else { "launchd" }
        )));
    }
    match host.family {
        Family::Systemd => systemd::install(host, &job),
        Family::Cron => cron::install(host, &job),
        Family::Launchd => launchd::install(host, &job),
        Family::TaskScheduler => windows::install(host, &job),
    }
}

fn remove_on(host: &Host, config: &Path, scope: Scope) -> Result<Removed, ScheduleError> {
    let target = Target::new(host, config, scope)?;
    let done = match host.family {
        Family::Systemd => systemd::remove(host, &target),
        Family::Cron => cron::remove(host, &target),
        Family::Launchd => launchd::remove(host, &target),
        Family::TaskScheduler => windows::remove(host, &target),
    };
    match done {
        Err(e @ ScheduleError::ToolMissing { .. }) => Ok(Removed {
            backend: None,
            removed: false,
            names: Vec::new(),
            files: Vec::new(),
            detail: format!("nothing to remove: {e}"),
        }),
        other => other,
    }
}

fn status_on(host: &Host, config: &Path, scope: Scope) -> Result<Status, ScheduleError> {
    let target = Target::new(host, config, scope)?;
    let found = match host.family {
        Family::Systemd => systemd::status(host, &target),
        Family::Cron => cron::status(host, &target),
        Family::Launchd => launchd::status(host, &target),
        Family::TaskScheduler => windows::status(host, &target),
    };
    match found {
        Err(e @ ScheduleError::ToolMissing { .. }) => Ok(Status {
            backend: None,
            installed: false,
            name: None,
            at: None,
            next_run: None,
            last_run: None,
            on_battery: None,
            files: Vec::new(),
            detail: format!("no nightly backup can be scheduled here yet: {e}"),
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_are_plain_words() {
        assert_eq!(
            Backend::SystemdUser.to_string(),
            "systemd timer (your user)"
        );
        assert_eq!(Backend::Cron.to_string(), "cron (crontab)");
        assert_eq!(Backend::TaskScheduler.to_string(), "Windows Task Scheduler");
        assert_eq!(
            serde_json::to_string(&Backend::SystemdSystem).unwrap(),
            "\"systemd_system\""
        );
    }

    #[test]
    fn removed_reads_as_a_sentence() {
        let r = Removed {
            backend: Some(Backend::Cron),
            removed: true,
            names: vec!["# coffre-backup 1a2b3c4d".into()],
            files: Vec::new(),
            detail: "Removed the line.".into(),
        };
        assert_eq!(r.to_string(), "removed the nightly backup from cron (crontab): # coffre-backup 1a2b3c4d\nRemoved the line.");
        let r = Removed {
            removed: false,
            names: Vec::new(),
            detail: "Nothing scheduled.".into(),
            ..r
        };
        assert_eq!(r.to_string(), "Nothing scheduled.");
    }

    #[test]
    fn cron_and_launchd_refuse_ac_only() {
        use host::testing;
        let dir = tempfile::tempdir().unwrap();
        for family in [Family::Cron, Family::Launchd] {
            let host = testing::host(dir.path(), family);
            let mut plan = testing::plan(dir.path(), "config.toml", (2, 0), Scope::User);
            plan.on_battery = false;
            let e = install_on(&host, &plan).unwrap_err();
            assert!(matches!(e, ScheduleError::Unsupported(_)), "{e}");
            assert!(e.to_string().contains("install without --ac-only"), "{e}");
        }
    }

    #[test]
    fn errors_are_one_line_and_say_what_to_do() {
        let e = parse_time("25:00").unwrap_err();
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("HH:MM"), "{text}");
        let e = ScheduleError::UnknownScheduler("upstart".into());
        assert!(
            e.to_string()
                .contains("use systemd, cron, launchd or schtasks"),
            "{e}"
        );
    }
}
