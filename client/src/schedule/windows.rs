//! Windows Task Scheduler: a task `coffre-backup` (or `coffre-backup-<id>`)
//! registered with `schtasks /Create /XML`, because the plain `schtasks`
//! switches cannot set "run as soon as possible after a scheduled start is
//! missed" (`StartWhenAvailable`). [`Scope::User`] runs it as the user while
//! they are logged on; [`Scope::System`] as SYSTEM whether anyone is logged
//! on or not (needs an administrator prompt). `--ac-only` sets
//! `DisallowStartIfOnBatteries` and `StopIfGoingOnBatteries`; by default the
//! task runs on battery too.
//!
//! The definition is valid against Microsoft's Task Scheduler schema
//! (`client/tests/schema/task.xsd`, checked with xmllint by
//! `client/tests/windows_schedule.rs`): the order of a trigger's elements
//! matters (`Enabled`, `StartBoundary`, ..., `RandomDelay`, `ScheduleByDay`).
//!
//! `status` reads the task back with `schtasks /Query /TN NAME /XML`. Wine 8's
//! `schtasks` has no `/Query` (it prints nothing and exits 0): then, and only
//! then, the definition is read from the task store,
//! `%SystemRoot%\System32\Tasks\NAME` (UTF-16 on Windows, UTF-8 under Wine),
//! which Windows also keeps but lets only administrators read.

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
      <Enabled>true</Enabled>
      <StartBoundary>{start}</StartBoundary>
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
    <DisallowStartIfOnBatteries>{ac_only}</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>{ac_only}</StopIfGoingOnBatteries>
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
        ac_only = !job.on_battery,
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

/// The text of the first `<name>…</name>` of a task definition.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..start + len].trim())
}

/// A boolean of the task's `<Settings>`, or the schema's default when the
/// element is absent (a trigger has an `<Enabled>` of its own).
pub(super) fn setting(xml: &str, name: &str, default: bool) -> bool {
    match element(xml, "Settings").and_then(|s| element(s, name)) {
        Some(v) => v == "true" || v == "1",
        None => default,
    }
}

/// Whether the task runs on battery: neither kept from starting nor stopped
/// there (both default to true in the schema: absent means mains only).
pub(super) fn runs_on_battery(xml: &str) -> bool {
    !setting(xml, "DisallowStartIfOnBatteries", true)
        && !setting(xml, "StopIfGoingOnBatteries", true)
}

