//! What this machine offers: which scheduler, where its files go, which
//! programs to run. [`Host::from_env`] reads the real machine; tests build a
//! `Host` by hand with temporary directories and explicit program paths, so
//! they never touch the real user's scheduler.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use super::ScheduleError;

/// The scheduler family; the scope then picks user or system flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Systemd,
    Cron,
    Launchd,
    TaskScheduler,
}

/// The machine, as far as scheduling is concerned.
#[derive(Debug, Clone)]
pub(super) struct Host {
    pub family: Family,
    /// Why this family was chosen, for messages ("systemd is not running here").
    pub why: String,
    pub systemctl: OsString,
    /// Whether systemd is the init system (`/run/systemd/system` exists).
    pub systemd_booted: bool,
    /// `$XDG_CONFIG_HOME/systemd/user` (None without a home directory).
    pub systemd_user_dir: Option<PathBuf>,
    pub systemd_system_dir: PathBuf,
    /// `/var/lib/systemd/linger`: a file per user whose manager runs without a login.
    pub linger_dir: PathBuf,
    pub crontab: OsString,
    pub launchctl: OsString,
    pub launch_agents_dir: Option<PathBuf>,
    pub launch_daemons_dir: PathBuf,
    pub schtasks: OsString,
    /// Where the Task Scheduler XML is written before `schtasks /Create /XML`.
    pub temp_dir: PathBuf,
    /// `%SystemRoot%\System32\Tasks`: the task store, read only when
    /// `schtasks /Query /XML` answers nothing (Wine 8: windows.rs).
    pub tasks_dir: PathBuf,
    /// The configuration `coffre` uses without `--config`: its entry has no hash suffix.
    pub default_config: Option<PathBuf>,
    /// The user's login name, for `loginctl enable-linger` and messages.
    pub user: Option<String>,
    /// `DOMAIN\user` on Windows: the principal of a user task.
    pub account: Option<String>,
}

impl Host {
    /// The real machine: `COFFRE_SCHEDULER` if set, else Windows -> Task
    /// Scheduler, macOS -> launchd, Linux/BSD -> systemd when it runs, cron otherwise.
    pub fn from_env() -> Result<Host, ScheduleError> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let home = var(if cfg!(windows) { "USERPROFILE" } else { "HOME" }).map(PathBuf::from);
        let xdg_config = var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let systemctl = OsString::from("systemctl");
        let (family, why) = match std::env::var("COFFRE_SCHEDULER")
            .ok()
            .filter(|v| !v.is_empty())
        {
            Some(choice) => (
                parse_override(&choice)?,
                format!("COFFRE_SCHEDULER={choice} is set"),
            ),
            None => detect(&systemctl),
        };
        Ok(Host {
            family,
            why,
            systemctl,
            systemd_booted: Path::new("/run/systemd/system").is_dir(),
            systemd_user_dir: xdg_config
                .or_else(|| home.as_ref().map(|h| h.join(".config")))
                .map(|c| c.join("systemd").join("user")),
            systemd_system_dir: PathBuf::from("/etc/systemd/system"),
            linger_dir: PathBuf::from("/var/lib/systemd/linger"),
            crontab: OsString::from("crontab"),
            launchctl: OsString::from("launchctl"),
            launch_agents_dir: home
                .as_ref()
                .map(|h| h.join("Library").join("LaunchAgents")),
            launch_daemons_dir: PathBuf::from("/Library/LaunchDaemons"),
            schtasks: OsString::from("schtasks"),
            temp_dir: std::env::temp_dir(),
            tasks_dir: var("SystemRoot")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(r"C:\Windows"))
                .join("System32")
                .join("Tasks"),
            default_config: crate::places::default_config_path().ok(),
            user: ["USER", "LOGNAME", "USERNAME"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty())),
            account: match (std::env::var("USERDOMAIN"), std::env::var("USERNAME")) {
                (Ok(domain), Ok(user))
                    if cfg!(windows) && !domain.is_empty() && !user.is_empty() =>
                {
                    Some(format!("{domain}\\{user}"))
                }
                _ => None,
            },
        })
    }
}

/// `COFFRE_SCHEDULER`'s value -> family.
pub(super) fn parse_override(choice: &str) -> Result<Family, ScheduleError> {
    match choice.trim().to_ascii_lowercase().as_str() {
        "systemd" => Ok(Family::Systemd),
        "cron" | "crontab" => Ok(Family::Cron),
        "launchd" => Ok(Family::Launchd),
        "schtasks" | "task-scheduler" | "taskscheduler" => Ok(Family::TaskScheduler),
        _ => Err(ScheduleError::UnknownScheduler(choice.to_string())),
    }
}

