//! What there is to tell: the facts of the board's report
//! ([`crate::usage::rows`]) and of the maintenance runs, as [`Event`]s with
//! a stable key and a value that changes when the fact does.
//!
//! [`kind_of`] is **the one place that decides which status is told, and
//! how urgently**: an exhaustive `match` on [`Status`] (no `_` arm), so a
//! new status does not compile until someone decides about it here.
//!
//! | kind | from | urgent (told within `check_every`) |
//! | --- | --- | --- |
//! | over quota | [`Status::OverQuota`] (backups are refused; a quota of 0 too) | yes |
//! | backup refused | [`Status::BackupRefused`] (a PC's backup was refused for quota), unless the structure is over quota (that event says it already) | yes |
//! | near quota | [`Status::NearQuota`] | no: the nightly digest |
//! | stale | [`Status::Stale`] | no |
//! | never backed up | [`Status::NeverBackedUp`] | no |
//! | clock wrong | [`Status::ClockWrong`] | no |
//! | copy refused | [`Status::CopyRefused`] (a cloned credential) | yes |
//! | incomplete | [`Status::Incomplete`] | no |
//! | frontend silent | [`Status::FrontendSilent`] (issue 22: the frontend serving the structure stopped writing its record) | yes |
//! | task failed | a maintenance run (prune, gc, verify) not `ok`; verify fails on damage | yes, operator only |
//!
//! [`Status::InProgress`] and [`Status::Ok`] are not told.

use coffre_store::MaintenanceRun;
use serde::Serialize;

use crate::usage::{Row, Status};

/// What kind of fact an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Used bytes reached the quota: new backups are refused.
    OverQuota,
    /// A PC's last backup was refused for quota (the quota may not be
    /// reached: the refused request needed more than was left).
    BackupRefused,
    /// A nightly task failed (verify fails when it finds damage).
    TaskFailed,
    /// A cloned credential of a device was refused.
    CopyRefused,
    /// Near the quota.
    NearQuota,
    /// A PC without a backup for the stale days.
    Stale,
    /// A PC enrolled, never backed up.
    NeverBackedUp,
    /// A PC's clock is wrong.
    ClockWrong,
    /// A PC's last backup was incomplete.
    Incomplete,
    /// The frontend serving the structure is silent (issue 22).
    FrontendSilent,
}

impl Kind {
    /// Its name in keys and webhooks: "over_quota", "stale"...
    pub fn code(self) -> &'static str {
        match self {
            Kind::OverQuota => "over_quota",
            Kind::BackupRefused => "backup_refused",
            Kind::TaskFailed => "task_failed",
            Kind::CopyRefused => "copy_refused",
            Kind::NearQuota => "near_quota",
            Kind::Stale => "stale",
            Kind::NeverBackedUp => "never_backed_up",
            Kind::ClockWrong => "clock_wrong",
            Kind::Incomplete => "incomplete",
            Kind::FrontendSilent => "frontend_silent",
        }
    }

    /// Whether it cannot wait for the night's digest.
    pub fn urgent(self) -> bool {
        match self {
            Kind::OverQuota
            | Kind::BackupRefused
            | Kind::TaskFailed
            | Kind::CopyRefused
            | Kind::FrontendSilent => true,
            Kind::NearQuota
            | Kind::Stale
            | Kind::NeverBackedUp
            | Kind::ClockWrong
            | Kind::Incomplete => false,
        }
    }
}

/// Which kind of event a status is, if it is told at all. **Every status
/// is decided here**, with no catch-all arm: a new [`Status`] variant does
/// not compile until it is given a kind (or `None`) and, for a new kind,
/// its words in `digest.rs`.
pub fn kind_of(status: &Status) -> Option<Kind> {
    match status {
        Status::OverQuota => Some(Kind::OverQuota),
        Status::BackupRefused { .. } => Some(Kind::BackupRefused),
        Status::NearQuota => Some(Kind::NearQuota),
        Status::Stale { .. } => Some(Kind::Stale),
        Status::NeverBackedUp { .. } => Some(Kind::NeverBackedUp),
        Status::ClockWrong { .. } => Some(Kind::ClockWrong),
        Status::CopyRefused { .. } => Some(Kind::CopyRefused),
        Status::Incomplete { .. } => Some(Kind::Incomplete),
        Status::FrontendSilent { .. } => Some(Kind::FrontendSilent),
        // Progress, not a problem: the board shows it, nobody is told.
        Status::InProgress { .. } => None,
        Status::Ok => None,
    }
}

