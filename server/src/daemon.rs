//! The daemon: accepts QUIC connections, authenticates devices, serves their
//! requests against the store.
//!
//! - [`serve`] is the injectable entry point (mini-redis style): tests start it
//!   in-process on `127.0.0.1:0` with a real endpoint and stop it with a future.
//! - A connection limit: past `max_connections`, new connections are refused at
//!   once (the client is told the server is busy) rather than queued.
//! - Each connection first authenticates (hello + Auth on its first stream,
//!   within [`Limits::handshake_timeout`]); then every bidirectional stream
//!   carries one request and its response, many in parallel. Timeouts are
//!   tokio timers, so tests drive them with tokio's paused time.
//! - Store calls are blocking (SQLite, fsync): they run on tokio's blocking pool.
//! - Every log line of a connection carries its subscriber and device (a span).
//! - Graceful shutdown: stop accepting, close connections with a reason, seal
//!   every open pack, wait for the endpoint to drain.
//! - Uploads: each connection appends to its own open pack, a
//!   [`coffre_store::SessionWriter`]. The store decides when a pack is full
//!   and hands it out; the daemon seals it (fsync, rename, catalogue) on
//!   another blocking task, beside the next one filling up, so the disk flush
//!   never stalls the stream of uploads. A commit waits for those seals (the
//!   store counts them), then seals the open pack and checks every chunk.
//! - A device's new connection first seals the open packs of its earlier
//!   connections: a client killed mid-backup leaves a connection that the
//!   server sees end only at the idle timeout, and its rerun must find the
//!   chunks it already sent durable and present, not send them again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::Result;
use coffre_core::ChunkId;
use coffre_proto::{
    ChunkState, ErrorCode, ErrorReply, Request, Response, Role as WireRole, SnapshotEntry,
};
use coffre_store::{FullPack, Presence, Role, Session, SessionWriter, Store};
use tokio::sync::Semaphore;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::combiner::Combiner;

/// The default [`Limits::handshake_timeout`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits of the daemon.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a new connection may take to say hello and authenticate
    /// (from the end of the QUIC handshake); then it is closed ("handshake
    /// timed out") and its slot freed, so silent connections cannot hold the
    /// `max_connections` slots.
    pub handshake_timeout: Duration,
    /// A request stream that brings no byte for this long is answered with
    /// an error and dropped, with what it had buffered: a client that stalls
    /// in the middle of a request cannot hold memory while its connection
    /// lives. Slow links are fine: only silence counts.
    pub request_stall: Duration,
}

/// The default [`Limits::request_stall`].
pub const REQUEST_STALL: Duration = Duration::from_secs(60);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            request_stall: REQUEST_STALL,
        }
    }
}

/// The open packs of live connections, per (subscriber, device).
type LiveUploads = Arc<Mutex<HashMap<(String, String), Vec<(Arc<Session>, Weak<Uploads>)>>>>;

/// Serves `endpoint` until `shutdown` completes.
pub async fn serve(
    endpoint: quinn::Endpoint,
    store: Arc<Store>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    // No session of an earlier run is open any more (two daemons on one data
    // directory are not supported): garbage collection need not wait for them.
    let cleared = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.clear_sessions()).await?
    };
    match cleared {
        Ok(0) => {}
        Ok(n) => info!("forgot {n} session(s) left open by an earlier run"),
        Err(e) => warn!("cannot clear the sessions of an earlier run: {e}"),
    }
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let live = LiveUploads::default();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    info!(addr = %endpoint.local_addr()?, "coffre-server listening");
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (store, live, limits) = (store.clone(), live.clone(), limits.clone());
                        let remote = incoming.remote_address();
                        connections.spawn(async move {
                            if let Err(e) = connection(incoming, store, live, limits).await {
                                debug!(%remote, "connection ended: {e:#}");
                            }
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        warn!(remote = %incoming.remote_address(), "connection refused: {} connections already open", limits.max_connections);
                        incoming.refuse();
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    info!("shutting down: closing connections and sealing open packs");
    endpoint.close(0u32.into(), b"server shutting down");
    while connections.join_next().await.is_some() {}
    endpoint.wait_idle().await;
    Ok(())
}

/// Runs a blocking store call through a connection's [`Combiner`].
async fn combined<T: Send + 'static>(
    combiner: &Arc<Combiner>,
    f: impl FnOnce() -> Result<T, coffre_store::Error> + Send + 'static,
) -> Result<T, ErrorReply> {
    match combiner.run(f).await {
        Some(r) => r.map_err(|e| error_reply(&e)),
        None => Err(ErrorReply::new(
            ErrorCode::Internal,
            "server task failed (it panicked: see the server's log)",
        )),
    }
}

