//! The same line for whole IP packets (Linux): two TUN devices, one on
//! the client's side and one on the server's, and every packet that one
//! sends crosses the [`Line`] before the other receives it. TCP, UDP and
//! ICMP alike, so that restic over REST (TCP) and coffre (QUIC) meet the
//! same rate, queue, losses and outages.
//!
//! ```text
//!  client netns            this process                server netns
//!  10.77.0.1 ─► cwan ─fd─► up link (rate, queue, loss, delay) ─fd─► swan ─► 10.77.0.2
//!            ◄─────── fd ◄─ down link ◄─────────────────── fd ◄──
//! ```
//!
//! [`Tunnel::spawn`] creates both devices in the current network
//! namespace; [`crate::netns::Namespaces`] then moves each into its own
//! namespace and gives it its address. The packets are IP packets, so the
//! line counts their own length (no overhead added) and the MTU applies to
//! them as it does on a real line. Creating TUN devices needs root (or
//! CAP_NET_ADMIN).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tun_rs::{AsyncDevice, DeviceBuilder};

use crate::line::{deliver, InFlight, Line, Traffic, Way, Worker};
use crate::link::Fate;
use crate::profile::Profile;

/// The kernel's queue towards this process: long enough that a burst
/// waits for the relay rather than being dropped where no counter sees it.
const TX_QUEUE: u32 = 10_000;

/// A running tunnel. Dropping it stops it and removes both devices.
#[derive(Debug)]
pub struct Tunnel {
    line: Arc<Line>,
    /// The tunnel's thread: dropping it stops the tunnel (and the
    /// devices go with their file descriptors).
    _worker: Worker,
}

impl Tunnel {
    /// Creates the TUN devices `client_dev` and `server_dev` (MTU of the
    /// profile's up direction) and relays between them through the line.
    pub fn spawn(client_dev: &str, server_dev: &str, profile: Profile) -> io::Result<Tunnel> {
        let mtu = profile.up.mtu.min(profile.down.mtu).min(65535) as u16;
        let open = |name: &str| {
            DeviceBuilder::new()
                .name(name)
                .mtu(mtu)
                .tx_queue_len(TX_QUEUE)
                .build_sync()
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot create the TUN device {name} (root is needed): {e}"),
                    )
                })
        };
        let client = open(client_dev)?;
        let server = open(server_dev)?;
        let line = Arc::new(Line::new(profile, 0));
        let l = line.clone();
        let worker = Worker::spawn("coffre-wan tunnel", move || async move {
            let devices = AsyncDevice::new(client).and_then(|c| Ok((c, AsyncDevice::new(server)?)));
            let (client, server) = match devices {
                Ok((c, s)) => (Arc::new(c), Arc::new(s)),
                Err(e) => {
                    eprintln!("coffre-wan: {e}");
                    return;
                }
            };
            tokio::select! {
                e = relay(client.clone(), server.clone(), l.clone(), Way::Up) => {
                    eprintln!("coffre-wan: the tunnel stopped (client side): {e}");
                }
                e = relay(server, client, l, Way::Down) => {
                    eprintln!("coffre-wan: the tunnel stopped (server side): {e}");
                }
            }
        })?;
        Ok(Tunnel {
            line,
            _worker: worker,
        })
    }

    /// Takes the line down for `length` from now (a router rebooting).
    pub fn outage(&self, length: Duration) {
        self.line.outage(length);
    }

    /// Takes the line down, or brings it back, until told otherwise.
    pub fn set_down(&self, down: bool) {
        self.line.set_down(down);
    }

    /// What crossed each way so far (IP packets, their own length).
    pub fn counters(&self) -> Traffic {
        self.line.counters()
    }
}

/// Every packet `from` sends goes `way` through the line, then to `to`.
/// Returns only on an error of either device.
async fn relay(
    from: Arc<AsyncDevice>,
    to: Arc<AsyncDevice>,
    line: Arc<Line>,
    way: Way,
) -> io::Error {
    let (tx, rx) = mpsc::unbounded_channel::<InFlight<()>>();
    let out = to.clone();
    let delivering = tokio::spawn(deliver(rx, move |bytes, _: &()| {
        // A full device queue on the far side drops the packet, as a
        // router would; the line's own counters saw it delivered.
        let _ = out.try_send(bytes);
    }));
    let mut buf = vec![0u8; 65536];
    let error = loop {
        let n = match from.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => break e,
        };
        if let Fate::Deliver(at) = line.offer(way, n) {
            let _ = tx.send((at, buf[..n].to_vec(), ()));
        }
    };
    delivering.abort();
    error
}
