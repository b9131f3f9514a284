//! The board's page: plain HTML with inline CSS, no JavaScript, readable on a
//! phone. Every text that is not a literal of this file goes through
//! [`escape`] (subscriber and device names are chosen by people).

use std::fmt::Write;

use crate::usage::{Attention, Row, Status};

use super::chart::{self, Charts};
pub use super::html::escape;
use super::i18n::Lang;
use super::view::{self, View, SMALL_BOARD};

/// The page: `rows` in the board's order (what needs action first), in
/// `lang`, as of `now` (Unix seconds), every card (up to a page of them),
/// without the history's charts.
pub fn render(rows: Vec<Row>, lang: Lang, now: i64, stale_days: u32) -> String {
    render_with(rows, lang, now, stale_days, &Charts::default())
}

/// [`render`] with each card's 12-month chart and "full by" date, and the
/// server's line in the header ([`chart`]), from charts already loaded.
pub fn render_with(
    rows: Vec<Row>,
    lang: Lang,
    now: i64,
    stale_days: u32,
    charts: &Charts,
) -> String {
    render_view(rows, &View::default(), lang, now, stale_days, |_| {
        Ok(charts.clone())
    })
    .expect("charts already loaded")
}

/// The page of what `view` selects: the summary and totals count every
/// structure; the cards are those the search, filter and page select
/// ([`view`]), and `charts` loads the history of those only (the dashboard
/// reads it from the store in one query: [`Charts::load`]).
pub fn render_view(
    mut rows: Vec<Row>,
    view: &View,
    lang: Lang,
    now: i64,
    stale_days: u32,
    charts: impl FnOnce(&[&Row]) -> anyhow::Result<Charts>,
) -> anyhow::Result<String> {
    rows.sort_by(Row::board_order);
    let selection = view::select(&rows, view);
    let charts = charts(&selection.shown)?;
    let t = lang.text();
    let count = |a| rows.iter().filter(|r| r.attention() == a).count();
    let mut html = String::with_capacity(4096 + rows.len() * 2048);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"{code}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<header>\n\
         <nav><a href=\"{other_href}\" hreflang=\"{other_code}\" lang=\"{other_code}\">{other}</a></nav>\n\
         <h1>{title}</h1>\n<p class=\"when\">{generated}</p>\n",
        code = lang.code(),
        title = escape(t.title),
        other = escape(t.other_language.0),
        other_code = t.other_language.1,
        other_href = escape(&view::href(
            Lang::from_code(t.other_language.1).unwrap_or(lang),
            view
        )),
        generated = escape(&lang.generated(now)),
    );
    chart::server_line(&mut html, &charts, lang);
    let _ = writeln!(html, "<p class=\"intro\">{}</p>", escape(lang.intro()));
    let (help, items) = lang.help(stale_days);
    let _ = write!(html, "<details><summary>{}</summary><ul>", escape(help));
    for item in items {
        let _ = write!(html, "<li>{}</li>", escape(&item));
    }
    html.push_str("</ul></details>\n");
    let _ = writeln!(
        html,
        "<p class=\"summary\">{}</p>\n<p class=\"totals\">{}</p>",
        escape(&lang.summary(
            rows.len(),
            count(Attention::Alarm) + count(Attention::Act),
            count(Attention::Watch)
        )),
        escape(&view::totals(&rows, lang))
    );
    // An association's dozen stays one glance; a hoster's thousands get a
    // search, filters and pages.
    if rows.len() > SMALL_BOARD {
        view::controls(&mut html, &rows, view, lang);
    }
    view::position(&mut html, &selection, view, lang);
    html.push_str("</header>\n<main>\n");
    if rows.is_empty() {
        let _ = writeln!(html, "<p>{}</p>", escape(t.empty));
    }
    for row in &selection.shown {
        card(&mut html, row, lang, now, &charts);
    }
    html.push_str("</main>\n<footer>\n");
    view::position(&mut html, &selection, view, lang);
    let _ = write!(
        html,
        "<p>{}</p></footer>\n</body>\n</html>\n",
        escape(t.footer)
    );
    Ok(html)
}

