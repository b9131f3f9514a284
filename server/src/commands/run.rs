//! `coffre-server run`: the daemon.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::DataDir;
use crate::daemon::{self, Limits};
use crate::tls::{Identity, TransportLimits};

/// Serves until Ctrl-C or SIGTERM.
pub fn run(data: &Path) -> Result<()> {
    let dir = DataDir::new(data);
    let config = dir.config()?;
    let store = Arc::new(super::open_store(data)?);
    let identity = Identity::load(&dir.tls_dir())?;
    let transport = TransportLimits {
        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        ..Default::default()
    };
    let server_config = identity.server_config(&transport)?;
    let nightly = crate::retention::parse_nightly(&config.nightly_at)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.config_path().display()))?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let endpoint =
            quinn::Endpoint::server(server_config, config.listen).with_context(|| {
                format!(
                    "listening on {} (is another server running there?)",
                    config.listen
                )
            })?;
        let serving = daemon::serve(
            endpoint,
            store.clone(),
            Limits {
                max_connections: config.max_connections,
            },
            shutdown_signal(),
        );
        match nightly {
            // The nightly work never ends by itself: serving decides when to stop.
            Some(at) => tokio::select! {
                r = serving => r,
                () = crate::maintenance::nightly(store, at) => Ok(()),
            },
            None => serving.await,
        }
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
