//! A UDP relay on loopback that shapes both directions like an access
//! line: the client dials [`Relay::addr`] instead of the server, and every
//! datagram each way goes through a [`Link`].
//!
//! Each client address gets its own upstream socket, as a home router's
//! NAT gives each flow its own port, so a client that reconnects from a new
//! port is a new flow through the same line. The relay runs on its own
//! thread and its own single-threaded runtime, so that a test's runtime
//! (or a test with none) is not disturbed; dropping the [`Relay`] stops it.
//! Time is tokio's: deliveries are made to the millisecond, in order.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::line::{deliver, InFlight, Line, Traffic, Way, Worker};
use crate::link::{Fate, UDP_OVERHEAD};
use crate::profile::Profile;

/// Most client addresses (flows) one relay serves; more are dropped.
const MAX_FLOWS: usize = 4096;

/// A running relay. Dropping it stops it.
#[derive(Debug)]
pub struct Relay {
    addrs: Vec<SocketAddr>,
    shared: Arc<Line>,
    /// The relay's thread: dropping it stops the relay.
    _worker: Worker,
}

impl Relay {
    /// Starts a relay on 127.0.0.1 (a free port) towards `upstream`.
    pub fn spawn(upstream: SocketAddr, profile: Profile) -> io::Result<Relay> {
        Relay::spawn_on(
            "127.0.0.1:0".parse().expect("an address"),
            upstream,
            profile,
        )
    }

    /// Starts a relay listening on `listen` towards `upstream`.
    pub fn spawn_on(
        listen: SocketAddr,
        upstream: SocketAddr,
        profile: Profile,
    ) -> io::Result<Relay> {
        Relay::spawn_routes(&[(listen, upstream)], profile)
    }

    /// Starts one line that several servers sit behind: each
    /// (listen, upstream) route has its own port, and all share the
    /// line's rate, queue and losses (a backup beside another flow of the
    /// office). [`Relay::addrs`] lists the ports in the routes' order.
    pub fn spawn_routes(
        routes: &[(SocketAddr, SocketAddr)],
        profile: Profile,
    ) -> io::Result<Relay> {
        let mut fronts = Vec::new();
        for (listen, upstream) in routes {
            fronts.push((bind(*listen)?, *upstream));
        }
        let addrs = fronts
            .iter()
            .map(|(f, _)| f.local_addr())
            .collect::<io::Result<Vec<_>>>()?;
        let shared = Arc::new(Line::new(profile, UDP_OVERHEAD));
        let s = shared.clone();
        let worker = Worker::spawn("coffre-wan relay", move || async move {
            let (up_tx, up_rx) = mpsc::unbounded_channel::<InFlight<Arc<UdpSocket>>>();
            let (down_tx, down_rx) = mpsc::unbounded_channel::<InFlight<Back>>();
            tokio::spawn(deliver(up_rx, |bytes, to: &Arc<UdpSocket>| {
                let _ = to.try_send(bytes);
            }));
            tokio::spawn(deliver(down_rx, |bytes, (front, to): &Back| {
                let _ = front.try_send_to(bytes, *to);
            }));
            let mut routes = tokio::task::JoinSet::new();
            for (front, upstream) in fronts {
                let front = match UdpSocket::from_std(front) {
                    Ok(f) => Arc::new(f),
                    Err(e) => {
                        eprintln!("coffre-wan: {e}");
                        return;
                    }
                };
                routes.spawn(run(
                    front,
                    upstream,
                    s.clone(),
                    up_tx.clone(),
                    down_tx.clone(),
                ));
            }
            // Until dropped, or a route fails.
            while let Some(r) = routes.join_next().await {
                if let Ok(Err(e)) = r {
                    eprintln!("coffre-wan: the relay stopped: {e}");
                    return;
                }
            }
            std::future::pending::<()>().await;
        })?;
        Ok(Relay {
            addrs,
            shared,
            _worker: worker,
        })
    }

    /// The address clients dial (the first route's).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every route's address, in the order given.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Takes the link down for `length` from now: both directions drop
    /// everything (a router rebooting). Outages overlap into one.
    pub fn outage(&self, length: Duration) {
        self.shared.outage(length);
    }

    /// Takes the link down, or brings it back, until told otherwise.
    pub fn set_down(&self, down: bool) {
        self.shared.set_down(down);
    }

    /// Reshapes the link from now on (its scheduled outages included,
    /// counted from the relay's start).
    pub fn set_profile(&self, profile: Profile) {
        self.shared.set_profile(profile);
    }

    /// What crossed each way so far.
    pub fn counters(&self) -> Traffic {
        self.shared.counters()
    }
}

/// Socket buffers asked for: a burst of a fast sender must wait in the
/// kernel for the relay's thread, not be dropped there (a loss the
/// counters would not see). The kernel caps it at `net.core.rmem_max`.
const SOCKET_BUFFER: usize = 4 << 20;

/// A non-blocking UDP socket bound to `addr`, with large buffers.
fn bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: smaller buffers still relay.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Where a packet from a server goes: out of its route's port, to a client.
type Back = (Arc<UdpSocket>, SocketAddr);

/// One route: its clients' datagrams up the line, each flow's answers down.
async fn run(
    front: Arc<UdpSocket>,
    upstream: SocketAddr,
    shared: Arc<Line>,
    up_tx: mpsc::UnboundedSender<InFlight<Arc<UdpSocket>>>,
    down_tx: mpsc::UnboundedSender<InFlight<Back>>,
) -> io::Result<()> {
    let mut flows: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = match front.recv_from(&mut buf).await {
            Ok(r) => r,
            // A previous datagram's ICMP "port unreachable" (Linux reports
            // it on the next receive): not this relay's concern.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
            Err(e) => return Err(e),
        };
        let sock = match flows.get(&from) {
            Some(s) => s.clone(),
            None => {
                if flows.len() >= MAX_FLOWS {
                    continue;
                }
                let bind: SocketAddr = if upstream.is_ipv4() {
                    "0.0.0.0:0".parse().expect("an address")
                } else {
                    "[::]:0".parse().expect("an address")
                };
                let s = Arc::new(UdpSocket::from_std(self::bind(bind)?)?);
                s.connect(upstream).await?;
                tokio::spawn(back(
                    s.clone(),
                    (front.clone(), from),
                    shared.clone(),
                    down_tx.clone(),
                ));
                flows.insert(from, s.clone());
                s
            }
        };
        let fate = shared.offer(Way::Up, n);
        if let Fate::Deliver(at) = fate {
            let _ = up_tx.send((at, buf[..n].to_vec(), sock));
        }
    }
}

/// The server's datagrams of one flow, through the down link.
async fn back(
    sock: Arc<UdpSocket>,
    client: Back,
    shared: Arc<Line>,
    tx: mpsc::UnboundedSender<InFlight<Back>>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match sock.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(_) => return,
        };
        let fate = shared.offer(Way::Down, n);
        if let Fate::Deliver(at) = fate {
            if tx.send((at, buf[..n].to_vec(), client.clone())).is_err() {
                return;
            }
        }
    }
}
