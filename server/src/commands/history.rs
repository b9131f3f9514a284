//! `coffre-server usage --history`: the daily history the daemon records and
//! the "full by" forecast, per subscriber and for the server, as a table,
//! JSON or CSV. The numbers are the board's chart's: the same lines
//! (`Store::history`), today's from the live figures, and the same forecast
//! (`crate::forecast`). Read-only: the daemon records the lines
//! (`crate::history`).

use std::path::Path;

use anyhow::{bail, Result};
use coffre_core::units::format_size;
use coffre_store::history::{civil, day_of, DAY_SECONDS};
use coffre_store::{DayUsage, ServerDay};
use serde_json::{json, Value};

use super::open_store;
use crate::forecast::{self, Forecast, WINDOW_DAYS};

/// Days shown without `--days`.
pub const DEFAULT_DAYS: u32 = 30;

/// Prints the history of the last `days` days (of `only` one subscriber,
/// or of all) and each forecast.
pub fn run(
    data: &Path,
    only: Option<&str>,
    days: Option<u32>,
    json: bool,
    csv: bool,
) -> Result<()> {
    let days = i64::from(days.unwrap_or(DEFAULT_DAYS).max(1));
    let store = open_store(data)?;
    let today = day_of(store.now());
    let since = today - days + 1;
    let mut usage = store.usage()?;
    if let Some(name) = only {
        usage.retain(|u| u.name == name);
        if usage.is_empty() {
            bail!("no subscriber named {name:?}: see `coffre-server subscriber list`");
        }
    }
    let names: Vec<String> = usage.iter().map(|u| u.name.clone()).collect();
    // The forecast needs the last 30 days whatever is shown.
    let history = store.history(Some(&names), today - (days - 1).max(WINDOW_DAYS))?;
    let subscribers: Vec<(&str, u64, u64, Vec<DayUsage>, Forecast)> = usage
        .iter()
        .map(|u| {
            let (lines, f) = forecast::subscriber(history.of(&u.name), u, today, since);
            (u.name.as_str(), u.quota_bytes, u.used_bytes, lines, f)
        })
        .collect();
    let server_forecast = forecast::server(&history.server, today);
    let server: Vec<ServerDay> = history
        .server
        .iter()
        .copied()
        .filter(|l| l.day >= since)
        .collect();

    if json {
        let subs: Vec<Value> = subscribers
            .iter()
            .map(|(name, quota, used, lines, f)| {
                json!({
                    "name": name,
                    "quota_bytes": quota,
                    "used_bytes": used,
                    "forecast": forecast_json(f),
                    "full_by": f.full_by().map(date),
                    "full_by_unix": f.full_by().map(|d| d * DAY_SECONDS),
                    "days": lines.iter().map(|l| json!({
                        "date": date(l.day),
                        "day_unix": l.day * DAY_SECONDS,
                        "used_bytes": l.used_bytes,
                        "quota_bytes": l.quota_bytes,
                        "data_bytes": l.data_bytes,
                        "snapshots": l.snapshots,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let server = json!({
            "forecast": forecast_json(&server_forecast),
            "full_by": server_forecast.full_by().map(date),
            "full_by_unix": server_forecast.full_by().map(|d| d * DAY_SECONDS),
            "days": server.iter().map(|l| json!({
                "date": date(l.day),
                "day_unix": l.day * DAY_SECONDS,
                "stored_bytes": l.stored_bytes,
                "data_bytes": l.data_bytes,
                "snapshots": l.snapshots,
                "free_bytes": l.free_bytes,
                "capacity_bytes": l.capacity_bytes,
            })).collect::<Vec<_>>(),
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "today": date(today),
                "days": days,
                "subscribers": subs,
                "server": server,
            }))?
        );
    } else if csv {
        outln!("kind,name,date,day_unix,used_bytes,quota_bytes,data_bytes,snapshots,free_bytes,full_by,full_by_unix");
        let full_by = |f: &Forecast| {
            f.full_by().map_or_else(
                || ",".to_string(),
                |d| format!("{},{}", date(d), d * DAY_SECONDS),
            )
        };
        for (name, _, _, lines, f) in &subscribers {
            for l in lines {
                outln!(
                    "subscriber,{name},{},{},{},{},{},{},,{}",
                    date(l.day),
                    l.day * DAY_SECONDS,
                    l.used_bytes,
                    l.quota_bytes,
                    l.data_bytes,
                    l.snapshots,
                    full_by(f)
                );
            }
        }
        // The server: what fills it (the file system's used space, or what
        // coffre stores) in `used_bytes`, its capacity in `quota_bytes`.
        for l in &server {
            outln!(
                "server,,{},{},{},{},{},{},{},{}",
                date(l.day),
                l.day * DAY_SECONDS,
                l.filled_bytes(),
                l.capacity_bytes.map(|c| c.to_string()).unwrap_or_default(),
                l.data_bytes,
                l.snapshots,
                l.free_bytes.map(|c| c.to_string()).unwrap_or_default(),
                full_by(&server_forecast)
            );
        }
    } else {
        for (name, quota, used, lines, f) in &subscribers {
            outln!(
                "{name}: {} of {} used; {}",
                format_size(*used),
                format_size(*quota),
                words(f, "the quota")
            );
            table(lines);
        }
        match server.last() {
            Some(l) => {
                let room = match (l.free_bytes, l.capacity_bytes) {
                    (Some(free), Some(cap)) => {
                        format!(", {} free of {}", format_size(free), format_size(cap))
                    }
                    (None, Some(cap)) => format!(", capacity {}", format_size(cap)),
                    _ => ", capacity unknown (set `capacity` in [storage] of config.toml)".into(),
                };
                outln!(
                    "server: {} stored{room}; {}",
                    format_size(l.stored_bytes),
                    words(&server_forecast, "the storage")
                );
            }
            None => outln!("server: no day recorded yet (the daemon records one every hour)"),
        }
        outln!(
            "used = what the quota counts; data = each PC's latest backup; the forecast is the \
             least-squares pace of the last {WINDOW_DAYS} days from today's use (docs/board-guide.md)"
        );
    }
    Ok(())
}

/// A day as `YYYY-MM-DD` (UTC).
fn date(day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn forecast_json(f: &Forecast) -> Value {
    let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
    if let (Some(obj), Some(day)) = (v.as_object_mut(), f.full_by()) {
        obj.insert("day".into(), json!(date(day)));
    }
    v
}

/// The forecast in a sentence: "full by 2027-03-14 at the current pace
/// (+1.2 GiB a month)".
fn words(f: &Forecast, what: &str) -> String {
    let month = |b: f64| format_size((b * 30.44).max(0.0) as u64);
    match f {
        Forecast::FullBy { day, bytes_per_day } => format!(
            "full by {} at the current pace (+{} a month)",
            date(*day),
            month(*bytes_per_day)
        ),
        Forecast::Full => format!("{what} is full"),
        Forecast::NotAtThisPace { bytes_per_day } if *bytes_per_day > 0.0 => format!(
            "not full at this pace (+{} a month: more than {} years)",
            month(*bytes_per_day),
            forecast::HORIZON_DAYS / 365
        ),
        Forecast::NotAtThisPace { .. } => {
            "not full at this pace (flat or falling over the last 30 days)".into()
        }
        Forecast::TooFewDays { days } => format!(
            "no forecast yet ({days} of the {} days of history it needs)",
            forecast::MIN_DAYS
        ),
        Forecast::NoLimit => format!("{what} has no known capacity: no forecast"),
    }
}

fn table(lines: &[DayUsage]) {
    outln!(
        "    {:<10} {:>10} {:>10} {:>10} {:>6}",
        "date",
        "used",
        "quota",
        "data",
        "snaps"
    );
    for l in lines {
        outln!(
            "    {:<10} {:>10} {:>10} {:>10} {:>6}",
            date(l.day),
            format_size(l.used_bytes),
            format_size(l.quota_bytes),
            format_size(l.data_bytes),
            l.snapshots
        );
    }
}
