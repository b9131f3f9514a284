//! The history on the board's page (issue 20): a 12-month chart on each
//! structure's card, drawn here as inline SVG (no JavaScript, no file to
//! fetch, 2 to 3 KB a card), the "full by" sentence under it, and the
//! server's line in the header. The words of both languages are here, not
//! in `i18n::Text`.
//!
//! [`Charts::load`] reads the history of every shown structure in one query
//! (`Store::history`) and computes each forecast ([`crate::forecast`]);
//! [`Charts::default`] draws nothing (the page without history, as its
//! older tests render it).
//!
//! The chart: used bytes (solid blue, what the quota counts), the quota
//! (dashed red, stepped when it changed), and the data size (dotted grey,
//! each PC's latest backup) when it fits the same scale; one tick a month,
//! a label every third; the top of the scale labelled. Accessible: the
//! `<svg>` is `role="img"` with a `<title>` and an `aria-label` that says
//! in words what the lines show; the legend is text beside it.

use std::collections::HashMap;
use std::fmt::Write;

use anyhow::Result;
use coffre_store::history::{civil, day_of};
use coffre_store::{DayUsage, ServerDay, Store};

use super::html::escape;
use super::i18n::{Lang, EN_MONTHS, FR_MONTHS};
use crate::forecast::{self, Forecast, HORIZON_DAYS, MIN_DAYS};
use crate::usage::Row;

/// Days the chart spans.
pub const CHART_DAYS: i64 = 365;

const NBSP: char = '\u{a0}';

/// The history of the shown structures and of the server, ready to draw.
#[derive(Debug, Default, Clone)]
pub struct Charts {
    today: i64,
    subscribers: HashMap<String, Trend>,
    server: Option<ServerTrend>,
}

/// One structure's lines over the chart's span (today's from the live
/// figures) and its forecast.
#[derive(Debug, Clone)]
pub struct Trend {
    /// Oldest first; the last is today's.
    pub lines: Vec<DayUsage>,
    /// When its quota fills at the current pace.
    pub forecast: Forecast,
}

/// The server's latest line and its forecast.
#[derive(Debug, Clone)]
pub struct ServerTrend {
    /// The latest line recorded.
    pub latest: ServerDay,
    /// When its disk or bucket fills at the current pace.
    pub forecast: Forecast,
}

impl Charts {
    /// Reads the last [`CHART_DAYS`] of history of the structures of `rows`
    /// (one query) and of the server, as of `now` (Unix seconds).
    pub fn load<'a>(
        store: &Store,
        rows: impl IntoIterator<Item = &'a Row>,
        now: i64,
    ) -> Result<Charts> {
        let rows: Vec<&Row> = rows.into_iter().collect();
        let today = day_of(now);
        let names: Vec<String> = rows.iter().map(|r| r.usage.name.clone()).collect();
        let history = store.history(Some(&names), today - CHART_DAYS)?;
        Ok(Charts::new(history, rows, today))
    }

    /// [`Charts::load`] from a history already read.
    pub fn new<'a>(
        mut history: coffre_store::History,
        rows: impl IntoIterator<Item = &'a Row>,
        today: i64,
    ) -> Charts {
        let subscribers = rows
            .into_iter()
            .map(|r| {
                let u = &r.usage;
                let lines = history.subscribers.remove(&u.name).unwrap_or_default();
                let (lines, forecast) = forecast::subscriber(&lines, u, today, today - CHART_DAYS);
                (u.name.clone(), Trend { lines, forecast })
            })
            .collect();
        let server = history.server.last().map(|&latest| ServerTrend {
            latest,
            forecast: forecast::server(&history.server, today),
        });
        Charts {
            today,
            subscribers,
            server,
        }
    }

    /// A structure's trend, if loaded.
    pub fn of(&self, name: &str) -> Option<&Trend> {
        self.subscribers.get(name)
    }

    /// The server's, if a line was ever recorded.
    pub fn server(&self) -> Option<&ServerTrend> {
        self.server.as_ref()
    }
}

/// A day as each language writes it: "14 mars 2027" / "14 March 2027".
pub fn date(lang: Lang, day: i64) -> String {
    let (y, m, d) = civil(day);
    let m = (m as usize).clamp(1, 12) - 1;
    match lang {
        Lang::Fr => format!("{d}{NBSP}{} {y}", FR_MONTHS[m]),
        Lang::En => format!("{d}{NBSP}{} {y}", EN_MONTHS[m]),
    }
}

