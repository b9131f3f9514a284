//! The server end to end: the real daemon (`coffre_server::serve`) on
//! loopback QUIC, driven by the real client connection (`coffre_client::Remote`).
//! Each test has its own data directory; nothing is mocked.

mod support;

use std::sync::Arc;

use coffre_client::{Remote, RemoteError};
use coffre_core::{benchmark, ChunkId, KdfParams, KeyFile, MasterKey};
use coffre_proto::{ErrorCode, Response};
use coffre_server::Limits;
use coffre_store::{Role, Store};
use support::{
    assert_restorable, backup, decode_error, raw_connection, raw_request, Client, TestServer,
};

#[tokio::test]
async fn backup_objects_round_trip_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let secret = server.device("asso-jardins", 1 << 30, "compta-pc", Role::Backup);
    let remote = server.connect(secret).await.unwrap();
    assert_eq!(
        (remote.subscriber.as_str(), remote.device.as_str()),
        ("asso-jardins", "compta-pc")
    );
    let mut client = Client::new(1);

    assert_eq!(remote.key().await.unwrap(), None);
    let key_file = KeyFile::wrap(
        &MasterKey::from_bytes([1; 32]),
        b"passphrase",
        KdfParams::INSECURE_FOR_TESTS,
    )
    .unwrap();
    remote.put_key(key_file.as_bytes().to_vec()).await.unwrap();
    let (snap, chunks) = backup(&remote, &mut client, 1, 5, 300_000).await.unwrap();
    let have = remote
        .has_chunks(&chunks.iter().map(|c| c.0).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(have.iter().all(|h| *h));
    assert!(
        !remote
            .has_chunks(&[ChunkId::from_bytes([7; 32])])
            .await
            .unwrap()[0]
    );
    assert_restorable(&remote, &client, &snap, &chunks).await;
    let list = remote.snapshots().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].device, "compta-pc");
    remote.close().await;
    server.stop().await;

    // Restart on the same data directory: everything is still there.
    let server = TestServer::start(dir.path()).await;
    let remote = server.connect(secret).await.unwrap();
    assert_eq!(
        remote.key().await.unwrap().as_deref(),
        Some(key_file.as_bytes())
    );
    assert_eq!(remote.snapshots().await.unwrap().len(), 1);
    assert_restorable(&remote, &client, &snap, &chunks).await;
    let status = remote.status().await.unwrap();
    assert_eq!(status.snapshots, 1);
    assert!(status.used_bytes > 5 * 300_000);
    assert!(status.last_backup.is_some());
    remote.close().await;
    server.stop().await;
}

#[tokio::test]
async fn an_interrupted_upload_is_kept_when_the_connection_ends() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let secret = server.device("asso", 1 << 30, "pc", Role::Backup);
    let mut client = Client::new(2);
    let remote = server.connect(secret).await.unwrap();
    let (id, blob) = client.blob(&benchmark::random_bytes(100_000, 1));
    assert!(remote.put_chunk(&id, blob.clone()).await.unwrap());
    drop(remote); // no commit: the backup was interrupted
                  // The rerun finds the chunk already there and sends nothing twice.
    let remote = loop {
        let r = server.connect(secret).await.unwrap();
        if r.has_chunks(&[id]).await.unwrap()[0] {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        !remote.put_chunk(&id, blob).await.unwrap(),
        "the chunk was stored twice"
    );
    remote.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_full_quota_refuses_new_data_in_plain_words_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let secret = server.device("petite-asso", 2_000_000, "pc", Role::Backup);
    let remote = server.connect(secret).await.unwrap();
    let mut client = Client::new(3);
    let (snap, chunks) = backup(&remote, &mut client, 3, 2, 500_000).await.unwrap();
    let used_before = server.store.subscriber("petite-asso").unwrap().used_bytes;

    let err = backup(&remote, &mut client, 4, 4, 500_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::QuotaExceeded), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("quota is full") && text.contains("1.9 MiB"),
        "{text}"
    );
    assert!(!text.contains('\n'));

    // Nothing committed was touched; the earlier snapshot restores.
    assert_restorable(&remote, &client, &snap, &chunks).await;
    assert_eq!(remote.snapshots().await.unwrap().len(), 1);
    remote.close().await;
    server.stop().await;
    let store = Store::open(dir.path()).unwrap();
    assert!(store.subscriber("petite-asso").unwrap().used_bytes <= 2_000_000);
    assert!(store.subscriber("petite-asso").unwrap().used_bytes >= used_before);
}

