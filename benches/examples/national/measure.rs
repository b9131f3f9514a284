//! Measures a populated national store, in a fresh process without
//! `eatmydata`: the night window's request latencies, the usage report and
//! the board's page, the nightly maintenance as the daemon runs it, the
//! peak resident memory of each phase, and the catalogue's size.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use coffre_server::{
    bind_dashboard, serve, serve_dashboard, DashboardOptions, DashboardToken, Identity, Limits,
    TransportLimits,
};
use coffre_store::{ManualClock, PackStorage, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sessions::{self, percentile_ms, Arrivals};
use crate::shape::Shape;

const TOKEN: &str = "national-bench-token";

/// The nightly maintenance's figures.
struct Night {
    seconds: f64,
    prune: f64,
    gc: f64,
    verify: f64,
    snapshots_after: u64,
    peak: u64,
}

pub fn run(dir: &Path, sessions_count: u64, arrivals: Arrivals, nightly: bool) {
    let shape = read_shape(dir);
    let secrets: Vec<[u8; 32]> = std::fs::read(dir.join("secrets"))
        .expect("read the secrets (run populate first)")
        .chunks_exact(32)
        .map(|c| c.try_into().unwrap())
        .collect();
    let data = dir.join("data");
    let catalog = data.join(coffre_store::CATALOG_FILE);
    let catalog_bytes = file_len(&catalog) + file_len(&catalog.with_extension("sqlite-wal"));

    // The evening after the last populated night: tonight's backups.
    let clock = Arc::new(ManualClock::new(Shape::night_time(shape.snapshots) - 3_600));
    // Opening brings the catalogue's schema up to date: on a store populated
    // by an older build, that time is the upgrade's.
    let t = Instant::now();
    let store = Arc::new(
        Store::open_with_clock(&data, &PackStorage::Local, clock.clone()).expect("open the store"),
    );
    let opened = t.elapsed().as_secs_f64();
    store.clear_sessions().expect("clear sessions");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // 1. The night window.
    reset_peak();
    let started = Instant::now();
    let mut lat = runtime.block_on(async {
        let identity = Identity::generate().unwrap();
        let endpoint = quinn::Endpoint::server(
            identity.server_config(&TransportLimits::default()).unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let addr = endpoint.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(endpoint, store.clone(), Limits::default(), async {
            let _ = stopped.await;
        }));
        let lat = sessions::run(
            &addr,
            identity.fingerprint(),
            shape,
            Arc::new(secrets),
            sessions_count,
            arrivals,
        )
        .await;
        let _ = stop.send(());
        server.await.unwrap().unwrap();
        lat
    });
    let window = started.elapsed().as_secs_f64();
    let peak_window = peak_mb();

    // 2. The usage report and the board's page (over HTTP), three times each.
    reset_peak();
    let usage_s: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let u = store.usage().expect("usage");
            assert_eq!(u.len() as u64, shape.subscribers);
            t.elapsed().as_secs_f64()
        })
        .collect();
    let usage = store.usage().unwrap();
    let stored: u64 = usage.iter().map(|u| u.used_bytes).sum();
    let snapshots: u64 = usage.iter().map(|u| u.snapshots).sum();
    let board_s: Vec<(f64, usize)> = runtime.block_on(async {
        let listener = bind_dashboard("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let options = DashboardOptions {
            token: DashboardToken::new(TOKEN).unwrap(),
            stale_days: 3,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(serve_dashboard(listener, store.clone(), options, async {
            let _ = stopped.await;
        }));
        let mut out = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let len = get_page(addr).await;
            out.push((t.elapsed().as_secs_f64(), len));
        }
        let _ = stop.send(());
        serving.await.unwrap().unwrap();
        out
    });
    let peak_reports = peak_mb();

    // 3. The nightly maintenance, as the daemon runs it, the next morning
    //    (unless told not to: it removes a night of snapshots, so a second
    //    measure of the same store would see another one).
    let night = nightly.then(|| {
        reset_peak();
        clock.set(Shape::night_time(shape.snapshots) + 4 * 3_600);
        let t = Instant::now();
        coffre_server::night(&store);
        let nightly = t.elapsed().as_secs_f64();
        let runs = store.maintenance_runs().expect("maintenance runs");
        let task = |name: &str| {
            runs.iter()
                .find(|r| r.task == name)
                .map_or(f64::NAN, |r| r.seconds)
        };
        let snapshots_after: u64 = store.usage().unwrap().iter().map(|u| u.snapshots).sum();
        Night {
            seconds: nightly,
            prune: task("prune"),
            gc: task("gc"),
            verify: task("verify"),
            snapshots_after,
            peak: peak_mb(),
        }
    });
    drop(store);
    let catalog_after = file_len(&catalog) + file_len(&catalog.with_extension("sqlite-wal"));

    let per_chunk = catalog_bytes as f64 / shape.chunks as f64;
    let ms = |v: &[f64]| {
        v.iter()
            .map(|s| format!("{:.0}", s * 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "\n## {} subscribers, {} devices, {} snapshots a device, {} chunks\n",
        shape.subscribers, shape.devices, shape.snapshots, shape.chunks
    );
    println!("| measure | value |\n| --- | ---: |");
    println!("| opening the store (and upgrading its catalogue) | {opened:.1} s |");
    let how = match arrivals {
        Arrivals::AtOnce(n) => format!("{n} at once"),
        Arrivals::PerMinute(n) => format!("arriving {n} a minute"),
    };
    println!(
        "| night window: {} device backups, {how} | {:.1} s |",
        lat.commit.len(),
        window
    );
    for (name, v) in [
        ("connect + auth", &mut lat.connect),
        ("has-chunks (64 ids)", &mut lat.has_chunks),
        ("put (one blob)", &mut lat.put),
        ("commit", &mut lat.commit),
        ("list snapshots", &mut lat.list),
    ] {
        let _ = &name;
        println!(
            "| {name}: p50 / p99 ({} requests) | {:.1} / {:.1} ms |",
            v.len(),
            percentile_ms(v, 50.0),
            percentile_ms(v, 99.0)
        );
    }
    println!("| connections refused busy, then retried | {} |", lat.busy);
    println!(
        "| usage report, {} structures (3 runs) | {} ms |",
        shape.subscribers,
        ms(&usage_s)
    );
    println!(
        "| board page over HTTP (3 runs; {} kB) | {} ms |",
        board_s.first().map_or(0, |b| b.1 / 1000),
        ms(&board_s.iter().map(|b| b.0).collect::<Vec<_>>())
    );
    match &night {
        Some(n) => {
            println!(
                "| nightly: retention / GC / sampled verify | {:.1} / {:.1} / {:.1} s |",
                n.prune, n.gc, n.verify
            );
            println!("| nightly in all | {:.1} s |", n.seconds);
            println!(
                "| snapshots before / after retention | {snapshots} / {} |",
                n.snapshots_after
            );
        }
        None => println!("| nightly | not run (`--nightly 0`) |"),
    }
    println!(
        "| peak RSS: night window (server and clients) / reports / nightly | {peak_window} / {peak_reports} / {} MB |",
        night.as_ref().map_or("-".to_string(), |n| n.peak.to_string())
    );
    println!(
        "| catalogue (before / after this run) | {:.0} / {:.0} MB |",
        catalog_bytes as f64 / 1e6,
        catalog_after as f64 / 1e6
    );
    println!("| catalogue bytes per chunk | {per_chunk:.0} B |");
    println!(
        "| stored bytes (synthetic blobs and manifests) | {:.0} MB |",
        stored as f64 / 1e6
    );
    for (label, avg) in [("1 MiB", 1u64 << 20), ("256 KiB", 256 << 10)] {
        println!(
            "| catalogue / stored bytes at a {label} average stored chunk | {:.3} % |",
            per_chunk * 100.0 / avg as f64
        );
    }
}

/// GET / with the token; returns the page's length (checks a 200).
async fn get_page(addr: std::net::SocketAddr) -> usize {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Accept-Language: en\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).await.unwrap();
    assert!(
        body.starts_with(b"HTTP/1.1 200"),
        "the board answered {:?}",
        String::from_utf8_lossy(&body[..body.len().min(200)])
    );
    body.len()
}

