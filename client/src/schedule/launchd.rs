//! macOS launchd: a property list with `StartCalendarInterval`, as a
//! LaunchAgent (`~/Library/LaunchAgents/`, runs while the user is logged in)
//! or a LaunchDaemon (`/Library/LaunchDaemons/`, runs as root), loaded with
//! `launchctl bootstrap`. launchd starts a run missed while the Mac slept at
//! wake; a run missed while it was off is skipped.
//!
//! The plist is found again by its label (`coffre.backup`, or
//! `coffre.backup.<id>` for another configuration) and recognised as ours by
//! the configuration path among its program arguments.

use std::path::PathBuf;

use super::host::{self, Host, Ran};
use super::job::{Job, Target};
use super::{time, Backend, Installed, Removed, ScheduleError, Scope, Status};

fn backend(scope: Scope) -> Backend {
    match scope {
        Scope::User => Backend::LaunchdAgent,
        Scope::System => Backend::LaunchdDaemon,
    }
}

/// `coffre.backup` for the default configuration, `coffre.backup.<id>` otherwise.
pub(super) fn label(target: &Target) -> String {
    if target.is_default {
        "coffre.backup".into()
    } else {
        format!("coffre.backup.{}", target.id)
    }
}

/// Text for an XML element or attribute.
pub(super) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The property list for a job.
pub(super) fn plist_text(job: &Job, label: &str) -> String {
    let mut args = format!("\t\t<string>{}</string>\n", xml_escape(&job.exe_str));
    for a in job.args() {
        args.push_str(&format!("\t\t<string>{}</string>\n", xml_escape(a)));
    }
    let (h, m) = job.at;
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Written by `coffre schedule install`: the nightly coffre backup. Remove with `coffre schedule remove`. -->
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{label}</string>
	<key>ProgramArguments</key>
	<array>
{args}	</array>
	<key>StartCalendarInterval</key>
	<dict>
		<key>Hour</key>
		<integer>{h}</integer>
		<key>Minute</key>
		<integer>{m}</integer>
	</dict>
	<key>RunAtLoad</key>
	<false/>
	<key>ProcessType</key>
	<string>Background</string>
	<key>LowPriorityIO</key>
	<true/>
	<key>Nice</key>
	<integer>10</integer>
</dict>
</plist>
"#,
        label = xml_escape(label),
    )
}

/// Whether a plist runs a backup of `config`.
pub(super) fn is_for(plist: &str, config: &str) -> bool {
    plist.contains(&format!("<string>{}</string>", xml_escape(config)))
}

/// `(Hour, Minute)` of `StartCalendarInterval`.
pub(super) fn parse_at(plist: &str) -> Option<(u8, u8)> {
    let int_after = |key: &str| -> Option<u8> {
        let rest = &plist[plist.find(&format!("<key>{key}</key>"))?..];
        let start = rest.find("<integer>")? + "<integer>".len();
        let end = rest[start..].find("</integer>")? + start;
        rest[start..end].trim().parse().ok()
    };
    let (h, m) = (int_after("Hour")?, int_after("Minute")?);
    (h < 24 && m < 60).then_some((h, m))
}

fn plist_path(host: &Host, target: &Target) -> Result<PathBuf, ScheduleError> {
    let dir = match target.scope {
        Scope::System => host.launch_daemons_dir.clone(),
        Scope::User => host
            .launch_agents_dir
            .clone()
            .ok_or_else(|| ScheduleError::BadPath {
                path: PathBuf::from("~/Library/LaunchAgents"),
                reason: "no home directory for the launch agent: set HOME, or use --system as root"
                    .into(),
            })?,
    };
    Ok(dir.join(format!("{}.plist", label(target))))
}

/// `gui/<uid>` for an agent, `system` for a daemon.
fn domain(scope: Scope) -> Result<String, ScheduleError> {
    match scope {
        Scope::System => Ok("system".into()),
        Scope::User => host::numeric_uid()
            .map(|uid| format!("gui/{uid}"))
            .ok_or_else(|| ScheduleError::CommandFailed {
                command: "id -u".into(),
                detail: "no user id".into(),
                hint: "run it as the logged-in user".into(),
            }),
    }
}

