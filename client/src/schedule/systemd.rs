//! systemd: a `coffre-backup.service` (oneshot, low priority) started by a
//! `coffre-backup.timer` (daily, `Persistent=true`, randomized delay), in the
//! user's manager (`~/.config/systemd/user/`) or the system's
//! (`/etc/systemd/system/`).
//!
//! Both files carry a `# coffre-config: <path>` comment: `remove` and
//! `status` find the units of a configuration by it, and never touch a unit
//! without it.

use std::path::{Path, PathBuf};

use super::host::{self, Host, Ran};
use super::job::{self, Job, Target};
use super::{time, Backend, Installed, Removed, ScheduleError, Scope, Status};

/// The marker line that ties a unit to its configuration.
const MARKER: &str = "# coffre-config: ";
/// The timer fires up to this many minutes after the set time, a fixed
/// offset per PC, so an association's PCs do not all hit the server at once.
pub(super) const RANDOM_DELAY_MINUTES: u32 = 10;
/// A run still going after this long (a dead network, a hung disk) is
/// stopped, well before the next night; the next run resumes the upload.
pub(super) const TIMEOUT: &str = "12h";

fn backend(scope: Scope) -> Backend {
    match scope {
        Scope::User => Backend::SystemdUser,
        Scope::System => Backend::SystemdSystem,
    }
}

/// One word of `ExecStart=`, as systemd reads it back: `%` is a specifier
/// (`%%`), `$` an environment variable in arguments (`$$`; the program path
/// itself is not expanded), and a word with a space, quote or backslash is
/// double-quoted with C escapes.
pub(super) fn exec_word(word: &str, is_program: bool) -> String {
    let plain = |c: char| c.is_alphanumeric() || "/._-+,:=@%$".contains(c);
    let needs_quotes = word.is_empty() || !word.chars().all(plain);
    let mut out = String::with_capacity(word.len() + 2);
    if needs_quotes {
        out.push('"');
    }
    for c in word.chars() {
        match c {
            '%' => out.push_str("%%"),
            '$' if !is_program => out.push_str("$$"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    if needs_quotes {
        out.push('"');
    }
    out
}

/// The `ExecStart=` value for a job.
pub(super) fn exec_start(job: &Job) -> String {
    let mut line = exec_word(&job.exe_str, true);
    for arg in job.args() {
        line.push(' ');
        line.push_str(&exec_word(arg, false));
    }
    line
}

fn header(job: &Job) -> String {
    format!(
        "# Written by `coffre schedule install`: the nightly backup of one coffre configuration.\n\
         # Change the time with `coffre schedule install --at HH:MM`; remove with `coffre schedule remove`.\n\
         {MARKER}{}\n",
        job.target.config_str
    )
}

/// The line of `schedule install --ac-only`: systemd skips the start (the
/// timer fires again the next night) while the PC runs on battery. A run
/// already going is not stopped when the PC is unplugged: systemd checks
/// conditions at start only.
const AC_ONLY: &str = "ConditionACPower=true";

/// The text of `<name>.service`.
pub(super) fn service_text(job: &Job) -> String {
    let mut s = header(job);
    s.push_str("\n[Unit]\n");
    s.push_str(&format!(
        "Description=coffre backup of {}\n",
        job.target.config_str.replace('%', "%%")
    ));
    match job.target.scope {
        // The user manager has no network-online.target; the backup retries.
        Scope::User => s.push_str("After=network.target\n"),
        Scope::System => s.push_str("Wants=network-online.target\nAfter=network-online.target\n"),
    }
    if !job.on_battery {
        s.push_str("# --ac-only: not started while the PC runs on battery.\n");
        s.push_str(AC_ONLY);
        s.push('\n');
    }
    s.push_str("\n[Service]\nType=oneshot\n");
    if job.target.scope == Scope::System {
        s.push_str("# Sets HOME=/root for the backup's cache.\nUser=root\n");
    }
    s.push_str(&format!("ExecStart={}\n", exec_start(job)));
    s.push_str(
        "# Leave the CPU and the disk to whoever uses the PC.\n\
         Nice=10\n\
         IOSchedulingClass=idle\n",
    );
    s.push_str(&format!(
        "# A run stuck this long (dead network) is stopped before the next night; the next run resumes it.\n\
         TimeoutStartSec={TIMEOUT}\n"
    ));
    s
}

/// The text of `<name>.timer`.
pub(super) fn timer_text(job: &Job, name: &str) -> String {
    let (h, m) = job.at;
    let mut s = header(job);
    s.push_str(&format!(
        "\n[Unit]\nDescription=Nightly coffre backup at {} (local time)\n\
         \n[Timer]\nOnCalendar=*-*-* {h:02}:{m:02}:00\n\
         # A night missed (PC off or asleep) runs at the next boot or wake.\nPersistent=true\n\
         # Each PC starts at its own fixed offset within these minutes, so an association's\n\
         # PCs do not all reach the server at the same second.\n\
         RandomizedDelaySec={RANDOM_DELAY_MINUTES}min\nFixedRandomDelay=true\n\
         AccuracySec=1min\nUnit={name}.service\n\
         \n[Install]\nWantedBy=timers.target\n",
        time::format_time(job.at)
    ));
    s
}

/// The configuration a unit file was written for.
pub(super) fn marker_of(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix(MARKER))
}

/// `OnCalendar=*-*-* HH:MM:00` -> `(HH, MM)`.
pub(super) fn parse_at(timer: &str) -> Option<(u8, u8)> {
    let spec = timer
        .lines()
        .find_map(|l| l.trim().strip_prefix("OnCalendar=*-*-* "))?;
    let mut parts = spec.trim().split(':');
    let h = parts.next()?.parse().ok()?;
    let m = parts.next()?.parse().ok()?;
    (h < 24 && m < 60).then_some((h, m))
}

/// `systemctl show` output -> the value of `key` (None when empty or "n/a").
pub(super) fn property<'a>(show: &'a str, key: &str) -> Option<&'a str> {
    show.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "n/a" && *v != "0")
}

