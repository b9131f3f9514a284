//! cron, when systemd does not run: one line in the user's crontab,
//!
//! ```text
//! 0 2 * * * /usr/bin/coffre backup --config /home/ana/.config/coffre/config.toml --scheduled # coffre-backup 1a2b3c4d
//! ```
//!
//! read with `crontab -l` and written back whole with `crontab -`. The line
//! ends with a marker holding the configuration's id (a shell comment, so
//! cron's `sh -c` ignores it); only lines ending with our marker are ever
//! replaced or removed, every other line is written back byte for byte.
//! Cron does not catch up a night missed while the PC was off.

use super::host::{self, Host, Ran};
use super::job::{Job, Target};
use super::{time, Backend, Installed, Removed, ScheduleError, Status};

/// Start of the marker that ends our line; the configuration id follows.
const MARK: &str = " # coffre-backup ";

/// One word for `sh -c`, single-quoted unless plain.
pub(super) fn sh_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:=@".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Our crontab line for a job (no newline). In a crontab command an
/// unescaped `%` means "newline", so every `%` is written `\%` (cron removes
/// the backslash before running the command).
pub(super) fn cron_line(job: &Job) -> String {
    let mut command = sh_word(&job.exe_str);
    for arg in job.args() {
        command.push(' ');
        command.push_str(&sh_word(arg));
    }
    let (h, m) = job.at;
    format!(
        "{m} {h} * * * {}{MARK}{}",
        command.replace('%', r"\%"),
        job.target.id
    )
}

/// Whether a crontab line is ours for the configuration `id`: an active
/// line (not commented out) ending with the marker.
pub(super) fn is_ours(line: &str, id: &str) -> bool {
    let line = line.trim_end();
    !line.trim_start().starts_with('#')
        && line
            .strip_suffix(id)
            .is_some_and(|rest| rest.ends_with(MARK))
}

