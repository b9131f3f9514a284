//! One installation per device (issue 17, item 5), attacked with a hostile
//! client written against `crates/proto` over the real QUIC stack, against
//! the real daemon on loopback: a copy of a device's credential (a cloned
//! disk, a stolen credentials file) is refused once the real PC has rolled
//! it, and changes nothing of the real PC's history; `Rekey` refuses what
//! is not a fresh secret, installs one per connection, and the secrets a
//! device keeps are bounded however often it rolls; a client of an older
//! protocol (which never rolls) keeps working with its token's secret.

mod support;

use coffre_proto::{
    decode_hello, encode_hello_at, encode_request, Assembler, ErrorCode, ErrorReply, Request,
    Response, HELLO_LEN,
};
use coffre_store::Role;
use support::{backup, raw_connection, Client, TestServer};

const GIB: u64 = 1 << 30;

/// A raw connection and its endpoint (which must live as long).
struct Raw {
    _ep: quinn::Endpoint,
    conn: quinn::Connection,
}

impl std::ops::Deref for Raw {
    type Target = quinn::Connection;
    fn deref(&self) -> &quinn::Connection {
        &self.conn
    }
}

/// Hello (at `version`) and `Auth` on a raw connection: the connection, the
/// version the server settled on, and its answer.
async fn auth_at(server: &TestServer, version: u16, secret: [u8; 32]) -> (Raw, u16, Response) {
    let (_ep, conn) = raw_connection(server).await;
    let mut bytes = encode_hello_at(version).to_vec();
    bytes.extend(encode_request(&Request::Auth { secret }).unwrap());
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&bytes).await.unwrap();
    send.finish().unwrap();
    let reply = recv.read_to_end(1 << 20).await.unwrap();
    let hello: [u8; HELLO_LEN] = reply[..HELLO_LEN].try_into().unwrap();
    let (t, p) = Assembler::for_responses()
        .feed(&reply[HELLO_LEN..])
        .unwrap()
        .unwrap();
    let settled = decode_hello(&hello).unwrap();
    let response = coffre_proto::decode_response(t, &p).unwrap();
    (Raw { _ep, conn }, settled, response)
}

/// The refusal of an `Auth` with `secret`.
async fn refused(server: &TestServer, secret: [u8; 32]) -> ErrorReply {
    match auth_at(server, coffre_proto::PROTOCOL_VERSION, secret)
        .await
        .2
    {
        Response::Error(e) => e,
        other => panic!("the server accepted it: {other:?}"),
    }
}

/// A request on an authenticated raw connection, and its answer.
async fn call(conn: &quinn::Connection, req: &Request) -> Response {
    let bytes = support::raw_request(conn, &encode_request(req).unwrap()).await;
    let (t, p) = Assembler::for_responses().feed(&bytes).unwrap().unwrap();
    coffre_proto::decode_response(t, &p).unwrap()
}

fn code(r: &Response) -> Option<ErrorCode> {
    match r {
        Response::Error(e) => Some(e.code),
        _ => None,
    }
}

/// `(pending, retired, retired tokens)` secrets of device `device_id`, as
/// the catalogue keeps them.
fn kept(dir: &std::path::Path, device_id: i64) -> (i64, i64, i64) {
    let db = rusqlite::Connection::open(dir.join("catalog.sqlite")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [device_id], |r| r.get(0)).unwrap() };
    (
        count("SELECT COUNT(*) FROM device_secrets WHERE device_id = ?1 AND state = 'pending'"),
        count("SELECT COUNT(*) FROM device_secrets WHERE device_id = ?1 AND state = 'retired' AND token = 0"),
        count("SELECT COUNT(*) FROM device_secrets WHERE device_id = ?1 AND state = 'retired' AND token = 1"),
    )
}

#[tokio::test]
async fn a_copied_credential_is_refused_once_the_pc_rolled_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let token = server.device("asso", GIB, "pc", Role::Backup);
    let mut client = Client::new(1);

    // The real PC enrols (its first roll consumes the token), backs up and
    // rolls its credential again, as `coffre` does.
    let pc = server.connect(token).await.unwrap();
    let s0 = [0x50; 32];
    assert!(!pc.rekey(s0).await.unwrap(), "recorded as pending");
    assert!(pc.rekey(s0).await.unwrap(), "confirmed: current");
    pc.close().await;
    let pc = server.connect(s0).await.unwrap();
    let (first, _) = backup(&pc, &mut client, 1, 2, 5_000).await.unwrap();
    let p1 = [0x51; 32];
    assert!(!pc.rekey(p1).await.unwrap());
    assert!(pc.rekey(p1).await.unwrap());
    pc.close().await;
    let status = server.store.list_devices(Some("asso")).unwrap();
    let snaps = |s: &coffre_store::Session| server.store.list_snapshots(s).unwrap();

    // A copy of its disk taken before the roll holds s0.
    let before = server.store.now();
    let e = refused(&server, s0).await;
    assert_eq!(e.code, ErrorCode::Superseded, "{e:?}");
    assert!(
        e.message
            .contains("replaced by another installation of it on 20")
            && e.message.contains("coffre-server device reissue asso pc"),
        "{}",
        e.message
    );
    assert!((before - 5..=server.store.now()).contains(&i64::try_from(e.used).unwrap()));

    // Nothing of the real PC changed but the count of refusals.
    let after = server.store.list_devices(Some("asso")).unwrap();
    assert_eq!(after[0].last_backup, status[0].last_backup);
    assert_eq!((after[0].clone_refusals, status[0].clone_refusals), (1, 0));
    let real = server.store.authenticate(&p1).unwrap();
    let list = snaps(&real);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, first);

    // The real PC goes on with its own secret.
    let pc = server.connect(p1).await.unwrap();
    backup(&pc, &mut client, 2, 2, 5_000).await.unwrap();
    assert_eq!(snaps(&real).len(), 2);
    pc.close().await;
    server.stop().await;
}

