//! The connection to the coffre server: QUIC with the server's certificate
//! pinned by the fingerprint in the enrolment token, one request per stream,
//! many in parallel.
//!
//! Every failure is a [`RemoteError`] whose message tells the user what happened
//! and what to do: unreachable server, pinned-certificate mismatch, revoked
//! device, full quota...
//!
//! | file | what it does |
//! | --- | --- |
//! | `mod.rs` | [`Remote`]: one method per request, which requests are safe to repeat, the errors and their sentences |
//! | `dial` | one connection: QUIC with the certificate pinned, hello and `Auth`; the transport settings (idle timeout, windows) |
//! | `reconnect` | the link: a lost connection dialled again with back-off for up to the patience, one redial for every request that met the loss, the notices |

mod dial;
mod reconnect;

use std::sync::Arc;
use std::time::Duration;

use crate::limits::Limiter;
use coffre_core::units::format_size;
use coffre_core::ChunkId;
use coffre_proto::{ChunkState, ErrorCode, ErrorReply, Request, Response, Role, SnapshotEntry};

pub use dial::client_config;
pub(crate) use reconnect::{
    keep_trying, link_down, span, Backoff, GaveUp, LinkEvent, Notice, SecretSource,
};

use dial::dial;
use reconnect::{ended, Ended, Link};

/// Why talking to the server failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// DNS or network failure, or no server answering.
    #[error("cannot reach the coffre server at {server}: {detail} (check the network connection, and that the server is running)")]
    Unreachable {
        /// The address dialled.
        server: String,
        /// What failed.
        detail: String,
    },
    /// The server's certificate is not the one pinned in the token.
    #[error(
        "the server at {server} does not present the certificate of your enrolment token: it is another server, \
         or someone is intercepting the connection. Nothing was sent. Ask your technician for a new token if the server was reinstalled"
    )]
    CertificateMismatch {
        /// The address dialled.
        server: String,
    },
    /// The server answered with an error.
    #[error("{}", explain(.0))]
    Refused(ErrorReply),
    /// The connection broke or the server sent something unreadable.
    #[error("lost the connection to the server: {0} (run the command again; nothing already sent is lost)")]
    Connection(String),
    /// The connection was lost and did not come back within the patience
    /// (`[network] reconnect_for`).
    #[error(
        "lost the connection to the server, and it did not come back within {} ({detail}): \
         check this PC's network connection and that the server is running, then run the \
         command again: nothing the server already confirmed is sent again",
        span(*.patience)
    )]
    LinkDown {
        /// How long the run kept trying.
        patience: Duration,
        /// The last attempt's failure.
        detail: String,
    },
    /// The link was down when the command started and did not come up
    /// within the patience (`[network] reconnect_for`).
    #[error(
        "cannot reach the coffre server at {server}, tried for {} ({detail}): check this PC's \
         network connection and that the server is running, then run the command again",
        span(*.patience)
    )]
    NotReached {
        /// The address dialled.
        server: String,
        /// How long the command kept trying.
        patience: Duration,
        /// The last attempt's failure.
        detail: String,
    },
}

impl RemoteError {
    /// The server's error code, if the server refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            RemoteError::Refused(r) => Some(r.code),
            _ => None,
        }
    }

    /// Whether the network is to blame, not the server's answer: the
    /// server could not be reached, the connection broke, or it did not
    /// come back in time; a busy server counts (its caps are full for now).
    /// Such a failure is worth trying again later; a refusal is not.
    pub fn is_the_links(&self) -> bool {
        match self {
            RemoteError::Unreachable { .. }
            | RemoteError::Connection(_)
            | RemoteError::LinkDown { .. }
            | RemoteError::NotReached { .. } => true,
            RemoteError::Refused(r) => r.code == ErrorCode::Busy,
            RemoteError::CertificateMismatch { .. } => false,
        }
    }
}