fn detect(systemctl: &OsStr) -> (Family, String) {
    if cfg!(windows) {
        return (Family::TaskScheduler, "this is Windows".into());
    }
    if cfg!(target_os = "macos") {
        return (Family::Launchd, "this is macOS".into());
    }
    // sd_booted()'s test: systemd is the init system iff this directory exists.
    if !Path::new("/run/systemd/system").is_dir() {
        return (
            Family::Cron,
            "systemd is not running on this machine (no /run/systemd/system)".into(),
        );
    }
    match run(systemctl, &["--version"], None) {
        Ok(r) if r.ok() => (Family::Systemd, "systemd is running".into()),
        _ => (
            Family::Cron,
            "systemd is running but the `systemctl` command does not work".into(),
        ),
    }
}

/// `id -u` (macOS has no /proc; launchd domains are named by uid).
pub(super) fn numeric_uid() -> Option<String> {
    let r = run(OsStr::new("id"), &["-u"], None).ok()?;
    let uid = r.stdout.trim();
    (r.ok() && !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit())).then(|| uid.to_string())
}

/// A finished command.
#[derive(Debug)]
pub(super) struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    /// The first line of what the command said about its failure.
    pub fn reason(&self) -> String {
        first_line(&self.stderr)
            .or_else(|| first_line(&self.stdout))
            .map(|l| {
                l.strip_suffix('.')
                    .filter(|l| !l.ends_with('.'))
                    .unwrap_or(&l)
                    .to_string()
            })
            .unwrap_or_else(|| format!("it exited with {}", self.status))
    }
}

/// The first non-empty line, trimmed and capped, or None.
pub(super) fn first_line(s: &str) -> Option<String> {
    let line = s.lines().map(str::trim).find(|l| !l.is_empty())?;
    const CAP: usize = 300;
    if line.len() <= CAP {
        return Some(line.to_string());
    }
    let mut end = CAP;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    Some(format!("{}...", &line[..end]))
}

/// How long a scheduler's command may take. `systemctl`, `crontab`,
/// `launchctl` and `schtasks` answer in well under a second; the first
/// `schtasks` of a fresh Wine prefix starts Wine's services and took 14 s.
pub(super) const COMMAND_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// After the program ended, how long its output pipes may stay open: a
/// process it started may hold them (under Wine, a service that `schtasks`
/// woke up) and would otherwise keep us waiting for as long as it lives.
const PIPE_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs `program args`, feeding `input` on stdin (or nothing), and collects
/// its output. Err when it could not be started (`NotFound`: absent) or did
/// not end within [`COMMAND_LIMIT`] (`TimedOut`: it is killed).
pub(super) fn run(program: &OsStr, args: &[&str], input: Option<&[u8]>) -> std::io::Result<Ran> {
    use std::io::Read;
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::Instant;
    let spawn = || {
        Command::new(program)
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    // "Text file busy" is transient: the program is being written (a package
    // upgrade), or another thread's fork still holds it open for writing
    // until that child execs. Try again for a moment.
    let mut attempts = 0;
    let mut child = loop {
        match spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other?,
        }
    };
    if let (Some(mut pipe), Some(bytes)) = (child.stdin.take(), input) {
        // A writer thread, so a child that talks before reading all of
        // stdin cannot deadlock us; a broken pipe shows in its status.
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    // Reader threads fill a shared buffer and say when their pipe closed,
    // so that a pipe held open by someone else costs PIPE_GRACE, not
    // forever, and what was read by then is kept.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<()>();
        let filled = Arc::clone(&buf);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            let mut pipe = pipe;
            while let Some(pipe) = pipe.as_mut() {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => filled
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&chunk[..n]),
                }
            }
            let _ = tx.send(());
        });
        (buf, rx)
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "it did not answer within {} s and was stopped",
                    COMMAND_LIMIT.as_secs()
                ),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let grace_end = Instant::now() + PIPE_GRACE;
    let text = |(buf, rx): (Arc<Mutex<Vec<u8>>>, mpsc::Receiver<()>)| {
        let _ = rx.recv_timeout(grace_end.saturating_duration_since(Instant::now()));
        let bytes = buf.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok(Ran {
        status,
        stdout: text(stdout),
        stderr: text(stderr),
    })
}

