//! The operator's HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the process
//! answers), `/readyz` (see [`Readiness`]), and `/log-level` (read it; change it with `PUT`,
//! from loopback only, i.e. from inside the Pod or through `kubectl port-forward`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::telemetry::{LogLevel, Metrics, Readiness};

/// What the endpoints read.
#[derive(Clone)]
pub struct Endpoints {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub log_level: Option<Arc<LogLevel>>,
}

/// The router, separate from the listener so it can be tested without a socket.
pub fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/log-level", get(log_level).put(set_log_level))
        .with_state(endpoints)
}

/// Binds `address` and returns the bound address (port 0 picks a free port) and the server,
/// which runs until `shutdown` resolves.
pub async fn bind(
    address: SocketAddr,
    endpoints: Endpoints,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl std::future::Future<Output = std::io::Result<()>>)> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let app = router(endpoints).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    Ok((bound, async move { server.await }))
}

async fn metrics(State(e): State<Endpoints>) -> Response {
    match e.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode metrics: {error}\n")).into_response(),
    }
}

async fn readyz(State(e): State<Endpoints>) -> Response {
    match e.readiness.check() {
        Ok(what) => (StatusCode::OK, format!("{what}\n")).into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn log_level(State(e): State<Endpoints>) -> Response {
    match &e.log_level {
        Some(level) => format!("{}\n", level.current()).into_response(),
        None => (StatusCode::NOT_FOUND, "this process has no changeable log level\n").into_response(),
    }
}

async fn set_log_level(
    State(e): State<Endpoints>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: String,
) -> Response {
    if !peer.ip().is_loopback() {
        return (StatusCode::FORBIDDEN, "the log level can be changed from loopback only (kubectl port-forward)\n")
            .into_response();
    }
    let Some(level) = &e.log_level else {
        return (StatusCode::NOT_FOUND, "this process has no changeable log level\n").into_response();
    };
    match level.set(body.trim()) {
        Ok(()) => format!("{}\n", level.current()).into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    }
}
