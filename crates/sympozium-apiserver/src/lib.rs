//! The Sympozium API server: the REST API the web dashboard and users' scripts call, a
//! WebSocket stream of run output, and the dashboard itself.
//!
//! [`router`] builds the whole service from an [`AppState`]; [`serve::run`] connects and
//! serves it, `main.rs` only parses the configuration. Reads answer from watch caches ([`cache`]); writes go to
//! the Kubernetes API with the server's own identity, and everything a tenant's admission
//! webhook and CRD schema enforce still applies to them.

pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
pub mod openapi;
pub mod params;
pub mod routes;
pub mod secrets;
pub mod serve;
pub mod tsgen;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use kube::Client;
use sympozium_bus::Bus;

pub use cache::Caches;
pub use config::Config;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Client for writes and for what no cache holds (Secrets, pods).
    pub client: Client,
    /// Watch caches for reads.
    pub caches: Caches,
    /// The UI token; `None` serves without authentication (local development only).
    pub token: Option<Arc<str>>,
    /// The event bus, when reachable (`/ws/stream` answers 503 without it).
    pub bus: Option<Bus>,
    /// Namespace of Sympozium's own components (`sympozium-system`): the gateway singleton,
    /// the default persona packs.
    pub system_namespace: String,
    /// Bedrock's control-plane endpoint instead of `https://bedrock.<region>.amazonaws.com`
    /// (a VPC endpoint, or a test's fake); `None` in production.
    pub bedrock_endpoint: Option<String>,
}

async fn ok() -> &'static str {
    "ok"
}

/// Prometheus process metrics (public, like the health checks).
async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        sympozium_telemetry::process::prometheus_text(),
    )
}

async fn ready(axum::extract::State(state): axum::extract::State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    if state.caches.wait_ready(std::time::Duration::from_millis(10)).await {
        "ok".into_response()
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "watch caches not synced yet").into_response()
    }
}

/// The whole service: `/api/v1/…` and `/ws/stream` behind the token, health checks, the
/// OpenAPI document and the dashboard public.
pub fn router(state: AppState) -> Router {
    let protected = routes::api()
        .route("/ws/stream", get(ws::stream))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .merge(protected)
        .route("/healthz", get(ok))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::serve))
        .fallback(routes::ui::serve)
        .with_state(state)
}