/// A `program args` line for messages.
/// Runs a scheduler's command (`tool`, found at `program`): a program that is
/// not installed becomes [`ScheduleError::ToolMissing`] with `missing`'s
/// advice, one that hangs [`ScheduleError::TimedOut`], any other failure to
/// start it [`ScheduleError::CommandFailed`]
/// naming the command as `shown`. The command's own exit status is the
/// caller's to judge.
pub(super) fn run_tool(
    program: &OsStr,
    tool: &str,
    shown: &str,
    args: &[&str],
    input: Option<&[u8]>,
    missing: impl FnOnce() -> String,
) -> Result<Ran, ScheduleError> {
    run(program, args, input).map_err(|e| {
        if e.kind() == std::io::ErrorKind::TimedOut {
            ScheduleError::TimedOut {
                command: shown.to_string(),
                seconds: COMMAND_LIMIT.as_secs(),
            }
        } else if e.kind() == std::io::ErrorKind::NotFound {
            ScheduleError::ToolMissing {
                tool: tool.into(),
                hint: missing(),
            }
        } else {
            ScheduleError::CommandFailed {
                command: shown.to_string(),
                detail: e.to_string(),
                hint: format!("check that {tool} can be run"),
            }
        }
    })
}

pub(super) fn show(program: &str, args: &[&str]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// Writes a small file whole: temp name in the same directory, then rename,
/// so a scheduler never reads half a unit. (Not fsync'd: losing a unit file
/// in a crash costs a re-install, not data.)
pub(super) fn write_file(path: &Path, bytes: &[u8], hint: &str) -> Result<(), ScheduleError> {
    let io = |action, source| ScheduleError::Io {
        action,
        path: path.to_path_buf(),
        source,
        hint: hint.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
    }
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".coffre-tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| io("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("write", e)
    })
}

/// The directories of `dir`'s path that do not exist yet, deepest first:
/// what writing into `dir` will create, and undoing it may remove.
pub(super) fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect()
}

/// Removes these directories if they are empty (best effort).
pub(super) fn remove_empty_dirs(dirs: &[PathBuf]) {
    for d in dirs {
        if std::fs::remove_dir(d).is_err() {
            break;
        }
    }
}

/// Removes a file; absent is fine. Returns whether it was there.
pub(super) fn remove_file(path: &Path, hint: &str) -> Result<bool, ScheduleError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(ScheduleError::Io {
            action: "remove",
            path: path.to_path_buf(),
            source,
            hint: hint.to_string(),
        }),
    }
}

