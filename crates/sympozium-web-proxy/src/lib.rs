//! `sympozium-web-proxy`: the web endpoint of one SympoziumInstance, run by its server-mode
//! AgentRun. An OpenAI-compatible chat API (`/v1/chat/completions`, `/v1/models`) and an MCP
//! server (`/mcp`, Streamable HTTP) in front of the instance: every request becomes one
//! AgentRun whose answer comes back over the event bus.
//!
//! Every route but `/healthz` needs the instance's API key as a bearer token; each key has
//! its own rate limit, bodies are size-limited, and every failure is an HTTP error with an
//! OpenAI-style body.

pub mod auth;
pub mod config;
pub mod error;
pub mod mcp;
pub mod openai;
pub mod runs;
pub mod wire;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::get;
use kube::Client;

pub use config::Config;

use crate::auth::Gate;
use crate::error::ApiError;
use crate::runs::Runs;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Creates and waits for runs.
    pub runs: Runs,
}

/// Errors that stop the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Listening failed.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("serving: {0}")]
    Serve(#[source] std::io::Error),
}

/// The whole HTTP surface: health, then the key-protected OpenAI and MCP routes.
pub fn router(runs: Runs, gate: Gate, max_body: usize) -> Router {
    let protected = openai::routes()
        .with_state(AppState { runs: runs.clone() })
        .nest_service("/mcp", mcp::service(runs, max_body))
        .fallback(|| async { ApiError::not_found("no such route").into_response() })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(gate, auth::require_key));
    Router::new().route("/healthz", get(|| async { "ok" })).merge(protected)
}

/// Serves `router` on `addr` until a shutdown signal.
pub async fn serve(addr: std::net::SocketAddr, router: Router) -> Result<(), Error> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr, source })?;
    tracing::info!(%addr, "web proxy listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(sympozium_telemetry::shutdown::shutdown_signal(None))
        .await
        .map_err(Error::Serve)
}

/// Builds everything from `config` and serves until shut down. The bus is connected in
/// the background: the endpoint answers health checks (and its runs still end through
/// their status) while NATS is not reachable yet.
pub async fn run(config: Config, client: Client) -> Result<(), Error> {
    let namespace = config.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let hub = runs::Hub::default();
    let runs = Runs::new(client, namespace, config.instance_name.clone(), hub.clone(), config.run_timeout);
    tokio::spawn(hub.run(config.event_bus_url.clone(), runs.api(), config.instance_name.clone()));
    let gate =
        Gate::new(std::slice::from_ref(&config.api_key), config.rate_limit_rpm, config.rate_limit_burst);
    serve(config.addr, router(runs, gate, config.max_request_bytes)).await
}
