//! Windows Task Scheduler: a task `coffre-backup` (or `coffre-backup-<id>`)
//! registered with `schtasks /Create /XML`, because the plain `schtasks`
//! switches cannot set "run as soon as possible after a scheduled start is
//! missed" (`StartWhenAvailable`). [`Scope::User`] runs it as the user while
//! they are logged on; [`Scope::System`] as SYSTEM whether anyone is logged
//! on or not (needs an administrator prompt).

use coffre_core::civil_from_days;

use super::host::{self, Host, Ran};
use super::job::{Job, Target};
use super::launchd::xml_escape;
use super::systemd::{RANDOM_DELAY_MINUTES, TIMEOUT};
use super::{time, Backend, Installed, Removed, ScheduleError, Scope, Status};

/// One argument for a Windows command line, quoted the way
/// `CommandLineToArgvW` (and Rust's `std::env::args`) reads it back.
pub(super) fn win_arg(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '\n', '"']) {
        return arg.to_string();
    }
    let mut out = String::from('"');
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            c => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', backslashes * 2));
    out.push('"');
    out
}

/// `StartBoundary`: today at the set time, local (no zone suffix), as
/// `schtasks /SC DAILY /ST` writes it.
pub(super) fn start_boundary(days_since_epoch: i64, (h, m): (u8, u8)) -> String {
    let (y, mo, d) = civil_from_days(days_since_epoch);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:00")
}

fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs / 86_400) as i64
}

/// The task definition.
pub(super) fn task_xml(job: &Job, account: Option<&str>, days_since_epoch: i64) -> String {
    let principal = match (job.target.scope, account) {
        (Scope::System, _) => "<UserId>S-1-5-18</UserId>\n      <RunLevel>HighestAvailable</RunLevel>".to_string(),
        (Scope::User, Some(user)) => format!(
            "<UserId>{}</UserId>\n      <LogonType>InteractiveToken</LogonType>\n      <RunLevel>LeastPrivilege</RunLevel>",
            xml_escape(user)
        ),
        (Scope::User, None) => "<LogonType>InteractiveToken</LogonType>\n      <RunLevel>LeastPrivilege</RunLevel>".to_string(),
    };
    let args: Vec<String> = job.args().iter().map(|a| win_arg(a)).collect();
    let hours = TIMEOUT.trim_end_matches('h');
    format!(
        r#"<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>Nightly coffre backup of {config}. Written by coffre schedule install; remove with coffre schedule remove.</Description>
  </RegistrationInfo>
  <Triggers>
    <CalendarTrigger>
      <StartBoundary>{start}</StartBoundary>
      <Enabled>true</Enabled>
      <RandomDelay>PT{RANDOM_DELAY_MINUTES}M</RandomDelay>
      <ScheduleByDay>
        <DaysInterval>1</DaysInterval>
      </ScheduleByDay>
    </CalendarTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      {principal}
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <IdleSettings>
      <StopOnIdleEnd>false</StopOnIdleEnd>
      <RestartOnIdle>false</RestartOnIdle>
    </IdleSettings>
    <AllowStartOnDemand>true</AllowStartOnDemand>
    <Enabled>true</Enabled>
    <Hidden>false</Hidden>
    <RunOnlyIfIdle>false</RunOnlyIfIdle>
    <WakeToRun>false</WakeToRun>
    <ExecutionTimeLimit>PT{hours}H</ExecutionTimeLimit>
    <Priority>7</Priority>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{command}</Command>
      <Arguments>{arguments}</Arguments>
    </Exec>
  </Actions>
</Task>
"#,
        config = xml_escape(&job.target.config_str),
        start = start_boundary(days_since_epoch, job.at),
        command = xml_escape(&format!("\"{}\"", job.exe_str)),
        arguments = xml_escape(&args.join(" ")),
    )
}