fn launchctl(host: &Host, args: &[&str]) -> Result<Ran, ScheduleError> {
    let shown = host::show("launchctl", args);
    let ran = host::run_tool(&host.launchctl, "launchctl", &shown, args, None, || {
        format!("{}, but launchd's launchctl is missing: launchd exists only on macOS; set COFFRE_SCHEDULER to another scheduler", host.why)
    })?;
    if ran.ok() {
        return Ok(ran);
    }
    Err(ScheduleError::CommandFailed {
        command: shown,
        detail: ran.reason(),
        hint: "run it in the user's own desktop session (not over ssh or through sudo), or as root with --system".into(),
    })
}

const SLEEP: &str = "A night missed while the Mac was asleep runs when it wakes; a night missed while it was off is skipped.";
const DISK_ACCESS: &str = "Give the coffre program Full Disk Access (System Settings > Privacy & Security > Full Disk Access), or macOS hides Documents, Desktop, Mail and more from the backup.";

pub(super) fn install(host: &Host, job: &Job) -> Result<Installed, ScheduleError> {
    let scope = job.target.scope;
    let path = plist_path(host, &job.target)?;
    let label = label(&job.target);
    let old = host::read_optional(&path)?;
    if old
        .as_deref()
        .is_some_and(|o| !is_for(o, &job.target.config_str))
    {
        return Err(ScheduleError::BadPath {
            path,
            reason: "a launchd job of that name exists for something else: remove or rename it"
                .into(),
        });
    }
    let domain = domain(scope)?;
    let hint = if scope == Scope::System {
        "; run it as root (sudo), or without --system"
    } else {
        ""
    };
    host::write_file(&path, plist_text(job, &label).as_bytes(), hint)?;
    let path_str = path.to_string_lossy().into_owned();
    // Unload a previous version (absent is fine), then load the new one.
    let was_loaded = launchctl(host, &["bootout", &format!("{domain}/{label}")]).is_ok();
    let mut loaded = launchctl(host, &["bootstrap", &domain, &path_str]);
    // `bootout` finishes asynchronously: right after it, `bootstrap` can
    // fail with "5: Input/output error". Wait and try again.
    for _ in 0..3 {
        if !was_loaded || !matches!(loaded, Err(ScheduleError::CommandFailed { .. })) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        loaded = launchctl(host, &["bootstrap", &domain, &path_str]);
    }
    if let Err(e) = loaded {
        let undone = match &old {
            Some(text) => host::write_file(&path, text.as_bytes(), "").is_ok(),
            None => host::remove_file(&path, "").is_ok(),
        };
        let note = if undone {
            "the plist was put back as it was"
        } else {
            "remove the plist by hand"
        };
        return Err(e.with_note(note));
    }
    Ok(Installed {
        backend: backend(scope),
        name: label,
        files: vec![path],
        at: job.at,
        next_run: None,
        replaced: old.is_some(),
        detail: [
            format!(
                "The backup runs every day at {} local time.",
                time::format_time(job.at)
            ),
            SLEEP.into(),
            DISK_ACCESS.into(),
        ]
        .join("\n"),
    })
}

pub(super) fn remove(host: &Host, target: &Target) -> Result<Removed, ScheduleError> {
    let path = plist_path(host, target)?;
    let label = label(target);
    let ours = host::read_optional(&path)?.is_some_and(|t| is_for(&t, &target.config_str));
    if !ours {
        return Ok(Removed {
            backend: Some(backend(target.scope)),
            removed: false,
            names: Vec::new(),
            files: Vec::new(),
            detail: format!(
                "No nightly backup of {} is scheduled (no {}).",
                target.config_str,
                path.display()
            ),
        });
    }
    let mut detail = "Unloaded and removed; a backup running right now finishes.".to_string();
    if let Err(e) = launchctl(
        host,
        &["bootout", &format!("{}/{label}", domain(target.scope)?)],
    ) {
        detail = format!("Removed the plist; launchd was not asked to unload it ({e}): it is gone at next login or reboot.");
    }
    host::remove_file(&path, "")?;
    Ok(Removed {
        backend: Some(backend(target.scope)),
        removed: true,
        names: vec![label],
        files: vec![path],
        detail,
    })
}

