//! A compromised PC against the real daemon (issue 17, items 3 and 4): it
//! floods connections, handshakes, unfinished requests and the dashboard,
//! and it is revoked while it works. Each attack is made over real QUIC (or
//! TCP for the dashboard) by a hostile client written against
//! `coffre-proto`, and each test checks that other subscribers keep being
//! served.
//!
//! Memory is measured in-process as in `hostile.rs` (the Rust heap through
//! `coffre-fuzz`'s counting allocator, and the resident set); both ends of
//! every connection live in this process, so the figures include the
//! clients. The tests hold one lock so that their measurements do not mix.
//! The tests that wait for a timer of the daemon (handshake timeout, the
//! revocation poll, the dashboard's idle timeout) run on tokio's paused
//! clock, like `hostile.rs`.

mod support;

use std::time::{Duration, Instant};

use coffre_fuzz::alloc::process_heap_bytes;
use coffre_proto::{
    encode_hello, encode_request, Assembler, ErrorCode, Request, Response, CONTINUATION, HELLO_LEN,
    MAX_FRAME_LEN,
};
use coffre_server::{DashboardLimits, Limits, REVOCATION_POLL};
use coffre_store::{Role, Store};
use support::{assert_restorable, backup, raw_connection, Client, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant as TokioInstant;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: usize = 1024 * 1024;

fn mib(bytes: isize) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// A client endpoint bound to `ip` (any loopback address: 127.0.0.0/8).
fn endpoint_on(server: &TestServer, ip: &str) -> quinn::Endpoint {
    let mut ep = quinn::Endpoint::client(format!("{ip}:0").parse().unwrap()).unwrap();
    ep.set_default_client_config(coffre_client::client_config(server.fingerprint).unwrap());
    ep
}

/// Hello and `Auth` on a new connection of `ep`: the server's answer, and
/// the connection (kept open by the caller).
async fn hello_auth(
    ep: &quinn::Endpoint,
    server: &TestServer,
    secret: [u8; 32],
) -> (Response, quinn::Connection) {
    let conn = ep
        .connect(server.addr.parse().unwrap(), "coffre-server")
        .unwrap()
        .await
        .unwrap();
    (auth_on(&conn, secret).await, conn)
}

async fn auth_on(conn: &quinn::Connection, secret: [u8; 32]) -> Response {
    let mut auth = encode_hello().to_vec();
    auth.extend(encode_request(&Request::Auth { secret }).unwrap());
    let (mut s, mut recv) = conn.open_bi().await.unwrap();
    s.write_all(&auth).await.unwrap();
    s.finish().unwrap();
    let reply = recv.read_to_end(1 << 20).await.unwrap();
    let (t, p) = Assembler::for_responses()
        .feed(&reply[HELLO_LEN..])
        .unwrap()
        .unwrap();
    coffre_proto::decode_response(t, &p).unwrap()
}

/// One request on a new stream: the response, or `None` if the stream or
/// the connection was closed without one.
async fn call(conn: &quinn::Connection, req: &Request) -> Option<Response> {
    let (mut s, mut r) = conn.open_bi().await.ok()?;
    s.write_all(&encode_request(req).unwrap()).await.ok()?;
    s.finish().ok()?;
    let bytes = r.read_to_end(64 * MIB).await.ok()?;
    let (t, p) = Assembler::for_responses().feed(&bytes).ok()??;
    coffre_proto::decode_response(t, &p).ok()
}

async fn honest_round_trip(remote: &coffre_client::Remote, client: &mut Client, seed: u64) {
    let (snap, chunks) = backup(remote, client, seed, 2, 20_000)
        .await
        .expect("the honest client is served");
    assert_restorable(remote, client, &snap, &chunks).await;
}

/// Issue 17: 1,024 authenticated connections of one device made every other
/// subscriber's backup fail with "server busy". At the daemon's defaults
/// (8 per device), a device opening 40 gets 8, each refusal says which cap,
/// and another subscriber backs up and restores meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_flooding_connections_gets_its_cap_and_others_back_up() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits::default();
    let per_device = limits.max_connections_per_device;
    assert_eq!(per_device, 8);
    let server = TestServer::start_with(dir.path(), limits).await;
    let evil = server.device("mallory", 1 << 30, "pc", Role::Backup);
    let good = server
        .connect(server.device("asso", 1 << 30, "compta", Role::Backup))
        .await
        .unwrap();
    let mut honest = Client::new(51);
    let ep = endpoint_on(&server, "127.0.0.1");
    let (mut admitted, mut refused) = (0, 0);
    let mut held = Vec::new();
    for _ in 0..40 {
        let (reply, conn) = hello_auth(&ep, &server, evil).await;
        held.push(conn);
        match reply {
            Response::AuthOk { .. } => admitted += 1,
            Response::Error(e) => {
                assert_eq!(e.code, ErrorCode::Busy, "{}", e.message);
                assert!(
                    e.message.contains("max_connections_per_device"),
                    "{}",
                    e.message
                );
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    eprintln!("one device asked for 40 connections: {admitted} admitted, {refused} refused");
    assert_eq!(admitted, per_device);
    honest_round_trip(&good, &mut honest, 1).await;
    // A new connection of another subscriber is admitted too.
    let other = server
        .connect(server.device("ecole", 1 << 30, "pc", Role::Backup))
        .await
        .unwrap();
    honest_round_trip(&other, &mut Client::new(52), 2).await;
    other.close().await;
    good.close().await;
    ep.close(0u32.into(), b"bye");
    server.stop().await;
}

/// The subscriber's cap and the global one, at small limits: a subscriber's
/// devices together get `max_connections_per_subscriber`, and another
/// subscriber is still admitted while they hold them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_its_cap_and_others_are_admitted() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_connections: 8,
        max_connections_per_device: 2,
        max_connections_per_subscriber: 5,
        ..Limits::default()
    };
    let server = TestServer::start_with(dir.path(), limits).await;
    let ep = endpoint_on(&server, "127.0.0.1");
    let mut outcomes = Vec::new();
    let mut held = Vec::new();
    for pc in 0..4 {
        let secret = server.device("mallory", 1 << 30, &format!("pc-{pc}"), Role::Backup);
        for _ in 0..3 {
            let (reply, conn) = hello_auth(&ep, &server, secret).await;
            held.push(conn);
            outcomes.push(match reply {
                Response::AuthOk { .. } => "ok".to_string(),
                Response::Error(e) if e.message.contains("per_device") => "device cap".into(),
                Response::Error(e) if e.message.contains("per_subscriber") => {
                    "subscriber cap".into()
                }
                other => panic!("{other:?}"),
            });
        }
    }
    eprintln!("4 devices x 3 connections: {outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "ok").count(), 5);
    assert_eq!(outcomes[2], "device cap");
    assert_eq!(outcomes[11], "subscriber cap");
    let good = server
        .connect(server.device("asso", 1 << 30, "compta", Role::Backup))
        .await
        .unwrap();
    honest_round_trip(&good, &mut Client::new(53), 1).await;
    good.close().await;
    ep.close(0u32.into(), b"bye");
    server.stop().await;
}

/// Issue 17: 1,100 connections that never said hello filled the slots. Now
/// they hold only handshake slots: one machine (127.0.0.2) gets
/// `max_handshakes_per_address` of them, the rest refused at once; a PC on
/// another address (127.0.0.1) still connects and is served; the silent
/// ones are dropped at the handshake timeout. On tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn silent_connections_hold_only_handshake_slots_and_others_connect() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_handshakes: 8,
        max_handshakes_per_address: 4,
        ..Limits::default()
    };
    let timeout = limits.handshake_timeout;
    let server = TestServer::start_with(dir.path(), limits).await;
    let good_secret = server.device("asso", 1 << 30, "compta", Role::Backup);
    let flood = endpoint_on(&server, "127.0.0.2");
    let mut silent = Vec::new();
    let mut refused = 0;
    for _ in 0..30 {
        match flood
            .connect(server.addr.parse().unwrap(), "coffre-server")
            .unwrap()
            .await
        {
            Ok(conn) => silent.push(conn),
            Err(e) => {
                assert!(e.to_string().to_lowercase().contains("refused"), "{e}");
                refused += 1;
            }
        }
    }
    eprintln!(
        "30 silent connections from one address: {} held, {refused} refused",
        silent.len()
    );
    assert_eq!(silent.len(), 4);
    // Another machine connects and is served while they are held.
    let t = TokioInstant::now();
    let good = server.connect(good_secret).await.unwrap();
    honest_round_trip(&good, &mut Client::new(54), 1).await;
    assert!(t.elapsed() < timeout, "the honest PC waited for the flood");
    // The silent ones are closed at the handshake timeout.
    for conn in &silent {
        let reason = tokio::time::timeout(timeout * 2, conn.closed())
            .await
            .expect("a silent connection outlived the handshake timeout");
        assert!(
            reason.to_string().contains("handshake timed out"),
            "{reason}"
        );
    }
    // Then the address gets its slots back.
    let again = flood
        .connect(server.addr.parse().unwrap(), "coffre-server")
        .unwrap()
        .await
        .expect("the address's slots were freed");
    assert!(matches!(
        auth_on(&again, good_secret).await,
        Response::AuthOk { .. }
    ));
    good.close().await;
    server.stop().await;
}