/// The sentence a user reads for a server error: the one place for these
/// sentences (`coffre_proto` carries codes, not words; docs/protocol.md,
/// "Error codes", summarises them). A code without a sentence of its own
/// shows the server's message.
fn explain(r: &ErrorReply) -> String {
    match r.code {
        ErrorCode::QuotaExceeded => format!(
            "the storage quota is full: {} of {} used. Nothing already backed up was touched, \
             and what this backup sent is kept: it will not be sent again. Ask your association \
             to raise the quota (forgetting old snapshots rarely frees enough: files are shared \
             between snapshots), then run the backup again",
            format_size(r.used),
            format_size(r.quota)
        ),
        ErrorCode::Revoked => "this device has been revoked by the association: ask your technician".into(),
        ErrorCode::UnknownDevice => "the server does not know this device (the enrolment token is wrong or was deleted): ask your technician for a new token".into(),
        ErrorCode::Forbidden => format!("not allowed: {} (only a technician's admin device may do this)", r.message),
        ErrorCode::StorageFull => "the server's storage is full: nothing already backed up was lost; tell your technician".into(),
        ErrorCode::UnsupportedVersion => format!(
            "the server and this coffre have no protocol version in common (the server said: {}): \
             upgrade the older of the two. A server serves every PC older than itself, so \
             upgrade the server first",
            r.message
        ),
        ErrorCode::Busy => "the server is busy: try again in a few minutes".into(),
        ErrorCode::Conflict => format!(
            "the server refused: {} (another technician changed the structure's passphrase \
             at the same time?): run the command again, with the passphrase now in force",
            r.message
        ),
        ErrorCode::Superseded => format!(
            "this credential was replaced on {}, by another installation of this device (a copy \
             of this PC's disk, or its token enrolled on another machine) or by the operator: \
             the server refuses it and changed nothing. If this PC should be the device, ask \
             the operator for a new token (`coffre-server device reissue SUBSCRIBER DEVICE`) \
             and run `coffre enrol TOKEN --force`",
            replaced_on(r)
        ),
        ErrorCode::Moved => format!(
            "{}. Nothing was changed: set `server` in this PC's configuration to that address \
             (or ask your technician), then run the command again",
            r.message.trim_end_matches('.')
        ),
        _ => format!("the server refused: {}", r.message),
    }
}

/// When a [`ErrorCode::Superseded`] credential was replaced, for people
/// (the reply's `used` field holds it, in Unix seconds).
pub(crate) fn replaced_on(r: &ErrorReply) -> String {
    coffre_core::utc_minute(i64::try_from(r.used).unwrap_or(i64::MAX))
}

/// An authenticated connection to the server. Once [`Remote::reconnect_for`]
/// gave it a patience, a lost connection is dialled again and the requests
/// safe to repeat are sent again on the new one (`reconnect.rs`).
#[derive(Debug)]
pub struct Remote {
    link: Link,
    /// The subscriber this device belongs to.
    pub subscriber: String,
    /// This device's name.
    pub device: String,
    /// What it may do.
    pub role: Role,
    /// The protocol version both sides speak (the server's answer to our
    /// hello): below 2, no `GetChunks`; below 3, no `Rekey`; below 4, no
    /// `ReplaceKey`.
    pub version: u16,
    /// The bandwidth limits its requests and responses take their turn in.
    limits: Arc<Limiter>,
}

/// Puts back the way link notices were shown before
/// [`Remote::notices_around`].
pub(crate) struct NoticesAround<'r> {
    remote: &'r Remote,
    previous: Notice,
}

impl Drop for NoticesAround<'_> {
    fn drop(&mut self) {
        self.remote.link.set_notice(self.previous.clone());
    }
}

/// Whether a request may be sent again on a new connection when the
/// answer was lost with the old one: asking and fetching change nothing;
/// a chunk stored twice is stored once, a vouch twice is one vouch, and a
/// manifest committed twice is one snapshot (the store answers the
/// existing id). Never a credential roll, a key replaced or stored, a
/// snapshot forgotten, nor the authentication itself.
fn repeatable(request: &Request) -> bool {
    matches!(
        request,
        Request::HasChunks { .. }
            | Request::ChunkTrust { .. }
            | Request::Vouch { .. }
            | Request::PutChunk { .. }
            | Request::PutChunks { .. }
            | Request::GetChunk { .. }
            | Request::GetChunks { .. }
            | Request::GetChunkCopy { .. }
            | Request::GetManifest { .. }
            | Request::ListSnapshots
            | Request::Status
            | Request::GetKey
            | Request::Commit { .. }
    )
}