/// The CSS class of a status: its colour.
fn class(status: &Status) -> &'static str {
    match status {
        Status::OverQuota | Status::BackupRefused { .. } => "over",
        Status::NearQuota => "near",
        Status::Stale { .. }
        | Status::NeverBackedUp { .. }
        | Status::ClockWrong { .. }
        | Status::Incomplete { .. } => "late",
        Status::CopyRefused { .. } | Status::FrontendSilent { .. } => "over",
        Status::InProgress { .. } => "near",
        Status::Ok => "ok",
    }
}

/// One subscriber's card.
fn card(html: &mut String, row: &Row, lang: Lang, now: i64, charts: &Charts) {
    let t = lang.text();
    let u = &row.usage;
    // The card's edge takes the colour of its worst status; the bar, the
    // quota's alone.
    let worst = row.status.first().map_or("ok", class);
    let quota = row
        .status
        .iter()
        .find(|s| {
            matches!(
                s,
                Status::OverQuota | Status::NearQuota | Status::BackupRefused { .. }
            )
        })
        .map_or("ok", class);
    // On a service of several frontends, which one serves it (issue 22).
    let served_by = match &row.frontend {
        Some(f) => format!(" <small>@{}</small>", escape(f)),
        None => String::new(),
    };
    let _ = write!(
        html,
        "<article class=\"card {worst}\">\n<h2>{name}{served_by}</h2>\n<p class=\"badges\">",
        name = escape(&u.name)
    );
    // One badge per kind of status (two stale PCs make one "stale" badge).
    let mut shown: Vec<&str> = Vec::new();
    for s in &row.status {
        let word = lang.status(s);
        if !shown.contains(&word) {
            shown.push(word);
            let _ = write!(
                html,
                "<span class=\"badge {}\">{}</span>",
                class(s),
                escape(word)
            );
        }
    }
    let _ = write!(
        html,
        "</p>\n<div class=\"bar {quota}\" aria-hidden=\"true\"><span style=\"width:{width:.1}%\"></span></div>\n\
         <p class=\"used\">{used}</p>\n",
        width = row.percent.clamp(0.0, 100.0),
        used = escape(&lang.used_of_quota(u.used_bytes, u.quota_bytes, row.percent)),
    );
    for advice in row.status.iter().filter_map(|s| lang.advice(s)) {
        let _ = writeln!(html, "<p class=\"advice\">{}</p>", escape(&advice));
    }
    chart::card(html, charts, row, lang);
    let _ = write!(
        html,
        "<p><span class=\"k\">{}</span>{}</p>\n<p><span class=\"k\">{}</span>{}</p>\n\
         <p class=\"k\">{}</p>\n<ul class=\"devices\">\n",
        escape(&lang.label(t.snapshots)),
        escape(&lang.integer(u.snapshots)),
        escape(&lang.label(t.saving)),
        escape(&lang.saving(
            row.saving_ratio,
            u.protected_bytes,
            u.used_bytes,
            u.device_backups.iter().map(|d| d.leftover_bytes).sum()
        )),
        escape(lang.label(t.devices).trim_end()),
    );
    if u.device_backups.is_empty() {
        let _ = writeln!(html, "<li>{}</li>", escape(t.no_device));
    }
    for d in &u.device_backups {
        let late = row.status.iter().any(|s| match s {
            Status::Stale { device, .. }
            | Status::NeverBackedUp { device }
            | Status::ClockWrong { device, .. }
            | Status::Incomplete { device, .. }
            | Status::BackupRefused { device, .. } => *device == d.name,
            _ => false,
        });
        // The last backup is when the server received it (its clock), so a
        // PC's forged clock never shows here; a wrong clock is said beside.
        let clock = row
            .status
            .iter()
            .any(|s| matches!(s, Status::ClockWrong { device, .. } if *device == d.name));
        let clock = if clock {
            format!(" · {}", escape(t.clock_wrong))
        } else {
            String::new()
        };
        // "last backup of pc incomplete (1 problem)" beside its time.
        let clock = match row.status.iter().find_map(|s| match s {
            Status::Incomplete { device, problems } if *device == d.name => Some(*problems),
            _ => None,
        }) {
            Some(n) => format!(
                "{clock} · {}",
                escape(&lang.last_backup_incomplete(&d.name, n))
            ),
            None => clock,
        };
        let copied = row
            .status
            .iter()
            .any(|s| matches!(s, Status::CopyRefused { device, .. } if *device == d.name));
        // A long backup on its way: "first backup in progress (12 GB sent,
        // last checkpoint 2 hours ago)" where the last backup would be.
        let progress = row.status.iter().find_map(|s| match s {
            Status::InProgress {
                device,
                first,
                bytes,
                at,
            } if *device == d.name => Some((*first, *bytes, *at)),
            _ => None,
        });
        let clock = match progress {
            Some((false, bytes, at)) => format!(
                "{clock} · {}",
                escape(&lang.in_progress(false, bytes, now - at))
            ),
            _ => clock,
        };
        let when = match (d.last_backup, progress) {
            (None, Some((_, bytes, at))) => format!(
                "<time datetime=\"{}\" title=\"{}\">{}</time>",
                at,
                escape(&lang.date_time(at)),
                escape(&lang.in_progress(true, bytes, now - at))
            ),
            (Some(at), _) => format!(
                "<time datetime=\"{}\" title=\"{}\">{}</time>",
                at,
                escape(&format!("{}: {}", t.last_backup, lang.date_time(at))),
                escape(&lang.ago(now - at))
            ),
            (None, None) if d.role == coffre_store::Role::Admin => escape(t.admin_device),
            (None, None) => escape(t.never),
        };
        let (class, mut revoked) = match (d.revoked, late) {
            (true, _) => (" class=\"revoked\"", format!(" ({})", escape(t.revoked))),
            (false, true) => (" class=\"late\"", String::new()),
            (false, false) => ("", String::new()),
        };
        if copied {
            revoked.push_str(&format!(
                " <span class=\"copy\">({})</span>",
                escape(&lang.copies_refused(d.clone_refusals))
            ));
        }
        let _ = writeln!(
            html,
            "<li{class}><span class=\"dev\">{}</span> <span class=\"ago\">{when}{clock}{revoked}</span></li>",
            escape(&d.name)
        );
    }
    html.push_str("</ul>\n</article>\n");
}

