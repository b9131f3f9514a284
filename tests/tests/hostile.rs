//! Hostile input against the real daemon on loopback QUIC (issue 7,
//! "Reliability"): random and mutated requests, mutated handshakes, idle and
//! unauthenticated connections, slow clients that announce big frames and
//! never finish them, oversized length prefixes. After each, the server
//! answers with a clean error or closes the stream, its memory and
//! connection counts stay bounded, and an honest client keeps being served.
//!
//! Memory is measured in-process: the resident set (`VmRSS` of
//! `/proc/self/status`) and the Rust heap as counted by `coffre-fuzz`'s
//! counting allocator (it counts bytes reserved, touched or not). Both ends
//! of every connection live in this process, so the figures include the
//! clients. The tests hold one lock so that their measurements do not mix.
//!
//! The tests that wait for a timeout of the daemon (the handshake timeout,
//! a request's stall) run on tokio's paused clock (`start_paused`, one
//! thread), the way quinn-proto's tests advance time themselves: the daemon,
//! quinn's timers and the test share that clock (quinn reads tokio's), so
//! the real defaults are tested (10 s, 60 s) and no test sleeps for them.
//! Tokio moves the paused clock on to the next timer whenever the runtime has
//! nothing to run (also while a datagram is on its way, never while a store
//! call runs on the blocking pool): the bounds below are in that clock, both
//! sides of each.

mod support;

use std::time::{Duration, Instant};

use tokio::time::Instant as TokioInstant;

use coffre_fuzz::alloc::process_heap_bytes;
use coffre_fuzz::mutate::{mutate, Rng};
use coffre_proto::{
    encode_hello, encode_request, Assembler, ErrorCode, Request, Response, CONTINUATION, HELLO_LEN,
    MAX_BLOB_LEN, MAX_FRAME_LEN,
};
use coffre_server::{Limits, HANDSHAKE_TIMEOUT, REQUEST_STALL};
use coffre_store::Role;
use support::{assert_restorable, backup, raw_connection, Client, TestServer};

/// One test at a time: they measure the process's memory.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: usize = 1024 * 1024;

/// Resident memory of this process.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

fn mib(bytes: isize) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// What came back on a stream.
#[derive(Debug)]
enum Answer {
    /// A whole, valid response message.
    Response(Response),
    /// The server closed or reset the stream without a response.
    Closed,
}

/// Reads what the server sends back on `recv`: a valid response or nothing.
/// Anything else (garbage, half a message, no answer within 10 s) fails.
async fn answer(mut recv: quinn::RecvStream) -> Answer {
    let bytes = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(64 * MIB))
        .await
        .expect("the server neither answered nor closed the stream within 10 s");
    match bytes {
        Ok(b) if b.is_empty() => Answer::Closed,
        Ok(b) => {
            let (t, payload) = Assembler::for_responses()
                .feed(&b)
                .unwrap_or_else(|e| panic!("the server sent an invalid response: {e}"))
                .expect("the server sent half a response");
            Answer::Response(coffre_proto::decode_response(t, &payload).unwrap())
        }
        Err(_) => Answer::Closed,
    }
}

/// Sends `bytes` on a new stream, finishes it, and reads the answer.
async fn send(conn: &quinn::Connection, bytes: &[u8]) -> Answer {
    let (mut s, recv) = conn
        .open_bi()
        .await
        .expect("the server keeps the connection");
    // The server may refuse early and stop reading: a failed write is fine.
    if s.write_all(bytes).await.is_ok() {
        let _ = s.finish();
    }
    answer(recv).await
}

/// Hello and `Auth` on the first stream of a raw connection.
async fn authenticate(conn: &quinn::Connection, secret: [u8; 32]) {
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
    assert!(matches!(
        coffre_proto::decode_response(t, &p).unwrap(),
        Response::AuthOk { .. }
    ));
}

/// A QUIC connection (TLS done, nothing coffre sent yet) on `ep`.
async fn connect_on(ep: &quinn::Endpoint, server: &TestServer) -> quinn::Connection {
    ep.connect(server.addr.parse().unwrap(), "coffre-server")
        .unwrap()
        .await
        .unwrap()
}