/// Reads a file that may be absent.
pub(super) fn read_optional(path: &Path) -> Result<Option<String>, ScheduleError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ScheduleError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
            hint: String::new(),
        }),
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! A `Host` for tests: every directory under one temporary directory,
    //! every program a path that does not exist unless the test says so.

    use super::*;

    pub fn host(root: &Path, family: Family) -> Host {
        let absent = root.join("absent-program");
        Host {
            family,
            why: "the test chose it".into(),
            systemctl: absent.clone().into(),
            systemd_booted: true,
            systemd_user_dir: Some(root.join("xdg-config/systemd/user")),
            systemd_system_dir: root.join("etc/systemd/system"),
            linger_dir: root.join("var/lib/systemd/linger"),
            crontab: absent.clone().into(),
            launchctl: absent.clone().into(),
            launch_agents_dir: Some(root.join("home/Library/LaunchAgents")),
            launch_daemons_dir: root.join("Library/LaunchDaemons"),
            schtasks: absent.into(),
            temp_dir: root.join("tmp"),
            tasks_dir: root.join("Tasks"),
            default_config: Some(root.join("home/.config/coffre/config.toml")),
            user: Some("member".into()),
            account: None,
        }
    }

    /// A config file and a program that exist, for a `Plan`.
    pub fn plan(
        root: &Path,
        config_name: &str,
        at: (u8, u8),
        scope: super::super::Scope,
    ) -> super::super::Plan {
        let config = root.join("home/.config/coffre").join(config_name);
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(&config, "# test\n").unwrap();
        let exe = root.join("bin dir/coffre");
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        std::fs::write(&exe, "").unwrap();
        super::super::Plan {
            hour: at.0,
            minute: at.1,
            exe,
            config,
            scope,
            on_battery: true,
        }
    }

    /// Writes an executable shell script (a stand-in for a scheduler command
    /// whose real one would touch the real machine).
    #[cfg(unix)]
    pub fn script(path: &Path, body: &str) -> OsString {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.as_os_str().to_os_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program that leaves a process holding its output open (as Wine's
    /// services woken by `schtasks` may) is not waited for beyond the grace.
    #[cfg(unix)]
    #[test]
    fn output_held_open_by_a_grandchild_costs_the_grace_only() {
        let dir = tempfile::tempdir().unwrap();
        let program = testing::script(&dir.path().join("holder"), "echo hello\nsleep 30 &\nexit 3");
        let start = std::time::Instant::now();
        let ran = run(&program, &[], None).unwrap();
        assert!(
            start.elapsed() < PIPE_GRACE + std::time::Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(ran.stdout, "hello\n");
        assert_eq!(ran.status.code(), Some(3));
    }

    #[test]
    fn override_names() {
        assert_eq!(parse_override("systemd").unwrap(), Family::Systemd);
        assert_eq!(parse_override("Cron").unwrap(), Family::Cron);
        assert_eq!(parse_override("launchd").unwrap(), Family::Launchd);
        assert_eq!(parse_override("schtasks").unwrap(), Family::TaskScheduler);
        assert!(
            matches!(parse_override("upstart"), Err(ScheduleError::UnknownScheduler(s)) if s == "upstart")
        );
    }

    #[test]
    fn first_line_skips_blank_lines_and_caps_length() {
        assert_eq!(
            first_line("\n  \n Failed to connect to bus \nmore").unwrap(),
            "Failed to connect to bus"
        );
        assert_eq!(first_line(" \n"), None);
        let long = "é".repeat(400);
        let capped = first_line(&long).unwrap();
        assert!(
            capped.ends_with("...") && capped.len() <= 303,
            "{}",
            capped.len()
        );
    }

    #[test]
    fn an_absent_program_is_not_found() {
        let e = run(OsStr::new("/nonexistent/coffre-no-such-program"), &[], None).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }

    #[cfg(unix)]
    #[test]
    fn run_feeds_stdin_and_collects_output() {
        let r = run(
            OsStr::new("sh"),
            &["-c", "cat; echo oops >&2; exit 3"],
            Some(b"hello\n"),
        )
        .unwrap();
        assert!(!r.ok());
        assert_eq!(r.stdout, "hello\n");
        assert_eq!(r.reason(), "oops");
        let r = run(OsStr::new("sh"), &["-c", "exit 4"], None).unwrap();
        assert!(r.reason().contains('4'), "{}", r.reason());
        let r = run(
            OsStr::new("sh"),
            &["-c", "echo \"Can't operate.\" >&2; exit 1"],
            None,
        )
        .unwrap();
        assert_eq!(r.reason(), "Can't operate", "a sentence goes inside ours");
        let r = run(
            OsStr::new("sh"),
            &["-c", "echo \"wait...\" >&2; exit 1"],
            None,
        )
        .unwrap();
        assert_eq!(r.reason(), "wait...");
    }

    #[test]
    fn missing_dirs_are_the_ones_to_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        assert_eq!(
            missing_dirs(&deep),
            [deep.clone(), dir.path().join("a/b"), dir.path().join("a")]
        );
        write_file(&deep.join("f"), b"x", "").unwrap();
        assert!(missing_dirs(&deep).is_empty());
        let created = [deep.clone(), dir.path().join("a/b"), dir.path().join("a")];
        remove_empty_dirs(&created);
        assert!(deep.exists(), "not empty: kept");
        std::fs::remove_file(deep.join("f")).unwrap();
        remove_empty_dirs(&created);
        assert!(!dir.path().join("a").exists());
        assert!(dir.path().exists());
    }

    #[test]
    fn write_file_replaces_whole_and_remove_tolerates_absence() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/unit");
        write_file(&p, b"one", "").unwrap();
        write_file(&p, b"two", "").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(
            std::fs::read_dir(p.parent().unwrap()).unwrap().count(),
            1,
            "no temp file left"
        );
        assert_eq!(read_optional(&p).unwrap().as_deref(), Some("two"));
        assert!(remove_file(&p, "").unwrap());
        assert!(!remove_file(&p, "").unwrap());
        assert_eq!(read_optional(&p).unwrap(), None);
    }

    /// A program still open for writing ("Text file busy") is started once
    /// the writer lets go, instead of failing the whole command.
    #[cfg(unix)]
    #[test]
    fn a_busy_program_is_started_once_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin/busy");
        let program = testing::script(&path, "echo started");
        let writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(writer);
        });
        let ran = run(&program, &[], None).unwrap();
        release.join().unwrap();
        assert!(ran.status.success());
        assert_eq!(ran.stdout.trim(), "started");
    }
}