/// What fills: a structure's quota or the server's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A structure's quota.
    Quota,
    /// The server's disk or bucket.
    Storage,
}

/// The sentence under a chart: "Plein vers le 14 mars 2027 au rythme
/// actuel (+1,2 Go par mois)." / "Full by 14 March 2027 at the current
/// pace (+1.2 GB a month)."
pub fn full_by(lang: Lang, forecast: &Forecast, limit: Limit) -> String {
    let month = |bytes_per_day: f64| lang.bytes((bytes_per_day * 30.44).max(0.0) as u64);
    let years = HORIZON_DAYS / 365;
    match (lang, forecast, limit) {
        (Lang::Fr, Forecast::FullBy { day, bytes_per_day }, _) => format!(
            "Plein vers le {} au rythme actuel (+{} par mois).",
            date(lang, *day),
            month(*bytes_per_day)
        ),
        (Lang::En, Forecast::FullBy { day, bytes_per_day }, _) => format!(
            "Full by {} at the current pace (+{} a month).",
            date(lang, *day),
            month(*bytes_per_day)
        ),
        (Lang::Fr, Forecast::Full, Limit::Quota) => {
            "Plein\u{a0}: le quota est atteint, les nouvelles sauvegardes sont refusées.".into()
        }
        (Lang::En, Forecast::Full, Limit::Quota) => {
            "Full: the quota is reached; new backups are refused.".into()
        }
        (Lang::Fr, Forecast::Full, Limit::Storage) => {
            "Plein\u{a0}: le stockage du serveur est rempli.".into()
        }
        (Lang::En, Forecast::Full, Limit::Storage) => "Full: the server's storage is full.".into(),
        (Lang::Fr, Forecast::NotAtThisPace { bytes_per_day }, _) if *bytes_per_day > 0.0 => {
            format!(
                "Pas plein à ce rythme\u{a0}: à +{} par mois, il faudrait plus de {years}{NBSP}ans.",
                month(*bytes_per_day)
            )
        }
        (Lang::En, Forecast::NotAtThisPace { bytes_per_day }, _) if *bytes_per_day > 0.0 => {
            format!(
                "Not full at this pace: at +{} a month, it would take more than {years}{NBSP}years.",
                month(*bytes_per_day)
            )
        }
        (Lang::Fr, Forecast::NotAtThisPace { .. }, _) => {
            "Pas plein à ce rythme\u{a0}: la place utilisée est stable ou baisse depuis un mois."
                .into()
        }
        (Lang::En, Forecast::NotAtThisPace { .. }, _) => {
            "Not full at this pace: the space used has been flat or falling for a month.".into()
        }
        (Lang::Fr, Forecast::TooFewDays { days }, _) => format!(
            "Pas encore de date de remplissage\u{a0}: il faut {MIN_DAYS}{NBSP}jours \
             d’historique ({days} pour l’instant)."
        ),
        (Lang::En, Forecast::TooFewDays { days }, _) => format!(
            "No “full by” date yet: it takes {MIN_DAYS}{NBSP}days of history ({days} so far)."
        ),
        (Lang::Fr, Forecast::NoLimit, _) => {
            "Capacité du stockage inconnue\u{a0}: pas de date de remplissage.".into()
        }
        (Lang::En, Forecast::NoLimit, _) => "Storage capacity unknown: no “full by” date.".into(),
    }
}

/// The server's line in the page's header: what is stored, the room left,
/// and when it fills.
pub fn server_line(html: &mut String, charts: &Charts, lang: Lang) {
    let Some(s) = charts.server() else {
        return;
    };
    let l = &s.latest;
    let room = match (lang, l.free_bytes, l.capacity_bytes) {
        (Lang::Fr, Some(free), Some(cap)) => {
            format!(
                " Disque{NBSP}: {} libres sur {}.",
                lang.bytes(free),
                lang.bytes(cap)
            )
        }
        (Lang::En, Some(free), Some(cap)) => {
            format!(" Disk: {} free of {}.", lang.bytes(free), lang.bytes(cap))
        }
        (Lang::Fr, None, Some(cap)) => format!(" Capacité{NBSP}: {}.", lang.bytes(cap)),
        (Lang::En, None, Some(cap)) => format!(" Capacity: {}.", lang.bytes(cap)),
        _ => String::new(),
    };
    let stored = match lang {
        Lang::Fr => format!("Serveur{NBSP}: {} stockés.", lang.bytes(l.stored_bytes)),
        Lang::En => format!("Server: {} stored.", lang.bytes(l.stored_bytes)),
    };
    let _ = writeln!(
        html,
        "<p class=\"server\">{}{} {}</p>",
        escape(&stored),
        escape(&room),
        escape(&full_by(lang, &s.forecast, Limit::Storage))
    );
}