fn unit_dir(host: &Host, scope: Scope) -> Result<PathBuf, ScheduleError> {
    match scope {
        Scope::System => Ok(host.systemd_system_dir.clone()),
        Scope::User => host.systemd_user_dir.clone().ok_or_else(|| ScheduleError::BadPath {
            path: PathBuf::from("~/.config/systemd/user"),
            reason: "no home directory to put the user timer in: set HOME (or XDG_CONFIG_HOME), or use --system as root".into(),
        }),
    }
}

/// The names (without `.timer`) of this configuration's units in `dir`.
fn find_units(dir: &Path, target: &Target) -> Result<Vec<String>, ScheduleError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ScheduleError::Io {
                action: "read",
                path: dir.to_path_buf(),
                source,
                hint: String::new(),
            })
        }
    };
    let mut names = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".timer")) else {
            continue;
        };
        if !name.starts_with(job::BASE) {
            continue;
        }
        if let Some(text) = host::read_optional(&entry.path())? {
            if marker_of(&text) == Some(target.config_str.as_str()) {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The name for a new install: the usual one, unless a unit of that name
/// belongs to someone else (another configuration, or not written by us).
fn name_for(dir: &Path, target: &Target) -> Result<String, ScheduleError> {
    if let Some(existing) = find_units(dir, target)?.into_iter().next() {
        return Ok(existing);
    }
    let name = target.name();
    let taken = |n: &str| -> Result<bool, ScheduleError> {
        Ok(
            host::read_optional(&dir.join(format!("{n}.timer")))?.is_some()
                || host::read_optional(&dir.join(format!("{n}.service")))?.is_some(),
        )
    };
    if !taken(&name)? {
        return Ok(name);
    }
    let hashed = job::entry_name(false, &target.id);
    if hashed != name && !taken(&hashed)? {
        return Ok(hashed);
    }
    Err(ScheduleError::BadPath {
        path: dir.join(format!("{name}.timer")),
        reason: "a unit of that name exists and was not written for this configuration: remove or rename it".into(),
    })
}

/// Runs `systemctl [--user] args`; a failure becomes an error that says what to do.
fn systemctl(host: &Host, scope: Scope, args: &[&str]) -> Result<Ran, ScheduleError> {
    let mut full = Vec::with_capacity(args.len() + 2);
    if scope == Scope::User {
        full.push("--user");
    }
    full.push("--no-ask-password");
    full.extend_from_slice(args);
    let shown = host::show("systemctl", &full).replace(" --no-ask-password", "");
    let ran = host::run_tool(&host.systemctl, "systemctl", &shown, &full, None, || {
        format!("{}, yet its systemctl command is missing: install systemd's tools, or set COFFRE_SCHEDULER=cron", host.why)
    })?;
    if ran.ok() {
        return Ok(ran);
    }
    let detail = ran.reason();
    Err(ScheduleError::CommandFailed {
        hint: failure_hint(scope, &detail, host.systemd_booted),
        command: shown,
        detail,
    })
}

/// What to do when systemctl refuses, from what it said.
pub(super) fn failure_hint(scope: Scope, detail: &str, booted: bool) -> String {
    let d = detail.to_ascii_lowercase();
    if !booted {
        return "systemd is not running on this machine (no /run/systemd/system): unset COFFRE_SCHEDULER, or set it to cron".into();
    }
    match scope {
        Scope::User if d.contains("bus") || d.contains("xdg_runtime_dir") || d.contains("not been booted") => {
            "no user session to talk to: run it as the logged-in user in their own session (not through sudo or su), or as root with --system".into()
        }
        Scope::System if d.contains("access denied") || d.contains("authentication") || d.contains("permission") => {
            "run it as root (sudo), or without --system for your user only".into()
        }
        _ if d.contains("not been booted") || d.contains("host is down") => {
            "systemd is not running here: set COFFRE_SCHEDULER=cron to use cron instead".into()
        }
        Scope::User => "see `systemctl --user status` and `journalctl --user -xe`".into(),
        Scope::System => "see `systemctl status` and `journalctl -xe`".into(),
    }
}

fn write_hint(scope: Scope) -> &'static str {
    match scope {
        Scope::System => "; run it as root (sudo), or without --system for your user only",
        Scope::User => "",
    }
}

fn linger_sentence(host: &Host, scope: Scope) -> Option<String> {
    if scope != Scope::User {
        return None;
    }
    let user = host.user.as_deref();
    let lingering = user.is_some_and(|u| host.linger_dir.join(u).exists());
    Some(if lingering {
        format!(
            "Lingering is on for {}: the timer runs even when nobody is logged in.",
            user.unwrap_or("you")
        )
    } else {
        format!(
            "A user timer runs only while you are logged in; to run it when nobody is, run `loginctl enable-linger {}` (as root if it asks).",
            user.unwrap_or("$USER")
        )
    })
}

fn power_sentence(on_battery: bool) -> &'static str {
    if on_battery {
        "It runs on battery too."
    } else {
        "It starts only on mains power (ConditionACPower=true): a night the PC runs on battery is skipped."
    }
}

