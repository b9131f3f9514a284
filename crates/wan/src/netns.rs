//! Two network namespaces joined by a [`crate::Tunnel`]: a client host and
//! a server host whose only route to each other is the emulated line.
//!
//! Programs run in them with `ip netns exec NAME ...`: a server listens
//! on [`Namespaces::server_ip`], a client reaches it there, and whatever
//! they speak (QUIC, HTTP over TCP) crosses the line. Everything is made
//! with iproute2's `ip` (Debian's iproute2), as root; dropping the
//! [`Namespaces`] deletes both namespaces, and the devices with them.

use std::io;
use std::net::Ipv4Addr;
use std::process::Command;

/// The client's and the server's namespace, set up.
#[derive(Debug)]
pub struct Namespaces {
    /// The client's namespace.
    pub client: String,
    /// The server's namespace.
    pub server: String,
    /// The client's address, in its namespace.
    pub client_ip: Ipv4Addr,
    /// The server's address, in its namespace.
    pub server_ip: Ipv4Addr,
}

impl Namespaces {
    /// Creates the namespaces `client` and `server` (replacing leftovers of
    /// an earlier run), moves the TUN device `client_dev` into the first and
    /// `server_dev` into the second, and gives them the point-to-point
    /// addresses 10.77.0.1 and 10.77.0.2.
    pub fn create(
        client: &str,
        server: &str,
        client_dev: &str,
        server_dev: &str,
    ) -> io::Result<Namespaces> {
        let ns = Namespaces {
            client: client.to_string(),
            server: server.to_string(),
            client_ip: Ipv4Addr::new(10, 77, 0, 1),
            server_ip: Ipv4Addr::new(10, 77, 0, 2),
        };
        for name in [client, server] {
            // A namespace left by a killed run: start clean.
            let _ = Command::new("ip").args(["netns", "del", name]).output();
            ip(&["netns", "add", name])?;
            ip(&["-n", name, "link", "set", "lo", "up"])?;
        }
        for (name, dev, me, peer) in [
            (client, client_dev, ns.client_ip, ns.server_ip),
            (server, server_dev, ns.server_ip, ns.client_ip),
        ] {
            ip(&["link", "set", dev, "netns", name])?;
            ip(&[
                "-n",
                name,
                "addr",
                "add",
                &me.to_string(),
                "peer",
                &peer.to_string(),
                "dev",
                dev,
            ])?;
            ip(&["-n", name, "link", "set", dev, "up"])?;
        }
        Ok(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// Runs `ip ARGS`; its error says what failed and why.
fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        io::Error::new(e.kind(), format!("cannot run `ip` (install iproute2): {e}"))
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
