//! The PC's UDP socket: quinn's own, or a plain one when the system refuses
//! quinn's socket options.
//!
//! quinn sets up its sockets with options that speed them up (ECN marks,
//! the packet's destination address, segmentation offload). A system that
//! refuses one of those options makes `quinn::Endpoint::client` fail
//! outright: Wine 8 answers `getsockopt(IPV6_V6ONLY)` on an IPv4 socket with
//! WSAEOPNOTSUPP (10045), and older or stripped-down network stacks refuse
//! others. The PC then falls back to a [`PlainSocket`]: one datagram per
//! call, `send_to` and `recv_from`, with none of those options. QUIC runs
//! unchanged over it (no ECN: loss alone signals congestion, as on most
//! access lines anyway); every Windows accepts it. The server keeps quinn's
//! socket: it runs on Linux.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Endpoint, EndpointConfig, TokioRuntime, UdpPoller};

/// Which socket a PC's endpoint runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// quinn's socket, with its options.
    Quinn,
    /// A [`PlainSocket`]: the system refused quinn's options.
    Plain,
}

/// A client endpoint bound to `bind`: quinn's socket, or a plain one when
/// the system refuses quinn's socket options (the error that caused the
/// fallback is in the tracing log). `COFFRE_PLAIN_UDP=1` asks for the plain
/// socket directly (tests; a network stack that accepts the options but
/// mishandles them).
pub fn client_endpoint(bind: SocketAddr) -> io::Result<(Endpoint, SocketKind)> {
    if std::env::var_os("COFFRE_PLAIN_UDP").is_none_or(|v| v != "1") {
        match Endpoint::client(bind) {
            Ok(endpoint) => return Ok((endpoint, SocketKind::Quinn)),
            Err(e) => tracing::info!(
                "quinn's UDP socket options are refused here ({e}): using a plain UDP socket"
            ),
        }
    }
    plain_endpoint(bind).map(|e| (e, SocketKind::Plain))
}

/// A client endpoint on a [`PlainSocket`] bound to `bind`.
pub fn plain_endpoint(bind: SocketAddr) -> io::Result<Endpoint> {
    let socket = std::net::UdpSocket::bind(bind)?;
    socket.set_nonblocking(true)?;
    let io = tokio::net::UdpSocket::from_std(socket)?;
    Endpoint::new_with_abstract_socket(
        EndpointConfig::default(),
        None,
        Arc::new(PlainSocket { io: Arc::new(io) }),
        Arc::new(TokioRuntime),
    )
}

/// A UDP socket with no options: one datagram per send and receive.
pub struct PlainSocket {
    io: Arc<tokio::net::UdpSocket>,
}

impl fmt::Debug for PlainSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainSocket")
            .field("local", &self.io.local_addr().ok())
            .finish()
    }
}

/// Waits until the socket can send.
#[derive(Debug)]
struct Writable {
    io: Arc<tokio::net::UdpSocket>,
}

impl UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_send_ready(cx)
    }
}

impl AsyncUdpSocket for PlainSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable {
            io: self.io.clone(),
        })
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        // max_transmit_segments is 1, so a transmit is one datagram; split
        // anyway if a segment size comes.
        let size = transmit
            .segment_size
            .unwrap_or(transmit.contents.len())
            .max(1);
        for datagram in transmit.contents.chunks(size) {
            self.io.try_send_to(datagram, transmit.destination)?;
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let mut read = tokio::io::ReadBuf::new(buf);
        match self.io.poll_recv_from(cx, &mut read) {
            Poll::Ready(Ok(addr)) => {
                let len = read.filled().len();
                *slot = RecvMeta {
                    addr,
                    len,
                    stride: len,
                    ecn: None,
                    dst_ip: None,
                };
                Poll::Ready(Ok(1))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }
}