fn log_sentence(scope: Scope, name: &str) -> String {
    let user = if scope == Scope::User { " --user" } else { "" };
    format!("Logs: `journalctl{user} -u {name}.service`, and the log file written by `coffre backup --scheduled`.")
}

pub(super) fn install(host: &Host, job: &Job) -> Result<Installed, ScheduleError> {
    let scope = job.target.scope;
    // systemd refuses an executable whose path holds a quote or a backslash
    // ("Executable name contains special characters"), however escaped.
    if job.exe_str.contains(['"', '\'', '\\']) {
        return Err(ScheduleError::BadPath {
            path: job.exe_str.clone().into(),
            reason: "systemd cannot run a program whose path holds a quote or a backslash: install coffre elsewhere (e.g. /usr/local/bin) and run it from there".into(),
        });
    }
    let dir = unit_dir(host, scope)?;
    let name = name_for(&dir, &job.target)?;
    let service = dir.join(format!("{name}.service"));
    let timer = dir.join(format!("{name}.timer"));
    let old_service = host::read_optional(&service)?;
    let old_timer = host::read_optional(&timer)?;
    let replaced = old_timer.is_some();
    let created_dirs = host::missing_dirs(&dir);

    // Puts the directory back as it was; says what it did.
    let undo = || -> String {
        let mut ok = true;
        for (path, old) in [(&service, &old_service), (&timer, &old_timer)] {
            ok &= match old {
                Some(text) => host::write_file(path, text.as_bytes(), "").is_ok(),
                None => host::remove_file(path, "").is_ok(),
            };
        }
        host::remove_empty_dirs(&created_dirs);
        let _ = systemctl(host, scope, &["daemon-reload"]);
        match (ok, replaced) {
            (true, false) => "the unit files were removed again".into(),
            (true, true) => "the previous unit files were put back".into(),
            (false, _) => format!(
                "could not undo the changes to {} and {}: remove them by hand",
                service.display(),
                timer.display()
            ),
        }
    };

    let hint = write_hint(scope);
    if let Err(e) = host::write_file(&service, service_text(job).as_bytes(), hint)
        .and_then(|()| host::write_file(&timer, timer_text(job, &name).as_bytes(), hint))
    {
        undo();
        return Err(e);
    }
    let timer_unit = format!("{name}.timer");
    // daemon-reload re-arms a running timer with the new time; `enable
    // --now` starts it the first time. (No restart: stopping and starting a
    // persistent timer can fire it at once.)
    for args in [
        &["daemon-reload"][..],
        &["enable", "--now", "--quiet", &timer_unit],
    ] {
        if let Err(e) = systemctl(host, scope, args) {
            return Err(e.with_note(&undo()));
        }
    }

    let next_run = systemctl(
        host,
        scope,
        &["show", &timer_unit, "-p", "NextElapseUSecRealtime"],
    )
    .ok()
    .and_then(|r| property(&r.stdout, "NextElapseUSecRealtime").map(str::to_string));
    let mut detail = vec![
        format!(
            "The backup runs every day at {} local time, up to {RANDOM_DELAY_MINUTES} minutes later (each PC keeps its own offset, so they do not all reach the server at once).",
            time::format_time(job.at)
        ),
        "A night missed because the PC was off or asleep runs at the next boot or wake (Persistent=true).".into(),
        power_sentence(job.on_battery).into(),
    ];
    detail.extend(linger_sentence(host, scope));
    detail.push(log_sentence(scope, &name));
    Ok(Installed {
        backend: backend(scope),
        name: timer_unit,
        files: vec![service, timer],
        at: job.at,
        next_run,
        replaced,
        detail: detail.join("\n"),
    })
}

