//! The memory budget of requests being received (invariant 8: bad input
//! never allocates without bound).
//!
//! A request is reassembled in memory before it is handled (a `Commit`'s
//! manifest may be 256 MiB, a `PutChunks` 16 MiB), so a device that opens
//! many streams and never finishes them could make the daemon hold
//! `streams x cap` bytes (issue 17: 16 unfinished Commits on one connection
//! took the daemon from 50 MB to 1.09 GB). Every frame's payload is
//! therefore **reserved from its announced length before any of it is
//! buffered**, from two budgets:
//!
//! - the device's ([`Limits::device_request_bytes`]), shared by all its
//!   connections;
//! - the daemon's ([`Limits::request_bytes`]), shared by everyone.
//!
//! The rules, chosen so that no honest client can deadlock:
//!
//! 1. The **first frame** of a request waits (first come, first served) until
//!    both budgets have its length. While it waits the stream is not read:
//!    QUIC flow control holds the peer back, and a waiting stream holds no
//!    reservation (or only the device's part while it waits for the
//!    daemon's).
//! 2. A **later frame** (a request larger than one 16 MiB frame: a big
//!    `Commit`) never waits for the budgets: it takes its length if both
//!    have it. If the device's budget is spent it may go over it, one
//!    request of the device at a time (the device's `large` lock: it waits
//!    for that, and the holder of the lock waits for nothing), so a request
//!    larger than the device's budget is always admitted once it is alone.
//!    If the daemon's budget is spent, the request is refused (`Busy`): the
//!    daemon's total never goes over [`Limits::request_bytes`].
//!
//! No cycle of waits: a first frame waits only for reservations held by
//! streams that are being read; a later frame waits only for the lock's
//! holder, which waits for nothing but its peer's bytes. The peer's bytes
//! always arrive because the server's QUIC windows are sized so that
//! waiting streams cannot fill a connection's window (`tls.rs`:
//! `stream window x streams <= connection window`).
//!
//! A reservation is released when the request has been handled (its bytes
//! live until then).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use coffre_proto::{Assembler, ErrorCode, ErrorReply, Request};
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use super::Limits;

/// The daemon's budget, and the device budgets of live connections.
#[derive(Debug)]
pub(super) struct Budgets {
    daemon: Arc<Semaphore>,
    device_bytes: usize,
    devices: Mutex<HashMap<i64, Weak<DeviceBudget>>>,
}

/// One device's budget, shared by its connections (dropped with the last).
#[derive(Debug)]
pub(super) struct DeviceBudget {
    bytes: Arc<Semaphore>,
    /// Held by the one request of the device that is over its budget.
    large: Arc<tokio::sync::Mutex<()>>,
    daemon: Arc<Semaphore>,
}

impl Budgets {
    /// The budgets of `limits`, raised if need be so that one frame always
    /// fits a device's budget, and a device's budget the daemon's (else a
    /// first frame would wait for ever).
    pub(super) fn new(limits: &Limits) -> Self {
        let device_bytes = limits.device_request_bytes.max(coffre_proto::MAX_FRAME_LEN);
        let daemon_bytes = limits.request_bytes.max(device_bytes);
        Budgets {
            daemon: Arc::new(Semaphore::new(daemon_bytes)),
            device_bytes,
            devices: Mutex::default(),
        }
    }

    /// The budget of `device` (a device id), created at its first connection.
    pub(super) fn device(&self, device: i64) -> Arc<DeviceBudget> {
        let mut map = self.devices.lock().unwrap();
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(b) = map.get(&device).and_then(Weak::upgrade) {
            return b;
        }
        let b = Arc::new(DeviceBudget {
            bytes: Arc::new(Semaphore::new(self.device_bytes)),
            large: Arc::default(),
            daemon: self.daemon.clone(),
        });
        map.insert(device, Arc::downgrade(&b));
        b
    }
}

/// The bytes one request holds; released when dropped.
#[derive(Debug)]
pub(super) struct Reservation {
    budget: Arc<DeviceBudget>,
    device: Option<OwnedSemaphorePermit>,
    daemon: Option<OwnedSemaphorePermit>,
    large: Option<OwnedMutexGuard<()>>,
}

impl Reservation {
    pub(super) fn new(budget: Arc<DeviceBudget>) -> Self {
        Reservation {
            budget,
            device: None,
            daemon: None,
            large: None,
        }
    }

    /// Reserves `len` more bytes (a frame's announced payload), by the rules
    /// of the module doc.
    async fn reserve(&mut self, len: usize) -> Result<(), ErrorReply> {
        let n = u32::try_from(len).map_err(|_| too_large(len))?;
        if self.daemon.is_none() {
            // First frame: wait for both, the device's first.
            let device = self.budget.bytes.clone().acquire_many_owned(n).await;
            let daemon = self.budget.daemon.clone().acquire_many_owned(n).await;
            match (device, daemon) {
                (Ok(d), Ok(g)) => {
                    (self.device, self.daemon) = (Some(d), Some(g));
                    return Ok(());
                }
                // The semaphores are never closed.
                _ => return Err(busy()),
            }
        }
        // A later frame: never wait for the budgets.
        let Ok(daemon) = self.budget.daemon.clone().try_acquire_many_owned(n) else {
            return Err(busy());
        };
        merge(&mut self.daemon, daemon);
        if self.large.is_none() {
            if let Ok(device) = self.budget.bytes.clone().try_acquire_many_owned(n) {
                merge(&mut self.device, device);
                return Ok(());
            }
            // Over the device's budget: one such request at a time.
            self.large = Some(self.budget.large.clone().lock_owned().await);
        }
        Ok(())
    }
}

fn merge(into: &mut Option<OwnedSemaphorePermit>, permit: OwnedSemaphorePermit) {
    match into {
        Some(p) => p.merge(permit),
        None => *into = Some(permit),
    }
}

fn busy() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::Busy,
        "the server is receiving as many requests as its memory allows \
         (request_memory_mib in its config.toml): try again in a few minutes",
    )
}

fn too_large(len: usize) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::TooLarge,
        format!("a frame of {len} bytes is larger than any request may be"),
    )
}

/// Feeds `bytes` (a piece of a request stream) to `assembler`, reserving
/// each frame's announced length in `reservation` before its payload is
/// buffered. `Some` once the request is complete.
pub(super) async fn feed(
    assembler: &mut Assembler,
    reservation: &mut Reservation,
    mut bytes: &[u8],
) -> Result<Option<Request>, ErrorReply> {
    let proto = |e: coffre_proto::ProtoError| ErrorReply::new(e.error_code(), e.to_string());
    while !bytes.is_empty() {
        // Up to the end of the next header, or of the frame being read.
        let header = assembler.header_missing();
        let n = header
            .or(assembler.frame_left())
            .unwrap_or(bytes.len())
            .min(bytes.len());
        let (piece, rest) = bytes.split_at(n);
        bytes = rest;
        if let Some((t, payload)) = assembler.feed(piece).map_err(proto)? {
            // Bytes after the message are an error the assembler reports.
            assembler.feed(bytes).map_err(proto)?;
            return coffre_proto::decode_request_owned(t, payload)
                .map(Some)
                .map_err(proto);
        }
        if header.is_some() {
            if let Some(left) = assembler.frame_left() {
                reservation.reserve(left).await?;
            }
        }
    }
    Ok(None)
}
