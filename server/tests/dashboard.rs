//! The board's web page and `/metrics`, served by the real dashboard on
//! loopback from a real store, read by a plain HTTP/1.1 client and by
//! Debian's headless Chromium; and `coffre-server run --dashboard` as an
//! operator starts it.

#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use coffre_core::Timestamp;
use coffre_server::{
    bind_dashboard, render_page, serve_dashboard, DashboardOptions as Options,
    DashboardToken as Token, Lang, Row,
};
use coffre_store::{DeviceUsage, Role, Store, Usage};
use coffre_testkit::{data, Client};
use common::server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "board-secret-0123456789";
const DAY: i64 = 86_400;

// ---------------------------------------------------------------- the data

/// Backs up `chunks` chunks of 100 kB for `device` through the store, as a
/// client does: real encrypted blobs, a pack, a sealed manifest.
fn backup(store: &Store, secret: &[u8; 32], device: &str, seed: u64, chunks: u64) {
    let mut client = Client::new(seed as u8);
    let s = store.authenticate(secret).unwrap();
    let mut pack = store.open_pack(&s);
    let ids = (0..chunks)
        .map(|i| {
            let data = data(seed * 1000 + i, 100_000);
            client.put(store, &s, &mut pack, &data).0
        })
        .collect();
    let manifest = client.seal_manifest(device, Timestamp::now(), ids, 300_000 * chunks, chunks);
    store.commit_snapshot(&s, &mut pack, &manifest).unwrap();
}

/// An association of six structures, one per status:
///
/// | subscriber   | status                                      |
/// | ------------ | ------------------------------------------- |
/// | asso-jardins | ok (backed up just now; the technician's admin laptop never backs up) |
/// | radio-libre  | backup refused for quota 2 hours ago (40 MB left, 2 MB missing) |
/// | coop-velo    | stale (pc-bureau: 5 days), never (pc-neuf)  |
/// | ecole        | never backed up (pc-classe)                 |
/// | petite-asso  | near quota (95 %)                           |
/// | zz-plein     | over quota                                  |
fn association(data: &Path) -> Store {
    let store = Store::create(data).unwrap();
    let gb = 1_000_000_000;
    for name in NAMES {
        store.add_subscriber(name, gb, None).unwrap();
    }
    let device = |sub: &str, dev: &str| store.add_device(sub, dev, Role::Backup).unwrap();
    backup(
        &store,
        &device("asso-jardins", "compta-pc"),
        "compta-pc",
        1,
        3,
    );
    backup(
        &store,
        &device("asso-jardins", "secretariat"),
        "secretariat",
        1,
        2,
    );
    backup(&store, &device("coop-velo", "pc-bureau"), "pc-bureau", 2, 1);
    device("coop-velo", "pc-neuf");
    device("ecole", "pc-classe");
    backup(&store, &device("petite-asso", "pc"), "pc", 3, 4);
    backup(&store, &device("zz-plein", "pc"), "pc", 4, 2);
    backup(&store, &device("radio-libre", "studio"), "studio", 5, 2);
    // The technician's laptop: an admin device, never a backup (issue 20).
    store
        .add_device("asso-jardins", "portable-technicien", Role::Admin)
        .unwrap();
    // Near and over quota: quotas lowered below what is stored (never deletes).
    let used = |name: &str| store.subscriber(name).unwrap().used_bytes;
    let near = used("petite-asso") * 100 / 95;
    store
        .set_subscriber("petite-asso", Some(near), None)
        .unwrap();
    let over = used("zz-plein") / 2;
    store.set_subscriber("zz-plein", Some(over), None).unwrap();
    // pc-bureau's last backup was five days ago: time passes in the catalogue.
    let db = rusqlite::Connection::open(data.join("catalog.sqlite")).unwrap();
    let changed = db
        .execute(
            "UPDATE devices SET last_backup = last_backup - ?1 WHERE name = 'pc-bureau'",
            [5 * DAY],
        )
        .unwrap();
    assert_eq!(changed, 1);
    // radio-libre backed up a day ago; its backup an hour ago was refused
    // for quota (how the daemon records it: client/tests/failures.rs).
    for sql in [
        "UPDATE snapshots SET received = received - 86400
          WHERE device_id = (SELECT id FROM devices WHERE name = 'studio')",
        "UPDATE devices SET last_backup = last_backup - 86400 WHERE name = 'studio'",
        "UPDATE packs SET created = created - 86400
          WHERE subscriber_id = (SELECT id FROM subscribers WHERE name = 'radio-libre')",
        "UPDATE devices SET quota_refusals = 3, last_quota_refusal = last_backup + 82800,
                quota_missing = 2000000 WHERE name = 'studio'",
    ] {
        assert!(db.execute(sql, []).unwrap() >= 1, "{sql}");
    }
    // Its quota leaves a megabyte free: the refused backup needed two more.
    let room = used("radio-libre") + 1_000_000;
    store
        .set_subscriber("radio-libre", Some(room), None)
        .unwrap();
    // Ten months of history, as the daemon records it (one line a day): each
    // structure grew steadily to what it uses today, so the cards draw their
    // chart and the near-quota one has a "full by" date.
    let today = store.now().div_euclid(DAY);
    for u in store.usage().unwrap() {
        let id: i64 = db
            .query_row(
                "SELECT id FROM subscribers WHERE name = ?1",
                [&u.name],
                |r| r.get(0),
            )
            .unwrap();
        for age in 1..=300i64 {
            let used = u.used_bytes as i64 * (600 - age) / 600;
            db.execute(
                "INSERT INTO history (subscriber_id, day, used_bytes, quota_bytes, data_bytes,
                                      snapshots, free_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
                rusqlite::params![
                    id,
                    today - age,
                    used,
                    u.quota_bytes as i64,
                    2 * used,
                    u.snapshots as i64
                ],
            )
            .unwrap();
        }
    }
    store
}