/// A structure's chart and "full by" sentence, if the history was loaded.
pub fn card(html: &mut String, charts: &Charts, row: &Row, lang: Lang) {
    let Some(trend) = charts.of(&row.usage.name) else {
        return;
    };
    if trend.lines.len() >= 2 {
        svg(html, charts.today, trend, &row.usage.name, lang);
    } else {
        let first = match lang {
            Lang::Fr => {
                "La courbe des 12 derniers mois apparaîtra quand le serveur aura noté \
                         quelques jours."
            }
            Lang::En => {
                "The chart of the last 12 months appears once the server has recorded \
                         a few days."
            }
        };
        let _ = writeln!(html, "<p class=\"k\">{}</p>", escape(first));
    }
    let _ = writeln!(
        html,
        "<p class=\"forecast\">{}</p>",
        escape(&full_by(lang, &trend.forecast, Limit::Quota))
    );
}

/// Month names on the chart's axis.
const FR_SHORT: [&str; 12] = [
    "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
    "déc.",
];
const EN_SHORT: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The chart's frame (viewBox units).
const W: f64 = 320.0;
const X0: f64 = 2.0;
const X1: f64 = 318.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 104.0;
const H: f64 = 120.0;

const USED: &str = "#1f4fa3";
const QUOTA: &str = "#c62828";
const DATA: &str = "#6b7280";

