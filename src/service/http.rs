//! The one small HTTP server: `/metrics`, `/healthz`, `/readyz` and the JSON API.
//!
//! Kubernetes probes and Prometheus scrape it; on-call engineers query the API during an
//! incident. Handlers only take short locks on shared state; nothing here can stall consumption
//! for longer than building one small view.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::metrics::Metrics;
use super::state::{readiness, Shared};

#[derive(Clone)]
pub struct App {
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/clients", get(clients))
        .route("/api/v1/clients/{id}", get(client))
        .with_state(app)
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(&app.shared),
    )
        .into_response()
}

async fn ready(State(app): State<App>) -> Response {
    match readiness(&app.shared) {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({"ready": true}))).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "reasons": why})),
        )
            .into_response(),
    }
}

async fn alerts(State(app): State<App>) -> Response {
    let active: Vec<_> = app
        .shared
        .active
        .read()
        .map(|a| a.values().cloned().collect())
        .unwrap_or_default();
    Json(active).into_response()
}

#[derive(Deserialize)]
struct ClientsQuery {
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn clients(State(app): State<App>, Query(q): Query<ClientsQuery>) -> Response {
    if q.sort.as_deref().is_some_and(|s| s != "ratio") {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "sort must be `ratio`"})),
        )
            .into_response();
    }
    let limit = q.limit.unwrap_or(20).min(1000);
    Json(app.shared.top_clients(limit)).into_response()
}

async fn client(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.shared.client_view(&id) {
        Some(v) => Json(v).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no state for this client on this instance"})),
        )
            .into_response(),
    }
}
