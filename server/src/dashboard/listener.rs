//! The dashboard's TCP listener, bounded (issue 17: 300 idle TCP
//! connections to the dashboard exhausted the daemon's file descriptors,
//! and a backup failed).
//!
//! - At most [`Limits::max_connections`] connections at once: one past the
//!   cap is closed as soon as it is accepted, so it holds a file descriptor
//!   for microseconds, not until it leaves.
//! - A connection that moves no byte either way for [`Limits::idle`] is
//!   closed: the headers of a request must keep coming, and a kept-alive
//!   connection waiting for its next request is idle too.
//! - No connection lives longer than [`Limits::lifetime`], however it
//!   trickles (a request is answered in milliseconds; a browser opens a new
//!   connection when it needs one).
//!
//! The timers are tokio's, so tests drive them with tokio's paused clock.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tracing::{debug, warn};

/// The dashboard's bounds.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections at once (default 64: a board of a few people and a
    /// Prometheus scraper need a handful).
    pub max_connections: usize,
    /// A connection silent both ways for this long is closed (default 10 s).
    pub idle: Duration,
    /// The longest a connection may live (default 60 s).
    pub lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            idle: Duration::from_secs(10),
            lifetime: Duration::from_secs(60),
        }
    }
}

/// A [`TcpListener`] that admits at most `max_connections` at once.
#[derive(Debug)]
pub(super) struct Bounded {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    limits: Limits,
}

impl Bounded {
    pub(super) fn new(listener: TcpListener, limits: Limits) -> Self {
        Bounded {
            listener,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
        }
    }
}

impl axum::serve::Listener for Bounded {
    type Io = Guarded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guarded, SocketAddr) {
        loop {
            let (stream, addr) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait a little.
                    warn!("dashboard: accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            match self.slots.clone().try_acquire_owned() {
                Ok(slot) => return (Guarded::new(stream, slot, &self.limits), addr),
                Err(_) => {
                    debug!(%addr, "dashboard: connection closed at once: {} already open", self.limits.max_connections);
                    drop(stream);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// An admitted connection: closed (an I/O error to hyper) when idle too
/// long or too old; frees its slot when dropped.
#[derive(Debug)]
pub(super) struct Guarded {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle: Duration,
    end: Instant,
    timer: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, limits: &Limits) -> Self {
        let now = Instant::now();
        let end = now + limits.lifetime;
        Guarded {
            stream,
            _slot: slot,
            idle: limits.idle,
            end,
            timer: Box::pin(tokio::time::sleep_until(end.min(now + limits.idle))),
        }
    }

    /// Bytes moved: the idle timer starts again (never past the lifetime).
    fn progress(&mut self) {
        let next = self.end.min(Instant::now() + self.idle);
        self.timer.as_mut().reset(next);
    }

    /// While the stream is pending: an error once the timer has fired.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        self.timer.as_mut().poll(cx).is_ready().then(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "dashboard connection idle or too old: closed",
            )
        })
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.progress();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.progress();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => match this.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