pub(super) fn status(host: &Host, target: &Target) -> Result<Status, ScheduleError> {
    let path = plist_path(host, target)?;
    let label = label(target);
    let text = host::read_optional(&path)?.filter(|t| is_for(t, &target.config_str));
    let Some(text) = text else {
        return Ok(Status {
            backend: Some(backend(target.scope)),
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
    let loaded = domain(target.scope)
        .is_ok_and(|d| launchctl(host, &["print", &format!("{d}/{label}")]).is_ok());
    let first = if loaded {
        "launchd has the job loaded.".to_string()
    } else {
        "The plist is there but launchd has not loaded it: run `coffre schedule install` again."
            .to_string()
    };
    Ok(Status {
        backend: Some(backend(target.scope)),
        installed: true,
        name: Some(label),
        at: parse_at(&text),
        next_run: None,
        last_run: None,
        on_battery: None,
        files: vec![path],
        detail: [first, SLEEP.into(), DISK_ACCESS.into()].join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::host::{testing, Family};
    use super::*;

    #[test]
    fn plist_runs_the_contract_command() {
        let dir = tempfile::tempdir().unwrap();
        let host = testing::host(dir.path(), Family::Launchd);
        let mut plan = testing::plan(dir.path(), "a&b's.toml", (3, 7), Scope::User);
        plan.exe = dir.path().join("bin dir/coffre");
        let job = Job::new(&host, &plan).unwrap();
        assert!(!job.target.is_default);
        let l = label(&job.target);
        assert_eq!(l, format!("coffre.backup.{}", job.target.id));
        let text = plist_text(&job, &l);
        let expected_args = format!(
            "\t<array>\n\t\t<string>{}</string>\n\t\t<string>backup</string>\n\t\t<string>--config</string>\n\t\t<string>{}</string>\n\t\t<string>--scheduled</string>\n\t</array>\n",
            job.exe_str,
            xml_escape(&job.target.config_str)
        );
        assert!(text.contains(&expected_args), "{text}");
        assert!(text.contains("a&amp;b&apos;s.toml"));
        assert_eq!(
            xml_escape(r#"<a & "b">'"#),
            "&lt;a &amp; &quot;b&quot;&gt;&apos;"
        );
        assert!(text.contains("<key>StartCalendarInterval</key>"));
        assert!(text.contains("<key>LowPriorityIO</key>\n\t<true/>"));
        assert_eq!(parse_at(&text), Some((3, 7)));
        assert!(is_for(&text, &job.target.config_str));
        assert!(!is_for(&text, "/other/config.toml"));
        assert!(
            !text.contains("--\n") && text.matches("<!--").count() == 1,
            "one comment, no stray --"
        );
    }

    #[test]
    fn absent_launchctl_is_a_clear_error_and_leaves_no_plist() {
        let dir = tempfile::tempdir().unwrap();
        let host = testing::host(dir.path(), Family::Launchd);
        let plan = testing::plan(dir.path(), "config.toml", (2, 0), Scope::System);
        let job = Job::new(&host, &plan).unwrap();
        assert_eq!(label(&job.target), "coffre.backup");
        let text = install(&host, &job).unwrap_err().to_string();
        assert!(
            text.starts_with("launchctl not found") && text.contains("put back"),
            "{text}"
        );
        assert_eq!(
            std::fs::read_dir(&host.launch_daemons_dir).unwrap().count(),
            0
        );
        let st = status(&host, &job.target).unwrap();
        assert!(!st.installed);
        assert!(!remove(&host, &job.target).unwrap().removed);
    }
}
