//! Hooks: commands config.toml runs before and after a backup (a database
//! dump, a mail client closed), each within a time limit.
//!
//! ```toml
//! [hooks]
//! timeout = "10m"          # each hook's limit unless it gives its own
//!
//! [[hooks.before]]
//! name = "database"
//! command = ["pg_dump", "--file", "/srv/dumps/asso.sql", "asso"]   # argv: no shell
//! timeout = "30m"
//!
//! [[hooks.after]]
//! name = "notes"
//! command = "sqlite3 ~/notes.db '.backup ~/dumps/notes.db'"       # a string: the shell
//! ```
//!
//! **How a hook runs.** An array is the program and its arguments, run as
//! they are (no shell: no quoting to get wrong, nothing expanded); a string
//! goes to the platform's shell (`sh -c` on Unix, `cmd /C` on Windows), for
//! the hook that wants a pipe, a `~` or a redirection. Its standard input is
//! empty; each line it writes to standard output or error goes to the run's
//! log (`backup.log` for a scheduled run, standard error otherwise),
//! prefixed with `hook NAME: `. Its environment is coffre's, plus
//! `COFFRE_HOOK` (`before` or `after`) and, for an after hook,
//! `COFFRE_BACKUP_STATUS` (`ok`, `problems` or `failed`) and
//! `COFFRE_SNAPSHOT` (the new snapshot's id, empty if none was saved).
//!
//! **The time limit.** A hook still running at its limit is killed with
//! every process it started: on Unix it runs in a process group of its own
//! and the whole group gets `SIGKILL`; on Windows `taskkill /T /F` ends its
//! process tree. Then it counts as failed.
//!
//! **What a failure does** is the caller's (`commands::backup`): a failed
//! before hook is a problem recorded in the snapshot, and the backup runs
//! all the same; a failed after hook is reported. Either makes the exit
//! status 3.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A hook's limit when neither it nor `[hooks]` gives one: ten minutes, a
/// database dump of an association's few gigabytes with room to spare.
pub const DEFAULT_TIMEOUT: &str = "10m";

/// How long the output of a finished (or killed) hook is still read: a
/// process it left behind may hold its output open.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// The `[hooks]` section of config.toml.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    /// Each hook's time limit unless it gives its own ("90s", "10m", "1h");
    /// [`DEFAULT_TIMEOUT`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Run in order before the backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<Hook>,
    /// Run in order after the backup, whatever its outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<Hook>,
}

impl HooksConfig {
    /// No hook configured.
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }
}

/// One hook.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// Its name, in the log and in the snapshot's problems.
    pub name: String,
    /// What to run.
    pub command: HookCommand,
    /// Its time limit, if not `[hooks]`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// A hook's command: a program and its arguments, or a line for the shell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum HookCommand {
    /// `["pg_dump", "--file", "x.sql"]`: run as is, no shell.
    Argv(Vec<String>),
    /// `"pg_dump asso | gzip > x.sql.gz"`: through the platform's shell.
    Shell(String),
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Before the backup.
    Before,
    /// After it.
    After,
}

impl Stage {
    fn word(self) -> &'static str {
        match self {
            Stage::Before => "before",
            Stage::After => "after",
        }
    }
}

/// Where a hook's output lines go (already prefixed with its name).
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// A hook that failed, and why (one sentence that says what to do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The hook's name.
    pub name: String,
    /// Why it failed.
    pub why: String,
}

/// Runs `hooks` of `stage` in order (each one even if an earlier one
/// failed), with `env` added to their environment; returns those that
/// failed.
pub fn run_all(
    config: &HooksConfig,
    stage: Stage,
    env: &[(&str, String)],
    sink: &Sink,
) -> Vec<Failure> {
    let hooks = match stage {
        Stage::Before => &config.before,
        Stage::After => &config.after,
    };
    let mut failed = Vec::new();
    for hook in hooks {
        sink(&format!(
            "hook {}: running ({} the backup)",
            hook.name,
            stage.word()
        ));
        match run_one(hook, config.timeout.as_deref(), stage, env, sink) {
            Ok(()) => sink(&format!("hook {}: done", hook.name)),
            Err(why) => {
                sink(&format!("hook {}: FAILED: {why}", hook.name));
                failed.push(Failure {
                    name: hook.name.clone(),
                    why,
                });
            }
        }
    }
    failed
}

