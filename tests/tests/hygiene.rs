//! Server hygiene seen from a PC (issue 17): the real daemon in-process on
//! loopback, attacked over real QUIC by a client written against
//! `coffre_proto` (`support::raw_connection`).
//!
//! - An error sent to a PC names what it asked for and never the server's
//!   paths nor the operator's commands; the details stay on the server (its
//!   log at warn, `verify`).
//! - A backup refused for its quota leaves nothing reserved once its
//!   connection ends, `used_bytes` is what the disk holds, and the chunks it
//!   sent are kept: the next backup, once there is room, does not send them
//!   again.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffre_core::ChunkId;
use coffre_proto::{ErrorCode, Request, Response};
use coffre_store::{Role, VerifyOptions};
use coffre_testkit::data;
use support::{decode_error, raw_connection, raw_request, Client, TestServer};

/// The server's log lines, kept for the test (every test of this binary
/// writes there; each looks for its own lines).
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_ansi(false)
            .with_writer(move || Shared(writer.clone()))
            .init();
        buf
    })
    .clone()
}

struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The sealed packs and the manifests of subscriber folder `sub`.
fn stored_files(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(data.join("subscribers")).unwrap() {
        let sub = sub.unwrap().path();
        for (dir, suffix) in [("packs", ".pack"), ("manifests", "")] {
            let Ok(list) = std::fs::read_dir(sub.join(dir)) else {
                continue;
            };
            for f in list {
                let f = f.unwrap();
                let name = f.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') && name.ends_with(suffix) {
                    out.push(f.path());
                }
            }
        }
    }
    out
}

/// An authenticated raw connection: hello and Auth written by hand.
async fn hostile(server: &TestServer, secret: [u8; 32]) -> (quinn::Endpoint, quinn::Connection) {
    let (ep, conn) = raw_connection(server).await;
    let mut auth = coffre_proto::encode_hello().to_vec();
    auth.extend(coffre_proto::encode_request(&Request::Auth { secret }).unwrap());
    let reply = raw_request(&conn, &auth).await;
    let (ty, payload) = coffre_proto::Assembler::new(1 << 20)
        .feed(&reply[coffre_proto::HELLO_LEN..])
        .unwrap()
        .unwrap();
    assert!(matches!(
        coffre_proto::decode_response(ty, &payload).unwrap(),
        Response::AuthOk { .. }
    ));
    (ep, conn)
}

#[tokio::test]
async fn a_damaged_chunk_is_named_to_the_pc_without_the_servers_paths() {
    let log = captured_log();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let secret = server.device("asso", 1 << 30, "pc", Role::Backup);
    let remote = server.connect(secret).await.unwrap();
    let mut client = Client::new(8);
    let (_, chunks) = support::backup(&remote, &mut client, 8, 2, 50_000)
        .await
        .unwrap();
    remote.close().await;
    let id: ChunkId = chunks[0].0;
    // One bit of the pack flips on disk.
    let pack = stored_files(dir.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&pack, &bytes).unwrap();

    let (_ep, conn) = hostile(&server, secret).await;
    let data_dir = dir.path().display().to_string();
    for request in [
        Request::GetChunk { id: *id.as_bytes() },
        Request::GetChunks {
            ids: vec![*id.as_bytes()],
        },
    ] {
        let reply = decode_error(
            &raw_request(&conn, &coffre_proto::encode_request(&request).unwrap()).await,
        );
        let m = &reply.message;
        assert_eq!(reply.code, ErrorCode::Internal, "{m}");
        assert!(
            m.contains(&format!("chunk {}", id.short())) && m.contains("damaged"),
            "names the chunk: {m}"
        );
        assert!(
            !m.contains('/') && !m.contains(&data_dir) && !m.contains("coffre-server"),
            "no path, no operator command: {m}"
        );
    }
    conn.close(0u32.into(), b"done");

    // The operator has the details: the log, and verify.
    let logged = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let pack_name = pack.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        logged.contains(&id.short()) && logged.contains(&pack_name) && logged.contains("WARN"),
        "{logged}"
    );
    let report = server
        .store
        .verify("asso", &VerifyOptions::default())
        .unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert!(
        report.damaged[0].pack.contains(&pack_name[..8]),
        "{report:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_backup_refused_for_its_quota_keeps_what_it_sent_and_reserves_nothing_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let secret = server.device("petite", 2_000_000, "pc", Role::Backup);
    let (_ep, conn) = hostile(&server, secret).await;
    let mut client = Client::new(9);
    let mut sent = Vec::new();
    let refusal = loop {
        let (id, blob) = client.blob(&data(900 + sent.len() as u64, 400_000));
        let put = Request::PutChunk {
            id: *id.as_bytes(),
            blob,
        };
        let reply = raw_request(&conn, &coffre_proto::encode_request(&put).unwrap()).await;
        let mut asm = coffre_proto::Assembler::new(1 << 20);
        let (ty, payload) = asm.feed(&reply).unwrap().unwrap();
        match coffre_proto::decode_response(ty, &payload).unwrap() {
            Response::Stored { new } => {
                assert!(new);
                sent.push(id);
            }
            Response::Error(e) => break e,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        refusal.code,
        ErrorCode::QuotaExceeded,
        "{}",
        refusal.message
    );
    assert_eq!(sent.len(), 4, "4 blobs of 400 kB fit in 2 MB");
    let m = &refusal.message;
    assert!(
        m.contains("kept for the next one") && !m.contains("coffre-server"),
        "says what happens to what was sent, no operator command: {m}"
    );
    assert!(
        server.store.reserved_bytes("petite").unwrap() > 0,
        "the open pack holds its reservation while the connection lives"
    );

    // The PC goes away: its open pack is sealed, nothing stays reserved.
    conn.close(0u32.into(), b"refused");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.store.reserved_bytes("petite").unwrap() > 0 {
        assert!(
            Instant::now() < deadline,
            "a reservation outlived its session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let on_disk: u64 = stored_files(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let used = server.store.subscriber("petite").unwrap().used_bytes;
    assert_eq!(used, on_disk, "used bytes are what the disk holds");
    assert!(used > 1_600_000, "the sent chunks are kept: {used}");

    // Room made: the retry sends only what is missing and commits.
    server
        .store
        .set_subscriber("petite", Some(10_000_000), None)
        .unwrap();
    let remote = server.connect(secret).await.unwrap();
    assert_eq!(
        remote.has_chunks(&sent).await.unwrap(),
        vec![true; sent.len()]
    );
    let mut ids = sent.clone();
    let (id, blob) = client.blob(&data(999, 400_000));
    assert!(remote.put_chunk(&id, blob).await.unwrap());
    ids.push(id);
    ids.sort();
    remote
        .commit(client.manifest(&remote.device, ids))
        .await
        .unwrap();
    remote.close().await;
    server.stop().await;
}
