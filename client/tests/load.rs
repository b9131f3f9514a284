//! Load: many PCs back up at once, again and again, while retention and
//! garbage collection run in a loop on the server. Zero errors; every PC's
//! snapshots check out with their data, and its latest restores byte for
//! byte. Prints throughput and the server's peak memory (this process: the
//! daemon runs in it, the PCs are `coffre` processes).
//!
//! `COFFRE_LOAD_PCS` (default 50) and `COFFRE_LOAD_SECONDS` (default 20)
//! size it; a run by hand can go longer.

#![cfg(unix)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffre_core::benchmark::{random_bytes, text_bytes};
use coffre_store::{GcOptions, Role};
use support::{assert_same_tree, Client, Server};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small PC's tree: documents that compress, a few that do not.
fn small_tree(root: &Path, seed: u64) {
    fs::create_dir_all(root.join("Documents")).unwrap();
    for i in 0..8 {
        fs::write(
            root.join(format!("Documents/note-{i}.txt")),
            text_bytes(20_000, seed * 100 + i),
        )
        .unwrap();
    }
    fs::write(root.join("Documents/scan.pdf"), random_bytes(150_000, seed)).unwrap();
}

/// The next day on that PC: a note grows, a new file appears.
fn change(root: &Path, seed: u64, round: u64) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(root.join("Documents/note-0.txt"))
        .unwrap();
    f.write_all(&text_bytes(3_000, seed * 1000 + round))
        .unwrap();
    fs::write(
        root.join(format!("Documents/new-{round}.bin")),
        random_bytes(30_000, seed * 1000 + round),
    )
    .unwrap();
}

fn peak_mb() -> u64 {
    coffre_testkit::peak_rss_mb()
}

#[test]
fn many_pcs_back_up_at_once_while_retention_and_gc_run() {
    let pcs = env_or("COFFRE_LOAD_PCS", 50);
    let seconds = env_or("COFFRE_LOAD_SECONDS", 20);
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(work.path()).unwrap();
    // Ten structures of up to five PCs; retention keeps the newest per PC
    // (`daily=1`: the whole run is received the same day, which `last=N`
    // would keep whole).
    let mut machines: Vec<(Client, PathBuf, u64)> = Vec::new();
    for k in 0..pcs {
        let sub = format!("structure-{}", k % 10);
        let home = base.join(format!("pc-{k}"));
        small_tree(&home, k);
        let pc = Client::new();
        pc.enrol(
            &server.token(&sub, 1 << 32, &format!("pc-{k}"), Role::Backup),
            &[&home],
        );
        machines.push((pc, home, k));
    }
    for k in 0..10 {
        server
            .store
            .set_subscriber(&format!("structure-{k}"), None, Some("daily=1"))
            .unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (backups, sent, upkeep) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let started = Instant::now();
    let maintenance = std::thread::spawn({
        let (store, stop, upkeep) = (server.store.clone(), stop.clone(), upkeep.clone());
        move || {
            let opts = GcOptions {
                grace_secs: 0,
                ..GcOptions::default()
            };
            while !stop.load(Ordering::Relaxed) {
                let plan = coffre_server::plan_retention(&store, None).unwrap();
                coffre_server::apply_retention(&store, &plan).unwrap();
                for c in coffre_server::collect_garbage(&store, None, &opts).unwrap() {
                    assert!(c.error.is_none(), "{}: {:?}", c.subscriber, c.error);
                }
                upkeep.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    let deadline = started + Duration::from_secs(seconds);
    let workers: Vec<_> = machines
        .into_iter()
        .map(|(pc, home, seed)| {
            let (backups, sent) = (backups.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut round = 0;
                while Instant::now() < deadline || round == 0 {
                    let report = pc.json(&["backup", "--quiet"]);
                    backups.fetch_add(1, Ordering::Relaxed);
                    sent.fetch_add(report["bytes_sent"].as_u64().unwrap(), Ordering::Relaxed);
                    round += 1;
                    change(&home, seed, round);
                }
                // The tree as last backed up: one more backup of it.
                pc.json(&["backup", "--quiet"]);
                backups.fetch_add(1, Ordering::Relaxed);
                (pc, home)
            })
        })
        .collect();
    let machines: Vec<(Client, PathBuf)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    maintenance.join().unwrap();
    let (backups, sent, upkeep) = (
        backups.load(Ordering::Relaxed),
        sent.load(Ordering::Relaxed),
        upkeep.load(Ordering::Relaxed),
    );
    eprintln!(
        "load: {pcs} PCs, {backups} backups in {elapsed:.1} s ({:.1} backups/s, {:.1} MB/s sent), \
         {upkeep} retention+GC rounds, server process peak memory {} MB",
        backups as f64 / elapsed,
        sent as f64 / elapsed / 1e6,
        peak_mb()
    );
    assert!(backups >= 2 * pcs, "every PC backed up at least twice");
    assert!(upkeep >= 1, "retention and GC ran during the load");

    // Every PC's snapshots check out, and its latest restores byte for byte.
    for (i, (pc, home)) in machines.iter().enumerate() {
        let check = pc.json(&["check", "--read-data"]);
        assert_eq!(check["ok"], true, "pc-{i}: {check}");
        let target = base.join(format!("restored-{i}"));
        pc.restore_to("latest", &target);
        assert_same_tree(home, &target.join(home.strip_prefix("/").unwrap()));
    }
}
