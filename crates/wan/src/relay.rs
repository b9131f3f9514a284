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

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::link::{Counters, Fate, Link, UDP_OVERHEAD};
use crate::profile::Profile;

/// Most client addresses (flows) one relay serves; more are dropped.
const MAX_FLOWS: usize = 4096;

/// What crossed each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Client towards server.
    pub up: Counters,
    /// Server towards client.
    pub down: Counters,
}

/// The state both the relay's thread and its handle see.
#[derive(Debug)]
struct Shared {
    up: Mutex<Link>,
    down: Mutex<Link>,
    started: Instant,
    outages: Mutex<Vec<(Duration, Duration)>>,
    down_until: Mutex<Option<Instant>>,
    forced_down: AtomicBool,
}

impl Shared {
    fn is_down(&self, now: Instant) -> bool {
        if self.forced_down.load(Ordering::Relaxed) {
            return true;
        }
        if self.down_until.lock().unwrap().is_some_and(|u| now < u) {
            return true;
        }
        let since = now - self.started;
        self.outages
            .lock()
            .unwrap()
            .iter()
            .any(|(at, len)| since >= *at && since < *at + *len)
    }
}

/// A running relay. Dropping it stops it.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
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
        let front = bind(listen)?;
        let addr = front.local_addr()?;
        let shared = Arc::new(Shared {
            up: Mutex::new(Link::new(profile.up, UDP_OVERHEAD, profile.seed)),
            down: Mutex::new(Link::new(
                profile.down,
                UDP_OVERHEAD,
                profile.seed.wrapping_add(1),
            )),
            started: Instant::now(),
            outages: Mutex::new(profile.outages),
            down_until: Mutex::new(None),
            forced_down: AtomicBool::new(false),
        });
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("coffre-wan relay".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let front = match UdpSocket::from_std(front) {
                        Ok(f) => Arc::new(f),
                        Err(e) => {
                            eprintln!("coffre-wan: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        _ = stopped => {}
                        r = run(front, upstream, s) => {
                            if let Err(e) = r {
                                eprintln!("coffre-wan: the relay stopped: {e}");
                            }
                        }
                    }
                });
            })?;
        Ok(Relay {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address clients dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Takes the link down for `length` from now: both directions drop
    /// everything (a router rebooting). Outages overlap into one.
    pub fn outage(&self, length: Duration) {
        let until = Instant::now() + length;
        let mut d = self.shared.down_until.lock().unwrap();
        *d = Some(d.map_or(until, |u| u.max(until)));
    }

    /// Takes the link down, or brings it back, until told otherwise.
    pub fn set_down(&self, down: bool) {
        self.shared.forced_down.store(down, Ordering::Relaxed);
        if !down {
            *self.shared.down_until.lock().unwrap() = None;
        }
    }

    /// Reshapes the link from now on (its scheduled outages included,
    /// counted from the relay's start).
    pub fn set_profile(&self, profile: Profile) {
        self.shared.up.lock().unwrap().set_direction(profile.up);
        self.shared.down.lock().unwrap().set_direction(profile.down);
        *self.shared.outages.lock().unwrap() = profile.outages;
    }

    /// What crossed each way so far.
    pub fn counters(&self) -> Traffic {
        Traffic {
            up: self.shared.up.lock().unwrap().counters(),
            down: self.shared.down.lock().unwrap().counters(),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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

/// A packet on its way: when it arrives, its bytes, where it goes.
type InFlight<T> = (Instant, Vec<u8>, T);

async fn run(front: Arc<UdpSocket>, upstream: SocketAddr, shared: Arc<Shared>) -> io::Result<()> {
    let (up_tx, up_rx) = mpsc::unbounded_channel::<InFlight<Arc<UdpSocket>>>();
    let (down_tx, down_rx) = mpsc::unbounded_channel::<InFlight<SocketAddr>>();
    tokio::spawn(deliver(up_rx, |bytes, to: &Arc<UdpSocket>| {
        let _ = to.try_send(bytes);
    }));
    let f = front.clone();
    tokio::spawn(deliver(down_rx, move |bytes, to: &SocketAddr| {
        let _ = f.try_send_to(bytes, *to);
    }));
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
                tokio::spawn(back(s.clone(), from, shared.clone(), down_tx.clone()));
                flows.insert(from, s.clone());
                s
            }
        };
        let now = Instant::now();
        let down = shared.is_down(now);
        let fate = shared.up.lock().unwrap().offer(n, now, down);
        if let Fate::Deliver(at) = fate {
            let _ = up_tx.send((at, buf[..n].to_vec(), sock));
        }
    }
}

/// The server's datagrams of one flow, through the down link.
async fn back(
    sock: Arc<UdpSocket>,
    client: SocketAddr,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<InFlight<SocketAddr>>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match sock.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(_) => return,
        };
        let now = Instant::now();
        let down = shared.is_down(now);
        let fate = shared.down.lock().unwrap().offer(n, now, down);
        if let Fate::Deliver(at) = fate {
            if tx.send((at, buf[..n].to_vec(), client)).is_err() {
                return;
            }
        }
    }
}

/// Sends each packet when it is due, in order.
async fn deliver<T>(mut rx: mpsc::UnboundedReceiver<InFlight<T>>, send: impl Fn(&[u8], &T)) {
    let mut queue: VecDeque<InFlight<T>> = VecDeque::new();
    loop {
        let next = queue.front().map(|(at, _, _)| *at);
        tokio::select! {
            m = rx.recv() => match m {
                Some(p) => queue.push_back(p),
                None => return,
            },
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now).into()), if next.is_some() => {
                let now = Instant::now();
                while queue.front().is_some_and(|(at, _, _)| *at <= now) {
                    let (_, bytes, to) = queue.pop_front().expect("a packet");
                    send(&bytes, &to);
                }
            }
        }
    }
}
