//! The operator's HTTP endpoints, on two listeners. The public one serves what Prometheus and
//! the kubelet read: `/metrics` (Prometheus text), `/healthz` (the process answers) and
//! `/readyz` (see [`Readiness`]). The run-time controls, `/log-level` (read it; change it with
//! `PUT`), are on a second listener bound to a loopback address only: reachable from inside
//! the Pod or through `kubectl port-forward`, never from the network, and never through a
//! service-mesh sidecar that forwards outside connections from a loopback address (which is
//! what defeated the per-request loopback check this replaces).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
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

/// The public endpoints, separate from the listener so they can be tested without a socket.
pub fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(endpoints)
}

/// The run-time controls, for the loopback listener only.
pub fn controls_router(endpoints: Endpoints) -> Router {
    Router::new().route("/log-level", get(log_level).put(set_log_level)).with_state(endpoints)
}

/// Which listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// `/metrics`, `/healthz`, `/readyz`: any address.
    Public,
    /// `/log-level`: a loopback address only.
    Controls,
}

/// Binds `address` and returns the bound address (port 0 picks a free port) and the server,
/// which runs until `shutdown` resolves. The controls refuse an address that is not loopback.
pub async fn bind(
    address: SocketAddr,
    listener: Listener,
    endpoints: Endpoints,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl std::future::Future<Output = std::io::Result<()>>)> {
    let app = match listener {
        Listener::Public => router(endpoints),
        Listener::Controls if address.ip().is_loopback() => controls_router(endpoints),
        Listener::Controls => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the run-time controls listen on a loopback address only (127.0.0.1 or ::1)",
            ));
        }
    };
    let socket = TcpListener::bind(address).await?;
    let bound = socket.local_addr()?;
    let server = axum::serve(socket, app).with_graceful_shutdown(shutdown);
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

async fn set_log_level(State(e): State<Endpoints>, body: String) -> Response {
    let Some(level) = &e.log_level else {
        return (StatusCode::NOT_FOUND, "this process has no changeable log level\n").into_response();
    };
    match level.set(body.trim()) {
        Ok(()) => format!("{}\n", level.current()).into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_controls_never_listen_beyond_loopback() {
        let endpoints = Endpoints { metrics: Arc::default(), readiness: Arc::default(), log_level: None };
        let refused =
            bind("0.0.0.0:0".parse().expect("address"), Listener::Controls, endpoints.clone(), async {}).await;
        assert!(refused.is_err_and(|e| e.kind() == std::io::ErrorKind::InvalidInput));
        let bound = bind("127.0.0.1:0".parse().expect("address"), Listener::Controls, endpoints, async {}).await;
        assert!(bound.is_ok_and(|(address, _)| address.ip().is_loopback()));
    }
}