fn svg(html: &mut String, today: i64, trend: &Trend, name: &str, lang: Lang) {
    let lines = &trend.lines;
    // The span: the last 12 months, or since the first line when the
    // history is younger (at least a month), so a new server's chart is
    // not a line squeezed against its right edge.
    let start = lines[0].day.max(today - CHART_DAYS).min(today - 30);
    let span = (today - start) as f64;
    let max = |f: fn(&DayUsage) -> u64| lines.iter().map(f).max().unwrap_or(0);
    let (max_used, max_data) = (max(|l| l.used_bytes), max(|l| l.data_bytes));
    // The scale: today's quota and the most used; an older, higher quota
    // is drawn at the top edge (a lowered quota would flatten the rest).
    let base = max_used.max(lines[lines.len() - 1].quota_bytes).max(1);
    // The data size is drawn when it fits a scale at most 1.5 times that
    // (its saving is said in words on the card anyway).
    let with_data = max_data > 0 && (max_data as f64) <= base as f64 * 1.5;
    let top = nice_ceiling(if with_data { base.max(max_data) } else { base });
    let x = |day: i64| X0 + (day - start) as f64 / span * (X1 - X0);
    let y = |bytes: u64| BOTTOM - bytes.min(top) as f64 / top as f64 * (BOTTOM - TOP);
    let points = |f: fn(&DayUsage) -> u64| path(lines.iter().map(|l| (x(l.day), y(f(l)))));
    // The quota in steps: it changes at the day it was set.
    let mut steps = Vec::with_capacity(lines.len() + 4);
    let mut last: Option<u64> = None;
    for l in lines {
        if let Some(q) = last.filter(|&q| q != l.quota_bytes) {
            steps.push((x(l.day), y(q)));
        }
        steps.push((x(l.day), y(l.quota_bytes)));
        last = Some(l.quota_bytes);
    }
    let quota = path(steps.into_iter());

    let (first, now) = (lines[0], lines[lines.len() - 1]);
    // In the quota's units, as the card's own line says it (issue 20).
    let bytes = |n: u64| lang.bytes_like(n, now.quota_bytes);
    let whole_year = today - start >= CHART_DAYS;
    let (title, label, legend) = match lang {
        Lang::Fr => (
            if whole_year {
                format!("Place utilisée sur 12 mois{NBSP}: {name}")
            } else {
                format!(
                    "Place utilisée depuis le {}{NBSP}: {name}",
                    date(lang, start)
                )
            },
            format!(
                "Place utilisée{NBSP}: {} le {}, {} aujourd’hui{NBSP}; quota {}{}.",
                bytes(first.used_bytes),
                date(lang, first.day),
                bytes(now.used_bytes),
                bytes(now.quota_bytes),
                if with_data {
                    format!("{NBSP}; données {}", bytes(now.data_bytes))
                } else {
                    String::new()
                }
            ),
            ["utilisé", "quota", "données"],
        ),
        Lang::En => (
            if whole_year {
                format!("Space used over 12 months: {name}")
            } else {
                format!("Space used since {}: {name}", date(lang, start))
            },
            format!(
                "Space used: {} on {}, {} today; quota {}{}.",
                bytes(first.used_bytes),
                date(lang, first.day),
                bytes(now.used_bytes),
                bytes(now.quota_bytes),
                if with_data {
                    format!("; data {}", bytes(now.data_bytes))
                } else {
                    String::new()
                }
            ),
            ["used", "quota", "data"],
        ),
    };
    let _ = write!(
        html,
        "<svg class=\"chart\" role=\"img\" aria-label=\"{label}\" viewBox=\"0 0 {W} {H}\" \
         width=\"100%\" font-size=\"10\" font-family=\"sans-serif\" fill=\"#5a6272\">\
         <title>{title}</title>\
         <line x1=\"{X0}\" y1=\"{TOP}\" x2=\"{X1}\" y2=\"{TOP}\" stroke=\"#e3e5ea\"/>\
         <line x1=\"{X0}\" y1=\"{BOTTOM}\" x2=\"{X1}\" y2=\"{BOTTOM}\" stroke=\"#c9ccd3\"/>\
         <text x=\"{X0}\" y=\"{ty}\">{top_label}</text>",
        label = escape(&label),
        title = escape(&title),
        ty = TOP - 3.0,
        top_label = escape(&lang.bytes(top)),
    );
    // A tick at each month's first day, its name every third month.
    let (y0, m0, _) = civil(start);
    let mut month = y0 * 12 + i64::from(m0); // the month after the start's
    loop {
        let (y, m) = (month.div_euclid(12), month.rem_euclid(12));
        let day = days_from_civil(y, m as u32 + 1, 1);
        if day > today {
            break;
        }
        let tx = x(day);
        let _ = write!(
            html,
            "<line x1=\"{tx:.0}\" y1=\"{BOTTOM}\" x2=\"{tx:.0}\" y2=\"{:.0}\" stroke=\"#c9ccd3\"/>",
            BOTTOM + 3.0
        );
        // Every month's name on a short span, every third on a year.
        if span <= 120.0 || m % 3 == 0 {
            let short = match lang {
                Lang::Fr => FR_SHORT[m as usize],
                Lang::En => EN_SHORT[m as usize],
            };
            let text = if m == 0 {
                format!("{short} {y}")
            } else {
                short.to_string()
            };
            let _ = write!(
                html,
                "<text x=\"{tx:.0}\" y=\"{:.0}\" text-anchor=\"{anchor}\">{}</text>",
                H - 3.0,
                escape(&text),
                // Near an edge, the label stays inside the chart.
                anchor = if tx > W - 30.0 {
                    "end"
                } else if tx < 30.0 {
                    "start"
                } else {
                    "middle"
                }
            );
        }
        month += 1;
    }
    let _ = write!(
        html,
        "<polyline points=\"{quota}\" fill=\"none\" stroke=\"{QUOTA}\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>"
    );
    if with_data {
        let _ = write!(
            html,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{DATA}\" stroke-width=\"1.5\" stroke-dasharray=\"1.5 2.5\"/>",
            points(|l| l.data_bytes)
        );
    }
    let _ = writeln!(
        html,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{USED}\" stroke-width=\"2\" stroke-linejoin=\"round\"/></svg>",
        points(|l| l.used_bytes)
    );
    let _ = write!(
        html,
        "<p class=\"legend\" aria-hidden=\"true\"><span style=\"color:{USED}\">━</span>{NBSP}{} \
         <span style=\"color:{QUOTA}\">╍</span>{NBSP}{}",
        legend[0], legend[1]
    );
    if with_data {
        let _ = write!(
            html,
            " <span style=\"color:{DATA}\">┈</span>{NBSP}{}",
            legend[2]
        );
    }
    html.push_str("</p>\n");
}

