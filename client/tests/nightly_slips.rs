//! Slips of the night lose nothing (issue 18): a path missing from `paths`
//! (an unplugged USB disk) is a warning and the rest is backed up, recorded
//! as a problem that `coffre status`, the board's page and the usage report
//! show; the summary counts new, changed, unchanged and deleted files in
//! correct English; the hooks of config.toml run before and after the
//! backup, a failed or hanging before hook is recorded and the backup runs
//! all the same. The real daemon on loopback, the real `coffre` program.

#![cfg(unix)]

mod support;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use coffre_core::benchmark::{random_bytes, text_bytes};
use coffre_server::{
    bind_dashboard, serve_dashboard, status_words, DashboardOptions, DashboardToken,
};
use coffre_store::Role;
use support::{assert_same_tree, Client, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GIB: u64 = 1 << 30;
const BOARD_TOKEN: &str = "board-secret-0123456789";

/// A canonical temporary folder (the walk sees canonical paths).
fn workdir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(tmp.path()).unwrap();
    (tmp, base)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Appends `section` to the client's config.toml.
fn add_to_config(pc: &Client, section: &str) {
    let mut config = fs::read_to_string(&pc.config).unwrap();
    config.push('\n');
    config.push_str(section);
    fs::write(&pc.config, config).unwrap();
}

/// The scheduled runs' log of this installation, wherever its state lives.
fn backup_log(pc: &Client) -> String {
    fn find(dir: &Path) -> Option<PathBuf> {
        for e in fs::read_dir(dir).ok()? {
            let p = e.ok()?.path();
            if p.file_name().is_some_and(|n| n == "backup.log") {
                return Some(p);
            }
            if p.is_dir() {
                if let Some(found) = find(&p) {
                    return Some(found);
                }
            }
        }
        None
    }
    find(pc.dir.path())
        .map(|p| fs::read_to_string(p).unwrap())
        .unwrap_or_default()
}

/// The number of snapshots on the server.
fn snapshots(pc: &Client) -> usize {
    pc.json(&["snapshots"])["snapshots"]
        .as_array()
        .unwrap()
        .len()
}

/// The board's page in `lang`, served by the real dashboard over HTTP.
fn board_page(server: &Server, lang: &str) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = bind_dashboard("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = DashboardOptions {
            token: DashboardToken::new(BOARD_TOKEN).unwrap(),
            stale_days: 3,
        };
        let serving = tokio::spawn(serve_dashboard(
            listener,
            server.store.clone(),
            options,
            async {
                let _ = stopped.await;
            },
        ));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /?lang={lang} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Authorization: Bearer {BOARD_TOKEN}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
            .await
            .expect("the dashboard answers within 20 s")
            .unwrap();
        let _ = stop.send(());
        serving.await.unwrap().unwrap();
        let page = String::from_utf8(raw).unwrap();
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        page
    })
}

/// The usage report's words for subscriber `name`, as `coffre-server usage`
/// prints them.
fn usage_words(server: &Server, name: &str) -> Vec<String> {
    let now = coffre_core::Timestamp::now().secs;
    let usage = server.store.usage().unwrap();
    let u = usage.into_iter().find(|u| u.name == name).unwrap();
    status_words(&u, now, 3)
}