/// The bytes `schtasks /XML` reads: UTF-16 little-endian with a byte-order mark.
pub(super) fn utf16le(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

/// `T02:30:00` of `StartBoundary` -> `(2, 30)`.
pub(super) fn parse_at(xml: &str) -> Option<(u8, u8)> {
    let start = xml.find("<StartBoundary>")? + "<StartBoundary>".len();
    let value = &xml[start..start + xml[start..].find("</StartBoundary>")?];
    let clock = &value[value.find('T')? + 1..];
    let mut parts = clock.split(':');
    let (h, m) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

/// The second field of `schtasks /Query /FO CSV /NH`: the next run time,
/// in the machine's own date format.
pub(super) fn next_run_from_csv(csv: &str) -> Option<String> {
    let line = csv.lines().find(|l| !l.trim().is_empty())?;
    let fields: Vec<&str> = line.split("\",\"").collect();
    let next = fields.get(1)?.trim_matches('"').trim();
    (!next.is_empty() && next.chars().any(|c| c.is_ascii_digit())).then(|| next.to_string())
}

fn schtasks(host: &Host, args: &[&str]) -> Result<Ran, ScheduleError> {
    let shown = host::show("schtasks", args);
    let ran = host::run_tool(&host.schtasks, "schtasks", &shown, args, None, || {
        format!("{}, but schtasks is missing: it is part of Windows; set COFFRE_SCHEDULER to another scheduler elsewhere", host.why)
    })?;
    if ran.ok() {
        return Ok(ran);
    }
    let detail = ran.reason().replace('\0', "");
    let hint = if detail.to_ascii_lowercase().contains("denied") {
        "run it from an administrator prompt, or without --system for your user only"
    } else {
        "open Task Scheduler (taskschd.msc) to see the task library"
    };
    Err(ScheduleError::CommandFailed {
        command: shown,
        detail,
        hint: hint.into(),
    })
}

fn backend() -> Backend {
    Backend::TaskScheduler
}

const CATCH_UP: &str = "A night missed because the PC was off or asleep runs as soon as possible afterwards (StartWhenAvailable).";

fn who(scope: Scope) -> &'static str {
    match scope {
        Scope::User => "It runs as you, while you are logged on; for a PC where nobody logs on at night, install it with --system from an administrator prompt.",
        Scope::System => "It runs as SYSTEM, whether anyone is logged on or not.",
    }
}

/// The task's XML if a task of that name exists and backs up `config`.
fn query(host: &Host, name: &str, config: &str) -> Result<Option<String>, ScheduleError> {
    match schtasks(host, &["/Query", "/TN", name, "/XML"]) {
        Ok(r) => {
            let xml = r.stdout.replace('\0', "");
            Ok(xml.contains(&xml_escape(config)).then_some(xml))
        }
        Err(ScheduleError::CommandFailed { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn install(host: &Host, job: &Job) -> Result<Installed, ScheduleError> {
    let name = job.target.name();
    let replaced = query(host, &name, &job.target.config_str)?.is_some();
    let xml = task_xml(job, host.account.as_deref(), today());
    let file = host
        .temp_dir
        .join(format!("{name}-{}.xml", std::process::id()));
    host::write_file(&file, &utf16le(&xml), "")?;
    let file_str = file.to_string_lossy().into_owned();
    let created = schtasks(host, &["/Create", "/TN", &name, "/XML", &file_str, "/F"]);
    let _ = host::remove_file(&file, "");
    created?;
    let next_run = schtasks(host, &["/Query", "/TN", &name, "/FO", "CSV", "/NH"])
        .ok()
        .and_then(|r| next_run_from_csv(&r.stdout.replace('\0', "")));
    Ok(Installed {
        backend: backend(),
        name,
        files: Vec::new(),
        at: job.at,
        next_run,
        replaced,
        detail: [
            format!(
                "The backup runs every day at {} local time, up to {RANDOM_DELAY_MINUTES} minutes later.",
                time::format_time(job.at)
            ),
            CATCH_UP.into(),
            who(job.target.scope).into(),
        ]
        .join("\n"),
    })
}

pub(super) fn remove(host: &Host, target: &Target) -> Result<Removed, ScheduleError> {
    let name = target.name();
    if query(host, &name, &target.config_str)?.is_none() {
        return Ok(Removed {
            backend: Some(backend()),
            removed: false,
            names: Vec::new(),
            files: Vec::new(),
            detail: format!(
                "No nightly backup of {} is scheduled (no task {name} for it).",
                target.config_str
            ),
        });
    }
    schtasks(host, &["/Delete", "/TN", &name, "/F"])?;
    Ok(Removed {
        backend: Some(backend()),
        removed: true,
        names: vec![name],
        files: Vec::new(),
        detail: "Task deleted; a backup running right now finishes.".into(),
    })
}

pub(super) fn status(host: &Host, target: &Target) -> Result<Status, ScheduleError> {
    let name = target.name();
    let Some(xml) = query(host, &name, &target.config_str)? else {
        return Ok(Status {
            backend: Some(backend()),
            installed: false,
            name: None,
            at: None,
            next_run: None,
            last_run: None,
            files: Vec::new(),
            detail: format!(
                "No nightly backup of {} is scheduled: run `coffre schedule install`.",
                target.config_str
            ),
        });
    };
    let next_run = schtasks(host, &["/Query", "/TN", &name, "/FO", "CSV", "/NH"])
        .ok()
        .and_then(|r| next_run_from_csv(&r.stdout.replace('\0', "")));
    let scope = if xml.contains("S-1-5-18") {
        Scope::System
    } else {
        Scope::User
    };
    Ok(Status {
        backend: Some(backend()),
        installed: true,
        name: Some(name),
        at: parse_at(&xml),
        next_run,
        last_run: None,
        files: Vec::new(),
        detail: [CATCH_UP, who(scope)].join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::host::{testing, Family};
    use super::*;

    #[test]
    fn arguments_read_back_as_windows_parses_them() {
        assert_eq!(win_arg("backup"), "backup");
        assert_eq!(
            win_arg(r"C:\Users\ana\config.toml"),
            r"C:\Users\ana\config.toml"
        );
        assert_eq!(
            win_arg(r"C:\Users\Ana Maria\config.toml"),
            r#""C:\Users\Ana Maria\config.toml""#
        );
        assert_eq!(win_arg(r"C:\dir with space\"), r#""C:\dir with space\\""#);
        assert_eq!(win_arg(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(win_arg(r#"a\"b"#), r#""a\\\"b""#);
        assert_eq!(win_arg(""), r#""""#);
    }

    #[test]
    fn dates_from_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_416), (2025, 11, 24));
        assert_eq!(start_boundary(19_723, (2, 5)), "2024-01-01T02:05:00");
    }

    #[test]
    fn task_xml_has_the_settings_that_matter() {
        let dir = tempfile::tempdir().unwrap();
        let host = testing::host(dir.path(), Family::TaskScheduler);
        let plan = testing::plan(dir.path(), "config.toml", (2, 30), Scope::User);
        let job = Job::new(&host, &plan).unwrap();
        let xml = task_xml(&job, Some(r"PC-COMPTA\ana"), 19_723);
        for needle in [
            "<StartBoundary>2024-01-01T02:30:00</StartBoundary>",
            "<DaysInterval>1</DaysInterval>",
            "<RandomDelay>PT10M</RandomDelay>",
            "<StartWhenAvailable>true</StartWhenAvailable>",
            "<DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>",
            "<ExecutionTimeLimit>PT12H</ExecutionTimeLimit>",
            "<MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>",
            r"<UserId>PC-COMPTA\ana</UserId>",
            "<LogonType>InteractiveToken</LogonType>",
        ] {
            assert!(xml.contains(needle), "{needle} missing from\n{xml}");
        }
        let command = format!("<Command>&quot;{}&quot;</Command>", job.exe_str);
        assert!(xml.contains(&command), "{xml}");
        let arguments = format!(
            "<Arguments>backup --config {} --scheduled</Arguments>",
            win_arg(&job.target.config_str)
        );
        assert!(xml.contains(&arguments), "{xml}");
        assert_eq!(parse_at(&xml), Some((2, 30)));

        let system = Job {
            target: Target {
                scope: Scope::System,
                ..job.target.clone()
            },
            ..job.clone()
        };
        let xml = task_xml(&system, Some("ignored"), 19_723);
        assert!(
            xml.contains("<UserId>S-1-5-18</UserId>") && !xml.contains("ignored"),
            "{xml}"
        );

        let bytes = utf16le("<T>é</T>");
        assert_eq!(&bytes[..4], &[0xFF, 0xFE, b'<', 0]);
        assert_eq!(bytes.len(), 2 + 2 * 8);
    }

    #[test]
    fn next_run_comes_from_the_csv_line() {
        let csv = "\r\n\"\\coffre-backup\",\"25/11/2026 02:07:00\",\"Prêt\"\r\n";
        assert_eq!(
            next_run_from_csv(csv).as_deref(),
            Some("25/11/2026 02:07:00")
        );
        assert_eq!(
            next_run_from_csv("\"\\coffre-backup\",\"N/A\",\"Disabled\""),
            None
        );
        assert_eq!(next_run_from_csv(""), None);
    }

    #[test]
    fn absent_schtasks_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let host = testing::host(dir.path(), Family::TaskScheduler);
        let plan = testing::plan(dir.path(), "config.toml", (2, 0), Scope::User);
        let job = Job::new(&host, &plan).unwrap();
        let text = install(&host, &job).unwrap_err().to_string();
        assert!(text.starts_with("schtasks not found"), "{text}");
        assert!(!host.temp_dir.exists() || std::fs::read_dir(&host.temp_dir).unwrap().count() == 0);
    }
}