/// One fact to tell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// What kind of fact.
    pub kind: Kind,
    /// The structure it is about (none: the server's own, e.g. a task).
    pub subscriber: Option<String>,
    /// The PC, or the task, it is about.
    pub device: Option<String>,
    /// Changes when the fact does (a later last backup, more refusals, a
    /// newer failed run): a changed value is told again.
    pub value: String,
    /// The status it comes from (absent for a task).
    #[serde(skip)]
    pub status: Option<Status>,
    /// Bytes used and the quota, for the quota kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// The quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    /// When the fact began, for stale PCs and failed tasks (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
}

impl Event {
    /// Its stable key: `subscriber/kind/device` ("-" for none).
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.subscriber.as_deref().unwrap_or("-"),
            self.kind.code(),
            self.device.as_deref().unwrap_or("-")
        )
    }

    /// Whether it cannot wait for the digest.
    pub fn urgent(&self) -> bool {
        self.kind.urgent()
    }
}

/// The events of the report's rows and of the last maintenance runs.
pub fn events(rows: &[Row], runs: &[MaintenanceRun]) -> Vec<Event> {
    let mut out = Vec::new();
    for row in rows {
        // Over quota already says that every backup is refused: a PC's
        // refused backup is then the same fact, told once (issue 20: nothing
        // repeated). Below the quota (a request needed more than was left),
        // the refusal is told on its own.
        let over = row.status.contains(&Status::OverQuota);
        for status in &row.status {
            if over && matches!(status, Status::BackupRefused { .. }) {
                continue;
            }
            if let Some(kind) = kind_of(status) {
                out.push(event(row, status, kind));
            }
        }
    }
    for run in runs.iter().filter(|r| !r.ok) {
        out.push(Event {
            kind: Kind::TaskFailed,
            subscriber: None,
            device: Some(run.task.clone()),
            value: run.started.to_string(),
            status: None,
            used_bytes: None,
            quota_bytes: None,
            since: Some(run.started),
        });
    }
    out
}

fn event(row: &Row, status: &Status, kind: Kind) -> Event {
    let u = &row.usage;
    let device = status_device(status);
    let last = device
        .and_then(|d| u.device_backups.iter().find(|b| b.name == d))
        .and_then(|d| d.last_backup.or(d.checkpoint.map(|c| c.received)));
    let (value, since) = match status {
        // The same PC stale since the same backup is the same fact.
        Status::Stale { .. } => (last.unwrap_or_default().to_string(), last),
        Status::ClockWrong { skew, .. } => {
            let (n, unit, ahead) = crate::usage::Skew(*skew).parts();
            (format!("{n} {unit:?} {ahead}"), None)
        }
        Status::CopyRefused { times, .. } => (times.to_string(), None),
        Status::Incomplete { problems, .. } => (problems.to_string(), None),
        // The same frontend silent is the same fact, however long.
        Status::FrontendSilent { frontend, .. } => (frontend.clone(), None),
        // Each new refusal (after a commit) is a new fact; more refusals of
        // the same unfinished backup are not.
        Status::BackupRefused { .. } => (last.unwrap_or_default().to_string(), None),
        Status::OverQuota
        | Status::NearQuota
        | Status::NeverBackedUp { .. }
        | Status::InProgress { .. }
        | Status::Ok => (String::new(), None),
    };
    let quota = matches!(
        kind,
        Kind::OverQuota | Kind::NearQuota | Kind::BackupRefused
    );
    Event {
        kind,
        subscriber: Some(u.name.clone()),
        device: device.map(str::to_string),
        value,
        status: Some(status.clone()),
        used_bytes: quota.then_some(u.used_bytes),
        quota_bytes: quota.then_some(u.quota_bytes),
        since,
    }
}