const NAMES: [&str; 6] = [
    "asso-jardins",
    "coop-velo",
    "ecole",
    "petite-asso",
    "radio-libre",
    "zz-plein",
];

/// The dashboard of `association` on 127.0.0.1, port 0.
struct Board {
    _tmp: tempfile::TempDir,
    store: Arc<Store>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn board() -> Board {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(association(tmp.path()));
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
    Board {
        _tmp: tmp,
        store,
        addr,
        stop: Some(stop),
        serving,
    }
}

// ----------------------------------------------------- a small HTTP client

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` over HTTP/1.1 with `headers`, one connection per request.
async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("the dashboard answers within 20 s")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let response = Response {
        status,
        headers,
        body: String::new(),
    };
    if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body);
    } else if let Some(len) = response.header("content-length") {
        assert_eq!(body.len(), len.parse::<usize>().unwrap(), "a whole body");
    }
    Response {
        body: String::from_utf8(body).unwrap(),
        ..response
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 4 + size..];
    }
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn basic(user: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_token_opens_the_page_and_the_metrics() {
    let b = board().await;
    for path in ["/", "/metrics", "/?lang=en", "/anything"] {
        for auth in [
            None,
            Some("Bearer wrong-token-0123456789".to_string()),
            Some(basic("board", "wrong-token-0123456789")),
            Some(basic(TOKEN, "")),
            Some(format!("Token {TOKEN}")),
        ] {
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("Authorization", a)])
                .unwrap_or_default();
            let r = get(b.addr, path, &headers).await;
            assert_eq!(r.status, 401, "{path} with {auth:?}");
            assert_eq!(
                r.header("www-authenticate"),
                Some("Basic realm=\"coffre\", charset=\"UTF-8\"")
            );
            assert!(r.body.contains("Mot de passe requis") && r.body.contains("Password required"));
            for name in NAMES {
                assert!(!r.body.contains(name), "a 401 shows nothing");
            }
        }
    }
    for auth in [bearer(), basic("board", TOKEN), basic("", TOKEN)] {
        let r = get(b.addr, "/", &[("Authorization", &auth)]).await;
        assert_eq!(r.status, 200, "{auth}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(r
            .header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'"));
    }
    let missing = get(b.addr, "/nothing", &[("Authorization", &bearer())]).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_speaks_french_first_and_english_on_request() {
    let b = board().await;
    let auth = bearer();
    let page = |accept: Option<&'static str>, path: &'static str| {
        let auth = auth.clone();
        async move {
            let mut headers = vec![("Authorization", auth.as_str())];
            if let Some(a) = accept {
                headers.push(("Accept-Language", a));
            }
            let r = get(b.addr, path, &headers).await;
            assert_eq!(r.status, 200);
            r
        }
    };
    let french = [
        page(None, "/").await,
        page(Some("fr-FR,fr;q=0.9,en;q=0.8"), "/").await,
        page(Some("de-DE,de;q=0.9"), "/").await,
        page(Some("en-US,en;q=0.9"), "/?lang=fr").await,
    ];
    for r in &french {
        assert_eq!(r.header("content-language"), Some("fr"));
        assert!(r.body.contains("<html lang=\"fr\">"));
        assert!(r.body.contains("Sauvegardes des structures adhérentes"));
        assert!(r.body.contains("Quota dépassé"));
        assert!(r.body.contains("Quota presque atteint"));
        assert!(r.body.contains("Sauvegarde en retard"));
        assert!(r.body.contains("Jamais sauvegardé"));
        assert!(r.body.contains("il y a 5\u{a0}jours"), "{}", r.body);
        assert!(r.body.contains("\u{a0}ko utilisés sur 1\u{a0}Go"));
        assert!(r.body.contains("à l’instant"));
    }
    let english = [
        page(Some("en-US,en;q=0.9"), "/").await,
        page(Some("fr;q=0.2,en"), "/").await,
        page(None, "/?lang=en").await,
    ];
    for r in &english {
        assert_eq!(r.header("content-language"), Some("en"));
        assert!(r.body.contains("<html lang=\"en\">"));
        assert!(r.body.contains("Backups of the member structures"));
        assert!(r.body.contains("Over quota"));
        assert!(r.body.contains("Near quota"));
        assert!(r.body.contains("Stale backup"));
        assert!(r.body.contains("Never backed up"));
        assert!(r.body.contains("5\u{a0}days ago"));
        assert!(r.body.contains("\u{a0}kB used of 1\u{a0}GB"));
        assert!(r.body.contains("\u{a0}times less"), "the saving in words");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_appears_what_needs_action_first() {
    let b = board().await;
    let r = get(b.addr, "/", &[("Authorization", &bearer())]).await;
    let html = &r.body;
    let at = |name: &str| {
        html.find(&format!("<h2>{name}</h2>"))
            .unwrap_or_else(|| panic!("{name} is missing"))
    };
    // Backups refused (over quota, a backup refused) first, then stale and
    // never backed up (by name), then near quota, then ok: the technician's
    // admin laptop does not make asso-jardins late (issue 20).
    let order = [
        "radio-libre",
        "zz-plein",
        "coop-velo",
        "ecole",
        "petite-asso",
        "asso-jardins",
    ];
    for pair in order.windows(2) {
        assert!(at(pair[0]) < at(pair[1]), "{} before {}", pair[0], pair[1]);
    }
    for device in [
        "compta-pc",
        "secretariat",
        "pc-bureau",
        "pc-neuf",
        "pc-classe",
    ] {
        assert!(html.contains(device), "{device}");
    }
    assert!(html.contains("name=\"viewport\""), "readable on a phone");
    assert!(
        !html.to_ascii_lowercase().contains("<script"),
        "no JavaScript"
    );
    assert!(html.contains("6\u{a0}structures\u{a0}: 4 demandent une action, 1 à surveiller."));
    // The query narrows the cards (a bookmark of a search): the summary
    // still counts every structure.
    let r = get(
        b.addr,
        "/?lang=en&q=RADIO&status=alarm",
        &[("Authorization", &bearer())],
    )
    .await;
    assert_eq!(r.body.matches("<article").count(), 1, "{}", r.body);
    assert!(r.body.contains("<h2>radio-libre</h2>"));
    assert!(r.body.contains("6 structures: 4 need action, 1 to watch."));
    assert!(r.body.contains("Structures 1 to 1 of 1 matching."));
    assert!(html.contains("poste du technicien (ne sauvegarde pas)"));
    assert!(html.contains("Sauvegarde refusée"));
    assert!(html.contains("il manquait au moins 2\u{a0}Mo."), "{html}");
}

#[test]
fn names_are_escaped() {
    // The store refuses such names; the page escapes them all the same.
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path()).unwrap();
    assert!(store.add_subscriber("<script>", 1, None).is_err());
    let evil = "<script>alert(\"x\")</script>";
    let usage = Usage {
        name: evil.into(),
        quota_bytes: 1000,
        used_bytes: 10,
        snapshots: 1,
        logical_bytes: 10,
        last_backup: Some(0),
        devices: 1,
        protected_bytes: 10,
        device_backups: vec![DeviceUsage::named("<img src=x>")],
    };
    for lang in [Lang::Fr, Lang::En] {
        let html = render_page(vec![Row::new(usage.clone(), 1_000, 3)], lang, 1_000, 3);
        assert!(
            !html.contains("<script") && !html.contains("<img"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
        assert!(html.contains("&lt;img src=x&gt;"));
    }
}

/// `name{labels} value` lines, the labels unescaped.
fn parse_metrics(text: &str) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    let mut out = BTreeMap::new();
    let mut typed = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.push(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap();
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        assert!(typed.iter().any(|t| t == name), "# TYPE before {line}");
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices();
            loop {
                let (start, c) = chars.next().unwrap();
                if c == '}' {
                    rest = &inner[start + 1..];
                    break;
                }
                if c == ',' {
                    continue;
                }
                let eq = inner[start..].find("=\"").unwrap() + start;
                let key = inner[start..eq].to_string();
                for _ in start..eq + 1 {
                    chars.next();
                }
                let mut value = String::new();
                loop {
                    match chars.next().unwrap().1 {
                        '\\' => match chars.next().unwrap().1 {
                            'n' => value.push('\n'),
                            c => value.push(c),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.push((key, value));
            }
        }
        let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        out.insert((name.to_string(), labels), value);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_for_prometheus() {
    let b = board().await;
    // A real garbage collection, and a failed prune, recorded as the nightly
    // run and the commands record them.
    let store = b.store.clone();
    tokio::task::spawn_blocking(move || {
        coffre_server::timed(&store, "gc", || {
            coffre_server::collect_garbage(&store, None, &Default::default())
        })
        .unwrap();
        let failed: anyhow::Result<()> =
            coffre_server::timed(&store, "prune", || anyhow::bail!("disk gone"));
        assert!(failed.is_err());
    })
    .await
    .unwrap();
    let r = get(b.addr, "/metrics", &[("Authorization", &bearer())]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    for family in [
        "coffre_subscriber_used_bytes",
        "coffre_subscriber_quota_bytes",
        "coffre_subscriber_snapshots",
        "coffre_subscriber_logical_bytes",
        "coffre_device_last_backup_timestamp_seconds",
    ] {
        assert!(r.body.contains(&format!("# HELP {family} ")), "{family}");
        assert!(
            r.body.contains(&format!("# TYPE {family} gauge")),
            "{family}"
        );
    }
    let m = parse_metrics(&r.body);
    let runs = b.store.maintenance_runs().unwrap();
    for task in ["gc", "prune"] {
        let run = runs.iter().find(|r| r.task == task).unwrap();
        let get = |suffix: &str| m.get(&(format!("coffre_{task}_{suffix}"), vec![])).copied();
        assert_eq!(get("duration_seconds"), Some(run.seconds), "{task}");
        assert_eq!(get("last_run_timestamp_seconds"), Some(run.started as f64));
        assert_eq!(
            get("last_run_success"),
            Some(if task == "gc" { 1.0 } else { 0.0 })
        );
    }
    let value = |name: &str, labels: &[(&str, &str)]| {
        let key = (
            name.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        );
        m.get(&key).copied()
    };
    for u in b.store.usage().unwrap() {
        let sub = [("subscriber", u.name.as_str())];
        assert_eq!(
            value("coffre_subscriber_used_bytes", &sub),
            Some(u.used_bytes as f64)
        );
        assert_eq!(
            value("coffre_subscriber_quota_bytes", &sub),
            Some(u.quota_bytes as f64)
        );
        assert_eq!(
            value("coffre_subscriber_snapshots", &sub),
            Some(u.snapshots as f64)
        );
        assert_eq!(
            value("coffre_subscriber_logical_bytes", &sub),
            Some(u.logical_bytes as f64)
        );
        for d in &u.device_backups {
            let labels = [("subscriber", u.name.as_str()), ("device", d.name.as_str())];
            assert_eq!(
                value("coffre_device_last_backup_timestamp_seconds", &labels),
                // 0 for never; an admin device that never backed up is absent.
                match (d.last_backup, d.role) {
                    (None, Role::Admin) => None,
                    (t, _) => Some(t.unwrap_or(0) as f64),
                },
                "{}/{}",
                u.name,
                d.name
            );
        }
    }
    assert_eq!(
        value(
            "coffre_subscriber_snapshots",
            &[("subscriber", "asso-jardins")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            "coffre_subscriber_logical_bytes",
            &[("subscriber", "asso-jardins")]
        ),
        Some(1_500_000.0)
    );
    // Never backed up: 0, so an alert on its age fires (issue 20).
    assert_eq!(
        value(
            "coffre_device_last_backup_timestamp_seconds",
            &[("subscriber", "ecole"), ("device", "pc-classe")]
        ),
        Some(0.0)
    );
    // The nightly verify never ran here: its metrics exist all the same,
    // saying "never".
    assert_eq!(
        value("coffre_verify_last_run_timestamp_seconds", &[]),
        Some(0.0)
    );
    assert_eq!(value("coffre_verify_last_run_success", &[]), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_stops_when_told() {
    let mut b = board().await;
    assert_eq!(
        get(b.addr, "/", &[("Authorization", &bearer())])
            .await
            .status,
        200
    );
    // A browser's idle keep-alive connection does not hold the shutdown.
    let idle = TcpStream::connect(b.addr).await.unwrap();
    b.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), &mut b.serving)
        .await
        .expect("the dashboard stops within 10 s")
        .unwrap()
        .unwrap();
    drop(idle);
    assert!(
        TcpStream::connect(b.addr).await.is_err(),
        "nobody listens any more"
    );
}

// ------------------------------------------------------ a real browser

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs headless Chromium with `args`, with its own profile, for at most 90 s.
fn chromium(args: &[String]) -> std::process::Output {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); \
         this test drives a real browser"
    );
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// Where the screenshots go: `COFFRE_SCREENSHOTS` (relative to the
/// workspace), or beside the build, for a person to look at.
fn screenshot_path(name: &str) -> PathBuf {
    match std::env::var_os("COFFRE_SCREENSHOTS") {
        Some(dir) => {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            dir.join(name)
        }
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join(name),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_shows_every_subscriber() {
    let b = board().await;
    // Headless Chromium sends the URL's credentials as Basic authentication.
    let url = format!("http://board:{TOKEN}@{}/", b.addr);
    let dom = {
        // A French browser (Chromium's own default is en-US).
        let args = vec![
            "--accept-lang=fr-FR,fr".to_string(),
            "--dump-dom".to_string(),
            url.clone(),
        ];
        tokio::task::spawn_blocking(move || chromium(&args))
            .await
            .unwrap()
    };
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    // Chromium writes a no-break space back as `&nbsp;`.
    let dom = String::from_utf8(dom.stdout)
        .unwrap()
        .replace("&nbsp;", "\u{a0}");
    assert!(
        dom.contains("Sauvegardes des structures adhérentes"),
        "{dom}"
    );
    for name in NAMES {
        assert!(dom.contains(&format!("<h2>{name}</h2>")), "{name} in {dom}");
    }
    // What a board member checks (issue 20): the red card comes first, and
    // the summary's counts are the cards' colours.
    let cards: Vec<&str> = dom
        .match_indices("<article class=\"card ")
        .map(|(i, _)| dom[i + 21..].split('"').next().unwrap())
        .collect();
    assert_eq!(cards.len(), NAMES.len(), "{cards:?}");
    assert_eq!(cards[0], "over", "the red card first: {cards:?}");
    let act = cards
        .iter()
        .filter(|c| matches!(**c, "over" | "late"))
        .count();
    let watch = cards.iter().filter(|c| **c == "near").count();
    assert!(
        dom.contains(&format!(
            "{}\u{a0}structures\u{a0}: {act} demandent une action, {watch} à surveiller.",
            NAMES.len()
        )),
        "{cards:?}"
    );
    // The totals are the sum of every structure's use and quota.
    let usage = b.store.usage().unwrap();
    let fr = coffre_server::Lang::Fr;
    let used: u64 = usage.iter().map(|u| u.used_bytes).sum();
    let quota: u64 = usage.iter().map(|u| u.quota_bytes).sum();
    assert!(
        dom.contains(&format!(
            "Au total\u{a0}: {} utilisés sur {} attribués",
            fr.bytes(used),
            fr.bytes(quota)
        )),
        "{dom}"
    );

    // The board guide's pictures: French and English, a phone and a
    // desktop. `COFFRE_SCREENSHOTS=docs/board` writes them there (how the
    // guide's copies were made); otherwise beside the build.
    for (file, size, query) in [
        ("board-fr-phone.png", "390,900", "?lang=fr"),
        ("board-fr-phone-whole.png", "390,3600", "?lang=fr"),
        ("board-fr-desktop.png", "1280,1000", "?lang=fr"),
        ("board-en-phone.png", "390,900", "?lang=en"),
        ("board-en-desktop.png", "1280,1000", "?lang=en"),
    ] {
        let path = screenshot_path(file);
        let _ = std::fs::remove_file(&path);
        let args = vec![
            "--accept-lang=fr-FR,fr".to_string(),
            format!("--window-size={size}"),
            "--hide-scrollbars".to_string(),
            format!("--screenshot={}", path.display()),
            format!("{url}{query}"),
        ];
        let out = tokio::task::spawn_blocking(move || chromium(&args))
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let png = std::fs::read(&path).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
        assert!(
            png.len() > 20_000,
            "a page, not a blank: {} bytes",
            png.len()
        );
        println!("screenshot ({size}): {}", path.display());
    }
}

// ------------------------------------------- coffre-server run --dashboard

fn config_token(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("config.toml")).unwrap();
    let config: toml::Table = toml::from_str(&text).unwrap();
    config["dashboard_token"].as_str().unwrap().to_string()
}

fn set_config(data: &Path, edit: impl FnOnce(&mut toml::Table)) {
    let path = data.join("config.toml");
    let mut config: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_the_dashboard_beside_the_daemon_and_stops_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    assert!(server(&data, &["init", "--listen", "127.0.0.1:0"])
        .status
        .success());
    assert!(
        server(&data, &["subscriber", "add", "asso", "--quota", "1GB"])
            .status
            .success()
    );
    let token = config_token(&data);
    assert_eq!(token.len(), 32, "init writes a random token");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("config.toml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "config.toml holds a password");

    // config.toml names a port that is taken; the flag wins over it.
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    set_config(&data, |c| {
        c.insert("dashboard".into(), taken_addr.clone().into());
    });
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_coffre-server"))
        .args(["run", "--dashboard", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("COFFRE_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(daemon.stderr.take().unwrap());
    let addr: SocketAddr = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(log.read_line(&mut line).unwrap() > 0, "the daemon exited");
            if line.contains("dashboard listening") {
                let at = line.find("addr=").unwrap() + 5;
                let addr = line[at..].split_whitespace().next().unwrap();
                // Keep draining the log so the daemon never blocks on it.
                std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
                return addr.parse().unwrap();
            }
        }
    })
    .await
    .unwrap();
    let r = get(
        addr,
        "/?lang=en",
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<h2>asso</h2>"));
    assert_eq!(get(addr, "/", &[]).await.status, 401);

    assert!(Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = daemon.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the dashboard stopped with it"
    );

    // Without the flag, config.toml's address: taken, and said so.
    let out = server(&data, &["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("the dashboard cannot listen on {taken_addr}"))
            && err.contains("is another program using it?"),
        "{err}"
    );
    drop(taken);

    // Without a token, `run --dashboard` refuses to start and says how to add one.
    set_config(&data, |c| {
        c.remove("dashboard_token");
        c.remove("dashboard");
    });
    let out = server(&data, &["run", "--dashboard", "127.0.0.1:0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("the dashboard needs a password") && err.contains("dashboard_token = \""),
        "{err}"
    );
}