impl Remote {
    /// Connects to `server` ("host:port"), checks its certificate against
    /// `fingerprint`, and authenticates with the device `secret`.
    pub async fn connect(
        server: &str,
        fingerprint: [u8; 32],
        secret: [u8; 32],
    ) -> Result<Remote, RemoteError> {
        let d = dial(server, fingerprint, secret).await?;
        Ok(Remote {
            link: Link::new(server, fingerprint, secret, &d),
            subscriber: d.subscriber,
            device: d.device,
            role: d.role,
            version: d.version,
            limits: crate::limits::current(),
        })
    }

    /// From now on, a lost connection is dialled again for up to
    /// `patience` (zero: never), authenticating with the secret `source`
    /// reads at that time (else the one given to [`Remote::connect`] or
    /// [`Remote::set_secret`]).
    pub(crate) fn reconnect_for(&self, patience: Duration, source: Option<Arc<dyn SecretSource>>) {
        self.link.set_patience(patience);
        if let Some(source) = source {
            self.link.set_source(source);
        }
    }

    /// The device's secret is now `secret` (the credential rolled): a
    /// redial authenticates with it.
    pub(crate) fn set_secret(&self, secret: [u8; 32]) {
        self.link.set_secret(secret);
    }

    /// Where the news of the link goes from now on ("link lost, retrying",
    /// "link back"); returns where it went until now. By default, stderr.
    pub(crate) fn on_link(&self, notice: Notice) -> Notice {
        self.link.set_notice(notice)
    }