/// The PC a status is about.
fn status_device(status: &Status) -> Option<&str> {
    match status {
        Status::Stale { device, .. }
        | Status::NeverBackedUp { device }
        | Status::ClockWrong { device, .. }
        | Status::CopyRefused { device, .. }
        | Status::Incomplete { device, .. }
        | Status::BackupRefused { device, .. }
        | Status::InProgress { device, .. } => Some(device),
        Status::OverQuota | Status::NearQuota | Status::FrontendSilent { .. } | Status::Ok => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_store::{DeviceUsage, Usage};

    fn row(name: &str, used: u64, devices: &[(&str, Option<i64>)], now: i64) -> Row {
        Row::new(
            Usage {
                name: name.into(),
                quota_bytes: 1000,
                used_bytes: used,
                snapshots: 0,
                logical_bytes: 0,
                last_backup: None,
                devices: devices.len() as u64,
                protected_bytes: 0,
                device_backups: devices
                    .iter()
                    .map(|(n, t)| DeviceUsage {
                        last_backup: *t,
                        ..DeviceUsage::named(n)
                    })
                    .collect(),
            },
            now,
            3,
        )
    }

    #[test]
    fn statuses_become_keyed_events_and_failed_runs_the_operators() {
        let now = 100 * 86_400;
        let rows = [
            row("a", 1000, &[("pc", Some(now))], now),
            row(
                "b",
                10,
                &[("old", Some(now - 5 * 86_400)), ("new", None)],
                now,
            ),
            row("c", 10, &[("pc", Some(now))], now),
        ];
        let runs = [
            MaintenanceRun {
                task: "gc".into(),
                started: now - 60,
                seconds: 1.0,
                ok: true,
            },
            MaintenanceRun {
                task: "verify".into(),
                started: now - 30,
                seconds: 1.0,
                ok: false,
            },
        ];
        let events = events(&rows, &runs);
        let keys: Vec<String> = events.iter().map(Event::key).collect();
        assert_eq!(
            keys,
            [
                "a/over_quota/-",
                "b/stale/old",
                "b/never_backed_up/new",
                "-/task_failed/verify"
            ]
        );
        let urgent: Vec<bool> = events.iter().map(Event::urgent).collect();
        assert_eq!(urgent, [true, false, false, true]);
        assert_eq!(events[0].used_bytes, Some(1000));
        // A stale PC's value is its last backup: the same while it stays away.
        assert_eq!(events[1].value, (now - 5 * 86_400).to_string());
        let later = row("b", 10, &[("old", Some(now - 5 * 86_400))], now + 86_400);
        assert_eq!(self::events(&[later], &[])[0].value, events[1].value);
        assert_eq!(events[3].value, (now - 30).to_string());
    }

    /// A backup refused below the quota is told at once, on its own; over
    /// quota, the over-quota event says it already (told once).
    #[test]
    fn a_refused_backup_is_urgent_unless_over_quota_says_it() {
        let now = 100 * 86_400;
        let refused = |used: u64| {
            let mut r = row("a", used, &[("pc", Some(now - 86_400))], now);
            let d = &mut r.usage.device_backups[0];
            d.quota_refusals = 1;
            d.last_quota_refusal = Some(now - 60);
            d.quota_missing = 5_000;
            Row::new(r.usage, now, 3)
        };
        let below = events(&[refused(500)], &[]);
        let keys: Vec<String> = below.iter().map(Event::key).collect();
        assert_eq!(keys, ["a/backup_refused/pc"]);
        assert!(below[0].urgent());
        assert_eq!(below[0].quota_bytes, Some(1000));
        assert_eq!(below[0].value, (now - 86_400).to_string());
        let over = events(&[refused(1000)], &[]);
        let keys: Vec<String> = over.iter().map(Event::key).collect();
        assert_eq!(keys, ["a/over_quota/-"], "one fact, told once");
    }
}
