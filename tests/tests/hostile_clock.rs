//! Issue 17, item 1: the server's clock governs retention. A PC writes any
//! time it likes in its manifests (a forged clock, a dead CMOS battery);
//! the daemon records when it RECEIVED each snapshot, retention sorts and
//! buckets by that, and the board says "this PC's clock is wrong" instead
//! of "ok".
//!
//! Each test starts the real daemon on loopback on a store whose clock is a
//! `ManualClock` (the days of a history pass without a sleep), backs up the
//! honest nights through the client's own connection (`Remote`), and plays
//! the attacker as a hand-written protocol client: hello, `Auth` and
//! `Commit` requests encoded with `coffre-proto` on raw QUIC streams. The
//! prune and the garbage collection are the server's own (`plan_retention`,
//! `apply_retention`, `collect_garbage`), on the daemon's store; the board
//! is the real dashboard over HTTP.
//!
//! Before this change retention went by the manifests' times: each test
//! below fails on that code (the forward-dated burst erased the honest
//! nights, the end-of-time snapshot stayed newest and pushed out an honest
//! one, the 2001-dated newest data was marked for removal, the board said
//! "OK").

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coffre_core::{snapshot_id, ChunkId};
use coffre_proto::{encode_hello, encode_request, Assembler, Request, Response, HELLO_LEN};
use coffre_server::{
    apply_retention, bind_dashboard, collect_garbage, plan_retention, serve_dashboard,
    DashboardOptions, DashboardToken, Limits,
};
use coffre_store::{Clock, GcOptions, ManualClock, Role, Store};
use support::{assert_restorable, raw_connection, Client, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DAY: i64 = 86_400;
/// 2026-11-23 02:00 UTC, a Monday night: the first honest backup.
const MONDAY: i64 = 1_795_399_200;
/// 9999-12-31 23:59:59 UTC.
const YEAR_9999: i64 = 253_402_300_799;
/// 2001-01-01 02:00 UTC: what a PC with a dead CMOS battery believes.
const YEAR_2001: i64 = 978_314_400;

/// The daemon on a store whose time is `clock`'s, with one subscriber of
/// `policy` and its backup device "pc": (server, the device's secret).
async fn start(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    policy: &str,
) -> (TestServer, [u8; 32]) {
    let server = TestServer::start_with_clock(dir, Limits::default(), clock.clone()).await;
    let secret = server.device("asso", 1 << 30, "pc", Role::Backup);
    server
        .store
        .set_subscriber("asso", None, Some(policy))
        .unwrap();
    (server, secret)
}

/// One honest night through the client's connection: `n` real chunks and
/// a manifest dated `pc_time` by the PC. Returns the snapshot and its data.
async fn night(
    server: &TestServer,
    secret: [u8; 32],
    client: &mut Client,
    seed: u64,
    pc_time: i64,
) -> (ChunkId, Vec<(ChunkId, Vec<u8>)>) {
    let remote = server.connect(secret).await.unwrap();
    let mut chunks = Vec::new();
    for i in 0..2 {
        let data = coffre_testkit::data(seed * 100 + i, 20_000);
        let (id, blob) = client.blob(&data);
        remote.put_chunk(&id, blob).await.unwrap();
        chunks.push((id, data));
    }
    let ids: Vec<ChunkId> = chunks.iter().map(|c| c.0).collect();
    let snap = remote
        .commit(client.manifest_at("pc", pc_time, &ids))
        .await
        .unwrap();
    remote.close().await;
    (snap, chunks)
}

/// The attacker: a raw QUIC connection that says hello and authenticates
/// with the device's secret, written against `coffre-proto` only.
struct Hostile {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
}

impl Hostile {
    async fn connect(server: &TestServer, secret: [u8; 32]) -> Hostile {
        let (endpoint, conn) = raw_connection(server).await;
        let mut auth = encode_hello().to_vec();
        auth.extend(encode_request(&Request::Auth { secret }).unwrap());
        let reply = exchange(&conn, &auth).await;
        let (t, p) = Assembler::for_responses()
            .feed(&reply[HELLO_LEN..])
            .unwrap()
            .expect("a whole Auth answer");
        assert!(
            matches!(
                coffre_proto::decode_response(t, &p).unwrap(),
                Response::AuthOk { .. }
            ),
            "the device's secret authenticates"
        );
        Hostile {
            _endpoint: endpoint,
            conn,
        }
    }

    /// Commits `manifest` (any bytes the attacker likes) and expects it
    /// accepted: a wrong clock is flagged, never refused.
    async fn commit(&self, manifest: Vec<u8>) -> ChunkId {
        let id = snapshot_id(&manifest);
        let bytes = encode_request(&Request::Commit { manifest }).unwrap();
        let reply = exchange(&self.conn, &bytes).await;
        let (t, p) = Assembler::for_responses()
            .feed(&reply)
            .unwrap()
            .expect("a whole Commit answer");
        match coffre_proto::decode_response(t, &p).unwrap() {
            Response::Committed { snapshot } => assert_eq!(&snapshot, id.as_bytes()),
            other => panic!("the commit was not accepted: {other:?}"),
        }
        id
    }

    async fn close(self) {
        self.conn.close(0u32.into(), b"done");
        self.conn.closed().await;
    }
}

/// Sends `bytes` on a new stream and reads the whole answer.
async fn exchange(conn: &quinn::Connection, bytes: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    tokio::time::timeout(Duration::from_secs(20), recv.read_to_end(1 << 20))
        .await
        .expect("the daemon answers within 20 s")
        .unwrap()
}

/// The nightly work as the daemon does it: retention, then a garbage
/// collection (no grace: what retention removed is freed now). Polls until
/// the daemon has ended the sessions of the closed connections (a
/// subscriber with one is postponed), within a deadline.
async fn prune_and_collect(store: &Arc<Store>) -> Vec<coffre_server::Decision> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let plan = plan_retention(&store, None).unwrap();
        apply_retention(&store, &plan).unwrap();
        let opts = GcOptions {
            grace_secs: 0,
            ..GcOptions::default()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let runs = collect_garbage(&store, None, &opts).unwrap();
            if runs
                .iter()
                .all(|c| c.report.as_ref().is_some_and(|r| r.postponed.is_none()))
            {
                return plan;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the garbage collection stayed postponed: {runs:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap()
}

/// The ids retention kept, from its plan.
fn kept(plan: &[coffre_server::Decision]) -> Vec<String> {
    plan.iter()
        .filter(|d| d.keep)
        .map(|d| d.id.clone())
        .collect()
}

/// The board's page (French) and `/metrics`, from the real dashboard on
/// loopback serving the daemon's store.
async fn board(store: &Arc<Store>) -> (String, String) {
    let listener = bind_dashboard("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = DashboardOptions {
        token: DashboardToken::new("board-secret-0123456789").unwrap(),
        stale_days: 3,
    };
    let serving = tokio::spawn(serve_dashboard(listener, store.clone(), options, async {
        let _ = stopped.await;
    }));
    let page = http_get(addr, "/?lang=fr").await;
    let metrics = http_get(addr, "/metrics").await;
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
    (page, metrics)
}

/// `GET path` over HTTP/1.1 with the board's token: the whole response.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer board-secret-0123456789\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("the dashboard answers within 20 s")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_dated_snapshots_do_not_push_out_the_honest_nights() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(MONDAY));
    let (server, secret) = start(dir.path(), &clock, "daily=7").await;
    let mut client = Client::new(1);
    // Ten honest nights, the PC's clock right.
    let mut nights = Vec::new();
    for n in 0..10 {
        clock.set(MONDAY + n * DAY);
        nights.push(night(&server, secret, &mut client, n as u64, clock.now()).await);
    }
    // Day D: the PC is taken over. Within a minute it sends 8 tiny
    // snapshots dated +1 to +8 days.
    let d = MONDAY + 10 * DAY;
    clock.set(d);
    let hostile = Hostile::connect(&server, secret).await;
    let mut forged = Vec::new();
    for k in 1..=8 {
        clock.set(d + 5 * k);
        forged.push(
            hostile
                .commit(client.manifest_at("pc", d + k * DAY, &[]))
                .await,
        );
    }
    hostile.close().await;

    let plan = prune_and_collect(&server.store).await;
    let keep = kept(&plan);
    // daily=7 by receipt: day D (the newest of the burst) and the six
    // honest nights before it.
    assert!(keep.contains(&forged[7].to_hex()), "the newest of day D");
    for (n, (snap, _)) in nights.iter().enumerate() {
        assert_eq!(
            keep.contains(&snap.to_hex()),
            n >= 4,
            "honest night {n}: {plan:#?}"
        );
    }
    assert_eq!(keep.len(), 7, "{plan:#?}");
    // The honest snapshot received two days before the attack is still
    // there after the garbage collection, and restores.
    let remote = server.connect(secret).await.unwrap();
    let (snap, chunks) = &nights[8];
    assert_restorable(&remote, &client, snap, chunks).await;
    remote.close().await;

    // The board does not say "ok": this PC's clock is wrong.
    let (page, metrics) = board(&server.store).await;
    assert!(page.contains("L’horloge de ce PC est fausse"), "{page}");
    assert!(page.contains("en avance de 7\u{a0}jours"), "{page}");
    assert!(!page.contains(">OK<"), "{page}");
    assert!(
        metrics.contains("coffre_subscriber_devices_clock_wrong{subscriber=\"asso\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coffre_device_clock_skew_seconds{subscriber=\"asso\",device=\"pc\"}"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_dated_at_the_end_of_time_is_not_newest_forever() {
    for end_of_time in [YEAR_9999, i64::MAX] {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(MONDAY));
        let (server, secret) = start(dir.path(), &clock, "daily=2").await;
        let mut client = Client::new(2);
        let hostile = Hostile::connect(&server, secret).await;
        let eternal = hostile
            .commit(client.manifest_at("pc", end_of_time, &[]))
            .await;
        hostile.close().await;
        // The PC is repaired: three honest nights follow.
        let mut nights = Vec::new();
        for n in 1..=3 {
            clock.set(MONDAY + n * DAY);
            nights.push(night(&server, secret, &mut client, 10 + n as u64, clock.now()).await);
        }
        let plan = prune_and_collect(&server.store).await;
        let keep = kept(&plan);
        assert_eq!(
            keep,
            [nights[1].0.to_hex(), nights[2].0.to_hex()],
            "{end_of_time}: daily=2 keeps the two newest nights received, not the \
             end-of-time snapshot: {plan:#?}"
        );
        assert!(!keep.contains(&eternal.to_hex()));
        // The board shows the server's time of the last backup, and the
        // device's latest snapshot is the latest received.
        let usage = server.store.usage().unwrap();
        let pc = &usage[0].device_backups[0];
        assert_eq!(pc.last_backup, Some(MONDAY + 3 * DAY));
        assert_eq!(pc.latest_bytes, 2_000, "the newest received, 2 chunks");
        assert_eq!(pc.clock_skew, Some(0), "its clock is right again");
        let remote = server.connect(secret).await.unwrap();
        assert_restorable(&remote, &client, &nights[1].0, &nights[1].1).await;
        remote.close().await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pc_whose_clock_went_back_to_2001_keeps_its_newest_data() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(MONDAY));
    let (server, secret) = start(dir.path(), &clock, "last=3").await;
    let mut client = Client::new(3);
    // Five nights with a right clock, then the CMOS battery dies: three more
    // nights dated 2001, honest all the same (the same client code).
    let mut nights = Vec::new();
    for n in 0..8 {
        clock.set(MONDAY + n * DAY);
        let pc_time = if n < 5 {
            clock.now()
        } else {
            YEAR_2001 + (n - 5) * DAY
        };
        nights.push(night(&server, secret, &mut client, 20 + n as u64, pc_time).await);
    }
    let plan = prune_and_collect(&server.store).await;
    let keep = kept(&plan);
    let expected: Vec<String> = nights[5..].iter().map(|(s, _)| s.to_hex()).collect();
    assert_eq!(
        keep, expected,
        "last=3 keeps the three nights received last, dated 2001 by the PC: {plan:#?}"
    );
    let remote = server.connect(secret).await.unwrap();
    let (snap, chunks) = &nights[7];
    assert_restorable(&remote, &client, snap, chunks).await;
    remote.close().await;

    let (page, metrics) = board(&server.store).await;
    assert!(page.contains("en retard de 25\u{a0}ans"), "{page}");
    assert!(
        metrics.contains("coffre_subscriber_devices_clock_wrong{subscriber=\"asso\"} 1"),
        "{metrics}"
    );
    server.stop().await;
}