/// Runs a blocking store call off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, coffre_store::Error> + Send + 'static,
) -> Result<T, ErrorReply> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| error_reply(&e)),
        Err(e) => Err(ErrorReply::new(
            ErrorCode::Internal,
            format!("server task failed: {e}"),
        )),
    }
}

fn error_reply(e: &coffre_store::Error) -> ErrorReply {
    use coffre_store::Error as E;
    let code = match e {
        E::NotFound { .. } => ErrorCode::NotFound,
        E::UnknownDevice => ErrorCode::UnknownDevice,
        E::Revoked { .. } => ErrorCode::Revoked,
        E::Forbidden { .. } => ErrorCode::Forbidden,
        E::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
        E::MissingChunks { .. } => ErrorCode::MissingChunks,
        E::StorageFull { .. } => ErrorCode::StorageFull,
        E::BadRequest(_) | E::Corrupt(_) | E::InvalidName { .. } | E::AlreadyExists { .. } => {
            ErrorCode::BadRequest
        }
        _ => ErrorCode::Internal,
    };
    // `new` keeps the message within the protocol's cap, so any error encodes.
    let mut reply = ErrorReply::new(code, e.to_string());
    if let E::QuotaExceeded { used, quota, .. } = e {
        (reply.used, reply.quota) = (*used, *quota);
    }
    reply
}

fn bad_request(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorCode::BadRequest, message)
}

async fn connection(
    incoming: quinn::Incoming,
    store: Arc<Store>,
    live: LiveUploads,
    limits: Limits,
) -> Result<()> {
    let conn = incoming.await?;
    let remote = conn.remote_address();
    let (stall, timeout) = (limits.request_stall, limits.handshake_timeout);
    let session = match tokio::time::timeout(timeout, handshake(&conn, &store, timeout)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            conn.close(1u32.into(), b"authentication failed");
            return Err(e);
        }
        Err(_) => {
            conn.close(1u32.into(), b"handshake timed out");
            anyhow::bail!("{remote}: no hello and authentication within {timeout:?}");
        }
    };
    let span = info_span!("session", subscriber = %session.subscriber, device = %session.device);
    async move {
        info!(%remote, "connected");
        let session = Arc::new(session);
        let pack = Arc::new(Uploads::new(store.session_writer(&session)));
        // Chunk reads (restores): two at a time, so one read waiting for the
        // disk does not hold up the others.
        let reader = Combiner::new(2);
        seal_earlier_connections(&store, &live, &session, &pack).await;
        let mut requests = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                stream = conn.accept_bi() => match stream {
                    Ok((send, recv)) => {
                        let (store, session, pack) = (store.clone(), session.clone(), pack.clone());
                        let reader = reader.clone();
                        requests.spawn(async move {
                            if let Err(e) = request(send, recv, store, session, pack, reader, stall).await {
                                debug!("request failed: {e:#}");
                            }
                        }.in_current_span());
                    }
                    Err(e) => {
                        debug!("connection closed: {e}");
                        break;
                    }
                },
                Some(_) = requests.join_next(), if !requests.is_empty() => {}
            }
        }
        while requests.join_next().await.is_some() {}
        // Chunks uploaded before the connection ended become durable, so a rerun
        // after an interruption does not send them again.
        let (s, p) = (store.clone(), pack.clone());
        let sealed = tokio::task::spawn_blocking(move || {
            let sealed = s.seal_writer(&session, &p.writer);
            // Then GC may collect what this session was told exists.
            if let Err(e) = s.end_session(&session) {
                warn!("recording the end of the session failed: {e}");
            }
            sealed
        })
        .await;
        match sealed {
            Ok(Ok(())) => info!("disconnected"),
            Ok(Err(e)) => warn!("sealing the open pack failed: {e}"),
            Err(e) => warn!("sealing task failed: {e}"),
        }
        Ok(())
    }
    .instrument(span)
    .await
}