/// Runs one hook to its end or its limit.
fn run_one(
    hook: &Hook,
    default_timeout: Option<&str>,
    stage: Stage,
    env: &[(&str, String)],
    sink: &Sink,
) -> Result<(), String> {
    let limit = limit(hook, default_timeout)?;
    let mut cmd = command(&hook.command)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("COFFRE_HOOK", stage.word());
    for (k, v) in env {
        cmd.env(k, v);
    }
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "cannot start {}: {e} (check the `command` of hook {:?} in config.toml)",
            program(&hook.command),
            hook.name
        )
    })?;
    let pid = child.id();
    let (lines_done, readers_done) = mpsc::channel::<()>();
    for out in [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let (sink, name, done) = (sink.clone(), hook.name.clone(), lines_done.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
                let line = String::from_utf8_lossy(&line);
                sink(&format!("hook {name}: {}", line.trim_end_matches('\r')));
            }
            drop(done);
        });
    }
    drop(lines_done);
    let (exited, waited) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = exited.send(child.wait());
    });
    let result = match waited.recv_timeout(limit) {
        Ok(status) => judge(status),
        Err(_) => {
            kill_tree(pid);
            let _ = waited.recv();
            Err(format!(
                "still running after {} (its time limit): killed with the processes it started; \
                 raise its `timeout` in config.toml if it needs longer",
                show_secs(limit.as_secs())
            ))
        }
    };
    // Its last lines: both pipes end with the process, unless something it
    // started holds them open.
    let deadline = std::time::Instant::now() + OUTPUT_GRACE;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match readers_done.recv_timeout(left) {
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            _ => continue,
        }
    }
    result
}

/// The hook's time limit.
fn limit(hook: &Hook, default_timeout: Option<&str>) -> Result<Duration, String> {
    let text = hook
        .timeout
        .as_deref()
        .or(default_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    match coffre_core::units::parse_duration(text) {
        Ok(0) => Err(format!(
            "its timeout {text:?} is zero: give it a time like \"90s\" or \"10m\" in config.toml"
        )),
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(e) => Err(format!("its timeout in config.toml: {e}")),
    }
}

/// The process to start.
fn command(c: &HookCommand) -> Result<Command, String> {
    match c {
        HookCommand::Argv(argv) => {
            let (program, args) = argv.split_first().ok_or(
                "its `command` is an empty list: give the program and its arguments".to_string(),
            )?;
            let mut cmd = Command::new(program);
            cmd.args(args);
            Ok(cmd)
        }
        HookCommand::Shell(line) => {
            if line.trim().is_empty() {
                return Err("its `command` is empty".into());
            }
            #[cfg(unix)]
            let cmd = {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(line);
                cmd
            };
            #[cfg(windows)]
            let cmd = {
                let mut cmd = Command::new("cmd");
                cmd.arg("/C").arg(line);
                cmd
            };
            Ok(cmd)
        }
    }
}

/// The program a command names, for messages.
fn program(c: &HookCommand) -> String {
    match c {
        HookCommand::Argv(argv) => format!("{:?}", argv.first().map_or("", String::as_str)),
        HookCommand::Shell(_) => "the shell".into(),
    }
}

/// Ok for a zero exit status; else why.
fn judge(status: std::io::Result<ExitStatus>) -> Result<(), String> {
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => match s.code() {
            Some(code) => Err(format!(
                "it exited with status {code} (its output is in the log above)"
            )),
            None => Err(format!("it was ended by a signal ({s})")),
        },
        Err(e) => Err(format!("cannot wait for it: {e}")),
    }
}