pub(super) fn remove(host: &Host, target: &Target) -> Result<Removed, ScheduleError> {
    let scope = target.scope;
    let dir = unit_dir(host, scope)?;
    let names = find_units(&dir, target)?;
    if names.is_empty() {
        return Ok(Removed {
            backend: Some(backend(scope)),
            removed: false,
            names,
            files: Vec::new(),
            detail: format!(
                "No nightly backup of {} is scheduled (no coffre timer for it in {}).",
                target.config_str,
                dir.display()
            ),
        });
    }
    let mut files = Vec::new();
    let mut notes = Vec::new();
    let mut reached = true;
    for name in &names {
        let timer_unit = format!("{name}.timer");
        if let Err(e) = systemctl(host, scope, &["disable", "--now", "--quiet", &timer_unit]) {
            // No manager to talk to: undo `enable` by hand, so nothing
            // starts the timer again; a running manager forgets it at reload.
            reached = false;
            notes.push(format!("{e}; removed the files and the enable link directly, the timer stops at the next reboot or daemon-reload"));
            host::remove_file(
                &dir.join("timers.target.wants").join(&timer_unit),
                write_hint(scope),
            )?;
        }
        for file in [format!("{name}.timer"), format!("{name}.service")] {
            let path = dir.join(file);
            if host::remove_file(&path, write_hint(scope))? {
                files.push(path);
            }
        }
    }
    if reached {
        let _ = systemctl(host, scope, &["daemon-reload"]);
        notes.push("Timer stopped and removed; a backup running right now finishes.".into());
    }
    Ok(Removed {
        backend: Some(backend(scope)),
        removed: true,
        names: names.iter().map(|n| format!("{n}.timer")).collect(),
        files,
        detail: notes.join("\n"),
    })
}