/// Seals the open packs of this device's earlier, still registered
/// connections, then registers this one.
async fn seal_earlier_connections(
    store: &Arc<Store>,
    live: &LiveUploads,
    session: &Arc<Session>,
    pack: &Arc<Uploads>,
) {
    let key = (session.subscriber.clone(), session.device.clone());
    let earlier: Vec<(Arc<Session>, Arc<Uploads>)> = {
        let mut map = live.lock().unwrap();
        let list = map.entry(key.clone()).or_default();
        list.retain(|(_, w)| w.strong_count() > 0);
        let earlier = list
            .iter()
            .filter_map(|(s, w)| w.upgrade().map(|u| (s.clone(), u)))
            .collect();
        list.push((session.clone(), Arc::downgrade(pack)));
        earlier
    };
    for (old, uploads) in earlier {
        let store = store.clone();
        let sealed =
            tokio::task::spawn_blocking(move || store.seal_writer(&old, &uploads.writer)).await;
        match sealed {
            Ok(Ok(())) => debug!("sealed the open pack of an earlier connection of this device"),
            Ok(Err(e)) => warn!("sealing an earlier connection's pack failed: {e}"),
            Err(e) => warn!("sealing task failed: {e}"),
        }
    }
    // Forget entries of connections that ended.
    live.lock().unwrap().retain(|_, v| {
        v.retain(|(_, w)| w.strong_count() > 0);
        !v.is_empty()
    });
}

/// Hello and Auth on the first stream, each read within `timeout`.
async fn handshake(
    conn: &quinn::Connection,
    store: &Arc<Store>,
    timeout: Duration,
) -> Result<Session> {
    let (mut send, mut recv) = conn.accept_bi().await?;
    let mut hello = [0u8; coffre_proto::HELLO_LEN];
    recv.read_exact(&mut hello).await?;
    // The answer names the version both speak: the client's, or ours if the
    // client is newer. A PC not upgraded yet keeps its version.
    match coffre_proto::decode_hello(&hello) {
        Ok(version) => {
            send.write_all(&coffre_proto::encode_hello_at(version))
                .await?;
            debug!(version, "protocol version");
        }
        Err(e) => {
            send.write_all(&coffre_proto::encode_hello()).await?;
            let reply = ErrorReply::new(ErrorCode::UnsupportedVersion, e.to_string());
            respond(&mut send, &Response::Error(reply)).await?;
            anyhow::bail!("bad hello: {e}");
        }
    }
    let secret = match read_request(&mut recv, timeout)
        .await
        .map_err(|e| e.reply())
    {
        Ok(Request::Auth { secret }) => secret,
        Ok(_) => {
            respond(
                &mut send,
                &Response::Error(bad_request("the first request must be Auth")),
            )
            .await?;
            anyhow::bail!("first request was not Auth");
        }
        Err(reply) => {
            respond(&mut send, &Response::Error(reply.clone())).await?;
            anyhow::bail!("bad auth request: {}", reply.message);
        }
    };
    let s = store.clone();
    match blocking(move || s.authenticate(&secret)).await {
        Ok(session) => {
            let role = match session.role {
                Role::Admin => WireRole::Admin,
                Role::Backup => WireRole::Backup,
            };
            respond(
                &mut send,
                &Response::AuthOk {
                    subscriber: session.subscriber.clone(),
                    device: session.device.clone(),
                    role,
                },
            )
            .await?;
            Ok(session)
        }
        Err(reply) => {
            warn!("refused a device: {}", reply.message);
            respond(&mut send, &Response::Error(reply.clone())).await?;
            anyhow::bail!("authentication refused: {}", reply.message)
        }
    }
}

async fn respond(send: &mut quinn::SendStream, response: &Response) -> Result<()> {
    coffre_proto::stream::write_response(send, response).await?;
    send.finish()?;
    // Let the peer read the answer before the stream is dropped.
    let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
    Ok(())
}