fn read_shape(dir: &Path) -> Shape {
    let text = std::fs::read_to_string(dir.join("shape")).expect("read the shape (populate first)");
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    Shape {
        subscribers: v[0],
        devices: v[1],
        snapshots: v[2],
        chunks: v[3],
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// Resets the process's peak resident memory (Linux: `5` to clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident memory since the last reset, in MB.
pub fn peak_mb() -> u64 {
    coffre_testkit::peak_rss_mb()
}

/// The nightly sampled verify alone (read-only), to compare builds on one
/// store: every subscriber, part `turn` of 30 of its packs.
pub fn verify(dir: &Path, turn: u64) {
    let shape = read_shape(dir);
    let store = Store::open(&dir.join("data")).expect("open the store");
    let opts = coffre_store::VerifyOptions {
        sample: Some((30, turn)),
        repair: false,
    };
    let t = Instant::now();
    let (mut packs, mut manifests) = (0, 0);
    for s in 0..shape.subscribers {
        let r = store
            .verify(&Shape::subscriber_name(s), &opts)
            .expect("verify");
        assert!(r.is_clean(), "{r:?}");
        packs += r.packs;
        manifests += r.manifests;
    }
    println!(
        "sampled verify (part {turn} of 30): {packs} packs, {manifests} manifests, {:.1} s, peak {} MB",
        t.elapsed().as_secs_f64(),
        peak_mb()
    );
}
