//! Shared by the end-to-end tests: the real daemon in-process on loopback
//! (`TestServer`), a subscriber's keys that make real blobs and manifests
//! (`Client`), a backup and its restore check, and raw QUIC access for
//! hostile bytes. Each test binary uses a part of it.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use coffre_client::{self as remote, Remote, RemoteError};
use coffre_core::{benchmark, BlobKind, ChunkId, Keys, Manifest, MasterKey, Sealer, Timestamp};
use coffre_proto::Response;
use coffre_server::{serve, Identity, Limits, TransportLimits};
use coffre_store::{Role, Store};
use tokio::sync::oneshot;

/// A server running in this process on 127.0.0.1, on a data directory.
pub struct TestServer {
    pub addr: String,
    pub fingerprint: [u8; 32],
    pub store: Arc<Store>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(data: &Path) -> TestServer {
        Self::start_with(data, Limits::default()).await
    }

    pub async fn start_with(data: &Path, limits: Limits) -> TestServer {
        let tls = data.join("tls");
        let (store, identity) = if tls.exists() {
            (Store::open(data).unwrap(), Identity::load(&tls).unwrap())
        } else {
            let id = Identity::generate().unwrap();
            id.save(&tls).unwrap();
            (Store::create(data).unwrap(), id)
        };
        let store = Arc::new(store);
        let endpoint = quinn::Endpoint::server(
            identity.server_config(&TransportLimits::default()).unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let addr = endpoint.local_addr().unwrap().to_string();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn({
            let store = store.clone();
            async move {
                serve(endpoint, store, limits, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            }
        });
        TestServer {
            addr,
            fingerprint: identity.fingerprint(),
            store,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn device(&self, subscriber: &str, quota: u64, device: &str, role: Role) -> [u8; 32] {
        if self.store.subscriber(subscriber).is_err() {
            self.store.add_subscriber(subscriber, quota, None).unwrap();
        }
        self.store.add_device(subscriber, device, role).unwrap()
    }

    pub async fn connect(&self, secret: [u8; 32]) -> Result<Remote, RemoteError> {
        Remote::connect(&self.addr, self.fingerprint, secret).await
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

/// A subscriber's keys and a way to make real blobs and manifests.
pub struct Client {
    pub keys: Keys,
    pub sealer: Sealer,
}

impl Client {
    pub fn new(seed: u8) -> Self {
        Client {
            keys: Keys::derive(&MasterKey::from_bytes([seed; 32])),
            sealer: Sealer::new(3),
        }
    }
    pub fn blob(&mut self, data: &[u8]) -> (ChunkId, Vec<u8>) {
        let id = ChunkId::compute(&self.keys, data);
        (
            id,
            self.sealer
                .seal(&self.keys, BlobKind::Data, &id, data)
                .unwrap(),
        )
    }
    pub fn manifest(&self, device: &str, chunks: Vec<ChunkId>) -> Vec<u8> {
        {
            let mut m = Manifest::bare(device, Timestamp::now(), chunks.clone());
            m.public.logical_bytes = 1;
            m.public.file_count = 1;
            m
        }
        .seal(&self.keys)
        .unwrap()
    }
}

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
        let data = benchmark::random_bytes(size, seed * 1000 + i as u64);
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
        assert_eq!(
            &coffre_core::blob::open(&client.keys, BlobKind::Data, id, &blob).unwrap(),
            data
        );
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
    ep.set_default_client_config(remote::client_config(server.fingerprint).unwrap());
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