/// The table with our line in place: the first line of ours replaced,
/// further ones dropped, or the line appended. Returns whether one was replaced.
pub(super) fn upsert(table: &str, line: &str, id: &str) -> (String, bool) {
    let mut out = String::with_capacity(table.len() + line.len() + 1);
    let mut replaced = false;
    for l in table.split_inclusive('\n') {
        if is_ours(l, id) {
            if !replaced {
                out.push_str(line);
                out.push('\n');
                replaced = true;
            }
        } else {
            out.push_str(l);
        }
    }
    if !replaced {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    (out, replaced)
}

/// The table without our lines, and how many there were.
pub(super) fn remove_from(table: &str, id: &str) -> (String, usize) {
    let mut removed = 0;
    let out = table
        .split_inclusive('\n')
        .filter(|l| {
            let ours = is_ours(l, id);
            removed += usize::from(ours);
            !ours
        })
        .collect();
    (out, removed)
}

/// The time of our line, if there is one.
pub(super) fn find(table: &str, id: &str) -> Option<(u8, u8)> {
    let line = table.lines().find(|l| is_ours(l, id))?;
    let mut fields = line.split_whitespace();
    let minute = fields.next()?.parse().ok()?;
    let hour = fields.next()?.parse().ok()?;
    (hour < 24 && minute < 60).then_some((hour, minute))
}

/// `crontab -l`'s answer -> the table; "no crontab for ana" is an empty table.
pub(super) fn listed(ran: &Ran) -> Option<String> {
    if ran.ok() {
        return Some(ran.stdout.clone());
    }
    let said = ran.stderr.to_ascii_lowercase();
    (said.contains("no crontab") || said.contains("no such file")).then(String::new)
}

fn crontab(host: &Host, args: &[&str], input: Option<&[u8]>) -> Result<Ran, ScheduleError> {
    let shown = host::show("crontab", args);
    host::run_tool(&host.crontab, "crontab", &shown, args, input, || {
        format!(
            "{}, and cron is not installed: install and start it (Debian/Ubuntu: apt install cron; \
             Fedora/RHEL: dnf install cronie; Arch: pacman -S cronie), then run this again",
            host.why
        )
    })
}

fn read_table(host: &Host) -> Result<String, ScheduleError> {
    let ran = crontab(host, &["-l"], None)?;
    listed(&ran).ok_or_else(|| ScheduleError::CommandFailed {
        command: "crontab -l".into(),
        detail: ran.reason(),
        hint: "check that you may use cron (/etc/cron.allow, /etc/cron.deny) and that the cron package is intact".into(),
    })
}

fn write_table(host: &Host, table: &str) -> Result<(), ScheduleError> {
    let ran = crontab(host, &["-"], Some(table.as_bytes()))?;
    if ran.ok() {
        return Ok(());
    }
    Err(ScheduleError::CommandFailed {
        command: "crontab -".into(),
        detail: ran.reason(),
        hint: "your crontab was left as it was; check that you may use cron (/etc/cron.allow, /etc/cron.deny)".into(),
    })
}

fn whose(host: &Host) -> String {
    host.user
        .as_deref()
        .map_or("your crontab".into(), |u| format!("the crontab of {u}"))
}

const NO_CATCH_UP: &str = "Cron does not catch up: a night missed because the PC was off or asleep is skipped until the next night (systemd timers, Task Scheduler and launchd do better; see docs/scheduling.md).";
const LOGS: &str = "Logs: the log file written by `coffre backup --scheduled`; cron's own trace is in the system log (journalctl or /var/log/syslog, lines with CRON).";

pub(super) fn install(host: &Host, job: &Job) -> Result<Installed, ScheduleError> {
    let table = read_table(host)?;
    let (table, replaced) = upsert(&table, &cron_line(job), &job.target.id);
    write_table(host, &table)?;
    Ok(Installed {
        backend: Backend::Cron,
        name: format!("{}{}", MARK.trim_start(), job.target.id),
        files: Vec::new(),
        at: job.at,
        next_run: None,
        replaced,
        detail: [
            format!(
                "Added to {}: the backup runs every day at {} (local time of the cron daemon) if the PC is on.",
                whose(host),
                time::format_time(job.at)
            ),
            NO_CATCH_UP.to_string(),
            LOGS.to_string(),
        ]
        .join("\n"),
    })
}

pub(super) fn remove(host: &Host, target: &Target) -> Result<Removed, ScheduleError> {
    let table = read_table(host)?;
    let (rest, count) = remove_from(&table, &target.id);
    let name = format!("{}{}", MARK.trim_start(), target.id);
    if count == 0 {
        return Ok(Removed {
            backend: Some(Backend::Cron),
            removed: false,
            names: Vec::new(),
            files: Vec::new(),
            detail: format!(
                "No nightly backup of {} is scheduled in {}.",
                target.config_str,
                whose(host)
            ),
        });
    }
    write_table(host, &rest)?;
    Ok(Removed {
        backend: Some(Backend::Cron),
        removed: true,
        names: vec![name],
        files: Vec::new(),
        detail: format!(
            "Removed the line from {}; its other lines are untouched.",
            whose(host)
        ),
    })
}

pub(super) fn status(host: &Host, target: &Target) -> Result<Status, ScheduleError> {
    let table = read_table(host)?;
    let at = find(&table, &target.id);
    let installed = at.is_some() || table.lines().any(|l| is_ours(l, &target.id));
    let detail = if installed {
        format!(
            "Scheduled in {} every day at {}.\n{NO_CATCH_UP}\n{LOGS}",
            whose(host),
            at.map_or("an unreadable time".into(), time::format_time)
        )
    } else {
        format!(
            "No nightly backup of {} is scheduled: run `coffre schedule install`.",
            target.config_str
        )
    };
    Ok(Status {
        backend: Some(Backend::Cron),
        installed,
        name: installed.then(|| format!("{}{}", MARK.trim_start(), target.id)),
        at,
        next_run: None,
        last_run: None,
        on_battery: None,
        files: Vec::new(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::super::host::{testing, Family};
    use super::super::Scope;
    use super::*;
    use std::path::Path;

    fn job(root: &Path, at: (u8, u8)) -> (Host, Job) {
        let host = testing::host(root, Family::Cron);
        let plan = testing::plan(root, "config.toml", at, Scope::User);
        let job = Job::new(&host, &plan).unwrap();
        (host, job)
    }

    const FOREIGN: &str = "MAILTO=ana@example.org\n# m h dom mon dow command\n*/5 * * * * /usr/bin/fetchmail >/dev/null 2>&1\n@reboot echo coffre-backup hello # coffre-backup\n";

    #[test]
    fn sh_words_and_percent_signs() {
        assert_eq!(sh_word("/usr/bin/coffre"), "/usr/bin/coffre");
        assert_eq!(sh_word("/home/a b/c"), "'/home/a b/c'");
        assert_eq!(sh_word("/x/it's"), r"'/x/it'\''s'");
        assert_eq!(sh_word("/x/$HOME"), "'/x/$HOME'");
        assert_eq!(sh_word(""), "''");
        let dir = tempfile::tempdir().unwrap();
        let (_, mut job) = job(dir.path(), (2, 5));
        job.exe_str = "/opt/100% coffre/coffre".into();
        let line = cron_line(&job);
        assert_eq!(
            line,
            format!(
                r"5 2 * * * '/opt/100\% coffre/coffre' backup --config {} --scheduled # coffre-backup {}",
                sh_word(&job.target.config_str),
                job.target.id
            )
        );
        assert!(is_ours(&line, &job.target.id));
        assert_eq!(find(&line, &job.target.id), Some((2, 5)));
    }

    /// The shell cron hands the line to reads back exactly our argument list.
    #[cfg(unix)]
    #[test]
    fn sh_reads_the_words_back() {
        let odd = [
            "/a b/c",
            "it's",
            "$HOME",
            "\"q\"",
            "back\\slash",
            "tab\there",
            "plain",
        ];
        let line: Vec<String> = odd.iter().map(|w| sh_word(w)).collect();
        let script = format!(
            "for a in {}; do printf '%s\\n' \"$a\"; done",
            line.join(" ")
        );
        let out = host::run("sh".as_ref(), &["-c", &script], None).unwrap();
        assert_eq!(out.stdout.lines().collect::<Vec<_>>(), odd);
    }

    #[test]
    fn upsert_keeps_foreign_lines_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let (_, job) = job(dir.path(), (2, 0));
        let id = &job.target.id;
        let line = cron_line(&job);

        let (t, replaced) = upsert("", &line, id);
        assert_eq!(t, format!("{line}\n"));
        assert!(!replaced);

        let (t, replaced) = upsert(FOREIGN, &line, id);
        assert!(!replaced);
        assert_eq!(t, format!("{FOREIGN}{line}\n"));

        // A last foreign line without its newline gets one, and is otherwise kept.
        let (t, _) = upsert("0 1 * * * true", &line, id);
        assert_eq!(t, format!("0 1 * * * true\n{line}\n"));

        // Replacing: same place, new time; a stray duplicate goes; idempotent.
        let table = format!("{FOREIGN}{line}\nFOO=bar\r\n{line}\n");
        let (newer, _) = {
            let mut j = job.clone();
            j.at = (3, 45);
            (cron_line(&j), ())
        };
        let (t, replaced) = upsert(&table, &newer, id);
        assert!(replaced);
        assert_eq!(t, format!("{FOREIGN}{newer}\nFOO=bar\r\n"));
        assert_eq!(upsert(&t, &newer, id).0, t);
        assert_eq!(find(&t, id), Some((3, 45)));
    }

    #[test]
    fn remove_touches_only_our_line() {
        let dir = tempfile::tempdir().unwrap();
        let (_, job) = job(dir.path(), (2, 0));
        let id = &job.target.id;
        let line = cron_line(&job);
        let other_id = "0123abcd";
        let other = line.replace(id.as_str(), other_id);
        let disabled = format!("#{line}");
        let table = format!("{FOREIGN}{line}\n{other}\n{disabled}\n");
        let (rest, n) = remove_from(&table, id);
        assert_eq!(n, 1);
        assert_eq!(rest, format!("{FOREIGN}{other}\n{disabled}\n"));
        assert_eq!(find(&rest, id), None);
        assert_eq!(find(&rest, other_id), Some((2, 0)));
        assert_eq!(remove_from(&rest, id), (rest.clone(), 0));
        assert_eq!(remove_from(FOREIGN, id), (FOREIGN.to_string(), 0));
    }

    #[test]
    fn no_crontab_yet_is_an_empty_table() {
        let r = host::run(
            "sh".as_ref(),
            &["-c", "echo 'no crontab for ana' >&2; exit 1"],
            None,
        );
        if let Ok(r) = r {
            assert_eq!(listed(&r).as_deref(), Some(""));
        }
        if let Ok(r) = host::run(
            "sh".as_ref(),
            &["-c", "echo 'crontab: permission denied' >&2; exit 1"],
            None,
        ) {
            assert_eq!(listed(&r), None);
        }
    }

    #[test]
    fn absent_crontab_says_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let (host, job) = job(dir.path(), (2, 0));
        let text = install(&host, &job).unwrap_err().to_string();
        assert!(
            text.starts_with("crontab not found: the test chose it, and cron is not installed"),
            "{text}"
        );
        assert!(
            text.contains("apt install cron") && text.contains("dnf install cronie"),
            "{text}"
        );
        // Status does not fail: it says that nothing can be scheduled.
        let host2 = host.clone();
        let st = super::super::status_on(&host2, &job.target.config, Scope::User).unwrap();
        assert!(!st.installed && st.backend.is_none());
        assert!(st.detail.contains("apt install cron"), "{}", st.detail);
    }

    /// The whole cycle through a stand-in `crontab` that keeps the table in
    /// a file, as the real one does (the real one would edit the real
    /// user's crontab).
    #[cfg(unix)]
    #[test]
    fn install_status_remove_through_a_crontab_stand_in() {
        let dir = tempfile::tempdir().unwrap();
        let (mut host, job) = job(dir.path(), (2, 0));
        let file = dir.path().join("spool");
        host.crontab = testing::script(
            &dir.path().join("bin/crontab"),
            &format!(
                "f='{}'\ncase \"$1\" in\n -l) [ -f \"$f\" ] || {{ echo \"no crontab for member\" >&2; exit 1; }}; cat \"$f\";;\n -) cat > \"$f\";;\n *) exit 2;;\nesac",
                file.display()
            ),
        );
        let st = status(&host, &job.target).unwrap();
        assert!(!st.installed);
        std::fs::write(&file, FOREIGN).unwrap();
        let done = install(&host, &job).unwrap();
        assert_eq!(done.backend, Backend::Cron);
        assert!(!done.replaced);
        assert!(done.detail.contains("does not catch up"), "{}", done.detail);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{FOREIGN}{}\n", cron_line(&job))
        );
        let later = Job {
            at: (22, 15),
            ..job.clone()
        };
        assert!(install(&host, &later).unwrap().replaced);
        let st = status(&host, &job.target).unwrap();
        assert!(st.installed && st.at == Some((22, 15)));
        assert!(st.detail.contains("does not catch up"));
        let gone = remove(&host, &job.target).unwrap();
        assert!(gone.removed);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), FOREIGN);
        assert!(!remove(&host, &job.target).unwrap().removed);
    }
}
