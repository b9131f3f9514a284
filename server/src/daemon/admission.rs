//! Who gets a connection: the caps that keep one device, or one subscriber,
//! or a crowd of strangers, from taking every slot (issue 17: 1,024
//! connections of one device made every other subscriber's backup fail with
//! "server busy"; 1,100 connections that never said hello filled the slots).
//!
//! Two stages, each with its own slots:
//!
//! 1. **Handshakes** ([`Limits::max_handshakes`]): a connection not yet
//!    authenticated holds a handshake slot, from the first packet until its
//!    `AuthOk` (at most [`Limits::handshake_timeout`]). Past the cap, new
//!    connections are refused at once, and so are those of an IP address
//!    that already has [`Limits::max_handshakes_per_address`] in progress
//!    (one machine cannot take them all); when more than half the slots are
//!    taken, a peer whose address is not validated yet is first asked to
//!    prove it (QUIC Retry), so spoofed source addresses cannot fill them.
//!    Strangers therefore never take an authenticated slot.
//! 2. **Seats** (authenticated connections): at most
//!    [`Limits::max_connections`] in all, [`Limits::max_connections_per_device`]
//!    per device and [`Limits::max_connections_per_subscriber`] per
//!    subscriber. A connection past a cap is answered `Busy` with a message
//!    naming the cap, and closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use coffre_proto::{ErrorCode, ErrorReply};
use coffre_store::Session;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Limits;

/// The slots of the daemon.
#[derive(Debug)]
pub(super) struct Admission {
    handshakes: Arc<Semaphore>,
    max_handshakes: usize,
    per_address: usize,
    /// Handshakes in progress per IP address.
    addresses: Mutex<HashMap<IpAddr, usize>>,
    seats: Arc<Semaphore>,
    max_connections: usize,
    per_device: usize,
    per_subscriber: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    devices: HashMap<i64, usize>,
    subscribers: HashMap<i64, usize>,
}

/// A connection's handshake slot, freed when dropped.
#[derive(Debug)]
pub(super) struct HandshakeSlot {
    _permit: OwnedSemaphorePermit,
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut addresses = self.admission.addresses.lock().unwrap();
        if let Some(n) = addresses.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                addresses.remove(&self.address);
            }
        }
    }
}

/// An authenticated connection's seat, freed when dropped.
#[derive(Debug)]
pub(super) struct Seat {
    _permit: OwnedSemaphorePermit,
    admission: Arc<Admission>,
    device: i64,
    subscriber: i64,
}

/// What to do with a new connection.
#[derive(Debug)]
pub(super) enum Verdict {
    Admit(HandshakeSlot),
    /// Ask the peer to validate its address first (QUIC Retry).
    Retry,
    Refuse,
}

impl Admission {
    pub(super) fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Admission {
            handshakes: Arc::new(Semaphore::new(limits.max_handshakes)),
            max_handshakes: limits.max_handshakes,
            per_address: limits.max_handshakes_per_address,
            addresses: Mutex::default(),
            seats: Arc::new(Semaphore::new(limits.max_connections)),
            max_connections: limits.max_connections,
            per_device: limits.max_connections_per_device,
            per_subscriber: limits.max_connections_per_subscriber,
            counts: Mutex::default(),
        })
    }

    /// A handshake slot for a new connection, if one is free; under
    /// pressure (more than half taken), only for a validated address.
    pub(super) fn handshake(self: &Arc<Self>, address: IpAddr, address_validated: bool) -> Verdict {
        let free = self.handshakes.available_permits();
        if !address_validated && free < self.max_handshakes.div_ceil(2) && free > 0 {
            return Verdict::Retry;
        }
        let mut addresses = self.addresses.lock().unwrap();
        let from = addresses.entry(address).or_default();
        if *from >= self.per_address {
            return Verdict::Refuse;
        }
        match self.handshakes.clone().try_acquire_owned() {
            Ok(p) => {
                *from += 1;
                Verdict::Admit(HandshakeSlot {
                    _permit: p,
                    admission: self.clone(),
                    address,
                })
            }
            Err(_) => Verdict::Refuse,
        }
    }

    /// A seat for an authenticated session, or the `Busy` reply naming the
    /// cap it would break.
    pub(super) fn seat(self: &Arc<Self>, s: &Session) -> Result<Seat, ErrorReply> {
        let mut counts = self.counts.lock().unwrap();
        let device = counts.devices.get(&s.device_id).copied().unwrap_or(0);
        if device >= self.per_device {
            return Err(busy(format!(
                "device {:?} of {:?} already has {device} connections open, the most one device \
                 may have (max_connections_per_device): is the client running twice? Close the \
                 other or wait for it to finish",
                s.device, s.subscriber
            )));
        }
        let subscriber = counts
            .subscribers
            .get(&s.subscriber_id)
            .copied()
            .unwrap_or(0);
        if subscriber >= self.per_subscriber {
            return Err(busy(format!(
                "subscriber {:?} already has {subscriber} connections open, the most one \
                 subscriber may have (max_connections_per_subscriber): wait for its other \
                 backups to finish",
                s.subscriber
            )));
        }
        let Ok(permit) = self.seats.clone().try_acquire_owned() else {
            return Err(busy(format!(
                "the server already has {} connections open (max_connections): try again in a \
                 few minutes",
                self.max_connections
            )));
        };
        *counts.devices.entry(s.device_id).or_default() += 1;
        *counts.subscribers.entry(s.subscriber_id).or_default() += 1;
        Ok(Seat {
            _permit: permit,
            admission: self.clone(),
            device: s.device_id,
            subscriber: s.subscriber_id,
        })
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut counts = self.admission.counts.lock().unwrap();
        let Counts {
            devices,
            subscribers,
        } = &mut *counts;
        for (map, key) in [(devices, self.device), (subscribers, self.subscriber)] {
            if let Some(n) = map.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

fn busy(message: String) -> ErrorReply {
    ErrorReply::new(ErrorCode::Busy, message)
}