#[tokio::test]
async fn revoked_and_unknown_devices_are_refused_at_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let secret = server.device("asso", 1 << 30, "old-pc", Role::Backup);
    server.connect(secret).await.unwrap().close().await;
    server.store.revoke_device("asso", "old-pc").unwrap();
    let err = server.connect(secret).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Revoked), "{err}");
    assert!(err.to_string().contains("revoked"), "{err}");
    let err = server.connect([9; 32]).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownDevice), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_certificate_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let secret = server.device("asso", 1 << 30, "pc", Role::Backup);
    let err = Remote::connect(&server.addr, [0; 32], secret)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RemoteError::CertificateMismatch { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("does not present the certificate"),
        "{err}"
    );
    server.stop().await;
    let err = Remote::connect(&server_addr_unused(), [0; 32], secret)
        .await
        .unwrap_err();
    assert!(matches!(err, RemoteError::Unreachable { .. }), "{err}");
}

/// A loopback port with no server behind it.
fn server_addr_unused() -> String {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    drop(sock);
    addr
}

#[tokio::test]
async fn subscribers_cannot_read_or_probe_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let a = server
        .connect(server.device("alpha", 1 << 30, "pc", Role::Admin))
        .await
        .unwrap();
    let b = server
        .connect(server.device("beta", 1 << 30, "pc", Role::Admin))
        .await
        .unwrap();
    let mut ca = Client::new(10);
    let (snap, chunks) = backup(&a, &mut ca, 10, 2, 100_000).await.unwrap();
    let ids: Vec<ChunkId> = chunks.iter().map(|c| c.0).collect();

    assert_eq!(
        b.has_chunks(&ids).await.unwrap(),
        vec![false, false],
        "beta learnt that alpha holds a chunk"
    );
    let e = b.chunk(&ids[0]).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound), "{e}");
    let e = b.manifest(&snap).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound), "{e}");
    assert!(b.snapshots().await.unwrap().is_empty());
    let e = b.forget(&snap).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound), "{e}");
    assert_eq!(b.key().await.unwrap(), None);
    // alpha's snapshot is intact
    assert_restorable(&a, &ca, &snap, &chunks).await;
    a.close().await;
    b.close().await;
    server.stop().await;
}

#[tokio::test]
async fn many_chunks_come_back_in_order_across_replies_and_another_subscribers_are_absent() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let mut a = server
        .connect(server.device("alpha", 1 << 30, "pc", Role::Admin))
        .await
        .unwrap();
    let b = server
        .connect(server.device("beta", 1 << 30, "pc", Role::Admin))
        .await
        .unwrap();
    assert_eq!(a.version, coffre_proto::PROTOCOL_VERSION);
    // Five blobs of 4 MiB: more than one reply carries (16 MiB), so the
    // client asks again for the rest.
    let mut ca = Client::new(20);
    let (_, big) = backup(&a, &mut ca, 20, 5, 4 << 20).await.unwrap();
    let mut cb = Client::new(21);
    let (_, theirs) = backup(&b, &mut cb, 21, 1, 1000).await.unwrap();
    let nobody = ChunkId::from_bytes([0xAB; 32]);
    let mut ids: Vec<ChunkId> = big.iter().map(|c| c.0).collect();
    ids.insert(2, theirs[0].0);
    ids.push(nobody);

    for version in [coffre_proto::PROTOCOL_VERSION, 1] {
        // As with a server of the first release: one GetChunk per id.
        a.version = version;
        let blobs = a.chunks(&ids).await.unwrap();
        assert_eq!(blobs.len(), ids.len(), "version {version}");
        assert!(
            blobs[2].is_none() && blobs[6].is_none(),
            "version {version}"
        );
        let found: Vec<Vec<u8>> = blobs.into_iter().flatten().collect();
        assert_eq!(found.len(), big.len());
        for (blob, (id, data)) in found.iter().zip(&big) {
            let plain = coffre_core::blob::open(&ca.keys, coffre_core::BlobKind::Data, id, blob);
            assert_eq!(&plain.unwrap(), data, "version {version}");
        }
    }
    a.close().await;
    b.close().await;
    server.stop().await;
}