/// Issue 17: one connection sending 16 multi-frame Commits that never finish
/// took the daemon from 50 MB to 1.09 GB. At the daemon's defaults, 16
/// such streams (each sending three 16 MiB frames of a Commit, 768 MiB in
/// all, and never its last frame) make it hold at most the device's budget
/// (160 MiB) and one request over it, and another subscriber is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_requests_hold_at_most_the_device_budget() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits::default();
    let device_budget = limits.device_request_bytes;
    let server = TestServer::start_with(dir.path(), limits).await;
    let good = server
        .connect(server.device("asso", 1 << 30, "compta", Role::Backup))
        .await
        .unwrap();
    let mut honest = Client::new(55);
    honest_round_trip(&good, &mut honest, 1).await;
    let evil = server.device("mallory", 1 << 30, "pc", Role::Backup);
    let (_ep, conn) = raw_connection(&server).await;
    assert!(matches!(
        auth_on(&conn, evil).await,
        Response::AuthOk { .. }
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss0, heap0) = (rss() as isize, process_heap_bytes() as isize);

    const STREAMS: usize = 16;
    const FRAMES: usize = 3;
    let piece = vec![0x5a; MIB];
    let mut writers = Vec::new();
    let mut keep = Vec::new();
    for _ in 0..STREAMS {
        let (mut s, r) = conn.open_bi().await.unwrap();
        let piece = piece.clone();
        keep.push(r);
        writers.push(tokio::spawn(async move {
            for _ in 0..FRAMES {
                let header = [
                    &(MAX_FRAME_LEN as u32).to_be_bytes()[..],
                    &CONTINUATION.to_be_bytes(),
                ]
                .concat();
                if s.write_all(&header).await.is_err() {
                    return s;
                }
                for _ in 0..(MAX_FRAME_LEN - 2) / MIB {
                    if s.write_all(&piece).await.is_err() {
                        return s;
                    }
                }
                let rest = (MAX_FRAME_LEN - 2) % MIB;
                if s.write_all(&piece[..rest]).await.is_err() {
                    return s;
                }
            }
            s
        }));
    }
    drop(piece);
    // Wait until the server stops taking bytes: the heap no longer grows
    // for a second (the writers are held by flow control), within 120 s.
    let t = Instant::now();
    let mut last = process_heap_bytes() as isize;
    let mut still = 0;
    while still < 5 && t.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = process_heap_bytes() as isize;
        still = if (now - last).abs() < MIB as isize {
            still + 1
        } else {
            0
        };
        last = now;
    }
    let (rss1, heap1) = (rss() as isize, process_heap_bytes() as isize);
    let finished = writers.iter().filter(|w| w.is_finished()).count();
    eprintln!(
        "{STREAMS} unfinished Commits of {FRAMES} x 16 MiB on one connection ({} announced), \
         after {:?}: resident {} -> {} (+{}), Rust heap +{} (both ends), {finished} writers done",
        mib((STREAMS * FRAMES * MAX_FRAME_LEN) as isize),
        t.elapsed(),
        mib(rss0),
        mib(rss1),
        mib(rss1 - rss0),
        mib(heap1 - heap0)
    );
    // The device's budget, one request over it (two more frames), QUIC's
    // 32 MiB window, and the client's side (its send buffer, 16 MiB).
    let bound = device_budget + 2 * MAX_FRAME_LEN + 32 * MIB + 16 * MIB + 16 * MIB;
    assert!(
        heap1 - heap0 < bound as isize,
        "the unfinished requests hold {} (bound {})",
        mib(heap1 - heap0),
        mib(bound as isize)
    );
    // Before the budget every stream was read whole: all writers finished.
    assert!(
        finished < STREAMS,
        "the server read every unfinished request whole"
    );

    // Another subscriber is served meanwhile.
    let t = Instant::now();
    honest_round_trip(&good, &mut honest, 2).await;
    eprintln!("honest round trip beside them: {:?}", t.elapsed());

    // When the connection goes, so does what it held.
    conn.close(0u32.into(), b"bye");
    for w in writers {
        let _ = w.await;
    }
    drop(keep);
    let t = Instant::now();
    loop {
        let heap = process_heap_bytes() as isize;
        if heap - heap0 < 16 * MIB as isize {
            eprintln!(
                "after the attacker left: Rust heap {} from the start",
                mib(heap - heap0)
            );
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the unfinished requests were not freed: {}",
            mib(heap - heap0)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    good.close().await;
    server.stop().await;
}

/// Issue 17: a device revoked during a backup kept uploading, revoked during
/// a restore it restored everything, and a held connection kept working.
/// Revoked through a second store on the same data directory (as
/// `coffre-server device revoke`, another process, does) while a hostile
/// client of that device uploads, reads chunks, lists snapshots and holds a
/// half-sent request: each stops with `Revoked` (or its connection closed
/// "device revoked") within the poll and a second, and another subscriber's
/// client is untouched. On tokio's paused clock, with the default poll (1 s).
#[tokio::test(start_paused = true)]
async fn a_revoked_device_stops_uploading_reading_and_listing_within_seconds() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits::default();
    assert_eq!(limits.revocation_poll, REVOCATION_POLL);
    let server = TestServer::start_with(dir.path(), limits).await;
    let good = server
        .connect(server.device("asso", 1 << 30, "compta", Role::Backup))
        .await
        .unwrap();
    let mut honest = Client::new(56);
    let evil_secret = server.device("mallory", 1 << 30, "pc", Role::Backup);
    let mut evil = Client::new(57);
    // The device has a snapshot to read and list.
    let remote = server.connect(evil_secret).await.unwrap();
    let (_snap, chunks) = backup(&remote, &mut evil, 1, 3, 50_000).await.unwrap();
    let id = *chunks[0].0.as_bytes();
    remote.close().await;

    let (_ep, conn) = raw_connection(&server).await;
    assert!(matches!(
        auth_on(&conn, evil_secret).await,
        Response::AuthOk { .. }
    ));
    // What a loop saw last: `Revoked`, or its connection closed.
    fn stopped(r: &Option<Response>) -> bool {
        match r {
            None => true,
            Some(Response::Error(e)) => e.code == ErrorCode::Revoked,
            Some(_) => false,
        }
    }
    let uploads = {
        let conn = conn.clone();
        let blobs: Vec<_> = (0..400u32)
            .map(|i| evil.blob(&i.to_le_bytes().repeat(4096)))
            .collect();
        tokio::spawn(async move {
            for (n, (id, blob)) in blobs.into_iter().cycle().enumerate() {
                let r = call(
                    &conn,
                    &Request::PutChunk {
                        id: *id.as_bytes(),
                        blob,
                    },
                )
                .await;
                if stopped(&r) {
                    return (TokioInstant::now(), n, r);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            unreachable!()
        })
    };
    let looping = |req: Request| {
        let conn = conn.clone();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let r = call(&conn, &req).await;
                if stopped(&r) {
                    return (TokioInstant::now(), n, r);
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let reads = looping(Request::GetChunk { id });
    let lists = looping(Request::ListSnapshots);
    // A request held half-sent: a PutChunk announcing 1 MiB, 1 KiB sent.
    let (mut held, mut held_recv) = conn.open_bi().await.unwrap();
    let len = (2 + 32 + 4 + MIB) as u32;
    held.write_all(&[&len.to_be_bytes()[..], &3u16.to_be_bytes()].concat())
        .await
        .unwrap();
    held.write_all(&[0x11; 1024]).await.unwrap();
    // Let them run a while: they are served.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!uploads.is_finished() && !reads.is_finished() && !lists.is_finished());

    // Revoke, as `coffre-server device revoke` does: its own store.
    let admin = Store::open(dir.path()).unwrap();
    admin.revoke_device("mallory", "pc").unwrap();
    drop(admin);
    let revoked_at = TokioInstant::now();
    let within = REVOCATION_POLL + Duration::from_secs(2);
    for (what, task) in [("uploads", uploads), ("reads", reads), ("listings", lists)] {
        let (at, n, last) = tokio::time::timeout(within * 2, task)
            .await
            .unwrap_or_else(|_| panic!("{what} went on after the revocation"))
            .unwrap();
        let after = at.saturating_duration_since(revoked_at);
        eprintln!("{what}: {n} served, stopped {after:?} after the revocation: {last:?}");
        assert!(
            after <= within,
            "{what} stopped {after:?} after the revocation"
        );
        assert!(n > 0, "{what} were never served");
    }
    let held_answer = tokio::time::timeout(within, held_recv.read_to_end(1 << 20))
        .await
        .expect("the held request was not stopped");
    if let Ok(bytes) = held_answer {
        if !bytes.is_empty() {
            let e = support::decode_error(&bytes);
            assert_eq!(e.code, ErrorCode::Revoked, "{}", e.message);
        }
    }
    let reason = tokio::time::timeout(within, conn.closed())
        .await
        .expect("the revoked device's connection stays open");
    assert!(reason.to_string().contains("device revoked"), "{reason}");
    // The device cannot come back, and others are untouched.
    let err = server.connect(evil_secret).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Revoked), "{err}");
    honest_round_trip(&good, &mut honest, 2).await;
    good.close().await;
    server.stop().await;
}

/// Issue 17: 300 idle TCP connections to the dashboard exhausted the
/// daemon's file descriptors and a backup failed. Now the dashboard keeps
/// at most its cap (others closed at once), closes idle ones at its idle
/// timeout, and QUIC backups go on throughout. On tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn a_dashboard_flood_is_capped_and_timed_out_and_backups_go_on() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let limits = DashboardLimits::default();
    let (cap, idle) = (limits.max_connections, limits.idle);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = "flood-test-token-0123456789";
    let options = coffre_server::DashboardOptions {
        token: coffre_server::DashboardToken::new(token).unwrap(),
        stale_days: 3,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let dashboard = tokio::spawn(coffre_server::serve_dashboard_within(
        listener,
        server.store.clone(),
        options,
        limits,
        async {
            let _ = stopped.await;
        },
    ));
    let good = server
        .connect(server.device("asso", 1 << 30, "compta", Role::Backup))
        .await
        .unwrap();
    let mut honest = Client::new(58);

    // 300 idle connections (a byte of a request each, never the rest).
    let t0 = TokioInstant::now();
    let mut flood = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(b"G").await;
        flood.push(s);
    }
    // Past the cap, a connection is closed at once: its read ends now.
    let mut open = 0;
    for s in &mut flood {
        let mut b = [0u8; 64];
        if tokio::time::timeout(Duration::from_millis(20), s.read(&mut b))
            .await
            .is_err()
        {
            open += 1;
        }
    }
    eprintln!("300 idle dashboard connections: {open} kept, the rest closed at once");
    assert_eq!(open, cap);
    // Backups go on meanwhile.
    honest_round_trip(&good, &mut honest, 1).await;
    // The idle ones are closed at the idle timeout.
    for s in &mut flood {
        let mut b = [0u8; 1024];
        // Closed (end of stream or reset), or answered with an error status.
        match tokio::time::timeout(idle * 2, s.read(&mut b))
            .await
            .expect("an idle dashboard connection outlived the idle timeout")
        {
            Ok(0) | Err(_) => {}
            Ok(n) => assert!(b[..n].starts_with(b"HTTP/1.1 4"), "{:?}", &b[..n]),
        }
    }
    let waited = t0.elapsed();
    eprintln!("the idle connections were closed {waited:?} after the flood began (idle {idle:?})");
    assert!(waited >= idle && waited <= idle * 2 + Duration::from_secs(1));
    drop(flood);
    // The board is served again.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await.unwrap();
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    honest_round_trip(&good, &mut honest, 2).await;
    let _ = stop.send(());
    dashboard.await.unwrap().unwrap();
    good.close().await;
    server.stop().await;
}

/// A revoked PC's client reads "revoked", not "lost the connection", even
/// when its next request comes after the daemon closed the connection
/// (`REVOKED_CLOSE_CODE`). On tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn a_revoked_pcs_client_is_told_it_was_revoked_after_the_close() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let secret = server.device("asso", 1 << 30, "pc", Role::Backup);
    let remote = server.connect(secret).await.unwrap();
    let admin = Store::open(dir.path()).unwrap();
    admin.revoke_device("asso", "pc").unwrap();
    drop(admin);
    // Past the poll and the grace: the daemon has closed the connection.
    tokio::time::sleep(REVOCATION_POLL + Duration::from_secs(3)).await;
    let err = remote.call(&Request::ListSnapshots).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Revoked), "{err}");
    assert!(err.to_string().contains("revoked"), "{err}");
    server.stop().await;
}
