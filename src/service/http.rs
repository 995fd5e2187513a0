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
use axum::{middleware, Json, Router};
use serde::Deserialize;

use super::auth;
use super::metrics::Metrics;
use super::state::{readiness, Shared};

/// Bind the HTTP listener. The caller binds (not [`super::run`]) so that it knows the address
/// before the service starts: `overage run` binds `http.listen` this way, and with port 0 it
/// learns the port the kernel chose (tests run side by side without racing for ports).
pub fn listen(addr: std::net::SocketAddr) -> Result<std::net::TcpListener, super::ServiceError> {
    let listen_error = |source| super::ServiceError::Listen { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(listen_error)?;
    // tokio requires it (`TcpListener::from_std`)
    listener.set_nonblocking(true).map_err(listen_error)?;
    Ok(listener)
}

#[derive(Clone)]
pub struct App {
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
}

/// Every route. Two groups:
///
/// - **open**: `/metrics`, `/healthz`, `/readyz` (Prometheus and the kubelet hold no token);
/// - **protected**: the JSON API and the status page, behind [`auth::require`] when a token is
///   configured (`http.api_token_file` or `OVERAGE_API_TOKEN`).
///
/// To protect a new route, add one `.route(...)` line to `protected` below (or `.merge()` a
/// sub-router there); the `route_layer` after it covers everything above it. Routes added to
/// `open` are served to anyone.
pub fn router(app: App) -> Router {
    let http = &app.shared.config.http;
    let guard = auth::Guard::new(http.api_token.clone());
    // whether, never what: the token is not logged
    tracing::info!(api_protected = guard.is_protected(), "http api");
    if let Some(warning) = http.exposure_warning() {
        tracing::warn!("{warning}");
    }
    let protected = Router::new()
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/clients", get(clients))
        .route("/api/v1/clients/{id}", get(client))
        // status page routes (`/`, `/clients/{id}`) go here, one `.route(...)` line each
        .route("/api/v1/clients/{id}/usage", get(super::status::usage))
        .route("/", get(super::status::index))
        .route("/clients/{id}", get(super::status::client_page))
        .route("/clients/{id}/report", get(super::status::client_report))
        .route_layer(middleware::from_fn_with_state(guard, auth::require));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .merge(protected)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ApiToken, Config};
    use crate::contract::Contracts;

    const TOKEN: &str = "0123456789abcdef-the-api-token";

    /// Serve the real router on a loopback port; returns its base URL.
    async fn serve(token: Option<&str>) -> String {
        let mut config = Config::default();
        config.http.api_token = token.map(|t| ApiToken::new(t).unwrap());
        let app = router(App {
            shared: Shared::new(config, Arc::new(Contracts::default())),
            metrics: Arc::new(Metrics::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    async fn status(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
        let r = req.send().await.unwrap();
        let s = r.status().as_u16();
        let h = r.headers().clone();
        (s, h, r.text().await.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_api_needs_the_token_and_probes_do_not() {
        let base = serve(Some(TOKEN)).await;
        let c = reqwest::Client::new();
        // with the token: the answer the route gives (no client "acme": 404, authorised)
        for (path, authorised) in [
            ("/api/v1/alerts", 200),
            ("/api/v1/clients", 200),
            ("/api/v1/clients/acme", 404),
        ] {
            let (s, h, body) = status(c.get(format!("{base}{path}"))).await;
            assert_eq!(s, 401, "{path}");
            assert_eq!(
                h["www-authenticate"],
                "Basic realm=\"overage\", charset=\"UTF-8\""
            );
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(v["error"].as_str().unwrap().contains("Bearer"), "{body}");

            let (s, _, body) = status(c.get(format!("{base}{path}")).bearer_auth("wrong")).await;
            assert_eq!(s, 401, "{path}");
            assert!(!body.contains("wrong"), "{body}");

            let (s, _, _) = status(c.get(format!("{base}{path}")).bearer_auth(TOKEN)).await;
            assert_eq!(s, authorised, "{path}");
            let (s, _, _) =
                status(c.get(format!("{base}{path}")).basic_auth("me", Some(TOKEN))).await;
            assert_eq!(s, authorised, "{path}");
        }
        // open without a token; not ready here (no partition assigned), which is the probe's
        // own answer, not a 401
        for (path, open) in [("/metrics", 200), ("/healthz", 200), ("/readyz", 503)] {
            let (s, _, _) = status(c.get(format!("{base}{path}"))).await;
            assert_eq!(s, open, "{path} must stay open");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_token_the_api_is_open() {
        let base = serve(None).await;
        let c = reqwest::Client::new();
        let (s, _, _) = status(c.get(format!("{base}/api/v1/alerts"))).await;
        assert_eq!(s, 200);
    }
}