/// A task file of the task store as text: UTF-16LE with a byte-order mark
/// (Windows), or UTF-8 (Wine, with or without a mark).
pub(super) fn decode_task_file(bytes: &[u8]) -> String {
    match bytes {
        [0xFF, 0xFE, rest @ ..] => {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// `T02:30:00` of `StartBoundary` -> `(2, 30)`.
pub(super) fn parse_at(xml: &str) -> Option<(u8, u8)> {
    let value = element(xml, "StartBoundary")?;
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

fn power(on_battery: bool) -> &'static str {
    if on_battery {
        "It runs on battery too."
    } else {
        "It runs on mains power only: it does not start on battery, and stops if the PC is unplugged (DisallowStartIfOnBatteries, StopIfGoingOnBatteries)."
    }
}

fn who(scope: Scope) -> &'static str {
    match scope {
        Scope::User => "It runs as you, while you are logged on; for a PC where nobody logs on at night, install it with --system from an administrator prompt.",
        Scope::System => "It runs as SYSTEM, whether anyone is logged on or not.",
    }
}

/// The task's XML if a task of that name exists and backs up `config`.
fn query(host: &Host, name: &str, config: &str) -> Result<Option<String>, ScheduleError> {
    let xml = match schtasks(host, &["/Query", "/TN", name, "/XML"]) {
        Ok(r) if !r.stdout.replace('\0', "").trim().is_empty() => r.stdout.replace('\0', ""),
        // Wine 8: `/Query` is not implemented (nothing printed, exit 0).
        Ok(_) => match std::fs::read(host.tasks_dir.join(name)) {
            Ok(bytes) => decode_task_file(&bytes),
            Err(_) => return Ok(None),
        },
        Err(ScheduleError::CommandFailed { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(xml.contains(&xml_escape(config)).then_some(xml))
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
            power(job.on_battery).into(),
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
            on_battery: None,
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
    let at = parse_at(&xml);
    let on_battery = runs_on_battery(&xml);
    let mut detail = Vec::new();
    if at.is_none() {
        detail.push("The task has no daily start time (its trigger is missing or not daily): it will not run by itself; run `coffre schedule install` again.");
    }
    if !setting(&xml, "Enabled", true) {
        detail.push("The task is disabled: it will not run; run `coffre schedule install` again.");
    }
    detail.push(if setting(&xml, "StartWhenAvailable", false) {
        CATCH_UP
    } else {
        "A night missed while the PC is off is NOT caught up (StartWhenAvailable is off): run `coffre schedule install` again."
    });
    detail.push(power(on_battery));
    detail.push(who(scope));
    Ok(Status {
        backend: Some(backend()),
        installed: true,
        name: Some(name),
        at,
        next_run,
        last_run: None,
        on_battery: Some(on_battery),
        files: Vec::new(),
        detail: detail.join("\n"),
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
            "<StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>",
            // The schema's order: a trigger's Enabled comes first.
            "<Enabled>true</Enabled>\n      <StartBoundary>",
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
        assert!(runs_on_battery(&xml));
        assert!(setting(&xml, "StartWhenAvailable", false));

        let ac_only = Job {
            on_battery: false,
            ..job.clone()
        };
        let xml = task_xml(&ac_only, None, 19_723);
        assert!(
            xml.contains("<DisallowStartIfOnBatteries>true</DisallowStartIfOnBatteries>")
                && xml.contains("<StopIfGoingOnBatteries>true</StopIfGoingOnBatteries>"),
            "{xml}"
        );
        assert!(!runs_on_battery(&xml));

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
    fn settings_are_read_from_settings_with_the_schema_defaults() {
        // As Wine 8 stores a task: UTF-8 with a mark, no trigger, no action.
        let wine = "\u{feff}<!-- Task definition created by Wine -->\n<Task version=\"1.2\">\
            <RegistrationInfo><Description>Nightly coffre backup of Z:\\c.toml.</Description></RegistrationInfo>\
            <Triggers/><Settings><DisallowStartIfOnBatteries>true</DisallowStartIfOnBatteries>\
            <StopIfGoingOnBatteries>true</StopIfGoingOnBatteries><StartWhenAvailable>true</StartWhenAvailable>\
            <Enabled>true</Enabled></Settings><Actions><Exec/></Actions></Task>";
        let text = decode_task_file(wine.as_bytes());
        assert!(text.starts_with("<!--"), "{text}");
        assert_eq!(parse_at(&text), None);
        assert!(!runs_on_battery(&text));
        assert!(setting(&text, "StartWhenAvailable", false));
        let plain = wine.trim_start_matches('\u{feff}');
        assert_eq!(decode_task_file(&utf16le(plain)), plain);
        // Absent elements take the schema's defaults: a task that says
        // nothing about batteries runs on mains only, and does not catch up.
        let bare = "<Task><Triggers><CalendarTrigger><Enabled>false</Enabled></CalendarTrigger></Triggers><Settings/></Task>";
        assert!(!runs_on_battery(bare));
        assert!(!setting(bare, "StartWhenAvailable", false));
        assert!(
            setting(bare, "Enabled", true),
            "the trigger's Enabled is not the task's"
        );
    }

    /// A stand-in for Wine 8's `schtasks`: `/Create` and `/Delete` work on the
    /// task store, `/Query` prints nothing and succeeds.
    #[cfg(unix)]
    #[test]
    fn status_reads_the_task_store_when_query_answers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = testing::host(dir.path(), Family::TaskScheduler);
        std::fs::create_dir_all(&host.tasks_dir).unwrap();
        let store = host.tasks_dir.display().to_string();
        host.schtasks = testing::script(
            &dir.path().join("bin/schtasks"),
            &format!(
                r#"case "$1" in
/Create) iconv -f UTF-16 -t UTF-8 "$5" > "{store}/$3" ;;
/Delete) rm "{store}/$3" || exit 1 ;;
esac
exit 0"#
            ),
        );
        let mut plan = testing::plan(dir.path(), "config.toml", (1, 45), Scope::User);
        plan.on_battery = false;
        let job = Job::new(&host, &plan).unwrap();
        let installed = install(&host, &job).unwrap();
        assert_eq!(installed.name, "coffre-backup");
        assert!(
            installed.detail.contains("mains power only"),
            "{}",
            installed.detail
        );

        let st = status(&host, &job.target).unwrap();
        assert!(st.installed, "{st:?}");
        assert_eq!(st.at, Some((1, 45)));
        assert_eq!(st.on_battery, Some(false));
        assert!(st.detail.contains("StartWhenAvailable"), "{}", st.detail);

        let removed = remove(&host, &job.target).unwrap();
        assert!(removed.removed);
        let st = status(&host, &job.target).unwrap();
        assert!(!st.installed && st.on_battery.is_none(), "{st:?}");
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
