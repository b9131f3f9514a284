//! The daemon: accepts QUIC connections, authenticates devices, serves their
//! requests against the store.
//!
//! - [`serve`] is the injectable entry point (mini-redis style): tests start it
//!   in-process on `127.0.0.1:0` with a real endpoint and stop it with a future.
//! - Admission ([`admission`]): a budget of connections still in their
//!   handshake, and caps of authenticated connections in all, per device and
//!   per subscriber; past a cap, a connection is refused at once (the client
//!   is told the server is busy, and which cap) rather than queued.
//! - Memory ([`budget`]): every request frame's announced length is reserved
//!   from its device's budget and the daemon's before it is buffered.
//! - Revocation ([`revocation`]): the catalogue is asked every second which
//!   connected devices were revoked; their connections stop at once.
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

mod admission;
mod budget;
mod revocation;

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
use tracing::{debug, info, info_span, warn, Instrument};

use crate::combiner::Combiner;
use admission::{Admission, HandshakeSlot, Seat, Verdict};
use budget::{Budgets, DeviceBudget, Reservation};
use revocation::Revocations;

/// The default [`Limits::handshake_timeout`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits of the daemon: the one place of its numbers (config.toml sets
/// some, `coffre-server run` passes them; docs/operator-guide.md).
///
/// Memory (docs/reliability.md, "Against a hostile PC"): requests being
/// received hold at most [`Limits::request_bytes`] in all, a device at most
/// [`Limits::device_request_bytes`] plus one request larger than that (a
/// 256 MiB `Commit` at most); QUIC buffers at most 16 MiB per connection
/// (`TransportLimits::server_receive_window`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Authenticated connections served at once (default 1,024: an
    /// association's few hundred PCs, each with one connection at night).
    pub max_connections: usize,
    /// Connections of one device at once (default 8). A PC backs up or
    /// restores over one connection (a second when a backup and a restore
    /// overlap, or a rerun finds its killed predecessor's connection not
    /// timed out yet); 8 leaves room for that and for a technician's admin
    /// device restoring several PCs at once, and one compromised device then
    /// holds under 1 % of the slots.
    pub max_connections_per_device: usize,
    /// Connections of one subscriber's devices at once (default 64): a
    /// structure's few PCs backing up at the same hour, with room; 16
    /// subscribers at their cap still leave every other one served.
    pub max_connections_per_subscriber: usize,
    /// Connections still in their handshake (QUIC, hello, Auth) at once
    /// (default 64): they hold these slots, never an authenticated one, for
    /// at most [`Limits::handshake_timeout`]; past half of them, a peer must
    /// prove its address (QUIC Retry). Honest PCs pass in milliseconds, so
    /// 64 serves a whole association reconnecting at once.
    pub max_handshakes: usize,
    /// Connections of one IP address in their handshake at once (default
    /// 16): one machine flooding hellos takes a quarter of the handshake
    /// slots, not all, so PCs elsewhere still connect; a structure's PCs
    /// behind one NAT each pass their handshake in milliseconds, so 16 at
    /// the same instant is plenty.
    pub max_handshakes_per_address: usize,
    /// Bytes of requests being received, in all (default 1 GiB). Each
    /// frame's announced length is reserved before it is buffered; past
    /// this, new requests wait (QUIC flow control holds their senders) and a
    /// request's next frame is refused `Busy`.
    pub request_bytes: usize,
    /// Bytes of requests being received per device, all its connections
    /// together (default 160 MiB: the default client's 8 uploads in flight,
    /// 8 `PutChunks` of up to 16 MiB each, fit without waiting). One request
    /// larger than this (a big `Commit`) may go over it at a time.
    pub device_request_bytes: usize,
    /// How often the catalogue is asked which connected devices were revoked
    /// (default 1 s): a revocation takes effect within this and the time to
    /// answer the requests in progress.
    pub revocation_poll: Duration,
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

/// The default [`Limits::revocation_poll`].
pub const REVOCATION_POLL: Duration = Duration::from_secs(1);