/// Mobile first: one column of cards, more as the screen widens.
const CSS: &str = "
:root{--ok:#1e7b34;--near:#b35000;--over:#c62828;--late:#ffe34d;--ink:#1d2330;--muted:#5a6272}
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:var(--ink);background:#f2f3f6}
header,main,footer{max-width:72rem;margin:0 auto;padding:0 1rem}
header{padding-top:1rem}
nav{float:right;margin:.3rem 0 0 1rem}
nav a{color:#1f4fa3}
h1{font-size:1.45rem;line-height:1.2;margin:.2rem 0 .3rem}
.when{color:var(--muted);margin:0 0 .6rem}
.intro{margin:.4rem 0;max-width:46rem}
details{max-width:46rem;margin:.4rem 0}
summary{color:#1f4fa3;cursor:pointer}
details ul{margin:.4rem 0;padding-left:1.2rem}
details li{margin:.25rem 0}
.summary{font-weight:700;font-size:1.05rem;margin:.8rem 0 1rem}
main{display:grid;gap:1rem;grid-template-columns:repeat(auto-fill,minmax(min(100%,21rem),1fr));align-items:start}
.card{background:#fff;border-radius:.6rem;padding:.9rem 1rem;border-left:.5rem solid var(--ok);box-shadow:0 1px 3px rgba(0,0,0,.14)}
.card.near{border-left-color:var(--near)}
.card.over{border-left-color:var(--over)}
.card.late{border-left-color:#d4a900;background:#fffbe3}
.card p{margin:.35rem 0}
h2{font-size:1.2rem;margin:0;overflow-wrap:anywhere}
.badges{display:flex;flex-wrap:wrap;gap:.35rem}
.badge{padding:.1rem .6rem;border-radius:1rem;font-weight:700;font-size:.9rem}
.badge.ok{background:#e2f2e5;color:var(--ok)}
.badge.near{background:var(--near);color:#fff}
.badge.over{background:var(--over);color:#fff}
.badge.late{background:var(--late);color:#3b2f00;border:1px solid #b38f00}
.bar{height:1.1rem;background:#e3e5ea;border-radius:.55rem;overflow:hidden;margin:.6rem 0 .2rem}
.bar span{display:block;height:100%;min-width:2px;background:var(--ok)}
.bar.near span{background:var(--near)}
.bar.over span{background:var(--over)}
.used{font-weight:700}
.advice{border-left:3px solid var(--muted);padding-left:.5rem}
.k{color:var(--muted)}
p.k{margin-bottom:.1rem}
.devices{list-style:none;margin:0;padding:0}
.devices li{display:flex;flex-wrap:wrap;justify-content:space-between;gap:0 .6rem;padding:.25rem .4rem;border-top:1px solid #eceef2}
.devices li.late{background:var(--late);font-weight:700;border-radius:.3rem}
.devices li.revoked{color:var(--muted)}
.devices .copy{color:var(--over);font-weight:700}
.dev{overflow-wrap:anywhere}
footer{color:var(--muted);font-size:.9rem;padding-bottom:2rem}
.totals{margin:-.6rem 0 .8rem;color:var(--muted)}
.find{display:flex;flex-wrap:wrap;gap:.4rem;align-items:center;margin:.4rem 0}
.find input[type=search]{flex:1 1 12rem;font:inherit;padding:.35rem .5rem;border:1px solid #9aa1ad;border-radius:.35rem}
.find button{font:inherit;padding:.35rem .9rem;border-radius:.35rem;border:1px solid #1f4fa3;background:#1f4fa3;color:#fff}
.filters{display:flex;flex-wrap:wrap;gap:.35rem;margin:.5rem 0}
.chip{padding:.15rem .65rem;border-radius:1rem;text-decoration:none;color:var(--ink);background:#fff;border:1px solid #c9cdd5}
.chip.over{border-color:var(--over)}.chip.late{border-color:#b38f00}.chip.near{border-color:var(--near)}.chip.ok{border-color:var(--ok)}
.chip[aria-current]{background:var(--ink);color:#fff}
.pages{display:flex;flex-wrap:wrap;gap:.3rem .8rem;margin:.6rem 0;color:var(--muted)}
.pages a{color:#1f4fa3}
";

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_store::{DeviceUsage, Usage};

    /// The page without history (the chart's own tests draw it).
    fn page(rows: Vec<Row>, view: &View, lang: Lang, now: i64) -> String {
        render_view(rows, view, lang, now, 3, |_| Ok(Charts::default())).unwrap()
    }

    fn row(name: &str, used: u64, devices: Vec<(&str, Option<i64>)>, now: i64) -> Row {
        let usage = Usage {
            name: name.into(),
            quota_bytes: 1_000_000,
            used_bytes: used,
            snapshots: 4,
            logical_bytes: 0,
            last_backup: None,
            devices: devices.len() as u64,
            protected_bytes: used * 2,
            device_backups: devices
                .into_iter()
                .map(|(n, t)| DeviceUsage {
                    last_backup: t,
                    snapshots: 2,
                    latest_bytes: used,
                    ..DeviceUsage::named(n)
                })
                .collect(),
        };
        Row::new(usage, now, 3)
    }

    #[test]
    fn escapes_what_people_typed() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        let now = 1_800_000_000;
        let html = render(
            vec![row(
                "<script>alert(1)</script>",
                10,
                vec![("<b>pc</b>", None)],
                now,
            )],
            Lang::En,
            now,
            3,
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>pc"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;b&gt;pc&lt;/b&gt;"));
    }

    #[test]
    fn a_card_says_it_in_words() {
        let now = 1_800_000_000;
        let html = render(
            vec![
                row("calm", 100_000, vec![("pc", Some(now - 3 * 3600))], now),
                row(
                    "late",
                    100_000,
                    vec![("old-pc", Some(now - 5 * 86_400))],
                    now,
                ),
            ],
            Lang::Fr,
            now,
            3,
        );
        assert!(html.find("late").unwrap() < html.find("calm").unwrap());
        assert!(html.contains("il y a 5\u{a0}jours"), "{html}");
        assert!(html.contains("Sauvegarde en retard"));
        assert!(html.contains("100\u{a0}ko utilisés sur 1\u{a0}Mo (10\u{a0}%)"));
        assert!(html.contains("width:10.0%"));
        assert!(!html.contains("<script"), "no JavaScript at all");
    }

    #[test]
    fn a_refused_copy_is_a_red_card_in_both_languages() {
        let now = 1_800_000_000;
        let mut r = row("asso", 100_000, vec![("pc", Some(now - 3600))], now);
        r.usage.device_backups[0].clone_refusals = 3;
        r.usage.device_backups[0].last_clone_refusal = Some(now - 60);
        let r = Row::new(r.usage, now, 3);
        let fr = render(vec![r.clone()], Lang::Fr, now, 3);
        assert!(fr.contains("card over"), "{fr}");
        assert!(fr.contains("Copie refusée"), "{fr}");
        assert!(fr.contains("3\u{a0}connexions refusées"), "{fr}");
        assert!(fr.contains("device reissue"), "{fr}");
        let en = render(vec![r], Lang::En, now, 3);
        assert!(en.contains("Copy refused"), "{en}");
        assert!(en.contains("3 connections refused"), "{en}");
    }

    /// Issue 20: a hoster's 10,000 structures make a page of 50 cards with
    /// a search, filters with counts, totals and links to the other pages;
    /// an association's dozen stays one page without any of it.
    #[test]
    fn ten_thousand_structures_make_a_small_page() {
        let now = 1_800_000_000;
        let rows: Vec<Row> = (0..10_000)
            .map(|i| {
                let used = if i % 100 == 7 { 1_000_000 } else { 100_000 };
                row(
                    &format!("asso-{i:05}"),
                    used,
                    vec![("pc", Some(now - 3600))],
                    now,
                )
            })
            .collect();
        let html = page(rows.clone(), &View::default(), Lang::Fr, now);
        assert_eq!(html.matches("<article").count(), view::PAGE_SIZE);
        assert!(html.len() < 200_000, "{} bytes", html.len());
        // The red cards first, and the counts that filter them.
        let first = html.find("<article").unwrap();
        assert!(html[first..].starts_with("<article class=\"card over\">\n<h2>asso-00007</h2>"));
        assert!(
            html.contains("Sauvegardes refusées <b>100</b>"),
            "the filter's count"
        );
        assert!(html.contains("Toutes <b>10\u{202f}000</b>"));
        assert!(html.contains("page 1 sur 200"));
        assert!(html.contains("href=\"?lang=fr&amp;page=2\" rel=\"next\""));
        assert!(html.contains("<input id=\"q\" name=\"q\" type=\"search\""));
        // Totals count everything, not the page: 9,900 × 100 kB + 100 × 1 MB.
        assert!(
            html.contains("1,1\u{a0}Go utilisés sur 10\u{a0}Go attribués (10\u{a0}%)"),
            "totals"
        );
        // A search narrows; the page says how many match.
        let found = page(
            rows.clone(),
            &View::parse(Some("asso-0999"), None, None),
            Lang::En,
            now,
        );
        assert_eq!(found.matches("<article").count(), 10);
        assert!(
            found.contains("Structures 1 to 10 of 10 matching."),
            "{found}"
        );
        let none = page(rows, &View::parse(Some("zzz"), None, None), Lang::En, now);
        assert!(none.contains("No structure matches."));
        assert!(none.contains(">show all</a>"));

        // Twelve: one glance, no form.
        let few: Vec<Row> = (0..12)
            .map(|i| row(&format!("asso-{i}"), 100_000, vec![("pc", Some(now))], now))
            .collect();
        let html = page(few, &View::parse(None, None, Some("2")), Lang::Fr, now);
        assert_eq!(html.matches("<article").count(), 12);
        assert!(
            !html.contains("<form") && !html.contains("class=\"pages\""),
            "{html}"
        );
    }
}
