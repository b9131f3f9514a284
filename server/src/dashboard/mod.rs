//! The board's web page and Prometheus metrics, over plain HTTP (HTTP/1.1),
//! beside the QUIC daemon: `coffre-server run --dashboard HOST:PORT`.
//!
//! - `GET /`: the page ([`page`]), in French or English ([`i18n`]): the
//!   `Accept-Language` header chooses, `?lang=en|fr` overrides, French by default.
//! - `GET /metrics`: the same numbers for Prometheus ([`metrics`]).
//!
//! Both need the token of `dashboard_token` in config.toml ([`auth`]): as the
//! password of HTTP Basic authentication (browsers ask for it) or as
//! `Authorization: Bearer TOKEN` (scripts, Prometheus). The rows come from
//! [`crate::usage::rows`], as for `coffre-server usage`. Put it
//! behind a reverse proxy for HTTPS (docs/operator-guide.md).
//!
//! Its connections are bounded ([`listener`]): a cap, an idle timeout that
//! also bounds the reading of headers, and a lifetime.

mod auth;
pub mod chart;
mod html;
pub mod i18n;
pub mod listener;
pub mod metrics;
pub mod page;
pub mod view;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use axum::extract::{Query, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use coffre_store::Store;
use serde::Deserialize;
use tokio::net::TcpListener;
use tracing::{error, info};

pub use auth::Token;
use i18n::Lang;

use crate::usage;

/// What the dashboard needs besides the store.
#[derive(Debug, Clone)]
pub struct Options {
    /// The password or bearer token.
    pub token: Token,
    /// A device without a backup for this many days is stale.
    pub stale_days: u32,
}

/// Binds the dashboard's TCP address, with an error that says what to do.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => "is another program using it?",
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need privileges: choose another, e.g. 127.0.0.1:8080"
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "is this one of this machine's addresses? 127.0.0.1 is the usual choice"
            }
            _ => "check the address given to --dashboard or `dashboard` in config.toml",
        };
        anyhow!("the dashboard cannot listen on {addr}: {e} ({hint})")
    })
}

/// Serves the page and `/metrics` on `listener` until `shutdown` completes,
/// then lets the requests in progress finish; within the default
/// [`listener::Limits`].
pub async fn serve(
    listener: TcpListener,
    store: Arc<Store>,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_within(
        listener,
        store,
        options,
        listener::Limits::default(),
        shutdown,
    )
    .await
}

/// [`serve`] within `limits`.
pub async fn serve_within(
    listener: TcpListener,
    store: Arc<Store>,
    options: Options,
    limits: listener::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr()?;
    info!(%addr, "dashboard listening (HTTP): the board's page at /, Prometheus metrics at /metrics");
    axum::serve(
        listener::Bounded::new(listener, limits),
        router(store, options),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving the dashboard")?;
    info!("dashboard stopped");
    Ok(())
}

#[derive(Debug, Clone)]
struct AppState {
    store: Arc<Store>,
    options: Arc<Options>,
}

/// The routes, every one behind the token.
pub fn router(store: Arc<Store>, options: Options) -> Router {
    let state = AppState {
        store,
        options: Arc::new(options),
    };
    Router::new()
        .route("/", get(board_page))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Lets through only requests that carry the token; adds the headers that
/// keep the page out of caches, frames and scripts.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = if state.options.token.admits(request.headers()) {
        next.run(request).await
    } else {
        auth::unauthorized()
    };
    let h = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `?lang=fr|en&q=NAME&status=alarm|act|watch|ok&page=N` ([`view`]).
#[derive(Debug, Deserialize)]
struct PageQuery {
    lang: Option<String>,
    q: Option<String>,
    status: Option<String>,
    page: Option<String>,
}

async fn board_page(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = query
        .lang
        .as_deref()
        .and_then(Lang::from_code)
        .unwrap_or_else(|| {
            Lang::negotiate(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok()),
            )
        });
    let stale_days = state.options.stale_days;
    let view = view::View::parse(
        query.q.as_deref(),
        query.status.as_deref(),
        query.page.as_deref(),
    );
    let html = blocking(state.store, move |store| {
        // The store's clock: the page and the nightly task agree on "now".
        let now = store.now();
        let rows = usage::rows(store, now, stale_days)?;
        // The history of the shown structures only: one query for the page.
        page::render_view(rows, &view, lang, now, stale_days, |shown| {
            chart::Charts::load(store, shown.iter().copied(), now)
        })
    })
    .await;
    match html {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_LANGUAGE, lang.code()),
                (header::VARY, "Accept-Language"),
            ],
            html,
        )
            .into_response(),
        Err(e) => server_error(e),
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let text = blocking(state.store, |store| {
        let usage = store.usage()?;
        Ok(metrics::render(store, &usage))
    })
    .await;
    match text {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => server_error(e),
    }
}

async fn not_found() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "Page introuvable : la page du bureau est à l'adresse /.\n\
         Not found: the board's page is at /.\n",
    )
}

/// Runs store work on tokio's blocking pool (SQLite blocks).
async fn blocking<T: Send + 'static>(
    store: Arc<Store>,
    work: impl FnOnce(&Store) -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(move || work(&store))
        .await
        .map_err(|e| anyhow!("the dashboard's worker stopped: {e}"))?
}

fn server_error(e: anyhow::Error) -> Response {
    error!("dashboard: {e:#}");
    plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        "La page ne peut pas être construite pour l'instant : le journal du serveur dit pourquoi.\n\
         The page cannot be built right now: the server's log says why.\n",
    )
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}
