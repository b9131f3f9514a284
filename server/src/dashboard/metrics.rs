//! `/metrics`: the usage report in Prometheus' text exposition format 0.0.4.

use std::fmt::Write;

use coffre_store::{Store, Usage};

use crate::usage::{clock_wrong, CLOCK_SKEW_LIMIT};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition of `usage` and of the server's maintenance.
pub fn render(store: &Store, usage: &[Usage]) -> String {
    let mut out = Exposition::default();
    subscribers(&mut out, usage);
    disputes(&mut out, store, usage);
    forecasts(&mut out, store, usage);
    maintenance(&mut out, store);
    out.text
}

/// When each quota and the server's storage are full at the current pace
/// (issue 20; the board's "full by", `crate::forecast`), from the last
/// month of history: one query. Absent when there is no date.
fn forecasts(out: &mut Exposition, store: &Store, usage: &[Usage]) {
    use coffre_store::history::{day_of, DAY_SECONDS};
    let today = day_of(store.now());
    let history = match store.history(None, today - crate::forecast::WINDOW_DAYS) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!("metrics: cannot read the usage history: {e}");
            return;
        }
    };
    let name = "coffre_subscriber_full_by_timestamp_seconds";
    out.family(
        name,
        "When the subscriber's quota is full at the current pace (least squares over the last 30 days, midnight UTC of that day); absent when there is no date (flat or falling use, fewer than 7 days, beyond 5 years, already full).",
        "gauge",
    );
    for u in usage {
        let (_, f) = crate::forecast::subscriber(history.of(&u.name), u, today, today);
        if let Some(day) = f.full_by() {
            out.sample(name, &[("subscriber", &u.name)], day * DAY_SECONDS);
        }
    }
    let name = "coffre_server_full_by_timestamp_seconds";
    out.family(
        name,
        "When the server's disk (or its bucket's `capacity`) is full at the current pace; absent when there is no date.",
        "gauge",
    );
    if let Some(day) = crate::forecast::server(&history.server, today).full_by() {
        out.sample(name, &[], day * DAY_SECONDS);
    }
}

/// Per-subscriber and per-device gauges.
fn subscribers(out: &mut Exposition, usage: &[Usage]) {
    type Field = fn(&Usage) -> u64;
    let gauges: [(&str, &str, Field); 5] = [
        (
            "coffre_subscriber_used_bytes",
            "Bytes the subscriber costs on the server after dedup, compression, padding and encryption (what the quota limits).",
            |u| u.used_bytes,
        ),
        (
            "coffre_subscriber_quota_bytes",
            "The subscriber's hard quota in bytes.",
            |u| u.quota_bytes,
        ),
        (
            "coffre_subscriber_snapshots",
            "Snapshots the subscriber keeps.",
            |u| u.snapshots,
        ),
        (
            "coffre_subscriber_logical_bytes",
            "Sum of the logical sizes of the subscriber's snapshots, as its clients reported them.",
            |u| u.logical_bytes,
        ),
        (
            "coffre_subscriber_protected_bytes",
            "What the subscriber's data weighs: the logical size of each device's latest snapshot, summed.",
            |u| u.protected_bytes,
        ),
    ];
    for (name, help, field) in gauges {
        out.family(name, help, "gauge");
        for u in usage {
            out.sample(name, &[("subscriber", &u.name)], field(u));
        }
    }
    let name = "coffre_device_last_backup_timestamp_seconds";
    out.family(
        name,
        "Unix time of the device's last successful backup (server clock); 0 if it never backed up (so `time() - this > 3*86400` fires for it too); absent for a technician's admin device that never backed up (it is not expected to).",
        "gauge",
    );
    for u in usage {
        for d in &u.device_backups {
            match (d.last_backup, d.role) {
                (Some(t), _) => {
                    out.sample(name, &[("subscriber", &u.name), ("device", &d.name)], t);
                }
                (None, coffre_store::Role::Backup) => {
                    out.sample(name, &[("subscriber", &u.name), ("device", &d.name)], 0);
                }
                (None, coffre_store::Role::Admin) => {}
            }
        }
    }
    refusals(out, usage);
    clocks(out, usage);
    copies(out, usage);
}

/// Backups refused for quota (issue 20): a counter per device, the time of
/// the last (0: never), and per subscriber the devices whose last backup was
/// refused and that committed nothing since (alert on it above 0).
fn refusals(out: &mut Exposition, usage: &[Usage]) {
    let name = "coffre_device_quota_refusals_total";
    out.family(
        name,
        "Requests of the device refused because its subscriber's quota was full (counted at most once a minute).",
        "counter",
    );
    for u in usage {
        for d in &u.device_backups {
            let labels = [("subscriber", u.name.as_str()), ("device", d.name.as_str())];
            out.sample(name, &labels, d.quota_refusals);
        }
    }
    let name = "coffre_device_last_quota_refusal_timestamp_seconds";
    out.family(
        name,
        "Unix time the device was last refused for quota; 0 if never.",
        "gauge",
    );
    for u in usage {
        for d in &u.device_backups {
            let labels = [("subscriber", u.name.as_str()), ("device", d.name.as_str())];
            out.sample(name, &labels, d.last_quota_refusal.unwrap_or(0));
        }
    }
    let name = "coffre_subscriber_backups_refused";
    out.family(
        name,
        "Devices (not revoked) whose last backup was refused for quota and that committed nothing since.",
        "gauge",
    );
    for u in usage {
        let refused = u
            .device_backups
            .iter()
            .filter(|d| !d.revoked && d.refused_unfinished())
            .count();
        out.sample(name, &[("subscriber", &u.name)], refused);
    }
}

