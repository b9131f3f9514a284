//! The daily history and the "full by" forecast (issue 20) as the operator
//! and the board meet them: the real `coffre-server usage --history` (JSON,
//! CSV, table) on a data directory with recorded days, the real dashboard
//! serving the charts and the sentence in French and English (and
//! `/metrics`), names escaped in the chart, and the page's build time for
//! many structures with a year of history each.

#![cfg(unix)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coffre_core::Timestamp;
use coffre_server::{
    bind_dashboard, render_page_view, render_page_with, serve_dashboard, Charts,
    DashboardOptions as Options, DashboardToken as Token, Lang, PageView, Row,
};
use coffre_store::history::{civil, day_of, DAY_SECONDS};
use coffre_store::{DayUsage, History, ManualClock, PackStorage, Role, Space, Store};
use coffre_testkit::{data, Client};
use common::{ok, one_line_error, server};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GB: u64 = 1_000_000_000;
const TOKEN: &str = "board-secret-0123456789";

fn date(day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// What `grow` made: the day it ends on, the pack size added each day, and
/// the quota set so that the quota is full 51 days after that day.
struct Grown {
    today: i64,
    used_today: u64,
    per_day: u64,
}

/// Subscriber `jardins` backs up one chunk a day for 20 days before `now`
/// and one more on `now`'s day (one pack of the same size each day), the
/// server recording a line after each but today's; the server's disk of
/// 1 TB fills by 1 GB a day (600 GB free 20 days ago). Its quota is then
/// set to what is used plus 50.5 days of growth.
fn grow(store: &Store, clock: &ManualClock, now: i64) -> Grown {
    store.add_subscriber("jardins", 10 * GB, None).unwrap();
    store.add_subscriber("vide", GB, None).unwrap();
    let secret = store.add_device("jardins", "pc", Role::Backup).unwrap();
    let mut client = Client::new(7);
    let mut sizes = Vec::new();
    for age in (0..=20).rev() {
        clock.set(now - age * DAY_SECONDS);
        let s = store.authenticate(&secret).unwrap();
        let before = store.subscriber("jardins").unwrap().used_bytes;
        let mut pack = store.open_pack(&s);
        let (id, _) = client.put(store, &s, &mut pack, &data(100 + age as u64, 50_000));
        if age == 20 {
            // One snapshot: its data weighs 3 MB.
            let manifest = client.seal_manifest(
                "pc",
                Timestamp {
                    secs: clock_now(clock),
                    nanos: 0,
                },
                vec![id],
                3_000_000,
                1,
            );
            store.commit_snapshot(&s, &mut pack, &manifest).unwrap();
        } else {
            store.seal_pack(&s, &mut pack).unwrap();
            sizes.push(store.subscriber("jardins").unwrap().used_bytes - before);
        }
        store.end_session(&s).unwrap();
        if age > 0 {
            let free = 600 * GB - (20 - age) as u64 * GB;
            store
                .record_history(Space {
                    free_bytes: Some(free),
                    capacity_bytes: Some(1_000 * GB),
                })
                .unwrap();
        }
    }
    let per_day = sizes[0];
    assert!(sizes.iter().all(|&s| s == per_day), "{sizes:?}");
    let used_today = store.subscriber("jardins").unwrap().used_bytes;
    store
        .set_subscriber(
            "jardins",
            Some(used_today + 50 * per_day + per_day / 2),
            None,
        )
        .unwrap();
    Grown {
        today: day_of(now),
        used_today,
        per_day,
    }
}

fn clock_now(clock: &ManualClock) -> i64 {
    coffre_store::Clock::now(clock)
}

fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn usage_history_gives_the_days_and_the_full_by_date_as_json_csv_and_a_table() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    ok(&server(&data_dir, &["init", "--listen", "127.0.0.1:7443"]));
    // The command reads the system clock: the days end today.
    let now = system_now();
    let clock = Arc::new(ManualClock::new(now));
    let store = Store::open_with_clock(&data_dir, &PackStorage::Local, clock.clone()).unwrap();
    let g = grow(&store, &clock, now);
    let recorded = store.history(None, 0).unwrap();
    drop(store);
    let full = g.today + 51;

    let out = ok(&server(&data_dir, &["usage", "--history", "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["today"], date(g.today));
    let subs = v["subscribers"].as_array().unwrap();
    assert_eq!(subs.len(), 2);
    let j = subs.iter().find(|s| s["name"] == "jardins").unwrap();
    assert_eq!(j["full_by"], date(full), "{j}");
    assert_eq!(j["full_by_unix"], full * DAY_SECONDS);
    assert_eq!(j["forecast"]["state"], "full_by");
    assert_eq!(
        j["forecast"]["bytes_per_day"].as_f64().unwrap().round() as u64,
        g.per_day
    );
    assert_eq!(j["used_bytes"], g.used_today);
    let days = j["days"].as_array().unwrap();
    assert_eq!(days.len(), 21, "20 recorded days and today's");
    for (d, line) in days.iter().zip(recorded.of("jardins")) {
        assert_eq!(d["date"], date(line.day));
        assert_eq!(d["day_unix"], line.day * DAY_SECONDS);
        assert_eq!(d["used_bytes"], line.used_bytes);
        assert_eq!(d["data_bytes"], 3_000_000);
        assert_eq!(d["snapshots"], 1);
    }
    let last = days.last().unwrap();
    assert_eq!(last["date"], date(g.today));
    assert_eq!(
        last["used_bytes"], g.used_today,
        "today's is the live figure"
    );
    // Without a week of history: no date, and null.
    let vide = subs.iter().find(|s| s["name"] == "vide").unwrap();
    assert!(
        vide["full_by"].is_null() && vide["full_by_unix"].is_null(),
        "{vide}"
    );
    assert_eq!(vide["forecast"]["state"], "not_at_this_pace");
    // The server: 1 GB a day, 581 GB free yesterday.
    let s = &v["server"];
    assert_eq!(s["full_by"], date(g.today - 1 + 581), "{s}");
    assert_eq!(s["days"].as_array().unwrap().len(), 20);
    assert_eq!(s["days"][19]["free_bytes"], 581 * GB);
    assert_eq!(s["days"][19]["capacity_bytes"], 1_000 * GB);

    // --days shows fewer days; the forecast is the same.
    let out = ok(&server(
        &data_dir,
        &[
            "usage",
            "--history",
            "--subscriber",
            "jardins",
            "--days",
            "5",
            "--json",
        ],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["subscribers"].as_array().unwrap().len(), 1);
    assert_eq!(v["subscribers"][0]["days"].as_array().unwrap().len(), 5);
    assert_eq!(v["subscribers"][0]["full_by"], date(full));

    // CSV: the same numbers, one line per subscriber and day.
    let csv = ok(&server(
        &data_dir,
        &["usage", "--history", "--subscriber", "jardins", "--csv"],
    ));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), 11);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 11), "{csv}");
    let subscriber_rows: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == "subscriber").collect();
    assert_eq!(subscriber_rows.len(), 21);
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let today_row = subscriber_rows.last().unwrap();
    assert_eq!(today_row[col("name")], "jardins");
    assert_eq!(today_row[col("date")], date(g.today));
    assert_eq!(today_row[col("used_bytes")], g.used_today.to_string());
    assert_eq!(today_row[col("full_by")], date(full));
    assert_eq!(
        today_row[col("full_by_unix")],
        (full * DAY_SECONDS).to_string()
    );
    let server_rows: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == "server").collect();
    assert_eq!(server_rows.len(), 20);
    assert_eq!(
        server_rows.last().unwrap()[col("used_bytes")],
        (419 * GB).to_string(),
        "what fills the disk: capacity minus free"
    );

    // The table says it in words.
    let table = ok(&server(&data_dir, &["usage", "--history"]));
    assert!(
        table.contains(&format!("full by {} at the current pace", date(full))),
        "{table}"
    );
    assert!(table.contains("server: "), "{table}");

    // Mistakes say what to do.
    let e = one_line_error(&server(
        &data_dir,
        &["usage", "--history", "--subscriber", "nobody"],
    ));
    assert!(e.contains("nobody") && e.contains("subscriber list"), "{e}");
    let e = one_line_error(&server(&data_dir, &["usage", "--days", "3"]));
    assert!(e.contains("--history"), "{e}");
    let help = ok(&server(&data_dir, &["usage", "--help"]));
    assert!(
        help.contains("--history") && help.contains("full_by"),
        "{help}"
    );
}

