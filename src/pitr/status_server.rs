//! The archiver's status port: `GET /status` answers its [`Report`] as JSON, for the operator
//! to show in the schedule's `status.pitr`. Nothing else is served; nothing is written
//! through it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::report::{Report, STATUS_PATH, STATUS_PORT};

/// The address to listen on: the Pod's IP when the Deployment gives it (`POD_IP`, from the
/// downward API), else every address.
pub fn address() -> SocketAddr {
    let ip = std::env::var("POD_IP").ok().and_then(|ip| ip.parse::<IpAddr>().ok());
    SocketAddr::new(ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), STATUS_PORT)
}

/// Serves the report `current` gives until the process ends. A port that cannot be bound is
/// logged and archiving goes on: the archive matters more than its report.
pub async fn serve(current: impl Fn() -> Report + Clone + Send + Sync + 'static) {
    let address = address();
    let app = Router::new().route(
        STATUS_PATH,
        get(move || {
            let current = current.clone();
            async move {
                let body = serde_json::to_string(&current()).unwrap_or_else(|_| "{}".into());
                ([(header::CONTENT_TYPE, "application/json")], body).into_response()
            }
        }),
    );
    match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => {
            tracing::info!(%address, "serving the archive's status");
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the status port stopped");
            }
        }
        Err(error) => tracing::error!(%address, %error, "cannot serve the archive's status"),
    }
}