    /// While the returned guard lives, each notice of the link is shown
    /// through `around`, given the way it was shown until now (a progress
    /// bar hides itself around it, so the line lands above the bar).
    pub(crate) fn notices_around(
        &self,
        around: impl Fn(&dyn Fn()) + Send + Sync + 'static,
    ) -> NoticesAround<'_> {
        let previous = self.link.notice();
        let show = previous.clone();
        self.link
            .set_notice(Arc::new(move |e: &LinkEvent| around(&|| show(e))));
        NoticesAround {
            remote: self,
            previous,
        }
    }

    /// How many times the connection was lost during this run.
    pub fn outages(&self) -> u64 {
        self.link.outages()
    }

    /// The connection's congestion controller, as it is now (a copy).
    pub fn congestion(&self) -> Box<dyn quinn::congestion::Controller> {
        self.link.connection().congestion_state()
    }

    /// One request, one response, on a fresh stream; sent again on a new
    /// connection if the link is lost and the request is safe to repeat.
    pub async fn call(&self, request: &Request) -> Result<Response, RemoteError> {
        let wire = coffre_proto::encode_request(request)
            .map_err(|e| RemoteError::Connection(e.to_string()))?;
        self.exchange(&wire, Vec::new(), repeatable(request)).await
    }

    /// Writes `head`, then the pieces of `body` from their own buffers, on a
    /// fresh stream and reads the response; a server error becomes
    /// [`RemoteError::Refused`]. If the connection is lost and the request
    /// is `repeatable`, it is sent again once the link is back.
    async fn exchange(
        &self,
        head: &[u8],
        body: Vec<bytes::Bytes>,
        repeatable: bool,
    ) -> Result<Response, RemoteError> {
        loop {
            let (conn, generation) = self.link.current()?;
            // Cloning the pieces shares their buffers.
            let detail = match exchange_on(&conn, head, body.clone(), &self.limits).await {
                Ok(Response::Error(e)) => return Err(RemoteError::Refused(e)),
                Ok(r) => return Ok(r),
                Err(detail) => detail,
            };
            match ended(&conn) {
                Ended::Revoked => return Err(revoked()),
                Ended::Lost(cause) if repeatable && self.link.reconnects() => {
                    self.link.recover(generation, &cause).await?
                }
                _ => return Err(RemoteError::Connection(detail)),
            }
        }
    }

    /// Which of `ids` the server holds for this subscriber.
    pub async fn has_chunks(&self, ids: &[ChunkId]) -> Result<Vec<bool>, RemoteError> {
        let mut have = Vec::with_capacity(ids.len());
        for part in ids.chunks(coffre_proto::MAX_IDS_PER_REQUEST) {
            match self
                .call(&Request::HasChunks {
                    ids: part.iter().map(|i| *i.as_bytes()).collect(),
                })
                .await?
            {
                Response::HasChunks { have: h } if h.len() == part.len() => have.extend(h),
                other => return Err(unexpected(&other)),
            }
        }
        Ok(have)
    }

    /// For each of `ids`, whether the server has it and whether this device
    /// may rely on that copy (dedup trust, protocol 3). A server of protocol
    /// 1 or 2 only says present or absent: present is taken as trusted, as
    /// those servers did.
    pub async fn chunk_trust(&self, ids: &[ChunkId]) -> Result<Vec<ChunkState>, RemoteError> {
        if self.version < 3 {
            return Ok(self
                .has_chunks(ids)
                .await?
                .into_iter()
                .map(|h| {
                    if h {
                        ChunkState::Trusted
                    } else {
                        ChunkState::Absent
                    }
                })
                .collect());
        }
        let mut states = Vec::with_capacity(ids.len());
        for part in ids.chunks(coffre_proto::MAX_IDS_PER_REQUEST) {
            match self
                .call(&Request::ChunkTrust {
                    ids: part.iter().map(|i| *i.as_bytes()).collect(),
                })
                .await?
            {
                Response::ChunkTrust { states: s } if s.len() == part.len() => states.extend(s),
                other => return Err(unexpected(&other)),
            }
        }
        Ok(states)
    }

    /// Tells the server that this device fetched, decrypted and checked the
    /// copy it was served of each of `ids` (protocol 3; nothing to tell an
    /// older server).
    pub async fn vouch(&self, ids: &[ChunkId]) -> Result<(), RemoteError> {
        if self.version < 3 {
            return Ok(());
        }
        for part in ids.chunks(coffre_proto::MAX_IDS_PER_REQUEST) {
            match self
                .call(&Request::Vouch {
                    ids: part.iter().map(|i| *i.as_bytes()).collect(),
                })
                .await?
            {
                Response::Vouched { .. } => {}
                other => return Err(unexpected(&other)),
            }
        }
        Ok(())
    }

    /// Copy `copy` (0 = the first stored) of a chunk, `None` past the last
    /// one; always `None` from a server older than protocol 3 (one copy).
    pub async fn chunk_copy(
        &self,
        id: &ChunkId,
        copy: u32,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        if self.version < 3 {
            return Ok(None);
        }
        match self
            .call(&Request::GetChunkCopy {
                id: *id.as_bytes(),
                copy,
            })
            .await
        {
            Ok(Response::ChunkCopy { blob }) => Ok(Some(blob)),
            Ok(other) => Err(unexpected(&other)),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Uploads one blob; true if the server did not have it. The blob goes to
    /// QUIC from its own buffer: only the short prefix is encoded.
    pub async fn put_chunk(&self, id: &ChunkId, blob: Vec<u8>) -> Result<bool, RemoteError> {
        let prefix = coffre_proto::put_chunk_prefix(id.as_bytes(), blob.len())
            .map_err(|e| RemoteError::Connection(e.to_string()))?;
        match self
            .exchange(&prefix, vec![bytes::Bytes::from(blob)], true)
            .await?
        {
            Response::Stored { new } => Ok(new),
            other => Err(unexpected(&other)),
        }
    }

    /// Uploads several blobs in one `PutChunks` request (a server of
    /// protocol version 1 gets one `PutChunk` each); for each, true if the
    /// server did not have it. At most [`MAX_BLOBS_PER_PUT`] blobs and
    /// [`MAX_PUT_BLOBS_LEN`] bytes.
    ///
    /// [`MAX_BLOBS_PER_PUT`]: coffre_proto::MAX_BLOBS_PER_PUT
    /// [`MAX_PUT_BLOBS_LEN`]: coffre_proto::MAX_PUT_BLOBS_LEN
    pub async fn put_chunks(
        &self,
        blobs: Vec<(ChunkId, Vec<u8>)>,
    ) -> Result<Vec<bool>, RemoteError> {
        if self.version < 2 {
            let mut new = Vec::with_capacity(blobs.len());
            for (id, blob) in blobs {
                new.push(self.put_chunk(&id, blob).await?);
            }
            return Ok(new);
        }
        let n = blobs.len();
        // Each blob goes to QUIC from its own buffer, as in `put_chunk`.
        let pieces = coffre_proto::put_chunks_pieces(
            blobs
                .into_iter()
                .map(|(id, blob)| (*id.as_bytes(), blob))
                .collect(),
        )
        .map_err(|e| RemoteError::Connection(e.to_string()))?;
        let pieces = pieces.into_iter().map(bytes::Bytes::from).collect();
        match self.exchange(&[], pieces, true).await? {
            Response::StoredChunks { new } if new.len() == n => Ok(new),
            other => Err(unexpected(&other)),
        }
    }

    /// Commits a snapshot manifest; returns the snapshot id.
    pub async fn commit(&self, manifest: Vec<u8>) -> Result<ChunkId, RemoteError> {
        match self.call(&Request::Commit { manifest }).await? {
            Response::Committed { snapshot } => Ok(ChunkId::from_bytes(snapshot)),
            other => Err(unexpected(&other)),
        }
    }

    /// This subscriber's snapshots, oldest first.
    pub async fn snapshots(&self) -> Result<Vec<SnapshotEntry>, RemoteError> {
        match self.call(&Request::ListSnapshots).await? {
            Response::Snapshots { list } => Ok(list),
            other => Err(unexpected(&other)),
        }
    }

    /// A snapshot's manifest bytes.
    pub async fn manifest(&self, id: &ChunkId) -> Result<Vec<u8>, RemoteError> {
        match self
            .call(&Request::GetManifest {
                snapshot: *id.as_bytes(),
            })
            .await?
        {
            Response::Manifest { bytes } => Ok(bytes),
            other => Err(unexpected(&other)),
        }
    }

    /// A blob's bytes.
    pub async fn chunk(&self, id: &ChunkId) -> Result<Vec<u8>, RemoteError> {
        match self.call(&Request::GetChunk { id: *id.as_bytes() }).await? {
            Response::Chunk { blob } => Ok(blob),
            other => Err(unexpected(&other)),
        }
    }

    /// The blobs of `ids`, in order; `None` for an id the server does not
    /// have. Many small blobs travel in few `GetChunks` requests (one stream
    /// and one store hop on the server for up to [`MAX_IDS_PER_GET`] of
    /// them); a server of protocol version 1 is asked for each alone.
    ///
    /// [`MAX_IDS_PER_GET`]: coffre_proto::MAX_IDS_PER_GET
    pub async fn chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<Vec<u8>>>, RemoteError> {
        let mut out = Vec::with_capacity(ids.len());
        if self.version < 2 {
            for id in ids {
                out.push(match self.chunk(id).await {
                    Ok(blob) => Some(blob),
                    Err(e) if e.code() == Some(ErrorCode::NotFound) => None,
                    Err(e) => return Err(e),
                });
            }
            return Ok(out);
        }
        while out.len() < ids.len() {
            let rest = &ids[out.len()..];
            let part = &rest[..rest.len().min(coffre_proto::MAX_IDS_PER_GET)];
            match self
                .call(&Request::GetChunks {
                    ids: part.iter().map(|i| *i.as_bytes()).collect(),
                })
                .await?
            {
                // The server sends what fits and at least one: ask again for
                // the rest.
                Response::Chunks { blobs } if !blobs.is_empty() && blobs.len() <= part.len() => {
                    out.extend(blobs)
                }
                other => return Err(unexpected(&other)),
            }
        }
        Ok(out)
    }

    /// Stores the wrapped master key (first device of a subscriber).
    pub async fn put_key(&self, key_file: Vec<u8>) -> Result<(), RemoteError> {
        match self.call(&Request::PutKey { key_file }).await? {
            Response::KeyStored => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The wrapped master key, if the subscriber has one.
    pub async fn key(&self) -> Result<Option<Vec<u8>>, RemoteError> {
        match self.call(&Request::GetKey).await? {
            Response::Key { key_file } => Ok(key_file),
            other => Err(unexpected(&other)),
        }
    }

    /// Replaces the subscriber's key file with `key_file` (admin devices
    /// only; protocol version 4), if BLAKE3 of the one the server holds is
    /// `expected`: else [`ErrorCode::Conflict`], and nothing changed. A
    /// server older than version 4 cannot do it: refused here, before
    /// anything is sent.
    pub async fn replace_key(
        &self,
        expected: [u8; 32],
        key_file: Vec<u8>,
    ) -> Result<(), RemoteError> {
        if self.version < 4 {
            return Err(RemoteError::Refused(ErrorReply {
                code: ErrorCode::UnsupportedVersion,
                message: format!(
                    "the server speaks protocol version {}, and changing the passphrase needs                      version 4: upgrade the server",
                    self.version
                ),
                used: 0,
                quota: 0,
            }));
        }
        match self
            .call(&Request::ReplaceKey { expected, key_file })
            .await?
        {
            Response::KeyReplaced => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes a snapshot (admin devices only).
    pub async fn forget(&self, id: &ChunkId) -> Result<(), RemoteError> {
        match self
            .call(&Request::Forget {
                snapshot: *id.as_bytes(),
            })
            .await?
        {
            Response::Forgotten => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Installs `secret` as this device's new credential (protocol version
    /// 3; see `credential.rs`): the first call records it as pending
    /// (false), the same call again makes it current (true).
    pub async fn rekey(&self, secret: [u8; 32]) -> Result<bool, RemoteError> {
        match self.call(&Request::Rekey { secret }).await? {
            Response::Rekeyed { current } => Ok(current),
            other => Err(unexpected(&other)),
        }
    }

    /// Quota, use, snapshot count and this device's last backup.
    pub async fn status(&self) -> Result<ServerStatus, RemoteError> {
        match self.call(&Request::Status).await? {
            Response::Status {
                subscriber,
                quota_bytes,
                used_bytes,
                snapshots,
                last_backup,
            } => Ok(ServerStatus {
                subscriber,
                quota_bytes,
                used_bytes,
                snapshots,
                last_backup,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Makes the requests of this connection take their turn in `limits`
    /// instead of the process's (`limits::current`, what it had at connection).
    pub fn set_limits(&mut self, limits: Arc<Limiter>) {
        self.limits = limits;
    }

    /// Closes the connection cleanly (the server then seals what was uploaded).
    pub async fn close(self) {
        self.link.close().await;
    }
}

/// What the server says of this subscriber and device ([`Remote::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// The subscriber.
    pub subscriber: String,
    /// Its hard quota, in bytes stored.
    pub quota_bytes: u64,
    /// Bytes stored now.
    pub used_bytes: u64,
    /// Snapshots of all its devices.
    pub snapshots: u64,
    /// This device's last backup (Unix seconds).
    pub last_backup: Option<i64>,
}

/// One request on a fresh stream of `conn`: its response, or what broke.
/// Its body is written, and its response read, within the bandwidth
/// `limits`.
async fn exchange_on(
    conn: &quinn::Connection,
    head: &[u8],
    body: Vec<bytes::Bytes>,
    limits: &Limiter,
) -> Result<Response, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    limits
        .write(conn, &mut send, head, body)
        .await
        .map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    read_response(&mut recv, Some((limits, conn)))
        .await
        .map_err(|e| e.to_string())
}

/// The error of a request whose connection the server closed because the
/// device was revoked while connected ([`coffre_proto::REVOKED_CLOSE_CODE`]).
fn revoked() -> RemoteError {
    RemoteError::Refused(ErrorReply {
        code: ErrorCode::Revoked,
        message: "device revoked".into(),
        used: 0,
        quota: 0,
    })
}

fn unexpected(r: &Response) -> RemoteError {
    RemoteError::Connection(format!("unexpected answer from the server: {r:?}"))
}

/// Reads one response with quinn's zero-copy chunks (the assembler makes the
/// only copy), within the caps of its type; each chunk takes its turn in the
/// download limit of `limits`, if given.
async fn read_response(
    recv: &mut quinn::RecvStream,
    limits: Option<(&Limiter, &quinn::Connection)>,
) -> Result<Response, coffre_proto::stream::ReadError> {
    let mut assembler = coffre_proto::Assembler::for_responses();
    loop {
        let chunk = recv
            .read_chunk(usize::MAX, true)
            .await
            .map_err(std::io::Error::from)?;
        if let (Some((limits, conn)), Some(c)) = (limits, &chunk) {
            limits.received(conn, c.bytes.len()).await;
        }
        if let Some(response) = coffre_proto::stream::feed_response(
            &mut assembler,
            chunk.as_ref().map(|c| &c.bytes[..]),
        )? {
            return Ok(response);
        }
    }
}