/// `GET path` with the token; the body.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
    body.to_string()
}

#[tokio::test]
async fn the_board_shows_each_chart_and_its_full_by_date_in_french_and_english() {
    let tmp = tempfile::tempdir().unwrap();
    // 2027-01-15: the dates below do not depend on today.
    let now = 1_800_000_000;
    let clock = Arc::new(ManualClock::new(now));
    let store =
        Arc::new(Store::create_with_clock(tmp.path(), &PackStorage::Local, clock.clone()).unwrap());
    let g = grow(&store, &clock, now);
    clock.set(now);
    let full = g.today + 51;
    let (y, m, d) = civil(full);
    assert_eq!((y, m, d), (2027, 3, 7));

    let listener = bind_dashboard("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = Options {
        token: Token::new(TOKEN).unwrap(),
        stale_days: 3,
    };
    let serving = tokio::spawn(serve_dashboard(listener, store.clone(), options, async {
        let _ = stopped.await;
    }));

    let fr = get(addr, "/?lang=fr").await;
    assert!(
        fr.contains("<svg class=\"chart\" role=\"img\" aria-label=\"Place utilisée"),
        "{fr}"
    );
    // Twenty days of history: the chart spans the last 30 days, and says so.
    assert!(
        fr.contains("<title>Place utilisée depuis le 16\u{a0}décembre 2026\u{a0}: jardins</title>"),
        "{fr}"
    );
    assert!(
        fr.contains("Plein vers le 7\u{a0}mars 2027 au rythme actuel"),
        "{fr}"
    );
    assert!(fr.contains("Serveur\u{a0}: "), "{fr}");
    assert!(
        fr.contains("Disque\u{a0}: 581\u{a0}Go libres sur 1\u{a0}To."),
        "{fr}"
    );
    // 581 GB free yesterday, 1 GB a day: full 580 days from today.
    let server_full = coffre_server_date_fr(g.today - 1 + 581);
    assert!(fr.contains(&format!("Plein vers le {server_full}")), "{fr}");
    // "vide" stays empty: no date.
    assert!(fr.contains("Pas plein à ce rythme"), "{fr}");
    assert!(!fr.contains("<script"));

    let en = get(addr, "/?lang=en").await;
    assert!(
        en.contains("<title>Space used since 16\u{a0}December 2026: jardins</title>"),
        "{en}"
    );
    assert!(
        en.contains("Full by 7\u{a0}March 2027 at the current pace"),
        "{en}"
    );
    assert!(en.contains("Server: "), "{en}");
    assert!(en.contains("Not full at this pace"), "{en}");

    let metrics = get(addr, "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "coffre_subscriber_full_by_timestamp_seconds{{subscriber=\"jardins\"}} {}",
            full * DAY_SECONDS
        )),
        "{metrics}"
    );
    assert!(!metrics.contains("full_by_timestamp_seconds{subscriber=\"vide\"}"));
    assert!(
        metrics.contains(&format!(
            "coffre_server_full_by_timestamp_seconds {}",
            (g.today - 1 + 581) * DAY_SECONDS
        )),
        "{metrics}"
    );
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}

