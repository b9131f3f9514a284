//! coffre-transport: the QUIC transport the PC and the server share.
//!
//! | module | what it is |
//! | --- | --- |
//! | [`congestion`] | `Line`: Cubic that does not mistake an access line's random loss for a full queue |
//! | [`socket`] | the PC's UDP socket: quinn's, or a plain one where the system refuses quinn's socket options (Wine) |
//!
//! Both ends call [`congestion`] on their `quinn::TransportConfig`:
//! the PC sends a backup, the server sends a restore, and each direction's
//! sender is the one whose controller counts.

pub mod congestion;
pub mod socket;

pub use congestion::{Line, LineConfig};
pub use socket::{client_endpoint, SocketKind};

use std::sync::Arc;

/// Sets `t`'s congestion controller: [`Line`], unless `COFFRE_CONGESTION`
/// names one of quinn's (`cubic`, `newreno`, `bbr`) to compare against
/// (benches/examples/wan.rs; docs/performance.md).
pub fn congestion(t: &mut quinn::TransportConfig) {
    use quinn::congestion::{BbrConfig, CubicConfig, NewRenoConfig};
    match std::env::var("COFFRE_CONGESTION").as_deref() {
        Ok("cubic") => t.congestion_controller_factory(Arc::new(CubicConfig::default())),
        Ok("newreno") => t.congestion_controller_factory(Arc::new(NewRenoConfig::default())),
        Ok("bbr") => t.congestion_controller_factory(Arc::new(BbrConfig::default())),
        _ => t.congestion_controller_factory(Arc::new(LineConfig::default())),
    };
}
