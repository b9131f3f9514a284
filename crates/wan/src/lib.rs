//! coffre-wan: an association's internet link, emulated in user space.
//!
//! The member structures back up over ADSL, VDSL, fibre or 4G: a few to
//! 100 Mbit/s, 20 to 100 ms of round trip, random loss (Wi-Fi, radio), a
//! router queue that fills, outages when the box reboots. This kernel has
//! no `netem`, so the link is a program: a relay that every datagram
//! crosses, whose [`Link`] decides, for each packet and each direction,
//! whether it is lost and when it arrives.
//!
//! | module | what it is |
//! | --- | --- |
//! | [`profile`] | `Profile` (both directions) and `Direction` (rate, delay, jitter, loss, queue, MTU), parsed from `up=20mbit down=100mbit rtt=40ms loss=0.1%` or a named line (`vdsl`, `adsl`, `4g`...) |
//! | [`link`] | `Link`: one direction's fate of each packet, sans-IO (a clock and a seeded random generator in, a delivery time or a drop reason out) |
//! | [`line`] | both directions' links, the outages, the delivery of each packet when it is due and the relay's own thread (`Worker`): what the two relays share |
//! | [`relay`] | `Relay`: a UDP relay on loopback (no root: it runs in `cargo test`), one upstream socket per client address, outages on demand, counters |
//! | [`tunnel`] | `Tunnel` (Linux, root): the same line between two TUN devices, for whole IP packets (TCP too: restic over REST in the benchmarks) |
//! | [`netns`] | `Namespaces` (Linux, root): a client and a server network namespace whose only route to each other is a `Tunnel` |
//!
//! What it does not model: reordering (jitter delays packets but keeps
//! their order, as an access line does), duplication, corruption (QUIC and
//! TCP both drop a corrupt packet: it is a loss), bursts of loss (loss is
//! independent per packet).

pub mod line;
pub mod link;
#[cfg(target_os = "linux")]
pub mod netns;
pub mod profile;
pub mod relay;
#[cfg(target_os = "linux")]
pub mod tunnel;

pub use line::Traffic;
pub use link::{Counters, Fate, Link};
#[cfg(target_os = "linux")]
pub use netns::Namespaces;
pub use profile::{Direction, Profile};
pub use relay::Relay;
#[cfg(target_os = "linux")]
pub use tunnel::Tunnel;