fn client_endpoint(server: &TestServer) -> quinn::Endpoint {
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(coffre_client::client_config(server.fingerprint).unwrap());
    ep
}

/// The honest client's whole cycle: upload, commit, has_chunks, restore.
async fn honest_round_trip(remote: &coffre_client::Remote, client: &mut Client, seed: u64) {
    let (snap, chunks) = backup(remote, client, seed, 2, 20_000)
        .await
        .expect("the honest client is served");
    let ids: Vec<_> = chunks.iter().map(|c| c.0).collect();
    assert!(remote.has_chunks(&ids).await.unwrap().iter().all(|h| *h));
    assert_restorable(remote, client, &snap, &chunks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_requests_get_clean_answers_and_others_keep_being_served() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let good_secret = server.device("asso", 1 << 30, "compta", Role::Backup);
    let good = server.connect(good_secret).await.unwrap();
    let mut honest = Client::new(21);
    // The attacker is an enrolled admin device of another subscriber.
    let evil_secret = server.device("mallory", 1 << 30, "pc", Role::Admin);
    let (_ep, conn) = raw_connection(&server).await;
    authenticate(&conn, evil_secret).await;

    // Seeds: every request type as the real encoder writes it, plus a real
    // blob, a real manifest and a real HasChunks of this subscriber.
    let mut evil = Client::new(66);
    let (id, blob) = evil.blob(b"mallory's chunk");
    let mut corpus: Vec<Vec<u8>> = coffre_fuzz::targets::message_seeds()
        .into_iter()
        .filter(|m| m[4] & 0x80 == 0)
        .collect();
    corpus.push(
        encode_request(&Request::PutChunk {
            id: *id.as_bytes(),
            blob,
        })
        .unwrap(),
    );
    corpus.push(
        encode_request(&Request::Commit {
            manifest: evil.manifest("pc", vec![id]),
        })
        .unwrap(),
    );
    corpus.push(
        encode_request(&Request::HasChunks {
            ids: vec![*id.as_bytes(); 3],
        })
        .unwrap(),
    );

    const CASES: usize = 400;
    let mut rng = Rng::new(7);
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    let start = Instant::now();
    for case in 0..CASES {
        let input = if rng.one_in(10) {
            // Garbage: random length, random bytes.
            (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect()
        } else {
            let base = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &base, &corpus, 64 * 1024)
        };
        let outcome = match send(&conn, &input).await {
            Answer::Response(Response::Error(e)) => {
                assert!(!e.message.is_empty(), "an error without a message");
                assert!(
                    !matches!(e.code, ErrorCode::Internal | ErrorCode::Other(_)),
                    "case {case}: {:?}: {} for {}",
                    e.code,
                    e.message,
                    coffre_fuzz::hex(&input)
                );
                format!("error {:?}", e.code)
            }
            Answer::Response(r) => format!("ok {}", r.name()),
            Answer::Closed => "stream closed".into(),
        };
        *outcomes.entry(outcome).or_default() += 1;
        assert!(
            conn.close_reason().is_none(),
            "case {case}: the server closed the connection: {:?}",
            conn.close_reason()
        );
        if case % 100 == 99 {
            honest_round_trip(&good, &mut honest, case as u64).await;
        }
    }
    eprintln!(
        "{CASES} mutated requests in {:?}: {outcomes:#?}",
        start.elapsed()
    );
    assert!(outcomes.keys().any(|k| k.starts_with("error")));

    // Mutated handshakes: a new connection each, hello + Auth mutated.
    let mut hello_auth = encode_hello().to_vec();
    hello_auth.extend(
        encode_request(&Request::Auth {
            secret: evil_secret,
        })
        .unwrap(),
    );
    let mut handshakes = std::collections::BTreeMap::<String, usize>::new();
    for case in 0..40 {
        let input = mutate(&mut rng, &hello_auth, &corpus, 4096);
        let (_ep, conn) = raw_connection(&server).await;
        let (mut s, mut recv) = conn.open_bi().await.unwrap();
        if s.write_all(&input).await.is_ok() {
            let _ = s.finish();
        }
        let reply = tokio::time::timeout(Duration::from_secs(15), recv.read_to_end(1 << 20))
            .await
            .expect("a mutated handshake is answered or closed within the handshake timeout")
            .unwrap_or_default();
        let outcome = if reply.len() <= HELLO_LEN {
            "closed".to_string()
        } else {
            // The server answers in the version the hello named if it
            // speaks it (a mutated hello may name an older one), else its own.
            let version = coffre_proto::decode_hello(&reply[..HELLO_LEN])
                .unwrap_or_else(|e| panic!("case {case}: the server's hello: {e}"));
            assert_eq!(
                &reply[..HELLO_LEN],
                coffre_proto::encode_hello_at(version),
                "case {case}"
            );
            let (t, p) = Assembler::for_responses()
                .feed(&reply[HELLO_LEN..])
                .unwrap()
                .unwrap();
            match coffre_proto::decode_response(t, &p).unwrap() {
                Response::Error(e) => format!("error {:?}", e.code),
                Response::AuthOk { subscriber, .. } => {
                    // Only the right secret authenticates.
                    assert_eq!(subscriber, "mallory");
                    // (the hello may name any version the server speaks)
                    assert_eq!(&input[HELLO_LEN..], &hello_auth[HELLO_LEN..], "case {case}");
                    "auth ok".into()
                }
                other => panic!("case {case}: {other:?}"),
            }
        };
        *handshakes.entry(outcome).or_default() += 1;
    }
    eprintln!("40 mutated handshakes: {handshakes:?}");
    honest_round_trip(&good, &mut honest, 9999).await;
    good.close().await;
    server.stop().await;
}

#[tokio::test]
async fn oversized_frames_are_refused_from_the_length_prefix_alone() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let secret = server.device("asso", 1 << 30, "pc", Role::Backup);
    let (_ep, conn) = raw_connection(&server).await;
    authenticate(&conn, secret).await;
    let over = (MAX_FRAME_LEN + 1) as u32;
    let put_over = (2 + 32 + 4 + MAX_BLOB_LEN + 1) as u32;
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "length u32::MAX, 4 bytes only",
            u32::MAX.to_be_bytes().to_vec(),
        ),
        (
            "length 16 MiB + 1, 4 bytes only",
            over.to_be_bytes().to_vec(),
        ),
        (
            "GetKey announcing 16 MiB",
            [&(MAX_FRAME_LEN as u32).to_be_bytes()[..], &[0, 9]].concat(),
        ),
        (
            "PutChunk one byte over its cap",
            [&put_over.to_be_bytes()[..], &[0, 3]].concat(),
        ),
    ];
    for (what, prefix) in cases {
        // Send the prefix and nothing else, without finishing the stream:
        // the refusal must come from those bytes alone.
        let (mut s, recv) = conn.open_bi().await.unwrap();
        s.write_all(&prefix).await.unwrap();
        let t = Instant::now();
        match answer(recv).await {
            Answer::Response(Response::Error(e)) => {
                assert_eq!(e.code, ErrorCode::TooLarge, "{what}: {}", e.message);
                eprintln!("{what}: refused in {:?}: {}", t.elapsed(), e.message);
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_announcing_big_frames_cost_what_they_send_and_others_are_served() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let good = server
        .connect(server.device("asso", 1 << 30, "compta", Role::Backup))
        .await
        .unwrap();
    let mut honest = Client::new(31);
    honest_round_trip(&good, &mut honest, 1).await;
    let slow_secret = server.device("slow", 1 << 30, "pc", Role::Backup);
    let (_ep, conn) = raw_connection(&server).await;
    authenticate(&conn, slow_secret).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss0, heap0) = (rss() as isize, process_heap_bytes() as isize);

    // 50 streams: half announce a 16 MiB continuation frame (the start of a
    // large Commit), half a PutChunk of exactly its cap (13 MiB); each sends
    // 1 KiB, then trickles 100 bytes ten times, then stops without finishing.
    const STREAMS: usize = 50;
    let mut streams = Vec::new();
    for i in 0..STREAMS {
        let (mut s, r) = conn.open_bi().await.unwrap();
        let header = if i % 2 == 0 {
            [
                &(MAX_FRAME_LEN as u32).to_be_bytes()[..],
                &CONTINUATION.to_be_bytes(),
            ]
            .concat()
        } else {
            let len = (2 + 32 + 4 + MAX_BLOB_LEN) as u32;
            [&len.to_be_bytes()[..], &3u16.to_be_bytes()].concat()
        };
        s.write_all(&header).await.unwrap();
        s.write_all(&[0x11; 1024]).await.unwrap();
        streams.push((s, r));
    }
    for _ in 0..10 {
        for (s, _) in &mut streams {
            s.write_all(&[0x22; 100]).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss1, heap1) = (rss() as isize, process_heap_bytes() as isize);
    eprintln!(
        "{STREAMS} slow streams (announced {} in all, sent {} KiB): resident {} -> {} (+{}), \
         Rust heap +{}",
        mib((STREAMS * 15 * MIB) as isize),
        STREAMS * 2,
        mib(rss0),
        mib(rss1),
        mib(rss1 - rss0),
        mib(heap1 - heap0)
    );
    assert!(
        rss1 - rss0 < 64 * MIB as isize,
        "resident memory grew by {} for {STREAMS} slow streams",
        mib(rss1 - rss0)
    );
    // Not even reserved: the server's buffers grow with what arrives
    // (regression: the assembler used to reserve each announced frame whole,
    // +725 MiB of heap here, refused outright by a host without overcommit).
    assert!(
        heap1 - heap0 < 64 * MIB as isize,
        "the server reserved {} of heap for {STREAMS} slow streams",
        mib(heap1 - heap0)
    );

    // The honest client is served meanwhile, and the slow streams got no
    // answer (the server is still waiting for their bytes, not stuck).
    let t = Instant::now();
    honest_round_trip(&good, &mut honest, 2).await;
    eprintln!(
        "honest round trip beside the slow streams: {:?}",
        t.elapsed()
    );
    let (_, r) = &mut streams[0];
    assert!(
        tokio::time::timeout(Duration::from_millis(100), r.read_chunk(1, true))
            .await
            .is_err(),
        "a slow stream was answered before it finished"
    );

    // A slow client that stops: when its connection goes, so do its buffers.
    drop(streams);
    conn.close(0u32.into(), b"bye");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heap2 = process_heap_bytes() as isize;
    eprintln!(
        "after the slow client left: Rust heap {} from the baseline",
        mib(heap2 - heap0)
    );
    assert!(
        heap2 - heap0 < 16 * MIB as isize,
        "the slow streams' buffers were not freed: {}",
        mib(heap2 - heap0)
    );

    // The bound when a client does send almost all of what it announced:
    // each stalled stream holds its payload (at most its type's cap).
    let (_ep, conn) = raw_connection(&server).await;
    authenticate(&conn, slow_secret).await;
    let rss2 = rss() as isize;
    const FULL: usize = 4;
    let mut streams = Vec::new();
    for _ in 0..FULL {
        let (mut s, r) = conn.open_bi().await.unwrap();
        let len = (2 + 32 + 4 + MAX_BLOB_LEN) as u32;
        s.write_all(&[&len.to_be_bytes()[..], &3u16.to_be_bytes()].concat())
            .await
            .unwrap();
        s.write_all(&vec![0x33; 12 * MIB]).await.unwrap();
        streams.push((s, r));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss3 = rss() as isize;
    eprintln!(
        "{FULL} streams that sent 12 MiB of a 13 MiB PutChunk and stalled: resident +{} \
         ({} per stream)",
        mib(rss3 - rss2),
        mib((rss3 - rss2) / FULL as isize)
    );
    assert!(rss3 - rss2 < (FULL * 3 * 16 * MIB) as isize);
    honest_round_trip(&good, &mut honest, 3).await;
    drop(streams);
    conn.close(0u32.into(), b"bye");
    good.close().await;
    server.stop().await;
}

/// On tokio's paused clock: the handshake timeout passes without waiting.
#[tokio::test(start_paused = true)]
async fn idle_and_unauthenticated_connections_stay_within_the_limit_and_others_are_served() {
    let _serial = SERIAL.lock().await;
    const IDLE: usize = 200;
    const UNAUTHENTICATED: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    // The authenticated slots hold the honest client, the idle devices (one
    // subscriber's, so its cap is raised) and one more; the handshake slots the
    // silent connections (issue 17: they never take an authenticated one).
    let max_connections = 1 + IDLE + UNAUTHENTICATED;
    let limits = Limits {
        max_connections: 2 + IDLE,
        max_connections_per_subscriber: IDLE,
        max_handshakes: UNAUTHENTICATED,
        max_handshakes_per_address: UNAUTHENTICATED,
        ..Limits::default()
    };
    // The daemon's default, as `coffre-server run` has it.
    let timeout = limits.handshake_timeout;
    assert_eq!(timeout, HANDSHAKE_TIMEOUT);
    let server = TestServer::start_with(dir.path(), limits).await;
    let good_secret = server.device("asso", 1 << 30, "compta", Role::Backup);
    let good = server.connect(good_secret).await.unwrap();
    let mut honest = Client::new(41);
    honest_round_trip(&good, &mut honest, 1).await;
    let secrets: Vec<[u8; 32]> = (0..IDLE)
        .map(|i| server.device("idle", 1 << 30, &format!("pc-{i}"), Role::Backup))
        .collect();
    let ep = client_endpoint(&server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss0, heap0) = (rss() as isize, process_heap_bytes() as isize);

    // 200 devices connect, authenticate, then do nothing.
    let t = Instant::now();
    let mut idle = Vec::new();
    for secret in &secrets {
        let conn = connect_on(&ep, &server).await;
        authenticate(&conn, *secret).await;
        idle.push(conn);
    }
    let connect_time = t.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss1, heap1) = (rss() as isize, process_heap_bytes() as isize);
    eprintln!(
        "{IDLE} idle authenticated connections in {connect_time:?}: resident +{} ({} KiB each), \
         Rust heap +{} ({} KiB each), both ends counted",
        mib(rss1 - rss0),
        (rss1 - rss0) / IDLE as isize / 1024,
        mib(heap1 - heap0),
        (heap1 - heap0) / IDLE as isize / 1024
    );
    assert!(
        rss1 - rss0 < (IDLE * MIB) as isize,
        "idle connections cost more than 1 MiB each"
    );

    // A handshake flood: connections that finish TLS and never say hello.
    // Each is watched from the moment it is connected: when it is closed,
    // on the paused clock.
    let t_flood = TokioInstant::now();
    let t_flood_real = Instant::now();
    let mut unauthenticated = Vec::new();
    for _ in 0..UNAUTHENTICATED {
        let conn = connect_on(&ep, &server).await;
        let connected = TokioInstant::now();
        let closed = tokio::spawn({
            let conn = conn.clone();
            async move {
                let reason = conn.closed().await;
                (reason, connected.elapsed())
            }
        });
        unauthenticated.push((conn, closed));
    }

    // Every slot is taken: the next connection is refused at once (no
    // timer of the paused clock passes meanwhile either).
    let t = TokioInstant::now();
    let err = server.connect(good_secret).await.unwrap_err();
    eprintln!(
        "connection {} of {max_connections} refused in {:?}: {err}",
        max_connections + 1,
        t.elapsed()
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the refusal was not immediate"
    );
    assert!(
        err.code() == Some(ErrorCode::Busy) && err.to_string().contains("busy"),
        "{err}"
    );

    // The connected honest client is served all along.
    honest_round_trip(&good, &mut honest, 2).await;

    // The server drops the silent connections at its handshake timeout: not
    // before, and within 5 s after.
    let mut after = Vec::new();
    for (_conn, closed) in unauthenticated {
        let (reason, waited) = tokio::time::timeout(timeout + Duration::from_secs(5), closed)
            .await
            .expect("an unauthenticated connection outlived the handshake timeout")
            .unwrap();
        assert!(
            reason.to_string().contains("handshake timed out"),
            "{reason}"
        );
        assert!(
            waited >= timeout,
            "a silent connection was closed {waited:?} after it connected, before the \
             timeout ({timeout:?})"
        );
        assert!(
            waited <= timeout + Duration::from_secs(5),
            "a silent connection was closed {waited:?} after it connected (timeout {timeout:?})"
        );
        after.push(waited);
    }
    eprintln!(
        "{UNAUTHENTICATED} silent connections dropped {:?} to {:?} after they connected \
         (timeout {timeout:?}, tokio's paused clock; {:?} of real time since the flood)",
        after.iter().min().unwrap(),
        after.iter().max().unwrap(),
        t_flood_real.elapsed()
    );
    assert!(t_flood.elapsed() >= timeout);

    // Their slots are free again: a new honest connection is served.
    let again = loop {
        match server.connect(good_secret).await {
            Ok(r) => break r,
            Err(_) if t_flood.elapsed() < timeout * 2 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("slots were not freed: {e}"),
        }
    };
    honest_round_trip(&again, &mut honest, 3).await;
    // Idle authenticated connections are kept (QUIC keep-alive): none dropped.
    assert!(idle.iter().all(|c| c.close_reason().is_none()));
    for c in &idle {
        c.close(0u32.into(), b"bye");
    }
    again.close().await;
    good.close().await;
    server.stop().await;
}

/// A request that stalls halfway is answered with an error after
/// `Limits::request_stall` of silence, and what it buffered is dropped; a
/// slow but steady request on the same connection is not. On tokio's paused
/// clock, with the daemon's default stall (60 s).
#[tokio::test(start_paused = true)]
async fn a_request_that_stalls_is_answered_and_dropped() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits::default();
    let stall = limits.request_stall;
    assert_eq!(stall, REQUEST_STALL);
    let server = TestServer::start_with(dir.path(), limits).await;
    let secret = server.device("asso", 1 << 30, "pc", Role::Backup);
    let (_ep, conn) = raw_connection(&server).await;
    authenticate(&conn, secret).await;

    // A PutChunk announcing 1 MiB sends 1 KiB and falls silent.
    let (mut s, mut r) = conn.open_bi().await.unwrap();
    let len = (2 + 32 + 4 + MIB) as u32;
    s.write_all(&[&len.to_be_bytes()[..], &3u16.to_be_bytes()].concat())
        .await
        .unwrap();
    s.write_all(&[0x11; 1024]).await.unwrap();
    let t = TokioInstant::now();
    let reply = tokio::time::timeout(stall * 5, r.read_to_end(1 << 20))
        .await
        .expect("the server answers a stalled request")
        .unwrap();
    let waited = t.elapsed();
    let e = support::decode_error(&reply);
    assert!(e.message.contains("no data for"), "{}", e.message);
    assert!(
        waited >= stall && waited < stall * 4,
        "answered after {waited:?}"
    );

    // A request trickling slower than the limit in all, but never silent
    // for as long, is served (here: a has-chunks request, 12 pieces, one
    // every eighth of the limit: 1.5 limits in all).
    let req = encode_request(&Request::HasChunks {
        ids: vec![[7; 32]; 8],
    })
    .unwrap();
    let (mut s, mut r) = conn.open_bi().await.unwrap();
    let t = TokioInstant::now();
    for piece in req.chunks(req.len().div_ceil(12)) {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(stall / 8).await;
    }
    assert!(
        t.elapsed() > stall,
        "the trickle lasts longer than the limit"
    );
    s.finish().unwrap();
    let reply = r.read_to_end(1 << 20).await.unwrap();
    let (t, p) = Assembler::for_responses().feed(&reply).unwrap().unwrap();
    assert!(matches!(
        coffre_proto::decode_response(t, &p).unwrap(),
        Response::HasChunks { .. }
    ));
}