/// Kills the hook and everything it started.
#[cfg(unix)]
fn kill_tree(pid: u32) {
    use rustix::process::{kill_process_group, Pid, Signal};
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

/// Kills the hook and everything it started.
#[cfg(windows)]
fn kill_tree(pid: u32) {
    let _ = Command::new("taskkill")
        .args(["/T", "/F", "/PID", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// "90 s", "10 min", "1 h 30 min".
fn show_secs(secs: u64) -> String {
    if secs < 120 {
        format!("{secs} s")
    } else if secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs < 3600 {
        format!("{} min", secs / 60)
    } else {
        format!("{} h {} min", secs / 3600, secs % 3600 / 60)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn collect() -> (Sink, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        (
            Arc::new(move |s: &str| l.lock().unwrap().push(s.to_string())),
            lines,
        )
    }

    fn hook(name: &str, command: HookCommand, timeout: Option<&str>) -> Hook {
        Hook {
            name: name.into(),
            command,
            timeout: timeout.map(String::from),
        }
    }

    #[test]
    fn a_hooks_section_reads_from_toml_in_both_forms() {
        let c: HooksConfig = toml::from_str(
            r#"
            timeout = "5m"
            [[before]]
            name = "db"
            command = ["pg_dump", "-f", "x.sql"]
            [[after]]
            name = "notes"
            command = "echo done | cat"
            timeout = "30s"
            "#,
        )
        .unwrap();
        assert_eq!(c.timeout.as_deref(), Some("5m"));
        assert_eq!(
            c.before[0].command,
            HookCommand::Argv(vec!["pg_dump".into(), "-f".into(), "x.sql".into()])
        );
        assert_eq!(
            c.after[0].command,
            HookCommand::Shell("echo done | cat".into())
        );
        assert_eq!(
            limit(&c.after[0], c.timeout.as_deref()),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(limit(&c.before[0], None), Ok(Duration::from_secs(600)));
    }

    #[test]
    fn output_is_prefixed_and_a_failure_says_its_status() {
        let (sink, lines) = collect();
        let c = HooksConfig {
            before: vec![
                hook(
                    "ok",
                    HookCommand::Argv(vec!["echo".into(), "hello".into()]),
                    None,
                ),
                hook(
                    "bad",
                    HookCommand::Shell("echo oops >&2; exit 4".into()),
                    None,
                ),
            ],
            ..HooksConfig::default()
        };
        let failed = run_all(&c, Stage::Before, &[], &sink);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].name, "bad");
        assert!(failed[0].why.contains("status 4"), "{}", failed[0].why);
        let lines = lines.lock().unwrap();
        assert!(lines.contains(&"hook ok: hello".to_string()), "{lines:?}");
        assert!(lines.contains(&"hook bad: oops".to_string()), "{lines:?}");
    }

    #[test]
    fn a_program_that_does_not_exist_is_a_failure_naming_it() {
        let (sink, _) = collect();
        let c = HooksConfig {
            before: vec![hook(
                "x",
                HookCommand::Argv(vec!["/nonexistent/coffre-hook".into()]),
                None,
            )],
            ..HooksConfig::default()
        };
        let failed = run_all(&c, Stage::Before, &[], &sink);
        assert!(failed[0].why.contains("cannot start"), "{:?}", failed);
    }

    #[test]
    fn a_hanging_hook_and_its_children_are_killed_at_the_limit() {
        let (sink, _) = collect();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        // The shell starts a child that would outlive it, then hangs.
        let line = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let c = HooksConfig {
            before: vec![hook("hang", HookCommand::Shell(line), Some("1s"))],
            ..HooksConfig::default()
        };
        let started = std::time::Instant::now();
        let failed = run_all(&c, Stage::Before, &[], &sink);
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(failed[0].why.contains("time limit"), "{failed:?}");
        let child: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The child dies of the group's SIGKILL (a signal is delivered
        // shortly after it is sent): wait until /proc shows it gone or dead.
        let dead = || {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let state = stat.rsplit(')').next().unwrap_or("").trim().chars().next();
            matches!(state, None | Some('Z') | Some('X'))
        };
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !dead() && std::time::Instant::now() < until {
            std::thread::yield_now();
        }
        assert!(dead(), "the hook's child {child} still runs");
    }
}
