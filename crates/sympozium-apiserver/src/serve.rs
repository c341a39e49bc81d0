//! Serving: the cluster client, the UI token, the optional event bus, and the HTTP server
//! until a shutdown signal.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use sympozium_kube::process::{KubeConfigError, kube_config};
use sympozium_telemetry::shutdown::shutdown_signal;

use crate::{AppState, Caches, Config, auth, router};

/// Why the server could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No usable Kubernetes configuration.
    #[error(transparent)]
    KubeConfig(#[from] KubeConfigError),
    /// The Kubernetes client could not be built from the configuration.
    #[error(transparent)]
    Client(kube::Error),
    /// The token Secret could not be read (`--token-from-secret`).
    #[error("reading Secret {namespace}/{name}")]
    TokenSecret {
        /// The system namespace.
        namespace: String,
        /// The Secret.
        name: &'static str,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The token Secret has no usable `token` key.
    #[error("Secret {name} has no non-empty key `token`")]
    EmptyTokenSecret {
        /// The Secret.
        name: &'static str,
    },
    /// Neither a token nor an explicit opt-out.
    #[error(
        "no UI token: pass --token / SYMPOZIUM_UI_TOKEN or --token-from-secret (or --insecure-no-token for local development)"
    )]
    NoToken,
    /// The bus credentials do not parse.
    #[error("NATS_CREDS / --event-bus-creds")]
    BusCredentials(#[source] sympozium_bus::jwt::JwtError),
    /// The listen address could not be bound.
    #[error("listening on {addr}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error(transparent)]
    Serve(std::io::Error),
}

/// Connects to Kubernetes (and, if it answers within 10 s, the event bus) and serves the
/// API and dashboard on `config.addr` until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), ServeError> {
    let client = kube::Client::try_from(kube_config(config.kubeconfig.as_deref()).await?)
        .map_err(ServeError::Client)?;
    let token = token(&client, &config).await?;
    let options = sympozium_bus::BusOptions::operator(config.event_bus_creds.as_deref())
        .map_err(ServeError::BusCredentials)?;
    // The bus is optional: without it everything but /ws/stream works.
    let bus = match tokio::time::timeout(
        Duration::from_secs(10),
        sympozium_bus::Bus::connect_with(&config.event_bus_url, options),
    )
    .await
    {
        Ok(Ok(bus)) => Some(bus),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "event bus unreachable; streaming is off");
            None
        }
        Err(_) => {
            tracing::warn!(url = %config.event_bus_url, "event bus did not answer in 10s; streaming is off");
            None
        }
    };
    let caches = Caches::start(&client);
    let state = AppState {
        client,
        caches,
        token: token.map(Arc::from),
        bus,
        system_namespace: config.system_namespace.clone(),
        bedrock_endpoint: config.bedrock_endpoint.clone().filter(|e| !e.trim().is_empty()),
    };
    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .map_err(|source| ServeError::Listen { addr: config.addr.clone(), source })?;
    let addr =
        listener.local_addr().map_err(|source| ServeError::Listen { addr: config.addr.clone(), source })?;
    tracing::info!(%addr, "serving");
    axum::serve(listener, router(state).layer(axum::middleware::from_fn(trace_request)))
        .with_graceful_shutdown(shutdown_signal(None))
        .await
        .map_err(ServeError::Serve)
}

/// The UI token: `--token`, else the system namespace's token Secret when asked to read
/// it; `None` only with `--insecure-no-token`.
async fn token(client: &kube::Client, config: &Config) -> Result<Option<String>, ServeError> {
    let mut token = config.token.clone().filter(|t| !t.trim().is_empty());
    if token.is_none() && config.token_from_secret {
        let secret = kube::Api::<Secret>::namespaced(client.clone(), &config.system_namespace)
            .get(auth::TOKEN_SECRET)
            .await
            .map_err(|source| ServeError::TokenSecret {
                namespace: config.system_namespace.clone(),
                name: auth::TOKEN_SECRET,
                source,
            })?;
        token = secret
            .data
            .and_then(|d| d.get("token").map(|v| String::from_utf8_lossy(&v.0).trim().to_string()))
            .filter(|t| !t.is_empty());
        if token.is_none() {
            return Err(ServeError::EmptyTokenSecret { name: auth::TOKEN_SECRET });
        }
    }
    if token.is_none() && !config.insecure_no_token {
        return Err(ServeError::NoToken);
    }
    Ok(token)
}

/// One span per request, `sympozium.api.<METHOD>`, continuing the caller's `traceparent`.
async fn trace_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().as_str().to_string();
    let span = tracing::info_span!(
        "sympozium.api.request",
        otel.name = %format!("sympozium.api.{method}"),
        otel.kind = "server",
        http.request.method = %method,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if let Some(tp) = request.headers().get("traceparent").and_then(|v| v.to_str().ok()) {
        sympozium_telemetry::set_parent_from_traceparent(&span, tp);
    }
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response
}
