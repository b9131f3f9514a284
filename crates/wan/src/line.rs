//! The line both relays share: the two directions' [`Link`]s, the
//! outages, and the task that hands each packet over when it is due.
//!
//! [`crate::Relay`] (UDP datagrams on loopback) and, on Linux,
//! [`crate::Tunnel`] (whole IP packets between two TUN devices) differ
//! only in where packets come from and go to; what the line does to them
//! is here, once.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::link::{Counters, Fate, Link};
use crate::profile::Profile;

/// What crossed each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Client towards server.
    pub up: Counters,
    /// Server towards client.
    pub down: Counters,
}

/// Which way a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    /// Client towards server.
    Up,
    /// Server towards client.
    Down,
}

/// The line's state, seen by the relay's thread and by its handle.
#[derive(Debug)]
pub(crate) struct Line {
    up: Mutex<Link>,
    down: Mutex<Link>,
    started: Instant,
    outages: Mutex<Vec<(Duration, Duration)>>,
    down_until: Mutex<Option<Instant>>,
    forced_down: AtomicBool,
}

impl Line {
    /// A line shaped by `profile`, whose packets are offered with
    /// `overhead` bytes of headers not counted in their length.
    pub(crate) fn new(profile: Profile, overhead: usize) -> Line {
        Line {
            up: Mutex::new(Link::new(profile.up, overhead, profile.seed)),
            down: Mutex::new(Link::new(
                profile.down,
                overhead,
                profile.seed.wrapping_add(1),
            )),
            started: Instant::now(),
            outages: Mutex::new(profile.outages),
            down_until: Mutex::new(None),
            forced_down: AtomicBool::new(false),
        }
    }

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

    /// The fate of a packet of `len` bytes going `way` now.
    pub(crate) fn offer(&self, way: Way, len: usize) -> Fate {
        let now = Instant::now();
        let down = self.is_down(now);
        let link = match way {
            Way::Up => &self.up,
            Way::Down => &self.down,
        };
        link.lock().unwrap().offer(len, now, down)
    }

    /// Takes the line down for `length` from now (outages overlap into one).
    pub(crate) fn outage(&self, length: Duration) {
        let until = Instant::now() + length;
        let mut d = self.down_until.lock().unwrap();
        *d = Some(d.map_or(until, |u| u.max(until)));
    }

    /// Takes the line down, or brings it back, until told otherwise.
    pub(crate) fn set_down(&self, down: bool) {
        self.forced_down.store(down, Ordering::Relaxed);
        if !down {
            *self.down_until.lock().unwrap() = None;
        }
    }

    /// Reshapes the line from now on (its scheduled outages included,
    /// counted from the start).
    pub(crate) fn set_profile(&self, profile: Profile) {
        self.up.lock().unwrap().set_direction(profile.up);
        self.down.lock().unwrap().set_direction(profile.down);
        *self.outages.lock().unwrap() = profile.outages;
    }

    /// What crossed each way so far.
    pub(crate) fn counters(&self) -> Traffic {
        Traffic {
            up: self.up.lock().unwrap().counters(),
            down: self.down.lock().unwrap().counters(),
        }
    }
}

/// A relay's own thread and single-threaded runtime, so that a test's
/// runtime (or a test with none) is not disturbed. It runs its task until
/// the task ends or the [`Worker`] is dropped.
#[derive(Debug)]
pub(crate) struct Worker {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Runs the future `task` makes on a new thread named `name`.
    pub(crate) fn spawn<F>(
        name: &str,
        task: impl FnOnce() -> F + Send + 'static,
    ) -> io::Result<Worker>
    where
        F: Future<Output = ()>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = stopped => {}
                        _ = task() => {}
                    }
                });
            })?;
        Ok(Worker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A packet on its way: when it arrives, its bytes, where it goes.
pub(crate) type InFlight<T> = (Instant, Vec<u8>, T);

/// Sends each packet when it is due, in order.
pub(crate) async fn deliver<T>(
    mut rx: mpsc::UnboundedReceiver<InFlight<T>>,
    send: impl Fn(&[u8], &T),
) {
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