async fn request(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    store: Arc<Store>,
    session: Arc<Session>,
    pack: Arc<Uploads>,
    reader: Arc<Combiner>,
    stall: Duration,
) -> Result<()> {
    let response = match read_request(&mut recv, stall).await.map_err(|e| e.reply()) {
        Ok(req) => handle(req, store, session, pack, reader)
            .await
            .unwrap_or_else(Response::Error),
        Err(reply) => Response::Error(reply),
    };
    if let Response::Error(e) = &response {
        debug!(code = ?e.code, "request refused: {}", e.message);
    }
    match response {
        // A blob goes out from the buffer it was read into: the prefix, then
        // the blob handed to quinn as is (no copy into a message, none into
        // the stream's buffer).
        Response::Chunk { blob } => {
            send.write_all(&coffre_proto::chunk_response_prefix(blob.len())?)
                .await?;
            send.write_chunk(bytes::Bytes::from(blob)).await?;
        }
        // Likewise for many blobs: each is a piece of its own.
        Response::Chunks { blobs } => {
            let mut pieces: Vec<bytes::Bytes> = coffre_proto::chunks_response_pieces(blobs)?
                .into_iter()
                .map(bytes::Bytes::from)
                .collect();
            send.write_all_chunks(&mut pieces).await?;
        }
        other => coffre_proto::stream::write_response(&mut send, &other).await?,
    }
    send.finish()?;
    Ok(())
}

async fn handle(
    req: Request,
    store: Arc<Store>,
    session: Arc<Session>,
    pack: Arc<Uploads>,
    reader: Arc<Combiner>,
) -> Result<Response, ErrorReply> {
    let s = session;
    Ok(match req {
        Request::Auth { .. } => return Err(bad_request("already authenticated")),
        Request::HasChunks { ids } => {
            let ids: Vec<ChunkId> = ids.into_iter().map(ChunkId::from_bytes).collect();
            Response::HasChunks {
                have: blocking(move || store.has_chunks(&s, &ids)).await?,
            }
        }
        Request::ChunkTrust { ids } => {
            let ids: Vec<ChunkId> = ids.into_iter().map(ChunkId::from_bytes).collect();
            let states = blocking(move || store.chunk_presence(&s, &ids)).await?;
            Response::ChunkTrust {
                states: states
                    .into_iter()
                    .map(|p| match p {
                        Presence::Absent => ChunkState::Absent,
                        Presence::Trusted => ChunkState::Trusted,
                        Presence::Untrusted => ChunkState::Untrusted,
                    })
                    .collect(),
            }
        }
        Request::Vouch { ids } => {
            let ids: Vec<ChunkId> = ids.into_iter().map(ChunkId::from_bytes).collect();
            Response::Vouched {
                recorded: blocking(move || store.vouch(&s, &ids)).await?,
            }
        }
        Request::GetChunkCopy { id, copy } => {
            let id = ChunkId::from_bytes(id);
            Response::ChunkCopy {
                blob: combined(&reader, move || store.chunk_copy(&s, &id, copy)).await?,
            }
        }
        Request::PutChunk { id, blob } => Response::Stored {
            new: pack.put(store, s, ChunkId::from_bytes(id), blob).await?,
        },
        Request::PutChunks { blobs } => Response::StoredChunks {
            new: pack.put_many(store, s, blobs).await?,
        },
        Request::Commit { manifest } => {
            let id = blocking(move || store.commit_writer(&s, &pack.writer, &manifest)).await?;
            info!(snapshot = %id.short(), "snapshot committed");
            Response::Committed {
                snapshot: *id.as_bytes(),
            }
        }
        Request::ListSnapshots => {
            let list = blocking(move || store.list_snapshots(&s)).await?;
            Response::Snapshots {
                list: list
                    .into_iter()
                    .map(|i| SnapshotEntry {
                        id: *i.id.as_bytes(),
                        time: i.time,
                        device: i.device,
                        logical_bytes: i.logical_bytes,
                        file_count: i.file_count,
                    })
                    .collect(),
            }
        }
        Request::GetManifest { snapshot } => {
            let id = ChunkId::from_bytes(snapshot);
            Response::Manifest {
                bytes: blocking(move || store.manifest(&s, &id)).await?,
            }
        }
        Request::GetChunk { id } => {
            let id = ChunkId::from_bytes(id);
            Response::Chunk {
                blob: combined(&reader, move || store.chunk(&s, &id)).await?,
            }
        }
        Request::GetChunks { ids } => {
            let ids: Vec<ChunkId> = ids.into_iter().map(ChunkId::from_bytes).collect();
            let budget = coffre_proto::MAX_CHUNKS_REPLY_BLOBS_LEN;
            Response::Chunks {
                blobs: combined(&reader, move || store.chunks(&s, &ids, budget)).await?,
            }
        }
        Request::PutKey { key_file } => {
            blocking(move || store.put_key(&s, &key_file)).await?;
            Response::KeyStored
        }
        Request::GetKey => Response::Key {
            key_file: blocking(move || store.key(&s)).await?,
        },
        Request::Forget { snapshot } => {
            let id = ChunkId::from_bytes(snapshot);
            blocking(move || store.forget_snapshot(&s, &id)).await?;
            info!(snapshot = %id.short(), "snapshot forgotten");
            Response::Forgotten
        }
        Request::Status => {
            let st = blocking(move || store.status(&s)).await?;
            Response::Status {
                subscriber: st.subscriber,
                quota_bytes: st.quota_bytes,
                used_bytes: st.used_bytes,
                snapshots: st.snapshots,
                last_backup: st.last_backup,
            }
        }
    })
}