#[tokio::test]
async fn rekey_takes_only_a_fresh_secret_once_per_connection_and_keeps_few() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let token = server.device("asso", GIB, "pc", Role::Backup);
    let other = server.device("asso", GIB, "laptop", Role::Backup);
    let device_id = server.store.authenticate(&token).unwrap().device_id;

    let (conn, _, ok) = auth_at(&server, 3, token).await;
    assert!(matches!(ok, Response::AuthOk { .. }), "{ok:?}");
    // Another device's secret, and its own current one.
    let r = call(&conn, &Request::Rekey { secret: other }).await;
    assert_eq!(code(&r), Some(ErrorCode::BadRequest), "{r:?}");
    let r = call(&conn, &Request::Rekey { secret: token }).await;
    assert_eq!(
        r,
        Response::Rekeyed { current: true },
        "its own: nothing to do"
    );
    // One new secret per connection.
    let r = call(&conn, &Request::Rekey { secret: [1; 32] }).await;
    assert_eq!(r, Response::Rekeyed { current: false });
    let r = call(&conn, &Request::Rekey { secret: [2; 32] }).await;
    assert_eq!(code(&r), Some(ErrorCode::BadRequest), "{r:?}");
    let r = call(&conn, &Request::Rekey { secret: [1; 32] }).await;
    assert_eq!(r, Response::Rekeyed { current: true });
    conn.close(0u32.into(), b"bye");
    // Its retired token cannot come back.
    let (conn, _, _) = auth_at(&server, 3, [1; 32]).await;
    let r = call(&conn, &Request::Rekey { secret: token }).await;
    assert_eq!(code(&r), Some(ErrorCode::BadRequest), "{r:?}");
    conn.close(0u32.into(), b"bye");
    let e = refused(&server, token).await;
    assert!(
        e.message
            .contains("this enrolment token was already used to enrol device \"pc\""),
        "{}",
        e.message
    );

    // A device rolling in a loop, and one leaving secrets pending: the
    // catalogue keeps 4 pending and 32 retired at most (and the token's).
    let mut current = [1u8; 32];
    for i in 0..40u8 {
        let (conn, _, _) = auth_at(&server, 3, current).await;
        let next = [i + 100; 32];
        for confirmed in [false, true] {
            let r = call(&conn, &Request::Rekey { secret: next }).await;
            assert_eq!(r, Response::Rekeyed { current: confirmed });
        }
        conn.close(0u32.into(), b"bye");
        current = next;
    }
    for i in 0..10u8 {
        let (conn, _, _) = auth_at(&server, 3, current).await;
        let r = call(
            &conn,
            &Request::Rekey {
                secret: [i + 200; 32],
            },
        )
        .await;
        assert_eq!(r, Response::Rekeyed { current: false });
        conn.close(0u32.into(), b"bye");
    }
    assert_eq!(kept(dir.path(), device_id), (4, 32, 1));
    // The oldest pending ones were dropped: unknown now; the newest work.
    assert_eq!(
        refused(&server, [200; 32]).await.code,
        ErrorCode::UnknownDevice
    );
    let (_, _, ok) = auth_at(&server, 3, [209; 32]).await;
    assert!(matches!(ok, Response::AuthOk { .. }), "{ok:?}");
    assert_eq!(kept(dir.path(), device_id), (0, 32, 1));
    // The token's refusal still says what it is.
    assert!(refused(&server, token)
        .await
        .message
        .contains("enrolment token"));
    server.stop().await;
}

#[tokio::test]
async fn a_client_of_an_older_protocol_keeps_working_with_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let token = server.device("asso", GIB, "pc", Role::Backup);
    for version in [1u16, 2, 1, 2] {
        let (conn, settled, ok) = auth_at(&server, version, token).await;
        assert_eq!(settled, version);
        assert!(matches!(ok, Response::AuthOk { .. }), "{ok:?}");
        let r = call(&conn, &Request::ListSnapshots).await;
        assert!(matches!(r, Response::Snapshots { .. }), "{r:?}");
        conn.close(0u32.into(), b"bye");
    }
    let d = &server.store.list_devices(Some("asso")).unwrap()[0];
    assert!(d.token_live && d.clone_refusals == 0, "{d:?}");
    server.stop().await;
}