#[tokio::test]
async fn many_small_blobs_go_in_one_request_within_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let mut remote = server
        .connect(server.device("asso", 600_000, "pc", Role::Backup))
        .await
        .unwrap();
    let mut client = Client::new(30);
    let mut chunks = Vec::new();
    for (version, first) in [(coffre_proto::PROTOCOL_VERSION, 0u64), (1, 100)] {
        remote.version = version;
        let batch: Vec<(ChunkId, Vec<u8>)> = (first..first + 20)
            .map(|i| benchmark::random_bytes(5_000, 3000 + i))
            .map(|data| {
                let (id, blob) = client.blob(&data);
                chunks.push((id, data));
                (id, blob)
            })
            .collect();
        // The same blob twice in a request: stored once.
        let mut sent = batch.clone();
        sent.push(batch[3].clone());
        let new = remote.put_chunks(sent).await.unwrap();
        let mut expected = vec![true; 20];
        expected.push(false);
        assert_eq!(new, expected, "version {version}");
        // Sent again: the server has them all.
        assert_eq!(
            remote.put_chunks(batch).await.unwrap(),
            vec![false; 20],
            "version {version}"
        );
    }
    let manifest = client.manifest(&remote.device, chunks.iter().map(|c| c.0).collect());
    let snap = remote.commit(manifest).await.unwrap();
    assert_restorable(&remote, &client, &snap, &chunks).await;

    // Past the quota, the whole request is refused in plain words; what was
    // committed stays.
    remote.version = coffre_proto::PROTOCOL_VERSION;
    let big: Vec<(ChunkId, Vec<u8>)> = (0..200)
        .map(|i| client.blob(&benchmark::random_bytes(5_000, 4000 + i)))
        .collect();
    let err = remote.put_chunks(big).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::QuotaExceeded), "{err}");
    assert!(err.to_string().contains("quota is full"), "{err}");
    assert_restorable(&remote, &client, &snap, &chunks).await;
    remote.close().await;
    server.stop().await;
}

#[tokio::test]
async fn only_an_admin_device_can_forget() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let pc = server
        .connect(server.device("asso", 1 << 30, "pc", Role::Backup))
        .await
        .unwrap();
    let tech = server
        .connect(server.device("asso", 1 << 30, "technicien", Role::Admin))
        .await
        .unwrap();
    let mut c = Client::new(11);
    let (snap, _) = backup(&pc, &mut c, 11, 1, 1000).await.unwrap();
    let e = pc.forget(&snap).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden), "{e}");
    assert_eq!(pc.snapshots().await.unwrap().len(), 1);
    tech.forget(&snap).await.unwrap();
    assert!(pc.snapshots().await.unwrap().is_empty());
    pc.close().await;
    tech.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_commit_with_missing_chunks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let remote = server
        .connect(server.device("asso", 1 << 30, "pc", Role::Backup))
        .await
        .unwrap();
    let c = Client::new(12);
    let e = remote
        .commit(c.manifest("pc", vec![ChunkId::from_bytes([5; 32])]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::MissingChunks), "{e}");
    assert!(remote.snapshots().await.unwrap().is_empty());
    remote.close().await;
    server.stop().await;
}