/// A connection's uploads: the store's [`SessionWriter`] (the open pack and
/// the count of full packs being sealed), and the combiner its appends go
/// through.
///
/// Blobs are appended by one blocking task at a time that takes every blob
/// queued meanwhile ([`Combiner`] of width 1): with 8 uploads in flight, a
/// request that finds the writer busy only queues its blob.
struct Uploads {
    writer: SessionWriter,
    combiner: Arc<Combiner>,
}

impl Uploads {
    fn new(writer: SessionWriter) -> Self {
        Uploads {
            writer,
            combiner: Combiner::new(1),
        }
    }

    /// Appends a blob to the open pack; true if the store did not have it.
    async fn put(
        self: &Arc<Self>,
        store: Arc<Store>,
        s: Arc<Session>,
        id: ChunkId,
        blob: Vec<u8>,
    ) -> Result<bool, ErrorReply> {
        let me = self.clone();
        combined(&self.combiner, move || me.append(&store, &s, &id, &blob)).await
    }

    /// Appends blobs in order, in one call of the writer; for each, true if
    /// the store did not have it. On an error (a full quota), the blobs
    /// before it are kept, like those of earlier requests.
    async fn put_many(
        self: &Arc<Self>,
        store: Arc<Store>,
        s: Arc<Session>,
        blobs: Vec<([u8; 32], Vec<u8>)>,
    ) -> Result<Vec<bool>, ErrorReply> {
        let me = self.clone();
        combined(&self.combiner, move || {
            blobs
                .iter()
                .map(|(id, blob)| me.append(&store, &s, &ChunkId::from_bytes(*id), blob))
                .collect()
        })
        .await
    }

    /// Appends a blob; if the store says that filled the open pack, seals
    /// the full pack on another blocking task, so the uploads of the
    /// connection go on meanwhile.
    fn append(
        &self,
        store: &Arc<Store>,
        s: &Arc<Session>,
        id: &ChunkId,
        blob: &[u8],
    ) -> Result<bool, coffre_store::Error> {
        let (new, full) = store.write_chunk(s, &self.writer, id, blob)?;
        if let Some(full) = full {
            seal_beside(store.clone(), s.clone(), full);
        }
        Ok(new)
    }
}

/// Seals a full pack on tokio's blocking pool. Until it is sealed the store
/// counts it (a commit waits for it) and reports its chunks present to this
/// session; if the runtime drops the task unrun (shutting down), the pack is
/// discarded and uncounted.
fn seal_beside(store: Arc<Store>, s: Arc<Session>, full: FullPack) {
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.seal_full(&s, full) {
            // Its chunks are reported absent from now on; the client's
            // commit gets MissingChunks and sends them again.
            warn!("sealing a full pack failed: {e}");
        }
    });
}

/// Reads one request with quinn's zero-copy chunks (the assembler makes the
/// only copy), within the caps of its type.
async fn read_request(
    recv: &mut quinn::RecvStream,
    stall: Duration,
) -> Result<Request, coffre_proto::stream::ReadError> {
    let mut assembler = coffre_proto::Assembler::for_requests();
    loop {
        let chunk = tokio::time::timeout(stall, recv.read_chunk(usize::MAX, true))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no data for {} s in the middle of a request",
                        stall.as_secs()
                    ),
                )
            })?
            .map_err(std::io::Error::from)?;
        if let Some(request) = coffre_proto::stream::feed_request(
            &mut assembler,
            chunk.as_ref().map(|c| &c.bytes[..]),
        )? {
            return Ok(request);
        }
    }
}