pub(super) fn status(host: &Host, target: &Target) -> Result<Status, ScheduleError> {
    let scope = target.scope;
    let dir = unit_dir(host, scope)?;
    let Some(name) = find_units(&dir, target)?.into_iter().next() else {
        return Ok(Status {
            backend: Some(backend(scope)),
            installed: false,
            name: None,
            at: None,
            next_run: None,
            last_run: None,
            on_battery: None,
            files: Vec::new(),
            detail: format!(
                "No nightly backup of {} is scheduled: run `coffre schedule install`.",
                target.config_str
            ),
        });
    };
    let timer = dir.join(format!("{name}.timer"));
    let service = dir.join(format!("{name}.service"));
    let at = host::read_optional(&timer)?.as_deref().and_then(parse_at);
    let on_battery = host::read_optional(&service)?
        .as_deref()
        .map(|s| !s.lines().any(|l| l.trim() == AC_ONLY));
    let timer_unit = format!("{name}.timer");
    let mut detail = Vec::new();
    let (mut next_run, mut last_run) = (None, None);
    let props = "-pNextElapseUSecRealtime,LastTriggerUSec,ActiveState,UnitFileState";
    match systemctl(host, scope, &["show", &timer_unit, props]) {
        Ok(r) => {
            next_run = property(&r.stdout, "NextElapseUSecRealtime").map(str::to_string);
            last_run = property(&r.stdout, "LastTriggerUSec").map(str::to_string);
            let enabled = property(&r.stdout, "UnitFileState").unwrap_or("unknown");
            let active = property(&r.stdout, "ActiveState").unwrap_or("unknown");
            if enabled == "enabled" && active == "active" {
                detail.push("The timer is enabled and active.".to_string());
            } else {
                detail.push(format!(
                    "The timer is {enabled} and {active}: it will not run; run `coffre schedule install` again to switch it on."
                ));
            }
            if let Ok(s) = systemctl(
                host,
                scope,
                &["show", &format!("{name}.service"), "-pActiveState,Result"],
            ) {
                if property(&s.stdout, "ActiveState") == Some("activating") {
                    detail.push("A backup is running now.".into());
                } else if let (Some(_), Some(result)) = (&last_run, property(&s.stdout, "Result")) {
                    if result != "success" {
                        detail.push(format!(
                            "The last run failed ({result}): see the logs below."
                        ));
                    }
                }
            }
        }
        Err(e) => detail.push(format!(
            "The unit files are there but systemd could not be asked about them: {e}."
        )),
    }
    detail.push(
        "A night missed because the PC was off or asleep runs at the next boot or wake.".into(),
    );
    if let Some(on_battery) = on_battery {
        detail.push(power_sentence(on_battery).into());
    }
    detail.extend(linger_sentence(host, scope));
    detail.push(log_sentence(scope, &name));
    Ok(Status {
        backend: Some(backend(scope)),
        installed: true,
        name: Some(timer_unit),
        at,
        next_run,
        last_run,
        on_battery,
        files: vec![service, timer],
        detail: detail.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::host::{testing, Family};
    use super::*;

    fn job_in(root: &Path, config: &str, at: (u8, u8), scope: Scope) -> (Host, Job) {
        let host = testing::host(root, Family::Systemd);
        let plan = testing::plan(root, config, at, scope);
        let job = Job::new(&host, &plan).unwrap();
        (host, job)
    }

    fn ls(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = match std::fs::read_dir(dir) {
            Ok(d) => d
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    #[test]
    fn exec_words_are_quoted_and_escaped_for_systemd() {
        assert_eq!(exec_word("/usr/bin/coffre", true), "/usr/bin/coffre");
        assert_eq!(exec_word("--scheduled", false), "--scheduled");
        assert_eq!(
            exec_word("/home/a b/config.toml", false),
            "\"/home/a b/config.toml\""
        );
        assert_eq!(exec_word("/x/100%/c", false), "/x/100%%/c");
        assert_eq!(exec_word("/x/$HOME/c", false), "/x/$$HOME/c");
        assert_eq!(exec_word("/x/$HOME/c", true), "/x/$HOME/c");
        assert_eq!(
            exec_word("/x/say \"hi\"\\", false),
            "\"/x/say \\\"hi\\\"\\\\\""
        );
        assert_eq!(exec_word("/x/it's", false), "\"/x/it's\"");
        assert_eq!(
            exec_word("/Users/José/config.toml", false),
            "/Users/José/config.toml"
        );
        assert_eq!(exec_word("", false), "\"\"");
    }

    #[test]
    fn ac_only_is_a_condition_of_the_service_read_back_by_status() {
        let dir = tempfile::tempdir().unwrap();
        let (host, job) = job_in(dir.path(), "config.toml", (2, 5), Scope::User);
        assert!(!service_text(&job).contains("ConditionACPower"));
        let ac_only = Job {
            on_battery: false,
            ..job.clone()
        };
        let service = service_text(&ac_only);
        let unit = &service[service.find("[Unit]").unwrap()..service.find("[Service]").unwrap()];
        assert!(unit.contains("\nConditionACPower=true\n"), "{service}");
        // status reads it from the unit file (systemctl absent: still a status).
        let units = unit_dir(&host, Scope::User).unwrap();
        std::fs::create_dir_all(&units).unwrap();
        std::fs::write(units.join("coffre-backup.service"), &service).unwrap();
        std::fs::write(
            units.join("coffre-backup.timer"),
            timer_text(&ac_only, "coffre-backup"),
        )
        .unwrap();
        let st = status(&host, &ac_only.target).unwrap();
        assert_eq!((st.installed, st.on_battery), (true, Some(false)), "{st:?}");
        assert!(st.detail.contains("ConditionACPower=true"), "{}", st.detail);
    }

    #[test]
    fn units_say_what_the_contract_says() {
        let dir = tempfile::tempdir().unwrap();
        let (_, job) = job_in(dir.path(), "config.toml", (2, 5), Scope::User);
        let service = service_text(&job);
        let exe = exec_word(&job.exe_str, true);
        assert!(
            exe.starts_with('"'),
            "the test program's directory has a space: {exe}"
        );
        assert!(
            service.contains(&format!(
                "\nExecStart={exe} backup --config {} --scheduled\n",
                exec_word(&job.target.config_str, false)
            )),
            "{service}"
        );
        for line in [
            "Type=oneshot",
            "Nice=10",
            "IOSchedulingClass=idle",
            "TimeoutStartSec=12h",
            "After=network.target",
        ] {
            assert!(
                service.lines().any(|l| l == line),
                "{line} missing from:\n{service}"
            );
        }
        assert!(!service.contains("User=root"));
        assert_eq!(marker_of(&service), Some(job.target.config_str.as_str()));

        let timer = timer_text(&job, "coffre-backup");
        for line in [
            "OnCalendar=*-*-* 02:05:00",
            "Persistent=true",
            "RandomizedDelaySec=10min",
            "FixedRandomDelay=true",
            "Unit=coffre-backup.service",
            "WantedBy=timers.target",
        ] {
            assert!(
                timer.lines().any(|l| l == line),
                "{line} missing from:\n{timer}"
            );
        }
        assert_eq!(parse_at(&timer), Some((2, 5)));
        assert_eq!(marker_of(&timer), Some(job.target.config_str.as_str()));

        let (_, job) = job_in(dir.path(), "config.toml", (23, 59), Scope::System);
        let service = service_text(&job);
        assert!(
            service.contains("\nUser=root\n")
                && service.contains("\nWants=network-online.target\n")
        );
        assert_eq!(parse_at(&timer_text(&job, "x")), Some((23, 59)));
    }

    #[test]
    fn parses_systemctl_show() {
        let show = "NextElapseUSecRealtime=Tue 2026-11-24 02:04:12 CET\nLastTriggerUSec=n/a\nActiveState=active\nUnitFileState=\n";
        assert_eq!(
            property(show, "NextElapseUSecRealtime"),
            Some("Tue 2026-11-24 02:04:12 CET")
        );
        assert_eq!(property(show, "LastTriggerUSec"), None);
        assert_eq!(property(show, "ActiveState"), Some("active"));
        assert_eq!(property(show, "UnitFileState"), None);
        assert_eq!(property(show, "Active"), None, "a prefix is not a key");
        assert_eq!(parse_at("OnCalendar=*-*-* 25:00:00"), None);
        assert_eq!(parse_at("OnCalendar=daily"), None);
    }

    #[test]
    fn failure_hints_say_what_to_do() {
        let h = failure_hint(
            Scope::User,
            "Failed to connect to bus: No medium found",
            true,
        );
        assert!(
            h.contains("not through sudo or su") && h.contains("--system"),
            "{h}"
        );
        let h = failure_hint(Scope::System, "Failed to enable unit: Access denied", true);
        assert!(h.contains("as root"), "{h}");
        let h = failure_hint(
            Scope::System,
            "System has not been booted with systemd as init system (PID 1). Can't operate.",
            true,
        );
        assert!(h.contains("COFFRE_SCHEDULER=cron"), "{h}");
        let h = failure_hint(
            Scope::User,
            "Failed to connect to bus: No medium found",
            false,
        );
        assert!(h.contains("systemd is not running on this machine"), "{h}");
    }

    #[test]
    fn absent_systemctl_is_a_clear_error_and_leaves_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let (host, job) = job_in(dir.path(), "config.toml", (2, 0), Scope::User);
        let e = install(&host, &job).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ScheduleError::ToolMissing { .. }), "{text}");
        assert!(
            text.starts_with("systemctl not found") && text.contains("removed again"),
            "{text}"
        );
        assert!(!text.contains('\n'));
        assert!(
            !dir.path().join("xdg-config").exists(),
            "the directories it made are gone too"
        );
    }

    #[cfg(unix)]
    #[test]
    fn failing_systemctl_puts_the_previous_units_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut host, job) = job_in(dir.path(), "config.toml", (2, 0), Scope::User);
        let units = host.systemd_user_dir.clone().unwrap();
        std::fs::create_dir_all(&units).unwrap();
        let old_timer = timer_text(&job, "coffre-backup").replace("02:00:00", "03:00:00");
        std::fs::write(units.join("coffre-backup.timer"), &old_timer).unwrap();
        std::fs::write(units.join("coffre-backup.service"), "old service\n").unwrap();
        // `false`, a real program that fails without a word.
        host.systemctl = "false".into();
        let text = install(&host, &job).unwrap_err().to_string();
        assert!(
            text.starts_with("systemctl --user daemon-reload failed: it exited with"),
            "{text}"
        );
        assert!(text.contains("previous unit files were put back"), "{text}");
        assert_eq!(
            std::fs::read_to_string(units.join("coffre-backup.timer")).unwrap(),
            old_timer
        );
        assert_eq!(
            std::fs::read_to_string(units.join("coffre-backup.service")).unwrap(),
            "old service\n"
        );
        assert_eq!(ls(&units), ["coffre-backup.service", "coffre-backup.timer"]);
    }

    /// The real `systemctl` of a machine without systemd (like the build
    /// machine this was written on): the error must say what to do.
    #[test]
    fn real_systemctl_without_systemd_running() {
        if Path::new("/run/systemd/system").exists() {
            outln!("skipped: systemd runs here, and this test must not talk to the real service manager");
            return;
        }
        if host::run("systemctl".as_ref(), &["--version"], None).is_err() {
            outln!("skipped: no systemctl program on this machine");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (mut host, job) = job_in(dir.path(), "work.toml", (2, 0), Scope::User);
        host.systemctl = "systemctl".into();
        host.systemd_booted = false;
        let text = install(&host, &job).unwrap_err().to_string();
        assert!(
            text.starts_with("systemctl --user daemon-reload failed: "),
            "{text}"
        );
        assert!(
            text.contains("systemd is not running on this machine"),
            "{text}"
        );
        assert!(text.contains("removed again"), "{text}");
        outln!("{text}");
        assert_eq!(
            ls(host.systemd_user_dir.as_ref().unwrap()),
            Vec::<String>::new()
        );
    }

    /// The whole cycle with a stand-in `systemctl` that records its
    /// arguments (the real one would act on the real machine's manager).
    #[cfg(unix)]
    #[test]
    fn install_status_remove_with_a_recording_systemctl() {
        let dir = tempfile::tempdir().unwrap();
        let (mut host, job) = job_in(dir.path(), "work.toml", (1, 30), Scope::User);
        let log = dir.path().join("systemctl.log");
        let show = "NextElapseUSecRealtime=Wed 2026-11-25 01:34:00 CET\nLastTriggerUSec=n/a\nActiveState=active\nUnitFileState=enabled";
        host.systemctl = testing::script(
            &dir.path().join("bin/systemctl"),
            &format!(
                "echo \"$*\" >> '{}'\ncase \"$*\" in *show*) printf '%s\\n' '{show}';; esac",
                log.display()
            ),
        );
        let name = format!("coffre-backup-{}", job.target.id);
        let installed = install(&host, &job).unwrap();
        assert_eq!(installed.backend, Backend::SystemdUser);
        assert_eq!(installed.name, format!("{name}.timer"));
        assert_eq!(
            installed.next_run.as_deref(),
            Some("Wed 2026-11-25 01:34:00 CET")
        );
        assert!(!installed.replaced);
        assert!(
            installed.detail.contains("loginctl enable-linger member"),
            "{}",
            installed.detail
        );
        let units = host.systemd_user_dir.clone().unwrap();
        assert_eq!(
            ls(&units),
            [format!("{name}.service"), format!("{name}.timer")]
        );
        assert_eq!(
            installed.files,
            [
                units.join(format!("{name}.service")),
                units.join(format!("{name}.timer"))
            ]
        );

        // A foreign unit beside ours is never touched.
        std::fs::write(
            units.join("coffre-backup-other.timer"),
            "[Timer]\nOnCalendar=daily\n",
        )
        .unwrap();
        std::fs::create_dir_all(&host.linger_dir).unwrap();
        std::fs::write(host.linger_dir.join("member"), "").unwrap();

        let st = status(&host, &job.target).unwrap();
        assert!(st.installed);
        assert_eq!(st.at, Some((1, 30)));
        assert_eq!(st.next_run.as_deref(), Some("Wed 2026-11-25 01:34:00 CET"));
        assert_eq!(st.last_run, None);
        assert!(
            st.detail.contains("enabled and active") && st.detail.contains("Lingering is on"),
            "{}",
            st.detail
        );

        // Installing again replaces (new time) under the same name.
        let again = Job {
            at: (4, 0),
            ..job.clone()
        };
        assert!(install(&host, &again).unwrap().replaced);
        assert_eq!(status(&host, &job.target).unwrap().at, Some((4, 0)));

        let removed = remove(&host, &job.target).unwrap();
        assert!(removed.removed);
        assert_eq!(removed.names, [format!("{name}.timer")]);
        assert_eq!(ls(&units), ["coffre-backup-other.timer"]);
        assert!(!remove(&host, &job.target).unwrap().removed);
        assert!(!status(&host, &job.target).unwrap().installed);

        let calls = std::fs::read_to_string(&log).unwrap();
        let t = format!("{name}.timer");
        let expected = [
            "--user --no-ask-password daemon-reload".to_string(),
            format!("--user --no-ask-password enable --now --quiet {t}"),
            format!("--user --no-ask-password show {t} -p NextElapseUSecRealtime"),
        ];
        let lines: Vec<&str> = calls.lines().collect();
        assert_eq!(lines[..3], expected, "{calls}");
        assert!(
            lines.contains(&format!("--user --no-ask-password disable --now --quiet {t}").as_str()),
            "{calls}"
        );
    }

    #[test]
    fn remove_without_a_manager_deletes_the_files_and_the_enable_link() {
        let dir = tempfile::tempdir().unwrap();
        let (host, job) = job_in(dir.path(), "config.toml", (2, 0), Scope::System);
        let units = host.systemd_system_dir.clone();
        std::fs::create_dir_all(units.join("timers.target.wants")).unwrap();
        std::fs::write(
            units.join("coffre-backup.timer"),
            timer_text(&job, "coffre-backup"),
        )
        .unwrap();
        std::fs::write(units.join("coffre-backup.service"), service_text(&job)).unwrap();
        std::fs::write(
            units.join("timers.target.wants/coffre-backup.timer"),
            "link",
        )
        .unwrap();
        let st = status(&host, &job.target).unwrap();
        assert!(st.installed && st.at == Some((2, 0)));
        assert!(st.detail.contains("could not be asked"), "{}", st.detail);
        assert!(!st.detail.contains("linger"));
        let removed = remove(&host, &job.target).unwrap();
        assert!(removed.removed && removed.files.len() == 2);
        assert!(
            removed
                .detail
                .contains("removed the files and the enable link directly"),
            "{}",
            removed.detail
        );
        assert_eq!(ls(&units), ["timers.target.wants"]);
        assert_eq!(ls(&units.join("timers.target.wants")), Vec::<String>::new());
    }

    #[test]
    fn a_unit_of_the_same_name_for_another_config_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (host, job) = job_in(dir.path(), "config.toml", (2, 0), Scope::User);
        assert!(job.target.is_default);
        let units = host.systemd_user_dir.clone().unwrap();
        std::fs::create_dir_all(&units).unwrap();
        std::fs::write(units.join("coffre-backup.timer"), "# hand-written\n").unwrap();
        assert_eq!(
            name_for(&units, &job.target).unwrap(),
            format!("coffre-backup-{}", job.target.id)
        );
    }

    /// systemd's own parser reads our units back: `systemd-analyze verify`
    /// checks the syntax and that ExecStart names an executable file, which
    /// catches a quoting or escaping mistake in a program path with spaces,
    /// `%` and `$` (quotes and backslashes systemd refuses in a program path:
    /// see the next test).
    #[cfg(unix)]
    #[test]
    fn systemd_analyze_verify_accepts_the_units() {
        if host::run("systemd-analyze".as_ref(), &["--version"], None).is_err() {
            outln!("skipped: systemd-analyze is not installed here");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (_, mut job) = job_in(
            dir.path(),
            "it's \"odd\" \\ 100% $HOME.toml",
            (2, 0),
            Scope::User,
        );
        let exe = dir.path().join("odd dir 100% $HOME é");
        testing::script(&exe.join("coffre"), "exit 0");
        job.exe_str = exe.join("coffre").to_str().unwrap().to_string();
        let units = dir.path().join("units");
        std::fs::create_dir_all(&units).unwrap();
        std::fs::write(units.join("coffre-backup.service"), service_text(&job)).unwrap();
        std::fs::write(
            units.join("coffre-backup.timer"),
            timer_text(&job, "coffre-backup"),
        )
        .unwrap();
        let paths: Vec<String> = ["coffre-backup.service", "coffre-backup.timer"]
            .iter()
            .map(|f| units.join(f).display().to_string())
            .collect();
        let r = host::run(
            "systemd-analyze".as_ref(),
            &["verify", "--man=no", &paths[0], &paths[1]],
            None,
        )
        .unwrap();
        let said = format!("{}{}", r.stdout, r.stderr);
        // The only acceptable remark: an older systemd not knowing FixedRandomDelay.
        let remarks: Vec<&str> = said
            .lines()
            .filter(|l| !l.contains("FixedRandomDelay"))
            .collect();
        assert!(
            r.ok() && remarks.is_empty(),
            "systemd-analyze verify said:\n{said}"
        );

        // And a program path it would refuse is refused up front, clearly.
        let (host, mut job) = job_in(dir.path(), "config.toml", (2, 0), Scope::User);
        job.exe_str = "/opt/it's/coffre".into();
        let text = install(&host, &job).unwrap_err().to_string();
        assert!(text.contains("quote or a backslash"), "{text}");
    }
}
