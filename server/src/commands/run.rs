//! `coffre-server run`: the daemon, and the board's web page beside it. It
//! holds the data directory's daemon lock (`coffre_store::DaemonLock`) from
//! start to exit.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tracing::warn;

use crate::config::{Config, DataDir};
use crate::daemon::{self, Limits};
use crate::dashboard;
use crate::tls::{Identity, TransportLimits};

/// How long the dashboard's requests in progress may take to finish at shutdown.
const DASHBOARD_GRACE: Duration = Duration::from_secs(5);

/// Serves until Ctrl-C or SIGTERM; with a dashboard address (`--dashboard`,
/// or `dashboard` in config.toml), serves the board's page beside.
pub fn run(data: &Path, dashboard_flag: Option<SocketAddr>) -> Result<()> {
    let dir = DataDir::new(data);
    let config = dir.config()?;
    // One daemon per data directory, for its whole life: a second `run`,
    // `rebuild-catalog` and `move-packs` are refused while it is held.
    let _lock = coffre_store::DaemonLock::acquire(data, coffre_store::DAEMON)?;
    let dashboard = match dashboard_flag.or(config.dashboard) {
        Some(addr) => Some((addr, dashboard_options(&dir, &config)?)),
        None => None,
    };
    let store = Arc::new(super::open_store(data)?);
    // A frontend of a service (issue 22): what was taken over meanwhile
    // leaves, and the service learns this one is up.
    let frontend = crate::frontend::start(&store, &config.public_address)?;
    let identity = Identity::load(&dir.tls_dir())?;
    let transport = TransportLimits {
        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        ..Default::default()
    };
    let server_config = identity.server_config(&transport)?;
    let recorder = crate::history::Recorder::new(data)?;
    let nightly = crate::retention::parse_nightly(&config.nightly_at)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.config_path().display()))?;
    let alerts = crate::alerts::Alerts::new(data, &config)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", dir.config_path().display()))?
        .map(Arc::new);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        let dashboard = match dashboard {
            Some((addr, options)) => Some((dashboard::bind(addr).await?, options)),
            None => None,
        };
        let endpoint =
            quinn::Endpoint::server(server_config, config.listen).with_context(|| {
                format!(
                    "listening on {} (is another server running there?)",
                    config.listen
                )
            })?;
        // The dashboard stops when the daemon does: `stop` is sent (or
        // dropped) once serving ends.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let dashboard = dashboard.map(|(listener, options)| {
            tokio::spawn(dashboard::serve(listener, store.clone(), options, async {
                let _ = stopped.await;
            }))
        });
        // The alerts' watcher: its own task, stopped when serving ends.
        let watcher = alerts
            .clone()
            .map(|a| tokio::spawn(crate::alerts::watch(a, store.clone())));
        let keeping_up = frontend.then(|| {
            tokio::spawn(crate::frontend::keep_up(
                store.clone(),
                config.public_address.clone(),
            ))
        });
        let serving = daemon::serve(endpoint, store.clone(), limits(&config), shutdown);
        // Today's line of the usage history, now and every hour.
        let recording = crate::history::hourly(store.clone(), recorder.clone());
        let result = match nightly {
            // The nightly work and the recording never end by themselves:
            // serving decides when to stop.
            Some(at) => tokio::select! {
                r = serving => r,
                () = crate::maintenance::nightly(store, at, recorder, alerts) => Ok(()),
                () = recording => Ok(()),
            },
            None => tokio::select! {
                r = serving => r,
                () = recording => Ok(()),
            },
        };
        if let Some(w) = watcher {
            w.abort();
        }
        if let Some(k) = keeping_up {
            k.abort();
        }
        let _ = stop.send(());
        if let Some(mut task) = dashboard {
            match tokio::time::timeout(DASHBOARD_GRACE, &mut task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => warn!("dashboard: {e:#}"),
                Ok(Err(e)) => warn!("dashboard: {e}"),
                Err(_) => {
                    warn!("dashboard: requests still running after {DASHBOARD_GRACE:?}, cut");
                    task.abort();
                }
            }
        }
        result
    })
}

/// The daemon's limits: the connection caps and memory budgets config.toml
/// sets, the defaults for the rest (the handshake timeout, 10 s; a
/// request's stall, 60 s; the revocation poll, 1 s).
fn limits(config: &Config) -> Limits {
    let d = Limits::default();
    let mib = |v: Option<usize>, default: usize| v.map_or(default, |m| m.saturating_mul(1 << 20));
    Limits {
        max_connections: config.max_connections,
        max_connections_per_device: config
            .max_connections_per_device
            .unwrap_or(d.max_connections_per_device),
        max_connections_per_subscriber: config
            .max_connections_per_subscriber
            .unwrap_or(d.max_connections_per_subscriber),
        max_handshakes: config.max_handshakes.unwrap_or(d.max_handshakes),
        request_bytes: mib(config.request_memory_mib, d.request_bytes),
        device_request_bytes: mib(config.device_request_memory_mib, d.device_request_bytes),
        ..d
    }
}

/// The dashboard's options from config.toml; without a token, an error that
/// says how to add one.
fn dashboard_options(dir: &DataDir, config: &Config) -> Result<dashboard::Options> {
    let path = dir.config_path();
    let Some(token) = &config.dashboard_token else {
        bail!(
            "the dashboard needs a password and {} has none: add the line \
             `dashboard_token = \"{}\"` to it (a random token made just now), then give that \
             token to the board members (see docs/operator-guide.md, \"Dashboard and metrics\")",
            path.display(),
            crate::config::new_dashboard_token()
        );
    };
    Ok(dashboard::Options {
        token: dashboard::Token::new(token)
            .with_context(|| format!("dashboard_token in {}", path.display()))?,
        stale_days: config.stale_days,
    })
}

/// The signals that stop the daemon, registered at once: the handlers must be
/// in place before the log says "listening", or a SIGTERM sent right then
/// would take its default action and kill the daemon mid-write.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_takes_max_connections_from_the_config_and_the_default_timeouts() {
        let mut config = Config::new("127.0.0.1:4433".parse().unwrap(), "h:4433".into());
        config.max_connections = 7;
        let limits = limits(&config);
        assert_eq!(limits.max_connections, 7);
        assert_eq!(limits.handshake_timeout, Duration::from_secs(10));
        assert_eq!(limits.handshake_timeout, daemon::HANDSHAKE_TIMEOUT);
        assert_eq!(limits.request_stall, daemon::REQUEST_STALL);
        assert_eq!(limits.max_connections_per_device, 8);
        config.max_connections_per_device = Some(3);
        config.request_memory_mib = Some(512);
        let limits = super::limits(&config);
        assert_eq!(limits.max_connections_per_device, 3);
        assert_eq!(limits.request_bytes, 512 << 20);
        assert_eq!(limits.device_request_bytes, 160 << 20);
    }
}
