//! Shared by the end-to-end tests beyond `coffre-testkit` (which gives the
//! real daemon in-process on loopback, `TestServer`, and a subscriber's keys
//! that make real blobs and manifests, `Client`): a backup through the
//! client's connection and its restore check, and raw QUIC access for
//! hostile bytes. Each test binary uses a part of it.

#![allow(dead_code)]

use coffre_client::{Remote, RemoteError};
use coffre_core::{ChunkId, Manifest};
use coffre_proto::Response;
pub use coffre_testkit::daemon::TestServer;
use coffre_testkit::data;
pub use coffre_testkit::Client;

/// Uploads `n` chunks of `size` random bytes and commits them as a snapshot.
pub async fn backup(
    remote: &Remote,
    client: &mut Client,
    seed: u64,
    n: usize,
    size: usize,
) -> Result<(ChunkId, Vec<(ChunkId, Vec<u8>)>), RemoteError> {
    let mut chunks = Vec::new();
    for i in 0..n {
        let data = data(seed * 1000 + i as u64, size);
        let (id, blob) = client.blob(&data);
        remote.put_chunk(&id, blob).await?;
        chunks.push((id, data));
    }
    let manifest = client.manifest(&remote.device, chunks.iter().map(|c| c.0).collect());
    let snap = remote.commit(manifest).await?;
    Ok((snap, chunks))
}

pub async fn assert_restorable(
    remote: &Remote,
    client: &Client,
    snap: &ChunkId,
    chunks: &[(ChunkId, Vec<u8>)],
) {
    let m = Manifest::open(&client.keys, &remote.manifest(snap).await.unwrap()).unwrap();
    assert_eq!(m.public.chunks.len(), chunks.len());
    for (id, data) in chunks {
        let blob = remote.chunk(id).await.unwrap();
        assert_eq!(&client.open(id, &blob), data);
    }
}

/// Raw bytes on a stream of an authenticated connection.
pub async fn raw_request(conn: &quinn::Connection, bytes: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    recv.read_to_end(1 << 20).await.unwrap_or_default()
}

pub async fn raw_connection(server: &TestServer) -> (quinn::Endpoint, quinn::Connection) {
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(coffre_client::client_config(server.fingerprint).unwrap());
    let conn = ep
        .connect(server.addr.parse().unwrap(), "coffre-server")
        .unwrap()
        .await
        .unwrap();
    (ep, conn)
}

pub fn decode_error(bytes: &[u8]) -> coffre_proto::ErrorReply {
    let mut asm = coffre_proto::Assembler::new(1 << 20);
    let (ty, payload) = asm.feed(bytes).unwrap().expect("a whole response");
    match coffre_proto::decode_response(ty, &payload).unwrap() {
        Response::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}