#[test]
fn a_missing_path_is_a_warning_the_rest_is_backed_up_and_the_board_says_so() {
    let server = Server::start();
    let (_tmp, base) = workdir();
    let home = base.join("home");
    fs::create_dir_all(home.join("Documents")).unwrap();
    fs::write(home.join("Documents/bilan.ods"), random_bytes(300_000, 1)).unwrap();
    fs::write(home.join("notes.txt"), text_bytes(50_000, 2)).unwrap();
    let usb = base.join("media/usb");
    let pc = Client::new();
    pc.enrol(
        &server.token("asso", GIB, "pc", Role::Backup),
        &[&home, &usb],
    );

    // One path missing: a warning, exit 3, the snapshot saved.
    let out = pc.run(&["backup", "--json"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("warning: {} does not exist", usb.display())),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["missing"][0], usb.to_str().unwrap(), "{report}");
    assert_eq!(report["problems"], 1, "{report}");
    assert_eq!(report["files"], 2, "{report}");
    assert_eq!(snapshots(&pc), 1);

    // What was there restores byte for byte.
    let target = base.join("restored");
    pc.ok(&[
        "restore",
        "latest",
        "--path",
        home.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--quiet",
    ]);
    assert_same_tree(&home, &target.join("home"));

    // `status` says what was missing, in text and JSON.
    let status = pc.ok(&["status"]);
    assert!(
        status.contains(&format!(
            "saved with problems: 1 path missing: {}",
            usb.display()
        )),
        "{status}"
    );
    assert!(
        status.contains(&format!("path missing: {} (left out)", usb.display())),
        "{status}"
    );
    let json = pc.json(&["status"]);
    assert_eq!(json["last_run"]["result"], "partial", "{json}");
    let problems = json["last_run"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{json}");
    assert!(
        problems[0]
            .as_str()
            .unwrap()
            .contains(usb.to_str().unwrap()),
        "{json}"
    );

    // The server knows the count (never the name): the board and the usage
    // report say the last backup of pc is incomplete.
    let devices = &server.store.usage().unwrap()[0].device_backups;
    assert_eq!(devices[0].latest_problems, 1, "{devices:?}");
    let words = usage_words(&server, "asso");
    assert!(
        words.contains(&"incomplete: last backup of pc incomplete (1 problem)".to_string()),
        "{words:?}"
    );
    let page = board_page(&server, "en");
    assert!(
        page.contains("last backup of pc incomplete (1 problem)"),
        "{page}"
    );
    assert!(page.contains("Backup incomplete"), "{page}");
    let page = board_page(&server, "fr");
    assert!(
        page.contains("dernière sauvegarde de pc incomplète (1\u{a0}problème)"),
        "{page}"
    );
    assert!(!page.contains("media/usb"), "the server never learns names");

    // The disk plugged back in: the next backup is whole again, and so is
    // the board.
    fs::create_dir_all(&usb).unwrap();
    fs::write(usb.join("photo.jpg"), random_bytes(100_000, 3)).unwrap();
    let report = pc.json(&["backup"]);
    assert_eq!(report["problems"], 0, "{report}");
    assert_eq!(usage_words(&server, "asso"), ["ok"]);
    fs::remove_dir_all(base.join("media")).unwrap();

    // Every path missing: nothing is backed up, exit 1, no snapshot.
    let gone = base.join("gone");
    let out = pc.run(&["backup", usb.to_str().unwrap(), gone.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nothing was backed up") && stderr.contains(usb.to_str().unwrap()),
        "{stderr}"
    );
    assert_eq!(snapshots(&pc), 2, "no empty snapshot");
}

#[test]
fn the_summary_counts_new_changed_unchanged_and_deleted_files_in_english() {
    let server = Server::start();
    let (_tmp, base) = workdir();
    let home = base.join("home");
    fs::create_dir_all(&home).unwrap();
    for i in 0..6u64 {
        fs::write(home.join(format!("f{i}.txt")), text_bytes(10_000, i)).unwrap();
    }
    let pc = Client::new();
    pc.enrol(&server.token("asso", GIB, "pc", Role::Backup), &[&home]);
    let first = pc.json(&["backup"]);
    assert_eq!(
        (first["files_new"].as_u64(), first["files_deleted"].as_u64()),
        (Some(6), Some(0)),
        "{first}"
    );

    // Delete 2, change 1, add 1 (files cache: the previous run's files).
    let night = |n: u64| {
        fs::remove_file(home.join(format!("f{}.txt", 2 * n))).unwrap();
        fs::remove_file(home.join(format!("f{}.txt", 2 * n + 1))).unwrap();
        fs::write(
            home.join("changed.txt"),
            text_bytes(12_000 + n as usize, 50 + n),
        )
        .unwrap();
        fs::write(home.join(format!("new{n}.txt")), text_bytes(3_000, 60 + n)).unwrap();
    };
    fs::write(home.join("changed.txt"), text_bytes(5_000, 49)).unwrap();
    pc.json(&["backup"]);
    night(0);
    let report = pc.json(&["backup"]);
    let counts = [
        "files_new",
        "files_changed",
        "files_unchanged",
        "files_deleted",
    ]
    .map(|k| report[k].as_u64().unwrap());
    assert_eq!(counts, [1, 1, 4, 2], "{report}");

    night(1);
    let line = pc.ok(&["backup", "--quiet"]);
    assert!(
        line.contains("saved: 5 files (1 new, 1 changed, 3 unchanged, 2 deleted)"),
        "{line}"
    );

    // Without the files cache, the parent snapshot's trees say what went.
    fs::remove_file(home.join("new0.txt")).unwrap();
    let report = pc.json(&["backup", "--no-cache"]);
    assert_eq!(report["files_deleted"], 1, "{report}");

    // One file: "1 file", never "1 files".
    let one = base.join("one");
    fs::create_dir_all(&one).unwrap();
    fs::write(one.join("seul.txt"), b"un").unwrap();
    let line = pc.ok(&["backup", "--quiet", one.to_str().unwrap()]);
    assert!(line.contains("saved: 1 file (1 new, "), "{line}");
    assert!(!line.contains("1 files"), "{line}");
}

#[test]
fn hooks_run_before_and_after_and_a_failed_one_loses_nothing() {
    let server = Server::start();
    let (_tmp, base) = workdir();
    let home = base.join("home");
    fs::create_dir_all(&home).unwrap();
    fs::write(home.join("notes.txt"), text_bytes(20_000, 1)).unwrap();
    let pc = Client::new();
    pc.enrol(&server.token("asso", GIB, "pc", Role::Backup), &[&home]);
    let dump = home.join("dump.sql");
    let after = base.join("after.txt");

    // A before hook (argv, no shell) writes the dump the backup then saves;
    // an after hook (a shell line) sees how it went.
    add_to_config(
        &pc,
        &format!(
            r#"[hooks]
timeout = "5m"

[[hooks.before]]
name = "database"
command = ["sh", "-c", "echo 'CREATE TABLE membres (nom TEXT);' > '{dump}'; echo dump written"]

[[hooks.after]]
name = "report"
command = "echo \"$COFFRE_BACKUP_STATUS $COFFRE_SNAPSHOT\" > '{after}'"
"#,
            dump = dump.display(),
            after = after.display()
        ),
    );
    let out = pc.run(&["backup", "--json"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("hook database: dump written"), "{stderr}");
    let id = serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let ls = pc.ok(&["ls", "latest", home.to_str().unwrap()]);
    assert!(
        ls.contains("dump.sql"),
        "the hook's dump is in the snapshot: {ls}"
    );
    assert_eq!(
        fs::read_to_string(&after).unwrap().trim(),
        format!("ok {id}")
    );

    // A failing before hook: reported, recorded, and the backup runs.
    let config = fs::read_to_string(&pc.config).unwrap();
    let config = config.replace(
        r#"command = ["sh", "-c", "echo 'CREATE"#,
        r#"command = ["sh", "-c", "echo cannot reach the database >&2; exit 2; echo 'CREATE"#,
    );
    fs::write(&pc.config, config).unwrap();
    fs::write(home.join("notes.txt"), text_bytes(21_000, 2)).unwrap();
    let out = pc.run(&["backup", "--scheduled"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert_eq!(snapshots(&pc), 2, "the snapshot is saved all the same");
    let log = backup_log(&pc);
    assert!(
        log.contains("hook database: cannot reach the database"),
        "the hook's output is in the log: {log}"
    );
    assert!(
        log.contains("before hook database failed: it exited with status 2"),
        "{log}"
    );
    let status = pc.json(&["status"]);
    let problems = status["last_run"]["problems"].to_string();
    assert!(problems.contains("before hook database failed"), "{status}");
    assert!(
        fs::read_to_string(&after).unwrap().starts_with("problems "),
        "the after hook sees the problems"
    );
    assert_eq!(
        server.store.usage().unwrap()[0].device_backups[0].latest_problems,
        1,
        "the snapshot records the failed hook"
    );

    // A hanging before hook is killed at its limit; the backup still runs.
    let config = fs::read_to_string(&pc.config).unwrap();
    let config = config.replace(
        "[[hooks.after]]",
        "[[hooks.before]]\nname = \"stuck\"\ncommand = [\"sleep\", \"600\"]\ntimeout = \"1s\"\n\n[[hooks.after]]",
    );
    fs::write(&pc.config, config).unwrap();
    let started = Instant::now();
    let out = pc.run(&["backup"]);
    let (stdout, stderr) = text(&out);
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "killed at its limit"
    );
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("hook stuck: FAILED: still running after 1 s (its time limit)"),
        "{stderr}"
    );
    assert!(
        stdout.contains("2 hooks failed: database, stuck"),
        "{stdout}"
    );
    assert_eq!(snapshots(&pc), 3);
}