#[tokio::test]
async fn hostile_frames_get_clean_errors_and_others_keep_being_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let secret = server.device("asso", 1 << 30, "pc", Role::Backup);
    let good = server.connect(secret).await.unwrap();

    // A stranger: wrong magic in the hello.
    let (_ep, conn) = raw_connection(&server).await;
    let reply = raw_request(&conn, b"HTTP/1.1 GET /\r\n\r\n").await;
    assert_eq!(&reply[..6], b"COFFRE", "the server says who it is");
    assert_eq!(
        decode_error(&reply[coffre_proto::HELLO_LEN..]).code,
        ErrorCode::UnsupportedVersion
    );

    // A client older than any version the server speaks: right magic,
    // protocol version 0.
    let (_ep, conn) = raw_connection(&server).await;
    let reply = raw_request(&conn, &coffre_proto::encode_hello_at(0)).await;
    let e = decode_error(&reply[coffre_proto::HELLO_LEN..]);
    assert_eq!(e.code, ErrorCode::UnsupportedVersion);
    assert!(e.message.contains("version 0"), "{}", e.message);

    // A future client (version 99) is answered in the server's newest
    // version, and a PC of the first release (version 1) in its own: both
    // authenticate.
    for (asked, answered) in [(99, coffre_proto::PROTOCOL_VERSION), (1, 1)] {
        let (_ep, conn) = raw_connection(&server).await;
        let mut auth = coffre_proto::encode_hello_at(asked).to_vec();
        auth.extend(coffre_proto::encode_request(&coffre_proto::Request::Auth { secret }).unwrap());
        let reply = raw_request(&conn, &auth).await;
        assert_eq!(
            reply[..coffre_proto::HELLO_LEN],
            coffre_proto::encode_hello_at(answered),
            "client version {asked}"
        );
        let (ty, payload) = coffre_proto::Assembler::new(1 << 20)
            .feed(&reply[coffre_proto::HELLO_LEN..])
            .unwrap()
            .unwrap();
        assert!(matches!(
            coffre_proto::decode_response(ty, &payload).unwrap(),
            Response::AuthOk { .. }
        ));
    }

    // After a good handshake: oversized, truncated, unknown and garbage frames.
    let (_ep, conn) = raw_connection(&server).await;
    let mut auth = coffre_proto::encode_hello().to_vec();
    auth.extend(coffre_proto::encode_request(&coffre_proto::Request::Auth { secret }).unwrap());
    let reply = raw_request(&conn, &auth).await;
    let (ty, payload) = coffre_proto::Assembler::new(1 << 20)
        .feed(&reply[coffre_proto::HELLO_LEN..])
        .unwrap()
        .unwrap();
    assert!(matches!(
        coffre_proto::decode_response(ty, &payload).unwrap(),
        Response::AuthOk { .. }
    ));

    let oversized = [0xff, 0xff, 0xff, 0xff, 0x00, 0x03];
    let e = decode_error(&raw_request(&conn, &oversized).await);
    assert_eq!(e.code, ErrorCode::TooLarge, "{}", e.message);

    let mut truncated = coffre_proto::encode_request(&coffre_proto::Request::HasChunks {
        ids: vec![[1; 32]; 4],
    })
    .unwrap();
    truncated.truncate(truncated.len() - 10);
    let e = decode_error(&raw_request(&conn, &truncated).await);
    assert_eq!(e.code, ErrorCode::BadRequest, "{}", e.message);

    let unknown = [0, 0, 0, 2, 0x7f, 0x00];
    let e = decode_error(&raw_request(&conn, &unknown).await);
    assert_eq!(e.code, ErrorCode::BadRequest, "{}", e.message);

    let e = decode_error(&raw_request(&conn, b"\x00\x00\x00\x05\x00\x02zz").await);
    assert_eq!(e.code, ErrorCode::BadRequest, "{}", e.message);

    // The well-behaved client never noticed.
    let mut c = Client::new(13);
    let (snap, chunks) = backup(&good, &mut c, 13, 2, 50_000).await.unwrap();
    assert_restorable(&good, &c, &snap, &chunks).await;
    good.close().await;
    server.stop().await;
}

#[tokio::test]
async fn connections_past_the_limit_are_refused_and_others_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(
        dir.path(),
        Limits {
            max_connections: 2,
            ..Limits::default()
        },
    )
    .await;
    let secret = server.device("asso", 1 << 30, "pc", Role::Backup);
    let a = server.connect(secret).await.unwrap();
    let b = server.connect(secret).await.unwrap();
    let err = server.connect(secret).await.unwrap_err();
    assert!(
        matches!(
            err,
            RemoteError::Refused(_) | RemoteError::Unreachable { .. }
        ),
        "{err}"
    );
    assert!(a.snapshots().await.is_ok() && b.snapshots().await.is_ok());
    a.close().await;
    b.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_devices_back_up_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(TestServer::start(dir.path()).await);
    let mut tasks = Vec::new();
    for i in 0..10u8 {
        let subscriber = format!("asso-{}", i / 2);
        let secret = server.device(&subscriber, 1 << 30, &format!("pc-{i}"), Role::Backup);
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let remote = server.connect(secret).await.unwrap();
            let mut client = Client::new(100 + i / 2);
            let (snap, chunks) = backup(&remote, &mut client, 100 + u64::from(i), 12, 200_000)
                .await
                .unwrap();
            assert_restorable(&remote, &client, &snap, &chunks).await;
            remote.close().await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..5 {
        assert_eq!(
            server
                .store
                .subscriber(&format!("asso-{i}"))
                .unwrap()
                .snapshots,
            2
        );
    }
    Arc::try_unwrap(server).ok().unwrap().stop().await;
}