fn coffre_server_date_fr(day: i64) -> String {
    const MONTHS: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    let (y, m, d) = civil(day);
    format!("{d}\u{a0}{} {y}", MONTHS[m as usize - 1])
}

/// A usage line as the store would give it.
fn usage(name: &str, used: u64, quota: u64) -> coffre_store::Usage {
    coffre_store::Usage {
        name: name.into(),
        quota_bytes: quota,
        used_bytes: used,
        snapshots: 3,
        logical_bytes: 0,
        last_backup: None,
        devices: 0,
        protected_bytes: 0,
        device_backups: Vec::new(),
    }
}

#[test]
fn a_name_in_the_chart_is_escaped() {
    let now = 1_800_000_000;
    let today = day_of(now);
    let name = "<script>alert('x')</script>";
    let mut h = History::default();
    h.subscribers.insert(
        name.into(),
        (1..=20)
            .rev()
            .map(|age| DayUsage {
                day: today - age,
                used_bytes: GB + (20 - age) as u64 * 10_000_000,
                quota_bytes: 2 * GB,
                data_bytes: 0,
                snapshots: 3,
            })
            .collect(),
    );
    let rows = vec![Row::new(usage(name, GB + 200_000_000, 2 * GB), now, 3)];
    let charts = Charts::new(h, &rows, today);
    for lang in [Lang::Fr, Lang::En] {
        let html = render_page_with(rows.clone(), lang, now, 3, &charts);
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</title>"),
            "{html}"
        );
        assert!(html.contains("role=\"img\""));
    }
}

