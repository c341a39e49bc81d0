//! `sympozium-apiserver`: parses its configuration, connects to Kubernetes and the event
//! bus, and serves the API and dashboard.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use k8s_openapi::api::core::v1::Secret;
use sympozium_apiserver::{AppState, Caches, Config, auth, router};
use sympozium_telemetry::TelemetryArgs;

/// The server's flags plus the shared telemetry settings.
#[derive(Parser)]
#[command(name = "sympozium-apiserver", version, about = "Sympozium's REST/WebSocket API and web dashboard")]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(flatten)]
    telemetry: TelemetryArgs,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = sympozium_telemetry::init(
        "sympozium-apiserver",
        &cli.telemetry.with_secret_headers(std::env::vars()),
    )?;
    let config = cli.config;
    let kube_config = sympozium_kube::process::kube_config(config.kubeconfig.as_deref()).await?;
    let client = kube::Client::try_from(kube_config)?;
    let mut token = config.token.clone().filter(|t| !t.trim().is_empty());
    if token.is_none() && config.token_from_secret {
        let secret = kube::Api::<Secret>::namespaced(client.clone(), &config.system_namespace)
            .get(auth::TOKEN_SECRET)
            .await
            .with_context(|| format!("reading Secret {}/{}", config.system_namespace, auth::TOKEN_SECRET))?;
        token = secret
            .data
            .and_then(|d| d.get("token").map(|v| String::from_utf8_lossy(&v.0).trim().to_string()))
            .filter(|t| !t.is_empty());
        anyhow::ensure!(token.is_some(), "Secret {} has no non-empty key `token`", auth::TOKEN_SECRET);
    }
    anyhow::ensure!(
        token.is_some() || config.insecure_no_token,
        "no UI token: pass --token / SYMPOZIUM_UI_TOKEN or --token-from-secret (or --insecure-no-token for local development)"
    );
    let options = sympozium_bus::BusOptions::operator(config.event_bus_creds.as_deref())
        .context("NATS_CREDS / --event-bus-creds")?;
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
        .with_context(|| format!("listening on {}", config.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let served = axum::serve(listener, router(state).layer(axum::middleware::from_fn(trace_request)))
        .with_graceful_shutdown(sympozium_kube::process::shutdown_signal(None))
        .await;
    telemetry.shutdown(Duration::from_secs(5));
    Ok(served?)
}