/// A polyline's `points`, as small as the drawing allows: whole units (a
/// card is about 300 px wide, the chart 120 units high), at most two
/// points per x (the first and the last: a step stays vertical), and the
/// inner points of a level run dropped (a quota that never changed is two
/// points).
fn path(points: impl Iterator<Item = (f64, f64)>) -> String {
    let mut by_x: Vec<(i64, i64)> = Vec::new();
    for (x, y) in points {
        let p = (x.round() as i64, y.round() as i64);
        let n = by_x.len();
        if n >= 2 && by_x[n - 2].0 == p.0 && by_x[n - 1].0 == p.0 {
            by_x[n - 1] = p;
        } else {
            by_x.push(p);
        }
    }
    by_x.dedup();
    let mut out = String::with_capacity(by_x.len() * 7);
    for (i, &(x, y)) in by_x.iter().enumerate() {
        let inner = i > 0 && i + 1 < by_x.len() && by_x[i - 1].1 == y && by_x[i + 1].1 == y;
        if inner {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{x},{y}");
    }
    out
}

/// The smallest of 1, 2, 2.5, 5 × 10^k (in bytes) at or above `v`, so the
/// top of the scale reads "50 GB", not "52.3 GB".
fn nice_ceiling(v: u64) -> u64 {
    let mut unit = 1u64;
    while unit.saturating_mul(10) <= v {
        unit *= 10;
    }
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        let c = (unit as f64 * step) as u64;
        if c >= v {
            return c;
        }
    }
    unit.saturating_mul(10)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's
/// `days_from_civil`, the inverse of `coffre_store::history::civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_store::{DeviceUsage, History, Usage};

    const GB: u64 = 1_000_000_000;

    fn row(name: &str, used: u64, quota: u64) -> Row {
        let usage = Usage {
            name: name.into(),
            quota_bytes: quota,
            used_bytes: used,
            snapshots: 4,
            logical_bytes: 0,
            last_backup: None,
            devices: 1,
            protected_bytes: used * 2,
            device_backups: vec![DeviceUsage {
                last_backup: Some(1_800_000_000),
                snapshots: 4,
                latest_bytes: used * 2,
                ..DeviceUsage::named("pc")
            }],
        };
        Row::new(usage, 1_800_000_000, 3)
    }

    #[test]
    fn dates_and_days_agree() {
        for day in [0, 59, 60, 11_016, 20_466, 24_000] {
            let (y, m, d) = civil(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(
            date(Lang::Fr, days_from_civil(2027, 3, 14)),
            "14\u{a0}mars 2027"
        );
        assert_eq!(
            date(Lang::En, days_from_civil(2027, 3, 14)),
            "14\u{a0}March 2027"
        );
        assert_eq!(nice_ceiling(52 * GB), 100 * GB);
        assert_eq!(nice_ceiling(50 * GB), 50 * GB);
        assert_eq!(nice_ceiling(21 * GB), 25 * GB);
        assert_eq!(nice_ceiling(1), 1);
        // A level run is its two ends; two points at most per whole x.
        let flat = (0..100).map(|i| (f64::from(i) * 0.5, 14.0));
        assert_eq!(path(flat), "0,14 50,14");
        assert_eq!(
            path([(1.0, 10.0), (1.2, 12.34), (2.0, 9.0)].into_iter()),
            "1,10 1,12 2,9"
        );
    }

    #[test]
    fn a_year_of_growth_is_a_small_accessible_chart() {
        let today = day_of(1_800_000_000);
        let mut h = History::default();
        // A year of +40 MB a day, thinned as the store keeps it.
        let lines: Vec<DayUsage> = (1..=CHART_DAYS)
            .rev()
            .map(|age| today - age)
            .filter(|&d| today - d < 100 || d % 7 == 0)
            .map(|d| DayUsage {
                day: d,
                used_bytes: 2 * GB + (d - today + CHART_DAYS) as u64 * 40_000_000,
                quota_bytes: 50 * GB,
                data_bytes: 0,
                snapshots: 10,
            })
            .collect();
        h.subscribers.insert("jardins".into(), lines);
        let r = row("jardins", 16_600_000_000, 50 * GB);
        let charts = Charts::new(h, std::slice::from_ref(&r), today);
        let mut html = String::new();
        card(&mut html, &charts, &r, Lang::En);
        assert!(html.contains("role=\"img\""), "{html}");
        assert!(html.contains("<title>Space used over 12 months: jardins</title>"));
        assert!(html.contains("aria-label=\"Space used: "), "{html}");
        assert!(
            html.contains("16.6\u{a0}GB today; quota 50\u{a0}GB"),
            "{html}"
        );
        assert!(html.contains("Full by "), "{html}");
        assert!(html.contains("at the current pace"), "{html}");
        assert!(!html.contains("<script"));
        assert!(html.len() < 4_500, "{} bytes: {html}", html.len());
        // Used grows 40 MB a day: 33.4 GB left at 16.6 GB, 835 days.
        let trend = charts.of("jardins").unwrap();
        assert_eq!(trend.forecast.full_by(), Some(today + 835));
    }
}