const MIB: usize = 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_connections_per_device: 8,
            max_connections_per_subscriber: 64,
            max_handshakes: 64,
            max_handshakes_per_address: 16,
            request_bytes: 1024 * MIB,
            device_request_bytes: 160 * MIB,
            revocation_poll: REVOCATION_POLL,
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
    let shared = Arc::new(Shared {
        admission: Admission::new(&limits),
        budgets: Budgets::new(&limits),
        revocations: Arc::default(),
        live: LiveUploads::default(),
        store,
        limits,
    });
    let watcher = tokio::spawn(revocation::watch(
        shared.store.clone(),
        shared.revocations.clone(),
        shared.limits.revocation_poll,
    ));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    info!(addr = %endpoint.local_addr()?, "coffre-server listening");
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let remote = incoming.remote_address();
                let validated = incoming.remote_address_validated() || !incoming.may_retry();
                match shared.admission.handshake(remote.ip(), validated) {
                    Verdict::Admit(slot) => {
                        let shared = shared.clone();
                        connections.spawn(async move {
                            if let Err(e) = connection(incoming, slot, shared).await {
                                debug!(%remote, "connection ended: {e:#}");
                            }
                        });
                    }
                    Verdict::Retry => {
                        debug!(%remote, "many handshakes in progress: asking the peer to validate its address");
                        if incoming.retry().is_err() {
                            debug!(%remote, "cannot ask for a retry");
                        }
                    }
                    Verdict::Refuse => {
                        warn!(%remote, "connection refused: too many connections in their handshake (max_handshakes {}, or {} from this address)", shared.limits.max_handshakes, shared.limits.max_handshakes_per_address);
                        incoming.refuse();
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    info!("shutting down: closing connections and sealing open packs");
    watcher.abort();
    endpoint.close(0u32.into(), b"server shutting down");
    while connections.join_next().await.is_some() {}
    endpoint.wait_idle().await;
    Ok(())
}

/// What every connection shares.
#[derive(Debug)]
struct Shared {
    store: Arc<Store>,
    limits: Limits,
    admission: Arc<Admission>,
    budgets: Budgets,
    revocations: Arc<Revocations>,
    live: LiveUploads,
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

/// The reply a device gets for a store error: a code, and a sentence for
/// the member that names what it asked for but never the server's paths nor
/// the operator's commands (issue 17, "server hygiene"). What the server
/// failed at goes to the log at warn, with every detail, for the operator.
fn error_reply(e: &coffre_store::Error) -> ErrorReply {
    use coffre_store::Error as E;
    const TOLD: &str = "the server's operator has been told";
    let (code, message) = match e {
        // The member's own doing, in words about what it sent or asked:
        // these carry no path and no operator command.
        E::MissingChunks { .. } => (ErrorCode::MissingChunks, e.to_string()),
        E::BadRequest(_) | E::InvalidName { .. } => (ErrorCode::BadRequest, e.to_string()),
        E::AlreadyExists { what } => (
            ErrorCode::BadRequest,
            format!("{what} already exists: nothing was changed"),
        ),
        E::NotFound { what } => (ErrorCode::NotFound, format!("{what} not found")),
        E::Conflict { what } => (ErrorCode::Conflict, format!("{what}: nothing was changed")),
        E::UnknownDevice => (
            ErrorCode::UnknownDevice,
            "unknown device: this credential is not enrolled on this server".into(),
        ),
        E::Revoked { .. } => (
            ErrorCode::Revoked,
            "this device has been revoked: ask your technician for a new enrolment token".into(),
        ),
        // A copy of a replaced credential: the sentence names the device and
        // when it was replaced, and what the member does about it.
        E::Superseded { .. } => (ErrorCode::Superseded, e.to_string()),
        // Where the structure went: a frontend's name and public address,
        // which its PCs need (issue 22).
        E::Moved { .. } => (ErrorCode::Moved, e.to_string()),
        E::Forbidden { action, .. } => (
            ErrorCode::Forbidden,
            format!(
                "{action} is not allowed for a backup device (it can add data, never delete it)"
            ),
        ),
        E::QuotaExceeded {
            used,
            quota,
            needed,
        } => (
            ErrorCode::QuotaExceeded,
            format!(
                "quota exceeded: {used} bytes used of a quota of {quota} bytes, and {needed} more \
                 bytes are needed: nothing already stored is affected, and what this backup \
                 already sent is kept for the next one; ask your association to raise the quota"
            ),
        ),
        // The server's own failures: the log has the details.
        E::Unreadable { object, cause } => {
            warn!("{e}");
            let why = match **cause {
                E::ObjectStore { .. } => "its storage did not answer: retry later",
                _ => "its stored copy is damaged or unreadable",
            };
            (
                ErrorCode::Internal,
                format!("the server could not read {object}: {why}; {TOLD}"),
            )
        }
        E::ObjectStore { .. } => {
            warn!("{e}");
            (
                ErrorCode::Internal,
                format!(
                    "the server's object store is unreachable: nothing already backed up is \
                     lost, retry later; {TOLD}"
                ),
            )
        }
        E::StorageFull { .. } => {
            warn!("{e}");
            (
                ErrorCode::StorageFull,
                format!("the server's storage is full: nothing already stored is lost; {TOLD}"),
            )
        }
        E::Busy { .. } | E::GcRunning => {
            warn!("{e}");
            (
                ErrorCode::Busy,
                "the server is busy: retry in a few minutes".into(),
            )
        }
        _ => {
            warn!("{e}");
            (
                ErrorCode::Internal,
                format!("the server failed to do this (an error of its own, not of this device): retry later; {TOLD}"),
            )
        }
    };
    // `new` keeps the message within the protocol's cap, so any error encodes.
    let mut reply = ErrorReply::new(code, message);
    match e {
        E::QuotaExceeded { used, quota, .. } => (reply.used, reply.quota) = (*used, *quota),
        // When the credential was replaced, for the client's sentence.
        E::Superseded { since, .. } => reply.used = u64::try_from(*since).unwrap_or(0),
        _ => {}
    }
    reply
}

fn bad_request(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorCode::BadRequest, message)
}

async fn connection(
    incoming: quinn::Incoming,
    slot: HandshakeSlot,
    shared: Arc<Shared>,
) -> Result<()> {
    let (stall, timeout) = (shared.limits.request_stall, shared.limits.handshake_timeout);
    // The QUIC handshake too must end within the timeout: the slot is held.
    let conn = match tokio::time::timeout(timeout, incoming).await {
        Ok(c) => c?,
        Err(_) => anyhow::bail!("no QUIC handshake within {timeout:?}"),
    };
    let remote = conn.remote_address();
    let store = shared.store.clone();
    let (session, seat) =
        match tokio::time::timeout(timeout, handshake(&conn, &shared, timeout)).await {
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
    drop(slot);
    let span = info_span!("session", subscriber = %session.subscriber, device = %session.device);
    async move {
        info!(%remote, "connected");
        let _seat: Seat = seat;
        let session = Arc::new(session);
        let registration = shared.revocations.register(session.device_id);
        let mut revoked = registration.revoked.clone();
        let budget = shared.budgets.device(session.device_id);
        let pack = Arc::new(Uploads::new(store.session_writer(&session)));
        // Chunk reads (restores): two at a time, so one read waiting for the
        // disk does not hold up the others.
        let reader = Combiner::new(2);
        seal_earlier_connections(&store, &shared.live, &session, &pack).await;
        let mut requests = tokio::task::JoinSet::new();
        let was_revoked = loop {
            tokio::select! {
                stream = conn.accept_bi() => match stream {
                    Ok((send, recv)) => {
                        let served = Served {
                            store: store.clone(),
                            session: session.clone(),
                            pack: pack.clone(),
                            reader: reader.clone(),
                            budget: budget.clone(),
                            revoked: registration.revoked.clone(),
                        };
                        requests.spawn(async move {
                            if let Err(e) = request(send, recv, served, stall).await {
                                debug!("request failed: {e:#}");
                            }
                        }.in_current_span());
                    }
                    Err(e) => {
                        debug!("connection closed: {e}");
                        break false;
                    }
                },
                Ok(()) = revoked.changed() => if *revoked.borrow() {
                    break true;
                },
                Some(_) = requests.join_next(), if !requests.is_empty() => {}
            }
        };
        if was_revoked {
            // Every request answers `Revoked` at once; give them a moment to
            // reach the peer, then close.
            warn!("device revoked: closing its connection");
            let _ = tokio::time::timeout(REVOKED_GRACE, async {
                while requests.join_next().await.is_some() {}
            })
            .await;
            conn.close(coffre_proto::REVOKED_CLOSE_CODE.into(), b"device revoked");
        }
        while requests.join_next().await.is_some() {}
        drop(registration);
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

/// How long a revoked device's requests have to send their `Revoked`
/// answers before its connection is closed.
const REVOKED_GRACE: Duration = Duration::from_secs(1);

/// Hello and Auth on the first stream, each read within `timeout`; then the
/// connection's seat (or `Busy`, naming the cap).
async fn handshake(
    conn: &quinn::Connection,
    shared: &Arc<Shared>,
    timeout: Duration,
) -> Result<(Session, Seat)> {
    let store = &shared.store;
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
    let secret = match read_auth(&mut recv, timeout).await.map_err(|e| e.reply()) {
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
    let seated = blocking(move || s.authenticate(&secret))
        .await
        .and_then(|session| {
            let seat = shared.admission.seat(&session)?;
            Ok((session, seat))
        });
    match seated {
        Ok((session, seat)) => {
            let role = match session.role {
                Role::Admin => WireRole::Admin,
                Role::Backup => WireRole::Backup,
            };
            // The connection goes on, so quinn delivers the finished stream:
            // no wait for the peer here, and the handshake slot is freed at
            // once (a refusal waits: the connection is closed after it).
            coffre_proto::stream::write_response(
                &mut send,
                &Response::AuthOk {
                    subscriber: session.subscriber.clone(),
                    device: session.device.clone(),
                    role,
                },
            )
            .await?;
            send.finish()?;
            Ok((session, seat))
        }
        Err(reply) => {
            if reply.code == ErrorCode::Superseded {
                warn!(
                    "refused a replaced credential (another installation of the device, a cloned \
                     disk or a token enrolled twice; see `coffre-server device list`): {}",
                    reply.message
                );
            } else {
                warn!("refused a device: {}", reply.message);
            }
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

/// What a request of a connection is served with.
struct Served {
    store: Arc<Store>,
    session: Arc<Session>,
    pack: Arc<Uploads>,
    reader: Arc<Combiner>,
    budget: Arc<DeviceBudget>,
    /// True once the device is revoked.
    revoked: tokio::sync::watch::Receiver<bool>,
}

async fn request(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    served: Served,
    stall: Duration,
) -> Result<()> {
    let Served {
        store,
        session,
        pack,
        reader,
        budget,
        mut revoked,
    } = served;
    // Held until the request is handled: its bytes live until then.
    let mut reservation = Reservation::new(budget);
    let revoked_reply = revoked_reply(&session);
    let work = async {
        match read_request(&mut recv, &mut reservation, stall).await {
            Ok(req) => handle(req, store, session, pack, reader)
                .await
                .unwrap_or_else(Response::Error),
            Err(reply) => Response::Error(reply),
        }
    };
    // A revocation stops the request wherever it is (reading, waiting for
    // the budget or the store); a store call already running finishes on
    // its own, and a commit checks the device in its transaction.
    let response = tokio::select! {
        r = work => r,
        Ok(_) = revoked.wait_for(|r| *r) => Response::Error(revoked_reply),
    };
    drop(reservation);
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
        Request::ReplaceKey { expected, key_file } => {
            let (subscriber, device) = (s.subscriber.clone(), s.device.clone());
            blocking(move || store.replace_key(&s, &expected, &key_file)).await?;
            info!("key file of {subscriber} replaced by device {device}");
            Response::KeyReplaced
        }
        Request::Forget { snapshot } => {
            let id = ChunkId::from_bytes(snapshot);
            blocking(move || store.forget_snapshot(&s, &id)).await?;
            info!(snapshot = %id.short(), "snapshot forgotten");
            Response::Forgotten
        }
        Request::Rekey { secret } => {
            let current = blocking(move || store.rekey(&s, &secret)).await?;
            if current {
                info!("the device's credential rolled: every earlier one is refused from now on");
            }
            Response::Rekeyed { current }
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

/// The most an `Auth` request's payload may be: its 32-byte secret. Read
/// before any budget applies, so a stranger cannot make the daemon buffer a
/// large message.
const AUTH_PAYLOAD_MAX: usize = 64;

/// Reads the `Auth` request of a handshake (within `timeout` of silence),
/// capped at [`AUTH_PAYLOAD_MAX`] whatever type its frame announces.
async fn read_auth(
    recv: &mut quinn::RecvStream,
    timeout: Duration,
) -> Result<Request, coffre_proto::stream::ReadError> {
    let mut assembler = coffre_proto::Assembler::new(AUTH_PAYLOAD_MAX);
    loop {
        let chunk = tokio::time::timeout(timeout, recv.read_chunk(AUTH_PAYLOAD_MAX, true))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no Auth request"))?
            .map_err(std::io::Error::from)?;
        if let Some(request) = coffre_proto::stream::feed_request(
            &mut assembler,
            chunk.as_ref().map(|c| &c.bytes[..]),
        )? {
            return Ok(request);
        }
    }
}

fn revoked_reply(s: &Session) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::Revoked,
        format!(
            "device {:?} of {:?} was revoked while connected: ask the server's operator",
            s.device, s.subscriber
        ),
    )
}

/// Reads one request with quinn's zero-copy chunks (the assembler makes the
/// only copy), within the caps of its type, each frame reserved in
/// `reservation` before its payload is buffered ([`budget`]).
async fn read_request(
    recv: &mut quinn::RecvStream,
    reservation: &mut Reservation,
    stall: Duration,
) -> Result<Request, ErrorReply> {
    let mut assembler = coffre_proto::Assembler::for_requests();
    let io = |e: std::io::Error| coffre_proto::stream::ReadError::from(e).reply();
    loop {
        let chunk = tokio::time::timeout(stall, recv.read_chunk(usize::MAX, true))
            .await
            .map_err(|_| {
                io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no data for {} s in the middle of a request",
                        stall.as_secs()
                    ),
                ))
            })?
            .map_err(|e| io(e.into()))?;
        let Some(chunk) = chunk else {
            let e = assembler.end_of_stream();
            return Err(ErrorReply::new(e.error_code(), e.to_string()));
        };
        if let Some(request) = budget::feed(&mut assembler, reservation, &chunk.bytes).await? {
            return Ok(request);
        }
    }
}