/// The page of `COFFRE_PAGE_SUBSCRIBERS` structures (1,000 unless set;
/// docs/performance.md quotes 10,000), each with a line for each of the
/// last 365 days (more than the store keeps: 100 daily, then weekly),
/// built as the dashboard builds it: the usage report, the history of all
/// in one query, the forecasts, the HTML.
#[test]
fn the_page_of_many_structures_with_a_year_each_builds_in_seconds() {
    let n: usize = std::env::var("COFFRE_PAGE_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let tmp = tempfile::tempdir().unwrap();
    let now = 1_800_000_000;
    let today = day_of(now);
    drop(Store::create(tmp.path()).unwrap());
    fill(tmp.path(), n, today);
    let clock = Arc::new(ManualClock::new(now));
    let store = Store::open_with_clock(tmp.path(), &PackStorage::Local, clock.clone()).unwrap();

    let started = Instant::now();
    let rows: Vec<Row> = store
        .usage()
        .unwrap()
        .into_iter()
        .map(|u| Row::new(u, now, 3))
        .collect();
    let usage_took = started.elapsed();
    // The page as the dashboard builds it: the history and forecasts of
    // the shown cards only (a page of 50).
    let t = Instant::now();
    let html = render_page_view(
        rows.clone(),
        &PageView::default(),
        Lang::Fr,
        now,
        3,
        |shown| Charts::load(&store, shown.iter().copied(), now),
    )
    .unwrap();
    let render_took = t.elapsed();
    let total = started.elapsed();
    // Every structure's history and forecast at once (what `usage
    // --history` reads): one query.
    let t = Instant::now();
    let all = Charts::load(&store, &rows, now).unwrap();
    let history_took = t.elapsed();
    assert!(rows.iter().all(|r| all.of(&r.usage.name).is_some()));
    let shown = if n > 12 { n.min(50) } else { n };
    let charts_count = html.matches("<svg class=\"chart\"").count();
    eprintln!(
        "page of {n} structures × 365 days: usage {usage_took:.2?}, the page (its {shown} \
         cards' history, forecasts and HTML) {render_took:.2?}, total {total:.2?}, {} bytes \
         ({} a card); every structure's history and forecast {history_took:.2?}",
        html.len(),
        html.len() / shown.max(1)
    );
    assert_eq!(charts_count, shown);
    assert_eq!(
        html.matches("au rythme actuel").count(),
        shown + 1,
        "every card and the server have a date"
    );
    assert!(total < Duration::from_secs(60), "{total:?}");

    // Recording: today's first line thins the year of daily lines to what
    // the store keeps (100 daily, then weekly); the next day's is the daily
    // case (a few lines a subscriber to thin).
    let t = Instant::now();
    let first = store.record_history(Space::default()).unwrap();
    let first_took = t.elapsed();
    clock.advance(DAY_SECONDS);
    let t = Instant::now();
    let next = store.record_history(Space::default()).unwrap();
    let next_took = t.elapsed();
    let kept = store.history(None, 0).unwrap();
    let lines: usize = kept.subscribers.values().map(Vec::len).sum::<usize>() + kept.server.len();
    let db = rusqlite::Connection::open(tmp.path().join("catalog.sqlite")).unwrap();
    let pragma = |p: &str| -> i64 {
        db.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
            .unwrap()
    };
    let used_bytes = (pragma("page_count") - pragma("freelist_count")) * pragma("page_size");
    eprintln!(
        "recording {n} structures: first of the day with a year to thin {first_took:.2?} \
         ({} lines removed), the next day {next_took:.2?} ({} removed); {lines} lines kept, \
         catalogue {used_bytes} bytes in use ({} per line, subscribers' rows included)",
        first.thinned,
        next.thinned,
        used_bytes / lines as i64
    );
    assert!(kept
        .subscribers
        .values()
        .all(|l| l.len() <= coffre_store::history::MAX_LINES));
    assert_eq!(first.lines, n as u64 + 1);
}

/// `n` subscribers with 365 days of growth each, and the server's days,
/// written straight into the catalogue (the store's API would take an
/// hour to record them).
fn fill(data: &Path, n: usize, today: i64) {
    let mut db = rusqlite::Connection::open(data.join("catalog.sqlite")).unwrap();
    let tx = db.transaction().unwrap();
    {
        let mut sub = tx
            .prepare(
                "INSERT INTO subscribers (id, name, quota_bytes, used_bytes, created)
                 VALUES (?1, ?2, ?3, ?4, 0)",
            )
            .unwrap();
        let mut line = tx
            .prepare(
                "INSERT INTO history (subscriber_id, day, used_bytes, quota_bytes, data_bytes, snapshots, free_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .unwrap();
        for i in 1..=n as i64 {
            let quota = 30 * GB as i64;
            let per_day = 20_000_000 + i * 1_000;
            sub.execute(rusqlite::params![
                i,
                format!("structure-{i:05}"),
                quota,
                10 * GB as i64 + 365 * per_day
            ])
            .unwrap();
            for age in 1..=365 {
                let used = 10 * GB as i64 + (365 - age) * per_day;
                line.execute(rusqlite::params![
                    i,
                    today - age,
                    used,
                    quota,
                    2 * used,
                    30,
                    None::<i64>
                ])
                .unwrap();
            }
        }
        for age in 1..=365 {
            let free = 5_000 * GB as i64 - (365 - age) * 10 * GB as i64;
            line.execute(rusqlite::params![
                0,
                today - age,
                1,
                10_000 * GB as i64,
                1,
                1,
                free
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}
