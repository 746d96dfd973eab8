//! A small HTTP interface for tests that drive the simulator from outside the process:
//!
//! - `GET /state`: every member's state
//! - `POST /members` `{"name", "host", "listen"}`: add a member (uninitialised)
//! - `DELETE /members/{name}`: remove a member
//! - `POST /members/{name}/stop|start|partition|heal`
//! - `PUT /members/{name}/lag|slow` `{"ms": N}`, `PUT /members/{name}/version` `{"version": "8.0.5"}`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::Sim;

#[derive(Deserialize)]
struct NewMember {
    name: String,
    host: String,
    listen: SocketAddr,
}

#[derive(Deserialize)]
struct Millis {
    ms: u64,
}

#[derive(Deserialize)]
struct Version {
    version: String,
}

type Reply = (StatusCode, Json<serde_json::Value>);

fn done(found: bool) -> Reply {
    if found {
        (StatusCode::OK, Json(serde_json::json!({"ok": true})))
    } else {
        (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no such member"})))
    }
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/state", get(|State(s): State<Arc<Sim>>| async move { Json(s.snapshot()) }))
        .route(
            "/members",
            post(|State(s): State<Arc<Sim>>, Json(m): Json<NewMember>| async move {
                match s.add_member(&m.name, &m.host, m.listen).await {
                    Ok(addr) => (StatusCode::CREATED, Json(serde_json::json!({"listen": addr.to_string()}))),
                    Err(e) => (StatusCode::CONFLICT, Json(serde_json::json!({"error": e.to_string()}))),
                }
            }),
        )
        .route(
            "/members/{name}",
            axum::routing::delete(|State(s): State<Arc<Sim>>, Path(n): Path<String>| async move {
                done(s.remove_member(&n))
            }),
        )
        .route(
            "/members/{name}/stop",
            post(|State(s): State<Arc<Sim>>, Path(n): Path<String>| async move { done(s.stop_member(&n)) }),
        )
        .route(
            "/members/{name}/start",
            post(|State(s): State<Arc<Sim>>, Path(n): Path<String>| async move {
                match s.start_member(&n).await {
                    Ok(found) => done(found),
                    Err(e) => (StatusCode::CONFLICT, Json(serde_json::json!({"error": e.to_string()}))),
                }
            }),
        )
        .route(
            "/members/{name}/partition",
            post(|State(s): State<Arc<Sim>>, Path(n): Path<String>| async move { done(s.set_partitioned(&n, true)) }),
        )
        .route(
            "/members/{name}/heal",
            post(|State(s): State<Arc<Sim>>, Path(n): Path<String>| async move { done(s.set_partitioned(&n, false)) }),
        )
        .route(
            "/members/{name}/lag",
            put(|State(s): State<Arc<Sim>>, Path(n): Path<String>, Json(b): Json<Millis>| async move {
                done(s.set_lag(&n, Duration::from_millis(b.ms)))
            }),
        )
        .route(
            "/members/{name}/slow",
            put(|State(s): State<Arc<Sim>>, Path(n): Path<String>, Json(b): Json<Millis>| async move {
                done(s.set_slow(&n, Duration::from_millis(b.ms)))
            }),
        )
        .route(
            "/members/{name}/version",
            put(|State(s): State<Arc<Sim>>, Path(n): Path<String>, Json(b): Json<Version>| async move {
                done(s.set_version(&n, &b.version))
            }),
        )
        .with_state(sim)
}