/// Copies of a device's credential refused (issue 17, a cloned disk or a
/// token enrolled twice): a counter per device and the time of the last.
fn copies(out: &mut Exposition, usage: &[Usage]) {
    let name = "coffre_device_copies_refused_total";
    out.family(
        name,
        "Connections refused because they presented a replaced credential of the device (a cloned disk, a token enrolled twice, an installation replaced by device reissue).",
        "counter",
    );
    for u in usage {
        for d in &u.device_backups {
            let labels = [("subscriber", u.name.as_str()), ("device", d.name.as_str())];
            out.sample(name, &labels, d.clone_refusals);
        }
    }
    let name = "coffre_device_last_copy_refused_timestamp_seconds";
    out.family(
        name,
        "Unix time of the last connection refused with a replaced credential of the device; 0 if none was.",
        "gauge",
    );
    for u in usage {
        for d in &u.device_backups {
            let labels = [("subscriber", u.name.as_str()), ("device", d.name.as_str())];
            out.sample(name, &labels, d.last_clone_refusal.unwrap_or(0));
        }
    }
}

/// The PCs' clocks (issue 17): each device's skew at its last commit, and
/// per subscriber how many of its devices have a clock more than
/// [`CLOCK_SKEW_LIMIT`] off (what the board calls "this PC's clock is
/// wrong"; alert on it above 0).
fn clocks(out: &mut Exposition, usage: &[Usage]) {
    let name = "coffre_device_clock_skew_seconds";
    out.family(
        name,
        "The device's clock minus the server's at its last commit (positive: ahead); absent before its first commit.",
        "gauge",
    );
    for u in usage {
        for d in &u.device_backups {
            if let Some(skew) = d.clock_skew {
                out.sample(name, &[("subscriber", &u.name), ("device", &d.name)], skew);
            }
        }
    }
    let name = "coffre_subscriber_devices_clock_wrong";
    out.family(
        name,
        &format!(
            "Devices (not revoked) whose clock was more than {CLOCK_SKEW_LIMIT} s off the server's at their last commit: their backups are kept, dated by their arrival."
        ),
        "gauge",
    );
    for u in usage {
        let wrong = u.device_backups.iter().filter(|d| clock_wrong(d)).count();
        out.sample(name, &[("subscriber", &u.name)], wrong);
    }
}

/// Dedup trust (issue 17): per subscriber, writer and checker, the chunks
/// of which the checker did not accept the writer's copy and stored its own
/// ("device A's copy failed device B's check: A may be compromised"). A
/// store error leaves these out rather than failing the whole scrape.
fn disputes(out: &mut Exposition, store: &Store, usage: &[Usage]) {
    let name = "coffre_disputed_chunks";
    out.family(
        name,
        "Chunks of which device `checker` did not accept the copy device `writer` stored, and stored its own (both kept): `writer` may be compromised.",
        "gauge",
    );
    for u in usage {
        for d in store.disputes_of(&u.name).unwrap_or_default() {
            out.sample(
                name,
                &[
                    ("subscriber", &u.name),
                    ("writer", &d.writer),
                    ("checker", &d.checker),
                ],
                d.chunks,
            );
        }
    }
}

/// The server's own work: the last run of retention (`prune`) and garbage
/// collection (`gc`), whoever ran it (the nightly run or the command), as
/// recorded in the catalogue. A store error leaves these out rather than
/// failing the whole scrape.
fn maintenance(out: &mut Exposition, store: &Store) {
    let Ok(runs) = store.maintenance_runs() else {
        return;
    };
    type Field = fn(&coffre_store::MaintenanceRun) -> f64;
    let families: [(&str, &str, Field); 3] = [
        (
            "duration_seconds",
            "How long the last run took; 0 before the first run.",
            |r| r.seconds,
        ),
        (
            "last_run_timestamp_seconds",
            "Unix time the last run started; 0 if it never ran (so an alert on its age fires on a server whose nightly run never happened).",
            |r| r.started as f64,
        ),
        (
            "last_run_success",
            "1 if the last run ended without error, 0 if it failed or never ran.",
            |r| f64::from(u8::from(r.ok)),
        ),
    ];
    // Every task's metrics exist from the daemon's start (issue 20): a task
    // that never ran reads as a run at time 0 that did not succeed.
    let never = |task: &str| coffre_store::MaintenanceRun {
        task: task.to_string(),
        started: 0,
        seconds: 0.0,
        ok: false,
    };
    for (suffix, help, field) in families {
        for task in ["prune", "gc", "verify"] {
            let name = format!("coffre_{task}_{suffix}");
            out.family(
                &name,
                &format!("{} ({task}).", help.trim_end_matches('.')),
                "gauge",
            );
            match runs.iter().find(|r| r.task == task) {
                Some(r) => out.sample(&name, &[], field(r)),
                None => out.sample(&name, &[], field(&never(task))),
            }
        }
    }
}

/// A text exposition being written.
#[derive(Debug, Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// The `# HELP` and `# TYPE` lines of a metric family.
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample: `name{label="value",...} value`.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", label_value(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value escaped as the format requires: `\` `"` and line feeds.
pub fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label_value("x\ny"), "x\\ny");
        let mut e = Exposition::default();
        e.sample("m", &[("s", "q\"")], 1_700_000_000);
        e.sample("n", &[], 0.5);
        assert_eq!(e.text, "m{s=\"q\\\"\"} 1700000000\nn 0.5\n");
    }
}
